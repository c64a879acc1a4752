//! `handshake-bench`: resumed-handshake throughput through the external
//! session cache, side by side with OpenSSL's internal cache and with full
//! handshakes, for TLS 1.2 (session ids) and TLS 1.3 (stateful tickets).
//! Run by `cargo xtask bench`; see `docs/performance.md`.
//!
//! Placement: one process. The main thread is the only client; each
//! configuration has its own server thread (blocking `accept` on a
//! 127.0.0.1 port); only one configuration is driven at a time, so at any
//! moment one client thread and one server thread are busy, on whichever
//! of the machine's cores the scheduler picks (no pinning). Connections
//! are sequential: connect, handshake, one byte of application data,
//! `close_notify` both ways, close. Redis runs as a separate
//! `redis-server` process on loopback.
//!
//! | module | holds |
//! |---|---|
//! | `args` | the command line |
//! | `setup` | configurations, protocols, server contexts |
//! | `server` | a server thread and its counters |
//! | `client` | the client and its session pool plumbing |
//! | `run` | one timed turn and its cross-checks |
//! | `summary` | medians, percentiles, paired ratios |
//! | `report` | table and JSON |
//! | `svg` | the bar chart |
//! | `harvest` | real server-side session DER |
//! | `lookup` | cost of store get/take/put, d2i, i2d |
//! | `memory`, `alloc` | bytes per stored session (counting allocator) |
//! | `redis_bytes` | bytes per stored session in Redis, previous vs compact key format |
//! | `load` | the concurrent-load group: blocking callback vs async lookup on Redis |
//!
//! The load group (`--load`, `--config load`) has its own placement: see
//! the `load` module.
#![warn(missing_docs)]

mod alloc;
mod args;
mod client;
mod cpu;
mod error;
mod harvest;
mod load;
mod lookup;
mod memory;
mod redis_bytes;
mod report;
mod run;
mod server;
mod setup;
mod summary;
mod svg;
mod usage;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tls_session_cache_testkit::RedisServer;

