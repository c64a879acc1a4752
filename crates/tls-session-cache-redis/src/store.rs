//! [`RedisStore`]: the [`SessionStore`] on Redis, and its builder.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Cmd;
use tls_session_cache::{
    CachePolicy, Clock, Protocol, SessionKey, SessionStore, StoreError, StoreStats, StoredSession,
    SystemClock, decode_with_limit, encode,
};
use zeroize::Zeroizing;

use crate::backend::{Dialer, Pool, Timeouts, remaining, settle, through};
use crate::breaker::{Breaker, CircuitState};
use crate::cluster::{BreakerSettings, Cluster, Route};
use crate::keyring::KeyRing;
use crate::naming::{
    DEFAULT_PREFIX, KeyFormat, RedisKey, previous_redis_key, redis_key, valid_prefix,
};
use crate::seal::{OpenError, SEAL_V1, SEAL_V2, SEAL_V3, SEAL_V4, is_stripped, open, seal};
use crate::sentinel::Sentinel;
use crate::stats::{Counters, RedisStats, bump};
use crate::target::{self, Topology, redact_url};
use crate::tls::{Tls, TlsError, TlsOptions};
use crate::value;
use crate::writer::{Job, Pending, Sink, Writer};
use redis::ConnectionInfo;

/// Why a [`RedisStore`] could not be built. Building never connects:
/// a store whose Redis is down builds and then misses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Neither a key ring nor the plaintext option was given.
    #[error(
        "refusing to store TLS sessions (which hold master secrets) in Redis unsealed: \
         give a seal key ring, or choose insecure_plaintext() explicitly"
    )]
    NoSealKey,
    /// Both a key ring and the plaintext option were given.
    #[error("both a seal key ring and insecure_plaintext() were given; choose one")]
    ConflictingSealing,
    /// A Redis URL did not parse.
    #[error("invalid Redis URL {url:?}: {source}")]
    Url {
        /// The URL as given, its password replaced by `***` ([`redact_url`]).
        url: String,
        /// The parser's complaint.
        #[source]
        source: redis::RedisError,
    },
    /// A cluster with no seed node.
    #[error("a Redis Cluster needs at least one seed node")]
    EmptyCluster,
    /// The key prefix is empty, holds spaces or control characters, or holds
    /// `{` / `}` (which would pin every session to one cluster slot).
    #[error("invalid key prefix {0:?}: use printable ASCII without spaces, '{{' or '}}'")]
    Prefix(String),
    /// A timeout of zero (Redis treats it as "wait forever").
    #[error("timeouts must be greater than zero")]
    ZeroTimeout,
    /// A write-behind queue of length zero.
    #[error("the write-behind queue length must be at least 1")]
    ZeroQueue,
    /// [`KeyFormat::Previous`] was chosen for writing with
    /// [`read_previous_format`](RedisStoreBuilder::read_previous_format)
    /// off: the store would not find the sessions it stores.
    #[error(
        "write_format(KeyFormat::Previous) needs read_previous_format(true): \
         the store would not find the sessions it stores"
    )]
    PreviousFormatUnread,
    /// No longer returned: the async store
    /// ([`RedisStoreBuilder::build_async`]) supports Redis Cluster since
    /// this version. Kept so that matches on it still compile.
    #[error("the async Redis store does not support Redis Cluster")]
    AsyncCluster,
    /// TLS settings were given for a URL that is not TLS (`redis://…`
    /// instead of `rediss://…`): refused rather than silently unencrypted.
    #[error(
        "TLS settings given, but {url:?} is not a TLS URL; use rediss://, rediss+cluster:// \
         or rediss+sentinel://"
    )]
    TlsOptionsWithoutTls {
        /// The URL, its password replaced by `***`.
        url: String,
    },
    /// The TLS settings could not be used (a file missing or malformed).
    #[error("Redis TLS settings: {0}")]
    Tls(#[from] TlsError),
    /// The write-behind thread could not be started.
    #[error("cannot start the write-behind thread: {0}")]
    Thread(#[source] std::io::Error),
}

enum Target {
    /// A store URL (see the `target` module).
    Url(String),
    /// Cluster seed nodes, each `redis://HOST:PORT` or `rediss://HOST:PORT`.
    ClusterNodes(Vec<String>),
}

/// A password, never printed.
#[derive(Clone)]
struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Where the async store connects (see [`RedisStoreBuilder::build_shared`]).
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) enum Endpoints {
    /// One server.
    Single(Dialer),
    /// A Redis Cluster: its seed nodes, and the breaker settings of each
    /// master.
    Cluster {
        seeds: Vec<Dialer>,
        breaker: BreakerSettings,
    },
    /// The master `name` behind `sentinels`, reached with `data`'s settings.
    Sentinel {
        sentinels: Vec<Dialer>,
        name: String,
        data: Dialer,
    },
}

/// Configures a [`RedisStore`]. See [`RedisStore::builder`].
pub struct RedisStoreBuilder {
    target: Target,
    tls: Option<TlsOptions>,
    username: Option<String>,
    password: Option<Password>,
    prefix: String,
    keys: Option<KeyRing>,
    plaintext: bool,
    timeouts: Timeouts,
    max_idle: usize,
    breaker_threshold: u32,
    breaker_backoff: Duration,
    breaker_max_backoff: Duration,
    write_behind: Option<usize>,
    max_session_size: usize,
    clock: Arc<dyn Clock>,
    write_format: KeyFormat,
    read_previous: bool,
    legacy_seal: bool,
    replay_memory: usize,
}

