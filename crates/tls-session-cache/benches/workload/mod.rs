//! The session workload shared by the benchmarks, and the stores under test
//! behind one small trait.
//!
//! Sessions are 140 bytes (a real TLS 1.2/1.3 server session serialises to
//! about 132–136), ids are 32 bytes (what OpenSSL makes), every put hands the
//! store a freshly allocated buffer (as `i2d_SSL_SESSION` does), and every
//! store answers only live sessions (moka with per-entry expiry does it
//! itself; for the others the adapter checks `expires` as a real adapter
//! would).

#![allow(dead_code)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tls_session_cache::memory::ENTRY_OVERHEAD;
use tls_session_cache::{MemoryStore, Protocol, SessionKey, SessionStore, StoredSession};

/// Bytes of a serialised session.
pub const SESSION_LEN: usize = 140;
/// Bytes of a session id.
pub const ID_LEN: usize = 32;
/// What every store is allowed per entry: the MemoryStore's own charge.
pub const CHARGE: usize = ENTRY_OVERHEAD + ID_LEN + SESSION_LEN;

/// The context every benchmark key lives in.
pub const CONTEXT: &[u8] = b"bench";

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `n`th session's key: 32 random-looking bytes.
pub fn key(n: u64) -> SessionKey {
    let mut id = [0u8; ID_LEN];
    for (i, chunk) in id.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&splitmix(n.wrapping_mul(4).wrapping_add(i as u64)).to_le_bytes());
    }
    SessionKey::from_slices(tls_session_cache::Protocol::Tls12, CONTEXT, &id).expect("valid key")
}

/// A freshly allocated 140-byte session, live for an hour.
pub fn session(n: u64, now: u64) -> StoredSession {
    let mut der = vec![0x30u8; SESSION_LEN];
    der[..8].copy_from_slice(&n.to_le_bytes());
    StoredSession::new(der, now, now + 3600, Protocol::Tls12)
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A store under test.
pub trait BenchStore: Send + Sync {
    fn put(&self, key: SessionKey, session: StoredSession);
    fn get(&self, key: &SessionKey) -> Option<StoredSession>;
    /// Lets background bookkeeping finish (moka).
    fn settle(&self) {}
}

impl BenchStore for MemoryStore {
    fn put(&self, key: SessionKey, session: StoredSession) {
        SessionStore::put(self, &key, &session).expect("put");
    }
    fn get(&self, key: &SessionKey) -> Option<StoredSession> {
        SessionStore::get(self, key).expect("get")
    }
}

/// A MemoryStore with room for `entries` sessions of the workload.
pub fn memory_store(entries: usize) -> MemoryStore {
    MemoryStore::builder()
        .capacity_bytes(entries * CHARGE)
        .build()
}

/// quick_cache, weighted by the same charge, expiry checked on read.
pub struct Quick(quick_cache::sync::Cache<SessionKey, StoredSession, SessionWeighter>);

#[derive(Clone)]
pub struct SessionWeighter;

impl quick_cache::Weighter<SessionKey, StoredSession> for SessionWeighter {
    fn weight(&self, key: &SessionKey, s: &StoredSession) -> u64 {
        (ENTRY_OVERHEAD + key.id.as_bytes().len() + s.der.len()) as u64
    }
}

pub fn quick(entries: usize) -> Quick {
    let cap = (entries * CHARGE) as u64;
    Quick(quick_cache::sync::Cache::with_weighter(
        entries,
        cap,
        SessionWeighter,
    ))
}

impl BenchStore for Quick {
    fn put(&self, key: SessionKey, session: StoredSession) {
        self.0.insert(key, session);
    }
    fn get(&self, key: &SessionKey) -> Option<StoredSession> {
        let s = self.0.get(key)?;
        if s.is_expired(unix_now()) {
            self.0.remove(key);
            return None;
        }
        Some(s)
    }
}

/// moka, weighted by the same charge; with `expiry`, moka expires each
/// entry at its own time, otherwise expiry is checked on read.
pub struct Moka {
    cache: moka::sync::Cache<SessionKey, StoredSession>,
    checks_expiry: bool,
}

struct SessionExpiry;

impl moka::Expiry<SessionKey, StoredSession> for SessionExpiry {
    fn expire_after_create(
        &self,
        _key: &SessionKey,
        s: &StoredSession,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(s.expires.saturating_sub(unix_now())))
    }
    fn expire_after_update(
        &self,
        key: &SessionKey,
        s: &StoredSession,
        updated_at: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, s, updated_at)
    }
}

pub fn moka(entries: usize, expiry: bool) -> Moka {
    let b = moka::sync::Cache::builder()
        .max_capacity((entries * CHARGE) as u64)
        .weigher(|k: &SessionKey, s: &StoredSession| {
            (ENTRY_OVERHEAD + k.id.as_bytes().len() + s.der.len()) as u32
        });
    let cache = if expiry {
        b.expire_after(SessionExpiry).build()
    } else {
        b.build()
    };
    Moka {
        cache,
        checks_expiry: !expiry,
    }
}

impl BenchStore for Moka {
    fn put(&self, key: SessionKey, session: StoredSession) {
        self.cache.insert(key, session);
    }
    fn get(&self, key: &SessionKey) -> Option<StoredSession> {
        let s = self.cache.get(key)?;
        if self.checks_expiry && s.is_expired(unix_now()) {
            self.cache.invalidate(key);
            return None;
        }
        Some(s)
    }
    fn settle(&self) {
        self.cache.run_pending_tasks();
    }
}
