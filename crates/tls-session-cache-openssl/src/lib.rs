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
//! // … serve; call `ssl_stream.shutdown()` before closing each connection …
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
//! | `decoded` | recently stored sessions kept decoded (no `d2i` on a local hit) |
//! | `exdata` | where the cache hangs off `SSL_CTX` and `SSL` |
//! | [`parked`] | sessions fetched before OpenSSL asks (async servers) |
//! | `ratelimit` | at most one per-handshake warning per second per kind |
//! | [`stats`] | [`CacheStats`] |
//! | [`error`] | [`Error`] |
//! | [`selfsigned`] | [`self_signed_localhost`] for tests and trials |
//!
//! Servers must call `shutdown()` on each connection before closing it:
//! OpenSSL removes the session of a connection freed without the server's
//! `close_notify` (and so calls the remove callback).
//!
//! [rust-openssl]: https://docs.rs/openssl
#![warn(missing_docs)]

pub mod cache;
mod callbacks;
mod decoded;
pub mod error;
mod exdata;
mod ffi;
pub mod parked;
mod ratelimit;
pub mod selfsigned;
pub mod stats;
pub mod unwind;

pub use cache::{SessionCache, SessionCacheBuilder};
pub use error::Error;
pub use selfsigned::{self_signed, self_signed_localhost};
pub use stats::CacheStats;
pub use tls_session_cache;
