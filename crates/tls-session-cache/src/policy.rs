//! Cache policy: how long sessions live, how big they may be, and whether
//! TLS 1.3 tickets are single use.

use std::time::Duration;

use crate::clock::UnixTime;
use crate::session::Protocol;

/// How a cache treats sessions. Defaults follow nginx and Apache.
///
/// ```
/// use std::time::Duration;
/// use tls_session_cache::CachePolicy;
/// let p = CachePolicy::default();
/// assert_eq!(p.lifetime, Duration::from_secs(300));
/// // A session issued at t=1000 by a resumption of a session first
/// // authenticated at t=900 lives until 900 + max_lifetime at most.
/// assert_eq!(p.expiry(1000, 900), 1200);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    /// Lifetime of a new session (default 300 s, as nginx's
    /// `ssl_session_timeout` and Apache's `SSLSessionCacheTimeout`).
    pub lifetime: Duration,
    /// Longest a chain of TLS 1.3 resumptions may keep a session alive,
    /// counted from the full handshake that authenticated the peer.
    /// `None` means "the same as `lifetime`": a resumed session never
    /// outlives the session it came from (nginx's and HAProxy's behaviour).
    pub max_lifetime: Option<Duration>,
    /// Largest serialised session stored (default 10 KiB, as Apache's
    /// socache). Larger sessions are refused and counted, never truncated.
    pub max_session_size: usize,
    /// TLS 1.3 tickets are resumed at most once (default on; RFC 8446 §8.1).
    pub single_use_tls13: bool,
}

impl CachePolicy {
    /// The default lifetime, 300 s.
    pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
    /// The default size limit, 10 KiB.
    pub const DEFAULT_MAX_SESSION_SIZE: usize = 10 * 1024;
    /// RFC 8446 §4.6.1: ticket lifetimes must not exceed 7 days.
    pub const MAX_TLS13_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

    /// The effective maximum lifetime (never shorter than `lifetime`).
    pub fn effective_max_lifetime(&self) -> Duration {
        self.max_lifetime
            .unwrap_or(self.lifetime)
            .max(self.lifetime)
    }

    /// Expiry of a session issued at `issued` whose peer was authenticated
    /// by a full handshake at `authenticated`: `issued + lifetime`, clamped
    /// to `authenticated + max_lifetime`.
    pub fn expiry(&self, issued: UnixTime, authenticated: UnixTime) -> UnixTime {
        let by_lifetime = issued.saturating_add(self.lifetime.as_secs());
        let by_chain = authenticated
            .min(issued)
            .saturating_add(self.effective_max_lifetime().as_secs());
        by_lifetime.min(by_chain)
    }

    /// Whether a session of this protocol must be removed when it is
    /// looked up (`take`) rather than read (`get`).
    pub fn is_single_use(&self, protocol: Protocol) -> bool {
        self.single_use_tls13 && protocol == Protocol::Tls13
    }

    /// Whether a serialised session of `len` bytes may be stored.
    pub fn admits_size(&self, len: usize) -> bool {
        len <= self.max_session_size
    }
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            lifetime: Self::DEFAULT_LIFETIME,
            max_lifetime: None,
            max_session_size: Self::DEFAULT_MAX_SESSION_SIZE,
            single_use_tls13: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_cannot_outlive_max_lifetime() {
        let p = CachePolicy {
            lifetime: Duration::from_secs(100),
            max_lifetime: Some(Duration::from_secs(250)),
            ..CachePolicy::default()
        };
        assert_eq!(p.expiry(1000, 1000), 1100);
        assert_eq!(p.expiry(1200, 1000), 1250);
        assert_eq!(p.expiry(1300, 1000), 1250);
        // A max shorter than the lifetime is raised to it.
        let q = CachePolicy {
            max_lifetime: Some(Duration::from_secs(1)),
            ..p
        };
        assert_eq!(q.effective_max_lifetime(), Duration::from_secs(100));
    }

    #[test]
    fn single_use_and_size() {
        let p = CachePolicy::default();
        assert!(p.is_single_use(Protocol::Tls13));
        assert!(!p.is_single_use(Protocol::Tls12));
        assert!(p.admits_size(10 * 1024));
        assert!(!p.admits_size(10 * 1024 + 1));
    }
}
