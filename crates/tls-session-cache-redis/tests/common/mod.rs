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
pub fn raw_get(con: &mut redis::Connection, key: &[u8]) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query(con).unwrap()
}

pub fn raw_exists(con: &mut redis::Connection, key: &[u8]) -> bool {
    let n: i64 = redis::cmd("EXISTS").arg(key).query(con).unwrap();
    n == 1
}

/// The seal key bytes of [`builder`]'s ring.
pub const SEAL_KEY: [u8; 32] = [0x42; 32];

/// Seals `envelope` for the Redis key `name` exactly as servers before the
/// compact key names did (seal version 1): `[1][key id][12-byte nonce]
/// [AES-256-GCM ciphertext][16-byte tag]`, associated data `[1, key id]`
/// followed by the name. Written here from the format, not with the
/// crate's code, so that a change to the crate cannot change both sides.
pub fn seal_previous(key: [u8; 32], name: &[u8], envelope: &[u8]) -> Vec<u8> {
    let key_id = KeyRing::new(key).current_key_id();
    let mut nonce = [0u8; 12];
    openssl::rand::rand_bytes(&mut nonce).unwrap();
    let mut aad = vec![1, key_id];
    aad.extend_from_slice(name);
    let mut tag = [0u8; 16];
    let ct = openssl::symm::encrypt_aead(
        openssl::symm::Cipher::aes_256_gcm(),
        &key,
        Some(&nonce),
        &aad,
        envelope,
        &mut tag,
    )
    .unwrap();
    let mut out = vec![1, key_id];
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out.extend_from_slice(&tag);
    out
}

/// Opens a seal-version-1 value the way servers before the compact key
/// names did; `None` if it does not open.
pub fn open_previous(key: [u8; 32], name: &[u8], value: &[u8]) -> Option<Vec<u8>> {
    if value.len() < 30 || value[0] != 1 {
        return None;
    }
    let mut aad = vec![1, value[1]];
    aad.extend_from_slice(name);
    let (ct, tag) = value[14..].split_at(value.len() - 30);
    openssl::symm::decrypt_aead(
        openssl::symm::Cipher::aes_256_gcm(),
        &key,
        Some(&value[2..14]),
        &aad,
        ct,
        tag,
    )
    .ok()
}

/// Stores `session` under its previous-format name the way a server before
/// the compact key names did: `SET {prefix}:{hex ctx}:{{hex id}} sealed PX`.
/// The envelope's protocol flag is the session's.
pub fn put_previous(con: &mut redis::Connection, key: &SessionKey, session: &StoredSession) {
    let name = tls_session_cache_redis::naming::previous_redis_key(
        tls_session_cache_redis::naming::DEFAULT_PREFIX,
        key,
    );
    let envelope = tls_session_cache::encode(key, session);
    let value = seal_previous(SEAL_KEY, &name, &envelope);
    let px = (session.expires.saturating_sub(now())).max(1) * 1000;
    let _: () = redis::cmd("SET")
        .arg(name.as_bytes())
        .arg(value)
        .arg("PX")
        .arg(px)
        .query(con)
        .unwrap();
}
