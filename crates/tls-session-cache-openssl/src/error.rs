//! The crate's error type.

use openssl::error::ErrorStack;
use tls_session_cache::{KeyError, StoreError};

/// Why a [`SessionCache`](crate::SessionCache) could not be built or installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session-id context is longer than 32 bytes.
    #[error("invalid session-id context: {0}")]
    Context(#[from] KeyError),
    /// A builder setting is out of range.
    #[error("invalid cache configuration: {0}")]
    Config(&'static str),
    /// The context already has a session cache installed.
    #[error("a session cache is already installed on this SSL_CTX")]
    AlreadyInstalled,
    /// The store failed an operation asked for directly
    /// ([`SessionCache::remove_session`](crate::SessionCache::remove_session)).
    #[error("session store: {0}")]
    Store(StoreError),
    /// OpenSSL refused a setting or could not allocate an ex-data index.
    #[error("OpenSSL error: {0}")]
    OpenSsl(#[from] ErrorStack),
}
