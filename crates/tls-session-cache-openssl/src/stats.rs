//! Counters of the binding, and the [`CacheStats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use tls_session_cache::StoreStats;

/// A snapshot of a cache's statistics: the store's own counters plus what
/// the OpenSSL callbacks saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// The store's counters ([`SessionStore::stats`](tls_session_cache::SessionStore::stats)).
    pub store: StoreStats,
    /// Handshakes that resumed a session.
    pub resumed: u64,
    /// Handshakes that did not (full handshakes).
    pub full: u64,
    /// Calls of the get-session callback (client offered a session id or ticket).
    pub lookups: u64,
    /// Lookups that handed a session to OpenSSL.
    pub hits: u64,
    /// Lookups that did not, for any reason.
    pub misses: u64,
    /// Sessions written to the store.
    pub stored: u64,
    /// New sessions not stored because they can never be looked up
    /// (no session id, stateless TLS 1.3 tickets, foreign session-id context).
    pub skipped: u64,
    /// New sessions larger than `max_session_size` (not stored).
    pub oversize: u64,
    /// Stored bytes that did not decode as a session (entry removed).
    pub corrupt: u64,
    /// Stored sessions whose id or session-id context is not the one asked for.
    pub mismatched: u64,
    /// Offered session ids outside 1..=32 bytes.
    pub invalid_id: u64,
    /// Sessions the binding removed from the store that the store said it
    /// held (a store that queues its writes says it did not).
    pub removed: u64,
    /// Removals the binding asked the store for, by cause (whether or not
    /// the store still held the session: a store that queues its writes
    /// cannot tell). A single-use ticket taken by the lookup that resumed
    /// it is counted in `single_use` and not in `removed`.
    pub removed_by: RemovedBy,
    /// Sessions kept although their connection ended without the server's
    /// `close_notify` (the peer's end of file, or the connection freed
    /// without `shutdown()`), where OpenSSL would have removed them.
    pub kept_unclean_close: u64,
    /// Store operations that failed (the handshake went on without the cache).
    pub errors: u64,
    /// Panics caught in a callback (treated as a miss).
    pub panics: u64,
    /// Hits answered with a session kept decoded in this process (no
    /// `d2i_SSL_SESSION`); included in `hits`.
    pub decoded_hits: u64,
    /// Sessions kept decoded now.
    pub decoded_entries: u64,
}

impl CacheStats {
    /// The statistics as one line of JSON, every counter included.
    pub fn to_json(&self) -> String {
        self.to_json_with(&[])
    }

    /// [`to_json`](Self::to_json) with `extra` members appended, in order,
    /// after the counters: each is a name (written as given, so it must not
    /// need escaping) and a raw JSON value (an object, number, string with
    /// its quotes…), e.g. `("redis", "{\"timeouts\":0}".to_string())`.
    pub fn to_json_with(&self, extra: &[(&str, String)]) -> String {
        let s = &self.store;
        let mut json = format!(
            concat!(
                "{{\"resumed\":{},\"full\":{},\"lookups\":{},\"hits\":{},\"misses\":{},",
                "\"stored\":{},\"skipped\":{},\"oversize\":{},\"corrupt\":{},\"mismatched\":{},",
                "\"invalid_id\":{},\"removed\":{},",
                "\"removed_by\":{{\"fatal_alert\":{},\"application\":{},\"unclean_close\":{},",
                "\"expired\":{},\"single_use\":{},\"bad_entry\":{}}},",
                "\"kept_unclean_close\":{},\"errors\":{},\"panics\":{},",
                "\"decoded_hits\":{},\"decoded_entries\":{},",
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
            self.removed,
            self.removed_by.fatal_alert,
            self.removed_by.application,
            self.removed_by.unclean_close,
            self.removed_by.expired,
            self.removed_by.single_use,
            self.removed_by.bad_entry,
            self.kept_unclean_close,
            self.errors,
            self.panics,
            self.decoded_hits,
            self.decoded_entries,
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
}

/// Sessions removed from the store, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemovedBy {
    /// A fatal alert was sent or received on the session's connection.
    pub fatal_alert: u64,
    /// The application asked (`SSL_CTX_remove_session` or
    /// [`SessionCache::remove_session`](crate::SessionCache::remove_session)).
    pub application: u64,
    /// The connection ended without the server's `close_notify` and the
    /// cache was built with `remove_on_unclean_close(true)`.
    pub unclean_close: u64,
    /// OpenSSL found the session expired when it was offered.
    pub expired: u64,
    /// A single-use TLS 1.3 ticket was taken by the lookup that resumed it.
    pub single_use: u64,
    /// A stored entry did not decode or was not the session asked for.
    pub bad_entry: u64,
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
    pub removed: AtomicU64,
    pub removed_fatal_alert: AtomicU64,
    pub removed_application: AtomicU64,
    pub removed_unclean_close: AtomicU64,
    pub removed_expired: AtomicU64,
    pub removed_single_use: AtomicU64,
    pub removed_bad_entry: AtomicU64,
    pub kept_unclean_close: AtomicU64,
    pub errors: AtomicU64,
    pub panics: AtomicU64,
    pub decoded_hits: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub fn snapshot(&self, store: StoreStats, decoded_entries: u64) -> CacheStats {
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
            removed: r(&self.removed),
            removed_by: RemovedBy {
                fatal_alert: r(&self.removed_fatal_alert),
                application: r(&self.removed_application),
                unclean_close: r(&self.removed_unclean_close),
                expired: r(&self.removed_expired),
                single_use: r(&self.removed_single_use),
                bad_entry: r(&self.removed_bad_entry),
            },
            kept_unclean_close: r(&self.kept_unclean_close),
            errors: r(&self.errors),
            panics: r(&self.panics),
            decoded_hits: r(&self.decoded_hits),
            decoded_entries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_every_counter() {
        let stats = CacheStats {
            resumed: 3,
            panics: 7,
            ..CacheStats::default()
        };
        let json = stats.to_json();
        assert!(json.starts_with("{\"resumed\":3,"), "{json}");
        assert!(json.contains("\"panics\":7,"), "{json}");
        assert!(json.contains("\"store\":{\"hits\":0,"), "{json}");
        assert!(json.ends_with("\"bytes\":0}}"), "{json}");
        assert_eq!(json.matches(':').count(), 35, "{json}");
        assert!(
            json.contains("\"removed_by\":{\"fatal_alert\":0,"),
            "{json}"
        );
    }

    #[test]
    fn extra_members_follow_the_counters_in_order() {
        let stats = CacheStats {
            resumed: 3,
            ..CacheStats::default()
        };
        let plain = stats.to_json();
        assert_eq!(stats.to_json_with(&[]), plain);
        let extended =
            stats.to_json_with(&[("a", "{\"x\":1}".to_string()), ("b", "2".to_string())]);
        let head = plain.strip_suffix('}').unwrap();
        assert_eq!(extended, format!("{head},\"a\":{{\"x\":1}},\"b\":2}}"));
    }
}
