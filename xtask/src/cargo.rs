//! Running cargo and other programs as named, timed steps.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A `cargo` command run from the workspace root. It inherits the environment,
/// so `CARGO_TARGET_DIR` and the pinned toolchain apply as for the caller.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

/// Runs `cmd` to completion with inherited stdio; prints the step's name first
/// and its wall time after. Returns the wall time.
pub fn run_step(name: &str, mut cmd: Command) -> Result<Duration, Error> {
    eprintln!("==> {name}");
    let started = Instant::now();
    let status = cmd.status().map_err(|source| Error::Spawn {
        program: name.to_string(),
        source,
    })?;
    let took = started.elapsed();
    eprintln!(
        "<== {name}: {} ({:.1} s)",
        status_word(status.success()),
        took.as_secs_f64()
    );
    if status.success() {
        Ok(took)
    } else {
        Err(Error::Step {
            step: name.to_string(),
            status,
        })
    }
}

fn status_word(ok: bool) -> &'static str {
    if ok { "ok" } else { "FAILED" }
}

/// What kind of target to build: `--example NAME` or `--bin NAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// An example (`examples/NAME.rs`).
    Example,
    /// A binary (`src/bin/NAME.rs` or `src/main.rs`).
    Bin,
}

impl TargetKind {
    fn flag(self) -> &'static str {
        match self {
            TargetKind::Example => "--example",
            TargetKind::Bin => "--bin",
        }
    }
    fn cargo_kind(self) -> &'static str {
        match self {
            TargetKind::Example => "example",
            TargetKind::Bin => "bin",
        }
    }
}

/// How an executable is built.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Profile {
    /// `cargo build --release -p PACKAGE`: what `cargo xtask interop` and
    /// the leak check do when run on their own.
    #[default]
    Release,
    /// The dev profile, resolving features for the same packages as the
    /// `cargo test` that ran before (`None`: `--workspace`), so that build's
    /// compiled dependencies are reused instead of compiling everything
    /// again in release (what `cargo xtask test` and the OpenSSL matrix do).
    Dev(Option<Vec<String>>),
}

impl Profile {
    /// The dev profile over the whole workspace (after `cargo test --workspace`).
    pub fn dev_workspace() -> Profile {
        Profile::Dev(None)
    }

    /// The cargo arguments that build target `name` of `package`. The dev
    /// profile does not ask for the target: it asks for what `cargo test`
    /// with the same selection builds (`test --no-run`; examples and
    /// binaries included), and the executable is picked from that. A
    /// `cargo build --example` instead resolves its units differently from
    /// `cargo test` (measured in a fresh root: tokio, serde, openssl, ring
    /// and two dozen more compiled again) and would overwrite the file
    /// `cargo test` left at the same path.
    fn command(&self, package: &str, kind: TargetKind, name: &str) -> Vec<String> {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match self {
            Profile::Release => owned(&["build", "--release", "-p", package, kind.flag(), name]),
            Profile::Dev(None) => owned(&["test", "--workspace", "--no-run"]),
            Profile::Dev(Some(packages)) => {
                let mut args = owned(&["test", "--no-run"]);
                for p in packages {
                    args.push("-p".into());
                    args.push(p.clone());
                }
                args
            }
        }
    }
}

/// `a,b` → `["a", "b"]` (the value of `--dev-packages`).
pub fn package_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Builds `--example NAME` of `package` in release mode and returns the path
/// of the executable cargo reports (so `CARGO_TARGET_DIR` is respected).
pub fn build_release_example(package: &str, example: &str) -> Result<PathBuf, Error> {
    build_release(package, TargetKind::Example, example)
}

/// Builds target `name` of `package` in release mode and returns the path of
/// the executable cargo reports. Compiler diagnostics go to stderr as usual.
pub fn build_release(package: &str, kind: TargetKind, name: &str) -> Result<PathBuf, Error> {
    build(&Profile::Release, package, kind, name)
}

