//! Pure, bounded parsers for the two ClientHello extensions the lookup
//! needs, straight from RFC 8446 §4.2:
//!
//! ```text
//! pre_shared_key (41), in a ClientHello:
//!   struct { opaque identity<1..2^16-1>; uint32 obfuscated_ticket_age; } PskIdentity;
//!   opaque PskBinderEntry<32..255>;
//!   struct { PskIdentity identities<7..2^16-1>;
//!            PskBinderEntry binders<33..2^16-1>; } OfferedPsks;
//!
//! supported_versions (43), in a ClientHello:
//!   ProtocolVersion versions<2..254>;
//! ```
//!
//! They never panic, never allocate more than the input's length implies,
//! and refuse anything that does not follow the grammar exactly (a
//! malformed extension means a full handshake; OpenSSL will reject the
//! ClientHello itself anyway).

/// Why an extension does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A length field points past the end of its enclosing block.
    #[error("truncated: a length runs past the end of the extension")]
    Truncated,
    /// Bytes left over after the last field.
    #[error("{0} trailing bytes after the extension's fields")]
    Trailing(usize),
    /// The identities list is empty.
    #[error("no PSK identity offered")]
    NoIdentity,
    /// A PSK identity of length zero.
    #[error("empty PSK identity")]
    EmptyIdentity,
    /// The binders list is empty, or a binder is not 32..=255 bytes.
    #[error("malformed PSK binders")]
    Binders,
    /// More identities than binders or the reverse (RFC 8446 §4.2.11).
    #[error("{identities} PSK identities but {binders} binders")]
    BinderCount {
        /// Identities offered.
        identities: usize,
        /// Binders offered.
        binders: usize,
    },
    /// A `supported_versions` list of odd length or outside 2..=254 bytes.
    #[error("malformed supported_versions list")]
    Versions,
}

/// The length of a TLS 1.3 *stateful* ticket issued by OpenSSL: a session
/// id (`SSL_MAX_SSL_SESSION_ID_LENGTH`). Identities of any other length are
/// stateless tickets or external PSKs, never looked up in a cache.
pub const STATEFUL_TICKET_LEN: usize = 32;

/// `ProtocolVersion` of TLS 1.3.
pub const TLS13: u16 = 0x0304;

