//! Redis Cluster: sessions spread over three masters; one master dies and
//! the sessions on the other two still resume.

mod common;

use std::time::Instant;

use common::*;
use tls_session_cache::{Protocol, SessionKey, SessionStore, StoredSession};
use tls_session_cache_redis::RedisStore;

#[test]
fn sessions_spread_over_shards_and_survive_a_dead_master() {
    const SESSIONS: usize = 150;
    let mut cluster = cluster();
    let store = builder(&cluster.url()).build().unwrap();
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
        let id_hex: String = k.id.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&rkey)
            .query(&mut cons[0])
            .unwrap();
        let id_slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&id_hex)
            .query(&mut cons[0])
            .unwrap();
        assert_eq!(slot, id_slot);
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
    let mut slowest = std::time::Duration::ZERO;
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

    // The breaker is per store: failures on the dead shard may have opened
    // it. After its back-off a probe on a live shard closes it again.
    let (live_k, live_s) = sessions
        .iter()
        .zip(&owner)
        .find(|(_, o)| **o != 0)
        .map(|(ks, _)| ks)
        .unwrap();
    let mut recovered = false;
    for _ in 0..200 {
        if let Ok(Some(found)) = store.get(live_k) {
            assert_eq!(&found, live_s);
            recovered = true;
            break;
        }
        // The breaker's back-off is wall-clock time.
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(recovered, "live shard unreachable after the back-off");

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
    let key = random_key(b"svc");
    let s = session(Protocol::Tls13, 300);
    store.put(&key, &s).unwrap();
    assert_eq!(store.take(&key).unwrap(), Some(s));
    assert_eq!(store.take(&key).unwrap(), None);
}

#[test]
fn a_frozen_master_does_not_hang_the_store() {
    let cluster = cluster();
    let url = cluster.url();
    let sessions: Vec<(SessionKey, StoredSession)> = (0..30)
        .map(|_| (random_key(b"svc"), session(Protocol::Tls12, 300)))
        .collect();
    let store = RedisStore::builder(&url)
        .seal_keys(ring(3))
        .timeouts(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    for (k, s) in &sessions {
        store.put(k, s).unwrap();
    }
    cluster.node(0).unwrap().pause().unwrap();

    // Every lookup, by the warm store and by one that must connect now,
    // returns; a watchdog turns a hang into a failure instead of a stuck run.
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let cold = RedisStore::builder(&url)
            .seal_keys(ring(3))
            .timeouts(std::time::Duration::from_millis(300))
            .build()
            .unwrap();
        let mut found = 0;
        let mut slowest = std::time::Duration::ZERO;
        for (k, s) in &sessions {
            for (name, st) in [("warm", &store), ("cold", &cold)] {
                let started = Instant::now();
                let r = st.get(k);
                if let Ok(Some(got)) = &r {
                    assert_eq!(got, s);
                    found += 1;
                }
                if started.elapsed() > slowest {
                    println!("{name} store: slowest so far {:?}", started.elapsed());
                }
                slowest = slowest.max(started.elapsed());
            }
        }
        let _ = tx.send((found, slowest, store.redis_stats(), cold.redis_stats()));
    });
    let outcome = rx.recv_timeout(std::time::Duration::from_secs(120));
    cluster.node(0).unwrap().resume().unwrap();
    let (found, slowest, warm, cold) = outcome.expect("lookups hung on a frozen master");
    worker.join().unwrap();
    println!(
        "frozen master: {found} of 60 lookups found, slowest {slowest:?}; warm {warm:?}; cold {cold:?}"
    );
    assert!(found > 0, "nothing found on the live shards");
}