impl std::fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("prefix", &self.prefix)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("keys", &self.keys)
            .field("plaintext", &self.plaintext)
            .field("timeouts", &self.timeouts)
            .field("write_format", &self.write_format)
            .field("read_previous", &self.read_previous)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// TLS settings for a `rediss://` (or `rediss+cluster://`,
    /// `rediss+sentinel://`) URL: the CA to trust, a client certificate,
    /// the server name. A TLS URL without them verifies Redis's certificate
    /// against the system roots; giving them with a non-TLS URL is an error
    /// ([`BuildError::TlsOptionsWithoutTls`]).
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }
    /// The ACL user to authenticate as, instead of the URL's.
    pub fn username(mut self, user: impl Into<String>) -> Self {
        self.username = Some(user.into());
        self
    }
    /// The password to authenticate with, instead of the URL's — read from
    /// a file or the environment, say, so it need not be on a command line.
    /// Never logged or printed (`Debug` shows `***`).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(Password(password.into()));
        self
    }
    /// The key prefix (default `tls-session`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
    /// Seals values with this key ring (required unless
    /// [`insecure_plaintext`](Self::insecure_plaintext)).
    pub fn seal_keys(mut self, keys: KeyRing) -> Self {
        self.keys = Some(keys);
        self
    }
    /// Stores sessions **unencrypted**: anyone who can read Redis (or its
    /// dumps, or the network to it) gets the master secrets and can decrypt
    /// recorded traffic. For tests and debugging only.
    pub fn insecure_plaintext(mut self) -> Self {
        self.plaintext = true;
        self
    }
    /// Connect timeout (default 50 ms).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.timeouts.connect = t;
        self
    }
    /// Read timeout per command (default 50 ms).
    pub fn read_timeout(mut self, t: Duration) -> Self {
        self.timeouts.read = t;
        self
    }
    /// Write timeout per command (default 50 ms).
    pub fn write_timeout(mut self, t: Duration) -> Self {
        self.timeouts.write = t;
        self
    }
    /// Sets the connect, read and write timeouts at once.
    pub fn timeouts(self, t: Duration) -> Self {
        self.connect_timeout(t).read_timeout(t).write_timeout(t)
    }
    /// Idle connections kept for reuse (default 16).
    pub fn max_idle_connections(mut self, n: usize) -> Self {
        self.max_idle = n;
        self
    }
    /// Circuit breaker: open after `threshold` consecutive failures
    /// (default 5) for `backoff` (default 1 s), doubling after each failed
    /// probe up to `max_backoff` (default 30 s).
    pub fn circuit_breaker(
        mut self,
        threshold: u32,
        backoff: Duration,
        max_backoff: Duration,
    ) -> Self {
        self.breaker_threshold = threshold;
        self.breaker_backoff = backoff;
        self.breaker_max_backoff = max_backoff;
        self
    }
    /// Queue `put`s to a background writer (a queue of `queue_len`
    /// sessions; when it is full a put is dropped and counted in
    /// [`RedisStats::dropped_writes`]). `put` then returns at once.
    ///
    /// Operations on one key still take effect in the order they were
    /// issued: `remove`, `take` and `get` see a put still queued (`remove`
    /// and `take` withdraw it, so it is never sent; one whose `SET` is on
    /// its way is deleted after it), and a newer put of a queued key
    /// replaces it in the queue. Removes are never queued, so a full queue
    /// cannot drop or delay them.
    pub fn write_behind(mut self, queue_len: usize) -> Self {
        self.write_behind = Some(queue_len);
        self
    }
    /// Largest session stored (default 10 KiB, like the core's policy).
    pub fn max_session_size(mut self, bytes: usize) -> Self {
        self.max_session_size = bytes;
        self
    }
    /// The clock for expiry (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }
    /// Whether a TLS 1.2 `get` that misses also looks under the session's
    /// previous-format name (`{prefix}:{hex(context)}:{{hex(id)}}`, see
    /// [`naming`](crate::naming)) — **on by default**, so that a fleet
    /// upgrading one server at a time keeps resuming the TLS 1.2 sessions
    /// its older servers stored.
    ///
    /// **Turn it off once every server runs this version and one session
    /// lifetime has passed**: by then no previous-format session is left,
    /// and the fallback only costs. What it costs: on a single Redis, the
    /// two names are asked for in one `MGET` (no extra round trip; Redis
    /// looks up one more key per TLS 1.2 `get`); on a Redis Cluster, where
    /// the two names are in different slots, a second `GET` after every
    /// TLS 1.2 miss — one more round trip before the full handshake.
    /// [`RedisStats::fallback_lookups`] and [`RedisStats::fallback_hits`]
    /// show whether it still finds anything.
    ///
    /// Only TLS 1.2 `get`s fall back. A previous-format name has no
    /// protocol, so a TLS 1.3 `take` (`GETDEL`) of it could consume a
    /// TLS 1.2 session; TLS 1.3 tickets stored by older servers are
    /// therefore not found, and resume as full handshakes during the
    /// upgrade. A previous-format value must hold a TLS 1.2 session, or it
    /// is refused (a miss, counted in [`RedisStats::fallback_refused`],
    /// left in place). `remove` of a TLS 1.2 session deletes both names.
    /// With the fallback off, previous-format names are neither read nor
    /// deleted.
    pub fn read_previous_format(mut self, on: bool) -> Self {
        self.read_previous = on;
        self
    }
    /// The key names `put` writes (default [`KeyFormat::Compact`]).
    ///
    /// [`KeyFormat::Previous`] writes reusable TLS 1.2 sessions the way
    /// servers before this version did, so that servers not yet upgraded
    /// resume them: the first step of a two-step upgrade (every server to
    /// this version writing `Previous`, then every server to `Compact`).
    /// It needs [`read_previous_format`](Self::read_previous_format) on.
    pub fn write_format(mut self, format: KeyFormat) -> Self {
        self.write_format = format;
        self
    }

    /// How many consumed or removed session names this store remembers
    /// (default 65 536, about 2.5 MiB; 0 turns the check off), so that a
    /// value written back into Redis under one of them is refused: a TLS
    /// 1.3 ticket this server took (`GETDEL`) is remembered until its
    /// sealed expiry, a removed session for 7 days or until this store
    /// `put`s under its name again. Refusals are misses counted in
    /// [`RedisStats::replays`]. Per server and in memory: see the
    /// [`replay`](crate::replay) module for what it does not cover.
    pub fn replay_memory(mut self, entries: usize) -> Self {
        self.replay_memory = entries;
        self
    }

    /// Seal values as version 2 (AES-256-GCM, random 96-bit nonces under
    /// the ring's key), which servers of the previous release open, instead
    /// of version 3 (a key derived per value; see the crate docs) — **off
    /// by default**. Turn it on for the first step of a rolling upgrade
    /// (every server to this version with `legacy_seal(true)`, then every
    /// server without it), so that servers not yet upgraded keep resuming
    /// the sessions upgraded ones store. Every version is read either way.
    /// Version 2 puts the AES-GCM limit of about 2^32 values per key on the
    /// whole fleet: do not leave it on.
    pub fn legacy_seal(mut self, on: bool) -> Self {
        self.legacy_seal = on;
        self
    }

    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn connect_timeout_value(&self) -> Duration {
        self.timeouts.connect
    }

    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn io_timeout_value(&self) -> Duration {
        self.timeouts.read + self.timeouts.write
    }

    /// Builds the store. It does not connect: connections are opened by the
    /// first operations (use [`RedisStore::ping`] to check at start-up).
    pub fn build(self) -> Result<RedisStore, BuildError> {
        let write_behind = self.write_behind;
        let (shared, _) = self.build_shared()?;
        let writer = match write_behind {
            None => None,
            Some(0) => return Err(BuildError::ZeroQueue),
            Some(n) => Some(Writer::spawn(Arc::clone(&shared), n).map_err(BuildError::Thread)?),
        };
        Ok(RedisStore { shared, writer })
    }

    /// Validates the settings and makes what the blocking and the async
    /// store share; also returns where the async store connects.
    pub(crate) fn build_shared(self) -> Result<(Arc<Shared>, Endpoints), BuildError> {
        let sealing = match (self.keys, self.plaintext) {
            (Some(_), true) => return Err(BuildError::ConflictingSealing),
            (None, false) => return Err(BuildError::NoSealKey),
            (Some(ring), false) => Sealing::Sealed(ring),
            (None, true) => {
                log::warn!(
                    "redis session store built with insecure_plaintext(): TLS master secrets \
                     are stored in Redis unencrypted"
                );
                Sealing::Plaintext
            }
        };
        if !valid_prefix(&self.prefix) {
            return Err(BuildError::Prefix(self.prefix));
        }
        if self.write_format == KeyFormat::Previous && !self.read_previous {
            return Err(BuildError::PreviousFormatUnread);
        }
        let mut t = self.timeouts;
        t.max_reply = max_reply(self.max_session_size);
        if t.connect.is_zero() || t.read.is_zero() || t.write.is_zero() {
            return Err(BuildError::ZeroTimeout);
        }
        let breaker = BreakerSettings {
            threshold: self.breaker_threshold,
            backoff: self.breaker_backoff,
            max_backoff: self.breaker_max_backoff,
        };
        let shown = match &self.target {
            Target::Url(url) => redact_url(url),
            Target::ClusterNodes(nodes) => redact_url(&nodes.join(",")),
        };
        let url_error = |source| BuildError::Url {
            url: shown.clone(),
            source,
        };
        let parsed = match &self.target {
            Target::Url(url) => target::parse(url),
            Target::ClusterNodes(nodes) => target::cluster_nodes(nodes),
        }
        .map_err(url_error)?;
        let tls = match (parsed.tls, &self.tls) {
            (true, options) => Some(Arc::new(Tls::new(&options.clone().unwrap_or_default())?)),
            (false, Some(_)) => return Err(BuildError::TlsOptionsWithoutTls { url: shown }),
            (false, None) => None,
        };
        let credentials = |info: ConnectionInfo| {
            let mut settings = info.redis_settings().clone();
            if let Some(user) = &self.username {
                settings = settings.set_username(user);
            }
            if let Some(password) = &self.password {
                settings = settings.set_password(&password.0);
            }
            info.set_redis_settings(settings)
        };
        let (redis, endpoints) = match parsed.topology {
            Topology::Standalone(info) => {
                let dialer = Dialer::new(credentials(info), tls.as_ref()).map_err(url_error)?;
                (
                    Backend::Single(Pool::new(dialer.clone(), self.max_idle, t)),
                    Endpoints::Single(dialer),
                )
            }
            Topology::Cluster(nodes) => {
                if nodes.is_empty() {
                    return Err(BuildError::EmptyCluster);
                }
                let dialers = nodes
                    .into_iter()
                    .map(|n| Dialer::new(credentials(n), tls.as_ref()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(url_error)?;
                // Not redis-rs's ClusterClient: see the `cluster` module
                // for why (a frozen master cost several timeouts per call).
                let seeds = dialers.clone();
                let cluster =
                    Cluster::new(dialers, self.max_idle, t, breaker).map_err(url_error)?;
                (
                    Backend::Cluster(cluster),
                    Endpoints::Cluster { seeds, breaker },
                )
            }
            Topology::Sentinel {
                sentinels,
                master,
                data,
            } => {
                let sentinels = sentinels
                    .into_iter()
                    .map(|s| Dialer::new(s, tls.as_ref()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(url_error)?;
                let data = Dialer::new(credentials(data), tls.as_ref()).map_err(url_error)?;
                let sentinel = Sentinel::new(
                    master.clone(),
                    sentinels.clone(),
                    data.clone(),
                    self.max_idle,
                    t,
                );
                (
                    Backend::Sentinel(sentinel),
                    Endpoints::Sentinel {
                        sentinels,
                        name: master,
                        data,
                    },
                )
            }
        };
        let shared = Arc::new(Shared {
            redis,
            breaker: Breaker::new(breaker.threshold, breaker.backoff, breaker.max_backoff),
            counters: Counters::default(),
            sealing,
            prefix: self.prefix,
            clock: self.clock,
            max_session_size: self.max_session_size,
            budget: t.budget(),
            write_format: self.write_format,
            read_previous: self.read_previous,
            legacy_seal: self.legacy_seal,
            replay: crate::replay::Memory::new(self.replay_memory),
        });
        Ok((shared, endpoints))
    }
}

/// Bytes a stored value may take beyond its session's DER: the core
/// envelope's fields (magic, version, flags, context and id with their
/// lengths, expiry, length: under 100 bytes) and the seal's header, salt and
/// tag (under 64), rounded up generously.
pub(crate) const VALUE_OVERHEAD: usize = 512;

/// The largest reply a session call reads (see `wire`): two values (the
/// `MGET` of a TLS 1.2 lookup with the previous-format fallback) of at
/// most `max_session_size` plus [`VALUE_OVERHEAD`], and RESP framing.
/// Anything larger is refused before it is read whole, and its connection
/// dropped; a `max_session_size` of 10 KiB gives 21 KiB.
pub(crate) fn max_reply(max_session_size: usize) -> usize {
    max_session_size
        .saturating_add(VALUE_OVERHEAD)
        .saturating_mul(2)
        .saturating_add(256)
}

/// Why a value read from Redis cannot be used. No kind is deleted:
/// see [`Shared::interpret`].
enum Unusable {
    /// Sealed under a key id this ring does not hold — likely by a server
    /// that already has a newer key.
    UnknownKey(String),
    /// Did not open (tampered, moved, or sealed under another key that
    /// shares a key id with one of ours), or not an envelope.
    Corrupt(String),
    /// Under a previous-format name (no protocol in it): a session of the
    /// other protocol with the same context and id.
    OtherProtocol(Protocol),
}

/// Which of a session's names a value was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Name {
    /// The compact name (the format this version writes).
    Current,
    /// The previous-format name (a TLS 1.2 `get`'s fallback).
    Previous,
}

/// Where the store's connections go.
enum Backend {
    /// One Redis server: one pool, behind the store's breaker.
    Single(Pool),
    /// A Redis Cluster: a pool and a breaker per master.
    Cluster(Cluster),
    /// The master Sentinel names: a pool to it, behind the store's breaker.
    Sentinel(Sentinel),
}

pub(crate) enum Sealing {
    Sealed(KeyRing),
    Plaintext,
}

/// What the store and its writer thread share.
pub(crate) struct Shared {
    redis: Backend,
    /// The store's breaker: standalone Redis (blocking and async stores).
    /// A cluster has one per master instead.
    breaker: Breaker,
    pub(crate) counters: Counters,
    sealing: Sealing,
    prefix: String,
    clock: Arc<dyn Clock>,
    max_session_size: usize,
    /// The most one call may take (see `backend`).
    budget: Duration,
    /// What `put` writes.
    write_format: KeyFormat,
    /// Whether TLS 1.2 `get`s fall back to previous-format names.
    read_previous: bool,
    /// Whether values are sealed as version 2 (random nonces under the
    /// ring's key) rather than 3 (per-value keys).
    legacy_seal: bool,
    /// Names this store consumed or removed (see `replay`).
    replay: crate::replay::Memory,
}

impl Sink for Shared {
    fn write(&self, job: &Job) {
        // Failures are counted by `set` (errors, timeouts, …).
        let _ = self.set(job);
    }

    fn delete(&self, key: &RedisKey) {
        let _ = self.del(key, self.deadline());
    }

    fn dropped(&self) {
        bump(&self.counters.dropped_writes);
    }
}

impl Shared {
    /// The deadline of a call starting now.
    pub(crate) fn deadline(&self) -> Instant {
        Instant::now() + self.budget
    }

    /// Sends one command about `key` (or, with `None`, to any node)
    /// through the circuit breaker and a pool, within `deadline`.
    fn call<T: redis::FromRedisValue>(
        &self,
        cmd: &Cmd,
        key: Option<&RedisKey>,
        deadline: Instant,
    ) -> Result<T, StoreError> {
        match &self.redis {
            Backend::Single(pool) => through(&self.breaker, &self.counters, self.budget, || {
                pool.query(deadline, |con| cmd.query(con))
            }),
            Backend::Cluster(cluster) => {
                let route = key.map_or(Route::Any, Route::Key);
                cluster.call(&self.counters, self.budget, deadline, route, |con| {
                    cmd.query(con)
                })
            }
            Backend::Sentinel(sentinel) => sentinel.call(
                &self.breaker,
                &self.counters,
                self.budget,
                deadline,
                |con| cmd.query(con),
            ),
        }
    }

    /// Whether the store's breaker lets a call through now, without
    /// counting a refusal (the async store; see [`refuse`](Self::refuse)).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn breaker_admits(&self) -> bool {
        self.breaker.admit()
    }

    /// Counts a call refused by the open circuit.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn refuse<T>(&self) -> Result<T, StoreError> {
        crate::backend::admit_refused(&self.counters)
    }

    /// Closes the store's breaker (the async store, after Sentinel named a
    /// new master).
    /// The largest reply a session call reads (see [`max_reply`]).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn max_reply(&self) -> usize {
        max_reply(self.max_session_size)
    }

    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn reset_breaker(&self) {
        self.breaker.reset();
    }

    /// Reports a call's outcome to the store's breaker and the counters,
    /// and turns a Redis error into a [`StoreError`] (the async store).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn settle<T>(&self, result: Result<T, redis::RedisError>) -> Result<T, StoreError> {
        settle(&self.breaker, &self.counters, self.budget, result)
    }

    /// `SET key value PX ms`.
    pub(crate) fn set(&self, job: &Job) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(&job.key).arg(&job.value).arg("PX").arg(job.px);
        self.call::<()>(&cmd, Some(&job.key), self.deadline())?;
        bump(&self.counters.inserts);
        Ok(())
    }

    /// `DEL key`: whether there was a value.
    pub(crate) fn del(&self, key: &RedisKey, deadline: Instant) -> Result<bool, StoreError> {
        let n: i64 = self.call(redis::cmd("DEL").arg(key), Some(key), deadline)?;
        Ok(n > 0)
    }

    /// Deletes every name in `names`: whether any held a value. One `DEL`
    /// on a single Redis; one per name on a cluster, where a session's
    /// names are in different slots.
    fn del_all(&self, names: &[RedisKey], deadline: Instant) -> Result<bool, StoreError> {
        match (&self.redis, names) {
            (_, [name]) => self.del(name, deadline),
            // One master: all names on one node.
            (Backend::Single(_) | Backend::Sentinel(_), _) => {
                let n: i64 = self.call(redis::cmd("DEL").arg(names), None, deadline)?;
                Ok(n > 0)
            }
            (Backend::Cluster(_), _) => {
                let mut found = false;
                for name in names {
                    found |= self.del(name, deadline)?;
                }
                Ok(found)
            }
        }
    }

    /// Reads a TLS 1.2 session's `current` name and, failing that, its
    /// `previous` one: one `MGET` on a single Redis, a `GET` and (on a
    /// miss) a second `GET` on a cluster. Returns the name the answer is
    /// for.
    fn get_either(
        &self,
        current: RedisKey,
        previous: RedisKey,
        deadline: Instant,
    ) -> Result<(RedisKey, Option<Vec<u8>>, Name), StoreError> {
        if let Backend::Single(_) | Backend::Sentinel(_) = &self.redis {
            let mut cmd = redis::cmd("MGET");
            cmd.arg(&current).arg(&previous);
            let pair = self.call(&cmd, None, deadline)?;
            return Ok(self.pick(current, previous, pair));
        }
        let value: Option<Vec<u8>> =
            self.call(redis::cmd("GET").arg(&current), Some(&current), deadline)?;
        if value.is_some() {
            return Ok((current, value, Name::Current));
        }
        bump(&self.counters.fallback_lookups);
        let old = self.call(redis::cmd("GET").arg(&previous), Some(&previous), deadline)?;
        Ok((previous, old, Name::Previous))
    }

    /// Which answer of an `MGET current previous` counts: the current
    /// name's, when it holds a value (it is the newer format), else the
    /// previous name's.
    pub(crate) fn pick(
        &self,
        current: RedisKey,
        previous: RedisKey,
        (new, old): (Option<Vec<u8>>, Option<Vec<u8>>),
    ) -> (RedisKey, Option<Vec<u8>>, Name) {
        bump(&self.counters.fallback_lookups);
        match new {
            Some(v) => (current, Some(v), Name::Current),
            None => (previous, old, Name::Previous),
        }
    }

    /// Seals `key`'s `session` for storage under `redis_key`: seal version 2
    /// over the key-less envelope under a compact name, version 1 over the
    /// full envelope under a previous-format name (what older servers open)
    /// or when the envelope's layout is not one [`value::strip`] knows.
    fn seal(
        &self,
        redis_key: &RedisKey,
        key: &SessionKey,
        session: &StoredSession,
        name: Name,
    ) -> Result<Vec<u8>, StoreError> {
        // Plaintext buffers hold the session: zeroized when dropped.
        let envelope = Zeroizing::new(encode(key, session));
        match &self.sealing {
            Sealing::Sealed(ring) => {
                let compact = match name {
                    Name::Current => value::strip(&envelope, key).map(Zeroizing::new),
                    Name::Previous => None,
                };
                // Previous-format names are read by servers of that era:
                // version 1, which they open. Otherwise per-value keys,
                // unless `legacy_seal` keeps a rolling upgrade readable.
                let (short, full) = match (name, self.legacy_seal) {
                    (Name::Previous, _) | (_, true) => (SEAL_V2, SEAL_V1),
                    (Name::Current, false) => (SEAL_V3, SEAL_V4),
                };
                match compact {
                    Some(stripped) => seal(ring, short, redis_key, &stripped),
                    None => seal(ring, full, redis_key, &envelope),
                }
                .map_err(|e| StoreError::Backend(Box::new(e)))
            }
            Sealing::Plaintext => Ok(envelope.to_vec()),
        }
    }

    /// Opens, decodes and checks a value read from `redis_key`, one of
    /// `key`'s names.
    fn unseal(
        &self,
        redis_key: &RedisKey,
        key: &SessionKey,
        value: &[u8],
        name: Name,
    ) -> Result<StoredSession, Unusable> {
        let corrupt = |e: &dyn std::fmt::Display| Unusable::Corrupt(e.to_string());
        let envelope = match &self.sealing {
            Sealing::Sealed(ring) => {
                let opened = open(ring, redis_key, value).map_err(|e| match e {
                    OpenError::UnknownKey(_) => Unusable::UnknownKey(e.to_string()),
                    _ => corrupt(&e),
                })?;
                if is_stripped(opened.version) {
                    Zeroizing::new(value::restore(&opened.plain, key).map_err(|e| corrupt(&e))?)
                } else {
                    opened.plain
                }
            }
            Sealing::Plaintext => Zeroizing::new(value.to_vec()),
        };
        let (found, session) =
            decode_with_limit(&envelope, self.max_session_size).map_err(|e| corrupt(&e))?;
        if found == *key {
            return Ok(session);
        }
        // A previous-format name serves both protocols: the other one's
        // session under it is a stranger, not a corruption.
        if name == Name::Previous && found.context == key.context && found.id == key.id {
            return Err(Unusable::OtherProtocol(found.protocol));
        }
        Err(Unusable::Corrupt(format!(
            "value holds the session of {found}, not of {key}"
        )))
    }
}

