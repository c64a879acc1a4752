//! Sealing: AES-256-GCM over the core envelope.
//!
//! ```text
//! offset size  field
//! 0      1     seal version (1 or 2)
//! 1      1     key id (see keyring)
//! 2      12    random nonce
//! 14     n     ciphertext of the plaintext (below)
//! 14+n   16    GCM tag
//! ```
//!
//! The version says what the plaintext is:
//!
//! * **1** — the full core envelope (`tls_session_cache::encode`). Written
//!   by servers before the compact key names, under previous-format names,
//!   and still written when the core envelope has a layout the `value`
//!   module cannot shorten.
//! * **2** — the envelope without its magic and key fields (the `value`
//!   module): the Redis key already names the context and id, and the
//!   associated data binds the value to that name: 11 + context + id bytes
//!   shorter (48 bytes with a 5-byte context and a 32-byte id).
//!
//! Both are read. Associated data (authenticated, not stored): the version
//! byte, the key id and the Redis key the value is stored under. A value
//! copied to another Redis key therefore fails to open, and a version-2
//! value cannot be passed off as a version-1 one. The session's expiry is
//! inside the ciphertext, so it is authenticated too: raising the TTL of a
//! key in Redis cannot make a session live longer, because the store
//! re-checks the sealed expiry on every read.
//!
//! Random 96-bit nonces: under one key, the chance of a repeated nonce stays
//! below 2^-32 for 2^32 sealed values (NIST SP 800-38D §8.3); rotate keys
//! well before that.

use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};
use zeroize::Zeroizing;

use crate::keyring::{KeyRing, SealKey};

/// Seal version 1: the plaintext is the full core envelope.
pub(crate) const SEAL_V1: u8 = 1;
/// Seal version 2: the plaintext is the key-less envelope (`value` module).
pub(crate) const SEAL_V2: u8 = 2;
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

fn aad(version: u8, key_id: u8, redis_key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(2 + redis_key.len());
    aad.push(version);
    aad.push(key_id);
    aad.extend_from_slice(redis_key);
    aad
}

/// A value opened by [`open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Opened {
    /// The seal version: what `plain` is ([`SEAL_V1`] or [`SEAL_V2`]).
    pub(crate) version: u8,
    /// The plaintext (a session: zeroized when dropped).
    pub(crate) plain: Zeroizing<Vec<u8>>,
}

/// Seals `plaintext` as seal `version` for storage under `redis_key` with
/// the ring's current key.
pub(crate) fn seal(
    ring: &KeyRing,
    version: u8,
    redis_key: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    debug_assert!(version == SEAL_V1 || version == SEAL_V2);
    let key: &SealKey = ring.current();
    let mut nonce = [0u8; NONCE_LEN];
    openssl::rand::rand_bytes(&mut nonce)?;
    let mut tag = [0u8; TAG_LEN];
    let ciphertext = encrypt_aead(
        Cipher::aes_256_gcm(),
        &key.bytes,
        Some(&nonce),
        &aad(version, key.id, redis_key),
        plaintext,
        &mut tag,
    )?;
    let mut out = Vec::with_capacity(SEAL_OVERHEAD + ciphertext.len());
    out.push(version);
    out.push(key.id);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens a value read from `redis_key` (seal version 1 or 2).
pub(crate) fn open(ring: &KeyRing, redis_key: &[u8], value: &[u8]) -> Result<Opened, OpenError> {
    if value.len() < SEAL_OVERHEAD {
        return Err(OpenError::TooShort(value.len()));
    }
    let version = value[0];
    if version != SEAL_V1 && version != SEAL_V2 {
        return Err(OpenError::Version(version));
    }
    let key_id = value[1];
    let nonce = &value[2..HEADER_LEN];
    let (ciphertext, tag) = value[HEADER_LEN..].split_at(value.len() - HEADER_LEN - TAG_LEN);
    let aad = aad(version, key_id, redis_key);
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
            return Ok(Opened {
                version,
                plain: Zeroizing::new(plain),
            });
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

    fn opened(version: u8, plain: &[u8]) -> Opened {
        Opened {
            version,
            plain: Zeroizing::new(plain.to_vec()),
        }
    }

    #[test]
    fn round_trip_and_every_flipped_byte_fails() {
        let ring = KeyRing::new([7; 32]);
        for version in [SEAL_V1, SEAL_V2] {
            let sealed = seal(&ring, version, b"k", b"hello envelope").unwrap();
            assert_eq!(sealed.len(), SEAL_OVERHEAD + 14);
            assert_eq!(sealed[0], version);
            assert_eq!(
                open(&ring, b"k", &sealed).unwrap(),
                opened(version, b"hello envelope")
            );
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
    }

    #[test]
    fn the_version_is_authenticated() {
        // Relabelling a version-2 value as version 1 (or back) fails: the
        // version byte is in the associated data.
        let ring = KeyRing::new([7; 32]);
        let mut v2 = seal(&ring, SEAL_V2, b"k", b"x").unwrap();
        v2[0] = SEAL_V1;
        assert_eq!(open(&ring, b"k", &v2), Err(OpenError::Authentication));
        v2[0] = 3;
        assert_eq!(open(&ring, b"k", &v2), Err(OpenError::Version(3)));
    }

    #[test]
    fn nonces_are_fresh() {
        let ring = KeyRing::new([7; 32]);
        assert_ne!(
            seal(&ring, SEAL_V2, b"k", b"x").unwrap(),
            seal(&ring, SEAL_V2, b"k", b"x").unwrap()
        );
    }

    #[test]
    fn older_keys_open_and_unknown_keys_are_named() {
        let old = KeyRing::new([1; 32]);
        let sealed = seal(&old, SEAL_V1, b"k", b"s").unwrap();
        let rotated = KeyRing::new([2; 32]).with_older([1; 32]);
        assert_eq!(
            open(&rotated, b"k", &sealed).unwrap(),
            opened(SEAL_V1, b"s")
        );
        let fresh = KeyRing::new([3; 32]);
        if fresh.current_key_id() != old.current_key_id() {
            assert_eq!(
                open(&fresh, b"k", &sealed),
                Err(OpenError::UnknownKey(old.current_key_id()))
            );
        }
    }
}
