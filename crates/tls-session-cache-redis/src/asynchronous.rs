//! [`AsyncRedisStore`]: the same store for tokio servers, on redis-rs's
//! multiplexed, self-reconnecting `ConnectionManager` (feature `tokio`).
//!
//! It shares everything but the connection with [`RedisStore`]: the
//! builder, the key names, the sealing, the expiry checks, the counters and
//! the circuit breaker are the same code. Every call is bounded by
//! `tokio::time::timeout` (connect + write + read timeouts), so a frozen
//! Redis costs a lookup one timeout and never an executor thread; after
//! `threshold` consecutive failures the breaker refuses calls at once.
//!
//! Standalone Redis only (`redis://…`): a cluster URL is refused with
//! [`BuildError::AsyncCluster`].
//!
//! [`RedisStore`]: crate::RedisStore

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, RedisError};
use tls_session_cache::{SessionKey, StoreError, StoreStats, StoredSession};

use crate::breaker::CircuitState;
use crate::naming::RedisKey;
use crate::stats::RedisStats;
use crate::store::{BuildError, Lookup, Name, PutPlan, RedisStoreBuilder, Shared};

impl RedisStoreBuilder {
    /// Builds an [`AsyncRedisStore`] with these settings. Like
    /// [`build`](Self::build) it does not connect; the connection is made
    /// by the first call, which must run inside a tokio runtime.
    /// [`write_behind`](Self::write_behind) does not apply (an async server
    /// queues its writes itself); a cluster URL is refused.
    pub fn build_async(self) -> Result<AsyncRedisStore, BuildError> {
        let timeouts = (self.connect_timeout_value(), self.io_timeout_value());
        let (shared, client) = self.build_shared()?;
        let client = client.ok_or(BuildError::AsyncCluster)?;
        Ok(AsyncRedisStore {
            shared,
            client,
            connect_timeout: timeouts.0,
            call_timeout: timeouts.1,
            conn: Mutex::new(None),
        })
    }
}

/// A Redis session store for tokio: `put` / `get` / `take` / `remove` are
/// `async` and never block a thread. Same keys, values, semantics and
/// counters as [`RedisStore`](crate::RedisStore) (`take` is `GETDEL`, so a
/// TLS 1.3 ticket resumes once across the fleet, whichever kind of store
/// each server uses).
pub struct AsyncRedisStore {
    shared: Arc<Shared>,
    client: redis::Client,
    connect_timeout: Duration,
    /// Longest a command may take: write + read timeouts.
    call_timeout: Duration,
    /// Made on first use (inside the runtime); cheap to clone.
    conn: Mutex<Option<ConnectionManager>>,
}

impl std::fmt::Debug for AsyncRedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncRedisStore")
            .field("prefix", &self.shared.prefix())
            .field("circuit", &self.shared.circuit_state())
            .finish_non_exhaustive()
    }
}

fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

impl AsyncRedisStore {
    /// The connection manager, made on first use. `new_lazy_with_config`
    /// does not connect: its first command does, bounded by our timeout.
    fn connection(&self) -> Result<ConnectionManager, RedisError> {
        let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = &*slot {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.call_timeout))
            // One reconnection attempt per failure; the breaker does the rest.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(1))
            .set_max_delay(self.connect_timeout);
        let c = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// One command through the breaker, bounded by connect + call timeouts.
    async fn call<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        self.shared.admit()?;
        let result = match self.connection() {
            Ok(mut conn) => {
                let deadline = self.connect_timeout + self.call_timeout;
                match tokio::time::timeout(deadline, cmd.query_async::<T>(&mut conn)).await {
                    Ok(r) => r,
                    Err(_) => Err(timed_out()),
                }
            }
            Err(e) => Err(e),
        };
        self.shared.settle(result)
    }

    /// `DEL` of every name in `names` (one command: standalone Redis only).
    async fn del(&self, names: &[RedisKey]) -> Result<bool, StoreError> {
        let n: i64 = self.call(redis::cmd("DEL").arg(names)).await?;
        Ok(n > 0)
    }

    async fn lookup(
        &self,
        key: &SessionKey,
        command: Lookup,
    ) -> Result<Option<StoredSession>, StoreError> {
        let (rkey, previous) = self.shared.lookup_names(key, command);
        let (name, value, which) = match previous {
            // A TLS 1.2 get with the fallback on: both names in one MGET.
            Some(old) => {
                let pair = self.call(redis::cmd("MGET").arg(&rkey).arg(&old)).await?;
                self.shared.pick(rkey, old, pair)
            }
            None => {
                let value = self.call(redis::cmd(command.name()).arg(&rkey)).await?;
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
                self.call::<()>(&cmd).await?;
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
        let removed = self.del(&self.shared.all_names(key)).await?;
        if removed {
            self.shared.count_removal();
        }
        Ok(removed)
    }

    /// Sends `PING` (through the breaker, like any call).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.call(&redis::cmd("PING")).await?;
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

    /// The circuit breaker's state.
    pub fn circuit_state(&self) -> CircuitState {
        self.shared.circuit_state()
    }

    /// The compact Redis key a session key is stored under.
    pub fn redis_key(&self, key: &SessionKey) -> RedisKey {
        self.shared.redis_key(key)
    }
}
