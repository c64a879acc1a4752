//! A mixed fleet on one Redis Cluster: the blocking example server and two
//! async example servers (`--store redis+cluster://…` and
//! `--store tiered+redis+cluster://…`) resume each other's sessions, and a
//! TLS 1.3 ticket resumes once across all three.

use tls_session_cache_e2e::{
    KeyFile, ServerProcess, Version, async_server_binary, connect, counter, stats,
};
use tls_session_cache_testkit::RedisCluster;

const KEY: &str = "4f1c2a3b5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";

fn fleet_args<'a>(store: &'a str, keys: &'a KeyFile) -> Vec<&'a str> {
    let path = keys.path().to_str().expect("utf-8 temp path");
    vec!["--store", store, "--seal-key-file", path]
}

#[test]
fn async_servers_on_a_redis_cluster_share_sessions_with_a_blocking_one() {
    let cluster = match RedisCluster::start(3) {
        Ok(c) => c,
        Err(e) => panic!("cannot start a Redis Cluster: {e}"),
    };
    let url = cluster.url();
    let tiered = format!("tiered+{url}");
    let keys = KeyFile::new(&[KEY]);
    let blocking = ServerProcess::start(&fleet_args(&url, &keys));
    let async_cluster =
        ServerProcess::start_binary(&async_server_binary(), &fleet_args(&url, &keys));
    let async_tiered =
        ServerProcess::start_binary(&async_server_binary(), &fleet_args(&tiered, &keys));
    let fleet = [&blocking, &async_cluster, &async_tiered];

    // Several sessions, so that they land on more than one master; each
    // made on one server and resumed on the next.
    for i in 0..6 {
        let (from, to) = (fleet[i % 3], fleet[(i + 1) % 3]);
        let v12 = connect(from.addr(), Version::Tls12, None);
        assert!(!v12.resumed);
        let there = connect(to.addr(), Version::Tls12, Some(&v12.session));
        assert!(
            there.resumed,
            "TLS 1.2 session {i} not resumed on the next server:\n{}",
            to.stderr()
        );
        let v13 = connect(from.addr(), Version::Tls13, None);
        let there = connect(to.addr(), Version::Tls13, Some(&v13.session));
        assert!(
            there.resumed,
            "TLS 1.3 ticket {i} not resumed on the next server:\n{}",
            to.stderr()
        );
        let third = fleet[(i + 2) % 3];
        let replay = connect(third.addr(), Version::Tls13, Some(&v13.session));
        assert!(!replay.resumed, "TLS 1.3 ticket {i} resumed twice");
    }
    for (name, server) in [("cluster", &async_cluster), ("tiered", &async_tiered)] {
        let s = stats(server.addr());
        // Each server resumed 2 TLS 1.2 sessions and 2 TLS 1.3 tickets.
        assert_eq!(counter(&s, "resumed"), 4, "{name}: {s}");
        assert_eq!(counter(&s, "errors"), 0, "{name}: {s}");
        assert_eq!(counter(&s, "async.lookup_errors"), 0, "{name}: {s}");
        assert_eq!(counter(&s, "redis.timeouts"), 0, "{name}: {s}");
        assert_eq!(s["redis"]["circuit"], "closed", "{name}: {s}");
    }
    let s = stats(async_tiered.addr());
    // The tiered server's /stats says how many lookups its local tier
    // answered (none here: each session was looked up once per server).
    assert_eq!(counter(&s, "redis.local_hits"), 0, "{s}");
}
