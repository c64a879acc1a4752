//! The framework examples' end-to-end checks, shared by `tests/actix.rs`,
//! `tests/axum.rs` and `tests/hyper.rs`: a real server process (the
//! example binary, built by cargo for these tests), real Redis, and two
//! real clients — `openssl s_client` and rustls.
//!
//! Readiness is a signal everywhere: the server's `listening on` line,
//! Redis answering PING, the server closing the connection after its
//! answer. Nothing sleeps to synchronise.
#![allow(dead_code)] // each test file uses the checks that apply to its server

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, SignatureScheme,
};
use tls_session_cache_e2e::{
    KeyFile, RedisCluster, RedisServer, ServerProcess, start_redis, store_url,
};

/// A hang guard for every client socket, not a measurement.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// A fixed seal key for the Redis servers.
const KEY: &str = "4f1c2a3b5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";

/// The TLS version a client insists on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// TLS 1.2, session-id resumption.
    Tls12,
    /// TLS 1.3, the server's stateful tickets.
    Tls13,
}

impl Version {
    /// `TLSv1.2` / `TLSv1.3`, as OpenSSL and the servers name it.
    pub fn name(self) -> &'static str {
        match self {
            Version::Tls12 => "TLSv1.2",
            Version::Tls13 => "TLSv1.3",
        }
    }
}

/// A server of one example binary, on one store; its Redis (if any) and
/// key file live as long as it does.
pub struct Running {
    pub server: ServerProcess,
    _redis: Option<(RedisServer, KeyFile)>,
    _cluster: Option<(RedisCluster, KeyFile)>,
}

impl Running {
    /// The example `binary` on the memory store.
    pub fn memory(binary: &str, extra: &[&str]) -> Running {
        let mut args = vec!["--store", "memory"];
        args.extend(extra);
        Running {
            server: ServerProcess::start_binary(Path::new(binary), &args),
            _redis: None,
            _cluster: None,
        }
    }

    /// The example `binary` on a Redis it starts now (sealed under a key file).
    pub fn redis(binary: &str, extra: &[&str]) -> Running {
        let redis = start_redis();
        let keys = KeyFile::new(&[KEY]);
        let url = store_url(&redis);
        let path = keys.path().to_str().expect("utf-8 temp path").to_string();
        let mut args = vec!["--store", url.as_str(), "--seal-key-file", path.as_str()];
        args.extend(extra);
        let server = ServerProcess::start_binary(Path::new(binary), &args);
        Running {
            server,
            _redis: Some((redis, keys)),
            _cluster: None,
        }
    }

