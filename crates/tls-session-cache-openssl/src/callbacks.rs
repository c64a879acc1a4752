//! The `extern "C"` callbacks OpenSSL calls. This is where a session enters
//! the store ([`new_session`]), is found ([`get_session`]) and leaves it
//! ([`remove_session`]); [`info`] counts resumed and full handshakes and
//! parks the cache on each connection.
//!
//! Each callback is a thin trampoline: it catches any panic (a panicking
//! store is a miss, counted and logged — never an unwind into C), turns the
//! raw pointers into borrowed rust-openssl references on its first lines,
//! and leaves the rest to safe code.

use std::any::Any;
use std::ffi::{c_int, c_uchar};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::ssl::{SslRef, SslSession, SslSessionRef};
use openssl_sys::{SSL, SSL_CTX, SSL_SESSION, TLS1_3_VERSION};
use tls_session_cache::{Protocol, SessionId, SessionKey, StoreError, StoredSession, UnixTime};

use zeroize::Zeroize;

use crate::close::{self, Removal};
use crate::compact;
use crate::exdata::{self, conn_inner, ctx_state};
use crate::ffi::{
    self, InfoCallback, SSL_CB_HANDSHAKE_DONE, SSL_CB_HANDSHAKE_START, session_context,
};
use crate::parked::{self, ParkedLookup, parked_lookup};
use crate::ratelimit::warn_limited;
use crate::restore::{self, Unfit};
use crate::state::Inner;
use crate::stats::bump;
use crate::unwind;

// ---------------------------------------------------------------------------
// new_session_cb: a session was negotiated (TLS ≤ 1.2 during the handshake,
// TLS 1.3 once per ticket after it).

/// `int new_session_cb(SSL *ssl, SSL_SESSION *sess)`.
///
/// Ownership: OpenSSL took one reference on `sess` for this call. We only
/// borrow the session to serialise it and always return 0, which tells
/// OpenSSL to drop that reference itself — the store keeps bytes, never
/// the `SSL_SESSION`.
pub(crate) unsafe extern "C" fn new_session(ssl: *mut SSL, sess: *mut SSL_SESSION) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(|| unsafe { on_new_session(ssl, sess) }));
    if let Err(payload) = outcome {
        unsafe { after_panic(ssl, "new-session", payload, false) };
    }
    0
}

/// # Safety
/// `ssl` and `sess` are the live pointers OpenSSL passed to the callback.
unsafe fn on_new_session(ssl: *mut SSL, sess: *mut SSL_SESSION) {
    // SAFETY: live for the whole callback (OpenSSL holds references).
    let Some(inner) = (unsafe { conn_inner(ssl) }) else {
        return;
    };
    let session = unsafe { SslSessionRef::from_ptr(sess) };
    let protocol =
        if unsafe { openssl_sys::SSL_SESSION_get_protocol_version(sess) } == TLS1_3_VERSION {
            Protocol::Tls13
        } else {
            Protocol::Tls12
        };
    let no_ticket = unsafe { ffi::SSL_get_options(ssl) } & openssl_sys::SSL_OP_NO_TICKET;
    let resumed = unsafe { openssl_sys::SSL_session_reused(ssl) } == 1;
    let context = unsafe { session_context(sess) };
    let issued = inner.clock.now();
    // Requirement 6: a session issued by a resumption inherits the time its
    // peer was authenticated, so a chain of TLS 1.3 resumptions cannot
    // outlive max_lifetime from the original full handshake.
    let authenticated = match unsafe { exdata::authenticated(ssl) } {
        Some(t) if resumed => t.min(issued),
        _ => issued,
    };
    store_new_session(
        inner,
        session,
        protocol,
        no_ticket != 0,
        context,
        issued,
        authenticated,
    );
}

