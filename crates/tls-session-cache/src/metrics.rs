//! Counters and gauges described for an exposition format.
//!
//! Each statistics snapshot of the project (the store's [`StoreStats`], the
//! binding's `CacheStats`, the Redis store's and the async layer's counters)
//! lists its values as [`Metric`]s; the binding renders them in the
//! Prometheus text format (`tls_session_cache_openssl::prometheus`). Keeping
//! the description here, with no formatting, lets every crate describe its
//! own counters without depending on the renderer.

use crate::stats::StoreStats;

/// Whether a value only grows (a counter) or goes up and down (a gauge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Grows from zero for the life of the process; named `…_total`.
    Counter,
    /// A value now (entries held, bytes, a state).
    Gauge,
}

/// One value of a statistics snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The name under the `tls_session_cache_` prefix, in `[a-z0-9_]`;
    /// counters end in `_total`.
    pub name: &'static str,
    /// One line saying what is counted.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// An extra label that tells apart values of one name (`cause` of a
    /// removal, `state` of a circuit), if any.
    pub label: Option<(&'static str, &'static str)>,
    /// The value.
    pub value: u64,
}

impl Metric {
    /// A counter without extra label.
    pub const fn counter(name: &'static str, help: &'static str, value: u64) -> Metric {
        Metric {
            name,
            help,
            kind: MetricKind::Counter,
            label: None,
            value,
        }
    }

    /// A gauge without extra label.
    pub const fn gauge(name: &'static str, help: &'static str, value: u64) -> Metric {
        Metric {
            name,
            help,
            kind: MetricKind::Gauge,
            label: None,
            value,
        }
    }

    /// This metric with the extra label `name="value"`.
    pub const fn with_label(mut self, name: &'static str, value: &'static str) -> Metric {
        self.label = Some((name, value));
        self
    }
}

impl StoreStats {
    /// The store's counters (`store_…_total`) and its gauges
    /// (`store_entries`, `store_bytes`).
    pub fn metrics(&self) -> Vec<Metric> {
        vec![
            Metric::counter(
                "store_hits_total",
                "Store lookups that found a live session.",
                self.hits,
            ),
            Metric::counter(
                "store_misses_total",
                "Store lookups that found no live session.",
                self.misses,
            ),
            Metric::counter(
                "store_inserts_total",
                "Sessions written to the store.",
                self.inserts,
            ),
            Metric::counter(
                "store_evictions_total",
                "Live sessions dropped by the store to make room.",
                self.evictions,
            ),
            Metric::counter(
                "store_expirations_total",
                "Sessions the store found expired.",
                self.expirations,
            ),
            Metric::counter(
                "store_oversize_total",
                "Sessions the store refused as too large.",
                self.oversize,
            ),
            Metric::counter(
                "store_removals_total",
                "Sessions removed from the store.",
                self.removals,
            ),
            Metric::counter(
                "store_errors_total",
                "Store operations that failed (including calls refused by an open circuit).",
                self.errors,
            ),
            Metric::gauge(
                "store_entries",
                "Sessions held by the store now (0 for Redis).",
                self.entries,
            ),
            Metric::gauge(
                "store_bytes",
                "Bytes charged against the store's capacity now (0 for Redis).",
                self.bytes,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_end_in_total_and_gauges_do_not() {
        let m = StoreStats::default().metrics();
        assert_eq!(m.len(), 10);
        for metric in m {
            let total = metric.name.ends_with("_total");
            assert_eq!(total, metric.kind == MetricKind::Counter, "{metric:?}");
            assert!(
                metric
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
        }
    }
}
