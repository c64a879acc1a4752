//! Scenarios 14 and 15 (issue 12): TLS between the example servers and
//! Redis, and a Sentinel failover.
//!
//! * `redis-tls`: a TLS-only `redis-server` (`--port 0 --tls-port P`,
//!   client certificates required) with certificates made now; servers A and
//!   B on `rediss://` with `--redis-ca`, `--redis-cert`, `--redis-key`: B
//!   resumes A's session. A third server whose `--redis-ca` is another CA
//!   than the one that signed Redis's certificate: its handshakes are full,
//!   none fails, and `/stats` counts the refused TLS handshakes.
//! * `sentinel-failover`: a master, a replica and a Sentinel; servers A and
//!   B on `redis+sentinel://…`; B resumes A's session; the master is
//!   killed; fresh sessions are issued on A and offered to B (every s_client
//!   run must complete: full handshakes are fine meanwhile) until one is
//!   `Reused` — through the promoted replica. The time that took is shown,
//!   not compared.

use std::thread;
use std::time::{Duration, Instant};

use tls_session_cache_testkit::{RedisSentinel, RedisServer, TestPki};

use super::check::{Check, counter, fetch_stats};
use super::context::Context;
use super::steps::{Steps, Version};

/// Scenario 14, both versions.
pub const TLS_EXPECTED: &str = "A New, B Reused, foreign CA: New, New";
/// TLS 1.3 on a server that sends a ticket only when its store kept the
/// session (rustls): the foreign-CA server's store refuses, so no ticket.
const TLS_EXPECTED_NO_TICKET: &str = "A New, B Reused, foreign CA, no ticket: New";
/// Scenario 15, both versions.
pub const FAILOVER_EXPECTED: &str = "A New, B Reused, master killed, A New, B Reused";
/// A hang guard for the failover, not a timing threshold.
const FAILOVER_GUARD: Duration = Duration::from_secs(60);
/// Pause between attempts while the failover runs.
const FAILOVER_POLL: Duration = Duration::from_millis(100);

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

fn seal_key(ctx: &Context) -> Result<String, String> {
    let file = ctx.file("secure-seal.key");
    let key: String = (0..32).map(|i| format!("{:02x}", 0x40 + i)).collect();
    std::fs::write(&file, format!("{key}\n")).map_err(|e| format!("{}: {e}", file.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("{}: {e}", file.display()))?;
    }
    Ok(path(&file))
}

/// Scenario 14.
pub fn redis_tls(ctx: &mut Context) -> Result<Vec<Check>, String> {
    let ctx: &Context = ctx;
    let pki = TestPki::generate().map_err(|e| e.to_string())?;
    let redis = RedisServer::start_tls(&pki.server, &pki.ca, Some(&pki.client), &[])
        .map_err(|e| format!("TLS redis-server: {e}"))?;
    let foreign = RedisServer::start_tls(&pki.other_server, &pki.other_ca, None, &[])
        .map_err(|e| format!("TLS redis-server: {e}"))?;
    eprintln!(
        "    started TLS-only redis-server on {} and one with a foreign CA on {}",
        redis.addr(),
        foreign.addr()
    );
    let key = seal_key(ctx)?;
    let (ca, cert, client_key) = (path(&pki.ca), path(&pki.client.cert), path(&pki.client.key));
    let url = format!("rediss://{}", redis.addr());
    let args = [
        "--store",
        url.as_str(),
        "--seal-key-file",
        &key,
        "--redis-ca",
        &ca,
        "--redis-cert",
        &cert,
        "--redis-key",
        &client_key,
        "--redis-timeout-ms",
        "1000",
    ];
    let a = ctx.start_server(&args)?;
    let b = ctx.start_server(&args)?;
    let foreign_url = format!("rediss://{}", foreign.addr());
    let c = ctx.start_server(&[
        "--store",
        &foreign_url,
        "--seal-key-file",
        &key,
        "--redis-ca",
        &ca,
        "--redis-timeout-ms",
        "1000",
    ])?;
    let mut checks = Vec::new();
    for version in Version::BOTH {
        let file = ctx.file(&version.session_file("redis-tls"));
        let own = ctx.file(&version.session_file("redis-tls-foreign"));
        let mut steps = Steps::new(ctx, version);
        steps.issue("A", &a, &file)?;
        steps.offer("B", &b, &file)?;
        if steps.issue_refused("foreign CA:", "foreign CA, no ticket:", &c, &own)? {
            steps.offer("foreign CA:", &c, &own)?;
        }
        let stats = fetch_stats(ctx, &c)?;
        let refused = stats.get("redis").and_then(|r| counter(r, "tls_errors"));
        let mut problems = Vec::new();
        match refused {
            Some(n) if n > 0 => {}
            other => problems.push(format!(
                "the foreign-CA server's /stats redis.tls_errors={other:?}: refusals not counted"
            )),
        }
        let note = format!(
            "foreign CA: {} TLS handshakes refused",
            refused.unwrap_or(0)
        );
        let expected = if ctx.ticket_only_when_stored && version == Version::Tls13 {
            TLS_EXPECTED_NO_TICKET
        } else {
            TLS_EXPECTED
        };
        checks.push(steps.check(expected, Some(note), problems));
    }
    let problems: Vec<String> = [a, b, c]
        .into_iter()
        .filter_map(|s| s.stop().err().map(|e| e.to_string()))
        .collect();
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(checks)
}

/// Scenario 15.
pub fn sentinel_failover(ctx: &mut Context) -> Result<Vec<Check>, String> {
    let ctx: &Context = ctx;
    let mut set = RedisSentinel::start(1, &[], None).map_err(|e| format!("sentinel: {e}"))?;
    eprintln!(
        "    started master {}, replica {}, sentinel {}",
        set.master().addr(),
        set.replica().addr(),
        set.sentinels()[0].addr()
    );
    let key = seal_key(ctx)?;
    let url = set.url();
    let args = [
        "--store",
        url.as_str(),
        "--seal-key-file",
        &key,
        "--redis-timeout-ms",
        "200",
    ];
    let a = ctx.start_server(&args)?;
    let b = ctx.start_server(&args)?;
    let mut rows = Vec::new();
    for version in Version::BOTH {
        let file = ctx.file(&version.session_file("sentinel-before"));
        let mut steps = Steps::new(ctx, version);
        steps.issue("A", &a, &file)?;
        steps.offer("B", &b, &file)?;
        steps.mark("master killed");
        rows.push(steps);
    }
    set.kill_master()
        .map_err(|e| format!("killing the master: {e}"))?;
    let killed = Instant::now();
    let mut checks = Vec::new();
    for mut steps in rows {
        let version = steps.version();
        let file = ctx.file(&version.session_file("sentinel-after"));
        let mut attempts = 0u32;
        let last = loop {
            attempts += 1;
            let mut attempt = Steps::new(ctx, version);
            attempt.issue("A", &a, &file)?;
            let reused = attempt.offer("B", &b, &file)?;
            if reused || killed.elapsed() >= FAILOVER_GUARD {
                break attempt;
            }
            thread::sleep(FAILOVER_POLL);
        };
        let elapsed = killed.elapsed();
        steps.extend(last);
        let note = format!(
            "Reused again {:.1} s after the kill, attempt {attempts}",
            elapsed.as_secs_f64()
        );
        checks.push(steps.check(FAILOVER_EXPECTED, Some(note), vec![]));
    }
    let problems: Vec<String> = [a, b]
        .into_iter()
        .filter_map(|s| s.stop().err().map(|e| e.to_string()))
        .collect();
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(checks)
}
