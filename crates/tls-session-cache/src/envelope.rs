//! A versioned binary envelope for stores that keep sessions outside the
//! process (Redis, files, memcached).
//!
//! ```text
//! offset size  field
//! 0      4     magic "TLSC"
//! 4      1     version (1)
//! 5      1     flags: bit 0 = TLS 1.3, bit 1 = single use; others must be 0
//! 6      1     context length c (0..=32)
//! 7      c     context
//! 7+c    1     id length i (1..=32)
//! 8+c    i     id
//! 8+c+i  8     created, seconds since the Unix epoch, big endian
//! 16+c+i 8     expires, likewise
//! 24+c+i 4     session length n, big endian
//! 28+c+i n     session bytes (DER)
//! ```
//!
//! Nothing may follow the session bytes. The envelope is not encrypted or
//! authenticated: stores that leave the process seal it (the Redis store
//! does, with AES-256-GCM).

use bytes::Bytes;

use crate::key::{KeyError, SessionId, SessionIdContext, SessionKey};
use crate::session::{Protocol, StoredSession};

/// The four bytes every envelope starts with.
pub const MAGIC: [u8; 4] = *b"TLSC";
/// The format version written by [`encode`].
pub const VERSION: u8 = 1;
/// The largest session [`decode`] accepts (256 KiB).
pub const MAX_SESSION_LEN: usize = 256 * 1024;

const FLAG_TLS13: u8 = 1;
const FLAG_SINGLE_USE: u8 = 2;
const KNOWN_FLAGS: u8 = FLAG_TLS13 | FLAG_SINGLE_USE;

/// Why bytes are not a valid envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The input ends before the envelope does.
    #[error("envelope truncated: needed {needed} more bytes")]
    Truncated {
        /// How many more bytes the next field needed.
        needed: usize,
    },
    /// The input does not start with [`MAGIC`].
    #[error("not a session envelope (bad magic)")]
    BadMagic,
    /// A version this build cannot read.
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u8),
    /// Flag bits this version does not define.
    #[error("unknown envelope flags {0:#04x}")]
    UnknownFlags(u8),
    /// The context or id has an invalid length.
    #[error("invalid key in envelope: {0}")]
    Key(#[from] KeyError),
    /// The session is larger than the limit.
    #[error("session of {len} bytes exceeds the limit of {limit} bytes")]
    Oversize {
        /// The declared length.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// Bytes follow the session.
    #[error("{0} trailing bytes after the envelope")]
    TrailingBytes(usize),
}

/// Serialises `key` and `session` into an envelope.
pub fn encode(key: &SessionKey, session: &StoredSession) -> Vec<u8> {
    let ctx = key.context.as_bytes();
    let id = key.id.as_bytes();
    let mut out = Vec::with_capacity(28 + ctx.len() + id.len() + session.der.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    let mut flags = 0;
    if session.protocol == Protocol::Tls13 {
        flags |= FLAG_TLS13;
    }
    if session.single_use {
        flags |= FLAG_SINGLE_USE;
    }
    out.push(flags);
    out.push(ctx.len() as u8);
    out.extend_from_slice(ctx);
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(&session.created.to_be_bytes());
    out.extend_from_slice(&session.expires.to_be_bytes());
    out.extend_from_slice(&(session.der.len() as u32).to_be_bytes());
    out.extend_from_slice(&session.der);
    out
}

/// Parses an envelope, accepting sessions up to [`MAX_SESSION_LEN`].
pub fn decode(input: &[u8]) -> Result<(SessionKey, StoredSession), EnvelopeError> {
    decode_with_limit(input, MAX_SESSION_LEN)
}

/// Parses an envelope, accepting sessions up to `limit` bytes.
pub fn decode_with_limit(
    input: &[u8],
    limit: usize,
) -> Result<(SessionKey, StoredSession), EnvelopeError> {
    let mut r = Reader(input);
    if r.take(4)? != MAGIC {
        return Err(EnvelopeError::BadMagic);
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(EnvelopeError::UnsupportedVersion(version));
    }
    let flags = r.u8()?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(EnvelopeError::UnknownFlags(flags));
    }
    let ctx_len = usize::from(r.u8()?);
    let context = SessionIdContext::new(r.take(ctx_len)?)?;
    let id_len = usize::from(r.u8()?);
    let id = SessionId::new(r.take(id_len)?)?;
    let created = r.u64()?;
    let expires = r.u64()?;
    let len = r.u32()? as usize;
    if len > limit {
        return Err(EnvelopeError::Oversize { len, limit });
    }
    let der = Bytes::copy_from_slice(r.take(len)?);
    if !r.0.is_empty() {
        return Err(EnvelopeError::TrailingBytes(r.0.len()));
    }
    let protocol = if flags & FLAG_TLS13 != 0 {
        Protocol::Tls13
    } else {
        Protocol::Tls12
    };
    let session = StoredSession {
        der,
        created,
        expires,
        protocol,
        single_use: flags & FLAG_SINGLE_USE != 0,
    };
    // Keys are protocol-bound: the flag names the key's protocol too.
    Ok((SessionKey::new(protocol, context, id), session))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EnvelopeError> {
        if self.0.len() < n {
            return Err(EnvelopeError::Truncated {
                needed: n - self.0.len(),
            });
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, EnvelopeError> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], EnvelopeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, EnvelopeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, EnvelopeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (SessionKey, StoredSession) {
        let key = SessionKey::from_slices(Protocol::Tls13, b"ctx", &[5; 32]).unwrap();
        let s = StoredSession::new(vec![1, 2, 3], 100, 400, Protocol::Tls13);
        (key, s)
    }

    #[test]
    fn round_trip() {
        let (k, s) = sample();
        assert_eq!(decode(&encode(&k, &s)).unwrap(), (k, s));
    }

    #[test]
    fn rejects_bad_input() {
        let (k, s) = sample();
        let good = encode(&k, &s);
        assert_eq!(
            decode(&good[..good.len() - 1]).unwrap_err(),
            EnvelopeError::Truncated { needed: 1 }
        );
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            decode(&trailing).unwrap_err(),
            EnvelopeError::TrailingBytes(1)
        );
        let mut version = good.clone();
        version[4] = 9;
        assert_eq!(
            decode(&version).unwrap_err(),
            EnvelopeError::UnsupportedVersion(9)
        );
        let mut magic = good.clone();
        magic[0] = b'X';
        assert_eq!(decode(&magic).unwrap_err(), EnvelopeError::BadMagic);
        let mut flags = good.clone();
        flags[5] |= 0x80;
        assert!(matches!(
            decode(&flags),
            Err(EnvelopeError::UnknownFlags(_))
        ));
        assert_eq!(
            decode_with_limit(&good, 2).unwrap_err(),
            EnvelopeError::Oversize { len: 3, limit: 2 }
        );
        let mut bad_ctx = good.clone();
        bad_ctx[6] = 40;
        assert!(matches!(decode(&bad_ctx), Err(EnvelopeError::Key(_))));
    }
}
