//! Redis Sentinel (issue 12, item 3): two example servers on
//! `redis+sentinel://…`; the master is killed while clients keep
//! connecting; no handshake fails (full handshakes are fine meanwhile), and
//! once Sentinel has promoted the replica, sessions stored after the
//! failover resume across the servers. How long resumption was unavailable
//! is printed (docs/operations.md quotes it), never asserted.

use std::time::{Duration, Instant};

use tls_session_cache_e2e::{KeyFile, ServerProcess, Version, connect, counter, stats};
use tls_session_cache_testkit::RedisSentinel;

const KEY: &str = "5e171e1e5e171e1e5e171e1e5e171e1e5e171e1e5e171e1e5e171e1e5e171e1e";
/// A hang guard, not a timing threshold.
const GUARD: Duration = Duration::from_secs(90);

#[test]
fn sessions_resume_again_after_sentinel_promotes_the_replica() {
    let mut set = RedisSentinel::start(1, &[], None)
        .unwrap_or_else(|e| panic!("cannot start Sentinel, master and replica: {e}"));
    let url = set.url();
    let keys = KeyFile::new(&[KEY]);
    let args = [
        "--store",
        url.as_str(),
        "--seal-key-file",
        keys.path().to_str().expect("utf-8 temp path"),
        // The default budget: this measures the store as deployed.
        "--redis-timeout-ms",
        "50",
    ];
    let a = ServerProcess::start(&args);
    let b = ServerProcess::start(&args);
    let first = connect(a.addr(), Version::Tls12, None);
    assert!(connect(b.addr(), Version::Tls12, Some(&first.session)).resumed);

    set.kill_master().expect("kill the master");
    let killed = Instant::now();
    // Load: a session issued on A is offered to B, alternating versions,
    // until one issued after the kill resumes (every `connect` panics if a
    // handshake fails, so "no handshake fails" is checked on each one).
    let mut handshakes = 0u32;
    let mut slowest = Duration::ZERO;
    let unavailable = 'load: loop {
        for version in [Version::Tls12, Version::Tls13] {
            let started = Instant::now();
            let fresh = connect(a.addr(), version, None);
            let on_b = connect(b.addr(), version, Some(&fresh.session));
            slowest = slowest.max(started.elapsed());
            handshakes += 2;
            if on_b.resumed {
                break 'load killed.elapsed();
            }
        }
        assert!(
            killed.elapsed() < GUARD,
            "no resumption {GUARD:?} after the kill"
        );
    };
    let promoted = set.wait_failover().expect("Sentinel promoted the replica");
    println!(
        "sentinel failover (e2e, --redis-timeout-ms 50, down-after-milliseconds 1000): \
         resumption unavailable for {unavailable:?} after the master was killed; \
         {handshakes} handshakes meanwhile, none failed; slowest issue+offer pair {slowest:?}; \
         every sentinel reported the new master {promoted:?} after that"
    );
    // Sessions stored after the failover resume, both versions, both ways.
    for version in [Version::Tls12, Version::Tls13] {
        let fresh = connect(b.addr(), version, None);
        assert!(
            connect(a.addr(), version, Some(&fresh.session)).resumed,
            "{version:?}"
        );
    }
    let sa = stats(a.addr());
    assert!(counter(&sa, "redis.master_changes") >= 1, "{sa}");
    assert_eq!(counter(&sa, "panics"), 0, "{sa}");
}
