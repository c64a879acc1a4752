//! TLS to Redis (`rediss://`), on rust-openssl — the OpenSSL the server
//! already links.
//!
//! **Why not redis-rs's own TLS** (`tls-native-tls`): its blocking
//! connection runs the TLS handshake on a socket with no read timeout (the
//! timeout is set only once the handshake is done), so a Redis that
//! accepts TCP but does not answer — a frozen process, whose kernel still
//! completes the TCP handshake — holds a handshake callback forever. Here
//! every step (TCP connect, TLS handshake, `AUTH`, `SELECT`, each command)
//! runs under the call's deadline, as for plain TCP. Commands are still
//! redis-rs's: `TlsConnection` implements its `ConnectionLike`, and
//! replies are read with its parser.
//!
//! Verification: the server's certificate must chain to the CA file given
//! ([`TlsOptions::ca_file`], which *replaces* the system roots) or, without
//! one, to the system roots (OpenSSL's default paths); its name must match
//! the host of the URL (an IP address must be in the certificate's IP
//! SANs), or [`TlsOptions::server_name`] when given. SNI carries that name
//! (not sent for an IP address, as RFC 6066 requires). TLS 1.2 at least.

use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslStream, SslVerifyMode, SslVersion};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use redis::{ConnectionLike, ErrorKind, Parser, RedisConnectionInfo, RedisError, Value};

use crate::backend::remaining;

/// TLS settings of a `rediss://` store. Without any, the server's
/// certificate is checked against the system roots.
///
/// ```
/// use tls_session_cache_redis::TlsOptions;
/// let tls = TlsOptions::new()
///     .ca_file("/etc/redis/ca.pem")
///     .client_identity("/etc/tls/redis-client.pem", "/etc/tls/redis-client.key");
/// ```
#[derive(Clone, Default)]
pub struct TlsOptions {
    ca_file: Option<PathBuf>,
    identity: Option<(PathBuf, PathBuf)>,
    server_name: Option<String>,
    insecure: bool,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.identity.as_ref().map(|i| &i.0))
            .field("server_name", &self.server_name)
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl TlsOptions {
    /// Verify against the system roots, no client certificate.
    pub fn new() -> Self {
        Self::default()
    }
    /// Trust only the CA certificates (PEM, one or more) in this file
    /// instead of the system roots.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }
    /// Present this client certificate (PEM chain, leaf first) and key (PEM).
    pub fn client_identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some((cert.into(), key.into()));
        self
    }
    /// The name to send in SNI and to verify the certificate against,
    /// instead of the URL's host (or, with Sentinel, the address it reports).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }
    /// **Accepts any certificate**: traffic is encrypted but anyone on the
    /// path can impersonate Redis and read the sessions' master secrets.
    /// Logged as a warning when the store is built. For tests only.
    pub fn danger_accept_invalid_certificates(mut self) -> Self {
        self.insecure = true;
        self
    }
}

/// Why the TLS settings could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A file did not hold what it should (PEM certificates, a PEM key).
    #[error("{path}: {what}: {source}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was expected.
        what: &'static str,
        /// OpenSSL's complaint.
        #[source]
        source: openssl::error::ErrorStack,
    },
    /// The CA file holds no certificate.
    #[error("{0}: no certificate in the CA file")]
    EmptyCaFile(PathBuf),
    /// The client key does not belong to the client certificate.
    #[error("the client key {key} does not match the certificate {cert}")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// OpenSSL could not set up a TLS client context.
    #[error("TLS client setup: {0}")]
    Setup(#[source] openssl::error::ErrorStack),
}

/// The description of a failed TLS handshake's [`RedisError`] (kind `Io`,
/// so it counts as Redis being unavailable; the detail names the peer and
/// OpenSSL's reason, with the certificate verification result).
pub(crate) const HANDSHAKE_FAILED: &str = "TLS handshake with Redis failed";

/// A built TLS client configuration.
pub(crate) struct Tls {
    connector: SslConnector,
    server_name: Option<String>,
    insecure: bool,
}

