//! A byte budget on the async store's shared connection (feature `tokio`).
//!
//! redis-rs's multiplexed connection reads replies into a buffer that grows
//! with what arrives, so a bulk string announcing 1 GiB and then sent would
//! be read whole (within the call's timeout, loopback moves gigabytes per
//! second). Replies of concurrent calls share the stream, so there is no
//! per-reply boundary to count against; instead every call grants the
//! connection [`Budget::grant`] bytes (its largest legitimate reply) before
//! it sends, every read spends what it reads, and a read beyond the credit
//! fails the stream: redis-rs then fails every call on it, the store drops
//! the connection, and [`Budget::tripped`] tells it to count an oversize
//! reply. Unused credit is kept up to [`CREDIT_CALLS`] calls' worth, so
//! honest bursts of concurrent calls never trip it and a hostile reply can
//! make the connection read at most that much.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::wire::REPLY_TOO_LARGE;

/// Calls' worth of credit a connection may hold: with 10 KiB sessions
/// (21 KiB replies) a hostile reply can be read up to 5.3 MiB before the
/// connection is dropped.
pub(crate) const CREDIT_CALLS: i64 = 256;

/// The credit of one connection.
#[derive(Debug)]
pub(crate) struct Budget {
    credit: AtomicI64,
    per_call: i64,
    tripped: AtomicBool,
}

impl Budget {
    /// A budget of `per_call` bytes per call.
    pub(crate) fn new(per_call: usize) -> Arc<Budget> {
        let per_call = i64::try_from(per_call).unwrap_or(i64::MAX / CREDIT_CALLS);
        Arc::new(Budget {
            credit: AtomicI64::new(per_call),
            per_call,
            tripped: AtomicBool::new(false),
        })
    }

    /// One more call is about to send: its reply may take `per_call` bytes.
    pub(crate) fn grant(&self) {
        let cap = self.per_call.saturating_mul(CREDIT_CALLS);
        let _ = self
            .credit
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                Some(c.saturating_add(self.per_call).min(cap))
            });
    }

    /// Whether a read went beyond the credit (the connection is failed).
    pub(crate) fn tripped(&self) -> bool {
        self.tripped.load(Ordering::Acquire)
    }
}

/// A stream whose reads spend a [`Budget`].
pub(crate) struct Capped<S> {
    inner: S,
    budget: Arc<Budget>,
}

impl<S> Capped<S> {
    pub(crate) fn new(inner: S, budget: Arc<Budget>) -> Self {
        Capped { inner, budget }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Capped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let credit = self.budget.credit.load(Ordering::Acquire);
        if credit <= 0 || self.budget.tripped() {
            self.budget.tripped.store(true, Ordering::Release);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{REPLY_TOO_LARGE} the connection's credit: refused before reading it whole"
                ),
            )));
        }
        let allowed = usize::try_from(credit).unwrap_or(usize::MAX);
        let me = &mut *self;
        if allowed >= buf.remaining() {
            let before = buf.filled().len();
            let poll = Pin::new(&mut me.inner).poll_read(cx, buf);
            if let Poll::Ready(Ok(())) = &poll {
                me.spend(buf.filled().len() - before);
            }
            return poll;
        }
        // Near the end of the credit: read at most what is left of it (a
        // copy, only on this rare path).
        let mut small = vec![0u8; allowed];
        let mut limited = ReadBuf::new(&mut small);
        let poll = Pin::new(&mut me.inner).poll_read(cx, &mut limited);
        if let Poll::Ready(Ok(())) = &poll {
            let n = limited.filled().len();
            buf.put_slice(limited.filled());
            me.spend(n);
        }
        poll
    }
}

impl<S> Capped<S> {
    fn spend(&self, n: usize) {
        self.budget
            .credit
            .fetch_sub(i64::try_from(n).unwrap_or(i64::MAX), Ordering::AcqRel);
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Capped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
