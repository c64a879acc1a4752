//! Model test: random sequences of `put` / `get` / `take` / `remove` and
//! clock moves, run against [`MemoryStore`] and against a plain reference
//! model (a `HashMap` plus expiry times).
//!
//! * With room for everything (no eviction possible) the store must agree
//!   with the model exactly: every answer and the hit / miss / insert
//!   counters.
//! * With a small byte budget (eviction happening) the store may forget a
//!   session the model still has, but never the other way round: it never
//!   exceeds its budget, never returns an expired session, never returns a
//!   value other than the one last put under that key, and `take` is single.
//!
//! At the end of every sequence the store's `entries` and `bytes` are
//! checked against what a lookup of every key in the (small) key space finds.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use tls_session_cache::memory::ENTRY_OVERHEAD;
use tls_session_cache::{
    Clock, ManualClock, MemoryStore, Protocol, SessionKey, SessionStore, StoreError, StoredSession,
    UnixTime,
};

/// Two protocols × three contexts (one empty) × four ids (two of them 32
/// bytes, one short, and the same 32-byte id appears in every context and
/// both protocols: keys are protocol-bound).
fn key_space() -> Vec<SessionKey> {
    let contexts: [&[u8]; 3] = [b"", b"svc-a", b"svc-b"];
    let ids: [&[u8]; 4] = [&[0x11; 32], &[0x22; 32], &[0x33], &[0x44; 16]];
    let mut keys = Vec::new();
    for protocol in [Protocol::Tls12, Protocol::Tls13] {
        for c in contexts {
            for id in ids {
                keys.push(SessionKey::from_slices(protocol, c, id).unwrap());
            }
        }
    }
    keys
}

const MAX_SESSION_SIZE: usize = 256;
const START: UnixTime = 1_700_000_000;

#[derive(Debug, Clone)]
enum Op {
    Put {
        key: usize,
        size: usize,
        ttl: u64,
        tls13: bool,
    },
    Get(usize),
    Take(usize),
    Remove(usize),
    Advance(u64),
    Purge,
}

fn op(keys: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        // Sizes straddle MAX_SESSION_SIZE so that some puts are refused;
        // a ttl of 0 is a session already expired when put.
        4 => (0..keys, 8..=MAX_SESSION_SIZE + 40, 0u64..600, any::<bool>())
            .prop_map(|(key, size, ttl, tls13)| Op::Put { key, size, ttl, tls13 }),
        3 => (0..keys).prop_map(Op::Get),
        2 => (0..keys).prop_map(Op::Take),
        1 => (0..keys).prop_map(Op::Remove),
        1 => prop_oneof![0u64..5, 100u64..400].prop_map(Op::Advance),
        1 => Just(Op::Purge),
    ]
}

/// A session whose bytes are unique to the `n`th put.
fn session(n: u64, size: usize, now: UnixTime, ttl: u64, tls13: bool) -> StoredSession {
    let mut der = vec![(n % 251) as u8; size];
    der[..8].copy_from_slice(&n.to_be_bytes());
    let protocol = if tls13 {
        Protocol::Tls13
    } else {
        Protocol::Tls12
    };
    StoredSession::new(der, now, now + ttl, protocol)
}

fn charge(key: &SessionKey, s: &StoredSession) -> u64 {
    (ENTRY_OVERHEAD + key.id.as_bytes().len() + s.der.len()) as u64
}

/// The reference: what was last put under each key and not since taken or
/// removed. Expired sessions stay until looked up, as in the store.
#[derive(Default)]
struct Model {
    map: HashMap<SessionKey, StoredSession>,
    hits: u64,
    misses: u64,
    inserts: u64,
    removals: u64,
}

