//! Test plumbing: a real TLS server on a loopback port and a client that
//! keeps the sessions it is given. Shared by the integration tests, by
//! `examples/leak_check.rs` and by `tls-session-cache-tokio`'s tests (its
//! client).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslSession, SslSessionCacheMode, SslSessionRef,
    SslVerifyMode, SslVersion,
};
use openssl::x509::X509;
use tls_session_cache_openssl::SessionCache;

/// A fresh copy of a client session, as it was when received.
pub fn copy(session: &SslSession) -> SslSession {
    SslSession::from_der(&session.to_der().unwrap()).unwrap()
}

/// A certificate and its key.
pub struct Identity {
    pub cert: X509,
    pub key: PKey<Private>,
}

pub fn identity(name: &str) -> Identity {
    let (cert, key) = tls_session_cache_openssl::self_signed(name).unwrap();
    Identity { cert, key }
}

/// A server context builder with a certificate, TLS 1.2 and 1.3 enabled.
pub fn server_builder(id: &Identity) -> SslContextBuilder {
    let mut b = SslContextBuilder::new(SslMethod::tls_server()).unwrap();
    b.set_certificate(&id.cert).unwrap();
    b.set_private_key(&id.key).unwrap();
    b.set_min_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    b
}

/// A server with `cache` installed on a fresh context.
pub fn server_with(cache: &SessionCache) -> TestServer {
    let mut b = server_builder(&identity("localhost"));
    cache.install(&mut b).unwrap();
    TestServer::start(b.build())
}

/// What the server saw of one connection.
#[derive(Debug)]
pub struct Accepted {
    pub resumed: bool,
    pub version: &'static str,
    pub peer_subject: Option<Vec<u8>>,
    /// The id and master key of the connection's session at the end.
    pub session_id: Vec<u8>,
    pub master_key: Vec<u8>,
}

