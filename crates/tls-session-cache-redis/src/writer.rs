//! The optional write-behind thread: `put` hands the sealed value to a
//! bounded queue and returns; one background thread sends the `SET`s.

use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use crate::stats::bump;
use crate::store::Shared;

/// One queued `SET key value PX px`.
pub(crate) struct Job {
    pub(crate) key: String,
    pub(crate) value: Vec<u8>,
    pub(crate) px: u64,
}

/// The queue's sending end and the thread. Dropping it closes the queue;
/// the thread sends what is left (each send bounded by the timeouts, or
/// refused at once by an open circuit) and ends, and the drop joins it.
pub(crate) struct Writer {
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(crate) fn spawn(shared: Arc<Shared>, queue_len: usize) -> std::io::Result<Writer> {
        let (tx, rx) = sync_channel::<Job>(queue_len);
        let thread = std::thread::Builder::new()
            .name("tls-session-redis-writer".into())
            .spawn(move || {
                for job in rx {
                    // Failures are counted by `set` (errors, timeouts, …).
                    let _ = shared.set(&job);
                    shared.end_write();
                }
            })?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues `job`; when the queue is full the job is dropped and counted.
    pub(crate) fn enqueue(&self, shared: &Shared, job: Job) {
        let Some(tx) = &self.tx else { return };
        shared.begin_write();
        match tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                shared.end_write();
                bump(&shared.counters.dropped_writes);
                log::debug!("redis session store: write-behind queue full, session not stored");
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
