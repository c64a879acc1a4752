//! A server thread: accepts loopback connections one after another; each
//! does the server side of a handshake, writes one byte, sends
//! `close_notify` and closes.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use openssl::ssl::{Ssl, SslContext};

use crate::cpu::ThreadClock;
use crate::error::BenchError;

/// What a server saw, counted as it goes.
#[derive(Debug, Default)]
pub struct ServerCounts {
    /// Connections whose handshake resumed a session.
    pub resumed: AtomicU64,
    /// Connections with a full handshake.
    pub full: AtomicU64,
    /// Connections that failed on the server side.
    pub failed: AtomicU64,
}

impl ServerCounts {
    /// Counts one connection's outcome (whether it resumed, or why it
    /// failed: logged as `{server}: {error}`).
    pub fn count(&self, outcome: Result<bool, String>, server: &str) {
        let counter = match outcome {
            Ok(true) => &self.resumed,
            Ok(false) => &self.full,
            Err(e) => {
                log::warn!("{server}: {e}");
                &self.failed
            }
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }

    /// (resumed, full, failed).
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.resumed.load(Ordering::SeqCst),
            self.full.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }
}

/// A running server thread.
pub struct Server {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    /// Its counters.
    pub counts: Arc<ServerCounts>,
    clock: ThreadClock,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts a server thread named `server-{name}` for `ctx`.
    pub fn start(name: &str, ctx: SslContext) -> Result<Server, BenchError> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(ServerCounts::default());
        let (stop2, counts2) = (Arc::clone(&stop), Arc::clone(&counts));
        let thread = std::thread::Builder::new()
            .name(format!("server-{name}"))
            .spawn(move || accept_loop(&listener, &ctx, &stop2, &counts2, "server"))?;
        let clock = ThreadClock::of(&thread)?;
        Ok(Server {
            addr,
            counts,
            clock,
            stop,
            thread: Some(thread),
        })
    }

    /// CPU time the server thread has used so far.
    pub fn cpu(&self) -> Duration {
        self.clock.now()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves `listener`'s connections one after another, counting each,
/// until `stop` is set (and a connection wakes the blocking accept). The
/// body of the server thread, and of each thread of the blocking
/// thread-pool server of the load group.
pub(crate) fn accept_loop(
    listener: &TcpListener,
    ctx: &SslContext,
    stop: &AtomicBool,
    counts: &ServerCounts,
    server: &str,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let outcome = match stream {
            Ok(stream) => serve(ctx, stream),
            Err(e) => Err(e.to_string()),
        };
        counts.count(outcome, server);
    }
}

/// One connection; returns whether the handshake resumed.
fn serve(ctx: &SslContext, stream: TcpStream) -> Result<bool, String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let ssl = Ssl::new(ctx).map_err(|e| e.to_string())?;
    let mut tls = ssl.accept(stream).map_err(|e| e.to_string())?;
    let resumed = tls.ssl().session_reused();
    tls.write_all(b"x").map_err(|e| e.to_string())?;
    // close_notify, as a polite server sends it (the session is kept
    // either way).
    tls.shutdown().map_err(|e| e.to_string())?;
    Ok(resumed)
}
