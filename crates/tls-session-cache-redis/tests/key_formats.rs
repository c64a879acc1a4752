//! Key names and value layouts: the compact binary names round-trip; values
//! stored by servers before them (previous-format names, seal version 1,
//! written here with raw Redis commands the way those servers did) are read
//! by a TLS 1.2 `get` only, never found or consumed by a TLS 1.3 `take`,
//! and deleted by `remove`; the fallback can be switched off; cluster slots
//! are the id's alone.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use tls_session_cache::{ManualClock, Protocol, SessionKey, SessionStore, StoredSession, decode};
use tls_session_cache_redis::naming::{DEFAULT_PREFIX, previous_redis_key, redis_key};
use tls_session_cache_redis::{BuildError, KeyFormat, RedisKey, RedisStore};

fn key(protocol: Protocol, ctx: &[u8], id: &[u8]) -> SessionKey {
    SessionKey::from_slices(protocol, ctx, id).unwrap()
}

fn previous(key: &SessionKey) -> RedisKey {
    previous_redis_key(DEFAULT_PREFIX, key)
}

#[test]
fn compact_names_round_trip() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let store = builder(&redis.url()).build().unwrap();
    let contexts: [&[u8]; 4] = [b"", b"svc", b"{a}", &[0x7d; 32]];
    let ids: [Vec<u8>; 3] = [vec![0x7b], b"}{".to_vec(), random_bytes(32)];
    let mut stored = Vec::new();
    for ctx in contexts {
        for id in &ids {
            for protocol in [Protocol::Tls12, Protocol::Tls13] {
                let k = key(protocol, ctx, id);
                let s = session(protocol, 300);
                store.put(&k, &s).unwrap();
                let name = store.redis_key(&k);
                assert_eq!(name, redis_key(DEFAULT_PREFIX, &k));
                assert!(name.starts_with(b"tls-session:{"), "{name}");
                assert_eq!(name.len(), DEFAULT_PREFIX.len() + 8 + ctx.len() + id.len());
                let raw = raw_get(&mut con, &name).expect("stored under its compact name");
                assert_eq!(raw[0], 3, "seal version 3");
                assert_eq!(raw.len(), 42 + 17 + s.der.len());
                assert!(!raw_exists(&mut con, &previous(&k)));
                stored.push((k, s));
            }
        }
    }
    // Every (protocol, context, id) has a name of its own.
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize as usize, stored.len());
    for (k, s) in &stored {
        match k.protocol {
            Protocol::Tls12 => assert_eq!(store.get(k).unwrap().as_ref(), Some(s)),
            Protocol::Tls13 => assert_eq!(store.take(k).unwrap().as_ref(), Some(s)),
        }
    }
    for (k, _) in &stored {
        let removed = store.remove(k).unwrap();
        assert_eq!(removed, k.protocol == Protocol::Tls12, "{k}");
    }
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 0);
    // No TLS 1.2 get found anything under a previous-format name.
    let rs = store.redis_stats();
    assert_eq!(rs.fallback_hits, 0);
    assert_eq!(
        rs.fallback_lookups,
        stored.len() as u64 / 2,
        "one MGET per TLS 1.2 get"
    );
}

#[test]
fn a_previous_format_tls12_session_is_read_by_get_and_deleted_by_remove() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let store = builder(&redis.url()).build().unwrap();
    let k = random_key(b"svc");
    let s = session(Protocol::Tls12, 300);
    put_previous(&mut con, &k, &s);

    assert_eq!(store.get(&k).unwrap(), Some(s.clone()));
    assert_eq!(store.get(&k).unwrap(), Some(s.clone()), "get leaves it");
    assert!(raw_exists(&mut con, &previous(&k)));
    let rs = store.redis_stats();
    assert_eq!((rs.fallback_lookups, rs.fallback_hits), (2, 2));
    assert_eq!(store.stats().hits, 2);

    // A newer session under the compact name wins over the previous one.
    let newer = session(Protocol::Tls12, 300);
    store.put(&k, &newer).unwrap();
    assert_eq!(store.get(&k).unwrap(), Some(newer));
    assert_eq!(store.redis_stats().fallback_hits, 2);

    // remove deletes both names.
    assert!(store.remove(&k).unwrap());
    assert!(!raw_exists(&mut con, &previous(&k)));
    assert!(!raw_exists(&mut con, &store.redis_key(&k)));
    assert_eq!(store.get(&k).unwrap(), None);
    // Only the previous-format name left: remove still finds it.
    put_previous(&mut con, &k, &s);
    assert!(store.remove(&k).unwrap());
    assert!(!raw_exists(&mut con, &previous(&k)));
    assert_eq!(store.stats().errors, 0);
}

