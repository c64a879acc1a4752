//! An async (tokio) HTTPS server that resumes sessions through
//! `tls-session-cache-tokio`: lookups never block an executor thread.
//!
//! Same command line and response contract as the blocking example server
//! of `tls-session-cache-openssl` (`examples/server.rs`):
//!
//! ```text
//! async_server [--listen 127.0.0.1:8443] [--cert PEM --key PEM]
//!              [--store memory|redis://HOST:PORT] [--seal-key-file PATH]
//!              [--redis-timeout-ms MS] [--lifetime SECS] [--context STR]
//!              [--tickets] [--threads N]
//! ```
//!
//! * prints exactly one line on stdout, `listening on IP:PORT`, when ready;
//!   logs go to stderr;
//! * answers every request with `{"resumed":bool,"protocol":"TLSv1.3",
//!   "session_id":"hex"}`, and `GET /stats` with the cache statistics —
//!   the blocking server's members, then `"async":{…}` (the async layer's
//!   counters) and, with Redis, `"redis":{…}`;
//! * SIGINT / SIGTERM: stops accepting, finishes in-flight connections,
//!   flushes queued session writes, exits 0. Bad arguments exit 2.
//!
//! `--threads N` is the number of tokio worker threads (default 2).
//! Stores: `memory` and `redis://HOST:PORT` (the async Redis store, sealed
//! under `--seal-key-file`, or an ephemeral key with a warning). Redis
//! Cluster and tiered stores are not available to the async server yet
//! (exit 2). Each connection's new sessions are flushed to the store before
//! its response is sent, so a client's next connection finds them (as with
//! the blocking server, whose store writes are synchronous).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use openssl::pkey::{PKey, Private};
use openssl::ssl::{Ssl, SslAcceptor, SslContext, SslMethod};
use openssl::x509::X509;
use tls_session_cache::MemoryStore;
use tls_session_cache_openssl::{SessionCache, self_signed_localhost};
use tls_session_cache_redis::{AsyncRedisStore, CircuitState, KeyRing, RedisStore};
use tls_session_cache_tokio::{AsyncSessionCache, AsyncSessionStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

const USAGE: &str = "usage: async_server [--listen IP:PORT] [--cert PEM --key PEM] \
[--store memory|redis://HOST:PORT] [--seal-key-file PATH] [--redis-timeout-ms MS] \
[--lifetime SECS] [--context STR] [--tickets] [--threads N]";

/// Largest request read, and how long a connection may take in all.
const MAX_REQUEST: usize = 8 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Args {
    listen: SocketAddr,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    store: String,
    seal_key_file: Option<PathBuf>,
    redis_timeout: Option<Duration>,
    lifetime: Option<u64>,
    context: Option<String>,
    tickets: bool,
    threads: usize,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
        cert: None,
        key: None,
        store: "memory".into(),
        seal_key_file: None,
        redis_timeout: None,
        lifetime: None,
        context: None,
        tickets: false,
        threads: 2,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                a.listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
            }
            "--cert" => a.cert = Some(value()?.into()),
            "--key" => a.key = Some(value()?.into()),
            "--store" => a.store = value()?,
            "--seal-key-file" => a.seal_key_file = Some(value()?.into()),
            "--redis-timeout-ms" => {
                let v = value()?;
                let ms: u64 = v
                    .parse()
                    .map_err(|e| format!("--redis-timeout-ms {v}: {e}"))?;
                if ms == 0 {
                    return Err("--redis-timeout-ms must be at least 1".into());
                }
                a.redis_timeout = Some(Duration::from_millis(ms));
            }
            "--lifetime" => {
                let v = value()?;
                a.lifetime = Some(v.parse().map_err(|e| format!("--lifetime {v}: {e}"))?);
            }
            "--context" => a.context = Some(value()?),
            "--tickets" => a.tickets = true,
            "--threads" => {
                let v = value()?;
                a.threads = v.parse().map_err(|e| format!("--threads {v}: {e}"))?;
                if a.threads == 0 {
                    return Err("--threads must be at least 1".into());
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.cert.is_some() != a.key.is_some() {
        return Err("--cert and --key go together".into());
    }
    Ok(a)
}

/// The store chosen on the command line, and the Redis store if it is one
/// (for its own counters).
type Opened = (Arc<dyn AsyncSessionStore>, Option<Arc<AsyncRedisStore>>);

fn open_store(args: &Args) -> Result<Opened, String> {
    let keys = args
        .seal_key_file
        .as_ref()
        .map(|p| KeyRing::from_file(p).map_err(|e| format!("--seal-key-file: {e}")))
        .transpose()?;
    match args.store.as_str() {
        "memory" => {
            if keys.is_some() {
                eprintln!(
                    "async_server: note: --seal-key-file is checked but not used with --store \
                     memory (sessions never leave this process)"
                );
            }
            Ok((Arc::new(MemoryStore::default()), None))
        }
        url if url.starts_with("redis://") => {
            let keys = match keys {
                Some(k) => k,
                None => {
                    log::warn!(
                        "no --seal-key-file: sealing sessions under an ephemeral key made now; \
                         other servers cannot open this server's sessions"
                    );
                    KeyRing::generate().map_err(|e| e.to_string())?
                }
            };
            let mut b = RedisStore::builder(url).seal_keys(keys);
            if let Some(t) = args.redis_timeout {
                b = b.timeouts(t);
            }
            let store = Arc::new(b.build_async().map_err(|e| format!("--store {url}: {e}"))?);
            Ok((
                Arc::clone(&store) as Arc<dyn AsyncSessionStore>,
                Some(store),
            ))
        }
        s => Err(format!(
            "--store {s}: the async server supports memory and redis://HOST:PORT"
        )),
    }
}

fn load_identity(args: &Args) -> Result<(X509, PKey<Private>), String> {
    match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            let cert_pem = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
            let key_pem = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
            let cert = X509::from_pem(&cert_pem).map_err(|e| format!("{}: {e}", cert.display()))?;
            let key = PKey::private_key_from_pem(&key_pem)
                .map_err(|e| format!("{}: {e}", key.display()))?;
            Ok((cert, key))
        }
        _ => self_signed_localhost().map_err(|e| format!("self-signed certificate: {e}")),
    }
}