/// A [`SessionStore`] on Redis (standalone or Cluster).
///
/// * `put` = `SET key sealed-value PX ms-until-expiry` (an already expired
///   session is not stored; the key is deleted instead).
/// * `get` = `GET`; `take` = `GETDEL`, atomic in Redis, so a TLS 1.3
///   ticket resumes once across the whole fleet; `remove` = `DEL`.
/// * Keys are the compact binary names of [`naming`](crate::naming).
///   While [`read_previous_format`](RedisStoreBuilder::read_previous_format)
///   is on (the default), a TLS 1.2 `get` also finds a session stored
///   under its previous-format name by a server before this version
///   (`MGET` of both names on a single Redis, a second `GET` after a miss
///   on a cluster), and `remove` of a TLS 1.2 session deletes both names.
/// * With [write-behind](RedisStoreBuilder::write_behind), operations on
///   one key still take effect in the order they were issued.
/// * Values are sealed (see the [sealing](crate#sealing) section). A value
///   that does not open or decode, or holds another key's session, is
///   counted in [`RedisStats::corrupt`] and `errors` and looked up as a
///   **miss: `Ok(None)`**, not an error. A `get` leaves it in Redis to
///   expire with its TTL (it may be sealed under a newer key whose one-byte
///   id equals one of ours, which other servers can open). A value sealed
///   under a key id the ring does not know is a miss counted in
///   [`RedisStats::unknown_key`], also left in place by `get`. A `take`
///   consumes whatever it finds (`GETDEL` removes the value before the
///   store can try to open it — that is what makes single use atomic
///   across the fleet), so a ticket sealed under a key this server lacks
///   is consumed and missed here rather than resumed elsewhere: roll new
///   keys out as older ones first (see [`KeyRing`]).
/// * A value found under a name this store consumed (`take`) or removed
///   before is refused as a replay (see
///   [`replay_memory`](RedisStoreBuilder::replay_memory)).
/// * Every error is a failure of Redis (down, timeout, circuit open); the
///   caller treats it as a miss. No call takes longer than the largest of
///   the connect, read and write timeouts (plus scheduling), standalone or
///   cluster, and nothing panics.
pub struct RedisStore {
    shared: Arc<Shared>,
    // Dropped (and its thread joined) when the store is.
    writer: Option<Writer>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.shared.prefix())
            .field("circuit", &self.shared.circuit_state())
            .field("write_behind", &self.writer.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A builder for `url` (see the [`target`] module):
    ///
    /// * `redis://[USER:PASSWORD@]HOST:PORT[/DB]` (or `unix:///path`): one server;
    /// * `redis+cluster://[USER:PASSWORD@]HOST1:PORT1,HOST2:PORT2,…`: a Redis
    ///   Cluster (each listed node is a seed; one reachable seed is enough);
    /// * `redis+sentinel://[USER:PASSWORD@]S1:P1,S2:P2,…/MASTER-NAME[/DB]`:
    ///   the master Redis Sentinel names, followed through failovers;
    /// * `rediss://…`, `rediss+cluster://…`, `rediss+sentinel://…`: the
    ///   same over TLS (see [`tls`](RedisStoreBuilder::tls)).
    ///
    /// The URL is checked by [`build`](RedisStoreBuilder::build).
    pub fn builder(url: &str) -> RedisStoreBuilder {
        RedisStoreBuilder {
            target: Target::Url(url.to_string()),
            tls: None,
            username: None,
            password: None,
            prefix: DEFAULT_PREFIX.to_string(),
            keys: None,
            plaintext: false,
            timeouts: Timeouts {
                connect: Self::DEFAULT_TIMEOUT,
                read: Self::DEFAULT_TIMEOUT,
                write: Self::DEFAULT_TIMEOUT,
                max_reply: 0,
            },
            max_idle: 16,
            breaker_threshold: 5,
            breaker_backoff: Duration::from_secs(1),
            breaker_max_backoff: Duration::from_secs(30),
            write_behind: None,
            max_session_size: CachePolicy::DEFAULT_MAX_SESSION_SIZE,
            clock: Arc::new(SystemClock),
            write_format: KeyFormat::Compact,
            read_previous: true,
            legacy_seal: false,
            replay_memory: crate::replay::DEFAULT_CAPACITY,
        }
    }

    /// A builder for a Redis Cluster given its seed nodes' URLs
    /// (`redis://HOST:PORT` each, or all `rediss://HOST:PORT`; the first
    /// one's credentials apply to every node).
    pub fn cluster_builder<I, S>(nodes: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut b = Self::builder("redis+cluster://");
        b.target = Target::ClusterNodes(nodes.into_iter().map(Into::into).collect());
        b
    }

    /// The default connect, read and write timeout: 50 ms.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

    /// The compact Redis key a session key is stored under (in the
    /// [`KeyFormat::Previous`] write format, reusable TLS 1.2 sessions go
    /// under [`naming::previous_redis_key`](crate::naming::previous_redis_key)
    /// instead).
    pub fn redis_key(&self, key: &SessionKey) -> RedisKey {
        self.shared.redis_key(key)
    }

    /// Redis-specific counters.
    pub fn redis_stats(&self) -> RedisStats {
        let queued = self.writer.as_ref().map_or(0, Writer::pending);
        self.shared.counters.redis_stats(queued)
    }

    /// The circuit breaker's state. For a Redis Cluster, where each master
    /// has its own breaker, the worst of them (open, then half-open, then
    /// closed): one dead master shows as `Open` although the other shards
    /// are served; see [`node_circuits`](Self::node_circuits).
    pub fn circuit_state(&self) -> CircuitState {
        self.shared.circuit_state()
    }

    /// For a Redis Cluster: each master (`host:port`, as the cluster
    /// announces it) with the state of its own circuit breaker, sorted by
    /// address; masters appear once the slot map is loaded. Empty for a
    /// single Redis server.
    pub fn node_circuits(&self) -> Vec<(String, CircuitState)> {
        self.shared.node_circuits()
    }

    /// For a store behind Redis Sentinel: the master in use (`host:port`,
    /// as Sentinel reports it), once a call has asked. `None` otherwise.
    pub fn sentinel_master(&self) -> Option<String> {
        self.shared.master_addr()
    }

    /// Sends `PING` (through the breaker, like any call).
    pub fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self
            .shared
            .call(&redis::cmd("PING"), None, self.shared.deadline())?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!("PING answered {pong:?}")))
        }
    }

    /// Waits until the write-behind queue is empty and nothing is being sent
    /// (each put sent, failed, or withdrawn), at most `timeout`; returns
    /// whether the queue drained.
    /// Without write-behind it returns `true` at once.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.writer.as_ref().is_none_or(|w| w.flush(timeout))
    }

    fn lookup(
        &self,
        key: &SessionKey,
        command: Lookup,
    ) -> Result<Option<StoredSession>, StoreError> {
        let (rkey, previous) = self.shared.lookup_names(key, command);
        let deadline = self.shared.deadline();
        if let Some(writer) = &self.writer {
            // Per-key order: a put still queued is the newest value.
            match command {
                Lookup::Get => {
                    for name in std::iter::once(&rkey).chain(&previous) {
                        match writer.peek(name) {
                            Pending::Put(session) => {
                                return Ok(self.shared.answer_pending(session));
                            }
                            Pending::Removed => return Ok(self.shared.answer_pending_removal()),
                            Pending::Nothing => {}
                        }
                    }
                }
                Lookup::Take => {
                    if let Some(session) = writer.withdraw(&rkey).queued {
                        // Never sent: whatever Redis holds under the key is
                        // older and goes too, as a SET then GETDEL would.
                        self.shared.del(&rkey, deadline)?;
                        return Ok(self.shared.answer_pending(session));
                    }
                }
            }
        }
        let (name, value, which) = match previous {
            Some(old) => self.shared.get_either(rkey, old, deadline)?,
            None => {
                let value = self.shared.call(
                    redis::cmd(command.name()).arg(&rkey),
                    Some(&rkey),
                    deadline,
                )?;
                (rkey, value, Name::Current)
            }
        };
        let found = self.shared.interpret(&name, key, value, command, which);
        // Clean-up only (Redis expires the key anyway): within what is
        // left of this call's budget, or not at all.
        if found.delete && remaining(deadline).is_ok() {
            let _ = self.shared.del(&name, deadline);
        }
        Ok(found.session)
    }
}

