//! Seal keys leave no copy behind: a [`KeyRing`] dropped (and one parsed
//! from text) frees no heap block that still holds key bytes, checked by
//! an instrumented global allocator; and `Debug` prints key ids only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};

use tls_session_cache_redis::KeyRing;

const K1: [u8; 32] = *b"\x93first-seal-key-bytes-0123456789";
const K2: [u8; 32] = *b"\x94older-seal-key-bytes-0123456789";

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static NEEDLES: RefCell<[[u8; 16]; 2]> = const { RefCell::new([[0; 16]; 2]) };
    static FOUND: Cell<usize> = const { Cell::new(0) };
}

struct Instrumented;

fn check(ptr: *mut u8, size: usize) {
    if !WATCHING.with(Cell::get) {
        return;
    }
    // SAFETY: a live block of `size` bytes, about to be freed.
    let block = unsafe { std::slice::from_raw_parts(ptr, size) };
    let hit = NEEDLES.with(|n| {
        n.borrow()
            .iter()
            .any(|needle| block.windows(16).any(|w| w == needle))
    });
    if hit {
        FOUND.with(|f| f.set(f.get() + 1));
    }
}

// SAFETY: calls go to the system allocator unchanged; `check` only reads
// the block being freed, before it is freed.
unsafe impl GlobalAlloc for Instrumented {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: our caller's contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        check(ptr, layout.size());
        // SAFETY: `ptr` came from System with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(ptr, layout.size());
        // SAFETY: our caller's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Instrumented = Instrumented;

/// Blocks freed holding a needle while `f` runs.
fn freed_with_key(needles: [&[u8]; 2], f: impl FnOnce()) -> usize {
    NEEDLES.with(|n| {
        let mut n = n.borrow_mut();
        n[0].copy_from_slice(&needles[0][..16]);
        n[1].copy_from_slice(&needles[1][..16]);
    });
    FOUND.with(|c| c.set(0));
    WATCHING.with(|w| w.set(true));
    f();
    WATCHING.with(|w| w.set(false));
    FOUND.with(Cell::get)
}

fn hex(k: &[u8]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_detector_sees_a_freed_key() {
    assert_eq!(freed_with_key([&K1, &K2], || drop(K1.to_vec())), 1);
    assert_eq!(freed_with_key([&K1, &K2], || drop(vec![0u8; 64])), 0);
}

#[test]
fn a_dropped_ring_frees_no_key_bytes() {
    let ring = Box::new(KeyRing::new(K1).with_older(K2));
    assert_eq!(ring.key_count(), 2);
    let shown = format!("{ring:?}");
    assert!(shown.contains("current_key_id"), "{shown}");
    for k in [&K1, &K2] {
        assert!(!shown.contains(&hex(&k[..4])), "{shown}");
    }
    let clone = ring.clone();
    assert_eq!(freed_with_key([&K1, &K2], move || drop(ring)), 0);
    assert_eq!(freed_with_key([&K1, &K2], move || drop(clone)), 0);
}

#[test]
fn parsing_a_key_file_leaves_no_key_bytes_behind() {
    let text = format!("# keys\n{}\n{}\n", hex(&K1), hex(&K2));
    let found = freed_with_key([&K1, &K2], || {
        let ring = KeyRing::parse(&text).unwrap();
        assert_eq!(ring.key_count(), 2);
        drop(ring);
        // A duplicate line and a bad line are refused without leaving keys.
        let dup = format!("{}\n{}\n", hex(&K1), hex(&K1));
        assert!(KeyRing::parse(&dup).is_err());
        let bad = format!("{}\n{}zz\n", hex(&K2), &hex(&K1)[..62]);
        assert!(KeyRing::parse(&bad).is_err());
    });
    assert_eq!(found, 0);
}
