//! New sessions leave the handshake through a queue.
//!
//! OpenSSL hands a new session to the binding's `new_session_cb` in the
//! middle of a handshake step, on the thread polling the connection: it
//! cannot `.await`. The binding calls a synchronous [`SessionStore`]; here
//! that store is a [`QueueStore`], whose `put` / `remove` only push a job
//! onto a bounded tokio channel (`try_send`: never waits; a full queue
//! drops the session, counted). One writer task drains the channel in
//! batches and runs each batch's writes on the
//! [`AsyncSessionStore`](crate::AsyncSessionStore): writes for different
//! keys concurrently — with Redis they pipeline on the multiplexed
//! connection — and writes for one key one after another, in queue order
//! (a `remove` queued after a `put` must not land first and let the
//! removed session come back).
//!
//! Jobs carry a sequence number; the writer publishes the highest sequence
//! done on a `watch` channel, so [`WriteQueue::flush`] can wait for every
//! write queued before it — without waiting for the queue to be empty.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};

use tls_session_cache::{SessionKey, SessionStore, StoreError, StoreStats, StoredSession};
use tokio::sync::{mpsc, watch};
use tokio::task::{self, JoinSet};

use crate::stats::AsyncCounters;
use crate::store::AsyncSessionStore;

/// Writes taken from the queue at once, at most.
const BATCH: usize = 64;

enum Op {
    Put(StoredSession),
    Remove,
}

struct Job {
    seq: u64,
    key: SessionKey,
    op: Op,
}

/// The sending side, shared by the [`QueueStore`] and the cache.
pub(crate) struct WriteQueue {
    tx: mpsc::Sender<Job>,
    /// The sequence number of the last job queued (0: none yet). Held
    /// while sending so that sequence order is queue order.
    last: Mutex<u64>,
    done: watch::Receiver<u64>,
    counters: Arc<AsyncCounters>,
}

impl WriteQueue {
    /// A queue of `capacity` jobs and its writer task, spawned on `runtime`.
    pub(crate) fn start(
        store: Arc<dyn AsyncSessionStore>,
        capacity: usize,
        counters: Arc<AsyncCounters>,
        runtime: &tokio::runtime::Handle,
    ) -> Arc<WriteQueue> {
        let (tx, rx) = mpsc::channel(capacity);
        let (done_tx, done) = watch::channel(0);
        runtime.spawn(writer(store, rx, done_tx, Arc::clone(&counters)));
        Arc::new(WriteQueue {
            tx,
            last: Mutex::new(0),
            done,
            counters,
        })
    }

    fn enqueue(&self, key: &SessionKey, op: Op) -> Result<(), StoreError> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let seq = *last + 1;
        match self.tx.try_send(Job { seq, key: *key, op }) {
            Ok(()) => {
                *last = seq;
                self.counters.queued.fetch_add(1, Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.counters.dropped_writes.fetch_add(1, Relaxed);
                Err(StoreError::Unavailable("session write queue full".into()))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.counters.dropped_writes.fetch_add(1, Relaxed);
                Err(StoreError::Unavailable(
                    "session writer stopped (runtime shut down)".into(),
                ))
            }
        }
    }

    /// Waits until every write queued before this call has been done (or
    /// has failed). Returns at once if the writer task is gone.
    pub(crate) async fn flush(&self) {
        let target = *self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d >= target).await;
    }

    /// Writes queued and not done yet.
    pub(crate) fn pending(&self) -> u64 {
        let last = *self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.saturating_sub(*self.done.borrow())
    }
}

/// The writer task: takes up to [`BATCH`] jobs, runs them (see [`Lanes`]),
/// then publishes the batch's last sequence number. A batch is done before
/// the next is taken, so jobs of different batches never overlap.
async fn writer(
    store: Arc<dyn AsyncSessionStore>,
    mut rx: mpsc::Receiver<Job>,
    done: watch::Sender<u64>,
    counters: Arc<AsyncCounters>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let high = batch.iter().map(|job| job.seq).max().unwrap_or(0);
        Lanes::new(batch.drain(..)).run(&store, &counters).await;
        done.send_replace(high);
    }
}

/// A batch split by key: one lane per key, holding that key's operations
/// in queue order. Lanes run concurrently (with Redis they pipeline on the
/// multiplexed connection); within a lane one operation runs at a time, so
/// a `Remove` queued after a `Put` of the same key takes effect after it.
struct Lanes {
    waiting: HashMap<SessionKey, VecDeque<Op>>,
}

