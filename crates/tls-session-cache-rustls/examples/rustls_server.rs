//! An HTTPS server on rustls that resumes sessions through
//! `tls-session-cache-rustls`.
//!
//! Its command line and answers are the example servers' contract (see
//! `tls-session-cache-openssl/examples/server.rs`, whose argument parsing,
//! Redis setup and certificate loading it shares through
//! `examples/common`):
//!
//! ```text
//! rustls_server [--listen 127.0.0.1:8443] [--cert PEM --key PEM]
//!               [--store memory|redis://HOST:PORT|redis+cluster://H1:P1,H2:P2,…|tiered+redis://HOST:PORT
//!                        |rediss://…|redis+sentinel://S1:P1,S2:P2/NAME|…]
//!               [--seal-key-file PATH] [--redis-timeout-ms MS]
//!               [--redis-ca PEM] [--redis-cert PEM --redis-key PEM] [--redis-password-file PATH]
//!               [--lifetime SECS] [--context STR] [--tickets] [--threads N]
//! ```
//!
//! * prints exactly one line on stdout, `listening on IP:PORT`, when ready;
//!   logs go to stderr;
//! * answers every request with `{"resumed":bool,"protocol":"TLSv1.3",
//!   "session_id":""}` (rustls does not expose the session id: always
//!   empty), `GET /stats` with the cache statistics (the OpenSSL example
//!   server's members where they apply, plus `"redis":{…}` with a Redis
//!   store) and `GET /metrics` in the Prometheus text format;
//! * SIGINT / SIGTERM: stops accepting, finishes in-flight connections and
//!   exits 0. Bad arguments exit 2.
//!
//! Differences from the OpenSSL servers: `--context` defaults to
//! `tls-session-cache-rustls` (an OpenSSL server cannot use a rustls
//! session, nor the reverse); `--tickets` installs rustls's own (ring)
//! stateless ticketer, which bypasses the cache for TLS 1.3 as OpenSSL's
//! does (TLS 1.2 then resumes through tickets too).

#[path = "../../tls-session-cache-openssl/examples/common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Args, IO_TIMEOUT, Logger};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use tls_session_cache::{MemoryStore, SessionStore};
use tls_session_cache_openssl::prometheus::Exposition;
use tls_session_cache_redis::{KeyRing, RedisStore, TieredStore, local_hits_metric, redact_url};
use tls_session_cache_rustls::SessionCache;

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
    fn redis(&self) -> Option<(&RedisStore, Option<u64>)> {
        match self {
            StoreHandle::Memory => None,
            StoreHandle::Redis(r) => Some((r.as_ref(), None)),
            StoreHandle::Tiered(t) => Some((t.remote(), Some(t.local_hits()))),
        }
    }
}

/// The cache's statistics as JSON, with `"redis":{…}` last for a Redis store.
fn stats_json(cache: &SessionCache, handle: &StoreHandle) -> String {
    match handle.redis() {
        Some((r, local_hits)) => {
            let redis = common::redis_json(r.redis_stats(), r.circuit_state(), local_hits);
            cache.stats().to_json_with(&[("redis", redis)])
        }
        None => cache.stats().to_json(),
    }
}

/// The statistics in the Prometheus text format, labelled with the context.
fn metrics_text(cache: &SessionCache, handle: &StoreHandle) -> String {
    let context = String::from_utf8_lossy(cache.context().as_bytes()).into_owned();
    let mut e = Exposition::new();
    e.add(&context, cache.stats().metrics());
    if let Some((r, local_hits)) = handle.redis() {
        e.add(&context, r.redis_stats().metrics(r.circuit_state()));
        if let Some(n) = local_hits {
            e.add(&context, [local_hits_metric(n)]);
        }
    }
    e.render()
}

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
            "redis+sentinel://",
            "rediss+sentinel://",
        ]
        .iter()
        .any(|scheme| s.starts_with(scheme))
    };
    let opened = match spec {
        "memory" => {
            if keys.is_some() {
                eprintln!(
                    "rustls_server: note: --seal-key-file is checked but not used with --store \
                     memory (sessions never leave this process)"
                );
            }
            common::note_unused_redis_flags("rustls_server", args);
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
            let remote = redis_store(&s["tiered+".len()..], keys, args)?;
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
    if let Some((redis, _)) = opened.1.redis() {
        common::startup_check(spec, redis.ping())?;
    }
    Ok(opened)
}

/// The certificate chain and key of `--cert`/`--key` (or a self-signed
/// `localhost` certificate), as rustls wants them.
fn identity(args: &Args) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let (cert, key) = common::load_identity(args)?;
    let cert = cert.to_der().map_err(|e| format!("certificate: {e}"))?;
    let key = key
        .private_key_to_pkcs8()
        .map_err(|e| format!("private key: {e}"))?;
    Ok((
        vec![CertificateDer::from(cert)],
        PrivateKeyDer::from(PrivatePkcs8KeyDer::from(key)),
    ))
}

