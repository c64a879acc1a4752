//! Redis stopped: handshakes still succeed, as full handshakes, and the
//! failures are counted; Redis started again on the same port: resumption
//! comes back without restarting the server (interop scenario 9).

use std::thread;
use std::time::{Duration, Instant};

use tls_session_cache_e2e::{
    KeyFile, ServerProcess, Version, connect, counter, start_redis, stats, store_url,
};

const KEY: &str = "0badc0ffee0ddf00d15ea5e0123456789abcdef0123456789abcdef012345678";

/// How long recovery may take: the circuit breaker's back-off starts at 1 s
/// and doubles per failed probe (cap 30 s); this is a hang guard.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(90);
/// Pause between recovery attempts (a polling interval, not a synchronisation).
const RECOVERY_POLL: Duration = Duration::from_millis(100);

#[test]
fn redis_down_gives_full_handshakes_and_recovers_without_a_server_restart() {
    let mut redis = start_redis();
    let url = store_url(&redis);
    let keys = KeyFile::new(&[KEY]);
    let server = ServerProcess::start(&[
        "--store",
        &url,
        "--seal-key-file",
        keys.path().to_str().expect("utf-8 temp path"),
    ]);

    // Working store first: a TLS 1.2 session resumes.
    let saved = connect(server.addr(), Version::Tls12, None);
    assert!(connect(server.addr(), Version::Tls12, Some(&saved.session)).resumed);

    redis.stop().expect("stop redis");
    for i in 0..4 {
        let out = connect(server.addr(), Version::Tls12, Some(&saved.session));
        assert!(!out.resumed, "attempt {i}: resumed with Redis down");
        let out = connect(server.addr(), Version::Tls13, None);
        assert!(!out.resumed);
    }
    let down = stats(server.addr());
    assert_eq!(counter(&down, "resumed"), 1, "{down}");
    assert!(
        counter(&down, "errors") >= 4,
        "binding errors not counted: {down}"
    );
    assert!(counter(&down, "store.errors") >= 5, "{down}");
    assert!(counter(&down, "redis.circuit_opens") >= 1, "{down}");
    assert_eq!(counter(&down, "panics"), 0, "{down}");

    redis.restart().expect("restart redis on the same port");
    let deadline = Instant::now() + RECOVERY_DEADLINE;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let fresh = connect(server.addr(), Version::Tls12, None);
        if connect(server.addr(), Version::Tls12, Some(&fresh.session)).resumed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no resumption after {attempts} attempts with Redis back; log:\n{}",
            server.stderr()
        );
        thread::sleep(RECOVERY_POLL);
    }
    let tls13 = connect(server.addr(), Version::Tls13, None);
    assert!(
        connect(server.addr(), Version::Tls13, Some(&tls13.session)).resumed,
        "TLS 1.3 did not resume after recovery"
    );
    let up = stats(server.addr());
    assert_eq!(up["redis"]["circuit"], "closed", "{up}");
    assert!(counter(&up, "resumed") >= 3, "{up}");
}

#[test]
fn redis_down_at_start_does_not_stop_the_server() {
    let mut redis = start_redis();
    let url = store_url(&redis);
    redis.stop().expect("stop redis");
    let keys = KeyFile::new(&[KEY]);
    let mut server = ServerProcess::start(&[
        "--store",
        &url,
        "--seal-key-file",
        keys.path().to_str().expect("utf-8 temp path"),
    ]);
    let out = connect(server.addr(), Version::Tls12, None);
    assert!(!out.resumed);
    let s = stats(server.addr());
    assert!(counter(&s, "store.errors") >= 1, "{s}");
    server.stop_cleanly();
    let log = server.stderr();
    assert!(
        log.contains("does not answer"),
        "no start-up warning:\n{log}"
    );
}
