//! Non-blocking lookups for tokio-rustls: `PrefetchAcceptor` fetches the
//! offered session on the blocking pool before rustls reads the ClientHello.
//! A store that holds a lookup for as long as the test likes does not stall
//! another handshake on a single-threaded runtime; resumption and single
//! use work as through the blocking path.

mod common;

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Version, openssl_connect, rustls_config};
use tls_session_cache::{
    MemoryStore, SessionKey, SessionStore, StoreError, StoreStats, StoredSession,
};
use tls_session_cache_rustls::{PrefetchAcceptor, SessionCache};
use tokio::io::AsyncWriteExt;

/// A MemoryStore whose lookups, once `hold` is called, each announce
/// themselves and wait until released (bounded, so a broken test ends).
struct GatedStore {
    inner: MemoryStore,
    gate: Mutex<Option<(Sender<()>, Receiver<()>)>>,
}

impl GatedStore {
    fn gated_lookup(&self) {
        let held = self.gate.lock().unwrap().take();
        if let Some((started, release)) = held {
            started.send(()).unwrap();
            release
                .recv_timeout(Duration::from_secs(30))
                .expect("the test never released the lookup");
        }
    }
}

impl SessionStore for GatedStore {
    fn put(&self, k: &SessionKey, s: &StoredSession) -> Result<(), StoreError> {
        self.inner.put(k, s)
    }
    fn get(&self, k: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        self.gated_lookup();
        self.inner.get(k)
    }
    fn take(&self, k: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        self.gated_lookup();
        self.inner.take(k)
    }
    fn remove(&self, k: &SessionKey) -> Result<bool, StoreError> {
        self.inner.remove(k)
    }
    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}

/// A tokio-rustls server on a single-threaded runtime (one thread for
/// every handshake), accepting through `PrefetchAcceptor`.
fn serve(cache: &SessionCache) -> std::net::SocketAddr {
    let acceptor = PrefetchAcceptor::new(cache.clone(), rustls_config(cache));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let accepted =
                        tokio::time::timeout(Duration::from_secs(30), acceptor.accept(tcp)).await;
                    if let Ok(Ok(mut tls)) = accepted {
                        let _ = tls.write_all(b"!").await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
    });
    addr
}

/// Waits (bounded) until the queued session writes have reached the store.
fn wait_stored(cache: &SessionCache, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.stats().stored < n {
        assert!(
            Instant::now() < deadline,
            "writes not done: {:?}",
            cache.stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_held_store_lookup_does_not_stall_another_handshake() {
    let store = Arc::new(GatedStore {
        inner: MemoryStore::default(),
        gate: Mutex::new(None),
    });
    let cache = SessionCache::builder()
        .store(Arc::clone(&store))
        .build()
        .unwrap();
    let addr = serve(&cache);
    let ticket = openssl_connect(addr, Version::Tls13, None).session;
    wait_stored(&cache, 2);

    // The next lookup is held until released.
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    *store.gate.lock().unwrap() = Some((started_tx, release_rx));
    let resuming =
        std::thread::spawn(move || openssl_connect(addr, Version::Tls13, Some(&ticket)).resumed);
    started
        .recv_timeout(Duration::from_secs(10))
        .expect("the offered ticket was never looked up");

    // While that lookup is held, on the runtime's only thread: a full
    // handshake completes.
    let other = openssl_connect(addr, Version::Tls13, None);
    assert!(!other.resumed);

    release.send(()).unwrap();
    assert!(
        resuming.join().unwrap(),
        "the held lookup's ticket did not resume"
    );
    let stats = cache.stats();
    assert_eq!((stats.resumed, stats.hits), (1, 1), "{stats:?}");
}

#[test]
fn prefetched_sessions_resume_and_tickets_stay_single_use() {
    let cache = SessionCache::builder().build().unwrap();
    let addr = serve(&cache);
    let id = openssl_connect(addr, Version::Tls12, None).session;
    wait_stored(&cache, 1);
    for _ in 0..2 {
        assert!(openssl_connect(addr, Version::Tls12, Some(&id)).resumed);
    }
    let ticket = openssl_connect(addr, Version::Tls13, None).session;
    wait_stored(&cache, 3);
    let offers: Vec<bool> = (0..2)
        .map(|_| openssl_connect(addr, Version::Tls13, Some(&ticket)).resumed)
        .collect();
    assert_eq!(offers, [true, false]);
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.errors, stats.panics),
        (3, 0, 0),
        "{stats:?}"
    );
}
