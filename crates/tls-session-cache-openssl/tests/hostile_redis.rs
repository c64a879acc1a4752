//! Real TLS handshakes through the binding with a hostile Redis behind the
//! cache (issue 15): a fake Redis that drips, floods or never answers, and
//! a real `redis-server` whose values someone with write access replaces.
//! Handshakes fall back to full, within the store's budget, and the store
//! counts what happened.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use openssl::ssl::SslVersion;
use tls_session_cache_openssl::SessionCache;
use tls_session_cache_redis::{KeyRing, RedisStore};
use tls_session_cache_testkit::{FakeRedis, RedisServer, Reply, bulk};

const BUDGET: Duration = Duration::from_millis(100);
/// A handshake makes one lookup and, after a full handshake, one put per
/// session (two tickets in TLS 1.3, one session in 1.2): a few budgets,
/// plus generous slack for a loaded machine.
const BOUND: Duration = Duration::from_secs(2);

fn store(url: &str) -> Arc<RedisStore> {
    Arc::new(
        RedisStore::builder(url)
            .seal_keys(KeyRing::new([9; 32]))
            .timeouts(BUDGET)
            .circuit_breaker(1000, Duration::from_millis(10), Duration::from_millis(10))
            .build()
            .unwrap(),
    )
}

#[test]
fn handshakes_fall_back_to_full_within_the_budget_when_redis_is_hostile() {
    let scenarios: Vec<(&str, Reply)> = vec![
        (
            "drips one byte every 30 ms",
            Reply::Drip {
                bytes: bulk(&[b'v'; 200]),
                every: Duration::from_millis(30),
            },
        ),
        (
            "floods a 1 GiB bulk string",
            Reply::Flood {
                header: b"$1073741824\r\n".to_vec(),
                len: 1 << 30,
            },
        ),
        ("never answers", Reply::Silent),
        ("answers the wrong type", Reply::Raw(b":1\r\n".to_vec())),
    ];
    for (what, reply) in scenarios {
        let fake = FakeRedis::start(move |_: &[Vec<u8>]| reply.clone()).unwrap();
        let store = store(&fake.url());
        let cache = SessionCache::builder()
            .context(b"hostile")
            .store(Arc::clone(&store))
            .build()
            .unwrap();
        let server = server_with(&cache);
        for version in [SslVersion::TLS1_2, SslVersion::TLS1_3] {
            let client = Client::new(version);
            let start = Instant::now();
            let first = client.connect(server.addr, None);
            assert!(!first.resumed);
            assert!(!server.accepted().resumed);
            let offered = first.last_session();
            let again = client.connect(server.addr, Some(&offered));
            let seen = server.accepted();
            let took = start.elapsed();
            assert!(
                !again.resumed && !seen.resumed,
                "{what} {version:?}: resumed"
            );
            assert_eq!(again.response, "full\n", "{what} {version:?}");
            assert!(
                took < BOUND * 2,
                "{what} {version:?}: two handshakes took {took:?}"
            );
        }
        let stats = cache.stats();
        assert!(stats.lookups >= 2, "{what}: {stats:?}");
        assert_eq!(stats.hits, 0, "{what}: {stats:?}");
        assert!(
            stats.store.errors >= 2,
            "{what}: errors not counted: {stats:?}"
        );
    }
}

fn redis() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("cannot start redis-server: {e}"))
}

/// Every session value in Redis now: (name, bytes).
fn dump(con: &mut redis::Connection) -> Vec<(Vec<u8>, Vec<u8>)> {
    let names: Vec<Vec<u8>> = redis::cmd("KEYS").arg("tls-session:*").query(con).unwrap();
    names
        .into_iter()
        .filter_map(|n| {
            let v: Option<Vec<u8>> = redis::cmd("GET").arg(&n).query(con).unwrap();
            v.map(|v| (n, v))
        })
        .collect()
}

fn restore(con: &mut redis::Connection, values: &[(Vec<u8>, Vec<u8>)]) {
    for (n, v) in values {
        let _: () = redis::cmd("SET")
            .arg(n)
            .arg(v)
            .arg("EX")
            .arg(300)
            .query(con)
            .unwrap();
    }
}

#[test]
fn a_ticket_written_back_into_redis_after_use_does_not_resume_again() {
    replayed_ticket(true);
}

#[test]
fn without_the_replay_memory_a_ticket_written_back_resumes_again() {
    // The attack the memory stops is real: the control.
    replayed_ticket(false);
}

fn replayed_ticket(remember: bool) {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let store = Arc::new(
        RedisStore::builder(&redis.url())
            .seal_keys(KeyRing::new([9; 32]))
            .timeouts(Duration::from_secs(2))
            .replay_memory(if remember { 65_536 } else { 0 })
            .build()
            .unwrap(),
    );
    let cache = SessionCache::builder()
        .context(b"replay")
        .store(Arc::clone(&store))
        .build()
        .unwrap();
    let server = server_with(&cache);
    let client = Client::new(SslVersion::TLS1_3);
    let first = client.connect(server.addr, None);
    server.accepted();
    let ticket = copy(&first.sessions[0]);
    let stored = dump(&mut con);
    assert_eq!(stored.len(), 2, "two tickets stored");
    // A fresh copy per offer: the client's OpenSSL marks a TLS 1.3 ticket
    // object it has used as not resumable.
    let resumed = client.connect(server.addr, Some(&copy(&ticket)));
    assert!(
        resumed.resumed && server.accepted().resumed,
        "first use resumes"
    );
    // Someone with write access to Redis restores the values read before.
    restore(&mut con, &stored);
    let replay = client.connect(server.addr, Some(&copy(&ticket)));
    assert_eq!(cache.stats().lookups, 2, "the ticket was offered twice");
    let seen = server.accepted();
    assert_eq!(replay.resumed, seen.resumed);
    if remember {
        assert!(!replay.resumed, "the replay resumed");
        assert_eq!(store.redis_stats().replays, 1);
    } else {
        assert!(replay.resumed, "control: the written-back ticket resumes");
        assert_eq!(store.redis_stats().replays, 0);
    }
}

#[test]
fn another_sessions_value_under_a_name_does_not_resume() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let store = store(&redis.url());
    let cache = SessionCache::builder()
        .context(b"swap")
        .store(Arc::clone(&store))
        .build()
        .unwrap();
    let server = server_with(&cache);
    let client = Client::new(SslVersion::TLS1_2);
    let a = client.connect(server.addr, None).last_session();
    server.accepted();
    let before = dump(&mut con);
    let _b = client.connect(server.addr, None).last_session();
    server.accepted();
    let all = dump(&mut con);
    assert_eq!(all.len(), 2);
    let (a_name, _) = before[0].clone();
    let (_, b_value) = all.iter().find(|(n, _)| *n != a_name).unwrap().clone();
    // B's value under A's name: sealed to B's name, it does not open.
    restore(&mut con, &[(a_name, b_value)]);
    let again = client.connect(server.addr, Some(&a));
    assert!(!again.resumed && !server.accepted().resumed);
    assert_eq!(store.redis_stats().corrupt, 1);
}
