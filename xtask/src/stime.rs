//! `openssl s_time -reuse -tls1_2`: TLS 1.2 connections one after another,
//! each offering the session of the one before and each closed right after
//! its handshake, with no request and no close_notify (s_time closes with
//! `SO_LINGER` 0, so the server sees a reset). Run by the interop scenario
//! `unclean-close-s_time` and by `cargo xtask bench --nginx`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process;

/// How much longer than its `-time` s_time may run before it is killed
/// (it stops starting connections after `-time`, rounded to whole seconds).
const DEADLINE_MARGIN: Duration = Duration::from_secs(15);
/// The line s_time prints before its session-reuse section.
const REUSE_SECTION: &str = "Now timing with session id reuse.";

/// What one `s_time -reuse` run reported: one mark per timed connection,
/// `r` when it resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reuse {
    /// Connections timed, not counting the first one, which only got the
    /// session to offer.
    pub connections: u64,
    /// Of those, the ones that resumed (`r`).
    pub reused: u64,
}

impl Reuse {
    /// Every connection s_time made, the first included.
    pub fn total(&self) -> u64 {
        self.connections + 1
    }

    /// At least `percent` % of the timed connections resumed (false when
    /// none was timed).
    pub fn at_least(&self, percent: u64) -> bool {
        self.connections > 0 && self.reused * 100 >= percent * self.connections
    }

    /// Resumed share of the timed connections in whole percent, rounded
    /// down (so 98.9 % is never shown as 99 %).
    pub fn percent_floor(&self) -> u64 {
        (self.reused * 100)
            .checked_div(self.connections)
            .unwrap_or(0)
    }

    /// Resumed share of the timed connections in percent.
    pub fn percent(&self) -> f64 {
        if self.connections == 0 {
            0.0
        } else {
            self.reused as f64 * 100.0 / self.connections as f64
        }
    }
}

/// Runs `openssl s_time -connect ADDR -reuse -tls1_2 -time SECONDS` (no
/// `-www`: nothing is requested) and parses its reuse section.
pub fn run(openssl: &Path, addr: SocketAddr, seconds: u64) -> Result<Reuse, String> {
    let args = [
        "s_time".to_string(),
        "-connect".into(),
        addr.to_string(),
        "-reuse".into(),
        "-tls1_2".into(),
        "-time".into(),
        seconds.to_string(),
    ];
    let mut cmd = Command::new(openssl);
    cmd.args(&args);
    let deadline = Duration::from_secs(seconds) + DEADLINE_MARGIN;
    let done = process::run_with_deadline(cmd, b"", deadline)
        .map_err(|e| format!("could not start {}: {e}", openssl.display()))?;
    let context = || {
        let stderr: Vec<&str> = done.stderr.lines().filter(|l| !l.is_empty()).collect();
        format!(
            "`openssl {}`, exit {}; stderr: {}",
            args.join(" "),
            done.status.map_or("unknown".into(), |s| s.to_string()),
            stderr[stderr.len().saturating_sub(4)..].join(" | ")
        )
    };
    if done.timed_out {
        return Err(format!(
            "s_time still running after {} s, killed ({})",
            deadline.as_secs(),
            context()
        ));
    }
    if !done.status.is_some_and(|s| s.success()) {
        return Err(format!("s_time failed ({})", context()));
    }
    parse(&done.stdout).map_err(|e| format!("{e} ({})", context()))
}

/// The reuse section of s_time's output: after `starting`, one mark per
/// connection (`r` resumed; `*`, `t` or `3` full), then `N connections in
/// …`, whose N must equal the number of marks.
fn parse(stdout: &str) -> Result<Reuse, String> {
    let at = stdout
        .find(REUSE_SECTION)
        .ok_or("s_time printed no session-reuse section")?;
    let mut lines = stdout[at..].lines().skip_while(|l| l.trim() != "starting");
    if lines.next().is_none() {
        return Err("s_time's reuse section has no `starting` line".into());
    }
    let (mut marks, mut reused) = (0u64, 0u64);
    for line in lines {
        if let Some(reported) = connections_line(line) {
            if reported != marks {
                return Err(format!(
                    "s_time reports {reported} connections but printed {marks} marks"
                ));
            }
            return Ok(Reuse {
                connections: marks,
                reused,
            });
        }
        for mark in line.chars().filter(|c| !c.is_whitespace()) {
            marks += 1;
            reused += u64::from(mark == 'r');
        }
    }
    Err("s_time's reuse section has no `N connections in` line".into())
}

/// N of a line `N connections in …`.
fn connections_line(line: &str) -> Option<u64> {
    let (n, rest) = line.trim().split_once(' ')?;
    if rest.starts_with("connections in") {
        n.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Abridged output of OpenSSL 3.0's `s_time -reuse` against a server that
    /// loses the session each time (`*`) but twice.
    const LOSING: &str = "\n\nNow timing with session id reuse.\nstarting\n\
        ***r****r**\n\n11 connections in 0.01s; 1100.00 connections/user sec, bytes read 0\n\
        11 connections in 3 real seconds, 0 bytes read per connection\n";

    #[test]
    fn counts_marks_of_the_reuse_section() {
        let reuse = parse(LOSING).unwrap();
        assert_eq!(
            reuse,
            Reuse {
                connections: 11,
                reused: 2
            }
        );
        assert_eq!(reuse.total(), 12);
        assert_eq!(reuse.percent_floor(), 18);
        assert!(!reuse.at_least(99));
    }

    #[test]
    fn ninety_nine_percent_is_the_floor_not_a_rounding() {
        let r = |connections, reused| Reuse {
            connections,
            reused,
        };
        assert!(r(100, 99).at_least(99));
        assert!(!r(1000, 989).at_least(99));
        assert_eq!(r(1000, 989).percent_floor(), 98);
        assert!(!r(0, 0).at_least(99));
        assert_eq!(r(0, 0).percent_floor(), 0);
    }

    #[test]
    fn a_missing_section_or_a_wrong_count_is_an_error() {
        assert!(parse("Collecting connection statistics for 2 seconds\n").is_err());
        assert!(parse("Now timing with session id reuse.\nstarting\nrrr\n").is_err());
        let wrong = LOSING.replace("11 connections in 0.01s", "12 connections in 0.01s");
        assert!(parse(&wrong).unwrap_err().contains("12 connections"));
    }
}
