//! Internals for the fuzz targets in the repository's `fuzz/` folder only:
//! not part of the API, and may change in any release.
//!
//! [`open_value`] is the read path of a sealed store (`RedisStore`'s and
//! the async store's `unseal`): open the seal, put a version-2 value's key
//! fields back, decode the envelope under the size limit.

use tls_session_cache::{SessionKey, StoredSession, decode_with_limit};

use crate::keyring::KeyRing;
use crate::{seal, value};

/// Seal version 1: the full core envelope, random nonce.
pub const SEAL_V1: u8 = seal::SEAL_V1;
/// Seal version 2: the key-less envelope, random nonce.
pub const SEAL_V2: u8 = seal::SEAL_V2;
/// Seal version 3: the key-less envelope, per-value derived key.
pub const SEAL_V3: u8 = seal::SEAL_V3;
/// Seal version 4: the full core envelope, per-value derived key.
pub const SEAL_V4: u8 = seal::SEAL_V4;

/// Whether seal `version`'s plaintext is the key-less envelope.
pub fn is_stripped(version: u8) -> bool {
    seal::is_stripped(version)
}

/// Opens a value read from `redis_key`: its seal version and plaintext, or
/// why it did not open.
pub fn open(ring: &KeyRing, redis_key: &[u8], sealed: &[u8]) -> Result<(u8, Vec<u8>), String> {
    seal::open(ring, redis_key, sealed)
        .map(|o| (o.version, o.plain.to_vec()))
        .map_err(|e| e.to_string())
}

/// Seals `plain` as seal `version` (1 to 4) for `redis_key` with the ring's
/// current key.
pub fn seal(ring: &KeyRing, version: u8, redis_key: &[u8], plain: &[u8]) -> Vec<u8> {
    seal::seal(ring, version, redis_key, plain).expect("AES-256-GCM with a 32-byte key")
}

/// The version-2 plaintext of `key`'s `envelope`, if it can be shortened.
pub fn strip(envelope: &[u8], key: &SessionKey) -> Option<Vec<u8>> {
    value::strip(envelope, key)
}

/// The full envelope of a version-2 plaintext read under `key`'s name.
pub fn restore(stripped: &[u8], key: &SessionKey) -> Result<Vec<u8>, String> {
    value::restore(stripped, key).map_err(|e| e.to_string())
}

/// Open, restore (versions 2 and 3) and decode a value read for `key` from
/// `redis_key`, as the sealed stores do; `Ok` holds the key and session the
/// value names (the store then requires the key to be `key`).
pub fn open_value(
    ring: &KeyRing,
    redis_key: &[u8],
    key: &SessionKey,
    sealed: &[u8],
    max_session_size: usize,
) -> Result<(SessionKey, StoredSession), String> {
    let (version, plain) = open(ring, redis_key, sealed)?;
    let envelope = if is_stripped(version) {
        restore(&plain, key)?
    } else {
        plain
    };
    decode_with_limit(&envelope, max_session_size).map_err(|e| e.to_string())
}
