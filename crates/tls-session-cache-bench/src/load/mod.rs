//! The concurrent-load group (`--load`, or `--config load`): the
//! blocking callback against the async lookup, both on Redis, under
//! `--concurrency` simultaneous clients, with Redis as it is on loopback
//! and behind a proxy that delays every reply by `--redis-delay-ms`.
//!
//! Placement: one process. The servers run all the time; one
//! configuration is driven at a time by `--concurrency` client threads
//! (OS threads, blocking rust-openssl clients, each with its own pool)
//! started together. The blocking server is `--server-threads` OS threads
//! in `accept`; the async server is a tokio multi-thread runtime with as
//! many workers. Clients, servers and the delay proxy share the machine's
//! cores with no pinning; `redis-server` is a separate process.
//!
//! | module | holds |
//! |---|---|
//! | `pool_server` | the blocking thread-pool server |
//! | `async_server` | the tokio server with `AsyncSessionCache` |
//! | `delay` | the delaying TCP proxy in front of Redis |
//! | `clients` | the concurrent clients and one timed turn |

mod async_server;
mod clients;
mod delay;
mod pool_server;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tls_session_cache_openssl::{CacheStats, SessionCache};
use tls_session_cache_redis::{AsyncRedisStore, KeyRing, RedisStore};

use crate::cpu;
use crate::error::BenchError;
use crate::run::{self, Turn};
use crate::server::ServerCounts;
use crate::setup::{CONTEXT, Identity, Proto, REDIS_TIMEOUT, base_context, redis_store};
use crate::summary::{Figures, paired};

use self::async_server::AsyncServer;
use self::clients::Worker;
use self::delay::DelayProxy;
use self::pool_server::PoolServer;

/// A configuration of the load group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoadConfig {
    /// Blocking callbacks + `RedisStore`, on a pool of OS threads.
    BlockingRedis,
    /// `AsyncSessionCache` + `AsyncRedisStore` on a tokio runtime.
    AsyncRedis,
    /// `BlockingRedis` with every Redis reply delayed.
    BlockingRedisSlow,
    /// `AsyncRedis` with every Redis reply delayed.
    AsyncRedisSlow,
}

impl LoadConfig {
    /// Every load configuration, in run order.
    pub const ALL: [LoadConfig; 4] = [
        LoadConfig::BlockingRedis,
        LoadConfig::AsyncRedis,
        LoadConfig::BlockingRedisSlow,
        LoadConfig::AsyncRedisSlow,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LoadConfig::BlockingRedis => "blocking-redis",
            LoadConfig::AsyncRedis => "async-redis",
            LoadConfig::BlockingRedisSlow => "blocking-redis-slow",
            LoadConfig::AsyncRedisSlow => "async-redis-slow",
        }
    }

    /// The configuration called `name`.
    pub fn from_name(name: &str) -> Option<LoadConfig> {
        LoadConfig::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The name in tables and JSON, with the concurrency:
    /// `blocking-redis-c16`, `async-redis-c16-slow`.
    pub fn label(self, concurrency: usize) -> String {
        let base = if self.is_async() {
            "async-redis"
        } else {
            "blocking-redis"
        };
        let slow = if self.is_slow() { "-slow" } else { "" };
        format!("{base}-c{concurrency}{slow}")
    }

    /// Whether its server is the async one.
    pub fn is_async(self) -> bool {
        matches!(self, LoadConfig::AsyncRedis | LoadConfig::AsyncRedisSlow)
    }

    /// Whether it talks to Redis through the delay proxy.
    pub fn is_slow(self) -> bool {
        matches!(
            self,
            LoadConfig::BlockingRedisSlow | LoadConfig::AsyncRedisSlow
        )
    }

    /// The blocking configuration with the same Redis (its ratio anchor).
    pub fn blocking_twin(self) -> LoadConfig {
        if self.is_slow() {
            LoadConfig::BlockingRedisSlow
        } else {
            LoadConfig::BlockingRedis
        }
    }
}

/// How the load group runs.
#[derive(Debug, Clone, Copy)]
pub struct LoadSettings {
    /// Simultaneous client connections.
    pub concurrency: usize,
    /// Threads of the blocking server = worker threads of the async one.
    pub server_threads: usize,
    /// Delay added to every Redis reply in the `-slow` configurations.
    pub redis_delay: Duration,
    /// Sessions / tickets per client slot.
    pub pool_per_client: usize,
}

