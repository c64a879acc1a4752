//! `cargo xtask openssl-matrix [--versions 3.0,3.6,4.0,1.1.1] [--quick]`:
//! the binding against each OpenSSL our users link.
//!
//! For each version: `3.0` is the system library (Debian 12's 3.0.x); the
//! others are built from source with the `openssl-src` crate's 111.x,
//! 300.x and 400.x lines, into `target/openssl-matrix/VERSION/openssl`
//! (kept: a second run reuses it), and linked statically (`OPENSSL_DIR`,
//! `OPENSSL_STATIC=1`, in the workspace's own target directory: only
//! openssl-sys and its dependents are rebuilt), so nothing is installed on
//! the system. Against each it runs the binding's and the tokio crate's
//! tests, the valgrind leak check, and `cargo xtask interop` with both
//! example servers (dev builds) linked to that version (the `openssl
//! s_client` driving them stays the system one), and prints one row per
//! version. `--quick` runs the tests and the blocking interop only.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use crate::cargo::{cargo, workspace_root};
use crate::error::Error;

/// Usage line of the command.
pub const USAGE: &str = "openssl-matrix [--versions 3.0,3.6,4.0,1.1.1] [--quick | --ci]\n  \
    the binding's and tokio crate's tests, the leak check and interop against each OpenSSL\n  \
    (3.0: the system library; others built from source with openssl-src, cached under target/)\n  \
    --quick: tests and the blocking interop only; --ci: what `cargo xtask test` runs\n  \
    (3.6, 4.0 and 1.1.1 quick, and the leak check on 4.0)";

/// The versions `cargo xtask test` runs (`--ci`): the newest 3.x, 4.0 and
/// 1.1.1, all built from source; the system 3.0 is what the rest of `test` uses.
pub const CI_VERSIONS: &[&str] = &["3.6", "4.0", "1.1.1"];

/// The version `--ci` also runs the leak check against: the newest, whose
/// `SSL_free` does its work in the order of 3.2 and later (the system 3.0's
/// order is leak-checked by `cargo xtask test` itself).
const CI_LEAK_VERSION: &str = "4.0";

/// The packages whose tests run against each version. The leak check and
/// the example servers for interop are built in the dev profile with the
/// same package selection, so they reuse what the tests compiled instead of
/// compiling the dependency tree again in release.
const TESTED: [&str; 2] = ["tls-session-cache-openssl", "tls-session-cache-tokio"];

/// Compiler flags for OpenSSL built from source. openssl-src asks for `-O2`
/// (and OpenSSL's own configuration for `-O3`); the last `-O` wins, and
/// `-O0` builds it in about half the time. The assembly that does the
/// cryptography (AES-GCM, SHA-2, X25519, …) is the same at every level, and
/// what the matrix tests (the session API, callbacks, reference counts) does
/// not depend on how C is optimised: the matrix tests behaviour, not speed.
const OPENSSL_CFLAGS: &str = "-O0";

/// The versions run when `--versions` is not given.
const DEFAULT_VERSIONS: &[&str] = &["3.0", "3.6", "4.0", "1.1.1"];

/// Where one OpenSSL comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The system's library and headers.
    System,
    /// Built from the `openssl-src` crate of this line.
    Src111,
    Src300,
    Src400,
}

fn source_of(version: &str) -> Option<Source> {
    match version {
        "3.0" => Some(Source::System),
        "1.1.1" => Some(Source::Src111),
        "3.6" => Some(Source::Src300),
        "4.0" => Some(Source::Src400),
        _ => None,
    }
}

