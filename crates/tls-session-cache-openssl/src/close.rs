//! Why a session leaves the store — and why an unclean close is not a
//! reason.
//!
//! # The policy
//!
//! A session survives however its connection ends: the client dropping TCP
//! right after the handshake (browser preconnects, health checks, load
//! balancers, `openssl s_time -reuse`), or the server dropping the stream
//! without `shutdown()` (tokio-openssl, hyper, actix-web and most hand
//! written loops). RFC 2246 asked servers to forget such sessions; TLS 1.1
//! and later dropped the rule (RFC 4346, RFC 5246 §7.2.1: "failure to
//! properly close a connection no longer requires that a session not be
//! resumed"). nginx (`SSL_set_quiet_shutdown` / `SSL_set_shutdown` on its
//! error paths), Apache mod_ssl (an abortive `ssl_filter_io_shutdown` sets
//! `SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN`) and HAProxy keep them.
//! OpenSSL does not: left alone it removes them, which would reach the
//! store and — with Redis — cost the session on every server of the fleet.
//!
//! What still removes a session ([`Removal`]): a fatal alert sent or
//! received on its connection, an explicit removal by the application,
//! OpenSSL finding it expired, a single-use TLS 1.3 ticket being taken,
//! and a stored entry that is bad. `remove_on_unclean_close(true)` on the
//! builder restores RFC 2246's rule.
//!
//! # Where OpenSSL removes the session of an uncleanly closed connection
//!
//! (OpenSSL 3.0, `ssl/ssl_lib.c`, `ssl/ssl_sess.c`, `ssl/s3_msg.c`,
//! `ssl/record/rec_layer_s3.c`, `ssl/statem/statem.c`.)
//!
//! 1. **`SSL_free`**, in this order: `CRYPTO_free_ex_data(CRYPTO_EX_INDEX_SSL,
//!    s, …)` — every ex-data free function of the connection, ours among
//!    them — then, further down, `ssl_clear_bad_session(s)`, which calls
//!    `SSL_CTX_remove_session(s->session_ctx, s->session)` (and so our
//!    remove callback) when `s->session != NULL`, `!(s->shutdown &
//!    SSL_SENT_SHUTDOWN)` and `!(SSL_in_init(s) || SSL_in_before(s))`.
//!    Our free function of the connection's cache slot
//!    (`exdata`) therefore runs *before* that test, on the
//!    same thread, with the connection intact except for its verify
//!    parameters and DANE state. It evaluates the same condition
//!    ([`on_ssl_free`]) and, when OpenSSL is about to remove a session of
//!    ours, sets `SSL_SENT_SHUTDOWN` — exactly what nginx and Apache do
//!    before their `SSL_free` — so OpenSSL's own test keeps the session.
//!    Nothing else reads `s->shutdown` after that point in `SSL_free`. No
//!    remove callback is made; nothing needs undoing.
//!
//! 2. **Reading end of file** (OpenSSL ≥ 3.0 without
//!    `SSL_OP_IGNORE_UNEXPECTED_EOF`): `ssl3_read_n` sees `BIO_eof` and
//!    calls `SSLfatal(s, SSL_AD_DECODE_ERROR,
//!    SSL_R_UNEXPECTED_EOF_WHILE_READING)`. `SSLfatal` pushes that error on
//!    the thread's error queue (`ERR_new` + `ERR_vset_error`), then
//!    `ossl_statem_send_fatal` → `ssl3_send_alert(s, SSL3_AL_FATAL, …)` →
//!    `SSL_CTX_remove_session` → our remove callback, synchronously, with
//!    nothing pushed in between. So when the remove callback runs and the
//!    last error on the queue is `SSL_R_UNEXPECTED_EOF_WHILE_READING`, the
//!    removal is this one: the peer closed TCP, no alert was received and
//!    the "alert" OpenSSL writes goes to a closed socket. OpenSSL calls that
//!    reason code "part of the API […] used by applications for control
//!    flow decisions". We keep the session (and then `SSL_free` does not
//!    remove it again: `SSLfatal` left the connection in init).
//!
//! Every other removal pushes its own reason first (a fatal alert we send:
//! its `SSLfatal` reason; one we receive: `SSL_AD_REASON_OFFSET +
//! description`) or is not made inside an SSL call at all (the
//! application's `SSL_CTX_remove_session`, or OpenSSL timing a session out
//! at lookup, which we recognise by the session's own times). See
//! [`classify`].
//!
//! **OpenSSL ≥ 3.2** reordered `SSL_free` (3.6, 4.0: `SSL_free` calls
//! `s->method->ssl_free` = `ossl_ssl_connection_free`, and with it
//! `ssl_clear_bad_session`, *before* `CRYPTO_free_ex_data`), so step 1
//! cannot act in time: the removal reaches the remove callback. Which order
//! the linked library uses is not taken from its version number but
//! observed once ([`EX_DATA_FREED_FIRST`]): a throwaway connection with a
//! memory BIO is freed, and our probe's ex-data free function looks at
//! whether `SSL_get_rbio` still answers (ex data first) or already returns
//! null (the connection was taken apart first). On such a library the
//! remove callback tells `SSL_free`'s removal from an application's by
//! asking whether the session belongs to a connection that is still alive
//! ([`Live`](crate::live::Live)): each connection gets a serial when its
//! handshake is done, the serial is written into its session's ex data
//! (an integer, which OpenSSL's copies of the session carry harmlessly),
//! and it leaves the live set when the connection's ex data is freed —
//! there, after the removal decision. A removal with no fresh error, of an
//! unexpired session of a live connection, is the unclean close; any other
//! is the application's. The one case left ambiguous: an application that
//! removes, with `SSL_CTX_remove_session`, the session of a connection that
//! is still open and has not sent `close_notify` — that session is kept;
//! [`SessionCache::remove_session`](crate::SessionCache::remove_session)
//! removes it on every version.
//!
//! A stale `SSL_R_UNEXPECTED_EOF_WHILE_READING` left on a thread's error
//! queue by an application that ignored an error without clearing the
//! queue would make a later application removal on that thread look like
//! step 2 (rust-openssl drains the queue into every error it returns).

