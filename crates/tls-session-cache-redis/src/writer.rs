//! The optional write-behind thread: `put` hands the sealed value to a
//! bounded queue and returns; one background thread sends the `SET`s.
//!
//! # Per-key order
//!
//! Operations on one key take effect in the order they were issued, even
//! when a `put` of that key is still queued (or being sent):
//!
//! * `remove`, `take` and an expired `put` (a `DEL`) are not queued — they
//!   must neither wait for the backlog nor be dropped with a full queue.
//!   They first **withdraw** the key's queued put, so it is never sent,
//!   and then go to Redis at once. If the key's `SET` is already on its way,
//!   it is marked: once it is answered the thread sends a `DEL` of that key
//!   before anything else, so the removed session does not come back.
//! * `take` of a key whose put was withdrawn returns that session (after
//!   deleting whatever older value Redis has): the take sees the put before
//!   it, and the session, never sent, cannot be taken elsewhere. While the
//!   key's `SET` is being sent, `take` asks Redis (`GETDEL`) as usual and
//!   the marked `SET` is deleted after it lands: a miss at worst, never a
//!   second use.
//! * `get` answers from the queue when the key's put is still there (the
//!   newest session put under it), and a miss when that put was removed
//!   while being sent; otherwise it asks Redis.
//! * A `put` of a key already queued replaces the queued session in place
//!   (the older `SET` would be overwritten anyway) and takes no new slot.
//!
//! The queue's plaintext copies of sessions (kept for lookups) are zeroed
//! ([`StoredSession::scrub`]) when their `SET` is answered, when a newer
//! put replaces them and when a full queue drops them; a withdrawn copy
//! goes to its caller.
//!
//! One thing stays out of reach: a `SET` that timed out on our side may
//! still reach Redis later (it was on the wire), after a `DEL` sent since.
//! Only a Redis-side version check could order those; the session then
//! lives until its TTL, as with any write Redis applies late.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tls_session_cache::StoredSession;

use crate::naming::RedisKey;

/// One queued `SET key value PX px`.
pub(crate) struct Job {
    pub(crate) key: RedisKey,
    pub(crate) value: Vec<u8>,
    pub(crate) px: u64,
}

/// What a lookup finds of a key in the write-behind queue.
pub(crate) enum Pending {
    /// A put of the key is queued or being sent: this is its session.
    Put(StoredSession),
    /// The put being sent was removed since: the key holds nothing.
    Removed,
    /// Nothing about the key is pending: ask Redis.
    Nothing,
}

/// What [`Writer::withdraw`] took back.
pub(crate) struct Withdrawn {
    /// The session of the key's queued put, which will not be sent.
    pub(crate) queued: Option<StoredSession>,
    /// The key's `SET` was being sent; it will be deleted once answered.
    pub(crate) sending: bool,
}

/// A queued put: what to send, and the session, for lookups.
struct Queued {
    job: Job,
    session: StoredSession,
}

/// The put the thread is sending.
struct Sending {
    key: RedisKey,
    session: StoredSession,
    /// Removed (or taken) meanwhile: `DEL` the key once the `SET` is answered.
    then_delete: bool,
}

/// The queue: at most one put per key, sent oldest key first.
#[derive(Default)]
struct State {
    /// Keys with a queued put, in the order they were first queued; the
    /// same keys as `queued`.
    order: VecDeque<RedisKey>,
    queued: HashMap<RedisKey, Queued>,
    sending: Option<Sending>,
    /// The store is dropped: send what is left and stop.
    closed: bool,
}

impl State {
    /// Puts queued or being sent.
    fn pending(&self) -> u64 {
        self.queued.len() as u64 + u64::from(self.sending.is_some())
    }
}

/// The state and the two conditions waited on: work for the thread, an
/// empty queue for [`Writer::flush`].
struct Backlog {
    state: Mutex<State>,
    work: Condvar,
    drained: Condvar,
    capacity: usize,
}

