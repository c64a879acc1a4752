//! The client-hello callback: decides what to look up, pauses the
//! handshake for it, and parks what was found.
//!
//! OpenSSL ≥ 1.1.1 calls it before the session lookup. Per connection
//! accepted through [`AsyncSessionCache::accept`](crate::AsyncSessionCache::accept)
//! a `Slot` in the `SSL`'s ex data carries the conversation between the
//! callback and `accept`:
//!
//! 1. `Fresh` — first call. The callback reads the ClientHello and plans the
//!    lookups ([`plan`]). Nothing to look up: it parks "nothing" (so the get
//!    callback will not touch the store either) and returns SUCCESS.
//!    Otherwise it stores the plan (`Pending`) and returns
//!    `SSL_CLIENT_HELLO_RETRY`: the handshake returns
//!    `SSL_ERROR_WANT_CLIENT_HELLO_CB`, the ClientHello stays buffered.
//! 2. `accept` takes the plan, awaits the store, and leaves the answers
//!    (`Ready`); then drives the handshake again.
//! 3. Second call: the callback parks the answers on the connection with
//!    the binding's [`parked::park`] and returns SUCCESS; OpenSSL goes on
//!    and its get callback answers from what is parked.
//!
//! A connection without a slot (accepted some other way) is left alone:
//! SUCCESS, and the binding's usual path.
//!
//! Every entry point catches panics: a panic means SUCCESS with nothing
//! parked-for-resumption (a full handshake), counted and logged.

use std::ffi::{c_int, c_uint, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};

use foreign_types::ForeignTypeRef;
use once_cell::sync::Lazy;
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslRef};
use openssl_sys::{
    SSL, SSL_CLIENT_HELLO_RETRY, SSL_CLIENT_HELLO_SUCCESS, SSL_OP_NO_TLSv1_3, TLS1_3_VERSION,
};
use tls_session_cache::{Protocol, SessionId, StoredSession};
use tls_session_cache_openssl::parked;

use crate::psk::{STATEFUL_TICKET_LEN, offers_tls13, psk_identities};
use crate::stats::{AsyncCounters, bump};

/// TLS extension numbers (RFC 8446 §4.2).
const EXT_PRE_SHARED_KEY: c_uint = 41;
const EXT_SUPPORTED_VERSIONS: c_uint = 43;

/// Most PSK identities looked up for one ClientHello: each is a store round
/// trip, and a client has no reason to offer many.
pub const MAX_PSK_LOOKUPS: usize = 4;

unsafe extern "C" {
    /// `uint64_t SSL_get_options(const SSL *)` (OpenSSL 3; `unsigned long`,
    /// also 64 bits on LP64, in 1.1.1). Not declared by openssl-sys 0.9.
    fn SSL_get_options(ssl: *const SSL) -> u64;
}

/// How an id is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Read, leaving it in place (TLS 1.2 session ids).
    Get,
    /// Atomic get-and-remove (TLS 1.3 tickets, single use).
    Take,
}

/// What to look up for one ClientHello, in the order OpenSSL will ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The protocol the handshake will negotiate: the lookups are made
    /// under that protocol's keys only (keys are protocol-bound), so a
    /// TLS 1.3 ClientHello can never take a TLS 1.2 session.
    pub protocol: Protocol,
    /// Ids and how to look each up.
    pub lookups: Vec<(SessionId, Lookup)>,
    /// An extension did not parse (the lookups are then empty).
    pub malformed: bool,
}

impl Plan {
    fn nothing(protocol: Protocol) -> Self {
        Plan {
            protocol,
            lookups: Vec::new(),
            malformed: false,
        }
    }
}

