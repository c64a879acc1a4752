//! [`SessionCache`] and its builder: configuration, the store operations
//! rustls's callbacks come down to, statistics. Nothing here names a rustls
//! type; the rustls-facing part is the [`storage`](crate::storage) module.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use tls_session_cache::{
    CachePolicy, Clock, MemoryStore, Protocol, SessionId, SessionIdContext, SessionKey,
    SessionStore, StoreError, StoredSession, SystemClock,
};

use crate::error::Error;
use crate::stats::{CacheStats, Counters, bump};

/// A fleet-wide server-side session cache for rustls.
///
/// Build one with [`SessionCache::builder`], then
/// [`install`](Self::install) it on every `rustls::ServerConfig` that should
/// resume sessions from it. Cloning is cheap: clones share the store and the
/// counters.
#[derive(Clone)]
pub struct SessionCache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Box<dyn SessionStore>,
    context: SessionIdContext,
    policy: CachePolicy,
    clock: Arc<dyn Clock>,
    tls13_tickets: usize,
    counters: Counters,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("context", &self.inner.context)
            .field("policy", &self.inner.policy)
            .field("tls13_tickets", &self.inner.tls13_tickets)
            .finish_non_exhaustive()
    }
}

/// Configures a [`SessionCache`]; see each method for its default.
pub struct SessionCacheBuilder {
    store: Option<Box<dyn SessionStore>>,
    context: Vec<u8>,
    policy: CachePolicy,
    clock: Arc<dyn Clock>,
    tls13_tickets: usize,
}

impl std::fmt::Debug for SessionCacheBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCacheBuilder")
            .field("context", &self.context)
            .field("policy", &self.policy)
            .field("tls13_tickets", &self.tls13_tickets)
            .finish_non_exhaustive()
    }
}

impl SessionCacheBuilder {
    /// The context used when the caller sets none: the OpenSSL binding's
    /// default, `tls-session-cache`, with `-rustls` appended, so that a
    /// rustls server and an OpenSSL server left at their defaults on one
    /// store never offer each other's sessions (neither could use them).
    pub const DEFAULT_CONTEXT: &'static [u8] = b"tls-session-cache-rustls";

    /// Default of [`tls13_tickets`](Self::tls13_tickets): rustls's default
    /// and OpenSSL's, 2.
    pub const DEFAULT_TLS13_TICKETS: usize = 2;

    /// Where sessions are kept (default: a [`MemoryStore`] of 64 MiB).
    pub fn store(mut self, store: impl SessionStore) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// The namespace of this cache's keys in the store (at most 32 bytes),
    /// like the OpenSSL binding's session-id context: servers sharing a
    /// store resume each other's sessions only when they use the same
    /// context. Default: [`Self::DEFAULT_CONTEXT`]; set one per service.
    /// Give a rustls service a context of its own: an OpenSSL server cannot
    /// use a rustls session, nor rustls an OpenSSL one.
    pub fn context(mut self, context: &[u8]) -> Self {
        self.context = context.to_vec();
        self
    }

    /// Lifetime of a new session in the store (default 300 s). rustls
    /// passes no lifetime, so this is the only expiry there is (for TLS 1.3
    /// the ticket's lifetime hint to the client stays rustls's 24 h).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.policy.lifetime = lifetime;
        self
    }

    /// Largest session value stored (default 10 KiB); larger ones are
    /// counted as `oversize` and not stored (rustls then issues no ticket,
    /// or a session id that will not resume).
    pub fn max_session_size(mut self, bytes: usize) -> Self {
        self.policy.max_session_size = bytes;
        self
    }

    /// Whether a TLS 1.3 ticket can be resumed once only (default true):
    /// the lookup is the store's atomic `take`. `false` reads with `get`.
    pub fn single_use_tls13(mut self, single_use: bool) -> Self {
        self.policy.single_use_tls13 = single_use;
        self
    }

    /// TLS 1.3 tickets sent after each handshake (rustls's
    /// `send_tls13_tickets`; default [`Self::DEFAULT_TLS13_TICKETS`]). Each
    /// is one store write; 0 turns TLS 1.3 resumption off.
    pub fn tls13_tickets(mut self, n: usize) -> Self {
        self.tls13_tickets = n;
        self
    }

    /// The clock for expiry (default: the system clock). Give the same
    /// clock to the store.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Validates the settings and builds the cache.
    pub fn build(self) -> Result<SessionCache, Error> {
        let context = SessionIdContext::new(&self.context)?;
        if self.policy.lifetime < Duration::from_secs(1) {
            return Err(Error::Config("lifetime must be at least one second"));
        }
        if self.policy.lifetime > CachePolicy::MAX_TLS13_LIFETIME {
            return Err(Error::Config("lifetime must not exceed 7 days"));
        }
        if self.policy.max_session_size == 0 {
            return Err(Error::Config("max_session_size must be positive"));
        }
        let store = self
            .store
            .unwrap_or_else(|| Box::new(MemoryStore::default()));
        Ok(SessionCache {
            inner: Arc::new(Inner {
                store,
                context,
                policy: self.policy,
                clock: self.clock,
                tls13_tickets: self.tls13_tickets,
                counters: Counters::default(),
            }),
        })
    }
}

