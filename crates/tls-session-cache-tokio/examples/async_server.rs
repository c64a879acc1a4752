//! An async (tokio) HTTPS server that resumes sessions through
//! `tls-session-cache-tokio`: lookups never block an executor thread.
//!
//! Same command line and response contract as the blocking example server
//! of `tls-session-cache-openssl` (`examples/server.rs`):
//!
//! ```text
//! async_server [--listen 127.0.0.1:8443] [--cert PEM --key PEM]
//!              [--store memory|redis://HOST:PORT|rediss://HOST:PORT
//!                       |redis+cluster://H1:P1,H2:P2,…|rediss+cluster://…
//!                       |redis+sentinel://S1:P1,S2:P2/NAME|rediss+sentinel://…
//!                       |tiered+redis://HOST:PORT|tiered+redis+cluster://…|…]
//!              [--seal-key-file PATH] [--redis-timeout-ms MS]
//!              [--redis-ca PEM] [--redis-cert PEM --redis-key PEM]
//!              [--redis-password-file PATH] [--lifetime SECS] [--context STR]
//!              [--tickets] [--threads N]
//! ```
//!
//! * prints exactly one line on stdout, `listening on IP:PORT`, when ready;
//!   logs go to stderr;
//! * answers every request with `{"resumed":bool,"protocol":"TLSv1.3",
//!   "session_id":"hex"}`, and `GET /stats` with the cache statistics —
//!   the blocking server's members, then `"async":{…}` (the async layer's
//!   counters) and, with Redis, `"redis":{…}`; `GET /metrics` with the same
//!   counters in the Prometheus text format;
//! * SIGINT / SIGTERM: stops accepting, finishes in-flight connections,
//!   flushes queued session writes, exits 0. Bad arguments exit 2.
//!
//! `--threads N` is the number of tokio worker threads (default 2).
//! Stores: `memory` and `redis://HOST:PORT` (the async Redis store, sealed
//! under `--seal-key-file`, or an ephemeral key with a warning), over TLS
//! with `rediss://` (`--redis-ca`, `--redis-cert`, `--redis-key`), through
//! Sentinel with `redis+sentinel://S1:P1,…/NAME`, a Redis Cluster with
//! `redis+cluster://H1:P1,H2:P2,…` (`rediss+cluster://` over TLS: a
//! connection and a circuit breaker per master), and any of these behind a
//! local memory tier with `tiered+` in front (`tiered+redis://…`,
//! `tiered+redis+cluster://…`, `tiered+rediss://…`: TLS 1.2 lookups
//! answered locally when they can be, TLS 1.3 always in Redis) — the
//! blocking server's spellings; credentials as for the
//! blocking server (URL, `--redis-password-file`, or
//! `TLS_SESSION_CACHE_REDIS_PASSWORD`; never logged; refused credentials at
//! start exit 2). Each connection's new sessions are flushed to the store before
//! its response is sent, so a client's next connection finds them (as with
//! the blocking server, whose store writes are synchronous).

#[path = "../../tls-session-cache-openssl/examples/common/mod.rs"]
mod common;

use std::process::ExitCode;
use std::sync::Arc;

