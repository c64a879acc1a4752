//! Issues 10 and 11 on the async path: sessions survive connections that
//! end without close_notify; a fatal alert still removes them; a
//! HelloRetryRequest keeps TLS 1.3 resumption; a TLS 1.3 ClientHello cannot
//! take a TLS 1.2 session. Real handshakes on loopback.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use common::{AsyncServer, Client, Ending, copy, greeted, send_corrupt_record};
use openssl::ssl::{SslSession, SslVersion};
use tls_session_cache::{MemoryStore, Protocol, SessionKey, SessionStore};
use tls_session_cache_openssl::SessionCache;
use tls_session_cache_tokio::AsyncSessionCache;

const TLS12: SslVersion = SslVersion::TLS1_2;
const TLS13: SslVersion = SslVersion::TLS1_3;

fn server(store: Arc<MemoryStore>, context: &'static [u8], ending: Ending) -> AsyncServer {
    server_with(store, context, ending, |_| {})
}

fn server_with(
    store: Arc<MemoryStore>,
    context: &'static [u8],
    ending: Ending,
    configure: impl FnOnce(&mut openssl::ssl::SslContextBuilder) + Send + 'static,
) -> AsyncServer {
    AsyncServer::start_with(
        move || {
            AsyncSessionCache::builder(store)
                .session_cache(SessionCache::builder().context(context))
        },
        configure,
        ending,
    )
}

/// Client: a request answered by a server that then drops the stream
/// without close_notify (the client's read ends in an error: tolerated).
fn request(
    client: &Client,
    addr: SocketAddr,
    offer: Option<&SslSession>,
) -> (bool, Vec<SslSession>) {
    let mut tls = client.handshake(addr, offer);
    tls.write_all(b"GET\n").unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf);
    assert!(buf.ends_with(b"\n"), "{buf:?}");
    let sessions = client.received().iter().map(copy).collect();
    (tls.ssl().session_reused(), sessions)
}

#[test]
fn client_dropping_tcp_keeps_the_session_tls12_and_tls13() {
    for version in [TLS12, TLS13] {
        let store = Arc::new(MemoryStore::default());
        let server = server(
            Arc::clone(&store),
            b"async-unclean",
            Ending::GreetAndReadToEof,
        );
        let client = Client::new(version);
        let (resumed, sessions, tls) = greeted(&client, server.addr, None);
        drop(tls);
        assert!(!resumed);
        server.accepted();
        let session = sessions.last().unwrap().clone();
        for _ in 0..2 {
            let (resumed, sessions, tls) = greeted(&client, server.addr, Some(&copy(&session)));
            drop(tls);
            server.accepted();
            assert!(resumed, "{version:?}: {:?}", server.cache.stats());
            if version == TLS13 {
                // Single use: the next round offers the new ticket.
                assert!(!sessions.is_empty());
                break;
            }
        }
        let stats = server.cache.stats();
        assert_eq!(stats.removed, 0, "{version:?}: {stats:?}");
        assert!(stats.kept_unclean_close >= 2, "{version:?}: {stats:?}");
    }
}

#[test]
fn server_dropping_the_stream_without_shutdown_keeps_the_session() {
    for version in [TLS12, TLS13] {
        let store = Arc::new(MemoryStore::default());
        let server = server(Arc::clone(&store), b"async-drop", Ending::Drop);
        let client = Client::new(version);
        let (resumed, sessions) = request(&client, server.addr, None);
        server.accepted();
        assert!(!resumed);
        let (resumed, _) = request(&client, server.addr, Some(sessions.last().unwrap()));
        server.accepted();
        assert!(resumed, "{version:?}: {:?}", server.cache.stats());
        assert_eq!(server.cache.stats().removed, 0);
    }
}

