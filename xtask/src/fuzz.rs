//! `cargo xtask fuzz`: the coverage-guided fuzz targets of `fuzz/`
//! (libFuzzer through cargo-fuzz, on the pinned stable toolchain with
//! `--sanitizer none`), each for a time, with a one-line summary each.
//!
//! New inputs go to a working corpus under the target directory
//! (`<target>/fuzz/corpus/<TARGET>`); the committed seeds
//! (`fuzz/corpus/<TARGET>`) are read, never written. A crash stops the
//! run: libFuzzer leaves the input in `fuzz/artifacts/<TARGET>/`; the full
//! log of each target is in `<target>/fuzz/logs/<TARGET>.log`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::cargo::{cargo, run_step, workspace_root};
use crate::error::Error;
use crate::prereq::{self, Install};

/// The fuzz targets, in the order they run.
pub const TARGETS: &[&str] = &[
    "envelope",
    "seal_open",
    "keyring",
    "client_hello",
    "stored_session",
];

/// The usage line of `cargo xtask fuzz`.
pub const USAGE: &str = "fuzz [--seconds N] [--seeds] [--install] [TARGET...]\n  \
     build the fuzz targets (cargo-fuzz, libFuzzer, stable Rust, --sanitizer none) and run each\n  \
     for N seconds (default 60); targets: envelope seal_open keyring client_hello stored_session.\n  \
     --seeds first rewrites the seed corpus fuzz/corpus/ from real handshakes and a real cache.\n  \
     Installs cargo-fuzz when missing (as `test` installs packages).";

/// What one target's run reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Inputs executed.
    pub execs: u64,
    /// Coverage: edges (libFuzzer's `cov`).
    pub cov: u64,
    /// Coverage features (libFuzzer's `ft`: edges with hit counts, compares).
    pub ft: u64,
    /// Inputs in the corpus at the end (libFuzzer's `corp`).
    pub corpus: u64,
}

/// `cargo xtask fuzz …`.
pub fn run(args: &[String]) -> Result<(), Error> {
    let mut args = args.to_vec();
    let install = Install::from_args(&mut args);
    let mut seconds = 60u64;
    let mut seeds = false;
    let mut targets = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|s| *s > 0)
                    .ok_or_else(|| Error::Usage("--seconds takes a positive number".into()))?;
            }
            "--seeds" => seeds = true,
            t if TARGETS.contains(&t) => targets.push(t.to_owned()),
            other => {
                return Err(Error::Usage(format!(
                    "unknown fuzz argument `{other}` (targets: {})",
                    TARGETS.join(" ")
                )));
            }
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    }
    ensure(install)?;
    if seeds {
        prereq::ensure(&[prereq::REDIS_SERVER, prereq::OPENSSL], install)?;
        write_seeds()?;
    }
    build()?;
    let mut failed = Vec::new();
    for target in &targets {
        match run_target(target, seconds) {
            Ok(s) => eprintln!(
                "fuzz {target}: {} execs in {seconds} s, cov {} edges, ft {}, corpus {}, no crash",
                s.execs, s.cov, s.ft, s.corpus
            ),
            Err(e) => {
                eprintln!("fuzz {target}: FAILED: {e}");
                failed.push(target.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Missing(format!(
            "fuzz targets failed: {} (crash inputs in fuzz/artifacts/)",
            failed.join(" ")
        )))
    }
}

/// cargo-fuzz and a C++ compiler (for libFuzzer) are there, or installed
/// now when they may be.
pub fn ensure(install: Install) -> Result<(), Error> {
    prereq::ensure(&[prereq::CXX], install)?;
    prereq::ensure_cargo_tool(&prereq::CARGO_FUZZ, install)
}

fn fuzz_dir() -> PathBuf {
    workspace_root().join("fuzz")
}

/// Where the fuzz build and its working files go: `$CARGO_TARGET_DIR/fuzz`
/// or the workspace's `target/fuzz`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("fuzz")
}

fn cargo_fuzz(sub: &str) -> Command {
    let mut c = cargo();
    c.current_dir(fuzz_dir())
        .args(["fuzz", sub, "--sanitizer", "none", "--target-dir"]);
    c.arg(target_dir());
    c
}

/// Builds every target (release, debug assertions on, sanitizer coverage).
pub fn build() -> Result<(), Error> {
    run_step("cargo fuzz build", cargo_fuzz("build")).map(drop)
}

/// Rewrites the seed corpus (`examples/seed_corpus.rs`, a plain build).
fn write_seeds() -> Result<(), Error> {
    let mut c = cargo();
    c.current_dir(fuzz_dir())
        .env("CARGO_TARGET_DIR", target_dir().join("plain"))
        .args(["run", "--example", "seed_corpus", "--"])
        .arg(fuzz_dir().join("corpus"));
    run_step("seed corpus", c).map(drop)
}