    /// The example `binary` on a 3-master Redis Cluster it starts now,
    /// with `--store {scheme_prefix}redis+cluster://…` (`""` or `"tiered+"`).
    pub fn cluster(binary: &str, scheme_prefix: &str, extra: &[&str]) -> Running {
        let cluster = match RedisCluster::start(3) {
            Ok(c) => c,
            Err(e) => panic!("cannot start a Redis Cluster: {e}"),
        };
        let keys = KeyFile::new(&[KEY]);
        let url = format!("{scheme_prefix}{}", cluster.url());
        let path = keys.path().to_str().expect("utf-8 temp path").to_string();
        let mut args = vec!["--store", url.as_str(), "--seal-key-file", path.as_str()];
        args.extend(extra);
        let server = ServerProcess::start_binary(Path::new(binary), &args);
        Running {
            server,
            _redis: None,
            _cluster: Some((cluster, keys)),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }
}

// ---------------------------------------------------------------- s_client

/// What one `openssl s_client` connection saw.
#[derive(Debug)]
pub struct SClientRun {
    /// `Reused` (true) or `New`.
    pub reused: bool,
    /// The negotiated version.
    pub protocol: String,
    /// The JSON body of the answer to `GET /`.
    pub body: serde_json::Value,
}

/// `openssl s_client` with `version`, offering the session in `sess_in`
/// and saving the new one to `sess_out`, sending `GET /` and reading until
/// the server closes (so TLS 1.3 tickets are received).
pub fn s_client(
    addr: SocketAddr,
    version: Version,
    sess_in: Option<&Path>,
    sess_out: Option<&Path>,
) -> SClientRun {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &addr.to_string()]).args([
        "-servername",
        "localhost",
        "-ign_eof",
    ]);
    match version {
        Version::Tls12 => cmd.args(["-tls1_2", "-no_ticket"]),
        Version::Tls13 => cmd.arg("-tls1_3"),
    };
    if let Some(f) = sess_in {
        cmd.arg("-sess_in").arg(f);
    }
    if let Some(f) = sess_out {
        cmd.arg("-sess_out").arg(f);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client (package openssl) must be installed");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("s_client stdin");
    }
    // s_client exits when the server closes the connection (-ign_eof keeps
    // it from quitting at the end of its stdin).
    let out = child.wait_with_output().expect("s_client output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("New, ") || l.starts_with("Reused, "))
        .unwrap_or_else(|| {
            panic!(
                "s_client completed no handshake: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let mut words = line.split(", ");
    let reused = words.next() == Some("Reused");
    let protocol = words.next().unwrap_or_default().to_string();
    // The answer, then whatever s_client prints at the close (`closed`):
    // the body is as long as its Content-Length says.
    let answer = &stdout[stdout
        .find("HTTP/1.1 ")
        .unwrap_or_else(|| panic!("no HTTP answer in s_client's output: {stdout}"))..];
    let (head, rest) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    let length = content_length(head);
    let body = rest
        .get(..length)
        .unwrap_or_else(|| panic!("truncated answer: {answer:?}"));
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("body {body:?}: {e}"));
    SClientRun {
        reused,
        protocol,
        body,
    }
}

// ------------------------------------------------------------------ rustls

/// Accepts the servers' self-signed certificates but checks the handshake
/// signatures (the test is about resumption, not about PKI).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A rustls client configuration for one TLS version (and ALPN protocols);
/// connections made with the same `Arc` share rustls' session memory, so
/// the second one offers what the first one received.
pub fn rustls_config(version: Version, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match version {
        Version::Tls12 => &[&rustls::version::TLS12],
        Version::Tls13 => &[&rustls::version::TLS13],
    };
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A rustls connection to `addr` with its handshake done.
pub fn rustls_handshake(
    config: &Arc<ClientConfig>,
    addr: SocketAddr,
) -> (ClientConnection, TcpStream) {
    let name = ServerName::try_from("localhost").expect("server name");
    let mut conn = ClientConnection::new(Arc::clone(config), name).expect("rustls connection");
    let mut tcp = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    tcp.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    tcp.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .unwrap_or_else(|e| panic!("rustls handshake with {addr}: {e}"));
    }
    (conn, tcp)
}

/// Whether a finished rustls handshake resumed.
pub fn resumed(conn: &ClientConnection) -> bool {
    conn.handshake_kind() == Some(HandshakeKind::Resumed)
}

/// What one rustls connection saw.
#[derive(Debug)]
pub struct RustlsRun {
    pub reused: bool,
    pub protocol: &'static str,
    pub body: serde_json::Value,
}

/// A rustls connection: handshake, `GET path` over HTTP/1.1, the answer
/// read to the server's close (TLS 1.3 tickets are read on the way).
pub fn rustls_get(config: &Arc<ClientConfig>, addr: SocketAddr, path: &str) -> RustlsRun {
    let (mut conn, mut tcp) = rustls_handshake(config, addr);
    let reused = resumed(&conn);
    let protocol = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        other => panic!("negotiated {other:?}"),
    };
    let text = {
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        tls.write_all(request.as_bytes()).expect("send request");
        let mut answer = Vec::new();
        match tls.read_to_end(&mut answer) {
            Ok(_) => {}
            // A server that closes without close_notify: the answer is
            // complete when it has its Content-Length (checked below).
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => panic!("reading the answer from {addr}: {e}"),
        }
        String::from_utf8_lossy(&answer).into_owned()
    };
    let body = http_body(&text);
    RustlsRun {
        reused,
        protocol,
        body: serde_json::from_str(body).unwrap_or_else(|e| panic!("body {body:?}: {e}")),
    }
}

/// The body of an HTTP/1.1 answer, checked against its Content-Length.
pub fn http_body(answer: &str) -> &str {
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        body.len(),
        content_length(head),
        "truncated answer: {answer:?}"
    );
    body
}

