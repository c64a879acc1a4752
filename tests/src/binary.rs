//! Building the example server: once per test binary, from the current
//! sources, with the same cargo that runs the tests.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Environment variable naming a prebuilt server binary to use instead of
/// building one (for drivers such as `cargo xtask` that just built it).
pub const SERVER_BIN_ENV: &str = "TLS_SESSION_CACHE_SERVER_BIN";

/// The path of the example server binary, built now from the current
/// sources (`cargo build -p tls-session-cache-openssl --example server`, in
/// the profile of the running tests) unless [`SERVER_BIN_ENV`] names one.
/// Panics with cargo's output when the build fails.
pub fn server_binary() -> PathBuf {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BINARY.get_or_init(locate) {
        Ok(path) => path.clone(),
        Err(e) => panic!("cannot build the example server: {e}"),
    }
}

fn locate() -> Result<PathBuf, String> {
    locate_example(SERVER_BIN_ENV, "tls-session-cache-openssl", "server")
}

/// Environment variable naming a prebuilt async example server binary.
pub const ASYNC_SERVER_BIN_ENV: &str = "TLS_SESSION_CACHE_ASYNC_SERVER_BIN";

/// The path of the async example server binary (`cargo build -p
/// tls-session-cache-tokio --example async_server`), built once per test
/// binary like [`server_binary`], unless [`ASYNC_SERVER_BIN_ENV`] names one.
pub fn async_server_binary() -> PathBuf {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = BINARY.get_or_init(|| {
        locate_example(
            ASYNC_SERVER_BIN_ENV,
            "tls-session-cache-tokio",
            "async_server",
        )
    });
    match found {
        Ok(path) => path.clone(),
        Err(e) => panic!("cannot build the async example server: {e}"),
    }
}

fn locate_example(env: &str, package: &str, example: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{env}={} is not a file", path.display()))
        };
    }
    build(package, example)
}

/// Runs cargo and takes the executable's path from its JSON messages, so
/// the target directory and profile need no guessing.
fn build(package: &str, example: &str) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("Cargo.toml");
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "build",
        "--quiet",
        "--message-format=json-render-diagnostics",
    ])
    .args(["-p", package, "--example", example])
    .arg("--manifest-path")
    .arg(&manifest)
    .stdin(Stdio::null());
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("running {}: {e}", cargo.to_string_lossy()))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build exited with {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_server = msg["reason"] == "compiler-artifact"
            && msg["target"]["name"] == example
            && msg["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "example"));
        if is_server && let Some(exe) = msg["executable"].as_str() {
            return Ok(PathBuf::from(exe));
        }
    }
    Err(format!(
        "cargo build reported no executable for the example `{example}`:\n{stdout}"
    ))
}
