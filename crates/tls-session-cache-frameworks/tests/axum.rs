//! End-to-end: the `axum-example` server process against openssl s_client and
//! rustls, on the memory store, on a real Redis and on a real Redis Cluster
//! (directly and behind the async tiered store).

mod support;

use support::Running;

const BIN: &str = env!("CARGO_BIN_EXE_axum-example");

#[test]
fn memory_store_resumes_tls12_and_tls13_with_s_client_and_rustls() {
    let mut run = Running::memory(BIN, &[]);
    support::both_clients_resume_both_versions(&run);
    run.server.stop_cleanly();
}

#[test]
fn redis_store_resumes_tls12_and_tls13_with_s_client_and_rustls() {
    let mut run = Running::redis(BIN, &[]);
    support::both_clients_resume_both_versions(&run);
    run.server.stop_cleanly();
}

#[test]
fn cluster_and_tiered_cluster_stores_resume_tls12_and_tls13_with_s_client_and_rustls() {
    for prefix in ["", "tiered+"] {
        let mut run = Running::cluster(BIN, prefix, &[]);
        support::both_clients_resume_both_versions(&run);
        let s = support::stats(run.addr());
        assert_eq!(s["redis"]["circuit"], "closed", "{prefix}: {s}");
        assert_eq!(support::counter(&s, "redis.timeouts"), 0, "{prefix}: {s}");
        run.server.stop_cleanly();
    }
}

#[test]
fn client_dropping_tcp_after_the_handshake_still_resumes() {
    // One worker: the dropped connection is handled before the next one.
    let run = Running::memory(BIN, &["--threads", "1"]);
    support::client_dropping_tcp_after_handshake_resumes(&run);
}

#[test]
fn http2_via_alpn_resumes() {
    let run = Running::memory(BIN, &[]);
    support::http2_via_alpn_resumes(&run);
}

#[test]
fn metrics_parse_with_promtool_on_memory_and_redis() {
    support::metrics_pass_promtool(&Running::memory(BIN, &[]));
    support::metrics_pass_promtool(&Running::redis(BIN, &[]));
}
