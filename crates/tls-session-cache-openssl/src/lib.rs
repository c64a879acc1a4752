//! An external server-side TLS session cache for [rust-openssl] servers.
//!
//! OpenSSL resumes sessions from its own per-process cache unless it is
//! given callbacks (`SSL_CTX_sess_set_new_cb` / `_get_cb` / `_remove_cb`).
//! This crate installs those callbacks on an `SslContextBuilder` and backs
//! them with any [`SessionStore`](tls_session_cache::SessionStore): the
//! embedded [`MemoryStore`](tls_session_cache::MemoryStore) by default, or
//! a store shared by a fleet.
//!
//! ```no_run
//! # use openssl::ssl::{SslAcceptor, SslMethod};
//! # use tls_session_cache_openssl::SessionCache;
//! # let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())?;
//! let cache = SessionCache::builder().context(b"my-service").build()?;
//! cache.install(&mut acceptor)?; // TLS 1.2 ids and TLS 1.3 tickets now resume from the cache
//! let acceptor = acceptor.build();
//! // … serve: however a connection ends, its session stays resumable …
//! println!("{}", cache.stats().to_json());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What it does, in the words of OpenSSL's manual page:
//!
//! * cache mode `SERVER | NO_INTERNAL`: every lookup reaches the store;
//! * a new session is serialised once and stored under (session-id context,
//!   session id), with an expiry that a chain of TLS 1.3 resumptions cannot
//!   push past `max_lifetime` after the full handshake;
//! * TLS 1.3 resumes through stateful tickets (`SSL_OP_NO_TICKET`), each
//!   looked up with `take`, so a ticket resumes once, fleet-wide;
//! * stored bytes are decoded and checked (id and context) before OpenSSL
//!   sees them; corrupt entries are removed; recently stored sessions are
//!   kept decoded, so a local hit costs no decode (the store still decides
//!   whether the session may resume);
//! * no callback unwinds into C: a panicking store is a counted miss;
//! * it keeps working after an SNI callback moves a connection to another
//!   `SslContext`.
//!
//! | module | holds |
//! |---|---|
//! | [`cache`] | [`SessionCache`], [`SessionCacheBuilder`], `install` |
//! | `callbacks` | the `extern "C"` new / get / remove / info callbacks |
//! | [`compact`] | the stored form: DER without the id, context and times the store already holds; [`decode_stored`] |
//! | `close` | why a session leaves the store; unclean closes keep it |
//! | `restore` | stored bytes to a session: `d2i`, then the id and context checks |
//! | `decoded` | recently stored sessions kept decoded (no `d2i` on a local hit) |
//! | `exdata` | where the cache hangs off `SSL_CTX` and `SSL` |
//! | [`parked`] | sessions fetched before OpenSSL asks (async servers) |
//! | `ratelimit` | at most one per-handshake warning per second per kind |
//! | `state` | the state the callbacks share (store, policy, counters) |
//! | [`stats`] | [`CacheStats`] |
//! | [`prometheus`] | [`CacheStats::to_prometheus`], [`Exposition`](prometheus::Exposition): the `/metrics` text format |
//! | [`error`] | [`Error`] |
//! | [`selfsigned`] | [`self_signed_localhost`] for tests and trials |
//!
//! A session survives a connection that ends without `close_notify` —
//! a client that drops TCP after the handshake, a server or framework that
//! drops the stream without `shutdown()` — as TLS ≥ 1.1 allows and nginx,
//! Apache and HAProxy do; a fatal alert, an explicit removal, expiry and
//! single use still remove it (module `close`;
//! [`SessionCacheBuilder::remove_on_unclean_close`] restores the strict
//! rule).
//!
//! [rust-openssl]: https://docs.rs/openssl
#![warn(missing_docs)]

pub mod cache;
mod callbacks;
mod close;
pub mod compact;
mod decoded;
pub mod error;
mod exdata;
mod ffi;
#[doc(hidden)]
pub mod fuzzing;
mod live;
pub mod parked;
pub mod prometheus;
mod ratelimit;
mod restore;
pub mod selfsigned;
mod state;
pub mod stats;
pub mod unwind;

pub use cache::{SessionCache, SessionCacheBuilder};
pub use callbacks::MAX_LOOKUPS_PER_HANDSHAKE;
pub use compact::{CompactError, decode_stored};
pub use error::Error;
pub use selfsigned::{self_signed, self_signed_localhost};
pub use stats::{CacheStats, RemovedBy};
pub use tls_session_cache;
