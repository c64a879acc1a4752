//! Log lines that would repeat once per handshake (a store that is down
//! fails every lookup and every put) are let through at most once per
//! second per kind, with the number of lines suppressed since the last one.
//! The counters in [`CacheStats`](crate::CacheStats) still count every
//! event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use once_cell::sync::Lazy;

/// At most one line per this many milliseconds, per kind.
const INTERVAL_MS: u64 = 1000;

/// The process's monotonic time origin for [`Limiter`].
static ORIGIN: Lazy<Instant> = Lazy::new(Instant::now);

/// One kind of log line's limiter: lock-free, two atomics.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    /// When a line was last let through, in ms since [`ORIGIN`], plus one
    /// (0: never).
    last: AtomicU64,
    /// Lines suppressed since then.
    suppressed: AtomicU64,
}

impl Limiter {
    /// Whether a line may be logged now: `Some(n)` with the number of lines
    /// suppressed since the last one, or `None` (counted as suppressed).
    pub(crate) fn admit(&self) -> Option<u64> {
        let now = u64::try_from(ORIGIN.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.admit_at(now)
    }

    fn admit_at(&self, now_ms: u64) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        let stamp = now_ms.saturating_add(1);
        let due = last == 0 || stamp >= last.saturating_add(INTERVAL_MS);
        if due
            && self
                .last
                .compare_exchange(last, stamp, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// The limiters of one cache, one per kind of per-handshake warning.
#[derive(Debug, Default)]
pub(crate) struct Limiters {
    /// A new session could not be stored (`put` failed).
    pub put_failed: Limiter,
    /// A lookup failed (`get` / `take`).
    pub lookup_failed: Limiter,
    /// A removal failed.
    pub remove_failed: Limiter,
    /// Stored bytes that do not decode, or decode to another session.
    pub bad_entry: Limiter,
    /// A session could not be serialised.
    pub serialise_failed: Limiter,
    /// A handshake asked for more sessions than it may look up.
    pub excess_lookups: Limiter,
}

/// `log::warn!` through a [`Limiter`]: at most one line per second, which
/// says how many were suppressed before it.
macro_rules! warn_limited {
    ($limiter:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $limiter.admit() {
            if suppressed == 0 {
                log::warn!($($arg)+);
            } else {
                log::warn!(
                    "{} ({} more like this suppressed)",
                    format_args!($($arg)+),
                    suppressed
                );
            }
        }
    };
}
pub(crate) use warn_limited;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_suppressed() {
        let l = Limiter::default();
        assert_eq!(l.admit_at(0), Some(0));
        for t in [1, 500, 999] {
            assert_eq!(l.admit_at(t), None, "at {t} ms");
        }
        assert_eq!(l.admit_at(1000), Some(3));
        assert_eq!(l.admit_at(1500), None);
        assert_eq!(l.admit_at(5000), Some(1));
        assert_eq!(l.admit_at(5001), None);
    }

    #[test]
    fn real_time_admits_the_first_line() {
        let l = Limiter::default();
        assert_eq!(l.admit(), Some(0));
    }
}