/// The Content-Length of an HTTP/1.1 answer's head.
fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or_else(|| panic!("no Content-Length: {head}"))
}

// ------------------------------------------------------------------ checks

/// A counter of `/stats` by dotted path.
pub fn counter(stats: &serde_json::Value, path: &str) -> u64 {
    tls_session_cache_e2e::counter(stats, path)
}

/// `/stats` over rustls (a full TLS 1.3 handshake of its own).
pub fn stats(addr: SocketAddr) -> serde_json::Value {
    rustls_get(&rustls_config(Version::Tls13, &[]), addr, "/stats").body
}

/// s_client and rustls, TLS 1.2 and TLS 1.3: a full handshake, then one
/// resumed; for s_client's TLS 1.3 also the same ticket once more (single
/// use: a full handshake). `/stats` then agrees.
pub fn both_clients_resume_both_versions(run: &Running) {
    let addr = run.addr();
    let dir = tempfile::tempdir().expect("temp dir");
    for version in [Version::Tls12, Version::Tls13] {
        let file = dir.path().join(format!("{}.pem", version.name()));
        let first = s_client(addr, version, None, Some(&file));
        let second = s_client(addr, version, Some(&file), None);
        for (run, reused) in [(&first, false), (&second, true)] {
            assert_eq!(run.reused, reused, "s_client {version:?}: {run:?}");
            assert_eq!(run.protocol, version.name(), "{run:?}");
            assert_eq!(run.body["resumed"], reused, "the server's view: {run:?}");
            assert_eq!(run.body["protocol"], version.name(), "{run:?}");
        }
        if version == Version::Tls13 {
            let replay = s_client(addr, version, Some(&file), None);
            assert!(!replay.reused, "a TLS 1.3 ticket resumed twice: {replay:?}");
        }

        let config = rustls_config(version, &[]);
        let first = rustls_get(&config, addr, "/");
        let second = rustls_get(&config, addr, "/");
        for (run, reused) in [(&first, false), (&second, true)] {
            assert_eq!(run.reused, reused, "rustls {version:?}: {run:?}");
            assert_eq!(run.protocol, version.name(), "{run:?}");
            assert_eq!(run.body["resumed"], reused, "the server's view: {run:?}");
        }
    }
    // 4 + 5 handshakes above (s_client 2 + 3, rustls 2 + 2), 4 resumed;
    // offers: s_client 1 + 2, rustls 1 + 1. `/stats` is a full one more.
    let s = stats(addr);
    assert_eq!(counter(&s, "resumed"), 4, "{s}");
    assert_eq!(counter(&s, "full"), 6, "{s}");
    assert_eq!(counter(&s, "lookups"), 5, "{s}");
    assert_eq!(counter(&s, "hits"), 4, "{s}");
    assert_eq!(counter(&s, "errors"), 0, "{s}");
}

