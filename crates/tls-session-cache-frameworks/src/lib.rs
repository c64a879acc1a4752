//! What the framework examples share: the example servers' command line
//! and certificate ([`common`], the file the blocking and the async example
//! servers use), choosing a store from `--store`, the answers of `/`,
//! `/stats` and `/metrics`, and ALPN.
//!
//! The examples themselves (`src/bin/`) show the lines a server needs:
//!
//! | binary | framework | lookups | the cache lines |
//! |---|---|---|---|
//! | `actix-example` | actix-web 4, `bind_openssl` | blocking, in actix's workers | `SessionCache::builder()…build()?`, `cache.install(&mut acceptor)?` |
//! | `axum-example` | axum 0.8 on axum-server 0.9 | non-blocking | `AsyncSessionCache::builder(store)…build()?`, `cache.install(&mut acceptor)?`, `SessionCacheAcceptor::new(cache, ctx)` |
//! | `hyper-example` | hyper 1 + hyper-util (HTTP/1.1, HTTP/2) | non-blocking | `AsyncSessionCache::builder(store)…build()?`, `cache.install(&mut acceptor)?`, `cache.accept(ssl, tcp).await?` |
//!
//! Each accepts the example servers' flags (`--listen`, `--cert`/`--key`,
//! `--store`, `--seal-key-file`, `--redis-timeout-ms`, `--lifetime`,
//! `--context`, `--tickets`, `--threads`), prints `listening on IP:PORT` on
//! stdout when ready, answers `GET /` with the connection's
//! `{"resumed":…,"protocol":…,"session_id":…}`, `GET /stats` with the
//! statistics as JSON (the example servers' members) and `GET /metrics`
//! in the Prometheus text format, and exits 0 on SIGTERM / SIGINT.
#![warn(missing_docs)]

#[allow(missing_docs)]
#[path = "../../tls-session-cache-openssl/examples/common/mod.rs"]
pub mod common;

pub mod report;
pub mod stores;
pub mod tls;

pub use common::{Args, Logger};
