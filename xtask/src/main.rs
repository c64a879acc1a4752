//! Project tooling: `cargo xtask test | interop | bench`.
//!
//! - [`interop`]: the example server against `openssl s_client` (the main job).
//! - [`test_cmd`]: every check CI runs.
//! - [`leak`]: the valgrind leak check.
//! - [`fuzz`]: the libFuzzer targets of `fuzz/` (cargo-fuzz, stable).

mod bench;
mod cargo;
mod error;
mod fuzz;
mod interop;
mod leak;
mod matrix;
mod prereq;
mod process;
mod stime;
mod test_cmd;

use std::process::ExitCode;

use error::Error;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    let result = match args.first().map(String::as_str) {
        Some("test") => test_cmd::run(rest),
        Some("interop") => interop::Options::parse(rest).and_then(|o| interop::run(&o)),
        Some("leak-check") => leak::profile_from_args(rest).and_then(|p| leak::run(&p)),
        Some("bench") => bench::run(rest),
        Some("openssl-matrix") => matrix::run(rest),
        Some("fuzz") => fuzz::run(rest),
        Some("help" | "--help" | "-h") | None => {
            print_help();
            Ok(())
        }
        Some(other) => Err(Error::Usage(format!("unknown xtask command `{other}`"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_help() {
    println!(
        "cargo xtask <command>\n\n\
         commands:\n  \
         {}\n  \
         test [--install]\n    fmt check, clippy -D warnings, cargo test --workspace, a 5 s smoke of each fuzz target, the valgrind leak check,\n    \
         then interop against the blocking and the async server, the actix, axum and\n    hyper examples and the rustls server, every row required to PASS (SKIP fails). Prints each step's wall time. Installs missing system packages first\n    (apt-get) when root without a terminal, or with --install; otherwise stops saying\n    what to install.\n  \
         leak-check [--dev | --dev-packages P,P]\n    the leak check alone: examples/leak_check.rs (release, or the dev build the tests made) under valgrind (definite leaks fail)\n  \
         {}\n  \
         {}\n  \
         {}",
        interop::USAGE.replace('\n', "\n  "),
        matrix::USAGE,
        fuzz::USAGE.replace('\n', "\n  "),
        bench::USAGE.replace('\n', "\n  ")
    );
}
