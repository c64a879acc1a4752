//! The OpenSSL binding's path from stored bytes to the `SSL_SESSION` its get
//! callback hands to OpenSSL: the compact form expanded (plain DER read as
//! it is), `d2i_SSL_SESSION`, then the id and context checks. Input: a key prefix (see the crate note; the flags byte's bit 4
//! says the rest is a core envelope, decoded first as a store does, else
//! the rest is the stored DER itself).
//!
//! Differential: a session that passes re-encodes (`i2d`) to bytes that
//! decode to a session encoding the same, with the same id and context.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openssl::ssl::SslSession;
use tls_session_cache::{StoredSession, decode};
use tls_session_cache_fuzz::keyed;
use tls_session_cache_openssl::fuzzing::session_from_stored;

const ENVELOPE: u8 = 16;
/// The store's times for raw (not enveloped) inputs: a compact session
/// takes its times from them.
const CREATED: u64 = 1_800_000_000;
const EXPIRES: u64 = CREATED + 300;

fuzz_target!(|data: &[u8]| {
    let Some(input) = keyed(data) else {
        return;
    };
    let (key, stored) = if input.flags & ENVELOPE != 0 {
        let Ok((key, stored)) = decode(input.rest) else {
            return;
        };
        (key, stored)
    } else {
        let stored = StoredSession::new(input.rest.to_vec(), CREATED, EXPIRES, input.key.protocol);
        (input.key, stored)
    };
    let id = key.id.as_bytes();
    let Ok(session) = session_from_stored(&key, &stored) else {
        return;
    };
    assert_eq!(session.id(), id);
    let der2 = session.to_der().expect("a decoded session encodes");
    let plain = StoredSession::new(der2.clone(), stored.created, stored.expires, key.protocol);
    let again = session_from_stored(&key, &plain).expect("a re-encoded session decodes");
    assert_eq!(
        again.to_der().expect("encodes"),
        der2,
        "i2d(d2i(i2d(s))) != i2d(s)"
    );
    // What OpenSSL reads off a session it resumes.
    let _ = (
        again.protocol_version(),
        again.time(),
        again.timeout(),
        again.master_key_len(),
    );
    let copy = SslSession::from_der(&der2).expect("decodes");
    assert_eq!(copy.id(), id);
});
