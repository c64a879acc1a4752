//! Hand-built ClientHellos, for hostile-client tests and fuzz seeds: the
//! fields a well-behaved client never gets wrong — a session id of 33 or
//! 255 bytes behind a legal length byte, hundreds of PSK identities, a
//! ClientHello cut into one-byte records — written as bytes to send over
//! TCP.
//!
//! ```
//! use tls_session_cache_testkit::hello::{ClientHello, records};
//! let hello = ClientHello::tls12(&[7; 33]).encode();
//! assert_eq!(hello[0], 1); // handshake type client_hello
//! let wire = records(&hello, 1); // one byte per record
//! assert_eq!(wire.len(), hello.len() * 6);
//! ```

/// Handshake type `client_hello`.
const CLIENT_HELLO: u8 = 1;
/// Record content type `handshake`.
const HANDSHAKE: u8 = 22;
/// The largest record fragment (RFC 8446 §5.1).
pub const MAX_FRAGMENT: usize = 1 << 14;

/// A ClientHello to encode. Lengths are written as given, so invalid
/// values reach the server exactly as a hostile client would send them.
#[derive(Debug, Clone)]
pub struct ClientHello {
    /// The legacy session id (any length up to 255).
    pub session_id: Vec<u8>,
    /// Offer TLS 1.3 (`supported_versions`, `key_share`,
    /// `psk_key_exchange_modes`) besides TLS 1.2.
    pub tls13: bool,
    /// PSK identities for a `pre_shared_key` extension (TLS 1.3 only; one
    /// 32-byte binder each, which the server will not verify).
    pub psk_identities: Vec<Vec<u8>>,
}

impl ClientHello {
    /// A TLS 1.2-only ClientHello offering `session_id`.
    pub fn tls12(session_id: &[u8]) -> Self {
        ClientHello {
            session_id: session_id.to_vec(),
            tls13: false,
            psk_identities: Vec::new(),
        }
    }

    /// A TLS 1.3 ClientHello (32-byte legacy session id) offering
    /// `identities` as PSKs.
    pub fn tls13(identities: Vec<Vec<u8>>) -> Self {
        ClientHello {
            session_id: vec![0x33; 32],
            tls13: true,
            psk_identities: identities,
        }
    }

    /// The handshake message (type, 24-bit length, body).
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&[3, 3]); // legacy_version TLS 1.2
        body.extend((0..32u8).map(|i| i.wrapping_mul(37).wrapping_add(11))); // random
        body.push(self.session_id.len() as u8);
        body.extend_from_slice(&self.session_id);
        let suites: &[u16] = &[0x1301, 0x1302, 0xc02f, 0xc02b, 0xc030, 0xc02c, 0x009e];
        push_u16(&mut body, (suites.len() * 2) as u16);
        for s in suites {
            push_u16(&mut body, *s);
        }
        body.extend_from_slice(&[1, 0]); // compression: null

        let mut ext = Vec::new();
        extension(&mut ext, 10, &list16(&[0x001d, 0x0017])); // supported_groups
        extension(&mut ext, 13, &list16(&[0x0403, 0x0804, 0x0401])); // signature_algorithms
        extension(&mut ext, 23, &[]); // extended_master_secret (RFC 7627)
        if self.tls13 {
            extension(&mut ext, 43, &[4, 3, 4, 3, 3]); // supported_versions 1.3, 1.2
            let mut share = Vec::new();
            push_u16(&mut share, 0x001d); // x25519
            push_u16(&mut share, 32);
            share.extend((0..32u8).map(|i| i.wrapping_mul(13).wrapping_add(9)));
            let mut shares = Vec::new();
            push_u16(&mut shares, share.len() as u16);
            shares.extend_from_slice(&share);
            extension(&mut ext, 51, &shares); // key_share
            extension(&mut ext, 45, &[1, 1]); // psk_key_exchange_modes: psk_dhe_ke
            if !self.psk_identities.is_empty() {
                // pre_shared_key comes last (RFC 8446 §4.2.11).
                extension(&mut ext, 41, &psk_extension(&self.psk_identities));
            }
        }
        push_u16(&mut body, ext.len() as u16);
        body.extend_from_slice(&ext);

        let mut msg = vec![CLIENT_HELLO];
        msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend_from_slice(&body);
        msg
    }
}

/// The body of a `pre_shared_key` extension offering `identities` (ticket
/// age 0), with one 32-byte binder each.
pub fn psk_extension(identities: &[Vec<u8>]) -> Vec<u8> {
    let mut ids = Vec::new();
    for id in identities {
        push_u16(&mut ids, id.len() as u16);
        ids.extend_from_slice(id);
        ids.extend_from_slice(&[0; 4]);
    }
    let mut binders = Vec::new();
    for _ in identities {
        binders.push(32);
        binders.extend_from_slice(&[0x5a; 32]);
    }
    let mut out = Vec::new();
    push_u16(&mut out, ids.len() as u16);
    out.extend_from_slice(&ids);
    push_u16(&mut out, binders.len() as u16);
    out.extend_from_slice(&binders);
    out
}

