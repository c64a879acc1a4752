//! Hostile clients against the blocking binding's server, over real TCP:
//! hand-built ClientHellos with session ids of 0, 33 and 255 bytes (a legal
//! length byte, an invalid length), hundreds of PSK identities, a
//! ClientHello cut into one-byte records, and garbage after a completed
//! handshake. The server answers (ServerHello) or alerts, never crashes
//! (it serves a normal client afterwards), and the store is untouched:
//! the sessions stored before are all there, byte for byte, nothing was
//! added or removed — except, for the garbage, the session of the
//! connection that sent it, which a fatal alert ends (RFC 5246 §7.2.2).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Client, TestServer, server_with};
use openssl::ssl::{SslSession, SslVersion};
use tls_session_cache::{
    MemoryStore, Protocol, SessionId, SessionKey, SessionStore, StoreError, StoreStats,
    StoredSession,
};
use tls_session_cache_openssl::{MAX_LOOKUPS_PER_HANDSHAKE, SessionCache};
use tls_session_cache_testkit::hello::{ALERT, Answer, ClientHello, answer, exchange, records};

const WAIT: Duration = Duration::from_secs(10);

/// A MemoryStore that remembers the keys put into it (a TLS 1.3 client
/// never learns the id its stateful ticket is stored under).
struct Recorded {
    inner: MemoryStore,
    keys: Mutex<Vec<SessionKey>>,
}

impl SessionStore for Recorded {
    fn put(&self, key: &SessionKey, session: &StoredSession) -> Result<(), StoreError> {
        self.keys.lock().unwrap().push(*key);
        self.inner.put(key, session)
    }
    fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        self.inner.get(key)
    }
    fn take(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        self.inner.take(key)
    }
    fn remove(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.inner.remove(key)
    }
    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}

struct Fixture {
    store: Arc<Recorded>,
    cache: SessionCache,
    server: TestServer,
    /// The keys of the sessions stored by two normal clients.
    keys: Vec<SessionKey>,
    tls12: SslSession,
}

/// A server on a MemoryStore holding one TLS 1.2 session and the TLS 1.3
/// tickets of one connection.
fn fixture() -> Fixture {
    let store = Arc::new(Recorded {
        inner: MemoryStore::with_capacity_bytes(1 << 20),
        keys: Mutex::new(Vec::new()),
    });
    let cache = SessionCache::builder()
        .store(Arc::clone(&store))
        .build()
        .unwrap();
    let server = server_with(&cache);
    let tls12 = server
        .full_handshake(&Client::new(SslVersion::TLS1_2))
        .last_session();
    let tickets = server
        .full_handshake(&Client::new(SslVersion::TLS1_3))
        .sessions;
    assert_eq!(tickets.len(), 2);
    let keys = store.keys.lock().unwrap().clone();
    assert_eq!(keys[0], key(Protocol::Tls12, &cache, tls12.id()));
    let f = Fixture {
        store,
        cache,
        server,
        keys,
        tls12,
    };
    assert_eq!(
        f.contents().len(),
        3,
        "one TLS 1.2 session and two tickets stored"
    );
    f
}

fn key(protocol: Protocol, cache: &SessionCache, id: &[u8]) -> SessionKey {
    SessionKey::new(protocol, cache.context(), SessionId::new(id).unwrap())
}

/// What the store holds and has done, hits and misses aside (reading the
/// contents counts hits).
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    entries: u64,
    inserts: u64,
    removals: u64,
    bytes: u64,
    contents: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Fixture {
    fn contents(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.keys
            .iter()
            .filter_map(|k| {
                let s = self.store.get(k).unwrap()?;
                Some((k.id.as_bytes().to_vec(), s.der.to_vec()))
            })
            .collect()
    }

    fn snapshot(&self) -> Snapshot {
        let s = self.store.stats();
        Snapshot {
            entries: s.entries,
            inserts: s.inserts,
            removals: s.removals,
            bytes: s.bytes,
            contents: self.contents(),
        }
    }

    /// Sends `wire`, returns the server's answer; the server's side of the
    /// connection must have failed (the client never finished).
    fn hostile(&self, wire: &[u8]) -> Answer {
        let got = exchange(self.server.addr, wire, WAIT).unwrap();
        let outcome = self.server.outcome();
        assert!(
            outcome.is_err(),
            "an unfinished handshake succeeded: {outcome:?}"
        );
        answer(&got)
    }

    /// The server still serves: a TLS 1.2 client resumes its session.
    fn still_serves(&self) {
        let c = Client::new(SslVersion::TLS1_2).connect(self.server.addr, Some(&self.tls12));
        self.server.accepted();
        assert!(c.resumed, "the stored TLS 1.2 session no longer resumes");
    }
}