/// The exact version `source` provides.
fn exact_version(source: Source) -> String {
    match source {
        Source::System => Command::new("openssl")
            .arg("version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.split_whitespace().nth(1).map(str::to_string))
            .map(|v| format!("{v} (system)"))
            .unwrap_or_else(|| "system".into()),
        Source::Src111 => from_source(openssl_src_111::version()),
        Source::Src300 => from_source(openssl_src_300::version()),
        Source::Src400 => from_source(openssl_src_400::version()),
    }
}

/// `300.6.1+3.6.3` → `3.6.3 (openssl-src 300.6.1)`.
fn from_source(crate_version: &str) -> String {
    match crate_version.split_once('+') {
        Some((krate, openssl)) => format!("{openssl} (openssl-src {krate})"),
        None => crate_version.to_string(),
    }
}

/// The outcome of one version's run.
struct Row {
    version: String,
    tests: String,
    leak: String,
    interop_blocking: String,
    interop_async: String,
    ok: bool,
    notes: Vec<String>,
}

/// Runs the matrix.
pub fn run(args: &[String]) -> Result<(), Error> {
    // Internal: the build of one OpenSSL, run in a child whose output goes
    // to a log (openssl-src's make prints thousands of lines).
    if let [flag, version] = args
        && flag == "--build-only"
    {
        let source = source_of(version)
            .ok_or_else(|| Error::Usage(format!("unknown version `{version}`")))?;
        return build_here(version, source);
    }
    let mut versions: Vec<String> = DEFAULT_VERSIONS.iter().map(|v| v.to_string()).collect();
    let mut quick = false;
    let mut leak_only_on: Option<&str> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--versions" => {
                let list = it
                    .next()
                    .ok_or_else(|| Error::Usage("--versions needs a list".into()))?;
                versions = list.split(',').map(|v| v.trim().to_string()).collect();
            }
            "--quick" => quick = true,
            "--ci" => {
                versions = CI_VERSIONS.iter().map(|v| v.to_string()).collect();
                quick = true;
                leak_only_on = Some(CI_LEAK_VERSION);
            }
            other => return Err(Error::Usage(format!("openssl-matrix: unknown `{other}`"))),
        }
    }
    for v in &versions {
        if source_of(v).is_none() {
            return Err(Error::Usage(format!(
                "openssl-matrix: unknown version `{v}` (known: {})",
                DEFAULT_VERSIONS.join(", ")
            )));
        }
    }
    crate::prereq::ensure(
        &[
            crate::prereq::PERL,
            crate::prereq::MAKE,
            crate::prereq::OPENSSL,
            crate::prereq::REDIS_SERVER,
            crate::prereq::REDIS_CLI,
            crate::prereq::VALGRIND,
        ],
        crate::prereq::Install::WhenUnattended,
    )?;
    let started = Instant::now();
    let mut rows = Vec::new();
    for v in &versions {
        let source = source_of(v).unwrap_or(Source::System);
        eprintln!("\n==> OpenSSL {v}: {}", exact_version(source));
        let leak = !quick || leak_only_on == Some(v.as_str());
        rows.push(run_version(v, source, quick, leak)?);
    }
    print_table(&rows);
    eprintln!(
        "openssl-matrix: {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.version.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Build {
            what: "openssl-matrix".into(),
            detail: format!("failing versions: {}", failed.join(", ")),
        })
    }
}

/// The matrix's own directory for `version`.
fn matrix_dir(version: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("openssl-matrix").join(version)
}

/// Builds (or reuses) OpenSSL from source; returns its install directory.
/// The build runs in a child process whose output goes to `build.log`.
fn build_openssl(version: &str, source: Source) -> Result<PathBuf, Error> {
    let install = matrix_dir(version).join("openssl").join("install");
    if install.join(".built").exists() {
        eprintln!("    reusing {}", install.display());
        return Ok(install);
    }
    eprintln!(
        "    building OpenSSL {} from source (once; kept under {})",
        exact_version(source),
        matrix_dir(version).display()
    );
    let xtask = std::env::current_exe().map_err(|source| Error::Spawn {
        program: "xtask (current executable)".into(),
        source,
    })?;
    let mut c = Command::new(xtask);
    c.args(["openssl-matrix", "--build-only", version])
        .env("MAKEFLAGS", "-j2")
        .env("CFLAGS", OPENSSL_CFLAGS);
    std::fs::create_dir_all(matrix_dir(version)).map_err(|source| Error::File {
        path: matrix_dir(version).display().to_string(),
        source,
    })?;
    let out = captured(c, &[], &matrix_dir(version).join("build.log"))?;
    if !out.status.success() || !install.join(".built").exists() {
        return Err(Error::Build {
            what: format!("OpenSSL {version} from source"),
            detail: format!("see {}", matrix_dir(version).join("build.log").display()),
        });
    }
    Ok(install)
}

