//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::BenchError;
use crate::setup::{Config, Proto};

/// How to call the benchmark.
pub const USAGE: &str = "\
usage: handshake-bench [--seconds S] [--rounds N] [--json FILE] [--svg FILE]
                       [--pool N] [--config C,...] [--protocol 1.2|1.3] [--no-extras]

  --seconds S     seconds per configuration per round (default 1)
  --rounds N      interleaved rounds (default 9, at least 1)
  --json FILE     write the results as JSON
  --svg FILE      write a bar chart of handshakes/s
  --pool N        sessions (TLS 1.2) / tickets (TLS 1.3) the client cycles through (default 32)
  --config C,...  only these of full,internal,memory,tiered,redis (for profiling)
  --protocol P    only TLS 1.2 or only TLS 1.3 (for profiling)
  --no-extras     skip the lookup-cost and bytes-per-session measurements";

/// Parsed arguments.
#[derive(Debug, Clone)]
pub struct Args {
    /// Duration of one configuration's turn in a round.
    pub seconds: Duration,
    /// Number of rounds.
    pub rounds: usize,
    /// Where to write JSON.
    pub json: Option<PathBuf>,
    /// Where to write the SVG chart.
    pub svg: Option<PathBuf>,
    /// Size of the client's session / ticket pool.
    pub pool: usize,
    /// Configurations measured.
    pub configs: Vec<Config>,
    /// Protocols measured.
    pub protocols: Vec<Proto>,
    /// Measure lookup cost and bytes per session too.
    pub extras: bool,
}

impl Args {
    /// Parses `args` (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, BenchError> {
        let mut a = Args {
            seconds: Duration::from_secs(1),
            rounds: 9,
            json: None,
            svg: None,
            pool: 32,
            configs: Config::ALL.to_vec(),
            protocols: Proto::ALL.to_vec(),
            extras: true,
        };
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| it.next())
                    .ok_or_else(|| BenchError::Usage(format!("{name} needs a value")))
            };
            match name.as_str() {
                "--seconds" => {
                    let v = value()?;
                    let s: f64 = v
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                        .ok_or_else(|| BenchError::Usage(format!("bad --seconds {v}")))?;
                    a.seconds = Duration::from_secs_f64(s);
                }
                "--rounds" => {
                    let v = value()?;
                    a.rounds = v
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| BenchError::Usage(format!("bad --rounds {v}")))?;
                }
                "--pool" => {
                    let v = value()?;
                    a.pool = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=100_000).contains(n))
                        .ok_or_else(|| BenchError::Usage(format!("bad --pool {v}")))?;
                }
                "--json" => a.json = Some(PathBuf::from(value()?)),
                "--svg" => a.svg = Some(PathBuf::from(value()?)),
                "--config" | "--configs" => {
                    let v = value()?;
                    let mut configs = Vec::new();
                    for name in v.split(',') {
                        let c = Config::from_name(name)
                            .ok_or_else(|| BenchError::Usage(format!("unknown config {name}")))?;
                        if !configs.contains(&c) {
                            configs.push(c);
                        }
                    }
                    a.configs = configs;
                }
                "--protocol" => {
                    let v = value()?;
                    a.protocols = vec![match v.as_str() {
                        "1.2" | "TLSv1.2" => Proto::Tls12,
                        "1.3" | "TLSv1.3" => Proto::Tls13,
                        _ => return Err(BenchError::Usage(format!("unknown protocol {v}"))),
                    }];
                }
                "--no-extras" => a.extras = false,
                "-h" | "--help" => return Err(BenchError::Usage("help".into())),
                other => return Err(BenchError::Usage(format!("unknown argument {other}"))),
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Args, BenchError> {
        Args::parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn defaults_and_overrides() {
        let a = parse("").unwrap();
        assert_eq!(
            (a.seconds, a.rounds, a.configs.len()),
            (Duration::from_secs(1), 9, 5)
        );
        let a = parse("--seconds 0.5 --rounds=3 --json out.json --svg out.svg").unwrap();
        assert_eq!(a.seconds, Duration::from_millis(500));
        assert_eq!(a.rounds, 3);
        assert_eq!(a.json.unwrap(), PathBuf::from("out.json"));
        assert_eq!(a.svg.unwrap(), PathBuf::from("out.svg"));
        let a = parse("--config memory,internal --protocol 1.3").unwrap();
        assert_eq!(a.configs, vec![Config::Memory, Config::Internal]);
        assert_eq!(a.protocols, vec![Proto::Tls13]);
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "--seconds -1",
            "--rounds 0",
            "--seconds",
            "--config foo",
            "--bogus",
        ] {
            assert!(matches!(parse(bad), Err(BenchError::Usage(_))), "{bad}");
        }
    }
}
