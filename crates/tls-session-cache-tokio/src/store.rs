//! [`AsyncSessionStore`]: a session store whose operations are futures.
//!
//! The futures are boxed (`Pin<Box<dyn Future + Send>>`) so that the trait
//! is object safe: a server picks its store at run time and keeps an
//! `Arc<dyn AsyncSessionStore>`. One allocation per lookup is nothing next
//! to a network round trip.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tls_session_cache::{
    MemoryStore, SessionKey, SessionStore, StoreError, StoreStats, StoredSession,
};

/// The future an [`AsyncSessionStore`] operation returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A session store for async servers. Same contract as
/// [`SessionStore`]: `take` is an atomic get-and-remove (what makes TLS 1.3
/// tickets single use), errors are failures of the store and are treated
/// as misses. An implementation must bound how long each future may take
/// (timeouts), and must not block the thread that polls it.
pub trait AsyncSessionStore: Send + Sync + 'static {
    /// Stores `session` under `key`, replacing what was there.
    fn put<'a>(&'a self, key: &'a SessionKey, session: &'a StoredSession) -> StoreFuture<'a, ()>;
    /// The live session under `key`, left in place.
    fn get<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<StoredSession>>;
    /// Removes and returns the live session under `key`, atomically.
    fn take<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<StoredSession>>;
    /// Removes the session under `key`; returns whether one was there.
    fn remove<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, bool>;
    /// A snapshot of the store's counters.
    fn stats(&self) -> StoreStats;
}

/// The embedded store answers at once (a sharded lock, no I/O), so its
/// futures are ready when made.
impl AsyncSessionStore for MemoryStore {
    fn put<'a>(&'a self, key: &'a SessionKey, session: &'a StoredSession) -> StoreFuture<'a, ()> {
        Box::pin(std::future::ready(SessionStore::put(self, key, session)))
    }
    fn get<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<StoredSession>> {
        Box::pin(std::future::ready(SessionStore::get(self, key)))
    }
    fn take<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<StoredSession>> {
        Box::pin(std::future::ready(SessionStore::take(self, key)))
    }
    fn remove<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, bool> {
        Box::pin(std::future::ready(SessionStore::remove(self, key)))
    }
    fn stats(&self) -> StoreStats {
        SessionStore::stats(self)
    }
}

/// Redis through redis-rs multiplexed connections (plain, TLS, via
/// Sentinel, or one per master of a Redis Cluster): bounded by
/// `tokio::time::timeout`, behind the same circuit breaker, sealing and key
/// layout as the blocking `RedisStore`.
#[cfg(feature = "redis")]
impl AsyncSessionStore for tls_session_cache_redis::AsyncRedisStore {
    fn put<'a>(&'a self, key: &'a SessionKey, session: &'a StoredSession) -> StoreFuture<'a, ()> {
        Box::pin(tls_session_cache_redis::AsyncRedisStore::put(
            self, key, session,
        ))
    }
    fn get<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<StoredSession>> {
        Box::pin(tls_session_cache_redis::AsyncRedisStore::get(self, key))
    }
    fn take<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<StoredSession>> {
        Box::pin(tls_session_cache_redis::AsyncRedisStore::take(self, key))
    }
    fn remove<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, bool> {
        Box::pin(tls_session_cache_redis::AsyncRedisStore::remove(self, key))
    }
    fn stats(&self) -> StoreStats {
        tls_session_cache_redis::AsyncRedisStore::stats(self)
    }
}

/// A local memory tier in front of the async Redis store (standalone,
/// Sentinel or Cluster): TLS 1.2 lookups answered locally when they can
/// be; `take` (TLS 1.3) always in Redis, so a ticket resumes once across
/// the fleet.
#[cfg(feature = "redis")]
impl AsyncSessionStore for tls_session_cache_redis::AsyncTieredStore {
    fn put<'a>(&'a self, key: &'a SessionKey, session: &'a StoredSession) -> StoreFuture<'a, ()> {
        Box::pin(tls_session_cache_redis::AsyncTieredStore::put(
            self, key, session,
        ))
    }
    fn get<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<StoredSession>> {
        Box::pin(tls_session_cache_redis::AsyncTieredStore::get(self, key))
    }
    fn take<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<StoredSession>> {
        Box::pin(tls_session_cache_redis::AsyncTieredStore::take(self, key))
    }
    fn remove<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, bool> {
        Box::pin(tls_session_cache_redis::AsyncTieredStore::remove(self, key))
    }
    fn stats(&self) -> StoreStats {
        tls_session_cache_redis::AsyncTieredStore::stats(self)
    }
}

impl<S: AsyncSessionStore + ?Sized> AsyncSessionStore for Arc<S> {
    fn put<'a>(&'a self, key: &'a SessionKey, session: &'a StoredSession) -> StoreFuture<'a, ()> {
        (**self).put(key, session)
    }
    fn get<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<StoredSession>> {
        (**self).get(key)
    }
    fn take<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<StoredSession>> {
        (**self).take(key)
    }
    fn remove<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, bool> {
        (**self).remove(key)
    }
    fn stats(&self) -> StoreStats {
        (**self).stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tls_session_cache::Protocol;

    #[tokio::test(flavor = "current_thread")]
    async fn memory_store_through_the_async_trait() {
        let store: Arc<dyn AsyncSessionStore> = Arc::new(MemoryStore::with_capacity_bytes(1 << 20));
        let key =
            SessionKey::from_slices(tls_session_cache::Protocol::Tls13, b"ctx", &[5; 32]).unwrap();
        let now = tls_session_cache::Clock::now(&tls_session_cache::SystemClock);
        let s = StoredSession::new(vec![1; 40], now, now + 60, Protocol::Tls13);
        store.put(&key, &s).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), Some(s.clone()));
        assert_eq!(store.take(&key).await.unwrap(), Some(s));
        assert_eq!(store.take(&key).await.unwrap(), None);
        assert!(!store.remove(&key).await.unwrap());
        assert_eq!(store.stats().inserts, 1);
    }
}
