//! Hit ratio on the session workload of `store.rs`, over a **fixed number
//! of operations** on one thread (deterministic: the same seed, the same
//! keys, the same order), so two builds of a store can be compared without
//! the fixed-time bench's confound (a faster store does more operations in
//! its 3 s and so averages more of the decayed state).
//!
//! For each store: pre-fill `BENCH_ENTRIES` (1M) sessions, count how many
//! of them are still held, then run `BENCH_OPS` (4M) operations of each mix
//! in turn (get90: 9 of 10 are lookups of a uniformly chosen session among
//! the `BENCH_ENTRIES` newest; put90: 1 of 10) and print the hit ratio of
//! every 1M operations and of the whole run. No timing is printed.
//!
//! `cargo bench -p tls-session-cache --bench hit_ratio`

mod workload;

use workload::{BenchStore, key, memory_store, quick, session, unix_now};

/// Makes an empty store with room for `n` sessions of the workload.
type MakeStore = fn(usize) -> Box<dyn BenchStore>;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env("BENCH_ENTRIES", 1_000_000);
    let ops = env("BENCH_OPS", 4_000_000);
    let stores: [(&str, MakeStore); 2] = [
        ("memory_store", |n| Box::new(memory_store(n))),
        ("quick_cache", |n| Box::new(quick(n))),
    ];
    println!(
        "store         mix     held after pre-fill  hit ratio per 1M ops                    whole run"
    );
    for (name, make) in stores {
        for (mix, get_per_10) in [("get90", 9u64), ("put90", 1)] {
            let store = make(n as usize);
            let now = unix_now();
            for i in 0..n {
                store.put(key(i), session(i, now));
            }
            store.settle();
            let held = (0..n).filter(|&i| store.get(&key(i)).is_some()).count();
            let mut next = n;
            let mut x = 0x9E37_79B9_7F4A_7C15u64;
            let (mut hits, mut lookups) = (0u64, 0u64);
            let (mut part_hits, mut part_lookups) = (0u64, 0u64);
            let mut parts = Vec::new();
            for op in 0..ops {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if (x >> 40) % 10 < get_per_10 {
                    let k = next - 1 - (x % n);
                    let hit = u64::from(store.get(&key(k)).is_some());
                    hits += hit;
                    part_hits += hit;
                    lookups += 1;
                    part_lookups += 1;
                } else {
                    store.put(key(next), session(next, now));
                    next += 1;
                }
                if (op + 1) % 1_000_000 == 0 {
                    parts.push(format!(
                        "{:.4}",
                        part_hits as f64 / part_lookups.max(1) as f64
                    ));
                    (part_hits, part_lookups) = (0, 0);
                }
            }
            println!(
                "{name:<13} {mix:<7} {held:>8} of {n:<8}  {:<38}  {:.4} over {lookups} lookups",
                parts.join(" "),
                hits as f64 / lookups.max(1) as f64
            );
        }
    }
}
