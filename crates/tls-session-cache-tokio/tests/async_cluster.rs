//! Real handshakes through two async servers sharing a real 3-master Redis
//! Cluster (the async Cluster store, and the async tiered store in front
//! of it): sessions resume on the other server, TLS 1.3 tickets once
//! across both, and a frozen master turns its sessions' resumptions into
//! full handshakes within the store's deadline, never failed ones.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{AsyncServer, Client};
use openssl::ssl::{SslSession, SslVersion};
use tls_session_cache::{MemoryStore, Protocol, SessionKey};
use tls_session_cache_openssl::SessionCache;
use tls_session_cache_redis::{
    AsyncRedisStore, AsyncTieredStore, CircuitState, KeyRing, RedisKey, RedisStore,
};
use tls_session_cache_testkit::RedisCluster;
use tls_session_cache_tokio::{AsyncSessionCache, AsyncSessionStore};

const TLS12: SslVersion = SslVersion::TLS1_2;
const TLS13: SslVersion = SslVersion::TLS1_3;
const CONTEXT: &[u8] = b"async-cluster";

fn cluster() -> RedisCluster {
    RedisCluster::start(3).unwrap_or_else(|e| panic!("cannot start a Redis Cluster: {e}"))
}

fn store(url: &str, timeout: Duration) -> AsyncRedisStore {
    RedisStore::builder(url)
        .seal_keys(KeyRing::new([0x42; 32]))
        .timeouts(timeout)
        // A back-off longer than the test: no probe muddles the counts.
        .circuit_breaker(3, Duration::from_secs(600), Duration::from_secs(600))
        .build_async()
        .unwrap()
}

/// A server on the cluster, and its store (for the store's own counters).
fn cluster_server(url: &str, timeout: Duration) -> (AsyncServer, Arc<AsyncRedisStore>) {
    let store = Arc::new(store(url, timeout));
    let shared = Arc::clone(&store) as Arc<dyn AsyncSessionStore>;
    let server = AsyncServer::start(move || {
        AsyncSessionCache::builder_arc(shared)
            .session_cache(SessionCache::builder().context(CONTEXT))
    });
    (server, store)
}

fn tiered_server(url: String) -> AsyncServer {
    AsyncServer::start(move || {
        let tiered = AsyncTieredStore::new(
            MemoryStore::with_capacity_bytes(1 << 20),
            store(&url, Duration::from_secs(2)),
        );
        AsyncSessionCache::builder(tiered).session_cache(SessionCache::builder().context(CONTEXT))
    })
}

/// Which master (index into `cluster.nodes()`) holds each Redis key.
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

/// TLS 1.2 sessions made on `a` resume on `b` (and on `a`); TLS 1.3
/// tickets made on `a` resume once across both.
fn resumes_across(a: &AsyncServer, b: &AsyncServer) {
    let client = Client::new(TLS12);
    for _ in 0..5 {
        let first = client.connect(a.addr, None);
        assert!(!first.resumed);
        assert!(!a.accepted().resumed);
        let session = first.last_session();
        let there = client.connect(b.addr, Some(&session));
        assert!(there.resumed, "a TLS 1.2 session made on A resumes on B");
        assert!(b.accepted().resumed);
        let back = client.connect(a.addr, Some(&session));
        assert!(back.resumed);
        assert!(a.accepted().resumed);
    }

    let client = Client::new(TLS13);
    let first = client.connect(a.addr, None);
    assert!(!a.accepted().resumed);
    let ticket = first.sessions[0].clone();
    let copy = SslSession::from_der(&ticket.to_der().unwrap()).unwrap();
    let there = client.connect(b.addr, Some(&ticket));
    assert!(there.resumed, "a TLS 1.3 ticket made on A resumes on B");
    assert!(b.accepted().resumed);
    let replay = client.connect(a.addr, Some(&copy));
    assert!(
        !replay.resumed,
        "a TLS 1.3 ticket resumes once across the fleet"
    );
    assert!(!a.accepted().resumed);
}

#[test]
fn sessions_resume_across_two_async_servers_on_a_cluster() {
    let cluster = cluster();
    let (a, store_a) = cluster_server(&cluster.url(), Duration::from_secs(2));
    let (b, store_b) = cluster_server(&cluster.url(), Duration::from_secs(2));
    resumes_across(&a, &b);
    for s in [&a, &b] {
        let st = s.cache.async_stats();
        assert_eq!((st.lookup_errors, st.write_errors), (0, 0), "{st:?}");
    }
    // Both servers' sessions went to all three masters.
    for store in [&store_a, &store_b] {
        let circuits = store.node_circuits();
        assert_eq!(circuits.len(), 3, "{circuits:?}");
        assert!(circuits.iter().all(|(_, c)| *c == CircuitState::Closed));
    }
}

