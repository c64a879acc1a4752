//! Sealing: AES-256-GCM over the core envelope.
//!
//! ```text
//! versions 1, 2 (read; 2 written only with RedisStoreBuilder::legacy_seal)
//! offset size  field
//! 0      1     seal version
//! 1      1     key id (see keyring)
//! 2      12    random nonce
//! 14     n     ciphertext of the plaintext (below)
//! 14+n   16    GCM tag
//!
//! versions 3, 4 (written)
//! 0      1     seal version
//! 1      1     key id
//! 2      24    random salt
//! 26     n     ciphertext, under a key derived for this value alone
//! 26+n   16    GCM tag
//! ```
//!
//! The version says what the plaintext is and how it is encrypted:
//!
//! * **1** — the full core envelope (`tls_session_cache::encode`), random
//!   nonce under the ring's key. Written by servers before the compact key
//!   names, and still written under previous-format names (which only
//!   servers of that era read).
//! * **2** — the envelope without its magic and key fields (the `value`
//!   module): the Redis key already names the context and id, and the
//!   associated data binds the value to that name. Random nonce under the
//!   ring's key.
//! * **3** — as 2, under a per-value key: HKDF-SHA256 (RFC 5869) of the
//!   ring's key with a random 192-bit salt stored in the value and the info
//!   `tls-session-cache seal v3`, then AES-256-GCM with a zero nonce (each
//!   derived key seals one value).
//! * **4** — as 1 (the full envelope, for layouts the `value` module
//!   cannot shorten), under a per-value key like 3.
//!
//! All four are read. Associated data (authenticated, not stored): the
//! version byte, the key id and the Redis key the value is stored under. A
//! value copied to another Redis key therefore fails to open, and a value
//! cannot be relabelled as another version. The session's expiry is inside
//! the ciphertext: raising the TTL of a key in Redis cannot make a session
//! live longer (the store re-checks the sealed expiry on every read).
//!
//! **Budget.** With random 96-bit nonces under one key (versions 1, 2),
//! the chance of a repeated nonce stays below 2^-32 only for 2^32 sealed
//! values (NIST SP 800-38D §8.3) — for a fleet sharing one key, about 12
//! hours at 100 000 new sessions per second, and nothing counted it. With
//! per-value keys (3, 4) a nonce is never reused under a key; what matters
//! is two values drawing the same 192-bit salt, which after 2^64 values
//! has a chance of 2^-65 — no practical limit, so no counting or forced
//! rotation. Rotate keys for the usual reasons (a leaked key, policy).
//! HKDF costs two HMAC-SHA256 computations per seal and per open, about
//! 1 µs (RustCrypto's `hkdf`; OpenSSL's EVP_PKEY HKDF took 24 µs a call on
//! OpenSSL 3, see docs/performance.md).

use hkdf::Hkdf;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::keyring::{KeyRing, SealKey};

/// Seal version 1: the plaintext is the full core envelope.
pub(crate) const SEAL_V1: u8 = 1;
/// Seal version 2: the plaintext is the key-less envelope of `value`.
pub(crate) const SEAL_V2: u8 = 2;
/// Seal version 3: as 2, under a per-value derived key.
pub(crate) const SEAL_V3: u8 = 3;
/// Seal version 4: as 1, under a per-value derived key.
pub(crate) const SEAL_V4: u8 = 4;
const NONCE_LEN: usize = 12;
const SALT_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 2 + NONCE_LEN;
/// Bytes a version 1 or 2 seal adds to its plaintext.
pub(crate) const SEAL_OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Bytes a version 3 or 4 seal adds to its plaintext.
pub(crate) const DERIVED_OVERHEAD: usize = 2 + SALT_LEN + TAG_LEN;

/// Why a value does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OpenError {
    /// Too short to hold a header and a tag.
    #[error("sealed value of {0} bytes is shorter than its version's minimum")]
    TooShort(usize),
    /// A seal version this build does not know.
    #[error("unknown seal version {0}")]
    Version(u8),
    /// No key in the ring has the value's key id.
    #[error("no key with id {0} in the key ring")]
    UnknownKey(u8),
    /// The tag did not verify under any key with that id.
    #[error("authentication failed (tampered, moved to another key, or wrong key)")]
    Authentication,
}

/// Whether `version` uses a per-value derived key.
fn derived(version: u8) -> bool {
    version == SEAL_V3 || version == SEAL_V4
}

fn aad(version: u8, key_id: u8, redis_key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(2 + redis_key.len());
    aad.push(version);
    aad.push(key_id);
    aad.extend_from_slice(redis_key);
    aad
}

/// HKDF-SHA256 (RFC 5869) of the ring key `key` with `salt` and the
/// info `tls-session-cache seal v{version}` — the key of one value.
fn derive(key: &[u8], salt: &[u8], version: u8) -> [u8; 32] {
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 8160-byte maximum: never fails.
    let _ = Hkdf::<Sha256>::new(Some(salt), key)
        .expand_multi_info(&[b"tls-session-cache seal v", &[b'0' + version]], &mut out);
    out
}

/// A value's plaintext, opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Opened {
    /// The seal version (what the plaintext is).
    pub(crate) version: u8,
    /// The plaintext (a session: zeroized when dropped).
    pub(crate) plain: Zeroizing<Vec<u8>>,
}

/// Whether a seal version's plaintext is the key-less envelope (the
/// `value` module), which opening completes with `value::restore`.
pub(crate) fn is_stripped(version: u8) -> bool {
    version == SEAL_V2 || version == SEAL_V3
}

