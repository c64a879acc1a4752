//! Sealing: AES-256-GCM over the core envelope.
//!
//! ```text
//! offset size  field
//! 0      1     seal version (1)
//! 1      1     key id (see keyring)
//! 2      12    random nonce
//! 14     n     ciphertext of the envelope (tls_session_cache::encode)
//! 14+n   16    GCM tag
//! ```
//!
//! Associated data (authenticated, not stored): the version byte, the key
//! id and the Redis key the value is stored under. A value copied to
//! another Redis key therefore fails to open. The session's expiry is
//! inside the ciphertext, so it is authenticated too: raising the TTL of a
//! key in Redis cannot make a session live longer, because the store
//! re-checks the sealed expiry on every read.
//!
//! Random 96-bit nonces: under one key, the chance of a repeated nonce stays
//! below 2^-32 for 2^32 sealed values (NIST SP 800-38D §8.3); rotate keys
//! well before that.

use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};

use crate::keyring::{KeyRing, SealKey};

/// The seal format version written by [`seal`].
pub(crate) const SEAL_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 2 + NONCE_LEN;
/// Bytes sealing adds to an envelope.
pub(crate) const SEAL_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("sealed value of {0} bytes is shorter than the {SEAL_OVERHEAD}-byte minimum")]
    TooShort(usize),
    #[error("unknown seal version {0}")]
    Version(u8),
    #[error("no key with id {0} in the key ring")]
    UnknownKey(u8),
    #[error("authentication failed (tampered, moved to another key, or wrong key)")]
    Authentication,
}

fn aad(key_id: u8, redis_key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(2 + redis_key.len());
    aad.push(SEAL_VERSION);
    aad.push(key_id);
    aad.extend_from_slice(redis_key);
    aad
}

/// Seals `plaintext` for storage under `redis_key` with the ring's current key.
pub(crate) fn seal(
    ring: &KeyRing,
    redis_key: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let key: &SealKey = ring.current();
    let mut nonce = [0u8; NONCE_LEN];
    openssl::rand::rand_bytes(&mut nonce)?;
    let mut tag = [0u8; TAG_LEN];
    let ciphertext = encrypt_aead(
        Cipher::aes_256_gcm(),
        &key.bytes,
        Some(&nonce),
        &aad(key.id, redis_key),
        plaintext,
        &mut tag,
    )?;
    let mut out = Vec::with_capacity(SEAL_OVERHEAD + ciphertext.len());
    out.push(SEAL_VERSION);
    out.push(key.id);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens a value read from `redis_key`.
pub(crate) fn open(ring: &KeyRing, redis_key: &[u8], value: &[u8]) -> Result<Vec<u8>, OpenError> {
    if value.len() < SEAL_OVERHEAD {
        return Err(OpenError::TooShort(value.len()));
    }
    if value[0] != SEAL_VERSION {
        return Err(OpenError::Version(value[0]));
    }
    let key_id = value[1];
    let nonce = &value[2..HEADER_LEN];
    let (ciphertext, tag) = value[HEADER_LEN..].split_at(value.len() - HEADER_LEN - TAG_LEN);
    let aad = aad(key_id, redis_key);
    let mut known = false;
    for key in ring.candidates(key_id) {
        known = true;
        if let Ok(plain) = decrypt_aead(
            Cipher::aes_256_gcm(),
            &key.bytes,
            Some(nonce),
            &aad,
            ciphertext,
            tag,
        ) {
            return Ok(plain);
        }
    }
    if known {
        Err(OpenError::Authentication)
    } else {
        Err(OpenError::UnknownKey(key_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flipped_byte_fails() {
        let ring = KeyRing::new([7; 32]);
        let sealed = seal(&ring, b"k", b"hello envelope").unwrap();
        assert_eq!(sealed.len(), SEAL_OVERHEAD + 14);
        assert_eq!(open(&ring, b"k", &sealed).unwrap(), b"hello envelope");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(open(&ring, b"k", &bad).is_err(), "flip at {i} opened");
        }
        assert_eq!(
            open(&ring, b"other", &sealed),
            Err(OpenError::Authentication)
        );
        assert_eq!(
            open(&ring, b"k", &sealed[..10]),
            Err(OpenError::TooShort(10))
        );
    }

    #[test]
    fn nonces_are_fresh() {
        let ring = KeyRing::new([7; 32]);
        assert_ne!(
            seal(&ring, b"k", b"x").unwrap(),
            seal(&ring, b"k", b"x").unwrap()
        );
    }

    #[test]
    fn older_keys_open_and_unknown_keys_are_named() {
        let old = KeyRing::new([1; 32]);
        let sealed = seal(&old, b"k", b"s").unwrap();
        let rotated = KeyRing::new([2; 32]).with_older([1; 32]);
        assert_eq!(open(&rotated, b"k", &sealed).unwrap(), b"s");
        let fresh = KeyRing::new([3; 32]);
        if fresh.current_key_id() != old.current_key_id() {
            assert_eq!(
                open(&fresh, b"k", &sealed),
                Err(OpenError::UnknownKey(old.current_key_id()))
            );
        }
    }
}
