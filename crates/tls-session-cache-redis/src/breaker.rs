//! The circuit breaker: stop calling a Redis that keeps failing.
//!
//! * **Closed**: every call goes through; `threshold` consecutive failures
//!   open the circuit.
//! * **Open**: calls are refused at once (a handshake sees an instant miss)
//!   until the back-off has passed.
//! * **Half-open**: the first call after the back-off is a probe; others are
//!   still refused. A successful probe closes the circuit and resets the
//!   back-off; a failed one reopens it with the back-off doubled, up to
//!   the cap.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the back-off has passed.
    Open,
    /// One probe call is in flight; others are refused.
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    Probing { since: Instant },
}

#[derive(Debug)]
struct Inner {
    state: State,
    backoff: Duration,
}

/// A consecutive-failure circuit breaker with exponential back-off.
#[derive(Debug)]
pub(crate) struct Breaker {
    inner: Mutex<Inner>,
    threshold: u32,
    base: Duration,
    cap: Duration,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, base: Duration, cap: Duration) -> Self {
        Breaker {
            inner: Mutex::new(Inner {
                state: State::Closed { failures: 0 },
                backoff: base,
            }),
            threshold: threshold.max(1),
            base,
            cap: cap.max(base),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a call may go to Redis now.
    pub(crate) fn admit(&self) -> bool {
        let now = Instant::now();
        let mut g = self.lock();
        match g.state {
            State::Closed { .. } => true,
            State::Open { until } if now < until => false,
            State::Open { .. } => {
                g.state = State::Probing { since: now };
                true
            }
            // A probe is in flight; it is bounded by the timeouts, so one
            // that has not reported after a whole back-off was lost (its
            // thread ended): let another probe go.
            State::Probing { since } if now.duration_since(since) < g.backoff => false,
            State::Probing { .. } => {
                g.state = State::Probing { since: now };
                true
            }
        }
    }

    /// A call succeeded (Redis answered).
    pub(crate) fn success(&self) {
        let mut g = self.lock();
        if !matches!(g.state, State::Closed { failures: 0 }) {
            if !matches!(g.state, State::Closed { .. }) {
                log::info!("redis session store: circuit closed, Redis answers again");
            }
            g.state = State::Closed { failures: 0 };
            g.backoff = self.base;
        }
    }

    /// Closes the circuit and forgets the back-off: the calls now go to
    /// another server (Sentinel named a new master).
    pub(crate) fn reset(&self) {
        let mut g = self.lock();
        if !matches!(g.state, State::Closed { .. }) {
            log::info!("redis session store: circuit closed, calls go to the new master");
        }
        g.state = State::Closed { failures: 0 };
        g.backoff = self.base;
    }

    /// A call failed for want of Redis; returns whether the circuit opened.
    pub(crate) fn failure(&self) -> bool {
        let now = Instant::now();
        let mut g = self.lock();
        match g.state {
            State::Closed { failures } => {
                let failures = failures + 1;
                if failures >= self.threshold {
                    g.state = State::Open {
                        until: now + g.backoff,
                    };
                    log::warn!(
                        "redis session store: circuit open after {failures} consecutive failures; \
                         lookups are misses for {:?}",
                        g.backoff
                    );
                    true
                } else {
                    g.state = State::Closed { failures };
                    false
                }
            }
            State::Probing { .. } => {
                g.backoff = (g.backoff * 2).min(self.cap);
                g.state = State::Open {
                    until: now + g.backoff,
                };
                log::warn!(
                    "redis session store: probe failed; circuit open for {:?}",
                    g.backoff
                );
                true
            }
            // A call admitted before the circuit opened failed late.
            State::Open { .. } => false,
        }
    }

    /// Closed with no failure counted since the last success.
    pub(crate) fn clean(&self) -> bool {
        matches!(self.lock().state, State::Closed { failures: 0 })
    }

    pub(crate) fn state(&self) -> CircuitState {
        let g = self.lock();
        match g.state {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { until } if Instant::now() < until => CircuitState::Open,
            // The back-off has passed: the next call will probe.
            State::Open { .. } | State::Probing { .. } => CircuitState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_rejects() {
        let b = Breaker::new(3, Duration::from_secs(3600), Duration::from_secs(7200));
        assert!(b.admit());
        assert!(!b.failure());
        assert!(!b.failure());
        b.success(); // resets the count
        assert!(!b.failure());
        assert!(!b.failure());
        assert!(b.failure());
        assert_eq!(b.state(), CircuitState::Open);
        assert!(!b.admit());
    }

    #[test]
    fn probe_after_backoff_closes_on_success() {
        let b = Breaker::new(1, Duration::ZERO, Duration::from_secs(3600));
        assert!(b.failure());
        // Zero back-off: the next call is the probe, the one after waits for it.
        assert!(b.admit());
        assert_eq!(b.state(), CircuitState::HalfOpen);
        b.success();
        assert_eq!(b.state(), CircuitState::Closed);
        assert!(b.admit());
    }

    #[test]
    fn failed_probe_doubles_backoff_up_to_cap() {
        let b = Breaker::new(1, Duration::from_secs(10), Duration::from_secs(15));
        assert!(b.failure());
        {
            let mut g = b.lock();
            g.state = State::Probing {
                since: Instant::now(),
            };
        }
        assert!(b.failure());
        assert_eq!(b.lock().backoff, Duration::from_secs(15));
        assert!(!b.admit());
    }
}
