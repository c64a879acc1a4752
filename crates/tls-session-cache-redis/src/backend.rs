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
//! (see `cluster`). The connections are `wire`'s, not redis-rs's.
//!
//! **Deadline.** Every store call gets one budget, the largest of the
//! connect, read and write timeouts, measured from its start. Opening a
//! connection waits at most the connect timeout *and* what is left of the
//! budget; a command waits at most the read timeout and what is left —
//! all its reads and writes together, not each (see `wire`) — and a reply
//! larger than the pool's `max_reply` is refused before it is read whole,
//! its connection dropped. So a call that must first connect (or, in a cluster, first load
//! the slot map) still returns within one budget.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::{
    Client, ConnectionAddr, ConnectionInfo, ConnectionLike, ErrorKind, RedisConnectionInfo,
    RedisError, ServerErrorKind,
};
use tls_session_cache::StoreError;

use crate::breaker::Breaker;
use crate::stats::{Counters, bump};
use crate::tls::Tls;
use crate::wire::{Address, Wire, is_reply_too_large};

pub(crate) use crate::deadline::{deadline_passed, remaining};

/// Connect, read and write timeouts of every connection, and the largest
/// reply it reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) read: Duration,
    pub(crate) write: Duration,
    /// Bytes one reply may take before the call fails and the connection
    /// is dropped (see `wire`); set from `max_session_size`.
    pub(crate) max_reply: usize,
}

impl Timeouts {
    /// The most one store call may take: the largest of the three.
    pub(crate) fn budget(&self) -> Duration {
        self.connect.max(self.read).max(self.write)
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
        return admit_refused(counters);
    }
    Ok(())
}

/// Counts a call refused by an open circuit, and its error.
pub(crate) fn admit_refused<T>(counters: &Counters) -> Result<T, StoreError> {
    bump(&counters.circuit_open_rejections);
    bump(&counters.errors);
    Err(StoreError::Unavailable("circuit open".into()))
}

/// Redis refused the credentials (`WRONGPASS`, `NOAUTH`) or the ACL
/// user's permissions (`NOPERM`). The password is never part of it.
#[derive(Debug, thiserror::Error)]
#[error("Redis refused access: {detail}")]
pub struct AccessDenied {
    /// Redis's error, as redis-rs reports it.
    pub detail: String,
}

/// Whether `e` is Redis refusing the credentials or the permissions.
pub(crate) fn is_access_denied(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::AuthenticationFailed | ErrorKind::Server(ServerErrorKind::NoPerm)
    ) || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
}

/// Reports a call's outcome to `breaker` and the counters, and turns a
/// Redis error into a [`StoreError`].
///
/// A refused TLS handshake and refused credentials count as Redis being
/// unavailable (the breaker opens, calls stop reaching Redis), are counted
/// in `tls_errors` / `auth_errors`, and are logged as warnings at most once
/// per ten seconds each.
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
            let denied = is_access_denied(&e);
            if denied {
                bump(&counters.auth_errors);
                if let Some(suppressed) = counters.auth_warning.admit() {
                    log::warn!(
                        "redis session store: {e} — check the user and password \
                         ({suppressed} more since the last warning; counted in redis.auth_errors)"
                    );
                }
            } else if is_reply_too_large(&e) {
                bump(&counters.oversize_replies);
                if let Some(suppressed) = counters.value_warning.admit() {
                    log::warn!(
                        "redis session store: {e}; connection dropped ({suppressed} more \
                         warnings since the last; counted in redis.oversize_replies)"
                    );
                }
            } else if crate::tls::is_handshake_failure(&e) {
                bump(&counters.tls_errors);
                if let Some(suppressed) = counters.tls_warning.admit() {
                    log::warn!(
                        "redis session store: {e} ({suppressed} more since the last warning; \
                         counted in redis.tls_errors)"
                    );
                }
            }
            let unavailable = is_unavailability(&e) || denied;
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
            } else if denied {
                Err(StoreError::Backend(Box::new(AccessDenied {
                    detail: e.to_string(),
                })))
            } else if unavailable {
                Err(StoreError::Unavailable(e.to_string()))
            } else {
                Err(StoreError::Backend(Box::new(e)))
            }
        }
    }
}

