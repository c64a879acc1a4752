//! One standalone `redis-server` process.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

use crate::error::Error;
use crate::port::free_port;

/// How many times readiness is checked, and the wait between checks
/// (at most 10 s in all).
const READY_ATTEMPTS: u32 = 400;
const READY_WAIT: Duration = Duration::from_millis(25);
/// How many fresh ports `start` tries when the chosen one was taken.
const PORT_ATTEMPTS: u32 = 5;

/// A `redis-server` listening on a free 127.0.0.1 port, with persistence
/// off and its working directory in a temporary directory. Dropping it
/// kills the process.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    extra: Vec<String>,
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
        let cluster = extra.contains(&"--cluster-enabled");
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port(cluster)?;
            let mut server = RedisServer {
                port,
                child: None,
                extra: extra.iter().map(|s| s.to_string()).collect(),
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

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
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
        let status = Command::new("kill")
            .arg(sig)
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
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--daemonize", "no"])
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
            match ping(&self.url()) {
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

/// One readiness check: connect and expect `PONG`.
fn ping(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut con = client
        .get_connection_with_timeout(Duration::from_millis(250))
        .map_err(|e| e.to_string())?;
    con.set_read_timeout(Some(Duration::from_millis(250)))
        .map_err(|e| e.to_string())?;
    let pong: String = redis::cmd("PING")
        .query(&mut con)
        .map_err(|e| e.to_string())?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(format!("PING answered {pong:?}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL also ends a paused (SIGSTOPped) process.
        let _ = self.stop();
    }
}
