//! Redis key names.
//!
//! `{prefix}:{hex(context)}:{12|13}:{{hex(id)}}` — for example
//! `tls-session:6170692d31:13:{9f86d081…}`. The `12` / `13` is the key's
//! protocol: TLS 1.2 session ids and TLS 1.3 tickets never share a key
//! (see the core crate's `key` module), so a TLS 1.3 lookup cannot
//! `GETDEL` a TLS 1.2 session whose id it saw in clear.
//!
//! **Hash slots (Redis Cluster).** The braces around the hex id are a Redis
//! Cluster *hash tag*: only the id decides the slot. Session ids are random,
//! so sessions spread evenly over all shards, and the slot of a session does
//! not depend on the prefix or context. The context is deliberately *not*
//! tagged: that would put every session of a service on one shard. Every
//! command the store sends touches one key, so no co-location is needed.
//! The prefix may not contain `{` or `}`, which would make an earlier tag
//! win and pin every session to one slot.

use tls_session_cache::SessionKey;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "tls-session";

/// The Redis key of `key` under `prefix`.
pub fn redis_key(prefix: &str, key: &SessionKey) -> String {
    let ctx = key.context.as_bytes();
    let id = key.id.as_bytes();
    let mut s = String::with_capacity(prefix.len() + 7 + 2 * (ctx.len() + id.len()));
    s.push_str(prefix);
    s.push(':');
    push_hex(&mut s, ctx);
    s.push(':');
    s.push_str(key.protocol.tag());
    s.push_str(":{");
    push_hex(&mut s, id);
    s.push('}');
    s
}

fn push_hex(s: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
}

/// Whether `prefix` is usable: non-empty, printable ASCII, no braces.
pub(crate) fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let key = SessionKey::from_slices(tls_session_cache::Protocol::Tls12, b"ab", &[0x01, 0xfe])
            .unwrap();
        assert_eq!(redis_key("tls-session", &key), "tls-session:6162:12:{01fe}");
        let empty =
            SessionKey::from_slices(tls_session_cache::Protocol::Tls13, b"", &[0xff]).unwrap();
        assert_eq!(redis_key("p", &empty), "p::13:{ff}");
        assert!(valid_prefix("tls-session"));
        assert!(!valid_prefix("a{b}"));
        assert!(!valid_prefix(""));
        assert!(!valid_prefix("with space"));
    }
}
