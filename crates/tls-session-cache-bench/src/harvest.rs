//! Real server-side sessions: a few handshakes against a server whose store
//! records what the binding hands it, so that the lookup and memory
//! measurements use the DER OpenSSL really produces.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tls_session_cache::{
    MemoryStore, Protocol, SessionKey, SessionStore, StoreError, StoreStats, StoredSession,
};
use tls_session_cache_openssl::SessionCache;

use crate::client::Client;
use crate::error::BenchError;
use crate::server::Server;
use crate::setup::{CONTEXT, Identity, Proto, context_with};

/// A MemoryStore that remembers every session put into it.
#[derive(Debug, Default)]
struct Recorder {
    inner: MemoryStore,
    seen: Mutex<Vec<StoredSession>>,
}

impl SessionStore for Recorder {
    fn put(&self, key: &SessionKey, session: &StoredSession) -> Result<(), StoreError> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(session.clone());
        self.inner.put(key, session)
    }
    fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        self.inner.get(key)
    }
    fn take(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        self.inner.take(key)
    }
    fn remove(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.inner.remove(key)
    }
    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}

/// Server-side sessions from real handshakes.
#[derive(Debug, Clone)]
pub struct Harvest {
    /// A TLS 1.2 session (from a full handshake).
    pub tls12: Bytes,
    /// A TLS 1.3 ticket's session (from a resumption).
    pub tls13: Bytes,
    /// Every size seen, with its protocol.
    pub sizes: Vec<(Protocol, usize)>,
}

impl Harvest {
    /// The session of `proto`.
    pub fn der(&self, proto: Proto) -> &Bytes {
        match proto {
            Proto::Tls12 => &self.tls12,
            Proto::Tls13 => &self.tls13,
        }
    }
}

/// Makes a TLS 1.2 full handshake, a TLS 1.3 full handshake and a TLS 1.3
/// resumption, and keeps what the server stored.
pub fn harvest(id: &Identity) -> Result<Harvest, BenchError> {
    let recorder = Arc::new(Recorder::default());
    let cache = SessionCache::builder()
        .context(CONTEXT)
        .store(Arc::clone(&recorder))
        .build()?;
    let server = Server::start("harvest", context_with(id, &cache)?)?;
    Client::new(Proto::Tls12)?.connect(server.addr, None)?;
    let c13 = Client::new(Proto::Tls13)?;
    let first = c13.connect(server.addr, None)?;
    let ticket = first
        .sessions
        .first()
        .ok_or_else(|| BenchError::Verification("no TLS 1.3 ticket".into()))?;
    if !c13.connect(server.addr, Some(ticket))?.resumed {
        return Err(BenchError::Verification(
            "harvest: TLS 1.3 did not resume".into(),
        ));
    }
    drop(server);
    let seen = recorder
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let last = |p: Protocol| {
        seen.iter()
            .rev()
            .find(|s| s.protocol == p)
            .map(|s| s.der.clone())
            .ok_or_else(|| BenchError::Verification(format!("harvest: no {} session", p.as_str())))
    };
    Ok(Harvest {
        tls12: last(Protocol::Tls12)?,
        tls13: last(Protocol::Tls13)?,
        sizes: seen.iter().map(|s| (s.protocol, s.der.len())).collect(),
    })
}
