//! Real handshakes over loopback through the async path: the client-hello
//! callback pauses, `accept` awaits the store, the get callback answers
//! from the parked session.

mod common;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use common::{AsyncServer, Client, redis};
use openssl::ssl::{SslSession, SslVersion};
use tls_session_cache::{MemoryStore, SessionKey, StoreStats, StoredSession};
use tls_session_cache_openssl::SessionCache;
use tls_session_cache_redis::{AsyncRedisStore, KeyRing, RedisStore};
use tls_session_cache_tokio::{AsyncSessionCache, AsyncSessionStore, StoreFuture};

const TLS12: SslVersion = SslVersion::TLS1_2;
const TLS13: SslVersion = SslVersion::TLS1_3;

fn memory_server(context: &'static [u8]) -> AsyncServer {
    AsyncServer::start(move || {
        AsyncSessionCache::builder(MemoryStore::with_capacity_bytes(1 << 20))
            .session_cache(SessionCache::builder().context(context))
    })
}

fn redis_store(url: &str) -> AsyncRedisStore {
    RedisStore::builder(url)
        .seal_keys(KeyRing::new([0x42; 32]))
        .timeouts(Duration::from_secs(2))
        .build_async()
        .unwrap()
}

fn redis_server(url: String, context: &'static [u8]) -> AsyncServer {
    AsyncServer::start(move || {
        AsyncSessionCache::builder(redis_store(&url))
            .session_cache(SessionCache::builder().context(context))
    })
}

/// TLS 1.2: the session id is looked up (get) through the pause, twice.
fn tls12_resumes(server: &AsyncServer) {
    let client = Client::new(TLS12);
    let first = client.connect(server.addr, None);
    assert!(!first.resumed);
    assert_eq!(first.response, "full\n");
    let seen = server.accepted();
    assert!(!seen.resumed);
    assert_eq!(seen.version, "TLSv1.2");
    let session = first.last_session();
    for _ in 0..2 {
        let again = client.connect(server.addr, Some(&session));
        assert!(again.resumed, "client did not resume");
        assert_eq!(again.response, "resumed\n");
        assert!(server.accepted().resumed, "server did not resume");
    }
    let stats = server.cache.stats();
    assert_eq!((stats.full, stats.resumed), (1, 2), "{stats:?}");
    assert_eq!(
        (stats.stored, stats.hits, stats.misses),
        (1, 2, 0),
        "{stats:?}"
    );
    let a = server.cache.async_stats();
    // Only the two resumption attempts paused the handshake.
    assert_eq!((a.retries, a.lookups, a.found), (2, 2, 2), "{a:?}");
    assert_eq!(
        (a.queued, a.pending_writes, a.dropped_writes),
        (1, 0, 0),
        "{a:?}"
    );
}

/// TLS 1.3: a stateful ticket resumes once (take), then never again.
fn tls13_resumes_once(server: &AsyncServer) {
    let client = Client::new(TLS13);
    let first = client.connect(server.addr, None);
    assert!(!first.resumed);
    assert_eq!(server.accepted().version, "TLSv1.3");
    assert_eq!(first.sessions.len(), 2, "OpenSSL sends two tickets");
    // An OpenSSL client does not offer a TLS 1.3 session object again once
    // it resumed with it, so the replay offers a copy made before (as
    // `s_client -sess_in` would).
    let ticket = first.sessions[0].clone();
    let copy = SslSession::from_der(&ticket.to_der().unwrap()).unwrap();

    let second = client.connect(server.addr, Some(&ticket));
    assert!(second.resumed, "first use of the ticket must resume");
    assert!(server.accepted().resumed);

    let replay = client.connect(server.addr, Some(&copy));
    assert!(!replay.resumed, "a TLS 1.3 ticket must resume only once");
    assert!(!server.accepted().resumed);

    // The other ticket of the first connection is still good.
    let other = client.connect(server.addr, Some(&first.sessions[1]));
    assert!(other.resumed);
    assert!(server.accepted().resumed);

    let stats = server.cache.stats();
    assert_eq!((stats.resumed, stats.full), (2, 2), "{stats:?}");
    assert_eq!((stats.hits, stats.misses), (2, 1), "{stats:?}");
    let a = server.cache.async_stats();
    assert_eq!((a.retries, a.lookups, a.found), (3, 3, 2), "{a:?}");
}

#[test]
fn tls12_resumes_through_the_async_path_memory() {
    tls12_resumes(&memory_server(b"async-t12"));
}

