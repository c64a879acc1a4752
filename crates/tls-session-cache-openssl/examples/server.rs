//! An HTTPS server that resumes sessions through `tls-session-cache`.
//!
//! Its command line is a contract that other tools drive:
//!
//! ```text
//! server [--listen 127.0.0.1:8443] [--cert PEM --key PEM]
//!        [--store memory|redis://HOST:PORT] [--seal-key-file PATH]
//!        [--lifetime SECS] [--context STR] [--tickets] [--threads N]
//! ```
//!
//! * prints exactly one line on stdout, `listening on IP:PORT`, when ready;
//!   logs go to stderr;
//! * answers every request with `{"resumed":bool,"protocol":"TLSv1.3",
//!   "session_id":"hex"}`, and `GET /stats` with the cache statistics;
//! * SIGINT / SIGTERM: stops accepting, finishes in-flight connections,
//!   frees everything and exits 0. Bad arguments exit 2.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssl::pkey::{PKey, Private};
use openssl::ssl::{Ssl, SslAcceptor, SslContext, SslMethod, SslStream};
use openssl::x509::X509;
use tls_session_cache::{MemoryStore, SessionStore};
use tls_session_cache_openssl::{SessionCache, self_signed_localhost};

const USAGE: &str = "usage: server [--listen IP:PORT] [--cert PEM --key PEM] \
[--store memory|redis://HOST:PORT] [--seal-key-file PATH] [--lifetime SECS] \
[--context STR] [--tickets] [--threads N]";

/// Largest request read, and how long a client may take to send it.
const MAX_REQUEST: usize = 8 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Args {
    listen: SocketAddr,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    store: String,
    seal_key_file: Option<PathBuf>,
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

/// The one place a store is chosen from the command line.
fn open_store(
    spec: &str,
    seal_key_file: Option<&PathBuf>,
) -> Result<Box<dyn SessionStore>, String> {
    if seal_key_file.is_some() {
        return Err("--seal-key-file: sealed remote stores arrive with the Redis store, which is not built yet".into());
    }
    match spec {
        "memory" => Ok(Box::new(MemoryStore::default())),
        s if s.starts_with("redis://") => {
            Err(format!("--store {s}: the Redis store is not built yet"))
        }
        s => Err(format!("--store {s}: expected memory or redis://HOST:PORT")),
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

fn build(args: &Args) -> Result<(SessionCache, SslContext), String> {
    let store = open_store(&args.store, args.seal_key_file.as_ref())?;
    let mut cache = SessionCache::builder()
        .store(store)
        .stateless_tickets(args.tickets);
    if let Some(secs) = args.lifetime {
        cache = cache.lifetime(Duration::from_secs(secs));
    }
    if let Some(ctx) = &args.context {
        cache = cache.context(ctx.as_bytes());
    }
    let cache = cache.build().map_err(|e| e.to_string())?;
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
                eprintln!("server: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (cache, ctx) = match build(&args) {
        Ok(x) => x,
        Err(msg) => {
            eprintln!("server: {msg}");
            return ExitCode::from(2);
        }
    };
    match serve(&args, cache, ctx) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve(args: &Args, cache: SessionCache, ctx: SslContext) -> io::Result<()> {
    let listener = TcpListener::bind(args.listen)?;
    let addr = listener.local_addr()?;

    // Signals: set the flag, then wake the blocking accept with a connection.
    let stop = Arc::new(AtomicBool::new(false));
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    let signal_handle = signals.handle();
    let stop_on_signal = Arc::clone(&stop);
    let signal_thread = std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            log::info!("signal {sig}: stopping");
            stop_on_signal.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(addr);
        }
    });

    // Workers take connections from one queue.
    let (tx, rx) = mpsc::channel::<TcpStream>();
    let rx = Arc::new(Mutex::new(rx));
    let workers: Vec<_> = (0..args.threads)
        .map(|_| {
            let rx = Arc::clone(&rx);
            let ctx = ctx.clone();
            let cache = cache.clone();
            std::thread::spawn(move || {
                loop {
                    let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(stream) = next else { break };
                    if let Err(e) = handle(&ctx, &cache, stream) {
                        log::debug!("connection: {e}");
                    }
                }
            })
        })
        .collect();

    {
        let mut out = io::stdout().lock();
        writeln!(out, "listening on {addr}")?;
        out.flush()?;
    }
    log::info!("listening on {addr}, {} worker threads", args.threads);

    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match stream {
            Ok(s) => {
                if tx.send(s).is_err() {
                    break;
                }
            }
            Err(e) => log::warn!("accept: {e}"),
        }
    }
    drop(listener);
    drop(tx); // workers finish the queue, then see the channel closed
    for w in workers {
        let _ = w.join();
    }
    signal_handle.close();
    let _ = signal_thread.join();
    log::info!("stopped; {}", cache.stats().to_json());
    Ok(())
}

fn handle(ctx: &SslContext, cache: &SessionCache, stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let ssl = Ssl::new(ctx).map_err(io::Error::other)?;
    let mut tls = ssl
        .accept(stream)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let request = read_request(&mut tls);
    let body = if request.starts_with(b"GET /stats") {
        cache.stats().to_json()
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
    let response = format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        body
    );
    tls.write_all(response.as_bytes())?;
    tls.flush()?;
    // close_notify: without it OpenSSL would drop the session (remove callback).
    tls.shutdown()
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(())
}

/// Reads up to the end of the request head, MAX_REQUEST bytes, end of
/// stream or the read timeout, whichever comes first.
fn read_request(tls: &mut SslStream<TcpStream>) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while buf.len() < MAX_REQUEST && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf
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