/// Decides whether a new session can ever be looked up, and stores it.
fn store_new_session(
    inner: &Inner,
    session: &SslSessionRef,
    protocol: Protocol,
    no_ticket: bool,
    context: &[u8],
    issued: UnixTime,
    authenticated: UnixTime,
) {
    let c = &inner.counters;
    if protocol == Protocol::Tls13 && !no_ticket {
        // A stateless ticket carries the session; it is never looked up.
        bump(&c.skipped);
        return;
    }
    let Ok(id) = SessionId::new(session.id()) else {
        // No session id (e.g. a TLS 1.2 session resumed by ticket only).
        bump(&c.skipped);
        return;
    };
    if context != inner.context.as_bytes() {
        // Made under another session-id context (SSL_set_session_id_context
        // on the connection): our lookups, keyed by our context, would
        // never find it.
        bump(&c.skipped);
        return;
    }
    let key = SessionKey::new(protocol, inner.context, id);
    let mut der = match session.to_der() {
        Ok(der) => der,
        Err(e) => {
            bump(&c.errors);
            warn_limited!(
                inner.logs.serialise_failed,
                "session {key}: cannot serialise: {e}"
            );
            return;
        }
    };
    let expires = inner.policy.expiry(issued, authenticated);
    // Stored without what the key and the store's times say (`compact`);
    // plain DER when that cannot be reproduced exactly.
    if let Some(compact) = compact::compact(
        &der,
        protocol,
        key.id.as_bytes(),
        key.context.as_bytes(),
        authenticated,
        expires,
    ) {
        der.zeroize();
        der = compact;
    }
    if !inner.policy.admits_size(der.len()) {
        bump(&c.oversize);
        log::info!(
            "session {key}: {} bytes exceed max_session_size {}; not stored",
            der.len(),
            inner.policy.max_session_size
        );
        der.zeroize();
        return;
    }
    let stored = StoredSession {
        der: der.into(),
        created: authenticated,
        expires,
        protocol,
        single_use: inner.policy.is_single_use(protocol),
    };
    match inner.store.put(&key, &stored) {
        Ok(()) => {
            bump(&c.stored);
            if inner.decoded.is_on() {
                // A duplicate, never `session` itself: this object is the
                // connection's own (`s->session`), which the connection may
                // still write; the map hands out only objects no connection
                // holds (see `decoded`). OpenSSL drops the callback's
                // reference when we return 0.
                if let Some(copy) = ffi::dup_session(session) {
                    inner.decoded.insert(key, copy, &stored);
                }
            }
        }
        Err(StoreError::Oversize { size, limit }) => {
            bump(&c.oversize);
            log::info!("session {key}: store refused {size} bytes (limit {limit})");
        }
        Err(e) => {
            bump(&c.errors);
            warn_limited!(inner.logs.put_failed, "session {key}: not stored: {e}");
        }
    }
}

/// Most store lookups one handshake makes: OpenSSL calls the get callback
/// once per PSK identity offered, and again for the second ClientHello
/// after a HelloRetryRequest. A client has no reason to offer more than a
/// few tickets; a hostile one offering hundreds would otherwise cost that
/// many store round trips.
pub const MAX_LOOKUPS_PER_HANDSHAKE: usize = 8;

// ---------------------------------------------------------------------------
// get_session_cb: a client offered a session id (TLS ≤ 1.2) or a stateful
// ticket (TLS 1.3) that the internal cache does not hold (it holds nothing:
// NO_INTERNAL).

/// `SSL_SESSION *get_session_cb(SSL *ssl, const unsigned char *id, int len, int *copy)`.
///
/// Ownership: a session we return is a fresh object whose one reference is
/// ours to give: just decoded by `d2i_SSL_SESSION`, or a duplicate of the
/// decoded map's object (`SSL_SESSION_dup`, TLS 1.2), or the map's own
/// object when the entry was removed (a taken TLS 1.3 ticket, which no one
/// else holds). Never an object another connection holds: OpenSSL makes
/// the returned session the connection's `s->session` and writes to it
/// (TLS 1.3 `tls13_setup_key_block` sets its cipher). We set `*copy = 0`
/// so that OpenSSL does not take another reference, and hand ours over
/// (forgotten on our side): OpenSSL drops it when it is done with the
/// session. Every other path returns null and drops what it decoded.
pub(crate) unsafe extern "C" fn get_session(
    ssl: *mut SSL,
    id: *const c_uchar,
    len: c_int,
    copy: *mut c_int,
) -> *mut SSL_SESSION {
    match catch_unwind(AssertUnwindSafe(|| unsafe {
        on_get_session(ssl, id, len, copy)
    })) {
        Ok(session) => session,
        Err(payload) => {
            unsafe { after_panic(ssl, "get-session", payload, true) };
            ptr::null_mut()
        }
    }
}

