//! Thousands of resumed handshakes in one process, then everything dropped:
//! run it under `valgrind --leak-check=full --errors-for-leak-kinds=definite
//! --error-exitcode=99` (or LeakSanitizer) to check the callbacks' reference
//! counting. Exits 0 when every resumption resumed.
//!
//! `leak_check [RESUMPTIONS_PER_VERSION]` (default 1000: 2000 in all, half
//! TLS 1.2 session ids, half TLS 1.3 stateful tickets), then a tenth as
//! many TLS 1.3 resumptions through a HelloRetryRequest (the ticket the
//! first ClientHello took is remembered on the connection).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::ExitCode;

use common::{Client, TestServer, identity, server_builder};
use openssl::ssl::SslVersion;
use tls_session_cache_openssl::SessionCache;

fn main() -> ExitCode {
    let per_version: usize = match std::env::args().nth(1).map(|s| s.parse()) {
        None => 1000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("leak_check: bad count: {e}");
            return ExitCode::from(2);
        }
    };
    let cache = match SessionCache::builder().context(b"leak-check").build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("leak_check: {e}");
            return ExitCode::from(1);
        }
    };
    {
        let mut b = server_builder(&identity("localhost"));
        if let Err(e) = cache.install(&mut b) {
            eprintln!("leak_check: {e}");
            return ExitCode::from(1);
        }
        let server = TestServer::start(b.build());

        // TLS 1.2: one full handshake, then the session id again and again.
        let c12 = Client::new(SslVersion::TLS1_2);
        let session = server.full_handshake(&c12).last_session();
        for i in 0..per_version {
            let c = c12.connect(server.addr, Some(&session));
            if !c.resumed || !server.accepted().resumed {
                eprintln!("leak_check: TLS 1.2 resumption {i} did not resume");
                return ExitCode::from(1);
            }
        }

        // TLS 1.3: a chain, each resumption using the ticket the last one gave.
        let c13 = Client::new(SslVersion::TLS1_3);
        let mut ticket = server.full_handshake(&c13).last_session();
        for i in 0..per_version {
            let c = c13.connect(server.addr, Some(&ticket));
            if !c.resumed || !server.accepted().resumed {
                eprintln!("leak_check: TLS 1.3 resumption {i} did not resume");
                return ExitCode::from(1);
            }
            ticket = c.last_session();
        }

        // TLS 1.3 through a HelloRetryRequest: the server accepts X25519
        // only, the client's first key share is P-256.
        let mut b = server_builder(&identity("localhost"));
        let hrr = b
            .set_groups_list("X25519")
            .map_err(|e| e.to_string())
            .and_then(|()| cache.install(&mut b).map_err(|e| e.to_string()));
        if let Err(e) = hrr {
            eprintln!("leak_check: {e}");
            return ExitCode::from(1);
        }
        let hrr_server = TestServer::start(b.build());
        let c_hrr = Client::configured(SslVersion::TLS1_3, |b| {
            let _ = b.set_groups_list("P-256:X25519");
        });
        let mut ticket = hrr_server.full_handshake(&c_hrr).last_session();
        for i in 0..per_version / 10 {
            let c = c_hrr.connect(hrr_server.addr, Some(&ticket));
            if !c.resumed || !hrr_server.accepted().resumed {
                eprintln!(
                    "leak_check: TLS 1.3 resumption {i} after a HelloRetryRequest did not resume"
                );
                return ExitCode::from(1);
            }
            ticket = c.last_session();
        }
        // servers, clients, contexts and sessions dropped here
    }
    let stats = cache.stats();
    eprintln!("leak_check: {}", stats.to_json());
    let expected = 2 * per_version as u64 + per_version as u64 / 10;
    if stats.resumed != expected {
        eprintln!(
            "leak_check: server counted {} resumptions, expected {expected}",
            stats.resumed
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
