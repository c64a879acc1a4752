//! `cargo xtask bench` (arrives with issue 6).

use crate::error::Error;

/// Not built yet.
pub fn run(_args: &[String]) -> Result<(), Error> {
    Err(Error::NotYet(
        "`cargo xtask bench` arrives with issue 6 (benchmarks); for now use \
         `cargo bench -p tls-session-cache`"
            .into(),
    ))
}
