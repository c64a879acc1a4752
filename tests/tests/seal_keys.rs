//! Seal keys: servers with different keys cannot open each other's
//! sessions; a ring with the old key second opens sessions sealed under it
//! (the rotation procedure of docs/operations.md).

use tls_session_cache_e2e::{
    KeyFile, ServerProcess, Version, connect, counter, start_redis, stats, store_url,
};

const KEY_1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const KEY_2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn server(store: &str, keys: &KeyFile) -> ServerProcess {
    ServerProcess::start(&[
        "--store",
        store,
        "--seal-key-file",
        keys.path().to_str().expect("utf-8 temp path"),
    ])
}

/// The test keys must have different key ids, or a foreign value would be
/// counted as corrupt instead of as an unknown key.
fn distinct_key_files() -> (KeyFile, KeyFile) {
    let one = KeyFile::new(&[KEY_1]);
    let two = KeyFile::new(&[KEY_2]);
    assert_ne!(
        one.current_key_id(),
        two.current_key_id(),
        "pick other test keys"
    );
    (one, two)
}

#[test]
fn tls12_server_with_another_key_cannot_open_the_session() {
    let redis = start_redis();
    let url = store_url(&redis);
    let (one, two) = distinct_key_files();
    let a = server(&url, &one);
    let b = server(&url, &two);

    let first = connect(a.addr(), Version::Tls12, None);
    let on_b = connect(b.addr(), Version::Tls12, Some(&first.session));
    assert!(
        !on_b.resumed,
        "B opened a session sealed under a key it does not hold"
    );
    let sb = stats(b.addr());
    assert_eq!(counter(&sb, "redis.unknown_key"), 1, "{sb}");
    assert_eq!(counter(&sb, "redis.corrupt"), 0, "{sb}");
    assert_eq!(counter(&sb, "resumed"), 0, "{sb}");

    // An unknown key is left in Redis for the servers that hold it.
    let on_a = connect(a.addr(), Version::Tls12, Some(&first.session));
    assert!(on_a.resumed, "A lost its session after B failed to open it");
}

#[test]
fn tls13_server_with_another_key_cannot_open_the_ticket() {
    let redis = start_redis();
    let url = store_url(&redis);
    let (one, two) = distinct_key_files();
    let a = server(&url, &one);
    let b = server(&url, &two);

    let first = connect(a.addr(), Version::Tls13, None);
    let on_b = connect(b.addr(), Version::Tls13, Some(&first.session));
    assert!(
        !on_b.resumed,
        "B opened a ticket sealed under a key it does not hold"
    );
    let sb = stats(b.addr());
    assert_eq!(
        counter(&sb, "redis.unknown_key") + counter(&sb, "redis.corrupt"),
        1,
        "{sb}"
    );
    assert_eq!(counter(&sb, "resumed"), 0, "{sb}");
}

#[test]
fn older_key_in_the_ring_still_opens_sessions_during_rotation() {
    let redis = start_redis();
    let url = store_url(&redis);
    let (old, _) = distinct_key_files();
    // Step 2 of a rotation: the new key is current, the old one is kept.
    let rotated = KeyFile::new(&[KEY_2, KEY_1]);
    let a = server(&url, &old);
    let b = server(&url, &rotated);

    let sealed_old = connect(a.addr(), Version::Tls12, None);
    let on_b = connect(b.addr(), Version::Tls12, Some(&sealed_old.session));
    assert!(
        on_b.resumed,
        "the rotated ring did not open an old-key session"
    );

    // B seals new sessions under the new key, which A does not hold yet.
    let sealed_new = connect(b.addr(), Version::Tls12, None);
    let on_a = connect(a.addr(), Version::Tls12, Some(&sealed_new.session));
    assert!(
        !on_a.resumed,
        "A opened a session sealed under a key it lacks"
    );
    let sa = stats(a.addr());
    assert_eq!(counter(&sa, "redis.unknown_key"), 1, "{sa}");
}
