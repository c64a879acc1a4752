//! [`AsyncSessionCache`]: the binding's cache, with lookups made by
//! `accept` before OpenSSL asks, and new sessions written by a task.

use std::pin::Pin;
use std::sync::Arc;

use openssl::ssl::{ErrorCode, Ssl, SslContextBuilder};
use tls_session_cache::{SessionKey, StoredSession};
use tls_session_cache_openssl::{CacheStats, SessionCache, SessionCacheBuilder};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_openssl::SslStream;

use crate::error::{AcceptError, Error};
use crate::hello::{self, Lookup, Plan, Slot, SlotState, slot_index};
use crate::stats::{AsyncCounters, AsyncStats, bump};
use crate::store::AsyncSessionStore;
use crate::writer::{QueueStore, WriteQueue};

/// An external session cache for tokio-openssl servers whose lookups never
/// block an executor thread.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use openssl::ssl::{Ssl, SslAcceptor, SslMethod};
/// use tls_session_cache::MemoryStore;
/// use tls_session_cache_openssl::SessionCache;
/// use tls_session_cache_tokio::AsyncSessionCache;
///
/// let cache = AsyncSessionCache::builder(MemoryStore::default())
///     .session_cache(SessionCache::builder().context(b"my-service"))
///     .build()?; // inside the runtime: it spawns the writer task
/// let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
/// // … certificate and key …
/// cache.install(&mut acceptor)?;
/// let acceptor = acceptor.build();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let (tcp, _) = listener.accept().await?;
/// let mut tls = cache.accept(Ssl::new(acceptor.context())?, tcp).await?;
/// // … serve; dropping `tls` without `shutdown()` keeps its session …
/// # Ok(()) }
/// ```
///
/// Cloning is cheap; clones share everything.
#[derive(Clone)]
pub struct AsyncSessionCache {
    cache: SessionCache,
    store: Arc<dyn AsyncSessionStore>,
    queue: Arc<WriteQueue>,
    counters: Arc<AsyncCounters>,
}

impl std::fmt::Debug for AsyncSessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSessionCache")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// Configures an [`AsyncSessionCache`].
pub struct AsyncSessionCacheBuilder {
    store: Arc<dyn AsyncSessionStore>,
    session_cache: SessionCacheBuilder,
    queue_len: usize,
}

impl std::fmt::Debug for AsyncSessionCacheBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSessionCacheBuilder")
            .field("session_cache", &self.session_cache)
            .field("queue_len", &self.queue_len)
            .finish_non_exhaustive()
    }
}

impl AsyncSessionCacheBuilder {
    /// The default length of the new-session write queue.
    pub const DEFAULT_QUEUE_LEN: usize = 4096;

    /// The binding's settings (context, lifetimes, size limit, single use,
    /// tickets, clock). Its store, if one was set, is replaced: the
    /// binding writes through the queue to the async store.
    pub fn session_cache(mut self, builder: SessionCacheBuilder) -> Self {
        self.session_cache = builder;
        self
    }

    /// How many new sessions may wait for the writer task (default
    /// [`Self::DEFAULT_QUEUE_LEN`]); beyond that they are dropped and
    /// counted in [`AsyncStats::dropped_writes`].
    pub fn write_queue(mut self, len: usize) -> Self {
        self.queue_len = len;
        self
    }

    /// Builds the cache and spawns its writer task on the current tokio
    /// runtime.
    pub fn build(self) -> Result<AsyncSessionCache, Error> {
        if self.queue_len == 0 {
            return Err(Error::ZeroQueue);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        slot_index()?;
        let counters = Arc::new(AsyncCounters::default());
        let queue = WriteQueue::start(
            Arc::clone(&self.store),
            self.queue_len,
            Arc::clone(&counters),
            &runtime,
        );
        let cache = self
            .session_cache
            .store(QueueStore {
                queue: Arc::clone(&queue),
                store: Arc::clone(&self.store),
            })
            .build()?;
        Ok(AsyncSessionCache {
            cache,
            store: self.store,
            queue,
            counters,
        })
    }
}

impl AsyncSessionCache {
    /// A builder over `store`, with the binding's defaults.
    pub fn builder(store: impl AsyncSessionStore) -> AsyncSessionCacheBuilder {
        Self::builder_arc(Arc::new(store))
    }

    /// A builder over a shared store.
    pub fn builder_arc(store: Arc<dyn AsyncSessionStore>) -> AsyncSessionCacheBuilder {
        AsyncSessionCacheBuilder {
            store,
            session_cache: SessionCache::builder(),
            queue_len: AsyncSessionCacheBuilder::DEFAULT_QUEUE_LEN,
        }
    }

