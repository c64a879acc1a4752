//! The map of recently stored sessions kept decoded: real handshakes show
//! that a session resumed from it is the right one, that the store still
//! decides (single use, removal), and that turning it off changes nothing
//! but the decode.

mod common;

use std::sync::Arc;

use common::{Client, TestServer, identity, master_key, server_builder, server_with};
use openssl::ssl::{SslSession, SslVersion};
use tls_session_cache::{MemoryStore, SessionKey, SessionStore};
use tls_session_cache_openssl::SessionCache;

const TLS12: SslVersion = SslVersion::TLS1_2;
const TLS13: SslVersion = SslVersion::TLS1_3;

#[test]
fn a_session_resumed_from_the_map_is_the_one_offered() {
    let cache = SessionCache::builder().context(b"dec12").build().unwrap();
    let server = server_with(&cache);
    let client = Client::new(TLS12);
    let sessions: Vec<SslSession> = (0..3)
        .map(|_| {
            let s = client.connect(server.addr, None).last_session();
            assert!(!server.accepted().resumed);
            s
        })
        .collect();
    assert_eq!(cache.stats().decoded_entries, 3);
    // Interleaved, so that a map answering with the wrong entry would show.
    for round in 0..2 {
        for s in [&sessions[2], &sessions[0], &sessions[1]] {
            let again = client.connect(server.addr, Some(s));
            assert!(again.resumed, "round {round}");
            let seen = server.accepted();
            assert!(seen.resumed);
            assert_eq!(seen.session_id, s.id(), "server resumed another session");
            assert_eq!(seen.master_key, master_key(s), "server has another key");
        }
    }
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.decoded_hits), (6, 6), "{stats:?}");
    assert_eq!((stats.misses, stats.mismatched), (0, 0), "{stats:?}");
    assert_eq!(stats.decoded_entries, 3, "{stats:?}");
}

#[test]
fn tls13_single_use_holds_with_the_map() {
    let cache = SessionCache::builder().context(b"dec13").build().unwrap();
    let server = server_with(&cache);
    let client = Client::new(TLS13);
    let first = server.full_handshake(&client);
    assert_eq!(first.sessions.len(), 2);
    assert_eq!(cache.stats().decoded_entries, 2);
    let replay = common::copy(&first.sessions[0]);

    let second = client.connect(server.addr, Some(&first.sessions[0]));
    assert!(second.resumed);
    assert!(server.accepted().resumed);
    let stats = cache.stats();
    assert_eq!(stats.decoded_hits, 1, "{stats:?}");
    // Taken: gone from the store and the map; the new ticket is in both.
    assert_eq!(
        (stats.store.entries, stats.decoded_entries),
        (2, 2),
        "{stats:?}"
    );

    let again = client.connect(server.addr, Some(&replay));
    assert!(!again.resumed, "a TLS 1.3 ticket resumed twice");
    assert!(!server.accepted().resumed);

    // The ticket issued by the resumption resumes, from the map too.
    let third = client.connect(server.addr, Some(&second.sessions[0]));
    assert!(third.resumed);
    assert!(server.accepted().resumed);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (2, 1), "{stats:?}");
    assert_eq!(stats.decoded_hits, 2, "{stats:?}");
}

#[test]
fn a_session_removed_from_the_store_is_not_resumed_from_the_map() {
    let store = Arc::new(MemoryStore::default());
    let cache = SessionCache::builder()
        .context(b"decrm")
        .store(Arc::clone(&store))
        .build()
        .unwrap();
    let mut b = server_builder(&identity("localhost"));
    cache.install(&mut b).unwrap();
    let ctx = b.build();
    let server = TestServer::start(ctx.clone());
    let client = Client::new(TLS12);
    let a = server.full_handshake(&client).last_session();
    let b = server.full_handshake(&client).last_session();
    assert_eq!(cache.stats().decoded_entries, 2);

    // Behind the binding's back: the store forgets `a`; the map still has
    // it, but the store's miss is final.
    let key_a =
        SessionKey::from_slices(tls_session_cache::Protocol::Tls12, b"decrm", a.id()).unwrap();
    assert!(store.remove(&key_a).unwrap());
    assert!(!client.connect(server.addr, Some(&a)).resumed);
    assert!(!server.accepted().resumed);
    let stats = cache.stats();
    assert_eq!(stats.decoded_hits, 0, "{stats:?}");
    // The miss dropped `a` from the map; the full handshake added one.
    assert_eq!(stats.decoded_entries, 2, "{stats:?}");

    // Through OpenSSL: SSL_CTX_remove_session calls the remove callback
    // with a server-side session object (decoded from the store here).
    let key_b =
        SessionKey::from_slices(tls_session_cache::Protocol::Tls12, b"decrm", b.id()).unwrap();
    let stored = store.get(&key_b).unwrap().unwrap();
    let server_side = tls_session_cache_openssl::decode_stored(&key_b, &stored).unwrap();
    // SAFETY: the session was decoded for a context of the same method.
    unsafe { ctx.remove_session(&server_side) };
    let stats = cache.stats();
    assert_eq!((stats.removed, stats.decoded_entries), (1, 1), "{stats:?}");
    assert!(store.get(&key_b).unwrap().is_none());
    assert!(!client.connect(server.addr, Some(&b)).resumed);
    assert!(!server.accepted().resumed);
    assert_eq!(cache.stats().decoded_hits, 0);
}

#[test]
fn with_the_map_off_everything_resumes_by_decoding() {
    let cache = SessionCache::builder()
        .context(b"decoff")
        .decoded_sessions(0)
        .build()
        .unwrap();
    let server = server_with(&cache);
    for version in [TLS12, TLS13] {
        let client = Client::new(version);
        let first = server.full_handshake(&client);
        let s = first.last_session();
        let replay = common::copy(&s);
        let again = client.connect(server.addr, Some(&s));
        assert!(again.resumed, "{version:?}");
        let seen = server.accepted();
        assert!(seen.resumed);
        if version == TLS12 {
            assert_eq!(seen.session_id, s.id());
            assert_eq!(seen.master_key, master_key(&s));
        }
        // TLS 1.2 resumes again; a TLS 1.3 ticket does not.
        let replayed = client.connect(server.addr, Some(&replay));
        assert_eq!(replayed.resumed, version == TLS12, "{version:?}");
        server.accepted();
    }
    let stats = cache.stats();
    assert_eq!(
        (stats.decoded_hits, stats.decoded_entries),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!((stats.hits, stats.misses), (3, 1), "{stats:?}");
}

#[test]
fn the_map_is_bounded() {
    let cache = SessionCache::builder()
        .context(b"decbound")
        .decoded_sessions(2)
        .build()
        .unwrap();
    let server = server_with(&cache);
    let client = Client::new(TLS12);
    let sessions: Vec<SslSession> = (0..6)
        .map(|_| server.full_handshake(&client).last_session())
        .collect();
    let stats = cache.stats();
    // Two shards of one entry each.
    assert!(stats.decoded_entries <= 2, "{stats:?}");
    assert_eq!(stats.store.entries, 6, "{stats:?}");
    // Evicted sessions still resume, decoded from the store.
    for s in &sessions {
        assert!(client.connect(server.addr, Some(s)).resumed);
        let seen = server.accepted();
        assert_eq!(seen.session_id, s.id());
    }
    let stats = cache.stats();
    assert_eq!(stats.hits, 6, "{stats:?}");
    assert!(stats.decoded_hits <= 2, "{stats:?}");
}
