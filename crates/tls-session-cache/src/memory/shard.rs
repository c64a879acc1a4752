//! One shard of the [`MemoryStore`](super::MemoryStore): a hash index of
//! 4-byte handles over an [`Arena`] of size-classed slots, evicted by
//! CLOCK. Single threaded; the store wraps each shard in a mutex. All
//! policy lives here so that it can be tested without threads.

use std::hash::{BuildHasher, Hasher};

use bytes::Bytes;
use hashbrown::{HashMap, HashTable};

use super::arena::{Arena, Full, Handle};
use super::record::{self, FLAG_SINGLE_USE, FLAG_TLS13, Meta};
use crate::clock::UnixTime;
use crate::key::{SessionIdContext, SessionKey};
use crate::session::{Protocol, StoredSession};
use crate::stats::StoreStats;

/// Bytes charged per entry on top of its id and session bytes: the
/// entry's 11-byte header, its share of the hash index (a 4-byte handle
/// and a control byte, at hashbrown's load factor), and the slot's
/// rounding to its size class.
pub const ENTRY_OVERHEAD: usize = 24;

/// Why a shard refused a session.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Larger than the shard can ever hold, or than the size limit.
    Oversize { size: usize, limit: usize },
    /// The shard's arena cannot grow (32 GiB of pages).
    Full,
}

pub struct Shard<S> {
    hasher: S,
    /// Handles of the live entries, by key hash.
    table: HashTable<Handle>,
    arena: Arena,
    /// Interned key namespaces: keys are protocol-bound, so a namespace is
    /// a protocol and a session-id context.
    contexts: Vec<(Protocol, SessionIdContext)>,
    context_index: HashMap<(Protocol, SessionIdContext), u32>,
    /// Times in entries are kept relative to this instant.
    base: UnixTime,
    /// CLOCK hand: last slot considered for eviction.
    hand: Option<Handle>,
    /// Sweep cursor: last slot checked for expiry on insert.
    sweep: Option<Handle>,
    used: usize,
    capacity: usize,
    max_session_size: usize,
    counters: StoreStats,
}

/// The hash of a key, as both the store front and the shard compute it.
pub fn key_hash<S: BuildHasher>(hasher: &S, protocol: Protocol, context: &[u8], id: &[u8]) -> u64 {
    let mut h = hasher.build_hasher();
    h.write_u8(protocol as u8);
    h.write_u8(context.len() as u8);
    h.write(context);
    h.write(id);
    h.finish()
}

/// The hash of the entry in `slot`.
fn slot_hash<S: BuildHasher>(
    hasher: &S,
    contexts: &[(Protocol, SessionIdContext)],
    slot: &[u8],
) -> u64 {
    let (protocol, ctx) = &contexts[record::ctx(slot) as usize];
    key_hash(hasher, *protocol, ctx.as_bytes(), record::id(slot))
}

