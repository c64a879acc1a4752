//! The one error type of the xtask commands.

use std::process::ExitStatus;

/// Why an xtask command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line could not be understood.
    #[error("{0}; see `cargo xtask help`")]
    Usage(String),
    /// A program could not be started at all.
    #[error("could not start {program}: {source}")]
    Spawn {
        /// What was being started.
        program: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A step ran and exited unsuccessfully.
    #[error("{step} failed ({status})")]
    Step {
        /// The step's name.
        step: String,
        /// How it exited.
        status: ExitStatus,
    },
    /// A prerequisite is missing; the message says how to install it.
    #[error("{0}")]
    Missing(String),
    /// `cargo build` did not produce the expected binary.
    #[error("building {what}: {detail}")]
    Build {
        /// The target being built.
        what: String,
        /// What went wrong.
        detail: String,
    },
    /// The example server did not start or behaved outside its contract.
    #[error("example server: {0}")]
    Server(String),
    /// A benchmark could not be run or measured.
    #[error("benchmark: {0}")]
    Bench(String),
    /// Interop rows that did not pass.
    #[error("interop: {failed} FAIL, {skipped} SKIP (every row must PASS)")]
    Interop {
        /// Rows that failed.
        failed: usize,
        /// Rows that were skipped.
        skipped: usize,
    },
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why it failed.
        source: std::io::Error,
    },
}
