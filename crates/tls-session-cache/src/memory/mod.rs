//! [`MemoryStore`]: the embedded default store.
//!
//! * **Bounded by bytes**, not by count: each entry is charged its session
//!   bytes, its id and [`ENTRY_OVERHEAD`] bytes, so a budget means the same
//!   whether sessions carry client certificates or not.
//! * **No allocation per entry**: entries live in per-shard slabs of 16 KiB
//!   pages, one size class per page (4-byte steps up to 256 bytes), named
//!   by 4-byte handles; an entry is an 11-byte header (times relative to
//!   the store's start, 32-bit), the id and the session bytes. In steady
//!   state a `put` reuses a freed slot and allocates nothing. About 120
//!   bytes per session at 1M sessions with the binding's compact sessions
//!   (`docs/performance.md`).
//! * **Scrubbed**: an entry's bytes are overwritten with zeros (`zeroize`)
//!   as soon as it leaves — eviction, expiry, removal, `take`, replacement —
//!   before the slot can be reused, and every page is zeroized when the
//!   store is dropped. Copies handed out by `get`/`take` are the caller's.
//! * **CLOCK eviction** (second chance): a lookup only sets a bit, so hits
//!   never reorder a list; when room is needed the hand clears bits and
//!   evicts the first unreferenced entry. It keeps the sessions clients come
//!   back to — better than nginx's FIFO, which drops the oldest even if it is
//!   resumed every second — at the cost of LRU's per-hit list update. Expired
//!   entries the hand meets go first.
//! * **Expiry without a background thread**: a lookup never returns an
//!   expired entry (it drops it), every insert checks two more slots for
//!   expiry (as nginx drops two expired sessions per insert), and
//!   [`MemoryStore::purge_expired`] sweeps everything on demand.
//! * **Sharded**: keys hash to one of up to 64 mutex-guarded shards, so
//!   threads rarely meet; each operation is O(1) expected.

mod arena;
mod record;
mod shard;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use foldhash::fast::RandomState;

pub use shard::ENTRY_OVERHEAD;
use shard::{Refusal, Shard, key_hash};

use crate::clock::{Clock, SystemClock};
use crate::key::SessionKey;
use crate::policy::CachePolicy;
use crate::session::StoredSession;
use crate::stats::StoreStats;
use crate::store::{SessionStore, StoreError};

/// The embedded in-memory session store. See the [module docs](self).
///
/// ```
/// use tls_session_cache::{MemoryStore, ManualClock};
/// let store = MemoryStore::builder()
///     .capacity_bytes(64 << 20)
///     .clock(ManualClock::new(0))
///     .build();
/// assert_eq!(store.capacity_bytes(), 64 << 20);
/// ```
pub struct MemoryStore {
    shards: Box<[Mutex<Shard<RandomState>>]>,
    hasher: RandomState,
    clock: Arc<dyn Clock>,
    capacity: usize,
}

/// Configures a [`MemoryStore`].
#[derive(Debug)]
pub struct MemoryStoreBuilder {
    capacity: usize,
    max_session_size: usize,
    shards: Option<usize>,
    clock: Arc<dyn Clock>,
}

impl MemoryStoreBuilder {
    /// Total bytes the store may hold (default 64 MiB).
    pub fn capacity_bytes(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }
    /// Largest session accepted (default 10 KiB).
    pub fn max_session_size(mut self, bytes: usize) -> Self {
        self.max_session_size = bytes;
        self
    }
    /// Number of shards, rounded up to a power of two in 1..=256
    /// (default: one per 256 KiB of capacity, at most 64).
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = Some(n);
        self
    }
    /// The clock used for expiry (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }
    /// Builds the store.
    pub fn build(self) -> MemoryStore {
        let n = self
            .shards
            .unwrap_or(self.capacity / (256 * 1024))
            .clamp(1, if self.shards.is_some() { 256 } else { 64 })
            .next_power_of_two();
        let hasher = RandomState::default();
        let per_shard = self.capacity / n;
        let base = self.clock.now();
        let shards = (0..n)
            .map(|_| {
                Mutex::new(Shard::new(
                    hasher.clone(),
                    per_shard,
                    self.max_session_size,
                    base,
                ))
            })
            .collect();
        MemoryStore {
            shards,
            hasher,
            clock: self.clock,
            capacity: per_shard * n,
        }
    }
}

impl MemoryStore {
    /// Default capacity: 64 MiB (about 360 000 typical sessions as charged).
    pub const DEFAULT_CAPACITY: usize = 64 << 20;

    /// A builder with the defaults.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder {
            capacity: Self::DEFAULT_CAPACITY,
            max_session_size: CachePolicy::DEFAULT_MAX_SESSION_SIZE,
            shards: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// A store of `bytes` capacity with the other defaults.
    pub fn with_capacity_bytes(bytes: usize) -> Self {
        Self::builder().capacity_bytes(bytes).build()
    }

    /// The capacity in bytes (rounded down to a multiple of the shard count).
    pub fn capacity_bytes(&self) -> usize {
        self.capacity
    }

