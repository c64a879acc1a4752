//! Throughput of MemoryStore against moka and quick_cache on a session
//! workload: 1M sessions pre-filled (32-byte ids, 140-byte sessions, every
//! store bounded to the same byte budget), then a mix of lookups of recent
//! sessions and inserts of new ones (which evict old ones), on 1 and 2
//! threads.
//!
//! `cargo bench -p tls-session-cache --bench store`
//! (`BENCH_ENTRIES=100000` for a quicker run.)

mod workload;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use workload::{BenchStore, key, memory_store, moka, quick, session, unix_now};

/// A store with its insertion counter: keys `next - entries .. next` are
/// the most recent sessions.
struct Subject {
    name: &'static str,
    store: Box<dyn BenchStore>,
    next: AtomicU64,
    hits: AtomicU64,
    lookups: AtomicU64,
}

fn entries() -> u64 {
    std::env::var("BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn prefill(name: &'static str, store: Box<dyn BenchStore>, n: u64) -> Subject {
    let started = Instant::now();
    let now = unix_now();
    for i in 0..n {
        store.put(key(i), session(i, now));
    }
    store.settle();
    eprintln!("{name}: pre-filled {n} sessions in {:?}", started.elapsed());
    Subject {
        name,
        store,
        next: AtomicU64::new(n),
        hits: AtomicU64::new(0),
        lookups: AtomicU64::new(0),
    }
}

/// Runs `iters` operations split over `threads`; `get_per_10` of every 10
/// are lookups of a uniformly chosen recent session, the rest inserts.
fn run(s: &Subject, window: u64, iters: u64, threads: u64, get_per_10: u64) -> Duration {
    let now = unix_now();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let per = iters / threads + u64::from(t < iters % threads);
            scope.spawn(move || {
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
                x ^= s.next.load(Ordering::Relaxed);
                let (mut hits, mut lookups) = (0u64, 0u64);
                for _ in 0..per {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if (x >> 40) % 10 < get_per_10 {
                        let newest = s.next.load(Ordering::Relaxed);
                        let n = newest - 1 - (x % window);
                        lookups += 1;
                        hits += u64::from(black_box(s.store.get(&key(n))).is_some());
                    } else {
                        let n = s.next.fetch_add(1, Ordering::Relaxed);
                        s.store.put(key(n), session(n, now));
                    }
                }
                s.hits.fetch_add(hits, Ordering::Relaxed);
                s.lookups.fetch_add(lookups, Ordering::Relaxed);
            });
        }
    });
    started.elapsed()
}

fn bench(c: &mut Criterion) {
    let n = entries();
    let n_usize = n as usize;
    let subjects = [
        prefill("memory_store", Box::new(memory_store(n_usize)), n),
        prefill("quick_cache", Box::new(quick(n_usize)), n),
        prefill("moka", Box::new(moka(n_usize, false)), n),
        prefill("moka_expiry", Box::new(moka(n_usize, true)), n),
    ];
    for (mix, get_per_10) in [("get90_put10", 9), ("get10_put90", 1)] {
        for threads in [1u64, 2] {
            let mut group = c.benchmark_group(format!("{mix}/threads-{threads}"));
            group.throughput(Throughput::Elements(1));
            for s in &subjects {
                s.hits.store(0, Ordering::Relaxed);
                s.lookups.store(0, Ordering::Relaxed);
                group.bench_function(s.name, |b| {
                    b.iter_custom(|iters| run(s, n, iters, threads, get_per_10))
                });
                s.store.settle();
                let (h, l) = (
                    s.hits.load(Ordering::Relaxed),
                    s.lookups.load(Ordering::Relaxed),
                );
                eprintln!(
                    "  {} {mix} threads-{threads}: hit ratio {:.3} over {l} lookups",
                    s.name,
                    h as f64 / l.max(1) as f64
                );
            }
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
