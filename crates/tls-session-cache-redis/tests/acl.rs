//! ACL users: `redis://USER:PASSWORD@HOST:PORT/DB` and the builder's
//! `username` / `password`; a wrong password is a typed, counted error
//! (never a panic, never the password in a message); a password never
//! appears in `Debug` or error output.

mod common;

use common::*;
use tls_session_cache::{Protocol, SessionStore, StoreError};
use tls_session_cache_redis::{AccessDenied, BuildError, RedisStore};
use tls_session_cache_testkit::RedisServer;

const PASSWORD: &str = "s3cret-Pa55";

fn acl_redis() -> RedisServer {
    let pass = format!(">{PASSWORD}");
    RedisServer::start_with_args(&[
        "--user",
        "alice",
        "on",
        &pass,
        "~tls-session:*",
        "+@all",
        "--user",
        "default",
        "off",
    ])
    .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"))
}

fn url(redis: &RedisServer, user: &str, password: &str) -> String {
    format!("redis://{user}:{password}@{}/2", redis.addr())
}

#[test]
fn an_acl_user_with_its_password_stores_sessions_in_its_database() {
    let redis = acl_redis();
    let store = builder(&url(&redis, "alice", PASSWORD)).build().unwrap();
    store.ping().unwrap();
    let key = random_key(b"svc");
    let s = session(Protocol::Tls12, 300);
    store.put(&key, &s).unwrap();
    assert_eq!(store.get(&key).unwrap(), Some(s));
    let in_db2 = redis
        .cli(
            Some(("alice", PASSWORD)),
            // Key names are binary: count the keys of database 2 instead.
            &["-n", "2", "DBSIZE"],
        )
        .unwrap();
    assert_eq!(in_db2, "1");
    assert_eq!(store.redis_stats().auth_errors, 0);

    // The same through the builder (a password read from a file, say).
    let store = builder(&format!("redis://{}/2", redis.addr()))
        .username("alice")
        .password(PASSWORD)
        .build()
        .unwrap();
    assert!(store.get(&key).unwrap().is_some());
}

#[test]
fn a_wrong_password_is_a_counted_access_error_without_the_password() {
    let redis = acl_redis();
    let wrong = "not-the-Pa55word";
    let store = builder(&url(&redis, "alice", wrong)).build().unwrap();
    let err = store.ping().expect_err("a wrong password was accepted");
    let StoreError::Backend(inner) = &err else {
        panic!("expected an access error, got {err:?}")
    };
    assert!(inner.downcast_ref::<AccessDenied>().is_some(), "{err:?}");
    for _ in 0..3 {
        assert!(store.get(&random_key(b"svc")).is_err());
    }
    let stats = store.redis_stats();
    assert_eq!(stats.auth_errors, 4, "{stats:?}");
    for text in [format!("{err}"), format!("{err:?}"), format!("{store:?}")] {
        assert!(!text.contains(wrong), "password in {text}");
    }
}

#[test]
fn passwords_never_appear_in_build_errors_or_debug_output() {
    for bad in [
        format!("redis://alice:{PASSWORD}@127.0.0.1:notaport"),
        format!("redis://alice:{PASSWORD}@127.0.0.1:6379/notadb"),
        format!("redis+sentinel://alice:{PASSWORD}@127.0.0.1:26379"),
        format!("redis+cluster://alice:{PASSWORD}@127.0.0.1:x,127.0.0.1:7001"),
        format!("rediss://alice:{PASSWORD}@127.0.0.1:6379/#insecure"),
    ] {
        let e = builder(&bad).build().unwrap_err();
        assert!(matches!(e, BuildError::Url { .. }), "{bad}: {e}");
        for text in [format!("{e}"), format!("{e:?}")] {
            assert!(!text.contains(PASSWORD), "password in {text}");
            assert!(text.contains("***"), "{text}");
        }
    }
    let b = RedisStore::builder("redis://127.0.0.1:6379").password(PASSWORD);
    assert!(!format!("{b:?}").contains(PASSWORD));
}