/// # Safety
/// The pointers OpenSSL passed to the callback; `id` holds `len` bytes.
unsafe fn on_get_session(
    ssl: *mut SSL,
    id: *const c_uchar,
    len: c_int,
    copy: *mut c_int,
) -> *mut SSL_SESSION {
    let Some(inner) = (unsafe { conn_inner(ssl) }) else {
        return ptr::null_mut();
    };
    let c = &inner.counters;
    bump(&c.lookups);
    let id = match usize::try_from(len) {
        Ok(n @ 1..=32) if !id.is_null() => {
            // SAFETY: OpenSSL passes `len` readable bytes at `id`.
            unsafe { std::slice::from_raw_parts(id, n) }
        }
        _ => {
            bump(&c.invalid_id);
            bump(&c.misses);
            return ptr::null_mut();
        }
    };
    // OpenSSL asks once per PSK identity a TLS 1.3 ClientHello offers (up
    // to ~1700 in one extension): each past the bound is a miss without a
    // store round trip.
    let asked = unsafe { exdata::count_lookup(ssl) };
    if asked > MAX_LOOKUPS_PER_HANDSHAKE {
        bump(&c.misses);
        warn_limited!(
            inner.logs.excess_lookups,
            "a handshake asked for session {asked}; only {MAX_LOOKUPS_PER_HANDSHAKE} are looked up"
        );
        return ptr::null_mut();
    }
    let tls13 = unsafe { openssl_sys::SSL_version(ssl) } == TLS1_3_VERSION;
    // SAFETY: `ssl` is live for the callback and used by this thread only;
    // a borrowed view, freed by no one.
    let ssl_ref = unsafe { SslRef::from_ptr_mut(ssl) };
    match lookup(inner, ssl_ref, id, tls13) {
        Some((session, created)) if !copy.is_null() => {
            unsafe { exdata::set_authenticated(ssl, created) };
            bump(&c.hits);
            // SAFETY: `copy` is OpenSSL's out-parameter; see the ownership
            // note on `get_session`.
            unsafe { *copy = 0 };
            // Hand our one reference to OpenSSL: forget it on our side.
            let raw = session.as_ptr();
            std::mem::forget(session);
            raw
        }
        _ => {
            bump(&c.misses);
            ptr::null_mut()
        }
    }
}

/// Finds, decodes and checks the session stored under `id` (or parked for
/// it, or remembered from this handshake); returns it with the time its
/// peer was authenticated.
fn lookup(
    inner: &Inner,
    ssl: &mut SslRef,
    id: &[u8],
    tls13: bool,
) -> Option<(SslSession, UnixTime)> {
    let c = &inner.counters;
    let protocol = if tls13 {
        Protocol::Tls13
    } else {
        Protocol::Tls12
    };
    // Keys are protocol-bound: a TLS 1.3 lookup never sees (or takes) a
    // TLS 1.2 session, and the reverse.
    let key = SessionKey::new(protocol, inner.context, SessionId::new(id).ok()?);
    // Requirement 3: TLS 1.3 tickets are single use, across every server
    // sharing the store, so the lookup itself removes the entry (a parked
    // answer was fetched with `take` too).
    let single_use = tls13 && inner.policy.single_use_tls13;
    // An async server may have fetched the session already, and a second
    // ClientHello (after a HelloRetryRequest) asks again for the ticket the
    // first one took: both are answered from the connection (see `parked`).
    let parked = parked_lookup(ssl, id);
    // Only an answer fetched here may lead to the store being changed from
    // here (a parked connection may be on an executor thread).
    let from_store = matches!(parked, ParkedLookup::NotParked);
    let found = match parked {
        ParkedLookup::Parked(stored) => {
            if single_use && stored.is_some() {
                // Taken by the async lookup that parked it.
                bump(Removal::SingleUse.counter(c));
            }
            Ok(stored)
        }
        ParkedLookup::Remembered(stored) => Ok(Some(stored)),
        ParkedLookup::NotParked if single_use => {
            let taken = inner.store.take(&key);
            if let Ok(Some(stored)) = &taken {
                bump(Removal::SingleUse.counter(c));
                // A HelloRetryRequest makes OpenSSL ask again in this
                // handshake; the store no longer has it.
                parked::remember(ssl, key.id, stored.clone());
            }
            taken
        }
        ParkedLookup::NotParked => inner.store.get(&key),
    };
    let stored = match found {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            // The store is the source of truth: gone there, gone here.
            inner.decoded.remove(&key);
            return None;
        }
        Err(e) => {
            bump(&c.errors);
            warn_limited!(
                inner.logs.lookup_failed,
                "session {key}: lookup failed, full handshake: {e}"
            );
            return None;
        }
    };
    if stored.protocol != protocol {
        // Only a store that does not bind keys to protocols (or a parked
        // answer planned for another version) can say this: never resume
        // across protocols. Not removed: it is not the entry's fault.
        bump(&c.mismatched);
        warn_limited!(
            inner.logs.bad_entry,
            "session {key}: stored for {}, offered in {}; not resumed",
            stored.protocol.as_str(),
            protocol.as_str()
        );
        return None;
    }
    // The store answered with bytes this process stored: hand out the
    // session they were serialised from, kept decoded (its id and context
    // were checked when it was stored), and skip d2i.
    if let Some(session) = inner.decoded.hit(&key, &stored, single_use) {
        bump(&c.decoded_hits);
        let created = stored.created;
        // The store's copy of the bytes: zeroed if this is the last holder.
        stored.scrub();
        return Some((session, created));
    }
    // A bad entry is counted, logged and removed (unless the answer was
    // parked: then the store is not called from here).
    let reject = |counter: &std::sync::atomic::AtomicU64, why: std::fmt::Arguments<'_>| {
        bump(counter);
        warn_limited!(inner.logs.bad_entry, "session {key}: {why}; removed");
        if from_store {
            let _ = close::remove_key(inner, &key, Removal::BadEntry);
        }
    };
    match restore::session_from_stored(&key, &stored, inner.context.as_bytes()) {
        Ok(session) => {
            let created = stored.created;
            // The store's copy of the bytes: zeroed if this is the last holder.
            stored.scrub();
            Some((session, created))
        }
        Err(Unfit::Corrupt(e)) => {
            reject(&c.corrupt, format_args!("stored bytes do not decode ({e})"));
            None
        }
        Err(Unfit::Mismatched) => {
            reject(
                &c.mismatched,
                format_args!("stored session has another id or context"),
            );
            None
        }
    }
}

