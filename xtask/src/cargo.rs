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

/// Builds `--example NAME` of `package` in release mode and returns the path
/// of the executable cargo reports (so `CARGO_TARGET_DIR` is respected).
/// Compiler diagnostics go to stderr as usual.
pub fn build_release_example(package: &str, example: &str) -> Result<PathBuf, Error> {
    let what = format!("{package} --example {example}");
    eprintln!("==> cargo build --release -p {what}");
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--release",
        "-p",
        package,
        "--example",
        example,
        "--message-format=json-render-diagnostics",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        program: "cargo build".into(),
        source,
    })?;
    let mut executable = None;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(path) = example_executable(&line, example) {
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
        detail: "cargo reported no executable for the example".into(),
    })
}

/// The `executable` of a `compiler-artifact` message for example `name`.
fn example_executable(line: &str, name: &str) -> Option<PathBuf> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    if msg["reason"] != "compiler-artifact" || msg["target"]["name"] != name {
        return None;
    }
    let is_example = msg["target"]["kind"]
        .as_array()?
        .iter()
        .any(|k| k == "example");
    if !is_example {
        return None;
    }
    msg["executable"].as_str().map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_example_executable_in_cargo_json() {
        let line = r#"{"reason":"compiler-artifact","target":{"kind":["example"],"name":"server"},"executable":"/t/release/examples/server"}"#;
        assert_eq!(
            example_executable(line, "server"),
            Some(PathBuf::from("/t/release/examples/server"))
        );
        assert_eq!(example_executable(line, "leak_check"), None);
        let lib = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"server"},"executable":null}"#;
        assert_eq!(example_executable(lib, "server"), None);
        assert_eq!(example_executable("not json", "server"), None);
    }
}
