//! Where the cache hangs off OpenSSL's objects.
//!
//! * The `SSL_CTX` holds a [`CtxState`] (an `Arc` of the cache) in its ex
//!   data, under an index made once per process. rust-openssl registered a
//!   free function for that index that drops the box when the `SSL_CTX` is
//!   freed, after OpenSSL has flushed the context's sessions — so the
//!   remove callback can still use it, and nothing leaks.
//! * Each `SSL` gets a [`ConnState`] (another `Arc` of the cache plus
//!   per-connection facts) parked in its ex data when its handshake starts,
//!   while `SSL_get_SSL_CTX` still returns the context the connection was
//!   made from (the session context). An SNI callback may later switch the
//!   connection to another `SSL_CTX` without the cache (`SSL_set_SSL_CTX`);
//!   OpenSSL keeps calling the session context's callbacks, and they find
//!   the cache through the `SSL`, not through its current context.
//!
//! Why not an `SSL` ex-data `new_func`, which would run inside `SSL_new`?
//! In OpenSSL 3.0 `SSL_new` sets `s->ctx` before `CRYPTO_new_ex_data`, but
//! from 3.2 on (`ossl_ssl_init`) the ex data is created *before*
//! `ssl->ctx = ctx`, so a `new_func` cannot find the context there.

use std::sync::Arc;

use foreign_types::ForeignTypeRef;
use once_cell::sync::Lazy;
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslContext, SslRef};
use openssl_sys::{SSL, SSL_CTX};
use tls_session_cache::UnixTime;

use crate::cache::Inner;
use crate::ffi::InfoCallback;

/// What an `SSL_CTX` with the cache installed holds.
pub(crate) struct CtxState {
    /// The cache.
    pub inner: Arc<Inner>,
    /// The info callback the context had before `install`; ours calls it.
    pub previous_info: Option<InfoCallback>,
}

/// What a connection of such a context holds.
pub(crate) struct ConnState {
    /// The cache of the connection's session context.
    pub inner: Arc<Inner>,
    /// When the session this connection resumed was first authenticated
    /// (its stored `created`), set by the get callback.
    pub authenticated: Option<UnixTime>,
    /// The current handshake has been counted as resumed or full.
    pub counted: bool,
}

static CTX_INDEX: Lazy<Result<Index<SslContext, CtxState>, ErrorStack>> =
    Lazy::new(SslContext::new_ex_index);
static CONN_INDEX: Lazy<Result<Index<Ssl, ConnState>, ErrorStack>> = Lazy::new(Ssl::new_ex_index);

/// The `SSL_CTX` ex-data index of [`CtxState`].
pub(crate) fn ctx_index() -> Result<Index<SslContext, CtxState>, ErrorStack> {
    CTX_INDEX.clone()
}

/// The `SSL` ex-data index of [`ConnState`].
pub(crate) fn conn_index() -> Result<Index<Ssl, ConnState>, ErrorStack> {
    CONN_INDEX.clone()
}

/// The cache state of a context, if the cache is installed on it.
///
/// # Safety
/// `ctx` is null or a live `SSL_CTX`; the reference must not outlive it.
pub(crate) unsafe fn ctx_state<'a>(ctx: *const SSL_CTX) -> Option<&'a CtxState> {
    let Ok(index) = ctx_index() else { return None };
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

/// The connection's state, parking one first if there is none and the
/// connection's current context has the cache installed.
///
/// # Safety
/// `ssl` is a live `SSL` used by this thread only (OpenSSL calls our
/// callbacks from the thread driving the connection); the reference must
/// not outlive the callback.
pub(crate) unsafe fn conn_state<'a>(ssl: *mut SSL) -> Option<&'a mut ConnState> {
    let index = conn_index().ok()?;
    if ssl.is_null() {
        return None;
    }
    // SAFETY: `ssl` is live (caller); SslRef is a borrowed view, nothing is
    // freed when it goes out of scope.
    let ssl_ref = unsafe { SslRef::from_ptr_mut(ssl) };
    if ssl_ref.ex_data(index).is_none() {
        // SAFETY: SSL_get_SSL_CTX returns the connection's current context,
        // kept alive by the connection's own reference to it.
        let ctx = unsafe { openssl_sys::SSL_get_SSL_CTX(ssl) };
        let state = unsafe { ctx_state(ctx) }?;
        // rust-openssl boxes the value; the index's free function drops the
        // box (and our Arc) when the SSL is freed.
        ssl_ref.set_ex_data(
            index,
            ConnState {
                inner: Arc::clone(&state.inner),
                authenticated: None,
                counted: false,
            },
        );
    }
    ssl_ref.ex_data_mut(index)
}

/// The cache serving this connection: the one parked on the connection, or
/// else the one of its current context.
///
/// # Safety
/// As [`conn_state`].
pub(crate) unsafe fn inner_for(ssl: *mut SSL) -> Option<Arc<Inner>> {
    unsafe { conn_state(ssl) }.map(|c| Arc::clone(&c.inner))
}
