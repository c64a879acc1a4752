//! Untrusted keys and values, failing and panicking stores: every one a
//! counted miss (or a refused put), never a panic, never a store call with
//! a key that cannot be one.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::server::StoresServerSessions;
use tls_session_cache::{
    MemoryStore, SessionKey, SessionStore, StoreError, StoreStats, StoredSession,
};
use tls_session_cache_rustls::{SessionCache, SessionStorage};

/// A TLS 1.3 session value as rustls 0.23 encodes it (no server name,
/// version 0x0304, a cipher suite, then anything).
fn tls13_value() -> Vec<u8> {
    vec![0, 0x03, 0x04, 0x13, 0x01, 7, 7, 7]
}

fn tls12_value() -> Vec<u8> {
    vec![0, 0x03, 0x03, 0xc0, 0x2b, 7, 7, 7]
}

#[test]
fn keys_that_cannot_be_keys_are_counted_misses() {
    let store = Arc::new(MemoryStore::default());
    let cache = SessionCache::builder()
        .store(Arc::clone(&store))
        .build()
        .unwrap();
    let storage = SessionStorage::new(cache.clone());
    for len in [0usize, 33, 255, 65535] {
        let key = vec![0xA5; len];
        assert_eq!(storage.get(&key), None, "get, {len} bytes");
        assert_eq!(storage.take(&key), None, "take, {len} bytes");
        assert!(!storage.put(key.clone(), tls13_value()), "put, {len} bytes");
    }
    let stats = cache.stats();
    assert_eq!(stats.lookups, 8, "{stats:?}");
    assert_eq!(stats.misses, 8, "{stats:?}");
    assert_eq!(stats.invalid_id, 8, "{stats:?}");
    assert_eq!(stats.skipped, 4, "{stats:?}");
    assert_eq!(stats.hits + stats.stored + stats.errors + stats.panics, 0);
    // The store never saw them.
    let s = store.stats();
    assert_eq!((s.hits, s.misses, s.inserts), (0, 0, 0), "{s:?}");
}

#[test]
fn one_to_thirty_two_byte_keys_work_and_protocols_never_meet() {
    let cache = SessionCache::builder().build().unwrap();
    let storage = SessionStorage::new(cache.clone());
    for len in [1usize, 16, 32] {
        let key = vec![len as u8; len];
        assert!(storage.put(key.clone(), tls13_value()));
        // A TLS 1.2 lookup of the same bytes neither finds nor consumes it.
        assert_eq!(storage.get(&key), None);
        assert_eq!(storage.take(&key), Some(tls13_value()));
        assert_eq!(storage.take(&key), None, "single use");

        assert!(storage.put(key.clone(), tls12_value()));
        assert_eq!(storage.take(&key), None);
        assert_eq!(storage.get(&key), Some(tls12_value()));
        assert_eq!(
            storage.get(&key),
            Some(tls12_value()),
            "TLS 1.2 is reusable"
        );
    }
    let stats = cache.stats();
    assert_eq!(
        (stats.stored, stats.hits, stats.invalid_id),
        (6, 9, 0),
        "{stats:?}"
    );
}

#[test]
fn values_that_are_not_rustls_sessions_or_too_large_are_not_stored() {
    let cache = SessionCache::builder()
        .max_session_size(64)
        .build()
        .unwrap();
    let storage = SessionStorage::new(cache.clone());
    assert!(!storage.put(vec![1; 32], vec![0x30, 0x82, 0x01, 0x00]));
    assert!(!storage.put(vec![1; 32], Vec::new()));
    let mut big = tls13_value();
    big.resize(65, 0);
    assert!(!storage.put(vec![1; 32], big));
    assert_eq!(storage.take(&[1; 32]), None);
    let stats = cache.stats();
    assert_eq!(
        (stats.skipped, stats.oversize, stats.stored),
        (2, 1, 0),
        "{stats:?}"
    );
}

#[test]
fn foreign_bytes_in_the_store_are_a_counted_corrupt_miss() {
    let store = Arc::new(MemoryStore::default());
    let cache = SessionCache::builder()
        .store(Arc::clone(&store))
        .context(b"shared")
        .build()
        .unwrap();
    // What an OpenSSL server with the same context would have written.
    let key =
        SessionKey::from_slices(tls_session_cache::Protocol::Tls12, b"shared", &[9; 32]).unwrap();
    let now = store.clock().now();
    let der = vec![0x30, 0x82, 0x01, 0x00, 0x02, 0x01];
    store
        .put(&key, &StoredSession::new(der, now, now + 300, key.protocol))
        .unwrap();
    let storage = SessionStorage::new(cache.clone());
    assert_eq!(storage.get(&[9; 32]), None);
    let stats = cache.stats();
    assert_eq!(
        (stats.corrupt, stats.misses, stats.hits),
        (1, 1, 0),
        "{stats:?}"
    );
    // Left in place for the server it belongs to.
    assert!(store.get(&key).unwrap().is_some());
}

/// A store that fails every call, or panics in every call.
#[derive(Default)]
struct Broken {
    panic: bool,
    calls: AtomicU64,
}

impl Broken {
    fn fail<T>(&self) -> Result<T, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.panic {
            panic!("store bug");
        }
        Err(StoreError::Unavailable("down for the test".into()))
    }
}

impl SessionStore for Broken {
    fn put(&self, _: &SessionKey, _: &StoredSession) -> Result<(), StoreError> {
        self.fail()
    }
    fn get(&self, _: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        self.fail()
    }
    fn take(&self, _: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        self.fail()
    }
    fn remove(&self, _: &SessionKey) -> Result<bool, StoreError> {
        self.fail()
    }
    fn stats(&self) -> StoreStats {
        if self.panic {
            panic!("store bug");
        }
        StoreStats::default()
    }
}

