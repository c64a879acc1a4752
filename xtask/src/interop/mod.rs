//! `cargo xtask interop`: the example server against `openssl s_client`,
//! printed as a table (stdout) with progress on stderr.
//!
//! Map: [`scenarios`] lists what is checked (the Redis ones, 6–9, live in
//! [`fleet`] and [`store_down`], on a [`shared_store`]); [`steps`] turns
//! labelled s_client runs into a row; [`sclient`] runs and parses s_client;
//! [`server`] runs the example server; [`report`] prints rows. The issue-10
//! scenarios (12, 13: connections dropped after the handshake) are in
//! [`unclean`], with [`relay`] to reset a connection and [`crate::stime`].
//! The issue-12 scenarios (14: TLS to Redis, 15: a Sentinel failover) are
//! in [`redis_secure`].

mod check;
mod context;
mod fleet;
mod prerequisite;
mod redis_secure;
mod relay;
mod report;
mod scenarios;
mod sclient;
pub(crate) mod server;
mod shared_store;
mod steps;
mod store_down;
mod tally;
mod unclean;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cargo::{self, Profile, TargetKind, package_list};
use crate::error::Error;
use crate::prereq::{self, Install};
use context::Context;
use prerequisite::Prerequisite;
use report::{Row, Status};
use scenarios::{SCENARIOS, Scenario};

/// The package of the framework examples.
const FRAMEWORKS: &str = "tls-session-cache-frameworks";

/// Which example server to drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// `examples/server.rs`: one thread per connection.
    Blocking,
    /// `tls-session-cache-tokio`'s `examples/async_server.rs`: tokio, lookups
    /// through the client-hello retry.
    Async,
    /// `tls-session-cache-frameworks`' `actix-example`: actix-web 4,
    /// blocking lookups in actix's workers.
    Actix,
    /// `tls-session-cache-frameworks`' `axum-example`: axum on axum-server
    /// with the tokio crate's `SessionCacheAcceptor`.
    Axum,
    /// `tls-session-cache-frameworks`' `hyper-example`: hyper 1 +
    /// hyper-util over `AsyncSessionCache::accept`.
    Hyper,
    /// `tls-session-cache-rustls`' `examples/rustls_server.rs`: rustls 0.23
    /// with the cache as its session storage.
    Rustls,
}

impl ServerKind {
    /// Parses `--server`'s value.
    pub fn parse(name: &str) -> Result<ServerKind, Error> {
        Ok(match name {
            "blocking" => ServerKind::Blocking,
            "async" => ServerKind::Async,
            "actix" => ServerKind::Actix,
            "axum" => ServerKind::Axum,
            "hyper" => ServerKind::Hyper,
            "rustls" => ServerKind::Rustls,
            other => {
                return Err(Error::Usage(format!(
                    "`--server {other}`: expected blocking, async, actix, axum, hyper or rustls"
                )));
            }
        })
    }

    /// The name `--server` takes.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Blocking => "blocking",
            ServerKind::Async => "async",
            ServerKind::Actix => "actix",
            ServerKind::Axum => "axum",
            ServerKind::Hyper => "hyper",
            ServerKind::Rustls => "rustls",
        }
    }

    /// Whether the server sends a TLS 1.3 ticket only when its store kept
    /// the session: rustls sends none when `put` fails, OpenSSL sends one
    /// that will not resume.
    fn ticket_only_when_stored(self) -> bool {
        self == ServerKind::Rustls
    }

    /// Builds the server with `profile` (release unless `--dev`) and
    /// returns its executable.
    fn build(self, profile: &Profile) -> Result<PathBuf, Error> {
        let (package, kind, name) = match self {
            ServerKind::Blocking => ("tls-session-cache-openssl", TargetKind::Example, "server"),
            ServerKind::Async => (
                "tls-session-cache-tokio",
                TargetKind::Example,
                "async_server",
            ),
            ServerKind::Actix => (FRAMEWORKS, TargetKind::Bin, "actix-example"),
            ServerKind::Axum => (FRAMEWORKS, TargetKind::Bin, "axum-example"),
            ServerKind::Hyper => (FRAMEWORKS, TargetKind::Bin, "hyper-example"),
            ServerKind::Rustls => (
                "tls-session-cache-rustls",
                TargetKind::Example,
                "rustls_server",
            ),
        };
        cargo::build(profile, package, kind, name)
    }
}

