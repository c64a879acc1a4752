//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::BenchError;
use crate::load::LoadConfig;
use crate::setup::{Config, Proto};

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
    /// Load-group configurations measured (none by default).
    pub load: Vec<LoadConfig>,
    /// Simultaneous client connections of the load group.
    pub concurrency: usize,
    /// Server threads of the load group.
    pub server_threads: usize,
    /// Delay added to Redis replies in the `-slow` load configurations.
    pub redis_delay: Duration,
    /// Sessions stored per protocol and key format by the Redis
    /// bytes-per-session measurement (0: skip it).
    pub redis_sessions: usize,
    /// Run only the Redis bytes-per-session measurement.
    pub redis_bytes_only: bool,
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
            load: Vec::new(),
            concurrency: 16,
            server_threads: 2,
            redis_delay: Duration::from_millis(1),
            redis_sessions: 100_000,
            redis_bytes_only: false,
        };
        let mut load_flag = false;
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
                    let (mut configs, mut load) = (Vec::new(), Vec::new());
                    for name in v.split(',') {
                        let loads = match (name, LoadConfig::from_name(name)) {
                            ("load", _) => LoadConfig::ALL.to_vec(),
                            (_, Some(l)) => vec![l],
                            (_, None) => Vec::new(),
                        };
                        if loads.is_empty() {
                            let c = Config::from_name(name).ok_or_else(|| {
                                BenchError::Usage(format!("unknown config {name}"))
                            })?;
                            if !configs.contains(&c) {
                                configs.push(c);
                            }
                        }
                        for l in loads {
                            if !load.contains(&l) {
                                load.push(l);
                            }
                        }
                    }
                    a.configs = configs;
                    a.load = load;
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
                "--load" => load_flag = true,
                "--concurrency" => {
                    let v = value()?;
                    a.concurrency = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=512).contains(n))
                        .ok_or_else(|| BenchError::Usage(format!("bad --concurrency {v}")))?;
                }
                "--server-threads" => {
                    let v = value()?;
                    a.server_threads = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=64).contains(n))
                        .ok_or_else(|| BenchError::Usage(format!("bad --server-threads {v}")))?;
                }
                "--redis-delay-ms" => {
                    let v = value()?;
                    let ms: f64 = v
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s <= 1000.0)
                        .ok_or_else(|| BenchError::Usage(format!("bad --redis-delay-ms {v}")))?;
                    a.redis_delay = Duration::from_secs_f64(ms / 1e3);
                }
                "--redis-bytes" => a.redis_bytes_only = true,
                "--redis-sessions" => {
                    let v = value()?;
                    a.redis_sessions =
                        v.parse().ok().filter(|n| *n <= 10_000_000).ok_or_else(|| {
                            BenchError::Usage(format!("bad --redis-sessions {v}"))
                        })?;
                }
                "-h" | "--help" => return Err(BenchError::Usage("help".into())),
                other => return Err(BenchError::Usage(format!("unknown argument {other}"))),
            }
        }
        if load_flag {
            for l in LoadConfig::ALL {
                if !a.load.contains(&l) {
                    a.load.push(l);
                }
            }
        }
        if a.redis_bytes_only {
            if a.redis_sessions == 0 {
                return Err(BenchError::Usage(
                    "--redis-bytes with --redis-sessions 0 measures nothing".into(),
                ));
            }
            a.configs.clear();
            a.load.clear();
            a.extras = false;
        } else if a.configs.is_empty() && a.load.is_empty() {
            return Err(BenchError::Usage("no configuration selected".into()));
        }
        Ok(a)
    }

    /// Sessions (or tickets) per client slot of the load group: the
    /// sequential pool spread over the slots, at least one each.
    pub fn pool_per_client(&self) -> usize {
        self.pool.div_ceil(self.concurrency).max(1)
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
        assert!(a.load.is_empty());
    }

    #[test]
    fn load_group_flags() {
        let a = parse("").unwrap();
        assert!(
            a.load.is_empty(),
            "the load group is not in the default run"
        );
        assert_eq!((a.concurrency, a.server_threads), (16, 2));
        assert_eq!(a.redis_delay, Duration::from_millis(1));
        assert_eq!(a.pool_per_client(), 2);
        let a = parse("--load").unwrap();
        assert_eq!((a.configs.len(), a.load.len()), (5, 4));
        let a =
            parse("--config load --concurrency 4 --server-threads 3 --redis-delay-ms 2.5").unwrap();
        assert!(a.configs.is_empty());
        assert_eq!(a.load, LoadConfig::ALL.to_vec());
        assert_eq!((a.concurrency, a.server_threads), (4, 3));
        assert_eq!(a.redis_delay, Duration::from_micros(2500));
        assert_eq!(a.pool_per_client(), 8);
        let a = parse("--config memory,async-redis,blocking-redis").unwrap();
        assert_eq!(a.configs, vec![Config::Memory]);
        assert_eq!(
            a.load,
            vec![LoadConfig::AsyncRedis, LoadConfig::BlockingRedis]
        );
        let a = parse("--load --config internal").unwrap();
        assert_eq!((a.configs.len(), a.load.len()), (1, 4));
    }

    #[test]
    fn redis_bytes_flags() {
        let a = parse("").unwrap();
        assert_eq!((a.redis_sessions, a.redis_bytes_only), (100_000, false));
        let a = parse("--redis-bytes --redis-sessions 500").unwrap();
        assert!(a.redis_bytes_only && a.configs.is_empty() && a.load.is_empty() && !a.extras);
        assert_eq!(a.redis_sessions, 500);
        assert!(matches!(
            parse("--redis-bytes --redis-sessions 0"),
            Err(BenchError::Usage(_))
        ));
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "--seconds -1",
            "--rounds 0",
            "--seconds",
            "--config foo",
            "--bogus",
            "--concurrency 0",
            "--server-threads 0",
            "--redis-delay-ms -1",
            "--config ,",
            "--redis-sessions -1",
        ] {
            assert!(matches!(parse(bad), Err(BenchError::Usage(_))), "{bad}");
        }
    }
}