/// `message` cut into handshake records of at most `fragment` bytes each
/// (1 ..= [`MAX_FRAGMENT`]), as sent on the wire.
pub fn records(message: &[u8], fragment: usize) -> Vec<u8> {
    let fragment = fragment.clamp(1, MAX_FRAGMENT);
    let mut out = Vec::with_capacity(message.len() + 5 * message.len().div_ceil(fragment));
    for chunk in message.chunks(fragment) {
        out.extend_from_slice(&[HANDSHAKE, 3, 1]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// The handshake messages carried by the handshake records at the start of
/// `wire` (fragments joined), up to the first record of another type or
/// the end; `None` if a record is cut short.
pub fn handshake_payload(wire: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = wire;
    while let [HANDSHAKE, _, _, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let (fragment, after) = tail.split_at_checked(len)?;
        out.extend_from_slice(fragment);
        rest = after;
    }
    Some(out)
}

/// The length of the first handshake message in `payload` (header
/// included), once `payload` holds all of it.
pub fn first_message_len(payload: &[u8]) -> Option<usize> {
    let [_, a, b, c, ..] = payload else {
        return None;
    };
    let len = 4 + (usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c));
    (payload.len() >= len).then_some(len)
}

/// Record content type `alert`.
pub const ALERT: u8 = 21;

/// Sends `bytes` to `addr` over a fresh TCP connection as a client would
/// (write errors are ignored: a server may close after an early alert),
/// half-closes, and returns everything the server sent until it closed
/// (bounded by `timeout` per read).
pub fn exchange(
    addr: std::net::SocketAddr,
    bytes: &[u8],
    timeout: std::time::Duration,
) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_nodelay(true)?;
    let _ = tcp.write_all(bytes);
    let _ = tcp.shutdown(std::net::Shutdown::Write);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // A reset after the server's alert still leaves what it sent.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// How a server answered a ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A ServerHello, with the session id it carries (TLS 1.2: the id of a
    /// resumed session, or a new one; TLS 1.3: the client's legacy id echoed).
    ServerHello {
        /// The ServerHello's legacy session id.
        session_id: Vec<u8>,
    },
    /// An alert (level, description).
    Alert(u8, u8),
    /// The connection closed with nothing sent.
    Closed,
    /// Anything else (not a TLS answer).
    Other(Vec<u8>),
}

/// Reads a server's first answer off `wire`.
pub fn answer(wire: &[u8]) -> Answer {
    match wire {
        [] => Answer::Closed,
        [ALERT, _, _, _, _, level, description, ..] => Answer::Alert(*level, *description),
        [HANDSHAKE, ..] => match handshake_payload(wire).as_deref().or(wire.get(5..)) {
            Some([2, _, _, _, _, _, rest @ ..]) if rest.len() > 32 => {
                let len = usize::from(rest[32]);
                match rest.get(33..33 + len) {
                    Some(id) => Answer::ServerHello {
                        session_id: id.to_vec(),
                    },
                    None => Answer::Other(wire.to_vec()),
                }
            }
            _ => Answer::Other(wire.to_vec()),
        },
        _ => Answer::Other(wire.to_vec()),
    }
}

fn push_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn list16(items: &[u16]) -> Vec<u8> {
    let mut out = Vec::new();
    push_u16(&mut out, (items.len() * 2) as u16);
    for i in items {
        push_u16(&mut out, *i);
    }
    out
}

fn extension(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    push_u16(out, kind);
    push_u16(out, body.len() as u16);
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_the_payload_reader() {
        let hello = ClientHello::tls13(vec![vec![1; 32]; 300]).encode();
        assert!(
            hello.len() > MAX_FRAGMENT,
            "hundreds of identities span records"
        );
        for fragment in [1, 7, MAX_FRAGMENT, usize::MAX] {
            let wire = records(&hello, fragment);
            let payload = handshake_payload(&wire).unwrap();
            assert_eq!(payload, hello);
            assert_eq!(first_message_len(&payload), Some(hello.len()));
        }
        assert_eq!(handshake_payload(&records(&hello, 100)[..50]), None);
    }

    #[test]
    fn the_session_id_length_byte_is_written_as_given() {
        for len in [0usize, 33, 255] {
            let hello = ClientHello::tls12(&vec![9; len]).encode();
            assert_eq!(usize::from(hello[4 + 2 + 32]), len);
        }
    }
}