impl Tls {
    /// Reads the files and makes the OpenSSL context.
    pub(crate) fn new(options: &TlsOptions) -> Result<Tls, TlsError> {
        let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(TlsError::Setup)?;
        b.set_min_proto_version(Some(SslVersion::TLS1_2))
            .map_err(TlsError::Setup)?;
        if let Some(path) = &options.ca_file {
            let pem = read(path)?;
            let certs = X509::stack_from_pem(&pem).map_err(|source| TlsError::Pem {
                path: path.clone(),
                what: "expected PEM certificates",
                source,
            })?;
            if certs.is_empty() {
                return Err(TlsError::EmptyCaFile(path.clone()));
            }
            let mut store = X509StoreBuilder::new().map_err(TlsError::Setup)?;
            for cert in certs {
                store.add_cert(cert).map_err(TlsError::Setup)?;
            }
            // Replaces the default verify paths SslConnector set.
            b.set_cert_store(store.build());
        }
        if let Some((cert, key)) = &options.identity {
            let chain = X509::stack_from_pem(&read(cert)?).map_err(|source| TlsError::Pem {
                path: cert.clone(),
                what: "expected a PEM certificate chain",
                source,
            })?;
            let mut chain = chain.into_iter();
            let leaf = chain
                .next()
                .ok_or_else(|| TlsError::EmptyCaFile(cert.clone()))?;
            b.set_certificate(&leaf).map_err(TlsError::Setup)?;
            for extra in chain {
                b.add_extra_chain_cert(extra).map_err(TlsError::Setup)?;
            }
            let pkey =
                openssl::pkey::PKey::private_key_from_pem(&read(key)?).map_err(|source| {
                    TlsError::Pem {
                        path: key.clone(),
                        what: "expected a PEM private key",
                        source,
                    }
                })?;
            b.set_private_key(&pkey).map_err(TlsError::Setup)?;
            b.check_private_key().map_err(|_| TlsError::KeyMismatch {
                cert: cert.clone(),
                key: key.clone(),
            })?;
        }
        if options.insecure {
            log::warn!(
                "redis session store: TLS certificate verification is OFF \
                 (danger_accept_invalid_certificates): anyone on the network path can \
                 impersonate Redis and read the sessions' master secrets"
            );
            b.set_verify(SslVerifyMode::NONE);
        }
        Ok(Tls {
            connector: b.build(),
            server_name: options.server_name.clone(),
            insecure: options.insecure,
        })
    }

