//! An HTTPS server that resumes sessions through `tls-session-cache`.
//!
//! Its command line is a contract that other tools drive:
//!
//! ```text
//! server [--listen 127.0.0.1:8443] [--cert PEM --key PEM]
//!        [--store memory|redis://HOST:PORT|redis+cluster://H1:P1,H2:P2,…|tiered+redis://HOST:PORT
//!                 |rediss://…|redis+sentinel://S1:P1,S2:P2/NAME|…]
//!        [--seal-key-file PATH] [--redis-timeout-ms MS]
//!        [--redis-ca PEM] [--redis-cert PEM --redis-key PEM] [--redis-password-file PATH]
//!        [--lifetime SECS] [--context STR] [--tickets] [--threads N]
//! ```
//!
//! * prints exactly one line on stdout, `listening on IP:PORT`, when ready;
//!   logs go to stderr;
//! * answers every request with `{"resumed":bool,"protocol":"TLSv1.3",
//!   "session_id":"hex"}`, and `GET /stats` with the cache statistics
//!   (with a Redis store, plus a `"redis":{…}` object of its own counters),
//!   and `GET /metrics` with the same counters in the Prometheus text format;
//! * SIGINT / SIGTERM: stops accepting, finishes in-flight connections,
//!   frees everything and exits 0. Bad arguments exit 2.
//!
//! Stores:
//!
//! * `memory` (default): the embedded `MemoryStore`, this process only.
//!   A `--seal-key-file` is read and checked, then ignored (with a note on
//!   stderr), so one command line fits every store.
//! * `redis://HOST:PORT` / `redis+cluster://H1:P1,H2:P2,…`: a
//!   `RedisStore` shared by a fleet, sealed under the keys of
//!   `--seal-key-file` (one 64-hex-character key per line, the first one
//!   current). Without a key file the server makes an ephemeral key and
//!   warns that no other server can open its sessions.
//! * `tiered+redis://…` (or `tiered+redis+cluster://…`): a local
//!   `MemoryStore` in front of the same Redis store (TLS 1.2 lookups are
//!   answered locally when they can be; TLS 1.3 always goes to Redis).
//! * `redis+sentinel://S1:P1,S2:P2/NAME`: the master Redis Sentinel names,
//!   followed through failovers.
//! * `rediss://…` (and `rediss+cluster://`, `rediss+sentinel://`,
//!   `tiered+rediss://`): the same over TLS, verified against `--redis-ca`
//!   (or the system roots), with the client certificate of `--redis-cert` /
//!   `--redis-key` if given.
//! * `redis://USER:PASSWORD@HOST:PORT/DB`: an ACL user. The password may
//!   instead come from `--redis-password-file` or the environment variable
//!   `TLS_SESSION_CACHE_REDIS_PASSWORD`; it is never logged or shown in
//!   `/stats`. A password Redis refuses at start exits 2.
//!
//! A Redis that is down at start does not stop the server: it warns, and
//! handshakes are full until Redis answers (`--redis-timeout-ms`, default
//! 50, bounds every Redis call).

mod common;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Args, IO_TIMEOUT, Logger};
use openssl::ssl::{Ssl, SslContext, SslStream};
use tls_session_cache::{MemoryStore, SessionStore};
use tls_session_cache_openssl::SessionCache;
use tls_session_cache_openssl::prometheus::Exposition;
use tls_session_cache_redis::{KeyRing, RedisStore, TieredStore, local_hits_metric, redact_url};

/// The `--store` choices in the usage line.
const STORES: &str = "memory|redis://HOST:PORT|rediss://HOST:PORT|redis+cluster://H1:P1,H2:P2,...\
     |redis+sentinel://S1:P1,S2:P2/NAME|tiered+redis://HOST:PORT";

/// The store in use, kept beside the cache for the statistics that only
/// the store's own type knows.
enum StoreHandle {
    Memory,
    Redis(Arc<RedisStore>),
    Tiered(Arc<TieredStore>),
}