/// OpenSSL versions being built from source in the background (see
/// [`prebuild`]). Dropping it stops the build under way (its whole process
/// group: make and the compilers), so a `cargo xtask test` that fails early
/// leaves nothing running.
pub struct Prebuild {
    thread: Option<std::thread::JoinHandle<()>>,
    state: std::sync::Arc<std::sync::Mutex<PrebuildState>>,
}

#[derive(Default)]
struct PrebuildState {
    /// The process group of the build under way.
    running: Option<libc::pid_t>,
    stopped: bool,
}

impl Prebuild {
    /// Waits until every version is built (or has failed to build).
    pub fn wait(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Prebuild {
    fn drop(&mut self) {
        if let Ok(mut state) = self.state.lock() {
            state.stopped = true;
            if let Some(group) = state.running.take() {
                // SAFETY: signals a process group this process created.
                unsafe {
                    libc::kill(-group, libc::SIGTERM);
                }
            }
        }
        self.wait();
    }
}

/// Starts building `versions` from source in the background, one after
/// the other at the lowest CPU priority (`nice -n 19`), so that `cargo xtask
/// test` gets them built in the time its other steps leave a core idle
/// (tests waiting on sockets, the single-threaded fuzz runs and valgrind,
/// interop's scenarios). Call [`Prebuild::wait`] before running the matrix;
/// a build that failed here is tried again, and reported, by the matrix.
pub fn prebuild(versions: &'static [&'static str]) -> Prebuild {
    use std::os::unix::process::CommandExt;
    let state = std::sync::Arc::new(std::sync::Mutex::new(PrebuildState::default()));
    let shared = state.clone();
    let thread = std::thread::spawn(move || {
        let Ok(xtask) = std::env::current_exe() else {
            return;
        };
        for version in versions {
            let Some(source) = source_of(version) else {
                continue;
            };
            let dir = matrix_dir(version);
            if source == Source::System || dir.join("openssl/install/.built").exists() {
                continue;
            }
            let log = std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::File::create(dir.join("build.log")));
            let Ok((log, log_err)) = log.and_then(|l| Ok((l.try_clone()?, l))) else {
                continue;
            };
            let started = Instant::now();
            let child = {
                let Ok(mut state) = shared.lock() else { return };
                if state.stopped {
                    return;
                }
                let child = Command::new("nice")
                    .args(["-n", "19"])
                    .arg(&xtask)
                    .args(["openssl-matrix", "--build-only", version])
                    .env("MAKEFLAGS", "-j2")
                    .env("CFLAGS", OPENSSL_CFLAGS)
                    .stdin(Stdio::null())
                    .stdout(log)
                    .stderr(log_err)
                    .process_group(0)
                    .spawn();
                if let Ok(c) = &child {
                    state.running = Some(c.id() as libc::pid_t);
                }
                child
            };
            let outcome = match child.and_then(|mut c| c.wait()) {
                Ok(s) if s.success() => "ok".to_string(),
                Ok(s) => format!("FAILED ({s}; see {})", dir.join("build.log").display()),
                Err(e) => format!("not started ({e})"),
            };
            if let Ok(mut state) = shared.lock() {
                state.running = None;
            }
            eprintln!(
                "[background] OpenSSL {version} from source: {outcome} in {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    });
    Prebuild {
        thread: Some(thread),
        state,
    }
}

/// The build itself (in the child): openssl-src into the matrix directory,
/// then a stamp file that later runs look for.
fn build_here(version: &str, source: Source) -> Result<(), Error> {
    let out = matrix_dir(version).join("openssl");
    let host = host_triple();
    let result = match source {
        Source::System => return Err(Error::Usage("the system OpenSSL is not built".into())),
        // The 111.x line has no `try_build`: its `build` panics on failure.
        Source::Src111 => std::panic::catch_unwind(|| {
            openssl_src_111::Build::new()
                .out_dir(&out)
                .target(&host)
                .host(&host)
                .build()
                .lib_dir()
                .to_path_buf()
        })
        .map_err(|_| "openssl-src 111 failed (see its output above)".to_string()),
        Source::Src300 => openssl_src_300::Build::new()
            .out_dir(&out)
            .target(&host)
            .host(&host)
            .openssl_dir("/usr/lib/ssl")
            .try_build()
            .map(|a| a.lib_dir().to_path_buf()),
        Source::Src400 => openssl_src_400::Build::new()
            .out_dir(&out)
            .target(&host)
            .host(&host)
            .openssl_dir("/usr/lib/ssl")
            .try_build()
            .map(|a| a.lib_dir().to_path_buf()),
    };
    result.map_err(|detail| Error::Build {
        what: format!("OpenSSL {version} from source"),
        detail,
    })?;
    let stamp = out.join("install").join(".built");
    std::fs::write(&stamp, exact_version(source)).map_err(|source| Error::File {
        path: stamp.display().to_string(),
        source,
    })
}

/// The host triple (the matrix builds for the machine it runs on).
fn host_triple() -> String {
    Command::new("rustc")
        .arg("-vV")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        })
        .unwrap_or_else(|| "x86_64-unknown-linux-gnu".into())
}

/// The environment that points a build at `install` (or, for the system
/// library, leaves it as it is). The build shares the workspace's target
/// directory: openssl-sys's build script declares `OPENSSL_DIR` and
/// `OPENSSL_STATIC`, so cargo rebuilds openssl-sys and the few crates that
/// depend on it (about 30 s) and reuses every other compiled crate; the
/// next plain build rebuilds them against the system library again.
fn environment(install: Option<&Path>) -> Vec<(String, String)> {
    let Some(install) = install else {
        return Vec::new();
    };
    vec![
        ("OPENSSL_DIR".into(), install.display().to_string()),
        ("OPENSSL_STATIC".into(), "1".into()),
    ]
}

fn run_version(version: &str, source: Source, quick: bool, leak: bool) -> Result<Row, Error> {
    let mut notes = Vec::new();
    let install = match source {
        Source::System => None,
        _ => match build_openssl(version, source) {
            Ok(dir) => Some(dir),
            Err(e) => {
                return Ok(Row {
                    version: exact_version(source),
                    tests: "not run".into(),
                    leak: "not run".into(),
                    interop_blocking: "not run".into(),
                    interop_async: "not run".into(),
                    ok: false,
                    notes: vec![format!("could not build OpenSSL: {e}")],
                });
            }
        },
    };
    let env = environment(install.as_deref());
    let log_dir = matrix_dir(version);
    std::fs::create_dir_all(&log_dir).map_err(|source| Error::File {
        path: log_dir.display().to_string(),
        source,
    })?;

    // The binding's and the tokio crate's tests.
    let mut c = cargo();
    c.arg("test").args(TESTED.iter().flat_map(|p| ["-p", *p]));
    let (tests_ok, tests) = match captured(c, &env, &log_dir.join("tests.log"))? {
        out if out.status.success() => (true, test_counts(&out)),
        out => {
            let counts = test_counts(&out);
            notes.push(format!(
                "tests failed: {}",
                first_failures(&out)
                    .unwrap_or_else(|| { format!("see {}", log_dir.join("tests.log").display()) })
            ));
            (false, format!("FAIL ({counts})"))
        }
    };

    let xtask = std::env::current_exe().map_err(|source| Error::Spawn {
        program: "xtask (current executable)".into(),
        source,
    })?;
    let (leak_ok, leak) = if !leak {
        (true, "not run (--quick)".to_string())
    } else {
        let mut c = Command::new(&xtask);
        c.args(["leak-check", "--dev-packages", &TESTED.join(",")])
            .current_dir(workspace_root());
        let out = captured(c, &env, &log_dir.join("leak.log"))?;
        if out.status.success() {
            (true, "0 definite leaks".to_string())
        } else {
            notes.push(format!(
                "leak check failed: see {}",
                log_dir.join("leak.log").display()
            ));
            (false, "FAIL".to_string())
        }
    };

    let mut interop = |server: &str| -> Result<(bool, String), Error> {
        let mut c = Command::new(&xtask);
        c.args([
            "interop",
            "--server",
            server,
            "--dev-packages",
            &TESTED.join(","),
        ])
        .current_dir(workspace_root());
        let log = log_dir.join(format!("interop-{server}.log"));
        let out = captured(c, &env, &log)?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let summary = text
            .lines()
            .rev()
            .find(|l| l.contains(" PASS, ") && l.contains(" FAIL"))
            .map(str::to_string)
            .unwrap_or_else(|| "no table".into());
        if !out.status.success() {
            let failing: Vec<String> = text
                .lines()
                .filter(|l| l.trim_end().ends_with("| FAIL"))
                .filter_map(|l| l.split('|').next().map(|n| n.trim().to_string()))
                .collect();
            notes.push(format!(
                "interop ({server}) failing rows: {} (see {})",
                if failing.is_empty() {
                    "none listed".to_string()
                } else {
                    failing.join(", ")
                },
                log.display()
            ));
        }
        Ok((out.status.success(), summary))
    };
    let (blocking_ok, interop_blocking) = interop("blocking")?;
    let (async_ok, interop_async) = if quick {
        (true, "not run (--quick)".to_string())
    } else {
        interop("async")?
    };
    Ok(Row {
        version: exact_version(source),
        tests,
        leak,
        interop_blocking,
        interop_async,
        ok: tests_ok && leak_ok && blocking_ok && async_ok,
        notes,
    })
}

/// Runs `cmd` with `env`, its output written to `log` as well as kept.
fn captured(mut cmd: Command, env: &[(String, String)], log: &Path) -> Result<Output, Error> {
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null());
    let name = format!("{cmd:?}");
    eprintln!("    {} (log: {})", short(&name), log.display());
    let started = Instant::now();
    let out = cmd.output().map_err(|source| Error::Spawn {
        program: name,
        source,
    })?;
    let mut text = out.stdout.clone();
    text.extend_from_slice(&out.stderr);
    std::fs::write(log, &text).map_err(|source| Error::File {
        path: log.display().to_string(),
        source,
    })?;
    eprintln!(
        "      {} in {:.0} s",
        if out.status.success() { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}

fn short(s: &str) -> String {
    s.chars().take(120).collect()
}

/// "N passed, M failed" summed over cargo test's result lines.
fn test_counts(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut passed, mut failed) = (0u64, 0u64);
    for line in text.lines().filter(|l| l.starts_with("test result:")) {
        let number_before = |word: &str| {
            line.split(';')
                .find(|part| part.trim_end().ends_with(word))
                .and_then(|part| part.split_whitespace().rev().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        passed += number_before("passed");
        failed += number_before("failed");
    }
    format!("{passed} passed, {failed} failed")
}

/// The names of the first failing tests, from cargo test's output.
fn first_failures(out: &Output) -> Option<String> {
    let text = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("test ")?.strip_suffix(" ... FAILED"))
        .take(6)
        .collect();
    (!names.is_empty()).then(|| names.join(", "))
}

fn print_table(rows: &[Row]) {
    let headers = [
        "OpenSSL",
        "binding + tokio tests",
        "leak check",
        "interop (blocking)",
        "interop (async)",
    ];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.version.clone(),
                r.tests.clone(),
                r.leak.clone(),
                r.interop_blocking.clone(),
                r.interop_async.clone(),
            ]
        })
        .collect();
    let width = |i: usize| {
        cells
            .iter()
            .map(|c| c[i].len())
            .chain([headers[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..5).map(width).collect();
    let line = |c: &[String]| {
        c.iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    println!();
    println!("{}", line(&headers.map(str::to_string)));
    println!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-")
    );
    for c in &cells {
        println!("{}", line(c));
    }
    for r in rows {
        for n in &r.notes {
            println!("note: {}: {n}", r.version);
        }
    }
}