/// How to open a connection to one Redis server.
#[derive(Clone)]
pub(crate) enum Dialer {
    /// redis-rs's own connection (TCP or a Unix socket, no TLS), minus the
    /// cosmetic `CLIENT SETINFO` commands (see [`Pool::connect`]).
    Plain(Client),
    /// TCP, then TLS on rust-openssl (see `tls`), every step within the
    /// call's deadline.
    Tls {
        host: String,
        port: u16,
        settings: RedisConnectionInfo,
        tls: Arc<Tls>,
    },
}

impl Dialer {
    /// A dialer for `info` (its address, credentials and database), over
    /// TLS when `tls` is given (`info` must then be a TCP address).
    pub(crate) fn new(info: ConnectionInfo, tls: Option<&Arc<Tls>>) -> Result<Dialer, RedisError> {
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        match (tls, info.addr()) {
            (None, _) => Ok(Dialer::Plain(Client::open(
                info.set_redis_settings(settings),
            )?)),
            (Some(tls), ConnectionAddr::Tcp(host, port)) => Ok(Dialer::Tls {
                host: host.clone(),
                port: *port,
                settings,
                tls: Arc::clone(tls),
            }),
            (Some(_), _) => Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "TLS needs a TCP address (HOST:PORT)",
            ))),
        }
    }

    /// The same settings (credentials, database, TLS) at another address.
    pub(crate) fn at(&self, host: &str, port: u16) -> Result<Dialer, RedisError> {
        match self {
            Dialer::Plain(client) => {
                let info = client
                    .get_connection_info()
                    .clone()
                    .set_addr(ConnectionAddr::Tcp(host.to_string(), port));
                Ok(Dialer::Plain(Client::open(info)?))
            }
            Dialer::Tls { settings, tls, .. } => Ok(Dialer::Tls {
                host: host.to_string(),
                port,
                settings: settings.clone(),
                tls: Arc::clone(tls),
            }),
        }
    }

    /// The credentials and database.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn settings(&self) -> &RedisConnectionInfo {
        match self {
            Dialer::Plain(client) => client.get_connection_info().redis_settings(),
            Dialer::Tls { settings, .. } => settings,
        }
    }

    /// `host:port` (or the socket path), for messages.
    pub(crate) fn peer(&self) -> String {
        match self {
            Dialer::Plain(client) => match client.get_connection_info().addr() {
                ConnectionAddr::Tcp(h, p)
                | ConnectionAddr::TcpTls {
                    host: h, port: p, ..
                } => {
                    format!("{h}:{p}")
                }
                ConnectionAddr::Unix(path) => path.display().to_string(),
                _ => "redis".to_string(),
            },
            Dialer::Tls { host, port, .. } => format!("{host}:{port}"),
        }
    }

    /// `(host, port)` of a TCP address.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn tcp(&self) -> Option<(&str, u16)> {
        match self {
            Dialer::Plain(client) => match client.get_connection_info().addr() {
                ConnectionAddr::Tcp(h, p) => Some((h.as_str(), *p)),
                _ => None,
            },
            Dialer::Tls { host, port, .. } => Some((host.as_str(), *port)),
        }
    }

    /// The TLS settings, if any.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn tls(&self) -> Option<&Tls> {
        match self {
            Dialer::Plain(_) => None,
            Dialer::Tls { tls, .. } => Some(tls),
        }
    }

    /// The socket path of a Unix-socket address.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn unix_path(&self) -> Option<&std::path::Path> {
        match self {
            Dialer::Plain(client) => match client.get_connection_info().addr() {
                ConnectionAddr::Unix(path) => Some(path.as_path()),
                _ => None,
            },
            Dialer::Tls { .. } => None,
        }
    }
}

