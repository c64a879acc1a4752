//! The leak check: the binding's `leak_check` example (≥ 2000 resumed
//! handshakes in one process) under valgrind, failing on definite leaks.

use std::process::Command;

use crate::cargo;
use crate::error::Error;
use crate::prereq::{self, Install};

/// Exit status valgrind uses when it found errors (`--error-exitcode`).
const VALGRIND_ERROR_EXIT: i32 = 99;

/// `leak-check`'s flags: none (release), `--dev` or `--dev-packages P,P`.
pub fn profile_from_args(args: &[String]) -> Result<cargo::Profile, Error> {
    match args {
        [] => Ok(cargo::Profile::Release),
        [flag] if flag == "--dev" => Ok(cargo::Profile::dev_workspace()),
        [flag, list] if flag == "--dev-packages" => {
            Ok(cargo::Profile::Dev(Some(cargo::package_list(list))))
        }
        _ => Err(Error::Usage(format!(
            "`leak-check` takes `--dev` or `--dev-packages P,P` (got `{}`)",
            args.join(" ")
        ))),
    }
}

/// Builds (with `profile`) and runs the leak check.
pub fn run(profile: &cargo::Profile) -> Result<(), Error> {
    prereq::ensure(
        &[prereq::VALGRIND, prereq::LIBSSL_DEV, prereq::PKG_CONFIG],
        Install::WhenUnattended,
    )?;
    let binary = cargo::build(
        profile,
        "tls-session-cache-openssl",
        cargo::TargetKind::Example,
        "leak_check",
    )?;
    let mut cmd = Command::new("valgrind");
    cmd.arg("--leak-check=full")
        .arg("--show-leak-kinds=definite")
        .arg("--errors-for-leak-kinds=definite")
        .arg(format!("--error-exitcode={VALGRIND_ERROR_EXIT}"))
        .arg(&binary);
    let status = cmd.status().map_err(|source| Error::Spawn {
        program: "valgrind".into(),
        source,
    })?;
    match status.code() {
        Some(0) => Ok(()),
        Some(VALGRIND_ERROR_EXIT) => Err(Error::Build {
            what: "leak check".into(),
            detail: "valgrind found definite leaks or memory errors (see its report above)".into(),
        }),
        _ => Err(Error::Step {
            step: format!("valgrind {}", binary.display()),
            status,
        }),
    }
}
