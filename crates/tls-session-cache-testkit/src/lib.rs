//! Test support for `tls-session-cache`: real `redis-server` processes on
//! free loopback ports, started by the test and stopped when dropped.
//!
//! | item | holds |
//! |---|---|
//! | [`RedisServer`] | one standalone `redis-server` (start, stop, restart, pause) |
//! | [`RedisCluster`] | a Redis Cluster of N masters made with `redis-cli --cluster create` |
//! | [`RedisSentinel`] | a master, a replica and Sentinels watching them; kill the master to fail over |
//! | [`TestPki`] | a CA, server and client certificates (and a foreign CA) made at run time |
//! | [`FakeRedis`] | a scripted RESP server playing a hostile or broken Redis ([`Reply`]: wrong types, huge lengths, truncated, silent, closing, dripping) |
//! | [`hello`] | hand-built ClientHellos (invalid session-id lengths, many PSK identities) and their records |
//! | [`Error`] | why a server could not be started; a missing `redis-server` says how to install it |
//!
//! Readiness is a signal, never a sleep: a server counts as started when it
//! answers `PING` with `PONG`, a cluster when every node's `CLUSTER INFO`
//! says `cluster_state:ok`. Both are polled with short, bounded waits.
//!
//! ```no_run
//! use tls_session_cache_testkit::RedisServer;
//! let redis = RedisServer::start()?;
//! println!("redis at {}", redis.url());
//! # Ok::<(), tls_session_cache_testkit::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cluster;
mod error;
mod fake;
pub mod hello;
mod pki;
mod port;
mod sentinel;
mod server;

pub use cluster::RedisCluster;
pub use error::Error;
pub use fake::{FakeRedis, Reply, bulk};
pub use pki::{CertFiles, TestPki};
pub use sentinel::RedisSentinel;
pub use server::RedisServer;