/// A cursor over a byte slice; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, ParseError> {
        let (&b, rest) = self.0.split_first().ok_or(ParseError::Truncated)?;
        self.0 = rest;
        Ok(b)
    }
    fn u16(&mut self) -> Result<u16, ParseError> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        if n > self.0.len() {
            return Err(ParseError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The PSK identities of a ClientHello's `pre_shared_key` extension body,
/// in the order offered (which is the order OpenSSL tries them), after
/// checking the whole extension, binders included.
///
/// ```
/// use tls_session_cache_tokio::psk::psk_identities;
/// // one 2-byte identity "hi" (age 0), one 32-byte binder
/// let mut ext = vec![0, 8, 0, 2, b'h', b'i', 0, 0, 0, 0, 0, 33, 32];
/// ext.extend([7u8; 32]);
/// assert_eq!(psk_identities(&ext)?, vec![&b"hi"[..]]);
/// assert!(psk_identities(&ext[..5]).is_err());
/// # Ok::<(), tls_session_cache_tokio::psk::ParseError>(())
/// ```
pub fn psk_identities(ext: &[u8]) -> Result<Vec<&[u8]>, ParseError> {
    let mut r = Reader(ext);
    let identities_len = usize::from(r.u16()?);
    let mut ids = Reader(r.bytes(identities_len)?);
    let mut out = Vec::new();
    while !ids.is_empty() {
        let len = usize::from(ids.u16()?);
        if len == 0 {
            return Err(ParseError::EmptyIdentity);
        }
        out.push(ids.bytes(len)?);
        ids.bytes(4)?; // obfuscated_ticket_age
    }
    if out.is_empty() {
        return Err(ParseError::NoIdentity);
    }
    let binders_len = usize::from(r.u16()?);
    let mut binders = Reader(r.bytes(binders_len)?);
    let mut count = 0usize;
    while !binders.is_empty() {
        let len = usize::from(binders.u8()?);
        if len < 32 {
            return Err(ParseError::Binders);
        }
        binders.bytes(len)?;
        count += 1;
    }
    if count == 0 {
        return Err(ParseError::Binders);
    }
    if count != out.len() {
        return Err(ParseError::BinderCount {
            identities: out.len(),
            binders: count,
        });
    }
    if !r.is_empty() {
        return Err(ParseError::Trailing(r.0.len()));
    }
    Ok(out)
}

/// Whether a ClientHello's `supported_versions` extension body offers TLS 1.3.
pub fn offers_tls13(ext: &[u8]) -> Result<bool, ParseError> {
    let mut r = Reader(ext);
    let len = usize::from(r.u8()?);
    if !(2..=254).contains(&len) || len % 2 != 0 {
        return Err(ParseError::Versions);
    }
    let mut versions = Reader(r.bytes(len)?);
    if !r.is_empty() {
        return Err(ParseError::Trailing(r.0.len()));
    }
    let mut found = false;
    while !versions.is_empty() {
        found |= versions.u16()? == TLS13;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Encodes an OfferedPsks body.
    fn encode(ids: &[Vec<u8>], binders: &[Vec<u8>]) -> Vec<u8> {
        let mut idl = Vec::new();
        for id in ids {
            idl.extend((id.len() as u16).to_be_bytes());
            idl.extend(id);
            idl.extend([1, 2, 3, 4]);
        }
        let mut bl = Vec::new();
        for b in binders {
            bl.push(b.len() as u8);
            bl.extend(b);
        }
        let mut out = (idl.len() as u16).to_be_bytes().to_vec();
        out.extend(idl);
        out.extend((bl.len() as u16).to_be_bytes());
        out.extend(bl);
        out
    }

    #[test]
    fn well_formed_extension_yields_identities_in_order() {
        let ids = vec![vec![1u8; 32], vec![2u8; 100], vec![3u8; 1]];
        let ext = encode(&ids, &[vec![0; 32], vec![0; 48], vec![0; 255]]);
        let got = psk_identities(&ext).unwrap();
        assert_eq!(got, ids.iter().map(Vec::as_slice).collect::<Vec<_>>());
    }

    #[test]
    fn malformed_extensions_are_typed_errors() {
        let good = encode(&[vec![9; 32]], &[vec![0; 32]]);
        assert!(psk_identities(&good).is_ok());
        assert_eq!(psk_identities(&[]), Err(ParseError::Truncated));
        assert_eq!(psk_identities(&[0]), Err(ParseError::Truncated));
        // identities list longer than the extension
        assert_eq!(psk_identities(&[0xff, 0xff, 0]), Err(ParseError::Truncated));
        assert_eq!(
            psk_identities(&encode(&[], &[vec![0; 32]])),
            Err(ParseError::NoIdentity)
        );
        assert_eq!(
            psk_identities(&encode(&[vec![]], &[vec![0; 32]])),
            Err(ParseError::EmptyIdentity)
        );
        assert_eq!(
            psk_identities(&encode(&[vec![1; 32]], &[])),
            Err(ParseError::Binders)
        );
        assert_eq!(
            psk_identities(&encode(&[vec![1; 32]], &[vec![0; 31]])),
            Err(ParseError::Binders)
        );
        assert_eq!(
            psk_identities(&encode(&[vec![1; 32], vec![2; 32]], &[vec![0; 32]])),
            Err(ParseError::BinderCount {
                identities: 2,
                binders: 1
            })
        );
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(psk_identities(&trailing), Err(ParseError::Trailing(1)));
        // every strict prefix of a good extension is refused
        for n in 0..good.len() {
            assert!(psk_identities(&good[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn supported_versions() {
        assert_eq!(offers_tls13(&[4, 0x03, 0x04, 0x03, 0x03]), Ok(true));
        assert_eq!(offers_tls13(&[2, 0x03, 0x03]), Ok(false));
        assert_eq!(
            offers_tls13(&[3, 0x03, 0x04, 0x03]),
            Err(ParseError::Versions)
        );
        assert_eq!(offers_tls13(&[0]), Err(ParseError::Versions));
        assert_eq!(offers_tls13(&[4, 0x03, 0x04]), Err(ParseError::Truncated));
        assert_eq!(
            offers_tls13(&[2, 0x03, 0x04, 9]),
            Err(ParseError::Trailing(1))
        );
        assert_eq!(offers_tls13(&[]), Err(ParseError::Truncated));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary bytes never panic, and whatever parses is made of
        /// sub-slices of the input whose lengths fit in it.
        #[test]
        fn arbitrary_bytes_never_panic(ext in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(ids) = psk_identities(&ext) {
                prop_assert!(!ids.is_empty());
                let total: usize = ids.iter().map(|i| i.len() + 6).sum();
                prop_assert!(total + 4 <= ext.len());
                for id in ids {
                    prop_assert!(!id.is_empty());
                    let start = id.as_ptr() as usize - ext.as_ptr() as usize;
                    prop_assert!(start + id.len() <= ext.len());
                }
            }
            let _ = offers_tls13(&ext);
        }

        /// Well-formed extensions round-trip.
        #[test]
        fn encoded_extensions_round_trip(
            ids in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..80), 1..6),
            binder_len in 32usize..=255,
        ) {
            let binders = vec![vec![0xAB; binder_len]; ids.len()];
            let ext = encode(&ids, &binders);
            let got = psk_identities(&ext).unwrap();
            prop_assert_eq!(got, ids.iter().map(Vec::as_slice).collect::<Vec<_>>());
        }

        /// Corrupting one byte of a well-formed extension never panics, and
        /// what still parses still lies inside the input.
        #[test]
        fn mutated_extensions_never_panic(
            ids in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 1..4),
            at in any::<proptest::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<proptest::sample::Index>(),
        ) {
            let binders = vec![vec![1; 32]; ids.len()];
            let mut ext = encode(&ids, &binders);
            let i = at.index(ext.len());
            ext[i] = byte;
            let n = cut.index(ext.len() + 1);
            let _ = psk_identities(&ext[..n]);
            if let Ok(found) = psk_identities(&ext) {
                for id in found {
                    prop_assert!(id.len() <= ext.len());
                }
            }
        }
    }
}
