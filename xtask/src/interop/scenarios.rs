//! The interop scenarios, in the order they run. Scenarios 1–4 and 10 share
//! one server (default options, in-memory store) so that 10 can compare its
//! `/stats` with everything done before; the others start their own.
//!
//! Scenarios 6–9 (context isolation, fleet, restart, store down; in
//! [`super::fleet`] and [`super::store_down`]) need Redis: they run between
//! `expiry` and `stats`, and each starts its own `redis-server` through
//! `tls-session-cache-testkit` ([`super::shared_store`]).
//!
//! Scenarios 12 and 13 (issue 10, in [`super::unclean`]): clients that drop
//! the connection after the handshake with no request and no close_notify.
//! They run after `stats`, before `shutdown`.
//!
//! Scenarios 14 and 15 (issue 12, in [`super::redis_secure`]): TLS to Redis
//! and a Sentinel failover; each starts its own Redis processes, after 13.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::check::{Check, TLS12, TLS13, counter, render, saved, stats_client, wrong_protocols};
use super::context::Context;
use super::fleet::{self, FLEET_EXPECTED, ISOLATION_EXPECTED, RESTART_EXPECTED};
use super::prerequisite::Prerequisite;
use super::redis_secure::{self, FAILOVER_EXPECTED, TLS_EXPECTED};
use super::sclient::{Handshake, Outcome, RECONNECT_HANDSHAKES, SClient};
use super::store_down;
use super::tally::Tally;
use super::unclean::{self, PRECONNECT_EXPECTED, STIME_EXPECTED};

/// One interop scenario.
pub struct Scenario {
    /// Number in issue 4's list (12 and 13: issue 10).
    pub number: u8,
    /// Name used in the table and by `--only`.
    pub name: &'static str,
    /// TLS version(s) exercised, for rows written without running.
    pub protocol: &'static str,
    /// Expected outcome, for rows written without running.
    pub expected: &'static str,
    /// What must be installed.
    pub needs: &'static [Prerequisite],
    /// Runs the scenario; `Err` is a FAIL row with that message.
    pub run: fn(&mut Context) -> Result<Vec<Check>, String>,
}

const OPENSSL: &[Prerequisite] = &[Prerequisite::OpenSsl];
const REDIS: &[Prerequisite] = &[Prerequisite::OpenSsl, Prerequisite::RedisServer];
const BOTH_VERSIONS: &str = "TLSv1.2, TLSv1.3";
/// `--lifetime` of the expiry scenario's server, and how many whole seconds
/// after its last ticket it offers the sessions again.
const SHORT_LIFETIME_SECS: u64 = 2;
const EXPIRY_WAIT: Duration = Duration::from_secs(3);

/// Every scenario, in running order.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        number: 1,
        name: "tls12-session-id",
        protocol: TLS12,
        expected: "New, Reused",
        needs: OPENSSL,
        run: tls12_session_id,
    },
    Scenario {
        number: 2,
        name: "tls13-stateful-ticket",
        protocol: TLS13,
        expected: "New, Reused",
        needs: OPENSSL,
        run: tls13_stateful_ticket,
    },
    Scenario {
        number: 3,
        name: "tls13-single-use",
        protocol: TLS13,
        expected: "New, Reused, New",
        needs: OPENSSL,
        run: tls13_single_use,
    },
    Scenario {
        number: 4,
        name: "tls12-reconnect",
        protocol: TLS12,
        expected: "New, Reused×5",
        needs: OPENSSL,
        run: tls12_reconnect,
    },
    Scenario {
        number: 5,
        name: "expiry",
        protocol: BOTH_VERSIONS,
        expected: "New, Reused, 3 s later New",
        needs: OPENSSL,
        run: expiry,
    },
    Scenario {
        number: 6,
        name: "context-isolation",
        protocol: BOTH_VERSIONS,
        expected: ISOLATION_EXPECTED,
        needs: REDIS,
        run: fleet::context_isolation,
    },
    Scenario {
        number: 7,
        name: "fleet",
        protocol: BOTH_VERSIONS,
        expected: FLEET_EXPECTED,
        needs: REDIS,
        run: fleet::fleet,
    },
    Scenario {
        number: 8,
        name: "restart",
        protocol: BOTH_VERSIONS,
        expected: RESTART_EXPECTED,
        needs: REDIS,
        run: fleet::restart,
    },
    Scenario {
        number: 9,
        name: "store-down",
        protocol: BOTH_VERSIONS,
        expected: store_down::EXPECTED,
        needs: REDIS,
        run: store_down::store_down,
    },
    Scenario {
        number: 10,
        name: "stats",
        protocol: "any",
        expected: "/stats agree with the handshakes above",
        needs: OPENSSL,
        run: stats,
    },
    Scenario {
        number: 12,
        name: "unclean-close-s_time",
        protocol: TLS12,
        expected: STIME_EXPECTED,
        needs: OPENSSL,
        run: unclean::unclean_close_s_time,
    },
    Scenario {
        number: 13,
        name: "unclean-close-preconnect",
        protocol: BOTH_VERSIONS,
        expected: PRECONNECT_EXPECTED,
        needs: OPENSSL,
        run: unclean::unclean_close_preconnect,
    },
    Scenario {
        number: 14,
        name: "redis-tls",
        protocol: BOTH_VERSIONS,
        expected: TLS_EXPECTED,
        needs: REDIS,
        run: redis_secure::redis_tls,
    },
    Scenario {
        number: 15,
        name: "sentinel-failover",
        protocol: BOTH_VERSIONS,
        expected: FAILOVER_EXPECTED,
        needs: REDIS,
        run: redis_secure::sentinel_failover,
    },
    Scenario {
        number: 11,
        name: "shutdown",
        protocol: "-",
        expected: "exit 0 on SIGTERM",
        needs: OPENSSL,
        run: shutdown,
    },
];

