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
//! | [`naming`] | Redis key names and the cluster hash-slot scheme |
//! | `breaker` | the circuit breaker ([`CircuitState`]) |
//! | `backend` | connections to one server, the idle pool, the call deadline |
//! | `cluster` | Redis Cluster slot routing, a pool and a breaker per master |
//! | `writer` | the optional write-behind thread |
//! | [`asynchronous`] | [`AsyncRedisStore`] for tokio (feature `tokio`) |
//! | [`stats`] | [`RedisStats`] |
//!
//! # Keys
//!
//! `{prefix}:{hex(context)}:{12|13}:{{hex(id)}}` (the protocol is part of the key), prefix `tls-session` by default.
//! The braces are a Redis Cluster hash tag on the session id: sessions
//! spread evenly over the shards by their random ids, never all of one
//! service on one shard. See [`naming`].
//!
//! # Sealing
//!
//! Values are the core envelope ([`tls_session_cache::encode`]) sealed with
//! AES-256-GCM under the [`KeyRing`]'s current key:
//! `[version 1][key id][12-byte nonce][ciphertext][16-byte tag]`. The
//! version, the key id and the Redis key are associated data, so a value
//! copied to another key fails to open; the expiry is inside the sealed
//! envelope and re-checked on every read, so raising a key's TTL in Redis
//! cannot lengthen a session's life. After opening, the envelope's session
//! key must equal the key asked for. A store without a key ring does not
//! build unless [`RedisStoreBuilder::insecure_plaintext`] is chosen.
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
//! Measured in this crate's tests: a killed Redis costs a lookup about
//! 1 ms (connection refused), then microseconds while the circuit is
//! open; a frozen single Redis, or a frozen cluster master, costs one
//! timeout per call until its breaker opens.
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
pub mod asynchronous;
mod backend;
mod breaker;
mod cluster;
pub mod keyring;
pub mod naming;
mod seal;
pub mod stats;
pub mod store;
pub mod tiered;
mod writer;

#[cfg(feature = "tokio")]
pub use asynchronous::AsyncRedisStore;
pub use breaker::CircuitState;
pub use keyring::{BadKeyLine, KEY_LEN, KeyRing, KeyRingError};
pub use stats::{RedisStats, local_hits_metric};
pub use store::{BuildError, RedisStore, RedisStoreBuilder};
pub use tiered::TieredStore;
