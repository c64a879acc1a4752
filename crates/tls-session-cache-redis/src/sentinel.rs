//! Redis Sentinel: the master of a named service, found by asking the
//! sentinels (`SENTINEL get-master-addr-by-name`), and followed through a
//! failover.
//!
//! Why not redis-rs's `sentinel` module: its blocking client connects to
//! sentinels and masters without a connect or read timeout, and asks a
//! sentinel again for every connection; a frozen sentinel or master would
//! hold a handshake forever. Here every step is under the call's deadline
//! (see `backend`), and the store's one circuit breaker covers the service.
//!
//! * The master's address is asked of the sentinels (one after the other,
//!   starting with the one that answered last, while the call's budget
//!   lasts) by the first call, and again — at most once per
//!   [`RECHECK_INTERVAL`] — after the master failed (refused, reset, timed
//!   out, or answered `READONLY`: a demoted master), and every
//!   [`REVALIDATE_INTERVAL`] in any case.
//! * **While the circuit is open** a refused call still asks a sentinel (at
//!   most once per [`RECHECK_INTERVAL`]); when Sentinel names a new master
//!   the circuit is reset and the call goes to it. So resumption returns
//!   as soon as Sentinel has promoted a replica, not after the breaker's
//!   back-off.
//! * A failed sentinel query keeps the last known master.
//!
//! The async store shares [`Watch`] (when to ask, which sentinel first,
//! what changed) and asks with its own async connections.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redis::{ConnectionLike, ErrorKind, RedisError, ServerErrorKind};
use tls_session_cache::StoreError;

use crate::backend::{Dialer, Pool, Timeouts, admit_refused, is_unavailability, remaining, settle};
use crate::breaker::Breaker;
use crate::stats::{Counters, bump};

/// Shortest time between two sentinel queries after a failure.
pub(crate) const RECHECK_INTERVAL: Duration = Duration::from_millis(250);
/// The master's address is asked again this often even when all is well
/// (a master demoted while our connections to it still work).
pub(crate) const REVALIDATE_INTERVAL: Duration = Duration::from_secs(5);

/// Whether `e` says the node is no longer the master.
pub(crate) fn is_demoted(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Server(ServerErrorKind::ReadOnly))
        || matches!(e.code(), Some("READONLY"))
}

/// The `SENTINEL get-master-addr-by-name` command.
pub(crate) fn master_query(name: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("SENTINEL");
    cmd.arg("get-master-addr-by-name").arg(name);
    cmd
}

/// The reply of [`master_query`]: `None` when the sentinel does not know
/// the name.
pub(crate) fn unknown_master(name: &str) -> RedisError {
    RedisError::from((
        ErrorKind::InvalidClientConfig,
        "Sentinel does not know the master name",
        name.to_string(),
    ))
}

/// When to ask the sentinels, and which one first: the state the blocking
/// and the async store share.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    state: Mutex<WatchState>,
}

#[derive(Debug, Default)]
struct WatchState {
    /// The master failed since the last query.
    stale: bool,
    /// When the last query started.
    last: Option<Instant>,
    /// A query is running (others use the current master).
    running: bool,
    /// The sentinel asked first next time (the last one that answered).
    first: usize,
}

/// Why a query is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// No master known yet: every call asks.
    First,
    /// The master failed or it is time to check again.
    Recheck,
}

impl Watch {
    /// Whether this call should ask the sentinels now (and if so, marks a
    /// query as running; call [`done`](Self::done) after).
    pub(crate) fn due(&self, known: bool, failing: bool) -> Option<Due> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !known {
            st.last = Some(Instant::now());
            return Some(Due::First);
        }
        let interval = if st.stale || failing {
            RECHECK_INTERVAL
        } else {
            REVALIDATE_INTERVAL
        };
        if st.running || st.last.is_some_and(|t| t.elapsed() < interval) {
            return None;
        }
        st.last = Some(Instant::now());
        st.running = true;
        Some(Due::Recheck)
    }

    /// A query ended; `answered` is the index of the sentinel that answered.
    pub(crate) fn done(&self, answered: Option<usize>) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.running = false;
        if let Some(i) = answered {
            st.stale = false;
            st.first = i;
        }
    }

    /// The master failed: ask again soon.
    pub(crate) fn mark_stale(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stale = true;
    }

    /// The order in which to ask `n` sentinels.
    pub(crate) fn order(&self, n: usize) -> impl Iterator<Item = usize> + use<> {
        let first = self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first;
        (0..n).map(move |i| (first + i) % n.max(1))
    }
}

/// The current master: its address and connections.
struct Master {
    addr: (String, u16),
    pool: Pool,
}

/// A service behind Redis Sentinel (blocking store).
pub(crate) struct Sentinel {
    name: String,
    /// Connections to each sentinel.
    sentinels: Vec<Pool>,
    /// Credentials, database and TLS for the master (address replaced).
    data: Dialer,
    master: RwLock<Option<Arc<Master>>>,
    watch: Watch,
    max_idle: usize,
    timeouts: Timeouts,
}

