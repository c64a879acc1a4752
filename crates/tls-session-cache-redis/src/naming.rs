//! Redis key names: the compact binary format this version writes, and the
//! previous (hex) format it still reads during an upgrade.
//!
//! # The compact format
//!
//! ```text
//! {prefix} ':' '{' T0 T1 T2 '}' P L context id
//! ```
//!
//! | part | bytes | what |
//! |---|---|---|
//! | `{prefix}:` | prefix + 1 | the configured prefix (`tls-session` by default) and a colon, so `SCAN MATCH tls-session:*` still finds every session |
//! | `{T0T1T2}` | 5 | the Redis Cluster **hash tag**: three bytes `0x80 \| six bits` of an 18-bit hash of the id (below) |
//! | `P` | 1 | the protocol: `b'2'` TLS 1.2, `b'3'` TLS 1.3 |
//! | `L` | 1 | the context length, 0..=32 |
//! | context | L | the session-id context, raw |
//! | id | rest | the session id (1..=32 bytes), raw |
//!
//! For example, TLS 1.3, context `svc`, a 32-byte ticket:
//! `tls-session:{`, the three tag bytes, `}3\x03svc` and the 32 ticket
//! bytes — 54 bytes, where the previous format took 85 characters of hex.
//!
//! * **Injective.** The tag has a fixed length, `P` and `L` are single
//!   bytes, the context is length-prefixed and the id runs to the end: two
//!   different (protocol, context, id) never share a name.
//! * **Protocol-bound.** A TLS 1.3 lookup can never name a TLS 1.2 session
//!   (see the core crate's `key` module): the sealed value's associated data
//!   is the whole name, `P` included.
//! * **Hash tag on the id only.** Redis hashes the bytes between the first
//!   `{` and the next `}`. The prefix cannot hold braces (the builder
//!   refuses such a prefix), and the tag bytes are all ≥ `0x80`, never a
//!   brace; the context and id come after the closing brace, so their
//!   bytes (which may be `{` or `}`) cannot move the tag. The slot is therefore a
//!   function of the id alone: a session's names in every context and
//!   protocol share one slot, and sessions spread over all shards by their
//!   ids. The tag is
//!   `h = FNV-1a-32(id) & 0x3ffff`, `T_k = 0x80 | ((h >> 6k) & 63)`:
//!   hashing the whole id (not its first bytes) keeps the spread even when
//!   a custom session-id generator puts fixed bytes first, and the
//!   `0x80 | 6 bits` bytes form an affine subspace that CRC16 maps onto the
//!   16 384 slots exactly evenly (16 tags per slot).
//!
//! # The previous format
//!
//! `{prefix}:{hex(context)}:{{hex(id)}}` — what servers before protocol-bound
//! keys wrote and read (there is no protocol in it; their values are seal
//! version 1 over the full core envelope). This version reads such a name
//! only for a TLS 1.2 `get` (see the store's upgrade notes), and writes it
//! only when asked to ([`KeyFormat::Previous`]). It always starts with
//! `{prefix}:` and a hex digit or `:`, never `{prefix}:{`, so the two
//! formats never name the same key.

use std::fmt;

use redis::{RedisWrite, ToRedisArgs};
use tls_session_cache::{Protocol, SessionKey};

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "tls-session";

/// Which key names (and value layout) a store writes. Reading is set apart:
/// [`RedisStoreBuilder::read_previous_format`](crate::RedisStoreBuilder::read_previous_format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyFormat {
    /// The compact binary names of this module, values sealed with seal
    /// version 2 (no context or id inside). The default.
    #[default]
    Compact,
    /// The previous format, `{prefix}:{hex(context)}:{{hex(id)}}` with seal
    /// version 1 over the full envelope, for reusable TLS 1.2 sessions —
    /// what servers not yet upgraded read — so that they resume sessions
    /// this server stores during a rolling upgrade. TLS 1.3 tickets and
    /// single-use sessions are still written in the compact format: a name
    /// without a protocol must never be consumed by a `take`.
    Previous,
}