impl Lanes {
    fn new(jobs: impl Iterator<Item = Job>) -> Lanes {
        let mut waiting: HashMap<SessionKey, VecDeque<Op>> = HashMap::new();
        for job in jobs {
            waiting.entry(job.key).or_default().push_back(job.op);
        }
        Lanes { waiting }
    }

    /// Runs every lane to its end. Each operation is a task of its own, so
    /// a store that panics loses that operation only, not the lane's later
    /// ones.
    async fn run(mut self, store: &Arc<dyn AsyncSessionStore>, counters: &Arc<AsyncCounters>) {
        let mut set = JoinSet::new();
        let mut running = HashMap::new();
        let keys: Vec<SessionKey> = self.waiting.keys().copied().collect();
        for key in keys {
            self.start_next(key, &mut set, &mut running, store, counters);
        }
        while let Some(joined) = set.join_next_with_id().await {
            let id = match joined {
                Ok((id, ())) => id,
                Err(e) => {
                    // A store that panicked: counted, the lane goes on.
                    counters.write_errors.fetch_add(1, Relaxed);
                    log::error!("queued session write panicked: {e}");
                    e.id()
                }
            };
            if let Some(key) = running.remove(&id) {
                self.start_next(key, &mut set, &mut running, store, counters);
            }
        }
    }

    /// Spawns the next operation of `key`'s lane, if it has one left.
    fn start_next(
        &mut self,
        key: SessionKey,
        set: &mut JoinSet<()>,
        running: &mut HashMap<task::Id, SessionKey>,
        store: &Arc<dyn AsyncSessionStore>,
        counters: &Arc<AsyncCounters>,
    ) {
        let Some(op) = self.waiting.get_mut(&key).and_then(VecDeque::pop_front) else {
            return;
        };
        let handle = set.spawn(write(Arc::clone(store), key, op, Arc::clone(counters)));
        running.insert(handle.id(), key);
    }
}

/// One queued write on the store; a failure is counted and logged.
async fn write(
    store: Arc<dyn AsyncSessionStore>,
    key: SessionKey,
    op: Op,
    counters: Arc<AsyncCounters>,
) {
    let result = match &op {
        Op::Put(session) => store.put(&key, session).await,
        Op::Remove => store.remove(&key).await.map(|_| ()),
    };
    if let Err(e) = result {
        counters.write_errors.fetch_add(1, Relaxed);
        log::warn!("session {key}: queued write failed: {e}");
    }
    // The queue's copy of the session leaves memory zeroed (when no one
    // else still holds its bytes).
    if let Op::Put(session) = op {
        session.scrub();
    }
}

/// The synchronous face the OpenSSL binding sees: `put` and `remove` queue
/// a job and return at once; `get` and `take` answer `None` (an async
/// server's lookups are made before OpenSSL asks, and parked on the
/// connection — see [`AsyncSessionCache::accept`](crate::AsyncSessionCache::accept)).
pub(crate) struct QueueStore {
    pub(crate) queue: Arc<WriteQueue>,
    pub(crate) store: Arc<dyn AsyncSessionStore>,
}