#[test]
fn sessions_resume_across_two_async_servers_with_tiered_cluster_stores() {
    let cluster = cluster();
    let a = tiered_server(cluster.url());
    let b = tiered_server(cluster.url());
    resumes_across(&a, &b);
}

/// Many TLS 1.2 sessions spread over the three masters; then master 0 is
/// frozen (SIGSTOP). Resumption on the other server: sessions on the
/// healthy masters resume, those on the frozen one fall back to full
/// handshakes — each within the deadline (plus generous slack) until that
/// master's breaker opens, then at once — and no handshake fails.
#[test]
fn a_frozen_master_makes_its_sessions_full_handshakes_and_the_others_resume() {
    const SESSIONS: usize = 30;
    let timeout = Duration::from_millis(300);
    let budget = 3 * timeout;
    let cluster = cluster();
    let frozen = cluster.node(0).unwrap().addr();
    let (a, _) = cluster_server(&cluster.url(), timeout);
    let (b, store_b) = cluster_server(&cluster.url(), timeout);
    let naming = RedisStore::builder(&cluster.url())
        .insecure_plaintext()
        .build()
        .unwrap();

    let client = Client::new(TLS12);
    let mut sessions = Vec::new();
    let mut rkeys = Vec::new();
    for _ in 0..SESSIONS {
        let first = client.connect(a.addr, None);
        assert!(!a.accepted().resumed);
        let session = first.last_session();
        let key = SessionKey::from_slices(Protocol::Tls12, CONTEXT, session.id()).unwrap();
        rkeys.push(naming.redis_key(&key));
        sessions.push(session);
    }
    let owner = owners(&cluster, &rkeys);
    let on_frozen = owner.iter().filter(|&&o| o == 0).count();
    assert!(on_frozen >= 3, "only {on_frozen} sessions on master 0");
    assert!(owner.iter().any(|&o| o != 0));

    cluster.node(0).unwrap().pause().unwrap();
    let mut took = Vec::new();
    let mut wrong = Vec::new();
    for (i, (session, &o)) in sessions.iter().zip(&owner).enumerate() {
        let started = Instant::now();
        let again = client.connect(b.addr, Some(session));
        took.push(started.elapsed());
        let seen = b.outcome();
        let expected = o != 0;
        if again.resumed != expected || seen.as_ref().map(|s| s.resumed) != Ok(expected) {
            wrong.push((i, o, again.resumed, seen));
        }
    }
    let stats = b.cache.async_stats();
    let circuits = store_b.node_circuits();
    let redis_stats = store_b.redis_stats();
    cluster.node(0).unwrap().resume().unwrap();
    let ms: Vec<u128> = took.iter().map(|d| d.as_millis()).collect();
    println!(
        "{on_frozen} of {SESSIONS} sessions on the frozen master; handshakes on B (ms): {ms:?}; \
         {stats:?}; {redis_stats:?}; {circuits:?}"
    );
    assert!(
        wrong.is_empty(),
        "(index, master, resumed, server) {wrong:?}"
    );
    let slowest = took.iter().max().copied().unwrap_or_default();
    // A lookup waits one deadline at most; the full handshake's new session
    // is written (and flushed) before the response: one more.
    assert!(
        slowest <= 2 * budget + Duration::from_secs(3),
        "a handshake took {slowest:?}"
    );
    assert_eq!(stats.found as usize, SESSIONS - on_frozen, "{stats:?}");
    assert_eq!(stats.lookup_errors as usize, on_frozen, "{stats:?}");
    // The frozen master's breaker, and only it, opened: after 3 timeouts
    // (lookups or the full handshakes' new sessions), the rest were
    // refused at once.
    let open: Vec<&String> = circuits
        .iter()
        .filter(|(_, c)| *c == CircuitState::Open)
        .map(|(a, _)| a)
        .collect();
    assert_eq!(open, vec![&frozen], "{circuits:?}");
    assert_eq!(
        (redis_stats.circuit_opens, redis_stats.timeouts),
        (1, 3),
        "{redis_stats:?}"
    );
    assert!(redis_stats.circuit_open_rejections >= 1, "{redis_stats:?}");
}
