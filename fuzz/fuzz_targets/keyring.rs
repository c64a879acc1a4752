//! The seal key-file parser (`KeyRing::parse`, what `KeyRing::from_file`
//! runs on the file's text).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tls_session_cache_redis::KeyRing;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ring) = KeyRing::parse(text) {
        // Every key is one non-comment line of 64 hex digits.
        assert!(ring.key_count() >= 1);
        assert!(ring.key_count() <= text.lines().count());
        assert!(ring.key_count() * 64 <= text.len());
    }
});