/// Options of `cargo xtask interop`.
#[derive(Clone, Debug)]
pub struct Options {
    /// The openssl binary (`--openssl PATH`).
    pub openssl: PathBuf,
    /// Where to write the rows as JSON (`--json FILE`).
    pub json: Option<PathBuf>,
    /// Run only these scenarios (`--only NAME`, repeatable, comma-separated).
    pub only: Vec<String>,
    /// `--server blocking|async|actix|axum|hyper|rustls`.
    pub server: ServerKind,
    /// SKIP counts as failure (`cargo xtask test`).
    pub require_all: bool,
    /// `--install`: install missing prerequisites even with a terminal.
    pub install: Install,
    /// How the server is built: release, or `--dev` / `--dev-packages`
    /// (reusing the dev build of the tests that ran before).
    pub profile: Profile,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            openssl: PathBuf::from("openssl"),
            json: None,
            only: Vec::new(),
            server: ServerKind::Blocking,
            require_all: false,
            install: Install::WhenUnattended,
            profile: Profile::Release,
        }
    }
}

/// Help text for the interop flags.
pub const USAGE: &str = "\
interop [--openssl PATH] [--json FILE] [--only NAME[,NAME]]
        [--server blocking|async|actix|axum|hyper|rustls] [--install] [--dev | --dev-packages P,P]
    builds the example server (release; actix, axum, hyper: the framework examples;
    rustls: tls-session-cache-rustls' rustls_server; --dev: the executable
    `cargo test --workspace` builds (`cargo test --workspace --no-run`: nothing to do after
    the tests), as `cargo xtask test` does; --dev-packages: the same for `cargo test -p P -p P`), runs openssl s_client scenarios against it and
    prints: scenario | TLS version | expected | observed | PASS/FAIL/SKIP.
    Exit status is non-zero if any row FAILs. Missing system packages (openssl,
    libssl-dev, pkg-config; redis-server for the Redis scenarios) are installed with
    apt-get when running as root without a terminal, or with --install; otherwise the
    Redis scenarios are SKIPped with the install command.";

impl Options {
    /// Parses the flags after `interop`.
    pub fn parse(args: &[String]) -> Result<Options, Error> {
        let mut o = Options::default();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| Error::Usage(format!("`{flag}` needs a value")))
            };
            match flag.as_str() {
                "--openssl" => o.openssl = PathBuf::from(value()?),
                "--json" => o.json = Some(PathBuf::from(value()?)),
                "--install" => o.install = Install::Yes,
                "--only" => o
                    .only
                    .extend(value()?.split(',').map(|s| s.trim().to_string())),
                "--server" => o.server = ServerKind::parse(&value()?)?,
                "--dev" => o.profile = Profile::dev_workspace(),
                "--dev-packages" => o.profile = Profile::Dev(Some(package_list(&value()?))),
                other => return Err(Error::Usage(format!("unknown interop flag `{other}`"))),
            }
        }
        Ok(o)
    }

    /// The selected scenarios; `--only` accepts names or numbers.
    fn selected(&self) -> Result<Vec<&'static Scenario>, Error> {
        for want in &self.only {
            if !SCENARIOS.iter().any(|s| matches(s, want)) {
                let names: Vec<_> = SCENARIOS.iter().map(|s| s.name).collect();
                return Err(Error::Usage(format!(
                    "no scenario `{want}`; scenarios: {}",
                    names.join(", ")
                )));
            }
        }
        Ok(SCENARIOS
            .iter()
            .filter(|s| self.only.is_empty() || self.only.iter().any(|w| matches(s, w)))
            .collect())
    }
}

fn matches(s: &Scenario, want: &str) -> bool {
    s.name == want || s.number.to_string() == want
}

