//! Property tests of the envelope: it round-trips, it is canonical, and
//! `decode` turns every malformed input into a typed error without panicking.

use proptest::prelude::*;
use tls_session_cache::envelope::{MAGIC, VERSION};
use tls_session_cache::{
    EnvelopeError, Protocol, SessionKey, StoredSession, decode, decode_with_limit, encode,
};

fn key() -> impl Strategy<Value = SessionKey> {
    (
        prop::collection::vec(any::<u8>(), 0..=32),
        prop::collection::vec(any::<u8>(), 1..=32),
    )
        .prop_map(|(c, i)| SessionKey::from_slices(Protocol::Tls12, &c, &i).unwrap())
}

fn session() -> impl Strategy<Value = StoredSession> {
    (
        prop::collection::vec(any::<u8>(), 0..600),
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(der, created, expires, tls13, single_use)| StoredSession {
            der: der.into(),
            created,
            expires,
            protocol: if tls13 {
                Protocol::Tls13
            } else {
                Protocol::Tls12
            },
            single_use,
        })
}

/// Bytes that start like an envelope (so decoding gets past the magic)
/// followed by anything.
fn plausible_bytes() -> impl Strategy<Value = Vec<u8>> {
    (any::<u8>(), prop::collection::vec(any::<u8>(), 0..200)).prop_map(|(flags, rest)| {
        let mut v = MAGIC.to_vec();
        v.push(VERSION);
        v.push(flags & 3);
        v.extend(rest);
        v
    })
}

/// Whatever `decode` accepts re-encodes to the very same bytes, so no two
/// byte strings mean the same session.
fn assert_canonical(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok((k, s)) = decode(bytes) {
        prop_assert_eq!(encode(&k, &s), bytes);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_inverts_encode(k in key(), s in session()) {
        let k = SessionKey { protocol: s.protocol, ..k };
        let bytes = encode(&k, &s);
        prop_assert_eq!(decode(&bytes), Ok((k, s)));
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        assert_canonical(&bytes)?;
    }

    #[test]
    fn decode_never_panics_on_plausible_bytes(bytes in plausible_bytes()) {
        assert_canonical(&bytes)?;
    }

    #[test]
    fn decode_never_panics_on_mutated_envelopes(
        k in key(),
        s in session(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let k = SessionKey { protocol: s.protocol, ..k };
        let mut bytes = encode(&k, &s);
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        assert_canonical(&bytes)?;
    }

    #[test]
    fn every_strict_prefix_is_truncated(k in key(), s in session()) {
        let k = SessionKey { protocol: s.protocol, ..k };
        let bytes = encode(&k, &s);
        for len in 0..bytes.len() {
            match decode(&bytes[..len]) {
                Err(EnvelopeError::Truncated { needed }) => {
                    prop_assert!(needed >= 1 && needed <= bytes.len() - len, "len {}: needed {}", len, needed);
                }
                other => prop_assert!(false, "prefix of {} bytes: {:?}", len, other),
            }
        }
    }

    #[test]
    fn appended_bytes_are_trailing(
        k in key(),
        s in session(),
        extra in prop::collection::vec(any::<u8>(), 1..50),
    ) {
        let k = SessionKey { protocol: s.protocol, ..k };
        let mut bytes = encode(&k, &s);
        bytes.extend_from_slice(&extra);
        prop_assert_eq!(decode(&bytes), Err(EnvelopeError::TrailingBytes(extra.len())));
    }

    #[test]
    fn limit_is_enforced_before_reading_the_session(k in key(), s in session()) {
        let k = SessionKey { protocol: s.protocol, ..k };
        let bytes = encode(&k, &s);
        let len = s.der.len();
        prop_assert!(decode_with_limit(&bytes, len).is_ok());
        if len > 0 {
            prop_assert_eq!(
                decode_with_limit(&bytes, len - 1),
                Err(EnvelopeError::Oversize { len, limit: len - 1 })
            );
            // Even when the session bytes themselves are missing.
            let header = bytes.len() - len;
            prop_assert_eq!(
                decode_with_limit(&bytes[..header], len - 1),
                Err(EnvelopeError::Oversize { len, limit: len - 1 })
            );
        }
    }
}

/// A declared length of 4 GiB − 1 is refused by the default limit without
/// allocating it.
#[test]
fn huge_declared_length_is_oversize() {
    let k = SessionKey::from_slices(Protocol::Tls12, b"", &[1]).unwrap();
    let s = StoredSession::new(Vec::new(), 0, 0, Protocol::Tls12);
    let mut bytes = encode(&k, &s);
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        decode(&bytes),
        Err(EnvelopeError::Oversize {
            len: u32::MAX as usize,
            limit: tls_session_cache::envelope::MAX_SESSION_LEN
        })
    );
}
