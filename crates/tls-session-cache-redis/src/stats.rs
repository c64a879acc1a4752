//! Counters of the Redis store.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tls_session_cache::{Metric, StoreStats};

use crate::breaker::CircuitState;

use crate::ratelimit::Limiter;

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
    /// TLS 1.2 `get`s that asked for a session's previous-format name too
    /// (see [`read_previous_format`](crate::RedisStoreBuilder::read_previous_format)):
    /// on a single Redis every TLS 1.2 `get` (one `MGET`), on a cluster
    /// every TLS 1.2 miss (a second `GET`).
    pub fallback_lookups: u64,
    /// Sessions found under a previous-format name (counted in the common
    /// `hits` too). Once this stays at 0 for a session lifetime after the
    /// last server was upgraded, turn the fallback off.
    pub fallback_hits: u64,
    /// Previous-format values that held a session of the other protocol (a
    /// TLS 1.3 ticket stored by an older server under a name without a
    /// protocol): misses, left in Redis.
    pub fallback_refused: u64,
    /// Write-behind puts waiting in the queue now.
    pub queued_writes: u64,
    /// Connections refused by a failed TLS handshake (certificate not
    /// trusted or for another name, protocol mismatch); each also counts
    /// as Redis being unavailable.
    pub tls_errors: u64,
    /// Calls Redis refused for the credentials (wrong user or password) or
    /// the ACL user's permissions (`NOPERM`); each also counts as Redis
    /// being unavailable.
    pub auth_errors: u64,
    /// Sentinel only: times the master's address changed (failovers seen).
    pub master_changes: u64,
    /// Replies refused because they were larger than a session can be
    /// (`max_session_size` plus the envelope and seal); the connection was
    /// dropped before the reply was read whole.
    pub oversize_replies: u64,
    /// Cluster only: `MOVED`/`ASK` redirects to a host that is neither a
    /// seed nor in the slot map, not followed (no connection, no
    /// credentials sent there).
    pub unknown_redirects: u64,
    /// Values refused because this server consumed (`take`) or removed
    /// that session before: an old value written back into Redis.
    pub replays: u64,
    /// Warnings about unusable values (corrupt, unknown key, replayed) not
    /// logged because one was logged less than 10 s before.
    pub suppressed_warnings: u64,
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
            Metric::counter(
                "redis_oversize_replies_total",
                "Redis replies refused (and their connection dropped) for being larger than a session can be.",
                self.oversize_replies,
            ),
            Metric::counter(
                "redis_replays_total",
                "Redis values refused because this server consumed or removed that session before.",
                self.replays,
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
    pub(crate) fallback_lookups: AtomicU64,
    pub(crate) fallback_hits: AtomicU64,
    pub(crate) fallback_refused: AtomicU64,
    pub(crate) tls_errors: AtomicU64,
    pub(crate) auth_errors: AtomicU64,
    pub(crate) master_changes: AtomicU64,
    pub(crate) oversize_replies: AtomicU64,
    pub(crate) unknown_redirects: AtomicU64,
    pub(crate) replays: AtomicU64,
    /// Rate limit of the warnings about values read (corrupt, unknown key,
    /// replayed, oversize): a Redis writer could otherwise make every
    /// lookup log a line.
    pub(crate) value_warning: Limiter,
    /// Rate limits of the warnings for TLS and credential failures.
    pub(crate) tls_warning: Limiter,
    pub(crate) auth_warning: Limiter,
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
            fallback_lookups: self.fallback_lookups.load(Relaxed),
            fallback_hits: self.fallback_hits.load(Relaxed),
            fallback_refused: self.fallback_refused.load(Relaxed),
            tls_errors: self.tls_errors.load(Relaxed),
            auth_errors: self.auth_errors.load(Relaxed),
            master_changes: self.master_changes.load(Relaxed),
            oversize_replies: self.oversize_replies.load(Relaxed),
            unknown_redirects: self.unknown_redirects.load(Relaxed),
            replays: self.replays.load(Relaxed),
            suppressed_warnings: self.value_warning.suppressed(),
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
        assert_eq!(m.len(), 12);
    }
}