impl Model {
    fn live(&self, key: &SessionKey, now: UnixTime) -> Option<&StoredSession> {
        self.map.get(key).filter(|s| !s.is_expired(now))
    }
    /// A lookup that finds `live`, as the store counts it.
    fn lookup(&mut self, key: &SessionKey, now: UnixTime, remove: bool) -> Option<StoredSession> {
        match self.live(key, now).cloned() {
            Some(s) => {
                self.hits += 1;
                if remove {
                    self.map.remove(key);
                }
                Some(s)
            }
            None => {
                self.misses += 1;
                self.map.remove(key);
                None
            }
        }
    }
}

/// Runs `ops`; `exact` says whether the store has room for everything.
fn run(ops: &[Op], capacity: usize, shards: usize, exact: bool) -> Result<(), TestCaseError> {
    let keys = key_space();
    let clock = ManualClock::new(START);
    let store = MemoryStore::builder()
        .capacity_bytes(capacity)
        .shards(shards)
        .max_session_size(MAX_SESSION_SIZE)
        .clock(clock.clone())
        .build();
    let cap = store.capacity_bytes() as u64;
    let mut model = Model::default();
    let mut puts = 0u64;
    let mut takes = 0u64;
    let mut oversize = 0u64;

    for (step, op) in ops.iter().enumerate() {
        let now = clock.now();
        match *op {
            Op::Put {
                key,
                size,
                ttl,
                tls13,
            } => {
                puts += 1;
                let k = &keys[key];
                let s = session(puts, size, now, ttl, tls13);
                let res = store.put(k, &s);
                if size > MAX_SESSION_SIZE {
                    oversize += 1;
                    // Refused, counted, and the old session (if any) stays.
                    prop_assert!(
                        matches!(res, Err(StoreError::Oversize { size: got, .. }) if got == size),
                        "step {step}: {res:?}"
                    );
                } else {
                    prop_assert!(res.is_ok(), "step {step}: {res:?}");
                    model.map.remove(k);
                    if !s.is_expired(now) {
                        model.inserts += 1;
                        model.map.insert(*k, s);
                    }
                }
            }
            Op::Get(key) | Op::Take(key) => {
                let k = &keys[key];
                let is_take = matches!(op, Op::Take(_));
                let got = if is_take {
                    store.take(k).unwrap()
                } else {
                    store.get(k).unwrap()
                };
                if let Some(s) = &got {
                    prop_assert!(!s.is_expired(now), "step {step}: expired session returned");
                }
                if exact {
                    let want = model.lookup(k, now, is_take);
                    prop_assert_eq!(&got, &want, "step {}: {:?}", step, op);
                } else {
                    match &got {
                        Some(s) => {
                            prop_assert_eq!(
                                Some(s),
                                model.live(k, now),
                                "step {}: {:?} returned a value the model does not hold",
                                step,
                                op
                            );
                            model.lookup(k, now, is_take);
                        }
                        // Evicted (or expired): the model forgets it too.
                        None => {
                            model.map.remove(k);
                            model.misses += 1;
                        }
                    }
                }
                if is_take && got.is_some() {
                    takes += 1;
                    prop_assert_eq!(store.take(k).unwrap(), None, "step {}: second take", step);
                    model.misses += 1;
                }
            }
            Op::Remove(key) => {
                let k = &keys[key];
                let removed = store.remove(k).unwrap();
                match model.map.remove(k) {
                    // A live session is there unless evicted.
                    Some(s) if !s.is_expired(now) && exact => {
                        prop_assert!(removed, "step {step}: live session not removed")
                    }
                    // Expired ones may already have been swept.
                    Some(_) => {}
                    None => prop_assert!(!removed, "step {step}: removed an absent session"),
                }
                if removed {
                    model.removals += 1;
                }
            }
            Op::Advance(secs) => clock.advance(Duration::from_secs(secs)),
            Op::Purge => {
                store.purge_expired();
                model.map.retain(|_, s| !s.is_expired(now));
            }
        }

        let st = store.stats();
        prop_assert!(st.bytes <= cap, "step {step}: {} bytes > {cap}", st.bytes);
        // The store holds at most what the model holds (expired included).
        prop_assert!(st.entries <= model.map.len() as u64, "step {step}: {st:?}");
        let all: u64 = model.map.iter().map(|(k, s)| charge(k, s)).sum();
        prop_assert!(st.bytes <= all, "step {step}: {st:?}");
        if exact {
            let live: Vec<_> = model
                .map
                .iter()
                .filter(|(_, s)| !s.is_expired(now))
                .collect();
            prop_assert!(st.entries >= live.len() as u64, "step {step}: {st:?}");
            let live_bytes: u64 = live.iter().map(|(k, s)| charge(k, s)).sum();
            prop_assert!(st.bytes >= live_bytes, "step {step}: {st:?}");
            prop_assert_eq!(
                (st.hits, st.misses, st.inserts, st.removals, st.evictions),
                (model.hits, model.misses, model.inserts, model.removals, 0),
                "step {}",
                step
            );
        }
        // Every insert is accounted for: still held, evicted, expired,
        // removed, taken, or replaced by a later put (not counted).
        let gone = st.entries + st.evictions + st.expirations + st.removals + takes;
        prop_assert!(gone <= st.inserts, "step {step}: {st:?}");
        prop_assert!(st.inserts - gone <= puts, "step {step}: {st:?}");
        prop_assert_eq!(st.oversize, oversize, "step {}", step);
    }

    // Final audit: after a purge every entry is live, so looking up every
    // key of the key space must find exactly `entries` sessions worth
    // `bytes` bytes.
    store.purge_expired();
    let before = store.stats();
    let now = clock.now();
    let (mut found, mut bytes) = (0u64, 0u64);
    for k in &keys {
        if let Some(s) = store.get(k).unwrap() {
            prop_assert_eq!(Some(&s), model.live(k, now));
            found += 1;
            bytes += charge(k, &s);
        } else if exact {
            prop_assert_eq!(model.live(k, now), None);
        }
    }
    prop_assert_eq!((before.entries, before.bytes), (found, bytes));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Room for every key at the largest size: no eviction, exact agreement.
    #[test]
    fn agrees_with_model_when_nothing_is_evicted(ops in prop::collection::vec(op(12), 1..200)) {
        run(&ops, 1 << 20, 1, true)?;
    }

    /// A budget of a few sessions: eviction happens, invariants hold.
    #[test]
    fn invariants_hold_under_eviction(
        ops in prop::collection::vec(op(12), 1..200),
        entries in 1usize..6,
        shards in prop_oneof![Just(1usize), Just(2)],
    ) {
        let capacity = entries * (ENTRY_OVERHEAD + 32 + MAX_SESSION_SIZE) * shards;
        run(&ops, capacity, shards, false)?;
    }
}

/// Eviction does happen in the second test's setting (so its invariants are
/// not vacuous), and a session that is looked up survives a pass of the
/// CLOCK hand that evicts one that is not.
#[test]
fn small_budget_evicts_and_keeps_referenced_sessions() {
    let keys = key_space();
    let clock = ManualClock::new(START);
    let per = ENTRY_OVERHEAD + 32 + 200;
    let store = MemoryStore::builder()
        .capacity_bytes(3 * per)
        .shards(1)
        .clock(clock.clone())
        .build();
    let s = |n| session(n, 200, START, 300, false);
    // keys 0, 1, 4 and 5 have 32-byte ids.
    store.put(&keys[0], &s(1)).unwrap();
    store.put(&keys[1], &s(2)).unwrap();
    store.put(&keys[4], &s(3)).unwrap();
    assert_eq!(store.get(&keys[0]).unwrap(), Some(s(1)));
    store.put(&keys[5], &s(4)).unwrap();
    assert_eq!(store.get(&keys[0]).unwrap(), Some(s(1)));
    assert_eq!(store.get(&keys[1]).unwrap(), None);
    let st = store.stats();
    assert_eq!((st.evictions, st.entries), (1, 3));
    assert!(st.bytes <= store.capacity_bytes() as u64);
}
