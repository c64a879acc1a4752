//! `cargo xtask test`: every check, in order, each step timed.

use std::time::{Duration, Instant};

use crate::cargo::{cargo, run_step};
use crate::error::Error;
use crate::prereq::{self, Install};
use crate::{fuzz, interop, leak};

/// Runs fmt check, clippy, the workspace tests (the framework examples'
/// end-to-end tests included), a smoke of each fuzz target, the leak check, interop against the
/// blocking and the async example server, and interop against the actix,
/// axum and hyper examples and the rustls example server (every row must
/// PASS; SKIP fails). Stops at the first failing step and
/// prints the wall time of each step that ran.
pub fn run(args: &[String]) -> Result<(), Error> {
    let mut args = args.to_vec();
    let install = Install::from_args(&mut args);
    if let Some(extra) = args.first() {
        return Err(Error::Usage(format!(
            "`test` takes only `--install` (got `{extra}`)"
        )));
    }
    // Before the first step: everything the steps need is there, installed
    // now when it may be, or the command stops here saying what is missing.
    let started = Instant::now();
    prereq::ensure(prereq::FOR_TEST, install)?;
    fuzz::ensure(install)?;
    let mut times: Vec<(&str, Duration, bool)> = vec![("prerequisites", started.elapsed(), true)];
    let result = steps(&mut times, install);
    eprintln!("\nstep times:");
    for (name, took, ok) in &times {
        eprintln!(
            "  {:<28} {:>7.1} s  {}",
            name,
            took.as_secs_f64(),
            if *ok { "ok" } else { "FAILED" }
        );
    }
    let total: Duration = times.iter().map(|t| t.1).sum();
    eprintln!("  {:<28} {:>7.1} s", "total", total.as_secs_f64());
    if result.is_ok() {
        eprintln!("==> all checks passed");
    }
    result
}

/// How long `test` runs each fuzz target: a smoke (builds, runs, finds
/// no crash from the seeds on), not a campaign (`cargo xtask fuzz`).
const FUZZ_SMOKE_SECONDS: u64 = 5;

fn steps(times: &mut Vec<(&'static str, Duration, bool)>, install: Install) -> Result<(), Error> {
    let mut timed = |name: &'static str, step: &mut dyn FnMut() -> Result<(), Error>| {
        let started = Instant::now();
        let result = step();
        times.push((name, started.elapsed(), result.is_ok()));
        result
    };
    timed("cargo fmt --check", &mut || {
        let mut c = cargo();
        c.args(["fmt", "--all", "--", "--check"]);
        run_step("cargo fmt --check", c).map(drop)
    })?;
    timed("cargo clippy -D warnings", &mut || {
        let mut c = cargo();
        c.args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]);
        run_step("cargo clippy -D warnings", c).map(drop)
    })?;
    timed("cargo test --workspace", &mut || {
        let mut c = cargo();
        c.args(["test", "--workspace"]);
        run_step("cargo test --workspace", c).map(drop)
    })?;
    timed("fuzz smoke (5 targets)", &mut || {
        eprintln!("==> fuzz smoke: each target for {FUZZ_SMOKE_SECONDS} s");
        fuzz::smoke(FUZZ_SMOKE_SECONDS)
    })?;
    timed("leak check (valgrind)", &mut || {
        eprintln!("==> leak check");
        leak::run()
    })?;
    timed("interop (all required)", &mut || {
        eprintln!("==> cargo xtask interop");
        interop::run(&interop::Options {
            require_all: true,
            install,
            ..interop::Options::default()
        })
    })?;
    timed("interop --server async", &mut || {
        eprintln!("==> cargo xtask interop --server async");
        interop::run(&interop::Options {
            require_all: true,
            server: interop::ServerKind::Async,
            install,
            ..interop::Options::default()
        })
    })?;
    // The framework examples: their end-to-end tests ran in `cargo test
    // --workspace`; here, every interop row against each (about 16 s of
    // scenarios per server; their release build is the larger cost).
    timed("interop actix/axum/hyper", &mut || {
        for server in [
            interop::ServerKind::Actix,
            interop::ServerKind::Axum,
            interop::ServerKind::Hyper,
        ] {
            eprintln!("==> cargo xtask interop --server {}", server.name());
            interop::run(&interop::Options {
                require_all: true,
                server,
                install,
                ..interop::Options::default()
            })?;
        }
        Ok(())
    })?;
    // The rustls example server (tls-session-cache-rustls): the same rows.
    timed("interop --server rustls", &mut || {
        eprintln!("==> cargo xtask interop --server rustls");
        interop::run(&interop::Options {
            require_all: true,
            server: interop::ServerKind::Rustls,
            install,
            ..interop::Options::default()
        })
    })?;
    Ok(())
}
