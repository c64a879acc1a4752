//! The async store (feature `tokio`) against a real redis-server: same keys
//! and sealing as the blocking store, GETDEL single use, timeouts and the
//! circuit breaker.

mod common;

use std::time::Duration;

use common::{builder, redis, session};
use tls_session_cache::{Protocol, SessionStore, StoreError};
use tls_session_cache_redis::{AsyncRedisStore, CircuitState, RedisStore};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn async_and_blocking_stores_share_keys_and_sealing() {
    let redis = redis();
    let blocking: RedisStore = builder(&redis.url()).build().unwrap();
    let key = common::random_key(b"svc");
    let s12 = session(Protocol::Tls12, 300);
    let s13 = session(Protocol::Tls13, 300);
    let key13 = tls_session_cache::SessionKey {
        protocol: Protocol::Tls13,
        ..common::random_key(b"svc")
    };
    rt().block_on(async {
        let store: AsyncRedisStore = builder(&redis.url()).build_async().unwrap();
        store.ping().await.unwrap();
        store.put(&key, &s12).await.unwrap();
        assert_eq!(store.redis_key(&key), blocking.redis_key(&key));
        // What the async store wrote, the blocking one reads (and back).
        assert_eq!(blocking.get(&key).unwrap(), Some(s12.clone()));
        blocking.put(&key13, &s13).unwrap();
        assert_eq!(store.get(&key).await.unwrap(), Some(s12.clone()));
        // take is GETDEL: once.
        assert_eq!(store.take(&key13).await.unwrap(), Some(s13.clone()));
        assert_eq!(store.take(&key13).await.unwrap(), None);
        assert_eq!(blocking.get(&key13).unwrap(), None);
        assert!(store.remove(&key).await.unwrap());
        assert!(!store.remove(&key).await.unwrap());
        let st = store.stats();
        assert_eq!(
            (st.inserts, st.hits, st.misses, st.removals),
            (1, 2, 1, 1),
            "{st:?}"
        );
    });
    // Sealed at rest: the session bytes do not appear in Redis.
    let mut con = redis.connection().unwrap();
    blocking.put(&key, &s12).unwrap();
    let raw = common::raw_get(&mut con, &blocking.redis_key(&key)).unwrap();
    assert!(!raw.windows(32).any(|w| w == &s12.der[..32]));
}

#[test]
fn a_frozen_redis_costs_one_timeout_then_the_circuit_opens() {
    let redis = redis();
    let key = common::random_key(b"svc");
    rt().block_on(async {
        let store = builder(&redis.url())
            .timeouts(Duration::from_millis(100))
            .circuit_breaker(2, Duration::from_secs(3600), Duration::from_secs(3600))
            .build_async()
            .unwrap();
        store.ping().await.unwrap();
        redis.pause().unwrap();
        for _ in 0..2 {
            match store.get(&key).await {
                Err(StoreError::Timeout(_)) | Err(StoreError::Unavailable(_)) => {}
                other => panic!("expected a timeout, got {other:?}"),
            }
        }
        assert_eq!(store.circuit_state(), CircuitState::Open);
        // Refused at once: the circuit is open.
        match store.get(&key).await {
            Err(StoreError::Unavailable(why)) => assert!(why.contains("circuit"), "{why}"),
            other => panic!("expected circuit open, got {other:?}"),
        }
        let r = store.redis_stats();
        assert!(r.timeouts >= 1, "{r:?}");
        assert_eq!(
            (r.circuit_opens, r.circuit_open_rejections),
            (1, 1),
            "{r:?}"
        );
        redis.resume().unwrap();
    });
}

#[test]
fn async_store_falls_back_to_previous_names_for_tls12_gets_only() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let id = common::random_bytes(32);
    let k12 = tls_session_cache::SessionKey::from_slices(Protocol::Tls12, b"svc", &id).unwrap();
    let k13 = tls_session_cache::SessionKey::from_slices(Protocol::Tls13, b"svc", &id).unwrap();
    let s12 = session(Protocol::Tls12, 300);
    common::put_previous(&mut con, &k12, &s12);
    let name = tls_session_cache_redis::naming::previous_redis_key("tls-session", &k12);
    rt().block_on(async {
        let store: AsyncRedisStore = builder(&redis.url()).build_async().unwrap();
        assert_eq!(store.take(&k13).await.unwrap(), None, "TLS 1.3 take");
        assert_eq!(store.get(&k12).await.unwrap(), Some(s12.clone()));
        let rs = store.redis_stats();
        assert_eq!((rs.fallback_lookups, rs.fallback_hits), (1, 1));
        assert!(
            store.remove(&k12).await.unwrap(),
            "deletes the previous name"
        );
        let off: AsyncRedisStore = builder(&redis.url())
            .read_previous_format(false)
            .build_async()
            .unwrap();
        common::put_previous(&mut redis.connection().unwrap(), &k12, &s12);
        assert_eq!(off.get(&k12).await.unwrap(), None);
    });
    assert!(common::raw_exists(&mut con, &name));
}

