//! `GET /metrics` of the example server: the Prometheus text format,
//! checked by `promtool check metrics` (the Prometheus project's own
//! linter), on the memory store and on Redis, and in agreement with
//! `/stats`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use tls_session_cache_e2e::{KeyFile, ServerProcess, Version, connect, start_redis, store_url};

const KEY: &str = "4f1c2a3b5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";

/// `GET /metrics` over a TLS connection of its own: (head, body).
fn metrics(addr: SocketAddr) -> (String, String) {
    let mut builder = SslConnector::builder(SslMethod::tls_client()).unwrap();
    builder.set_verify(SslVerifyMode::NONE);
    let mut config = builder.build().configure().unwrap();
    config.set_verify_hostname(false);
    let tcp = TcpStream::connect(addr).unwrap();
    let mut tls = config.connect("localhost", tcp).unwrap();
    tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; cargo xtask test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n--- text:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A full handshake and its resumption, then `/metrics`: it parses, and
/// counts what happened (the `/metrics` connection included, as `/stats`).
fn check(server: &ServerProcess, redis: bool) {
    let first = connect(server.addr(), Version::Tls12, None);
    let second = connect(server.addr(), Version::Tls12, Some(&first.session));
    assert!(second.resumed);
    let (head, body) = metrics(server.addr());
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    promtool_check(&body);
    let sample = |line: &str| body.lines().any(|l| l == line);
    assert!(
        sample("tls_session_cache_resumed_total{context=\"tls-session-cache\"} 1"),
        "{body}"
    );
    assert!(
        sample("tls_session_cache_full_total{context=\"tls-session-cache\"} 2"),
        "{body}"
    );
    assert_eq!(
        sample(
            "tls_session_cache_redis_circuit_state{context=\"tls-session-cache\",state=\"closed\"} 1"
        ),
        redis,
        "{body}"
    );
}

#[test]
fn metrics_parse_with_promtool_on_memory_and_redis() {
    let mut memory = ServerProcess::start(&["--threads", "1"]);
    check(&memory, false);
    memory.stop_cleanly();

    let redis = start_redis();
    let keys = KeyFile::new(&[KEY]);
    let url = store_url(&redis);
    let path = keys.path().to_str().unwrap();
    let mut server =
        ServerProcess::start(&["--store", &url, "--seal-key-file", path, "--threads", "1"]);
    check(&server, true);
    server.stop_cleanly();
}
