//! Hostile clients against the async server (the client-hello retry and
//! async lookups), over real TCP: hand-built ClientHellos with session ids
//! of 0, 33 and 255 bytes, hundreds of PSK identities, a ClientHello cut
//! into one-byte records, and garbage after a completed handshake. The
//! server answers (ServerHello) or alerts, never crashes (it serves a
//! normal client afterwards), and the store is untouched: the sessions
//! stored before are all there, byte for byte, nothing added or removed —
//! except, for the garbage, the session of the connection that sent it,
//! which its fatal alert ends.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{AsyncServer, Client};
use openssl::ssl::{SslSession, SslVersion};
use tls_session_cache::{MemoryStore, Protocol, SessionId, SessionKey, StoreStats, StoredSession};
use tls_session_cache_openssl::MAX_LOOKUPS_PER_HANDSHAKE;
use tls_session_cache_testkit::hello::{ALERT, Answer, ClientHello, answer, exchange, records};
use tls_session_cache_tokio::hello::MAX_PSK_LOOKUPS;
use tls_session_cache_tokio::{AsyncSessionCache, AsyncSessionStore, StoreFuture};

const WAIT: Duration = Duration::from_secs(10);

/// A MemoryStore that remembers the keys put into it.
struct Recorded {
    inner: MemoryStore,
    keys: Mutex<Vec<SessionKey>>,
}

impl AsyncSessionStore for Recorded {
    fn put<'a>(&'a self, key: &'a SessionKey, session: &'a StoredSession) -> StoreFuture<'a, ()> {
        self.keys.lock().unwrap().push(*key);
        AsyncSessionStore::put(&self.inner, key, session)
    }
    fn get<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<StoredSession>> {
        AsyncSessionStore::get(&self.inner, key)
    }
    fn take<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<StoredSession>> {
        AsyncSessionStore::take(&self.inner, key)
    }
    fn remove<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, bool> {
        AsyncSessionStore::remove(&self.inner, key)
    }
    fn stats(&self) -> StoreStats {
        AsyncSessionStore::stats(&self.inner)
    }
}

struct Fixture {
    store: Arc<Recorded>,
    server: AsyncServer,
    keys: Vec<SessionKey>,
    tls12: SslSession,
}

/// What the store holds and has done, hits and misses aside.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    entries: u64,
    inserts: u64,
    removals: u64,
    bytes: u64,
    contents: BTreeMap<Vec<u8>, Vec<u8>>,
}

fn fixture() -> Fixture {
    let store = Arc::new(Recorded {
        inner: MemoryStore::with_capacity_bytes(1 << 20),
        keys: Mutex::new(Vec::new()),
    });
    let shared = Arc::clone(&store);
    let server = AsyncServer::start(move || AsyncSessionCache::builder(shared));
    let c12 = Client::new(SslVersion::TLS1_2).connect(server.addr, None);
    server.accepted();
    let tls12 = c12.last_session();
    let c13 = Client::new(SslVersion::TLS1_3).connect(server.addr, None);
    server.accepted();
    assert_eq!(c13.sessions.len(), 2);
    let keys = store.keys.lock().unwrap().clone();
    let f = Fixture {
        store,
        server,
        keys,
        tls12,
    };
    assert_eq!(
        f.keys.len(),
        3,
        "one TLS 1.2 session and two tickets stored"
    );
    assert_eq!(f.keys[0].protocol, Protocol::Tls12);
    assert_eq!(f.snapshot().contents.len(), 3);
    f
}

impl Fixture {
    fn snapshot(&self) -> Snapshot {
        let s = AsyncSessionStore::stats(&*self.store);
        let contents = self
            .keys
            .iter()
            .filter_map(|k| {
                let found = tls_session_cache::SessionStore::get(&self.store.inner, k).unwrap()?;
                Some((k.id.as_bytes().to_vec(), found.der.to_vec()))
            })
            .collect();
        Snapshot {
            entries: s.entries,
            inserts: s.inserts,
            removals: s.removals,
            bytes: s.bytes,
            contents,
        }
    }

    fn store_lookups(&self) -> u64 {
        let s = AsyncSessionStore::stats(&*self.store);
        s.hits + s.misses
    }

    fn hostile(&self, wire: &[u8]) -> Answer {
        let got = exchange(self.server.addr, wire, WAIT).unwrap();
        let outcome = self.server.outcome();
        assert!(
            outcome.is_err(),
            "an unfinished handshake succeeded: {outcome:?}"
        );
        answer(&got)
    }

    fn still_serves(&self) {
        let c = Client::new(SslVersion::TLS1_2).connect(self.server.addr, Some(&self.tls12));
        assert!(self.server.accepted().resumed);
        assert!(c.resumed, "the stored TLS 1.2 session no longer resumes");
    }
}