#[test]
fn a_fatal_alert_removes_the_session() {
    let store = Arc::new(MemoryStore::default());
    let server = server(
        Arc::clone(&store),
        b"async-alert",
        Ending::GreetAndReadToEof,
    );
    let client = Client::new(TLS12);
    let (_, sessions, mut tls) = greeted(&client, server.addr, None);
    // A record whose authentication cannot verify: a fatal bad_record_mac.
    send_corrupt_record(&mut tls);
    server.accepted();
    // The removal is queued to the store's writer: wait for it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(server.cache.flush());
    let session = sessions.last().unwrap();
    let key = SessionKey::from_slices(Protocol::Tls12, b"async-alert", session.id()).unwrap();
    let stats = server.cache.stats();
    assert_eq!(store.get(&key).unwrap(), None, "{stats:?}");
    assert_eq!(stats.removed_by.fatal_alert, 1, "{stats:?}");
}

/// Issue 11, defect 2 on the async path: a HelloRetryRequest re-asks for
/// the ticket, which the async lookup parked for this handshake.
#[test]
fn a_hello_retry_request_keeps_tls13_resumption() {
    let store = Arc::new(MemoryStore::default());
    let server = server_with(Arc::clone(&store), b"async-hrr", Ending::Clean, |b| {
        b.set_groups_list("X25519").unwrap()
    });
    let client = Client::configured(TLS13, |b| b.set_groups_list("P-256:X25519").unwrap());
    let first = client.connect(server.addr, None);
    server.accepted();
    let again = client.connect(server.addr, Some(&first.sessions[0]));
    assert!(server.accepted().resumed, "{:?}", server.cache.stats());
    assert!(again.resumed);
    let stats = server.cache.stats();
    assert_eq!((stats.lookups, stats.misses), (2, 0), "{stats:?}");
}

/// Issue 11, defect 4 on the async path: the async lookup is made under
/// TLS 1.3 keys only, so a PSK identity equal to a TLS 1.2 session id
/// neither resumes nor consumes it.
#[test]
fn a_tls13_client_hello_cannot_take_a_tls12_session() {
    let store = Arc::new(MemoryStore::default());
    let server = server(Arc::clone(&store), b"async-xproto", Ending::Clean);
    let tls12 = Client::new(TLS12);
    let tls13 = Client::new(TLS13);
    let victim = tls12.connect(server.addr, None).last_session();
    server.accepted();
    let ticket = tls13.connect(server.addr, None).sessions[0].clone();
    server.accepted();
    // Replace the ticket (the PSK identity) in the client session with
    // the victim's TLS 1.2 session id. The server-side ticket id is the
    // only 32-byte TLS 1.3 key in the store that the DER contains.
    let mut der = ticket.to_der().unwrap();
    let at = (0..der.len().saturating_sub(31))
        .find(|&i| {
            SessionKey::from_slices(Protocol::Tls13, b"async-xproto", &der[i..i + 32])
                .ok()
                .is_some_and(|k| store.get(&k).unwrap().is_some())
        })
        .expect("the ticket is in the client session's DER");
    der[at..at + 32].copy_from_slice(victim.id());
    let forged = SslSession::from_der(&der).unwrap();
    let attempt = tls13.connect(server.addr, Some(&forged));
    server.accepted();
    assert!(!attempt.resumed);
    let key = SessionKey::from_slices(Protocol::Tls12, b"async-xproto", victim.id()).unwrap();
    assert!(
        store.get(&key).unwrap().is_some(),
        "{:?}",
        server.cache.stats()
    );
    assert!(tls12.connect(server.addr, Some(&victim)).resumed);
    assert!(server.accepted().resumed);
}

unsafe extern "C" {
    fn SSL_renegotiate_abbreviated(ssl: *mut openssl_sys::SSL) -> std::ffi::c_int;
    fn SSL_set_options(ssl: *mut openssl_sys::SSL, op: u64) -> u64;
}

/// `SSL_OP_ALLOW_CLIENT_RENEGOTIATION` (OpenSSL 3.0 refuses client
/// renegotiation without it).
const ALLOW_CLIENT_RENEGOTIATION: u64 = 1 << 8;