/// A Redis key name: binary, shown escaped (like `redis-cli`) by `Display`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RedisKey(Vec<u8>);

impl RedisKey {
    /// The name's bytes, as sent to Redis.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// The name's bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
    /// The name's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether the name is empty (never, for a name made by this module).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Deref for RedisKey {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for RedisKey {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for RedisKey {
    /// Printable ASCII as is, `\\` and `"` and every other byte escaped as
    /// `\xHH` — the way `redis-cli` prints binary keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            if b.is_ascii_graphic() && b != b'\\' && b != b'"' {
                write!(f, "{}", char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for RedisKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl ToRedisArgs for RedisKey {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + RedisWrite,
    {
        out.write_arg(&self.0);
    }
}

/// Bytes of the hash tag, braces included.
const TAG_LEN: usize = 5;

/// The hash tag's three bytes for `id` (see the module notes).
pub fn hash_tag(id: &[u8]) -> [u8; 3] {
    let mut h: u32 = 0x811c_9dc5;
    for &b in id {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    // Three groups of six bits, each with the top bit set: never a brace.
    std::array::from_fn(|k| 0x80 | ((h >> (6 * k)) & 0x3f) as u8)
}

/// The byte naming `protocol` in a compact name.
fn protocol_byte(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Tls12 => b'2',
        Protocol::Tls13 => b'3',
    }
}

/// The compact Redis key of `key` under `prefix` (the format this version
/// writes; see the module notes).
pub fn redis_key(prefix: &str, key: &SessionKey) -> RedisKey {
    let ctx = key.context.as_bytes();
    let id = key.id.as_bytes();
    let mut k = Vec::with_capacity(prefix.len() + 1 + TAG_LEN + 2 + ctx.len() + id.len());
    k.extend_from_slice(prefix.as_bytes());
    k.extend_from_slice(b":{");
    k.extend_from_slice(&hash_tag(id));
    k.push(b'}');
    k.push(protocol_byte(key.protocol));
    // At most 32 (SessionIdContext's bound).
    k.push(ctx.len() as u8);
    k.extend_from_slice(ctx);
    k.extend_from_slice(id);
    RedisKey(k)
}

/// The previous format's name of `key` under `prefix`:
/// `{prefix}:{hex(context)}:{{hex(id)}}`. It has no protocol: the same name
/// serves a TLS 1.2 session and a TLS 1.3 ticket of the same id. This
/// version reads it only for TLS 1.2 `get`s and checks the protocol inside
/// the sealed value.
pub fn previous_redis_key(prefix: &str, key: &SessionKey) -> RedisKey {
    let ctx = key.context.as_bytes();
    let id = key.id.as_bytes();
    let mut s = String::with_capacity(prefix.len() + 4 + 2 * (ctx.len() + id.len()));
    s.push_str(prefix);
    s.push(':');
    push_hex(&mut s, ctx);
    s.push_str(":{");
    push_hex(&mut s, id);
    s.push('}');
    RedisKey(s.into_bytes())
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
    use crate::cluster::key_slot;

    fn key(p: Protocol, ctx: &[u8], id: &[u8]) -> SessionKey {
        SessionKey::from_slices(p, ctx, id).unwrap()
    }

    #[test]
    fn compact_layout() {
        let k = redis_key("tls-session", &key(Protocol::Tls12, b"ab", &[0x01, 0xfe]));
        let tag = hash_tag(&[0x01, 0xfe]);
        let mut want = b"tls-session:{".to_vec();
        want.extend_from_slice(&tag);
        want.extend_from_slice(b"}2\x02ab\x01\xfe");
        assert_eq!(k.as_bytes(), &want[..]);
        let empty = redis_key("p", &key(Protocol::Tls13, b"", &[0xff]));
        assert_eq!(&empty[..3], b"p:{");
        assert_eq!(&empty[6..], b"}3\x00\xff");
        // Default prefix, 5-byte context, 32-byte id: 56 bytes.
        let bench = redis_key(DEFAULT_PREFIX, &key(Protocol::Tls12, b"bench", &[7; 32]));
        assert_eq!(bench.len(), 56);
        assert_eq!(
            previous_redis_key(DEFAULT_PREFIX, &key(Protocol::Tls12, b"bench", &[7; 32])).len(),
            89
        );
    }

    #[test]
    fn previous_layout() {
        let k = key(Protocol::Tls12, b"ab", &[0x01, 0xfe]);
        assert_eq!(
            previous_redis_key("tls-session", &k).as_bytes(),
            b"tls-session:6162:{01fe}"
        );
        // No protocol in it: both protocols share the previous name.
        let k13 = key(Protocol::Tls13, b"ab", &[0x01, 0xfe]);
        assert_eq!(previous_redis_key("p", &k), previous_redis_key("p", &k13));
        assert_ne!(redis_key("p", &k), redis_key("p", &k13));
    }

    #[test]
    fn names_are_injective_and_formats_disjoint() {
        let a = redis_key("p", &key(Protocol::Tls12, b"ab", &[1]));
        let b = redis_key("p", &key(Protocol::Tls12, b"a", &[b'b', 1]));
        assert_ne!(a, b, "context/id split");
        for p in [Protocol::Tls12, Protocol::Tls13] {
            let k = key(p, b"ab", &[1, 2]);
            let new = redis_key("p", &k);
            let old = previous_redis_key("p", &k);
            assert!(new.starts_with(b"p:{"));
            assert!(!old.starts_with(b"p:{"));
        }
    }

    #[test]
    fn slot_is_the_ids_alone_even_with_braces_in_context_and_id() {
        let id = [b'}', b'{', 0x7d, 0x7b, 9, 9, 9];
        let slot = key_slot(&redis_key("x", &key(Protocol::Tls12, b"", &id)));
        for ctx in [&b""[..], b"{", b"}", b"{a}", &[0x7b; 32]] {
            for p in [Protocol::Tls12, Protocol::Tls13] {
                for prefix in ["tls-session", "x", "other:prefix"] {
                    let k = redis_key(prefix, &key(p, ctx, &id));
                    assert_eq!(key_slot(&k), slot, "{k}");
                    let tag = &k[prefix.len() + 2..prefix.len() + 5];
                    assert!(tag.iter().all(|&b| b >= 0x80), "{k}");
                }
            }
        }
    }

    #[test]
    fn tags_cover_every_slot_evenly() {
        // All 2^18 tag values: CRC16 maps them onto the 16 384 slots, 16 each.
        let mut per_slot = vec![0u32; 16384];
        for h in 0u32..1 << 18 {
            let tag: [u8; 3] = std::array::from_fn(|k| 0x80 | ((h >> (6 * k)) & 0x3f) as u8);
            let mut name = b"p:{".to_vec();
            name.extend_from_slice(&tag);
            name.extend_from_slice(b"}2\x00\x01");
            per_slot[usize::from(key_slot(&name))] += 1;
        }
        assert!(per_slot.iter().all(|&n| n == 16));
        // And ids that differ only in their last byte still spread.
        let slots: std::collections::HashSet<u16> = (0..=255u8)
            .map(|b| {
                let mut id = [0x11; 32];
                id[31] = b;
                key_slot(&redis_key("p", &key(Protocol::Tls12, b"", &id)))
            })
            .collect();
        assert!(slots.len() > 240, "{} distinct slots", slots.len());
    }

    #[test]
    fn display_escapes_like_redis_cli() {
        let k = RedisKey(b"a:{\x80}2\x00\"\\".to_vec());
        assert_eq!(k.to_string(), "a:{\\x80}2\\x00\\x22\\x5c");
        assert_eq!(format!("{k:?}"), "\"a:{\\x80}2\\x00\\x22\\x5c\"");
    }

    #[test]
    fn prefixes() {
        assert!(valid_prefix("tls-session"));
        assert!(!valid_prefix("a{b}"));
        assert!(!valid_prefix(""));
        assert!(!valid_prefix("with space"));
    }
}
