//! What the fuzz targets and the seed-corpus generator share: the fixed
//! key ring, the Redis key prefix, and how a target's input names a
//! session key.
//!
//! Inputs that need a session key start with it:
//!
//! ```text
//! offset size  field
//! 0      1     flags: bit 0 = TLS 1.3, bit 1 = previous-format Redis name,
//!              bit 2 = the rest is a plaintext to seal first (seal_open),
//!              bit 3 = seal the key-less envelope, bit 5 = under a
//!              derived key (with bit 2: versions 1 to 4)
//! 1      1     context length c (taken modulo 33)
//! 2      c     context
//! 2+c    1     id length i (taken modulo 33; 0 is no key: input ignored)
//! 3+c    i     id
//! 3+c+i  …     the rest
//! ```

use tls_session_cache::{Protocol, SessionId, SessionIdContext, SessionKey};
use tls_session_cache_redis::KeyRing;

/// The Redis key prefix of the generator's store.
pub const PREFIX: &str = "fuzz";

/// The seal key the generator's store and the targets use (bytes 0..32).
pub fn ring() -> KeyRing {
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = i as u8;
    }
    KeyRing::new(key)
}

/// Flag bits of an input's first byte.
pub mod flag {
    /// The key is a TLS 1.3 key.
    pub const TLS13: u8 = 1;
    /// Read under the previous-format Redis name.
    pub const PREVIOUS: u8 = 2;
    /// The rest is a plaintext, sealed before it is opened.
    pub const PLAINTEXT: u8 = 4;
    /// Seal the plaintext as the key-less envelope (seal version 2 or 3).
    pub const STRIPPED: u8 = 8;
    /// Seal the plaintext under a per-value derived key (seal version 3 or 4).
    pub const DERIVED: u8 = 32;
}

/// The seal version the plaintext flags of an input ask for.
pub fn seal_version(flags: u8) -> u8 {
    match (flags & flag::STRIPPED != 0, flags & flag::DERIVED != 0) {
        (false, false) => 1,
        (true, false) => 2,
        (true, true) => 3,
        (false, true) => 4,
    }
}

/// An input's key prefix, parsed.
pub struct Keyed<'a> {
    /// The first byte.
    pub flags: u8,
    /// The session key.
    pub key: SessionKey,
    /// What follows the key.
    pub rest: &'a [u8],
}

/// Splits an input into its key prefix and the rest (`None`: too short or
/// a zero-length id).
pub fn keyed(data: &[u8]) -> Option<Keyed<'_>> {
    let (&flags, data) = data.split_first()?;
    let (&c, data) = data.split_first()?;
    let c = usize::from(c) % 33;
    let (ctx, data) = data.split_at_checked(c)?;
    let (&i, data) = data.split_first()?;
    let i = usize::from(i) % 33;
    let (id, rest) = data.split_at_checked(i)?;
    let protocol = if flags & flag::TLS13 != 0 {
        Protocol::Tls13
    } else {
        Protocol::Tls12
    };
    let key = SessionKey::new(
        protocol,
        SessionIdContext::new(ctx).ok()?,
        SessionId::new(id).ok()?,
    );
    Some(Keyed { flags, key, rest })
}

/// The key prefix of an input for `key` with `flags`.
pub fn key_prefix(flags: u8, key: &SessionKey) -> Vec<u8> {
    let ctx = key.context.as_bytes();
    let id = key.id.as_bytes();
    let mut out = vec![flags, ctx.len() as u8];
    out.extend_from_slice(ctx);
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out
}
