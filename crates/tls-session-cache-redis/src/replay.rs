//! What this server consumed or removed, remembered so that an old value
//! written back into Redis does not resume again.
//!
//! Redis alone cannot stop someone who can write to it from restoring bytes
//! it read earlier: a TLS 1.3 ticket taken with `GETDEL`, or a TLS 1.2
//! session removed after an unclean close, would open again until its
//! sealed expiry (the value is sealed to its key name, so only the *same*
//! name works). Each store therefore remembers the names it consumed
//! (`take` that found a session) until that session's sealed expiry, and
//! the names it removed for [`REMOVED_HORIZON`], and refuses a value found
//! under one of them (a miss, counted in `RedisStats::replays`). Its own
//! `put` under a name forgets it.
//!
//! **Bounded.** A name is kept as a 64-bit keyed hash (SipHash with a
//! per-process random key, so a Redis writer cannot aim collisions; a
//! false refusal needs a 64-bit collision) with its expiry: about 40 bytes
//! per entry with the hash map and the eviction queue, at most `capacity`
//! entries (default [`DEFAULT_CAPACITY`], about 2.5 MiB). When full, the
//! oldest entry goes first: a server consuming more than `capacity`
//! tickets per ticket lifetime remembers only the most recent ones.
//!
//! **What it does not cover**: another server of the fleet does not know
//! what this one consumed, so a restored ticket still resumes once on each
//! server that did not consume it; a restart forgets everything.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};

/// Entries remembered by default.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// How long a removed name is remembered (seconds): the longest a TLS 1.3
/// session may live (7 days), beyond any TLS 1.2 session's lifetime. The
/// capacity bounds the memory long before.
pub const REMOVED_HORIZON: u64 = 7 * 24 * 3600;

#[derive(Default)]
struct Inner {
    /// Hash → expiry (Unix seconds).
    map: HashMap<u64, u64>,
    /// Insertion order, for eviction.
    order: VecDeque<(u64, u64)>,
}

/// Names consumed or removed, with their expiries.
pub(crate) struct Memory {
    hasher: RandomState,
    inner: Mutex<Inner>,
    capacity: usize,
}

impl Memory {
    /// Remembers at most `capacity` names (0: none, the check is off).
    pub(crate) fn new(capacity: usize) -> Memory {
        Memory {
            hasher: RandomState::new(),
            inner: Mutex::new(Inner::default()),
            capacity,
        }
    }

    fn hash(&self, name: &[u8]) -> u64 {
        self.hasher.hash_one(name)
    }

    /// Remembers `name` until `expires` (Unix seconds).
    pub(crate) fn remember(&self, name: &[u8], expires: u64, now: u64) {
        if self.capacity == 0 || expires <= now {
            return;
        }
        let h = self.hash(name);
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        while g.order.len() >= self.capacity || g.order.front().is_some_and(|&(_, exp)| exp <= now)
        {
            let Some((old, exp)) = g.order.pop_front() else {
                break;
            };
            if g.map.get(&old) == Some(&exp) {
                g.map.remove(&old);
            }
        }
        let e = g.map.entry(h).or_insert(0);
        *e = (*e).max(expires);
        let exp = *e;
        g.order.push_back((h, exp));
    }

    /// Whether `name` was consumed or removed and has not expired since.
    pub(crate) fn refuses(&self, name: &[u8], now: u64) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let h = self.hash(name);
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.map.get(&h).is_some_and(|&exp| exp > now)
    }

    /// Forgets `name` (this server stores a new session under it).
    pub(crate) fn forget(&self, name: &[u8]) {
        if self.capacity == 0 {
            return;
        }
        let h = self.hash(name);
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.map.remove(&h);
    }

    /// Entries held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_expiry_and_forgets_on_put() {
        let m = Memory::new(8);
        m.remember(b"a", 100, 10);
        assert!(m.refuses(b"a", 50));
        assert!(!m.refuses(b"a", 100));
        assert!(!m.refuses(b"b", 50));
        m.forget(b"a");
        assert!(!m.refuses(b"a", 50));
    }

    #[test]
    fn bounded_by_capacity_oldest_first() {
        let m = Memory::new(4);
        for i in 0..10u8 {
            m.remember(&[i], 1000, 0);
        }
        assert!(m.len() <= 4);
        assert!(m.refuses(&[9], 1));
        assert!(!m.refuses(&[0], 1));
    }

    #[test]
    fn expired_entries_are_dropped_first_and_zero_capacity_is_off() {
        let m = Memory::new(4);
        m.remember(b"old", 5, 0);
        m.remember(b"new", 100, 10);
        assert_eq!(m.len(), 1);
        let off = Memory::new(0);
        off.remember(b"a", 100, 0);
        assert!(!off.refuses(b"a", 1));
    }
}
