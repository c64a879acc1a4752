//! [`SessionCache`] and its builder: configuration, installation on an
//! `SSL_CTX`, statistics.

use std::ffi::c_long;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{SslContextBuilder, SslOptions, SslSessionCacheMode, SslSessionRef};
use tls_session_cache::{
    CachePolicy, Clock, MemoryStore, SessionIdContext, SessionStore, SystemClock,
};

use crate::callbacks;
use crate::close::{self, Removal};
use crate::decoded::Decoded;
use crate::error::Error;
use crate::exdata::{self, CtxState};
use crate::ffi;
use crate::live::Live;
use crate::ratelimit::Limiters;
use crate::state::{Inner, UncleanClose};
use crate::stats::{CacheStats, Counters};

/// An external server-side session cache for OpenSSL.
///
/// Build one with [`SessionCache::builder`], then [`install`](Self::install)
/// it on every `SslContextBuilder` (or `SslAcceptorBuilder`) that should
/// resume sessions from it. Cloning is cheap: clones share the store and
/// the counters.
#[derive(Clone)]
pub struct SessionCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("context", &self.inner.context)
            .field("policy", &self.inner.policy)
            .field("stateless_tickets", &self.inner.stateless_tickets)
            .field("num_tickets", &self.inner.num_tickets)
            .finish_non_exhaustive()
    }
}

/// Configures a [`SessionCache`]; see each method for its default.
pub struct SessionCacheBuilder {
    store: Option<Box<dyn SessionStore>>,
    context: Vec<u8>,
    policy: CachePolicy,
    clock: Arc<dyn Clock>,
    stateless_tickets: bool,
    num_tickets: Option<usize>,
    decoded_sessions: usize,
    unclean_close: UncleanClose,
}

impl std::fmt::Debug for SessionCacheBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCacheBuilder")
            .field("context", &self.context)
            .field("policy", &self.policy)
            .field("decoded_sessions", &self.decoded_sessions)
            .field("unclean_close", &self.unclean_close)
            .finish_non_exhaustive()
    }
}

impl SessionCacheBuilder {
    /// The session-id context used when the caller sets none.
    pub const DEFAULT_CONTEXT: &'static [u8] = b"tls-session-cache";

    /// Default of [`decoded_sessions`](Self::decoded_sessions).
    pub const DEFAULT_DECODED_SESSIONS: usize = 4096;

    /// How many recently stored sessions to keep decoded in this process
    /// (default [`Self::DEFAULT_DECODED_SESSIONS`]; 0 turns it off).
    ///
    /// A lookup still asks the store first, exactly as without it — the
    /// store decides expiry, removal and single use — but when the store
    /// answers with the bytes of a session this process stored, the
    /// session kept decoded is handed to OpenSSL instead of decoding those
    /// bytes (`d2i_SSL_SESSION`, a few µs). Each entry holds a live
    /// `SSL_SESSION`: about 1–2 KB of heap (more with client-certificate
    /// chains), so the default costs up to ~4–8 MiB. The bound is per
    /// shard (up to 16 shards), rounded up.
    pub fn decoded_sessions(mut self, n: usize) -> Self {
        self.decoded_sessions = n;
        self
    }

    /// Where sessions are kept (default: a [`MemoryStore`] of 64 MiB).
    pub fn store(mut self, store: impl SessionStore) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// The session-id context (`SSL_CTX_set_session_id_context`), at most
    /// 32 bytes; also the namespace of this cache's keys in the store.
    /// Servers sharing a store resume each other's sessions only when they
    /// use the same context. Default: [`Self::DEFAULT_CONTEXT`]; set one per
    /// service.
    pub fn context(mut self, context: &[u8]) -> Self {
        self.context = context.to_vec();
        self
    }

