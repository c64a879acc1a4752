//! The Redis store's read path with a fixed key ring: seal open (AES-256-GCM,
//! versions 1 and 2), the version-2 restore of the key fields, the envelope
//! decode under the size limit. Input: a key prefix (see the crate note)
//! and the value read from Redis; with the plaintext flag, the rest is
//! sealed first (seal version 1 to 4 as its flags say), so that the code
//! behind the authentication tag is reached too.
//!
//! Differential: a value that opens seals again and opens to the same
//! plaintext; a version-2 plaintext that restores strips back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tls_session_cache_fuzz::{PREFIX, flag, keyed, ring, seal_version};
use tls_session_cache_redis::fuzzing::{is_stripped, open, open_value, restore, seal, strip};
use tls_session_cache_redis::naming::{previous_redis_key, redis_key};

const MAX_SESSION_SIZE: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some(input) = keyed(data) else {
        return;
    };
    let ring = ring();
    let name = if input.flags & flag::PREVIOUS != 0 {
        previous_redis_key(PREFIX, &input.key)
    } else {
        redis_key(PREFIX, &input.key)
    };
    let name = name.as_bytes();
    let sealed = if input.flags & flag::PLAINTEXT != 0 {
        let version = seal_version(input.flags);
        let sealed = seal(&ring, version, name, input.rest);
        assert_eq!(
            open(&ring, name, &sealed),
            Ok((version, input.rest.to_vec()))
        );
        sealed
    } else {
        input.rest.to_vec()
    };
    if let Ok((version, plain)) = open(&ring, name, &sealed) {
        let again = seal(&ring, version, name, &plain);
        assert_eq!(open(&ring, name, &again), Ok((version, plain.clone())));
        // A value sealed for one name never opens under another.
        let other = redis_key("other", &input.key);
        assert!(open(&ring, other.as_bytes(), &sealed).is_err());
        if is_stripped(version)
            && let Ok(envelope) = restore(&plain, &input.key)
        {
            assert_eq!(strip(&envelope, &input.key), Some(plain.clone()));
        }
    }
    if let Ok((found, session)) = open_value(&ring, name, &input.key, &sealed, MAX_SESSION_SIZE) {
        assert!(session.der.len() <= MAX_SESSION_SIZE);
        assert_eq!(found.protocol, session.protocol);
    }
});
