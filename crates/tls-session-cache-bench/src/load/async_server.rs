//! The async server of the load group: a tokio multi-thread runtime with
//! `threads` workers, tokio-openssl, [`AsyncSessionCache`] over an
//! [`AsyncRedisStore`]. Lookups are awaited (the client-hello retry), so a
//! Redis round trip holds no thread; new sessions go through the cache's
//! write queue, and each connection waits for them to be stored
//! ([`AsyncSessionCache::flush`]) before its first byte of application
//! data, as the blocking server's synchronous `put` does — the client's
//! next connection always finds its ticket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;
use std::time::Duration;

use openssl::ssl::{Ssl, SslContext};
use tls_session_cache_openssl::{CacheStats, SessionCache};
use tls_session_cache_redis::AsyncRedisStore;
use tls_session_cache_tokio::AsyncSessionCache;
use tokio::io::AsyncWriteExt;
use tokio::runtime::Runtime;

use crate::cpu::ThreadClock;
use crate::error::BenchError;
use crate::server::ServerCounts;
use crate::setup::{CONTEXT, Identity, base_context};

/// Longest a connection may take on the server.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// CPU clocks of a runtime's threads, kept by its start and stop hooks.
#[derive(Debug, Default)]
struct RuntimeClocks {
    live: Mutex<HashMap<ThreadId, ThreadClock>>,
    /// CPU of the threads that have exited, nanoseconds.
    retired_ns: AtomicU64,
}

impl RuntimeClocks {
    fn register(&self) {
        match ThreadClock::of_current_thread() {
            Ok(c) => {
                self.live
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(std::thread::current().id(), c);
            }
            Err(e) => log::warn!("async server: no CPU clock for a runtime thread: {e}"),
        }
    }

    fn retire(&self) {
        let used = ThreadClock::current().now();
        self.retired_ns
            .fetch_add(used.as_nanos() as u64, Ordering::SeqCst);
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&std::thread::current().id());
    }

    fn total(&self) -> Duration {
        let live: Duration = self
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|c| c.now())
            .sum();
        live + Duration::from_nanos(self.retired_ns.load(Ordering::SeqCst))
    }
}

/// A running async server.
pub struct AsyncServer {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    /// Its counters.
    pub counts: Arc<ServerCounts>,
    /// The cache installed on it.
    pub cache: AsyncSessionCache,
    clocks: Arc<RuntimeClocks>,
    runtime: Option<Runtime>,
}

impl AsyncServer {
    /// Starts a runtime of `threads` workers named `{name}` serving with
    /// an [`AsyncSessionCache`] over `store`.
    pub fn start(
        name: &str,
        id: &Identity,
        store: AsyncRedisStore,
        threads: usize,
    ) -> Result<AsyncServer, BenchError> {
        let clocks = Arc::new(RuntimeClocks::default());
        let (on_start, on_stop) = (Arc::clone(&clocks), Arc::clone(&clocks));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(name)
            .enable_all()
            .on_thread_start(move || on_start.register())
            .on_thread_stop(move || on_stop.retire())
            .build()?;
        let counts = Arc::new(ServerCounts::default());
        let (addr, cache) = {
            // Inside the runtime: the cache spawns its writer task, the
            // listener registers with the reactor.
            let _entered = runtime.enter();
            let cache = AsyncSessionCache::builder(store)
                .session_cache(SessionCache::builder().context(CONTEXT))
                .build()?;
            let mut b = base_context(id)?;
            cache.install(&mut b)?;
            let ctx = b.build();
            let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            std_listener.set_nonblocking(true)?;
            let addr = std_listener.local_addr()?;
            let listener = tokio::net::TcpListener::from_std(std_listener)?;
            runtime.spawn(accept_loop(
                listener,
                cache.clone(),
                ctx,
                Arc::clone(&counts),
            ));
            (addr, cache)
        };
        Ok(AsyncServer {
            addr,
            counts,
            cache,
            clocks,
            runtime: Some(runtime),
        })
    }

    /// CPU time the runtime's threads have used so far.
    pub fn cpu(&self) -> Duration {
        self.clocks.total()
    }

    /// The cache's statistics; write-queue drops count as errors.
    pub fn stats(&self) -> CacheStats {
        let mut s = self.cache.stats();
        s.errors += self.cache.async_stats().dropped_writes;
        s
    }
}

impl Drop for AsyncServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Cancels the accept loop and any connection still in flight.
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    cache: AsyncSessionCache,
    ctx: SslContext,
    counts: Arc<ServerCounts>,
) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                log::warn!("async server: accept: {e}");
                counts.failed.fetch_add(1, Ordering::SeqCst);
                continue;
            }
        };
        let (cache, ctx, counts) = (cache.clone(), ctx.clone(), Arc::clone(&counts));
        tokio::spawn(async move {
            let outcome =
                match tokio::time::timeout(CONNECTION_TIMEOUT, serve(&cache, &ctx, tcp)).await {
                    Ok(r) => r,
                    Err(_) => Err("connection timed out".into()),
                };
            counts.count(outcome, "async server");
        });
    }
}

/// One connection, as the blocking server's: handshake, one byte,
/// `close_notify`; returns whether the handshake resumed.
async fn serve(
    cache: &AsyncSessionCache,
    ctx: &SslContext,
    tcp: tokio::net::TcpStream,
) -> Result<bool, String> {
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let ssl = Ssl::new(ctx).map_err(|e| e.to_string())?;
    let mut tls = cache.accept(ssl, tcp).await.map_err(|e| e.to_string())?;
    let resumed = tls.ssl().session_reused();
    // The new session (TLS 1.3: the new ticket) is in the store before the
    // client sees the first byte, so its next connection can resume.
    cache.flush().await;
    tls.write_all(b"x").await.map_err(|e| e.to_string())?;
    // close_notify: a connection freed without it has its session removed.
    tls.shutdown().await.map_err(|e| e.to_string())?;
    Ok(resumed)
}
