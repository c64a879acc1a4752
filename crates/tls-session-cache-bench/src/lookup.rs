//! What an external lookup costs, piece by piece, on real sessions: the
//! store operation, `d2i_SSL_SESSION`, and on the new-session side
//! `i2d_SSL_SESSION` and the store's put.

use std::hint::black_box;
use std::time::Instant;

use openssl::ssl::SslSession;
use tls_session_cache::{MemoryStore, Protocol, SessionKey, SessionStore, StoredSession};

use crate::error::BenchError;
use crate::harvest::Harvest;
use crate::setup::{CONTEXT, Proto};

/// Nanoseconds per operation, single thread, warm caches.
#[derive(Debug, Clone)]
pub struct LookupCost {
    /// Which session.
    pub proto: Proto,
    /// Its DER size.
    pub der_len: usize,
    /// `MemoryStore::get` (TLS 1.2 lookup) — copies the bytes out.
    pub get_ns: f64,
    /// `MemoryStore::take` + `put` of a new ticket (TLS 1.3 resumption).
    pub take_put_ns: f64,
    /// `SslSession::from_der` (d2i_SSL_SESSION) + free.
    pub decode_ns: f64,
    /// `SslSession::to_der` (i2d_SSL_SESSION) of a new session.
    pub encode_ns: f64,
    /// `SSL_SESSION_dup` + free: what the decoded map pays per stored
    /// session and per TLS 1.2 hit, so that no connection shares an object.
    pub dup_ns: f64,
    /// `MemoryStore::put` (new session; replaces an entry).
    pub put_ns: f64,
}

impl LookupCost {
    /// What the get callback adds over OpenSSL's internal cache: store
    /// lookup + decode.
    pub fn lookup_ns(&self) -> f64 {
        match self.proto {
            Proto::Tls12 => self.get_ns + self.decode_ns,
            Proto::Tls13 => self.take_put_ns + self.decode_ns + self.encode_ns,
        }
    }
}

const KEYS: u64 = 10_000;

/// Time per call of `f`, in nanoseconds, over `iters` calls.
fn per_op(iters: u64, mut f: impl FnMut(u64)) -> f64 {
    for i in 0..iters / 10 {
        f(i);
    }
    let start = Instant::now();
    for i in 0..iters {
        f(i);
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

/// Measures each piece for `proto`'s harvested session.
pub fn measure(h: &Harvest, proto: Proto) -> Result<LookupCost, BenchError> {
    let der = h.der(proto).clone();
    let protocol = match proto {
        Proto::Tls12 => Protocol::Tls12,
        Proto::Tls13 => Protocol::Tls13,
    };
    let bad = |e: &dyn std::fmt::Display| BenchError::Verification(format!("lookup bench: {e}"));
    let store = MemoryStore::default();
    let now = store.clock().now();
    let session = StoredSession::new(der.clone(), now, now + 3600, protocol);
    let keys: Vec<SessionKey> = (0..KEYS)
        .map(|i| {
            let mut id = [0x5a_u8; 32];
            id[..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
            SessionKey::from_slices(tls_session_cache::Protocol::Tls12, CONTEXT, &id)
        })
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&e))?;
    for k in &keys {
        store.put(k, &session).map_err(|e| bad(&e))?;
    }
    let key = |i: u64| &keys[(i % KEYS) as usize];
    let get_ns = per_op(200_000, |i| {
        black_box(store.get(key(i)).ok().flatten());
    });
    let take_put_ns = per_op(200_000, |i| {
        let k = key(i);
        let s = store.take(k).ok().flatten();
        let _ = store.put(k, s.as_ref().unwrap_or(&session));
    });
    let put_ns = per_op(200_000, |i| {
        let _ = store.put(key(i), &session);
    });
    // What a lookup that misses the decoded map does: rebuild the DER from
    // the compact stored form, then d2i.
    let (k, s) = h.stored(proto);
    let decode_ns = per_op(50_000, |_| {
        black_box(tls_session_cache_openssl::decode_stored(black_box(k), black_box(s)).ok());
    });
    let decoded = SslSession::from_der(h.plain(proto)).map_err(|e| bad(&e))?;
    let encode_ns = per_op(50_000, |_| {
        black_box(decoded.to_der().ok());
    });
    let dup_ns = per_op(50_000, |_| {
        black_box(dup(black_box(&decoded)));
    });
    Ok(LookupCost {
        proto,
        der_len: der.len(),
        get_ns,
        take_put_ns,
        decode_ns,
        encode_ns,
        dup_ns,
        put_ns,
    })
}

unsafe extern "C" {
    fn SSL_SESSION_dup(src: *const openssl_sys::SSL_SESSION) -> *mut openssl_sys::SSL_SESSION;
}

/// `SSL_SESSION_dup`, as the binding's decoded map calls it; the copy is
/// freed when the returned value drops.
fn dup(session: &SslSession) -> Option<SslSession> {
    use foreign_types::ForeignType;
    // SAFETY: `session` is live; the copy (or null) has one reference,
    // which `from_ptr` takes over.
    unsafe {
        let copy = SSL_SESSION_dup(session.as_ptr());
        (!copy.is_null()).then(|| SslSession::from_ptr(copy))
    }
}
