//! Threads racing on one [`MemoryStore`]: `take` hands each session to
//! exactly one caller, and mixed traffic under a small budget never breaks
//! the byte bound or returns another key's session.

use std::collections::HashSet;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use tls_session_cache::memory::ENTRY_OVERHEAD;
use tls_session_cache::{
    ManualClock, MemoryStore, Protocol, SessionKey, SessionStore, StoredSession,
};

const THREADS: usize = 8;

fn key(n: u32) -> SessionKey {
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id[4..8].copy_from_slice(&n.wrapping_mul(0x9E37_79B9).to_le_bytes());
    SessionKey::from_slices(Protocol::Tls13, b"race", &id).unwrap()
}

/// A session whose bytes name its key and a version.
fn session(n: u32, version: u32, size: usize) -> StoredSession {
    let mut der = vec![0xA5; size.max(8)];
    der[..4].copy_from_slice(&n.to_be_bytes());
    der[4..8].copy_from_slice(&version.to_be_bytes());
    StoredSession::new(der, 1_000, 1_000 + 300, Protocol::Tls13)
}

fn owner(s: &StoredSession) -> u32 {
    u32::from_be_bytes(s.der[..4].try_into().unwrap())
}

#[test]
fn racing_takes_hand_out_each_session_exactly_once() {
    const KEYS: u32 = 10_000;
    let store = MemoryStore::builder()
        .capacity_bytes(64 << 20)
        .clock(ManualClock::new(1_000))
        .build();
    for n in 0..KEYS {
        store.put(&key(n), &session(n, 0, 140)).unwrap();
    }
    assert_eq!(store.stats().entries, u64::from(KEYS));

    let start = Barrier::new(THREADS);
    let won: Vec<Vec<u32>> = thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (store, start) = (&store, &start);
                s.spawn(move || {
                    let mut mine = Vec::new();
                    start.wait();
                    // Half the threads walk up, half walk down, each from its
                    // own offset, so every key is contended from both ends.
                    let offset = t as u32 * (KEYS / THREADS as u32);
                    for i in 0..KEYS {
                        let n = if t % 2 == 0 {
                            (offset + i) % KEYS
                        } else {
                            (offset + KEYS - i) % KEYS
                        };
                        if let Some(got) = store.take(&key(n)).unwrap() {
                            assert_eq!(got, session(n, 0, 140), "key {n}: wrong session");
                            mine.push(n);
                        }
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let total: usize = won.iter().map(Vec::len).sum();
    let distinct: HashSet<u32> = won.iter().flatten().copied().collect();
    assert_eq!(total, KEYS as usize, "sessions handed out");
    assert_eq!(distinct.len(), KEYS as usize, "some key was taken twice");
    let st = store.stats();
    assert_eq!(st.hits, u64::from(KEYS));
    assert_eq!(st.misses, u64::from(KEYS) * (THREADS as u64 - 1));
    assert_eq!((st.entries, st.bytes), (0, 0));
}

#[test]
fn mixed_traffic_respects_the_budget_and_the_keys() {
    const KEYS: u32 = 4_000;
    const WORKERS: usize = 4;
    const OPS: u32 = 40_000;
    // Room for about 300 of the 4 000 keys: constant eviction.
    let capacity = 300 * (ENTRY_OVERHEAD + 32 + 140);
    let store = MemoryStore::builder()
        .capacity_bytes(capacity)
        .shards(4)
        .clock(ManualClock::new(1_000))
        .build();
    let cap = store.capacity_bytes() as u64;
    let done = AtomicBool::new(false);
    let start = Barrier::new(WORKERS + 1);

    let (max_seen, found) = thread::scope(|s| {
        // A watcher samples the stats while the workers run. Each shard is
        // bounded on its own, so even a snapshot taken shard by shard is.
        let watcher = s.spawn(|| {
            start.wait();
            let mut max = 0;
            let mut samples = 0u64;
            while !done.load(Ordering::Acquire) || samples == 0 {
                let st = store.stats();
                assert!(st.bytes <= cap, "{} bytes > capacity {cap}", st.bytes);
                max = max.max(st.bytes);
                samples += 1;
                thread::yield_now();
            }
            max
        });
        let workers: Vec<_> = (0..WORKERS as u32)
            .map(|t| {
                let (store, start) = (&store, &start);
                s.spawn(move || {
                    start.wait();
                    let mut found = 0u32;
                    // A small xorshift generator: reproducible per thread.
                    let mut x = 0x2545_F491_u32 ^ (t + 1).wrapping_mul(0x9E37_79B9);
                    for i in 0..OPS {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        let n = x % KEYS;
                        let k = key(n);
                        let got = match (x >> 20) % 10 {
                            0..=3 => {
                                let size = 100 + (x as usize >> 8) % 120;
                                store.put(&k, &session(n, i, size)).unwrap();
                                None
                            }
                            4..=7 => store.get(&k).unwrap(),
                            8 => store.take(&k).unwrap(),
                            _ => {
                                store.remove(&k).unwrap();
                                None
                            }
                        };
                        if let Some(s) = got {
                            assert_eq!(owner(&s), n, "another key's session returned");
                            found += 1;
                        }
                    }
                    found
                })
            })
            .collect();
        let found: u32 = workers.into_iter().map(|h| h.join().unwrap()).sum();
        done.store(true, Ordering::Release);
        (watcher.join().unwrap(), found)
    });

    let st = store.stats();
    assert!(st.bytes <= cap, "{st:?}");
    assert!(max_seen <= cap);
    assert!(
        st.evictions > 0,
        "the budget never forced an eviction: {st:?}"
    );
    assert!(found > 0, "no lookup ever hit: {st:?}");
    assert_eq!(st.hits, u64::from(found));
    // Every entry left is findable and accounts for the bytes charged.
    let (mut entries, mut bytes) = (0, 0);
    for n in 0..KEYS {
        if let Some(s) = store.get(&key(n)).unwrap() {
            assert_eq!(owner(&s), n);
            entries += 1;
            bytes += (ENTRY_OVERHEAD + 32 + s.der.len()) as u64;
        }
    }
    assert_eq!((st.entries, st.bytes), (entries, bytes));
}
