//! Support for the end-to-end tests in `tests/tests/`: the **real** example
//! server (`crates/tls-session-cache-openssl/examples/server.rs`) run as a
//! process, a rust-openssl TLS client that drives it, and seal key files.
//!
//! | module | holds |
//! |---|---|
//! | [`binary`] | [`server_binary`]: builds the example server once per test run |
//! | [`process`] | [`ServerProcess`]: one running server, stopped on drop |
//! | [`client`] | [`connect`], [`Outcome`], [`Version`], [`stats`]: TLS handshakes and `/stats` |
//! | [`keys`] | [`KeyFile`]: a seal key file in a temporary directory |
//!
//! Readiness is a signal: a server is ready when it prints
//! `listening on IP:PORT`; a Redis is ready when it answers `PING`
//! (`tls-session-cache-testkit`). Nothing here sleeps to synchronise.
#![warn(missing_docs)]

pub mod binary;
pub mod client;
pub mod keys;
pub mod process;

pub use binary::{async_server_binary, server_binary};
pub use client::{Outcome, Version, connect, counter, stats};
pub use keys::KeyFile;
pub use process::ServerProcess;
pub use tls_session_cache_testkit::{RedisCluster, RedisServer};

/// Starts a `redis-server` for a test, or fails the test with the testkit's
/// message (which says how to install Redis when it is missing).
pub fn start_redis() -> RedisServer {
    match RedisServer::start() {
        Ok(r) => r,
        Err(e) => panic!("cannot start redis-server: {e}"),
    }
}

/// `redis://127.0.0.1:PORT`, the form the example server's `--store` takes.
pub fn store_url(redis: &RedisServer) -> String {
    format!("redis://{}", redis.addr())
}
