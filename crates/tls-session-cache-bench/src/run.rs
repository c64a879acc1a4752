//! One configuration's turn in a round, and the interleaved rounds.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use openssl::ssl::SslSession;
use tls_session_cache_openssl::{CacheStats, SessionCache};

use crate::client::Client;
use crate::cpu::{ThreadClock, process_cpu};
use crate::error::BenchError;
use crate::server::Server;
use crate::setup::{Config, Proto};

/// A configuration's server, running for the whole benchmark.
pub struct Target {
    /// Which configuration.
    pub config: Config,
    /// Its server thread.
    pub server: Server,
    /// The cache installed on it (none for `full` and `internal`).
    pub cache: Option<SessionCache>,
}

/// What one turn measured.
#[derive(Debug, Clone, Default)]
pub struct Turn {
    /// Connections of the expected kind (resumed, or full for `full`).
    pub handshakes: u64,
    /// Connections of the other kind: errors, excluded from the figures.
    pub wrong_kind: u64,
    /// Connections that failed.
    pub failures: u64,
    /// Wall time of the timed loop (pool refills excluded).
    pub elapsed: Duration,
    /// CPU time of the server thread.
    pub server_cpu: Duration,
    /// CPU time of the client thread.
    pub client_cpu: Duration,
    /// CPU time of redis-server (clock-tick resolution), if one runs.
    pub redis_cpu: Option<Duration>,
    /// Full handshakes the client made inside the loop because its ticket
    /// pool ran dry (excluded from `elapsed`).
    pub refills: u64,
    /// Disagreements between the client's, the server's and the cache's counts.
    pub mismatches: Vec<String>,
    /// Cache lookups that missed (binding's counter), for cache configs.
    pub cache_misses: u64,
    /// Store errors seen by the binding.
    pub cache_errors: u64,
}

impl Turn {
    /// Good handshakes per second.
    pub fn rate(&self) -> f64 {
        self.handshakes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// Server CPU microseconds per connection.
    pub fn server_cpu_us(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.connections().max(1) as f64
    }
    /// Client CPU microseconds per connection.
    pub fn client_cpu_us(&self) -> f64 {
        self.client_cpu.as_secs_f64() * 1e6 / self.connections().max(1) as f64
    }
    /// Connections the server handled in the timed loop.
    pub fn connections(&self) -> u64 {
        self.handshakes + self.wrong_kind + self.failures + self.refills
    }
    /// Every error of the turn.
    pub fn errors(&self) -> u64 {
        self.wrong_kind + self.failures + self.mismatches.len() as u64
    }

    /// Prints the turn's mismatches (`  PROTO LABEL round N: …`, round
    /// `round` counted from 0) and adds ` NAME/1.x=RATE` to the round's
    /// progress `line`.
    pub(crate) fn report(
        &self,
        line: &mut String,
        proto: Proto,
        label: &str,
        name: &str,
        round: usize,
    ) {
        for m in &self.mismatches {
            eprintln!("  {} {label} round {}: {m}", proto.name(), round + 1);
        }
        line.push_str(&format!(
            " {name}/{}={:.0}",
            &proto.name()[4..],
            self.rate()
        ));
    }

    /// Cross-check: the server's (resumed, full, failed) `counts` must be
    /// the (resumed, full) that `who` (the client, the clients) expected.
    pub(crate) fn check_server(
        &mut self,
        counts: (u64, u64, u64),
        expected: (u64, u64),
        who: &str,
    ) {
        if (counts.0, counts.1) != expected || counts.2 != 0 {
            self.mismatches.push(format!(
                "server counted resumed/full/failed {}/{}/{}, {who} {}/{}/{}",
                counts.0, counts.1, counts.2, expected.0, expected.1, self.failures
            ));
        }
    }

    /// Cross-check: the resumptions the cache counted from `before` to
    /// `after` must be the `resumed` the server counted. Keeps the cache's
    /// misses and errors over the turn.
    pub(crate) fn check_cache(&mut self, before: &CacheStats, after: &CacheStats, resumed: u64) {
        if after.resumed - before.resumed != resumed {
            self.mismatches.push(format!(
                "cache counted {} resumed, server {resumed}",
                after.resumed - before.resumed
            ));
        }
        self.cache_misses = after.misses - before.misses;
        self.cache_errors = after.errors - before.errors;
    }
}

/// The order of the `n` turns of round `round` (from 0): A B C … then
/// … C B A, so that a linear drift in machine speed hits every
/// configuration alike.
pub(crate) fn round_order(round: usize, n: usize) -> Vec<usize> {
    if round.is_multiple_of(2) {
        (0..n).collect()
    } else {
        (0..n).rev().collect()
    }
}

/// CPU time process `pid` has used since `before` (both known, or `None`).
pub(crate) fn cpu_since(before: Option<Duration>, pid: Option<u32>) -> Option<Duration> {
    match (before, pid.and_then(process_cpu)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    }
}

/// Fills the client's pool with sessions (TLS 1.2) or tickets (TLS 1.3)
/// from full handshakes.
fn fill_pool(
    client: &Client,
    target: &Target,
    pool: &mut VecDeque<SslSession>,
    size: usize,
) -> Result<u64, BenchError> {
    let mut attempts = 0;
    while pool.len() < size {
        attempts += 1;
        if attempts > size * 2 + 10 {
            return Err(BenchError::Verification(format!(
                "{}: full handshakes give the client no sessions",
                target.config.name()
            )));
        }
        pool.extend(client.connect(target.server.addr, None)?.sessions);
    }
    Ok(attempts as u64)
}

/// Waits until the server has counted `n` more connections than `before`
/// (the server counts a connection after its close_notify is out, which
/// may be after the client has seen it). Bounded.
fn settle(server: &Server, before: (u64, u64, u64), n: u64) -> (u64, u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = server.counts.snapshot();
        let seen = (now.0 - before.0) + (now.1 - before.1) + (now.2 - before.2);
        if seen >= n || Instant::now() > deadline {
            return (now.0 - before.0, now.1 - before.1, now.2 - before.2);
        }
        std::thread::yield_now();
    }
}

