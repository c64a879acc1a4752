//! Counters of the async layer, and the [`AsyncStats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tls_session_cache::Metric;

/// What the async layer did, beside the binding's
/// [`CacheStats`](tls_session_cache_openssl::CacheStats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AsyncStats {
    /// Handshakes paused by the client-hello callback for a lookup.
    pub retries: u64,
    /// Store lookups made by `accept` (one per id looked up).
    pub lookups: u64,
    /// Lookups that found a session (parked for OpenSSL).
    pub found: u64,
    /// Lookups that failed (store down, timeout); the handshake went on as a miss.
    pub lookup_errors: u64,
    /// ClientHellos whose `pre_shared_key` or `supported_versions`
    /// extension did not parse (full handshake).
    pub malformed: u64,
    /// Panics caught in the client-hello callback (no resumption).
    pub panics: u64,
    /// New sessions and removals queued for the writer task.
    pub queued: u64,
    /// Queued writes not done yet.
    pub pending_writes: u64,
    /// Writes dropped because the queue was full (or the runtime gone).
    pub dropped_writes: u64,
    /// Queued writes the store refused or failed.
    pub write_errors: u64,
}

impl AsyncStats {
    /// The statistics as one JSON object.
    pub fn to_json(&self) -> String {
        format!(
            concat!(
                "{{\"retries\":{},\"lookups\":{},\"found\":{},\"lookup_errors\":{},",
                "\"malformed\":{},\"panics\":{},\"queued\":{},\"pending_writes\":{},",
                "\"dropped_writes\":{},\"write_errors\":{}}}"
            ),
            self.retries,
            self.lookups,
            self.found,
            self.lookup_errors,
            self.malformed,
            self.panics,
            self.queued,
            self.pending_writes,
            self.dropped_writes,
            self.write_errors,
        )
    }
}

impl AsyncStats {
    /// The async layer's counters as [`Metric`]s (`async_…_total`; the
    /// writes not done yet, `async_pending_writes`, as a gauge).
    pub fn metrics(&self) -> Vec<Metric> {
        vec![
            Metric::counter(
                "async_retries_total",
                "Handshakes paused by the client-hello callback for a lookup.",
                self.retries,
            ),
            Metric::counter(
                "async_lookups_total",
                "Store lookups made by accept (one per id looked up).",
                self.lookups,
            ),
            Metric::counter(
                "async_found_total",
                "Async lookups that found a session.",
                self.found,
            ),
            Metric::counter(
                "async_lookup_errors_total",
                "Async lookups that failed (the handshake went on as a miss).",
                self.lookup_errors,
            ),
            Metric::counter(
                "async_malformed_total",
                "ClientHellos whose pre_shared_key or supported_versions did not parse.",
                self.malformed,
            ),
            Metric::counter(
                "async_panics_total",
                "Panics caught in the client-hello callback.",
                self.panics,
            ),
            Metric::counter(
                "async_queued_total",
                "New sessions and removals queued for the writer task.",
                self.queued,
            ),
            Metric::gauge(
                "async_pending_writes",
                "Queued writes not done yet.",
                self.pending_writes,
            ),
            Metric::counter(
                "async_dropped_writes_total",
                "Writes dropped because the queue was full.",
                self.dropped_writes,
            ),
            Metric::counter(
                "async_write_errors_total",
                "Queued writes the store refused or failed.",
                self.write_errors,
            ),
        ]
    }
}

/// The live counters behind [`AsyncStats`].
#[derive(Debug, Default)]
pub(crate) struct AsyncCounters {
    pub retries: AtomicU64,
    pub lookups: AtomicU64,
    pub found: AtomicU64,
    pub lookup_errors: AtomicU64,
    pub malformed: AtomicU64,
    pub panics: AtomicU64,
    pub queued: AtomicU64,
    pub dropped_writes: AtomicU64,
    pub write_errors: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

impl AsyncCounters {
    pub(crate) fn snapshot(&self, pending_writes: u64) -> AsyncStats {
        let r = |c: &AtomicU64| c.load(Relaxed);
        AsyncStats {
            retries: r(&self.retries),
            lookups: r(&self.lookups),
            found: r(&self.found),
            lookup_errors: r(&self.lookup_errors),
            malformed: r(&self.malformed),
            panics: r(&self.panics),
            queued: r(&self.queued),
            pending_writes,
            dropped_writes: r(&self.dropped_writes),
            write_errors: r(&self.write_errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_every_counter() {
        let s = AsyncStats {
            retries: 2,
            write_errors: 9,
            ..AsyncStats::default()
        };
        let json = s.to_json();
        assert!(json.starts_with("{\"retries\":2,"), "{json}");
        assert!(json.ends_with("\"write_errors\":9}"), "{json}");
        assert_eq!(json.matches(':').count(), 10, "{json}");
    }
}
