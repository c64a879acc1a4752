//! The core envelope decoder (`tls_session_cache::decode`): the bytes any
//! store that keeps sessions outside the process hands back.
//!
//! Differential: an envelope that decodes re-encodes to the same bytes, and
//! a limit below its session's length refuses it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tls_session_cache::{EnvelopeError, decode, decode_with_limit, encode};

fuzz_target!(|data: &[u8]| {
    let Ok((key, session)) = decode(data) else {
        return;
    };
    assert_eq!(
        encode(&key, &session),
        data,
        "decode then encode changed the bytes"
    );
    assert_eq!(
        key.protocol, session.protocol,
        "a key names its session's protocol"
    );
    if let Some(limit) = session.der.len().checked_sub(1) {
        assert!(matches!(
            decode_with_limit(data, limit),
            Err(EnvelopeError::Oversize { .. })
        ));
    }
});
