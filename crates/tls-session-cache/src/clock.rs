//! Time, in whole seconds since the Unix epoch — the unit OpenSSL uses for
//! session times (`SSL_SESSION_get_time`). All expiry goes through a [`Clock`]
//! so that tests can move time by hand.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub type UnixTime = u64;

/// A source of the current time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time in seconds since the Unix epoch.
    fn now(&self) -> UnixTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to; clones share one time.
///
/// ```
/// use std::time::Duration;
/// use tls_session_cache::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// let seen_by_store = clock.clone();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(seen_by_store.now(), 1_005);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: UnixTime) -> Self {
        ManualClock(Arc::new(AtomicU64::new(start)))
    }
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
    /// Sets the clock.
    pub fn set(&self, to: UnixTime) {
        self.0.store(to, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        self.0.load(Ordering::SeqCst)
    }
}

impl<C: Clock> Clock for Arc<C> {
    fn now(&self) -> UnixTime {
        (**self).now()
    }
}
