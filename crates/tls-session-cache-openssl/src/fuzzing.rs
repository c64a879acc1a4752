//! Internals for the fuzz targets in the repository's `fuzz/` folder only:
//! not part of the API, and may change in any release.

use openssl::ssl::SslSession;
use tls_session_cache::{SessionKey, StoredSession};

use crate::restore::{Unfit, session_from_stored as restore};

/// What the get callback does with the session a store returned for `key`
/// (its context is the cache's): expand the compact form, decode it
/// (`d2i_SSL_SESSION`) and check that it is that session. `Err` says why
/// it was refused (`corrupt: …` or `mismatched`), as the callback counts it.
pub fn session_from_stored(key: &SessionKey, stored: &StoredSession) -> Result<SslSession, String> {
    restore(key, stored, key.context.as_bytes()).map_err(|e| match e {
        Unfit::Corrupt(e) => format!("corrupt: {e}"),
        Unfit::Mismatched => "mismatched".to_owned(),
    })
}
