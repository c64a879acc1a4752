//! Where the cache hangs off OpenSSL's objects.
//!
//! * The `SSL_CTX` holds a [`CtxState`] (an `Arc` of the cache) in its ex
//!   data, under an index made once per process. rust-openssl registered a
//!   free function for that index that drops the box when the `SSL_CTX` is
//!   freed, after OpenSSL has flushed the context's sessions — so the
//!   remove callback can still use it, and nothing leaks.
//! * Each `SSL` gets the cache parked in its ex data when its handshake
//!   starts, while `SSL_get_SSL_CTX` still returns the context the
//!   connection was made from (the session context). An SNI callback may
//!   later switch the connection to another `SSL_CTX` without the cache
//!   (`SSL_set_SSL_CTX`); OpenSSL keeps calling the session context's
//!   callbacks, and they find the cache through the `SSL`, not through its
//!   current context.
//!
//! The connection's two slots are raw ex-data indices of our own, not
//! rust-openssl's boxed ones, so parking costs no allocation (it was a
//! `Box` per handshake, allocated at its start and freed in `SSL_free`):
//!
//! * **cache slot**: a pointer made by `Arc::into_raw` — one strong
//!   reference to the cache, owned by the `SSL`. Our free function (run by
//!   `SSL_free` → `CRYPTO_free_ex_data`) gives it back with
//!   `Arc::from_raw`. An `Arc` and not a borrowed pointer to the session
//!   context's [`CtxState`]: the context current at handshake start is the
//!   session context (which the `SSL` keeps alive) unless the application
//!   switched contexts before the handshake, and then only the reference
//!   keeps the cache alive. Like rust-openssl's own ex data, the slot is
//!   not duplicated by `SSL_dup` (rust-openssl does not expose it).
//! * **facts slot**: an integer stored in the pointer (never dereferenced,
//!   nothing to free): bit 0 "this handshake was counted", the other bits
//!   the time the resumed session was first authenticated, plus one (0:
//!   none).
//! * the connection's serial (OpenSSL ≥ 3.2) has a slot of its own in
//!   [`live`](crate::live), so that `close`, which this module calls from
//!   `SSL_free`, does not call back into this module.
//!
//! Why not an `SSL` ex-data `new_func`, which would run inside `SSL_new`?
//! In OpenSSL 3.0 `SSL_new` sets `s->ctx` before `CRYPTO_new_ex_data`, but
//! from 3.2 on (`ossl_ssl_init`) the ex data is created *before*
//! `ssl->ctx = ctx`, so a `new_func` cannot find the context there.

use std::ffi::{c_int, c_long, c_void};
use std::ptr;
use std::sync::Arc;

use once_cell::sync::Lazy;
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::SslContext;
use openssl_sys::{CRYPTO_EX_DATA, SSL, SSL_CTX};
use tls_session_cache::UnixTime;

use crate::close;
use crate::ffi::InfoCallback;
use crate::state::Inner;

/// What an `SSL_CTX` with the cache installed holds.
pub(crate) struct CtxState {
    /// The cache.
    pub inner: Arc<Inner>,
    /// The info callback the context had before `install`; ours calls it.
    pub previous_info: Option<InfoCallback>,
}

static CTX_INDEX: Lazy<Result<Index<SslContext, CtxState>, ErrorStack>> =
    Lazy::new(SslContext::new_ex_index);

/// The raw `SSL` ex-data indices of a connection's cache and facts.
#[derive(Clone, Copy)]
pub(crate) struct ConnIndices {
    cache: c_int,
    facts: c_int,
    lookups: c_int,
}

static CONN_INDICES: Lazy<Result<ConnIndices, ErrorStack>> = Lazy::new(|| {
    // SAFETY: registers indices; `free_cache` matches CRYPTO_EX_free. No
    // new or dup functions: a slot starts null.
    let cache = unsafe {
        openssl_sys::SSL_get_ex_new_index(0, ptr::null_mut(), None, None, Some(free_cache))
    };
    let facts = unsafe { openssl_sys::SSL_get_ex_new_index(0, ptr::null_mut(), None, None, None) };
    let lookups =
        unsafe { openssl_sys::SSL_get_ex_new_index(0, ptr::null_mut(), None, None, None) };
    if cache < 0 || facts < 0 || lookups < 0 {
        return Err(ErrorStack::get());
    }
    Ok(ConnIndices {
        cache,
        facts,
        lookups,
    })
});