/// The two lookup commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// `GET`: the value stays.
    Get,
    /// `GETDEL`: the value is consumed (single use).
    Take,
}

impl Lookup {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Lookup::Get => "GET",
            Lookup::Take => "GETDEL",
        }
    }
}

/// What a lookup's reply means.
pub(crate) struct Found {
    /// The session, when the value was live and usable.
    pub(crate) session: Option<StoredSession>,
    /// The value opened but has expired and is still in Redis: delete it.
    pub(crate) delete: bool,
}

/// What a `put` sends.
pub(crate) enum PutPlan {
    /// `SET key value PX ms`.
    Set(Job),
    /// The session had already expired: `DEL` of the key's names instead.
    Delete(Vec<RedisKey>),
}

impl Shared {
    /// The names a lookup asks for: the compact name, and for a TLS 1.2
    /// `get` with the fallback on, the previous-format name.
    pub(crate) fn lookup_names(
        &self,
        key: &SessionKey,
        command: Lookup,
    ) -> (RedisKey, Option<RedisKey>) {
        let previous =
            (self.read_previous && command == Lookup::Get && key.protocol == Protocol::Tls12)
                .then(|| previous_redis_key(&self.prefix, key));
        (self.redis_key(key), previous)
    }

    /// Every name `remove` deletes: the compact name, and for a TLS 1.2 key
    /// with the fallback on, the previous-format name. (A TLS 1.3 key's
    /// previous-format name is never read by this version, and may hold a
    /// TLS 1.2 session of the same id: not ours to delete.)
    pub(crate) fn all_names(&self, key: &SessionKey) -> Vec<RedisKey> {
        let mut names = vec![self.redis_key(key)];
        if self.read_previous && key.protocol == Protocol::Tls12 {
            names.push(previous_redis_key(&self.prefix, key));
        }
        names
    }

