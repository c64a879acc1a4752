//! Bytes per stored session in a [`MemoryStore`] holding 100 000 and
//! 1 000 000 real sessions, against their serialised size.

use std::time::Instant;

use tls_session_cache::{MemoryStore, Protocol, SessionKey, SessionStore, StoredSession};

use crate::alloc;
use crate::error::BenchError;
use crate::harvest::Harvest;
use crate::setup::{CONTEXT, Proto};

/// One measurement.
#[derive(Debug, Clone)]
pub struct MemoryCost {
    /// Which session was stored.
    pub proto: Proto,
    /// Its serialised (DER) size.
    pub der_len: usize,
    /// How many.
    pub sessions: usize,
    /// Heap bytes requested per session.
    pub requested: f64,
    /// glibc chunk bytes per session (what malloc really spends).
    pub footprint: f64,
    /// What the store charges per session (`stats().bytes / entries`).
    pub charged: f64,
    /// Seconds to insert them all.
    pub insert_secs: f64,
}

impl MemoryCost {
    /// Footprint beyond the serialised session (the 32-byte id included).
    pub fn overhead(&self) -> f64 {
        self.footprint - self.der_len as f64
    }
}

/// A distinct 32-byte session id for `i`.
pub(crate) fn id(i: u64) -> [u8; 32] {
    let mut id = [0u8; 32];
    let mix = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    id[..8].copy_from_slice(&i.to_le_bytes());
    id[8..16].copy_from_slice(&mix.to_le_bytes());
    id[16..24].copy_from_slice(&mix.rotate_left(17).to_le_bytes());
    id[24..].copy_from_slice(&(!mix).to_le_bytes());
    id
}

/// Measures `sessions` copies of `proto`'s harvested session.
pub fn measure(h: &Harvest, proto: Proto, sessions: usize) -> Result<MemoryCost, BenchError> {
    let der = h.der(proto).clone();
    let protocol = match proto {
        Proto::Tls12 => Protocol::Tls12,
        Proto::Tls13 => Protocol::Tls13,
    };
    // Room for all with a wide margin: no eviction may happen.
    let capacity = sessions * (der.len() + 32 + 64) * 2 + (64 << 20);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let session = StoredSession::new(der.clone(), now, now + 3600, protocol);
    let keys: Vec<SessionKey> = (0..sessions as u64)
        .map(|i| SessionKey::from_slices(tls_session_cache::Protocol::Tls12, CONTEXT, &id(i)))
        .collect::<Result<_, _>>()
        .map_err(|e| BenchError::Verification(format!("key: {e}")))?;
    alloc::counting(true);
    let before = alloc::live();
    let start = Instant::now();
    let store = MemoryStore::builder().capacity_bytes(capacity).build();
    for key in &keys {
        if let Err(e) = store.put(key, &session) {
            alloc::counting(false);
            return Err(BenchError::Verification(format!("memory store put: {e}")));
        }
    }
    let insert_secs = start.elapsed().as_secs_f64();
    let after = alloc::live();
    alloc::counting(false);
    let stats = store.stats();
    if stats.entries != sessions as u64 || stats.evictions != 0 {
        return Err(BenchError::Verification(format!(
            "memory store holds {} of {sessions} sessions ({} evicted)",
            stats.entries, stats.evictions
        )));
    }
    let n = sessions as f64;
    Ok(MemoryCost {
        proto,
        der_len: der.len(),
        sessions,
        requested: (after.0 - before.0) as f64 / n,
        footprint: (after.1 - before.1) as f64 / n,
        charged: stats.bytes as f64 / n,
        insert_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct() {
        let ids: std::collections::HashSet<[u8; 32]> = (0..10_000).map(id).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
