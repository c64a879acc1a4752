//! put / get / take / remove, expiry, sealing and tampering, key rotation,
//! plaintext refusal, write-behind — against a real redis-server.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use tls_session_cache::{ManualClock, Protocol, SessionStore, StoreError, StoredSession};
use tls_session_cache_redis::{BuildError, KeyRing, RedisStore};

#[test]
fn put_get_take_remove() {
    let redis = redis();
    let store = builder(&redis.url()).build().unwrap();
    store.ping().unwrap();

    let k12 = random_key(b"svc");
    let s12 = session(Protocol::Tls12, 300);
    store.put(&k12, &s12).unwrap();
    assert_eq!(store.get(&k12).unwrap(), Some(s12.clone()));
    assert_eq!(store.get(&k12).unwrap(), Some(s12.clone()), "get leaves it");
    assert!(store.remove(&k12).unwrap());
    assert!(!store.remove(&k12).unwrap(), "second remove finds nothing");
    assert_eq!(store.get(&k12).unwrap(), None);

    let k13 = random_key13(b"svc");
    let s13 = session(Protocol::Tls13, 300);
    store.put(&k13, &s13).unwrap();
    assert_eq!(store.take(&k13).unwrap(), Some(s13));
    assert_eq!(store.take(&k13).unwrap(), None, "take is single use");

    // Contexts separate sessions with the same id.
    let other_ctx = tls_session_cache::SessionKey::new(
        k12.protocol,
        tls_session_cache::SessionIdContext::new(b"x").unwrap(),
        k12.id,
    );
    store.put(&k12, &s12).unwrap();
    assert_eq!(store.get(&other_ctx).unwrap(), None);

    let st = store.stats();
    assert_eq!(st.inserts, 3);
    assert_eq!(st.hits, 3);
    assert_eq!(st.misses, 3);
    assert_eq!(st.removals, 1);
    assert_eq!(st.errors, 0);
}

#[test]
fn values_are_sealed_not_plaintext() {
    let redis = redis();
    let store = builder(&redis.url()).build().unwrap();
    let key = random_key(b"svc");
    let s = session(Protocol::Tls12, 300);
    store.put(&key, &s).unwrap();
    let raw = raw_get(&mut redis.connection().unwrap(), &store.redis_key(&key)).unwrap();
    assert_eq!(
        raw[0], 3,
        "seal version 3: the key-less envelope, per-value key"
    );
    // Seal header, salt and tag (42) + flags and times (17) + DER.
    assert_eq!(raw.len(), 42 + 17 + s.der.len());
    assert_eq!(raw[1], ring(0x42).current_key_id());
    assert!(
        !raw.windows(32).any(|w| w == &s.der[..32]),
        "session bytes visible in Redis"
    );
    assert!(!raw.starts_with(b"TLSC"));
}

#[test]
fn expiry_is_set_in_redis_and_sealed_expiry_rules() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let clock = ManualClock::new(1_000_000);
    let store = builder(&redis.url()).clock(clock.clone()).build().unwrap();

    let key = random_key(b"svc");
    let s = StoredSession::new(random_bytes(64), 1_000_000, 1_000_060, Protocol::Tls12);
    store.put(&key, &s).unwrap();
    let rkey = store.redis_key(&key);
    let pttl: i64 = redis::cmd("PTTL").arg(&rkey).query(&mut con).unwrap();
    assert!(pttl > 0 && pttl <= 60_000, "PTTL {pttl}");

    // Someone lengthens the key's life in Redis; the sealed expiry still rules.
    let _: i64 = redis::cmd("PERSIST").arg(&rkey).query(&mut con).unwrap();
    clock.advance(Duration::from_secs(60));
    assert_eq!(store.get(&key).unwrap(), None);
    assert_eq!(store.stats().expirations, 1);
    assert!(
        !raw_exists(&mut con, &rkey),
        "expired value deleted on read"
    );

    // An already expired session is not stored, and replaces what was there.
    let now = 1_000_060;
    let live = StoredSession::new(random_bytes(8), now, now + 100, Protocol::Tls12);
    store.put(&key, &live).unwrap();
    assert!(raw_exists(&mut con, &rkey));
    let dead = StoredSession::new(random_bytes(8), now - 10, now, Protocol::Tls12);
    store.put(&key, &dead).unwrap();
    assert!(!raw_exists(&mut con, &rkey));
}