/// A load configuration's server.
pub enum LoadServer {
    /// The blocking thread-pool server and its cache.
    Blocking(PoolServer, SessionCache),
    /// The async server.
    Async(AsyncServer),
}

impl LoadServer {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        match self {
            LoadServer::Blocking(s, _) => s.addr,
            LoadServer::Async(s) => s.addr,
        }
    }
    /// Its connection counters.
    pub fn counts(&self) -> &ServerCounts {
        match self {
            LoadServer::Blocking(s, _) => &s.counts,
            LoadServer::Async(s) => &s.counts,
        }
    }
    /// CPU used by all its threads so far.
    pub fn cpu(&self) -> Duration {
        match self {
            LoadServer::Blocking(s, _) => s.cpu(),
            LoadServer::Async(s) => s.cpu(),
        }
    }
    /// Its cache's statistics.
    pub fn stats(&self) -> CacheStats {
        match self {
            LoadServer::Blocking(_, c) => c.stats(),
            LoadServer::Async(s) => s.stats(),
        }
    }
}

/// Starts the server of `config` on Redis at `redis` (the real one or the proxy).
fn start(
    config: LoadConfig,
    id: &Identity,
    redis: &str,
    settings: &LoadSettings,
) -> Result<LoadServer, BenchError> {
    let prefix = format!("bench-{}", config.name());
    if config.is_async() {
        let store = RedisStore::builder(redis)
            .prefix(prefix)
            .seal_keys(KeyRing::generate()?)
            .timeouts(REDIS_TIMEOUT)
            .build_async()?;
        let store: AsyncRedisStore = store;
        Ok(LoadServer::Async(AsyncServer::start(
            config.name(),
            id,
            store,
            settings.server_threads,
        )?))
    } else {
        let cache = SessionCache::builder()
            .context(CONTEXT)
            .store(redis_store(redis, &prefix)?)
            .build()?;
        let mut b = base_context(id)?;
        cache.install(&mut b)?;
        let server = PoolServer::start(config.name(), b.build(), settings.server_threads)?;
        Ok(LoadServer::Blocking(server, cache))
    }
}

/// Every turn of one load configuration and protocol.
struct LoadSeries {
    config: LoadConfig,
    proto: Proto,
    turns: Vec<Turn>,
    latencies: Vec<u64>,
}

/// One line of the load group's results.
#[derive(Debug, Clone)]
pub struct LoadRow {
    /// The configuration.
    pub config: LoadConfig,
    /// Its label (`blocking-redis-c16`, …).
    pub label: String,
    /// The protocol.
    pub proto: Proto,
    /// What was measured (good handshakes are resumed ones; errors include
    /// full handshakes).
    pub figures: Figures,
    /// Median over rounds of (this rate / its blocking twin's in the same round).
    pub ratio_to_blocking: Option<f64>,
    /// The same for server CPU per connection.
    pub cpu_ratio_to_blocking: Option<f64>,
    /// Full handshakes made to refill an empty pool (after errors).
    pub refills: u64,
    /// The settings it ran with.
    pub settings: LoadSettings,
}

fn rows(series: &[LoadSeries], settings: &LoadSettings) -> Vec<LoadRow> {
    series
        .iter()
        .map(|s| {
            let twin = series
                .iter()
                .find(|t| t.config == s.config.blocking_twin() && t.proto == s.proto)
                .map(|t| t.turns.as_slice());
            LoadRow {
                config: s.config,
                label: s.config.label(settings.concurrency),
                proto: s.proto,
                figures: Figures::of(&s.turns, &s.latencies),
                ratio_to_blocking: paired(&s.turns, twin, Turn::rate),
                cpu_ratio_to_blocking: paired(&s.turns, twin, Turn::server_cpu_us),
                refills: s.turns.iter().map(|t| t.refills).sum(),
                settings: *settings,
            }
        })
        .collect()
}

/// What the load group needs from the run.
pub struct LoadRun<'a> {
    /// Configurations, in run order.
    pub configs: &'a [LoadConfig],
    /// Protocols, in run order.
    pub protocols: &'a [Proto],
    /// The settings.
    pub settings: LoadSettings,
    /// Length of one turn.
    pub seconds: Duration,
    /// Interleaved rounds.
    pub rounds: usize,
    /// The server identity.
    pub id: &'a Identity,
    /// `127.0.0.1:PORT` of redis-server.
    pub redis_addr: SocketAddr,
    /// Its pid, for its CPU time.
    pub redis_pid: Option<u32>,
}

