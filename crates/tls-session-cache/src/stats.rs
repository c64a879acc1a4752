//! Statistics snapshots.

use std::ops::AddAssign;

/// A snapshot of a store's counters. Where a counter means the same as one
/// of OpenSSL's `SSL_CTX_sess_*` counters, the doc says which.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Lookups (`get`, `take`) that found a live session (`SSL_CTX_sess_cb_hits`).
    pub hits: u64,
    /// Lookups that found nothing live (`SSL_CTX_sess_misses`).
    pub misses: u64,
    /// Sessions stored (`put` that kept the session).
    pub inserts: u64,
    /// Live sessions dropped to make room (`SSL_CTX_sess_cache_full`).
    pub evictions: u64,
    /// Sessions dropped because they expired (`SSL_CTX_sess_timeouts`).
    pub expirations: u64,
    /// Sessions refused for their size.
    pub oversize: u64,
    /// Sessions removed on request (`remove`, or `take` of a live session
    /// is counted as a hit, not here).
    pub removals: u64,
    /// Operations that failed (store down, timeout, corrupt data, …).
    pub errors: u64,
    /// Sessions held now.
    pub entries: u64,
    /// Bytes charged against the capacity now.
    pub bytes: u64,
}

impl AddAssign for StoreStats {
    fn add_assign(&mut self, o: StoreStats) {
        self.hits += o.hits;
        self.misses += o.misses;
        self.inserts += o.inserts;
        self.evictions += o.evictions;
        self.expirations += o.expirations;
        self.oversize += o.oversize;
        self.removals += o.removals;
        self.errors += o.errors;
        self.entries += o.entries;
        self.bytes += o.bytes;
    }
}
