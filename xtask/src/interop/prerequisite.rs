//! Programs a scenario needs; a missing one turns its rows into SKIP with a
//! message saying how to install it.

use std::path::Path;
use std::process::{Command, Stdio};

/// Something that must be installed for a scenario to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prerequisite {
    /// The `openssl` command-line tool (`s_client`), TLS 1.3 capable.
    OpenSsl,
    /// `redis-server`, which scenarios 6–9 start on a free loopback port.
    RedisServer,
}

impl Prerequisite {
    /// `Ok` if installed; otherwise what is missing and how to install it.
    pub fn check(self, openssl: &Path) -> Result<(), String> {
        match self {
            Prerequisite::OpenSsl => check_openssl(openssl),
            Prerequisite::RedisServer => check_installed("redis-server"),
        }
    }
}

/// `program --version` runs and exits 0 (`program` is `redis-server` outside tests).
fn check_installed(program: &str) -> Result<(), String> {
    let ran = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match ran {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!(
            "`{program} --version` failed ({status}); reinstall it with \
             `apt-get install redis-server`"
        )),
        Err(e) => Err(format!(
            "`{program}` is not installed ({e}); install it with `apt-get install redis-server`"
        )),
    }
}

fn check_openssl(openssl: &Path) -> Result<(), String> {
    let out = Command::new(openssl)
        .arg("version")
        .stdin(Stdio::null())
        .output();
    let version = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => {
            return Err(format!(
                "`{} version` failed: install the openssl command-line tool \
                 (`apt-get install openssl`) or pass `--openssl PATH`",
                openssl.display()
            ));
        }
    };
    // s_client needs -tls1_3: OpenSSL 1.1.1 or later (LibreSSL lacks -sess_out semantics we rely on).
    let numbers: Vec<u32> = version
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let modern = version.starts_with("OpenSSL ") && numbers.as_slice() >= [1, 1, 1].as_slice();
    if modern {
        Ok(())
    } else {
        Err(format!(
            "`{}` is `{version}`; TLS 1.3 needs OpenSSL 1.1.1 or later \
             (`apt-get install openssl`, or pass `--openssl PATH`)",
            openssl.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_redis_server_says_how_to_install_it() {
        let message = check_installed("redis-server-that-does-not-exist").unwrap_err();
        assert!(
            message.contains("apt-get install redis-server"),
            "{message}"
        );
    }
}
