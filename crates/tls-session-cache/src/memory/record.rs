//! The layout of one entry in its arena slot: a header, the id, the
//! session bytes.
//!
//! The usual header is 11 bytes:
//!
//! | bytes | field |
//! |---|---|
//! | 0 | flags: TLS 1.3, single use, referenced (CLOCK), wide |
//! | 1 | id length (1..=32; 0 marks a free slot) |
//! | 2 | namespace (protocol + session-id context) number in the shard |
//! | 3 | session length |
//! | 4..8 | `expires` − the shard's base time, seconds (u32) |
//! | 8..11 | `expires` − `created`, seconds (u24: 194 days) |
//!
//! An entry that does not fit it (a session over 255 bytes, a 257th
//! namespace, times out of those ranges) has the 26-byte *wide* header:
//! flags, id length, namespace u32, length u32, `expires` u64,
//! `created` u64. Both are little endian.

use crate::clock::UnixTime;
use crate::session::Protocol;

pub const FLAG_TLS13: u8 = 1;
pub const FLAG_SINGLE_USE: u8 = 2;
pub const FLAG_REFERENCED: u8 = 4;
const FLAG_WIDE: u8 = 8;

const NARROW: usize = 11;
const WIDE: usize = 26;

/// What a header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub flags: u8,
    pub ctx: u32,
    pub len: usize,
    pub expires: UnixTime,
    pub created: UnixTime,
}

impl Meta {
    pub fn protocol(&self) -> Protocol {
        if self.flags & FLAG_TLS13 != 0 {
            Protocol::Tls13
        } else {
            Protocol::Tls12
        }
    }

    fn narrow(&self, base: UnixTime) -> bool {
        self.ctx <= 0xFF
            && self.len <= 0xFF
            && self
                .expires
                .checked_sub(base)
                .is_some_and(|d| d <= u64::from(u32::MAX))
            && self
                .expires
                .checked_sub(self.created)
                .is_some_and(|d| d < 1 << 24)
    }

    /// Bytes of header this entry needs.
    pub fn header_len(&self, base: UnixTime) -> usize {
        if self.narrow(base) { NARROW } else { WIDE }
    }
}

/// Writes header, id and session into `slot` (at least
/// `header_len + id + len` bytes, zeroed).
pub fn write(slot: &mut [u8], meta: &Meta, id: &[u8], der: &[u8], base: UnixTime) {
    debug_assert_eq!(der.len(), meta.len);
    debug_assert!((1..=32).contains(&id.len()));
    let h = if meta.narrow(base) {
        slot[0] = meta.flags & !FLAG_WIDE;
        slot[2] = meta.ctx as u8;
        slot[3] = meta.len as u8;
        slot[4..8].copy_from_slice(&((meta.expires - base) as u32).to_le_bytes());
        slot[8..11].copy_from_slice(&(meta.expires - meta.created).to_le_bytes()[..3]);
        NARROW
    } else {
        slot[0] = meta.flags | FLAG_WIDE;
        slot[2..6].copy_from_slice(&meta.ctx.to_le_bytes());
        slot[6..10].copy_from_slice(&(meta.len as u32).to_le_bytes());
        slot[10..18].copy_from_slice(&meta.expires.to_le_bytes());
        slot[18..26].copy_from_slice(&meta.created.to_le_bytes());
        WIDE
    };
    slot[1] = id.len() as u8;
    slot[h..h + id.len()].copy_from_slice(id);
    slot[h + id.len()..h + id.len() + der.len()].copy_from_slice(der);
}

fn le(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(b)
}

/// Whether the slot holds an entry.
pub fn is_live(slot: &[u8]) -> bool {
    slot[1] != 0
}

fn header(slot: &[u8]) -> usize {
    if slot[0] & FLAG_WIDE != 0 {
        WIDE
    } else {
        NARROW
    }
}

