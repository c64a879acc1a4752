//! One standalone `redis-server` process.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::Error;
use crate::pki::CertFiles;
use crate::port::free_port;

/// How many times readiness is checked, and the wait between checks
/// (10 s of waits in all, plus each check's own time: a refused connection
/// returns at once, a check that hangs is cut off by its timeout — 250 ms
/// for plain `PING`, [`TLS_PING_LIMIT`] for TLS).
const READY_ATTEMPTS: u32 = 400;
const READY_WAIT: Duration = Duration::from_millis(25);
/// How long one TLS readiness check (`redis-cli --tls PING`) may run.
const TLS_PING_LIMIT: Duration = Duration::from_secs(2);
/// How many fresh ports `start` tries when the chosen one was taken.
const PORT_ATTEMPTS: u32 = 5;

/// How a server listens.
#[derive(Debug, Clone)]
enum Mode {
    /// Plain TCP.
    Plain,
    /// TLS only (`--port 0 --tls-port P`).
    Tls(TlsServer),
    /// A Sentinel (`redis-server CONF --sentinel`), plain TCP.
    Sentinel { conf_lines: Vec<String> },
}

/// The TLS files of a TLS-only server.
#[derive(Debug, Clone)]
struct TlsServer {
    cert: CertFiles,
    ca: PathBuf,
    /// When set, clients must present a certificate; this one is used for
    /// the readiness check and [`RedisServer::cli`].
    client: Option<CertFiles>,
}