impl Sentinel {
    /// A service `name` behind the `sentinels`. Does not connect.
    pub(crate) fn new(
        name: String,
        sentinels: Vec<Dialer>,
        data: Dialer,
        max_idle: usize,
        timeouts: Timeouts,
    ) -> Sentinel {
        Sentinel {
            name,
            sentinels: sentinels
                .into_iter()
                .map(|d| Pool::new(d, 1, timeouts))
                .collect(),
            data,
            master: RwLock::new(None),
            watch: Watch::default(),
            max_idle,
            timeouts,
        }
    }

    fn current(&self) -> Option<Arc<Master>> {
        self.master
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Asks the sentinels, in turn, for the master's address, before
    /// `deadline`. The first answer wins.
    fn ask(&self, deadline: Instant) -> Result<(String, u16), RedisError> {
        let mut last = None;
        for i in self.watch.order(self.sentinels.len()) {
            if remaining(deadline).is_err() {
                break;
            }
            let reply: Result<Option<(String, u16)>, RedisError> =
                self.sentinels[i].query(deadline, |con| master_query(&self.name).query(con));
            match reply {
                Ok(Some(addr)) => {
                    self.watch.done(Some(i));
                    return Ok(addr);
                }
                Ok(None) => last = Some(unknown_master(&self.name)),
                Err(e) => {
                    log::debug!(
                        "redis session store: sentinel {} did not answer: {e}",
                        self.sentinels[i].dialer().peer()
                    );
                    last = Some(e);
                }
            }
        }
        self.watch.done(None);
        Err(last.unwrap_or_else(crate::backend::deadline_passed))
    }

    /// Installs `addr` as the master if it is a new one; whether it was.
    fn install(&self, addr: (String, u16), counters: &Counters) -> Result<Arc<Master>, RedisError> {
        let mut slot = self.master.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = &*slot
            && m.addr == addr
        {
            return Ok(Arc::clone(m));
        }
        if let Some(old) = &*slot {
            bump(&counters.master_changes);
            log::warn!(
                "redis session store: Sentinel names a new master for {}: {}:{} (was {}:{})",
                self.name,
                addr.0,
                addr.1,
                old.addr.0,
                old.addr.1
            );
        } else {
            log::info!(
                "redis session store: Sentinel names {}:{} master of {}",
                addr.0,
                addr.1,
                self.name
            );
        }
        let pool = Pool::new(self.data.at(&addr.0, addr.1)?, self.max_idle, self.timeouts);
        let master = Arc::new(Master { addr, pool });
        *slot = Some(Arc::clone(&master));
        Ok(master)
    }

    /// The master to send a call to: asks the sentinels first when none is
    /// known, or when a check is due (then a failed query keeps the old one).
    fn master(&self, counters: &Counters, deadline: Instant) -> Result<Arc<Master>, RedisError> {
        let current = self.current();
        match (self.watch.due(current.is_some(), false), current) {
            (None, Some(m)) => Ok(m),
            (Some(Due::First), _) | (_, None) => {
                let addr = self.ask(deadline)?;
                self.install(addr, counters)
            }
            (Some(Due::Recheck), Some(m)) => match self.ask(deadline) {
                Ok(addr) => self.install(addr, counters),
                Err(e) => {
                    log::debug!("redis session store: sentinels not asked again: {e}");
                    Ok(m)
                }
            },
        }
    }

    /// Runs `request` on the master, through `breaker`, within `deadline`.
    pub(crate) fn call<T>(
        &self,
        breaker: &Breaker,
        counters: &Counters,
        budget: Duration,
        deadline: Instant,
        request: impl Fn(&mut dyn ConnectionLike) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        if !breaker.admit() {
            if self.moved_while_open(counters, deadline) {
                breaker.reset();
            } else {
                return admit_refused(counters);
            }
        }
        let result = self
            .master(counters, deadline)
            .and_then(|m| m.pool.query(deadline, &request));
        if let Err(e) = &result
            && (is_unavailability(e) || is_demoted(e))
        {
            self.watch.mark_stale();
        }
        let result = result.map_err(|e| {
            if is_demoted(&e) {
                // Counted as the master being unavailable.
                RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    format!("the master answered READONLY (demoted): {e}"),
                ))
            } else {
                e
            }
        });
        settle(breaker, counters, budget, result)
    }

    /// While the circuit is open: whether Sentinel now names another master
    /// (asked at most once per [`RECHECK_INTERVAL`]). If so the caller
    /// resets the breaker and the call goes on.
    fn moved_while_open(&self, counters: &Counters, deadline: Instant) -> bool {
        let Some(current) = self.current() else {
            return false;
        };
        if self.watch.due(true, true).is_none() {
            return false;
        }
        match self.ask(deadline) {
            Ok(addr) if addr != current.addr => self.install(addr, counters).is_ok(),
            _ => false,
        }
    }

    /// The current master's `host:port`, once known.
    pub(crate) fn master_addr(&self) -> Option<String> {
        self.current().map(|m| format!("{}:{}", m.addr.0, m.addr.1))
    }
}
