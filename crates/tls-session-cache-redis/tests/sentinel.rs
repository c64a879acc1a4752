//! Redis Sentinel (`redis+sentinel://S1:P1,…/NAME`): the store finds the
//! master through the sentinels, and after the master is killed and
//! Sentinel promotes the replica, new sessions are stored and found on the
//! new master — with every call returning within its budget throughout.
//! How long the store could not store sessions is printed, not asserted.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tls_session_cache::{Protocol, SessionStore};
use tls_session_cache_redis::RedisStore;
use tls_session_cache_testkit::RedisSentinel;

fn sentinel_set(sentinels: usize) -> RedisSentinel {
    RedisSentinel::start(sentinels, &[], None)
        .unwrap_or_else(|e| panic!("cannot start Sentinel, master and replica: {e}"))
}

/// Puts and gets a fresh session; whether both worked.
fn round_trip(store: &RedisStore) -> bool {
    let key = random_key(b"svc");
    let s = session(Protocol::Tls12, 300);
    store.put(&key, &s).is_ok() && store.get(&key).ok().flatten() == Some(s)
}

#[test]
fn the_store_follows_a_failover() {
    let mut set = sentinel_set(1);
    let budget = Duration::from_millis(300);
    let store = RedisStore::builder(&set.url())
        .seal_keys(ring(3))
        .timeouts(budget)
        .build()
        .unwrap();
    assert!(round_trip(&store), "no session stored through Sentinel");
    assert_eq!(store.sentinel_master(), Some(set.master().addr()));
    // A session stored before the failover reaches the replica.
    let early = random_key(b"svc");
    store.put(&early, &session(Protocol::Tls12, 300)).unwrap();

    set.kill_master().unwrap();
    let killed = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut calls = 0u32;
    let recovered = loop {
        let started = Instant::now();
        let ok = round_trip(&store);
        slowest = slowest.max(started.elapsed());
        calls += 1;
        if ok {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "no session stored 60 s after the master died; master {:?}, stats {:?}",
            store.sentinel_master(),
            store.redis_stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let promoted = set.wait_failover().unwrap();
    println!(
        "sentinel failover: sessions stored again {recovered:?} after the master was killed \
         ({calls} round trips, slowest {slowest:?}, budget {budget:?} per call)"
    );
    // Two calls per round trip, each within its budget (plus scheduling).
    assert!(slowest < budget * 2 * 3, "a round trip took {slowest:?}");
    let _ = promoted;
    assert_eq!(store.sentinel_master(), Some(set.replica().addr()));
    assert!(store.redis_stats().master_changes >= 1);
    assert!(round_trip(&store));
    // Replicated before the kill (asynchronous replication: usually there).
    println!(
        "session stored before the failover found after it: {}",
        store.get(&early).ok().flatten().is_some()
    );
}

#[test]
fn an_unreachable_first_sentinel_is_skipped() {
    let set = sentinel_set(1);
    // A port nothing listens on, first in the list.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!(
        "redis+sentinel://{dead},{}/{}",
        set.sentinels()[0].addr(),
        set.master_name()
    );
    let store = builder(&url).build().unwrap();
    assert!(round_trip(&store));
    assert_eq!(store.sentinel_master(), Some(set.master().addr()));
}

#[test]
fn an_unknown_master_name_is_a_miss_not_a_hang() {
    let set = sentinel_set(1);
    let url = format!(
        "redis+sentinel://{}/nosuchmaster",
        set.sentinels()[0].addr()
    );
    let store = builder(&url).build().unwrap();
    assert!(store.get(&random_key(b"svc")).is_err());
    assert_eq!(store.sentinel_master(), None);
}