/// A `redis-server` listening on a free 127.0.0.1 port, with persistence
/// off and its working directory in a temporary directory. Dropping it
/// kills the process.
///
/// A server may be TLS-only ([`start_tls`](Self::start_tls)) or a Sentinel
/// ([`start_sentinel`](Self::start_sentinel)); readiness is a `PING`
/// answered (`PONG`, or `NOAUTH` from a server that wants a password).
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    extra: Vec<String>,
    mode: Mode,
    // Last field: removed after the process is killed (Drop runs first).
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    pub fn start() -> Result<RedisServer, Error> {
        Self::start_with_args(&[])
    }

    /// Starts a server with extra `redis-server` arguments (`--name value`
    /// pairs, passed through as given).
    pub fn start_with_args(extra: &[&str]) -> Result<RedisServer, Error> {
        Self::start_mode(Mode::Plain, extra)
    }

    /// Starts a TLS-only server (`--port 0 --tls-port P`) presenting
    /// `cert`, trusting `ca` for client certificates. With `client`, clients
    /// must present a certificate (`--tls-auth-clients yes`) and `client` is
    /// the one the test kit itself uses; without, they need not.
    pub fn start_tls(
        cert: &CertFiles,
        ca: &Path,
        client: Option<&CertFiles>,
        extra: &[&str],
    ) -> Result<RedisServer, Error> {
        let tls = TlsServer {
            cert: cert.clone(),
            ca: ca.to_path_buf(),
            client: client.cloned(),
        };
        Self::start_mode(Mode::Tls(tls), extra)
    }

    /// Starts a Sentinel whose configuration file holds `conf_lines`
    /// (`sentinel monitor …` and the like; Sentinel rewrites the file).
    pub fn start_sentinel(conf_lines: &[String]) -> Result<RedisServer, Error> {
        Self::start_mode(
            Mode::Sentinel {
                conf_lines: conf_lines.to_vec(),
            },
            &[],
        )
    }

    fn start_mode(mode: Mode, extra: &[&str]) -> Result<RedisServer, Error> {
        let cluster = extra.contains(&"--cluster-enabled");
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port(cluster)?;
            let mut server = RedisServer {
                port,
                child: None,
                extra: extra.iter().map(|s| s.to_string()).collect(),
                mode: mode.clone(),
                dir: tempfile::Builder::new()
                    .prefix("tls-session-cache-redis-")
                    .tempdir()?,
            };
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                // Someone took the port between the check and the bind.
                Err(Error::Exited { log, .. }) if log.contains("Address already in use") => {
                    last = Some(log);
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::NotReady {
            port: 0,
            attempts: PORT_ATTEMPTS,
            last: last.unwrap_or_default(),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:PORT/` (`rediss://…` for a TLS server).
    pub fn url(&self) -> String {
        match self.mode {
            Mode::Tls(_) => format!("rediss://127.0.0.1:{}/", self.port),
            _ => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// Runs `redis-cli` against this server (over TLS with the test
    /// certificates for a TLS server; `--user`/`--pass` taken from `auth`)
    /// and returns what it printed. Fails when it exits non-zero or prints
    /// an error reply.
    pub fn cli(&self, auth: Option<(&str, &str)>, args: &[&str]) -> Result<String, Error> {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Mode::Tls(tls) = &self.mode {
            cmd.arg("--tls").arg("--cacert").arg(&tls.ca);
            if let Some(client) = &tls.client {
                cmd.arg("--cert")
                    .arg(&client.cert)
                    .arg("--key")
                    .arg(&client.key);
            }
        }
        if let Some((user, pass)) = auth {
            cmd.args(["--user", user]).env("REDISCLI_AUTH", pass);
        }
        let output = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| match source.kind() {
                ErrorKind::NotFound => Error::NotInstalled {
                    program: "redis-cli",
                },
                _ => Error::Spawn {
                    program: "redis-cli",
                    source,
                },
            })?;
        let out = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if !output.status.success() || out.starts_with("ERR") || out.starts_with("(error)") {
            return Err(Error::Cli {
                args: args.join(" "),
                output: format!("{out}{}", String::from_utf8_lossy(&output.stderr)),
            });
        }
        Ok(out)
    }

    /// The server's working directory (log file, cluster config).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// A fresh synchronous connection, for tests that inspect raw keys.
    pub fn connection(&self) -> Result<redis::Connection, Error> {
        let client = redis::Client::open(self.url())?;
        Ok(client.get_connection_with_timeout(Duration::from_secs(2))?)
    }

    /// Kills the process (SIGKILL, like a crash) and waits for it.
    pub fn stop(&mut self) -> Result<(), Error> {
        if let Some(mut child) = self.child.take() {
            match child.kill() {
                Ok(()) => {}
                // Already exited.
                Err(e) if e.kind() == ErrorKind::InvalidInput => {}
                Err(e) => return Err(e.into()),
            }
            child.wait()?;
        }
        Ok(())
    }

    /// Stops the server if it runs, then starts it again on the same port
    /// and waits until it answers `PING`. Data is not kept (persistence is
    /// off), cluster configuration is.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop()?;
        self.spawn_and_wait()
    }

    /// Freezes the process (SIGSTOP): it keeps its socket open but answers
    /// nothing — a "slow Redis".
    pub fn pause(&self) -> Result<(), Error> {
        self.signal("-STOP")
    }

    /// Thaws a process frozen by [`pause`](Self::pause) (SIGCONT).
    pub fn resume(&self) -> Result<(), Error> {
        self.signal("-CONT")
    }

    fn signal(&self, sig: &str) -> Result<(), Error> {
        let pid = self
            .pid()
            .ok_or_else(|| Error::Signal("not running".into()))?;
        // The shell's own `kill` (POSIX requires it built in): a minimal
        // system has `sh` but not procps's `kill` program.
        let status = Command::new("sh")
            .args(["-c", "kill \"$1\" \"$2\"", "sh", sig])
            .arg(pid.to_string())
            .status()
            .map_err(|e| Error::Signal(e.to_string()))?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Signal(format!("kill {sig} {pid}: {status}")))
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    fn spawn_and_wait(&mut self) -> Result<(), Error> {
        let port = self.port.to_string();
        let dir = self.dir.path().to_path_buf();
        let log = self.log_path();
        let mut command = Command::new("redis-server");
        if let Mode::Sentinel { conf_lines } = &self.mode {
            // Written once: after a restart Sentinel reads what it rewrote.
            let conf = dir.join("sentinel.conf");
            if !conf.exists() {
                std::fs::write(&conf, conf_lines.join("\n") + "\n")?;
            }
            command.arg(&conf).arg("--sentinel");
        }
        match &self.mode {
            Mode::Tls(tls) => {
                command
                    .args(["--port", "0", "--tls-port", &port])
                    .arg("--tls-cert-file")
                    .arg(&tls.cert.cert)
                    .arg("--tls-key-file")
                    .arg(&tls.cert.key)
                    .arg("--tls-ca-cert-file")
                    .arg(&tls.ca)
                    .args([
                        "--tls-auth-clients",
                        if tls.client.is_some() { "yes" } else { "no" },
                    ]);
            }
            _ => {
                command.args(["--port", &port]);
            }
        }
        command.args(["--bind", "127.0.0.1"]);
        if !matches!(self.mode, Mode::Sentinel { .. }) {
            command.args(["--save", "", "--appendonly", "no"]);
        }
        let child = command
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| match source.kind() {
                ErrorKind::NotFound => Error::NotInstalled {
                    program: "redis-server",
                },
                _ => Error::Spawn {
                    program: "redis-server",
                    source,
                },
            })?;
        self.child = Some(child);
        match self.wait_ready() {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self.stop();
                Err(e)
            }
        }
    }

    fn wait_ready(&mut self) -> Result<(), Error> {
        let mut last = String::new();
        for _ in 0..READY_ATTEMPTS {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                return Err(Error::Exited {
                    port: self.port,
                    status: status.to_string(),
                    log: self.log_tail(),
                });
            }
            let answered = match &self.mode {
                Mode::Tls(tls) => tls_ping(self.port, tls)?,
                _ => ping(&self.url()),
            };
            match answered {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            thread::sleep(READY_WAIT);
        }
        Err(Error::NotReady {
            port: self.port,
            attempts: READY_ATTEMPTS,
            last,
        })
    }
}