use std::cell::Cell;
use std::ffi::{c_int, c_long, c_void};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use foreign_types::{ForeignType, ForeignTypeRef};
use once_cell::sync::Lazy;
use openssl::ssl::SslSessionRef;
use openssl_sys::{SSL, SSL_SENT_SHUTDOWN, SSL_SESSION, TLS1_3_VERSION};
use tls_session_cache::{Protocol, SessionId, SessionKey, StoreError};

use crate::ffi;
use crate::live;
use crate::ratelimit::warn_limited;
use crate::state::{Inner, UncleanClose};
use crate::stats::{Counters, bump};

/// Why the binding removed (or took) a session from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    /// A fatal alert was sent or received on the session's connection.
    FatalAlert,
    /// The application asked (`SSL_CTX_remove_session`,
    /// `SessionCache::remove_session`).
    Application,
    /// The connection ended without the server's `close_notify`; removed
    /// only with `remove_on_unclean_close(true)`.
    UncleanClose,
    /// OpenSSL found the session expired at lookup.
    Expired,
    /// A single-use TLS 1.3 ticket was taken by a lookup.
    SingleUse,
    /// The stored entry did not decode or was not the session asked for.
    BadEntry,
}

impl Removal {
    /// The counter of removals for this cause.
    pub(crate) fn counter(self, c: &Counters) -> &AtomicU64 {
        match self {
            Removal::FatalAlert => &c.removed_fatal_alert,
            Removal::Application => &c.removed_application,
            Removal::UncleanClose => &c.removed_unclean_close,
            Removal::Expired => &c.removed_expired,
            Removal::SingleUse => &c.removed_single_use,
            Removal::BadEntry => &c.removed_bad_entry,
        }
    }
}

