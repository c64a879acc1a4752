//! The async store (feature `tokio`) on a real 3-master Redis Cluster: the
//! blocking store's keys and slots, redirects, a breaker per master, a
//! frozen master costing one deadline per call until its breaker opens;
//! and the async tiered store.

mod common;

use std::time::{Duration, Instant};

use common::{builder, cluster, random_key, random_key13, ring, session};
use tls_session_cache::{MemoryStore, Protocol, SessionKey, SessionStore, StoredSession};
use tls_session_cache_redis::{
    AsyncRedisStore, AsyncTieredStore, CircuitState, RedisKey, RedisStore,
};
use tls_session_cache_testkit::RedisCluster;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
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

#[test]
fn the_async_store_spreads_sessions_over_every_master_and_shares_them_with_the_blocking_one() {
    let cluster = cluster();
    let blocking = builder(&cluster.url()).build().unwrap();
    let sessions: Vec<(SessionKey, StoredSession)> = (0..60)
        .map(|_| (random_key(b"svc"), session(Protocol::Tls12, 300)))
        .collect();
    let tickets: Vec<(SessionKey, StoredSession)> = (0..6)
        .map(|_| (random_key13(b"svc"), session(Protocol::Tls13, 300)))
        .collect();
    rt().block_on(async {
        let store: AsyncRedisStore = builder(&cluster.url()).build_async().unwrap();
        store.ping().await.unwrap();
        for (k, s) in &sessions {
            store.put(k, s).await.unwrap();
            assert_eq!(store.redis_key(k), blocking.redis_key(k));
        }
        // Every master holds some: the slot is the key's hash tag's.
        let rkeys: Vec<RedisKey> = sessions.iter().map(|(k, _)| store.redis_key(k)).collect();
        let owner = owners(&cluster, &rkeys);
        for i in 0..3 {
            assert!(owner.contains(&i), "master {i} holds no session");
        }
        // What the async store wrote, the blocking one reads, and back.
        for (k, s) in &sessions {
            assert_eq!(blocking.get(k).unwrap().as_ref(), Some(s));
            assert_eq!(store.get(k).await.unwrap().as_ref(), Some(s));
        }
        // TLS 1.3 tickets: single use across both stores (GETDEL).
        for (i, (k, s)) in tickets.iter().enumerate() {
            if i % 2 == 0 {
                blocking.put(k, s).unwrap();
                assert_eq!(store.take(k).await.unwrap().as_ref(), Some(s));
                assert_eq!(blocking.take(k).unwrap(), None);
            } else {
                store.put(k, s).await.unwrap();
                assert_eq!(blocking.take(k).unwrap().as_ref(), Some(s));
                assert_eq!(store.take(k).await.unwrap(), None);
            }
        }
        // remove deletes from whichever master holds the session.
        for (k, _) in &sessions[..10] {
            assert!(store.remove(k).await.unwrap());
            assert!(!store.remove(k).await.unwrap());
            assert_eq!(blocking.get(k).unwrap(), None);
        }
        let st = store.stats();
        assert_eq!(
            (st.inserts, st.hits, st.misses, st.removals, st.errors),
            (63, 63, 3, 10, 0),
            "{st:?}"
        );
        let circuits = store.node_circuits();
        assert_eq!(circuits.len(), 3, "{circuits:?}");
        assert!(circuits.iter().all(|(_, c)| *c == CircuitState::Closed));
        let mut addrs: Vec<String> = cluster.nodes().iter().map(|n| n.addr()).collect();
        addrs.sort();
        let seen: Vec<String> = circuits.into_iter().map(|(a, _)| a).collect();
        assert_eq!(seen, addrs);
    });
}

#[test]
fn the_async_store_takes_cluster_node_urls() {
    let cluster = cluster();
    rt().block_on(async {
        let store = RedisStore::cluster_builder(cluster.node_urls())
            .seal_keys(ring(9))
            .timeouts(common::TEST_TIMEOUT)
            .build_async()
            .unwrap();
        let key = random_key13(b"svc");
        let s = session(Protocol::Tls13, 300);
        store.put(&key, &s).await.unwrap();
        assert_eq!(store.take(&key).await.unwrap(), Some(s));
        assert_eq!(store.take(&key).await.unwrap(), None);
    });
}

