//! Scenarios 12 and 13 (issue 10): clients that complete the handshake and
//! then drop the connection — no request, no close_notify — must keep their
//! session. Each starts its own server (memory store).
//!
//! A dropped connection reaches the server in one of two ways: a FIN (the
//! client's kernel closing the socket of a killed or exiting client) or a
//! reset (a client closing with `SO_LINGER` 0, as `openssl s_time` does, or
//! a killed client that had unread data). Both are exercised.

use std::net::SocketAddr;
use std::path::Path;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use super::check::{Check, TLS12, counter, fetch_stats};
use super::context::Context;
use super::relay::Relay;
use super::sclient::Handshake;
use super::server::Server;
use super::steps::{Steps, Version};
use crate::stime::{self, Reuse};

/// Scenario 12: the observed column when it passes.
pub const STIME_EXPECTED: &str = "resumed >= 99%";
/// `s_time -time`: long enough for hundreds of connections, a few seconds.
const STIME_SECONDS: u64 = 2;
/// Share of s_time's connections after the first that must resume.
const STIME_PERCENT: u64 = 99;
/// `/stats` fetches while waiting for the server to count s_time's last
/// handshakes (it may still be finishing one when s_time exits).
const STATS_TRIES: u64 = 20;
/// Pause between those fetches.
const STATS_POLL: Duration = Duration::from_millis(50);

/// Scenario 13, both versions: a preconnect killed (FIN), its session
/// offered; a preconnect reset (RST), its session offered.
pub const PRECONNECT_EXPECTED: &str = "killed: New, Reused, reset: New, Reused";
/// Time the server gets to see a connection dropped before its session is
/// offered again (a browser's next visit comes much later).
const DROP_NOTICED: Duration = Duration::from_millis(200);

/// Scenario 12: `openssl s_time -reuse -tls1_2` without `-www` (every
/// connection closed with a reset right after its handshake) must resume at
/// least [`STIME_PERCENT`] % of its connections after the first, and the
/// server's `/stats` must count what s_time saw.
pub fn unclean_close_s_time(ctx: &mut Context) -> Result<Vec<Check>, String> {
    let ctx: &Context = ctx;
    let server = ctx.start_server(&[])?;
    let before = fetch_stats(ctx, &server)?;
    let reuse = stime::run(&ctx.openssl, server.addr(), STIME_SECONDS)
        .map_err(|e| format!("{e}{}", server.log_excerpt()))?;
    let counted = Counted::after(ctx, &server, &before, reuse.total())?;
    let mut problems = counted.disagreement(&reuse);
    let observed = if reuse.at_least(STIME_PERCENT) {
        STIME_EXPECTED.to_string()
    } else {
        problems.push(format!(
            "s_time: {} of {} connections after the first resumed; /stats: resumed +{}, \
             full +{} (besides the /stats requests)",
            reuse.reused, reuse.connections, counted.resumed, counted.full
        ));
        format!("resumed {}%", reuse.percent_floor())
    };
    let check = Check::compare(TLS12, STIME_EXPECTED, observed, problems);
    server.stop().map_err(|e| e.to_string())?;
    Ok(vec![check])
}

/// Handshakes a server counted in `/stats` between two fetches, less the
/// `/stats` requests themselves.
#[derive(Debug, PartialEq, Eq)]
struct Counted {
    resumed: u64,
    full: u64,
}

impl Counted {
    /// Fetches `/stats` until the server has counted `expected` handshakes
    /// since `before` (each fetch is a full handshake of its own, counted
    /// before it answers, and subtracted), at most [`STATS_TRIES`] times.
    fn after(
        ctx: &Context,
        server: &Server,
        before: &Value,
        expected: u64,
    ) -> Result<Counted, String> {
        let (resumed0, full0) = handshake_counters(before)?;
        let mut fetches = 0;
        loop {
            let after = fetch_stats(ctx, server)?;
            fetches += 1;
            let (resumed1, full1) = handshake_counters(&after)?;
            let counted = Counted {
                resumed: resumed1.saturating_sub(resumed0),
                full: full1.saturating_sub(full0).saturating_sub(fetches),
            };
            if counted.resumed + counted.full >= expected || fetches >= STATS_TRIES {
                return Ok(counted);
            }
            thread::sleep(STATS_POLL);
        }
    }

