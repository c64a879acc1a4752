//! The one list of system prerequisites — program (or file) → Debian
//! package, and why — and installing what is missing.
//!
//! Every xtask command that needs something from the system asks for it
//! here ([`ensure`]); `.ci/run` keeps no list of its own. A missing package
//! is installed when that can be done without asking anyone: running as
//! root, with `apt-get`, and either no terminal on standard input (CI, a
//! script) or `--install` given. Otherwise the command stops before its
//! first step with one line naming every missing package and the exact
//! command that installs them.

use std::io::IsTerminal;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::cargo::run_step;
use crate::error::Error;

/// One thing a command needs from the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// What is checked: a program on the `PATH`, or (starting with `/`) a file.
    pub what: &'static str,
    /// The Debian package that provides it.
    pub package: &'static str,
    /// Why the project needs it.
    pub why: &'static str,
}

/// The `openssl` command-line tool.
pub const OPENSSL: Need = Need {
    what: "openssl",
    package: "openssl",
    why: "`openssl s_client` / `s_time` drive the example servers in interop; the test kit makes its test certificates with it",
};
/// OpenSSL's headers.
pub const LIBSSL_DEV: Need = Need {
    what: "/usr/include/openssl/ssl.h",
    package: "libssl-dev",
    why: "openssl-sys builds the binding against the system OpenSSL",
};
/// `pkg-config`.
pub const PKG_CONFIG: Need = Need {
    what: "pkg-config",
    package: "pkg-config",
    why: "openssl-sys finds the system OpenSSL with it",
};
/// `redis-server`.
pub const REDIS_SERVER: Need = Need {
    what: "redis-server",
    package: "redis-server",
    why: "tests, interop and the bench start their own on free loopback ports \
          (Debian's build also serves the TLS tests and runs Sentinel with --sentinel)",
};
/// `redis-cli`.
pub const REDIS_CLI: Need = Need {
    what: "redis-cli",
    package: "redis-tools",
    why: "the testkit builds Redis Clusters with `redis-cli --cluster create`",
};
/// `valgrind`.
pub const VALGRIND: Need = Need {
    what: "valgrind",
    package: "valgrind",
    why: "the leak check runs 2000+ resumed handshakes under it",
};
/// `promtool`, the Prometheus project's checker of the text format.
pub const PROMTOOL: Need = Need {
    what: "promtool",
    package: "prometheus",
    why: "the framework examples' end-to-end tests check /metrics with `promtool check metrics`",
};
/// `perl` and `make`, to build OpenSSL from source. Checked by the `perl`
/// package's `cpan`: every Debian has `/usr/bin/perl` (perl-base), but
/// OpenSSL's `Configure` needs the modules only the `perl` package brings.
pub const PERL: Need = Need {
    what: "cpan",
    package: "perl",
    why: "openssl-matrix builds OpenSSL from source (Configure is perl)",
};
/// `make`.
pub const MAKE: Need = Need {
    what: "make",
    package: "make",
    why: "openssl-matrix builds OpenSSL from source",
};
/// A C++ compiler: libfuzzer-sys compiles libFuzzer, which is C++.
pub const CXX: Need = Need {
    what: "c++",
    package: "g++",
    why: "the fuzz smoke: cargo-fuzz's libfuzzer-sys compiles libFuzzer (C++)",
};
/// nginx, for the side-by-side benchmark.
pub const NGINX: Need = Need {
    what: "nginx",
    package: "nginx-light",
    why: "`cargo xtask bench --nginx` measures nginx beside the example server",
};

/// Everything the README's two commands need (`cargo xtask test` and
/// `cargo xtask interop`).
pub const FOR_TEST: &[Need] = &[
    OPENSSL,
    LIBSSL_DEV,
    PKG_CONFIG,
    REDIS_SERVER,
    REDIS_CLI,
    VALGRIND,
    PROMTOOL,
    PERL,
    MAKE,
    CXX,
];

/// A tool installed with `cargo install`, at a pinned version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CargoTool {
    /// The program `cargo install` puts in `$CARGO_HOME/bin`.
    pub binary: &'static str,
    /// The crate on crates.io.
    pub krate: &'static str,
    /// The version installed.
    pub version: &'static str,
    /// Why the project needs it.
    pub why: &'static str,
}

/// cargo-fuzz: builds libFuzzer targets on stable Rust with
/// `--sanitizer none`.
pub const CARGO_FUZZ: CargoTool = CargoTool {
    binary: "cargo-fuzz",
    krate: "cargo-fuzz",
    version: "0.13.2",
    why: "`cargo xtask fuzz` and the fuzz smoke of `cargo xtask test` build and run the libFuzzer targets of fuzz/",
};

/// Whether a command may install what is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Install {
    /// Install when no one can be asked: root, `apt-get`, no terminal.
    WhenUnattended,
    /// Install (`--install`), still only as root with `apt-get`.
    Yes,
}

impl Install {
    /// `Yes` if `args` holds `--install` (which is then removed).
    pub fn from_args(args: &mut Vec<String>) -> Install {
        let before = args.len();
        args.retain(|a| a != "--install");
        if args.len() == before {
            Install::WhenUnattended
        } else {
            Install::Yes
        }
    }
}

/// Whether `need` is present.
pub fn present(need: &Need) -> bool {
    if need.what.starts_with('/') {
        return Path::new(need.what).exists();
    }
    on_path(need.what)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let candidate = dir.join(program);
            candidate.is_file()
                && std::fs::metadata(&candidate).is_ok_and(|m| {
                    std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
                })
        })
    })
}