#[test]
fn a_previous_format_value_is_not_found_or_consumed_by_a_tls13_take() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let store = builder(&redis.url()).build().unwrap();

    // A TLS 1.2 session an older server stored: its name has no protocol.
    let id = random_bytes(32);
    let k12 = key(Protocol::Tls12, b"svc", &id);
    let k13 = key(Protocol::Tls13, b"svc", &id);
    assert_eq!(
        previous(&k12),
        previous(&k13),
        "one name for both protocols"
    );
    let s12 = session(Protocol::Tls12, 300);
    put_previous(&mut con, &k12, &s12);
    // A TLS 1.3 ClientHello offering that session id as its ticket.
    assert_eq!(store.take(&k13).unwrap(), None);
    assert_eq!(store.get(&k13).unwrap(), None);
    assert!(raw_exists(&mut con, &previous(&k12)), "not consumed");
    assert_eq!(
        store.redis_stats().fallback_lookups,
        0,
        "TLS 1.3 never falls back"
    );
    assert_eq!(
        store.get(&k12).unwrap(),
        Some(s12),
        "TLS 1.2 still resumes it"
    );
    // Nor does a TLS 1.3 remove delete it.
    assert!(!store.remove(&k13).unwrap());
    assert!(raw_exists(&mut con, &previous(&k12)));

    // A TLS 1.3 ticket an older server stored: not found by take (a full
    // handshake during the upgrade), and refused by a TLS 1.2 get of the
    // same id — a miss, left in place for the older servers.
    let id = random_bytes(32);
    let t12 = key(Protocol::Tls12, b"svc", &id);
    let t13 = key(Protocol::Tls13, b"svc", &id);
    put_previous(&mut con, &t13, &session(Protocol::Tls13, 300));
    assert_eq!(store.take(&t13).unwrap(), None);
    assert_eq!(store.get(&t12).unwrap(), None);
    assert!(raw_exists(&mut con, &previous(&t13)));
    let rs = store.redis_stats();
    assert_eq!(rs.fallback_refused, 1);
    assert_eq!(rs.corrupt, 0, "a stranger, not a corruption");
}

#[test]
fn an_expired_previous_format_session_is_a_miss_and_deleted() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let t = now();
    let clock = ManualClock::new(t);
    let store = builder(&redis.url()).clock(clock.clone()).build().unwrap();
    let k = random_key(b"svc");
    put_previous(
        &mut con,
        &k,
        &StoredSession::new(random_bytes(100), t, t + 100, Protocol::Tls12),
    );
    clock.advance(Duration::from_secs(100));
    assert_eq!(store.get(&k).unwrap(), None);
    assert_eq!(store.stats().expirations, 1);
    assert!(!raw_exists(&mut con, &previous(&k)));
}

#[test]
fn with_the_fallback_off_previous_names_are_ignored() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let store = builder(&redis.url())
        .read_previous_format(false)
        .build()
        .unwrap();
    let k = random_key(b"svc");
    put_previous(&mut con, &k, &session(Protocol::Tls12, 300));
    assert_eq!(store.get(&k).unwrap(), None);
    assert!(!store.remove(&k).unwrap(), "not deleted either");
    assert!(raw_exists(&mut con, &previous(&k)));
    let rs = store.redis_stats();
    assert_eq!((rs.fallback_lookups, rs.fallback_hits), (0, 0));

    // Writing the previous format without reading it does not build.
    let err = builder(&redis.url())
        .read_previous_format(false)
        .write_format(KeyFormat::Previous)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::PreviousFormatUnread), "{err}");
}

#[test]
fn the_previous_write_format_is_what_older_servers_read() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let upgrading = builder(&redis.url())
        .write_format(KeyFormat::Previous)
        .build()
        .unwrap();
    let upgraded = builder(&redis.url()).build().unwrap();

    // A reusable TLS 1.2 session: under its previous-format name, seal
    // version 1 over the full envelope — an older server opens it.
    let k = random_key(b"svc");
    let s = session(Protocol::Tls12, 300);
    upgrading.put(&k, &s).unwrap();
    assert!(!raw_exists(&mut con, &upgrading.redis_key(&k)));
    let name = previous(&k);
    let raw = raw_get(&mut con, &name).unwrap();
    let envelope = open_previous(SEAL_KEY, &name, &raw).expect("opens the old way");
    assert_eq!(decode(&envelope).unwrap(), (k, s.clone()));
    // Both kinds of upgraded server read it (the fallback).
    assert_eq!(upgrading.get(&k).unwrap(), Some(s.clone()));
    assert_eq!(upgraded.get(&k).unwrap(), Some(s));

    // A TLS 1.3 ticket still goes under its compact name: a name without a
    // protocol is never written for a session that is taken.
    let k13 = random_key13(b"svc");
    let s13 = session(Protocol::Tls13, 300);
    upgrading.put(&k13, &s13).unwrap();
    assert!(!raw_exists(&mut con, &previous(&k13)));
    assert_eq!(upgraded.take(&k13).unwrap(), Some(s13));
}

