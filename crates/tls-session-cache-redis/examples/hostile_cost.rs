//! What issue 15's fixes cost and buy, measured against a real
//! `redis-server` (and the test kit's fake one) on this machine:
//!
//! * `get` and `put` round trips, seal version 3 (per-value keys) against
//!   version 2 (`legacy_seal`), alternating rounds, medians;
//! * a 64 MiB value under a session's name, and a Redis dripping one byte
//!   every 30 ms, against a 50 ms budget: how long a lookup takes.
//!
//! `cargo run --release -p tls-session-cache-redis --example hostile_cost`
//! Numbers go to docs/performance.md by hand; nothing here is asserted.

use std::time::{Duration, Instant};

use tls_session_cache::{Protocol, SessionKey, SessionStore, StoredSession};
use tls_session_cache_redis::{KeyRing, RedisStore};
use tls_session_cache_testkit::{FakeRedis, RedisServer, Reply, bulk};

fn key(i: u32) -> SessionKey {
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&i.to_be_bytes());
    SessionKey::from_slices(Protocol::Tls12, b"bench", &id).expect("valid key")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let redis = RedisServer::start()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let session = StoredSession::new(vec![7u8; 131], now, now + 300, Protocol::Tls12);
    let n = 5_000u32;
    let mut rows: Vec<(&str, Vec<f64>, Vec<f64>)> =
        vec![("v2", vec![], vec![]), ("v3", vec![], vec![])];
    for round in 0..7 {
        for (legacy, row) in [(true, 0usize), (false, 1)] {
            let store = RedisStore::builder(&redis.url())
                .seal_keys(KeyRing::new([1; 32]))
                .legacy_seal(legacy)
                .timeouts(Duration::from_secs(1))
                .build()?;
            let start = Instant::now();
            for i in 0..n {
                store.put(&key(round * n + i), &session)?;
            }
            let put = start.elapsed().as_nanos() as f64 / f64::from(n);
            let start = Instant::now();
            for i in 0..n {
                assert!(store.get(&key(round * n + i))?.is_some());
            }
            let get = start.elapsed().as_nanos() as f64 / f64::from(n);
            if round > 0 {
                rows[row].1.push(put);
                rows[row].2.push(get);
            }
        }
    }
    for (name, put, get) in rows {
        println!(
            "seal {name}: put {:.1} µs, get {:.1} µs (median of 6 rounds of {n})",
            median(put) / 1e3,
            median(get) / 1e3
        );
    }

    let budget = Duration::from_millis(50);
    let k = key(u32::MAX);
    let mut con = redis.connection()?;
    for wait in [budget, Duration::from_millis(500)] {
        let store = RedisStore::builder(&redis.url())
            .seal_keys(KeyRing::new([1; 32]))
            .timeouts(wait)
            .build()?;
        let _: () = redis::cmd("SET")
            .arg(store.redis_key(&k).as_bytes())
            .arg(vec![1u8; 64 << 20])
            .query(&mut con)?;
        let mut times = vec![];
        for _ in 0..5 {
            let start = Instant::now();
            let _ = store.get(&k);
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "64 MiB value, {wait:?} budget: lookups took {times:.1?} ms; oversize_replies {}, timeouts {}",
            store.redis_stats().oversize_replies,
            store.redis_stats().timeouts
        );
    }

    let fake = FakeRedis::start(|_: &[Vec<u8>]| Reply::Drip {
        bytes: bulk(&[b'v'; 200]),
        every: Duration::from_millis(30),
    })?;
    let store = RedisStore::builder(&fake.url())
        .seal_keys(KeyRing::new([1; 32]))
        .timeouts(budget)
        .build()?;
    let mut times = vec![];
    for _ in 0..5 {
        let start = Instant::now();
        let _ = store.get(&k);
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "drip 1 byte / 30 ms, 50 ms budget: lookups took {times:.1?} ms; timeouts {}, circuit {:?}",
        store.redis_stats().timeouts,
        store.circuit_state()
    );
    Ok(())
}