    /// Where the server's counts and s_time's differ.
    fn disagreement(&self, reuse: &Reuse) -> Vec<String> {
        let mut problems = Vec::new();
        if self.resumed != reuse.reused {
            problems.push(format!(
                "/stats counted {} resumed handshakes, s_time {}",
                self.resumed, reuse.reused
            ));
        }
        if self.resumed + self.full != reuse.total() {
            problems.push(format!(
                "/stats counted {} handshakes, s_time made {}",
                self.resumed + self.full,
                reuse.total()
            ));
        }
        problems
    }
}

/// `resumed` and `full` of a `/stats` answer.
fn handshake_counters(stats: &Value) -> Result<(u64, u64), String> {
    match (counter(stats, "resumed"), counter(stats, "full")) {
        (Some(resumed), Some(full)) => Ok((resumed, full)),
        _ => Err(format!("/stats lacks `resumed` or `full`: {stats}")),
    }
}

/// How a preconnect ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hangup {
    /// s_client is killed: its kernel closes the connection with a FIN.
    Killed,
    /// The connection is reset (RST) through a [`Relay`], then s_client is
    /// killed.
    Reset,
}

impl Hangup {
    const BOTH: [Hangup; 2] = [Hangup::Killed, Hangup::Reset];

    /// The row label of its runs.
    fn label(self) -> &'static str {
        match self {
            Hangup::Killed => "killed:",
            Hangup::Reset => "reset:",
        }
    }

    /// The stem of its session file.
    fn stem(self) -> &'static str {
        match self {
            Hangup::Killed => "preconnect-killed",
            Hangup::Reset => "preconnect-reset",
        }
    }
}

/// Scenario 13: per version, a preconnect-style s_client (handshake, the
/// TLS 1.3 tickets read and saved, no request) is killed, and its saved
/// session must then resume; the same with the connection reset instead.
pub fn unclean_close_preconnect(ctx: &mut Context) -> Result<Vec<Check>, String> {
    let ctx: &Context = ctx;
    let server = ctx.start_server(&[])?;
    let mut checks = Vec::new();
    for version in Version::BOTH {
        let mut steps = Steps::new(ctx, version);
        for hangup in Hangup::BOTH {
            let file = ctx.file(&version.session_file(hangup.stem()));
            let handshakes = preconnect(ctx, version, &server, &file, hangup)?;
            steps.record(hangup.label(), handshakes);
            thread::sleep(DROP_NOTICED);
            steps.offer(hangup.label(), &server, &file)?;
        }
        checks.push(steps.check(PRECONNECT_EXPECTED, None, vec![]));
    }
    server.stop().map_err(|e| e.to_string())?;
    Ok(checks)
}

/// One preconnect: an idle s_client that saves its session in `file`, then
/// hangs up as `hangup` says. Returns its handshakes.
fn preconnect(
    ctx: &Context,
    version: Version,
    server: &Server,
    file: &Path,
    hangup: Hangup,
) -> Result<Vec<Handshake>, String> {
    // A file left by an earlier run would hide a missing session.
    let _ = std::fs::remove_file(file);
    let relay = match hangup {
        Hangup::Killed => None,
        Hangup::Reset => Some(Relay::start(server.addr()).map_err(|e| format!("relay: {e}"))?),
    };
    let target: SocketAddr = relay.as_ref().map_or(server.addr(), Relay::addr);
    let mut client = version.client(ctx, target).sess_out(file).start_idle()?;
    client
        .wait_for_session(file)
        .map_err(|e| format!("{} preconnect: {e}{}", hangup.label(), server.log_excerpt()))?;
    if let Some(relay) = relay {
        relay.reset()?;
    }
    Ok(client.kill())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_and_s_time_counts_are_compared() {
        let reuse = Reuse {
            connections: 10,
            reused: 9,
        };
        let agree = Counted {
            resumed: 9,
            full: 2,
        };
        assert!(agree.disagreement(&reuse).is_empty());
        let fewer = Counted {
            resumed: 8,
            full: 2,
        };
        assert_eq!(fewer.disagreement(&reuse).len(), 2);
    }

    #[test]
    fn missing_counters_are_an_error() {
        assert_eq!(
            handshake_counters(&serde_json::json!({"resumed": 3, "full": 4})),
            Ok((3, 4))
        );
        assert!(handshake_counters(&serde_json::json!({"resumed": 3})).is_err());
    }
}
