//! The state every callback shares: the store, the policy, the counters.
//!
//! It sits below everything else in the crate: [`cache`](crate::cache)
//! builds it, [`exdata`](crate::exdata) hangs it off OpenSSL's objects and
//! [`callbacks`](crate::callbacks) reads it — each imports it from here, and
//! none of them imports another through it.

use std::sync::Arc;

use tls_session_cache::{CachePolicy, Clock, SessionIdContext, SessionStore};

use crate::decoded::Decoded;
use crate::live::Live;
use crate::ratelimit::Limiters;
use crate::stats::Counters;

/// What happens to the session of a connection that ends without the
/// server having sent `close_notify` (see [`close`](crate::close)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UncleanClose {
    /// Keep it (the default; TLS ≥ 1.1, nginx, Apache, HAProxy).
    Keep,
    /// Remove it, as RFC 2246 asked and OpenSSL does on its own.
    Remove,
}

/// What every callback needs: the store, the policy, the clock, the counters.
pub(crate) struct Inner {
    pub store: Box<dyn SessionStore>,
    pub context: SessionIdContext,
    pub policy: CachePolicy,
    pub clock: Arc<dyn Clock>,
    pub stateless_tickets: bool,
    pub num_tickets: Option<usize>,
    pub unclean_close: UncleanClose,
    pub counters: Counters,
    /// Recently stored sessions, decoded.
    pub decoded: Decoded,
    /// Limits per-handshake warnings (a store that is down).
    pub logs: Limiters,
    /// Connections alive now (used on OpenSSL ≥ 3.2 only; see `close`).
    pub live: Live,
}