    /// Interprets a lookup's reply under `rkey`, `key`'s `name`: opens,
    /// decodes, checks the key and the expiry, and counts.
    pub(crate) fn interpret(
        &self,
        rkey: &RedisKey,
        key: &SessionKey,
        value: Option<Vec<u8>>,
        command: Lookup,
        name: Name,
    ) -> Found {
        let c = &self.counters;
        let Some(value) = value else {
            bump(&c.misses);
            return Found {
                session: None,
                delete: false,
            };
        };
        let consumed = command == Lookup::Take;
        match self.unseal(rkey, key, &value, name) {
            Ok(session) if session.is_expired(self.clock.now()) => {
                // Redis's TTL is only a clean-up hint; the sealed expiry rules.
                bump(&c.expirations);
                bump(&c.misses);
                Found {
                    session: None,
                    delete: !consumed,
                }
            }
            Ok(_) if self.replay.refuses(rkey, self.clock.now()) => {
                // This server consumed or removed this name: an old value
                // written back. (A take already consumed it again.)
                bump(&c.replays);
                bump(&c.misses);
                if let Some(n) = c.value_warning.admit() {
                    log::warn!(
                        "redis session store: {rkey} holds a session this server already \
                         consumed or removed (written back into Redis?): refused ({n} more \
                         warnings about values since the last; counted in redis.replays)"
                    );
                }
                Found {
                    session: None,
                    delete: false,
                }
            }
            Ok(session) => {
                if consumed {
                    self.replay
                        .remember(rkey, session.expires, self.clock.now());
                }
                bump(&c.hits);
                if name == Name::Previous {
                    bump(&c.fallback_hits);
                }
                Found {
                    session: Some(session),
                    delete: false,
                }
            }
            // Left in place: it may be a TLS 1.3 ticket an older server
            // stored, which older servers still resume.
            Err(Unusable::OtherProtocol(found)) => {
                bump(&c.fallback_refused);
                bump(&c.misses);
                log::debug!(
                    "redis session store: {rkey} holds a {} session, not a {} one: not used",
                    found.as_str(),
                    key.protocol.as_str()
                );
                Found {
                    session: None,
                    delete: false,
                }
            }
            Err(Unusable::UnknownKey(why)) => {
                bump(&c.unknown_key);
                bump(&c.misses);
                if let Some(n) = c.value_warning.admit() {
                    log::warn!(
                        "redis session store: cannot open {rkey}: {why} ({n} more warnings \
                         about values since the last; counted in redis.unknown_key)"
                    );
                }
                Found {
                    session: None,
                    delete: false,
                }
            }
            // Not deleted by a get (a take has consumed it already, see
            // `RedisStore`'s docs): a value that fails to open here may open on
            // another server (sealed under a key we lack whose one-byte id
            // equals one of ours), and deleting it would drop it for the
            // whole fleet. A tampered value is a miss on every read and
            // goes when its TTL does.
            Err(Unusable::Corrupt(why)) => {
                bump(&c.corrupt);
                bump(&c.errors);
                bump(&c.misses);
                if let Some(n) = c.value_warning.admit() {
                    log::warn!(
                        "redis session store: unusable value at {rkey} (left to expire): {why} \
                         ({n} more warnings about values since the last; counted in redis.corrupt)"
                    );
                }
                Found {
                    session: None,
                    delete: false,
                }
            }
        }
    }