/// Runs the load group: interleaved rounds of every protocol × config.
pub fn run(r: &LoadRun<'_>) -> Result<Vec<LoadRow>, BenchError> {
    let st = &r.settings;
    let direct = format!("redis://{}/", r.redis_addr);
    let proxy = if r.configs.iter().any(|c| c.is_slow()) {
        let p = DelayProxy::start(r.redis_addr, st.redis_delay)?;
        println!(
            "load: delay proxy at {} adds {:.2} ms to every Redis reply",
            p.addr,
            st.redis_delay.as_secs_f64() * 1e3
        );
        Some(p)
    } else {
        None
    };
    let slow = proxy.as_ref().map(|p| format!("redis://{}/", p.addr));
    let mut servers = Vec::new();
    for &c in r.configs {
        let url = match (c.is_slow(), &slow) {
            (false, _) => direct.as_str(),
            (true, Some(u)) => u.as_str(),
            (true, None) => return Err(BenchError::Verification("no delay proxy".into())),
        };
        servers.push((c, start(c, r.id, url, st)?));
    }
    println!(
        "load: {} concurrent clients (threads), servers with {} threads, {} sessions per client",
        st.concurrency, st.server_threads, st.pool_per_client
    );

    // One (series, clients, server index) per protocol × configuration.
    let mut series = Vec::new();
    let mut slots: Vec<(Vec<Worker>, usize)> = Vec::new();
    for &proto in r.protocols {
        for (si, (config, _)) in servers.iter().enumerate() {
            let workers = (0..st.concurrency)
                .map(|_| Worker::new(proto))
                .collect::<Result<Vec<_>, _>>()?;
            slots.push((workers, si));
            series.push(LoadSeries {
                config: *config,
                proto,
                turns: Vec::new(),
                latencies: Vec::new(),
            });
        }
    }

    // Pools, then a warm-up turn of each (not recorded).
    let warm = r.seconds.min(Duration::from_millis(200));
    for (i, (workers, si)) in slots.iter_mut().enumerate() {
        let server = &servers[*si].1;
        clients::fill_all(workers, server, st.pool_per_client)?;
        let mut scratch = Vec::new();
        let t = clients::turn(
            workers,
            server,
            series[i].proto,
            warm,
            st.pool_per_client,
            r.redis_pid,
            &mut scratch,
        )?;
        for m in &t.mismatches {
            eprintln!("  load warm-up {}: {m}", series[i].config.name());
        }
    }

    let started = Instant::now();
    for round in 0..r.rounds {
        let mut line = format!("load round {}/{}:", round + 1, r.rounds);
        for i in run::round_order(round, slots.len()) {
            let (workers, si) = &mut slots[i];
            let s = &mut series[i];
            let t = clients::turn(
                workers,
                &servers[*si].1,
                s.proto,
                r.seconds,
                st.pool_per_client,
                r.redis_pid,
                &mut s.latencies,
            )?;
            let label = s.config.label(st.concurrency);
            t.report(&mut line, s.proto, &label, s.config.name(), round);
            s.turns.push(t);
        }
        println!("{line}  [load {}]", cpu::load_average());
    }
    println!(
        "load group: {:.0} s; load average now {}",
        started.elapsed().as_secs_f64(),
        cpu::load_average()
    );
    if let Some(p) = &proxy {
        println!(
            "load: the delay proxy delayed {} reply chunks",
            p.chunks.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    // Clients first (their threads are joined), then servers, then the proxy.
    drop(slots);
    drop(servers);
    drop(proxy);
    Ok(rows(&series, st))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_labels_and_twins() {
        for c in LoadConfig::ALL {
            assert_eq!(LoadConfig::from_name(c.name()), Some(c));
            assert!(!c.blocking_twin().is_async());
            assert_eq!(c.blocking_twin().is_slow(), c.is_slow());
        }
        assert_eq!(LoadConfig::BlockingRedis.label(16), "blocking-redis-c16");
        assert_eq!(LoadConfig::AsyncRedisSlow.label(4), "async-redis-c4-slow");
        assert_eq!(LoadConfig::from_name("memory"), None);
    }
}
