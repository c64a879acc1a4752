//! A Redis Cluster node that redirects to hosts outside the cluster: the
//! store neither connects there (so the credentials are never sent to
//! them) nor grows its set of nodes. Played by the test kit's `FakeRedis`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use tls_session_cache::SessionStore;
use tls_session_cache_redis::RedisStore;
use tls_session_cache_testkit::{FakeRedis, Reply, bulk};

#[test]
fn redirects_to_unknown_hosts_are_not_followed_and_get_no_credentials() {
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
    // A cluster of one node that owns every slot, and answers every key
    // command with a MOVED to the outsider (or, with a counter, to ever
    // new ports: a node set that redirects could grow).
    let own = Arc::new(AtomicU16::new(0));
    let me = Arc::clone(&own);
    let next = Arc::new(AtomicU64::new(0));
    let node = FakeRedis::start(move |cmd: &[Vec<u8>]| match cmd[0].as_slice() {
        b"AUTH" | b"PING" => Reply::simple("OK"),
        b"CLUSTER" => {
            let port = me.load(Ordering::Relaxed);
            let mut r = b"*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n".to_vec();
            r.extend(bulk(b"127.0.0.1"));
            r.extend(format!(":{port}\r\n").into_bytes());
            r.extend(bulk(b"0123456789abcdef0123456789abcdef01234567"));
            Reply::Raw(r)
        }
        _ => {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let port = if n.is_multiple_of(2) {
                target
            } else {
                20_000 + (n % 10_000) as u16
            };
            Reply::error(&format!("MOVED 1234 127.0.0.1:{port}"))
        }
    })
    .unwrap();
    own.store(node.port(), Ordering::Relaxed);
    let store = RedisStore::cluster_builder([format!("redis://:secret@127.0.0.1:{}", node.port())])
        .seal_keys(ring(7))
        .timeouts(Duration::from_millis(500))
        .build()
        .unwrap();
    for _ in 0..50 {
        let key = random_key(b"svc");
        assert!(
            store.get(&key).is_err(),
            "a redirect out of the cluster was served"
        );
    }
    assert_eq!(
        outsider.connections(),
        0,
        "the store connected to the outsider"
    );
    assert_eq!(auths.load(Ordering::Relaxed), 0);
    assert_eq!(store.redis_stats().unknown_redirects, 50);
    assert_eq!(store.stats().errors, 50);
    let nodes = store.node_circuits();
    assert_eq!(nodes.len(), 1, "redirects grew the node set: {nodes:?}");
}