#[test]
fn session_ids_of_0_33_and_255_bytes() {
    let f = fixture();
    let before = f.snapshot();
    let looked_up = f.store_lookups();
    let a = f.hostile(&records(&ClientHello::tls12(&[]).encode(), usize::MAX));
    assert!(
        matches!(&a, Answer::ServerHello { session_id } if session_id.len() == 32),
        "{a:?}"
    );
    for len in [33, 255] {
        let a = f.hostile(&records(
            &ClientHello::tls12(&vec![0xa5; len]).encode(),
            usize::MAX,
        ));
        assert!(
            matches!(a, Answer::Alert(2, 50 | 47)),
            "{len}-byte session id: {a:?}"
        );
    }
    assert_eq!(
        f.store_lookups(),
        looked_up,
        "an invalid id reached the store"
    );
    assert_eq!(f.snapshot(), before);
    f.still_serves();
}

#[test]
fn hundreds_of_psk_identities() {
    let f = fixture();
    let before = f.snapshot();
    let (looked_up, planned) = (f.store_lookups(), f.server.cache.async_stats().lookups);
    let identities: Vec<Vec<u8>> = (0..300u32)
        .map(|i| {
            let mut id = vec![0x77; 32];
            id[..4].copy_from_slice(&i.to_be_bytes());
            id
        })
        .collect();
    let a = f.hostile(&records(
        &ClientHello::tls13(identities).encode(),
        16 * 1024,
    ));
    assert!(
        matches!(&a, Answer::ServerHello { session_id } if session_id == &vec![0x33; 32])
            || matches!(a, Answer::Alert(2, _)),
        "{a:?}"
    );
    let looked_up = f.store_lookups() - looked_up;
    let planned = f.server.cache.async_stats().lookups - planned;
    eprintln!("300 PSK identities: {planned} async lookups, {looked_up} store calls");
    assert_eq!(planned, MAX_PSK_LOOKUPS as u64);
    assert!(looked_up <= MAX_PSK_LOOKUPS.max(MAX_LOOKUPS_PER_HANDSHAKE) as u64);
    assert_eq!(f.snapshot(), before);
    f.still_serves();
}

#[test]
fn a_client_hello_in_one_byte_records() {
    let f = fixture();
    let before = f.snapshot();
    let a = f.hostile(&records(&ClientHello::tls12(&[0x5c; 32]).encode(), 1));
    match &a {
        Answer::ServerHello { session_id } => assert_ne!(session_id, &vec![0x5c; 32]),
        other => panic!("no ServerHello: {other:?}"),
    }
    // The stored session's id, one byte per record: reassembled, looked up
    // through the pause, resumed.
    let a = f.hostile(&records(&ClientHello::tls12(f.tls12.id()).encode(), 1));
    assert_eq!(
        a,
        Answer::ServerHello {
            session_id: f.tls12.id().to_vec()
        }
    );
    let after = f.snapshot();
    assert_eq!(after.contents, before.contents);
    assert_eq!(
        (after.inserts, after.entries),
        (before.inserts, before.entries)
    );
    f.still_serves();
}

#[test]
fn garbage_after_the_handshake() {
    let f = fixture();
    let before = f.snapshot();
    let client = Client::new(SslVersion::TLS1_2);
    let mut tls = client.handshake(f.server.addr, None);
    let own = client.received();
    assert_eq!(own.len(), 1);
    let own_key = SessionKey::new(
        Protocol::Tls12,
        f.server.cache.session_cache().context(),
        SessionId::new(own[0].id()).unwrap(),
    );
    // The server stores it (through its write queue) as its side of the
    // handshake ends, which may be just after the client's: wait for it
    // (bounded).
    let deadline = std::time::Instant::now() + WAIT;
    while tls_session_cache::SessionStore::get(&f.store.inner, &own_key)
        .unwrap()
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the connection's session was never stored"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The server may alert and close after the first bytes: later writes
    // can meet a reset, which a hostile client does not mind.
    let _ = tls.get_mut().write_all(
        b"GET / HTTP/1.1
Host: x

",
    );
    let _ = tls.get_mut().write_all(&[0xff; 300]);
    let _ = tls.get_mut().shutdown(std::net::Shutdown::Write);
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(tls.get_mut(), &mut rest);
    assert!(f.server.outcome().is_err(), "garbage was read as a line");
    assert!(rest.is_empty() || rest[0] == ALERT, "{rest:?}");
    let after = f.snapshot();
    assert_eq!(after.contents, before.contents);
    // Its fatal alert removes the garbage connection's own session, through
    // the write queue: wait for it (bounded).
    let deadline = std::time::Instant::now() + WAIT;
    while tls_session_cache::SessionStore::get(&f.store.inner, &own_key)
        .unwrap()
        .is_some()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the garbage connection's session outlived its fatal alert"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    f.still_serves();
}
