//! Counters of the rustls binding, and the [`CacheStats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use tls_session_cache::{Metric, StoreStats};

/// A snapshot of a cache's statistics: the store's own counters plus what
/// rustls asked for. Names and meanings are those of the OpenSSL binding's
/// `CacheStats` where they apply; the OpenSSL-only counters (removals by
/// cause, unclean closes, decoded sessions) have no rustls counterpart and
/// are absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// The store's counters ([`SessionStore::stats`](tls_session_cache::SessionStore::stats)).
    pub store: StoreStats,
    /// Handshakes that resumed a session (reported through
    /// [`SessionCache::handshake_done`](crate::SessionCache::handshake_done)).
    pub resumed: u64,
    /// Handshakes that did not (full handshakes), reported likewise.
    pub full: u64,
    /// Lookups rustls made (`get` of a TLS 1.2 session id, `take` of a
    /// TLS 1.3 ticket).
    pub lookups: u64,
    /// Lookups that handed a session to rustls.
    pub hits: u64,
    /// Lookups that did not, for any reason.
    pub misses: u64,
    /// Sessions written to the store.
    pub stored: u64,
    /// Sessions not stored because they could never be looked up: a key
    /// outside 1..=32 bytes, or a value that is not a rustls session.
    pub skipped: u64,
    /// Sessions larger than `max_session_size` (not stored; rustls then
    /// sends no ticket / no session id that could resume).
    pub oversize: u64,
    /// Stored bytes that are not a rustls session value (for instance a
    /// session an OpenSSL server wrote under the same context); a miss.
    pub corrupt: u64,
    /// Stored sessions of the other protocol than the lookup's; a miss.
    pub mismatched: u64,
    /// Offered ids or tickets outside 1..=32 bytes (a miss, never a panic).
    pub invalid_id: u64,
    /// Store operations that failed (the handshake went on without the cache).
    pub errors: u64,
    /// Panics caught in the store (treated as a miss or a failed put).
    pub panics: u64,
}

impl CacheStats {
    /// The statistics as one line of JSON, in the member order and with the
    /// names of the OpenSSL binding's `/stats` (members that only OpenSSL
    /// has are left out).
    pub fn to_json(&self) -> String {
        self.to_json_with(&[])
    }

    /// [`to_json`](Self::to_json) with `extra` members appended, in order,
    /// after the counters: each is a name (written as given, so it must not
    /// need escaping) and a raw JSON value.
    pub fn to_json_with(&self, extra: &[(&str, String)]) -> String {
        let s = &self.store;
        let mut json = format!(
            concat!(
                "{{\"resumed\":{},\"full\":{},\"lookups\":{},\"hits\":{},\"misses\":{},",
                "\"stored\":{},\"skipped\":{},\"oversize\":{},\"corrupt\":{},\"mismatched\":{},",
                "\"invalid_id\":{},\"errors\":{},\"panics\":{},",
                "\"store\":{{\"hits\":{},\"misses\":{},\"inserts\":{},\"evictions\":{},",
                "\"expirations\":{},\"oversize\":{},\"removals\":{},\"errors\":{},",
                "\"entries\":{},\"bytes\":{}}}"
            ),
            self.resumed,
            self.full,
            self.lookups,
            self.hits,
            self.misses,
            self.stored,
            self.skipped,
            self.oversize,
            self.corrupt,
            self.mismatched,
            self.invalid_id,
            self.errors,
            self.panics,
            s.hits,
            s.misses,
            s.inserts,
            s.evictions,
            s.expirations,
            s.oversize,
            s.removals,
            s.errors,
            s.entries,
            s.bytes,
        );
        for (name, value) in extra {
            json.push_str(&format!(",\"{name}\":{value}"));
        }
        json.push('}');
        json
    }

