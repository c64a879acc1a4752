//! [`TieredStore`]: a local [`MemoryStore`] in front of a [`RedisStore`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tls_session_cache::{
    MemoryStore, SessionKey, SessionStore, StoreError, StoreStats, StoredSession,
};

use crate::store::RedisStore;

/// A local memory tier in front of Redis.
///
/// * `get` (TLS 1.2) reads through: a local hit never touches Redis; a
///   miss asks Redis and fills the local tier with what it finds.
/// * `take` (TLS 1.3, single use) **always** goes to Redis (`GETDEL`) and
///   drops any local copy, so single use holds across the fleet.
/// * `put` writes both tiers — single-use sessions only Redis, since they
///   are only ever `take`n; `remove` removes from both.
///
/// A local copy lives until its own expiry: a `remove` on another server
/// (after a fatal alert, say) does not reach this server's local tier.
/// That is the price of lookups without a round trip; OpenSSL's own
/// internal cache has the same property.
#[derive(Debug)]
pub struct TieredStore {
    local: MemoryStore,
    remote: RedisStore,
    local_hits: AtomicU64,
}

impl TieredStore {
    /// A tiered store of `local` in front of `remote`.
    pub fn new(local: MemoryStore, remote: RedisStore) -> Self {
        TieredStore {
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
    pub fn remote(&self) -> &RedisStore {
        &self.remote
    }

    /// Lookups answered by the local tier alone.
    pub fn local_hits(&self) -> u64 {
        self.local_hits.load(Relaxed)
    }
}

impl SessionStore for TieredStore {
    fn put(&self, key: &SessionKey, session: &StoredSession) -> Result<(), StoreError> {
        if !session.single_use {
            // A local refusal (too big, no room) is not fatal: Redis has it.
            if let Err(e) = self.local.put(key, session) {
                log::debug!("tiered session store: local tier refused {key}: {e}");
            }
        }
        self.remote.put(key, session)
    }

    fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        if let Ok(Some(session)) = self.local.get(key) {
            self.local_hits.fetch_add(1, Relaxed);
            return Ok(Some(session));
        }
        let found = self.remote.get(key)?;
        if let Some(session) = &found
            && !session.single_use
        {
            let _ = self.local.put(key, session);
        }
        Ok(found)
    }

    fn take(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        let _ = self.local.remove(key);
        self.remote.take(key)
    }

    fn remove(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let local = self.local.remove(key).unwrap_or(false);
        let remote = self.remote.remove(key)?;
        Ok(local || remote)
    }

    /// Redis's counters, with local-tier hits added to `hits`, and the
    /// local tier's `entries`, `bytes` and `evictions`.
    fn stats(&self) -> StoreStats {
        let mut s = self.remote.stats();
        let local = self.local.stats();
        s.hits += self.local_hits();
        s.entries = local.entries;
        s.bytes = local.bytes;
        s.evictions += local.evictions;
        s
    }
}
