//! A fleet-wide server-side session cache for [rustls] servers.
//!
//! rustls keeps server sessions in whatever implements its
//! `StoresServerSessions` trait: by default an in-process cache of 256
//! sessions. This crate implements the trait over any
//! [`SessionStore`](tls_session_cache::SessionStore) of `tls-session-cache` —
//! the embedded [`MemoryStore`](tls_session_cache::MemoryStore), or a Redis
//! store (standalone, Cluster, tiered) shared by a fleet — with the
//! guarantees the OpenSSL binding gives:
//!
//! * TLS 1.2 resumes by session id (`get`), TLS 1.3 by stateful tickets
//!   (`take`, the store's atomic take): a ticket resumes once, fleet-wide;
//! * keys are untrusted client bytes of any length: anything that cannot
//!   be a key is a counted miss, never a panic; so is a failing, slow
//!   (bounded by the store's timeouts) or panicking store;
//! * expiry from the cache policy (rustls gives none); the context is the
//!   keys' namespace, so rustls and OpenSSL servers can share one Redis
//!   without ever seeing each other's sessions;
//! * a failed `put` returns `false` (rustls then sends no ticket);
//! * [`CacheStats`] named like the OpenSSL binding's.
//!
//! ```
//! # use std::sync::Arc;
//! # fn demo(certs: Vec<rustls::pki_types::CertificateDer<'static>>,
//! #         key: rustls::pki_types::PrivateKeyDer<'static>) -> Result<(), Box<dyn std::error::Error>> {
//! use tls_session_cache_rustls::SessionCache;
//!
//! let cache = SessionCache::builder()
//!     .context(b"my-service")            // the keys' namespace
//!     // .store(redis_store)             // default: an in-process MemoryStore
//!     .build()?;
//! let mut config = rustls::ServerConfig::builder()
//!     .with_no_client_auth()
//!     .with_single_cert(certs, key)?;
//! cache.install(&mut config); // session storage, ticketer off, 2 TLS 1.3 tickets
//! let config = Arc::new(config);
//! // … per connection, once the handshake is done: cache.handshake_done(&conn);
//! println!("{}", cache.stats().to_json());
//! # let _ = config; Ok(()) }
//! ```
//!
//! | module | holds |
//! |---|---|
//! | [`cache`] | [`SessionCache`], [`SessionCacheBuilder`]: settings, the store operations, statistics |
//! | [`storage`] | everything that names a rustls type: [`SessionStorage`], `install`, `handshake_done` |
//! | [`hello`] | a bounded ClientHello reader: the session id and PSK identities offered |
//! | `prefetch` | `PrefetchAcceptor` (feature `tokio`, default): non-blocking lookups for tokio-rustls |
//! | [`stats`] | [`CacheStats`] |
//! | [`error`] | [`Error`] |
//!
//! The crate depends on rustls without a crypto provider; choose one
//! (ring, aws-lc-rs) in the application.
//!
//! [rustls]: https://docs.rs/rustls/0.23
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
pub mod error;
pub mod hello;
#[cfg(feature = "tokio")]
pub mod prefetch;
pub mod stats;
pub mod storage;

pub use cache::{SessionCache, SessionCacheBuilder};
pub use error::Error;
#[cfg(feature = "tokio")]
pub use prefetch::PrefetchAcceptor;
pub use stats::CacheStats;
pub use storage::{SessionStorage, protocol_of};