    /// The binding's counters as [`Metric`]s (named as the OpenSSL
    /// binding's where they mean the same), followed by the store's.
    pub fn metrics(&self) -> Vec<Metric> {
        let mut m = vec![
            Metric::counter(
                "resumed_total",
                "Handshakes that resumed a session.",
                self.resumed,
            ),
            Metric::counter(
                "full_total",
                "Handshakes that did not resume a session (full handshakes).",
                self.full,
            ),
            Metric::counter(
                "lookups_total",
                "Lookups rustls made (TLS 1.2 session id or TLS 1.3 ticket).",
                self.lookups,
            ),
            Metric::counter(
                "hits_total",
                "Lookups that handed rustls a session.",
                self.hits,
            ),
            Metric::counter(
                "misses_total",
                "Lookups that did not, for any reason.",
                self.misses,
            ),
            Metric::counter(
                "stored_total",
                "Sessions written to the store.",
                self.stored,
            ),
            Metric::counter(
                "skipped_total",
                "New sessions not stored because they can never be looked up.",
                self.skipped,
            ),
            Metric::counter(
                "oversize_total",
                "New sessions larger than max_session_size (not stored).",
                self.oversize,
            ),
            Metric::counter(
                "corrupt_total",
                "Stored entries that are not a rustls session (a miss).",
                self.corrupt,
            ),
            Metric::counter(
                "mismatched_total",
                "Stored sessions of another protocol than asked (a miss).",
                self.mismatched,
            ),
            Metric::counter(
                "invalid_id_total",
                "Offered session ids or tickets outside 1..=32 bytes.",
                self.invalid_id,
            ),
            Metric::counter(
                "errors_total",
                "Store operations that failed; the handshake went on without the cache.",
                self.errors,
            ),
            Metric::counter(
                "panics_total",
                "Panics caught in the store (treated as a miss).",
                self.panics,
            ),
        ];
        m.extend(self.store.metrics());
        m
    }
}

/// The live counters behind [`CacheStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub resumed: AtomicU64,
    pub full: AtomicU64,
    pub lookups: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stored: AtomicU64,
    pub skipped: AtomicU64,
    pub oversize: AtomicU64,
    pub corrupt: AtomicU64,
    pub mismatched: AtomicU64,
    pub invalid_id: AtomicU64,
    pub errors: AtomicU64,
    pub panics: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub fn snapshot(&self, store: StoreStats) -> CacheStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            store,
            resumed: r(&self.resumed),
            full: r(&self.full),
            lookups: r(&self.lookups),
            hits: r(&self.hits),
            misses: r(&self.misses),
            stored: r(&self.stored),
            skipped: r(&self.skipped),
            oversize: r(&self.oversize),
            corrupt: r(&self.corrupt),
            mismatched: r(&self.mismatched),
            invalid_id: r(&self.invalid_id),
            errors: r(&self.errors),
            panics: r(&self.panics),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_every_counter_like_the_openssl_binding() {
        let stats = CacheStats {
            resumed: 3,
            panics: 7,
            ..CacheStats::default()
        };
        let json = stats.to_json();
        assert!(
            json.starts_with("{\"resumed\":3,\"full\":0,\"lookups\":0,"),
            "{json}"
        );
        assert!(json.contains("\"panics\":7,"), "{json}");
        assert!(json.contains("\"store\":{\"hits\":0,"), "{json}");
        assert!(json.ends_with("\"bytes\":0}}"), "{json}");
        // 13 counters, the store object, its 10 counters.
        assert_eq!(json.matches(':').count(), 24, "{json}");
        let extended = stats.to_json_with(&[("redis", "{\"x\":1}".to_string())]);
        let head = json.strip_suffix('}').unwrap();
        assert_eq!(extended, format!("{head},\"redis\":{{\"x\":1}}}}"));
    }

    #[test]
    fn metrics_list_the_store_after_the_binding() {
        let m = CacheStats::default().metrics();
        assert_eq!(m.len(), 13 + 10);
        assert_eq!(m[13].name, "store_hits_total");
    }
}
