//! The crate's error types.

/// Why an [`AsyncSessionCache`](crate::AsyncSessionCache) could not be built
/// or installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The binding refused the configuration or the installation.
    #[error(transparent)]
    Cache(#[from] tls_session_cache_openssl::Error),
    /// `build` was called outside a tokio runtime (the writer task needs one).
    #[error("AsyncSessionCache::build must be called inside a tokio runtime")]
    NoRuntime,
    /// A write queue of length zero.
    #[error("the session write queue length must be at least 1")]
    ZeroQueue,
    /// OpenSSL could not allocate an ex-data index.
    #[error("OpenSSL error: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

/// Why [`AsyncSessionCache::accept`](crate::AsyncSessionCache::accept) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The stream could not be set up (OpenSSL allocation).
    #[error("cannot set up the TLS stream: {0}")]
    Setup(#[from] openssl::error::ErrorStack),
    /// The handshake failed.
    #[error("TLS handshake failed: {0}")]
    Handshake(#[source] openssl::ssl::Error),
    /// The client-hello callback kept pausing the handshake (the context's
    /// client-hello callback is not ours, or it was replaced).
    #[error("the handshake paused for a client-hello callback more than twice")]
    RetryLoop,
}