/// The packages of the needs that are missing, each once, in list order.
pub fn missing_packages(needs: &[Need]) -> Vec<&'static str> {
    let mut packages: Vec<&'static str> = Vec::new();
    for need in needs.iter().filter(|n| !present(n)) {
        if !packages.contains(&need.package) {
            packages.push(need.package);
        }
    }
    packages
}

/// Why installing cannot happen here, if it cannot.
fn cannot_install(install: Install) -> Option<&'static str> {
    // SAFETY: a plain query of the process's effective user.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root");
    }
    if !on_path("apt-get") {
        return Some("no apt-get on this machine");
    }
    if install == Install::WhenUnattended && std::io::stdin().is_terminal() {
        return Some("a terminal is attached (pass --install to install anyway)");
    }
    None
}

/// The exact command that installs `packages`.
pub fn install_command(packages: &[&str]) -> String {
    format!(
        "apt-get update && apt-get install -y {}",
        packages.join(" ")
    )
}

/// Makes sure `needs` are present: installs the missing packages when it
/// may (see the module note) and says what it installed; otherwise fails
/// with one line naming every missing package and the command.
pub fn ensure(needs: &[Need], install: Install) -> Result<(), Error> {
    let packages = missing_packages(needs);
    if packages.is_empty() {
        return Ok(());
    }
    if let Some(why) = cannot_install(install) {
        let whys: Vec<String> = needs
            .iter()
            .filter(|n| !present(n))
            .map(|n| format!("{} ({})", n.what, n.why))
            .collect();
        return Err(Error::Missing(format!(
            "missing: {} — needed for: {}; install with `{}` \
             (not installing it myself: {why})",
            packages.join(" "),
            whys.join("; "),
            install_command(&packages)
        )));
    }
    eprintln!(
        "==> installing {} (missing: {})",
        packages.join(" "),
        needs
            .iter()
            .filter(|n| !present(n))
            .map(|n| n.what)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let quiet = |c: &mut Command| {
        c.env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null());
    };
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    quiet(&mut update);
    run_step("apt-get update", update)?;
    let mut apt = Command::new("apt-get");
    apt.args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&packages);
    quiet(&mut apt);
    run_step("apt-get install", apt)?;
    let still = missing_packages(needs);
    if !still.is_empty() {
        return Err(Error::Missing(format!(
            "installed {} but still missing: {}",
            packages.join(" "),
            still.join(" ")
        )));
    }
    eprintln!("==> installed: {}", packages.join(" "));
    Ok(())
}

/// `$CARGO_HOME/bin`, where `cargo install` puts programs.
fn cargo_bin() -> Option<std::path::PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .map(|home| home.join("bin"))
}

/// Whether `tool` is installed (on the `PATH` or in `$CARGO_HOME/bin`,
/// where cargo finds its subcommands).
pub fn tool_present(tool: &CargoTool) -> bool {
    on_path(tool.binary) || cargo_bin().is_some_and(|bin| bin.join(tool.binary).is_file())
}

/// The exact command that installs `tool`.
pub fn cargo_install_command(tool: &CargoTool) -> String {
    format!(
        "cargo install {} --version {} --locked",
        tool.krate, tool.version
    )
}

/// Makes sure `tool` is installed: `cargo install`s it under the same rule
/// as packages (root without a terminal, or `--install`); otherwise fails
/// naming the command.
pub fn ensure_cargo_tool(tool: &CargoTool, install: Install) -> Result<(), Error> {
    if tool_present(tool) {
        return Ok(());
    }
    let command = cargo_install_command(tool);
    // SAFETY: a plain query of the process's effective user.
    let why_not = if unsafe { libc::geteuid() } != 0 {
        Some("not running as root")
    } else if install == Install::WhenUnattended && std::io::stdin().is_terminal() {
        Some("a terminal is attached (pass --install to install anyway)")
    } else {
        None
    };
    if let Some(why) = why_not {
        return Err(Error::Missing(format!(
            "missing: {} — needed for: {}; install with `{command}` (not installing it myself: {why})",
            tool.binary, tool.why
        )));
    }
    eprintln!(
        "==> installing {} {} (`{command}`)",
        tool.krate, tool.version
    );
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args(["install", tool.krate, "--version", tool.version, "--locked"])
        .stdin(Stdio::null());
    run_step(&command, c)?;
    if !tool_present(tool) {
        return Err(Error::Missing(format!(
            "`{command}` ran but {} is still not found",
            tool.binary
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_need_names_a_package_and_a_reason() {
        for need in FOR_TEST.iter().chain(&[NGINX]) {
            assert!(!need.package.is_empty() && !need.why.is_empty(), "{need:?}");
        }
    }

    #[test]
    fn a_cargo_tool_is_installed_pinned_and_locked() {
        assert_eq!(
            cargo_install_command(&CARGO_FUZZ),
            "cargo install cargo-fuzz --version 0.13.2 --locked"
        );
        let missing = CargoTool {
            binary: "no-such-cargo-tool-anywhere",
            ..CARGO_FUZZ
        };
        assert!(!tool_present(&missing));
    }

    #[test]
    fn a_missing_program_is_listed_with_its_install_command() {
        let need = Need {
            what: "no-such-program-anywhere",
            package: "no-such-package",
            why: "a test",
        };
        assert!(!present(&need));
        assert_eq!(missing_packages(&[need, need]), vec!["no-such-package"]);
        assert!(present(&Need { what: "/", ..need }));
        assert_eq!(
            install_command(&["a", "b"]),
            "apt-get update && apt-get install -y a b"
        );
    }
}
