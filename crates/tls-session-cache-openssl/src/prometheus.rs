//! The statistics in the Prometheus text exposition format (version 0.0.4),
//! the format scraped at `/metrics`.
//!
//! ```
//! use tls_session_cache_openssl::CacheStats;
//! use tls_session_cache_openssl::prometheus::Exposition;
//!
//! let stats = CacheStats::default(); // cache.stats() in a server
//! // One cache: one call.
//! let text = stats.to_prometheus("my-service");
//! assert!(text.contains("tls_session_cache_resumed_total{context=\"my-service\"} 0\n"));
//! // Several caches, or extra counters (Redis, async layer): one exposition,
//! // one label set per cache context, each family's samples together.
//! let mut e = Exposition::new();
//! e.add("api", stats.metrics());
//! e.add("admin", stats.metrics());
//! assert_eq!(e.render().matches("# TYPE tls_session_cache_resumed_total counter").count(), 1);
//! ```
//!
//! Every metric is named `tls_session_cache_…`; counters end in `_total`,
//! gauges (entries, bytes, states) do not; every sample carries the label
//! `context` (the cache's session-id context, or any name the server gives
//! its cache) and, where one name holds several values, one more label
//! (`cause` of a removal, `state` of a Redis circuit).

use std::fmt::Write as _;

use tls_session_cache::{Metric, MetricKind};

use crate::stats::CacheStats;

/// The prefix of every metric name.
pub const PREFIX: &str = "tls_session_cache_";

/// The `Content-Type` of a `/metrics` answer in this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Metrics of one or more caches, rendered as one exposition: each metric
/// family once (`# HELP`, `# TYPE`, then its samples), in the order first
/// added.
#[derive(Debug, Default, Clone)]
pub struct Exposition {
    families: Vec<Family>,
}

#[derive(Debug, Clone)]
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricKind,
    /// (rendered label set, value)
    samples: Vec<(String, u64)>,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Adds `metrics` under the label `context="…"` (escaped as the format
    /// requires). A sample whose name and labels were already added is
    /// replaced; a metric whose name was first added with another kind is
    /// left out (the format allows one type per name).
    pub fn add(&mut self, context: &str, metrics: impl IntoIterator<Item = Metric>) -> &mut Self {
        let context = escape_label_value(context);
        for m in metrics {
            let mut labels = format!("context=\"{context}\"");
            if let Some((name, value)) = m.label {
                let _ = write!(labels, ",{name}=\"{}\"", escape_label_value(value));
            }
            let family = match self.families.iter_mut().position(|f| f.name == m.name) {
                Some(i) => &mut self.families[i],
                None => {
                    self.families.push(Family {
                        name: m.name,
                        help: m.help,
                        kind: m.kind,
                        samples: Vec::new(),
                    });
                    let last = self.families.len() - 1;
                    &mut self.families[last]
                }
            };
            if family.kind != m.kind {
                continue;
            }
            match family.samples.iter_mut().find(|(l, _)| *l == labels) {
                Some(sample) => sample.1 = m.value,
                None => family.samples.push((labels, m.value)),
            }
        }
        self
    }

    /// The exposition text: `# HELP` and `# TYPE` lines, samples, every
    /// line ending in `\n`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.families {
            let kind = match f.kind {
                MetricKind::Counter => "counter",
                MetricKind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {PREFIX}{} {}", f.name, escape_help(f.help));
            let _ = writeln!(out, "# TYPE {PREFIX}{} {kind}", f.name);
            for (labels, value) in &f.samples {
                let _ = writeln!(out, "{PREFIX}{}{{{labels}}} {value}", f.name);
            }
        }
        out
    }
}

