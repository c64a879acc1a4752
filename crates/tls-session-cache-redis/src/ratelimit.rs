//! Warnings that would repeat once per call (a wrong password, an
//! untrusted certificate: every call fails the same way) are logged at most
//! once per [`INTERVAL`] per kind, with the number suppressed since the
//! last one. The counters still count every event.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

/// At most one line per kind per this long.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// One kind of warning's limiter.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    /// When a line was last let through, and how many were suppressed since.
    state: Mutex<(Option<Instant>, u64)>,
    /// Every line suppressed so far.
    total_suppressed: std::sync::atomic::AtomicU64,
}

impl Limiter {
    /// `Some(suppressed)` when a line may be logged now; `None` (counted as
    /// suppressed) otherwise.
    pub(crate) fn admit(&self) -> Option<u64> {
        let now = Instant::now();
        let mut g = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match g.0 {
            Some(last) if now.duration_since(last) < INTERVAL => {
                g.1 += 1;
                self.total_suppressed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                None
            }
            _ => {
                g.0 = Some(now);
                Some(std::mem::take(&mut g.1))
            }
        }
    }

    /// Lines suppressed since the limiter was made.
    pub(crate) fn suppressed(&self) -> u64 {
        self.total_suppressed
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_then_the_count() {
        let l = Limiter::default();
        assert_eq!(l.admit(), Some(0));
        assert_eq!(l.admit(), None);
        assert_eq!(l.admit(), None);
        l.state.lock().unwrap().0 = Some(Instant::now() - INTERVAL);
        assert_eq!(l.admit(), Some(2));
    }
}
