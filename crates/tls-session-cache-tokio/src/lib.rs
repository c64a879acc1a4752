//! Non-blocking session lookups for [tokio-openssl] servers.
//!
//! A blocking server looks a session up inside OpenSSL's get-session
//! callback; an async server cannot, because that callback runs on an
//! executor thread and a remote store (Redis) would block it. Vanilla
//! OpenSSL ≥ 1.1.1 has what is needed to do it asynchronously:
//!
//! 1. a client-hello callback reads the session id and the TLS 1.3 PSK
//!    identities of the ClientHello ([`psk`], [`hello::plan`]) and returns
//!    `SSL_CLIENT_HELLO_RETRY`; the handshake returns
//!    `SSL_ERROR_WANT_CLIENT_HELLO_CB` without consuming the ClientHello;
//! 2. [`AsyncSessionCache::accept`] awaits the lookups on an
//!    [`AsyncSessionStore`] (TLS 1.3 tickets with `take`: single use), and
//!    drives the handshake again;
//! 3. the callback parks the answers on the connection
//!    ([`tls_session_cache_openssl::parked`]), and the binding's
//!    get-session callback answers from them without touching the store.
//!
//! New sessions reach the store through a bounded queue and a writer task
//! ([`writer`](crate#new-sessions)): the binding's new-session callback
//! never waits.
//!
//! | module | holds |
//! |---|---|
//! | [`cache`] | [`AsyncSessionCache`], its builder, `accept`, `flush` |
//! | `acceptor` | `SessionCacheAcceptor`: the cache as an axum-server acceptor (feature `axum-server`) |
//! | [`store`] | [`AsyncSessionStore`] and its impls (MemoryStore; `AsyncRedisStore` — standalone, Sentinel, Cluster — and `AsyncTieredStore` with feature `redis`) |
//! | [`hello`] | the client-hello callback and the lookup plan |
//! | [`psk`] | the `pre_shared_key` / `supported_versions` parsers |
//! | `writer` | the new-session queue and its writer task |
//! | [`stats`] | [`AsyncStats`] |
//! | [`error`] | [`Error`], [`AcceptError`] |
//!
//! # New sessions
//!
//! The binding's `new_session_cb` calls a synchronous store. Here that
//! store queues the write (`try_send` on a bounded tokio channel; a full
//! queue drops the session and counts it) and one task writes batches:
//! different keys concurrently, one key's writes one at a time in queue
//! order (a `remove` never overtakes the `put` before it). The price: a
//! session is in the store a moment after its handshake (a lookup in
//! [`AsyncSessionCache::accept`] goes to the store directly and can miss a
//! session still queued — a full handshake, never a second use). [`AsyncSessionCache::flush`] waits for the writes queued so
//! far, for servers (and tests) that want a client's next connection to
//! find its session for sure.
//!
//! # Why a separate crate
//!
//! It keeps tokio and tokio-openssl out of the dependency tree of blocking
//! users, as tokio-openssl itself is an adapter crate over `openssl`. The
//! binding only gained [`parked`](tls_session_cache_openssl::parked), a
//! small, runtime-free hook.
//!
//! [tokio-openssl]: https://docs.rs/tokio-openssl
#![warn(missing_docs)]

#[cfg(feature = "axum-server")]
pub mod acceptor;
pub mod cache;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod hello;
pub mod psk;
pub mod stats;
pub mod store;
mod writer;

pub use cache::{AsyncSessionCache, AsyncSessionCacheBuilder};
pub use error::{AcceptError, Error};
pub use stats::AsyncStats;
pub use store::{AsyncSessionStore, StoreFuture};
pub use tls_session_cache_openssl;
pub use tokio_openssl::SslStream;
