//! Redis Cluster: sessions spread over three masters; one master dies and
//! the sessions on the other two still resume.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tls_session_cache::{Protocol, SessionKey, SessionStore, StoredSession};
use tls_session_cache_redis::{CircuitState, RedisKey, RedisStore};
use tls_session_cache_testkit::RedisCluster;

#[test]
fn sessions_spread_over_shards_and_survive_a_dead_master() {
    const SESSIONS: usize = 150;
    let mut cluster = cluster();
    // A back-off longer than the test: the dead master's circuit stays open.
    let store = builder(&cluster.url())
        .circuit_breaker(5, Duration::from_secs(600), Duration::from_secs(600))
        .build()
        .unwrap();
    store.ping().unwrap();

    let sessions: Vec<(SessionKey, StoredSession)> = (0..SESSIONS)
        .map(|_| (random_key(b"one-service"), session(Protocol::Tls12, 300)))
        .collect();
    for (k, s) in &sessions {
        store.put(k, s).unwrap();
    }

    // Which node holds each session (a node answers EXISTS only for its slots).
    let mut cons: Vec<redis::Connection> = cluster
        .nodes()
        .iter()
        .map(|n| n.connection().unwrap())
        .collect();
    let mut owner = Vec::with_capacity(SESSIONS);
    for (k, _) in &sessions {
        let rkey = store.redis_key(k);
        let mut holders = Vec::new();
        for (i, c) in cons.iter_mut().enumerate() {
            if let Ok(1) = redis::cmd("EXISTS").arg(&rkey).query::<i64>(c) {
                holders.push(i);
            }
        }
        assert_eq!(holders.len(), 1, "{rkey} held by {holders:?}");
        owner.push(holders[0]);

        // The hash tag: the slot is the id's alone, not the context's.
        let elsewhere =
            SessionKey::from_slices(Protocol::Tls13, b"other", k.id.as_bytes()).unwrap();
        let slot = |name: &RedisKey, con: &mut redis::Connection| -> i64 {
            redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(name)
                .query(con)
                .unwrap()
        };
        assert_eq!(
            slot(&rkey, &mut cons[0]),
            slot(&store.redis_key(&elsewhere), &mut cons[0])
        );
    }
    let mut sizes = Vec::new();
    for (i, c) in cons.iter_mut().enumerate() {
        let dbsize: i64 = redis::cmd("DBSIZE").query(c).unwrap();
        assert_eq!(dbsize as usize, owner.iter().filter(|&&o| o == i).count());
        assert!(dbsize > 0, "shard {i} holds no session");
        sizes.push(dbsize);
    }
    println!("sessions per shard: {sizes:?}");
    drop(cons);

    // Kill master 0. Sessions on masters 1 and 2 still resume.
    cluster.kill(0).unwrap();
    for ((k, s), &o) in sessions.iter().zip(&owner) {
        if o != 0 {
            assert_eq!(
                store.get(k).unwrap().as_ref(),
                Some(s),
                "session on live shard {o}"
            );
        }
    }
    // Sessions on the dead shard: every lookup returns (a miss or an error).
    let mut slowest = Duration::ZERO;
    let mut dead = 0;
    for ((k, _), &o) in sessions.iter().zip(&owner) {
        if o == 0 {
            let started = Instant::now();
            assert!(!matches!(store.get(k), Ok(Some(_))));
            slowest = slowest.max(started.elapsed());
            dead += 1;
        }
    }
    println!(
        "{dead} lookups on the dead shard, slowest {slowest:?}; {:?}",
        store.redis_stats()
    );

    // Each master has its own breaker: the dead one's opened, the live
    // shards' did not, and their sessions still resume at once.
    let dead_addr = cluster.nodes()[0].addr();
    let circuits = store.node_circuits();
    println!("circuits after the death: {circuits:?}");
    for (addr, state) in &circuits {
        let expected = if *addr == dead_addr {
            CircuitState::Open
        } else {
            CircuitState::Closed
        };
        assert_eq!(*state, expected, "{addr}");
    }
    assert_eq!(circuits.len(), 3);
    for ((k, s), &o) in sessions.iter().zip(&owner) {
        if o != 0 {
            assert_eq!(store.get(k).unwrap().as_ref(), Some(s), "live shard {o}");
        }
    }

    // A store built after the death still finds the live shards' sessions.
    let late = RedisStore::builder(&cluster.url())
        .seal_keys(ring(0x42))
        .timeouts(TEST_TIMEOUT)
        .build()
        .unwrap();
    let (k, s) = sessions
        .iter()
        .zip(&owner)
        .find(|(_, o)| **o != 0)
        .map(|(ks, _)| ks)
        .unwrap();
    assert_eq!(late.get(k).unwrap().as_ref(), Some(s));
}

