//! One shard of the [`MemoryStore`](super::MemoryStore): a hash table over a
//! slab of compact entries, evicted by CLOCK. Single threaded; the store
//! wraps each shard in a mutex. All policy lives here so that it can be
//! tested without threads.

use std::hash::{BuildHasher, Hasher};

use bytes::Bytes;
use hashbrown::{HashMap, HashTable};

use crate::clock::UnixTime;
use crate::key::{SessionIdContext, SessionKey};
use crate::session::{Protocol, StoredSession};
use crate::stats::StoreStats;

/// Bytes charged per entry on top of its id and session bytes: the slot,
/// the table's index and control byte, and the allocator's header.
pub const ENTRY_OVERHEAD: usize = 64;

const FLAG_TLS13: u8 = 1;
const FLAG_SINGLE_USE: u8 = 2;
const FLAG_REFERENCED: u8 = 4;

/// Bytes of the creation time kept in a slot's allocation.
const CREATED_LEN: usize = 8;

/// A compact entry: 32 bytes plus one allocation holding the id, the
/// creation time and the session. The creation time lives in the allocation
/// (it is read only to rebuild the session) so that the slot is 32 bytes —
/// two to a cache line — instead of 40.
struct Slot {
    /// The id's bytes, the creation time (little endian) and the session's
    /// bytes; empty when vacant.
    data: Box<[u8]>,
    expires: UnixTime,
    /// Index into the shard's interned namespaces (protocol, context).
    ctx: u32,
    id_len: u8,
    flags: u8,
}

impl Slot {
    const VACANT: fn() -> Slot = || Slot {
        data: Box::new([]),
        expires: 0,
        ctx: 0,
        id_len: 0,
        flags: 0,
    };

    fn is_vacant(&self) -> bool {
        self.id_len == 0
    }
    fn id(&self) -> &[u8] {
        &self.data[..usize::from(self.id_len)]
    }
    /// What the entry was charged: overhead + id + session bytes.
    fn charge(&self) -> usize {
        ENTRY_OVERHEAD + self.data.len().saturating_sub(CREATED_LEN)
    }
    fn to_session(&self) -> StoredSession {
        let (created, der) = self.data[usize::from(self.id_len)..].split_at(CREATED_LEN);
        let mut t = [0u8; CREATED_LEN];
        t.copy_from_slice(created);
        StoredSession {
            der: Bytes::copy_from_slice(der),
            created: UnixTime::from_le_bytes(t),
            expires: self.expires,
            protocol: if self.flags & FLAG_TLS13 != 0 {
                Protocol::Tls13
            } else {
                Protocol::Tls12
            },
            single_use: self.flags & FLAG_SINGLE_USE != 0,
        }
    }
}

/// Why a shard refused a session.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Larger than the shard can ever hold, or than the size limit.
    Oversize { size: usize, limit: usize },
}

