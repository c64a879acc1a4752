//! The committed seeds reach the deep end of their targets: sealed values
//! open with the fixed key ring and decode to their key's session, stored
//! sessions pass the binding's checks, recorded ClientHellos get planned.
//! (`cargo test --manifest-path fuzz/Cargo.toml`; a plain build.)

use std::path::Path;

use tls_session_cache::{StoredSession, decode};
use tls_session_cache_fuzz::{PREFIX, flag, keyed, ring};
use tls_session_cache_openssl::fuzzing::session_from_stored;
use tls_session_cache_redis::fuzzing::open_value;
use tls_session_cache_redis::naming::{previous_redis_key, redis_key};
use tls_session_cache_tokio::fuzzing::plan_from_records;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

#[test]
fn every_sealed_seed_opens_to_its_keys_session() {
    for seed in seeds("seal_open") {
        let input = keyed(&seed).unwrap();
        if input.flags & flag::PLAINTEXT != 0 {
            continue;
        }
        let name = if input.flags & flag::PREVIOUS != 0 {
            previous_redis_key(PREFIX, &input.key)
        } else {
            redis_key(PREFIX, &input.key)
        };
        let (found, _) =
            open_value(&ring(), name.as_bytes(), &input.key, input.rest, 1 << 16).unwrap();
        assert_eq!(found, input.key);
    }
}

#[test]
fn every_stored_session_seed_passes_the_binding_checks() {
    for seed in seeds("stored_session") {
        let input = keyed(&seed).unwrap();
        let (key, stored) = if input.flags & 16 != 0 {
            decode(input.rest).unwrap()
        } else {
            let stored = StoredSession::new(
                input.rest.to_vec(),
                1_800_000_000,
                1_800_000_300,
                input.key.protocol,
            );
            (input.key, stored)
        };
        session_from_stored(&key, &stored).unwrap();
    }
    for seed in seeds("envelope") {
        decode(&seed).unwrap();
    }
}

#[test]
fn recorded_client_hellos_are_planned() {
    let planned = seeds("client_hello")
        .iter()
        .filter(|s| plan_from_records(s, true).is_some_and(|p| !p.malformed))
        .count();
    // All but the hand-built malformed ones.
    assert!(planned >= 70, "{planned} planned");
}