use common::{Args, IO_TIMEOUT, Logger};
use openssl::ssl::{Ssl, SslContext};
use tls_session_cache::MemoryStore;
use tls_session_cache_openssl::prometheus::Exposition;
use tls_session_cache_redis::{AsyncRedisStore, AsyncTieredStore, local_hits_metric, redact_url};
use tls_session_cache_tokio::{AsyncSessionCache, AsyncSessionStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// The `--store` choices in the usage line.
const STORES: &str = "memory|redis://HOST:PORT|rediss://HOST:PORT|redis+cluster://H1:P1,H2:P2,...\
     |redis+sentinel://S1:P1,S2:P2/NAME|tiered+redis://HOST:PORT";

/// The Redis side of the store in use, for its own counters.
#[derive(Clone)]
enum RedisHandle {
    Redis(Arc<AsyncRedisStore>),
    Tiered(Arc<AsyncTieredStore>),
}

impl RedisHandle {
    /// The Redis store (the remote tier of a tiered store).
    fn redis(&self) -> &AsyncRedisStore {
        match self {
            RedisHandle::Redis(r) => r,
            RedisHandle::Tiered(t) => t.remote(),
        }
    }

    /// Lookups a tiered store answered locally.
    fn local_hits(&self) -> Option<u64> {
        match self {
            RedisHandle::Redis(_) => None,
            RedisHandle::Tiered(t) => Some(t.local_hits()),
        }
    }
}

/// The store chosen on the command line, and its Redis side if it has one
/// (for its own counters).
type Opened = (Arc<dyn AsyncSessionStore>, Option<RedisHandle>);

/// Whether `s` is a Redis store URL (standalone, Cluster or Sentinel).
fn is_redis(s: &str) -> bool {
    [
        "redis://",
        "rediss://",
        "redis+cluster://",
        "rediss+cluster://",
        "redis+sentinel://",
        "rediss+sentinel://",
    ]
    .iter()
    .any(|scheme| s.starts_with(scheme))
}

/// An async Redis store for `url`.
fn redis_store(
    url: &str,
    keys: Option<tls_session_cache_redis::KeyRing>,
    args: &Args,
) -> Result<AsyncRedisStore, String> {
    common::redis_builder(
        url,
        keys,
        args,
        "no --seal-key-file: sealing sessions under an ephemeral key made now; \
         other servers cannot open this server's sessions",
    )?
    .build_async()
    .map_err(|e| format!("--store {}: {e}", redact_url(url)))
}

fn open_store(args: &Args) -> Result<Opened, String> {
    let keys = common::seal_keys(args)?;
    match args.store.as_str() {
        "memory" => {
            if keys.is_some() {
                eprintln!(
                    "async_server: note: --seal-key-file is checked but not used with --store \
                     memory (sessions never leave this process)"
                );
            }
            common::note_unused_redis_flags("async_server", args);
            Ok((Arc::new(MemoryStore::default()), None))
        }
        url if is_redis(url) => {
            let store = Arc::new(redis_store(url, keys, args)?);
            Ok((
                Arc::clone(&store) as Arc<dyn AsyncSessionStore>,
                Some(RedisHandle::Redis(store)),
            ))
        }
        s if s.strip_prefix("tiered+").is_some_and(is_redis) => {
            let remote = redis_store(&s["tiered+".len()..], keys, args)?;
            let store = Arc::new(AsyncTieredStore::new(MemoryStore::default(), remote));
            Ok((
                Arc::clone(&store) as Arc<dyn AsyncSessionStore>,
                Some(RedisHandle::Tiered(store)),
            ))
        }
        s => Err(format!(
            "--store {}: expected memory, redis://HOST:PORT, rediss://HOST:PORT, \
             redis+cluster://HOST:PORT,HOST:PORT,…, redis+sentinel://HOST:PORT,…/NAME \
             or tiered+redis://HOST:PORT",
            redact_url(s)
        )),
    }
}

/// Builds the cache (inside the runtime: it spawns its writer task) and the context.
fn build(
    args: &Args,
    store: Arc<dyn AsyncSessionStore>,
) -> Result<(AsyncSessionCache, SslContext), String> {
    let cache = AsyncSessionCache::builder_arc(store)
        .session_cache(common::cache_settings(args))
        .build()
        .map_err(|e| e.to_string())?;
    let mut acceptor = common::acceptor(args)?;
    cache.install(&mut acceptor).map_err(|e| e.to_string())?;
    Ok((cache, acceptor.build().into_context()))
}

fn main() -> ExitCode {
    Logger::install();
    let args = match common::args_or_usage("async_server", STORES) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("async_server: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async_main(args))
}

async fn async_main(args: Args) -> ExitCode {
    let (store, redis) = match open_store(&args) {
        Ok(x) => x,
        Err(msg) => {
            eprintln!("async_server: {msg}");
            return ExitCode::from(2);
        }
    };
    let (cache, ctx) = match build(&args, store) {
        Ok(x) => x,
        Err(msg) => {
            eprintln!("async_server: {msg}");
            return ExitCode::from(2);
        }
    };
    if let Some(r) = &redis
        && let Err(msg) = common::startup_check(&args.store, r.redis().ping().await)
    {
        eprintln!("async_server: {msg}");
        return ExitCode::from(2);
    }
    match serve(&args, cache, redis, ctx).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("async_server: {e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(
    args: &Args,
    cache: AsyncSessionCache,
    redis: Option<RedisHandle>,
    ctx: SslContext,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    common::announce(addr)?;
    log::info!("listening on {addr}, {} runtime threads", args.threads);

    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = sigint.recv() => { log::info!("SIGINT: stopping"); break; }
            _ = sigterm.recv() => { log::info!("SIGTERM: stopping"); break; }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let (cache, ctx, redis) = (cache.clone(), ctx.clone(), redis.clone());
                    connections.spawn(async move {
                        match tokio::time::timeout(
                            IO_TIMEOUT,
                            serve_connection(&cache, redis.as_ref(), &ctx, tcp),
                        )
                        .await
                        {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => log::debug!("connection: {e}"),
                            Err(_) => log::debug!("connection: timed out"),
                        }
                    });
                }
                Err(e) => log::warn!("accept: {e}"),
            },
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    cache.flush().await;
    log::info!("stopped; {}", stats_json(&cache, redis.as_ref()));
    Ok(())
}

async fn serve_connection(
    cache: &AsyncSessionCache,
    redis: Option<&RedisHandle>,
    ctx: &SslContext,
    tcp: TcpStream,
) -> Result<(), String> {
    tcp.set_nodelay(true).ok();
    let ssl = Ssl::new(ctx).map_err(|e| e.to_string())?;
    let mut tls = cache.accept(ssl, tcp).await.map_err(|e| e.to_string())?;
    let request = read_request(&mut tls).await;
    let response = common::response(
        &request,
        tls.ssl(),
        || stats_json(cache, redis),
        || metrics_text(cache, redis),
    );
    // This connection's new sessions (TLS 1.2: during the handshake; TLS
    // 1.3: the tickets, sent by the end of it) are stored before the client
    // sees the response and can come back.
    cache.flush().await;
    tls.write_all(response.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    tls.flush().await.map_err(|e| e.to_string())?;
    // close_notify: without it OpenSSL would drop the session (remove callback).
    tls.shutdown().await.map_err(|e| e.to_string())
}

/// Reads up to the end of the request head, MAX_REQUEST bytes or the end
/// of the stream.
async fn read_request<S: tokio::io::AsyncRead + Unpin>(tls: &mut S) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !common::request_read(&buf) {
        match tls.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf
}

/// `GET /metrics`: the cache's, the async layer's and (with Redis) the
/// store's counters in the Prometheus text format.
fn metrics_text(cache: &AsyncSessionCache, redis: Option<&RedisHandle>) -> String {
    let context = common::context_label(cache.session_cache());
    let mut e = Exposition::new();
    e.add(&context, cache.stats().metrics());
    e.add(&context, cache.async_stats().metrics());
    if let Some(h) = redis {
        let r = h.redis();
        e.add(&context, r.redis_stats().metrics(r.circuit_state()));
        if let Some(n) = h.local_hits() {
            e.add(&context, [local_hits_metric(n)]);
        }
    }
    e.render()
}

/// The blocking server's statistics object, then `"async":{…}`, then with
/// Redis `"redis":{…}`.
fn stats_json(cache: &AsyncSessionCache, redis: Option<&RedisHandle>) -> String {
    let mut extra = vec![("async", cache.async_stats().to_json())];
    if let Some(h) = redis {
        let r = h.redis();
        let json = common::redis_json(r.redis_stats(), r.circuit_state(), h.local_hits());
        extra.push(("redis", json));
    }
    cache.stats().to_json_with(&extra)
}