/// A TLS 1.2 get that misses under the compact name looks under the
/// previous-format name too — in another slot, so a second GET, which may
/// go to another master.
#[test]
fn the_async_cluster_store_falls_back_to_previous_names() {
    use tls_session_cache_redis::KeyFormat;
    let cluster = cluster();
    let old = builder(&cluster.url())
        .write_format(KeyFormat::Previous)
        .build()
        .unwrap();
    let key = random_key(b"svc");
    let s = session(Protocol::Tls12, 300);
    old.put(&key, &s).unwrap();
    rt().block_on(async {
        let store = builder(&cluster.url()).build_async().unwrap();
        assert_eq!(store.get(&key).await.unwrap().as_ref(), Some(&s));
        let r = store.redis_stats();
        assert_eq!((r.fallback_lookups, r.fallback_hits), (1, 1), "{r:?}");
        // remove deletes both names, each on its own master.
        assert!(store.remove(&key).await.unwrap());
        assert_eq!(store.get(&key).await.unwrap(), None);
        assert_eq!(old.get(&key).unwrap(), None);
    });
}

/// A frozen (SIGSTOPped) master: every call on its shard returns within
/// its deadline, counted as a timeout, until that master's own breaker
/// opens; then at once. The other shards keep answering every lookup and
/// their breakers stay closed. Durations are printed; the bound asserted is
/// the deadline plus generous slack (a correctness bound: never a hang).
#[test]
fn a_frozen_master_opens_its_own_circuit_and_the_other_shards_keep_serving_async() {
    const THRESHOLD: u32 = 3;
    let timeout = Duration::from_millis(300);
    // The async store's budget: connect + read + write timeouts.
    let budget = 3 * timeout;
    let slack = Duration::from_secs(2);
    let cluster = cluster();
    let url = cluster.url();
    let frozen_addr = cluster.node(0).unwrap().addr();
    let make = |url: &str| {
        RedisStore::builder(url)
            .seal_keys(ring(3))
            .timeouts(timeout)
            // A back-off longer than the test: no probe muddles the counts.
            .circuit_breaker(
                THRESHOLD,
                Duration::from_secs(600),
                Duration::from_secs(600),
            )
            .build_async()
            .unwrap()
    };
    let runtime = rt();
    let warm = make(&url);
    let sessions: Vec<(SessionKey, StoredSession)> = (0..60)
        .map(|_| (random_key(b"svc"), session(Protocol::Tls12, 300)))
        .collect();
    runtime.block_on(async {
        for (k, s) in &sessions {
            warm.put(k, s).await.unwrap();
        }
    });
    let rkeys: Vec<RedisKey> = sessions.iter().map(|(k, _)| warm.redis_key(k)).collect();
    let owner = owners(&cluster, &rkeys);
    let on_frozen = owner.iter().filter(|&&o| o == 0).count();
    assert!(
        on_frozen > THRESHOLD as usize,
        "only {on_frozen} sessions on shard 0"
    );
    let on_healthy = sessions.len() - on_frozen;

    cluster.node(0).unwrap().pause().unwrap();
    // A watchdog turns a hang into a failure instead of a stuck run.
    let outcome = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), async {
            let cold = make(&url);
            let mut report = Vec::new();
            for (name, store) in [("warm", &warm), ("cold", &cold)] {
                let mut healthy_found = 0;
                let mut healthy_missed = Vec::new();
                let mut frozen_errors = 0;
                let mut frozen_durations = Vec::new();
                let mut slowest_healthy = Duration::ZERO;
                for (i, ((k, s), &o)) in sessions.iter().zip(&owner).enumerate() {
                    let started = Instant::now();
                    let r = store.get(k).await;
                    let took = started.elapsed();
                    if o == 0 {
                        assert!(!matches!(r, Ok(Some(_))), "a frozen shard answered");
                        if r.is_err() {
                            frozen_errors += 1;
                        }
                        frozen_durations.push(took);
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
                        let started = Instant::now();
                        let put_failed = store.put(k, s).await.is_err();
                        let removed_failed = store.remove(k).await.is_err();
                        frozen_durations.push(started.elapsed());
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
                    frozen_durations,
                    slowest_healthy,
                    store.redis_stats(),
                    store.node_circuits(),
                    store.circuit_state(),
                ));
            }
            report
        })
        .await
    });
    cluster.node(0).unwrap().resume().unwrap();
    let report = outcome.expect("calls hung on a frozen master");

    for (
        name,
        healthy_found,
        healthy_missed,
        frozen_errors,
        frozen_writes_failed,
        frozen_durations,
        slowest_healthy,
        stats,
        circuits,
        worst,
    ) in report
    {
        let ms: Vec<u128> = frozen_durations.iter().map(|d| d.as_millis()).collect();
        println!(
            "{name} async store, timeouts {timeout:?} (budget {budget:?}): frozen shard \
             {on_frozen} lookups then put+remove pairs, each (ms) {ms:?}; healthy shards \
             {healthy_found} of {on_healthy} found, slowest {slowest_healthy:?}; {stats:?}; \
             {circuits:?}"
        );
        let slowest = frozen_durations.iter().max().copied().unwrap_or_default();
        // A put+remove pair is two calls: two budgets at most.
        assert!(
            slowest <= 2 * budget + slack,
            "{name}: a frozen-shard call took {slowest:?}"
        );
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
        // THRESHOLD calls that each hit one deadline; every later call on
        // that shard was refused at once.
        let open: Vec<&String> = circuits
            .iter()
            .filter(|(_, st)| *st == CircuitState::Open)
            .map(|(a, _)| a)
            .collect();
        assert_eq!(open, vec![&frozen_addr], "{name}: {circuits:?}");
        assert_eq!(circuits.len(), 3, "{name}: {circuits:?}");
        assert_eq!(worst, CircuitState::Open, "{name}");
        assert_eq!(stats.circuit_opens, 1, "{name}");
        assert_eq!(stats.timeouts, u64::from(THRESHOLD), "{name}");
        assert_eq!(
            stats.circuit_open_rejections,
            (3 * on_frozen) as u64 - u64::from(THRESHOLD),
            "{name}: every frozen-shard call after the breaker opened was refused at once"
        );
    }
}