impl StoreHandle {
    /// The Redis store's counters as a JSON object, or `None` for memory.
    fn redis_json(&self) -> Option<String> {
        let (redis, local_hits) = match self {
            StoreHandle::Memory => return None,
            StoreHandle::Redis(r) => (r.as_ref(), None),
            StoreHandle::Tiered(t) => (t.remote(), Some(t.local_hits())),
        };
        Some(common::redis_json(
            redis.redis_stats(),
            redis.circuit_state(),
            local_hits,
        ))
    }

    /// Checks at start that Redis answers; a down Redis is only a warning,
    /// refused credentials an error.
    fn check_reachable(&self, spec: &str) -> Result<(), String> {
        let redis = match self {
            StoreHandle::Memory => return Ok(()),
            StoreHandle::Redis(r) => r.as_ref(),
            StoreHandle::Tiered(t) => t.remote(),
        };
        common::startup_check(spec, redis.ping())
    }
}

/// The cache's statistics as JSON; with a Redis store, the store's own
/// counters are added as a last member `"redis":{…}` (the other members and
/// their names are those of `CacheStats::to_json`, unchanged).
fn stats_json(cache: &SessionCache, handle: &StoreHandle) -> String {
    match handle.redis_json() {
        Some(redis) => cache.stats().to_json_with(&[("redis", redis)]),
        None => cache.stats().to_json(),
    }
}

/// The statistics in the Prometheus text format (`GET /metrics`): the
/// cache's counters and, with a Redis store, the store's, labelled with the
/// cache's context.
fn metrics_text(cache: &SessionCache, handle: &StoreHandle) -> String {
    let context = common::context_label(cache);
    let mut e = Exposition::new();
    e.add(&context, cache.stats().metrics());
    match handle {
        StoreHandle::Memory => {}
        StoreHandle::Redis(r) => {
            e.add(&context, r.redis_stats().metrics(r.circuit_state()));
        }
        StoreHandle::Tiered(t) => {
            let r = t.remote();
            e.add(&context, r.redis_stats().metrics(r.circuit_state()));
            e.add(&context, [local_hits_metric(t.local_hits())]);
        }
    }
    e.render()
}

/// A Redis store for `url` (`redis://…` or `redis+cluster://…`).
fn redis_store(url: &str, keys: Option<KeyRing>, args: &Args) -> Result<RedisStore, String> {
    common::redis_builder(
        url,
        keys,
        args,
        "no --seal-key-file: sealing sessions under an ephemeral key made now; other \
         servers cannot open this server's sessions, and this server cannot open them \
         after a restart. Give every server of a fleet the same key file.",
    )?
    .build()
    .map_err(|e| format!("--store {}: {e}", redact_url(url)))
}

/// The one place a store is chosen from the command line.
fn open_store(args: &Args) -> Result<(Box<dyn SessionStore>, StoreHandle), String> {
    let spec = args.store.as_str();
    let keys = common::seal_keys(args)?;
    let is_redis = |s: &str| {
        [
            "redis://",
            "rediss://",
            "redis+cluster://",
            "rediss+cluster://",
        ]
        .iter()
        .chain(&["redis+sentinel://", "rediss+sentinel://"])
        .any(|scheme| s.starts_with(scheme))
    };
    let opened = match spec {
        "memory" => {
            if keys.is_some() {
                eprintln!(
                    "server: note: --seal-key-file is checked but not used with --store memory \
                     (sessions never leave this process)"
                );
            }
            common::note_unused_redis_flags("server", args);
            (
                Box::new(MemoryStore::default()) as Box<dyn SessionStore>,
                StoreHandle::Memory,
            )
        }
        s if is_redis(s) => {
            let store = Arc::new(redis_store(s, keys, args)?);
            (
                Box::new(Arc::clone(&store)) as Box<dyn SessionStore>,
                StoreHandle::Redis(store),
            )
        }
        s if s.strip_prefix("tiered+").is_some_and(is_redis) => {
            let url = &s["tiered+".len()..];
            let remote = redis_store(url, keys, args)?;
            let store = Arc::new(TieredStore::new(MemoryStore::default(), remote));
            (
                Box::new(Arc::clone(&store)) as Box<dyn SessionStore>,
                StoreHandle::Tiered(store),
            )
        }
        s => {
            return Err(format!(
                "--store {}: expected memory, redis://HOST:PORT, rediss://HOST:PORT, \
                 redis+cluster://HOST:PORT,HOST:PORT,…, redis+sentinel://HOST:PORT,…/NAME \
                 or tiered+redis://HOST:PORT",
                redact_url(s)
            ));
        }
    };
    opened.1.check_reachable(spec)?;
    Ok(opened)
}

