//! Internals for the fuzz targets in the repository's `fuzz/` folder only:
//! not part of the API, and may change in any release.

use openssl::ssl::SslSession;

use crate::restore::{Unfit, session_from_der};

/// What the get callback does with the bytes a store returned for session
/// `id` under `context`: decode them (`d2i_SSL_SESSION`) and check that they
/// are that session. `Err` says why they were refused (`corrupt: …` or
/// `mismatched`), as the callback counts it.
pub fn session_from_stored(der: &[u8], id: &[u8], context: &[u8]) -> Result<SslSession, String> {
    session_from_der(der, id, context).map_err(|e| match e {
        Unfit::Corrupt(e) => format!("corrupt: {e}"),
        Unfit::Mismatched => "mismatched".to_owned(),
    })
}
