//! `cargo xtask bench`: builds `handshake-bench` (crate
//! `tls-session-cache-bench`) in release mode and runs it with the given
//! arguments (`--seconds S`, `--rounds N`, `--json FILE`, `--svg FILE`, …;
//! `cargo xtask bench --help` lists them). The store micro-benchmarks are
//! `cargo bench -p tls-session-cache`.
//!
//! `cargo xtask bench --nginx [...]` is another benchmark: the example
//! server against nginx under `openssl s_time` ([`nginx`]).

mod cpu;
mod nginx;

use std::process::Command;

use crate::cargo::{self, TargetKind};
use crate::error::Error;

/// Help text for `bench`.
pub const USAGE: &str = "\
bench [ARGS]
  the handshake benchmark (crate tls-session-cache-bench); `cargo xtask bench --help`
bench --nginx [--rounds N] [--seconds S] [--openssl PATH] [--nginx-bin PATH]
  server CPU per connection under `openssl s_time -reuse -tls1_2` (no request): the
  example server (memory store, release) against nginx (1 worker, shared session
  cache, no tickets), in interleaved rounds (default 5 of 2 s each); needs nginx
  (`apt-get install nginx-light`). A benchmark, not part of `cargo xtask test`.";

/// Runs the nginx comparison if `args` hold `--nginx`, else the handshake
/// benchmark with `args` passed through.
pub fn run(args: &[String]) -> Result<(), Error> {
    if args.iter().any(|a| a == "--nginx") {
        let rest: Vec<String> = args.iter().filter(|a| *a != "--nginx").cloned().collect();
        return nginx::run(&rest);
    }
    handshake_bench(args)
}

/// Runs the handshake benchmark, passing `args` through.
fn handshake_bench(args: &[String]) -> Result<(), Error> {
    crate::prereq::ensure(
        &[
            crate::prereq::REDIS_SERVER,
            crate::prereq::LIBSSL_DEV,
            crate::prereq::PKG_CONFIG,
        ],
        crate::prereq::Install::WhenUnattended,
    )?;
    let binary = cargo::build_release(
        "tls-session-cache-bench",
        TargetKind::Bin,
        "handshake-bench",
    )?;
    eprintln!("==> {} {}", binary.display(), args.join(" "));
    let status = Command::new(&binary)
        .args(args)
        .current_dir(cargo::workspace_root())
        .status()
        .map_err(|source| Error::Spawn {
            program: binary.display().to_string(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Step {
            step: "handshake-bench".into(),
            status,
        })
    }
}