// ---------------------------------------------------------------------------
// remove_session_cb: OpenSSL dropped a session (a fatal alert, the peer's
// end of file, SSL_free of a connection that did not send close_notify,
// timed out at lookup, or SSL_CTX_remove_session). Which of these reach
// the store is decided in `close`.

/// `void remove_session_cb(SSL_CTX *ctx, SSL_SESSION *sess)`.
///
/// Ownership: both pointers are borrowed for the call; OpenSSL keeps its
/// references.
pub(crate) unsafe extern "C" fn remove_session(ctx: *mut SSL_CTX, sess: *mut SSL_SESSION) {
    let outcome = catch_unwind(AssertUnwindSafe(|| unsafe { on_remove_session(ctx, sess) }));
    if let Err(payload) = outcome {
        // The payload moves in, so it is dropped inside the guard too.
        unwind::quietly(move || {
            // SAFETY: `ctx` is the live session context OpenSSL passed.
            let inner = unsafe { ctx_state(ctx) }.map(|s| &*s.inner);
            report_panic(inner, "remove-session", &*payload, false);
        });
    }
}

/// # Safety
/// The live pointers OpenSSL passed to the callback.
unsafe fn on_remove_session(ctx: *mut SSL_CTX, sess: *mut SSL_SESSION) {
    let Some(state) = (unsafe { ctx_state(ctx) }) else {
        return;
    };
    let inner = &state.inner;
    let Some(key) = (unsafe { close::key_of(inner, sess) }) else {
        return;
    };
    let why = unsafe { close::classify(inner, sess) };
    if !close::removes(inner, why) {
        // An unclean close: the session stays (see `close`).
        bump(&inner.counters.kept_unclean_close);
        return;
    }
    let _ = close::remove_key(inner, &key, why);
}

// ---------------------------------------------------------------------------
// The info callback: parks the cache on the connection when its handshake
// starts, counts resumed / full when it is done, then calls the callback
// OpenSSL would have called without us.