/// Concurrent lookups while a master is frozen: the frozen shard's calls
/// wait out their deadline without delaying the other shards' calls,
/// which all find their sessions.
#[test]
fn a_frozen_master_does_not_delay_concurrent_calls_to_the_other_shards() {
    let timeout = Duration::from_millis(300);
    let budget = 3 * timeout;
    let cluster = cluster();
    let runtime = rt();
    let store = RedisStore::builder(&cluster.url())
        .seal_keys(ring(4))
        .timeouts(timeout)
        .circuit_breaker(1000, Duration::from_secs(600), Duration::from_secs(600))
        .build_async()
        .unwrap();
    let sessions: Vec<(SessionKey, StoredSession)> = (0..60)
        .map(|_| (random_key(b"svc"), session(Protocol::Tls12, 300)))
        .collect();
    runtime.block_on(async {
        for (k, s) in &sessions {
            store.put(k, s).await.unwrap();
        }
    });
    let rkeys: Vec<RedisKey> = sessions.iter().map(|(k, _)| store.redis_key(k)).collect();
    let owner = owners(&cluster, &rkeys);
    cluster.node(0).unwrap().pause().unwrap();
    let store = std::sync::Arc::new(store);
    let outcome = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            let started = Instant::now();
            let mut set = tokio::task::JoinSet::new();
            for (i, (k, _)) in sessions.iter().enumerate() {
                let (store, k) = (std::sync::Arc::clone(&store), *k);
                set.spawn(async move { (i, store.get(&k).await, started.elapsed()) });
            }
            let mut results: Vec<_> = set.join_all().await;
            results.sort_by_key(|r| r.0);
            let results: Vec<_> = results.into_iter().map(|(_, r, t)| (r, t)).collect();
            (results, started.elapsed())
        })
        .await
    });
    cluster.node(0).unwrap().resume().unwrap();
    let (results, all) = outcome.expect("concurrent calls hung on a frozen master");
    let mut slowest_healthy = Duration::ZERO;
    for ((r, took), (&o, (_, s))) in results.iter().zip(owner.iter().zip(&sessions)) {
        if o == 0 {
            assert!(r.is_err(), "a frozen-shard lookup answered: {r:?}");
        } else {
            assert_eq!(r.as_ref().unwrap().as_ref(), Some(s));
            slowest_healthy = slowest_healthy.max(*took);
        }
    }
    println!(
        "60 concurrent lookups, {} on the frozen shard: all done in {all:?}, slowest healthy \
         {slowest_healthy:?}; {:?}",
        owner.iter().filter(|&&o| o == 0).count(),
        store.redis_stats()
    );
    // Concurrent, not one after the other: the whole batch within about
    // one budget (plus generous slack), not one budget per frozen call.
    assert!(all <= budget + Duration::from_secs(2), "{all:?}");
    assert!(store.redis_stats().timeouts >= 1);
}

