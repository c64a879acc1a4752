//! Counters of the Redis store.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tls_session_cache::StoreStats;

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
        }
    }
}