impl SessionStore for QueueStore {
    fn put(&self, key: &SessionKey, session: &StoredSession) -> Result<(), StoreError> {
        self.queue.enqueue(key, Op::Put(session.clone()))
    }
    fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        log::debug!(
            "session {key}: connection not accepted through AsyncSessionCache::accept; miss"
        );
        Ok(None)
    }
    fn take(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        self.get(key)
    }
    /// Queued; reports `false` because the outcome is not known yet.
    fn remove(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.queue.enqueue(key, Op::Remove).map(|()| false)
    }
    fn stats(&self) -> StoreStats {
        self.store.stats()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use tls_session_cache::{Clock, MemoryStore, Protocol, SystemClock};
    use tokio::sync::Semaphore;

    use super::*;
    use crate::store::StoreFuture;

    /// A real [`MemoryStore`] whose `put`s for one key wait at a gate
    /// until the test opens it; every other operation goes straight through.
    struct GatedStore {
        inner: MemoryStore,
        held: SessionKey,
        gate: Semaphore,
        /// Operations that reached the store, in the order they did.
        log: Mutex<Vec<(&'static str, SessionKey)>>,
        waiting: AtomicUsize,
    }

    impl GatedStore {
        fn new(held: SessionKey) -> Arc<GatedStore> {
            Arc::new(GatedStore {
                inner: MemoryStore::with_capacity_bytes(1 << 20),
                held,
                gate: Semaphore::new(0),
                log: Mutex::new(Vec::new()),
                waiting: AtomicUsize::new(0),
            })
        }

        fn note(&self, op: &'static str, key: &SessionKey) {
            self.log
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((op, *key));
        }

        fn log(&self) -> Vec<(&'static str, SessionKey)> {
            self.log
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        }
    }

    impl AsyncSessionStore for GatedStore {
        fn put<'a>(
            &'a self,
            key: &'a SessionKey,
            session: &'a StoredSession,
        ) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                if *key == self.held {
                    self.waiting.fetch_add(1, Relaxed);
                    let permit = self.gate.acquire().await;
                    drop(permit);
                    self.waiting.fetch_sub(1, Relaxed);
                }
                self.note("put", key);
                SessionStore::put(&self.inner, key, session)
            })
        }
        fn get<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<StoredSession>> {
            Box::pin(std::future::ready(SessionStore::get(&self.inner, key)))
        }
        fn take<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<StoredSession>> {
            Box::pin(std::future::ready(SessionStore::take(&self.inner, key)))
        }
        fn remove<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, bool> {
            self.note("remove", key);
            Box::pin(std::future::ready(SessionStore::remove(&self.inner, key)))
        }
        fn stats(&self) -> StoreStats {
            SessionStore::stats(&self.inner)
        }
    }

    fn key(byte: u8) -> SessionKey {
        SessionKey::from_slices(Protocol::Tls12, b"ctx", &[byte; 32]).expect("a valid key")
    }

    fn session() -> StoredSession {
        let now = SystemClock.now();
        StoredSession::new(vec![7; 40], now, now + 300, Protocol::Tls12)
    }

    /// Returns once every other task on this (current-thread, paused-clock)
    /// runtime is blocked: tokio advances a paused clock only when nothing
    /// else can run, so this is a signal, not a guess at how long
    /// anything takes.
    async fn until_idle() {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }

    fn queue_on(store: &Arc<GatedStore>) -> (Arc<WriteQueue>, QueueStore) {
        let dyn_store: Arc<dyn AsyncSessionStore> = Arc::clone(store) as _;
        let counters = Arc::new(AsyncCounters::default());
        let queue = WriteQueue::start(
            Arc::clone(&dyn_store),
            64,
            counters,
            &tokio::runtime::Handle::current(),
        );
        let front = QueueStore {
            queue: Arc::clone(&queue),
            store: dyn_store,
        };
        (queue, front)
    }

    /// Issue 11, defect 3: a `Remove` queued after a `Put` of the same key
    /// (same batch) must not run before it, or the removed session comes
    /// back when the put lands.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_queued_remove_does_not_overtake_the_put_before_it() {
        let k = key(1);
        let store = GatedStore::new(k);
        let (queue, front) = queue_on(&store);

        SessionStore::put(&front, &k, &session()).expect("queued");
        SessionStore::remove(&front, &k).expect("queued");
        until_idle().await;
        assert_eq!(store.waiting.load(Relaxed), 1, "the put waits at the gate");

        store.gate.add_permits(1);
        queue.flush().await;
        assert_eq!(
            SessionStore::get(&store.inner, &k).expect("memory"),
            None,
            "the removed session came back"
        );
        assert_eq!(store.log(), vec![("put", k), ("remove", k)]);
    }

    /// Ordering is per key: a write for another key still runs while one
    /// key's put waits.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn other_keys_are_not_held_behind_a_slow_put() {
        let (slow, fast) = (key(1), key(2));
        let store = GatedStore::new(slow);
        let (queue, front) = queue_on(&store);

        SessionStore::put(&front, &slow, &session()).expect("queued");
        SessionStore::put(&front, &fast, &session()).expect("queued");
        SessionStore::remove(&front, &slow).expect("queued");
        SessionStore::remove(&front, &fast).expect("queued");
        until_idle().await;
        assert_eq!(store.waiting.load(Relaxed), 1);
        assert_eq!(store.log(), vec![("put", fast), ("remove", fast)]);

        store.gate.add_permits(1);
        queue.flush().await;
        assert_eq!(
            store.log(),
            vec![
                ("put", fast),
                ("remove", fast),
                ("put", slow),
                ("remove", slow)
            ]
        );
        assert_eq!(
            SessionStore::get(&store.inner, &slow).expect("memory"),
            None
        );
    }
}