/// Runs `clients` one after another against the shared server and compares
/// the sequence of handshakes with `expected`.
fn shared_sequence(
    ctx: &mut Context,
    protocol: &str,
    expected: &str,
    clients: impl FnOnce(&Context, SocketAddr) -> Vec<SClient>,
) -> Result<Vec<Check>, String> {
    let addr = ctx.shared_addr()?;
    let mut seen = Vec::new();
    for client in clients(ctx, addr) {
        seen.extend(ctx.on_shared(client)?.handshakes);
    }
    let problems = wrong_protocols(&seen, protocol);
    Ok(vec![Check::compare(
        protocol,
        expected,
        render(&seen),
        problems,
    )])
}

fn tls12_session_id(ctx: &mut Context) -> Result<Vec<Check>, String> {
    let file = ctx.file("tls12.sess");
    shared_sequence(ctx, TLS12, "New, Reused", |ctx, addr| {
        vec![
            ctx.client(addr).tls12_session_id().sess_out(&file),
            ctx.client(addr).tls12_session_id().sess_in(&file),
        ]
    })
}

fn tls13_stateful_ticket(ctx: &mut Context) -> Result<Vec<Check>, String> {
    let file = ctx.file("tls13.sess");
    let addr = ctx.shared_addr()?;
    let first = ctx.on_shared(ctx.client(addr).tls13().sess_out(&file))?;
    saved(&file)?;
    let second = ctx.on_shared(ctx.client(addr).tls13().sess_in(&file))?;
    let seen = [first.handshakes, second.handshakes].concat();
    let problems = wrong_protocols(&seen, TLS13);
    Ok(vec![Check::compare(
        TLS13,
        "New, Reused",
        render(&seen),
        problems,
    )])
}

fn tls13_single_use(ctx: &mut Context) -> Result<Vec<Check>, String> {
    let file = ctx.file("tls13-single.sess");
    let addr = ctx.shared_addr()?;
    let first = ctx.on_shared(ctx.client(addr).tls13().sess_out(&file))?;
    saved(&file)?;
    // The same saved session twice; neither run overwrites the file.
    let second = ctx.on_shared(ctx.client(addr).tls13().sess_in(&file))?;
    let third = ctx.on_shared(ctx.client(addr).tls13().sess_in(&file))?;
    let seen = [first.handshakes, second.handshakes, third.handshakes].concat();
    let problems = wrong_protocols(&seen, TLS13);
    Ok(vec![Check::compare(
        TLS13,
        "New, Reused, New",
        render(&seen),
        problems,
    )])
}

fn tls12_reconnect(ctx: &mut Context) -> Result<Vec<Check>, String> {
    let expected = format!("New, Reused×{}", RECONNECT_HANDSHAKES - 1);
    shared_sequence(ctx, TLS12, &expected, |ctx, addr| {
        vec![ctx.client(addr).tls12_session_id().reconnect()]
    })
}

