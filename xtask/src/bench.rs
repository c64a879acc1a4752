//! `cargo xtask bench`: builds `handshake-bench` (crate
//! `tls-session-cache-bench`) in release mode and runs it with the given
//! arguments (`--seconds S`, `--rounds N`, `--json FILE`, `--svg FILE`, …;
//! `cargo xtask bench --help` lists them). The store micro-benchmarks are
//! `cargo bench -p tls-session-cache`.

use std::process::Command;

use crate::cargo::{self, TargetKind};
use crate::error::Error;

/// Runs the handshake benchmark, passing `args` through.
pub fn run(args: &[String]) -> Result<(), Error> {
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
