//! A Redis that dies, freezes or comes back: operations return (as errors,
//! i.e. misses) without hanging or panicking, the circuit opens, and the
//! store recovers by itself. Durations are printed, never asserted.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use tls_session_cache::{Protocol, SessionStore, StoreError};
use tls_session_cache_redis::{CircuitState, RedisStore};

fn fast_store(url: &str) -> RedisStore {
    RedisStore::builder(url)
        .seal_keys(ring(7))
        .timeouts(Duration::from_millis(200))
        .circuit_breaker(5, Duration::from_millis(200), Duration::from_millis(800))
        .build()
        .unwrap()
}

/// Tries `op` until it succeeds, with short waits (the breaker's back-off
/// is wall-clock time). Returns the number of attempts.
fn until_ok(mut op: impl FnMut() -> bool) -> Option<u32> {
    for attempt in 1..=400 {
        if op() {
            return Some(attempt);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

#[test]
fn killed_mid_run_fails_fast_opens_the_circuit_and_recovers_after_restart() {
    let mut redis = redis();
    let store = Arc::new(fast_store(&redis.url()));
    let keys: Vec<_> = (0..20).map(|_| random_key(b"svc")).collect();
    for k in &keys {
        store.put(k, &session(Protocol::Tls12, 300)).unwrap();
    }

    // Four "handshake" threads look sessions up while Redis is killed.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let slowest_us = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (store, keys, stop, done, slowest) = (
                store.clone(),
                keys.clone(),
                stop.clone(),
                done.clone(),
                slowest_us.clone(),
            );
            std::thread::spawn(move || {
                let mut i = t;
                let mut outcomes = (0u64, 0u64);
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    match store.get(&keys[i % keys.len()]) {
                        Ok(Some(_)) => outcomes.0 += 1,
                        Ok(None) => {}
                        Err(StoreError::Unavailable(_) | StoreError::Timeout(_)) => outcomes.1 += 1,
                        Err(e) => panic!("unexpected error kind: {e}"),
                    }
                    slowest.fetch_max(started.elapsed().as_micros() as u64, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::SeqCst);
                    i += 1;
                }
                outcomes
            })
        })
        .collect();

    // Let the readers get going (a signal: they have done some lookups).
    assert!(until_ok(|| done.load(Ordering::SeqCst) >= 100).is_some());
    slowest_us.store(0, Ordering::SeqCst);
    redis.stop().unwrap();
    let killed_at = done.load(Ordering::SeqCst);
    // They keep going: every lookup returns.
    assert!(
        until_ok(|| done.load(Ordering::SeqCst) >= killed_at + 500).is_some(),
        "lookups stopped returning after Redis died"
    );
    stop.store(true, Ordering::SeqCst);
    let mut failures = 0;
    for t in threads {
        failures += t.join().expect("a lookup thread panicked").1;
    }
    assert!(failures > 0);
    let rs = store.redis_stats();
    assert!(rs.circuit_opens >= 1, "{rs:?}");
    assert!(rs.circuit_open_rejections > 0, "{rs:?}");
    assert_ne!(store.circuit_state(), CircuitState::Closed);
    println!(
        "after kill: slowest lookup {} µs (timeout 200 ms); {rs:?}",
        slowest_us.load(Ordering::SeqCst)
    );

    // While the circuit is open, a lookup is refused without touching Redis.
    let started = Instant::now();
    let _ = store.get(&keys[0]);
    println!("lookup while open/half-open: {:?}", started.elapsed());

    // Same port, new process: the same store recovers on its own.
    redis.restart().unwrap();
    let key = random_key(b"svc");
    let s = session(Protocol::Tls12, 300);
    let attempts = until_ok(|| store.put(&key, &s).is_ok()).expect("store never recovered");
    println!("recovered after {attempts} attempts");
    assert_eq!(store.get(&key).unwrap(), Some(s));
    assert_eq!(store.circuit_state(), CircuitState::Closed);
    // Redis kept nothing (persistence off): old sessions are plain misses.
    assert_eq!(store.get(&keys[0]).unwrap(), None);
}

#[test]
fn a_frozen_redis_times_out_and_is_counted() {
    let redis = redis();
    let store = fast_store(&redis.url());
    let key = random_key13(b"svc");
    let s = session(Protocol::Tls13, 300);
    store.put(&key, &s).unwrap();

    redis.pause().unwrap();
    let started = Instant::now();
    let result = store.take(&key);
    let took = started.elapsed();
    redis.resume().unwrap();
    assert!(matches!(result, Err(StoreError::Timeout(_))), "{result:?}");
    assert_eq!(store.redis_stats().timeouts, 1);
    assert_eq!(store.stats().errors, 1);
    println!("take against a frozen Redis returned after {took:?} (timeout 200 ms)");

    // The timed-out connection is not reused. Whether the GETDEL ran when
    // Redis thawed is unknowable to the caller; either way the session is
    // used at most once.
    let again = store.take(&key).unwrap();
    let first_won = again.is_none();
    assert!(first_won || again == Some(s));
    assert_eq!(store.circuit_state(), CircuitState::Closed);
}

#[test]
fn no_redis_at_all_is_a_miss_not_a_panic() {
    // Nothing listens on the port of a server that was started and stopped.
    let mut redis = redis();
    let url = redis.url();
    redis.stop().unwrap();
    let store = fast_store(&url);
    let key = random_key(b"svc");
    for _ in 0..20 {
        assert!(store.get(&key).is_err());
        assert!(store.put(&key, &session(Protocol::Tls12, 300)).is_err());
    }
    let rs = store.redis_stats();
    assert!(rs.circuit_opens >= 1);
    assert!(rs.circuit_open_rejections > 0, "{rs:?}");
    assert_eq!(store.stats().errors, 40);
    assert!(store.ping().is_err());
}
