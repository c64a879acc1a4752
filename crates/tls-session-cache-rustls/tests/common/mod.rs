//! Test plumbing: rustls servers with the cache installed on loopback
//! ports, an OpenSSL server with the OpenSSL binding, and two real clients
//! (rust-openssl and rustls) that keep the sessions they are given.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::Duration;

use openssl::ssl::{
    Ssl, SslConnector, SslContextBuilder, SslMethod, SslSession, SslVerifyMode, SslVersion,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, ServerConfig,
    ServerConnection, SignatureScheme,
};
use tls_session_cache_redis::{KeyRing, RedisStore};
use tls_session_cache_rustls::SessionCache;
use tls_session_cache_testkit::RedisServer;

/// Every socket read and write of the tests is bounded by this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The two TLS versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Tls12,
    Tls13,
}

impl Version {
    pub const BOTH: [Version; 2] = [Version::Tls12, Version::Tls13];

    fn openssl(self) -> SslVersion {
        match self {
            Version::Tls12 => SslVersion::TLS1_2,
            Version::Tls13 => SslVersion::TLS1_3,
        }
    }

    fn rustls(self) -> &'static rustls::SupportedProtocolVersion {
        match self {
            Version::Tls12 => &rustls::version::TLS12,
            Version::Tls13 => &rustls::version::TLS13,
        }
    }
}

// ------------------------------------------------------------------ servers

/// A rustls server configuration (ring, TLS 1.2 and 1.3, a self-signed
/// `localhost` certificate) with `cache` installed.
pub fn rustls_config(cache: &SessionCache) -> Arc<ServerConfig> {
    let (cert, key) = tls_session_cache_openssl::self_signed_localhost().expect("certificate");
    let certs = vec![CertificateDer::from(cert.to_der().expect("der"))];
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(
        key.private_key_to_pkcs8().expect("pkcs8"),
    ));
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("certificate");
    cache.install(&mut config);
    Arc::new(config)
}

/// What a server saw of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub resumed: bool,
    pub version: Version,
}

