//! [`BenchError`]: why a benchmark run stopped.

use std::io;

/// Why the benchmark could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Bad command line.
    #[error("{0}\n\n{usage}", usage = crate::usage::USAGE)]
    Usage(String),
    /// An OpenSSL call failed while setting things up.
    #[error("openssl: {0}")]
    Tls(#[from] openssl::error::ErrorStack),
    /// A socket, file or thread operation failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The Redis server could not be started (the message says how to install it).
    #[error("redis-server: {0}")]
    Redis(#[from] tls_session_cache_testkit::Error),
    /// The Redis store could not be built.
    #[error("redis store: {0}")]
    RedisStore(#[from] tls_session_cache_redis::BuildError),
    /// No sealing keys.
    #[error("key ring: {0}")]
    KeyRing(#[from] tls_session_cache_redis::KeyRingError),
    /// The session cache could not be built or installed.
    #[error("session cache: {0}")]
    Cache(#[from] tls_session_cache_openssl::Error),
    /// The async session cache could not be built or installed.
    #[error("async session cache: {0}")]
    AsyncCache(#[from] tls_session_cache_tokio::Error),
    /// A client handshake failed.
    #[error("handshake: {0}")]
    Handshake(String),
    /// The run measured something other than what it claims to measure
    /// (a resumed configuration that did not resume, counts that disagree).
    #[error("verification failed: {0}")]
    Verification(String),
}