    /// An `Ssl` for a connection to `host`, with SNI and name checks set.
    pub(crate) fn ssl(&self, host: &str) -> Result<openssl::ssl::Ssl, RedisError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let mut config = self
            .connector
            .configure()
            .map_err(|e| RedisError::from(io::Error::other(e)))?;
        config.set_verify_hostname(!self.insecure);
        // An IP address is checked against the IP SANs, and not sent as SNI.
        config
            .into_ssl(name)
            .map_err(|e| RedisError::from(io::Error::other(e)))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A handshake failure as a Redis error: a timeout when the socket's
/// timeout ran out, else a [`TlsHandshakeError`] inside an i/o error.
pub(crate) fn handshake_failure(
    peer: &str,
    error: &openssl::ssl::Error,
    verify: Option<openssl::x509::X509VerifyResult>,
) -> RedisError {
    if let Some(io) = error.io_error()
        && matches!(
            io.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
    {
        return RedisError::from(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("TLS handshake with {peer} timed out"),
        ));
    }
    let reason = match verify {
        Some(v) if v != openssl::x509::X509VerifyResult::OK => {
            format!("certificate verify failed: {}", v.error_string())
        }
        _ => error.to_string(),
    };
    RedisError::from((ErrorKind::Io, HANDSHAKE_FAILED, format!("{peer}: {reason}")))
}

/// Whether `e` is a failed TLS handshake.
pub(crate) fn is_handshake_failure(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Io && e.to_string().starts_with(HANDSHAKE_FAILED)
}

/// A blocking TLS connection to one Redis server.
pub(crate) struct TlsConnection {
    stream: SslStream<TcpStream>,
    parser: Parser,
    db: i64,
    open: bool,
}

impl TlsConnection {
    /// TCP connect, TLS handshake, `AUTH` and `SELECT`, all before `deadline`.
    pub(crate) fn connect(
        tls: &Tls,
        host: &str,
        port: u16,
        settings: &RedisConnectionInfo,
        deadline: Instant,
    ) -> Result<TlsConnection, RedisError> {
        let peer = format!("{host}:{port}");
        let mut last = None;
        let mut tcp = None;
        for addr in (host, port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, remaining(deadline)?) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = match (tcp, last) {
            (Some(t), _) => t,
            (None, Some(e)) => return Err(e.into()),
            (None, None) => {
                return Err(RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "could not resolve to any addresses",
                )));
            }
        };
        tcp.set_nodelay(true)?;
        let left = remaining(deadline)?;
        tcp.set_read_timeout(Some(left))?;
        tcp.set_write_timeout(Some(left))?;
        let stream = match tls.ssl(host)?.connect(tcp) {
            Ok(s) => s,
            Err(HandshakeError::SetupFailure(e)) => {
                return Err(RedisError::from(io::Error::other(e)));
            }
            Err(HandshakeError::Failure(mid) | HandshakeError::WouldBlock(mid)) => {
                let verify = Some(mid.ssl().verify_result());
                return Err(handshake_failure(&peer, mid.error(), verify));
            }
        };
        let mut con = TlsConnection {
            stream,
            parser: Parser::new(),
            db: settings.db(),
            open: true,
        };
        con.setup(settings, deadline)?;
        Ok(con)
    }

    /// `AUTH` and `SELECT`, as redis-rs does for its own connections.
    fn setup(
        &mut self,
        settings: &RedisConnectionInfo,
        deadline: Instant,
    ) -> Result<(), RedisError> {
        if let Some(password) = settings.password() {
            self.set_read_timeout(remaining(deadline)?)?;
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            auth.arg(password);
            match auth.query::<()>(self) {
                Ok(()) => {}
                Err(e) if e.is_io_error() || e.is_timeout() => return Err(e),
                Err(e) => {
                    return Err(RedisError::from((
                        ErrorKind::AuthenticationFailed,
                        "Password authentication failed",
                        e.code().unwrap_or("").to_string(),
                    )));
                }
            }
        }
        if settings.db() != 0 {
            self.set_read_timeout(remaining(deadline)?)?;
            redis::cmd("SELECT").arg(settings.db()).query::<()>(self)?;
        }
        Ok(())
    }

    /// The socket's read timeout.
    pub(crate) fn set_read_timeout(&self, t: Duration) -> Result<(), RedisError> {
        Ok(self.stream.get_ref().set_read_timeout(Some(t))?)
    }

    /// The socket's write timeout.
    pub(crate) fn set_write_timeout(&self, t: Duration) -> Result<(), RedisError> {
        Ok(self.stream.get_ref().set_write_timeout(Some(t))?)
    }

    fn read_value(&mut self) -> Result<Value, RedisError> {
        loop {
            match self.parser.parse_value(&mut self.stream) {
                // RESP3 pushes are not replies.
                Ok(Value::Push { .. }) => continue,
                Ok(v) => return Ok(v),
                Err(e) => {
                    self.open = false;
                    return Err(e);
                }
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), RedisError> {
        let sent = self
            .stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush());
        if let Err(e) = sent {
            self.open = false;
            return Err(e.into());
        }
        Ok(())
    }
}

impl ConnectionLike for TlsConnection {
    fn req_packed_command(&mut self, cmd: &[u8]) -> Result<Value, RedisError> {
        self.send(cmd)?;
        self.read_value()
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>, RedisError> {
        self.send(cmd)?;
        let mut out = Vec::with_capacity(count);
        for i in 0..offset + count {
            let v = self.read_value()?;
            if i >= offset {
                out.push(v);
            }
        }
        Ok(out)
    }

    fn get_db(&self) -> i64 {
        self.db
    }

    fn check_connection(&mut self) -> bool {
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        self.open
    }
}
