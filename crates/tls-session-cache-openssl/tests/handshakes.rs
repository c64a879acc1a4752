//! Real handshakes over loopback TCP: a rust-openssl server with the cache
//! installed, a rust-openssl client offering the sessions it was given.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Client, TestServer, identity, server_builder, server_with};
use openssl::ssl::{SniError, SslVerifyMode, SslVersion};
use tls_session_cache::{
    ManualClock, MemoryStore, Protocol, SessionKey, SessionStore, StoreError, StoreStats,
    StoredSession,
};
use tls_session_cache_openssl::SessionCache;

const TLS12: SslVersion = SslVersion::TLS1_2;
const TLS13: SslVersion = SslVersion::TLS1_3;

#[test]
fn tls12_session_id_resumes() {
    let cache = SessionCache::builder().context(b"t12").build().unwrap();
    let server = server_with(&cache);
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
        assert!(server.accepted().resumed, "server did not resume");
    }
    let stats = cache.stats();
    assert_eq!((stats.full, stats.resumed), (1, 2), "{stats:?}");
    assert_eq!(
        (stats.stored, stats.hits, stats.misses),
        (1, 2, 0),
        "{stats:?}"
    );
    assert_eq!(stats.store.entries, 1, "{stats:?}");
}

#[test]
fn tls13_stateful_ticket_resumes() {
    let cache = SessionCache::builder().context(b"t13").build().unwrap();
    let server = server_with(&cache);
    let client = Client::new(TLS13);

    let first = client.connect(server.addr, None);
    assert!(!first.resumed);
    assert_eq!(server.accepted().version, "TLSv1.3");
    // OpenSSL's default: two tickets after a full handshake.
    assert_eq!(first.sessions.len(), 2);
    assert_eq!(cache.stats().stored, 2);

    let second = client.connect(server.addr, Some(&first.sessions[0]));
    assert!(second.resumed);
    let seen = server.accepted();
    assert!(seen.resumed);
    assert_eq!(seen.version, "TLSv1.3");
    // One ticket after a resumption.
    assert_eq!(second.sessions.len(), 1);

    let stats = cache.stats();
    assert_eq!((stats.full, stats.resumed), (1, 1), "{stats:?}");
    assert_eq!(
        (stats.stored, stats.hits, stats.skipped),
        (3, 1, 0),
        "{stats:?}"
    );
    // The resumed ticket was taken: two live tickets remain.
    assert_eq!(stats.store.entries, 2, "{stats:?}");
}

#[test]
fn tls13_ticket_is_single_use() {
    let cache = SessionCache::builder().build().unwrap();
    let server = server_with(&cache);
    let client = Client::new(TLS13);

    let first = server.full_handshake(&client);
    // An OpenSSL client does not offer a TLS 1.3 session object again once
    // it resumed with it (seen with OpenSSL 3.0), so the replay offers a
    // copy of the ticket as it was received, as `s_client -sess_in` does.
    let ticket = common::copy(&first.sessions[0]);
    assert!(
        client
            .connect(server.addr, Some(&first.sessions[0]))
            .resumed
    );
    assert!(server.accepted().resumed);
    let replay = client.connect(server.addr, Some(&ticket));
    assert!(!replay.resumed, "a TLS 1.3 ticket resumed twice");
    assert!(!server.accepted().resumed);
    // The other ticket of the first handshake is still good.
    assert!(
        client
            .connect(server.addr, Some(&first.sessions[1]))
            .resumed
    );
    server.accepted();
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (2, 1), "{stats:?}");
}

#[test]
fn tls13_single_use_can_be_turned_off() {
    let cache = SessionCache::builder()
        .single_use_tls13(false)
        .build()
        .unwrap();
    let server = server_with(&cache);
    let client = Client::new(TLS13);
    let first = server.full_handshake(&client);
    for _ in 0..2 {
        let copy = common::copy(&first.sessions[0]);
        assert!(client.connect(server.addr, Some(&copy)).resumed);
        server.accepted();
    }
}

