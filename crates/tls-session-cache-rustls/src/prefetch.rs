//! Non-blocking lookups for tokio-rustls (feature `tokio`).
//!
//! rustls asks its session store synchronously, from inside the handshake,
//! so a Redis lookup would hold a runtime worker for a round trip (or a
//! timeout). [`PrefetchAcceptor::accept`] reads the ClientHello first
//! (bounded: [`hello`](crate::hello)), fetches what it offers on tokio's
//! blocking pool — a TLS 1.2 session id with `get`, TLS 1.3 tickets with
//! the store's atomic `take` — and parks the answers with the connection.
//! Then it hands the ClientHello and the rest of the stream to
//! tokio-rustls; while this connection's handshake is polled, the session
//! storage answers from what is parked (never from the store), and writes
//! new sessions on the blocking pool. Nothing of a handshake waits for the
//! store on a runtime worker, as with the OpenSSL client-hello retry of
//! `tls-session-cache-tokio`.
//!
//! A session write is queued, so `put` answers `true` before the store has
//! it: a TLS 1.3 ticket is sent even if the write then fails (counted in
//! `errors`), as with the OpenSSL binding. Sessions that cannot be stored
//! (not a session, bad key, oversize) are still refused at once.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use rustls::ServerConfig;
use tls_session_cache::{Protocol, SessionKey, StoredSession};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;

use crate::cache::SessionCache;
use crate::hello::{HelloReader, Next, Offer};

/// Sessions fetched for one connection, taken by the storage when rustls
/// asks for them.
#[derive(Debug, Default)]
pub(crate) struct Parked(Mutex<Vec<(SessionKey, Option<StoredSession>)>>);

impl Parked {
    /// The session fetched for `key` (once), or `None` if none was.
    pub(crate) fn take(&self, key: &SessionKey) -> Option<StoredSession> {
        let mut parked = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let at = parked.iter().position(|(k, _)| k == key)?;
        parked.swap_remove(at).1
    }
}

thread_local! {
    /// The parked sessions of the connection whose handshake this thread is
    /// polling now, if it was accepted by a [`PrefetchAcceptor`].
    static CURRENT: RefCell<Option<Arc<Parked>>> = const { RefCell::new(None) };
}

/// The parked sessions of the handshake being polled on this thread.
pub(crate) fn current() -> Option<Arc<Parked>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Writes a prepared session on the blocking pool; `false` (nothing
/// written) outside a tokio runtime.
pub(crate) fn write_later(cache: &SessionCache, key: SessionKey, session: StoredSession) -> bool {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            let cache = cache.clone();
            drop(handle.spawn_blocking(move || cache.write(&key, &session)));
            true
        }
        Err(_) => cache.write(&key, &session),
    }
}

/// Accepts TLS connections with tokio-rustls, fetching offered sessions
/// before rustls reads the ClientHello.
///
/// ```no_run
/// # async fn demo(config: rustls::ServerConfig, listener: tokio::net::TcpListener) -> std::io::Result<()> {
/// use std::sync::Arc;
/// use tls_session_cache_rustls::{PrefetchAcceptor, SessionCache};
///
/// let cache = SessionCache::builder().build().map_err(std::io::Error::other)?;
/// let mut config = config;
/// cache.install(&mut config);
/// let acceptor = PrefetchAcceptor::new(cache, Arc::new(config));
/// let (tcp, _) = listener.accept().await?;
/// let tls = acceptor.accept(tcp).await?; // bound it with tokio::time::timeout
/// # drop(tls); Ok(()) }
/// ```
#[derive(Clone)]
pub struct PrefetchAcceptor {
    cache: SessionCache,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for PrefetchAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefetchAcceptor")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl PrefetchAcceptor {
    /// An acceptor for `config`, on which `cache` must be installed
    /// ([`SessionCache::install`]).
    pub fn new(cache: SessionCache, config: Arc<ServerConfig>) -> Self {
        PrefetchAcceptor {
            cache,
            acceptor: tokio_rustls::TlsAcceptor::from(config),
        }
    }

