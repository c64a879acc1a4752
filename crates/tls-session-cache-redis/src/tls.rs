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
//! redis-rs's: the connection (`wire`) implements its `ConnectionLike`, and
//! replies are read with its parser under the call's deadline and a byte
//! budget.
//!
//! Verification: the server's certificate must chain to the CA file given
//! ([`TlsOptions::ca_file`], which *replaces* the system roots) or, without
//! one, to the system roots (OpenSSL's default paths); its name must match
//! the host of the URL (an IP address must be in the certificate's IP
//! SANs), or [`TlsOptions::server_name`] when given. SNI carries that name
//! (not sent for an IP address, as RFC 6066 requires). TLS 1.2 at least.

use std::io;
use std::path::{Path, PathBuf};

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use redis::{ErrorKind, RedisError};

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