/// A server thread accepting connections one after another on 127.0.0.1.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Receiver<Result<Accepted, String>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(ctx: SslContext) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, seen) = mpsc::channel();
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let _ = tx.send(serve(&ctx, stream));
            }
        });
        TestServer {
            addr,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// The server's view of the next connection.
    pub fn accepted(&self) -> Accepted {
        self.seen
            .recv_timeout(Duration::from_secs(30))
            .expect("server saw no connection")
            .expect("server-side handshake failed")
    }

    /// The server's outcome of the next connection, a failed handshake
    /// included.
    pub fn outcome(&self) -> Result<Accepted, String> {
        self.seen
            .recv_timeout(Duration::from_secs(30))
            .expect("server saw no connection")
    }

    /// A connection by `client` offering no session (a full handshake),
    /// the server's view of it taken and dropped; what the client saw.
    pub fn full_handshake(&self, client: &Client) -> Connected {
        let connected = client.connect(self.addr, None);
        self.accepted();
        connected
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One connection: handshake, read a line, answer, close_notify.
fn serve(ctx: &SslContext, stream: TcpStream) -> Result<Accepted, String> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    // Small writes in a row: without this Nagle meets delayed ACKs (40 ms).
    stream.set_nodelay(true).ok();
    let ssl = Ssl::new(ctx).map_err(|e| e.to_string())?;
    let mut tls = ssl.accept(stream).map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(&mut tls)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let resumed = tls.ssl().session_reused();
    tls.write_all(if resumed { b"resumed\n" } else { b"full\n" })
        .map_err(|e| e.to_string())?;
    tls.shutdown().map_err(|e| e.to_string())?;
    Ok(Accepted {
        resumed,
        version: tls.ssl().version_str(),
        peer_subject: tls
            .ssl()
            .peer_certificate()
            .map(|c| c.subject_name().to_der().unwrap()),
        session_id: tls
            .ssl()
            .session()
            .map(|s| s.id().to_vec())
            .unwrap_or_default(),
        master_key: tls.ssl().session().map(master_key).unwrap_or_default(),
    })
}

/// A session's master key.
pub fn master_key(session: &SslSessionRef) -> Vec<u8> {
    let mut key = vec![0; session.master_key_len()];
    let n = session.master_key(&mut key);
    key.truncate(n);
    key
}

/// A client that pins one TLS version and captures the sessions the server
/// gives it (TLS 1.3 tickets arrive after the handshake, with the response).
pub struct Client {
    ctx: SslContext,
    received: Arc<Mutex<Vec<SslSession>>>,
}

/// What the client saw of one connection.
pub struct Connected {
    pub resumed: bool,
    /// Sessions received on this connection, in order.
    pub sessions: Vec<SslSession>,
    pub response: String,
}

impl Connected {
    pub fn last_session(&self) -> SslSession {
        self.sessions.last().expect("no session received").clone()
    }
}

impl Client {
    pub fn new(version: SslVersion) -> Client {
        Self::with_identity(version, None)
    }

    pub fn with_identity(version: SslVersion, id: Option<&Identity>) -> Client {
        Self::configured(version, |b| {
            if let Some(id) = id {
                b.set_certificate(&id.cert).unwrap();
                b.set_private_key(&id.key).unwrap();
            }
        })
    }

    /// A client whose context `configure` adjusts (cipher suites, groups…).
    pub fn configured(
        version: SslVersion,
        configure: impl FnOnce(&mut SslContextBuilder),
    ) -> Client {
        let mut b = SslContextBuilder::new(SslMethod::tls_client()).unwrap();
        b.set_min_proto_version(Some(version)).unwrap();
        b.set_max_proto_version(Some(version)).unwrap();
        b.set_verify(SslVerifyMode::NONE);
        configure(&mut b);
        b.set_session_cache_mode(SslSessionCacheMode::CLIENT | SslSessionCacheMode::NO_INTERNAL);
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        b.set_new_session_callback(move |_, session| sink.lock().unwrap().push(session));
        Client {
            ctx: b.build(),
            received,
        }
    }

    /// Connects and completes the handshake, offering `session` if given;
    /// the stream is the caller's, with the sessions received so far.
    pub fn handshake(
        &self,
        addr: SocketAddr,
        session: Option<&SslSession>,
    ) -> openssl::ssl::SslStream<TcpStream> {
        self.received.lock().unwrap().clear();
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let mut ssl = Ssl::new(&self.ctx).unwrap();
        ssl.set_hostname("localhost").unwrap();
        if let Some(s) = session {
            // SAFETY: the session comes from a context of the same method.
            unsafe { ssl.set_session(s).unwrap() };
        }
        ssl.connect(stream).unwrap()
    }

    /// The sessions received since the last `handshake` or `connect`.
    pub fn received(&self) -> Vec<SslSession> {
        std::mem::take(&mut *self.received.lock().unwrap())
    }

    /// Connects, offering `session` if given; sends a line, reads the
    /// answer to the end.
    pub fn connect(&self, addr: SocketAddr, session: Option<&SslSession>) -> Connected {
        let mut tls = self.handshake(addr, session);
        tls.write_all(b"hello\n").unwrap();
        let mut response = String::new();
        tls.read_to_string(&mut response).unwrap();
        let resumed = tls.ssl().session_reused();
        let _ = tls.shutdown();
        let sessions = self.received();
        Connected {
            resumed,
            sessions,
            response,
        }
    }
}

/// Client: handshake (offering `offer`), read the server's greeting line
/// (and with it the TLS 1.3 tickets). Returns whether it resumed, copies of
/// the sessions received (the client's OpenSSL marks its own objects not
/// resumable when a connection is dropped without close_notify) and the
/// open stream: dropping it closes TCP without close_notify — a preconnect,
/// a health check.
pub fn greeted(
    client: &Client,
    addr: SocketAddr,
    offer: Option<&SslSession>,
) -> (bool, Vec<SslSession>, openssl::ssl::SslStream<TcpStream>) {
    let tls = client.handshake(addr, offer);
    let mut reader = BufReader::new(tls);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "hello\n");
    let tls = reader.into_inner();
    let sessions = client.received().iter().map(copy).collect();
    (tls.ssl().session_reused(), sessions, tls)
}

/// An application-data record whose authentication cannot verify, written
/// under the TLS layer of `tls`: the server answers with a fatal
/// bad_record_mac alert. Returns what the server sent back (the alert).
pub fn send_corrupt_record(tls: &mut openssl::ssl::SslStream<TcpStream>) -> Vec<u8> {
    let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x40];
    record.extend_from_slice(&[0x5a; 0x40]);
    tls.get_mut().write_all(&record).unwrap();
    let mut rest = Vec::new();
    let _ = tls.get_mut().read_to_end(&mut rest);
    assert!(!rest.is_empty(), "the server sent no alert");
    rest
}