#[test]
fn stateless_tickets_bypass_the_cache() {
    let cache = SessionCache::builder()
        .stateless_tickets(true)
        .build()
        .unwrap();
    let server = server_with(&cache);
    let client = Client::new(TLS13);
    let first = server.full_handshake(&client);
    assert!(
        client
            .connect(server.addr, Some(&first.sessions[0]))
            .resumed
    );
    server.accepted();
    let stats = cache.stats();
    // Resumed by the ticket itself: no lookup, nothing stored.
    assert_eq!((stats.lookups, stats.stored), (0, 0), "{stats:?}");
    assert!(stats.skipped >= 2, "{stats:?}");
    assert_eq!(stats.resumed, 1, "{stats:?}");
}

#[test]
fn num_tickets_is_configurable() {
    let cache = SessionCache::builder().num_tickets(3).build().unwrap();
    let server = server_with(&cache);
    let first = server.full_handshake(&Client::new(TLS13));
    assert_eq!(first.sessions.len(), 3);
    assert_eq!(cache.stats().stored, 3);
}

#[test]
fn contexts_sharing_a_store_do_not_resume_each_other() {
    let store = Arc::new(MemoryStore::default());
    let cache_a = SessionCache::builder()
        .store(Arc::clone(&store))
        .context(b"service-a")
        .build()
        .unwrap();
    let cache_b = SessionCache::builder()
        .store(Arc::clone(&store))
        .context(b"service-b")
        .build()
        .unwrap();
    let a = server_with(&cache_a);
    let b = server_with(&cache_b);
    for version in [TLS12, TLS13] {
        let client = Client::new(version);
        let session = a.full_handshake(&client).last_session();
        assert!(
            !client.connect(b.addr, Some(&session)).resumed,
            "{version:?}"
        );
        assert!(!b.accepted().resumed);
        // The session is good where it was made (and B did not consume it).
        assert!(
            client.connect(a.addr, Some(&session)).resumed,
            "{version:?}"
        );
        assert!(a.accepted().resumed);
    }
    let stats_b = cache_b.stats();
    assert_eq!((stats_b.lookups, stats_b.hits), (2, 0), "{stats_b:?}");
    assert_eq!(cache_a.stats().hits, 2);
}

#[test]
fn expired_sessions_are_not_resumed() {
    let clock = ManualClock::new(1_000_000);
    let store = MemoryStore::builder().clock(clock.clone()).build();
    let cache = SessionCache::builder()
        .store(store)
        .clock(clock.clone())
        .lifetime(Duration::from_secs(60))
        .build()
        .unwrap();
    let server = server_with(&cache);
    let c12 = Client::new(TLS12);
    let c13 = Client::new(TLS13);
    let s12 = server.full_handshake(&c12).last_session();
    let s13 = server.full_handshake(&c13).sessions;

    clock.advance(Duration::from_secs(59));
    assert!(c12.connect(server.addr, Some(&s12)).resumed);
    server.accepted();
    assert!(c13.connect(server.addr, Some(&s13[0])).resumed);
    server.accepted();

    clock.advance(Duration::from_secs(1));
    assert!(!c12.connect(server.addr, Some(&s12)).resumed);
    server.accepted();
    assert!(!c13.connect(server.addr, Some(&s13[1])).resumed);
    server.accepted();
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (2, 2), "{stats:?}");
    assert!(stats.store.expirations >= 2, "{stats:?}");
}

#[test]
fn oversize_session_is_refused_and_counted() {
    // Below every real session's stored form: the master secret alone is
    // 48 bytes plus its header. (64 was not: a TLS 1.2 session stores in
    // exactly 64 bytes with OpenSSL 1.1.1, which has no key-exchange group
    // element; found by `cargo xtask openssl-matrix`.)
    let cache = SessionCache::builder()
        .max_session_size(40)
        .build()
        .unwrap();
    let server = server_with(&cache);
    for version in [TLS12, TLS13] {
        let client = Client::new(version);
        let first = server.full_handshake(&client);
        let again = client.connect(server.addr, Some(&first.last_session()));
        assert!(!again.resumed, "{version:?}");
        assert!(!server.accepted().resumed);
    }
    let stats = cache.stats();
    assert_eq!(stats.stored, 0, "{stats:?}");
    // TLS 1.2: one per handshake; TLS 1.3: one per ticket.
    assert!(stats.oversize >= 2 + 2, "{stats:?}");
    assert_eq!(stats.full, 4, "{stats:?}");
}