/// Plans the lookups for a ClientHello, from its legacy session id and the
/// bodies of its `pre_shared_key` and `supported_versions` extensions.
///
/// * A client offering TLS 1.3 to a server that allows it will negotiate
///   TLS 1.3: its legacy session id is then random (middlebox
///   compatibility) and never looked up; its 32-byte PSK identities
///   (stateful tickets) are, with `take` when TLS 1.3 tickets are single use
///   — at most [`MAX_PSK_LOOKUPS`].
/// * Otherwise the session id (1..=32 bytes) is looked up with `get`.
/// * A malformed extension: nothing is looked up (full handshake).
pub fn plan(
    session_id: &[u8],
    psk_ext: Option<&[u8]>,
    versions_ext: Option<&[u8]>,
    server_allows_tls13: bool,
    single_use_tls13: bool,
) -> Plan {
    let tls13 = match versions_ext {
        Some(ext) if server_allows_tls13 => match offers_tls13(ext) {
            Ok(yes) => yes,
            Err(_) => return malformed(),
        },
        _ => false,
    };
    if !tls13 {
        return Plan {
            protocol: Protocol::Tls12,
            lookups: SessionId::new(session_id)
                .map(|id| vec![(id, Lookup::Get)])
                .unwrap_or_default(),
            malformed: false,
        };
    }
    let Some(ext) = psk_ext else {
        return Plan::nothing(Protocol::Tls13);
    };
    let Ok(identities) = psk_identities(ext) else {
        return malformed();
    };
    let how = if single_use_tls13 {
        Lookup::Take
    } else {
        Lookup::Get
    };
    Plan {
        protocol: Protocol::Tls13,
        lookups: identities
            .into_iter()
            .filter(|i| i.len() == STATEFUL_TICKET_LEN)
            .filter_map(|i| SessionId::new(i).ok())
            .take(MAX_PSK_LOOKUPS)
            .map(|id| (id, how))
            .collect(),
        malformed: false,
    }
}

fn malformed() -> Plan {
    Plan {
        protocol: Protocol::Tls13,
        lookups: Vec::new(),
        malformed: true,
    }
}

/// Where a connection's lookup stands.
#[derive(Default)]
pub(crate) enum SlotState {
    /// The callback has not run yet.
    #[default]
    Fresh,
    /// The callback asked for these lookups and paused the handshake.
    Pending(Plan),
    /// `accept` looked them up; the callback will park the answers.
    Ready(Vec<(SessionId, Option<StoredSession>)>),
    /// The answers are parked (or nothing needed looking up).
    Done,
}

/// Shared by `accept` and the callback (through the `SSL`'s ex data).
pub(crate) struct Slot {
    pub(crate) state: Mutex<SlotState>,
    pub(crate) counters: Arc<AsyncCounters>,
    pub(crate) single_use_tls13: bool,
}

