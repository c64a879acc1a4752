//! Scenario 9: Redis dies under a running server, and comes back.
//!
//! While Redis is down every handshake must still complete (full, `New`)
//! and be bounded by `--redis-timeout-ms`; the observed slowest s_client
//! run is reported, but the pass criterion is completion within s_client's
//! own deadline, not a timing threshold. When Redis is back on the same
//! port, the same server process must resume again by itself once its
//! circuit breaker has probed Redis: polled with short waits, bounded.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::check::{Check, counter, fetch_stats};
use super::context::Context;
use super::server::Server;
use super::shared_store::{SharedStore, stop_all};
use super::steps::{Steps, Version};

/// Both versions: a session issued while Redis is up; with Redis down, that
/// session offered, a new one issued and offered; Redis back, a new session
/// issued and resumed.
pub const EXPECTED: &str = "New, down: New×3, up again: New, Reused";
/// TLS 1.3 on a server that sends a ticket only when its store kept the
/// session (rustls): no ticket while Redis is down, so nothing to offer.
const EXPECTED_NO_TICKET: &str = "New, down: New, down, no ticket: New, up again: New, Reused";
/// Every Redis call's budget (`--redis-timeout-ms`).
const REDIS_TIMEOUT_MS: &str = "50";
/// How long recovery may take: the breaker's back-off is seconds, not more.
const RECOVERY_GUARD: Duration = Duration::from_secs(30);
/// Pause between recovery attempts.
const RECOVERY_POLL: Duration = Duration::from_millis(200);

/// Scenario 9.
pub fn store_down(ctx: &mut Context) -> Result<Vec<Check>, String> {
    let ctx: &Context = ctx;
    let mut store = SharedStore::start(ctx)?;
    let server = store.server(ctx, &["--redis-timeout-ms", REDIS_TIMEOUT_MS])?;
    let mut rows = Vec::new();
    for version in Version::BOTH {
        let before = ctx.file(&version.session_file("down-before"));
        let mut steps = Steps::new(ctx, version);
        steps.issue("", &server, &before)?;
        rows.push((version, steps, before));
    }

    store.kill()?;
    let mut slowest_down = Vec::new();
    for (version, steps, before) in &mut rows {
        let during = ctx.file(&version.session_file("down-during"));
        steps.offer("down:", &server, before)?;
        if steps.issue_refused("down:", "down, no ticket:", &server, &during)? {
            steps.offer("down:", &server, &during)?;
        }
        slowest_down.push(steps.slowest());
    }
    let down_stats = fetch_stats(ctx, &server)?;
    let mut problems = Vec::new();
    match counter(&down_stats, "errors") {
        Some(n) if n > 0 => {}
        other => problems.push(format!(
            "Redis was down but /stats errors={other:?}: store failures are not counted"
        )),
    }
    let circuit_down = circuit(&down_stats);

    store.start_again()?;
    let mut recoveries = Vec::new();
    for (version, steps, _) in &mut rows {
        let recovery = until_reused(ctx, *version, &server)?;
        recoveries.push((recovery.attempts, recovery.elapsed));
        steps.extend(recovery.steps);
    }
    let up_stats = fetch_stats(ctx, &server)?;
    if circuit(&up_stats) != "closed" {
        problems.push(format!(
            "circuit `{}` after recovery, expected `closed`",
            circuit(&up_stats)
        ));
    }

    let checks = rows
        .iter()
        .zip(slowest_down)
        .zip(recoveries)
        .map(|(((version, steps, _), slowest), (attempts, elapsed))| {
            let note = format!(
                "slowest {:.2} s while down, circuit {circuit_down}; \
                 Reused at attempt {attempts}, {:.1} s",
                slowest.as_secs_f64(),
                elapsed.as_secs_f64()
            );
            let expected = if ctx.ticket_only_when_stored && *version == Version::Tls13 {
                EXPECTED_NO_TICKET
            } else {
                EXPECTED
            };
            steps.check(expected, Some(note), problems.clone())
        })
        .collect();
    stop_all(store, [server])?;
    Ok(checks)
}

/// The last recovery attempt: a fresh session issued and offered.
struct Recovery<'a> {
    steps: Steps<'a>,
    attempts: u32,
    elapsed: Duration,
}

/// Issues and offers fresh sessions until one is `Reused` or
/// [`RECOVERY_GUARD`] has passed (then the last attempt, not `Reused`, fails
/// the row).
fn until_reused<'a>(
    ctx: &'a Context,
    version: Version,
    server: &Server,
) -> Result<Recovery<'a>, String> {
    let file = ctx.file(&version.session_file("down-after"));
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut steps = Steps::new(ctx, version);
        // While the breaker still refuses, a rustls server sends no ticket:
        // an attempt that did not resume, as on the OpenSSL servers.
        let issued = steps.issue_refused("up again:", "up again, no ticket:", server, &file)?;
        let reused = issued && steps.offer("up again:", server, &file)?;
        if reused || started.elapsed() >= RECOVERY_GUARD {
            return Ok(Recovery {
                steps,
                attempts,
                elapsed: started.elapsed(),
            });
        }
        thread::sleep(RECOVERY_POLL);
    }
}

/// `"closed"`, `"open"`, `"half_open"`, or `"missing"`.
fn circuit(stats: &Value) -> &str {
    stats["redis"]["circuit"].as_str().unwrap_or("missing")
}
