//! Connections to Redis (standalone or Cluster) and the small pool that
//! keeps them.
//!
//! The pool is a `Mutex<Vec<_>>` of idle connections, not r2d2: a
//! handshake callback must never wait for another thread to give a
//! connection back, and r2d2's checkout does exactly that (up to its
//! checkout timeout) once its maximum is reached. Here a thread that finds
//! no idle connection opens its own, bounded by the connect timeout, and at
//! most `max_idle` connections are kept for reuse. A connection whose call
//! found Redis gone (i/o error) is dropped, never reused.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{Client, Cmd, Connection, ErrorKind, FromRedisValue, RedisError, ServerErrorKind};

/// Connect, read and write timeouts of every connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) read: Duration,
    pub(crate) write: Duration,
}

/// Where the store connects.
pub(crate) enum Backend {
    Standalone(Client),
    Cluster(ClusterClient),
}

enum Conn {
    Standalone(Connection),
    // Boxed: a cluster connection is four times the size of a plain one.
    Cluster(Box<ClusterConnection>),
}

impl Conn {
    fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> Result<T, RedisError> {
        match self {
            Conn::Standalone(c) => cmd.query(c),
            Conn::Cluster(c) => cmd.query(&mut **c),
        }
    }
}

/// The pool of idle connections.
pub(crate) struct Pool {
    backend: Backend,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
    timeouts: Timeouts,
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

/// A cluster redirection: the connection's slot map is out of date.
fn is_redirect(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask)
    )
}

impl Pool {
    pub(crate) fn new(backend: Backend, max_idle: usize, timeouts: Timeouts) -> Self {
        Pool {
            backend,
            idle: Mutex::new(Vec::with_capacity(max_idle)),
            max_idle,
            timeouts,
        }
    }

    fn connect(&self) -> Result<Conn, RedisError> {
        let t = self.timeouts;
        match &self.backend {
            Backend::Standalone(client) => {
                let c = client.get_connection_with_timeout(t.connect)?;
                c.set_read_timeout(Some(t.read))?;
                c.set_write_timeout(Some(t.write))?;
                Ok(Conn::Standalone(c))
            }
            Backend::Cluster(client) => {
                let c = client.get_connection()?;
                c.set_read_timeout(Some(t.read))?;
                c.set_write_timeout(Some(t.write))?;
                Ok(Conn::Cluster(Box::new(c)))
            }
        }
    }

    /// Runs one command on a pooled (or new) connection.
    ///
    /// When a *pooled* connection turns out to be dead (Redis restarted
    /// since it was opened) and the failure is not a timeout, every idle
    /// connection is dropped and the command is sent once more on a fresh
    /// connection. A cluster `MOVED`/`ASK` (slots moved since the
    /// connection read the slot map) is retried the same way. Timeouts are
    /// never retried: they would double the wait.
    pub(crate) fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let was_pooled = pooled.is_some();
        let conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        match self.run(conn, cmd) {
            Err(e) if (was_pooled && is_stale(&e)) || is_redirect(&e) => {
                self.clear();
                self.run(self.connect()?, cmd)
            }
            other => other,
        }
    }

    fn run<T: FromRedisValue>(&self, mut conn: Conn, cmd: &Cmd) -> Result<T, RedisError> {
        let result = conn.query(cmd);
        let reuse = match (&result, &conn) {
            (Ok(_), _) => true,
            (Err(e), _) if is_stale(e) || is_redirect(e) => false,
            // After a timeout redis-rs skips the late reply when it comes,
            // so a timed-out connection stays usable. A cluster connection
            // is kept: dropping it would make the next call reconnect to
            // every node, paying a connect timeout for a frozen one. A
            // single-server connection is dropped: the next call opens a
            // fresh one, which costs nothing extra when Redis is down.
            (Err(e), Conn::Cluster(_)) if e.is_timeout() => true,
            (Err(e), Conn::Standalone(_)) => !is_unavailability(e),
            (Err(_), Conn::Cluster(_)) => true,
        };
        if reuse {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
        result
    }

    /// Drops every idle connection (after Redis came back, say).
    pub(crate) fn clear(&self) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