#[test]
fn a_failing_store_refuses_puts_and_misses_lookups() {
    let store = Arc::new(Broken::default());
    let cache = SessionCache::builder()
        .store(Arc::clone(&store))
        .build()
        .unwrap();
    let storage = SessionStorage::new(cache.clone());
    assert!(!storage.put(vec![1; 32], tls13_value()));
    assert_eq!(storage.take(&[1; 32]), None);
    assert_eq!(storage.get(&[1; 32]), None);
    let stats = cache.stats();
    assert_eq!(
        (stats.errors, stats.misses, stats.stored),
        (3, 2, 0),
        "{stats:?}"
    );
    assert_eq!(store.calls.load(Ordering::SeqCst), 3);
}

#[test]
fn a_panicking_store_is_a_counted_miss_and_handshakes_go_on() {
    let cache = SessionCache::builder()
        .store(Broken {
            panic: true,
            ..Broken::default()
        })
        .build()
        .unwrap();
    // Through real handshakes: full each time, the server thread survives.
    let server = common::TestServer::rustls(&cache);
    for version in common::Version::BOTH {
        let first = common::openssl_connect(server.addr, version, None);
        let again = common::openssl_connect(server.addr, version, Some(&first.session));
        assert!(!first.resumed && !again.resumed, "{version:?}");
    }
    let stats = cache.stats();
    // TLS 1.2: a put, a get of the session id rustls sent although it was
    // not stored, and a put of the second full handshake's session (under
    // the id the client offered); TLS 1.3: two puts per handshake, refused,
    // so rustls sent no ticket and the client had nothing to offer.
    assert_eq!(stats.panics, 7, "{stats:?}");
    assert_eq!(
        (stats.lookups, stats.misses, stats.hits),
        (1, 1, 0),
        "{stats:?}"
    );
    assert_eq!(stats.full, 4, "{stats:?}");
    assert_eq!(
        stats.store,
        StoreStats::default(),
        "stats() panicked: zeros"
    );
}

/// A TLS 1.3 ClientHello (x25519 key share with arbitrary bytes, ECDSA
/// P-256 SHA-256 signatures) offering `identities` as PSKs, each with a
/// 32-byte binder of zeros.
fn client_hello_with_psks(identities: &[Vec<u8>]) -> Vec<u8> {
    fn ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
    let mut exts = Vec::new();
    ext(&mut exts, 43, &[2, 3, 4]); // supported_versions: TLS 1.3
    ext(&mut exts, 10, &[0, 2, 0, 0x1d]); // supported_groups: x25519
    ext(&mut exts, 13, &[0, 2, 4, 3]); // signature_algorithms: ecdsa_secp256r1_sha256
    let mut share = vec![0, 36, 0, 0x1d, 0, 32];
    share.extend_from_slice(&[9; 32]);
    ext(&mut exts, 51, &share); // key_share
    ext(&mut exts, 45, &[1, 1]); // psk_key_exchange_modes: psk_dhe_ke
    let mut ids = Vec::new();
    let mut binders = Vec::new();
    for id in identities {
        ids.extend_from_slice(&(id.len() as u16).to_be_bytes());
        ids.extend_from_slice(id);
        ids.extend_from_slice(&[0; 4]);
        binders.push(32);
        binders.extend_from_slice(&[0; 32]);
    }
    let mut psk = (ids.len() as u16).to_be_bytes().to_vec();
    psk.extend_from_slice(&ids);
    psk.extend_from_slice(&(binders.len() as u16).to_be_bytes());
    psk.extend_from_slice(&binders);
    ext(&mut exts, 41, &psk); // pre_shared_key, last

    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]); // random
    body.push(32);
    body.extend_from_slice(&[8; 32]); // legacy session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]); // TLS_AES_128_GCM_SHA256, null
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut handshake = vec![1, 0];
    handshake.extend_from_slice(&(body.len() as u16).to_be_bytes());
    handshake.extend_from_slice(&body);
    let mut record = vec![22, 3, 1];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[test]
fn hostile_psk_identities_in_a_real_client_hello_are_counted_misses() {
    use std::io::{Read, Write};

    let store = Arc::new(MemoryStore::default());
    let cache = SessionCache::builder()
        .store(Arc::clone(&store))
        .build()
        .unwrap();
    let server = common::TestServer::rustls(&cache);
    // rustls itself refuses a 0-byte identity (a decode error): only
    // identities it passes on reach the cache.
    let identities = [vec![0xEE; 33], vec![0xEF; 255], vec![0xF0; 32]];
    let mut tcp = std::net::TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    tcp.write_all(&client_hello_with_psks(&identities)).unwrap();
    // The server's first answer is a handshake record (its ServerHello): it
    // looked every identity up, resumed none, and went on with a full
    // handshake.
    let mut first = [0u8; 1];
    tcp.read_exact(&mut first).unwrap();
    assert_eq!(first[0], 22, "the server answered with an alert");
    drop(tcp);

    let stats = cache.stats();
    assert_eq!(
        (stats.lookups, stats.misses, stats.hits),
        (3, 3, 0),
        "{stats:?}"
    );
    assert_eq!(stats.invalid_id, 2, "{stats:?}");
    assert_eq!(stats.panics + stats.errors, 0, "{stats:?}");
    // Only the 32-byte identity reached the store.
    assert_eq!(store.stats().misses, 1);

    // A 0-byte identity: rustls answers with an alert before any lookup.
    let mut tcp = std::net::TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    tcp.write_all(&client_hello_with_psks(&[Vec::new()]))
        .unwrap();
    tcp.read_exact(&mut first).unwrap();
    assert_eq!(first[0], 21, "expected an alert record");
    assert_eq!(cache.stats().lookups, 3);
}