/// A label value as the text format writes it: `\`, `"` and newlines escaped.
fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A help text as the text format writes it: `\` and newlines escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

impl CacheStats {
    /// Every counter of [`CacheStats`] (and of its `store`) as [`Metric`]s:
    /// handshakes, lookups, hits, misses, stores, removals by cause, errors
    /// as counters; `decoded_entries`, `store_entries` and `store_bytes`
    /// as gauges.
    pub fn metrics(&self) -> Vec<Metric> {
        let r = &self.removed_by;
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
                "Handshakes whose client offered a session id or ticket.",
                self.lookups,
            ),
            Metric::counter(
                "hits_total",
                "Lookups that handed OpenSSL a session.",
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
                "Stored entries that did not decode as a session (removed).",
                self.corrupt,
            ),
            Metric::counter(
                "mismatched_total",
                "Stored sessions with another id or context than asked (removed).",
                self.mismatched,
            ),
            Metric::counter(
                "invalid_id_total",
                "Offered session ids outside 1..=32 bytes.",
                self.invalid_id,
            ),
            Metric::counter(
                "removed_total",
                "Sessions the binding removed that the store said it held.",
                self.removed,
            ),
        ];
        let by = "Removals the binding asked the store for, by cause.";
        for (cause, value) in [
            ("fatal_alert", r.fatal_alert),
            ("application", r.application),
            ("unclean_close", r.unclean_close),
            ("expired", r.expired),
            ("single_use", r.single_use),
            ("bad_entry", r.bad_entry),
        ] {
            m.push(Metric::counter("removals_total", by, value).with_label("cause", cause));
        }
        m.extend([
            Metric::counter(
                "kept_unclean_close_total",
                "Sessions kept although their connection ended without close_notify.",
                self.kept_unclean_close,
            ),
            Metric::counter(
                "errors_total",
                "Store operations that failed; the handshake went on without the cache.",
                self.errors,
            ),
            Metric::counter(
                "panics_total",
                "Panics caught in a callback (treated as a miss).",
                self.panics,
            ),
            Metric::counter(
                "decoded_hits_total",
                "Hits answered with a session kept decoded in this process.",
                self.decoded_hits,
            ),
            Metric::gauge(
                "decoded_entries",
                "Sessions kept decoded in this process now.",
                self.decoded_entries,
            ),
        ]);
        m.extend(self.store.metrics());
        m
    }

    /// The statistics in the Prometheus text format, every sample labelled
    /// `context="…"` with `context`. For several caches or extra counters
    /// use an [`Exposition`].
    pub fn to_prometheus(&self, context: &str) -> String {
        let mut e = Exposition::new();
        e.add(context, self.metrics());
        e.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::RemovedBy;

    #[test]
    fn renders_help_type_and_labelled_samples() {
        let stats = CacheStats {
            resumed: 3,
            removed_by: RemovedBy {
                single_use: 2,
                ..RemovedBy::default()
            },
            ..CacheStats::default()
        };
        let text = stats.to_prometheus("svc");
        assert!(text.starts_with(
            "# HELP tls_session_cache_resumed_total Handshakes that resumed a session.\n\
             # TYPE tls_session_cache_resumed_total counter\n\
             tls_session_cache_resumed_total{context=\"svc\"} 3\n"
        ));
        assert!(text.contains(
            "tls_session_cache_removals_total{context=\"svc\",cause=\"single_use\"} 2\n"
        ));
        assert!(text.contains("# TYPE tls_session_cache_store_bytes gauge\n"));
        assert_eq!(text.matches("# TYPE ").count(), 17 + 1 + 10, "{text}");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn families_are_grouped_across_contexts_and_labels_escaped() {
        let a = CacheStats {
            full: 1,
            ..CacheStats::default()
        };
        let b = CacheStats {
            full: 2,
            ..CacheStats::default()
        };
        let mut e = Exposition::new();
        e.add("a", a.metrics()).add("q\"\\\nz", b.metrics());
        let text = e.render();
        let family: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("# HELP tls_session_cache_full_total"))
            .take(4)
            .collect();
        assert_eq!(
            family,
            [
                "# HELP tls_session_cache_full_total Handshakes that did not resume a session (full handshakes).",
                "# TYPE tls_session_cache_full_total counter",
                "tls_session_cache_full_total{context=\"a\"} 1",
                "tls_session_cache_full_total{context=\"q\\\"\\\\\\nz\"} 2",
            ]
        );
        assert_eq!(
            text.matches("# HELP tls_session_cache_full_total").count(),
            1
        );
    }

    #[test]
    fn a_sample_added_twice_is_replaced_and_a_kind_clash_is_left_out() {
        let mut e = Exposition::new();
        e.add("c", [Metric::counter("x_total", "x", 1)]);
        e.add("c", [Metric::counter("x_total", "x", 5)]);
        e.add("c", [Metric::gauge("x_total", "x", 9)]);
        assert_eq!(
            e.render(),
            "# HELP tls_session_cache_x_total x\n# TYPE tls_session_cache_x_total counter\n\
             tls_session_cache_x_total{context=\"c\"} 5\n"
        );
    }
}
