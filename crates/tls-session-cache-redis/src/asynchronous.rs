//! [`AsyncRedisStore`]: the same store for tokio servers, on redis-rs's
//! multiplexed connection (feature `tokio`).
//!
//! It shares everything but the connection with [`RedisStore`]: the
//! builder, the key names, the sealing, the expiry checks, the counters and
//! the circuit breaker are the same code. Every call is bounded by
//! `tokio::time::timeout` (connect + write + read timeouts, the connection,
//! TLS handshake and `AUTH` included), so a frozen Redis costs a lookup one
//! timeout and never an executor thread; after `threshold` consecutive
//! failures the breaker refuses calls at once.
//!
//! One multiplexed connection is shared by every call; it is opened by the
//! first call (one at a time: the others wait for it, within their own
//! budget) and dropped after a call finds Redis gone, slow or demoted, so
//! the next call opens a fresh one. TLS (`rediss://`) is rust-openssl
//! through tokio-openssl, with the same settings and checks as the blocking
//! store (see the `tls` module).
//!
//! Standalone Redis (`redis://`, `rediss://`), Sentinel
//! (`redis+sentinel://`, `rediss+sentinel://`: the master's address is
//! asked of the sentinels as the blocking store does, see the `sentinel`
//! module) and Redis Cluster (`redis+cluster://`, `rediss+cluster://`: the
//! blocking store's slot routing, with a multiplexed connection and a
//! circuit breaker per master, see the `async_cluster` module).
//!
//! [`RedisStore`]: crate::RedisStore

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::{Cmd, ErrorKind, FromRedisValue, RedisError};
use tls_session_cache::{SessionKey, StoreError, StoreStats, StoredSession};

use crate::async_cluster::AsyncCluster;
use crate::async_conn::{Held, open, over_credit, timed_out};
use crate::backend::{Dialer, is_unavailability};
use crate::breaker::CircuitState;
use crate::capped::Budget;
use crate::cluster;
use crate::naming::RedisKey;
use crate::sentinel::{Due, Watch, is_demoted, master_query, unknown_master};
use crate::stats::{RedisStats, bump};
use crate::store::{BuildError, Endpoints, Lookup, Name, PutPlan, RedisStoreBuilder, Shared};

impl RedisStoreBuilder {
    /// Builds an [`AsyncRedisStore`] with these settings. Like
    /// [`build`](Self::build) it does not connect; the connection is made
    /// by the first call, which must run inside a tokio runtime.
    /// [`write_behind`](Self::write_behind) does not apply (an async server
    /// queues its writes itself).
    pub fn build_async(self) -> Result<AsyncRedisStore, BuildError> {
        let connect_timeout = self.connect_timeout_value();
        let call_timeout = self.io_timeout_value();
        let (shared, endpoints) = self.build_shared()?;
        let route = match endpoints {
            Endpoints::Single(dialer) => Route::Single(dialer),
            Endpoints::Cluster { seeds, breaker } => Route::Cluster(
                AsyncCluster::new(seeds, breaker, shared.max_reply())
                    .ok_or(BuildError::EmptyCluster)?,
            ),
            Endpoints::Sentinel {
                sentinels,
                name,
                data,
            } => Route::Sentinel(AsyncSentinel {
                name,
                sentinels,
                data,
                master: Mutex::new(None),
                watch: Watch::default(),
            }),
        };
        Ok(AsyncRedisStore {
            shared,
            route,
            connect_timeout,
            call_timeout,
            conn: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
        })
    }
}

/// Where the connection goes.
enum Route {
    Single(Dialer),
    Sentinel(AsyncSentinel),
    /// A connection and a breaker per master (the store's own connection
    /// and breaker are unused).
    Cluster(AsyncCluster),
}

/// A service behind Redis Sentinel: its master's address, asked of the
/// sentinels with short-lived async connections.
struct AsyncSentinel {
    name: String,
    sentinels: Vec<Dialer>,
    /// Credentials, database and TLS for the master.
    data: Dialer,
    master: Mutex<Option<(String, u16)>>,
    watch: Watch,
}