    /// Checks the size and the expiry of a session to store and seals it.
    pub(crate) fn plan_put(
        &self,
        key: &SessionKey,
        session: &StoredSession,
    ) -> Result<PutPlan, StoreError> {
        let c = &self.counters;
        let size = session.der.len();
        if size > self.max_session_size {
            bump(&c.oversize);
            return Err(StoreError::Oversize {
                size,
                limit: self.max_session_size,
            });
        }
        let now = self.clock.now();
        if session.is_expired(now) {
            // Not stored; whatever was under the key is replaced by nothing.
            bump(&c.expirations);
            return Ok(PutPlan::Delete(self.all_names(key)));
        }
        // Only reusable TLS 1.2 sessions ever go under a previous-format
        // name: those are looked up by `get`, which falls back to it.
        let name = if self.write_format == KeyFormat::Previous
            && key.protocol == Protocol::Tls12
            && !session.single_use
        {
            Name::Previous
        } else {
            Name::Current
        };
        let rkey = match name {
            Name::Current => self.redis_key(key),
            Name::Previous => previous_redis_key(&self.prefix, key),
        };
        let px = (session.expires - now).saturating_mul(1000);
        // This server stores a session under the name: no longer a replay.
        self.replay.forget(&rkey);
        let value = self.seal(&rkey, key, session, name)?;
        Ok(PutPlan::Set(Job {
            key: rkey,
            value,
            px,
        }))
    }

