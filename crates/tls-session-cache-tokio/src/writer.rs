//! New sessions leave the handshake through a queue.
//!
//! OpenSSL hands a new session to the binding's `new_session_cb` in the
//! middle of a handshake step, on the thread polling the connection: it
//! cannot `.await`. The binding calls a synchronous [`SessionStore`]; here
//! that store is a [`QueueStore`], whose `put` / `remove` only push a job
//! onto a bounded tokio channel (`try_send`: never waits; a full queue
//! drops the session, counted). One writer task drains the channel in
//! batches and runs each batch's writes concurrently on the
//! [`AsyncSessionStore`](crate::AsyncSessionStore) — with Redis they
//! pipeline on the multiplexed connection.
//!
//! Jobs carry a sequence number; the writer publishes the highest sequence
//! done on a `watch` channel, so [`WriteQueue::flush`] can wait for every
//! write queued before it — without waiting for the queue to be empty.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};

use tls_session_cache::{SessionKey, SessionStore, StoreError, StoreStats, StoredSession};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

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

/// The writer task: takes up to [`BATCH`] jobs, runs them concurrently,
/// then publishes the batch's last sequence number.
async fn writer(
    store: Arc<dyn AsyncSessionStore>,
    mut rx: mpsc::Receiver<Job>,
    done: watch::Sender<u64>,
    counters: Arc<AsyncCounters>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut high = 0;
        let mut set = JoinSet::new();
        for job in batch.drain(..) {
            high = high.max(job.seq);
            let store = Arc::clone(&store);
            let counters = Arc::clone(&counters);
            set.spawn(async move {
                let result = match &job.op {
                    Op::Put(session) => store.put(&job.key, session).await,
                    Op::Remove => store.remove(&job.key).await.map(|_| ()),
                };
                if let Err(e) = result {
                    counters.write_errors.fetch_add(1, Relaxed);
                    log::warn!("session {}: queued write failed: {e}", job.key);
                }
            });
        }
        while let Some(joined) = set.join_next().await {
            if let Err(e) = joined {
                // A store that panicked: counted, the writer goes on.
                counters.write_errors.fetch_add(1, Relaxed);
                log::error!("queued session write panicked: {e}");
            }
        }
        done.send_replace(high);
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