use crate::args::Args;
use crate::client::Client;
use crate::error::BenchError;
use crate::load::{LoadRun, LoadSettings};
use crate::run::Target;
use crate::setup::{Identity, Proto};
use crate::summary::{Row, Series};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(BenchError::Usage(m)) if m == "help" => {
            println!("{}", usage::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("handshake-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match bench(&args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(errors) => {
            eprintln!(
                "handshake-bench: {errors} errors (see the errors column): the figures above \
                 exclude them, but a resumed configuration that does not always resume is a bug"
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("handshake-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A line of `/proc/cpuinfo` or `/proc/meminfo`.
fn proc_field(file: &str, name: &str) -> String {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn environment(args: &Args) -> Vec<(&'static str, String)> {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    vec![
        ("cpu", proc_field("/proc/cpuinfo", "model name")),
        ("cpus", cpus.to_string()),
        ("memory", proc_field("/proc/meminfo", "MemTotal")),
        ("openssl", openssl::version::version().to_string()),
        (
            "seconds_per_turn",
            format!("{}", args.seconds.as_secs_f64()),
        ),
        ("rounds", args.rounds.to_string()),
        ("pool", args.pool.to_string()),
    ]
}

/// The load group's settings.
fn load_settings(args: &Args) -> LoadSettings {
    LoadSettings {
        concurrency: args.concurrency,
        server_threads: args.server_threads,
        redis_delay: args.redis_delay,
        pool_per_client: args.pool_per_client(),
    }
}

fn bench(args: &Args) -> Result<u64, BenchError> {
    let mut env = environment(args);
    let load_start = cpu::load_average();
    println!(
        "handshake-bench: {} × {} CPUs, {}; load average {load_start}",
        env[0].1, env[1].1, env[3].1
    );
    if !args.configs.is_empty() || !args.load.is_empty() {
        println!(
            "{} rounds × {:.2} s per configuration and protocol, interleaved; pool {}",
            args.rounds,
            args.seconds.as_secs_f64(),
            args.pool
        );
    }
    let (cert, key) = tls_session_cache_openssl::self_signed_localhost()?;
    let id = Identity { cert, key };

    let redis = if args.configs.iter().any(|c| c.needs_redis()) || !args.load.is_empty() {
        Some(RedisServer::start()?)
    } else {
        None
    };
    let redis_url = redis.as_ref().map(RedisServer::url);
    let redis_pid = redis.as_ref().and_then(RedisServer::pid);
    if let Some(url) = &redis_url {
        println!("redis-server at {url} (pid {redis_pid:?})");
    }

    let rows = if args.configs.is_empty() {
        Vec::new()
    } else {
        sequential(args, &id, redis_url.as_deref(), redis_pid)?
    };
    let mut errors: u64 = rows.iter().map(|r| r.figures.errors).sum();
    let load_rows = match &redis {
        Some(server) if !args.load.is_empty() => {
            let redis_addr = server
                .addr()
                .parse()
                .map_err(|e| BenchError::Verification(format!("redis address: {e}")))?;
            let settings = load_settings(args);
            env.push(("load_concurrency", settings.concurrency.to_string()));
            env.push(("load_server_threads", settings.server_threads.to_string()));
            env.push((
                "load_redis_delay_ms",
                format!("{}", settings.redis_delay.as_secs_f64() * 1e3),
            ));
            env.push(("load_pool_per_client", settings.pool_per_client.to_string()));
            load::run(&LoadRun {
                configs: &args.load,
                protocols: &args.protocols,
                settings,
                seconds: args.seconds,
                rounds: args.rounds,
                id: &id,
                redis_addr,
                redis_pid,
            })?
        }
        _ => Vec::new(),
    };
    errors += load_rows.iter().map(|r| r.figures.errors).sum::<u64>();
    let load_end = cpu::load_average();
    env.push(("load_average_start", load_start.clone()));
    env.push(("load_average_end", load_end.clone()));

    let (mut lookups, mut memory, mut in_redis) = (Vec::new(), Vec::new(), Vec::new());
    if args.extras || args.redis_bytes_only {
        let h = harvest::harvest(&id)?;
        let sizes: Vec<String> = h
            .sizes
            .iter()
            .map(|(p, n)| format!("{} {n} B", p.as_str()))
            .collect();
        println!(
            "server-side session DER from real handshakes: {}",
            sizes.join(", ")
        );
        if args.extras {
            for &p in &Proto::ALL {
                lookups.push(lookup::measure(&h, p)?);
            }
            for &p in &Proto::ALL {
                for n in [100_000, 1_000_000] {
                    memory.push(memory::measure(&h, p, n)?);
                }
            }
        }
        if args.redis_sessions > 0 {
            let server = redis_bytes::server_description()?;
            println!("bytes per session in Redis: {server}");
            env.push(("redis_bytes_server", server));
            for &p in &Proto::ALL {
                for format in [
                    tls_session_cache_redis::KeyFormat::Previous,
                    tls_session_cache_redis::KeyFormat::Compact,
                ] {
                    in_redis.push(redis_bytes::measure(&h, p, format, args.redis_sessions)?);
                }
            }
        }
    }

    if !rows.is_empty() {
        println!();
        print!("{}", report::table(&rows));
        println!(
            "hs/s: median over rounds; p50/p99: client-observed, connect → first byte, all handshakes;\n\
             srv/cli µs/hs: CPU of the server / client thread per connection; redis µs: redis-server CPU per connection;\n\
             ratio, cpu×, vs mem: median over rounds of (this / internal), (its server CPU / internal's), (this / memory), paired by round."
        );
    }
    if !load_rows.is_empty() {
        println!(
            "\nconcurrent load: {} client connections at once, servers with {} threads, -slow: Redis replies +{:.2} ms",
            args.concurrency,
            args.server_threads,
            args.redis_delay.as_secs_f64() * 1e3
        );
        print!("{}", report::load_table(&load_rows));
        println!(
            "hs/s: median over rounds of resumed handshakes/s of all clients together; p50/p99: client-observed, all handshakes;\n\
             srv µs/hs: CPU of all the server's threads per connection; cli µs/hs: of all client threads;\n\
             vs block, cpu×: median over rounds of (this / the blocking server on the same Redis), hs/s and server CPU, paired by round."
        );
    }
    if !lookups.is_empty() {
        println!("\nexternal lookup cost (ns per operation, one thread):");
        print!("{}", report::lookup_table(&lookups));
        println!("added ns: TLS 1.2 get + d2i; TLS 1.3 take + put + d2i + i2d (per resumption).");
    }
    if !memory.is_empty() {
        println!("\nMemoryStore bytes per session (counting allocator):");
        print!("{}", report::memory_table(&memory));
        println!(
            "malloc: requested bytes rounded to glibc chunks; overhead: malloc − DER (the 32-byte id included)."
        );
    }

    if !in_redis.is_empty() {
        println!(
            "\nRedis bytes per session (INFO memory used_memory delta; sealed sessions, context {:?}):",
            String::from_utf8_lossy(setup::CONTEXT)
        );
        print!("{}", report::redis_bytes_table(&in_redis));
        println!(
            "key, value: bytes of one name and one value; used_memory: (after − before) / sessions;\n\
             MEMORY USAGE: Redis's estimate for one key, without its share of the hash tables."
        );
    }

    if let Some(path) = &args.json {
        std::fs::write(
            path,
            report::json(&rows, &load_rows, &lookups, &memory, &in_redis, &env),
        )?;
        println!("\nwrote {}", path.display());
    }
    if let (Some(path), false) = (&args.svg, rows.is_empty()) {
        let title = format!(
            "{} × {} CPUs, {}, {} rounds × {:.1} s, load {load_end}",
            env[0].1,
            env[1].1,
            env[3].1,
            args.rounds,
            args.seconds.as_secs_f64()
        );
        std::fs::write(path, svg::chart(&rows, &title))?;
        println!("wrote {}", path.display());
    }
    drop(redis);
    Ok(errors)
}

/// The sequential group: one client, interleaved rounds of every protocol
/// × configuration of `args.configs`.
fn sequential(
    args: &Args,
    id: &Identity,
    redis_url: Option<&str>,
    redis_pid: Option<u32>,
) -> Result<Vec<Row>, BenchError> {
    let mut targets = Vec::new();
    for &config in &args.configs {
        let (server, cache) = setup::start(config, id, redis_url)?;
        targets.push(Target {
            config,
            server,
            cache,
        });
    }
    let clients = args
        .protocols
        .iter()
        .map(|&p| Ok((p, Client::new(p)?)))
        .collect::<Result<Vec<_>, BenchError>>()?;
    let client = |p: Proto| {
        clients
            .iter()
            .find(|(q, _)| *q == p)
            .map(|(_, c)| c)
            .ok_or_else(|| BenchError::Verification("no client".into()))
    };

    // The order of one round: every protocol × configuration.
    let mut series: Vec<Series> = Vec::new();
    let mut order = Vec::new();
    for &proto in &args.protocols {
        for (ti, t) in targets.iter().enumerate() {
            order.push((proto, ti));
            series.push(Series {
                config: t.config,
                proto,
                turns: Vec::new(),
                latencies: Vec::new(),
            });
        }
    }

    // Warm-up: connections, caches, redis connections; not recorded.
    let warm = args.seconds.min(Duration::from_millis(200));
    for &(proto, ti) in &order {
        let mut scratch = Vec::new();
        run::turn(
            client(proto)?,
            &targets[ti],
            proto,
            warm,
            args.pool,
            redis_pid,
            &mut scratch,
        )?;
    }

    let started = Instant::now();
    for round in 0..args.rounds {
        let mut line = format!("round {}/{}:", round + 1, args.rounds);
        for i in run::round_order(round, order.len()) {
            let (proto, ti) = order[i];
            let s = &mut series[i];
            let t = run::turn(
                client(proto)?,
                &targets[ti],
                proto,
                args.seconds,
                args.pool,
                redis_pid,
                &mut s.latencies,
            )?;
            let name = targets[ti].config.name();
            t.report(&mut line, proto, name, name, round);
            s.turns.push(t);
        }
        println!("{line}  [load {}]", cpu::load_average());
    }
    println!(
        "handshakes: {:.0} s; load average now {}",
        started.elapsed().as_secs_f64(),
        cpu::load_average()
    );
    let rows = summary::rows(&series);
    drop(targets);
    Ok(rows)
}
