//! [`AsyncTieredStore`]: a local [`MemoryStore`] in front of an
//! [`AsyncRedisStore`] (standalone, Sentinel or Cluster), for tokio servers
//! (feature `tokio`). The semantics of the blocking
//! [`TieredStore`](crate::TieredStore).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tls_session_cache::{
    MemoryStore, SessionKey, SessionStore, StoreError, StoreStats, StoredSession,
};

use crate::asynchronous::AsyncRedisStore;
use crate::breaker::CircuitState;
use crate::stats::RedisStats;

/// A local memory tier in front of an async Redis store.
///
/// * `get` (TLS 1.2) reads through: a local hit never touches Redis; a
///   miss asks Redis and fills the local tier with what it finds.
/// * `take` (TLS 1.3, single use) **always** goes to Redis (`GETDEL`) and
///   drops any local copy, so single use holds across the fleet.
/// * `put` writes both tiers — single-use sessions only Redis, since they
///   are only ever `take`n; `remove` removes from both.
///
/// The local tier answers at once (a sharded lock, no I/O); only the Redis
/// tier awaits, within its timeouts. A local copy lives until its own
/// expiry: a `remove` on another server does not reach this server's local
/// tier, as with the blocking [`TieredStore`](crate::TieredStore).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use tls_session_cache::MemoryStore;
/// use tls_session_cache_redis::{AsyncTieredStore, KeyRing, RedisStore};
///
/// let remote = RedisStore::builder("redis+cluster://10.0.0.1:7000,10.0.0.2:7000")
///     .seal_keys(KeyRing::from_file("/etc/tls/session-seal.keys")?)
///     .build_async()?;
/// let store = AsyncTieredStore::new(MemoryStore::default(), remote);
/// # let _ = store; Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncTieredStore {
    local: MemoryStore,
    remote: AsyncRedisStore,
    local_hits: AtomicU64,
}

impl AsyncTieredStore {
    /// A tiered store of `local` in front of `remote`.
    pub fn new(local: MemoryStore, remote: AsyncRedisStore) -> Self {
        AsyncTieredStore {
            local,
            remote,
            local_hits: AtomicU64::new(0),
        }
    }

    /// The local tier.
    pub fn local(&self) -> &MemoryStore {
        &self.local
    }

    /// The Redis tier.
    pub fn remote(&self) -> &AsyncRedisStore {
        &self.remote
    }

    /// Lookups answered by the local tier alone.
    pub fn local_hits(&self) -> u64 {
        self.local_hits.load(Relaxed)
    }

    /// Stores `session` in both tiers (a single-use session in Redis only).
    pub async fn put(&self, key: &SessionKey, session: &StoredSession) -> Result<(), StoreError> {
        if !session.single_use {
            // A local refusal (too big, no room) is not fatal: Redis has it.
            if let Err(e) = self.local.put(key, session) {
                log::debug!("tiered session store: local tier refused {key}: {e}");
            }
        }
        self.remote.put(key, session).await
    }

    /// The session under `key`: from the local tier when it has it, else
    /// from Redis (then kept locally, unless single use).
    pub async fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        if let Ok(Some(session)) = self.local.get(key) {
            self.local_hits.fetch_add(1, Relaxed);
            return Ok(Some(session));
        }
        let found = self.remote.get(key).await?;
        if let Some(session) = &found
            && !session.single_use
        {
            let _ = self.local.put(key, session);
        }
        Ok(found)
    }

    /// Removes and returns the session under `key` in Redis (`GETDEL`:
    /// once across the fleet); any local copy is dropped, never returned.
    pub async fn take(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        let _ = self.local.remove(key);
        self.remote.take(key).await
    }

    /// Removes the session under `key` from both tiers; whether either had
    /// it.
    pub async fn remove(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let local = self.local.remove(key).unwrap_or(false);
        let remote = self.remote.remove(key).await?;
        Ok(local || remote)
    }

    /// Redis's counters, with local-tier hits added to `hits`, and the
    /// local tier's `entries`, `bytes` and `evictions`.
    pub fn stats(&self) -> StoreStats {
        let mut s = self.remote.stats();
        let local = self.local.stats();
        s.hits += self.local_hits();
        s.entries = local.entries;
        s.bytes = local.bytes;
        s.evictions += local.evictions;
        s
    }

    /// The Redis tier's own counters.
    pub fn redis_stats(&self) -> RedisStats {
        self.remote.redis_stats()
    }

    /// The Redis tier's circuit state (for a cluster, the worst master's).
    pub fn circuit_state(&self) -> CircuitState {
        self.remote.circuit_state()
    }
}