/// `SSL_free` frees the connection's ex data before it decides whether to
/// remove the session (OpenSSL 1.1.1 – 3.1; see the module note) —
/// observed on the linked library by [`probe_free_order`], or, if the probe
/// cannot run, taken from the version number.
pub(crate) static EX_DATA_FREED_FIRST: Lazy<bool> = Lazy::new(|| {
    probe_free_order().unwrap_or_else(|| {
        // SAFETY: a plain query of the linked library's version.
        let version = unsafe { openssl_sys::OpenSSL_version_num() };
        version < 0x3020_0000
    })
});

/// What the probe's free function saw: 0 nothing, 1 the connection's BIO
/// still there (ex data freed first), 2 already gone.
static PROBE_SAW: AtomicU8 = AtomicU8::new(0);

/// `CRYPTO_EX_free` of the probe's slot (null on every connection but
/// the probe's own, which holds a non-null marker).
unsafe extern "C" fn probe_free(
    parent: *mut c_void,
    ptr: *mut c_void,
    _ad: *mut openssl_sys::CRYPTO_EX_DATA,
    _idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) {
    if ptr.is_null() || parent.is_null() {
        return;
    }
    // SAFETY: `parent` is the SSL being freed; its struct is not released
    // before the ex data is (both orders), and `SSL_get_rbio` reads one
    // field, which the connection's teardown sets to null.
    let rbio = unsafe { openssl_sys::SSL_get_rbio(parent.cast::<SSL>()) };
    PROBE_SAW.store(if rbio.is_null() { 2 } else { 1 }, Ordering::SeqCst);
}

/// Frees a throwaway connection with a memory BIO and reports whether its
/// ex data was freed before the connection was taken apart.
fn probe_free_order() -> Option<bool> {
    let ctx = openssl::ssl::SslContext::builder(openssl::ssl::SslMethod::tls())
        .ok()?
        .build();
    let ssl = openssl::ssl::Ssl::new(&ctx).ok()?;
    // SAFETY: registers an index whose free function only reads; sets a
    // memory BIO (owned by the SSL from here on) and a non-null marker
    // (an integer, never dereferenced); `ssl` is freed by its drop.
    unsafe {
        let idx = openssl_sys::SSL_get_ex_new_index(
            0,
            std::ptr::null_mut(),
            None,
            None,
            Some(probe_free),
        );
        if idx < 0 {
            return None;
        }
        let bio = openssl_sys::BIO_new(openssl_sys::BIO_s_mem());
        if bio.is_null() {
            return None;
        }
        openssl_sys::SSL_set_bio(ssl.as_ptr(), bio, bio);
        if openssl_sys::SSL_set_ex_data(ssl.as_ptr(), idx, std::ptr::without_provenance_mut(1)) != 1
        {
            return None;
        }
    }
    drop(ssl);
    match PROBE_SAW.load(Ordering::SeqCst) {
        1 => Some(true),
        2 => Some(false),
        _ => None,
    }
}

/// The `SSL_SESSION` ex-data index holding the serial of the connection
/// whose session it is (an integer; no free or dup function needed).
static SESSION_SERIAL: Lazy<c_int> = Lazy::new(|| {
    // SAFETY: registers an index with no callbacks.
    unsafe {
        openssl_sys::CRYPTO_get_ex_new_index(
            ffi::CRYPTO_EX_INDEX_SSL_SESSION,
            0,
            std::ptr::null_mut(),
            None,
            None,
            None,
        )
    }
});

