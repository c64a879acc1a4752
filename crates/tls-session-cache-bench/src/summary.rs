//! From turns to the reported figures: medians over rounds, latency
//! percentiles over every handshake, ratios to `internal` paired by round.

use crate::run::Turn;
use crate::setup::{Config, Proto};

/// Every turn of one configuration and protocol.
#[derive(Debug)]
pub struct Series {
    /// The configuration.
    pub config: Config,
    /// The protocol.
    pub proto: Proto,
    /// One turn per round, in round order.
    pub turns: Vec<Turn>,
    /// Client-observed latency of every good handshake, nanoseconds.
    pub latencies: Vec<u64>,
}

/// One line of the results.
#[derive(Debug, Clone)]
pub struct Row {
    /// The configuration.
    pub config: Config,
    /// The protocol.
    pub proto: Proto,
    /// Median over rounds of handshakes per second.
    pub rate: f64,
    /// Slowest round.
    pub rate_min: f64,
    /// Fastest round.
    pub rate_max: f64,
    /// Latency percentiles over every handshake, microseconds.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Median over rounds of server CPU µs per connection.
    pub server_cpu_us: f64,
    /// Median over rounds of client CPU µs per connection.
    pub client_cpu_us: f64,
    /// redis-server CPU µs per connection over the whole run (tick resolution).
    pub redis_cpu_us: Option<f64>,
    /// Median over rounds of (this rate / `internal`'s rate in the same round).
    pub ratio: Option<f64>,
    /// Median over rounds of (this server CPU / `internal`'s in the same round).
    pub cpu_ratio: Option<f64>,
    /// Median over rounds of (this rate / `memory`'s rate in the same round).
    pub ratio_to_memory: Option<f64>,
    /// Good handshakes over all rounds.
    pub handshakes: u64,
    /// Errors over all rounds (wrong kind, failures, count mismatches).
    pub errors: u64,
    /// Lookups the binding counted as misses, over all rounds.
    pub cache_misses: u64,
    /// Store errors the binding saw, over all rounds.
    pub cache_errors: u64,
}

/// The median of `v` (mean of the middle two for an even count); NaN if empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile `p` (0..=100) of sorted `v`; NaN if empty.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// The rows, in the order of `series`.
pub fn rows(series: &[Series]) -> Vec<Row> {
    let anchor = |config: Config, proto: Proto| {
        series
            .iter()
            .find(|s| s.config == config && s.proto == proto)
    };
    series
        .iter()
        .map(|s| {
            let rates: Vec<f64> = s.turns.iter().map(Turn::rate).collect();
            let mut lat = s.latencies.clone();
            lat.sort_unstable();
            let paired = |config: Config, f: &dyn Fn(&Turn) -> f64| {
                anchor(config, s.proto).map(|a| {
                    median(
                        s.turns
                            .iter()
                            .zip(&a.turns)
                            .map(|(t, at)| f(t) / f(at))
                            .collect(),
                    )
                })
            };
            let connections: u64 = s.turns.iter().map(Turn::connections).sum();
            let redis: Option<f64> = s
                .turns
                .iter()
                .map(|t| t.redis_cpu)
                .sum::<Option<std::time::Duration>>()
                .map(|d| d.as_secs_f64() * 1e6 / connections.max(1) as f64);
            Row {
                config: s.config,
                proto: s.proto,
                rate: median(rates.clone()),
                rate_min: rates.iter().copied().fold(f64::INFINITY, f64::min),
                rate_max: rates.iter().copied().fold(0.0, f64::max),
                p50_us: percentile(&lat, 50.0) / 1e3,
                p99_us: percentile(&lat, 99.0) / 1e3,
                server_cpu_us: median(s.turns.iter().map(Turn::server_cpu_us).collect()),
                client_cpu_us: median(s.turns.iter().map(Turn::client_cpu_us).collect()),
                redis_cpu_us: if s.config.needs_redis() { redis } else { None },
                ratio: paired(Config::Internal, &Turn::rate),
                cpu_ratio: paired(Config::Internal, &Turn::server_cpu_us),
                ratio_to_memory: paired(Config::Memory, &Turn::rate),
                handshakes: s.turns.iter().map(|t| t.handshakes).sum(),
                errors: s.turns.iter().map(Turn::errors).sum(),
                cache_misses: s.turns.iter().map(|t| t.cache_misses).sum(),
                cache_errors: s.turns.iter().map(|t| t.cache_errors).sum(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentiles() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7], 99.0), 7.0);
    }
}
