//! What the two example servers share: this crate's blocking
//! `examples/server.rs` (`mod common;`) and `tls-session-cache-tokio`'s
//! `examples/async_server.rs` (which includes this file with `#[path]`).
//! Their command line and answers are one contract (see `server.rs`); each
//! server chooses and opens its own stores.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslAcceptorBuilder, SslMethod, SslRef};
use openssl::x509::X509;
use tls_session_cache::StoreError;
use tls_session_cache_openssl::{SessionCache, SessionCacheBuilder, self_signed_localhost};
use tls_session_cache_redis::{
    AccessDenied, CircuitState, KeyRing, RedisStats, RedisStore, RedisStoreBuilder, TlsOptions,
    redact_url,
};

/// Largest request read.
pub const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take: to send its request (blocking server), or
/// for the whole connection (async server).
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The command line.
#[derive(Debug)]
pub struct Args {
    pub listen: SocketAddr,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub store: String,
    pub seal_key_file: Option<PathBuf>,
    /// `--allow-shared-seal-key-file`: accept a key file others can
    /// access, or owned by another user, with a warning.
    pub allow_shared_seal_key_file: bool,
    pub redis_timeout: Option<Duration>,
    /// `--redis-ca`: the CA file a `rediss://` Redis's certificate must chain to.
    pub redis_ca: Option<PathBuf>,
    /// `--redis-cert` / `--redis-key`: a client certificate for TLS to Redis.
    pub redis_cert: Option<PathBuf>,
    pub redis_key: Option<PathBuf>,
    /// `--redis-password-file`: the Redis password, first line of this file.
    pub redis_password_file: Option<PathBuf>,
    pub lifetime: Option<u64>,
    pub context: Option<String>,
    pub tickets: bool,
    pub threads: usize,
}

/// Parses the process's arguments. On bad ones (or `--help`) prints
/// `PROGRAM: message` and the usage line (whose `--store` choices are
/// `stores`) to stderr and returns exit status 2.
pub fn args_or_usage(program: &str, stores: &str) -> Result<Args, ExitCode> {
    parse_args(std::env::args().skip(1)).map_err(|msg| {
        if !msg.is_empty() {
            eprintln!("{program}: {msg}");
        }
        eprintln!(
            "usage: {program} [--listen IP:PORT] [--cert PEM --key PEM] [--store {stores}] \
             [--seal-key-file PATH [--allow-shared-seal-key-file]] [--redis-timeout-ms MS] [--redis-ca PEM] \
             [--redis-cert PEM --redis-key PEM] [--redis-password-file PATH] \
             [--lifetime SECS] [--context STR] [--tickets] [--threads N]"
        );
        ExitCode::from(2)
    })
}

/// The arguments, or what is wrong with them (empty for `--help`).
fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
        cert: None,
        key: None,
        store: "memory".into(),
        seal_key_file: None,
        allow_shared_seal_key_file: false,
        redis_timeout: None,
        redis_ca: None,
        redis_cert: None,
        redis_key: None,
        redis_password_file: None,
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
            "--allow-shared-seal-key-file" => a.allow_shared_seal_key_file = true,
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
            "--redis-ca" => a.redis_ca = Some(value()?.into()),
            "--redis-cert" => a.redis_cert = Some(value()?.into()),
            "--redis-key" => a.redis_key = Some(value()?.into()),
            "--redis-password-file" => a.redis_password_file = Some(value()?.into()),
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
    if a.redis_cert.is_some() != a.redis_key.is_some() {
        return Err("--redis-cert and --redis-key go together".into());
    }
    Ok(a)
}

/// A cache builder set up from `--tickets`, `--lifetime` and `--context`.
pub fn cache_settings(args: &Args) -> SessionCacheBuilder {
    let mut settings = SessionCache::builder().stateless_tickets(args.tickets);
    if let Some(secs) = args.lifetime {
        settings = settings.lifetime(Duration::from_secs(secs));
    }
    if let Some(ctx) = &args.context {
        settings = settings.context(ctx.as_bytes());
    }
    settings
}

