//! The crate's error type.

use tls_session_cache::KeyError;

/// Why a [`SessionCache`](crate::SessionCache) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session-id context is longer than 32 bytes.
    #[error("invalid session-id context: {0}")]
    Context(#[from] KeyError),
    /// A builder setting is out of range.
    #[error("invalid cache configuration: {0}")]
    Config(&'static str),
}