impl AsyncSentinel {
    fn current(&self) -> Option<(String, u16)> {
        self.master
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Asks the sentinels in turn for the master's address (the caller
    /// bounds the time).
    async fn ask(&self) -> Result<(String, u16), RedisError> {
        let mut last = None;
        for i in self.watch.order(self.sentinels.len()) {
            let reply = async {
                let budget = Budget::new(SENTINEL_REPLY_MAX);
                let mut con = open(&self.sentinels[i], &budget).await?;
                master_query(&self.name)
                    .query_async::<Option<(String, u16)>>(&mut con)
                    .await
            }
            .await;
            match reply {
                Ok(Some(addr)) => {
                    self.watch.done(Some(i));
                    return Ok(addr);
                }
                Ok(None) => last = Some(unknown_master(&self.name)),
                Err(e) => {
                    log::debug!(
                        "redis session store: sentinel {} did not answer: {e}",
                        self.sentinels[i].peer()
                    );
                    last = Some(e);
                }
            }
        }
        self.watch.done(None);
        Err(last.unwrap_or_else(|| {
            RedisError::from((ErrorKind::InvalidClientConfig, "no sentinel to ask"))
        }))
    }

    /// Records `addr` as the master; whether it is a new one.
    fn install(&self, addr: (String, u16), shared: &Shared) -> bool {
        let mut slot = self.master.lock().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some(old) if *old == addr => return false,
            Some(old) => {
                bump(&shared.counters.master_changes);
                log::warn!(
                    "redis session store: Sentinel names a new master for {}: {}:{} (was {}:{})",
                    self.name,
                    addr.0,
                    addr.1,
                    old.0,
                    old.1
                );
            }
            None => log::info!(
                "redis session store: Sentinel names {}:{} master of {}",
                addr.0,
                addr.1,
                self.name
            ),
        }
        *slot = Some(addr);
        true
    }
}

/// A Redis session store for tokio: `put` / `get` / `take` / `remove` are
/// `async` and never block a thread. Same keys, values, semantics and
/// counters as [`RedisStore`](crate::RedisStore) (`take` is `GETDEL`, so a
/// TLS 1.3 ticket resumes once across the fleet, whichever kind of store
/// each server uses).
pub struct AsyncRedisStore {
    shared: Arc<Shared>,
    route: Route,
    connect_timeout: Duration,
    /// Longest a command may take: write + read timeouts.
    call_timeout: Duration,
    /// The connection every call shares, once made.
    conn: Mutex<Option<Held>>,
    /// Held while a connection is being made: one at a time.
    connecting: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for AsyncRedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncRedisStore")
            .field("prefix", &self.shared.prefix())
            .field("circuit", &self.shared.circuit_state())
            .finish_non_exhaustive()
    }
}

/// The largest reply a sentinel's `SENTINEL GET-MASTER-ADDR-BY-NAME` takes.
const SENTINEL_REPLY_MAX: usize = 4096;

impl AsyncRedisStore {
    fn held(&self) -> Option<Held> {
        self.conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Drops the shared connection if it is still generation `id` (or any,
    /// with `None`).
    fn forget(&self, id: Option<u64>) {
        let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if id.is_none() || slot.as_ref().map(|h| h.id) == id {
            *slot = None;
        }
    }

    /// The shared connection, made now if there is none (one caller at a
    /// time makes it; the others wait and use it).
    async fn connection(&self) -> Result<Held, RedisError> {
        if let Some(h) = self.held() {
            return Ok(h);
        }
        let _making = self.connecting.lock().await;
        if let Some(h) = self.held() {
            return Ok(h);
        }
        let budget = Budget::new(self.shared.max_reply());
        let con = match &self.route {
            Route::Single(dialer) => open(dialer, &budget).await?,
            Route::Cluster(_) => {
                return Err(RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "a cluster has a connection per master",
                )));
            }
            Route::Sentinel(s) => {
                let addr = match s.current() {
                    Some(addr) => addr,
                    None => {
                        let addr = s.ask().await?;
                        s.install(addr.clone(), &self.shared);
                        addr
                    }
                };
                open(&s.data.at(&addr.0, addr.1)?, &budget).await?
            }
        };
        let held = Held {
            con,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            budget,
        };
        *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = Some(held.clone());
        Ok(held)
    }