#[test]
fn redis_drops_the_key_when_its_ttl_runs_out() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let clock = ManualClock::new(5_000);
    let store = builder(&redis.url()).clock(clock).build().unwrap();
    let key = random_key(b"svc");
    // One second to live: Redis, not the store, must remove it.
    store
        .put(
            &key,
            &StoredSession::new(random_bytes(8), 5_000, 5_001, Protocol::Tls12),
        )
        .unwrap();
    let rkey = store.redis_key(&key);
    assert!(raw_exists(&mut con, &rkey));
    // Waiting for wall-clock time to pass is the point of this test.
    let mut gone = false;
    for _ in 0..100 {
        if !raw_exists(&mut con, &rkey) {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gone, "Redis kept the key past its PX");
}

#[test]
fn single_use_under_a_16_thread_race() {
    const SESSIONS: usize = 200;
    const THREADS: usize = 16;
    let redis = redis();
    let store = Arc::new(builder(&redis.url()).build().unwrap());
    let keys: Arc<Vec<_>> = Arc::new((0..SESSIONS).map(|_| random_key13(b"race")).collect());
    for k in keys.iter() {
        store.put(k, &session(Protocol::Tls13, 300)).unwrap();
    }
    let wins: Arc<Vec<AtomicU32>> = Arc::new((0..SESSIONS).map(|_| AtomicU32::new(0)).collect());
    let start = Arc::new(std::sync::Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, keys, wins, start) =
                (store.clone(), keys.clone(), wins.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 0..SESSIONS {
                    // Each thread walks the keys from a different place.
                    let i = (i + t * 13) % SESSIONS;
                    if store.take(&keys[i]).unwrap().is_some() {
                        wins[i].fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for (i, w) in wins.iter().enumerate() {
        assert_eq!(w.load(Ordering::SeqCst), 1, "session {i}");
    }
    let st = store.stats();
    assert_eq!(st.hits, SESSIONS as u64);
    assert_eq!(st.misses, (SESSIONS * (THREADS - 1)) as u64);
}

#[test]
fn a_flipped_byte_is_a_counted_miss_left_to_expire() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let store = builder(&redis.url()).build().unwrap();
    let mut tamper = |index: usize| {
        let key = random_key(b"svc");
        store.put(&key, &session(Protocol::Tls12, 300)).unwrap();
        let rkey = store.redis_key(&key);
        let mut raw = raw_get(&mut con, &rkey).unwrap();
        let index = index.min(raw.len() - 1);
        raw[index] ^= 0x40;
        let _: () = redis::cmd("SET")
            .arg(&rkey)
            .arg(raw)
            .arg("KEEPTTL")
            .query(&mut con)
            .unwrap();
        assert_eq!(store.get(&key).unwrap(), None, "flip at {index}");
        raw_exists(&mut con, &rkey)
    };
    // Version, nonce, ciphertext, tag: corrupt, a miss, and left in Redis
    // (it goes with its TTL): this server cannot tell tampering from a
    // value sealed under another server's key that shares a key id.
    for index in [0usize, 5, 20, 100, usize::MAX] {
        assert!(tamper(index), "corrupt value at flip {index} deleted");
    }
    // The key id: a key this server does not hold — a miss, left in place.
    assert!(tamper(1), "value with an unknown key id deleted");
    let rs = store.redis_stats();
    assert_eq!(rs.corrupt, 5);
    assert_eq!(rs.unknown_key, 1);
    let st = store.stats();
    assert_eq!(st.errors, 5);
    assert_eq!(st.misses, 6);
    assert_eq!(st.hits, 0);
}

/// Two keys whose one-byte key ids are equal (pigeonhole: among 257 keys
/// two share an id).
fn keys_sharing_an_id() -> ([u8; 32], [u8; 32]) {
    let mut seen: Vec<(u8, [u8; 32])> = Vec::new();
    for n in 0u16..=256 {
        let mut key = [0x5a; 32];
        key[..2].copy_from_slice(&n.to_be_bytes());
        let id = KeyRing::new(key).current_key_id();
        if let Some((_, other)) = seen.iter().find(|(i, _)| *i == id) {
            return (*other, key);
        }
        seen.push((id, key));
    }
    unreachable!("257 keys, 256 ids")
}

#[test]
fn a_new_key_sharing_an_old_key_id_does_not_destroy_its_sessions() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let (old, new) = keys_sharing_an_id();
    assert_eq!(
        KeyRing::new(old).current_key_id(),
        KeyRing::new(new).current_key_id()
    );
    // Mid-rotation: one server already seals with the new key, another has
    // only the old one.
    let rotated = RedisStore::builder(&redis.url())
        .seal_keys(KeyRing::new(new).with_older(old))
        .timeouts(TEST_TIMEOUT)
        .build()
        .unwrap();
    let behind = RedisStore::builder(&redis.url())
        .seal_keys(KeyRing::new(old))
        .timeouts(TEST_TIMEOUT)
        .build()
        .unwrap();
    let key = random_key(b"svc");
    let s = session(Protocol::Tls12, 300);
    rotated.put(&key, &s).unwrap();

    // The server without the new key tries its old key (same id), which
    // fails to open: a counted miss — and the value stays for the fleet.
    assert_eq!(behind.get(&key).unwrap(), None);
    assert_eq!(behind.get(&key).unwrap(), None);
    assert_eq!(behind.redis_stats().corrupt, 2);
    assert_eq!(behind.stats().misses, 2);
    assert!(raw_exists(&mut con, &rotated.redis_key(&key)));
    assert_eq!(
        rotated.get(&key).unwrap(),
        Some(s),
        "the fleet still resumes it"
    );
}

#[test]
fn a_value_copied_to_another_key_is_a_miss() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let store = builder(&redis.url()).build().unwrap();
    let (a, b) = (random_key(b"svc"), random_key(b"svc"));
    store.put(&a, &session(Protocol::Tls12, 300)).unwrap();
    let value = raw_get(&mut con, &store.redis_key(&a)).unwrap();
    let _: () = redis::cmd("SET")
        .arg(store.redis_key(&b))
        .arg(value)
        .query(&mut con)
        .unwrap();
    assert_eq!(store.get(&b).unwrap(), None);
    assert_eq!(store.get(&b).unwrap(), None, "still a miss, not deleted");
    assert_eq!(store.take(&b).unwrap(), None);
    assert_eq!(store.redis_stats().corrupt, 3);
    assert!(store.get(&a).unwrap().is_some(), "the original still opens");
}

