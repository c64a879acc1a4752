//! Two servers with different `--context` sharing one Redis do not resume
//! each other's sessions (interop scenario 6).

use tls_session_cache_e2e::{
    KeyFile, ServerProcess, Version, connect, counter, start_redis, stats, store_url,
};

const KEY: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";

fn isolated(version: Version) {
    let redis = start_redis();
    let url = store_url(&redis);
    let keys = KeyFile::new(&[KEY]);
    let path = keys.path().to_str().expect("utf-8 temp path");
    let alpha = ServerProcess::start(&[
        "--store",
        &url,
        "--seal-key-file",
        path,
        "--context",
        "alpha",
    ]);
    let beta = ServerProcess::start(&[
        "--store",
        &url,
        "--seal-key-file",
        path,
        "--context",
        "beta",
    ]);

    let first = connect(alpha.addr(), version, None);
    let on_beta = connect(beta.addr(), version, Some(&first.session));
    assert!(
        !on_beta.resumed,
        "{version:?}: beta resumed alpha's session"
    );
    let sb = stats(beta.addr());
    assert_eq!(counter(&sb, "resumed"), 0, "{sb}");
    assert_eq!(counter(&sb, "hits"), 0, "{sb}");

    // Control: the session is still there for its own context.
    let on_alpha = connect(alpha.addr(), version, Some(&first.session));
    assert!(on_alpha.resumed, "{version:?}: alpha lost its own session");
}

#[test]
fn tls12_sessions_do_not_cross_contexts() {
    isolated(Version::Tls12);
}

#[test]
fn tls13_tickets_do_not_cross_contexts() {
    isolated(Version::Tls13);
}
