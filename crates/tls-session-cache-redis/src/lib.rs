//! A Redis [`SessionStore`](tls_session_cache::SessionStore) for fleets of
//! TLS servers: every server finds every session, a TLS 1.3 ticket resumes
//! once across the fleet, sessions are sealed at rest, and a down or slow
//! Redis costs a handshake at most one timeout — then nothing, while the
//! circuit is open.
//!
//! | module | holds |
//! |---|---|
//! | [`store`] | [`RedisStore`], [`RedisStoreBuilder`], [`BuildError`] |
//! | [`tiered`] | [`TieredStore`] — a local memory tier in front of Redis |
//! | [`keyring`] | [`KeyRing`] — sealing keys, current + older, key files |
//! | `seal` | AES-256-GCM over the core envelope (format below) |
//! | `value` | the key-less envelope sealed as seal version 2 |
//! | [`naming`] | Redis key names (compact and previous format), [`KeyFormat`], [`RedisKey`], the cluster hash-slot scheme |
//! | [`replay`] | names this server consumed or removed, refused if their old values come back |
//! | `breaker` | the circuit breaker ([`CircuitState`]) |
//! | `backend` | connections to one server (plain or TLS), the idle pool, the call deadline; [`AccessDenied`] |
//! | `wire` | one connection (TCP, Unix, TLS): reads under the call's deadline and a byte budget, bounded set-up |
//! | [`target`] | store URLs (standalone, Cluster, Sentinel; `rediss…` for TLS), [`redact_url`] |
//! | [`tls`] | [`TlsOptions`]: TLS to Redis on rust-openssl, every step under the deadline |
//! | `sentinel` | the master Redis Sentinel names, followed through failovers |
//! | `cluster` | Redis Cluster slot routing, a pool and a breaker per master |
//! | `writer` | the optional write-behind thread |
//! | `capped` | the async connection's read budget (feature `tokio`) |
//! | [`asynchronous`] | [`AsyncRedisStore`] for tokio (feature `tokio`): standalone, Sentinel, Cluster |
//! | `async_cluster` | Redis Cluster for the async store: the same routing, a connection and a breaker per master |
//! | `async_conn` | the async stores' connection to one Redis: multiplexed, byte-capped (feature `tokio`) |
//! | [`async_tiered`] | [`AsyncTieredStore`] — a local memory tier in front of an [`AsyncRedisStore`] (feature `tokio`) |
//! | [`stats`] | [`RedisStats`] |
//!
//! # Keys
//!
//! Binary and short: `{prefix}:` (prefix `tls-session` by default), a
//! Redis Cluster hash tag of three bytes derived from the session id
//! (`{…}`), the protocol (`2` or `3`), the context length and the context,
//! then the raw id — 56 bytes for a 5-byte context and a 32-byte id, where
//! the hex names of earlier versions took 89. The protocol is part of the
//! name, so a TLS 1.3 lookup can neither find nor consume a TLS 1.2
//! session. The tag depends on the id alone: a session's names in every
//! context and protocol share a slot, and sessions spread evenly over the
//! shards by their ids, never all of one service on one shard. See
//! [`naming`].
//!
//! # Sealing
//!
//! Values are sealed with AES-256-GCM under a key derived for each value
//! from the [`KeyRing`]'s current key (HKDF-SHA256 with a random 192-bit
//! salt stored in the value): `[seal version][key id][24-byte salt]
//! [ciphertext][16-byte tag]`. Seal version 3 (written under compact names)
//! encrypts the core envelope ([`tls_session_cache::encode`]) *without* its
//! magic and its context and id, which the name already says; version 4
//! the full envelope (layouts the compact form cannot shorten). Versions 1
//! and 2 — the same plaintexts under random 96-bit nonces and the ring key
//! itself, what earlier versions wrote — are still read, and written under
//! previous-format names or with [`RedisStoreBuilder::legacy_seal`]. Per-
//! value keys lift the AES-GCM limit of about 2^32 seals per key that random
//! nonces put on a whole fleet (see `docs/security.md`). The version, the
//! key id and the Redis key are associated data, so a value copied to
//! another key fails to open; the expiry is inside the sealed envelope and
//! re-checked on every read, so raising a key's TTL in Redis cannot
//! lengthen a session's life. After opening, the session's key (its
//! protocol included) must equal the key asked for; a value found under a
//! name this server consumed or removed is refused ([`replay`]). A store
//! without a key ring does not build unless
//! [`RedisStoreBuilder::insecure_plaintext`] is chosen
//! (plaintext values are the full core envelope).
//!
//! What a session costs Redis (7.0, jemalloc, 100 000 sessions of 131 B
//! DER): 357 bytes of `used_memory`, against 453 with the hex names and
//! full envelopes of earlier versions; the breakdown is in
//! `docs/performance.md`.
//!
//! # Upgrading a fleet from the previous key format
//!
//! Servers before this version wrote `{prefix}:{hex(context)}:{{hex(id)}}`
//! (no protocol) with seal version 1. While
//! [`read_previous_format`](RedisStoreBuilder::read_previous_format) is on
//! (the default), a TLS 1.2 `get` that finds nothing under the compact name
//! looks under the previous one (in the same `MGET` on a single Redis; a
//! second `GET` on a cluster) and accepts only a TLS 1.2 session there;
//! `remove` of a TLS 1.2 session deletes both names. TLS 1.3 lookups never
//! look there — a `take` (`GETDEL`) of a name without a protocol could
//! consume a TLS 1.2 session — so a TLS 1.3 ticket issued by an older
//! server resumes as a full handshake on an upgraded one during the
//! upgrade. Sessions stored by upgraded servers are not found by older
//! ones; a fleet that wants none of those misses upgrades in two steps
//! ([`KeyFormat::Previous`] first, then the default). **Turn the fallback
//! off once every server runs this version and one session lifetime has
//! passed**; [`RedisStats::fallback_hits`] shows when it stops finding
//! anything.
//!
//! # Latency and failure
//!
//! Every connection has connect, read and write timeouts (50 ms each by
//! default), and every call a deadline: the largest of the three, from its
//! start, shared by everything the call does (connecting, loading a
//! cluster's slot map, the command, a redirect). After 5 consecutive
//! failures the circuit opens for 1 s (doubling per failed probe, up to
//! 30 s): calls fail at once with `StoreError::Unavailable`, which the
//! binding treats as a miss. In a Redis Cluster each master has its own
//! pool and breaker, so a dead or frozen master's sessions become instant
//! misses while the other shards are served as before.
//!
//! Whatever Redis answers, the budget holds: it covers name resolution,
//! connecting, TLS, `AUTH` and every read and write (a Redis that drips
//! bytes costs one budget, counted as a timeout), and a reply larger than a
//! session can be (`max_session_size` plus 512 bytes, twice for an `MGET`)
//! is refused before it is read whole, its connection dropped
//! ([`RedisStats::oversize_replies`]). See `docs/security.md`.
//!
//! Measured in this crate's tests: a killed Redis costs a lookup about
//! 1 ms (connection refused), then microseconds while the circuit is
//! open; a frozen single Redis, or a frozen cluster master, costs one
//! timeout per call until its breaker opens.
//!
//! The async store ([`AsyncRedisStore`], feature `tokio`) gives the same
//! guarantees with one `tokio::time` deadline per call (connect + read +
//! write timeouts, everything included) and, on a Cluster, the same slot
//! routing with one multiplexed connection and one breaker per master: in
//! `tests/async_cluster.rs` (300 ms timeouts) a frozen master cost 3 calls
//! of 0.90 s, then none, while the other masters answered every lookup.
//!
//! # TLS, credentials, Sentinel
//!
//! * `rediss://…` (and `rediss+cluster://…`, `rediss+sentinel://…`): TLS
//!   1.2+ on rust-openssl, the server's certificate verified against
//!   [`TlsOptions::ca_file`] or the system roots and the URL's host (or
//!   [`TlsOptions::server_name`]), which SNI carries; an optional client
//!   certificate. There is no silent insecure mode: redis-rs's `#insecure`
//!   fragment is refused, and [`TlsOptions::danger_accept_invalid_certificates`]
//!   logs a warning. TLS settings with a non-TLS URL do not build. Not
//!   redis-rs's own TLS: its blocking connection runs the TLS handshake
//!   without a timeout (see [`tls`]).
//! * `redis://USER:PASSWORD@HOST:PORT/DB`, or
//!   [`RedisStoreBuilder::username`] / [`RedisStoreBuilder::password`]. A
//!   password never appears in `Debug` output or errors ([`redact_url`]); a
//!   refused password or a missing ACL permission is a
//!   `StoreError::Backend(`[`AccessDenied`]`)`, counted in
//!   [`RedisStats::auth_errors`], logged at most once per 10 s, and counts
//!   towards the circuit breaker like an unreachable Redis.
//! * `redis+sentinel://S1:P1,S2:P2/MASTER-NAME[/DB]`: the master's address
//!   is asked of the sentinels (within the call's budget), asked again soon
//!   after the master fails or answers `READONLY`, and every 5 s anyway;
//!   while the circuit is open, a sentinel is still asked (at most every
//!   250 ms) and a new master resets the circuit. Measured in the tests
//!   (`down-after-milliseconds` 1000): the blocking store stores sessions
//!   again 1.3–2.5 s after the master is killed, most of it Sentinel's own
//!   detection and promotion.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use tls_session_cache_redis::{KeyRing, RedisStore};
//!
//! let store = RedisStore::builder("redis://127.0.0.1:6379")
//!     .seal_keys(KeyRing::from_file("/etc/tls/session-seal.keys")?)
//!     .timeouts(Duration::from_millis(50))
//!     .build()?;
//! // hand `store` to the OpenSSL binding as any SessionStore
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "tokio")]
mod async_cluster;
#[cfg(feature = "tokio")]
mod async_conn;
#[cfg(feature = "tokio")]
pub mod async_tiered;
#[cfg(feature = "tokio")]
pub mod asynchronous;
mod backend;
mod breaker;
#[cfg(feature = "tokio")]
mod capped;
mod cluster;
mod deadline;
#[doc(hidden)]
pub mod fuzzing;
pub mod keyring;
pub mod naming;
mod ratelimit;
pub mod replay;
mod seal;
mod sentinel;
pub mod stats;
pub mod store;
pub mod target;
pub mod tiered;
pub mod tls;
mod value;
mod wire;
mod writer;

#[cfg(feature = "tokio")]
pub use async_tiered::AsyncTieredStore;
#[cfg(feature = "tokio")]
pub use asynchronous::AsyncRedisStore;
pub use backend::AccessDenied;
pub use breaker::CircuitState;
pub use keyring::{BadKeyLine, KEY_LEN, KeyRing, KeyRingError};
pub use naming::{KeyFormat, RedisKey};
pub use stats::{RedisStats, local_hits_metric};
pub use store::{BuildError, RedisStore, RedisStoreBuilder};
pub use target::redact_url;
pub use tiered::TieredStore;
pub use tls::{TlsError, TlsOptions};