/// One readiness check: connect and expect `PONG` (or `NOAUTH`: the
/// server answers, it wants a password).
fn ping(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut con = client
        .get_connection_with_timeout(Duration::from_millis(250))
        .map_err(|e| e.to_string())?;
    con.set_read_timeout(Some(Duration::from_millis(250)))
        .map_err(|e| e.to_string())?;
    match redis::cmd("PING").query::<String>(&mut con) {
        Ok(pong) if pong == "PONG" => Ok(()),
        Ok(other) => Err(format!("PING answered {other:?}")),
        Err(e) if e.code() == Some("NOAUTH") => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// The readiness check of a TLS server: `redis-cli --tls` (trusting the
/// test CA, with the client certificate when one is required) sends
/// `PING`; `PONG` or `NOAUTH` counts as ready. No TLS library here, so the
/// test kit (and xtask, which uses it) builds without libssl-dev.
///
/// `Ok(Err(_))` is "not ready yet", `Err(_)` is fatal (`redis-cli` missing).
/// An attempt that runs past [`TLS_PING_LIMIT`] is killed and counts as
/// not ready.
fn tls_ping(port: u16, tls: &TlsServer) -> Result<Result<(), String>, Error> {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["--tls", "-h", "127.0.0.1", "-p", &port.to_string()])
        .arg("--cacert")
        .arg(&tls.ca);
    if let Some(client) = &tls.client {
        cmd.arg("--cert")
            .arg(&client.cert)
            .arg("--key")
            .arg(&client.key);
    }
    let mut child = cmd
        .arg("PING")
        // A password in the environment would turn NOAUTH into PONG or an
        // auth error; the check wants neither.
        .env_remove("REDISCLI_AUTH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| match source.kind() {
            ErrorKind::NotFound => Error::NotInstalled {
                program: "redis-cli",
            },
            _ => Error::Spawn {
                program: "redis-cli",
                source,
            },
        })?;
    let started = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if started.elapsed() > TLS_PING_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Err(format!(
                "redis-cli PING did not finish within {TLS_PING_LIMIT:?}"
            )));
        }
        thread::sleep(Duration::from_millis(5));
    }
    // The process has exited: its (short) output is in the pipes.
    let output = child.wait_with_output()?;
    let reply = String::from_utf8_lossy(&output.stdout);
    let reply = reply.trim();
    if reply == "PONG" || reply.starts_with("NOAUTH") {
        Ok(Ok(()))
    } else {
        Ok(Err(format!(
            "redis-cli PING ({}): {reply}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL also ends a paused (SIGSTOPped) process.
        let _ = self.stop();
    }
}
