//! The [`SessionStore`] trait: where sessions live between connections.

use std::sync::Arc;

use crate::key::SessionKey;
use crate::session::StoredSession;
use crate::stats::StoreStats;

/// Why a store operation failed. A miss is not an error: it is `Ok(None)`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached (connection refused, circuit open, …).
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// The store did not answer within its deadline.
    #[error("session store timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The store returned bytes that do not decode or authenticate.
    #[error("corrupt session data: {0}")]
    Corrupt(String),
    /// The session is larger than the store accepts.
    #[error("session of {size} bytes exceeds the limit of {limit} bytes")]
    Oversize {
        /// The session's serialised size.
        size: usize,
        /// The store's limit.
        limit: usize,
    },
    /// Any other failure of the backing store.
    #[error("session store error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A place to keep sessions, shared by every connection of a server (and,
/// for remote stores, every server of a fleet).
///
/// # Contract
///
/// * `get` never returns a session that has expired (`now >= expires`) or
///   one stored under another key.
/// * `take` is an atomic get-and-remove: of any number of concurrent `take`s
///   of one key, exactly one returns the session. This is what makes TLS 1.3
///   tickets single use, so a store that cannot guarantee it must not
///   implement `take` as `get` followed by `remove`.
/// * `put` replaces any session stored under the key. A store may refuse a
///   session (too large, no room) and say so with an error; it must never
///   store a truncated session.
/// * `remove` of an absent key is not an error.
/// * Errors are for failures of the store; callers treat them as a miss and
///   fall back to a full handshake.
pub trait SessionStore: Send + Sync + 'static {
    /// Stores `session` under `key`, replacing what was there.
    fn put(&self, key: &SessionKey, session: &StoredSession) -> Result<(), StoreError>;
    /// Returns the live session under `key`, leaving it in place.
    fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError>;
    /// Removes and returns the live session under `key`, atomically.
    fn take(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError>;
    /// Removes the session under `key`; returns whether one was there.
    fn remove(&self, key: &SessionKey) -> Result<bool, StoreError>;
    /// A snapshot of the store's counters.
    fn stats(&self) -> StoreStats;
}

impl<S: SessionStore + ?Sized> SessionStore for Arc<S> {
    fn put(&self, key: &SessionKey, session: &StoredSession) -> Result<(), StoreError> {
        (**self).put(key, session)
    }
    fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        (**self).get(key)
    }
    fn take(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        (**self).take(key)
    }
    fn remove(&self, key: &SessionKey) -> Result<bool, StoreError> {
        (**self).remove(key)
    }
    fn stats(&self) -> StoreStats {
        (**self).stats()
    }
}

impl<S: SessionStore + ?Sized> SessionStore for Box<S> {
    fn put(&self, key: &SessionKey, session: &StoredSession) -> Result<(), StoreError> {
        (**self).put(key, session)
    }
    fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        (**self).get(key)
    }
    fn take(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        (**self).take(key)
    }
    fn remove(&self, key: &SessionKey) -> Result<bool, StoreError> {
        (**self).remove(key)
    }
    fn stats(&self) -> StoreStats {
        (**self).stats()
    }
}