impl Backlog {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next put to send (marked as being sent), waiting for one; `None`
    /// once the store is dropped and the queue is empty.
    fn next(&self) -> Option<Job> {
        let mut state = self.lock();
        loop {
            while let Some(key) = state.order.pop_front() {
                if let Some(Queued { job, session }) = state.queued.remove(&key) {
                    state.sending = Some(Sending {
                        key,
                        session,
                        then_delete: false,
                    });
                    return Some(job);
                }
            }
            if state.closed {
                return None;
            }
            state = self
                .work
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The `SET` being sent was answered: whether its key must now be
    /// deleted. When it must, the key stays marked until [`done`](Self::done).
    fn sent(&self) -> bool {
        let mut state = self.lock();
        let then_delete = state.sending.as_ref().is_some_and(|s| s.then_delete);
        if !then_delete {
            if let Some(sent) = state.sending.take() {
                sent.session.scrub();
            }
            self.notify_if_drained(&state);
        }
        then_delete
    }

    /// The follow-up `DEL` of a removed key was answered.
    fn done(&self) {
        let mut state = self.lock();
        if let Some(sent) = state.sending.take() {
            sent.session.scrub();
        }
        self.notify_if_drained(&state);
    }

    fn notify_if_drained(&self, state: &State) {
        if state.pending() == 0 {
            self.drained.notify_all();
        }
    }
}

/// The queue and the thread. Dropping it closes the queue; the thread
/// sends what is left (each send bounded by the timeouts, or refused at
/// once by an open circuit) and ends, and the drop joins it.
pub(crate) struct Writer {
    backlog: Arc<Backlog>,
    thread: Option<JoinHandle<()>>,
}

/// Where the writer's jobs go: the store's shared state, seen only through
/// what the writer needs (so this module does not import the store's).
/// Failures are the sink's to count (errors, timeouts, …).
pub(crate) trait Sink: Send + Sync + 'static {
    /// Sends one queued put.
    fn write(&self, job: &Job);
    /// Deletes `key` (removed while its put was on the way).
    fn delete(&self, key: &RedisKey);
    /// Counts a put dropped because the queue was full.
    fn dropped(&self);
}

impl Writer {
    /// Starts the thread with a queue of `queue_len` keys.
    pub(crate) fn spawn<S: Sink>(shared: Arc<S>, queue_len: usize) -> std::io::Result<Writer> {
        let backlog = Arc::new(Backlog {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            drained: Condvar::new(),
            capacity: queue_len,
        });
        let queue = Arc::clone(&backlog);
        let thread = std::thread::Builder::new()
            .name("tls-session-redis-writer".into())
            .spawn(move || run(shared.as_ref(), &queue))?;
        Ok(Writer {
            backlog,
            thread: Some(thread),
        })
    }

    /// Queues `job` (the sealed `session`). A put of a key already queued
    /// replaces it; when the queue is full the put is dropped and counted.
    pub(crate) fn enqueue(&self, shared: &dyn Sink, job: Job, session: StoredSession) {
        let mut state = self.backlog.lock();
        if let Some(queued) = state.queued.get_mut(&job.key) {
            let replaced = std::mem::replace(queued, Queued { job, session });
            replaced.session.scrub();
            return;
        }
        if state.closed || state.queued.len() >= self.backlog.capacity {
            drop(state);
            session.scrub();
            shared.dropped();
            log::debug!("redis session store: write-behind queue full, session not stored");
            return;
        }
        state.order.push_back(job.key.clone());
        state
            .queued
            .insert(job.key.clone(), Queued { job, session });
        self.backlog.work.notify_one();
    }

    /// Takes back the queued put of `key`, if any, and marks its `SET`
    /// for deletion if it is being sent: for `remove`, `take` and an
    /// expired `put`, which then go to Redis themselves.
    pub(crate) fn withdraw(&self, key: &RedisKey) -> Withdrawn {
        let mut state = self.backlog.lock();
        let queued = state.queued.remove(key).map(|q| q.session);
        if queued.is_some() {
            state.order.retain(|k| k != key);
        }
        let sending = match &mut state.sending {
            Some(s) if s.key == *key => {
                s.then_delete = true;
                true
            }
            _ => false,
        };
        self.backlog.notify_if_drained(&state);
        Withdrawn { queued, sending }
    }

    /// What the queue holds for `key` (see [`Pending`]).
    pub(crate) fn peek(&self, key: &RedisKey) -> Pending {
        let state = self.backlog.lock();
        if let Some(queued) = state.queued.get(key) {
            return Pending::Put(queued.session.clone());
        }
        match &state.sending {
            Some(s) if s.key == *key && s.then_delete => Pending::Removed,
            Some(s) if s.key == *key => Pending::Put(s.session.clone()),
            _ => Pending::Nothing,
        }
    }

    /// Puts queued or being sent.
    pub(crate) fn pending(&self) -> u64 {
        self.backlog.lock().pending()
    }

    /// Waits until nothing is queued or being sent, at most `timeout`;
    /// returns whether the queue drained.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let state = self.backlog.lock();
        let (state, _) = self
            .backlog
            .drained
            .wait_timeout_while(state, timeout, |s| s.pending() > 0)
            .unwrap_or_else(PoisonError::into_inner);
        state.pending() == 0
    }
}

/// The thread: sends each queued put; deletes a key removed while its
/// `SET` was on the way, before taking the next put.
fn run(shared: &dyn Sink, backlog: &Backlog) {
    while let Some(job) = backlog.next() {
        shared.write(&job);
        if backlog.sent() {
            shared.delete(&job.key);
            backlog.done();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.backlog.lock().closed = true;
        self.backlog.work.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