/// decode_error (50) or illegal_parameter (47), fatal (2).
fn is_fatal_parse_alert(a: &Answer) -> bool {
    matches!(a, Answer::Alert(2, 50 | 47))
}

#[test]
fn session_ids_of_0_33_and_255_bytes() {
    let f = fixture();
    let before = f.snapshot();
    let lookups = f.cache.stats().lookups;

    // 0 bytes: a valid "no session" ClientHello — a full handshake starts.
    let a = f.hostile(&records(&ClientHello::tls12(&[]).encode(), usize::MAX));
    assert!(
        matches!(&a, Answer::ServerHello { session_id } if session_id.len() == 32),
        "{a:?}"
    );
    // 33 and 255: the length byte is legal, the length is not (≤ 32).
    for len in [33, 255] {
        let a = f.hostile(&records(
            &ClientHello::tls12(&vec![0xa5; len]).encode(),
            usize::MAX,
        ));
        assert!(is_fatal_parse_alert(&a), "{len}-byte session id: {a:?}");
    }
    assert_eq!(
        f.cache.stats().lookups,
        lookups,
        "an invalid id reached the store"
    );
    assert_eq!(f.snapshot(), before);
    f.still_serves();
}

/// Store calls made so far (hits and misses of gets and takes).
fn store_lookups(f: &Fixture) -> u64 {
    let s = f.store.stats();
    s.hits + s.misses
}

#[test]
fn hundreds_of_psk_identities() {
    let f = fixture();
    let before = f.snapshot();
    let (asked, looked_up) = (f.cache.stats().lookups, store_lookups(&f));
    let identities: Vec<Vec<u8>> = (0..300u32)
        .map(|i| {
            let mut id = vec![0x77; 32];
            id[..4].copy_from_slice(&i.to_be_bytes());
            id
        })
        .collect();
    let hello = ClientHello::tls13(identities).encode();
    assert!(hello.len() > 16 * 1024, "spans more than one record");
    let a = f.hostile(&records(&hello, 16 * 1024));
    // None is known: a full TLS 1.3 handshake (ServerHello echoing the
    // legacy id), or an alert; never a crash.
    assert!(
        matches!(&a, Answer::ServerHello { session_id } if session_id == &vec![0x33; 32])
            || matches!(a, Answer::Alert(2, _)),
        "{a:?}"
    );
    // OpenSSL asked for every identity; the store saw a bounded number.
    let asked = f.cache.stats().lookups - asked;
    let looked_up = store_lookups(&f) - looked_up;
    eprintln!("300 PSK identities: OpenSSL asked {asked} times, {looked_up} store lookups");
    assert_eq!(asked, 300);
    assert_eq!(looked_up, MAX_LOOKUPS_PER_HANDSHAKE as u64);
    assert_eq!(f.snapshot(), before);
    f.still_serves();
}

#[test]
fn a_client_hello_in_one_byte_records() {
    let f = fixture();
    let before = f.snapshot();
    // An unknown 32-byte id: a full handshake, after reassembly.
    let hello = ClientHello::tls12(&[0x5c; 32]).encode();
    let a = f.hostile(&records(&hello, 1));
    match &a {
        Answer::ServerHello { session_id } => assert_ne!(session_id, &vec![0x5c; 32]),
        other => panic!("no ServerHello: {other:?}"),
    }
    // The stored session's id, one byte per record: reassembled, looked
    // up (a get, which leaves it in place) and resumed — the ServerHello
    // carries the same id.
    let hello = ClientHello::tls12(f.tls12.id()).encode();
    let a = f.hostile(&records(&hello, 1));
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
    let own_key = key(Protocol::Tls12, &f.cache, own[0].id());
    // The server stores it as its side of the handshake ends, which may be
    // just after the client's: wait for it (bounded).
    let deadline = std::time::Instant::now() + WAIT;
    while f.store.get(&own_key).unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the connection's session was never stored"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Not a TLS record: a plain-text request, then random-looking bytes.
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
    // An alert record (encrypted now: its level and description are not
    // readable here), or a close.
    assert!(rest.is_empty() || rest[0] == ALERT, "{rest:?}");
    // Everything stored before is untouched; the garbage connection's own
    // session ended with its fatal alert.
    assert_eq!(f.snapshot().contents, before.contents);
    assert_eq!(f.store.get(&own_key).unwrap(), None);
    f.still_serves();
}
