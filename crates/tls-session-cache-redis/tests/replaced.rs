//! Values replaced in Redis by someone who can write to it, against a real
//! `redis-server`: another session's value, an old value of the same name
//! written back after this server consumed or removed it, a value sealed
//! under a retired key. None resumes; each is counted.

mod common;

use common::*;
use tls_session_cache::{Protocol, SessionStore};
use tls_session_cache_redis::{KeyRing, RedisStore};

fn raw_set(con: &mut redis::Connection, name: &[u8], value: &[u8]) {
    let _: () = redis::cmd("SET")
        .arg(name)
        .arg(value)
        .arg("EX")
        .arg(300)
        .query(con)
        .unwrap();
}

#[test]
fn another_sessions_value_under_a_name_is_not_resumed_and_counted_corrupt() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let store = builder(&redis.url()).build().unwrap();
    for protocol in [Protocol::Tls12, Protocol::Tls13] {
        let (a, b) = match protocol {
            Protocol::Tls12 => (random_key(b"svc"), random_key(b"svc")),
            _ => (random_key13(b"svc"), random_key13(b"svc")),
        };
        store.put(&a, &session(protocol, 300)).unwrap();
        store.put(&b, &session(protocol, 300)).unwrap();
        let theirs = raw_get(&mut con, &store.redis_key(&b)).unwrap();
        raw_set(&mut con, &store.redis_key(&a), &theirs);
        let before = store.redis_stats().corrupt;
        let found = match protocol {
            Protocol::Tls12 => store.get(&a).unwrap(),
            _ => store.take(&a).unwrap(),
        };
        assert!(found.is_none(), "{protocol:?}: a moved value opened");
        assert_eq!(store.redis_stats().corrupt, before + 1);
        // The value still opens under its own name.
        assert!(store.get(&b).unwrap().is_some());
    }
}

#[test]
fn a_consumed_ticket_written_back_does_not_resume_again_on_this_server() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let store = builder(&redis.url()).build().unwrap();
    let key = random_key13(b"svc");
    store.put(&key, &session(Protocol::Tls13, 300)).unwrap();
    let name = store.redis_key(&key);
    let old = raw_get(&mut con, &name).unwrap();
    assert!(store.take(&key).unwrap().is_some(), "first use resumes");
    assert!(!raw_exists(&mut con, &name), "GETDEL consumed it");
    // A Redis writer restores the bytes it read before.
    raw_set(&mut con, &name, &old);
    assert!(store.take(&key).unwrap().is_none(), "the replay resumed");
    assert_eq!(store.redis_stats().replays, 1);
    raw_set(&mut con, &name, &old);
    assert!(store.get(&key).unwrap().is_none());
    assert_eq!(store.redis_stats().replays, 2);
}

#[test]
fn a_restored_ticket_still_resumes_once_on_a_server_that_did_not_consume_it() {
    // The limit stated in docs/security.md: the memory is per server.
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let first = builder(&redis.url()).build().unwrap();
    let other = builder(&redis.url()).build().unwrap();
    let key = random_key13(b"svc");
    first.put(&key, &session(Protocol::Tls13, 300)).unwrap();
    let name = first.redis_key(&key);
    let old = raw_get(&mut con, &name).unwrap();
    assert!(first.take(&key).unwrap().is_some());
    raw_set(&mut con, &name, &old);
    assert!(other.take(&key).unwrap().is_some(), "documented gap");
    raw_set(&mut con, &name, &old);
    assert!(other.take(&key).unwrap().is_none(), "but only once there");
    assert_eq!(other.redis_stats().replays, 1);
}

#[test]
fn a_removed_session_written_back_is_not_resumed_until_this_server_stores_it_again() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let store = builder(&redis.url()).build().unwrap();
    let key = random_key(b"svc");
    let s = session(Protocol::Tls12, 300);
    store.put(&key, &s).unwrap();
    let name = store.redis_key(&key);
    let old = raw_get(&mut con, &name).unwrap();
    assert!(store.remove(&key).unwrap());
    raw_set(&mut con, &name, &old);
    assert!(
        store.get(&key).unwrap().is_none(),
        "a removed session resumed"
    );
    assert_eq!(store.redis_stats().replays, 1);
    // This server's own put under the name is not a replay.
    store.put(&key, &s).unwrap();
    assert!(store.get(&key).unwrap().is_some());
}

#[test]
fn a_value_sealed_under_a_retired_key_is_not_resumed_and_counted() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let old_ring = || ring(0x11);
    // A ring whose key id differs from the old one's (ids are one byte).
    let new_bytes = (0x20u8..)
        .find(|b| KeyRing::new([*b; 32]).current_key_id() != old_ring().current_key_id())
        .unwrap();
    let old_store = RedisStore::builder(&redis.url())
        .seal_keys(old_ring())
        .timeouts(TEST_TIMEOUT)
        .build()
        .unwrap();
    let key = random_key(b"svc");
    old_store.put(&key, &session(Protocol::Tls12, 300)).unwrap();
    // During the rotation the old key is still in the ring: it opens.
    let rotating = RedisStore::builder(&redis.url())
        .seal_keys(KeyRing::new([new_bytes; 32]).with_older([0x11; 32]))
        .timeouts(TEST_TIMEOUT)
        .build()
        .unwrap();
    assert!(rotating.get(&key).unwrap().is_some());
    // Once retired, it does not; a writer copying an old value back gains
    // nothing either.
    let retired = RedisStore::builder(&redis.url())
        .seal_keys(KeyRing::new([new_bytes; 32]))
        .timeouts(TEST_TIMEOUT)
        .build()
        .unwrap();
    assert!(retired.get(&key).unwrap().is_none());
    assert_eq!(retired.redis_stats().unknown_key, 1);
    let v = raw_get(&mut con, &retired.redis_key(&key)).unwrap();
    raw_set(&mut con, &retired.redis_key(&key), &v);
    assert!(retired.get(&key).unwrap().is_none());
    assert_eq!(retired.redis_stats().unknown_key, 2);
}

#[test]
fn legacy_seal_writes_version_2_and_every_version_opens_during_a_rolling_upgrade() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let legacy = builder(&redis.url()).legacy_seal(true).build().unwrap();
    let current = builder(&redis.url()).build().unwrap();
    let (k2, k3) = (random_key(b"svc"), random_key(b"svc"));
    legacy.put(&k2, &session(Protocol::Tls12, 300)).unwrap();
    current.put(&k3, &session(Protocol::Tls12, 300)).unwrap();
    assert_eq!(raw_get(&mut con, &legacy.redis_key(&k2)).unwrap()[0], 2);
    assert_eq!(raw_get(&mut con, &current.redis_key(&k3)).unwrap()[0], 3);
    for store in [&legacy, &current] {
        assert!(store.get(&k2).unwrap().is_some());
        assert!(store.get(&k3).unwrap().is_some());
    }
}

#[test]
fn a_writer_cannot_make_every_lookup_log_a_warning() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let store = builder(&redis.url()).build().unwrap();
    for _ in 0..20 {
        let key = random_key(b"svc");
        raw_set(
            &mut con,
            &store.redis_key(&key),
            b"\x03garbage written by someone else",
        );
        assert!(store.get(&key).unwrap().is_none());
    }
    let stats = store.redis_stats();
    assert_eq!(stats.corrupt, 20, "every one counted");
    // One warning logged (the limiter's interval is 10 s), 19 suppressed.
    assert_eq!(stats.suppressed_warnings, 19);
}
