//! Recently stored sessions, kept decoded so that a local hit needs no
//! `d2i_SSL_SESSION`.
//!
//! The store stays the source of truth: the get callback still asks it
//! (`get`, or `take` for a single-use TLS 1.3 ticket) exactly as without
//! this map, and uses an entry here only when the store answered with the
//! very bytes the entry was made from (same DER, same `created` and
//! `expires`). So expiry, removal and fleet-wide single use are decided by
//! the store as before; this map only replaces the decode of bytes it has
//! seen serialised from the session it holds.
//!
//! An entry leaves the map when its TLS 1.3 ticket is taken, when the store
//! answers a miss (or other bytes) for its key, when OpenSSL removes the
//! session (remove callback), and when the map's bound evicts it (CLOCK,
//! per shard).
//!
//! **Memory**: an entry holds a reference to a live `SSL_SESSION` (about
//! 1–2 KB of heap with its peer certificate, cipher list and extensions;
//! more with a client-certificate chain), the session's DER (shared with
//! the bytes given to the store's `put`, a reference count, no copy) and
//! ~100 B of bookkeeping: the default bound of
//! [`DEFAULT_DECODED_SESSIONS`](crate::SessionCacheBuilder::DEFAULT_DECODED_SESSIONS)
//! (4 096) entries costs about 4–8 MiB when full.
//!
//! **Ownership**: the map owns one reference on each `SSL_SESSION` it
//! holds, and each is an object of its own — a duplicate
//! (`SSL_SESSION_dup`) of the session the new-session callback saw, never
//! that session itself, which is the issuing connection's `s->session`.
//! A hit that keeps the entry (TLS 1.2, or TLS 1.3 without single use)
//! returns another duplicate; a hit that removes it (a taken TLS 1.3
//! ticket) returns the map's own object, which from then on no one else
//! holds. Entries evicted or removed are dropped after the shard's lock is
//! released, so `SSL_SESSION_free` never runs under it.
//!
//! **Why no object is ever shared**: OpenSSL makes the session returned by
//! the get callback the connection's `s->session` as is — for a TLS 1.3
//! stateful ticket too (`tls_get_stateful_ticket`; only an external PSK is
//! duplicated in `tls_parse_ctos_psk`) — and writes to it:
//! `tls13_setup_key_block` sets `s->session->cipher` (OpenSSL ≥ 3.2 also
//! `kex_group`). An object handed to two connections, or still held by the
//! connection that issued it, would be written by two threads at once: a
//! connection that negotiated AES-128-GCM could see its session's cipher
//! turn into ChaCha20 under it. So the map hands out only objects that no
//! connection holds, at the cost of one `SSL_SESSION_dup` per stored
//! session and per TLS 1.2 hit (still far cheaper than `d2i`; see
//! `docs/performance.md`).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use foldhash::fast::RandomState;
use openssl::ssl::SslSession;
use tls_session_cache::{SessionKey, StoredSession, UnixTime};

use crate::ffi::dup_session;

/// Most shards a map has (fewer when its bound is smaller).
const MAX_SHARDS: usize = 16;

/// One decoded session and what it was serialised to.
struct Entry {
    key: SessionKey,
    session: SslSession,
    der: Bytes,
    created: UnixTime,
    expires: UnixTime,
    /// CLOCK's reference bit: set by a hit, cleared when the hand passes.
    referenced: bool,
}

impl Entry {
    /// Whether the store's answer is the bytes this entry was made from.
    fn is(&self, stored: &StoredSession) -> bool {
        self.created == stored.created && self.expires == stored.expires && self.der == stored.der
    }
}

#[derive(Default)]
struct Shard {
    index: HashMap<SessionKey, usize, RandomState>,
    slots: Vec<Option<Entry>>,
    free: Vec<usize>,
    hand: usize,
}

impl Shard {
    /// Takes the entry of `key` out, leaving its slot free.
    fn take(&mut self, key: &SessionKey) -> Option<Entry> {
        let slot = self.index.remove(key)?;
        self.free.push(slot);
        self.slots[slot].take()
    }