fn expiry(ctx: &mut Context) -> Result<Vec<Check>, String> {
    let lifetime = SHORT_LIFETIME_SECS.to_string();
    let server = ctx.start_server(&["--lifetime", &lifetime])?;
    let addr = server.addr();
    let log = |e: String| format!("{e}{}", server.log_excerpt());
    let mut tally = Tally::default();
    let mut run = |client: SClient| -> Result<Outcome, String> {
        let o = client.run().map_err(log)?;
        tally.count(&o.handshakes);
        Ok(o)
    };

    // TLS 1.2: save, resume at once (the short lifetime still resumes), resume later.
    let f12 = ctx.file("expiry12.sess");
    let mut seen12 = run(ctx.client(addr).tls12_session_id().sess_out(&f12))?.handshakes;
    seen12.extend(run(ctx.client(addr).tls12_session_id().sess_in(&f12))?.handshakes);
    // TLS 1.3 tickets are single use: resume once saving the new ticket, offer that later.
    // A TLS 1.3 client drops a ticket whose age, in whole seconds less one,
    // exceeds the ticket's lifetime hint (here the 2 s lifetime), and then
    // the server is never asked. So both tickets are issued just after a
    // second boundary and the second one is offered at the start of the
    // third second after it: past the server's expiry (which a resumption
    // cannot extend), still within what the client offers.
    sleep_until_unix_second(unix_seconds() + 1);
    let issued = unix_seconds();
    let (f13a, f13b) = (ctx.file("expiry13a.sess"), ctx.file("expiry13b.sess"));
    let mut seen13 = run(ctx.client(addr).tls13().sess_out(&f13a))?.handshakes;
    saved(&f13a)?;
    let resumed13 = run(ctx.client(addr).tls13().sess_in(&f13a).sess_out(&f13b))?;
    seen13.extend(resumed13.handshakes);
    saved(&f13b)?;

    let offer_at = (issued + EXPIRY_WAIT.as_secs()).max(unix_seconds() + SHORT_LIFETIME_SECS);
    eprintln!(
        "    waiting {} s for the {lifetime} s lifetime to pass",
        offer_at.saturating_sub(issued)
    );
    sleep_until_unix_second(offer_at);
    let late13 = run(ctx.client(addr).tls13().sess_in(&f13b))?.handshakes;
    let late12 = run(ctx.client(addr).tls12_session_id().sess_in(&f12))?.handshakes;

    // The server, not the client, must have refused: every offer was looked up and missed.
    let stats = run(stats_client(ctx, addr))?.body;
    let stats_problems = compare_stats(&stats, &tally);
    let row = |protocol: &str, seen: Vec<Handshake>, late: Vec<Handshake>| {
        let mut problems = wrong_protocols(&seen, protocol);
        problems.extend(wrong_protocols(&late, protocol));
        problems.extend(stats_problems.iter().cloned());
        let observed = format!("{}, 3 s later {}", render(&seen), render(&late));
        Check::compare(protocol, "New, Reused, 3 s later New", observed, problems)
    };
    let checks = vec![row(TLS12, seen12, late12), row(TLS13, seen13, late13)];
    server.stop().map_err(|e| e.to_string())?;
    Ok(checks)
}

/// Seconds since the Unix epoch, as OpenSSL stamps sessions.
fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Sleeps until just after Unix second `second` has begun.
fn sleep_until_unix_second(second: u64) {
    let target = UNIX_EPOCH + Duration::from_secs(second) + Duration::from_millis(20);
    if let Ok(left) = target.duration_since(SystemTime::now()) {
        std::thread::sleep(left);
    }
}

fn stats(ctx: &mut Context) -> Result<Vec<Check>, String> {
    let addr = ctx.shared_addr()?;
    if ctx.shared_tally().offers == 0 {
        // Run on its own (`--only stats`): give the counters something to count.
        let file = ctx.file("stats.sess");
        ctx.on_shared(ctx.client(addr).tls12_session_id().sess_out(&file))?;
        ctx.on_shared(ctx.client(addr).tls12_session_id().sess_in(&file))?;
    }
    let stats = ctx.on_shared(stats_client(ctx, addr))?.body;
    let tally = ctx.shared_tally();
    let problems = compare_stats(&stats, &tally);
    let expected = describe(&tally);
    let observed = describe(&Tally {
        handshakes: counter(&stats, "resumed").unwrap_or(0) + counter(&stats, "full").unwrap_or(0),
        reused: counter(&stats, "resumed").unwrap_or(0),
        offers: counter(&stats, "lookups").unwrap_or(0),
    });
    Ok(vec![Check::compare("any", &expected, observed, problems)])
}

/// `resumed=R full=F lookups=L misses=M`.
fn describe(t: &Tally) -> String {
    format!(
        "resumed={} full={} lookups={} misses={}",
        t.reused,
        t.full(),
        t.offers,
        t.misses()
    )
}

