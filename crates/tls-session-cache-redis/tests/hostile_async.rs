//! The async store against a hostile `FakeRedis`: every call returns
//! within its budget plus generous slack, fails counted, and a huge reply
//! is refused before it is read whole — also when the fake plays a Redis
//! Cluster master (`CLUSTER SLOTS` naming itself), where a slot map naming
//! too many masters is refused and a redirect to an unknown host is not
//! followed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
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

/// A `CLUSTER SLOTS` reply: every slot range `(start, end, port)` served by
/// a master at 127.0.0.1.
fn slots_reply(ranges: &[(u16, u16, u16)]) -> Vec<u8> {
    let mut r = format!("*{}\r\n", ranges.len()).into_bytes();
    for (start, end, port) in ranges {
        r.extend(format!("*3\r\n:{start}\r\n:{end}\r\n*3\r\n").into_bytes());
        r.extend(bulk(b"127.0.0.1"));
        r.extend(format!(":{port}\r\n").into_bytes());
        r.extend(bulk(b"0123456789abcdef0123456789abcdef01234567"));
    }
    r
}

/// A fake Cluster of one master owning every slot (its `CLUSTER SLOTS`
/// names itself) that answers every other command with `reply(command)`.
fn fake_master(reply: impl Fn(&[Vec<u8>]) -> Reply + Send + Sync + 'static) -> FakeRedis {
    let own = Arc::new(AtomicU16::new(0));
    let me = Arc::clone(&own);
    let node = FakeRedis::start(move |cmd: &[Vec<u8>]| match cmd[0].as_slice() {
        b"AUTH" | b"PING" => Reply::simple("OK"),
        b"CLUSTER" => Reply::Raw(slots_reply(&[(0, 16383, me.load(Ordering::Relaxed))])),
        _ => reply(cmd),
    })
    .unwrap();
    own.store(node.port(), Ordering::Relaxed);
    node
}

#[tokio::test]
async fn a_huge_reply_from_an_async_cluster_master_is_refused_and_its_connection_dropped() {
    let node = fake_master(|_| Reply::Flood {
        header: b"$1073741824\r\n".to_vec(),
        len: 1 << 30,
    });
    let store = RedisStore::cluster_builder([format!("redis://127.0.0.1:{}", node.port())])
        .seal_keys(ring(7))
        .timeouts(Duration::from_secs(3))
        .build_async()
        .unwrap();
    let key = random_key(b"flood-cluster");
    let start = Instant::now();
    let r = store.get(&key).await;
    assert!(r.is_err(), "{r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    // The slot map was loaded from the node, which then sent the flood.
    let nodes = store.node_circuits();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(store.redis_stats().oversize_replies, 1);
    assert_eq!(store.redis_stats().timeouts, 0, "refused on size, not time");
    assert_eq!(store.stats().errors, 1);
    let sent = node.bytes_sent();
    assert!(sent < 64 << 20, "{sent} bytes sent: the reply was read");
    assert_eq!(node.connections(), 1);
    // The master's connection was dropped: the next call opens a new one.
    let again = store.get(&key).await;
    assert!(again.is_err(), "{again:?}");
    assert_eq!(node.connections(), 2);
    assert_eq!(store.redis_stats().oversize_replies, 2);
}

#[tokio::test]
async fn an_async_cluster_slot_map_naming_too_many_masters_is_refused() {
    // 1001 masters (the limit is 1000), each a range of 16 slots.
    let ranges: Vec<(u16, u16, u16)> = (0..1001u16)
        .map(|i| (i * 16, i * 16 + 15, 20_000 + i))
        .collect();
    let reply = slots_reply(&ranges);
    let node = FakeRedis::start(move |cmd: &[Vec<u8>]| match cmd[0].as_slice() {
        b"CLUSTER" => Reply::Raw(reply.clone()),
        _ => Reply::nil(),
    })
    .unwrap();
    let store = RedisStore::cluster_builder([format!("redis://127.0.0.1:{}", node.port())])
        .seal_keys(ring(7))
        .timeouts(TIMEOUT)
        .build_async()
        .unwrap();
    let r = store.get(&random_key(b"many-masters")).await;
    assert!(r.is_err(), "a map of 1001 masters was used: {r:?}");
    assert!(store.node_circuits().is_empty(), "no map was installed");
    assert_eq!(store.stats().errors, 1);
    // With 1000 masters the same reply is a map (the limit is not lower).
    let ranges: Vec<(u16, u16, u16)> = ranges[..1000].to_vec();
    let mut ranges = ranges;
    ranges[999].1 = 16383;
    let reply = slots_reply(&ranges);
    let node = FakeRedis::start(move |cmd: &[Vec<u8>]| match cmd[0].as_slice() {
        b"CLUSTER" => Reply::Raw(reply.clone()),
        _ => Reply::nil(),
    })
    .unwrap();
    let store = RedisStore::cluster_builder([format!("redis://127.0.0.1:{}", node.port())])
        .seal_keys(ring(7))
        .timeouts(TIMEOUT)
        .build_async()
        .unwrap();
    let _ = store.get(&random_key(b"many-masters")).await;
    assert_eq!(store.node_circuits().len(), 1000);
}

#[tokio::test]
async fn async_cluster_redirects_to_unknown_hosts_are_not_followed_and_counted() {
    // The host redirects point to: it counts what it is sent.
    let auths = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&auths);
    let outsider = FakeRedis::start(move |cmd: &[Vec<u8>]| {
        if cmd[0] == b"AUTH" {
            seen.fetch_add(1, Ordering::Relaxed);
        }
        Reply::simple("OK")
    })
    .unwrap();
    let target = outsider.port();
    let next = AtomicU64::new(0);
    let node = fake_master(move |_| {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let port = if n.is_multiple_of(2) {
            target
        } else {
            20_000 + (n % 10_000) as u16
        };
        let how = if n % 4 < 2 { "MOVED" } else { "ASK" };
        Reply::error(&format!("{how} 1234 127.0.0.1:{port}"))
    });
    let store = RedisStore::cluster_builder([format!("redis://:secret@127.0.0.1:{}", node.port())])
        .seal_keys(ring(7))
        .timeouts(Duration::from_millis(500))
        .build_async()
        .unwrap();
    for _ in 0..20 {
        let r = store.get(&random_key(b"svc")).await;
        assert!(
            r.is_err(),
            "a redirect out of the cluster was served: {r:?}"
        );
    }
    assert_eq!(
        outsider.connections(),
        0,
        "the store connected to the outsider"
    );
    assert_eq!(auths.load(Ordering::Relaxed), 0);
    assert_eq!(store.redis_stats().unknown_redirects, 20);
    assert_eq!(store.stats().errors, 20);
    let nodes = store.node_circuits();
    assert_eq!(nodes.len(), 1, "redirects grew the node set: {nodes:?}");
}
