//! Memory stays bounded against a hostile Redis: a reply announcing (and
//! sending) a gigabyte, or a deep array announcing millions of elements,
//! makes the store allocate no more than a session's worth plus the
//! parser's fixed costs. Measured with a counting global allocator; this
//! binary holds one test so no other test's allocations are counted.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use tls_session_cache::SessionStore;
use tls_session_cache_redis::RedisStore;
use tls_session_cache_testkit::{FakeRedis, Reply};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Bytes allocated at the peak of `f` beyond what was live before it.
fn peak_growth(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed).saturating_sub(base)
}

#[test]
fn hostile_replies_never_make_the_store_allocate_what_the_peer_announces() {
    let cases: Vec<(&str, Reply)> = vec![
        (
            "a 1 GiB bulk string, sent",
            Reply::Flood {
                header: b"$1073741824\r\n".to_vec(),
                len: 1 << 30,
            },
        ),
        (
            "a 1 GiB length header only",
            Reply::ThenClose(b"$1073741824\r\n".to_vec()),
        ),
        (
            "nested arrays announcing 2^31 elements each",
            Reply::ThenClose(b"*2147483647\r\n".repeat(90)),
        ),
    ];
    for (what, reply) in cases {
        let fake = FakeRedis::start(move |_: &[Vec<u8>]| reply.clone()).unwrap();
        let store = RedisStore::builder(&fake.url())
            .seal_keys(ring(7))
            .timeouts(Duration::from_secs(3))
            .build()
            .unwrap();
        let key = random_key(b"mem");
        // Connect first, so the connection's own buffers are not counted.
        let _ = store.ping();
        let grew = peak_growth(|| {
            let r = store.get(&key);
            assert!(r.is_err(), "{what}: {r:?}");
        });
        println!("{what}: peak growth {grew} bytes");
        // The fake's threads allocate too (64 KiB chunks), as does the
        // parser's fixed cost; 8 MiB is far below any of the announced sizes.
        assert!(grew < 8 << 20, "{what}: grew {grew} bytes");
    }
}
