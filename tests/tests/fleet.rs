//! Two example servers sharing one Redis and one seal key file resume each
//! other's sessions (interop scenario 7), and a cluster store does the same.

use tls_session_cache_e2e::{
    KeyFile, ServerProcess, Version, connect, counter, start_redis, stats, store_url,
};
use tls_session_cache_testkit::RedisCluster;

const KEY: &str = "4f1c2a3b5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";

fn fleet_args<'a>(store: &'a str, keys: &'a KeyFile) -> Vec<&'a str> {
    let path = keys.path().to_str().expect("utf-8 temp path");
    vec!["--store", store, "--seal-key-file", path]
}

#[test]
fn tls12_session_issued_by_a_resumes_on_b_and_again_on_a() {
    let redis = start_redis();
    let url = store_url(&redis);
    let keys = KeyFile::new(&[KEY]);
    let a = ServerProcess::start(&fleet_args(&url, &keys));
    let b = ServerProcess::start(&fleet_args(&url, &keys));

    let first = connect(a.addr(), Version::Tls12, None);
    assert!(!first.resumed, "first connection must be a full handshake");
    let id = first.body["session_id"].clone();

    let on_b = connect(b.addr(), Version::Tls12, Some(&first.session));
    assert!(
        on_b.resumed,
        "B did not resume A's session; B's log:\n{}",
        b.stderr()
    );
    assert_eq!(on_b.body["session_id"], id, "B resumed another session");

    let again_on_a = connect(a.addr(), Version::Tls12, Some(&on_b.session));
    assert!(
        again_on_a.resumed,
        "A did not resume its own session after B did"
    );
    assert_eq!(again_on_a.body["session_id"], id);

    let sb = stats(b.addr());
    assert_eq!(counter(&sb, "resumed"), 1, "{sb}");
    assert_eq!(counter(&sb, "hits"), 1, "{sb}");
    assert_eq!(counter(&sb, "store.hits"), 1, "{sb}");
    assert_eq!(counter(&sb, "redis.corrupt"), 0, "{sb}");
    assert_eq!(counter(&sb, "errors"), 0, "{sb}");
    let sa = stats(a.addr());
    assert_eq!(counter(&sa, "resumed"), 1, "{sa}");
    assert!(counter(&sa, "stored") >= 1, "{sa}");
}

#[test]
fn tls13_ticket_issued_by_a_resumes_once_across_the_fleet() {
    let redis = start_redis();
    let url = store_url(&redis);
    let keys = KeyFile::new(&[KEY]);
    let a = ServerProcess::start(&fleet_args(&url, &keys));
    let b = ServerProcess::start(&fleet_args(&url, &keys));

    let first = connect(a.addr(), Version::Tls13, None);
    assert!(!first.resumed);

    let on_b = connect(b.addr(), Version::Tls13, Some(&first.session));
    assert!(
        on_b.resumed,
        "B did not resume A's ticket; B's log:\n{}",
        b.stderr()
    );

    // The same ticket again, to the server that issued it: already taken.
    let replay = connect(a.addr(), Version::Tls13, Some(&first.session));
    assert!(
        !replay.resumed,
        "a TLS 1.3 ticket resumed twice in the fleet"
    );

    // The ticket B issued on resumption is good for one resumption on A.
    let chained = connect(a.addr(), Version::Tls13, Some(&on_b.session));
    assert!(chained.resumed, "A did not resume the ticket B issued");

    let sa = stats(a.addr());
    assert_eq!(counter(&sa, "resumed"), 1, "{sa}");
    assert_eq!(counter(&sa, "lookups"), 2, "{sa}");
    assert_eq!(counter(&sa, "misses"), 1, "{sa}");
    let sb = stats(b.addr());
    assert_eq!(counter(&sb, "resumed"), 1, "{sb}");
}

#[test]
fn servers_on_a_redis_cluster_share_sessions() {
    let cluster = match RedisCluster::start(3) {
        Ok(c) => c,
        Err(e) => panic!("cannot start a Redis Cluster: {e}"),
    };
    let url = cluster.url();
    let keys = KeyFile::new(&[KEY]);
    let a = ServerProcess::start(&fleet_args(&url, &keys));
    let b = ServerProcess::start(&fleet_args(&url, &keys));

    // Several sessions, so that they land on more than one shard.
    for i in 0..6 {
        let v12 = connect(a.addr(), Version::Tls12, None);
        let on_b = connect(b.addr(), Version::Tls12, Some(&v12.session));
        assert!(
            on_b.resumed,
            "TLS 1.2 session {i} not resumed on B:\n{}",
            b.stderr()
        );
        let v13 = connect(a.addr(), Version::Tls13, None);
        let on_b = connect(b.addr(), Version::Tls13, Some(&v13.session));
        assert!(
            on_b.resumed,
            "TLS 1.3 ticket {i} not resumed on B:\n{}",
            b.stderr()
        );
        let replay = connect(a.addr(), Version::Tls13, Some(&v13.session));
        assert!(!replay.resumed, "TLS 1.3 ticket {i} resumed twice");
    }
    let sb = stats(b.addr());
    assert_eq!(counter(&sb, "resumed"), 12, "{sb}");
    assert_eq!(counter(&sb, "errors"), 0, "{sb}");
}
