//! The stored form of a session: its DER (`i2d_SSL_SESSION`) without what
//! the store already says.
//!
//! A server session's DER repeats its key — the session id (34 bytes with
//! its tag and length) and the session-id context (4 + its length) — and
//! carries its time and timeout (about 14 bytes), which the store's
//! `created` and `expires` nearly say. The *compact* form drops all four
//! and keeps every other element of the DER untouched:
//!
//! | bytes | |
//! |---|---|
//! | 1 | format: [`COMPACT_V1`], or [`COMPACT_V2`] when the first three elements have their usual shape |
//! | 1–10 | `time − created`, zigzag LEB128 |
//! | 1–10 | `timeout − (expires − created)`, zigzag LEB128 (usually one byte each) |
//! | 4 | check: FNV-1a (32 bits) of the id and the context it was stored under and of the stored length |
//! | 2 | [`COMPACT_V2`] only: the cipher suite; the version (`INTEGER 1`) and protocol version (that of the key's protocol) elements are implied |
//! | rest | the DER's top-level elements other than the session id, `[1]` time, `[2]` timeout and `[4]` session-id context, in their order, without the outer `SEQUENCE` header |
//!
//! [`expand`] puts them back from the key and the store's times and
//! rebuilds the outer header: the result is the original DER byte for byte.
//! The check keeps the old defence against a session stored under another
//! key (a store mix-up): once the id is gone from the bytes, a session put
//! under the wrong id would otherwise decode with that id and fail the
//! handshake instead of falling back to a full one. It is a check against
//! mistakes, not authentication (Redis values are sealed for that).
//! [`compact`] checks exactly that before it returns a compact form; a
//! session it cannot reproduce (an unusual encoding, another id or
//! context inside) is stored as plain DER. Plain DER starts with `0x30`
//! (`SEQUENCE`) and is still read: sessions stored before this format, and
//! those, stay readable until they expire.
//!
//! Restoring happens before OpenSSL sees a byte (`d2i_SSL_SESSION` decodes
//! the rebuilt DER), so the session OpenSSL resumes is exactly the one it
//! serialised. For a TLS 1.3 stateful ticket the session id *is* the
//! ticket, the key's id, so it is restored the same way.

use openssl::ssl::SslSession;
use tls_session_cache::{Protocol, SessionKey, StoredSession, UnixTime};

/// First byte of the compact form.
pub const COMPACT_V1: u8 = 0x01;
/// First byte of the compact form whose version, protocol-version and
/// cipher elements are implied (the cipher's two bytes kept).
pub const COMPACT_V2: u8 = 0x02;

/// The DER `ssl_version` element's value for sessions under `protocol`'s keys.
fn ssl_version(protocol: Protocol) -> [u8; 2] {
    match protocol {
        Protocol::Tls12 => [0x03, 0x03],
        Protocol::Tls13 => [0x03, 0x04],
    }
}
/// First byte of plain DER (`SEQUENCE`).
const SEQUENCE: u8 = 0x30;

/// Why stored bytes could not be turned back into DER.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompactError {
    /// Neither plain DER nor a known compact format.
    #[error("unknown stored session format {0:#04x}")]
    Format(u8),
    /// Empty, or cut short.
    #[error("truncated stored session")]
    Truncated,
    /// An element or a number does not parse.
    #[error("malformed stored session: {0}")]
    Malformed(&'static str),
    /// Stored under another id or context than the one it was made for (or
    /// cut short).
    #[error("stored session belongs to another id or context, or was cut")]
    KeyMismatch,
    /// The rebuilt DER does not decode (`d2i_SSL_SESSION`).
    #[error("stored session does not decode: {0}")]
    Decode(#[from] openssl::error::ErrorStack),
}

/// The session stored under `key`, decoded: what the binding's lookup
/// does before its own checks, for applications and tools that read a
/// store directly (e.g. to call [`SessionCache::remove_session`](crate::SessionCache::remove_session)).
///
/// ```no_run
/// # fn f(store: &dyn tls_session_cache::SessionStore, key: &tls_session_cache::SessionKey)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// if let Some(stored) = store.get(key)? {
///     let session = tls_session_cache_openssl::decode_stored(key, &stored)?;
///     assert_eq!(session.id(), key.id.as_bytes());
/// }
/// # Ok(()) }
/// ```
pub fn decode_stored(key: &SessionKey, stored: &StoredSession) -> Result<SslSession, CompactError> {
    let der = expand(
        &stored.der,
        key.protocol,
        key.id.as_bytes(),
        key.context.as_bytes(),
        stored.created,
        stored.expires,
    )?;
    let session = SslSession::from_der(&der);
    // The rebuilt DER holds the master secret: scrub it.
    zeroize::Zeroize::zeroize(&mut { der });
    Ok(session?)
}

/// One top-level element: its tag number (for context-specific tags) and
/// its bytes (tag, length and value).
struct Element<'a> {
    context_tag: Option<u32>,
    bytes: &'a [u8],
}

