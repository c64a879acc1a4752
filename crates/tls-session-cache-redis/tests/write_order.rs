//! Write-behind keeps per-key order (issue 11, defect 3): a `remove`,
//! `take` or expired `put` issued after a queued `put` of the same key
//! takes effect after it, so the queued put cannot bring the session back
//! once the queue drains.
//!
//! The backlog is made with a gate, not with timing: the store talks to the
//! real `redis-server` through [`GateProxy`], a TCP forwarder that holds
//! the first request naming one Redis key until the test opens it. Holding
//! the write-behind thread's `SET` of that key keeps everything queued
//! behind it queued, while the test's own commands pass.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use common::*;
use tls_session_cache::{Protocol, SessionKey, SessionStore, StoredSession};
use tls_session_cache_redis::RedisStore;
use tls_session_cache_testkit::RedisServer;

/// Liveness bound only (a held `SET` must not time out while the test
/// works); no assertion depends on it.
const PATIENT: Duration = Duration::from_secs(30);

/// A TCP forwarder in front of Redis that holds the first request
/// containing `needle` until [`open`](GateProxy::open); every other request,
/// before or after, passes at once.
struct GateProxy {
    addr: SocketAddr,
    held: Receiver<()>,
    gate: Arc<Gate>,
}

/// Whether the gate is open, and the condition its holder waits on.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    /// Set by the first request that matched: later ones pass.
    tripped: AtomicBool,
}

impl Gate {
    fn wait(&self) {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let _open = self
            .opened
            .wait_while(open, |open| !*open)
            .unwrap_or_else(PoisonError::into_inner);
    }

    fn open(&self) {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.opened.notify_all();
    }
}

impl GateProxy {
    fn start(upstream: SocketAddr, needle: &[u8]) -> GateProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (held_tx, held) = mpsc::channel();
        let gate = Arc::new(Gate::default());
        let (needle, shared) = (needle.to_vec(), Arc::clone(&gate));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(upstream) else {
                    return;
                };
                let (gate, needle, held_tx) =
                    (Arc::clone(&shared), needle.clone(), held_tx.clone());
                std::thread::spawn(move || forward(client, server, &gate, &needle, &held_tx));
            }
        });
        GateProxy { addr, held, gate }
    }

    fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Blocks until a request naming the needle is being held.
    fn wait_held(&self) {
        self.held
            .recv_timeout(PATIENT)
            .expect("no request for the gated key reached the proxy");
    }

    fn open(&self) {
        self.gate.open();
    }
}

impl Drop for GateProxy {
    fn drop(&mut self) {
        self.gate.open();
    }
}

/// Copies one connection both ways; client-to-server data that contains
/// `needle` waits for the gate if it is the first such data.
fn forward(
    mut client: TcpStream,
    mut server: TcpStream,
    gate: &Gate,
    needle: &[u8],
    held: &Sender<()>,
) {
    let (Ok(mut from_server), Ok(mut to_client)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Write);
    });
    let mut window: Vec<u8> = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // The last bytes of earlier reads too, in case the key was split.
        window.extend_from_slice(&buf[..n]);
        if window.windows(needle.len()).any(|w| w == needle)
            && !gate.tripped.swap(true, Ordering::SeqCst)
        {
            let _ = held.send(());
            gate.wait();
        }
        let keep = window.len().saturating_sub(needle.len());
        window.drain(..keep);
        if server.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Write);
}

/// A write-behind store that reaches Redis through a [`GateProxy`].
struct Gated {
    // Field order matters: the proxy drops (and opens its gate) first, so
    // a failing test does not leave the store's drop waiting for a held SET.
    proxy: GateProxy,
    store: RedisStore,
}

impl Gated {
    /// A store whose first request naming `gated`'s Redis key is held.
    fn new(redis: &RedisServer, gated: &SessionKey) -> Gated {
        let probe = builder(&redis.url()).build().unwrap();
        let upstream: SocketAddr = redis.addr().parse().unwrap();
        let proxy = GateProxy::start(upstream, &probe.redis_key(gated));
        let store = builder(&proxy.url())
            .timeouts(PATIENT)
            .write_behind(16)
            .build()
            .unwrap();
        Gated { proxy, store }
    }

    /// A store whose write-behind thread is held on a put of an unrelated
    /// key: whatever is put next stays queued until [`drain`](Self::drain).
    fn backlogged(redis: &RedisServer) -> Gated {
        let filler = random_key(b"svc");
        let gated = Gated::new(redis, &filler);
        gated
            .store
            .put(&filler, &session(Protocol::Tls12, 300))
            .unwrap();
        gated.proxy.wait_held();
        gated
    }