/// The entry's header.
pub fn meta(slot: &[u8], base: UnixTime) -> Meta {
    if slot[0] & FLAG_WIDE != 0 {
        Meta {
            flags: slot[0] & !FLAG_WIDE,
            ctx: le(&slot[2..6]) as u32,
            len: le(&slot[6..10]) as usize,
            expires: le(&slot[10..18]),
            created: le(&slot[18..26]),
        }
    } else {
        let expires = base + le(&slot[4..8]);
        Meta {
            flags: slot[0],
            ctx: u32::from(slot[2]),
            len: usize::from(slot[3]),
            expires,
            created: expires - le(&slot[8..11]),
        }
    }
}

/// The entry's expiry (cheaper than [`meta`]).
pub fn expires(slot: &[u8], base: UnixTime) -> UnixTime {
    if slot[0] & FLAG_WIDE != 0 {
        le(&slot[10..18])
    } else {
        base + le(&slot[4..8])
    }
}

/// The entry's namespace number.
pub fn ctx(slot: &[u8]) -> u32 {
    if slot[0] & FLAG_WIDE != 0 {
        le(&slot[2..6]) as u32
    } else {
        u32::from(slot[2])
    }
}

/// The entry's id.
pub fn id(slot: &[u8]) -> &[u8] {
    let h = header(slot);
    &slot[h..h + usize::from(slot[1])]
}

/// The entry's session bytes, given its length.
pub fn der(slot: &[u8], len: usize) -> &[u8] {
    let start = header(slot) + usize::from(slot[1]);
    &slot[start..start + len]
}

/// Sets or clears the CLOCK reference bit.
pub fn set_referenced(slot: &mut [u8], on: bool) {
    if on {
        slot[0] |= FLAG_REFERENCED;
    } else {
        slot[0] &= !FLAG_REFERENCED;
    }
}

/// Whether the CLOCK reference bit is set.
pub fn referenced(slot: &[u8]) -> bool {
    slot[0] & FLAG_REFERENCED != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(meta: Meta, base: UnixTime, want_header: usize) {
        let id = [7u8; 32];
        let der: Vec<u8> = (0..meta.len).map(|i| i as u8).collect();
        assert_eq!(meta.header_len(base), want_header);
        let mut slot = vec![0u8; want_header + 32 + meta.len + 3];
        write(&mut slot, &meta, &id, &der, base);
        assert!(is_live(&slot));
        let got = super::meta(&slot, base);
        assert_eq!(got, meta);
        assert_eq!(expires(&slot, base), meta.expires);
        assert_eq!(ctx(&slot), meta.ctx);
        assert_eq!(super::id(&slot), &id);
        assert_eq!(super::der(&slot, meta.len), &der[..]);
        set_referenced(&mut slot, true);
        assert!(referenced(&slot));
        assert_eq!(super::meta(&slot, base).flags, meta.flags | FLAG_REFERENCED);
    }

    #[test]
    fn narrow_and_wide_headers_round_trip() {
        let base = 1_700_000_000;
        let m = Meta {
            flags: FLAG_TLS13 | FLAG_SINGLE_USE,
            ctx: 3,
            len: 77,
            expires: base + 300,
            created: base - 86_400,
        };
        roundtrip(m, base, 11);
        // Each field out of the narrow range makes the header wide.
        roundtrip(Meta { len: 256, ..m }, base, 26);
        roundtrip(Meta { ctx: 256, ..m }, base, 26);
        roundtrip(
            Meta {
                expires: u64::MAX,
                ..m
            },
            base,
            26,
        );
        roundtrip(
            Meta {
                expires: base - 1,
                created: 0,
                ..m
            },
            base,
            26,
        );
        roundtrip(
            Meta {
                created: m.expires + 1,
                ..m
            },
            base,
            26,
        );
        roundtrip(
            Meta {
                created: m.expires - (1 << 24),
                ..m
            },
            base,
            26,
        );
        roundtrip(
            Meta {
                created: m.expires - ((1 << 24) - 1),
                ..m
            },
            base,
            11,
        );
    }
}
