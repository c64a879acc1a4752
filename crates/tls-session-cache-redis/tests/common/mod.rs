//! Helpers shared by the integration tests. Every test runs against a real
//! `redis-server` started by the test kit; a missing `redis-server` fails
//! the test with the install command.
#![allow(dead_code)]

use std::time::Duration;

use tls_session_cache::{Protocol, SessionKey, StoredSession};
use tls_session_cache_redis::{KeyRing, RedisStore, RedisStoreBuilder};
use tls_session_cache_testkit::{RedisCluster, RedisServer};

/// Timeouts generous enough for a loaded 2-core test machine; the latency
/// tests set their own.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(2);

pub fn redis() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("cannot start redis-server: {e}"))
}

pub fn cluster() -> RedisCluster {
    RedisCluster::start(3).unwrap_or_else(|e| panic!("cannot start a Redis Cluster: {e}"))
}

pub fn ring(byte: u8) -> KeyRing {
    KeyRing::new([byte; 32])
}

pub fn builder(url: &str) -> RedisStoreBuilder {
    RedisStore::builder(url)
        .seal_keys(ring(0x42))
        .timeouts(TEST_TIMEOUT)
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    openssl::rand::rand_bytes(&mut v).unwrap();
    v
}

pub fn random_key(context: &[u8]) -> SessionKey {
    SessionKey::from_slices(
        tls_session_cache::Protocol::Tls12,
        context,
        &random_bytes(32),
    )
    .unwrap()
}

/// A random 32-byte TLS 1.3 ticket key (keys are protocol-bound: a TLS 1.3
/// session lives under a TLS 1.3 key).
#[allow(dead_code)]
pub fn random_key13(context: &[u8]) -> SessionKey {
    SessionKey {
        protocol: tls_session_cache::Protocol::Tls13,
        ..random_key(context)
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn session(protocol: Protocol, lifetime: u64) -> StoredSession {
    let t = now();
    StoredSession::new(random_bytes(200), t, t + lifetime, protocol)
}

/// The raw value stored under a Redis key.
pub fn raw_get(con: &mut redis::Connection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query(con).unwrap()
}

pub fn raw_exists(con: &mut redis::Connection, key: &str) -> bool {
    let n: i64 = redis::cmd("EXISTS").arg(key).query(con).unwrap();
    n == 1
}
