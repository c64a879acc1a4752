//! Counters of the Redis store.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tls_session_cache::{Metric, StoreStats};

use crate::breaker::CircuitState;

/// Redis-specific counters, beside the common [`StoreStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Calls that hit the connect, read or write timeout.
    pub timeouts: u64,
    /// Calls refused at once because the circuit was open.
    pub circuit_open_rejections: u64,
    /// Times the circuit opened (including failed probes reopening it).
    pub circuit_opens: u64,
    /// Values that did not open or decode (tampered, moved, wrong key,
    /// another key's envelope); each was looked up as a miss and left in
    /// Redis to expire (it may open on a server with a key sharing the id).
    pub corrupt: u64,
    /// Values sealed under a key id this store's ring does not hold (a
    /// newer key not yet deployed here); misses, left in Redis.
    pub unknown_key: u64,
    /// Write-behind puts dropped because the queue was full.
    pub dropped_writes: u64,
    /// Write-behind puts waiting in the queue now.
    pub queued_writes: u64,
}

impl RedisStats {
    /// The Redis counters as [`Metric`]s (`redis_…_total`; the write-behind
    /// queue length `redis_queued_writes` as a gauge), and the circuit
    /// `circuit`, now, as the gauge `redis_circuit_state{state=…}`: 1 for
    /// the state it is in, 0 for the others.
    pub fn metrics(&self, circuit: CircuitState) -> Vec<Metric> {
        let mut m = vec![
            Metric::counter(
                "redis_timeouts_total",
                "Redis calls that hit the connect, read or write timeout.",
                self.timeouts,
            ),
            Metric::counter(
                "redis_circuit_open_rejections_total",
                "Redis calls refused at once because the circuit was open.",
                self.circuit_open_rejections,
            ),
            Metric::counter(
                "redis_circuit_opens_total",
                "Times the Redis circuit opened (including failed probes).",
                self.circuit_opens,
            ),
            Metric::counter(
                "redis_corrupt_total",
                "Redis values that did not open or decode (left to expire).",
                self.corrupt,
            ),
            Metric::counter(
                "redis_unknown_key_total",
                "Redis values sealed under a key id this server does not hold.",
                self.unknown_key,
            ),
            Metric::counter(
                "redis_dropped_writes_total",
                "Write-behind sessions dropped because the queue was full.",
                self.dropped_writes,
            ),
            Metric::gauge(
                "redis_queued_writes",
                "Write-behind sessions waiting now.",
                self.queued_writes,
            ),
        ];
        for (state, name) in [
            (CircuitState::Closed, "closed"),
            (CircuitState::Open, "open"),
            (CircuitState::HalfOpen, "half_open"),
        ] {
            m.push(
                Metric::gauge(
                    "redis_circuit_state",
                    "1 for the state the Redis circuit breaker is in now, 0 for the others.",
                    u64::from(state == circuit),
                )
                .with_label("state", name),
            );
        }
        m
    }
}

/// A tiered store's local-tier hits as a [`Metric`]
/// (`redis_local_hits_total`).
pub fn local_hits_metric(local_hits: u64) -> Metric {
    Metric::counter(
        "redis_local_hits_total",
        "Tiered store: lookups answered by the local tier.",
        local_hits,
    )
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) inserts: AtomicU64,
    pub(crate) expirations: AtomicU64,
    pub(crate) oversize: AtomicU64,
    pub(crate) removals: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) circuit_open_rejections: AtomicU64,
    pub(crate) circuit_opens: AtomicU64,
    pub(crate) corrupt: AtomicU64,
    pub(crate) unknown_key: AtomicU64,
    pub(crate) dropped_writes: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

impl Counters {
    pub(crate) fn store_stats(&self) -> StoreStats {
        let mut s = StoreStats::default();
        s.hits = self.hits.load(Relaxed);
        s.misses = self.misses.load(Relaxed);
        s.inserts = self.inserts.load(Relaxed);
        s.expirations = self.expirations.load(Relaxed);
        s.oversize = self.oversize.load(Relaxed);
        s.removals = self.removals.load(Relaxed);
        s.errors = self.errors.load(Relaxed);
        s
    }

    pub(crate) fn redis_stats(&self, queued: u64) -> RedisStats {
        RedisStats {
            timeouts: self.timeouts.load(Relaxed),
            circuit_open_rejections: self.circuit_open_rejections.load(Relaxed),
            circuit_opens: self.circuit_opens.load(Relaxed),
            corrupt: self.corrupt.load(Relaxed),
            unknown_key: self.unknown_key.load(Relaxed),
            dropped_writes: self.dropped_writes.load(Relaxed),
            queued_writes: queued,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuit_state_is_one_gauge_per_state() {
        let m = RedisStats::default().metrics(CircuitState::Open);
        let states: Vec<_> = m
            .iter()
            .filter(|m| m.name == "redis_circuit_state")
            .map(|m| (m.label, m.value))
            .collect();
        assert_eq!(
            states,
            [
                (Some(("state", "closed")), 0),
                (Some(("state", "open")), 1),
                (Some(("state", "half_open")), 0)
            ]
        );
        assert_eq!(m.len(), 10);
    }
}