    /// A free slot, evicting with CLOCK when the shard is full; the
    /// evicted entry is returned to be dropped outside the lock.
    fn slot(&mut self, bound: usize) -> (usize, Option<Entry>) {
        if let Some(slot) = self.free.pop() {
            return (slot, None);
        }
        if self.slots.len() < bound {
            self.slots.push(None);
            return (self.slots.len() - 1, None);
        }
        // Full and no free slot: every slot holds an entry. At most two
        // turns of the hand: the first clears every reference bit.
        loop {
            let slot = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            match &mut self.slots[slot] {
                Some(e) if e.referenced => e.referenced = false,
                Some(e) => {
                    let key = e.key;
                    self.index.remove(&key);
                    return (slot, self.slots[slot].take());
                }
                None => return (slot, None),
            }
        }
    }
}

/// A bounded, sharded map `SessionKey → decoded SSL_SESSION`.
pub(crate) struct Decoded {
    shards: Box<[Mutex<Shard>]>,
    /// Entries per shard.
    bound: usize,
    hasher: RandomState,
}

impl Decoded {
    /// A map of at most about `capacity` entries (rounded up to a multiple
    /// of the shard count); 0 keeps nothing.
    pub(crate) fn new(capacity: usize) -> Self {
        let shards = capacity
            .clamp(1, MAX_SHARDS)
            .next_power_of_two()
            .min(MAX_SHARDS);
        let shards = if capacity == 0 { 0 } else { shards };
        Decoded {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            bound: capacity.div_ceil(shards.max(1)),
            hasher: RandomState::default(),
        }
    }

    /// Whether the map keeps anything.
    pub(crate) fn is_on(&self) -> bool {
        !self.shards.is_empty()
    }