fn build(args: &Args) -> Result<(SessionCache, StoreHandle, SslContext), String> {
    let (store, handle) = open_store(args)?;
    let cache = common::cache_settings(args)
        .store(store)
        .build()
        .map_err(|e| e.to_string())?;
    let mut acceptor = common::acceptor(args)?;
    cache.install(&mut acceptor).map_err(|e| e.to_string())?;
    Ok((cache, handle, acceptor.build().into_context()))
}

fn main() -> ExitCode {
    Logger::install();
    let args = match common::args_or_usage("server", STORES) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let (cache, handle, ctx) = match build(&args) {
        Ok(x) => x,
        Err(msg) => {
            eprintln!("server: {msg}");
            return ExitCode::from(2);
        }
    };
    match serve(&args, cache, Arc::new(handle), ctx) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve(
    args: &Args,
    cache: SessionCache,
    handle: Arc<StoreHandle>,
    ctx: SslContext,
) -> io::Result<()> {
    let listener = TcpListener::bind(args.listen)?;
    let addr = listener.local_addr()?;

    // Signals: set the flag, then wake every worker blocked in accept with
    // a connection of its own (one per worker; a worker that sees the flag
    // before accepting takes none).
    let stop = Arc::new(AtomicBool::new(false));
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    let signal_handle = signals.handle();
    let stop_on_signal = Arc::clone(&stop);
    let wake = args.threads;
    let signal_thread = std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            log::info!("signal {sig}: stopping");
            stop_on_signal.store(true, Ordering::SeqCst);
            for _ in 0..wake {
                let _ = TcpStream::connect(addr);
            }
        }
    });

    // Workers accept for themselves, as nginx's do: no hand-off from an
    // accept thread (a queue, a lock and a thread switch per connection).
    let mut workers = Vec::with_capacity(args.threads);
    for _ in 0..args.threads {
        let listener = listener.try_clone()?;
        let stop = Arc::clone(&stop);
        let ctx = ctx.clone();
        let cache = cache.clone();
        let handle = Arc::clone(&handle);
        workers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        log::warn!("accept: {e}");
                        continue;
                    }
                };
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Err(e) = serve_connection(&ctx, &cache, &handle, stream) {
                    log::debug!("connection: {e}");
                }
            }
        }));
    }

    common::announce(addr)?;
    log::info!("listening on {addr}, {} worker threads", args.threads);

    // Each worker finishes the connection it is serving, then stops.
    for w in workers {
        let _ = w.join();
    }
    drop(listener);
    signal_handle.close();
    let _ = signal_thread.join();
    log::info!("stopped; {}", stats_json(&cache, &handle));
    Ok(())
}

fn serve_connection(
    ctx: &SslContext,
    cache: &SessionCache,
    handle: &StoreHandle,
    stream: TcpStream,
) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let ssl = Ssl::new(ctx).map_err(io::Error::other)?;
    let mut tls = ssl
        .accept(stream)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let request = read_request(&mut tls);
    let response = common::response(
        &request,
        tls.ssl(),
        || stats_json(cache, handle),
        || metrics_text(cache, handle),
    );
    tls.write_all(response.as_bytes())?;
    tls.flush()?;
    // close_notify, so the client knows the answer is complete (the session
    // is kept either way).
    tls.shutdown()
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(())
}

/// Reads up to the end of the request head, MAX_REQUEST bytes, end of
/// stream or the read timeout, whichever comes first.
fn read_request(tls: &mut SslStream<TcpStream>) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !common::request_read(&buf) {
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf
}