#[test]
fn tls13_ticket_resumes_once_through_the_async_path_memory() {
    let server = memory_server(b"async-t13");
    tls13_resumes_once(&server);
    // 6 tickets issued (2 per full handshake, 1 per resumption); take
    // removed the 2 that resumed.
    assert_eq!(server.cache.stats().store.entries, 4);
}

#[test]
fn tls12_resumes_through_the_async_path_redis() {
    let redis = redis();
    let server = redis_server(redis.url(), b"async-r12");
    tls12_resumes(&server);
    let s = server.cache.stats().store;
    assert_eq!((s.inserts, s.hits, s.errors), (1, 2, 0), "{s:?}");
}

#[test]
fn tls13_ticket_resumes_once_through_the_async_path_redis() {
    let redis = redis();
    let server = redis_server(redis.url(), b"async-r13");
    tls13_resumes_once(&server);
    let s = server.cache.stats().store;
    // 2 tickets per full handshake (2 of them), 1 per resumption (2).
    assert_eq!(
        (s.inserts, s.hits, s.misses, s.errors),
        (6, 2, 1, 0),
        "{s:?}"
    );
    // GETDEL left exactly the unused tickets in Redis.
    let mut con = redis.connection().unwrap();
    // Key names are binary (the id is raw), so not `String`s.
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert_eq!(keys.len(), 4, "{keys:?}");
}

/// A store that, on each lookup, says so, sleeps 200 ms, then waits for the
/// test to open a gate.
struct SlowStore {
    inner: MemoryStore,
    started: std::sync::Mutex<mpsc::Sender<()>>,
    gate: Arc<tokio::sync::Semaphore>,
}

impl SlowStore {
    fn slow<'a, T: Send + 'a>(
        &'a self,
        then: impl FnOnce() -> Result<T, tls_session_cache::StoreError> + Send + 'a,
    ) -> StoreFuture<'a, T> {
        Box::pin(async move {
            let _ = self.started.lock().unwrap().send(());
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.gate.acquire().await.unwrap().forget();
            then()
        })
    }
}

impl AsyncSessionStore for SlowStore {
    fn put<'a>(&'a self, key: &'a SessionKey, session: &'a StoredSession) -> StoreFuture<'a, ()> {
        AsyncSessionStore::put(&self.inner, key, session)
    }
    fn get<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<StoredSession>> {
        self.slow(move || tls_session_cache::SessionStore::get(&self.inner, key))
    }
    fn take<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<StoredSession>> {
        self.slow(move || tls_session_cache::SessionStore::take(&self.inner, key))
    }
    fn remove<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, bool> {
        AsyncSessionStore::remove(&self.inner, key)
    }
    fn stats(&self) -> StoreStats {
        tls_session_cache::SessionStore::stats(&self.inner)
    }
}

#[test]
fn a_slow_lookup_does_not_stall_other_handshakes_on_a_current_thread_runtime() {
    let (started_tx, started) = mpsc::channel();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let store_gate = Arc::clone(&gate);
    let server = AsyncServer::start(move || {
        AsyncSessionCache::builder(SlowStore {
            inner: MemoryStore::with_capacity_bytes(1 << 20),
            started: std::sync::Mutex::new(started_tx),
            gate: store_gate,
        })
    });
    let addr = server.addr;

    // A full handshake stores a session (no lookup: nothing offered).
    let first = Client::new(TLS12).connect(addr, None);
    assert!(!server.accepted().resumed);
    let session = first.last_session();

    // B offers it: the lookup starts and cannot finish before the gate opens.
    let b = std::thread::spawn(move || Client::new(TLS12).connect(addr, Some(&session)).resumed);
    started
        .recv_timeout(Duration::from_secs(30))
        .expect("the slow lookup did not start");

    // Meanwhile C completes a whole handshake on the same (only) thread of
    // the server's runtime.
    let c = Client::new(TLS12).connect(addr, None);
    assert!(!c.resumed);
    assert_eq!(c.response, "full\n");
    let seen_c = server.accepted();
    assert!(!seen_c.resumed);
    assert!(
        !b.is_finished(),
        "B cannot finish while its lookup waits for the gate"
    );

    // Open the gate: B's lookup ends and B resumes.
    gate.add_permits(1);
    assert!(b.join().unwrap(), "B must resume once its lookup is done");
    assert!(server.accepted().resumed);
    let a = server.cache.async_stats();
    assert_eq!((a.retries, a.lookups, a.found), (1, 1, 1), "{a:?}");
}

