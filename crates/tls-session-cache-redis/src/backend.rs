//! Connections to one Redis server and the small pool that keeps them, and
//! the deadline every call runs under.
//!
//! The pool is a `Mutex<Vec<_>>` of idle connections, not r2d2: a
//! handshake callback must never wait for another thread to give a
//! connection back, and r2d2's checkout does exactly that (up to its
//! checkout timeout) once its maximum is reached. Here a thread that finds
//! no idle connection opens its own, bounded by the connect timeout, and at
//! most `max_idle` connections are kept for reuse. A connection whose call
//! found Redis gone or slow (i/o error, timeout) is dropped, never reused.
//!
//! A standalone store has one pool; a cluster store has one per master
//! (see `cluster`).
//!
//! **Deadline.** Every store call gets one budget, the largest of the
//! connect, read and write timeouts, measured from its start. Opening a
//! connection waits at most the connect timeout *and* what is left of the
//! budget; a command's read waits at most the read timeout and what is
//! left. So a call that must first connect (or, in a cluster, first load
//! the slot map) still returns within one budget.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::{Client, Connection, ConnectionInfo, ErrorKind, RedisError, ServerErrorKind};
use tls_session_cache::StoreError;

use crate::breaker::Breaker;
use crate::stats::{Counters, bump};

/// Connect, read and write timeouts of every connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) read: Duration,
    pub(crate) write: Duration,
}

impl Timeouts {
    /// The most one store call may take: the largest of the three.
    pub(crate) fn budget(&self) -> Duration {
        self.connect.max(self.read).max(self.write)
    }
}

/// The error of a call whose budget ran out before it could be sent.
pub(crate) fn deadline_passed() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the call's time budget ran out",
    ))
}

/// What is left of the budget, or a timeout error when nothing is.
pub(crate) fn remaining(deadline: Instant) -> Result<Duration, RedisError> {
    let left = deadline.saturating_duration_since(Instant::now());
    // Sockets treat a zero timeout as "wait forever"; below 1 ms is nothing.
    if left < Duration::from_millis(1) {
        Err(deadline_passed())
    } else {
        Ok(left)
    }
}

/// Whether an error means "Redis is not answering" (counts towards the
/// circuit breaker, and the connection is not reused) rather than "Redis
/// answered with an error".
pub(crate) fn is_unavailability(e: &RedisError) -> bool {
    e.is_timeout()
        || e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || matches!(
            e.kind(),
            ErrorKind::Io
                | ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Parse
                | ErrorKind::Server(
                    ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::BusyLoading
                )
        )
}

/// A connection failure that is not a timeout: the connection is dead.
fn is_stale(e: &RedisError) -> bool {
    is_unavailability(e) && !e.is_timeout()
}

/// One call through `breaker`: refused at once (and counted) while it is
/// open; otherwise `f` runs and its outcome is reported to the breaker and
/// the counters, and a Redis error becomes a [`StoreError`].
pub(crate) fn through<T>(
    breaker: &Breaker,
    counters: &Counters,
    budget: Duration,
    f: impl FnOnce() -> Result<T, RedisError>,
) -> Result<T, StoreError> {
    admit(breaker, counters)?;
    settle(breaker, counters, budget, f())
}

/// Asks `breaker` whether a call may go to Redis now; counts a refusal.
pub(crate) fn admit(breaker: &Breaker, counters: &Counters) -> Result<(), StoreError> {
    if !breaker.admit() {
        bump(&counters.circuit_open_rejections);
        bump(&counters.errors);
        return Err(StoreError::Unavailable("circuit open".into()));
    }
    Ok(())
}

/// Reports a call's outcome to `breaker` and the counters, and turns a
/// Redis error into a [`StoreError`].
pub(crate) fn settle<T>(
    breaker: &Breaker,
    counters: &Counters,
    budget: Duration,
    result: Result<T, RedisError>,
) -> Result<T, StoreError> {
    match result {
        Ok(v) => {
            breaker.success();
            Ok(v)
        }
        Err(e) => {
            bump(&counters.errors);
            let unavailable = is_unavailability(&e);
            if unavailable {
                if breaker.failure() {
                    bump(&counters.circuit_opens);
                }
            } else {
                // Redis answered, with an error: it is up.
                breaker.success();
            }
            log::debug!("redis session store: {e}");
            if e.is_timeout() {
                bump(&counters.timeouts);
                Err(StoreError::Timeout(budget))
            } else if unavailable {
                Err(StoreError::Unavailable(e.to_string()))
            } else {
                Err(StoreError::Backend(Box::new(e)))
            }
        }
    }
}