/// A TLS server acceptor holding the certificate and key of `--cert` and
/// `--key`, or a self-signed certificate for `localhost` made now.
pub fn acceptor(args: &Args) -> Result<SslAcceptorBuilder, String> {
    let (cert, key) = load_identity(args)?;
    let mut acceptor =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(|e| e.to_string())?;
    acceptor.set_certificate(&cert).map_err(|e| e.to_string())?;
    acceptor.set_private_key(&key).map_err(|e| e.to_string())?;
    acceptor.check_private_key().map_err(|e| e.to_string())?;
    Ok(acceptor)
}

/// The certificate and key of `--cert` and `--key`, or a self-signed
/// certificate for `localhost` made now.
pub fn load_identity(args: &Args) -> Result<(X509, PKey<Private>), String> {
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

/// The keys of `--seal-key-file`, if one was given.
pub fn seal_keys(args: &Args) -> Result<Option<KeyRing>, String> {
    args.seal_key_file
        .as_ref()
        .map(|path| {
            if args.allow_shared_seal_key_file {
                KeyRing::from_file_allow_shared(path)
            } else {
                KeyRing::from_file(path)
            }
            .map_err(|e| format!("--seal-key-file: {e}"))
        })
        .transpose()
}

/// The environment variable a Redis password may come from (when neither
/// the URL nor `--redis-password-file` gives one).
pub const PASSWORD_ENV: &str = "TLS_SESSION_CACHE_REDIS_PASSWORD";

/// The Redis password of `--redis-password-file` (its first line) or of
/// [`PASSWORD_ENV`]; refused when the URL holds one too.
fn redis_password(url: &str, args: &Args) -> Result<Option<String>, String> {
    let from_file = match &args.redis_password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--redis-password-file {}: {e}", path.display()))?;
            let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
            if line.is_empty() {
                return Err(format!(
                    "--redis-password-file {}: the first line is empty",
                    path.display()
                ));
            }
            Some(line.to_string())
        }
        None => None,
    };
    let password = from_file.or_else(|| std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()));
    if password.is_some() && redact_url(url) != url {
        return Err(format!(
            "--store {}: the URL holds a password and --redis-password-file or {PASSWORD_ENV} \
             gives another; give it once",
            redact_url(url)
        ));
    }
    Ok(password)
}

/// The TLS settings of `--redis-ca`, `--redis-cert` and `--redis-key`.
fn redis_tls(args: &Args) -> Option<TlsOptions> {
    if args.redis_ca.is_none() && args.redis_cert.is_none() {
        return None;
    }
    let mut tls = TlsOptions::new();
    if let Some(ca) = &args.redis_ca {
        tls = tls.ca_file(ca);
    }
    if let (Some(cert), Some(key)) = (&args.redis_cert, &args.redis_key) {
        tls = tls.client_identity(cert, key);
    }
    Some(tls)
}

/// Notes on stderr the Redis flags that a `memory` store does not use.
pub fn note_unused_redis_flags(program: &str, args: &Args) {
    let unused = [
        ("--redis-timeout-ms", args.redis_timeout.is_some()),
        ("--redis-ca", args.redis_ca.is_some()),
        ("--redis-cert", args.redis_cert.is_some()),
        ("--redis-password-file", args.redis_password_file.is_some()),
    ];
    for (flag, given) in unused {
        if given {
            eprintln!("{program}: note: {flag} is not used with --store memory");
        }
    }
}

/// A Redis store builder for `url`, sealing under `keys` (or, with
/// `ephemeral_warning` logged, under a key made now) with the timeout of
/// `--redis-timeout-ms`, the TLS files of `--redis-ca` / `--redis-cert` /
/// `--redis-key`, and the password of `--redis-password-file` or
/// [`PASSWORD_ENV`].
pub fn redis_builder(
    url: &str,
    keys: Option<KeyRing>,
    args: &Args,
    ephemeral_warning: &str,
) -> Result<RedisStoreBuilder, String> {
    let password = redis_password(url, args)?;
    let keys = match keys {
        Some(keys) => keys,
        None => {
            log::warn!("{ephemeral_warning}");
            KeyRing::generate().map_err(|e| e.to_string())?
        }
    };
    let mut builder = RedisStore::builder(url).seal_keys(keys);
    if let Some(t) = args.redis_timeout {
        builder = builder.timeouts(t);
    }
    if let Some(tls) = redis_tls(args) {
        builder = builder.tls(tls);
    }
    if let Some(password) = password {
        builder = builder.password(password);
    }
    Ok(builder)
}

