//! Issue 11: the defects a review found in the binding, each reproduced
//! with real handshakes — a shared `SSL_SESSION` written by two
//! connections, a HelloRetryRequest losing TLS 1.3 resumption, and a
//! TLS 1.3 lookup consuming a TLS 1.2 session.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use common::{Client, copy, greeted, identity, server_builder};
use foreign_types::ForeignTypeRef;
use openssl::ssl::{Ssl, SslContext, SslSession, SslStream, SslVersion};
use tls_session_cache::{
    MemoryStore, Protocol, SessionKey, SessionStore, StoreError, StoreStats, StoredSession,
};
use tls_session_cache_openssl::SessionCache;

const AES128: &str = "TLS_AES_128_GCM_SHA256";
const CHACHA: &str = "TLS_CHACHA20_POLY1305_SHA256";

/// A memory store that records the keys it was given, so a test can find
/// the server-side id of a ticket.
#[derive(Default)]
struct Recording {
    inner: MemoryStore,
    puts: Mutex<Vec<SessionKey>>,
}

impl SessionStore for Recording {
    fn put(&self, key: &SessionKey, session: &StoredSession) -> Result<(), StoreError> {
        self.puts.lock().unwrap().push(*key);
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

fn context(
    cache: &SessionCache,
    configure: impl FnOnce(&mut openssl::ssl::SslContextBuilder),
) -> SslContext {
    let mut b = server_builder(&identity("localhost"));
    configure(&mut b);
    cache.install(&mut b).unwrap();
    b.build()
}

/// Accepts one connection on `listener` while `client` runs on another
/// thread; the server side greets and returns its open stream.
fn accept_one<C: Send>(
    listener: &TcpListener,
    ctx: &SslContext,
    client: impl FnOnce(SocketAddr) -> C + Send,
) -> (SslStream<TcpStream>, C) {
    let addr = listener.local_addr().unwrap();
    std::thread::scope(|scope| {
        let client = scope.spawn(move || client(addr));
        let (tcp, _) = listener.accept().unwrap();
        let mut tls = Ssl::new(ctx).unwrap().accept(tcp).unwrap();
        tls.write_all(b"hello\n").unwrap();
        (tls, client.join().unwrap())
    })
}

/// Client: handshake (offering `offer`), read the greeting and with it the
/// TLS 1.3 tickets; returns copies of the tickets and the open stream.
fn hello(
    client: &Client,
    addr: SocketAddr,
    offer: Option<&SslSession>,
) -> (Vec<SslSession>, SslStream<TcpStream>) {
    let (_, sessions, tls) = greeted(client, addr, offer);
    (sessions, tls)
}

fn cipher(tls: &SslStream<TcpStream>) -> &'static str {
    tls.ssl().current_cipher().unwrap().name()
}

/// Defect 1: the connection that issued a ticket keeps its own session
/// object; the one that resumes the ticket gets another, so neither writes
/// the other's (the resumer's cipher used to overwrite the issuer's).
#[test]
fn a_resumed_ticket_never_shares_the_issuers_session_object() {
    for single_use in [true, false] {
        let cache = SessionCache::builder()
            .context(b"shared")
            .single_use_tls13(single_use)
            .build()
            .unwrap();
        let ctx = context(&cache, |_| {});
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let aes = Client::configured(SslVersion::TLS1_3, |b| b.set_ciphersuites(AES128).unwrap());
        let chacha =
            Client::configured(SslVersion::TLS1_3, |b| b.set_ciphersuites(CHACHA).unwrap());

        // A: a full handshake with AES-128-GCM, kept open.
        let (a, (tickets, _a_client)) = accept_one(&listener, &ctx, |addr| hello(&aes, addr, None));
        assert_eq!(cipher(&a), AES128);
        assert_eq!(tickets.len(), 2);
        // B resumes A's second ticket — the one whose session object is A's
        // own `s->session` — with ChaCha20, and stays open too.
        let (b, (_, _b_client)) = accept_one(&listener, &ctx, |addr| {
            hello(&chacha, addr, Some(&copy(&tickets[1])))
        });
        assert!(b.ssl().session_reused(), "single_use {single_use}");
        assert_eq!(cipher(&b), CHACHA);
        assert_eq!(cipher(&a), AES128, "A's session was written by B");
        assert_ne!(
            a.ssl().session().unwrap().as_ptr(),
            b.ssl().session().unwrap().as_ptr()
        );
        if !single_use {
            // C resumes the same ticket (kept in the map) with AES: B's and
            // C's objects are distinct as well. (A fresh client-side copy:
            // a TLS 1.3 client marks the ticket it resumed not resumable.)
            let (c, _) = accept_one(&listener, &ctx, |addr| {
                hello(&aes, addr, Some(&copy(&tickets[1])))
            });
            assert!(c.ssl().session_reused());
            assert_eq!((cipher(&b), cipher(&c)), (CHACHA, AES128));
            assert_ne!(
                b.ssl().session().unwrap().as_ptr(),
                c.ssl().session().unwrap().as_ptr()
            );
            let stats = cache.stats();
            assert_eq!(stats.decoded_hits, 2, "{stats:?}");
        }
    }
}

/// Defect 1, TLS 1.2: every resumption from the map gets its own object.
#[test]
fn tls12_resumptions_from_the_map_get_their_own_objects() {
    let cache = SessionCache::builder()
        .context(b"shared12")
        .build()
        .unwrap();
    let ctx = context(&cache, |_| {});
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = Client::new(SslVersion::TLS1_2);
    let (a, (sessions, _ac)) = accept_one(&listener, &ctx, |addr| hello(&client, addr, None));
    let session = sessions.last().unwrap().clone();
    let (b, _bc) = accept_one(&listener, &ctx, |addr| {
        hello(&client, addr, Some(&copy(&session)))
    });
    let (c, _cc) = accept_one(&listener, &ctx, |addr| {
        hello(&client, addr, Some(&copy(&session)))
    });
    assert!(b.ssl().session_reused() && c.ssl().session_reused());
    assert_eq!(cache.stats().decoded_hits, 2);
    let ptrs = [&a, &b, &c].map(|s| s.ssl().session().unwrap().as_ptr());
    assert!(ptrs[0] != ptrs[1] && ptrs[1] != ptrs[2] && ptrs[0] != ptrs[2]);
}

/// Defect 2: after a HelloRetryRequest OpenSSL asks for the ticket again;
/// the first lookup took it from the store, and it still resumes.
#[test]
fn a_hello_retry_request_keeps_tls13_resumption() {
    for decoded in [4096, 0] {
        let cache = SessionCache::builder()
            .context(b"hrr")
            .decoded_sessions(decoded)
            .build()
            .unwrap();
        let ctx = context(&cache, |b| b.set_groups_list("X25519").unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        // The client's first key share is for P-256, which the server does
        // not accept: it answers with a HelloRetryRequest for X25519.
        let client = Client::configured(SslVersion::TLS1_3, |b| {
            b.set_groups_list("P-256:X25519").unwrap()
        });
        let (_, (tickets, _)) = accept_one(&listener, &ctx, |addr| hello(&client, addr, None));
        let (resumed, _) = accept_one(&listener, &ctx, |addr| {
            hello(&client, addr, Some(&tickets[0]))
        });
        let stats = cache.stats();
        assert!(
            resumed.ssl().session_reused(),
            "decoded {decoded}: {stats:?}"
        );
        assert_eq!((stats.lookups, stats.misses), (2, 0), "{stats:?}");
        assert_eq!(stats.removed_by.single_use, 1, "{stats:?}");
        // Still single use: the ticket does not resume again.
        let (again, _) = accept_one(&listener, &ctx, |addr| {
            hello(&client, addr, Some(&tickets[0]))
        });
        assert!(!again.ssl().session_reused());
    }
}

/// Defect 4: a TLS 1.3 ClientHello whose PSK identity is a TLS 1.2 session
/// id (sent in clear) neither resumes nor consumes that session.
#[test]
fn a_tls13_lookup_cannot_take_a_tls12_session() {
    let store = Arc::new(Recording::default());
    let cache = SessionCache::builder()
        .context(b"xproto")
        .store(Arc::clone(&store))
        .build()
        .unwrap();
    let ctx = context(&cache, |_| {});
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tls12 = Client::new(SslVersion::TLS1_2);
    let tls13 = Client::new(SslVersion::TLS1_3);
    let (_, (victim, _)) = accept_one(&listener, &ctx, |addr| hello(&tls12, addr, None));
    let victim = victim.last().unwrap().clone();
    let (_, (tickets, _)) = accept_one(&listener, &ctx, |addr| hello(&tls13, addr, None));
    // The attacker's ticket: a real TLS 1.3 client session whose ticket
    // (its PSK identity, 32 bytes) is replaced by the victim's session id.
    let ticket_id = store
        .puts
        .lock()
        .unwrap()
        .iter()
        .find(|k| k.protocol == Protocol::Tls13)
        .map(|k| k.id)
        .unwrap();
    let mut der = tickets[0].to_der().unwrap();
    let at = der
        .windows(32)
        .position(|w| w == ticket_id.as_bytes())
        .expect("the ticket is in the client session's DER");
    der[at..at + 32].copy_from_slice(victim.id());
    let forged = SslSession::from_der(&der).unwrap();
    let entries = store.stats().entries;

    let (attempt, _) = accept_one(&listener, &ctx, |addr| hello(&tls13, addr, Some(&forged)));
    assert!(!attempt.ssl().session_reused());
    let stats = cache.stats();
    assert_eq!(
        stats.lookups, 1,
        "the forged identity was looked up: {stats:?}"
    );
    // The store lost nothing but… nothing: the TLS 1.2 session is still there.
    let key = SessionKey::from_slices(Protocol::Tls12, b"xproto", victim.id()).unwrap();
    assert!(
        store.get(&key).unwrap().is_some(),
        "{stats:?} victim {:02x?} puts {:?}",
        victim.id(),
        store.puts.lock().unwrap()
    );
    assert!(store.stats().entries >= entries);
    // And the victim still resumes over TLS 1.2.
    let (victim_again, _) = accept_one(&listener, &ctx, |addr| hello(&tls12, addr, Some(&victim)));
    assert!(victim_again.ssl().session_reused());
}