/// A pooled connection and the read timeout currently set on it.
struct Conn {
    con: Connection,
    read: Duration,
}

/// The pool of idle connections to one Redis server.
pub(crate) struct Pool {
    client: Client,
    /// Replies a new connection waits for before it is usable (AUTH or
    /// HELLO, SELECT).
    setup_replies: u32,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
    timeouts: Timeouts,
}

impl Pool {
    /// A pool of connections made with `info` (minus the cosmetic
    /// `CLIENT SETINFO` commands, see [`connect`](Self::connect)).
    pub(crate) fn new(
        info: ConnectionInfo,
        max_idle: usize,
        timeouts: Timeouts,
    ) -> Result<Self, RedisError> {
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        let setup_replies =
            u32::from(settings.password().is_some() || settings.protocol().supports_resp3())
                + u32::from(settings.db() != 0);
        Ok(Pool {
            client: Client::open(info.set_redis_settings(settings))?,
            setup_replies,
            idle: Mutex::new(Vec::with_capacity(max_idle)),
            max_idle,
            timeouts,
        })
    }

    /// Opens a connection within the connect timeout and the deadline.
    ///
    /// redis-rs gives the TCP connect and *each* reply of the connection's
    /// set-up pipeline that same timeout, and after a timed-out reply still
    /// waits for the next one. By default that pipeline is two `CLIENT
    /// SETINFO` commands (naming the client library in `CLIENT LIST`),
    /// so a frozen server cost two connect timeouts. The pool leaves them
    /// out, and splits the wait between the replies that remain (AUTH,
    /// SELECT), so a frozen server costs at most one.
    fn connect(&self, deadline: Instant) -> Result<Conn, RedisError> {
        let t = self.timeouts;
        let wait = t.connect.min(remaining(deadline)?) / self.setup_replies.max(1);
        let con = self.client.get_connection_with_timeout(wait)?;
        con.set_read_timeout(Some(t.read))?;
        con.set_write_timeout(Some(t.write))?;
        Ok(Conn { con, read: t.read })
    }

    /// Runs `request` on a pooled (or new) connection, within `deadline`.
    ///
    /// When a *pooled* connection turns out to be dead (Redis restarted
    /// since it was opened) and the failure is not a timeout, every idle
    /// connection is dropped and the request is sent once more on a fresh
    /// connection, if the budget allows. Timeouts are never retried.
    pub(crate) fn query<T>(
        &self,
        deadline: Instant,
        request: impl Fn(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let was_pooled = pooled.is_some();
        let conn = match pooled {
            Some(c) => c,
            None => self.connect(deadline)?,
        };
        match self.run(conn, deadline, &request) {
            Err(e) if was_pooled && is_stale(&e) => {
                self.clear();
                self.run(self.connect(deadline)?, deadline, &request)
            }
            other => other,
        }
    }

    fn run<T>(
        &self,
        mut conn: Conn,
        deadline: Instant,
        request: &impl Fn(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        let result = match remaining(deadline) {
            Ok(left) => {
                let read = self.timeouts.read.min(left);
                // One setsockopt, only when the budget is shorter than the
                // read timeout (after a connect) or was shortened before.
                if read != conn.read {
                    conn.con.set_read_timeout(Some(read))?;
                    conn.read = read;
                }
                request(&mut conn.con)
            }
            Err(e) => {
                // Nothing was sent: the connection is as good as before.
                self.give_back(conn);
                return Err(e);
            }
        };
        // After a timeout or an i/o error the connection is dropped: the
        // next call opens a fresh one, which costs nothing extra when
        // Redis is down, and one connect timeout when it is frozen — the
        // same as a read on the old one would.
        match &result {
            Err(e) if is_unavailability(e) => {}
            _ => self.give_back(conn),
        }
        result
    }

    fn give_back(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    /// Drops every idle connection (after Redis came back, say).
    pub(crate) fn clear(&self) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