    /// The clock the store reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Drops every expired entry now; returns how many.
    pub fn purge_expired(&self) -> usize {
        let now = self.clock.now();
        self.shards.iter().map(|s| lock(s).purge_expired(now)).sum()
    }

    /// Whether `needle` occurs anywhere in the store's session memory,
    /// live entries or freed slots. For tests of scrubbing: not a lookup.
    #[doc(hidden)]
    pub fn memory_contains(&self, needle: &[u8]) -> bool {
        self.shards.iter().any(|s| lock(s).arena_contains(needle))
    }

    /// Bytes of slab pages the store has allocated now (entries, their
    /// rounding and free slots; not the hash index).
    pub fn allocated_bytes(&self) -> usize {
        self.shards.iter().map(|s| lock(s).arena_bytes()).sum()
    }

    fn shard(&self, key: &SessionKey) -> (u64, MutexGuard<'_, Shard<RandomState>>) {
        let hash = key_hash(
            &self.hasher,
            key.protocol,
            key.context.as_bytes(),
            key.id.as_bytes(),
        );
        // The table uses the low bits and the top seven; shard by the middle.
        let i = (hash >> 32) as usize & (self.shards.len() - 1);
        (hash, lock(&self.shards[i]))
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("capacity", &self.capacity)
            .field("shards", &self.shards.len())
            .field("stats", &self.stats())
            .finish()
    }
}

/// A shard's state stays consistent across a panic elsewhere in the
/// critical section's caller, so a poisoned lock is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SessionStore for MemoryStore {
    fn put(&self, key: &SessionKey, session: &StoredSession) -> Result<(), StoreError> {
        let now = self.clock.now();
        let (hash, mut shard) = self.shard(key);
        shard.put(hash, key, session, now).map_err(|r| match r {
            Refusal::Oversize { size, limit } => StoreError::Oversize { size, limit },
            Refusal::Full => {
                StoreError::Unavailable("memory store shard has 32 GiB of pages".into())
            }
        })
    }

    fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        let now = self.clock.now();
        let (hash, mut shard) = self.shard(key);
        Ok(shard.get(hash, key, now))
    }

    fn take(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        let now = self.clock.now();
        let (hash, mut shard) = self.shard(key);
        Ok(shard.take(hash, key, now))
    }

    fn remove(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let (hash, mut shard) = self.shard(key);
        Ok(shard.remove(hash, key))
    }

    fn stats(&self) -> StoreStats {
        let mut total = StoreStats::default();
        for s in self.shards.iter() {
            total += lock(s).stats();
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ManualClock, Protocol};
    use std::time::Duration;

    #[test]
    fn put_get_take_remove_and_expiry() {
        let clock = ManualClock::new(100);
        let store = MemoryStore::builder()
            .capacity_bytes(1 << 20)
            .clock(clock.clone())
            .build();
        let k = SessionKey::from_slices(crate::Protocol::Tls12, b"x", &[1; 32]).unwrap();
        let s = StoredSession::new(vec![9; 130], 100, 110, Protocol::Tls12);
        store.put(&k, &s).unwrap();
        assert_eq!(store.get(&k).unwrap(), Some(s.clone()));
        assert_eq!(store.take(&k).unwrap(), Some(s.clone()));
        assert_eq!(store.take(&k).unwrap(), None);
        store.put(&k, &s).unwrap();
        assert!(store.remove(&k).unwrap());
        assert!(!store.remove(&k).unwrap());
        store.put(&k, &s).unwrap();
        clock.advance(Duration::from_secs(10));
        assert_eq!(store.get(&k).unwrap(), None);
        let st = store.stats();
        assert_eq!(
            (st.hits, st.misses, st.expirations, st.removals),
            (2, 2, 1, 1)
        );
        assert_eq!((st.entries, st.bytes), (0, 0));
    }

    #[test]
    fn oversize_is_refused_and_counted() {
        let store = MemoryStore::builder().max_session_size(100).build();
        let k = SessionKey::from_slices(crate::Protocol::Tls12, b"", &[1; 8]).unwrap();
        let s = StoredSession::new(vec![0; 101], 0, u64::MAX, Protocol::Tls12);
        assert!(matches!(
            store.put(&k, &s),
            Err(StoreError::Oversize {
                size: 101,
                limit: 100
            })
        ));
        assert_eq!(store.get(&k).unwrap(), None);
        assert_eq!(store.stats().oversize, 1);
    }

    #[test]
    fn protocols_never_share_an_entry() {
        let store = MemoryStore::default();
        let now = store.clock().now();
        let k12 = SessionKey::from_slices(crate::Protocol::Tls12, b"x", &[1; 32]).unwrap();
        let k13 = SessionKey {
            protocol: crate::Protocol::Tls13,
            ..k12
        };
        let s12 = StoredSession::new(vec![12], now, now + 60, crate::Protocol::Tls12);
        store.put(&k12, &s12).unwrap();
        assert_eq!(store.take(&k13).unwrap(), None);
        assert_eq!(store.get(&k12).unwrap(), Some(s12));
    }
}