    /// Reads the ClientHello, fetches what it offers without blocking a
    /// runtime worker, then completes the handshake; counts it as resumed
    /// or full. Bound it with a timeout: a client that sends nothing is
    /// waited for.
    pub async fn accept<IO>(&self, mut io: IO) -> io::Result<TlsStream<Replay<IO>>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let (read, offer) = read_client_hello(&mut io).await?;
        let lookups = self.lookups(offer);
        let parked = Arc::new(Parked::default());
        if !lookups.is_empty() {
            let cache = self.cache.clone();
            let fetched = tokio::task::spawn_blocking(move || {
                lookups
                    .into_iter()
                    .map(|key| {
                        let found = cache.fetch(&key);
                        (key, found)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            *parked.0.lock().unwrap_or_else(PoisonError::into_inner) = fetched;
        }
        let handshake = WithParked {
            inner: Box::pin(self.acceptor.accept(Replay { read, at: 0, io })),
            parked,
        };
        let tls = handshake.await?;
        self.cache.handshake_done(tls.get_ref().1);
        Ok(tls)
    }

    /// The keys to fetch for `offer`: TLS 1.3 tickets when TLS 1.3 is
    /// offered (its legacy session id is random), else the session id.
    /// Ids that cannot be keys are not fetched (rustls's lookup of them is
    /// then the usual counted `invalid_id` miss).
    fn lookups(&self, offer: Option<Offer>) -> Vec<SessionKey> {
        let Some(offer) = offer else {
            return Vec::new();
        };
        if offer.tls13 {
            let ids = offer.psk_identities.iter();
            ids.filter_map(|id| self.cache.key(Protocol::Tls13, id))
                .collect()
        } else {
            self.cache
                .key(Protocol::Tls12, &offer.session_id)
                .into_iter()
                .collect()
        }
    }
}

/// Reads TLS records up to the end of the ClientHello; returns the bytes
/// read and what the ClientHello offers (`None`: not one, or too large).
async fn read_client_hello<IO: AsyncRead + Unpin>(
    io: &mut IO,
) -> io::Result<(Vec<u8>, Option<Offer>)> {
    let mut read = Vec::new();
    let mut hello = HelloReader::default();
    loop {
        let mut header = [0u8; 5];
        if let Err(e) = io.read_exact(&mut header).await {
            return if e.kind() == io::ErrorKind::UnexpectedEof {
                Ok((read, None)) // rustls will see the short stream
            } else {
                Err(e)
            };
        }
        read.extend_from_slice(&header);
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len > crate::hello::MAX_HELLO + 256 {
            return Ok((read, None));
        }
        let start = read.len();
        read.resize(start + len, 0);
        if let Err(e) = io.read_exact(&mut read[start..]).await {
            read.truncate(start);
            return if e.kind() == io::ErrorKind::UnexpectedEof {
                Ok((read, None))
            } else {
                Err(e)
            };
        }
        match hello.record(header[0], &read[start..]) {
            Next::More => continue,
            Next::Done(offer) => return Ok((read, Some(offer))),
            Next::GiveUp => return Ok((read, None)),
        }
    }
}

/// A future polled with its connection's parked sessions current.
struct WithParked<F> {
    inner: Pin<Box<F>>,
    parked: Arc<Parked>,
}

impl<F: Future> Future for WithParked<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let parked = Arc::clone(&self.parked);
        let previous = CURRENT.with(|c| c.replace(Some(parked)));
        let result = self.inner.as_mut().poll(cx);
        CURRENT.with(|c| c.replace(previous));
        result
    }
}

/// A stream that first replays the bytes read ahead (the ClientHello),
/// then reads from the stream itself; writes go straight through.
#[derive(Debug)]
pub struct Replay<IO> {
    read: Vec<u8>,
    at: usize,
    io: IO,
}

impl<IO> Replay<IO> {
    /// The underlying stream.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Replay<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.read.len() {
            let n = buf.remaining().min(this.read.len() - this.at);
            buf.put_slice(&this.read[this.at..this.at + n]);
            this.at += n;
            if this.at == this.read.len() {
                this.read = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Replay<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