    /// The compact Redis key of `key`.
    pub(crate) fn redis_key(&self, key: &SessionKey) -> RedisKey {
        redis_key(&self.prefix, key)
    }

    /// Counts a stored session.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn count_insert(&self) {
        bump(&self.counters.inserts);
    }

    /// Answers a lookup with the session of a put still in the
    /// write-behind queue: a hit, or a miss if it has expired since.
    pub(crate) fn answer_pending(&self, session: StoredSession) -> Option<StoredSession> {
        let c = &self.counters;
        if session.is_expired(self.clock.now()) {
            bump(&c.expirations);
            bump(&c.misses);
            return None;
        }
        bump(&c.hits);
        Some(session)
    }

    /// Answers a lookup of a key removed while its queued put was being
    /// sent: a miss.
    pub(crate) fn answer_pending_removal(&self) -> Option<StoredSession> {
        bump(&self.counters.misses);
        None
    }

    /// Counts a removal that found a value.
    pub(crate) fn count_removal(&self) {
        bump(&self.counters.removals);
    }

    /// `remove` of `names` went through: a value found under them later is
    /// an old one written back (see `replay`).
    pub(crate) fn note_removal(&self, names: &[RedisKey]) {
        let now = self.clock.now();
        for name in names {
            self.replay.remember(
                name,
                now.saturating_add(crate::replay::REMOVED_HORIZON),
                now,
            );
        }
    }

    /// The prefix, for `Debug`.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The breaker's state; for a cluster, the worst master's.
    pub(crate) fn circuit_state(&self) -> CircuitState {
        match &self.redis {
            Backend::Single(_) | Backend::Sentinel(_) => self.breaker.state(),
            Backend::Cluster(c) => c.worst_circuit(),
        }
    }

    /// Each cluster master's circuit.
    pub(crate) fn node_circuits(&self) -> Vec<(String, CircuitState)> {
        match &self.redis {
            Backend::Single(_) | Backend::Sentinel(_) => Vec::new(),
            Backend::Cluster(c) => c.circuits(),
        }
    }

    /// Sentinel: the master in use (`host:port`), once known.
    pub(crate) fn master_addr(&self) -> Option<String> {
        match &self.redis {
            Backend::Sentinel(s) => s.master_addr(),
            _ => None,
        }
    }
}