/// A slot moves to another master after the async store loaded its slot
/// map: during the migration the old owner answers `ASK` (followed once,
/// `ASKING` in the same pipeline), afterwards `MOVED` (followed once, the
/// map patched).
#[test]
fn a_slot_moved_after_the_map_was_loaded_is_followed_async() {
    let cluster = cluster();
    let runtime = rt();
    let store = builder(&cluster.url()).build_async().unwrap();
    let key = random_key(b"svc");
    let s = session(Protocol::Tls12, 300);
    runtime.block_on(store.put(&key, &s)).unwrap(); // loads the slot map
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
    runtime.block_on(async {
        // Mid-migration: the old owner no longer has the key and says ASK.
        assert_eq!(store.get(&key).await.unwrap().as_ref(), Some(&s), "ASK");
    });
    setslot(&mut cons[dst], "NODE", &dst_id);
    setslot(&mut cons[src], "NODE", &dst_id);
    runtime.block_on(async {
        // Migrated: the old owner says MOVED.
        assert_eq!(store.get(&key).await.unwrap().as_ref(), Some(&s), "MOVED");
        assert_eq!(store.take(&key).await.unwrap(), Some(s.clone()));
        assert_eq!(store.get(&key).await.unwrap(), None);
    });
    assert_eq!(store.stats().errors, 0, "redirects are not errors");
    assert!(
        store
            .node_circuits()
            .iter()
            .all(|(_, c)| *c == CircuitState::Closed)
    );
}

fn tiered(url: &str) -> AsyncTieredStore {
    AsyncTieredStore::new(
        MemoryStore::with_capacity_bytes(1 << 20),
        builder(url).build_async().unwrap(),
    )
}