#[test]
fn corrupt_bytes_are_a_counted_miss_and_removed() {
    let store = Arc::new(MemoryStore::default());
    let cache = SessionCache::builder()
        .store(Arc::clone(&store))
        .context(b"corrupt")
        .build()
        .unwrap();
    let server = server_with(&cache);
    let client = Client::new(TLS12);
    let session = server.full_handshake(&client).last_session();
    // TLS 1.2: the client's session id is the server's.
    let key = SessionKey::from_slices(tls_session_cache::Protocol::Tls12, b"corrupt", session.id())
        .unwrap();
    assert!(store.get(&key).unwrap().is_some());
    let now = store.clock().now();
    let garbage = StoredSession::new(
        vec![0x30, 0x03, 0xde, 0xad],
        now,
        now + 300,
        Protocol::Tls12,
    );
    store.put(&key, &garbage).unwrap();

    let again = client.connect(server.addr, Some(&session));
    assert!(!again.resumed);
    server.accepted();
    assert_eq!(cache.stats().corrupt, 1);
    assert!(
        store.get(&key).unwrap().is_none(),
        "corrupt entry not removed"
    );

    // A valid session stored under another session's key is refused too.
    let a = server.full_handshake(&client).last_session();
    let b = server.full_handshake(&client).last_session();
    let key_a =
        SessionKey::from_slices(tls_session_cache::Protocol::Tls12, b"corrupt", a.id()).unwrap();
    let key_b =
        SessionKey::from_slices(tls_session_cache::Protocol::Tls12, b"corrupt", b.id()).unwrap();
    let stored_b = store.get(&key_b).unwrap().unwrap();
    store.put(&key_a, &stored_b).unwrap();
    assert!(!client.connect(server.addr, Some(&a)).resumed);
    assert!(!server.accepted().resumed);
    let stats = cache.stats();
    assert_eq!(stats.mismatched, 1, "{stats:?}");
    assert_eq!(stats.hits, 0, "{stats:?}");
}

/// A store that panics in every operation while `armed`.
struct PanickingStore {
    inner: MemoryStore,
    armed: AtomicBool,
}

impl PanickingStore {
    fn check(&self, op: &str) {
        if self.armed.load(Ordering::SeqCst) {
            panic!("test store panics in {op}");
        }
    }
}

impl SessionStore for PanickingStore {
    fn put(&self, key: &SessionKey, session: &StoredSession) -> Result<(), StoreError> {
        self.check("put");
        self.inner.put(key, session)
    }
    fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        self.check("get");
        self.inner.get(key)
    }
    fn take(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        self.check("take");
        self.inner.take(key)
    }
    fn remove(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.check("remove");
        self.inner.remove(key)
    }
    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}

#[test]
fn a_panicking_store_is_a_counted_miss() {
    let store = Arc::new(PanickingStore {
        inner: MemoryStore::default(),
        armed: AtomicBool::new(false),
    });
    let cache = SessionCache::builder()
        .store(Arc::clone(&store))
        .build()
        .unwrap();
    let server = server_with(&cache);
    for version in [TLS12, TLS13] {
        let client = Client::new(version);
        // Stored while the store behaves, looked up while it panics.
        store.armed.store(false, Ordering::SeqCst);
        let session = server.full_handshake(&client).last_session();
        store.armed.store(true, Ordering::SeqCst);
        let again = client.connect(server.addr, Some(&session));
        assert!(!again.resumed, "{version:?}");
        assert!(!server.accepted().resumed);
    }
    let stats = cache.stats();
    // Each armed connection: the lookup panics, then put of the new session(s).
    assert!(stats.panics >= 4, "{stats:?}");
    assert_eq!((stats.hits, stats.misses), (0, 2), "{stats:?}");
    // The server is still serving.
    store.armed.store(false, Ordering::SeqCst);
    let client = Client::new(TLS12);
    let s = server.full_handshake(&client).last_session();
    assert!(client.connect(server.addr, Some(&s)).resumed);
    server.accepted();
}

