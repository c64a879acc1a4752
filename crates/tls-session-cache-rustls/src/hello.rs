//! A bounded reader of the ClientHello: what a client offers to resume
//! (its TLS 1.2 session id, its TLS 1.3 PSK identities), read before rustls
//! sees the bytes so the store can be asked without blocking a thread.
//!
//! Nothing here trusts the client: every length is checked against what is
//! left, the whole ClientHello is bounded by [`MAX_HELLO`], and anything
//! unexpected means "nothing offered" (the handshake then goes on as rustls
//! decides, without resumption from the cache).

/// Largest ClientHello read ahead (handshake body bytes). Larger ones are
/// passed to rustls without a prefetch.
pub const MAX_HELLO: usize = 16 * 1024;

/// Most PSK identities fetched for one ClientHello: each is a store round
/// trip, and a client has no reason to offer many.
pub const MAX_PSK_LOOKUPS: usize = 4;

const EXT_SUPPORTED_VERSIONS: u16 = 43;
const EXT_PRE_SHARED_KEY: u16 = 41;
const TLS13: [u8; 2] = [0x03, 0x04];

/// What a ClientHello offers to resume.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Offer {
    /// `supported_versions` lists TLS 1.3.
    pub tls13: bool,
    /// The legacy session id (TLS 1.2 resumption; random in TLS 1.3).
    pub session_id: Vec<u8>,
    /// The PSK identities (TLS 1.3 tickets), at most [`MAX_PSK_LOOKUPS`].
    pub psk_identities: Vec<Vec<u8>>,
}

/// A cursor over untrusted bytes; every read is checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

/// The offer in a ClientHello handshake body (after the 4-byte handshake
/// header); `None` if it does not parse.
pub fn parse_client_hello(body: &[u8]) -> Option<Offer> {
    let mut r = Reader(body);
    r.take(2 + 32)?; // legacy_version, random
    let session_id = r.vec8()?;
    if session_id.len() > 32 {
        return None;
    }
    r.vec16()?; // cipher_suites
    r.vec8()?; // legacy_compression_methods
    let mut offer = Offer {
        session_id: session_id.to_vec(),
        ..Offer::default()
    };
    if r.0.is_empty() {
        return Some(offer); // no extensions
    }
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        match kind as u16 {
            EXT_SUPPORTED_VERSIONS => {
                let mut v = Reader(Reader(data).vec8()?);
                while let Some(version) = v.take(2) {
                    offer.tls13 |= version == TLS13;
                }
            }
            EXT_PRE_SHARED_KEY => {
                let mut ids = Reader(Reader(data).vec16()?);
                while !ids.0.is_empty() {
                    let identity = ids.vec16()?;
                    ids.take(4)?; // obfuscated_ticket_age
                    if offer.psk_identities.len() < MAX_PSK_LOOKUPS {
                        offer.psk_identities.push(identity.to_vec());
                    }
                }
            }
            _ => {}
        }
    }
    Some(offer)
}

/// Accumulates TLS records until the first handshake message (which must be
/// a ClientHello) is complete.
#[derive(Debug, Default)]
pub struct HelloReader {
    handshake: Vec<u8>,
}

/// What to do after feeding a record.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Read another record.
    More,
    /// The ClientHello is complete: this is what it offers.
    Done(Offer),
    /// Not a ClientHello, too large, or malformed: no prefetch.
    GiveUp,
}

impl HelloReader {
    /// Feeds one record's type and body.
    pub fn record(&mut self, content_type: u8, body: &[u8]) -> Next {
        const HANDSHAKE: u8 = 22;
        const CLIENT_HELLO: u8 = 1;
        if content_type != HANDSHAKE || self.handshake.len() + body.len() > MAX_HELLO + 4 {
            return Next::GiveUp;
        }
        self.handshake.extend_from_slice(body);
        let Some(header) = self.handshake.get(..4) else {
            return Next::More;
        };
        if header[0] != CLIENT_HELLO {
            return Next::GiveUp;
        }
        let len =
            usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
        if len > MAX_HELLO {
            return Next::GiveUp;
        }
        match self.handshake.get(4..4 + len) {
            None => Next::More,
            Some(hello) => parse_client_hello(hello).map_or(Next::GiveUp, Next::Done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(session_id: &[u8], exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[7; 32]);
        b.push(session_id.len() as u8);
        b.extend_from_slice(session_id);
        b.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
        let mut e = Vec::new();
        for (kind, data) in exts {
            e.extend_from_slice(&kind.to_be_bytes());
            e.extend_from_slice(&(data.len() as u16).to_be_bytes());
            e.extend_from_slice(data);
        }
        b.extend_from_slice(&(e.len() as u16).to_be_bytes());
        b.extend_from_slice(&e);
        b
    }

    fn psk(ids: &[&[u8]]) -> Vec<u8> {
        let mut list = Vec::new();
        for id in ids {
            list.extend_from_slice(&(id.len() as u16).to_be_bytes());
            list.extend_from_slice(id);
            list.extend_from_slice(&[0; 4]);
        }
        let mut d = (list.len() as u16).to_be_bytes().to_vec();
        d.extend_from_slice(&list);
        d.extend_from_slice(&[0, 0]); // binders (not read)
        d
    }

    #[test]
    fn reads_session_id_versions_and_identities() {
        let body = hello(
            &[5; 32],
            &[
                (EXT_SUPPORTED_VERSIONS, vec![4, 3, 4, 3, 3]),
                (EXT_PRE_SHARED_KEY, psk(&[&[1; 32], &[2; 255], &[]])),
            ],
        );
        let offer = parse_client_hello(&body).unwrap();
        assert!(offer.tls13);
        assert_eq!(offer.session_id, [5; 32]);
        assert_eq!(offer.psk_identities, [vec![1; 32], vec![2; 255], vec![]]);
    }

    #[test]
    fn bounds_identities_and_refuses_malformed_hellos() {
        let ids: Vec<&[u8]> = vec![&[1; 8]; 9];
        let offer = parse_client_hello(&hello(&[], &[(EXT_PRE_SHARED_KEY, psk(&ids))])).unwrap();
        assert_eq!(offer.psk_identities.len(), MAX_PSK_LOOKUPS);
        assert!(!offer.tls13);
        let good = hello(&[1; 32], &[(EXT_PRE_SHARED_KEY, psk(&[&[1; 32]]))]);
        for cut in 0..good.len() {
            // Every truncation is refused or reads less, never panics.
            let _ = parse_client_hello(&good[..cut]);
        }
        let mut long_id = good.clone();
        long_id[34] = 33;
        assert_eq!(parse_client_hello(&long_id), None);
    }

    #[test]
    fn records_are_joined_and_bounded() {
        let body = hello(&[9; 4], &[]);
        let mut msg = vec![1, 0, 0, body.len() as u8];
        msg.extend_from_slice(&body);
        let mut r = HelloReader::default();
        assert_eq!(r.record(22, &msg[..10]), Next::More);
        match r.record(22, &msg[10..]) {
            Next::Done(offer) => assert_eq!(offer.session_id, [9; 4]),
            other => panic!("{other:?}"),
        }
        assert_eq!(HelloReader::default().record(23, &msg), Next::GiveUp);
        assert_eq!(
            HelloReader::default().record(22, &[2, 0, 0, 1, 0]),
            Next::GiveUp
        );
        assert_eq!(
            HelloReader::default().record(22, &[1, 0xff, 0, 0]),
            Next::GiveUp
        );
    }
}
