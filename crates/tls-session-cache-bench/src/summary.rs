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

/// What one series measured: the figures every row has, in the
/// sequential group and in the load group.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// Median over rounds of handshakes per second.
    pub rate: f64,
    /// Slowest round.
    pub rate_min: f64,
    /// Fastest round.
    pub rate_max: f64,
    /// Median client-observed latency over every handshake, µs.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Median over rounds of server CPU µs per connection (all its threads).
    pub server_cpu_us: f64,
    /// Median over rounds of client CPU µs per connection (all client threads).
    pub client_cpu_us: f64,
    /// redis-server CPU µs per connection over the whole run (tick resolution).
    pub redis_cpu_us: Option<f64>,
    /// Good handshakes over all rounds (of the kind the configuration
    /// makes; the load group's are all resumed).
    pub handshakes: u64,
    /// Errors over all rounds (wrong kind, failures, count mismatches).
    pub errors: u64,
    /// Lookups the binding counted as misses, over all rounds.
    pub cache_misses: u64,
    /// Store errors the binding saw (and dropped async writes), over all rounds.
    pub cache_errors: u64,
}

impl Figures {
    /// The figures of a series: its turns (one per round) and the
    /// latency of every good handshake, nanoseconds.
    pub fn of(turns: &[Turn], latencies: &[u64]) -> Figures {
        let rates: Vec<f64> = turns.iter().map(Turn::rate).collect();
        let mut lat = latencies.to_vec();
        lat.sort_unstable();
        let connections: u64 = turns.iter().map(Turn::connections).sum();
        Figures {
            rate: median(rates.clone()),
            rate_min: rates.iter().copied().fold(f64::INFINITY, f64::min),
            rate_max: rates.iter().copied().fold(0.0, f64::max),
            p50_us: percentile(&lat, 50.0) / 1e3,
            p99_us: percentile(&lat, 99.0) / 1e3,
            server_cpu_us: median(turns.iter().map(Turn::server_cpu_us).collect()),
            client_cpu_us: median(turns.iter().map(Turn::client_cpu_us).collect()),
            redis_cpu_us: turns
                .iter()
                .map(|t| t.redis_cpu)
                .sum::<Option<std::time::Duration>>()
                .map(|d| d.as_secs_f64() * 1e6 / connections.max(1) as f64),
            handshakes: turns.iter().map(|t| t.handshakes).sum(),
            errors: turns.iter().map(Turn::errors).sum(),
            cache_misses: turns.iter().map(|t| t.cache_misses).sum(),
            cache_errors: turns.iter().map(|t| t.cache_errors).sum(),
        }
    }
}

/// Median over rounds of `f(turn) / f(the anchor's turn of the same
/// round)`; `None` without an anchor.
pub fn paired(turns: &[Turn], anchor: Option<&[Turn]>, f: impl Fn(&Turn) -> f64) -> Option<f64> {
    anchor.map(|a| median(turns.iter().zip(a).map(|(t, at)| f(t) / f(at)).collect()))
}

/// One line of the results.
#[derive(Debug, Clone)]
pub struct Row {
    /// The configuration.
    pub config: Config,
    /// The protocol.
    pub proto: Proto,
    /// What was measured.
    pub figures: Figures,
    /// Median over rounds of (this rate / `internal`'s rate in the same round).
    pub ratio: Option<f64>,
    /// Median over rounds of (this server CPU / `internal`'s in the same round).
    pub cpu_ratio: Option<f64>,
    /// Median over rounds of (this rate / `memory`'s rate in the same round).
    pub ratio_to_memory: Option<f64>,
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
            .map(|a| a.turns.as_slice())
    };
    series
        .iter()
        .map(|s| {
            let ratio =
                |config: Config, f: fn(&Turn) -> f64| paired(&s.turns, anchor(config, s.proto), f);
            let mut figures = Figures::of(&s.turns, &s.latencies);
            if !s.config.needs_redis() {
                figures.redis_cpu_us = None;
            }
            Row {
                config: s.config,
                proto: s.proto,
                figures,
                ratio: ratio(Config::Internal, Turn::rate),
                cpu_ratio: ratio(Config::Internal, Turn::server_cpu_us),
                ratio_to_memory: ratio(Config::Memory, Turn::rate),
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
