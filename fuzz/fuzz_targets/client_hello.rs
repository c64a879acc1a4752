//! The async cache's ClientHello reading: raw bytes a client sends (one or
//! more TLS records, fragmented or not) go to a real OpenSSL server
//! connection whose client-hello callback plans the lookups from the
//! legacy session id and the `pre_shared_key` / `supported_versions`
//! extensions (`hello::read_plan`, `psk::psk_identities`,
//! `psk::offers_tls13`); both on a server that allows TLS 1.3 and on one
//! that stops at TLS 1.2.
//!
//! Checked: the plan's bounds (at most `MAX_PSK_LOOKUPS` lookups, 32-byte
//! ticket ids taken once each in TLS 1.3, one get of the session id in
//! TLS 1.2, and nothing when an extension was malformed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tls_session_cache::Protocol;
use tls_session_cache_tokio::fuzzing::plan_from_records;
use tls_session_cache_tokio::hello::{Lookup, MAX_PSK_LOOKUPS};

fuzz_target!(|data: &[u8]| {
    for allows_tls13 in [true, false] {
        let Some(plan) = plan_from_records(data, allows_tls13) else {
            continue;
        };
        if plan.malformed {
            assert!(plan.lookups.is_empty());
        }
        match plan.protocol {
            Protocol::Tls13 => {
                assert!(allows_tls13, "TLS 1.3 planned on a TLS 1.2 server");
                assert!(plan.lookups.len() <= MAX_PSK_LOOKUPS);
                for (id, how) in &plan.lookups {
                    assert_eq!(id.as_bytes().len(), 32);
                    assert_eq!(*how, Lookup::Take);
                }
            }
            Protocol::Tls12 => {
                assert!(plan.lookups.len() <= 1);
                assert!(plan.lookups.iter().all(|(_, how)| *how == Lookup::Get));
            }
        }
    }
});
