//! The async store against a hostile `FakeRedis`: every call returns
//! within its budget plus generous slack, fails counted, and a huge reply
//! is refused before it is read whole.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tls_session_cache::Protocol;
use tls_session_cache_redis::{AsyncRedisStore, RedisStore};
use tls_session_cache_testkit::{FakeRedis, Reply, bulk};

const TIMEOUT: Duration = Duration::from_millis(100);
/// connect + read + write timeouts: what one async call may take.
const BUDGET: Duration = Duration::from_millis(300);
const SLACK: Duration = Duration::from_millis(900);

fn store(url: &str) -> AsyncRedisStore {
    RedisStore::builder(url)
        .seal_keys(ring(7))
        .timeouts(TIMEOUT)
        .circuit_breaker(1000, Duration::from_millis(10), Duration::from_millis(10))
        .build_async()
        .unwrap()
}

fn fake(reply: Reply) -> FakeRedis {
    FakeRedis::start(move |cmd: &[Vec<u8>]| match cmd[0].as_slice() {
        b"PING" => Reply::simple("PONG"),
        _ => reply.clone(),
    })
    .unwrap()
}

async fn bounded<T: std::fmt::Debug>(
    what: &str,
    op: &str,
    f: impl std::future::Future<Output = T>,
) -> T {
    let start = Instant::now();
    let out = f.await;
    let took = start.elapsed();
    assert!(
        took < BUDGET + SLACK,
        "{what}: {op} took {took:?} (budget {BUDGET:?}): {out:?}"
    );
    out
}

#[tokio::test]
async fn every_async_call_stays_within_its_budget_and_fails_counted() {
    let scenarios = vec![
        ("wrong type", Reply::Raw(b"*1\r\n:7\r\n".to_vec())),
        (
            "a 1 GiB length header and nothing after it",
            Reply::Raw(b"$1073741824\r\n".to_vec()),
        ),
        (
            "truncated then closed",
            Reply::ThenClose(b"$300\r\nabc".to_vec()),
        ),
        ("never answers", Reply::Silent),
        ("closes", Reply::Close),
        (
            "drips",
            Reply::Drip {
                bytes: bulk(&[b'v'; 100]),
                every: Duration::from_millis(30),
            },
        ),
    ];
    for (what, reply) in scenarios {
        let fake = fake(reply);
        let store = store(&fake.url());
        let key = random_key(b"hostile-async");
        let s = session(Protocol::Tls12, 300);
        let before = store.stats().errors;
        let put = bounded(what, "put", store.put(&key, &s)).await;
        let got = bounded(what, "get", store.get(&key)).await;
        let taken = bounded(what, "take", store.take(&key)).await;
        let removed = bounded(what, "remove", store.remove(&key)).await;
        // A SET's reply is not looked at: put may pass a wrong type. A
        // wrong-typed lookup reply may also be read as bytes that then do
        // not open (a miss counted as corrupt): never a hit, always counted.
        assert!(put.is_err() || what == "wrong type", "{what}: put {put:?}");
        assert!(matches!(got, Err(_) | Ok(None)), "{what}: get {got:?}");
        assert!(matches!(taken, Err(_) | Ok(None)), "{what}: take {taken:?}");
        assert!(
            removed.is_err() || what == "wrong type",
            "{what}: remove {removed:?}"
        );
        assert!(got.is_err() || what == "wrong type", "{what}: get {got:?}");
        assert!(
            taken.is_err() || what == "wrong type",
            "{what}: take {taken:?}"
        );
        let failed = [
            put.is_err(),
            got.is_err() || got.as_ref().is_ok_and(|v| v.is_none()),
            taken.is_err() || taken.as_ref().is_ok_and(|v| v.is_none()),
            removed.is_err() || removed.as_ref().is_ok_and(|r| !r),
        ]
        .iter()
        .filter(|f| **f)
        .count() as u64;
        assert_eq!(
            store.stats().errors - before,
            failed,
            "{what}: errors not counted"
        );
    }
}

#[tokio::test]
async fn a_huge_reply_to_the_async_store_is_refused_and_its_connection_dropped() {
    let fake = fake(Reply::Flood {
        header: b"$1073741824\r\n".to_vec(),
        len: 1 << 30,
    });
    let store = RedisStore::builder(&fake.url())
        .seal_keys(ring(7))
        .timeouts(Duration::from_secs(3))
        .build_async()
        .unwrap();
    let key = random_key(b"flood-async");
    let start = Instant::now();
    let r = store.get(&key).await;
    assert!(r.is_err(), "{r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(store.redis_stats().oversize_replies, 1);
    assert_eq!(store.redis_stats().timeouts, 0, "refused on size, not time");
    let sent = fake.bytes_sent();
    assert!(sent < 64 << 20, "{sent} bytes sent: the reply was read");
    // The next call opens a new connection.
    let _ = store.get(&key).await;
    assert_eq!(fake.connections(), 2);
}