#[test]
fn flush_waits_for_queued_writes_and_counts_them() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cache = AsyncSessionCache::builder(MemoryStore::with_capacity_bytes(1 << 20))
            .write_queue(1)
            .build()
            .unwrap();
        // Nothing queued: flush returns at once.
        cache.flush().await;
        assert_eq!(cache.async_stats().queued, 0);
        assert!(matches!(
            AsyncSessionCache::builder(MemoryStore::default())
                .write_queue(0)
                .build(),
            Err(tls_session_cache_tokio::Error::ZeroQueue)
        ));
    });
    // Outside a runtime the writer task has nowhere to run.
    assert!(matches!(
        AsyncSessionCache::builder(MemoryStore::default()).build(),
        Err(tls_session_cache_tokio::Error::NoRuntime)
    ));
}

/// A raw TLS 1.3 ClientHello (x25519, TLS_AES_128_GCM_SHA256) whose last
/// extension is `pre_shared_key` with the body `psk`.
fn client_hello_with_psk(psk: &[u8]) -> Vec<u8> {
    fn ext(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut e = kind.to_be_bytes().to_vec();
        e.extend((body.len() as u16).to_be_bytes());
        e.extend(body);
        e
    }
    let mut key_share = vec![0x00, 0x24, 0x00, 0x1d, 0x00, 0x20];
    key_share.extend([9u8; 32]);
    let mut exts = Vec::new();
    exts.extend(ext(43, &[2, 3, 4])); // supported_versions: TLS 1.3
    exts.extend(ext(10, &[0, 2, 0, 0x1d])); // supported_groups: x25519
    exts.extend(ext(51, &key_share));
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, ed25519
    exts.extend(ext(13, &[0, 6, 4, 3, 8, 4, 8, 7]));
    exts.extend(ext(45, &[1, 1])); // psk_key_exchange_modes: psk_dhe_ke
    exts.extend(ext(41, psk)); // pre_shared_key, last as required
    let mut body = vec![3, 3];
    body.extend([7u8; 32]); // random
    body.push(32);
    body.extend([5u8; 32]); // legacy session id
    body.extend([0, 2, 0x13, 0x01, 1, 0]);
    body.extend((exts.len() as u16).to_be_bytes());
    body.extend(exts);
    let mut hs = vec![1, 0];
    hs.extend((body.len() as u16).to_be_bytes());
    hs.extend(body);
    let mut record = vec![0x16, 3, 1];
    record.extend((hs.len() as u16).to_be_bytes());
    record.extend(hs);
    record
}

/// Sends a raw ClientHello; returns the content type of the server's first record.
fn first_record_type(addr: std::net::SocketAddr, hello: &[u8]) -> u8 {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    tcp.write_all(hello).unwrap();
    let mut header = [0u8; 5];
    tcp.read_exact(&mut header).unwrap();
    header[0]
}

#[test]
fn a_malformed_pre_shared_key_extension_is_never_looked_up() {
    let server = memory_server(b"async-bad-psk");

    // Control: a well-formed PSK with an unknown 32-byte identity is
    // looked up (a miss) and the handshake goes on in full (ServerHello).
    let mut good = vec![0, 38, 0, 32];
    good.extend([0xEE; 32]);
    good.extend([0, 0, 0, 0]);
    good.extend([0, 33, 32]);
    good.extend([0xBB; 32]);
    let first = first_record_type(server.addr, &client_hello_with_psk(&good));
    let outcome = server.outcome();
    assert_eq!(first, 0x16, "{outcome:?} {:?}", server.cache.async_stats());
    assert!(outcome.is_err(), "the raw client never finishes");
    let a = server.cache.async_stats();
    assert_eq!(
        (a.retries, a.lookups, a.found, a.malformed),
        (1, 1, 0, 0),
        "{a:?}"
    );

    // The identities list claims 48 bytes and holds 1: the callback plans
    // nothing and lets the handshake go on without a lookup; OpenSSL then
    // refuses the extension itself with an alert. No panic anywhere.
    let bad = [0, 48, 0];
    assert_eq!(
        first_record_type(server.addr, &client_hello_with_psk(&bad)),
        0x15
    );
    assert!(server.outcome().is_err());
    let a = server.cache.async_stats();
    assert_eq!(
        (a.retries, a.lookups, a.malformed, a.panics),
        (1, 1, 1, 0),
        "{a:?}"
    );
    let s = server.cache.stats();
    assert_eq!((s.store.hits, s.store.misses, s.panics), (0, 1, 0), "{s:?}");
}