#[test]
fn cluster_builder_takes_node_urls() {
    let cluster = cluster();
    let store = RedisStore::cluster_builder(cluster.node_urls())
        .seal_keys(ring(9))
        .timeouts(TEST_TIMEOUT)
        .build()
        .unwrap();
    let key = random_key13(b"svc");
    let s = session(Protocol::Tls13, 300);
    store.put(&key, &s).unwrap();
    assert_eq!(store.take(&key).unwrap(), Some(s));
    assert_eq!(store.take(&key).unwrap(), None);
}

/// Which node (index into `cluster.nodes()`) holds each Redis key.
fn owners(cluster: &RedisCluster, rkeys: &[RedisKey]) -> Vec<usize> {
    let mut cons: Vec<redis::Connection> = cluster
        .nodes()
        .iter()
        .map(|n| n.connection().unwrap())
        .collect();
    rkeys
        .iter()
        .map(|rkey| {
            let holders: Vec<usize> = (0..cons.len())
                // A node answers EXISTS only for its own slots (MOVED otherwise).
                .filter(|&i| {
                    matches!(
                        redis::cmd("EXISTS").arg(rkey).query::<i64>(&mut cons[i]),
                        Ok(1)
                    )
                })
                .collect();
            assert_eq!(holders.len(), 1, "{rkey} held by {holders:?}");
            holders[0]
        })
        .collect()
}

/// A frozen (SIGSTOPped) master: every call on its shard returns after one
/// timeout until that master's own breaker opens, then at once; the other
/// shards keep answering every lookup, and their breakers stay closed.
/// Durations are printed, not asserted; what is asserted is counted.
#[test]
fn a_frozen_master_opens_its_own_circuit_and_the_other_shards_keep_serving() {
    const THRESHOLD: u32 = 3;
    let timeout = Duration::from_millis(300);
    let cluster = cluster();
    let url = cluster.url();
    let frozen_addr = cluster.node(0).unwrap().addr();
    let make = move |url: &str| {
        RedisStore::builder(url)
            .seal_keys(ring(3))
            .timeouts(timeout)
            // A back-off longer than the test: no probe muddles the counts.
            .circuit_breaker(
                THRESHOLD,
                Duration::from_secs(600),
                Duration::from_secs(600),
            )
            .build()
            .unwrap()
    };
    let warm = make(&url);
    let sessions: Vec<(SessionKey, StoredSession)> = (0..60)
        .map(|_| (random_key(b"svc"), session(Protocol::Tls12, 300)))
        .collect();
    for (k, s) in &sessions {
        warm.put(k, s).unwrap();
    }
    let rkeys: Vec<RedisKey> = sessions.iter().map(|(k, _)| warm.redis_key(k)).collect();
    let owner = owners(&cluster, &rkeys);
    let on_frozen = owner.iter().filter(|&&o| o == 0).count();
    assert!(
        on_frozen > THRESHOLD as usize,
        "only {on_frozen} sessions on shard 0"
    );

    let on_healthy = sessions.len() - on_frozen;
    cluster.node(0).unwrap().pause().unwrap();

    // By the warm store, and by one built (and connecting) now. A watchdog
    // turns a hang into a failure instead of a stuck run.
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let cold = make(&url);
        let mut report = Vec::new();
        for (name, store) in [("warm", &warm), ("cold", &cold)] {
            let mut healthy_found = 0;
            let mut healthy_missed = Vec::new();
            let mut frozen_errors = 0;
            let mut slowest_frozen = Duration::ZERO;
            let mut slowest_healthy = Duration::ZERO;
            let mut frozen_durations = Vec::new();
            for (i, ((k, s), &o)) in sessions.iter().zip(&owner).enumerate() {
                let started = Instant::now();
                let r = store.get(k);
                let took = started.elapsed();
                if o == 0 {
                    assert!(!matches!(r, Ok(Some(_))), "a frozen shard answered");
                    if r.is_err() {
                        frozen_errors += 1;
                    }
                    slowest_frozen = slowest_frozen.max(took);
                    frozen_durations.push(took.as_millis());
                } else {
                    match r {
                        Ok(Some(got)) => {
                            assert_eq!(&got, s);
                            healthy_found += 1;
                        }
                        _ => healthy_missed.push(i),
                    }
                    slowest_healthy = slowest_healthy.max(took);
                }
            }
            // Writes and removals on the frozen shard return too.
            let mut frozen_writes_failed = 0;
            for ((k, s), &o) in sessions.iter().zip(&owner) {
                if o == 0 {
                    let put_failed = store.put(k, s).is_err();
                    let removed_failed = store.remove(k).is_err();
                    if put_failed && removed_failed {
                        frozen_writes_failed += 1;
                    }
                }
            }
            report.push((
                name,
                healthy_found,
                healthy_missed,
                frozen_errors,
                frozen_writes_failed,
                slowest_frozen,
                slowest_healthy,
                frozen_durations,
                store.redis_stats(),
                store.node_circuits(),
            ));
        }
        let _ = tx.send(report);
    });
    let outcome = rx.recv_timeout(Duration::from_secs(120));
    cluster.node(0).unwrap().resume().unwrap();
    let report = outcome.expect("lookups hung on a frozen master");
    worker.join().unwrap();

    for (
        name,
        healthy_found,
        healthy_missed,
        frozen_errors,
        frozen_writes_failed,
        slowest_frozen,
        slowest_healthy,
        frozen_durations,
        stats,
        circuits,
    ) in report
    {
        println!(
            "{name} store, timeouts {timeout:?}: frozen shard {on_frozen} lookups, slowest \
             {slowest_frozen:?}, each (ms) {frozen_durations:?}; healthy shards {healthy_found} of \
             {on_healthy} found, slowest {slowest_healthy:?}; {stats:?}; {circuits:?}"
        );
        // The healthy shards were served throughout: every session found.
        // (The cold store loads its slot map from a seed other than the
        // first, the frozen one; reloads prefer nodes that never failed.)
        assert!(
            healthy_missed.is_empty(),
            "{name}: healthy-shard sessions missed at {healthy_missed:?}"
        );
        assert_eq!(healthy_found, on_healthy);
        assert_eq!(frozen_errors, on_frozen, "{name}: frozen-shard lookups");
        assert_eq!(
            frozen_writes_failed, on_frozen,
            "{name}: frozen-shard writes"
        );
        // The frozen master's breaker, and only it, opened — once, after
        // THRESHOLD calls that each hit one timeout; every later call on
        // that shard was refused at once.
        let open: Vec<&String> = circuits
            .iter()
            .filter(|(_, st)| *st == CircuitState::Open)
            .map(|(a, _)| a)
            .collect();
        assert_eq!(open, vec![&frozen_addr], "{name}: {circuits:?}");
        assert_eq!(circuits.len(), 3, "{name}: {circuits:?}");
        assert_eq!(stats.circuit_opens, 1, "{name}");
        assert_eq!(stats.timeouts, u64::from(THRESHOLD), "{name}");
        assert_eq!(
            stats.circuit_open_rejections,
            (3 * on_frozen) as u64 - u64::from(THRESHOLD),
            "{name}: every frozen-shard call after the breaker opened was refused at once"
        );
    }
}