/// Seals `plaintext` under the ring's current key for `redis_key`.
pub(crate) fn seal(
    ring: &KeyRing,
    version: u8,
    redis_key: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    debug_assert!((SEAL_V1..=SEAL_V4).contains(&version));
    let key: &SealKey = ring.current();
    let mut tag = [0u8; TAG_LEN];
    let aad = aad(version, key.id, redis_key);
    let mut out;
    let ciphertext = if derived(version) {
        let mut salt = [0u8; SALT_LEN];
        openssl::rand::rand_bytes(&mut salt)?;
        // The value's own key: zeroized once used.
        let one = Zeroizing::new(derive(&key.bytes, &salt, version));
        out = Vec::with_capacity(DERIVED_OVERHEAD + plaintext.len());
        out.push(version);
        out.push(key.id);
        out.extend_from_slice(&salt);
        encrypt_aead(
            Cipher::aes_256_gcm(),
            &*one,
            Some(&[0u8; NONCE_LEN]),
            &aad,
            plaintext,
            &mut tag,
        )?
    } else {
        let mut nonce = [0u8; NONCE_LEN];
        openssl::rand::rand_bytes(&mut nonce)?;
        out = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
        out.push(version);
        out.push(key.id);
        out.extend_from_slice(&nonce);
        encrypt_aead(
            Cipher::aes_256_gcm(),
            &key.bytes,
            Some(&nonce),
            &aad,
            plaintext,
            &mut tag,
        )?
    };
    out.extend_from_slice(&ciphertext);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens a value stored under `redis_key`, trying every ring key with
/// its key id.
pub(crate) fn open(ring: &KeyRing, redis_key: &[u8], value: &[u8]) -> Result<Opened, OpenError> {
    let Some(&version) = value.first() else {
        return Err(OpenError::TooShort(0));
    };
    if !(SEAL_V1..=SEAL_V4).contains(&version) {
        return Err(OpenError::Version(version));
    }
    let header = if derived(version) {
        2 + SALT_LEN
    } else {
        HEADER_LEN
    };
    if value.len() < header + TAG_LEN {
        return Err(OpenError::TooShort(value.len()));
    }
    let key_id = value[1];
    let iv = &value[2..header];
    let (ciphertext, tag) = value[header..].split_at(value.len() - header - TAG_LEN);
    let aad = aad(version, key_id, redis_key);
    let mut known = false;
    for key in ring.candidates(key_id) {
        known = true;
        let opened = if derived(version) {
            let one = Zeroizing::new(derive(&key.bytes, iv, version));
            decrypt_aead(
                Cipher::aes_256_gcm(),
                &*one,
                Some(&[0u8; NONCE_LEN]),
                &aad,
                ciphertext,
                tag,
            )
        } else {
            decrypt_aead(
                Cipher::aes_256_gcm(),
                &key.bytes,
                Some(iv),
                &aad,
                ciphertext,
                tag,
            )
        };
        if let Ok(plain) = opened {
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
        for version in [SEAL_V1, SEAL_V2, SEAL_V3, SEAL_V4] {
            let sealed = seal(&ring, version, b"k", b"hello envelope").unwrap();
            let overhead = if derived(version) {
                DERIVED_OVERHEAD
            } else {
                SEAL_OVERHEAD
            };
            assert_eq!(sealed.len(), overhead + 14);
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
        v2[0] = 5;
        assert_eq!(open(&ring, b"k", &v2), Err(OpenError::Version(5)));
        let mut v3 = seal(&ring, SEAL_V3, b"k", b"x").unwrap();
        v3[0] = SEAL_V4;
        assert_eq!(open(&ring, b"k", &v3), Err(OpenError::Authentication));
    }

    #[test]
    fn derived_keys_are_hkdf_sha256_and_differ_per_salt_and_version() {
        // RFC 5869 A.1 through the same crate and call shape.
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0u8..=0x0c).collect();
        let info: Vec<u8> = (0xf0u8..=0xf9).collect();
        let mut okm = [0u8; 42];
        Hkdf::<Sha256>::new(Some(&salt), &ikm)
            .expand_multi_info(&[&info[..5], &info[5..]], &mut okm)
            .unwrap();
        assert_eq!(
            okm[..8],
            [0x3c, 0xb2, 0x5f, 0x25, 0xfa, 0xac, 0xd5, 0x7a],
            "RFC 5869 A.1 OKM"
        );
        // Against OpenSSL's HKDF, for our info.
        let (key, salt) = ([7u8; 32], [9u8; SALT_LEN]);
        let mut ctx = openssl::pkey_ctx::PkeyCtx::new_id(openssl::pkey::Id::HKDF).unwrap();
        ctx.derive_init().unwrap();
        ctx.set_hkdf_md(openssl::md::Md::sha256()).unwrap();
        ctx.set_hkdf_key(&key).unwrap();
        ctx.set_hkdf_salt(&salt).unwrap();
        ctx.add_hkdf_info(b"tls-session-cache seal v3").unwrap();
        let mut theirs = [0u8; 32];
        ctx.derive(Some(&mut theirs)).unwrap();
        assert_eq!(derive(&key, &salt, SEAL_V3), theirs);
        assert_ne!(derive(&key, &[8u8; SALT_LEN], SEAL_V3), theirs);
        assert_ne!(derive(&key, &salt, SEAL_V4), theirs);
    }

    #[test]
    fn nonces_are_fresh() {
        let ring = KeyRing::new([7; 32]);
        assert_ne!(
            seal(&ring, SEAL_V2, b"k", b"x").unwrap(),
            seal(&ring, SEAL_V2, b"k", b"x").unwrap()
        );
        let (a, b) = (
            seal(&ring, SEAL_V3, b"k", b"x").unwrap(),
            seal(&ring, SEAL_V3, b"k", b"x").unwrap(),
        );
        assert_ne!(a[2..2 + SALT_LEN], b[2..2 + SALT_LEN], "fresh salts");
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