/// A server thread accepting connections one after another on 127.0.0.1;
/// each gets a handshake, one greeting byte and close_notify.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Receiver<Result<Accepted, String>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A rustls server with `cache` installed.
    pub fn rustls(cache: &SessionCache) -> TestServer {
        let config = rustls_config(cache);
        let cache = cache.clone();
        TestServer::start(move |tcp| serve_rustls(&config, &cache, tcp))
    }

    /// An OpenSSL server with the OpenSSL binding's `cache` installed.
    pub fn openssl(cache: &tls_session_cache_openssl::SessionCache) -> TestServer {
        let (cert, key) = tls_session_cache_openssl::self_signed_localhost().expect("certificate");
        let mut b = SslContextBuilder::new(SslMethod::tls_server()).expect("ctx");
        b.set_certificate(&cert).expect("cert");
        b.set_private_key(&key).expect("key");
        b.set_min_proto_version(Some(SslVersion::TLS1_2))
            .expect("min version");
        cache.install(&mut b).expect("install");
        let ctx = b.build();
        TestServer::start(move |tcp| {
            let ssl = Ssl::new(&ctx).map_err(|e| e.to_string())?;
            let mut tls = ssl.accept(tcp).map_err(|e| e.to_string())?;
            let accepted = Accepted {
                resumed: tls.ssl().session_reused(),
                version: match tls.ssl().version_str() {
                    "TLSv1.2" => Version::Tls12,
                    "TLSv1.3" => Version::Tls13,
                    other => return Err(format!("negotiated {other}")),
                },
            };
            tls.write_all(b"!").map_err(|e| e.to_string())?;
            tls.shutdown().map_err(|e| e.to_string())?;
            Ok(accepted)
        })
    }

    fn start(serve: impl Fn(TcpStream) -> Result<Accepted, String> + Send + 'static) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, seen) = mpsc::channel();
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for tcp in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(tcp) = tcp else { continue };
                let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
                let _ = tcp.set_write_timeout(Some(IO_TIMEOUT));
                let _ = tx.send(serve(tcp));
            }
        });
        TestServer {
            addr,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// What the server saw of the next connection it finished.
    pub fn accepted(&self) -> Accepted {
        self.seen
            .recv_timeout(IO_TIMEOUT * 2)
            .expect("the server finished no connection")
            .unwrap_or_else(|e| panic!("server side of the connection: {e}"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_rustls(
    config: &Arc<ServerConfig>,
    cache: &SessionCache,
    mut tcp: TcpStream,
) -> Result<Accepted, String> {
    let mut conn = ServerConnection::new(Arc::clone(config)).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    cache.handshake_done(&conn);
    let accepted = Accepted {
        resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
        version: match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_2) => Version::Tls12,
            Some(rustls::ProtocolVersion::TLSv1_3) => Version::Tls13,
            other => return Err(format!("negotiated {other:?}")),
        },
    };
    conn.writer().write_all(b"!").map_err(|e| e.to_string())?;
    conn.send_close_notify();
    while conn.wants_write() {
        conn.write_tls(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(accepted)
}

// ------------------------------------------------------------------ clients

/// What a client saw of one connection.
pub struct Connected {
    pub resumed: bool,
    /// The session to offer next time (for TLS 1.3: the last ticket).
    pub session: SslSession,
}

/// An OpenSSL client (rust-openssl) for one TLS version: connects, reads
/// the greeting to the server's close_notify (TLS 1.3 tickets arrive on
/// the way) and returns the session, offering `session` if given.
pub fn openssl_connect(
    addr: SocketAddr,
    version: Version,
    session: Option<&SslSession>,
) -> Connected {
    let mut b = SslConnector::builder(SslMethod::tls_client()).expect("connector");
    b.set_verify(SslVerifyMode::NONE);
    b.set_min_proto_version(Some(version.openssl()))
        .expect("min");
    b.set_max_proto_version(Some(version.openssl()))
        .expect("max");
    // TLS 1.2: session ids only (the servers issue no tickets anyway).
    b.set_options(openssl::ssl::SslOptions::NO_TICKET);
    let connector = b.build();
    let mut ssl = connector
        .configure()
        .expect("configure")
        .verify_hostname(false)
        .into_ssl("localhost")
        .expect("ssl");
    if let Some(s) = session {
        // A copy, so that the caller's session can be offered again
        // whatever this connection does to the one it resumed.
        let s = SslSession::from_der(&s.to_der().expect("der")).expect("session");
        // SAFETY: the session was made by a connection with the same
        // client method (TLS, client side); `set_session` takes its own
        // reference.
        unsafe { ssl.set_session(&s) }.expect("set_session");
    }
    let tcp = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    tcp.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    tcp.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut tls = ssl
        .connect(tcp)
        .unwrap_or_else(|e| panic!("openssl handshake with {addr}: {e}"));
    let mut greeting = Vec::new();
    tls.read_to_end(&mut greeting)
        .unwrap_or_else(|e| panic!("reading from {addr}: {e}"));
    assert_eq!(greeting, b"!", "greeting from {addr}");
    let resumed = tls.ssl().session_reused();
    // A copy: OpenSSL marks the connection's own session object not
    // resumable when the connection is freed without the client's
    // close_notify.
    let der = tls
        .ssl()
        .session()
        .expect("a session")
        .to_der()
        .expect("der");
    let session = SslSession::from_der(&der).expect("session");
    Connected { resumed, session }
}

/// Accepts the servers' self-signed certificates but checks the handshake
/// signatures (the tests are about resumption, not about PKI).
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

/// A rustls client configuration for one TLS version; connections made with
/// the same `Arc` share rustls's session memory, so the second one offers
/// what the first one received.
pub fn rustls_client(version: Version) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[version.rustls()])
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

/// A rustls connection to `addr`: handshake, the greeting read to the
/// server's close_notify (tickets on the way); whether it resumed.
pub fn rustls_connect(config: &Arc<ClientConfig>, addr: SocketAddr) -> bool {
    let name = ServerName::try_from("localhost").expect("server name");
    let mut conn = ClientConnection::new(Arc::clone(config), name).expect("rustls connection");
    let mut tcp = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    tcp.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    tcp.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    let mut greeting = Vec::new();
    tls.read_to_end(&mut greeting)
        .unwrap_or_else(|e| panic!("rustls connection to {addr}: {e}"));
    assert_eq!(greeting, b"!", "greeting from {addr}");
    conn.handshake_kind() == Some(HandshakeKind::Resumed)
}

// ------------------------------------------------------------------ Redis

/// A real `redis-server` on a free loopback port (stopped on drop).
pub fn redis() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| {
        panic!("these tests need redis-server (apt-get install redis-server): {e}")
    })
}

/// A Redis store on `redis` sealing under `keys`, with a generous timeout
/// (the tests check behaviour, not latency).
pub fn redis_store(redis: &RedisServer, keys: &KeyRing) -> RedisStore {
    RedisStore::builder(&redis.url())
        .seal_keys(keys.clone())
        .timeouts(Duration::from_secs(2))
        .build()
        .expect("redis store")
}