impl<S: BuildHasher> Shard<S> {
    pub fn new(hasher: S, capacity: usize, max_session_size: usize, base: UnixTime) -> Self {
        Shard {
            hasher,
            table: HashTable::new(),
            arena: Arena::default(),
            contexts: Vec::new(),
            context_index: HashMap::new(),
            base,
            hand: None,
            sweep: None,
            used: 0,
            capacity,
            max_session_size,
            counters: StoreStats::default(),
        }
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            entries: self.table.len() as u64,
            bytes: self.used as u64,
            ..self.counters
        }
    }

    /// The live entry under `key`: one probe of the index, comparing the
    /// id and namespace stored in the slot.
    fn find(&self, hash: u64, key: &SessionKey) -> Option<Handle> {
        let id = key.id.as_bytes();
        self.table
            .find(hash, |&h| {
                let slot = self.arena.slot(h);
                record::id(slot) == id && {
                    let (p, c) = &self.contexts[record::ctx(slot) as usize];
                    *p == key.protocol && *c == key.context
                }
            })
            .copied()
    }

    /// Unlinks the entry at `h` from the index, zeroizes and frees its
    /// slot. `hash` is its key's hash when the caller has it.
    fn release(&mut self, h: Handle, hash: Option<u64>) {
        let slot = self.arena.slot(h);
        let charge = ENTRY_OVERHEAD + record::id(slot).len() + record::meta(slot, self.base).len;
        let hash = hash.unwrap_or_else(|| slot_hash(&self.hasher, &self.contexts, slot));
        if let Ok(entry) = self.table.find_entry(hash, |&j| j == h) {
            entry.remove();
        }
        self.arena.free(h);
        self.used -= charge;
    }

    fn intern(&mut self, key: &SessionKey) -> u32 {
        let namespace = (key.protocol, key.context);
        if let Some(&i) = self.context_index.get(&namespace) {
            return i;
        }
        let i = self.contexts.len() as u32;
        self.contexts.push(namespace);
        self.context_index.insert(namespace, i);
        i
    }

    /// Drops up to `n` expired entries at the sweep cursor.
    fn sweep_expired(&mut self, now: UnixTime, n: usize) {
        for _ in 0..n.min(self.arena.slots()) {
            let Some(h) = self.arena.next(self.sweep) else {
                return;
            };
            self.sweep = Some(h);
            let slot = self.arena.slot(h);
            if record::is_live(slot) && now >= record::expires(slot, self.base) {
                self.release(h, None);
                self.counters.expirations += 1;
            }
        }
    }

    /// Frees one entry by CLOCK: expired entries first met go at once,
    /// referenced entries get a second chance. Returns false when empty.
    fn evict_one(&mut self, now: UnixTime) -> bool {
        if self.table.is_empty() {
            return false;
        }
        // Two passes always suffice: the first clears every reference bit.
        for _ in 0..=2 * self.arena.slots() {
            let Some(h) = self.arena.next(self.hand) else {
                return false;
            };
            self.hand = Some(h);
            let slot = self.arena.slot(h);
            if !record::is_live(slot) {
                continue;
            }
            if now >= record::expires(slot, self.base) {
                self.release(h, None);
                self.counters.expirations += 1;
                return true;
            }
            if record::referenced(slot) {
                record::set_referenced(self.arena.slot_mut(h), false);
                continue;
            }
            self.release(h, None);
            self.counters.evictions += 1;
            return true;
        }
        false
    }

    pub fn put(
        &mut self,
        hash: u64,
        key: &SessionKey,
        session: &StoredSession,
        now: UnixTime,
    ) -> Result<(), Refusal> {
        let size = session.der.len();
        let id = key.id.as_bytes();
        let charge = ENTRY_OVERHEAD + id.len() + size;
        if size > self.max_session_size || charge > self.capacity {
            self.counters.oversize += 1;
            let limit = self
                .max_session_size
                .min(self.capacity.saturating_sub(ENTRY_OVERHEAD + id.len()));
            return Err(Refusal::Oversize { size, limit });
        }
        if let Some(old) = self.find(hash, key) {
            self.release(old, Some(hash));
        }
        if session.is_expired(now) {
            return Ok(());
        }
        self.sweep_expired(now, 2);
        while self.used + charge > self.capacity {
            if !self.evict_one(now) {
                break;
            }
        }
        let mut flags = 0;
        if session.protocol == Protocol::Tls13 {
            flags |= FLAG_TLS13;
        }
        if session.single_use {
            flags |= FLAG_SINGLE_USE;
        }
        let meta = Meta {
            flags,
            ctx: self.intern(key),
            len: size,
            expires: session.expires,
            created: session.created,
        };
        let h = self
            .arena
            .alloc(meta.header_len(self.base) + id.len() + size)
            .map_err(|Full| Refusal::Full)?;
        record::write(self.arena.slot_mut(h), &meta, id, &session.der, self.base);
        self.used += charge;
        let (arena, contexts, hasher) = (&self.arena, &self.contexts, &self.hasher);
        self.table
            .insert_unique(hash, h, |&j| slot_hash(hasher, contexts, arena.slot(j)));
        self.counters.inserts += 1;
        Ok(())
    }

    fn to_session(&self, h: Handle) -> StoredSession {
        let slot = self.arena.slot(h);
        let meta = record::meta(slot, self.base);
        StoredSession {
            der: Bytes::copy_from_slice(record::der(slot, meta.len)),
            created: meta.created,
            expires: meta.expires,
            protocol: meta.protocol(),
            single_use: meta.flags & FLAG_SINGLE_USE != 0,
        }
    }

    /// Looks `key` up; expired entries are dropped and count as misses.
    fn lookup(&mut self, hash: u64, key: &SessionKey, now: UnixTime) -> Option<Handle> {
        let Some(h) = self.find(hash, key) else {
            self.counters.misses += 1;
            return None;
        };
        if now >= record::expires(self.arena.slot(h), self.base) {
            self.release(h, Some(hash));
            self.counters.expirations += 1;
            self.counters.misses += 1;
            return None;
        }
        self.counters.hits += 1;
        Some(h)
    }

    pub fn get(&mut self, hash: u64, key: &SessionKey, now: UnixTime) -> Option<StoredSession> {
        let h = self.lookup(hash, key, now)?;
        record::set_referenced(self.arena.slot_mut(h), true);
        Some(self.to_session(h))
    }

    pub fn take(&mut self, hash: u64, key: &SessionKey, now: UnixTime) -> Option<StoredSession> {
        let h = self.lookup(hash, key, now)?;
        let session = self.to_session(h);
        self.release(h, Some(hash));
        Some(session)
    }

    pub fn remove(&mut self, hash: u64, key: &SessionKey) -> bool {
        match self.find(hash, key) {
            Some(h) => {
                self.release(h, Some(hash));
                self.counters.removals += 1;
                true
            }
            None => false,
        }
    }

    /// Drops every expired entry; returns how many.
    pub fn purge_expired(&mut self, now: UnixTime) -> usize {
        let before = self.counters.expirations;
        let mut h = None;
        for _ in 0..self.arena.slots() {
            h = self.arena.next(h);
            let Some(x) = h else { break };
            let slot = self.arena.slot(x);
            if record::is_live(slot) && now >= record::expires(slot, self.base) {
                self.release(x, None);
                self.counters.expirations += 1;
            }
        }
        (self.counters.expirations - before) as usize
    }

    /// Whether `needle` occurs anywhere in the shard's session memory.
    pub fn arena_contains(&self, needle: &[u8]) -> bool {
        self.arena.contains(needle)
    }

    /// Bytes of arena pages allocated.
    pub fn arena_bytes(&self) -> usize {
        self.arena.allocated()
    }

    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foldhash::fast::FixedState;

    fn key(n: u8) -> SessionKey {
        SessionKey::from_slices(crate::Protocol::Tls12, b"c", &[n; 32]).unwrap()
    }
    fn sess(n: u8, expires: UnixTime) -> StoredSession {
        StoredSession::new(vec![n; 100], 0, expires, Protocol::Tls12)
    }
    fn put(s: &mut Shard<FixedState>, n: u8, now: UnixTime) {
        let k = key(n);
        let h = key_hash(&s.hasher, k.protocol, k.context.as_bytes(), k.id.as_bytes());
        s.put(h, &k, &sess(n, now + 1000), now).unwrap();
    }
    fn get(s: &mut Shard<FixedState>, n: u8, now: UnixTime) -> bool {
        let k = key(n);
        let h = key_hash(&s.hasher, k.protocol, k.context.as_bytes(), k.id.as_bytes());
        s.get(h, &k, now).is_some()
    }

    #[test]
    fn clock_gives_referenced_entries_a_second_chance() {
        let per = ENTRY_OVERHEAD + 32 + 100;
        let mut s = Shard::new(FixedState::with_seed(1), 3 * per, 10_000, 0);
        put(&mut s, 1, 0);
        put(&mut s, 2, 0);
        put(&mut s, 3, 0);
        assert!(get(&mut s, 1, 0));
        put(&mut s, 4, 0); // evicts 2: 1 was referenced
        assert!(get(&mut s, 1, 0));
        assert!(!get(&mut s, 2, 0));
        assert!(get(&mut s, 3, 0));
        assert!(get(&mut s, 4, 0));
        assert_eq!(s.stats().evictions, 1);
        assert!(s.used() <= 3 * per);
    }

    #[test]
    fn scrubbed_on_every_way_out() {
        let mut s = Shard::new(FixedState::with_seed(1), 1 << 20, 10_000, 0);
        let marked = |n: u8| StoredSession::new(vec![0xE0 | n; 100], 0, 1000, Protocol::Tls12);
        let k = |n: u8| key(n);
        let h = |s: &Shard<FixedState>, k: &SessionKey| {
            key_hash(&s.hasher, k.protocol, k.context.as_bytes(), k.id.as_bytes())
        };
        for n in 1..=5 {
            let key = k(n);
            s.put(h(&s, &key), &key, &marked(n), 0).unwrap();
            assert!(s.arena_contains(&[0xE0 | n; 100]));
        }
        // replacement
        let key = k(1);
        let other = StoredSession::new(vec![0xD1; 100], 0, 1000, Protocol::Tls12);
        s.put(h(&s, &key), &key, &other, 0).unwrap();
        assert!(!s.arena_contains(&[0xE1; 100]));
        // take, remove
        let key = k(2);
        assert!(s.take(h(&s, &key), &key, 0).is_some());
        assert!(!s.arena_contains(&[0xE2; 100]));
        let key = k(3);
        assert!(s.remove(h(&s, &key), &key));
        assert!(!s.arena_contains(&[0xE3; 100]));
        // expiry on lookup, purge
        let key = k(4);
        assert!(s.get(h(&s, &key), &key, 1000).is_none());
        assert!(!s.arena_contains(&[0xE4; 100]));
        assert_eq!(s.purge_expired(1000), 2);
        assert!(!s.arena_contains(&[0xE5; 100]));
        assert!(!s.arena_contains(&[0xD1; 100]));
        // ids go too
        assert!(!s.arena_contains(&[5; 32]));
    }

    #[test]
    fn eviction_scrubs_and_reuses_the_slot_without_new_pages() {
        let per = ENTRY_OVERHEAD + 32 + 100;
        let mut s = Shard::new(FixedState::with_seed(1), 3 * per, 10_000, 0);
        put(&mut s, 1, 0);
        put(&mut s, 2, 0);
        put(&mut s, 3, 0);
        let pages = s.arena_bytes();
        assert!(s.arena_contains(&[1; 100]));
        put(&mut s, 4, 0); // evicts 1
        assert_eq!(s.stats().evictions, 1);
        assert!(!s.arena_contains(&[1; 100]));
        assert!(s.arena_contains(&[4; 100]));
        assert_eq!(s.arena_bytes(), pages);
    }

    #[test]
    fn expired_entries_are_swept_on_insert() {
        let mut s = Shard::new(FixedState::with_seed(1), 1 << 20, 10_000, 0);
        for n in 0..10 {
            put(&mut s, n, 0);
        }
        // Every insert after expiry checks two slots, without any lookup.
        for n in 10..20 {
            put(&mut s, n, 2000);
        }
        assert_eq!(s.stats().expirations, 10);
        assert_eq!(s.stats().entries, 10);
    }
}
