//! Scenarios 6–8: example servers sharing one Redis — context isolation,
//! resumption across a fleet, and across a restart.

use super::check::Check;
use super::context::Context;
use super::shared_store::{SharedStore, stop_all};
use super::steps::{Steps, Version};

/// Scenario 6, both versions: B (another `--context`) must not resume A's
/// session; A still does (the miss on B consumed nothing).
pub const ISOLATION_EXPECTED: &str = "A New, B New, A Reused";
/// Scenario 7, TLS 1.2: B resumes A's session, and A still can.
const FLEET_EXPECTED_12: &str = "A New, B Reused, A Reused";
/// Scenario 7, TLS 1.3: B resumes A's ticket, which is then spent fleet-wide.
const FLEET_EXPECTED_13: &str = "A New, B Reused, A New";
/// Scenario 7 in one line, for a row written without running.
pub const FLEET_EXPECTED: &str = "A New, B Reused, A Reused (TLSv1.3: A New)";
/// Scenario 8, both versions.
pub const RESTART_EXPECTED: &str = "New, restart, Reused";

/// Scenario 6: two servers with different `--context` on one Redis.
pub fn context_isolation(ctx: &mut Context) -> Result<Vec<Check>, String> {
    let a = ["--context", "interop-a"];
    let b = ["--context", "interop-b"];
    a_then_b_then_a(ctx, "isolation", [&a, &b], |_| ISOLATION_EXPECTED)
}

/// Scenario 7: A issues, B resumes through Redis, then A is offered the
/// same session again.
pub fn fleet(ctx: &mut Context) -> Result<Vec<Check>, String> {
    a_then_b_then_a(ctx, "fleet", [&[], &[]], |version| match version {
        Version::Tls12 => FLEET_EXPECTED_12,
        Version::Tls13 => FLEET_EXPECTED_13,
    })
}

/// Servers A and B (with `args`) on one Redis; per version, a session A
/// issued is offered to B, then to A again.
fn a_then_b_then_a(
    ctx: &Context,
    stem: &str,
    args: [&[&str]; 2],
    expected: fn(Version) -> &'static str,
) -> Result<Vec<Check>, String> {
    let store = SharedStore::start(ctx)?;
    let a = store.server(ctx, args[0])?;
    let b = store.server(ctx, args[1])?;
    let mut checks = Vec::new();
    for version in Version::BOTH {
        let file = ctx.file(&version.session_file(stem));
        let mut steps = Steps::new(ctx, version);
        steps.issue("A", &a, &file)?;
        steps.offer("B", &b, &file)?;
        steps.offer("A", &a, &file)?;
        checks.push(steps.check(expected(version), None, vec![]));
    }
    stop_all(store, [a, b])?;
    Ok(checks)
}

/// Scenario 8: sessions issued, the server restarted on the same address
/// (nothing survives in the process), the sessions offered again.
pub fn restart(ctx: &mut Context) -> Result<Vec<Check>, String> {
    let ctx: &Context = ctx;
    let store = SharedStore::start(ctx)?;
    let server = store.server(ctx, &[])?;
    let mut rows = Vec::new();
    for version in Version::BOTH {
        let file = ctx.file(&version.session_file("restart"));
        let mut steps = Steps::new(ctx, version);
        steps.issue("", &server, &file)?;
        steps.mark("restart");
        rows.push((steps, file));
    }
    let server = server.restart().map_err(|e| e.to_string())?;
    let mut checks = Vec::new();
    for (mut steps, file) in rows {
        steps.offer("", &server, &file)?;
        checks.push(steps.check(RESTART_EXPECTED, None, vec![]));
    }
    stop_all(store, [server])?;
    Ok(checks)
}