#[test]
fn plaintext_store_checks_the_envelope_key() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let store = RedisStore::builder(&redis.url())
        .insecure_plaintext()
        .timeouts(TEST_TIMEOUT)
        .build()
        .unwrap();
    let (a, b) = (random_key(b"svc"), random_key(b"svc"));
    let s = session(Protocol::Tls12, 300);
    store.put(&a, &s).unwrap();
    let value = raw_get(&mut con, &store.redis_key(&a)).unwrap();
    assert!(value.starts_with(b"TLSC"), "plaintext is the bare envelope");
    assert_eq!(store.get(&a).unwrap(), Some(s));
    let _: () = redis::cmd("SET")
        .arg(store.redis_key(&b))
        .arg(value)
        .query(&mut con)
        .unwrap();
    assert_eq!(store.get(&b).unwrap(), None, "another key's envelope");
    assert_eq!(store.redis_stats().corrupt, 1);

    // A sealing store cannot be fooled by a plaintext value either.
    let sealed = builder(&redis.url()).build().unwrap();
    assert_eq!(sealed.get(&a).unwrap(), None);
    assert_eq!(sealed.redis_stats().corrupt, 1);
}

#[test]
fn refuses_to_build_without_a_seal_key() {
    let err = RedisStore::builder("redis://127.0.0.1:1")
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::NoSealKey), "{err}");
    assert!(err.to_string().contains("insecure_plaintext"));
    let err = RedisStore::builder("redis://127.0.0.1:1")
        .seal_keys(ring(1))
        .insecure_plaintext()
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::ConflictingSealing));
    let err = builder("redis://127.0.0.1:1")
        .prefix("a{b}")
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::Prefix(_)));
    let err = builder("not a url").build().unwrap_err();
    assert!(matches!(err, BuildError::Url { .. }));
    let err = builder("redis://127.0.0.1:1")
        .write_behind(0)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::ZeroQueue));
    let err = builder("redis://127.0.0.1:1")
        .read_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::ZeroTimeout));
}

#[test]
fn oversize_sessions_are_refused_and_counted() {
    let redis = redis();
    let store = builder(&redis.url()).max_session_size(100).build().unwrap();
    let key = random_key(b"svc");
    let t = now();
    let big = StoredSession::new(random_bytes(101), t, t + 300, Protocol::Tls12);
    assert!(matches!(
        store.put(&key, &big),
        Err(StoreError::Oversize {
            size: 101,
            limit: 100
        })
    ));
    assert_eq!(store.stats().oversize, 1);
    assert_eq!(store.get(&key).unwrap(), None);
}

