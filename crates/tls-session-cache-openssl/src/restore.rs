//! From stored bytes to a session OpenSSL may resume: the compact form
//! expanded and `d2i_SSL_SESSION` ([`compact::decode_stored`]), then the
//! checks OpenSSL does not make.
//!
//! The bytes come from a store, which anyone who can write to it may have
//! filled: they are decoded by OpenSSL's own parser and the result must be
//! the session asked for — its id and its session-id context — before the
//! get callback hands it over.

use foreign_types::ForeignType;
use openssl::ssl::SslSession;
use tls_session_cache::{SessionKey, StoredSession};

use crate::compact::{self, CompactError};
use crate::ffi::session_context;

/// Why stored bytes were not turned into a session.
#[derive(Debug)]
pub(crate) enum Unfit {
    /// They do not expand or decode.
    Corrupt(CompactError),
    /// They decode to a session with another id or context (or were made
    /// for another key).
    Mismatched,
}

/// Decodes `stored`, found under `key` by a cache configured with
/// `context`, and checks that it is that session.
pub(crate) fn session_from_stored(
    key: &SessionKey,
    stored: &StoredSession,
    context: &[u8],
) -> Result<SslSession, Unfit> {
    let session = compact::decode_stored(key, stored).map_err(|e| match e {
        CompactError::KeyMismatch => Unfit::Mismatched,
        e => Unfit::Corrupt(e),
    })?;
    // OpenSSL checks the session-id context itself but not that the
    // session is the one asked for.
    // SAFETY: `session` is a live session we own; the slice borrowed from it
    // is dropped before `session` is returned.
    let matches = session.id() == key.id.as_bytes()
        && unsafe { session_context(session.as_ptr()) } == context;
    if matches {
        Ok(session)
    } else {
        Err(Unfit::Mismatched)
    }
}