    /// Sentinel: asks the sentinels when a check is due (`failing`: the
    /// circuit is open); when they name a new master, the connection to the
    /// old one is dropped. Whether the master changed.
    async fn recheck(&self, failing: bool) -> bool {
        let Route::Sentinel(s) = &self.route else {
            return false;
        };
        let known = s.current().is_some();
        if s.watch.due(known, failing) != Some(Due::Recheck) {
            return false;
        }
        match s.ask().await {
            Ok(addr) => {
                let moved = s.install(addr, &self.shared);
                if moved {
                    self.forget(None);
                }
                moved
            }
            Err(e) => {
                log::debug!("redis session store: sentinels not asked again: {e}");
                false
            }
        }
    }

    /// One command about `key` (or, with `None`, for any node) through
    /// the breaker, bounded by connect + call timeouts. On a cluster, to
    /// the master of `key`'s slot, through that master's breaker.
    async fn call<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        key: Option<&RedisKey>,
    ) -> Result<T, StoreError> {
        let budget = self.connect_timeout + self.call_timeout;
        if let Route::Cluster(c) = &self.route {
            let route = key.map_or(cluster::Route::Any, cluster::Route::Key);
            return c.call(&self.shared.counters, budget, route, cmd).await;
        }
        if !self.shared.breaker_admits() {
            // Sentinel: while the circuit is open, a new master resets it.
            let moved = matches!(self.route, Route::Sentinel(_))
                && tokio::time::timeout(budget, self.recheck(true))
                    .await
                    .unwrap_or(false);
            if !moved {
                return self.shared.refuse();
            }
            self.shared.reset_breaker();
        }
        let attempt = async {
            self.recheck(false).await;
            let mut held = self.connection().await?;
            held.budget.grant();
            let result = cmd.query_async::<T>(&mut held.con).await;
            if let Err(e) = &result
                && (is_unavailability(e) || is_demoted(e) || held.budget.tripped())
            {
                self.lost(Some(held.id));
                if held.budget.tripped() {
                    return Err(over_credit(e));
                }
            }
            result
        };
        let result = match tokio::time::timeout(budget, attempt).await {
            Ok(r) => r,
            Err(_) => {
                self.lost(None);
                Err(timed_out())
            }
        };
        let result = result.map_err(|e| {
            if is_demoted(&e) {
                RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    format!("the master answered READONLY (demoted): {e}"),
                ))
            } else {
                e
            }
        });
        self.shared.settle(result)
    }

    /// The connection (generation `id`, or whichever) failed: drop it, and
    /// with Sentinel ask for the master again soon.
    fn lost(&self, id: Option<u64>) {
        self.forget(id);
        if let Route::Sentinel(s) = &self.route {
            s.watch.mark_stale();
        }
    }

    /// Sentinel: the master in use (`host:port`), once known.
    pub fn sentinel_master(&self) -> Option<String> {
        match &self.route {
            Route::Sentinel(s) => s.current().map(|(h, p)| format!("{h}:{p}")),
            Route::Single(_) | Route::Cluster(_) => None,
        }
    }

    /// `DEL` of every name in `names`: one command on one master, one per
    /// name on a cluster (a session's names are in different slots).
    async fn del(&self, names: &[RedisKey]) -> Result<bool, StoreError> {
        if let Route::Cluster(_) = &self.route {
            let mut found = false;
            for name in names {
                let n: i64 = self.call(redis::cmd("DEL").arg(name), Some(name)).await?;
                found |= n > 0;
            }
            return Ok(found);
        }
        let n: i64 = self.call(redis::cmd("DEL").arg(names), None).await?;
        Ok(n > 0)
    }

    async fn lookup(
        &self,
        key: &SessionKey,
        command: Lookup,
    ) -> Result<Option<StoredSession>, StoreError> {
        let (rkey, previous) = self.shared.lookup_names(key, command);
        let (name, value, which) = match previous {
            // A TLS 1.2 get with the fallback on, on a cluster: the two
            // names are in different slots, so a GET of each.
            Some(old) if matches!(self.route, Route::Cluster(_)) => {
                let value: Option<Vec<u8>> =
                    self.call(redis::cmd("GET").arg(&rkey), Some(&rkey)).await?;
                if value.is_some() {
                    (rkey, value, Name::Current)
                } else {
                    bump(&self.shared.counters.fallback_lookups);
                    let value = self.call(redis::cmd("GET").arg(&old), Some(&old)).await?;
                    (old, value, Name::Previous)
                }
            }
            // On one master: both names in one MGET.
            Some(old) => {
                let pair = self
                    .call(redis::cmd("MGET").arg(&rkey).arg(&old), None)
                    .await?;
                self.shared.pick(rkey, old, pair)
            }
            None => {
                let value = self
                    .call(redis::cmd(command.name()).arg(&rkey), Some(&rkey))
                    .await?;
                (rkey, value, Name::Current)
            }
        };
        let found = self.shared.interpret(&name, key, value, command, which);
        if found.delete {
            let _ = self.del(std::slice::from_ref(&name)).await;
        }
        Ok(found.session)
    }

    /// Stores `session` under `key` (`SET … PX`), replacing what was there.
    pub async fn put(&self, key: &SessionKey, session: &StoredSession) -> Result<(), StoreError> {
        match self.shared.plan_put(key, session)? {
            PutPlan::Delete(names) => self.del(&names).await.map(|_| ()),
            PutPlan::Set(job) => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(&job.key).arg(&job.value).arg("PX").arg(job.px);
                self.call::<()>(&cmd, Some(&job.key)).await?;
                self.shared.count_insert();
                Ok(())
            }
        }
    }

    /// The live session under `key` (`GET`), left in place.
    pub async fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        self.lookup(key, Lookup::Get).await
    }

    /// Removes and returns the live session under `key` (`GETDEL`, atomic).
    pub async fn take(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        self.lookup(key, Lookup::Take).await
    }

    /// Removes the session under `key` (`DEL`, of its previous-format name
    /// too for a TLS 1.2 key while the fallback is on); returns whether one
    /// was there.
    pub async fn remove(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let names = self.shared.all_names(key);
        let removed = self.del(&names).await?;
        self.shared.note_removal(&names);
        if removed {
            self.shared.count_removal();
        }
        Ok(removed)
    }

    /// Sends `PING` (through the breaker, like any call).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.call(&redis::cmd("PING"), None).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!("PING answered {pong:?}")))
        }
    }

    /// The common counters.
    pub fn stats(&self) -> StoreStats {
        self.shared.counters.store_stats()
    }

    /// Redis-specific counters (`queued_writes` and `dropped_writes` stay 0).
    pub fn redis_stats(&self) -> RedisStats {
        self.shared.counters.redis_stats(0)
    }

    /// The circuit breaker's state. For a Redis Cluster, where each master
    /// has its own breaker, the worst of them (open, then half-open, then
    /// closed); see [`node_circuits`](Self::node_circuits).
    pub fn circuit_state(&self) -> CircuitState {
        match &self.route {
            Route::Cluster(c) => c.worst_circuit(),
            Route::Single(_) | Route::Sentinel(_) => self.shared.circuit_state(),
        }
    }

    /// For a Redis Cluster: each master (`host:port`, as the cluster
    /// announces it) with the state of its own circuit breaker, sorted by
    /// address; masters appear once the slot map is loaded. Empty
    /// otherwise.
    pub fn node_circuits(&self) -> Vec<(String, CircuitState)> {
        match &self.route {
            Route::Cluster(c) => c.circuits(),
            Route::Single(_) | Route::Sentinel(_) => Vec::new(),
        }
    }

    /// The compact Redis key a session key is stored under.
    pub fn redis_key(&self, key: &SessionKey) -> RedisKey {
        self.shared.redis_key(key)
    }
}