fn shutdown(ctx: &mut Context) -> Result<Vec<Check>, String> {
    ctx.shared_addr()?; // started here when run on its own
    let server = ctx.take_shared().ok_or("shared server missing")?;
    let observed = match server.stop() {
        Ok(_) => "exit 0 on SIGTERM".to_string(),
        Err(e) => e.to_string(),
    };
    Ok(vec![Check::compare(
        "-",
        "exit 0 on SIGTERM",
        observed,
        vec![],
    )])
}

/// Differences between a server's `/stats` and what s_client saw (`tally`,
/// which includes the `/stats` connection).
fn compare_stats(stats: &Value, tally: &Tally) -> Vec<String> {
    let mut problems = Vec::new();
    let mut exact = |name: &str, want: u64| match counter(stats, name) {
        Some(got) if got == want => {}
        Some(got) => problems.push(format!("/stats {name}={got}, s_client saw {want}")),
        None => problems.push(format!("/stats has no counter `{name}`: {stats}")),
    };
    exact("resumed", tally.reused);
    exact("lookups", tally.offers);
    exact("misses", tally.misses());
    exact("hits", tally.reused);
    exact("full", tally.full());
    // Nothing the scenarios do is unstorable, fails, or panics.
    exact("skipped", 0);
    exact("errors", 0);
    exact("panics", 0);
    // Every full handshake stores at least one session (TLS 1.2 id or TLS 1.3
    // ticket), and so does every resumed TLS 1.3 handshake (fresh tickets).
    match counter(stats, "stored") {
        Some(got) if got >= tally.full() => {}
        Some(got) => problems.push(format!(
            "/stats stored={got}, fewer than the {} full handshakes",
            tally.full()
        )),
        None => problems.push(format!("/stats has no counter `stored`: {stats}")),
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(reused: bool) -> Handshake {
        Handshake {
            reused,
            protocol: TLS12.into(),
            offered: reused,
        }
    }

    #[test]
    fn a_check_passes_only_when_observed_matches_and_nothing_else_went_wrong() {
        let ok = Check::compare(TLS13, "New, Reused, New", "New, Reused, New".into(), vec![]);
        assert!(ok.failure.is_none());
        let replay = Check::compare(TLS13, "New, Reused, New", "New, Reused×2".into(), vec![]);
        assert!(replay.failure.unwrap().contains("observed `New, Reused×2`"));
        let stats = Check::compare(TLS12, "New", "New".into(), vec!["/stats misses=0".into()]);
        assert_eq!(stats.failure.as_deref(), Some("/stats misses=0"));
    }

    #[test]
    fn renders_runs_compactly() {
        let seq: Vec<_> = [false, true, true, true, true, true].map(hs).into();
        assert_eq!(render(&seq), "New, Reused×5");
        assert_eq!(
            render(&[hs(false), hs(true), hs(false)]),
            "New, Reused, New"
        );
        assert_eq!(render(&[hs(false), hs(false)]), "New, New");
    }

    #[test]
    fn scenario_names_are_unique_and_stats_comes_after_the_shared_ones() {
        let names: Vec<_> = SCENARIOS.iter().map(|s| s.name).collect();
        let mut dedup = names.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(names.len(), dedup.len());
        let pos = |n| names.iter().position(|x| *x == n).unwrap();
        assert!(pos("stats") > pos("tls12-reconnect"));
        assert_eq!(names.last(), Some(&"shutdown"));
        let numbers: Vec<_> = SCENARIOS.iter().map(|s| s.number).collect();
        assert_eq!(numbers, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 11]);
    }

    #[test]
    fn redis_scenarios_sit_between_expiry_and_stats_and_need_redis_server() {
        for s in SCENARIOS {
            let needs_redis = s.needs.contains(&Prerequisite::RedisServer);
            // 14 and 15 (issue 12) start Redis processes of their own and
            // run after the shared-server rows.
            let redis_row = (6..=9).contains(&s.number) || (14..=15).contains(&s.number);
            assert_eq!(needs_redis, redis_row, "{}", s.name);
        }
    }

    #[test]
    fn stats_disagreement_is_reported() {
        let tally = Tally {
            handshakes: 3,
            reused: 1,
            offers: 2,
        };
        let good = serde_json::json!({"resumed":1,"full":2,"lookups":2,"hits":1,"misses":1,
            "stored":2,"skipped":0,"errors":0,"panics":0,"store":{"misses":7}});
        assert!(compare_stats(&good, &tally).is_empty());
        let mut bad = good.clone();
        bad["resumed"] = 2.into();
        assert_eq!(compare_stats(&bad, &tally).len(), 1);
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove("misses");
        assert_eq!(compare_stats(&missing, &tally).len(), 1);
        let mut few_stored = good;
        few_stored["stored"] = 1.into();
        assert_eq!(compare_stats(&few_stored, &tally).len(), 1);
    }
}