    /// Opens the gate and waits for the queue to drain.
    fn drain(&self) {
        self.proxy.open();
        assert!(
            self.store.flush(PATIENT),
            "the write-behind queue did not drain"
        );
    }
}

/// Whether `key` is in Redis, asked on a connection of its own.
fn in_redis(redis: &RedisServer, store: &RedisStore, key: &SessionKey) -> bool {
    raw_exists(&mut redis.connection().unwrap(), &store.redis_key(key))
}

#[test]
fn a_remove_after_a_queued_put_stays_removed() {
    let redis = redis();
    let gated = Gated::backlogged(&redis);
    let store = &gated.store;
    let key = random_key(b"svc");
    store.put(&key, &session(Protocol::Tls12, 300)).unwrap();
    let removed = store.remove(&key).unwrap();
    gated.drain();
    assert!(
        !in_redis(&redis, store, &key),
        "the removed session came back"
    );
    assert_eq!(store.get(&key).unwrap(), None);
    assert!(removed, "the queued put was there to remove");
}

#[test]
fn a_remove_while_the_put_is_being_sent_stays_removed() {
    let redis = redis();
    let key = random_key(b"svc");
    let gated = Gated::new(&redis, &key);
    let store = &gated.store;
    store.put(&key, &session(Protocol::Tls12, 300)).unwrap();
    gated.proxy.wait_held(); // the writer is sending this very SET
    store.remove(&key).unwrap();
    gated.drain();
    assert!(
        !in_redis(&redis, store, &key),
        "the removed session came back"
    );
}

#[test]
fn a_take_after_a_queued_put_gets_it_once() {
    let redis = redis();
    let gated = Gated::backlogged(&redis);
    let store = &gated.store;
    let key = random_key13(b"svc");
    let s = session(Protocol::Tls13, 300);
    store.put(&key, &s).unwrap();
    let taken = store.take(&key).unwrap();
    gated.drain();
    assert!(
        !in_redis(&redis, store, &key),
        "the taken ticket came back: it could be resumed again"
    );
    assert_eq!(taken, Some(s), "the take did not see the put before it");
    assert_eq!(store.take(&key).unwrap(), None);
}

#[test]
fn a_take_while_the_put_is_being_sent_leaves_nothing_behind() {
    let redis = redis();
    let key = random_key13(b"svc");
    let gated = Gated::new(&redis, &key);
    let store = &gated.store;
    store.put(&key, &session(Protocol::Tls13, 300)).unwrap();
    gated.proxy.wait_held(); // the writer is sending this very SET
    // The SET has not reached Redis: the take misses, and so must a get.
    assert_eq!(store.take(&key).unwrap(), None);
    assert_eq!(store.get(&key).unwrap(), None, "a get saw a taken ticket");
    gated.drain();
    assert!(
        !in_redis(&redis, store, &key),
        "the ticket arrived after the take and could be resumed"
    );
}

#[test]
fn an_expired_put_after_a_queued_put_leaves_nothing() {
    let redis = redis();
    let gated = Gated::backlogged(&redis);
    let store = &gated.store;
    let key = random_key(b"svc");
    store.put(&key, &session(Protocol::Tls12, 300)).unwrap();
    let t = now();
    let expired = StoredSession::new(random_bytes(200), t - 20, t - 10, Protocol::Tls12);
    store.put(&key, &expired).unwrap();
    gated.drain();
    assert!(
        !in_redis(&redis, store, &key),
        "the older session came back over the expired one"
    );
}

#[test]
fn queued_puts_are_read_and_a_put_after_a_remove_lands() {
    let redis = redis();
    let gated = Gated::backlogged(&redis);
    let store = &gated.store;
    let key = random_key(b"svc");
    let (first, second) = (session(Protocol::Tls12, 300), session(Protocol::Tls12, 300));
    store.put(&key, &first).unwrap();
    let seen = store.get(&key).unwrap();
    store.remove(&key).unwrap();
    let after_remove = store.get(&key).unwrap();
    store.put(&key, &second).unwrap();
    gated.drain();
    assert_eq!(
        store.get(&key).unwrap(),
        Some(second),
        "the last put was lost"
    );
    assert_eq!(seen, Some(first), "a get missed the put before it");
    assert_eq!(after_remove, None, "a get saw a removed session");
}
