//! Fleets on one real Redis (started by the testkit): two rustls servers
//! share TLS 1.2 sessions and spend each TLS 1.3 ticket once between them —
//! also when both are offered it at the same instant, and through tiered
//! stores; an OpenSSL server (the OpenSSL binding) and a rustls server with
//! different contexts each resume their own sessions only; with the same
//! context by mistake, the foreign sessions are counted misses.

mod common;

use std::sync::{Arc, Barrier};

use common::{TestServer, Version, openssl_connect, redis, redis_store};
use tls_session_cache::{MemoryStore, SessionStore};
use tls_session_cache_redis::{KeyRing, TieredStore};
use tls_session_cache_rustls::SessionCache;
use tls_session_cache_testkit::RedisServer;

/// A rustls cache on `store` with `context`.
fn rustls_cache(store: impl SessionStore, context: &[u8]) -> SessionCache {
    SessionCache::builder()
        .store(store)
        .context(context)
        .build()
        .unwrap()
}

/// Two rustls servers, A and B, on one Redis (plain or tiered stores).
fn fleet(redis: &RedisServer, keys: &KeyRing, tiered: bool) -> [(SessionCache, TestServer); 2] {
    [0, 1].map(|_| {
        let remote = redis_store(redis, keys);
        let cache = if tiered {
            rustls_cache(TieredStore::new(MemoryStore::default(), remote), b"svc")
        } else {
            rustls_cache(remote, b"svc")
        };
        let server = TestServer::rustls(&cache);
        (cache, server)
    })
}

#[test]
fn two_rustls_servers_share_sessions_and_spend_a_ticket_once() {
    let redis = redis();
    let keys = KeyRing::generate().unwrap();
    for tiered in [false, true] {
        let [(cache_a, a), (cache_b, b)] = fleet(&redis, &keys, tiered);

        // TLS 1.2: A issues, B resumes, A still resumes.
        let s = openssl_connect(a.addr, Version::Tls12, None).session;
        let seen: Vec<bool> = [&b, &a, &b]
            .iter()
            .map(|srv| openssl_connect(srv.addr, Version::Tls12, Some(&s)).resumed)
            .collect();
        assert_eq!(seen, [true, true, true], "TLS 1.2, tiered={tiered}");

        // TLS 1.3: A issues, B resumes it, then neither does.
        let t = openssl_connect(a.addr, Version::Tls13, None).session;
        let seen: Vec<bool> = [&b, &a, &b]
            .iter()
            .map(|srv| openssl_connect(srv.addr, Version::Tls13, Some(&t)).resumed)
            .collect();
        assert_eq!(seen, [true, false, false], "TLS 1.3, tiered={tiered}");

        let (sa, sb) = (cache_a.stats(), cache_b.stats());
        assert_eq!(
            sa.errors + sb.errors + sa.corrupt + sb.corrupt,
            0,
            "{sa:?} {sb:?}"
        );
        assert_eq!(sa.hits + sb.hits, 4, "{sa:?} {sb:?}");
    }
}

#[test]
fn a_ticket_offered_to_both_servers_at_once_resumes_once() {
    let redis = redis();
    let keys = KeyRing::generate().unwrap();
    let [(_, a), (_, b)] = fleet(&redis, &keys, false);
    let (a, b) = (a.addr, b.addr);
    for round in 0..8 {
        let ticket = openssl_connect(a, Version::Tls13, None).session;
        let start = Arc::new(Barrier::new(2));
        let offers: Vec<_> = [a, b]
            .into_iter()
            .map(|addr| {
                let (ticket, start) = (ticket.clone(), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    openssl_connect(addr, Version::Tls13, Some(&ticket)).resumed
                })
            })
            .collect();
        let resumed: Vec<bool> = offers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            resumed.iter().filter(|r| **r).count(),
            1,
            "round {round}: A and B resumed {resumed:?}"
        );
    }
}