/// Two servers' tiered stores on one cluster: a local hit never asks
/// Redis, a remote hit fills the local tier, and a TLS 1.3 ticket is taken
/// once across both tiers (never answered from a local copy).
#[test]
fn async_tiered_stores_on_a_cluster_share_sessions_and_keep_tickets_single_use() {
    let cluster = cluster();
    rt().block_on(async {
        let a = tiered(&cluster.url());
        let b = tiered(&cluster.url());
        let key = random_key(b"svc");
        let s = session(Protocol::Tls12, 300);
        a.put(&key, &s).await.unwrap();

        // Local hit on a: Redis is not asked.
        let redis_lookups = |t: &AsyncTieredStore| {
            let st = t.remote().stats();
            st.hits + st.misses
        };
        assert_eq!(a.get(&key).await.unwrap().as_ref(), Some(&s));
        assert_eq!((a.local_hits(), redis_lookups(&a)), (1, 0));

        // Remote hit on b, which then has it locally.
        assert_eq!(b.get(&key).await.unwrap().as_ref(), Some(&s));
        assert_eq!((b.local_hits(), redis_lookups(&b)), (0, 1));
        assert_eq!(b.get(&key).await.unwrap().as_ref(), Some(&s));
        assert_eq!((b.local_hits(), redis_lookups(&b)), (1, 1));
        assert_eq!(b.stats().hits, 2);
        assert_eq!(b.stats().entries, 1);

        // A TLS 1.3 ticket: single use across the tiers.
        let ticket = random_key13(b"svc");
        let t = session(Protocol::Tls13, 300);
        assert!(t.single_use);
        a.put(&ticket, &t).await.unwrap();
        assert_eq!(a.local().stats().entries, 1, "single use: Redis only");
        assert_eq!(b.take(&ticket).await.unwrap().as_ref(), Some(&t));
        assert_eq!(a.take(&ticket).await.unwrap(), None);
        assert_eq!(b.take(&ticket).await.unwrap(), None);

        // take of a session another tier holds locally goes to Redis and
        // drops the local copy.
        assert_eq!(a.take(&key).await.unwrap().as_ref(), Some(&s));
        assert_eq!(a.local().stats().entries, 0);
        assert_eq!(a.take(&key).await.unwrap(), None);

        // remove from both tiers.
        let other = random_key(b"svc");
        a.put(&other, &s).await.unwrap();
        assert!(a.remove(&other).await.unwrap());
        assert_eq!(a.get(&other).await.unwrap(), None);
        assert_eq!(b.get(&other).await.unwrap(), None);
    });
}

/// The tiered store over a standalone Redis, and its Redis tier going
/// away: local hits go on, lookups that need Redis fail open (errors, not
/// hangs).
#[test]
fn async_tiered_store_serves_local_hits_when_redis_is_down() {
    let redis = common::redis();
    rt().block_on(async {
        let store = AsyncTieredStore::new(
            MemoryStore::with_capacity_bytes(1 << 20),
            builder(&redis.url())
                .timeouts(Duration::from_millis(200))
                .build_async()
                .unwrap(),
        );
        let key = random_key(b"svc");
        let s = session(Protocol::Tls12, 300);
        store.put(&key, &s).await.unwrap();
        drop(redis);
        assert_eq!(store.get(&key).await.unwrap().as_ref(), Some(&s));
        let missing = random_key(b"svc");
        assert!(store.get(&missing).await.is_err());
        let ticket = random_key13(b"svc");
        assert!(store.take(&ticket).await.is_err());
        assert_eq!(store.local_hits(), 1);
        assert!(store.redis_stats().timeouts + store.stats().errors >= 2);
    });
}