/// A rustls client completes the handshake (TLS 1.3: and reads the
/// tickets), then drops TCP: no request, no close_notify. Its next
/// connection still resumes.
pub fn client_dropping_tcp_after_handshake_resumes(run: &Running) {
    let addr = run.addr();
    for version in [Version::Tls12, Version::Tls13] {
        let config = rustls_config(version, &[]);
        let (mut conn, mut tcp) = rustls_handshake(&config, addr);
        assert!(!resumed(&conn));
        if version == Version::Tls13 {
            // The server sends its tickets right after the handshake: wait
            // for them (rustls keeps them as they arrive).
            conn.complete_io(&mut tcp).expect("read the tickets");
        }
        drop(conn);
        drop(tcp); // FIN, without close_notify
        // The server has handled the dropped connection's handshake (and,
        // for the async servers, flushed its sessions) before it answers a
        // later connection: /stats is that connection, and shows it.
        let s = stats(addr);
        assert!(counter(&s, "stored") >= 1, "{s}");
        let again = rustls_get(&config, addr, "/");
        assert!(
            again.reused,
            "{version:?}: session lost with the dropped connection: {again:?}"
        );
        assert_eq!(again.body["resumed"], true, "{again:?}");
    }
}

/// HTTP/2 through ALPN with rustls: the server picks `h2`, answers a real
/// HTTP/2 request, and the second connection resumes (TLS 1.2 and 1.3).
pub fn http2_via_alpn_resumes(run: &Running) {
    let addr = run.addr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for version in [Version::Tls12, Version::Tls13] {
        let config = rustls_config(version, &[b"h2", b"http/1.1"]);
        let first = rt.block_on(h2_get(&config, addr));
        let second = rt.block_on(h2_get(&config, addr));
        assert_eq!(first, (false, serde_json::json!(false)), "{version:?}");
        assert_eq!(second, (true, serde_json::json!(true)), "{version:?}");
    }
}

/// One HTTP/2 `GET /` over rustls: (the client saw a resumption, the
/// server's `resumed`).
async fn h2_get(config: &Arc<ClientConfig>, addr: SocketAddr) -> (bool, serde_json::Value) {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
        .connect(name, tcp)
        .await
        .expect("rustls handshake");
    let (_, conn) = tls.get_ref();
    assert_eq!(
        conn.alpn_protocol(),
        Some(&b"h2"[..]),
        "ALPN did not pick h2"
    );
    let reused = resumed(conn);
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("HTTP/2 handshake");
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get(format!("https://localhost:{}/", addr.port()))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("HTTP/2 request");
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    drop(sender);
    let _ = driver.await;
    let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
    (reused, body["resumed"].clone())
}

/// `GET /metrics` parses with `promtool check metrics` (the Prometheus
/// project's own linter), and agrees with `/stats`.
pub fn metrics_pass_promtool(run: &Running) {
    let addr = run.addr();
    // Something to count: a TLS 1.2 full handshake and its resumption.
    let config = rustls_config(Version::Tls12, &[]);
    rustls_get(&config, addr, "/");
    rustls_get(&config, addr, "/");
    let (mut conn, mut tcp) = rustls_handshake(&rustls_config(Version::Tls13, &[]), addr);
    let text = {
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("send");
        let mut answer = Vec::new();
        match tls.read_to_end(&mut answer) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => panic!("/metrics: {e}"),
        }
        String::from_utf8_lossy(&answer).into_owned()
    };
    let head = text
        .split_once("\r\n\r\n")
        .map(|(h, _)| h)
        .unwrap_or_default();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let body = http_body(&text);
    promtool_check(body);
    // Counted before this answer: 3 handshakes, 1 resumed (/metrics' own
    // connection included, as in /stats).
    assert!(
        body.lines()
            .any(|l| l
                .starts_with("tls_session_cache_resumed_total{context=\"tls-session-cache\"} 1")),
        "{body}"
    );
    assert!(
        body.contains("# TYPE tls_session_cache_store_entries gauge"),
        "{body}"
    );
}

/// Runs `promtool check metrics` on `text`; fails the test with its
/// complaints.
pub fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "promtool (Debian package prometheus) must be installed: cargo xtask test installs it",
        );
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- the text:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
