//! Programs a scenario needs; a missing one turns its rows into SKIP with a
//! message saying how to install it.

use std::path::Path;
use std::process::{Command, Stdio};

/// Something that must be installed for a scenario to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prerequisite {
    /// The `openssl` command-line tool (`s_client`), TLS 1.3 capable.
    OpenSsl,
    // `RedisServer` joins here with scenarios 6–9 (`apt-get install redis-server`).
}

impl Prerequisite {
    /// `Ok` if installed; otherwise what is missing and how to install it.
    pub fn check(self, openssl: &Path) -> Result<(), String> {
        match self {
            Prerequisite::OpenSsl => check_openssl(openssl),
        }
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
