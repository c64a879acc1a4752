//! `cargo xtask test`: every check, in order, each step timed.

use std::time::{Duration, Instant};

use crate::cargo::{Profile, cargo, run_step};
use crate::error::Error;
use crate::prereq::{self, Install};
use crate::{fuzz, interop, leak, matrix};

/// Runs fmt check, clippy, the workspace tests (the framework examples'
/// end-to-end tests included), a smoke of each fuzz target, the leak check, interop against the
/// blocking and the async example server, interop against the actix,
/// axum and hyper examples and the rustls example server (every row must
/// PASS; SKIP fails), and the OpenSSL matrix's CI part (3.6, 4.0, 1.1.1).
/// Stops at the first failing step and prints the wall time of each step
/// that ran.
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
    // The OpenSSL versions of the last step build from source meanwhile, at
    // the lowest priority (dropped, it stops: nothing outlives this command).
    let mut prebuilt = matrix::prebuild(matrix::CI_VERSIONS);
    let result = steps(&mut times, install, &mut prebuilt);
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

fn steps(
    times: &mut Vec<(&'static str, Duration, bool)>,
    install: Install,
    prebuilt: &mut matrix::Prebuild,
) -> Result<(), Error> {
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
        leak::run(&Profile::dev_workspace())
    })?;
    timed("interop (all required)", &mut || {
        eprintln!("==> cargo xtask interop");
        interop::run(&interop::Options {
            require_all: true,
            install,
            profile: Profile::dev_workspace(),
            ..interop::Options::default()
        })
    })?;
    timed("interop --server async", &mut || {
        eprintln!("==> cargo xtask interop --server async");
        interop::run(&interop::Options {
            require_all: true,
            server: interop::ServerKind::Async,
            install,
            profile: Profile::dev_workspace(),
            ..interop::Options::default()
        })
    })?;
    // The framework examples: their end-to-end tests ran in `cargo test
    // --workspace`; here, every interop row against each (about 16 s of
    // scenarios per server). Every server here, and the leak check, is the
    // dev build `cargo test --workspace` already made: a release build of
    // each would compile the whole dependency tree a second time.
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
                profile: Profile::dev_workspace(),
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
            profile: Profile::dev_workspace(),
            ..interop::Options::default()
        })
    })?;
    // The OpenSSL our users link besides the system's 3.0: the newest 3.x,
    // 4.0 and 1.1.1, built from source (above, in the background), the
    // binding's and tokio crate's tests and the blocking interop against
    // each, the leak check against 4.0 (docs/openssl-versions.md). Last,
    // because it rebuilds openssl-sys and its dependents against each.
    timed("openssl-matrix --ci", &mut || {
        let waited = Instant::now();
        prebuilt.wait();
        eprintln!(
            "==> cargo xtask openssl-matrix --ci (waited {:.0} s for the background OpenSSL builds)",
            waited.elapsed().as_secs_f64()
        );
        matrix::run(&["--ci".to_string()])
    })?;
    Ok(())
}