/// `void info_callback(const SSL *ssl, int where, int ret)`.
///
/// OpenSSL calls it on every state change (~20 per handshake); all but two
/// kinds of event go straight to the chained callback.
pub(crate) unsafe extern "C" fn info(ssl: *const SSL, where_: c_int, ret: c_int) {
    let ssl_mut = ssl.cast_mut();
    if where_ & (SSL_CB_HANDSHAKE_START | SSL_CB_HANDSHAKE_DONE) != 0 {
        let outcome = catch_unwind(AssertUnwindSafe(|| unsafe { on_info(ssl_mut, where_) }));
        if let Err(payload) = outcome {
            unsafe { after_panic(ssl_mut, "info", payload, false) };
        }
    }
    // SAFETY: a function pointer OpenSSL would have called with the same
    // arguments.
    if let Some(next) = unsafe { next_info(ssl_mut) } {
        unsafe { next(ssl, where_, ret) };
    }
}

/// # Safety
/// `ssl` is the live connection OpenSSL passed.
unsafe fn on_info(ssl: *mut SSL, where_: c_int) {
    if where_ & SSL_CB_HANDSHAKE_START != 0 {
        // Here SSL_get_SSL_CTX is still the session context: park the cache
        // on the connection before an SNI callback can switch contexts.
        if unsafe { exdata::start_handshake(ssl) } {
            // OpenSSL reads the info callback from the connection's current
            // context when the handshake is done; after an SNI switch that
            // is the new context's. A connection-level callback (ours, which
            // still chains to the current context's) keeps us informed.
            // SAFETY: plain setters on a live SSL.
            unsafe {
                if ffi::SSL_get_info_callback(ssl).is_none() {
                    ffi::SSL_set_info_callback(ssl, Some(info));
                }
            }
        }
    }
    if where_ & SSL_CB_HANDSHAKE_DONE != 0
        && let Some(inner) = unsafe { conn_inner(ssl) }
        // Once per handshake, even if OpenSSL reports "done" twice.
        && unsafe { exdata::count_once(ssl) }
    {
        // (OpenSSL ≥ 3.2 only) the connection and its session join the live
        // set, which tells SSL_free's removals from the application's.
        unsafe { close::on_handshake_done(ssl, inner) };
        // What was parked or remembered answered this handshake's lookups
        // only (a renegotiation asks the store afresh).
        // SAFETY: live for the callback, used by this thread only.
        parked::end_handshake(unsafe { SslRef::from_ptr_mut(ssl) });
        let c = &inner.counters;
        if unsafe { openssl_sys::SSL_session_reused(ssl) } == 1 {
            bump(&c.resumed);
        } else {
            bump(&c.full);
        }
    }
}

/// Whether some context had an info callback of its own when the cache was
/// installed on it. Until one does, a context whose callback is ours chains
/// to nothing, and [`next_info`] need not read the context's ex data.
static ANY_PREVIOUS_INFO: AtomicBool = AtomicBool::new(false);

/// Called by `install` when it chains an existing info callback.
pub(crate) fn note_previous_info() {
    ANY_PREVIOUS_INFO.store(true, Ordering::Release);
}

/// The info callback OpenSSL would call if ours were not there: the current
/// context's, or — when that is ours — the one that context had before
/// `install`.
///
/// # Safety
/// `ssl` is a live connection.
unsafe fn next_info(ssl: *mut SSL) -> Option<InfoCallback> {
    let ctx = unsafe { openssl_sys::SSL_get_SSL_CTX(ssl) };
    if ctx.is_null() {
        return None;
    }
    let current = unsafe { ffi::SSL_CTX_get_info_callback(ctx) }?;
    if ptr::fn_addr_eq(current, info as InfoCallback) {
        if !ANY_PREVIOUS_INFO.load(Ordering::Acquire) {
            return None;
        }
        unsafe { ctx_state(ctx) }.and_then(|state| state.previous_info)
    } else {
        Some(current)
    }
}

// ---------------------------------------------------------------------------
// Helpers.

/// Counts and logs a panic caught in a callback, without unwinding further.
///
/// # Safety
/// `ssl` is the live connection OpenSSL passed.
unsafe fn after_panic(ssl: *mut SSL, callback: &str, payload: Box<dyn Any + Send>, miss: bool) {
    // The payload moves in, so it is dropped inside the guard too.
    unwind::quietly(move || {
        let inner = unsafe { conn_inner(ssl) };
        report_panic(inner, callback, &*payload, miss);
    });
}

fn report_panic(inner: Option<&Inner>, callback: &str, payload: &(dyn Any + Send), miss: bool) {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)");
    log::error!("panic in the {callback} callback, treated as a cache miss: {message}");
    if let Some(inner) = inner {
        bump(&inner.counters.panics);
        if miss {
            bump(&inner.counters.misses);
        }
    }
}