/// The pool of idle connections to one Redis server.
pub(crate) struct Pool {
    dialer: Dialer,
    idle: Mutex<Vec<Wire>>,
    max_idle: usize,
    timeouts: Timeouts,
}

impl Pool {
    /// A pool of connections made by `dialer`.
    pub(crate) fn new(dialer: Dialer, max_idle: usize, timeouts: Timeouts) -> Self {
        Pool {
            dialer,
            idle: Mutex::new(Vec::with_capacity(max_idle)),
            max_idle,
            timeouts,
        }
    }

    /// The dialer (address and settings) of this pool.
    pub(crate) fn dialer(&self) -> &Dialer {
        &self.dialer
    }

    /// Opens a connection within the connect timeout and the deadline:
    /// name resolution, TCP connect to each address in turn, TLS, `AUTH`
    /// and `SELECT` all share that one wait (see `wire`). redis-rs's own
    /// connection gave the TCP connect and *each* reply of its set-up that
    /// timeout, and resolved names without any.
    fn connect(&self, deadline: Instant) -> Result<Wire, RedisError> {
        let t = self.timeouts;
        let wait = t.connect.min(remaining(deadline)?);
        let until = Instant::now() + wait;
        let con = match &self.dialer {
            Dialer::Plain(client) => {
                let info = client.get_connection_info();
                let addr = match info.addr() {
                    ConnectionAddr::Tcp(host, port) => Address::Tcp(host, *port),
                    #[cfg(unix)]
                    ConnectionAddr::Unix(path) => Address::Unix(path),
                    _ => {
                        return Err(RedisError::from((
                            ErrorKind::InvalidClientConfig,
                            "unsupported Redis address",
                        )));
                    }
                };
                Wire::connect(addr, None, info.redis_settings(), until, t.max_reply)?
            }
            Dialer::Tls {
                host,
                port,
                settings,
                tls,
            } => Wire::connect(
                Address::Tcp(host, *port),
                Some(tls),
                settings,
                until,
                t.max_reply,
            )?,
        };
        Ok(con)
    }

    /// Runs `request` (whose replies are each at most the pool's
    /// `max_reply` bytes) on a pooled (or new) connection, within
    /// `deadline`. See [`query_capped`](Self::query_capped).
    pub(crate) fn query<T>(
        &self,
        deadline: Instant,
        request: impl Fn(&mut dyn ConnectionLike) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        self.query_capped(deadline, self.timeouts.max_reply, request)
    }

    /// Runs `request` on a pooled (or new) connection, within `deadline`;
    /// a reply larger than `max_reply` bytes fails the call (the
    /// connection is dropped).
    ///
    /// When a *pooled* connection turns out to be dead (Redis restarted
    /// since it was opened) and the failure is not a timeout, every idle
    /// connection is dropped and the request is sent once more on a fresh
    /// connection, if the budget allows. Timeouts are never retried.
    pub(crate) fn query_capped<T>(
        &self,
        deadline: Instant,
        max_reply: usize,
        request: impl Fn(&mut dyn ConnectionLike) -> Result<T, RedisError>,
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
        match self.run(conn, deadline, max_reply, &request) {
            Err(e) if was_pooled && is_stale(&e) && !is_reply_too_large(&e) => {
                self.clear();
                self.run(self.connect(deadline)?, deadline, max_reply, &request)
            }
            other => other,
        }
    }

    fn run<T>(
        &self,
        mut conn: Wire,
        deadline: Instant,
        max_reply: usize,
        request: &impl Fn(&mut dyn ConnectionLike) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        let result = match remaining(deadline) {
            Ok(left) => {
                // Every read and write of the call waits at most what is
                // left of the call's budget (and of the read timeout).
                conn.arm(Instant::now() + self.timeouts.read.min(left), max_reply);
                request(&mut conn)
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

    fn give_back(&self, conn: Wire) {
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
