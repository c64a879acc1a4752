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
//!    ([`exdata`](crate::exdata)) therefore runs *before* that test, on the
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
//! **OpenSSL ≥ 3.2** reordered `SSL_free`: `ossl_ssl_connection_free` (and
//! `ssl_clear_bad_session` in it) now runs *before* the ex data is freed,
//! so step 1 cannot act in time. There the `SSL_free` removal reaches the
//! remove callback with no fresh error and an unexpired session — which is
//! also what an application's own `SSL_CTX_remove_session` looks like. We
//! treat it as the unclean close (kept by default) and offer
//! [`SessionCache::remove_session`](crate::SessionCache::remove_session),
//! which removes from the store on every version, as the way to revoke a
//! session. On 1.1.1 – 3.1 the two are told apart exactly.
//!
//! A stale `SSL_R_UNEXPECTED_EOF_WHILE_READING` left on a thread's error
//! queue by an application that ignored an error without clearing the
//! queue would make a later application removal on that thread look like
//! step 2 (rust-openssl drains the queue into every error it returns).

use std::cell::Cell;
use std::ffi::c_int;
use std::sync::atomic::AtomicU64;

use foreign_types::ForeignTypeRef;
use once_cell::sync::Lazy;
use openssl::ssl::SslSessionRef;
use openssl_sys::{SSL, SSL_SENT_SHUTDOWN, SSL_SESSION, TLS1_3_VERSION};
use tls_session_cache::{Protocol, SessionId, SessionKey, StoreError};

use crate::ffi;
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
/// remove the session (OpenSSL 1.1.1 – 3.1; see the module note).
static EX_DATA_FREED_FIRST: Lazy<bool> =
    // SAFETY: a plain query of the linked library's version.
    Lazy::new(|| unsafe { openssl_sys::OpenSSL_version_num() } < 0x3020_0000);

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
    if ssl.is_null() || !*EX_DATA_FREED_FIRST {
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
pub(crate) unsafe fn classify(sess: *mut SSL_SESSION) -> Removal {
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
    if *EX_DATA_FREED_FIRST {
        Removal::Application
    } else {
        // OpenSSL ≥ 3.2: SSL_free's removal looks like this (module note).
        Removal::UncleanClose
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