/// Splits `content` into its top-level TLV elements.
fn elements(mut content: &[u8]) -> Result<Vec<Element<'_>>, CompactError> {
    let mut out = Vec::with_capacity(16);
    while !content.is_empty() {
        let (element, rest) = element(content)?;
        out.push(element);
        content = rest;
    }
    Ok(out)
}

fn element(input: &[u8]) -> Result<(Element<'_>, &[u8]), CompactError> {
    let first = *input.first().ok_or(CompactError::Truncated)?;
    let mut at = 1;
    let mut number = u32::from(first & 0x1F);
    if number == 0x1F {
        number = 0;
        loop {
            let b = *input.get(at).ok_or(CompactError::Truncated)?;
            at += 1;
            if number > 1 << 24 {
                return Err(CompactError::Malformed("tag number"));
            }
            number = number << 7 | u32::from(b & 0x7F);
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let (len, header) = length(&input[at..])?;
    let end = at
        .checked_add(header)
        .and_then(|h| h.checked_add(len))
        .ok_or(CompactError::Malformed("length"))?;
    if end > input.len() {
        return Err(CompactError::Truncated);
    }
    let context_tag = (first & 0xC0 == 0x80).then_some(number);
    Ok((
        Element {
            context_tag,
            bytes: &input[..end],
        },
        &input[end..],
    ))
}

/// A DER length: (value, bytes it took).
fn length(input: &[u8]) -> Result<(usize, usize), CompactError> {
    let b = *input.first().ok_or(CompactError::Truncated)?;
    if b < 0x80 {
        return Ok((usize::from(b), 1));
    }
    let n = usize::from(b & 0x7F);
    if n == 0 || n > 4 {
        return Err(CompactError::Malformed("length"));
    }
    let bytes = input.get(1..=n).ok_or(CompactError::Truncated)?;
    let len = bytes.iter().fold(0usize, |l, &b| l << 8 | usize::from(b));
    Ok((len, 1 + n))
}

fn push_length(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
        0x100..=0xFFFF => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
        _ => {
            out.push(0x84);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
}

/// `tag len value`.
fn push_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    push_length(out, value.len());
    out.extend_from_slice(value);
}

/// A DER INTEGER's content: minimal two's complement, big endian.
fn integer(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

/// `[tag] EXPLICIT INTEGER v`.
fn explicit_integer(tag: u8, v: i64) -> Vec<u8> {
    let mut int = Vec::with_capacity(10);
    push_tlv(&mut int, 0x02, &integer(v));
    let mut out = Vec::with_capacity(12);
    push_tlv(&mut out, tag, &int);
    out
}

/// Reads `[n] EXPLICIT INTEGER` from an element's bytes.
fn read_explicit_integer(bytes: &[u8]) -> Option<i64> {
    let (_, inner_at) = length(&bytes[1..]).ok()?;
    let inner = &bytes[1 + inner_at..];
    if inner.first() != Some(&0x02) {
        return None;
    }
    let (len, h) = length(&inner[1..]).ok()?;
    let value = inner.get(1 + h..1 + h + len)?;
    if value.is_empty() || value.len() > 8 {
        return None;
    }
    let mut v: i64 = if value[0] & 0x80 != 0 { -1 } else { 0 };
    for &b in value {
        v = v << 8 | i64::from(b);
    }
    Some(v)
}

/// FNV-1a, 32 bits, of the id and the context (each with its length) and
/// the stored form's length (which the outer DER header used to say).
fn key_check(id: &[u8], context: &[u8], stored_len: usize) -> [u8; 4] {
    let mut h: u32 = 0x811c_9dc5;
    for part in [id, context, &(stored_len as u32).to_le_bytes()] {
        for &b in std::iter::once(&(part.len() as u8)).chain(part) {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }
    h.to_le_bytes()
}

fn push_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (z & 0x7F) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn read_varint(input: &mut &[u8]) -> Result<i64, CompactError> {
    let mut z: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = input.split_first().ok_or(CompactError::Truncated)?;
        *input = rest;
        z |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
        }
    }
    Err(CompactError::Malformed("number"))
}

/// The compact form of `der`, a server session serialised by
/// `i2d_SSL_SESSION` with session id `id` in context `context`, to be
/// stored with `created` and `expires`; `None` when it cannot be
/// reproduced exactly from that (store `der` as it is then).
pub fn compact(
    der: &[u8],
    protocol: Protocol,
    id: &[u8],
    context: &[u8],
    created: UnixTime,
    expires: UnixTime,
) -> Option<Vec<u8>> {
    if der.first() != Some(&SEQUENCE) {
        return None;
    }
    let (len, h) = length(&der[1..]).ok()?;
    if 1 + h + len != der.len() {
        return None;
    }
    let all = elements(&der[1 + h..]).ok()?;
    // version, ssl_version, cipher, session_id, master_key, …
    let session_id = all.get(3)?;
    if session_id.bytes.first() != Some(&0x04) || all[..3].iter().any(|e| e.context_tag.is_some()) {
        return None;
    }
    let find = |n: u32| all.iter().find(|e| e.context_tag == Some(n));
    let time = read_explicit_integer(find(1)?.bytes)?;
    let timeout = read_explicit_integer(find(2)?.bytes)?;
    let created = i64::try_from(created).ok()?;
    let expires = i64::try_from(expires).ok()?;
    let [v0, v1] = ssl_version(protocol);
    let templated = all[0].bytes == [0x02, 0x01, 0x01]
        && all[1].bytes == [0x02, 0x02, v0, v1]
        && all[2].bytes.len() == 4
        && all[2].bytes[..2] == [0x04, 0x02];
    let mut out = Vec::with_capacity(der.len());
    out.push(if templated { COMPACT_V2 } else { COMPACT_V1 });
    push_varint(&mut out, time.checked_sub(created)?);
    push_varint(
        &mut out,
        timeout.checked_sub(expires.checked_sub(created)?)?,
    );
    let check_at = out.len();
    out.extend_from_slice(&[0; 4]);
    if templated {
        out.extend_from_slice(&all[2].bytes[2..]);
    }
    for (i, e) in all.iter().enumerate() {
        if i == 3 || (templated && i < 3) || matches!(e.context_tag, Some(1 | 2 | 4)) {
            continue;
        }
        out.extend_from_slice(e.bytes);
    }
    let check = key_check(id, context, out.len());
    out[check_at..check_at + 4].copy_from_slice(&check);
    // Exactly reproducible, or not used.
    let mut back = expand(&out, protocol, id, context, created as u64, expires as u64).ok()?;
    let same = back == der;
    zeroize::Zeroize::zeroize(&mut back);
    if same {
        Some(out)
    } else {
        zeroize::Zeroize::zeroize(&mut out);
        None
    }
}

/// The DER to decode from stored bytes: plain DER as it is, the compact
/// form rebuilt with the key's `id` and `context` and the store's times.
pub fn expand(
    stored: &[u8],
    protocol: Protocol,
    id: &[u8],
    context: &[u8],
    created: UnixTime,
    expires: UnixTime,
) -> Result<Vec<u8>, CompactError> {
    let (&format, mut rest) = stored.split_first().ok_or(CompactError::Truncated)?;
    match format {
        SEQUENCE => return Ok(stored.to_vec()),
        COMPACT_V1 | COMPACT_V2 => {}
        other => return Err(CompactError::Format(other)),
    }
    let time_delta = read_varint(&mut rest)?;
    let timeout_delta = read_varint(&mut rest)?;
    let (check, rest) = rest.split_at_checked(4).ok_or(CompactError::Truncated)?;
    if check != key_check(id, context, stored.len()) {
        return Err(CompactError::KeyMismatch);
    }
    let created = i64::try_from(created).map_err(|_| CompactError::Malformed("created"))?;
    let expires = i64::try_from(expires).map_err(|_| CompactError::Malformed("expires"))?;
    let time = created
        .checked_add(time_delta)
        .ok_or(CompactError::Malformed("time"))?;
    let timeout = expires
        .checked_sub(created)
        .and_then(|l| l.checked_add(timeout_delta))
        .ok_or(CompactError::Malformed("timeout"))?;
    // The elements before the session id: kept (V1) or implied (V2).
    let mut content = Vec::with_capacity(stored.len() + 64);
    let (rest, before_id) = if format == COMPACT_V2 {
        let (cipher, rest) = rest.split_at_checked(2).ok_or(CompactError::Truncated)?;
        let [v0, v1] = ssl_version(protocol);
        content.extend_from_slice(&[0x02, 0x01, 0x01, 0x02, 0x02, v0, v1, 0x04, 0x02]);
        content.extend_from_slice(cipher);
        (rest, 0)
    } else {
        (rest, 3)
    };
    let kept = elements(rest)?;
    if kept.len() < before_id + 1 || kept[..=before_id].iter().any(|e| e.context_tag.is_some()) {
        return Err(CompactError::Malformed("elements"));
    }
    let mut id_element = Vec::with_capacity(2 + id.len());
    push_tlv(&mut id_element, 0x04, id);
    let time = explicit_integer(0xA1, time);
    let timeout = explicit_integer(0xA2, timeout);
    let context_element = (!context.is_empty()).then(|| {
        let mut inner = Vec::with_capacity(2 + context.len());
        push_tlv(&mut inner, 0x04, context);
        let mut out = Vec::with_capacity(4 + context.len());
        push_tlv(&mut out, 0xA4, &inner);
        out
    });
    // Put each restored element before the first kept one of a higher
    // context tag number (DER order), the id after the cipher.
    let mut restored: Vec<(u32, &[u8])> = vec![(1, &time), (2, &timeout)];
    if let Some(c) = &context_element {
        restored.push((4, c));
    }
    let mut pending = restored.into_iter().peekable();
    for (i, e) in kept.iter().enumerate() {
        if i == before_id {
            content.extend_from_slice(&id_element);
        }
        if let Some(n) = e.context_tag {
            if matches!(n, 1 | 2 | 4) {
                return Err(CompactError::Malformed("a restored element is present"));
            }
            while let Some(&(m, bytes)) = pending.peek() {
                if m > n {
                    break;
                }
                content.extend_from_slice(bytes);
                pending.next();
            }
        }
        content.extend_from_slice(e.bytes);
    }
    for (_, bytes) in pending {
        content.extend_from_slice(bytes);
    }
    let mut der = Vec::with_capacity(content.len() + 4);
    push_tlv(&mut der, SEQUENCE, &content);
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Server sessions made by OpenSSL 3.0 (the bench's harvest, context
    /// "bench"): TLS 1.2 (EMS, X25519) and a TLS 1.3 ticket.
    const TLS12: &str = "308180020101020203030402c02c04204c637558c205fe14d024ece3fdad11f20352a2c7583a8609c82b3adf9d58dfd70430c71ea1ef27aca029b60fa290014f92276f6a1ab17b7b948dc50b939882a0d3f7c2d9c5bac34ad1f6ae0153f988691d01a10602046b0ce4b1a2040202012ca407040562656e6368ad03020101b30302011d";
    const TLS13: &str = "308184020101020203040402130204208db2447358d0c9f065fd14a756ac3ef8430620baf00489f667df5a25b9db6f0a043009b63fd469a72ee8f5af06fc1ec54ccdf5fc241f61210e1fb259247f0808c684aedaf8986b5efa6e48988fd83731502ca10602046b0ce4b2a2040202012ca407040562656e6368ae07020500a88366f9b30302011d";

    fn id_of(der: &[u8]) -> &[u8] {
        &der[16..48]
    }

    #[test]
    fn real_sessions_lose_id_context_and_times_and_come_back_exactly() {
        let (created, expires) = (1_796_007_090, 1_796_007_390);
        for (der, p, want) in [
            (hex(TLS12), Protocol::Tls12, 69),
            (hex(TLS13), Protocol::Tls13, 73),
        ] {
            let id = id_of(&der).to_vec();
            let c = compact(&der, p, &id, b"bench", created, expires).unwrap();
            assert_eq!(c.len(), want, "{} -> {}", der.len(), c.len());
            assert_eq!(c[0], COMPACT_V2);
            assert!(!c.windows(32).any(|w| w == id), "the id is not stored");
            assert!(!c.windows(5).any(|w| w == b"bench"));
            assert_eq!(expand(&c, p, &id, b"bench", created, expires).unwrap(), der);
            // Under the other protocol's key the version is not implied.
            let other = if p == Protocol::Tls12 {
                Protocol::Tls13
            } else {
                Protocol::Tls12
            };
            let v1 = compact(&der, other, &id, b"bench", created, expires).unwrap();
            assert_eq!((v1[0], v1.len()), (COMPACT_V1, want + 9));
            assert_eq!(
                expand(&v1, other, &id, b"bench", created, expires).unwrap(),
                der
            );
            // Plain DER is still read as it is.
            assert_eq!(
                expand(&der, p, &id, b"bench", created, expires).unwrap(),
                der
            );
            // Another key is refused; other times give other DER.
            assert!(matches!(
                expand(&c, p, &[7; 32], b"bench", created, expires),
                Err(CompactError::KeyMismatch)
            ));
            assert!(matches!(
                expand(&c, p, &id, b"bench2", created, expires),
                Err(CompactError::KeyMismatch)
            ));
            assert_ne!(
                expand(&c, p, &id, b"bench", created + 1, expires).unwrap(),
                der
            );
        }
    }

    #[test]
    fn a_session_that_does_not_match_its_key_stays_plain() {
        let der = hex(TLS12);
        let id = id_of(&der).to_vec();
        let p = Protocol::Tls12;
        assert_eq!(compact(&der, p, &[1; 32], b"bench", 10, 20), None);
        assert_eq!(compact(&der, p, &id, b"other", 10, 20), None);
        assert_eq!(compact(&der, p, &id, b"", 10, 20), None);
        assert_eq!(compact(&der[..40], p, &id, b"bench", 10, 20), None);
        // Times far from the store's still compact (longer numbers).
        let far = u64::from(u32::MAX);
        let c = compact(&der, p, &id, b"bench", 0, far).unwrap();
        assert_eq!(expand(&c, p, &id, b"bench", 0, far).unwrap(), der);
    }

    #[test]
    fn bad_stored_bytes_are_errors_not_panics() {
        let der = hex(TLS13);
        let id = id_of(&der).to_vec();
        let p = Protocol::Tls13;
        let (created, expires) = (1_796_007_090, 1_796_007_390);
        let c = compact(&der, p, &id, b"bench", created, expires).unwrap();
        let open = |bytes: &[u8]| expand(bytes, p, &id, b"bench", created, expires);
        assert!(matches!(open(&[]), Err(CompactError::Truncated)));
        assert!(matches!(open(&[0x03]), Err(CompactError::Format(3))));
        // Cut anywhere: an error (the check covers the length), never a
        // shorter session.
        for cut in 1..c.len() {
            assert!(open(&c[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..c.len() {
            let mut flipped = c.clone();
            flipped[i] ^= 0x55;
            let _ = open(&flipped);
        }
    }

    #[test]
    fn integers_are_minimal() {
        for (v, want) in [
            (0i64, vec![0]),
            (127, vec![0x7F]),
            (128, vec![0, 0x80]),
            (300, vec![1, 0x2C]),
            (-1, vec![0xFF]),
            (-129, vec![0xFF, 0x7F]),
            (0x6b0c_e4b1, vec![0x6b, 0x0c, 0xe4, 0xb1]),
        ] {
            assert_eq!(integer(v), want, "{v}");
            assert_eq!(read_explicit_integer(&explicit_integer(0xA1, v)), Some(v));
        }
        for v in [0i64, 1, -1, 63, -64, 64, 1 << 40, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            push_varint(&mut out, v);
            let mut s = &out[..];
            assert_eq!(read_varint(&mut s).unwrap(), v);
            assert!(s.is_empty());
        }
    }
}
