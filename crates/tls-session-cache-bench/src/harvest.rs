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
    seen: Mutex<Vec<(SessionKey, StoredSession)>>,
}

impl SessionStore for Recorder {
    fn put(&self, key: &SessionKey, session: &StoredSession) -> Result<(), StoreError> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((*key, session.clone()));
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
    /// A TLS 1.2 session (from a full handshake), as stored (compact).
    pub tls12: Bytes,
    /// A TLS 1.3 ticket's session (from a resumption), as stored.
    pub tls13: Bytes,
    /// The same two with their keys and times, to decode them.
    pub stored: [(SessionKey, StoredSession); 2],
    /// Their plain DER (`i2d_SSL_SESSION`), as stored before issue 16.
    pub plain: [Bytes; 2],
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

    /// The session of `proto` as stored, with its key.
    pub fn stored(&self, proto: Proto) -> &(SessionKey, StoredSession) {
        &self.stored[proto as usize]
    }

    /// The plain DER of `proto`'s session.
    pub fn plain(&self, proto: Proto) -> &Bytes {
        &self.plain[proto as usize]
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
            .find(|(_, s)| s.protocol == p)
            .cloned()
            .ok_or_else(|| BenchError::Verification(format!("harvest: no {} session", p.as_str())))
    };
    let (s12, s13) = (last(Protocol::Tls12)?, last(Protocol::Tls13)?);
    let plain = |(k, s): &(SessionKey, StoredSession)| -> Result<Bytes, BenchError> {
        let session = tls_session_cache_openssl::decode_stored(k, s)
            .map_err(|e| BenchError::Verification(format!("harvest: {e}")))?;
        Ok(session.to_der()?.into())
    };
    Ok(Harvest {
        tls12: s12.1.der.clone(),
        tls13: s13.1.der.clone(),
        plain: [plain(&s12)?, plain(&s13)?],
        stored: [s12, s13],
        sizes: seen
            .iter()
            .map(|(_, s)| (s.protocol, s.der.len()))
            .collect(),
    })
}