/// At the end of a handshake: where `SSL_free` decides about the session
/// before freeing the ex data, gives the connection a serial in the live
/// set (once) and writes it into its current session.
///
/// # Safety
/// `ssl` is a live connection whose cache is `inner`.
pub(crate) unsafe fn on_handshake_done(ssl: *mut SSL, inner: &Inner) {
    if *EX_DATA_FREED_FIRST || *SESSION_SERIAL < 0 {
        return;
    }
    let mut serial = unsafe { live::conn_serial(ssl) };
    if serial == 0 {
        serial = inner.live.enter();
        unsafe { live::set_conn_serial(ssl, serial) };
    }
    // SAFETY: the live connection's current session (or null).
    unsafe {
        let session = openssl_sys::SSL_get_session(ssl);
        if !session.is_null() {
            ffi::SSL_SESSION_set_ex_data(
                session,
                *SESSION_SERIAL,
                std::ptr::without_provenance_mut(serial as usize),
            );
        }
    }
}

/// `ERR_LIB_SSL`.
const ERR_LIB_SSL: c_int = 20;
/// `SSL_R_UNEXPECTED_EOF_WHILE_READING` (OpenSSL ≥ 3.0).
const SSL_R_UNEXPECTED_EOF_WHILE_READING: c_int = 294;

thread_local! {
    /// The session `SSL_free` is about to remove on this thread, when the
    /// policy is to remove it (so the remove callback can name the cause).
    static FREEING: Cell<*const SSL_SESSION> = const { Cell::new(std::ptr::null()) };
}

/// Called by the connection's ex-data free function, inside `SSL_free`,
/// before the connection's cache reference is dropped.
///
/// # Safety
/// `ssl` is the connection being freed, inside `CRYPTO_free_ex_data` of
/// `SSL_free` (its session, shutdown flags and state machine are intact).
pub(crate) unsafe fn on_ssl_free(ssl: *mut SSL, inner: &Inner) {
    if ssl.is_null() {
        return;
    }
    if !*EX_DATA_FREED_FIRST {
        // The removal decision was made before we got here; the connection
        // is gone from now on.
        let serial = unsafe { live::conn_serial(ssl) };
        if serial != 0 {
            inner.live.leave(serial);
        }
        return;
    }
    // SAFETY: plain reads of a connection that `SSL_free` has not yet
    // taken apart (see the module note for what it freed before us).
    let (session, shutdown, in_init, in_before) = unsafe {
        (
            openssl_sys::SSL_get_session(ssl),
            openssl_sys::SSL_get_shutdown(ssl),
            ffi::SSL_in_init(ssl),
            ffi::SSL_in_before(ssl),
        )
    };
    // `ssl_clear_bad_session`'s own condition: is OpenSSL about to remove?
    if session.is_null() || shutdown & SSL_SENT_SHUTDOWN != 0 || in_init != 0 || in_before != 0 {
        return;
    }
    // SAFETY: the connection's live session, borrowed for this call.
    if unsafe { key_of(inner, session) }.is_none() {
        return;
    }
    match inner.unclean_close {
        UncleanClose::Keep => {
            // What nginx and Apache do before SSL_free: OpenSSL's test in
            // ssl_clear_bad_session now keeps the session.
            // SAFETY: sets a flag word of the live connection.
            unsafe { openssl_sys::SSL_set_shutdown(ssl, shutdown | SSL_SENT_SHUTDOWN) };
            bump(&inner.counters.kept_unclean_close);
        }
        UncleanClose::Remove => FREEING.with(|f| f.set(session)),
    }
}