impl Slot {
    pub(crate) fn new(counters: Arc<AsyncCounters>, single_use_tls13: bool) -> Arc<Slot> {
        Arc::new(Slot {
            state: Mutex::new(SlotState::Fresh),
            counters,
            single_use_tls13,
        })
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

static SLOT_INDEX: Lazy<Result<Index<Ssl, Arc<Slot>>, ErrorStack>> = Lazy::new(Ssl::new_ex_index);

/// The `SSL` ex-data index of the [`Slot`].
pub(crate) fn slot_index() -> Result<Index<Ssl, Arc<Slot>>, ErrorStack> {
    SLOT_INDEX.clone()
}

/// `int client_hello_cb(SSL *s, int *al, void *arg)`.
///
/// Ownership: `ssl` is borrowed for the call (OpenSSL owns it); `al` and
/// `arg` are not used (`arg` is null). The slot is found through the
/// `SSL`'s ex data, which holds one `Arc` reference to it, dropped by
/// rust-openssl's free function when the `SSL` is freed.
pub(crate) unsafe extern "C" fn client_hello(
    ssl: *mut SSL,
    _alert: *mut c_int,
    _arg: *mut c_void,
) -> c_int {
    match catch_unwind(AssertUnwindSafe(|| unsafe { on_client_hello(ssl) })) {
        Ok(r) => r,
        Err(payload) => {
            // The payload moves in, so it is dropped inside the guard too.
            tls_session_cache_openssl::unwind::quietly(move || {
                let message = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("(non-string panic payload)");
                log::error!("panic in the client-hello callback, no resumption: {message}");
                if !ssl.is_null() {
                    // SAFETY: live for the callback (OpenSSL's pointer).
                    let ssl_ref = unsafe { SslRef::from_ptr_mut(ssl) };
                    if let Some(slot) = slot_index().ok().and_then(|i| ssl_ref.ex_data(i)) {
                        bump(&slot.counters.panics);
                        *slot.lock() = SlotState::Done;
                    }
                    // Served from (no) parked entries: the store is not asked.
                    let _ = parked::park_nothing(ssl_ref);
                }
            });
            SSL_CLIENT_HELLO_SUCCESS
        }
    }
}

/// # Safety
/// `ssl` is the live connection OpenSSL passed to the callback.
unsafe fn on_client_hello(ssl: *mut SSL) -> c_int {
    if ssl.is_null() {
        return SSL_CLIENT_HELLO_SUCCESS;
    }
    // SAFETY: live for the callback, used by this thread only; a borrowed
    // view that frees nothing.
    let ssl_ref = unsafe { SslRef::from_ptr_mut(ssl) };
    let Ok(index) = slot_index() else {
        return SSL_CLIENT_HELLO_SUCCESS;
    };
    // Clone the Arc so that `ssl_ref` can be borrowed mutably to park.
    let Some(slot) = ssl_ref.ex_data(index).cloned() else {
        return SSL_CLIENT_HELLO_SUCCESS;
    };
    let mut state = slot.lock();
    match std::mem::take(&mut *state) {
        SlotState::Fresh => {
            // SAFETY: `ssl` is live; the views below borrow OpenSSL's copy
            // of the ClientHello, valid during this callback.
            let plan = unsafe { read_plan(ssl, slot.single_use_tls13) };
            if plan.malformed {
                bump(&slot.counters.malformed);
            }
            if plan.lookups.is_empty() {
                *state = SlotState::Done;
                let _ = parked::park_nothing(ssl_ref);
                SSL_CLIENT_HELLO_SUCCESS
            } else {
                bump(&slot.counters.retries);
                *state = SlotState::Pending(plan);
                SSL_CLIENT_HELLO_RETRY
            }
        }
        // `accept` has not looked up yet: keep waiting.
        pending @ SlotState::Pending(_) => {
            *state = pending;
            SSL_CLIENT_HELLO_RETRY
        }
        SlotState::Ready(answers) => {
            *state = SlotState::Done;
            let _ = parked::park_nothing(ssl_ref);
            for (id, session) in answers {
                if let Err(e) = parked::park(ssl_ref, id, session) {
                    log::warn!("cannot park a session on the connection: {e}");
                }
            }
            SSL_CLIENT_HELLO_SUCCESS
        }
        // A second ClientHello after a HelloRetryRequest: the answers are
        // still parked for this handshake. Any other ClientHello on a
        // connection whose lookup is done opens a new handshake (a TLS 1.2
        // renegotiation): parked answers were good for the first handshake
        // only and are gone, and nothing drives an async lookup here, so
        // it is served as "nothing parked" — a full handshake, never a
        // blocking store call on the executor thread.
        SlotState::Done => {
            *state = SlotState::Done;
            if !parked::is_parked(ssl_ref) {
                let _ = parked::park_nothing(ssl_ref);
            }
            SSL_CLIENT_HELLO_SUCCESS
        }
    }
}

/// Reads the ClientHello and plans the lookups.
///
/// # Safety
/// `ssl` is live and inside its client-hello callback.
pub(crate) unsafe fn read_plan(ssl: *mut SSL, single_use_tls13: bool) -> Plan {
    let session_id = unsafe {
        let mut p = std::ptr::null();
        let n = openssl_sys::SSL_client_hello_get0_session_id(ssl, &mut p);
        borrowed(p, n)
    };
    let ext = |kind: c_uint| unsafe {
        let mut p = std::ptr::null();
        let mut n = 0;
        if openssl_sys::SSL_client_hello_get0_ext(ssl, kind, &mut p, &mut n) == 1 {
            Some(borrowed(p, n))
        } else {
            None
        }
    };
    let allows_tls13 = unsafe {
        SSL_get_options(ssl) & SSL_OP_NO_TLSv1_3 == 0 && {
            let max = openssl_sys::SSL_get_max_proto_version(ssl);
            max == 0 || max >= TLS1_3_VERSION
        }
    };
    plan(
        session_id,
        ext(EXT_PRE_SHARED_KEY),
        ext(EXT_SUPPORTED_VERSIONS),
        allows_tls13,
        single_use_tls13,
    )
}

/// A borrowed view of `n` bytes at `p` (empty for null).
///
/// # Safety
/// `p` is null or points to `n` readable bytes that outlive `'a`.
unsafe fn borrowed<'a>(p: *const u8, n: usize) -> &'a [u8] {
    if p.is_null() || n == 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn psk(ids: &[&[u8]]) -> Vec<u8> {
        let mut idl = Vec::new();
        for id in ids {
            idl.extend((id.len() as u16).to_be_bytes());
            idl.extend(*id);
            idl.extend([0, 0, 0, 0]);
        }
        let mut out = (idl.len() as u16).to_be_bytes().to_vec();
        out.extend(idl);
        let bl: Vec<u8> = ids
            .iter()
            .flat_map(|_| [[32u8].as_slice(), &[0; 32]].concat())
            .collect();
        out.extend((bl.len() as u16).to_be_bytes());
        out.extend(bl);
        out
    }

    const V13: &[u8] = &[4, 3, 4, 3, 3];
    const V12: &[u8] = &[2, 3, 3];

    #[test]
    fn tls13_client_looks_up_32_byte_identities_with_take() {
        let ticket = [7u8; 32];
        let ext = psk(&[&[1; 100], &ticket]);
        let p = plan(&[9; 32], Some(&ext), Some(V13), true, true);
        assert_eq!(
            p.lookups,
            vec![(SessionId::new(&ticket).unwrap(), Lookup::Take)]
        );
        assert!(!p.malformed);
        let p = plan(&[9; 32], Some(&ext), Some(V13), true, false);
        assert_eq!(p.lookups[0].1, Lookup::Get);
    }

    #[test]
    fn tls13_client_without_psk_looks_nothing_up() {
        // Its legacy session id is random: a lookup would be a wasted miss.
        assert_eq!(
            plan(&[9; 32], None, Some(V13), true, true),
            Plan::nothing(Protocol::Tls13)
        );
    }

    #[test]
    fn session_id_is_looked_up_when_tls12_will_be_negotiated() {
        let id = SessionId::new(&[3; 32]).unwrap();
        let want = vec![(id, Lookup::Get)];
        assert_eq!(plan(&[3; 32], None, None, true, true).lookups, want);
        assert_eq!(plan(&[3; 32], None, Some(V12), true, true).lookups, want);
        // The server does not allow TLS 1.3.
        let ext = psk(&[&[7; 32]]);
        assert_eq!(
            plan(&[3; 32], Some(&ext), Some(V13), false, true).lookups,
            want
        );
        assert!(plan(&[], None, None, true, true).lookups.is_empty());
    }

    #[test]
    fn malformed_extensions_plan_nothing() {
        let mut ext = psk(&[&[7; 32]]);
        ext.truncate(ext.len() - 1);
        let p = plan(&[3; 32], Some(&ext), Some(V13), true, true);
        assert!(p.malformed && p.lookups.is_empty(), "{p:?}");
        let p = plan(&[3; 32], None, Some(&[3, 3, 4, 3]), true, true);
        assert!(p.malformed && p.lookups.is_empty(), "{p:?}");
    }

    #[test]
    fn psk_lookups_are_bounded() {
        let ids: Vec<[u8; 32]> = (0..10u8).map(|i| [i; 32]).collect();
        let refs: Vec<&[u8]> = ids.iter().map(|i| &i[..]).collect();
        let ext = psk(&refs);
        let p = plan(&[], Some(&ext), Some(V13), true, true);
        assert_eq!(p.lookups.len(), MAX_PSK_LOOKUPS);
        assert_eq!(p.lookups[0].0.as_bytes(), &[0; 32]);
    }
}