/// The `SSL_CTX` ex-data index of [`CtxState`].
pub(crate) fn ctx_index() -> Result<Index<SslContext, CtxState>, ErrorStack> {
    match &*CTX_INDEX {
        Ok(index) => Ok(*index),
        Err(e) => Err(e.clone()),
    }
}

/// The connection's ex-data indices.
pub(crate) fn conn_indices() -> Result<ConnIndices, ErrorStack> {
    match &*CONN_INDICES {
        Ok(indices) => Ok(*indices),
        Err(e) => Err(e.clone()),
    }
}

/// `CRYPTO_EX_free` of the cache slot: gives back the slot's reference.
///
/// It runs inside `SSL_free` (`parent` is the `SSL`); on OpenSSL 1.1.1 –
/// 3.1 before `SSL_free` decides whether to remove the connection's
/// session, which is where an unclean close is kept (see `close`).
unsafe extern "C" fn free_cache(
    parent: *mut c_void,
    ptr: *mut c_void,
    _ad: *mut CRYPTO_EX_DATA,
    _idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: a non-null value in this slot is always a pointer made by
    // `Arc::into_raw` in `park`, whose reference the slot owns; SSL_free
    // calls this once. Dropping the last reference drops the store, which
    // must not unwind into OpenSSL.
    crate::unwind::quietly(|| unsafe {
        let inner = Arc::from_raw(ptr as *const Inner);
        close::on_ssl_free(parent.cast::<SSL>(), &inner);
        drop(inner);
    });
}

/// The cache state of a context, if the cache is installed on it.
///
/// # Safety
/// `ctx` is null or a live `SSL_CTX`; the reference must not outlive it.
pub(crate) unsafe fn ctx_state<'a>(ctx: *const SSL_CTX) -> Option<&'a CtxState> {
    let Ok(index) = &*CTX_INDEX else {
        return None;
    };
    if ctx.is_null() {
        return None;
    }
    // SAFETY: the pointer stored under this index is always a
    // Box<CtxState> put there by `install`; OpenSSL owns it until the
    // SSL_CTX is freed, and we only borrow it.
    unsafe {
        let data = openssl_sys::SSL_CTX_get_ex_data(ctx, index.as_raw());
        (data as *const CtxState).as_ref()
    }
}

/// The cache parked on the connection; if none is, parks the one of the
/// connection's current context (if it has one) first.
///
/// # Safety
/// `ssl` is null or a live `SSL`; the reference must not outlive the
/// callback it is used in (the `SSL` holds the reference behind it until
/// `SSL_free`).
pub(crate) unsafe fn conn_inner<'a>(ssl: *mut SSL) -> Option<&'a Inner> {
    let indices = conn_indices().ok()?;
    if ssl.is_null() {
        return None;
    }
    // SAFETY: `ssl` is live; the slot holds null or an `Arc::into_raw`
    // pointer owned by the SSL (see the module note).
    let data = unsafe { openssl_sys::SSL_get_ex_data(ssl, indices.cache) } as *const Inner;
    if let Some(inner) = unsafe { data.as_ref() } {
        return Some(inner);
    }
    unsafe { park(ssl, indices) }
}

/// Parks the cache of the connection's current context on it.
///
/// # Safety
/// `ssl` is a live `SSL` whose cache slot is empty.
unsafe fn park<'a>(ssl: *mut SSL, indices: ConnIndices) -> Option<&'a Inner> {
    // SAFETY: SSL_get_SSL_CTX returns the connection's current context,
    // kept alive by the connection's own reference to it.
    let ctx = unsafe { openssl_sys::SSL_get_SSL_CTX(ssl) };
    let state = unsafe { ctx_state(ctx) }?;
    // One strong reference, owned by the slot from here on.
    let raw = Arc::into_raw(Arc::clone(&state.inner));
    // SAFETY: `ssl` is live; the index is ours.
    if unsafe { openssl_sys::SSL_set_ex_data(ssl, indices.cache, raw as *mut c_void) } != 1 {
        // Not stored (out of memory): take the reference back.
        drop(unsafe { Arc::from_raw(raw) });
        return None;
    }
    // SAFETY: the slot's reference keeps it alive as long as the SSL.
    unsafe { raw.as_ref() }
}

