//! The plaintext of seal version 2: the core envelope without what the
//! Redis key already says.
//!
//! The core envelope (`tls_session_cache::envelope`, version 1) starts with
//! a 4-byte magic and a version byte, holds the session key — context and
//! id, each length-prefixed — and the session's length before the session.
//! Under a sealed value that is all redundant: the compact Redis key names
//! the protocol, context and id, the seal's associated data binds the value
//! to that name (so a value moved to another name does not open), and the
//! seal authenticates the value's length. Seal version 2 therefore stores
//!
//! ```text
//! offset size  field                      (core envelope v1 offset)
//! 0      1     flags                      5
//! 1      8     created                    8+c+i
//! 9      8     expires                    16+c+i
//! 17     n     session bytes (DER)        28+c+i
//! ```
//!
//! that is, the version-1 envelope minus its magic and version (seal
//! version 2 implies envelope version 1), its key fields, and its session
//! length (the DER runs to the end; the AEAD authenticates the total
//! length): 11 + c + i bytes fewer (48 with a 5-byte context and a 32-byte
//! id). Opening puts them back from the key asked for and hands the result
//! to the core's `decode`, which validates it as any envelope (flags,
//! lengths, the size limit); the protocol still comes from the sealed flags
//! and must be the key's.
//!
//! The session encoding itself (times, DER) is the core envelope's,
//! unchanged. If the core envelope changes its layout (a new version),
//! [`strip`] declines and the store seals the full envelope as seal
//! version 1 instead, which every reader opens; nothing is lost but the
//! bytes. (A new core layout worth shortening would get a seal version of
//! its own.)

use tls_session_cache::SessionKey;
use tls_session_cache::envelope::{EnvelopeError, MAGIC, VERSION};

/// Bytes of a stripped value before the DER: flags, created, expires.
const FIXED: usize = 1 + 8 + 8;

/// The envelope `envelope` of `key` without its magic, version, key fields
/// and session length, or `None` if it is not a version-1 envelope holding
/// exactly `key`'s context and id and a session running to its end.
pub(crate) fn strip(envelope: &[u8], key: &SessionKey) -> Option<Vec<u8>> {
    let ctx = key.context.as_bytes();
    let id = key.id.as_bytes();
    let (c, i) = (ctx.len(), id.len());
    let times = 8 + c + i;
    let der = times + 16 + 4;
    let fits = envelope.len() >= der
        && envelope[..4] == MAGIC
        && envelope[4] == VERSION
        && usize::from(envelope[6]) == c
        && &envelope[7..7 + c] == ctx
        && usize::from(envelope[7 + c]) == i
        && &envelope[8 + c..times] == id
        && u32::from_be_bytes([
            envelope[der - 4],
            envelope[der - 3],
            envelope[der - 2],
            envelope[der - 1],
        ]) as usize
            == envelope.len() - der;
    if !fits {
        return None;
    }
    let mut out = Vec::with_capacity(FIXED + envelope.len() - der);
    out.push(envelope[5]);
    out.extend_from_slice(&envelope[times..times + 16]);
    out.extend_from_slice(&envelope[der..]);
    Some(out)
}

/// The full version-1 envelope of a [`strip`]ped one read under `key`'s
/// name.
pub(crate) fn restore(stripped: &[u8], key: &SessionKey) -> Result<Vec<u8>, EnvelopeError> {
    if stripped.len() < FIXED {
        return Err(EnvelopeError::Truncated {
            needed: FIXED - stripped.len(),
        });
    }
    let der = &stripped[FIXED..];
    let len = u32::try_from(der.len()).map_err(|_| EnvelopeError::Oversize {
        len: der.len(),
        limit: u32::MAX as usize,
    })?;
    let ctx = key.context.as_bytes();
    let id = key.id.as_bytes();
    let mut out = Vec::with_capacity(stripped.len() + 11 + ctx.len() + id.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(stripped[0]);
    // Both at most 32 (SessionIdContext's and SessionId's bounds).
    out.push(ctx.len() as u8);
    out.extend_from_slice(ctx);
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(&stripped[1..FIXED]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(der);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tls_session_cache::{Protocol, StoredSession, decode, encode};

    fn sample(ctx: &[u8], id: &[u8]) -> (SessionKey, StoredSession) {
        let key = SessionKey::from_slices(Protocol::Tls13, ctx, id).unwrap();
        let s = StoredSession::new(vec![1, 2, 3, 4, 5], 100, 400, Protocol::Tls13);
        (key, s)
    }

    #[test]
    fn strip_and_restore_round_trip() {
        for (ctx, id) in [
            (&b""[..], &[9u8][..]),
            (b"bench", &[7; 32]),
            (&[0xff; 32], &[0; 32]),
        ] {
            let (key, s) = sample(ctx, id);
            let envelope = encode(&key, &s);
            let stripped = strip(&envelope, &key).unwrap();
            assert_eq!(stripped.len(), envelope.len() - 11 - ctx.len() - id.len());
            assert_eq!(stripped.len(), 17 + s.der.len());
            let back = restore(&stripped, &key).unwrap();
            assert_eq!(back, envelope);
            assert_eq!(decode(&back).unwrap(), (key, s));
        }
    }

    #[test]
    fn strip_declines_what_it_does_not_recognise() {
        let (key, s) = sample(b"ctx", &[5; 32]);
        let (other, _) = sample(b"ctx", &[6; 32]);
        let envelope = encode(&key, &s);
        assert!(strip(&envelope, &other).is_none(), "another key's envelope");
        let mut v2 = envelope.clone();
        v2[4] = VERSION + 1;
        assert!(
            strip(&v2, &key).is_none(),
            "an envelope version it does not know"
        );
        assert!(strip(&envelope[..10], &key).is_none());
        assert!(strip(b"", &key).is_none());
        let mut trailing = envelope.clone();
        trailing.push(0);
        assert!(strip(&trailing, &key).is_none(), "bytes after the session");
    }

    #[test]
    fn restore_rejects_short_input_and_the_core_checks_the_rest() {
        let (key, _) = sample(b"ctx", &[5; 32]);
        assert_eq!(
            restore(&[], &key),
            Err(EnvelopeError::Truncated { needed: 17 })
        );
        assert_eq!(
            restore(&[0; 16], &key),
            Err(EnvelopeError::Truncated { needed: 1 })
        );
        // Unknown flags restore into an envelope the core refuses.
        let mut bad_flags = [0u8; 20];
        bad_flags[0] = 0x80;
        assert!(matches!(
            decode(&restore(&bad_flags, &key).unwrap()),
            Err(EnvelopeError::UnknownFlags(0x80))
        ));
        // An empty session is a valid envelope body; the limit still applies.
        assert!(decode(&restore(&[0; 17], &key).unwrap()).is_ok());
        assert!(matches!(
            tls_session_cache::decode_with_limit(&restore(&[0; 30], &key).unwrap(), 12),
            Err(EnvelopeError::Oversize { len: 13, limit: 12 })
        ));
    }
}