    fn shard(&self, key: &SessionKey) -> Option<MutexGuard<'_, Shard>> {
        if self.shards.is_empty() {
            return None;
        }
        let hash = self.hasher.hash_one(key);
        let shard = &self.shards[(hash >> 32) as usize & (self.shards.len() - 1)];
        // A panic never leaves a shard half-updated (no user code runs under
        // the lock), so a poisoned lock is still consistent.
        Some(
            shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Keeps `session`, which serialised to `stored.der`, under `key`. It
    /// must be an object no connection holds (a duplicate).
    pub(crate) fn insert(&self, key: SessionKey, session: SslSession, stored: &StoredSession) {
        let Some(mut shard) = self.shard(&key) else {
            return;
        };
        let entry = Entry {
            key,
            session,
            der: stored.der.clone(),
            created: stored.created,
            expires: stored.expires,
            referenced: false,
        };
        let dropped = if let Some(&slot) = shard.index.get(&key) {
            shard.slots[slot].replace(entry)
        } else {
            let (slot, evicted) = shard.slot(self.bound);
            shard.slots[slot] = Some(entry);
            shard.index.insert(key, slot);
            evicted
        };
        drop(shard);
        drop(dropped);
    }

    /// The decoded session of `key` if the map holds the one the store
    /// answered (`stored`); removed from the map if `remove` (a taken
    /// ticket) or if the map's entry is not `stored` (stale).
    pub(crate) fn hit(
        &self,
        key: &SessionKey,
        stored: &StoredSession,
        remove: bool,
    ) -> Option<SslSession> {
        let mut shard = self.shard(key)?;
        let slot = *shard.index.get(key)?;
        let keep = match &mut shard.slots[slot] {
            Some(e) if e.is(stored) && !remove => {
                e.referenced = true;
                // A duplicate for the caller: the map's object is never
                // handed to a connection while the map keeps it. (A failed
                // allocation is a miss: the caller decodes the bytes.)
                return dup_session(&e.session);
            }
            Some(e) => e.is(stored),
            None => false,
        };
        let entry = shard.take(key);
        drop(shard);
        match entry {
            // The map's own reference goes to the caller.
            Some(e) if keep => Some(e.session),
            _ => None,
        }
    }

    /// Forgets `key` (the store no longer has it, or OpenSSL removed it).
    pub(crate) fn remove(&self, key: &SessionKey) {
        if let Some(mut shard) = self.shard(key) {
            let entry = shard.take(key);
            drop(shard);
            drop(entry);
        }
    }

    /// How many sessions the map holds.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).index.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foreign_types::ForeignType;
    use tls_session_cache::{Protocol, SessionId, SessionIdContext};

    fn key(i: u8) -> SessionKey {
        SessionKey::new(
            Protocol::Tls12,
            SessionIdContext::new(b"t").unwrap(),
            SessionId::new(&[i; 32]).unwrap(),
        )
    }

    /// An empty session object whose id is `[i; 32]`.
    fn session(i: u8) -> SslSession {
        // SAFETY: SSL_SESSION_new returns a new session with one reference,
        // which `from_ptr` takes over; set1_id copies 32 bytes.
        unsafe {
            let raw = crate::ffi::SSL_SESSION_new();
            assert!(!raw.is_null());
            let s = SslSession::from_ptr(raw);
            assert_eq!(
                crate::ffi::SSL_SESSION_set1_id(raw, [i; 32].as_ptr(), 32),
                1
            );
            s
        }
    }

    fn stored(i: u8, created: u64) -> StoredSession {
        StoredSession::new(vec![i; 100], created, created + 10, Protocol::Tls12)
    }

    #[test]
    fn off_keeps_nothing() {
        let d = Decoded::new(0);
        assert!(!d.is_on());
        d.insert(key(1), session(1), &stored(1, 5));
        assert_eq!(d.len(), 0);
        assert!(d.hit(&key(1), &stored(1, 5), false).is_none());
    }

    #[test]
    fn bound_rounds_up_to_shards() {
        let d = Decoded::new(4096);
        assert_eq!((d.shards.len(), d.bound), (16, 256));
        let d = Decoded::new(3);
        assert_eq!((d.shards.len(), d.bound), (4, 1));
        let d = Decoded::new(1);
        assert_eq!((d.shards.len(), d.bound), (1, 1));
    }

    #[test]
    fn hit_only_for_the_stored_bytes() {
        let d = Decoded::new(8);
        d.insert(key(1), session(1), &stored(1, 5));
        let hit = d.hit(&key(1), &stored(1, 5), false).unwrap();
        assert_eq!(hit.id(), &[1; 32]);
        // Never the map's own object, nor the same object twice.
        let again = d.hit(&key(1), &stored(1, 5), false).unwrap();
        assert_ne!(hit.as_ptr(), again.as_ptr());
        // Kept: a TLS 1.2 session resumes again.
        assert_eq!(d.len(), 1);
        assert!(d.hit(&key(1), &stored(1, 5), false).is_some());
        // Another key: nothing.
        assert!(d.hit(&key(2), &stored(1, 5), false).is_none());
        // The store answers other bytes (or times) for the key: no hit, and
        // the stale entry is gone.
        assert!(d.hit(&key(1), &stored(1, 6), false).is_none());
        assert_eq!(d.len(), 0);
        d.insert(key(1), session(1), &stored(1, 5));
        assert!(d.hit(&key(1), &stored(9, 5), false).is_none());
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn take_and_remove_forget() {
        let d = Decoded::new(8);
        d.insert(key(1), session(1), &stored(1, 5));
        let taken = d.hit(&key(1), &stored(1, 5), true).unwrap();
        assert_eq!(taken.id(), &[1; 32]);
        assert_eq!(d.len(), 0);
        assert!(d.hit(&key(1), &stored(1, 5), false).is_none());
        d.insert(key(2), session(2), &stored(2, 5));
        d.remove(&key(2));
        assert!(d.hit(&key(2), &stored(2, 5), false).is_none());
        // Replacing an entry keeps one.
        d.insert(key(3), session(3), &stored(3, 5));
        d.insert(key(3), session(3), &stored(3, 6));
        assert_eq!(d.len(), 1);
        assert!(d.hit(&key(3), &stored(3, 6), false).is_some());
    }

    #[test]
    fn clock_bounds_and_spares_referenced_entries() {
        let d = Decoded {
            shards: vec![Mutex::default()].into_boxed_slice(),
            bound: 3,
            hasher: RandomState::default(),
        };
        for i in 1..=3 {
            d.insert(key(i), session(i), &stored(i, 5));
        }
        assert!(d.hit(&key(1), &stored(1, 5), false).is_some());
        // Full: the hand skips 1 (referenced) and evicts 2.
        d.insert(key(4), session(4), &stored(4, 5));
        assert_eq!(d.len(), 3);
        assert!(d.hit(&key(2), &stored(2, 5), false).is_none());
        for i in [1, 3, 4] {
            assert!(d.hit(&key(i), &stored(i, 5), false).is_some(), "{i}");
        }
        for i in 10..50 {
            d.insert(key(i), session(i), &stored(i, 5));
            assert!(d.len() <= 3);
        }
    }
}