/// Parks the cache on a connection whose handshake starts (see the module
/// note) and clears its "counted" bit; false if the connection's context
/// has no cache.
///
/// # Safety
/// `ssl` is a live `SSL`.
pub(crate) unsafe fn start_handshake(ssl: *mut SSL) -> bool {
    if unsafe { conn_inner(ssl) }.is_none() {
        return false;
    }
    let facts = unsafe { facts(ssl) };
    unsafe { set_facts(ssl, facts & !COUNTED) };
    unsafe { set_lookups(ssl, 0) };
    true
}

/// Counts one more store lookup in the current handshake; returns how many
/// there have been, this one included.
///
/// # Safety
/// `ssl` is a live `SSL`.
pub(crate) unsafe fn count_lookup(ssl: *mut SSL) -> usize {
    let Ok(i) = conn_indices() else {
        return 1;
    };
    // SAFETY: the slot holds an integer (see `set_lookups`).
    let n = unsafe { openssl_sys::SSL_get_ex_data(ssl, i.lookups) }
        .addr()
        .saturating_add(1);
    unsafe { set_lookups(ssl, n) };
    n
}

/// # Safety
/// `ssl` is a live `SSL`.
unsafe fn set_lookups(ssl: *mut SSL, n: usize) {
    if let Ok(i) = conn_indices() {
        // An integer in the pointer: nothing to free.
        // SAFETY: `ssl` is live; the index is ours.
        unsafe { openssl_sys::SSL_set_ex_data(ssl, i.lookups, ptr::without_provenance_mut(n)) };
    }
}

const COUNTED: usize = 1;

/// # Safety
/// `ssl` is a live `SSL`.
unsafe fn facts(ssl: *mut SSL) -> usize {
    match conn_indices() {
        // SAFETY: the slot holds an integer (see the module note).
        Ok(i) => unsafe { openssl_sys::SSL_get_ex_data(ssl, i.facts) }.addr(),
        Err(_) => 0,
    }
}

/// # Safety
/// `ssl` is a live `SSL`.
unsafe fn set_facts(ssl: *mut SSL, facts: usize) {
    if let Ok(i) = conn_indices() {
        // An integer, not a pointer: nothing owns or frees it. A failed
        // store (out of memory) loses the fact, no more.
        // SAFETY: `ssl` is live; the index is ours.
        unsafe { openssl_sys::SSL_set_ex_data(ssl, i.facts, ptr::without_provenance_mut(facts)) };
    }
}

/// When the session this connection resumed was first authenticated (its
/// stored `created`), as set by the get callback.
///
/// # Safety
/// `ssl` is a live `SSL`.
pub(crate) unsafe fn authenticated(ssl: *mut SSL) -> Option<UnixTime> {
    let t = unsafe { facts(ssl) } >> 1;
    (t != 0).then(|| (t - 1) as UnixTime)
}

/// Records when the session being resumed was first authenticated.
///
/// # Safety
/// `ssl` is a live `SSL`.
pub(crate) unsafe fn set_authenticated(ssl: *mut SSL, t: UnixTime) {
    // Unix seconds fit 62 bits for billions of years; saturate anyway.
    let t = usize::try_from(t)
        .unwrap_or(usize::MAX >> 2)
        .min(usize::MAX >> 2);
    let counted = unsafe { facts(ssl) } & COUNTED;
    unsafe { set_facts(ssl, ((t + 1) << 1) | counted) };
}

/// Marks the current handshake as counted; false if it already was.
///
/// # Safety
/// `ssl` is a live `SSL`.
pub(crate) unsafe fn count_once(ssl: *mut SSL) -> bool {
    let facts = unsafe { facts(ssl) };
    if facts & COUNTED != 0 {
        return false;
    }
    unsafe { set_facts(ssl, facts | COUNTED) };
    true
}
