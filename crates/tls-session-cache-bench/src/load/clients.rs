//! The concurrent clients: one OS thread per connection slot, each doing
//! back-to-back resumed connections from its own pool of sessions
//! (TLS 1.2) or tickets (TLS 1.3), all started together by a barrier.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use openssl::ssl::SslSession;

use crate::client::Client;
use crate::cpu::{ThreadClock, process_cpu};
use crate::error::BenchError;
use crate::load::LoadServer;
use crate::run::{Turn, cpu_since};
use crate::setup::Proto;

/// A client slot: its own context (the new-session callback collects per
/// context, so slots must not share one) and its pool, kept across turns.
pub struct Worker {
    client: Client,
    pool: VecDeque<SslSession>,
}

impl Worker {
    /// A slot speaking only `proto`, with an empty pool.
    pub fn new(proto: Proto) -> Result<Worker, BenchError> {
        Ok(Worker {
            client: Client::new(proto)?,
            pool: VecDeque::new(),
        })
    }

    /// Full handshakes until the pool holds `size` sessions; returns the
    /// connections made.
    pub fn fill(&mut self, addr: SocketAddr, size: usize) -> Result<u64, BenchError> {
        let mut attempts = 0;
        while self.pool.len() < size {
            attempts += 1;
            if attempts > size * 2 + 10 {
                return Err(BenchError::Verification(
                    "full handshakes give the client no sessions".into(),
                ));
            }
            self.pool.extend(self.client.connect(addr, None)?.sessions);
        }
        Ok(attempts as u64)
    }
}

/// What one slot did in a turn.
#[derive(Default)]
struct SlotOutcome {
    handshakes: u64,
    wrong_kind: u64,
    failures: u64,
    refills: u64,
    connections: u64,
    started: Option<Instant>,
    ended: Option<Instant>,
    cpu: Duration,
    latencies: Vec<u64>,
    fatal: Option<BenchError>,
}

/// One slot's timed loop.
fn drive(
    w: &mut Worker,
    addr: SocketAddr,
    proto: Proto,
    seconds: Duration,
    pool_size: usize,
    barrier: &Barrier,
) -> SlotOutcome {
    let mut o = SlotOutcome::default();
    barrier.wait();
    let me = ThreadClock::current();
    let cpu0 = me.now();
    let start = Instant::now();
    o.started = Some(start);
    while start.elapsed() < seconds {
        let Some(offered) = w.pool.pop_front() else {
            // Only after a failure: a resumed connection gives back a
            // session (TLS 1.2: the same; TLS 1.3: a new ticket).
            match w.fill(addr, pool_size) {
                Ok(n) => {
                    o.refills += n;
                    o.connections += n;
                    continue;
                }
                Err(e) => {
                    o.fatal = Some(e);
                    break;
                }
            }
        };
        o.connections += 1;
        match w.client.connect(addr, Some(&offered)) {
            Ok(c) => {
                if c.resumed {
                    o.handshakes += 1;
                    o.latencies.push(c.latency.as_nanos() as u64);
                } else {
                    o.wrong_kind += 1;
                }
                match proto {
                    Proto::Tls12 if c.resumed => w.pool.push_back(offered),
                    _ => w.pool.extend(c.sessions),
                }
            }
            Err(e) => {
                o.failures += 1;
                if o.failures > 100 {
                    o.fatal = Some(e);
                    break;
                }
            }
        }
    }
    o.ended = Some(Instant::now());
    o.cpu = me.now().saturating_sub(cpu0);
    o
}

/// Waits until the server has counted `n` more connections than `before`
/// (it counts a connection after its close_notify is out). Bounded.
fn settle(server: &LoadServer, before: (u64, u64, u64), n: u64) -> (u64, u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = server.counts().snapshot();
        let d = (now.0 - before.0, now.1 - before.1, now.2 - before.2);
        if d.0 + d.1 + d.2 >= n || Instant::now() > deadline {
            return d;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Fills every slot's pool (untimed) and waits until the server has
/// counted those connections.
pub fn fill_all(
    workers: &mut [Worker],
    server: &LoadServer,
    pool_size: usize,
) -> Result<(), BenchError> {
    let before = server.counts().snapshot();
    let mut n = 0;
    for w in workers.iter_mut() {
        n += w.fill(server.addr(), pool_size)?;
    }
    settle(server, before, n);
    Ok(())
}

/// One turn: every slot connects back to back for `seconds`, all at once.
pub fn turn(
    workers: &mut [Worker],
    server: &LoadServer,
    proto: Proto,
    seconds: Duration,
    pool_size: usize,
    redis_pid: Option<u32>,
    latencies: &mut Vec<u64>,
) -> Result<Turn, BenchError> {
    let addr = server.addr();
    let stats0 = server.stats();
    let counts0 = server.counts().snapshot();
    let server0 = server.cpu();
    let redis0 = redis_pid.and_then(process_cpu);
    let barrier = Barrier::new(workers.len());
    let outcomes: Vec<SlotOutcome> = std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .iter_mut()
            .map(|w| {
                let barrier = &barrier;
                std::thread::Builder::new()
                    .name("load-client".into())
                    .spawn_scoped(s, move || {
                        drive(w, addr, proto, seconds, pool_size, barrier)
                    })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|_| SlotOutcome {
                    fatal: Some(BenchError::Verification("a client thread panicked".into())),
                    ..SlotOutcome::default()
                }),
                Err(e) => SlotOutcome {
                    fatal: Some(BenchError::Io(e)),
                    ..SlotOutcome::default()
                },
            })
            .collect()
    });
    let mut t = Turn::default();
    let mut connections = 0;
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    let mut fatal = None;
    for o in outcomes {
        t.handshakes += o.handshakes;
        t.wrong_kind += o.wrong_kind;
        t.failures += o.failures;
        t.refills += o.refills;
        t.client_cpu += o.cpu;
        connections += o.connections;
        first = match (first, o.started) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        last = match (last, o.ended) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        latencies.extend(o.latencies);
        if fatal.is_none() {
            fatal = o.fatal;
        }
    }
    if let Some(e) = fatal {
        return Err(e);
    }
    t.elapsed = match (first, last) {
        (Some(a), Some(b)) => b.saturating_duration_since(a),
        _ => Duration::ZERO,
    };
    let counts = settle(server, counts0, connections);
    t.server_cpu = server.cpu().saturating_sub(server0);
    t.redis_cpu = cpu_since(redis0, redis_pid);
    // Cross-checks: the server's view must match the clients'.
    t.check_server(counts, (t.handshakes, t.wrong_kind + t.refills), "clients");
    t.check_cache(&stats0, &server.stats(), counts.0);
    Ok(t)
}
