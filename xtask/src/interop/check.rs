//! What every scenario module shares: the row a scenario produces
//! ([`Check`]), how handshakes are rendered and checked, and reading a
//! server's `/stats`. Below the scenario modules ([`super::scenarios`] and
//! the modules it lists), so none of them imports another to get these.

use std::net::SocketAddr;

use serde_json::Value;

use super::context::Context;
use super::sclient::{Handshake, SClient, word};
use super::server::Server;

/// One row's worth of result from a scenario.
#[derive(Debug)]
pub struct Check {
    /// TLS version(s).
    pub protocol: String,
    /// What should happen.
    pub expected: String,
    /// What happened.
    pub observed: String,
    /// Why it failed; `None` means PASS.
    pub failure: Option<String>,
}

impl Check {
    /// PASS when `observed == expected` and no error was found on the way.
    pub(super) fn compare(
        protocol: &str,
        expected: &str,
        observed: String,
        problems: Vec<String>,
    ) -> Check {
        let mut failure = problems;
        if observed != expected {
            failure.insert(0, format!("expected `{expected}`, observed `{observed}`"));
        }
        Check {
            protocol: protocol.into(),
            expected: expected.into(),
            observed,
            failure: (!failure.is_empty()).then(|| failure.join("; ")),
        }
    }
}

pub(super) const TLS12: &str = "TLSv1.2";
pub(super) const TLS13: &str = "TLSv1.3";

/// Renders handshakes as `New, Reused×5`.
pub(super) fn render(handshakes: &[Handshake]) -> String {
    let mut parts: Vec<(bool, usize)> = Vec::new();
    for h in handshakes {
        match parts.last_mut() {
            Some((reused, n)) if *reused == h.reused => *n += 1,
            _ => parts.push((h.reused, 1)),
        }
    }
    parts
        .iter()
        .map(|&(reused, n)| match n {
            1 => word(reused).to_string(),
            2 => format!("{0}, {0}", word(reused)),
            n => format!("{}×{n}", word(reused)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Problems with the negotiated protocol of any handshake.
pub(super) fn wrong_protocols(handshakes: &[Handshake], want: &str) -> Vec<String> {
    handshakes
        .iter()
        .filter(|h| h.protocol != want)
        .map(|h| format!("negotiated {} instead of {want}", h.protocol))
        .collect()
}

/// The file s_client was told to save the session in is there and not empty.
pub(super) fn saved(file: &std::path::Path) -> Result<(), String> {
    match std::fs::metadata(file) {
        Ok(m) if m.len() > 0 => Ok(()),
        _ => Err(format!(
            "s_client saved no session in {} (for TLS 1.3: no NewSessionTicket arrived)",
            file.display()
        )),
    }
}

/// `GET /stats` over a fresh TLS connection: itself a full handshake, which
/// the server has counted by the time it answers.
pub(super) fn stats_client(ctx: &Context, addr: SocketAddr) -> SClient {
    ctx.client(addr).path("/stats")
}

/// The `/stats` of `server` (a full handshake of its own, counted before
/// the answer).
pub(super) fn fetch_stats(ctx: &Context, server: &Server) -> Result<Value, String> {
    stats_client(ctx, server.addr())
        .run()
        .map(|o| o.body)
        .map_err(|e| format!("/stats: {e}{}", server.log_excerpt()))
}

/// A top-level counter of the `/stats` JSON.
pub(super) fn counter(stats: &Value, name: &str) -> Option<u64> {
    stats.get(name).and_then(Value::as_u64)
}
