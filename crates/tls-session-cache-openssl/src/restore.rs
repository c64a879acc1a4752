//! From stored bytes to a session OpenSSL may resume: `d2i_SSL_SESSION`,
//! then the checks OpenSSL does not make.
//!
//! The bytes come from a store, which anyone who can write to it may have
//! filled: they are decoded by OpenSSL's own parser and the result must be
//! the session asked for — its id and its session-id context — before the
//! get callback hands it over.

use foreign_types::ForeignType;
use openssl::error::ErrorStack;
use openssl::ssl::SslSession;

use crate::ffi::session_context;

/// Why stored bytes were not turned into a session.
#[derive(Debug)]
pub(crate) enum Unfit {
    /// OpenSSL could not decode them.
    Corrupt(ErrorStack),
    /// They decode to a session with another id or context.
    Mismatched,
}

/// Decodes `der`, stored for session `id` under `context`, and checks that
/// it is that session.
pub(crate) fn session_from_der(der: &[u8], id: &[u8], context: &[u8]) -> Result<SslSession, Unfit> {
    let session = SslSession::from_der(der).map_err(Unfit::Corrupt)?;
    // OpenSSL checks the session-id context itself but not that the
    // session is the one asked for.
    // SAFETY: `session` is a live session we own; the slice borrowed from it
    // is dropped before `session` is returned.
    let matches = session.id() == id && unsafe { session_context(session.as_ptr()) } == context;
    if matches {
        Ok(session)
    } else {
        Err(Unfit::Mismatched)
    }
}