/// Issue 11, defect 5: what an async lookup parked answers the handshake
/// it was fetched for, not a TLS 1.2 renegotiation later on the same
/// connection — by then the session was removed, and it must not resume.
#[test]
fn a_renegotiation_is_not_answered_from_the_first_handshakes_snapshot() {
    use foreign_types::ForeignTypeRef;
    let store = Arc::new(MemoryStore::default());
    let server = server_with(Arc::clone(&store), b"async-reneg", Ending::Clean, |b| {
        // SAFETY: sets an option bit on the context being built.
        unsafe {
            openssl_sys::SSL_CTX_set_options(b.as_ptr(), ALLOW_CLIENT_RENEGOTIATION);
        }
    });
    let client = Client::new(TLS12);
    let session = client.connect(server.addr, None).last_session();
    server.accepted();

    // Resume (the server's async lookup parks the answer), then, with the
    // connection open, the session is removed from the store.
    let mut tls = client.handshake(server.addr, Some(&session));
    assert!(tls.ssl().session_reused());
    let key = SessionKey::from_slices(Protocol::Tls12, b"async-reneg", session.id()).unwrap();
    assert!(store.remove(&key).unwrap());
    // The client renegotiates offering the same session again (an
    // abbreviated renegotiation); the server
    // handles the new ClientHello inside its read.
    // SAFETY: the client's live connection, used by this thread only.
    unsafe {
        SSL_set_options(tls.ssl().as_ptr(), 0);
        assert_eq!(SSL_renegotiate_abbreviated(tls.ssl().as_ptr()), 1);
    }
    tls.write_all(b"GET\n").unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    let seen = server.accepted();
    assert!(seen.resumed, "the first handshake resumed");
    assert_eq!(answer, b"resumed\n");
    let stats = server.cache.stats();
    assert!(
        stats.misses >= 1,
        "the renegotiation's lookup was answered from the parked snapshot: {stats:?}"
    );
    assert!(!tls.ssl().session_reused(), "{stats:?}");
}

#[test]
fn the_strict_switch_removes_sessions_of_unclean_closes() {
    let store = Arc::new(MemoryStore::default());
    let server = AsyncServer::start_with(
        {
            let store = Arc::clone(&store);
            move || {
                AsyncSessionCache::builder(store).session_cache(
                    SessionCache::builder()
                        .context(b"async-strict")
                        .remove_on_unclean_close(true),
                )
            }
        },
        |_| {},
        Ending::Drop,
    );
    let client = Client::new(TLS12);
    let (_, sessions) = request(&client, server.addr, None);
    server.accepted();
    // The removal is queued to the store's writer: wait for it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(server.cache.flush());
    let session = sessions.last().unwrap();
    let key = SessionKey::from_slices(Protocol::Tls12, b"async-strict", session.id()).unwrap();
    let stats = server.cache.stats();
    assert_eq!(stats.removed_by.unclean_close, 1, "{stats:?}");
    assert_eq!(store.get(&key).unwrap(), None, "{stats:?}");
    let (resumed, _) = request(&client, server.addr, Some(session));
    server.accepted();
    assert!(!resumed);
}

/// Issue 11, defect 1 on the async path: A, which issued the ticket, stays
/// open while B resumes it with another cipher; A's session (its own
/// object) must not be written by B's handshake.
#[test]
fn a_resumed_ticket_never_shares_the_issuers_session_object() {
    const AES128: &str = "TLS_AES_128_GCM_SHA256";
    const CHACHA: &str = "TLS_CHACHA20_POLY1305_SHA256";
    let store = Arc::new(MemoryStore::default());
    let server = server(store, b"async-shared", Ending::GreetAndReadToEof);
    let aes = Client::configured(TLS13, |b| b.set_ciphersuites(AES128).unwrap());
    let chacha = Client::configured(TLS13, |b| b.set_ciphersuites(CHACHA).unwrap());
    let (_, tickets, a) = greeted(&aes, server.addr, None);
    assert_eq!(tickets.len(), 2);
    // B resumes A's second ticket — whose object is A's `s->session`.
    let (resumed, _, b) = greeted(&chacha, server.addr, Some(&copy(&tickets[1])));
    assert!(resumed, "{:?}", server.cache.stats());
    drop(b);
    assert_eq!(server.accepted().cipher, CHACHA);
    drop(a);
    assert_eq!(
        server.accepted().cipher,
        AES128,
        "A's session was written by B"
    );
}
