//! A rust-openssl TLS client for the example server: one request per
//! connection, offering a saved session when asked to.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslOptions, SslSession, SslVerifyMode, SslVersion};

/// Socket timeouts of the client: a hang guard, not a measurement.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The protocol version a client insists on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// TLS 1.2 only, session-id resumption (the client asks for no tickets).
    Tls12,
    /// TLS 1.3 only (the server issues stateful tickets).
    Tls13,
}

impl Version {
    fn ssl_version(self) -> SslVersion {
        match self {
            Version::Tls12 => SslVersion::TLS1_2,
            Version::Tls13 => SslVersion::TLS1_3,
        }
    }

    /// The name OpenSSL and the server's answer use (`TLSv1.2`, `TLSv1.3`).
    pub fn name(self) -> &'static str {
        match self {
            Version::Tls12 => "TLSv1.2",
            Version::Tls13 => "TLSv1.3",
        }
    }
}

/// What one connection did.
pub struct Outcome {
    /// Whether the handshake resumed a session (the server and the client
    /// agree; [`connect`] checks).
    pub resumed: bool,
    /// The session the client holds after the connection (for TLS 1.3 the
    /// last ticket received), to offer next time.
    pub session: SslSession,
    /// The answer's JSON body.
    pub body: serde_json::Value,
}

/// Connects to `addr` with `version`, offering `offer` if given, sends
/// `GET path`, reads the whole answer and closes cleanly. Panics (failing
/// the test) if the handshake or the exchange fails.
pub fn request(
    addr: SocketAddr,
    version: Version,
    offer: Option<&SslSession>,
    path: &str,
) -> Outcome {
    let mut builder = SslConnector::builder(SslMethod::tls_client()).expect("client context");
    builder.set_verify(SslVerifyMode::NONE);
    builder
        .set_min_proto_version(Some(version.ssl_version()))
        .expect("min version");
    builder
        .set_max_proto_version(Some(version.ssl_version()))
        .expect("max version");
    if version == Version::Tls12 {
        builder.set_options(SslOptions::NO_TICKET);
    }
    let connector = builder.build();
    let mut config = connector.configure().expect("client configuration");
    config.set_verify_hostname(false);
    let mut ssl = config.into_ssl("localhost").expect("client ssl");
    if let Some(session) = offer {
        // SAFETY: the session was made by a client context of the same
        // method and settings as this one (built by this function).
        unsafe { ssl.set_session(session) }.expect("set_session");
    }
    let tcp = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    tcp.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    tcp.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut tls = ssl
        .connect(tcp)
        .unwrap_or_else(|e| panic!("TLS handshake with {addr} ({version:?}) failed: {e}"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    tls.write_all(request.as_bytes()).expect("send request");
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer)
        .unwrap_or_else(|e| panic!("reading the answer from {addr}: {e}"));
    // Our close_notify; the server may already have closed the socket.
    let _ = tls.shutdown();
    let answer = String::from_utf8_lossy(&answer);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_else(|| panic!("no HTTP body in {answer:?}"));
    let body: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("body {body:?}: {e}"));
    let ssl = tls.ssl();
    let resumed = ssl.session_reused();
    assert_eq!(ssl.version_str(), version.name(), "negotiated protocol");
    let session = ssl.session().expect("client session").to_owned();
    Outcome {
        resumed,
        session,
        body,
    }
}

/// One handshake and `GET /`; checks that the server's `resumed` and
/// `protocol` agree with the client's view.
pub fn connect(addr: SocketAddr, version: Version, offer: Option<&SslSession>) -> Outcome {
    let out = request(addr, version, offer, "/");
    assert_eq!(
        out.body["resumed"].as_bool(),
        Some(out.resumed),
        "server and client disagree on resumption: {}",
        out.body
    );
    assert_eq!(out.body["protocol"], version.name(), "{}", out.body);
    out
}

/// The server's `/stats` (fetched over a TLS 1.3 connection of its own,
/// which the statistics then include as one full handshake).
pub fn stats(addr: SocketAddr) -> serde_json::Value {
    request(addr, Version::Tls13, None, "/stats").body
}

/// A counter of `/stats` by dotted path (`"resumed"`, `"redis.corrupt"`);
/// panics with the whole JSON when it is missing.
pub fn counter(stats: &serde_json::Value, path: &str) -> u64 {
    path.split('.')
        .try_fold(stats, |v, name| v.get(name))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("/stats has no counter {path}: {stats}"))
}