/// What a lookup found, before it is counted.
enum Found {
    Hit(Vec<u8>),
    Miss,
    InvalidId,
    Corrupt,
    Mismatched,
    Error,
}

impl SessionCache {
    /// A builder with the defaults.
    pub fn builder() -> SessionCacheBuilder {
        SessionCacheBuilder {
            store: None,
            context: SessionCacheBuilder::DEFAULT_CONTEXT.to_vec(),
            policy: CachePolicy::default(),
            clock: Arc::new(SystemClock),
            tls13_tickets: SessionCacheBuilder::DEFAULT_TLS13_TICKETS,
        }
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> CacheStats {
        let store = guarded(|| self.inner.store.stats()).unwrap_or_default();
        self.inner.counters.snapshot(store)
    }

    /// The cache policy (lifetime, size limit, single use).
    pub fn policy(&self) -> &CachePolicy {
        &self.inner.policy
    }

    /// TLS 1.3 tickets sent per handshake.
    pub fn tls13_tickets(&self) -> usize {
        self.inner.tls13_tickets
    }

    /// The context (namespace) of this cache's keys.
    pub fn context(&self) -> SessionIdContext {
        self.inner.context
    }

    /// Counts a finished handshake as resumed or full (the `resumed` and
    /// `full` statistics). rustls has no hook for this, so the server
    /// reports it; [`handshake_done`](Self::handshake_done) does it from a
    /// `ServerConnection`.
    pub fn count_handshake(&self, resumed: bool) {
        let c = &self.inner.counters;
        bump(if resumed { &c.resumed } else { &c.full });
    }

    /// Stores `value` under `id` for `protocol` (`None`: not a session this
    /// cache can ever look up). Returns whether it was stored.
    pub(crate) fn put(&self, protocol: Option<Protocol>, id: &[u8], value: Vec<u8>) -> bool {
        match self.prepare(protocol, id, value) {
            Some((key, session)) => self.write(&key, &session),
            None => false,
        }
    }

    /// The key and the stored form of a new session, or `None` (counted)
    /// when it cannot be stored: not a session, a key outside 1..=32 bytes,
    /// over the size limit.
    pub(crate) fn prepare(
        &self,
        protocol: Option<Protocol>,
        id: &[u8],
        value: Vec<u8>,
    ) -> Option<(SessionKey, StoredSession)> {
        let c = &self.inner.counters;
        let Some(protocol) = protocol else {
            log::debug!("session cache: a value that is not a rustls session; not stored");
            bump(&c.skipped);
            return None;
        };
        let Some(key) = key_of(protocol, self.inner.context, id) else {
            log::debug!("session cache: a key of {} bytes; not stored", id.len());
            bump(&c.skipped);
            return None;
        };
        if !self.inner.policy.admits_size(value.len()) {
            log::debug!(
                "session cache: a session of {} bytes is over the limit of {}; not stored",
                value.len(),
                self.inner.policy.max_session_size
            );
            bump(&c.oversize);
            return None;
        }
        let now = self.inner.clock.now();
        let mut session =
            StoredSession::new(value, now, self.inner.policy.expiry(now, now), protocol);
        session.single_use = self.inner.policy.is_single_use(protocol);
        Some((key, session))
    }

    /// Writes a prepared session to the store; whether it was stored.
    pub(crate) fn write(&self, key: &SessionKey, session: &StoredSession) -> bool {
        let c = &self.inner.counters;
        match guarded(|| self.inner.store.put(key, session)) {
            Some(Ok(())) => {
                bump(&c.stored);
                true
            }
            Some(Err(e)) => {
                log::warn!("session cache: storing {key}: {e}; the session will not resume");
                bump(&c.errors);
                false
            }
            None => {
                log::error!("session cache: the store panicked storing {key}");
                bump(&c.panics);
                false
            }
        }
    }

    /// The key of an offered `id` for `protocol`, if it can be one.
    #[cfg(feature = "tokio")]
    pub(crate) fn key(&self, protocol: Protocol, id: &[u8]) -> Option<SessionKey> {
        key_of(protocol, self.inner.context, id)
    }

    /// Looks `key` up in the store as the policy wants it (`take` when
    /// single use, else `get`), counting store failures and panics; what a
    /// prefetch does before rustls asks.
    #[cfg(feature = "tokio")]
    pub(crate) fn fetch(&self, key: &SessionKey) -> Option<StoredSession> {
        match guarded(|| self.fetch_from_store(key)) {
            Some(Ok(found)) => found,
            Some(Err(e)) => {
                log::warn!("session cache: looking up {key}: {e}; full handshake");
                bump(&self.inner.counters.errors);
                None
            }
            None => {
                log::error!("session cache: the store panicked looking up {key}");
                bump(&self.inner.counters.panics);
                None
            }
        }
    }

    fn fetch_from_store(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        if self.inner.policy.is_single_use(key.protocol) {
            self.inner.store.take(key)
        } else {
            self.inner.store.get(key)
        }
    }

    /// Looks up the session under `id` for `protocol`: `take` when the
    /// policy makes it single use, else `get`. `protocol_of` tells what
    /// protocol stored bytes are (`None`: not a session of this library).
    pub(crate) fn lookup(
        &self,
        protocol: Protocol,
        id: &[u8],
        protocol_of: fn(&[u8]) -> Option<Protocol>,
    ) -> Option<Vec<u8>> {
        self.lookup_in(protocol, id, protocol_of, |key| self.fetch_from_store(key))
    }

    /// [`lookup`](Self::lookup) answered by `source` instead of the store
    /// (sessions fetched before rustls asked), counted the same way.
    pub(crate) fn lookup_in(
        &self,
        protocol: Protocol,
        id: &[u8],
        protocol_of: fn(&[u8]) -> Option<Protocol>,
        source: impl FnOnce(&SessionKey) -> Result<Option<StoredSession>, StoreError>,
    ) -> Option<Vec<u8>> {
        let c = &self.inner.counters;
        bump(&c.lookups);
        let found = match guarded(|| self.find(protocol, id, protocol_of, source)) {
            Some(found) => found,
            None => {
                log::error!("session cache: the store panicked looking up a session");
                bump(&c.panics);
                Found::Error
            }
        };
        match found {
            Found::Hit(value) => {
                bump(&c.hits);
                return Some(value);
            }
            Found::Miss | Found::Error => {}
            Found::InvalidId => bump(&c.invalid_id),
            Found::Corrupt => bump(&c.corrupt),
            Found::Mismatched => bump(&c.mismatched),
        }
        bump(&c.misses);
        None
    }

    fn find(
        &self,
        protocol: Protocol,
        id: &[u8],
        protocol_of: fn(&[u8]) -> Option<Protocol>,
        source: impl FnOnce(&SessionKey) -> Result<Option<StoredSession>, StoreError>,
    ) -> Found {
        let Some(key) = key_of(protocol, self.inner.context, id) else {
            log::debug!("session cache: offered id of {} bytes; a miss", id.len());
            return Found::InvalidId;
        };
        let session = match source(&key) {
            Ok(Some(session)) => session,
            Ok(None) => return Found::Miss,
            Err(e) => {
                log::warn!("session cache: looking up {key}: {e}; full handshake");
                bump(&self.inner.counters.errors);
                return Found::Error;
            }
        };
        if session.protocol != protocol {
            log::warn!(
                "session cache: {key} holds a {:?} session",
                session.protocol
            );
            return Found::Mismatched;
        }
        match protocol_of(&session.der) {
            Some(p) if p == protocol => Found::Hit(session.der.to_vec()),
            Some(_) => {
                log::warn!("session cache: {key} holds a session of the other protocol");
                Found::Mismatched
            }
            None => {
                log::warn!(
                    "session cache: {key} holds bytes that are not a rustls session \
                     (another server using this context?)"
                );
                Found::Corrupt
            }
        }
    }
}

/// Runs `f`, turning a panic into `None`.
fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

/// The key of `id` (untrusted bytes): `None` for an id outside 1..=32 bytes.
fn key_of(protocol: Protocol, context: SessionIdContext, id: &[u8]) -> Option<SessionKey> {
    let id = SessionId::new(id).ok()?;
    Some(SessionKey::new(protocol, context, id))
}