/// What the start-up `PING` of a Redis store means: `Ok` when Redis
/// answered (logged), `Ok` with a warning when it did not (the server
/// starts; handshakes are full until it answers), `Err` when it refused
/// the credentials (a configuration error: the server does not start).
pub fn startup_check(url: &str, ping: Result<(), StoreError>) -> Result<(), String> {
    let shown = redact_url(url);
    match ping {
        Ok(()) => {
            log::info!("session store {shown}: connected");
            Ok(())
        }
        Err(StoreError::Backend(e)) if e.is::<AccessDenied>() => Err(format!(
            "--store {shown}: {e}; check the user and the password (URL, \
             --redis-password-file or {PASSWORD_ENV})"
        )),
        Err(e) => {
            log::warn!(
                "session store {shown} does not answer ({e}); starting anyway: handshakes are \
                 full (no resumption) until it answers, and each failure is counted in /stats"
            );
            Ok(())
        }
    }
}

/// A Redis store's own counters as the `"redis"` member of `/stats`, with
/// `local_hits` for a tiered store.
pub fn redis_json(stats: RedisStats, circuit: CircuitState, local_hits: Option<u64>) -> String {
    let circuit = match circuit {
        CircuitState::Closed => "closed",
        CircuitState::Open => "open",
        CircuitState::HalfOpen => "half_open",
    };
    let mut json = format!(
        concat!(
            "{{\"timeouts\":{},\"circuit_open_rejections\":{},\"circuit_opens\":{},",
            "\"corrupt\":{},\"unknown_key\":{},\"dropped_writes\":{},",
            "\"queued_writes\":{},\"fallback_lookups\":{},\"fallback_hits\":{},",
            "\"fallback_refused\":{},\"circuit\":\"{}\",",
            "\"tls_errors\":{},\"auth_errors\":{},\"master_changes\":{}"
        ),
        stats.timeouts,
        stats.circuit_open_rejections,
        stats.circuit_opens,
        stats.corrupt,
        stats.unknown_key,
        stats.dropped_writes,
        stats.queued_writes,
        stats.fallback_lookups,
        stats.fallback_hits,
        stats.fallback_refused,
        circuit,
        stats.tls_errors,
        stats.auth_errors,
        stats.master_changes,
    );
    if let Some(n) = local_hits {
        json.push_str(&format!(",\"local_hits\":{n}"));
    }
    json.push('}');
    json
}

/// Prints the one line on stdout that says the server is ready.
pub fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {addr}")?;
    out.flush()
}

/// Whether enough of a request has been read: its head is complete, or it
/// has reached [`MAX_REQUEST`] bytes.
pub fn request_read(buf: &[u8]) -> bool {
    buf.len() >= MAX_REQUEST || buf.windows(4).any(|w| w == b"\r\n\r\n")
}

/// The HTTP response to `request` on the connection `ssl`: `stats()` for
/// `GET /stats`, `metrics()` (Prometheus text format) for `GET /metrics`,
/// else the connection's session as
/// `{"resumed":bool,"protocol":"TLSv1.3","session_id":"hex"}`.
pub fn response(
    request: &[u8],
    ssl: &SslRef,
    stats: impl FnOnce() -> String,
    metrics: impl FnOnce() -> String,
) -> String {
    let (content_type, body) = if request.starts_with(b"GET /stats") {
        ("application/json", stats())
    } else if request.starts_with(b"GET /metrics") {
        (
            tls_session_cache_openssl::prometheus::CONTENT_TYPE,
            metrics(),
        )
    } else {
        let id = ssl.session().map(|s| hex(s.id())).unwrap_or_default();
        let body = format!(
            "{{\"resumed\":{},\"protocol\":\"{}\",\"session_id\":\"{}\"}}",
            ssl.session_reused(),
            ssl.version_str(),
            id
        );
        ("application/json", body)
    };
    format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        body
    )
}

/// The `context` label of `/metrics`: the cache's session-id context.
pub fn context_label(cache: &SessionCache) -> String {
    String::from_utf8_lossy(cache.context().as_bytes()).into_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Logs to stderr; level from `RUST_LOG` (error, warn, info, debug), default info.
pub struct Logger(log::LevelFilter);

impl Logger {
    /// Installs the logger for the process.
    pub fn install() {
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
