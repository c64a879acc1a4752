//! The client: pins one TLS version, offers a session when given one, and
//! keeps the sessions (TLS 1.2) and tickets (TLS 1.3) the server sends.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslSession, SslSessionCacheMode, SslVerifyMode,
};

use crate::error::BenchError;
use crate::setup::Proto;

/// A client context for one protocol version.
pub struct Client {
    ctx: SslContext,
    received: Arc<Mutex<Vec<SslSession>>>,
}

/// What the client saw of one connection.
pub struct Connection {
    /// The handshake resumed the offered session.
    pub resumed: bool,
    /// From the start of the TCP connect to the server's first byte of
    /// application data (which the server writes after its side of the
    /// handshake and, in TLS 1.3, after its tickets).
    pub latency: Duration,
    /// Sessions (TLS 1.2) or tickets (TLS 1.3) received on this connection.
    pub sessions: Vec<SslSession>,
}

impl Client {
    /// A client speaking only `proto`, not verifying the (self-signed) server.
    pub fn new(proto: Proto) -> Result<Client, BenchError> {
        let mut b = SslContextBuilder::new(SslMethod::tls_client())?;
        b.set_min_proto_version(Some(proto.version()))?;
        b.set_max_proto_version(Some(proto.version()))?;
        b.set_verify(SslVerifyMode::NONE);
        // The client keeps sessions itself (no internal client cache):
        // the callback hands each new one to us.
        b.set_session_cache_mode(SslSessionCacheMode::CLIENT | SslSessionCacheMode::NO_INTERNAL);
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        b.set_new_session_callback(move |_, session| {
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(session)
        });
        Ok(Client {
            ctx: b.build(),
            received,
        })
    }

    /// One connection to `addr`, offering `session` if given: handshake,
    /// read the server's byte and its close_notify, send ours.
    pub fn connect(
        &self,
        addr: SocketAddr,
        session: Option<&SslSession>,
    ) -> Result<Connection, BenchError> {
        let fail =
            |what: &str, e: &dyn std::fmt::Display| BenchError::Handshake(format!("{what}: {e}"));
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let start = Instant::now();
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut ssl = Ssl::new(&self.ctx)?;
        ssl.set_hostname("localhost")?;
        if let Some(s) = session {
            // SAFETY: the session was made by this same client context
            // (same method), as set_session requires.
            unsafe { ssl.set_session(s)? };
        }
        let mut tls = ssl.connect(stream).map_err(|e| fail("connect", &e))?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).map_err(|e| fail("read", &e))?;
        let latency = start.elapsed();
        let resumed = tls.ssl().session_reused();
        // Up to the server's close_notify (Ok(0)); nothing else is sent.
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest)
            .map_err(|e| fail("read to end", &e))?;
        let _ = tls.shutdown();
        let sessions =
            std::mem::take(&mut *self.received.lock().unwrap_or_else(PoisonError::into_inner));
        Ok(Connection {
            resumed,
            latency,
            sessions,
        })
    }
}