/// Runs `target` for `seconds` over its working corpus and the seeds.
pub fn run_target(target: &str, seconds: u64) -> Result<Summary, Error> {
    let work = target_dir().join("corpus").join(target);
    let logs = target_dir().join("logs");
    for dir in [&work, &logs] {
        std::fs::create_dir_all(dir).map_err(|source| Error::File {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let log_path = logs.join(format!("{target}.log"));
    let log = std::fs::File::create(&log_path).map_err(|source| Error::File {
        path: log_path.display().to_string(),
        source,
    })?;
    let seeds = fuzz_dir().join("corpus").join(target);
    let mut c = cargo_fuzz("run");
    c.arg(target)
        .arg(&work)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .arg(format!(
            "-artifact_prefix={}/",
            fuzz_dir().join("artifacts").join(target).display()
        ))
        .stdout(Stdio::null())
        .stderr(log);
    std::fs::create_dir_all(fuzz_dir().join("artifacts").join(target)).map_err(|source| {
        Error::File {
            path: "fuzz/artifacts".into(),
            source,
        }
    })?;
    eprintln!(
        "==> fuzz {target} for {seconds} s (log: {})",
        log_path.display()
    );
    let started = Instant::now();
    let status = c.status().map_err(|source| Error::Spawn {
        program: format!("cargo fuzz run {target}"),
        source,
    })?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        for line in tail.iter().rev() {
            eprintln!("  | {line}");
        }
        return Err(Error::Step {
            step: format!("cargo fuzz run {target}"),
            status,
        });
    }
    let summary = summary(&text).ok_or_else(|| {
        Error::Missing(format!(
            "fuzz {target}: no libFuzzer statistics in {} after {:.0} s",
            log_path.display(),
            started.elapsed().as_secs_f64()
        ))
    })?;
    Ok(summary)
}

/// The statistics at the end of a libFuzzer log: the last status line's
/// `cov:`, `ft:` and `corp:`, and `stat::number_of_executed_units`.
pub fn summary(log: &str) -> Option<Summary> {
    let mut s = Summary::default();
    let mut seen = false;
    for line in log.lines() {
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            s.execs = n.trim().parse().ok()?;
            seen = true;
        }
        if line.starts_with('#') && line.contains(" cov: ") {
            let field = |name: &str| -> Option<u64> {
                let rest = line.split(name).nth(1)?;
                let word = rest.split_whitespace().next()?;
                word.split('/').next()?.parse().ok()
            };
            if let (Some(cov), Some(ft), Some(corp)) =
                (field(" cov: "), field(" ft: "), field(" corp: "))
            {
                (s.cov, s.ft, s.corpus) = (cov, ft, corp);
            }
        }
    }
    seen.then_some(s)
}

/// The smoke of `cargo xtask test`: every target for `seconds`.
pub fn smoke(seconds: u64) -> Result<(), Error> {
    build()?;
    for target in TARGETS {
        let s = run_target(target, seconds)?;
        eprintln!(
            "fuzz {target}: {} execs in {seconds} s, cov {} edges, corpus {}, no crash",
            s.execs, s.cov, s.corpus
        );
        if s.execs == 0 {
            return Err(Error::Missing(format!("fuzz {target} executed no input")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_statistics() {
        let log = "INFO: Seed: 1\n\
            #2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb\n\
            #4096\tpulse  cov: 120 ft: 300 corp: 40/2Kb lim: 43 exec/s: 2048 rss: 31Mb\n\
            #50000\tDONE   cov: 130 ft: 320 corp: 44/2321b lim: 400 exec/s: 5000 rss: 40Mb\n\
            Done 50000 runs in 11 second(s)\n\
            stat::number_of_executed_units: 50000\n\
            stat::average_exec_per_sec:     4545\n";
        assert_eq!(
            summary(log),
            Some(Summary {
                execs: 50000,
                cov: 130,
                ft: 320,
                corpus: 44
            })
        );
        assert_eq!(summary("#1 INITED cov: 1 ft: 1 corp: 1/1b\n"), None);
    }

    #[test]
    fn every_target_has_seeds_and_a_source() {
        for t in TARGETS {
            assert!(
                fuzz_dir()
                    .join("fuzz_targets")
                    .join(format!("{t}.rs"))
                    .is_file(),
                "{t}"
            );
            let seeds = std::fs::read_dir(fuzz_dir().join("corpus").join(t))
                .map(|d| d.count())
                .unwrap_or(0);
            assert!(seeds > 0, "no seed corpus for {t}");
        }
    }
}
