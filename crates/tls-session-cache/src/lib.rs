//! The pure core of an external server-side TLS session cache.
//!
//! A TLS server that resumes sessions needs somewhere to keep them between
//! connections. OpenSSL hands sessions to an application through
//! `SSL_CTX_sess_set_new_cb` / `_get_cb` / `_remove_cb`; this crate holds
//! everything about that cache that does not depend on a TLS library:
//!
//! | module | holds |
//! |---|---|
//! | [`key`] | [`SessionId`], [`SessionIdContext`], [`SessionKey`] — validated store keys |
//! | [`session`] | [`StoredSession`] — opaque serialised session + times + protocol |
//! | [`store`] | the [`SessionStore`] trait and [`StoreError`] |
//! | [`policy`] | [`CachePolicy`] — lifetimes, size limit, TLS 1.3 single use |
//! | [`stats`] | [`StoreStats`] — counters named like OpenSSL's `SSL_CTX_sess_*` |
//! | [`metrics`] | [`Metric`], [`MetricKind`] — snapshots described for an exposition format |
//! | [`clock`] | [`Clock`], [`SystemClock`], [`ManualClock`] |
//! | [`envelope`] | [`encode`] / [`decode`] — a versioned binary form for remote stores |
//! | [`memory`] | [`MemoryStore`] — the embedded, byte-bounded, CLOCK-evicting default |
//!
//! No OpenSSL, no `unsafe`. The OpenSSL binding lives in
//! `tls-session-cache-openssl`, the Redis store in `tls-session-cache-redis`.
//!
//! # Example
//!
//! ```
//! use tls_session_cache::{MemoryStore, Protocol, SessionKey, SessionStore, StoredSession};
//!
//! let store = MemoryStore::with_capacity_bytes(1 << 20);
//! let key = SessionKey::from_slices(Protocol::Tls13, b"my-service", &[7u8; 32])?;
//! let now = store.clock().now();
//! let session = StoredSession::new(b"DER bytes".to_vec(), now, now + 300, Protocol::Tls13);
//! store.put(&key, &session)?;
//! // TLS 1.3 tickets are single use: `take` removes atomically.
//! assert_eq!(store.take(&key)?, Some(session));
//! assert_eq!(store.take(&key)?, None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clock;
pub mod envelope;
pub mod key;
pub mod memory;
pub mod metrics;
pub mod policy;
pub mod session;
pub mod stats;
pub mod store;

pub use clock::{Clock, ManualClock, SystemClock, UnixTime};
pub use envelope::{EnvelopeError, decode, decode_with_limit, encode};
pub use key::{KeyError, SessionId, SessionIdContext, SessionKey};
pub use memory::{MemoryStore, MemoryStoreBuilder};
pub use metrics::{Metric, MetricKind};
pub use policy::CachePolicy;
pub use session::{Protocol, StoredSession};
pub use stats::StoreStats;
pub use store::{SessionStore, StoreError};