impl RedisStore {
    /// `DEL` of `names` now, after taking back puts of them still in the
    /// write-behind queue (see the `writer` module on per-key order).
    /// Whether there was a session to delete.
    fn delete(&self, names: &[RedisKey]) -> Result<bool, StoreError> {
        let mut pending = false;
        if let Some(writer) = &self.writer {
            for name in names {
                let w = writer.withdraw(name);
                pending |= w.queued.is_some() || w.sending;
            }
        }
        let found = self.shared.del_all(names, self.shared.deadline())?;
        Ok(found || pending)
    }
}

impl SessionStore for RedisStore {
    fn put(&self, key: &SessionKey, session: &StoredSession) -> Result<(), StoreError> {
        match self.shared.plan_put(key, session)? {
            PutPlan::Delete(names) => self.delete(&names).map(|_| ()),
            PutPlan::Set(job) => match &self.writer {
                Some(writer) => {
                    writer.enqueue(self.shared.as_ref(), job, session.clone());
                    Ok(())
                }
                None => self.shared.set(&job),
            },
        }
    }

    fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        self.lookup(key, Lookup::Get)
    }

    fn take(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        self.lookup(key, Lookup::Take)
    }

    fn remove(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let names = self.shared.all_names(key);
        let removed = self.delete(&names)?;
        self.shared.note_removal(&names);
        if removed {
            self.shared.count_removal();
        }
        Ok(removed)
    }

    fn stats(&self) -> StoreStats {
        self.shared.counters.store_stats()
    }
}