#[test]
fn the_async_store_speaks_tls_and_refuses_a_foreign_certificate() {
    use tls_session_cache_redis::TlsOptions;
    use tls_session_cache_testkit::{RedisServer, TestPki};
    let pki = TestPki::generate().unwrap();
    let redis = RedisServer::start_tls(&pki.server, &pki.ca, Some(&pki.client), &[]).unwrap();
    let tls = TlsOptions::new()
        .ca_file(&pki.ca)
        .client_identity(&pki.client.cert, &pki.client.key);
    let store = builder(&redis.url()).tls(tls).build_async().unwrap();
    let rogue = RedisServer::start_tls(&pki.other_server, &pki.other_ca, None, &[]).unwrap();
    let refused = builder(&rogue.url())
        .tls(TlsOptions::new().ca_file(&pki.ca))
        .build_async()
        .unwrap();
    rt().block_on(async {
        store.ping().await.unwrap();
        let key = common::random_key(b"svc");
        let s = session(Protocol::Tls12, 300);
        store.put(&key, &s).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), Some(s));
        let err = refused
            .ping()
            .await
            .expect_err("a foreign certificate was accepted");
        assert!(
            err.to_string().contains("certificate verify failed"),
            "{err}"
        );
    });
    assert_eq!(store.redis_stats().tls_errors, 0);
    assert_eq!(refused.redis_stats().tls_errors, 1);
}

#[test]
fn the_async_store_authenticates_and_reports_a_wrong_password() {
    use tls_session_cache_testkit::RedisServer;
    let redis = RedisServer::start_with_args(&["--requirepass", "pw-async"]).unwrap();
    let good = builder(&format!("redis://:pw-async@{}", redis.addr()))
        .build_async()
        .unwrap();
    let bad = builder(&redis.url())
        .password("wrong")
        .build_async()
        .unwrap();
    rt().block_on(async {
        good.ping().await.unwrap();
        let err = bad.ping().await.expect_err("a wrong password was accepted");
        assert!(
            matches!(&err, StoreError::Backend(e) if e.is::<tls_session_cache_redis::AccessDenied>()),
            "{err:?}"
        );
    });
    assert_eq!(bad.redis_stats().auth_errors, 1);
}

#[test]
fn the_async_store_follows_a_sentinel_failover() {
    use std::time::Instant;
    use tls_session_cache_testkit::RedisSentinel;
    let mut set = RedisSentinel::start(1, &[], None).unwrap();
    let budget = Duration::from_millis(300);
    let store = RedisStore::builder(&set.url())
        .seal_keys(common::ring(3))
        .timeouts(budget)
        .build_async()
        .unwrap();
    let rt = rt();
    let round_trip = || {
        rt.block_on(async {
            let key = common::random_key(b"svc");
            let s = session(Protocol::Tls12, 300);
            store.put(&key, &s).await.is_ok() && store.get(&key).await.ok().flatten() == Some(s)
        })
    };
    assert!(round_trip());
    assert_eq!(store.sentinel_master(), Some(set.master().addr()));
    set.kill_master().unwrap();
    let killed = Instant::now();
    let mut slowest = Duration::ZERO;
    loop {
        let started = Instant::now();
        let ok = round_trip();
        slowest = slowest.max(started.elapsed());
        if ok {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "{:?}",
            store.redis_stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "async store, sentinel failover: sessions stored again {:?} after the master was \
         killed (slowest round trip {slowest:?})",
        killed.elapsed()
    );
    assert!(
        slowest < budget * 2 * 3 * 2,
        "a round trip took {slowest:?}"
    );
    set.wait_failover().unwrap();
    assert_eq!(store.sentinel_master(), Some(set.replica().addr()));
}