/// A `MOVED` to an address the store's slot map does not name is not
/// followed (the store's credentials go only to nodes `CLUSTER SLOTS`
/// named, or seeds): the call is a counted miss, and once the slot map is
/// reloaded — it then names the new address — the session is found there.
///
/// Set up with real nodes: the slot's new owner announces itself at
/// 127.0.0.2 (`cluster-announce-ip`, still loopback) after the store loaded
/// its map, so the old owner's `MOVED` names an address the map lacks.
#[test]
fn a_moved_to_an_address_not_in_the_slot_map_waits_for_the_map() {
    let cluster = cluster();
    let runtime = rt();
    let store = builder(&cluster.url()).build_async().unwrap();
    let key = random_key(b"svc");
    let s = session(Protocol::Tls12, 300);
    runtime.block_on(store.put(&key, &s)).unwrap(); // loads the slot map
    let rkey = store.redis_key(&key);
    let src = owners(&cluster, std::slice::from_ref(&rkey))[0];
    let dst = (src + 1) % 3;
    let nodes = cluster.nodes();
    let mut cons: Vec<redis::Connection> = nodes.iter().map(|n| n.connection().unwrap()).collect();
    // Reachable at the new address too (the test kit binds 127.0.0.1).
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("bind")
        .arg("127.0.0.1 127.0.0.2")
        .query(&mut cons[dst])
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("cluster-announce-ip")
        .arg("127.0.0.2")
        .query(&mut cons[dst])
        .unwrap();
    // Readiness: the old owner has heard of the new address (gossip).
    let announced = format!("127.0.0.2:{}", nodes[dst].port());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut cons[src])
            .unwrap();
        if view.contains(&announced) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gossip never announced {announced}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
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
    setslot(&mut cons[dst], "NODE", &dst_id);
    setslot(&mut cons[src], "NODE", &dst_id);

    runtime.block_on(async {
        // The old owner says MOVED to 127.0.0.2:PORT: not followed.
        match store.get(&key).await {
            Err(tls_session_cache::StoreError::Unavailable(why)) => {
                assert!(why.contains(&announced), "{why}");
                assert!(why.contains("not in the slot map"), "{why}");
            }
            other => panic!("expected an unfollowed redirect, got {other:?}"),
        }
        assert_eq!(store.stats().errors, 1);
        assert_eq!(store.redis_stats().unknown_redirects, 1);
        // The old owner answered: its breaker saw no failure.
        assert!(
            store
                .node_circuits()
                .iter()
                .all(|(_, c)| *c == CircuitState::Closed)
        );
        // The map is reloaded (at most once a second) and then names the
        // new address: the session is found there.
        let deadline = Instant::now() + Duration::from_secs(30);
        let found = loop {
            match store.get(&key).await {
                Ok(Some(found)) => break found,
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => panic!("never found after the map reload: {other:?}"),
            }
        };
        assert_eq!(found, s);
        let circuits = store.node_circuits();
        assert!(
            circuits.iter().any(|(a, _)| *a == announced),
            "{circuits:?}"
        );
    });
}

#[test]
fn a_consumed_ticket_written_back_into_the_cluster_does_not_resume_again_async() {
    let cluster = cluster();
    let runtime = rt();
    let store = builder(&cluster.url()).build_async().unwrap();
    // The control: the same replay resumes on a store without the memory.
    let forgetful = builder(&cluster.url())
        .replay_memory(0)
        .build_async()
        .unwrap();
    let ticket = random_key13(b"svc");
    let removed = random_key(b"svc");
    runtime.block_on(async {
        store
            .put(&ticket, &session(Protocol::Tls13, 300))
            .await
            .unwrap();
        store
            .put(&removed, &session(Protocol::Tls12, 300))
            .await
            .unwrap();
    });
    let names = [store.redis_key(&ticket), store.redis_key(&removed)];
    let nodes = cluster.nodes();
    let mut cons: Vec<redis::Connection> = owners(&cluster, &names)
        .into_iter()
        .map(|i| nodes[i].connection().unwrap())
        .collect();
    let old: Vec<Vec<u8>> = names
        .iter()
        .zip(&mut cons)
        .map(|(name, con)| redis::cmd("GET").arg(name).query(con).unwrap())
        .collect();
    let write_back = |con: &mut redis::Connection, i: usize| {
        let _: () = redis::cmd("SET")
            .arg(&names[i])
            .arg(&old[i])
            .arg("EX")
            .arg(300)
            .query(con)
            .unwrap();
    };
    runtime.block_on(async {
        assert!(store.take(&ticket).await.unwrap().is_some(), "first use");
        assert!(store.remove(&removed).await.unwrap());
    });
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&names[0])
        .query(&mut cons[0])
        .unwrap();
    assert_eq!(exists, 0, "GETDEL consumed it");
    // A Cluster writer restores the bytes it read before.
    write_back(&mut cons[0], 0);
    write_back(&mut cons[1], 1);
    runtime.block_on(async {
        assert!(
            store.take(&ticket).await.unwrap().is_none(),
            "the replayed ticket resumed"
        );
        assert!(
            store.get(&removed).await.unwrap().is_none(),
            "a removed session resumed"
        );
    });
    assert_eq!(store.redis_stats().replays, 2);
    write_back(&mut cons[0], 0);
    runtime.block_on(async {
        assert!(
            forgetful.take(&ticket).await.unwrap().is_some(),
            "the control: without the memory the replay resumes"
        );
    });
    assert_eq!(forgetful.redis_stats().replays, 0);
}
