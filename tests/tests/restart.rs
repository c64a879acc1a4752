//! A server restarts between two connections; Redis kept the session, so
//! the restarted server resumes it (interop scenario 8).

use tls_session_cache_e2e::{KeyFile, ServerProcess, Version, connect, start_redis, store_url};

const KEY: &str = "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9";

fn resumes_after_restart(version: Version) {
    let redis = start_redis();
    let url = store_url(&redis);
    let keys = KeyFile::new(&[KEY]);
    let args = [
        "--store",
        url.as_str(),
        "--seal-key-file",
        keys.path().to_str().expect("utf-8 temp path"),
    ];
    let mut server = ServerProcess::start(&args);
    let first = connect(server.addr(), version, None);
    assert!(!first.resumed);
    server.stop_cleanly();

    let restarted = ServerProcess::start(&args);
    let again = connect(restarted.addr(), version, Some(&first.session));
    assert!(
        again.resumed,
        "{version:?}: the restarted server did not resume; its log:\n{}",
        restarted.stderr()
    );
}

#[test]
fn tls12_session_survives_a_server_restart() {
    resumes_after_restart(Version::Tls12);
}

#[test]
fn tls13_ticket_survives_a_server_restart() {
    resumes_after_restart(Version::Tls13);
}