/// A slot moves to another master after the store loaded its slot map:
/// during the migration the old owner answers `ASK` (followed once, with
/// `ASKING`), afterwards `MOVED` (followed once, and the map patched).
#[test]
fn a_slot_moved_after_the_map_was_loaded_is_followed() {
    let cluster = cluster();
    let store = builder(&cluster.url()).build().unwrap();
    let key = random_key(b"svc");
    let s = session(Protocol::Tls12, 300);
    store.put(&key, &s).unwrap(); // loads the slot map
    let rkey = store.redis_key(&key);
    let src = owners(&cluster, std::slice::from_ref(&rkey))[0];
    let dst = (src + 1) % 3;
    let nodes = cluster.nodes();
    let mut cons: Vec<redis::Connection> = nodes.iter().map(|n| n.connection().unwrap()).collect();
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&rkey)
        .query(&mut cons[src])
        .unwrap();
    let id = |c: &mut redis::Connection| -> String {
        redis::cmd("CLUSTER").arg("MYID").query(c).unwrap()
    };
    let (src_id, dst_id) = (id(&mut cons[src]), id(&mut cons[dst]));
    let setslot = |c: &mut redis::Connection, how: &str, node: &str| {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(how)
            .arg(node)
            .query(c)
            .unwrap();
    };
    setslot(&mut cons[dst], "IMPORTING", &src_id);
    setslot(&mut cons[src], "MIGRATING", &dst_id);
    let _: () = redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(nodes[dst].port())
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(&rkey)
        .query(&mut cons[src])
        .unwrap();

    // Mid-migration: the old owner no longer has the key and says ASK.
    assert_eq!(store.get(&key).unwrap().as_ref(), Some(&s), "ASK followed");

    setslot(&mut cons[dst], "NODE", &dst_id);
    setslot(&mut cons[src], "NODE", &dst_id);
    // Migrated: the old owner says MOVED.
    assert_eq!(
        store.get(&key).unwrap().as_ref(),
        Some(&s),
        "MOVED followed"
    );
    assert_eq!(
        store.take(&key).unwrap(),
        Some(s),
        "straight to the new owner"
    );
    assert_eq!(store.get(&key).unwrap(), None);
    let errors = store.stats().errors;
    assert_eq!(errors, 0, "redirects are not errors");
    assert!(
        store
            .node_circuits()
            .iter()
            .all(|(_, c)| *c == CircuitState::Closed)
    );
}