    /// Lifetime of a new session (default 300 s). Also given to OpenSSL
    /// (`SSL_CTX_set_timeout`) so that its own expiry agrees.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.policy.lifetime = lifetime;
        self
    }

    /// Longest a chain of TLS 1.3 resumptions may keep a session alive,
    /// counted from the full handshake (default: the lifetime).
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.policy.max_lifetime = Some(max);
        self
    }

    /// Largest serialised session stored (default 10 KiB); larger sessions
    /// are counted as `oversize` and not stored.
    pub fn max_session_size(mut self, bytes: usize) -> Self {
        self.policy.max_session_size = bytes;
        self
    }

    /// Whether a TLS 1.3 ticket can be resumed once only (default true).
    pub fn single_use_tls13(mut self, single_use: bool) -> Self {
        self.policy.single_use_tls13 = single_use;
        self
    }

    /// Let OpenSSL issue stateless TLS 1.3 tickets and TLS 1.2 session
    /// tickets (default false). Such tickets carry the session themselves:
    /// resumption through them bypasses this cache entirely (no single use,
    /// no sharing, no lifetime clamp). With the default, `install` sets
    /// `SSL_OP_NO_TICKET`, which makes TLS 1.3 issue stateful tickets that
    /// are looked up here.
    pub fn stateless_tickets(mut self, on: bool) -> Self {
        self.stateless_tickets = on;
        self
    }

    /// Number of TLS 1.3 tickets sent after a full handshake
    /// (`SSL_CTX_set_num_tickets`; OpenSSL's default is 2).
    pub fn num_tickets(mut self, n: usize) -> Self {
        self.num_tickets = Some(n);
        self
    }

    /// Remove the session of a connection that ends without the server
    /// sending `close_notify` (default false: keep it).
    ///
    /// By default a session survives however its connection ends — the
    /// client dropping TCP after the handshake (preconnects, health checks,
    /// `openssl s_time -reuse`), the server dropping the stream without
    /// `shutdown()` (what frameworks do) — as TLS 1.1 and later allow
    /// (RFC 4346 / RFC 5246 §7.2.1: "failure to properly close a connection
    /// no longer requires that a session not be resumed") and as nginx,
    /// Apache and HAProxy do. A fatal alert sent or received, an explicit
    /// removal, expiry and single use still remove it. `true` restores
    /// RFC 2246's rule, which OpenSSL follows on its own: such sessions are
    /// removed, from the store too. See the crate's `close` module for how.
    pub fn remove_on_unclean_close(mut self, remove: bool) -> Self {
        self.unclean_close = if remove {
            UncleanClose::Remove
        } else {
            UncleanClose::Keep
        };
        self
    }

    /// The clock for expiry (default: the system clock). Give the same
    /// clock to the store.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Validates the settings and builds the cache.
    pub fn build(self) -> Result<SessionCache, Error> {
        let context = SessionIdContext::new(&self.context)?;
        if self.policy.lifetime < Duration::from_secs(1) {
            return Err(Error::Config("lifetime must be at least one second"));
        }
        if self.policy.lifetime.as_secs() > i32::MAX as u64 {
            return Err(Error::Config("lifetime is too long for OpenSSL"));
        }
        if self.policy.max_session_size == 0 {
            return Err(Error::Config("max_session_size must be positive"));
        }
        let store = self
            .store
            .unwrap_or_else(|| Box::new(MemoryStore::default()));
        Ok(SessionCache {
            inner: Arc::new(Inner {
                store,
                context,
                policy: self.policy,
                clock: self.clock,
                stateless_tickets: self.stateless_tickets,
                num_tickets: self.num_tickets,
                unclean_close: self.unclean_close,
                counters: Counters::default(),
                decoded: Decoded::new(self.decoded_sessions),
                logs: Limiters::default(),
                live: Live::default(),
            }),
        })
    }
}

impl SessionCache {
    /// A builder with the defaults.
    pub fn builder() -> SessionCacheBuilder {
        SessionCacheBuilder {
            store: None,
            context: SessionCacheBuilder::DEFAULT_CONTEXT.to_vec(),
            policy: CachePolicy::default(),
            clock: Arc::new(SystemClock),
            stateless_tickets: false,
            num_tickets: None,
            decoded_sessions: SessionCacheBuilder::DEFAULT_DECODED_SESSIONS,
            unclean_close: UncleanClose::Keep,
        }
    }