/// One turn: `seconds` of back-to-back connections to `target`, each
/// resuming (unless `full`) a session from the pool.
pub fn turn(
    client: &Client,
    target: &Target,
    proto: Proto,
    seconds: Duration,
    pool_size: usize,
    redis_pid: Option<u32>,
    latencies: &mut Vec<u64>,
) -> Result<Turn, BenchError> {
    let resumes = target.config.resumes();
    let addr = target.server.addr;
    let mut pool = VecDeque::new();
    if resumes {
        let before = target.server.counts.snapshot();
        let n = fill_pool(client, target, &mut pool, pool_size)?;
        // The server counts its last pool connection a moment after the
        // client is done with it: let that land before the turn starts.
        settle(&target.server, before, n);
    }
    let mut t = Turn::default();
    let me = ThreadClock::current();
    let stats0 = target.cache.as_ref().map(SessionCache::stats);
    let counts0 = target.server.counts.snapshot();
    let (server0, client0) = (target.server.cpu(), me.now());
    let redis0 = redis_pid.and_then(process_cpu);
    let mut paused = Duration::ZERO;
    let start = Instant::now();
    let mut connections = 0u64;
    while start.elapsed() < seconds + paused {
        let offered = if resumes {
            match pool.pop_front() {
                Some(s) => Some(s),
                None => {
                    let t0 = Instant::now();
                    let n = fill_pool(client, target, &mut pool, pool_size)?;
                    t.refills += n;
                    connections += n;
                    paused += t0.elapsed();
                    continue;
                }
            }
        } else {
            None
        };
        connections += 1;
        match client.connect(addr, offered.as_ref()) {
            Ok(c) => {
                if c.resumed == resumes {
                    t.handshakes += 1;
                    latencies.push(c.latency.as_nanos() as u64);
                } else {
                    t.wrong_kind += 1;
                }
                match (proto, offered) {
                    // A TLS 1.2 session id stays valid: cycle it.
                    (Proto::Tls12, Some(s)) if c.resumed => pool.push_back(s),
                    // A TLS 1.3 ticket was used up: keep the new one(s).
                    _ => pool.extend(c.sessions),
                }
            }
            Err(e) => {
                t.failures += 1;
                if t.failures > 100 {
                    return Err(e);
                }
            }
        }
    }
    t.elapsed = start.elapsed().saturating_sub(paused);
    let counts = settle(&target.server, counts0, connections);
    t.server_cpu = target.server.cpu() - server0;
    t.client_cpu = me.now() - client0;
    t.redis_cpu = cpu_since(redis0, redis_pid);
    // Cross-checks: the server's view must match the client's.
    let expected = if resumes {
        (t.handshakes, t.wrong_kind + t.refills)
    } else {
        (t.wrong_kind, t.handshakes)
    };
    t.check_server(counts, expected, "client");
    if let (Some(cache), Some(s0)) = (&target.cache, stats0) {
        t.check_cache(&s0, &cache.stats(), counts.0);
    }
    Ok(t)
}
