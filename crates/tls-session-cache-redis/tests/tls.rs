//! TLS to Redis (`rediss://`) against a real TLS-only `redis-server`
//! (`--port 0 --tls-port P`) with certificates made by the test: sessions
//! round-trip for the blocking and the async store; a Redis whose
//! certificate comes from another CA is refused and counted (lookups are
//! misses, never errors that hang); a client certificate is presented when
//! Redis requires one; a frozen TLS Redis costs a call its budget, not
//! more; TLS settings on a non-TLS URL and `#insecure` are refused.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tls_session_cache::{Protocol, SessionStore};
use tls_session_cache_redis::{BuildError, CircuitState, RedisStore, TlsOptions};
use tls_session_cache_testkit::{RedisServer, TestPki};

fn pki() -> TestPki {
    TestPki::generate().unwrap_or_else(|e| panic!("test certificates: {e}"))
}

fn tls_redis(pki: &TestPki, require_client: bool) -> RedisServer {
    let client = require_client.then_some(&pki.client);
    RedisServer::start_tls(&pki.server, &pki.ca, client, &[])
        .unwrap_or_else(|e| panic!("cannot start a TLS redis-server: {e}"))
}

#[test]
fn sessions_round_trip_over_tls_with_the_ca_file() {
    let pki = pki();
    let redis = tls_redis(&pki, false);
    assert!(redis.url().starts_with("rediss://"));
    let store = builder(&redis.url())
        .tls(TlsOptions::new().ca_file(&pki.ca))
        .build()
        .unwrap();
    store.ping().unwrap();
    let key = random_key(b"svc");
    let s = session(Protocol::Tls12, 300);
    store.put(&key, &s).unwrap();
    assert_eq!(store.get(&key).unwrap(), Some(s.clone()));
    let k13 = random_key13(b"svc");
    store.put(&k13, &session(Protocol::Tls13, 300)).unwrap();
    assert!(store.take(&k13).unwrap().is_some());
    assert!(store.take(&k13).unwrap().is_none(), "single use over TLS");
    assert_eq!(store.redis_stats().tls_errors, 0);
    // The value really is in that Redis (counted over TLS by redis-cli: the
    // one TLS 1.2 session; the ticket was taken).
    let raw = redis.cli(None, &["DBSIZE"]).unwrap();
    assert_eq!(raw, "1");
}

#[test]
fn a_redis_with_a_certificate_from_another_ca_is_refused_and_counted() {
    let pki = pki();
    let rogue = RedisServer::start_tls(&pki.other_server, &pki.other_ca, None, &[])
        .unwrap_or_else(|e| panic!("cannot start a TLS redis-server: {e}"));
    let store = builder(&rogue.url())
        .tls(TlsOptions::new().ca_file(&pki.ca))
        .circuit_breaker(3, Duration::from_secs(60), Duration::from_secs(60))
        .build()
        .unwrap();
    let key = random_key(b"svc");
    for _ in 0..3 {
        let err = store.get(&key).expect_err("an untrusted Redis answered");
        assert!(
            err.to_string().contains("certificate verify failed"),
            "unexpected error: {err}"
        );
    }
    let stats = store.redis_stats();
    assert_eq!(stats.tls_errors, 3, "{stats:?}");
    assert_eq!(store.circuit_state(), CircuitState::Open);
    // Nothing was written to the rogue server.
    assert!(store.put(&key, &session(Protocol::Tls12, 300)).is_err());
    assert_eq!(rogue.cli(None, &["DBSIZE"]).unwrap(), "0");
}

#[test]
fn the_system_roots_do_not_trust_a_private_ca() {
    let pki = pki();
    let redis = tls_redis(&pki, false);
    // No CA file: the system roots, which do not hold the test CA.
    let store = builder(&redis.url()).build().unwrap();
    let err = store
        .ping()
        .expect_err("a private CA was trusted by default");
    assert!(
        err.to_string().contains("certificate verify failed"),
        "{err}"
    );
    assert_eq!(store.redis_stats().tls_errors, 1);
}

#[test]
fn a_client_certificate_is_presented_when_redis_requires_one() {
    let pki = pki();
    let redis = tls_redis(&pki, true);
    let without = builder(&redis.url())
        .tls(TlsOptions::new().ca_file(&pki.ca))
        .build()
        .unwrap();
    assert!(
        without.ping().is_err(),
        "Redis accepted a client without a certificate"
    );
    let with = builder(&redis.url())
        .tls(
            TlsOptions::new()
                .ca_file(&pki.ca)
                .client_identity(&pki.client.cert, &pki.client.key),
        )
        .build()
        .unwrap();
    with.ping().unwrap();
}

#[test]
fn the_server_name_is_checked_and_can_be_overridden() {
    let pki = pki();
    let redis = tls_redis(&pki, false);
    // The certificate is for 127.0.0.1 and localhost, not for this name.
    let wrong = builder(&redis.url())
        .tls(
            TlsOptions::new()
                .ca_file(&pki.ca)
                .server_name("redis.example"),
        )
        .build()
        .unwrap();
    let err = wrong
        .ping()
        .expect_err("a certificate for another name was accepted");
    assert!(
        err.to_string().contains("certificate verify failed"),
        "{err}"
    );
    let by_name = builder(&format!("rediss://localhost:{}", redis.port()))
        .tls(TlsOptions::new().ca_file(&pki.ca))
        .build()
        .unwrap();
    by_name.ping().unwrap();
}

#[test]
fn a_frozen_tls_redis_costs_one_budget_not_a_hang() {
    let pki = pki();
    let redis = tls_redis(&pki, false);
    let budget = Duration::from_millis(300);
    let store = RedisStore::builder(&redis.url())
        .seal_keys(ring(1))
        .tls(TlsOptions::new().ca_file(&pki.ca))
        .timeouts(budget)
        .build()
        .unwrap();
    redis.pause().unwrap();
    // A fresh store: the TCP connect succeeds (the kernel accepts), the TLS
    // handshake gets no answer.
    let started = Instant::now();
    let r = store.get(&random_key(b"svc"));
    let took = started.elapsed();
    redis.resume().unwrap();
    assert!(r.is_err());
    println!("lookup on a frozen TLS Redis took {took:?} (budget {budget:?})");
    assert!(
        took < budget * 4,
        "a lookup took {took:?}, far beyond its {budget:?} budget"
    );
    assert_eq!(store.redis_stats().timeouts, 1);
}

#[test]
fn tls_settings_need_a_tls_url_and_insecure_urls_are_refused() {
    let e = builder("redis://127.0.0.1:6379")
        .tls(TlsOptions::new())
        .build()
        .unwrap_err();
    assert!(matches!(e, BuildError::TlsOptionsWithoutTls { .. }), "{e}");
    let e = builder("rediss://127.0.0.1:6379/#insecure")
        .build()
        .unwrap_err();
    assert!(matches!(e, BuildError::Url { .. }), "{e}");
    let e = builder("rediss://127.0.0.1:6379")
        .tls(TlsOptions::new().ca_file("/nonexistent/ca.pem"))
        .build()
        .unwrap_err();
    assert!(matches!(e, BuildError::Tls(_)), "{e}");
}

#[test]
fn the_explicit_opt_out_accepts_any_certificate() {
    let pki = pki();
    let rogue = RedisServer::start_tls(&pki.other_server, &pki.other_ca, None, &[])
        .unwrap_or_else(|e| panic!("cannot start a TLS redis-server: {e}"));
    let store = builder(&rogue.url())
        .tls(TlsOptions::new().danger_accept_invalid_certificates())
        .build()
        .unwrap();
    store.ping().unwrap();
}
