//! The tiered store: TLS 1.2 reads through a local tier; TLS 1.3 `take`
//! always goes to Redis.

mod common;

use common::*;
use tls_session_cache::{MemoryStore, Protocol, SessionStore};
use tls_session_cache_redis::TieredStore;

#[test]
fn tls12_get_reads_through_then_hits_locally() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    // Server A stores; server B (tiered) finds it.
    let a = builder(&redis.url()).build().unwrap();
    let b = TieredStore::new(
        MemoryStore::with_capacity_bytes(1 << 20),
        builder(&redis.url()).build().unwrap(),
    );
    let key = random_key(b"svc");
    let s = session(Protocol::Tls12, 300);
    a.put(&key, &s).unwrap();

    assert_eq!(b.get(&key).unwrap(), Some(s.clone()));
    assert_eq!(b.local_hits(), 0);
    assert_eq!(b.remote().stats().hits, 1);

    // Gone from Redis: a local hit proves the second read never asked it.
    let _: i64 = redis::cmd("DEL")
        .arg(a.redis_key(&key))
        .query(&mut con)
        .unwrap();
    assert_eq!(b.get(&key).unwrap(), Some(s));
    assert_eq!(b.local_hits(), 1);
    assert_eq!(b.remote().stats().hits, 1, "Redis was not asked again");
    assert_eq!(b.stats().hits, 2);

    // remove clears both tiers.
    b.put(&key, &session(Protocol::Tls12, 300)).unwrap();
    assert!(b.remove(&key).unwrap());
    assert_eq!(b.local().get(&key).unwrap(), None);
    assert!(!raw_exists(&mut con, &a.redis_key(&key)));
}

#[test]
fn tls13_take_always_goes_to_redis() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let a = TieredStore::new(
        MemoryStore::with_capacity_bytes(1 << 20),
        builder(&redis.url()).build().unwrap(),
    );
    let b = TieredStore::new(
        MemoryStore::with_capacity_bytes(1 << 20),
        builder(&redis.url()).build().unwrap(),
    );
    let key = random_key13(b"svc");
    let s = session(Protocol::Tls13, 300);
    a.put(&key, &s).unwrap();
    assert_eq!(
        a.local().get(&key).unwrap(),
        None,
        "single-use sessions stay out of the local tier"
    );
    let rkey = a.remote().redis_key(&key);
    assert!(raw_exists(&mut con, &rkey));

    // Server B takes it: Redis no longer has it, and A cannot take it again.
    assert_eq!(b.take(&key).unwrap(), Some(s));
    assert!(!raw_exists(&mut con, &rkey));
    assert_eq!(a.take(&key).unwrap(), None);
    assert_eq!(b.take(&key).unwrap(), None);

    // Even a single-use session that somehow sits in the local tier is
    // taken from Redis and dropped locally.
    let key2 = random_key13(b"svc");
    let s2 = session(Protocol::Tls13, 300);
    a.local().put(&key2, &s2).unwrap();
    assert_eq!(a.take(&key2).unwrap(), None, "not in Redis: a miss");
    assert_eq!(a.local().get(&key2).unwrap(), None, "local copy dropped");
}