pub struct Shard<S> {
    hasher: S,
    table: HashTable<u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Interned key namespaces: keys are protocol-bound, so a namespace is
    /// a protocol and a session-id context.
    contexts: Vec<(Protocol, SessionIdContext)>,
    context_index: HashMap<(Protocol, SessionIdContext), u32>,
    /// CLOCK hand: next slot to consider for eviction.
    hand: usize,
    /// Sweep cursor: next slot checked for expiry on insert.
    sweep: usize,
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

impl<S: BuildHasher> Shard<S> {
    pub fn new(hasher: S, capacity: usize, max_session_size: usize) -> Self {
        Shard {
            hasher,
            table: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            contexts: Vec::new(),
            context_index: HashMap::new(),
            hand: 0,
            sweep: 0,
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

    fn slot_hash(&self, i: u32) -> u64 {
        let slot = &self.slots[i as usize];
        let (protocol, ctx) = &self.contexts[slot.ctx as usize];
        key_hash(&self.hasher, *protocol, ctx.as_bytes(), slot.id())
    }

    fn find(&self, hash: u64, key: &SessionKey) -> Option<u32> {
        let ctx = *self.context_index.get(&(key.protocol, key.context))?;
        let id = key.id.as_bytes();
        self.table
            .find(hash, |&i| {
                let s = &self.slots[i as usize];
                s.ctx == ctx && s.id() == id
            })
            .copied()
    }

    /// Unlinks slot `i` from the table and frees it; returns its charge.
    fn release(&mut self, i: u32) {
        let hash = self.slot_hash(i);
        if let Ok(entry) = self.table.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        let slot = std::mem::replace(&mut self.slots[i as usize], Slot::VACANT());
        self.used -= slot.charge();
        self.free.push(i);
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
        for _ in 0..n.min(self.slots.len()) {
            if self.sweep >= self.slots.len() {
                self.sweep = 0;
            }
            let i = self.sweep;
            self.sweep += 1;
            let slot = &self.slots[i];
            if !slot.is_vacant() && now >= slot.expires {
                self.release(i as u32);
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
        for _ in 0..=2 * self.slots.len() {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let i = self.hand;
            self.hand += 1;
            let slot = &mut self.slots[i];
            if slot.is_vacant() {
                continue;
            }
            if now >= slot.expires {
                self.release(i as u32);
                self.counters.expirations += 1;
                return true;
            }
            if slot.flags & FLAG_REFERENCED != 0 {
                slot.flags &= !FLAG_REFERENCED;
                continue;
            }
            self.release(i as u32);
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
            self.release(old);
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
        let ctx = self.intern(key);
        let mut data = Vec::with_capacity(id.len() + CREATED_LEN + size);
        data.extend_from_slice(id);
        data.extend_from_slice(&session.created.to_le_bytes());
        data.extend_from_slice(&session.der);
        let mut flags = 0;
        if session.protocol == Protocol::Tls13 {
            flags |= FLAG_TLS13;
        }
        if session.single_use {
            flags |= FLAG_SINGLE_USE;
        }
        let slot = Slot {
            data: data.into_boxed_slice(),
            expires: session.expires,
            ctx,
            id_len: id.len() as u8,
            flags,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.used += charge;
        let (slots, contexts, hasher) = (&self.slots, &self.contexts, &self.hasher);
        self.table.insert_unique(hash, i, |&j| {
            let s = &slots[j as usize];
            let (protocol, ctx) = &contexts[s.ctx as usize];
            key_hash(hasher, *protocol, ctx.as_bytes(), s.id())
        });
        self.counters.inserts += 1;
        Ok(())
    }

    /// Looks `key` up; expired entries are dropped and count as misses.
    fn lookup(&mut self, hash: u64, key: &SessionKey, now: UnixTime) -> Option<u32> {
        let Some(i) = self.find(hash, key) else {
            self.counters.misses += 1;
            return None;
        };
        if now >= self.slots[i as usize].expires {
            self.release(i);
            self.counters.expirations += 1;
            self.counters.misses += 1;
            return None;
        }
        self.counters.hits += 1;
        Some(i)
    }

    pub fn get(&mut self, hash: u64, key: &SessionKey, now: UnixTime) -> Option<StoredSession> {
        let i = self.lookup(hash, key, now)?;
        let slot = &mut self.slots[i as usize];
        slot.flags |= FLAG_REFERENCED;
        Some(slot.to_session())
    }

    pub fn take(&mut self, hash: u64, key: &SessionKey, now: UnixTime) -> Option<StoredSession> {
        let i = self.lookup(hash, key, now)?;
        let session = self.slots[i as usize].to_session();
        self.release(i);
        Some(session)
    }

    pub fn remove(&mut self, hash: u64, key: &SessionKey) -> bool {
        match self.find(hash, key) {
            Some(i) => {
                self.release(i);
                self.counters.removals += 1;
                true
            }
            None => false,
        }
    }

    /// Drops every expired entry; returns how many.
    pub fn purge_expired(&mut self, now: UnixTime) -> usize {
        let before = self.counters.expirations;
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if !s.is_vacant() && now >= s.expires {
                self.release(i as u32);
                self.counters.expirations += 1;
            }
        }
        (self.counters.expirations - before) as usize
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
        let mut s = Shard::new(FixedState::with_seed(1), 3 * per, 10_000);
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
    fn slot_is_half_a_cache_line() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
    }

    #[test]
    fn expired_entries_are_swept_on_insert() {
        let mut s = Shard::new(FixedState::with_seed(1), 1 << 20, 10_000);
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