#[test]
fn key_rotation_keeps_old_sessions_and_seals_with_the_new_key() {
    let redis = redis();
    let mut con = redis.connection().unwrap();
    let old_ring = ring(0x01);
    let new_ring = ring(0x02).with_older([0x01; 32]);
    let before = RedisStore::builder(&redis.url())
        .seal_keys(old_ring.clone())
        .timeouts(TEST_TIMEOUT)
        .build()
        .unwrap();
    let after = RedisStore::builder(&redis.url())
        .seal_keys(new_ring.clone())
        .timeouts(TEST_TIMEOUT)
        .build()
        .unwrap();

    let old_key = random_key(b"svc");
    let old_session = session(Protocol::Tls12, 300);
    before.put(&old_key, &old_session).unwrap();
    assert_eq!(
        after.get(&old_key).unwrap(),
        Some(old_session),
        "old key still opens"
    );

    let new_key = random_key(b"svc");
    let new_session = session(Protocol::Tls12, 300);
    after.put(&new_key, &new_session).unwrap();
    let raw = raw_get(&mut con, &after.redis_key(&new_key)).unwrap();
    assert_eq!(raw[1], new_ring.current_key_id(), "sealed with the new key");
    // A server that only has the old key cannot open it: a miss, counted,
    // and the value is left for the servers that have the new key.
    if new_ring.current_key_id() != old_ring.current_key_id() {
        assert_eq!(before.get(&new_key).unwrap(), None);
        assert_eq!(before.redis_stats().unknown_key, 1);
        assert_eq!(before.redis_stats().corrupt, 0);
    }
    assert_eq!(after.get(&new_key).unwrap(), Some(new_session));

    // The same rotation through a key file: new key on the first line.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seal.keys");
    std::fs::write(
        &path,
        format!(
            "# current\n{}\n\n# previous\n{}\n",
            "02".repeat(32),
            "01".repeat(32)
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let from_file = tls_session_cache_redis::KeyRing::from_file(&path).unwrap();
    assert_eq!(from_file.current_key_id(), new_ring.current_key_id());
    assert_eq!(from_file.key_count(), 2);
}

#[test]
fn a_key_file_others_can_read_or_write_is_refused_unless_allowed() {
    use std::os::unix::fs::PermissionsExt;
    use tls_session_cache_redis::{KeyRing, KeyRingError};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seal.keys");
    std::fs::write(&path, format!("{}\n", "02".repeat(32))).unwrap();
    for mode in [0o640, 0o604, 0o620, 0o644] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        match KeyRing::from_file(&path) {
            Err(KeyRingError::Permissions { mode: m, .. }) => assert_eq!(m, mode),
            other => panic!("mode {mode:o}: {other:?}"),
        }
        assert!(KeyRing::from_file_allow_shared(&path).is_ok());
    }
    for mode in [0o600, 0o400] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        assert!(KeyRing::from_file(&path).is_ok(), "mode {mode:o}");
    }
}

#[test]
fn a_key_file_owned_by_another_user_is_refused_unless_allowed() {
    // Needs a file owned by someone else than the running user and root:
    // /proc/self of another process is not a regular file, so use a
    // system file whose owner is checked first.
    use std::os::unix::fs::MetadataExt;
    use tls_session_cache_redis::{KeyRing, KeyRingError};
    let me = std::fs::metadata("/proc/self").unwrap().uid();
    if me != 0 {
        // Not root: a file we own passes; the refusal is checked as root
        // below (chown needs it). Our own file:
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seal.keys");
        std::fs::write(&path, format!("{}\n", "02".repeat(32))).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(KeyRing::from_file(&path).is_ok());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seal.keys");
    std::fs::write(&path, format!("{}\n", "02".repeat(32))).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().uid(), 4242);
    // Root reads any file; the check is about who could rewrite it.
    match KeyRing::from_file(&path) {
        Err(KeyRingError::Owner {
            owner: 4242,
            user: 0,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(KeyRing::from_file_allow_shared(&path).is_ok());
}

#[test]
fn write_behind_stores_in_the_background_and_drops_when_full() {
    let redis = redis();
    let store = builder(&redis.url()).write_behind(4).build().unwrap();
    let key = random_key(b"svc");
    let s = session(Protocol::Tls12, 300);
    store.put(&key, &s).unwrap();
    assert!(store.flush(Duration::from_secs(10)), "queue drained");
    assert_eq!(store.get(&key).unwrap(), Some(s));
    assert_eq!(store.stats().inserts, 1);

    // A frozen Redis holds the writer on its first job; the queue fills.
    let slow = builder(&redis.url())
        .timeouts(Duration::from_millis(300))
        .write_behind(4)
        .build()
        .unwrap();
    redis.pause().unwrap();
    for _ in 0..50 {
        slow.put(&random_key(b"svc"), &session(Protocol::Tls12, 300))
            .unwrap();
    }
    let dropped = slow.redis_stats().dropped_writes;
    redis.resume().unwrap();
    assert!(dropped > 0, "nothing dropped with a full queue");
    assert!(slow.flush(Duration::from_secs(30)));
    drop(slow); // joins the writer thread
}