/// Why OpenSSL is removing `sess` (called from the remove callback).
///
/// # Safety
/// `sess` is the live session OpenSSL passed to the remove callback.
pub(crate) unsafe fn classify(inner: &Inner, sess: *mut SSL_SESSION) -> Removal {
    if FREEING.with(|f| f.replace(std::ptr::null())) == sess.cast_const() {
        return Removal::UncleanClose;
    }
    // SAFETY: plain getters of a live session.
    let (time, timeout) = unsafe {
        (
            openssl_sys::SSL_SESSION_get_time(sess),
            openssl_sys::SSL_SESSION_get_timeout(sess),
        )
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if u64::try_from(time.saturating_add(timeout)).is_ok_and(|end| now > end) {
        return Removal::Expired;
    }
    // SAFETY: reads this thread's error queue without changing it.
    let last = unsafe { openssl_sys::ERR_peek_last_error() };
    if last != 0 && openssl_sys::ERR_GET_LIB(last) == ERR_LIB_SSL {
        return if openssl_sys::ERR_GET_REASON(last) == SSL_R_UNEXPECTED_EOF_WHILE_READING {
            Removal::UncleanClose
        } else {
            Removal::FatalAlert
        };
    }
    if *EX_DATA_FREED_FIRST || *SESSION_SERIAL < 0 {
        return Removal::Application;
    }
    // OpenSSL ≥ 3.2: SSL_free's removal is of a live connection's session
    // (module note).
    // SAFETY: reads an integer from the live session's ex data.
    let serial = unsafe { ffi::SSL_SESSION_get_ex_data(sess, *SESSION_SERIAL) }.addr() as u64;
    if inner.live.contains(serial) {
        Removal::UncleanClose
    } else {
        Removal::Application
    }
}

/// Whether a removal for this cause reaches the store under the policy.
pub(crate) fn removes(inner: &Inner, why: Removal) -> bool {
    why != Removal::UncleanClose || inner.unclean_close == UncleanClose::Remove
}

/// The store key of a session of ours (our context, a valid id), if it is.
///
/// # Safety
/// `sess` is a live session.
pub(crate) unsafe fn key_of(inner: &Inner, sess: *const SSL_SESSION) -> Option<SessionKey> {
    // SAFETY: borrowed for this call only.
    let session = unsafe { SslSessionRef::from_ptr(sess.cast_mut()) };
    let id = SessionId::new(session.id()).ok()?;
    if unsafe { ffi::session_context(sess) } != inner.context.as_bytes() {
        return None;
    }
    let protocol =
        if unsafe { openssl_sys::SSL_SESSION_get_protocol_version(sess) } == TLS1_3_VERSION {
            Protocol::Tls13
        } else {
            Protocol::Tls12
        };
    Some(SessionKey::new(protocol, inner.context, id))
}

/// Removes a session of ours from the decoded map and the store, counting
/// it under `why` when the store held it.
pub(crate) fn remove(
    inner: &Inner,
    session: &SslSessionRef,
    why: Removal,
) -> Result<bool, StoreError> {
    // SAFETY: a live session borrowed by the caller.
    let Some(key) = (unsafe { key_of(inner, session.as_ptr()) }) else {
        return Ok(false);
    };
    remove_key(inner, &key, why)
}

/// Removes `key` from the decoded map and the store, counting the request
/// under `why` (a store that queues its writes cannot say whether it held
/// the session) and in `removed` when the store says it held it; a failure
/// is counted and logged.
pub(crate) fn remove_key(
    inner: &Inner,
    key: &SessionKey,
    why: Removal,
) -> Result<bool, StoreError> {
    inner.decoded.remove(key);
    match inner.store.remove(key) {
        Ok(held) => {
            bump(why.counter(&inner.counters));
            if held {
                bump(&inner.counters.removed);
            }
            Ok(held)
        }
        Err(e) => {
            bump(&inner.counters.errors);
            warn_limited!(
                inner.logs.remove_failed,
                "session {key}: remove ({why:?}) failed: {e}"
            );
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_free_order_probe_agrees_with_the_linked_version() {
        // SAFETY: a plain query of the linked library's version.
        let version = unsafe { openssl_sys::OpenSSL_version_num() };
        // 1.1.1 – 3.1 free the ex data first; 3.2 and later take the
        // connection apart first (ssl/ssl_lib.c, SSL_free).
        assert_eq!(probe_free_order(), Some(version < 0x3020_0000));
        assert_eq!(*EX_DATA_FREED_FIRST, version < 0x3020_0000);
    }
}