    /// Installs the cache on an `SSL_CTX` being built. Call it after any
    /// info callback of your own is set (it is chained, not replaced).
    ///
    /// It sets the session cache mode to `SERVER | NO_INTERNAL` (every
    /// lookup reaches the store), the session-id context, OpenSSL's session
    /// timeout, `SSL_OP_NO_TICKET` (unless stateless tickets were asked
    /// for), the number of TLS 1.3 tickets if configured, the new / get /
    /// remove session callbacks and an info callback that counts resumed and
    /// full handshakes. The context holds a reference to the cache, dropped
    /// when the `SSL_CTX` is freed.
    ///
    /// Works with `&mut SslAcceptorBuilder` too (it derefs to
    /// `SslContextBuilder`).
    pub fn install(&self, ctx: &mut SslContextBuilder) -> Result<(), Error> {
        let ctx_index = exdata::ctx_index()?;
        exdata::conn_indices()?;
        // SAFETY: reads a pointer from the live SSL_CTX owned by `ctx`.
        let present =
            !unsafe { openssl_sys::SSL_CTX_get_ex_data(ctx.as_ptr(), ctx_index.as_raw()) }
                .is_null();
        if present {
            return Err(Error::AlreadyInstalled);
        }
        let inner = &self.inner;
        ctx.set_session_cache_mode(SslSessionCacheMode::SERVER | SslSessionCacheMode::NO_INTERNAL);
        ctx.set_session_id_context(inner.context.as_bytes())?;
        if !inner.stateless_tickets {
            ctx.set_options(SslOptions::NO_TICKET);
        }
        if let Some(n) = inner.num_tickets {
            ctx.set_num_tickets(n)?;
        }
        let raw = ctx.as_ptr();
        // SAFETY: `raw` is the live SSL_CTX owned by `ctx`, borrowed
        // mutably for the duration of this call. The info callback read
        // here is a plain function pointer (or null).
        let previous_info = unsafe { ffi::SSL_CTX_get_info_callback(raw) };
        if previous_info.is_some() {
            callbacks::note_previous_info();
        }
        ctx.set_ex_data(
            ctx_index,
            CtxState {
                inner: Arc::clone(inner),
                previous_info,
            },
        );
        // SAFETY: as above. The callbacks find their state through the ex
        // data just set, which lives exactly as long as the SSL_CTX.
        unsafe {
            // Checked in build(): the lifetime fits a c_long.
            ffi::SSL_CTX_set_timeout(raw, inner.policy.lifetime.as_secs() as c_long);
            openssl_sys::SSL_CTX_sess_set_new_cb(raw, Some(callbacks::new_session));
            openssl_sys::SSL_CTX_sess_set_get_cb(raw, Some(callbacks::get_session));
            openssl_sys::SSL_CTX_sess_set_remove_cb(raw, Some(callbacks::remove_session));
            ffi::SSL_CTX_set_info_callback(raw, Some(callbacks::info));
        }
        Ok(())
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> CacheStats {
        self.inner
            .counters
            .snapshot(self.inner.store.stats(), self.inner.decoded.len() as u64)
    }

    /// The cache's policy (lifetimes, size limit, single use).
    pub fn policy(&self) -> &CachePolicy {
        &self.inner.policy
    }

    /// The session-id context.
    pub fn context(&self) -> SessionIdContext {
        self.inner.context
    }

    /// Removes `session` from the store (and from this process's decoded
    /// sessions), whatever its connection is doing: the way to revoke a
    /// session. Counted as an application removal. Returns whether the
    /// store held it.
    ///
    /// `SSL_CTX_remove_session` reaches the store too, through OpenSSL's
    /// remove callback; this method does not depend on how OpenSSL reports
    /// it (see the crate's `close` module for the one case where the two
    /// differ).
    pub fn remove_session(&self, session: &SslSessionRef) -> Result<bool, Error> {
        close::remove(&self.inner, session, Removal::Application).map_err(Error::Store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_validates() {
        assert!(matches!(
            SessionCache::builder().context(&[0; 33]).build(),
            Err(Error::Context(_))
        ));
        assert!(matches!(
            SessionCache::builder().lifetime(Duration::ZERO).build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            SessionCache::builder().max_session_size(0).build(),
            Err(Error::Config(_))
        ));
        let cache = SessionCache::builder().context(b"svc").build().unwrap();
        assert_eq!(cache.context().as_bytes(), b"svc");
        assert_eq!(cache.policy().lifetime, Duration::from_secs(300));
    }

    #[test]
    fn install_twice_is_refused() {
        let cache = SessionCache::builder().build().unwrap();
        let mut ctx = SslContextBuilder::new(openssl::ssl::SslMethod::tls_server()).unwrap();
        cache.install(&mut ctx).unwrap();
        assert!(matches!(
            cache.install(&mut ctx),
            Err(Error::AlreadyInstalled)
        ));
        assert!(ctx.options().contains(SslOptions::NO_TICKET));
    }
}