/// Runs `cargo xtask interop`.
pub fn run(options: &Options) -> Result<(), Error> {
    let selected = options.selected()?;
    // Building the example server needs OpenSSL's headers; driving it, the
    // openssl tool (unless another one is given).
    let mut build_needs = vec![prereq::LIBSSL_DEV, prereq::PKG_CONFIG];
    if options.openssl == Path::new("openssl") {
        build_needs.push(prereq::OPENSSL);
    }
    prereq::ensure(&build_needs, options.install)?;
    if selected
        .iter()
        .any(|s| s.needs.contains(&Prerequisite::RedisServer))
        && let Err(e) = prereq::ensure(&[prereq::REDIS_SERVER], options.install)
    {
        eprintln!("note: {e}; the Redis scenarios will be SKIPped");
    }
    let server_bin = options.server.build(&options.profile)?;
    let mut ctx =
        Context::new(options.openssl.clone(), server_bin).map_err(|source| Error::File {
            path: std::env::temp_dir().display().to_string(),
            source,
        })?;
    ctx.ticket_only_when_stored = options.server.ticket_only_when_stored();

    let mut rows = Vec::new();
    for scenario in selected {
        let started = Instant::now();
        eprintln!("--> [{}] {}", scenario.number, scenario.name);
        let new_rows = run_scenario(scenario, &mut ctx);
        for r in &new_rows {
            eprintln!(
                "    {} {} ({}): {}",
                r.status,
                r.name,
                r.protocol,
                if r.detail.is_empty() {
                    &r.observed
                } else {
                    &r.detail
                }
            );
        }
        eprintln!("    ({:.1} s)", started.elapsed().as_secs_f64());
        rows.extend(new_rows);
    }
    drop(ctx);

    report::print_table(&rows);
    if let Some(file) = &options.json {
        report::write_json(&rows, file)?;
        eprintln!("wrote {}", file.display());
    }
    let failed = rows.iter().filter(|r| r.status == Status::Fail).count();
    let skipped = rows.iter().filter(|r| r.status == Status::Skip).count();
    if failed > 0 || (options.require_all && skipped > 0) {
        return Err(Error::Interop { failed, skipped });
    }
    if skipped > 0 {
        eprintln!("note: {skipped} row(s) SKIPped; `cargo xtask test` treats SKIP as failure");
    }
    Ok(())
}

fn run_scenario(scenario: &Scenario, ctx: &mut Context) -> Vec<Row> {
    let row = |status, observed: &str, detail: String| Row {
        name: scenario.name.into(),
        protocol: scenario.protocol.into(),
        expected: scenario.expected.into(),
        observed: observed.into(),
        status,
        detail,
    };
    for need in scenario.needs {
        if let Err(message) = need.check(&ctx.openssl) {
            return vec![row(Status::Skip, "not run", message)];
        }
    }
    match (scenario.run)(ctx) {
        Ok(checks) => checks
            .into_iter()
            .map(|c| Row {
                name: scenario.name.into(),
                protocol: c.protocol,
                expected: c.expected,
                observed: c.observed,
                status: if c.failure.is_some() {
                    Status::Fail
                } else {
                    Status::Pass
                },
                detail: c.failure.unwrap_or_default(),
            })
            .collect(),
        Err(message) => vec![row(Status::Fail, "error", message)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_flags() {
        let o = Options::parse(&args(&[
            "--openssl",
            "/opt/ossl/bin/openssl",
            "--json",
            "out.json",
            "--only",
            "expiry,1",
            "--server",
            "async",
        ]))
        .unwrap();
        assert_eq!(o.openssl, PathBuf::from("/opt/ossl/bin/openssl"));
        assert_eq!(o.json, Some(PathBuf::from("out.json")));
        assert_eq!(o.server, ServerKind::Async);
        let names: Vec<_> = o.selected().unwrap().iter().map(|s| s.name).collect();
        assert_eq!(names, ["tls12-session-id", "expiry"]);
    }

    #[test]
    fn rejects_unknown_flags_scenarios_and_servers() {
        assert!(Options::parse(&args(&["--bogus"])).is_err());
        assert!(Options::parse(&args(&["--json"])).is_err());
        assert!(Options::parse(&args(&["--server", "fast"])).is_err());
        for name in ["blocking", "async", "actix", "axum", "hyper", "rustls"] {
            let o = Options::parse(&args(&["--server", name])).unwrap();
            assert_eq!(o.server.name(), name);
        }
        let o = Options::parse(&args(&["--only", "nope"])).unwrap();
        assert!(o.selected().is_err());
    }
}