fn build(args: &Args) -> Result<(SessionCache, StoreHandle, Arc<ServerConfig>), String> {
    let (store, handle) = open_store(args)?;
    let mut settings = SessionCache::builder().store(store);
    if let Some(secs) = args.lifetime {
        settings = settings.lifetime(Duration::from_secs(secs));
    }
    if let Some(ctx) = &args.context {
        settings = settings.context(ctx.as_bytes());
    }
    let cache = settings.build().map_err(|e| e.to_string())?;
    let (certs, key) = identity(args)?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("certificate and key: {e}"))?;
    cache.install(&mut config);
    if args.tickets {
        config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
    }
    Ok((cache, handle, Arc::new(config)))
}

fn main() -> ExitCode {
    Logger::install();
    let args = match common::args_or_usage("rustls_server", STORES) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let (cache, handle, config) = match build(&args) {
        Ok(x) => x,
        Err(msg) => {
            eprintln!("rustls_server: {msg}");
            return ExitCode::from(2);
        }
    };
    match serve(&args, cache, Arc::new(handle), config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rustls_server: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve(
    args: &Args,
    cache: SessionCache,
    handle: Arc<StoreHandle>,
    config: Arc<ServerConfig>,
) -> io::Result<()> {
    let listener = TcpListener::bind(args.listen)?;
    let addr = listener.local_addr()?;

    // Signals: set the flag, then wake every worker blocked in accept.
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

    let mut workers = Vec::with_capacity(args.threads);
    for _ in 0..args.threads {
        let listener = listener.try_clone()?;
        let stop = Arc::clone(&stop);
        let config = Arc::clone(&config);
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
                if let Err(e) = serve_connection(&config, &cache, &handle, stream) {
                    log::debug!("connection: {e}");
                }
            }
        }));
    }

    common::announce(addr)?;
    log::info!("listening on {addr}, {} worker threads", args.threads);
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
    config: &Arc<ServerConfig>,
    cache: &SessionCache,
    handle: &StoreHandle,
    mut stream: TcpStream,
) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut conn = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut stream)?;
    }
    cache.handshake_done(&conn);
    let mut tls = StreamOwned::new(conn, stream);
    let request = read_request(&mut tls);
    let response = response(&request, &tls.conn, cache, handle);
    tls.write_all(response.as_bytes())?;
    // close_notify, so the client knows the answer is complete.
    tls.conn.send_close_notify();
    tls.flush()?;
    Ok(())
}

/// Reads up to the end of the request head, MAX_REQUEST bytes, end of
/// stream or the read timeout, whichever comes first.
fn read_request(tls: &mut StreamOwned<ServerConnection, TcpStream>) -> Vec<u8> {
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

/// The HTTP response: `/stats`, `/metrics`, or the connection's session.
fn response(
    request: &[u8],
    conn: &ServerConnection,
    cache: &SessionCache,
    handle: &StoreHandle,
) -> String {
    let (content_type, body) = if request.starts_with(b"GET /stats") {
        ("application/json", stats_json(cache, handle))
    } else if request.starts_with(b"GET /metrics") {
        (
            tls_session_cache_openssl::prometheus::CONTENT_TYPE,
            metrics_text(cache, handle),
        )
    } else {
        let protocol = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            _ => "unknown",
        };
        let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let body =
            format!("{{\"resumed\":{resumed},\"protocol\":\"{protocol}\",\"session_id\":\"\"}}");
        ("application/json", body)
    };
    format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        body
    )
}