#[test]
fn openssl_and_rustls_servers_on_one_redis_resume_their_own_sessions_only() {
    let redis = redis();
    let keys = KeyRing::generate().unwrap();
    let openssl_cache = tls_session_cache_openssl::SessionCache::builder()
        .store(redis_store(&redis, &keys))
        .context(b"openssl-svc")
        .build()
        .unwrap();
    let rustls = rustls_cache(redis_store(&redis, &keys), b"rustls-svc");
    let o = TestServer::openssl(&openssl_cache);
    let r = TestServer::rustls(&rustls);
    for version in Version::BOTH {
        // The OpenSSL server's session: not on rustls; still on OpenSSL
        // (the miss on rustls consumed nothing, even a TLS 1.3 ticket).
        let s = openssl_connect(o.addr, version, None).session;
        assert!(
            !openssl_connect(r.addr, version, Some(&s)).resumed,
            "{version:?}"
        );
        assert!(
            openssl_connect(o.addr, version, Some(&s)).resumed,
            "{version:?}"
        );
        // And the other way round.
        let s = openssl_connect(r.addr, version, None).session;
        assert!(
            !openssl_connect(o.addr, version, Some(&s)).resumed,
            "{version:?}"
        );
        assert!(
            openssl_connect(r.addr, version, Some(&s)).resumed,
            "{version:?}"
        );
    }
    // Neither ever read the other's bytes.
    let rs = rustls.stats();
    assert_eq!((rs.corrupt, rs.mismatched, rs.errors), (0, 0, 0), "{rs:?}");
    assert_eq!((rs.hits, rs.misses), (2, 2), "{rs:?}");
    let os = openssl_cache.stats();
    assert_eq!((os.corrupt, os.mismatched, os.errors), (0, 0, 0), "{os:?}");
    assert_eq!((os.hits, os.misses), (2, 2), "{os:?}");
}

#[test]
fn one_context_shared_by_mistake_is_a_counted_miss_not_a_failure() {
    let redis = redis();
    let keys = KeyRing::generate().unwrap();
    let openssl_cache = tls_session_cache_openssl::SessionCache::builder()
        .store(redis_store(&redis, &keys))
        .context(b"same")
        .build()
        .unwrap();
    let rustls = rustls_cache(redis_store(&redis, &keys), b"same");
    let o = TestServer::openssl(&openssl_cache);
    let r = TestServer::rustls(&rustls);
    // TLS 1.2: the same key; rustls finds OpenSSL's DER, counts it, leaves it.
    let s = openssl_connect(o.addr, Version::Tls12, None).session;
    assert!(!openssl_connect(r.addr, Version::Tls12, Some(&s)).resumed);
    assert!(openssl_connect(o.addr, Version::Tls12, Some(&s)).resumed);
    let rs = rustls.stats();
    assert_eq!((rs.corrupt, rs.misses, rs.hits), (1, 1, 0), "{rs:?}");
    // And OpenSSL finds rustls's bytes: a counted miss on its side.
    let s = openssl_connect(r.addr, Version::Tls12, None).session;
    assert!(!openssl_connect(o.addr, Version::Tls12, Some(&s)).resumed);
    // rustls's bytes are refused by the binding's compact-format check
    // (`mismatched`) or by `d2i` (`corrupt`): either way a counted miss.
    let os = openssl_cache.stats();
    assert!(os.corrupt + os.mismatched >= 1, "{os:?}");
    assert_eq!(os.errors, 0, "{os:?}");
}

#[test]
fn two_rustls_servers_on_a_redis_cluster_spend_a_ticket_once() {
    let cluster = tls_session_cache_testkit::RedisCluster::start(3)
        .unwrap_or_else(|e| panic!("cannot start a Redis Cluster (redis-server, redis-cli): {e}"));
    let keys = KeyRing::generate().unwrap();
    let [(cache_a, a), (cache_b, b)] = [0, 1].map(|_| {
        let store = tls_session_cache_redis::RedisStore::cluster_builder(cluster.node_urls())
            .seal_keys(keys.clone())
            .timeouts(std::time::Duration::from_secs(2))
            .build()
            .expect("cluster store");
        let cache = rustls_cache(store, b"svc");
        let server = TestServer::rustls(&cache);
        (cache, server)
    });
    // Several sessions, so that their keys land on different nodes.
    for _ in 0..4 {
        let s = openssl_connect(a.addr, Version::Tls12, None).session;
        assert!(openssl_connect(b.addr, Version::Tls12, Some(&s)).resumed);
        assert!(openssl_connect(a.addr, Version::Tls12, Some(&s)).resumed);
        let t = openssl_connect(a.addr, Version::Tls13, None).session;
        assert!(openssl_connect(b.addr, Version::Tls13, Some(&t)).resumed);
        assert!(!openssl_connect(a.addr, Version::Tls13, Some(&t)).resumed);
    }
    let (sa, sb) = (cache_a.stats(), cache_b.stats());
    assert_eq!(sa.errors + sb.errors, 0, "{sa:?} {sb:?}");
}