/// Builds target `name` of `package` with `profile` and returns the path of
/// the executable cargo reports. Compiler diagnostics go to stderr as usual.
pub fn build(
    profile: &Profile,
    package: &str,
    kind: TargetKind,
    name: &str,
) -> Result<PathBuf, Error> {
    let what = format!("{package} {} {name}", kind.flag());
    let args = profile.command(package, kind, name);
    eprintln!("==> cargo {} (for {what})", args.join(" "));
    let mut cmd = cargo();
    cmd.args(&args)
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        program: "cargo build".into(),
        source,
    })?;
    let mut executable = None;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(path) = artifact_executable(&line, kind, name) {
                executable = Some(path);
            }
        }
    }
    let status = child.wait().map_err(|source| Error::Spawn {
        program: "cargo build".into(),
        source,
    })?;
    if !status.success() {
        return Err(Error::Build {
            what,
            detail: format!("cargo build exited with {status} (see the diagnostics above)"),
        });
    }
    executable.ok_or_else(|| Error::Build {
        what,
        detail: "cargo reported no executable for it".into(),
    })
}

/// The `executable` of a `compiler-artifact` message for target `name` of `kind`.
fn artifact_executable(line: &str, kind: TargetKind, name: &str) -> Option<PathBuf> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    // `cargo test` also reports a binary's unit-test harness under its name.
    if msg["reason"] != "compiler-artifact"
        || msg["target"]["name"] != name
        || msg["profile"]["test"] == true
    {
        return None;
    }
    let kind_matches = msg["target"]["kind"]
        .as_array()?
        .iter()
        .any(|k| k == kind.cargo_kind());
    if !kind_matches {
        return None;
    }
    msg["executable"].as_str().map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_select_packages_as_the_tests_did() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Profile::Release.command("p", TargetKind::Example, "x"),
            s(&["build", "--release", "-p", "p", "--example", "x"])
        );
        assert_eq!(
            Profile::dev_workspace().command("p", TargetKind::Bin, "x"),
            s(&["test", "--workspace", "--no-run"])
        );
        assert_eq!(
            Profile::Dev(Some(vec!["a".into(), "b".into()])).command("p", TargetKind::Bin, "x"),
            s(&["test", "--no-run", "-p", "a", "-p", "b"])
        );
    }

    #[test]
    fn skips_the_unit_test_harness_of_a_binary() {
        let harness = r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"actix-example"},"profile":{"test":true},"executable":"/t/debug/deps/actix_example-91fd"}"#;
        let bin = r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"actix-example"},"profile":{"test":false},"executable":"/t/debug/actix-example"}"#;
        assert_eq!(
            artifact_executable(harness, TargetKind::Bin, "actix-example"),
            None
        );
        assert_eq!(
            artifact_executable(bin, TargetKind::Bin, "actix-example"),
            Some(PathBuf::from("/t/debug/actix-example"))
        );
    }

    #[test]
    fn finds_the_example_executable_in_cargo_json() {
        let bin = r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"handshake-bench"},"executable":"/t/release/handshake-bench"}"#;
        assert_eq!(
            artifact_executable(bin, TargetKind::Bin, "handshake-bench"),
            Some(PathBuf::from("/t/release/handshake-bench"))
        );
        assert_eq!(
            artifact_executable(bin, TargetKind::Example, "handshake-bench"),
            None
        );
        let line = r#"{"reason":"compiler-artifact","target":{"kind":["example"],"name":"server"},"executable":"/t/release/examples/server"}"#;
        assert_eq!(
            artifact_executable(line, TargetKind::Example, "server"),
            Some(PathBuf::from("/t/release/examples/server"))
        );
        assert_eq!(
            artifact_executable(line, TargetKind::Example, "leak_check"),
            None
        );
        let lib = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"server"},"executable":null}"#;
        assert_eq!(
            artifact_executable(lib, TargetKind::Example, "server"),
            None
        );
        assert_eq!(
            artifact_executable("not json", TargetKind::Example, "server"),
            None
        );
    }
}
