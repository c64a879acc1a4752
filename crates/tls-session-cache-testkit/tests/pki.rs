//! The test certificates (made with the `openssl` program) and TLS
//! readiness (checked with `redis-cli --tls`), against real processes.

use std::path::Path;
use std::process::Command;

use tls_session_cache_testkit::{RedisServer, TestPki};

/// `openssl verify` of `cert` against `ca` with extra checks; whether it
/// verified, and what it printed.
fn verify(ca: &Path, cert: &Path, checks: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .arg("verify")
        .args(checks)
        .arg("-CAfile")
        .arg(ca)
        .arg(cert)
        .output()
        .unwrap_or_else(|e| panic!("openssl (apt-get install -y openssl): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn certificates_chain_to_their_own_ca_with_the_right_purposes() {
    let pki = TestPki::generate().unwrap_or_else(|e| panic!("{e}"));
    for path in [
        &pki.ca,
        &pki.other_ca,
        &pki.server.cert,
        &pki.server.key,
        &pki.client.cert,
        &pki.client.key,
        &pki.other_server.cert,
        &pki.other_server.key,
    ] {
        assert!(
            path.starts_with(pki.dir()),
            "{} outside dir",
            path.display()
        );
    }
    let key = std::fs::read_to_string(&pki.server.key).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");

    let server = ["-purpose", "sslserver", "-verify_ip", "127.0.0.1"];
    let (ok, out) = verify(&pki.ca, &pki.server.cert, &server);
    assert!(ok, "server for 127.0.0.1: {out}");
    let (ok, out) = verify(
        &pki.ca,
        &pki.server.cert,
        &["-verify_hostname", "localhost"],
    );
    assert!(ok, "server for localhost: {out}");
    let (ok, out) = verify(&pki.ca, &pki.server.cert, &["-verify_ip", "127.0.0.2"]);
    assert!(!ok, "server cert accepted for another IP: {out}");
    let (ok, out) = verify(&pki.ca, &pki.client.cert, &["-purpose", "sslclient"]);
    assert!(ok, "client: {out}");
    let (ok, out) = verify(&pki.other_ca, &pki.other_server.cert, &server);
    assert!(ok, "other server under other CA: {out}");
    let (ok, out) = verify(&pki.ca, &pki.other_server.cert, &[]);
    assert!(!ok, "other server accepted by the test CA: {out}");
    let (ok, out) = verify(&pki.other_ca, &pki.server.cert, &[]);
    assert!(!ok, "server accepted by the other CA: {out}");
}

#[test]
fn tls_server_requiring_client_certificates_is_ready_and_answers() {
    let pki = TestPki::generate().unwrap_or_else(|e| panic!("{e}"));
    let server = RedisServer::start_tls(&pki.server, &pki.ca, Some(&pki.client), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        server.url(),
        format!("rediss://127.0.0.1:{}/", server.port())
    );
    assert_eq!(server.cli(None, &["PING"]).unwrap(), "PONG");
}

#[test]
fn tls_server_with_a_password_counts_noauth_as_ready() {
    let pki = TestPki::generate().unwrap_or_else(|e| panic!("{e}"));
    let server = RedisServer::start_tls(&pki.server, &pki.ca, None, &["--requirepass", "pw"])
        .unwrap_or_else(|e| panic!("{e}"));
    // Ready although PING without a password gets NOAUTH.
    let reply = match server.cli(None, &["PING"]) {
        Ok(out) => out,
        Err(e) => e.to_string(),
    };
    assert!(reply.contains("NOAUTH"), "no password: {reply}");
    assert_eq!(
        server.cli(Some(("default", "pw")), &["PING"]).unwrap(),
        "PONG"
    );
}

#[test]
fn a_missing_openssl_program_says_how_to_install_it() {
    let e = tls_session_cache_testkit::Error::OpensslNotInstalled;
    assert!(e.to_string().contains("apt-get install -y openssl"), "{e}");
}
