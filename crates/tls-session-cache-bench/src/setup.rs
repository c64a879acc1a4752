//! The configurations measured and the servers that implement them.

use std::time::Duration;

use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    SslContext, SslContextBuilder, SslMethod, SslOptions, SslSessionCacheMode, SslVersion,
};
use openssl::x509::X509;
use tls_session_cache::MemoryStore;
use tls_session_cache_openssl::SessionCache;
use tls_session_cache_redis::{KeyRing, RedisStore, TieredStore};

use crate::error::BenchError;
use crate::server::Server;

/// A server configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Config {
    /// Full handshakes: the client offers no session (server as `internal`).
    Full,
    /// OpenSSL's internal session cache, no external callbacks.
    Internal,
    /// The binding with a [`MemoryStore`].
    Memory,
    /// The binding with a [`TieredStore`] (memory in front of Redis).
    Tiered,
    /// The binding with a [`RedisStore`].
    Redis,
}

impl Config {
    /// Every configuration, in the order they are run and printed.
    pub const ALL: [Config; 5] = [
        Config::Full,
        Config::Internal,
        Config::Memory,
        Config::Tiered,
        Config::Redis,
    ];

    /// The name used on the command line, in tables and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Config::Full => "full",
            Config::Internal => "internal",
            Config::Memory => "memory",
            Config::Tiered => "tiered",
            Config::Redis => "redis",
        }
    }

    /// The configuration called `name`.
    pub fn from_name(name: &str) -> Option<Config> {
        Config::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether its handshakes must resume.
    pub fn resumes(self) -> bool {
        self != Config::Full
    }

    /// Whether it needs a Redis server.
    pub fn needs_redis(self) -> bool {
        matches!(self, Config::Tiered | Config::Redis)
    }
}

/// A protocol version, pinned on the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TLS 1.2, resumption by session id (no tickets).
    Tls12,
    /// TLS 1.3, resumption by stateful (single-use) tickets.
    Tls13,
}

impl Proto {
    /// Both, in run order.
    pub const ALL: [Proto; 2] = [Proto::Tls12, Proto::Tls13];

    /// OpenSSL's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tls12 => "TLSv1.2",
            Proto::Tls13 => "TLSv1.3",
        }
    }

    /// The rust-openssl version constant.
    pub fn version(self) -> SslVersion {
        match self {
            Proto::Tls12 => SslVersion::TLS1_2,
            Proto::Tls13 => SslVersion::TLS1_3,
        }
    }
}

/// The server's certificate and key (ECDSA P-256).
pub struct Identity {
    /// Self-signed certificate for localhost.
    pub cert: X509,
    /// Its private key.
    pub key: PKey<Private>,
}

/// Session-id context of every server.
pub const CONTEXT: &[u8] = b"bench";

/// Redis timeouts: longer than a production 50 ms, so that a scheduling
/// hiccup on a loaded 2-core machine is not counted as a miss.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// A context with the certificate, TLS 1.2 and 1.3, no session caching yet.
pub fn base_context(id: &Identity) -> Result<SslContextBuilder, BenchError> {
    let mut b = SslContextBuilder::new(SslMethod::tls_server())?;
    b.set_certificate(&id.cert)?;
    b.set_private_key(&id.key)?;
    b.check_private_key()?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    b.set_max_proto_version(Some(SslVersion::TLS1_3))?;
    Ok(b)
}

/// A sealed Redis store under its own key prefix.
pub fn redis_store(url: &str, prefix: &str) -> Result<RedisStore, BenchError> {
    Ok(RedisStore::builder(url)
        .prefix(prefix)
        .seal_keys(KeyRing::generate()?)
        .timeouts(REDIS_TIMEOUT)
        .build()?)
}

/// A running server for `config` and the cache installed on it, if any.
pub fn start(
    config: Config,
    id: &Identity,
    redis_url: Option<&str>,
) -> Result<(Server, Option<SessionCache>), BenchError> {
    let mut b = base_context(id)?;
    let redis = || {
        redis_url.ok_or_else(|| BenchError::Verification(format!("{} needs redis", config.name())))
    };
    let cache = match config {
        Config::Full | Config::Internal => {
            // OpenSSL's own cache: session ids for TLS 1.2 and, with
            // NO_TICKET, stateful (single-use) TLS 1.3 tickets — the same
            // resumption mechanisms the binding uses.
            b.set_session_cache_mode(SslSessionCacheMode::SERVER);
            b.set_session_id_context(CONTEXT)?;
            b.set_options(SslOptions::NO_TICKET);
            None
        }
        Config::Memory => Some(
            SessionCache::builder()
                .context(CONTEXT)
                .store(MemoryStore::default())
                .build()?,
        ),
        Config::Tiered => Some(
            SessionCache::builder()
                .context(CONTEXT)
                .store(TieredStore::new(
                    MemoryStore::default(),
                    redis_store(redis()?, "bench-tiered")?,
                ))
                .build()?,
        ),
        Config::Redis => Some(
            SessionCache::builder()
                .context(CONTEXT)
                .store(redis_store(redis()?, "bench-redis")?)
                .build()?,
        ),
    };
    if let Some(cache) = &cache {
        cache.install(&mut b)?;
    }
    let server = Server::start(config.name(), b.build())?;
    Ok((server, cache))
}

/// Builds a context that the given cache is installed on (for harvesting).
pub fn context_with(id: &Identity, cache: &SessionCache) -> Result<SslContext, BenchError> {
    let mut b = base_context(id)?;
    cache.install(&mut b)?;
    Ok(b.build())
}