#[test]
fn write_behind_sees_and_withdraws_both_names() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let store = builder(&redis.url())
        .write_format(KeyFormat::Previous)
        .write_behind(16)
        .build()
        .unwrap();
    let k = random_key(b"svc");
    let s = session(Protocol::Tls12, 300);
    store.put(&k, &s).unwrap();
    // Queued or sent, the get finds it.
    assert_eq!(store.get(&k).unwrap(), Some(s));
    assert!(store.remove(&k).unwrap());
    assert!(store.flush(Duration::from_secs(10)));
    assert!(!raw_exists(&mut con, &previous(&k)));
    assert_eq!(store.get(&k).unwrap(), None);
}

/// The node of `cluster` that owns `name`'s slot, by asking each.
fn owner(cons: &mut [redis::Connection], name: &[u8]) -> usize {
    let holders: Vec<usize> = (0..cons.len())
        .filter(|&i| {
            redis::cmd("GET")
                .arg(name)
                .query::<Option<Vec<u8>>>(&mut cons[i])
                .is_ok()
        })
        .collect();
    assert_eq!(holders.len(), 1);
    holders[0]
}

#[test]
fn cluster_slots_are_the_ids_alone_and_the_fallback_works_there() {
    let cluster = cluster();
    let store = builder(&cluster.url()).build().unwrap();
    let mut cons: Vec<redis::Connection> = cluster
        .nodes()
        .iter()
        .map(|n| n.connection().unwrap())
        .collect();
    let keyslot = |con: &mut redis::Connection, name: &RedisKey| -> i64 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(name)
            .query(con)
            .unwrap()
    };

    // The same id in every context and protocol: one slot.
    let mut per_id = Vec::new();
    for _ in 0..50 {
        let id = random_bytes(32);
        let slots: HashSet<i64> = [&b""[..], b"svc", b"{x}", &[0x7b; 32]]
            .iter()
            .flat_map(|ctx| [Protocol::Tls12, Protocol::Tls13].map(|p| key(p, ctx, &id)))
            .map(|k| keyslot(&mut cons[0], &store.redis_key(&k)))
            .collect();
        assert_eq!(slots.len(), 1, "one id, one slot");
        per_id.extend(slots);
    }
    // Different ids spread: over many slots, and over every shard.
    let distinct: HashSet<&i64> = per_id.iter().collect();
    assert!(distinct.len() >= 45, "50 ids in {} slots", distinct.len());
    let mut shards: HashMap<usize, usize> = HashMap::new();
    for _ in 0..60 {
        let k = random_key(b"svc");
        store.put(&k, &session(Protocol::Tls12, 300)).unwrap();
        *shards
            .entry(owner(&mut cons, &store.redis_key(&k)))
            .or_default() += 1;
    }
    assert_eq!(shards.len(), 3, "sessions per shard: {shards:?}");

    // The fallback on a cluster: a second GET after a miss, on the shard of
    // the previous name; remove deletes both names, in their own slots.
    let k = random_key(b"svc");
    let s = session(Protocol::Tls12, 300);
    let old = owner(&mut cons, &previous(&k));
    put_previous(&mut cons[old], &k, &s);
    assert_eq!(store.get(&k).unwrap(), Some(s.clone()));
    let rs = store.redis_stats();
    assert_eq!((rs.fallback_lookups, rs.fallback_hits), (1, 1));
    store.put(&k, &s).unwrap();
    let new = owner(&mut cons, &store.redis_key(&k));
    assert!(store.remove(&k).unwrap());
    assert!(!raw_exists(&mut cons[old], &previous(&k)));
    assert!(!raw_exists(&mut cons[new], &store.redis_key(&k)));
    // A TLS 1.3 take never asks for the previous name.
    let k13 = random_key13(b"svc");
    assert_eq!(store.take(&k13).unwrap(), None);
    assert_eq!(
        store.redis_stats().fallback_lookups,
        1,
        "only the TLS 1.2 miss above"
    );
    assert_eq!(store.stats().errors, 0);
}

#[test]
fn stores_are_built_with_the_fallback_on_by_default() {
    // A store built without a word about formats reads previous names.
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let store = RedisStore::builder(&redis.url())
        .seal_keys(ring(0x42))
        .timeouts(TEST_TIMEOUT)
        .build()
        .unwrap();
    let k = random_key(b"svc");
    let s = session(Protocol::Tls12, 300);
    put_previous(&mut con, &k, &s);
    assert_eq!(store.get(&k).unwrap(), Some(s));
}
