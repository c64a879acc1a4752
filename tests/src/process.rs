//! [`ServerProcess`]: one running example server.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::binary::server_binary;

/// Longest wait for `listening on …` (a debug build making its certificate
/// and a store checking Redis take milliseconds; this is a hang guard).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for a clean exit after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_POLL: Duration = Duration::from_millis(10);

/// An example server process started with `--listen 127.0.0.1:0` and the
/// given arguments. Dropping it sends SIGTERM and waits (SIGKILL after
/// [`STOP_TIMEOUT`]).
#[derive(Debug)]
pub struct ServerProcess {
    child: Option<Child>,
    addr: SocketAddr,
    args: Vec<String>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

/// The Redis timeout the tests give servers that do not set one.
pub const TEST_REDIS_TIMEOUT_MS: &str = "1000";

impl ServerProcess {
    /// Starts a server and waits for its `listening on IP:PORT` line.
    /// Panics (failing the test) with the server's stderr if it exits or
    /// prints anything else first.
    ///
    /// A Redis store gets `--redis-timeout-ms 1000` unless the test sets its
    /// own: these tests check behaviour, not latency, and a loaded CI
    /// machine can miss the 50 ms default now and then.
    pub fn start(args: &[&str]) -> ServerProcess {
        ServerProcess::start_binary(&server_binary(), args)
    }

    /// [`start`](Self::start) for another server binary with the example
    /// server's command line and readiness line (the framework examples).
    pub fn start_binary(binary: &std::path::Path, args: &[&str]) -> ServerProcess {
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let redis_store = args
            .windows(2)
            .any(|w| w[0] == "--store" && w[1] != "memory");
        if redis_store && !args.iter().any(|a| a == "--redis-timeout-ms") {
            args.extend([
                "--redis-timeout-ms".to_string(),
                TEST_REDIS_TIMEOUT_MS.to_string(),
            ]);
        }
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            readers.push(thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }));
        }
        let (tx, rx) = mpsc::channel();
        if let Some(pipe) = child.stdout.take() {
            readers.push(thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }));
        }
        let mut server = ServerProcess {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            args,
            stderr,
            readers,
        };
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => match line
                .strip_prefix("listening on ")
                .and_then(|a| a.parse().ok())
            {
                Some(addr) => server.addr = addr,
                None => panic!(
                    "server {:?} printed {line:?} instead of `listening on IP:PORT`; stderr:\n{}",
                    server.args,
                    server.stderr()
                ),
            },
            Err(e) => {
                let status = server
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                panic!(
                    "server {:?} not ready ({e}; exit status {status:?}); stderr:\n{}",
                    server.args,
                    server.stderr()
                )
            }
        }
        server
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it has written to stderr so far (its log, at debug level).
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sends SIGTERM and waits for the exit; returns the exit status.
    /// SIGKILL if it has not exited after [`STOP_TIMEOUT`].
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) with a pid we spawned and have not yet reaped
            // (the `Child` is still held), so the pid cannot have been reused.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(STOP_POLL),
                _ => {
                    let _ = child.kill();
                    break child.wait().ok();
                }
            }
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        status
    }

    /// Stops the server and asserts it exited 0 (the contract for SIGTERM).
    pub fn stop_cleanly(&mut self) {
        let status = self.stop();
        assert!(
            status.is_some_and(|s| s.success()),
            "server {:?} exited with {status:?} after SIGTERM; stderr:\n{}",
            self.args,
            self.stderr()
        );
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
