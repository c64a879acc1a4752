//! [`SessionCacheAcceptor`]: the cache as an [axum-server] acceptor
//! (feature `axum-server`).
//!
//! axum-server's own OpenSSL acceptor calls `tokio_openssl::SslStream::accept`
//! once; on a context where [`AsyncSessionCache::install`] set the
//! client-hello callback, that first call returns
//! `SSL_ERROR_WANT_CLIENT_HELLO_CB` and the handshake fails. This acceptor
//! runs the handshake through [`AsyncSessionCache::accept`] instead, which
//! awaits the lookups (Redis included) and drives the handshake again, so a
//! lookup never blocks a tokio worker.
//!
//! (compiled and tested as `tls-session-cache-frameworks`' `axum-example`)
//!
//! ```ignore
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use openssl::ssl::{SslAcceptor, SslMethod};
//! use tls_session_cache::MemoryStore;
//! use tls_session_cache_tokio::{AsyncSessionCache, acceptor::SessionCacheAcceptor};
//!
//! let mut tls = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
//! // … certificate, key, ALPN …
//! let cache = AsyncSessionCache::builder(MemoryStore::default()).build()?;
//! cache.install(&mut tls)?;
//! let acceptor = SessionCacheAcceptor::new(cache.clone(), tls.build().into_context());
//! let app = axum::Router::new(); // … routes …
//! axum_server::bind("127.0.0.1:8443".parse()?)
//!     .acceptor(acceptor)
//!     .serve(app.into_make_service())
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! [axum-server]: https://docs.rs/axum-server

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use axum_server::accept::{Accept, DefaultAcceptor};
use openssl::ssl::{Ssl, SslContext};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_openssl::SslStream;

use crate::cache::AsyncSessionCache;

/// How long a handshake may take by default (as axum-server's own TLS
/// acceptors).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// An axum-server [`Accept`] that runs the TLS handshake with
/// [`AsyncSessionCache::accept`] on connections of `context` (a context the
/// cache is [installed](AsyncSessionCache::install) on), after the inner
/// acceptor `A` (by default none) has had the stream.
///
/// Cloning is cheap (the cache and the context are reference counted).
#[derive(Clone)]
pub struct SessionCacheAcceptor<A = DefaultAcceptor> {
    cache: AsyncSessionCache,
    context: SslContext,
    inner: A,
    flush: bool,
    handshake_timeout: Option<Duration>,
}

impl<A> std::fmt::Debug for SessionCacheAcceptor<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCacheAcceptor")
            .field("cache", &self.cache)
            .field("flush", &self.flush)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl SessionCacheAcceptor {
    /// An acceptor for connections of `context`, resuming through `cache`.
    /// It waits for each handshake's new sessions to reach the store before
    /// handing the connection over ([`flush_new_sessions`](Self::flush_new_sessions)),
    /// and gives each handshake [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub fn new(cache: AsyncSessionCache, context: SslContext) -> Self {
        SessionCacheAcceptor {
            cache,
            context,
            inner: DefaultAcceptor,
            flush: true,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
        }
    }
}

impl<A> SessionCacheAcceptor<A> {
    /// Runs `inner` on each connection before the handshake (for example
    /// axum-server's `NoDelayAcceptor`).
    pub fn acceptor<B>(self, inner: B) -> SessionCacheAcceptor<B> {
        SessionCacheAcceptor {
            cache: self.cache,
            context: self.context,
            inner,
            flush: self.flush,
            handshake_timeout: self.handshake_timeout,
        }
    }

    /// Whether to wait, after each handshake, until the sessions it created
    /// are in the store ([`AsyncSessionCache::flush`]) — default `true`, so
    /// a client that comes back as soon as it has the first response finds
    /// its session, as with a blocking store. `false` hands the connection
    /// over at once; a client that returns within the store's write
    /// latency then makes a full handshake (never a second use of a ticket).
    pub fn flush_new_sessions(mut self, flush: bool) -> Self {
        self.flush = flush;
        self
    }

    /// The longest a handshake (lookups included) may take; `None` for no
    /// limit. Default [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The cache.
    pub fn cache(&self) -> &AsyncSessionCache {
        &self.cache
    }
}

impl<A, I, S> Accept<I, S> for SessionCacheAcceptor<A>
where
    A: Accept<I, S>,
    A::Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A::Service: Send + 'static,
    A::Future: Send + 'static,
{
    type Stream = SslStream<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let inner = self.inner.accept(stream, service);
        let cache = self.cache.clone();
        let context = self.context.clone();
        let (flush, timeout) = (self.flush, self.handshake_timeout);
        Box::pin(async move {
            let (stream, service) = inner.await?;
            let ssl = Ssl::new(&context).map_err(io::Error::other)?;
            let handshake = cache.accept(ssl, stream);
            let tls = match timeout {
                Some(t) => tokio::time::timeout(t, handshake).await.map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                })?,
                None => handshake.await,
            }
            .map_err(io::Error::other)?;
            if flush {
                cache.flush().await;
            }
            Ok((tls, service))
        })
    }
}