/// Builds the cache (inside the runtime: it spawns its writer task) and the context.
fn build(
    args: &Args,
    store: Arc<dyn AsyncSessionStore>,
) -> Result<(AsyncSessionCache, SslContext), String> {
    let mut settings = SessionCache::builder().stateless_tickets(args.tickets);
    if let Some(secs) = args.lifetime {
        settings = settings.lifetime(Duration::from_secs(secs));
    }
    if let Some(ctx) = &args.context {
        settings = settings.context(ctx.as_bytes());
    }
    let cache = AsyncSessionCache::builder_arc(store)
        .session_cache(settings)
        .build()
        .map_err(|e| e.to_string())?;
    let (cert, key) = load_identity(args)?;
    let mut acceptor =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(|e| e.to_string())?;
    acceptor.set_certificate(&cert).map_err(|e| e.to_string())?;
    acceptor.set_private_key(&key).map_err(|e| e.to_string())?;
    acceptor.check_private_key().map_err(|e| e.to_string())?;
    cache.install(&mut acceptor).map_err(|e| e.to_string())?;
    Ok((cache, acceptor.build().into_context()))
}

fn main() -> ExitCode {
    Logger::install();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("async_server: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
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
    if let Some(r) = &redis {
        match r.ping().await {
            Ok(()) => log::info!("session store {}: connected", args.store),
            Err(e) => log::warn!(
                "session store {} does not answer ({e}); starting anyway: handshakes are full \
                 until it answers",
                args.store
            ),
        }
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
    redis: Option<Arc<AsyncRedisStore>>,
    ctx: SslContext,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {addr}")?;
        out.flush()?;
    }
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
                            serve_connection(&cache, redis.as_deref(), &ctx, tcp),
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
    log::info!("stopped; {}", stats_json(&cache, redis.as_deref()));
    Ok(())
}

async fn serve_connection(
    cache: &AsyncSessionCache,
    redis: Option<&AsyncRedisStore>,
    ctx: &SslContext,
    tcp: TcpStream,
) -> Result<(), String> {
    tcp.set_nodelay(true).ok();
    let ssl = Ssl::new(ctx).map_err(|e| e.to_string())?;
    let mut tls = cache.accept(ssl, tcp).await.map_err(|e| e.to_string())?;
    let request = read_request(&mut tls).await;
    let body = if request.starts_with(b"GET /stats") {
        stats_json(cache, redis)
    } else {
        let ssl = tls.ssl();
        let id = ssl.session().map(|s| hex(s.id())).unwrap_or_default();
        format!(
            "{{\"resumed\":{},\"protocol\":\"{}\",\"session_id\":\"{}\"}}",
            ssl.session_reused(),
            ssl.version_str(),
            id
        )
    };
    // This connection's new sessions (TLS 1.2: during the handshake; TLS
    // 1.3: the tickets, sent by the end of it) are stored before the client
    // sees the response and can come back.
    cache.flush().await;
    let response = format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        body
    );
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
    while buf.len() < MAX_REQUEST && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf
}

/// The blocking server's statistics object, then `"async":{…}`, then with
/// Redis `"redis":{…}`.
fn stats_json(cache: &AsyncSessionCache, redis: Option<&AsyncRedisStore>) -> String {
    let json = cache.stats().to_json();
    let Some(head) = json.strip_suffix('}') else {
        return json;
    };
    let mut out = format!("{head},\"async\":{}", cache.async_stats().to_json());
    if let Some(r) = redis {
        let s = r.redis_stats();
        let circuit = match r.circuit_state() {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        };
        out.push_str(&format!(
            concat!(
                ",\"redis\":{{\"timeouts\":{},\"circuit_open_rejections\":{},\"circuit_opens\":{},",
                "\"corrupt\":{},\"unknown_key\":{},\"dropped_writes\":{},",
                "\"queued_writes\":{},\"circuit\":\"{}\"}}"
            ),
            s.timeouts,
            s.circuit_open_rejections,
            s.circuit_opens,
            s.corrupt,
            s.unknown_key,
            s.dropped_writes,
            s.queued_writes,
            circuit,
        ));
    }
    out.push('}');
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Logs to stderr; level from `RUST_LOG` (error, warn, info, debug), default info.
struct Logger(log::LevelFilter);

impl Logger {
    fn install() {
        let level = match std::env::var("RUST_LOG").as_deref() {
            Ok("error") => log::LevelFilter::Error,
            Ok("warn") => log::LevelFilter::Warn,
            Ok("debug") => log::LevelFilter::Debug,
            Ok("trace") => log::LevelFilter::Trace,
            Ok("off") => log::LevelFilter::Off,
            _ => log::LevelFilter::Info,
        };
        let logger: &'static Logger = Box::leak(Box::new(Logger(level)));
        if log::set_logger(logger).is_ok() {
            log::set_max_level(level);
        }
    }
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= self.0
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("[{}] {}", r.level(), r.args());
        }
    }
    fn flush(&self) {}
}
