//! Child processes with deadlines: run-to-completion with a kill on timeout,
//! and a polite stop (SIGTERM, then SIGKILL after a grace period).

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// What a program printed and how it ended.
#[derive(Debug)]
pub struct Finished {
    /// Exit status; `None` only if waiting for it failed.
    pub status: Option<ExitStatus>,
    /// Everything written to stdout (lossy UTF-8).
    pub stdout: String,
    /// Everything written to stderr (lossy UTF-8).
    pub stderr: String,
    /// The deadline passed and the program was killed.
    pub timed_out: bool,
}

/// Runs `cmd` with `input` on its stdin (then closed), collecting stdout and
/// stderr. If the program has not closed its stdout within `deadline` it is
/// killed and `timed_out` is set.
pub fn run_with_deadline(
    mut cmd: Command,
    input: &[u8],
    deadline: Duration,
) -> std::io::Result<Finished> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;

    // Each pipe gets its own thread so a full pipe can never block the child.
    let stdin = child.stdin.take();
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            // The child may exit without reading; a broken pipe is not our error.
            let _ = stdin.write_all(&input);
        }
    });
    let (done_tx, done_rx) = mpsc::channel();
    let stdout = child.stdout.take();
    let out_reader = thread::spawn(move || {
        let text = read_all(stdout);
        let _ = done_tx.send(());
        text
    });
    let stderr = child.stderr.take();
    let err_reader = thread::spawn(move || read_all(stderr));

    // stdout closes when the program exits; that is the readiness signal.
    let timed_out = done_rx.recv_timeout(deadline).is_err();
    if timed_out {
        let _ = child.kill();
    }
    let status = child.wait().ok();
    let _ = writer.join();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Finished {
        status,
        stdout,
        stderr,
        timed_out,
    })
}

fn read_all(pipe: Option<impl Read>) -> String {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Sends SIGTERM, waits up to `grace`, then SIGKILLs and waits. Returns the
/// exit status and whether SIGKILL was needed.
pub fn terminate(mut child: Child, grace: Duration) -> (Option<ExitStatus>, bool) {
    let pid = child.id() as libc::pid_t;
    if let Ok(Some(status)) = child.try_wait() {
        return (Some(status), false);
    }
    // SAFETY: plain syscall. `child` has not been reaped (we own it and only
    // the thread below waits for it), so `pid` still names our child.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let _ = tx.send(child.wait().ok());
    });
    let (status, killed) = match rx.recv_timeout(grace) {
        Ok(status) => (status, false),
        Err(_) => {
            // SAFETY: as above; the waiter has not returned, so the child is unreaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            (rx.recv().ok().flatten(), true)
        }
    };
    let _ = waiter.join();
    (status, killed)
}
