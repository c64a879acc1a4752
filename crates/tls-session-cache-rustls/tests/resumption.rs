//! Resumption through the cache with a MemoryStore: TLS 1.2 session ids and
//! TLS 1.3 stateful tickets, with an OpenSSL (rust-openssl) client and a
//! rustls client, single use, expiry from the cache's lifetime, statistics.

mod common;

use std::time::Duration;

use common::{TestServer, Version, openssl_connect, rustls_client, rustls_connect};
use tls_session_cache::{ManualClock, MemoryStore};
use tls_session_cache_rustls::SessionCache;

#[test]
fn an_openssl_client_resumes_tls12_and_tls13() {
    for version in Version::BOTH {
        let cache = SessionCache::builder().build().unwrap();
        let server = TestServer::rustls(&cache);
        let first = openssl_connect(server.addr, version, None);
        assert!(!first.resumed, "{version:?}");
        assert_eq!(server.accepted().version, version);
        let second = openssl_connect(server.addr, version, Some(&first.session));
        assert!(
            second.resumed,
            "{version:?}: the offered session did not resume"
        );
        let seen = server.accepted();
        assert!(
            seen.resumed && seen.version == version,
            "{version:?}: {seen:?}"
        );

        let stats = cache.stats();
        assert_eq!(
            (stats.resumed, stats.full),
            (1, 1),
            "{version:?}: {stats:?}"
        );
        assert_eq!(
            (stats.lookups, stats.hits, stats.misses),
            (1, 1, 0),
            "{stats:?}"
        );
        // TLS 1.2: one session id; TLS 1.3: two tickets per handshake.
        let stored = match version {
            Version::Tls12 => 1,
            Version::Tls13 => 4,
        };
        assert_eq!(stats.stored, stored, "{version:?}: {stats:?}");
        assert_eq!(
            stats.errors + stats.panics + stats.invalid_id,
            0,
            "{stats:?}"
        );
    }
}

#[test]
fn a_rustls_client_resumes_tls12_and_tls13() {
    for version in Version::BOTH {
        let cache = SessionCache::builder().build().unwrap();
        let server = TestServer::rustls(&cache);
        let client = rustls_client(version);
        assert!(!rustls_connect(&client, server.addr), "{version:?}");
        assert!(
            rustls_connect(&client, server.addr),
            "{version:?}: no resumption"
        );
        let (a, b) = (server.accepted(), server.accepted());
        assert_eq!((a.resumed, b.resumed), (false, true), "{version:?}");
        assert_eq!((a.version, b.version), (version, version));
        assert_eq!(cache.stats().hits, 1, "{version:?}");
    }
}

#[test]
fn a_tls13_ticket_resumes_once_a_tls12_session_id_until_it_expires() {
    let cache = SessionCache::builder().build().unwrap();
    let server = TestServer::rustls(&cache);

    let ticket = openssl_connect(server.addr, Version::Tls13, None).session;
    let offers: Vec<bool> = (0..3)
        .map(|_| openssl_connect(server.addr, Version::Tls13, Some(&ticket)).resumed)
        .collect();
    assert_eq!(
        offers,
        [true, false, false],
        "TLS 1.3 ticket offered three times"
    );

    let id = openssl_connect(server.addr, Version::Tls12, None).session;
    let offers: Vec<bool> = (0..3)
        .map(|_| openssl_connect(server.addr, Version::Tls12, Some(&id)).resumed)
        .collect();
    assert_eq!(
        offers,
        [true, true, true],
        "TLS 1.2 session id offered three times"
    );
}

#[test]
fn a_tls13_ticket_is_reusable_when_single_use_is_off() {
    let cache = SessionCache::builder()
        .single_use_tls13(false)
        .build()
        .unwrap();
    let server = TestServer::rustls(&cache);
    let ticket = openssl_connect(server.addr, Version::Tls13, None).session;
    for _ in 0..2 {
        assert!(openssl_connect(server.addr, Version::Tls13, Some(&ticket)).resumed);
    }
}

#[test]
fn sessions_expire_after_the_cache_lifetime() {
    let clock = ManualClock::new(1_000_000);
    let store = MemoryStore::builder().clock(clock.clone()).build();
    let cache = SessionCache::builder()
        .store(store)
        .clock(clock.clone())
        .lifetime(Duration::from_secs(60))
        .build()
        .unwrap();
    let server = TestServer::rustls(&cache);
    for version in Version::BOTH {
        let first = openssl_connect(server.addr, version, None).session;
        let fresh = openssl_connect(server.addr, version, None).session;
        // Within the lifetime: resumes.
        clock.advance(Duration::from_secs(59));
        assert!(
            openssl_connect(server.addr, version, Some(&first)).resumed,
            "{version:?}"
        );
        // At the lifetime: gone (rustls's own TLS 1.3 ticket hint is 24 h;
        // the store's expiry is what counts).
        clock.advance(Duration::from_secs(1));
        assert!(
            !openssl_connect(server.addr, version, Some(&fresh)).resumed,
            "{version:?}"
        );
        clock.advance(Duration::from_secs(3600));
    }
    assert!(cache.stats().store.expirations >= 2, "{:?}", cache.stats());
}

#[test]
fn zero_tickets_turn_tls13_resumption_off_and_install_disables_the_ticketer() {
    let cache = SessionCache::builder().tls13_tickets(0).build().unwrap();
    let config = common::rustls_config(&cache);
    assert_eq!(config.send_tls13_tickets, 0);
    assert!(!config.ticketer.enabled());
    let server = TestServer::rustls(&cache);
    let client = rustls_client(Version::Tls13);
    assert!(!rustls_connect(&client, server.addr));
    assert!(!rustls_connect(&client, server.addr));
    assert_eq!(cache.stats().stored, 0);
}

#[test]
fn the_builder_refuses_what_cannot_work() {
    assert!(SessionCache::builder().context(&[0; 33]).build().is_err());
    assert!(
        SessionCache::builder()
            .lifetime(Duration::ZERO)
            .build()
            .is_err()
    );
    assert!(
        SessionCache::builder()
            .lifetime(Duration::from_secs(8 * 24 * 3600))
            .build()
            .is_err()
    );
    assert!(SessionCache::builder().max_session_size(0).build().is_err());
    let cache = SessionCache::builder().build().unwrap();
    assert_eq!(cache.context().as_bytes(), b"tls-session-cache-rustls");
    assert_eq!(cache.tls13_tickets(), 2);
}