    /// Installs the cache on a context being built: the binding's
    /// callbacks (see [`SessionCache::install`]) plus the client-hello
    /// callback, which **replaces** any client-hello callback set before.
    /// Connections of this context must be accepted with
    /// [`accept`](Self::accept); others are never resumed.
    pub fn install(&self, ctx: &mut SslContextBuilder) -> Result<(), Error> {
        self.cache.install(ctx)?;
        // SAFETY: `ctx` owns a live SSL_CTX, borrowed mutably for the call;
        // the callback is a plain function and `arg` is null (the callback
        // finds its state in each SSL's ex data).
        unsafe {
            openssl_sys::SSL_CTX_set_client_hello_cb(
                ctx.as_ptr(),
                Some(hello::client_hello),
                std::ptr::null_mut(),
            );
        }
        Ok(())
    }

    /// Runs the server side of the handshake on `stream`, looking sessions
    /// up without blocking: when the client-hello callback pauses the
    /// handshake (`SSL_ERROR_WANT_CLIENT_HELLO_CB`, which tokio-openssl
    /// returns as an error), the lookups are awaited here, their answers
    /// parked on the connection, and the handshake is driven again.
    ///
    /// `ssl` must come from a context this cache is [installed](Self::install) on.
    pub async fn accept<S>(&self, mut ssl: Ssl, stream: S) -> Result<SslStream<S>, AcceptError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let slot = Slot::new(
            Arc::clone(&self.counters),
            self.cache.policy().single_use_tls13,
        );
        ssl.set_ex_data(slot_index()?, Arc::clone(&slot));
        let mut tls = SslStream::new(ssl, stream)?;
        let mut pauses = 0;
        loop {
            match Pin::new(&mut tls).accept().await {
                Ok(()) => return Ok(tls),
                Err(e) if e.code() == ErrorCode::WANT_CLIENT_HELLO_CB => {
                    pauses += 1;
                    let pending = match std::mem::take(&mut *slot.lock()) {
                        SlotState::Pending(p) if pauses == 1 => p,
                        _ => return Err(AcceptError::RetryLoop),
                    };
                    let answers = self.look_up(pending).await;
                    *slot.lock() = SlotState::Ready(answers);
                }
                Err(e) => return Err(AcceptError::Handshake(e)),
            }
        }
    }

    /// Looks the ids up in order and stops at the first session found:
    /// OpenSSL resumes the first it can, and taking the others would burn
    /// single-use tickets for nothing.
    async fn look_up(
        &self,
        pending: Plan,
    ) -> Vec<(tls_session_cache::SessionId, Option<StoredSession>)> {
        let c = &self.counters;
        let protocol = pending.protocol;
        let mut answers = Vec::with_capacity(pending.lookups.len());
        for (id, how) in pending.lookups {
            let key = SessionKey::new(protocol, self.cache.context(), id);
            bump(&c.lookups);
            let found = match how {
                Lookup::Get => self.store.get(&key).await,
                Lookup::Take => self.store.take(&key).await,
            };
            let session = match found {
                Ok(s) => s,
                Err(e) => {
                    bump(&c.lookup_errors);
                    log::warn!("session {key}: async lookup failed, full handshake: {e}");
                    None
                }
            };
            let hit = session.is_some();
            answers.push((id, session));
            if hit {
                bump(&c.found);
                break;
            }
        }
        answers
    }

    /// Waits until every new session (and removal) queued before this call
    /// has reached the store. A server that wants "the session is stored
    /// before the response is sent" awaits it after `accept`.
    pub async fn flush(&self) {
        self.queue.flush().await
    }

    /// The binding's statistics (handshakes, hits, misses), with the async
    /// store's counters as `store` and the async layer's failed lookups and
    /// writes added to `errors`, so a server reports the same numbers
    /// whichever path it takes.
    pub fn stats(&self) -> CacheStats {
        let mut stats = self.cache.stats();
        let layer = self.async_stats();
        stats.errors += layer.lookup_errors + layer.write_errors;
        stats.store = self.store.stats();
        stats
    }

    /// The async layer's statistics.
    pub fn async_stats(&self) -> AsyncStats {
        self.counters.snapshot(self.queue.pending())
    }

    /// The binding's cache (policy, context).
    pub fn session_cache(&self) -> &SessionCache {
        &self.cache
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn AsyncSessionStore> {
        &self.store
    }
}
