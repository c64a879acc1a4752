//! A global allocator that counts live heap bytes while switched on.
//!
//! Off (the default) it costs one relaxed load per call, so the handshake
//! measurements run with it off and the bytes-per-session measurement
//! switches it on around a single-threaded phase.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};

/// The counting allocator.
pub struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static REQUESTED: AtomicI64 = AtomicI64::new(0);
static CHUNKS: AtomicI64 = AtomicI64::new(0);

/// glibc malloc's chunk for a request on 64-bit Linux: size + 8 bytes of
/// header, rounded up to 16, at least 32.
pub fn glibc_chunk(size: usize) -> i64 {
    (((size + 8 + 15) & !15).max(32)) as i64
}

fn count(size: usize, sign: i64) {
    if ON.load(Relaxed) {
        REQUESTED.fetch_add(sign * size as i64, Relaxed);
        CHUNKS.fetch_add(sign * glibc_chunk(size), Relaxed);
    }
}

/// Live bytes counted so far: (requested, glibc chunks).
pub fn live() -> (i64, i64) {
    (REQUESTED.load(Relaxed), CHUNKS.load(Relaxed))
}

/// Switches counting on or off.
pub fn counting(on: bool) {
    ON.store(on, Relaxed);
}

// SAFETY: every call goes unchanged to the system allocator; the counters
// are bookkeeping only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        // SAFETY: our caller's contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(layout.size(), -1);
        // SAFETY: `ptr` came from System with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        // SAFETY: our caller's contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(layout.size(), -1);
        count(new_size, 1);
        // SAFETY: `ptr` came from System with `layout`; `new_size` is valid
        // for its alignment (our caller's contract).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
