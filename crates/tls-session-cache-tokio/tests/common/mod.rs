//! Test plumbing: an async server on a current-thread tokio runtime (its
//! own thread) with an `AsyncSessionCache`, and the binding's blocking
//! rust-openssl client that keeps the sessions it is given.
#![allow(dead_code)]

#[path = "../../../tls-session-cache-openssl/tests/common/mod.rs"]
mod blocking;

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::Duration;

#[allow(unused_imports)]
pub use blocking::{Client, copy, greeted, send_corrupt_record};
use openssl::ssl::{Ssl, SslContext, SslContextBuilder};
use tls_session_cache_tokio::{AsyncSessionCache, AsyncSessionCacheBuilder};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;

/// What the server saw of one connection.
#[derive(Debug)]
pub struct Accepted {
    pub resumed: bool,
    pub version: &'static str,
    /// The connection's cipher when it ended (read from its session).
    pub cipher: &'static str,
}

/// How the server ends each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Read a line, answer, `shutdown()` (close_notify).
    Clean,
    /// Read a line, answer, drop the stream without `shutdown()` — what
    /// frameworks do.
    Drop,
    /// Greet (the client gets its TLS 1.3 tickets), then read until the
    /// client goes away, and drop the stream.
    GreetAndReadToEof,
}

/// An async server on 127.0.0.1 running on a current-thread runtime.
pub struct AsyncServer {
    pub addr: SocketAddr,
    pub cache: AsyncSessionCache,
    seen: Receiver<Result<Accepted, String>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl AsyncServer {
    /// Starts a server whose cache `make` builds (inside the runtime).
    pub fn start<F>(make: F) -> AsyncServer
    where
        F: FnOnce() -> AsyncSessionCacheBuilder + Send + 'static,
    {
        Self::start_with(make, |_| {}, Ending::Clean)
    }

    /// Starts a server whose cache `make` builds, whose context `configure`
    /// adjusts, ending each connection as `ending` says.
    pub fn start_with<F>(
        make: F,
        configure: impl FnOnce(&mut SslContextBuilder) + Send + 'static,
        ending: Ending,
    ) -> AsyncServer
    where
        F: FnOnce() -> AsyncSessionCacheBuilder + Send + 'static,
    {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (seen_tx, seen) = mpsc::channel();
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let cache = make().build().unwrap();
                let mut b = blocking::server_builder(&blocking::identity("localhost"));
                configure(&mut b);
                cache.install(&mut b).unwrap();
                let ctx = b.build();
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                ready_tx
                    .send((listener.local_addr().unwrap(), cache.clone()))
                    .unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        conn = listener.accept() => {
                            let Ok((tcp, _)) = conn else { continue };
                            let (cache, ctx, tx) = (cache.clone(), ctx.clone(), seen_tx.clone());
                            tokio::spawn(async move {
                                let _ = tx.send(serve(&cache, &ctx, tcp, ending).await);
                            });
                        }
                    }
                }
            });
        });
        let (addr, cache) = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server did not start");
        AsyncServer {
            addr,
            cache,
            seen,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The server's view of the next connection to finish.
    pub fn accepted(&self) -> Accepted {
        self.seen
            .recv_timeout(Duration::from_secs(30))
            .expect("server saw no connection")
            .expect("server-side connection failed")
    }

    /// The server's outcome of the next connection to finish, error included.
    pub fn outcome(&self) -> Result<Accepted, String> {
        self.seen
            .recv_timeout(Duration::from_secs(30))
            .expect("server saw no connection")
    }
}

impl Drop for AsyncServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One connection: handshake, wait until its sessions are stored, read a
/// line, answer, close_notify.
async fn serve(
    cache: &AsyncSessionCache,
    ctx: &SslContext,
    tcp: tokio::net::TcpStream,
    ending: Ending,
) -> Result<Accepted, String> {
    tcp.set_nodelay(true).ok();
    let ssl = Ssl::new(ctx).map_err(|e| e.to_string())?;
    let mut tls = cache.accept(ssl, tcp).await.map_err(|e| e.to_string())?;
    let resumed = tls.ssl().session_reused();
    let version = tls.ssl().version_str();
    if ending == Ending::GreetAndReadToEof {
        // The tickets were issued by the handshake: stored before the
        // client can read the greeting and come back.
        cache.flush().await;
        tls.write_all(b"hello\n").await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        // No close_notify: OpenSSL 3 reports an unexpected EOF (an error).
        while let Ok(n) = tls.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        let cipher = cipher(tls.ssl());
        return Ok(Accepted {
            resumed,
            version,
            cipher,
        });
    }
    let mut line = String::new();
    BufReader::new(&mut tls)
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?;
    // TLS 1.3 tickets were issued by now; make them findable before the
    // client can come back.
    cache.flush().await;
    tls.write_all(if resumed { b"resumed\n" } else { b"full\n" })
        .await
        .map_err(|e| e.to_string())?;
    if ending == Ending::Clean {
        tls.shutdown().await.map_err(|e| e.to_string())?;
    }
    let cipher = cipher(tls.ssl());
    Ok(Accepted {
        resumed,
        version,
        cipher,
    })
}

/// A redis-server on a free loopback port; a missing binary fails the test.
pub fn redis() -> tls_session_cache_testkit::RedisServer {
    tls_session_cache_testkit::RedisServer::start()
        .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"))
}

/// The name of the connection's current cipher (OpenSSL reads it from the
/// connection's session).
fn cipher(ssl: &openssl::ssl::SslRef) -> &'static str {
    ssl.current_cipher().map_or("none", |c| c.name())
}
