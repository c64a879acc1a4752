//! The example server as a child process, stopped when its guard is dropped.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::process;

/// How long the server may take to print `listening on IP:PORT`.
const STARTUP_DEADLINE: Duration = Duration::from_secs(15);
/// How long the server may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of the server's stderr kept for error messages.
const LOG_TAIL: usize = 40;

/// A running example server. Dropping it sends SIGTERM and waits (SIGKILL
/// after a grace period).
pub struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    binary: PathBuf,
    args: Vec<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `binary` with `--listen 127.0.0.1:0` plus `args` and waits for
    /// its `listening on IP:PORT` line.
    pub fn start(binary: &Path, args: &[&str]) -> Result<Server, Error> {
        Server::spawn(binary, "127.0.0.1:0", args.iter().map(|a| a.to_string()))
    }

    /// Stops the server (it must exit 0 on SIGTERM) and starts the same
    /// binary with the same arguments on the same address: a restart as an
    /// operator would do it, losing everything held in the process.
    pub fn restart(self) -> Result<Server, Error> {
        let (binary, addr) = (self.binary.clone(), self.addr.to_string());
        // `--listen ADDR` comes first (see `spawn`); the rest is the caller's.
        let args: Vec<String> = self.args.iter().skip(2).cloned().collect();
        self.stop()?;
        Server::spawn(&binary, &addr, args)
    }

    fn spawn(
        binary: &Path,
        listen: &str,
        args: impl IntoIterator<Item = String>,
    ) -> Result<Server, Error> {
        let mut all = vec!["--listen".to_string(), listen.to_string()];
        all.extend(args);
        let mut child = Command::new(binary)
            .args(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                program: binary.display().to_string(),
                source,
            })?;
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            keep_tail(stderr, Arc::clone(&log));
        }
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            // Forwards stdout lines, and keeps draining after the reader is gone
            // so the server never blocks on a full pipe.
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut server = Server {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            binary: binary.to_path_buf(),
            args: all,
            log,
        };
        server.addr = server.wait_listening(&rx)?;
        eprintln!(
            "    started server {} on {}",
            server.args.join(" "),
            server.addr
        );
        Ok(server)
    }

    fn wait_listening(&self, lines: &mpsc::Receiver<String>) -> Result<SocketAddr, Error> {
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = parse_listening(&line) {
                        return Ok(addr);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(Error::Server(format!(
                        "no `listening on IP:PORT` line within {} s{}",
                        STARTUP_DEADLINE.as_secs(),
                        self.log_excerpt()
                    )));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::Server(format!(
                        "exited before printing `listening on IP:PORT` (args: {}){}",
                        self.args.join(" "),
                        self.log_excerpt()
                    )));
                }
            }
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's process id (`None` once stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last lines the server wrote to stderr, for error messages.
    pub fn log_excerpt(&self) -> String {
        let lines = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        if lines.is_empty() {
            String::new()
        } else {
            format!("\n    server stderr:\n      {}", lines.join("\n      "))
        }
    }

    /// Stops the server (SIGTERM, SIGKILL after a grace period). Returns an
    /// error if it did not exit 0 on SIGTERM, as its contract requires.
    pub fn stop(mut self) -> Result<ExitStatus, Error> {
        let Some(child) = self.child.take() else {
            return Err(Error::Server("already stopped".into()));
        };
        match process::terminate(child, STOP_GRACE) {
            (Some(status), false) if status.success() => Ok(status),
            (status, killed) => Err(Error::Server(format!(
                "did not exit 0 on SIGTERM: {}{}",
                match (status, killed) {
                    (_, true) => format!("still running after {} s, killed", STOP_GRACE.as_secs()),
                    (Some(s), false) => s.to_string(),
                    (None, false) => "status unknown".into(),
                },
                self.log_excerpt()
            ))),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = process::terminate(child, STOP_GRACE);
        }
    }
}

/// Keeps the last `LOG_TAIL` lines of `pipe` in `log`.
fn keep_tail(pipe: impl Read + Send + 'static, log: Arc<Mutex<Vec<String>>>) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let Ok(mut log) = log.lock() {
                if log.len() == LOG_TAIL {
                    log.remove(0);
                }
                log.push(line);
            }
        }
    });
}

/// Parses the exact readiness line `listening on IP:PORT`.
fn parse_listening(line: &str) -> Option<SocketAddr> {
    line.strip_prefix("listening on ")?.trim_end().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_line_is_parsed_exactly() {
        assert_eq!(
            parse_listening("listening on 127.0.0.1:40123"),
            Some(SocketAddr::from(([127, 0, 0, 1], 40123)))
        );
        assert_eq!(
            parse_listening("listening on [::1]:8443").map(|a| a.port()),
            Some(8443)
        );
        assert_eq!(parse_listening("Listening on 127.0.0.1:1"), None);
        assert_eq!(parse_listening("listening on localhost:1"), None);
        assert_eq!(parse_listening("starting"), None);
    }
}