#[test]
fn sni_switch_to_a_context_without_the_cache_keeps_resuming() {
    let cache = SessionCache::builder().context(b"sni").build().unwrap();
    let other = server_builder(&identity("other.localhost")).build();
    let switched = Arc::new(AtomicUsize::new(0));
    let mut b = server_builder(&identity("localhost"));
    let seen = Arc::clone(&switched);
    b.set_servername_callback(move |ssl, _| {
        ssl.set_ssl_context(&other)
            .map_err(|_| SniError::ALERT_FATAL)?;
        seen.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    cache.install(&mut b).unwrap();
    let server = TestServer::start(b.build());
    for version in [TLS12, TLS13] {
        let client = Client::new(version);
        let first = server.full_handshake(&client);
        let again = client.connect(server.addr, Some(&first.last_session()));
        assert!(again.resumed, "{version:?}");
        assert!(server.accepted().resumed);
    }
    assert_eq!(switched.load(Ordering::SeqCst), 4);
    let stats = cache.stats();
    assert_eq!(
        (stats.full, stats.resumed, stats.hits),
        (2, 2, 2),
        "{stats:?}"
    );
}

#[test]
fn client_certificate_survives_resumption() {
    let cache = SessionCache::builder().context(b"mtls").build().unwrap();
    let mut b = server_builder(&identity("localhost"));
    b.set_verify_callback(
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        |_, _| true, // self-signed test client
    );
    cache.install(&mut b).unwrap();
    let server = TestServer::start(b.build());
    let me = identity("client.test");
    let subject = me.cert.subject_name().to_der().unwrap();
    for version in [TLS12, TLS13] {
        let client = Client::with_identity(version, Some(&me));
        let first = client.connect(server.addr, None);
        assert_eq!(server.accepted().peer_subject.as_ref(), Some(&subject));
        let again = client.connect(server.addr, Some(&first.last_session()));
        assert!(again.resumed, "{version:?}");
        let seen = server.accepted();
        assert!(seen.resumed);
        assert_eq!(seen.peer_subject.as_ref(), Some(&subject), "{version:?}");
    }
}

#[test]
fn tls13_resumption_chain_cannot_outlive_max_lifetime() {
    let t0 = 2_000_000;
    let clock = ManualClock::new(t0);
    let store = MemoryStore::builder().clock(clock.clone()).build();
    let cache = SessionCache::builder()
        .store(store)
        .clock(clock.clone())
        .lifetime(Duration::from_secs(100))
        .max_lifetime(Duration::from_secs(250))
        .build()
        .unwrap();
    let server = server_with(&cache);
    let client = Client::new(TLS13);
    let mut ticket = server.full_handshake(&client).last_session();
    // Each resumption is within 100 s of the ticket it uses, so each would
    // be fine by `lifetime` alone.
    for t in [60, 150, 240] {
        clock.set(t0 + t);
        let next = client.connect(server.addr, Some(&ticket));
        assert!(next.resumed, "at t0+{t}");
        assert!(server.accepted().resumed);
        ticket = next.last_session();
    }
    // Issued at t0+240 (lifetime says t0+340), but the peer was
    // authenticated at t0: the chain ends at t0+250.
    clock.set(t0 + 251);
    let late = client.connect(server.addr, Some(&ticket));
    assert!(!late.resumed, "a resumption chain outlived max_lifetime");
    assert!(!server.accepted().resumed);
    let stats = cache.stats();
    assert_eq!((stats.resumed, stats.full), (3, 2), "{stats:?}");
}

static DONE_EVENTS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn count_done(
    _: *const openssl_sys::SSL,
    where_: std::ffi::c_int,
    _: std::ffi::c_int,
) {
    if where_ & 0x20 != 0 {
        DONE_EVENTS.fetch_add(1, Ordering::SeqCst);
    }
}

unsafe extern "C" {
    fn SSL_CTX_set_info_callback(
        ctx: *mut openssl_sys::SSL_CTX,
        cb: Option<unsafe extern "C" fn(*const openssl_sys::SSL, std::ffi::c_int, std::ffi::c_int)>,
    );
}

#[test]
fn install_chains_an_existing_info_callback_and_counts_once() {
    let cache = SessionCache::builder().build().unwrap();
    let mut b = server_builder(&identity("localhost"));
    // SAFETY: a plain function pointer set on a live SSL_CTX.
    unsafe { SSL_CTX_set_info_callback(b.as_ptr(), Some(count_done)) };
    cache.install(&mut b).unwrap();
    let server = TestServer::start(b.build());
    for version in [TLS12, TLS13] {
        let client = Client::new(version);
        let first = server.full_handshake(&client);
        assert!(
            client
                .connect(server.addr, Some(&first.last_session()))
                .resumed
        );
        server.accepted();
    }
    let stats = cache.stats();
    assert_eq!((stats.full, stats.resumed), (2, 2), "{stats:?}");
    // The application's callback still sees every "handshake done" event,
    // and OpenSSL 3.0 reports one per handshake.
    assert_eq!(DONE_EVENTS.load(Ordering::SeqCst), 4);
}

/// Sessions are stored compact (issue 16): no session id, no context, no
/// times in the stored bytes, which are much shorter than the DER; they
/// resume (TLS 1.2 by id, TLS 1.3 by ticket), and a session stored as
/// plain DER — the format before — still resumes.
#[test]
fn sessions_are_stored_compact_and_plain_der_still_resumes() {
    use tls_session_cache_openssl::compact::COMPACT_V2;
    for version in [TLS12, TLS13] {
        let store = Arc::new(MemoryStore::default());
        let cache = SessionCache::builder()
            .context(b"compact-ctx")
            .store(Arc::clone(&store))
            .decoded_sessions(0)
            .build()
            .unwrap();
        let server = server_with(&cache);
        let client = Client::new(version);
        let first = client.connect(server.addr, None);
        server.accepted();
        let session = first.last_session();
        let protocol = if version == TLS12 {
            Protocol::Tls12
        } else {
            Protocol::Tls13
        };
        let key = stored_key(&store, protocol, &session);
        let stored = store
            .get(&key)
            .unwrap()
            .unwrap_or_else(|| panic!("{version:?} not stored: {:?}", cache.stats()));
        assert_eq!(stored.der[0], COMPACT_V2, "{version:?}");
        assert!(!stored.der.windows(32).any(|w| w == key.id.as_bytes()));
        assert!(!stored.der.windows(11).any(|w| w == b"compact-ctx"));
        let decoded = tls_session_cache_openssl::decode_stored(&key, &stored).unwrap();
        assert_eq!(decoded.id(), key.id.as_bytes());
        let full = decoded.to_der().unwrap();
        assert!(
            stored.der.len() + 32 + 11 + 10 < full.len(),
            "{} vs {}",
            stored.der.len(),
            full.len()
        );
        // Resumes from the compact form.
        let again = client.connect(server.addr, Some(&session));
        assert!(again.resumed, "{version:?}: {:?}", cache.stats());
        assert!(server.accepted().resumed);
        // The previous format: plain DER under the same key.
        let plain_session = if version == TLS12 {
            session.clone()
        } else {
            again.last_session()
        };
        let key = stored_key(&store, protocol, &plain_session);
        let stored = store.get(&key).unwrap().expect("stored");
        let der = tls_session_cache_openssl::decode_stored(&key, &stored)
            .unwrap()
            .to_der()
            .unwrap();
        store
            .put(
                &key,
                &StoredSession {
                    der: der.into(),
                    ..stored
                },
            )
            .unwrap();
        assert_eq!(store.get(&key).unwrap().unwrap().der[0], 0x30);
        let plain = client.connect(server.addr, Some(&plain_session));
        assert!(plain.resumed, "{version:?} plain DER: {:?}", cache.stats());
        assert!(server.accepted().resumed);
        assert_eq!(cache.stats().corrupt, 0);
    }
}

/// The store key of a client's session: its id (TLS 1.2), or the ticket
/// inside its DER that the store holds (TLS 1.3).
fn stored_key(
    store: &MemoryStore,
    protocol: Protocol,
    session: &openssl::ssl::SslSessionRef,
) -> SessionKey {
    if protocol == Protocol::Tls12 {
        return SessionKey::from_slices(protocol, b"compact-ctx", session.id()).unwrap();
    }
    let der = session.to_der().unwrap();
    der.windows(32)
        .filter_map(|w| SessionKey::from_slices(protocol, b"compact-ctx", w).ok())
        .find(|k| store.get(k).unwrap().is_some())
        .expect("the ticket is in the client session's DER")
}
