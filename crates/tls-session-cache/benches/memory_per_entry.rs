//! Bytes of heap per stored session at 1M sessions, for MemoryStore, moka
//! and quick_cache, measured with a counting global allocator.
//!
//! `cargo bench -p tls-session-cache --bench memory_per_entry`
//!
//! Two columns per store: the bytes the store *requested* from the
//! allocator, and an estimate of what glibc malloc really spends on them
//! (each chunk carries an 8-byte header and is rounded up to 16 bytes, 32 at
//! least). "Overhead" is what is spent beyond the 140 session bytes
//! themselves, so it includes the 32-byte id.

mod workload;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

use workload::{BenchStore, SESSION_LEN, key, memory_store, moka, quick, session, unix_now};

/// Counts live bytes, requested and as glibc would round them.
struct Counting;

static REQUESTED: AtomicI64 = AtomicI64::new(0);
static FOOTPRINT: AtomicI64 = AtomicI64::new(0);

/// glibc's chunk size for a request (64-bit): size + 8, rounded up to 16,
/// at least 32.
fn chunk(size: usize) -> i64 {
    (((size + 8 + 15) & !15).max(32)) as i64
}

fn count(layout: Layout, sign: i64) {
    REQUESTED.fetch_add(sign * layout.size() as i64, Ordering::Relaxed);
    FOOTPRINT.fetch_add(sign * chunk(layout.size()), Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout, 1);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(layout, -1);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout, 1);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(layout, -1);
        // SAFETY: `new_size` is valid for `layout.align()` (caller's contract).
        count(
            unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) },
            1,
        );
        // SAFETY: `ptr` came from `System.alloc` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn measure(name: &str, n: u64, make: impl FnOnce() -> Box<dyn BenchStore>) {
    let (r0, f0) = (
        REQUESTED.load(Ordering::Relaxed),
        FOOTPRINT.load(Ordering::Relaxed),
    );
    let store = make();
    let now = unix_now();
    for i in 0..n {
        store.put(key(i), session(i, now));
    }
    store.settle();
    let requested = (REQUESTED.load(Ordering::Relaxed) - r0) as f64 / n as f64;
    let footprint = (FOOTPRINT.load(Ordering::Relaxed) - f0) as f64 / n as f64;
    let held = (0..n).filter(|&i| store.get(&key(i)).is_some()).count();
    println!(
        "| {name} | {requested:.1} | {:.1} | {footprint:.1} | {:.1} | {held} |",
        requested - SESSION_LEN as f64,
        footprint - SESSION_LEN as f64,
    );
    drop(store);
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    let n: u64 = std::env::var("BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // Room for all of them (no eviction) in every store.
    let room = n as usize + n as usize / 8;
    println!("{n} sessions of {SESSION_LEN} bytes, 32-byte ids");
    println!();
    println!(
        "| store | requested bytes/entry | overhead | glibc bytes/entry (est.) | overhead | sessions held |"
    );
    println!("|---|---|---|---|---|---|");
    measure("memory_store", n, || Box::new(memory_store(room)));
    measure("quick_cache", n, || Box::new(quick(room)));
    measure("moka", n, || Box::new(moka(room, false)));
    measure("moka_expiry", n, || Box::new(moka(room, true)));
}
