//! The rustls-facing part, kept in this one module: rustls 0.23's
//! [`StoresServerSessions`] over a [`SessionCache`], the disabled ticketer,
//! [`SessionCache::install`] and [`SessionCache::handshake_done`].
//!
//! How rustls 0.23 uses a session store (with the ticketer disabled, as
//! [`SessionCache::install`] leaves it):
//!
//! * TLS 1.2: after a full handshake it `put`s the session under the
//!   32-byte session id it sent in the ServerHello; a ClientHello offering a
//!   session id makes it `get` that id;
//! * TLS 1.3: for each ticket it sends it `put`s the session under a fresh
//!   random 32-byte ticket, the ticket *is* the key; a ClientHello offering
//!   a PSK identity makes it `take` it — here the store's atomic take, so a
//!   ticket resumes once across a whole fleet.
//!
//! rustls tells `put` neither the protocol nor a lifetime. The protocol is
//! read from the value (rustls's session encoding starts with an optional
//! server name and the protocol version: [`protocol_of`]); the lifetime is
//! the cache's. rustls 0.24 replaces the `Vec<u8>` keys with a
//! `ServerSessionKey`; only this module changes with it.

use std::sync::Arc;

use rustls::server::{ProducesTickets, ServerConnection, StoresServerSessions};
use rustls::{HandshakeKind, ServerConfig};
use tls_session_cache::Protocol;

use crate::cache::SessionCache;

/// rustls's session storage backed by a [`SessionCache`]; what
/// [`SessionCache::install`] puts in `ServerConfig::session_storage`.
#[derive(Debug, Clone)]
pub struct SessionStorage {
    cache: SessionCache,
}

impl SessionStorage {
    /// Storage backed by `cache`.
    pub fn new(cache: SessionCache) -> Self {
        SessionStorage { cache }
    }
}

impl SessionStorage {
    /// A lookup for `protocol`: from the sessions fetched ahead when the
    /// handshake is a [`PrefetchAcceptor`](crate::PrefetchAcceptor)'s,
    /// else from the store.
    fn lookup(&self, protocol: Protocol, key: &[u8]) -> Option<Vec<u8>> {
        #[cfg(feature = "tokio")]
        if let Some(parked) = crate::prefetch::current() {
            return self
                .cache
                .lookup_in(protocol, key, protocol_of, |k| Ok(parked.take(k)));
        }
        self.cache.lookup(protocol, key, protocol_of)
    }
}

impl StoresServerSessions for SessionStorage {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        #[cfg(feature = "tokio")]
        if crate::prefetch::current().is_some() {
            return match self.cache.prepare(protocol_of(&value), &key, value) {
                Some((key, session)) => crate::prefetch::write_later(&self.cache, key, session),
                None => false,
            };
        }
        self.cache.put(protocol_of(&value), &key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        // rustls `get`s only TLS 1.2 session ids.
        self.lookup(Protocol::Tls12, key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        // rustls `take`s only TLS 1.3 tickets (with the ticketer disabled).
        self.lookup(Protocol::Tls13, key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// A ticketer that makes no tickets: TLS 1.2 resumes by session id, and
/// TLS 1.3 sends stateful tickets kept in the session storage.
#[derive(Debug)]
struct NoTickets;

impl ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }
    fn lifetime(&self) -> u32 {
        0
    }
    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

impl SessionCache {
    /// Sets up `config` to resume from this cache: its session storage, no
    /// ticketer (stateless tickets would bypass the cache: no single use,
    /// no sharing, no expiry but the ticket key's), and the number of
    /// TLS 1.3 tickets per handshake
    /// ([`tls13_tickets`](crate::SessionCacheBuilder::tls13_tickets)).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # fn demo(certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// #         key: rustls::pki_types::PrivateKeyDer<'static>) -> Result<(), Box<dyn std::error::Error>> {
    /// use tls_session_cache_rustls::SessionCache;
    ///
    /// let cache = SessionCache::builder().context(b"my-service").build()?;
    /// let mut config = rustls::ServerConfig::builder()
    ///     .with_no_client_auth()
    ///     .with_single_cert(certs, key)?;
    /// cache.install(&mut config);
    /// let config = Arc::new(config);
    /// # let _ = config; Ok(()) }
    /// ```
    pub fn install(&self, config: &mut ServerConfig) {
        config.session_storage = Arc::new(SessionStorage::new(self.clone()));
        config.ticketer = Arc::new(NoTickets);
        config.send_tls13_tickets = self.tls13_tickets();
    }

    /// Counts the handshake of `conn` as resumed or full in the statistics;
    /// call it once per connection when the handshake is done (a connection
    /// still handshaking is not counted).
    pub fn handshake_done(&self, conn: &ServerConnection) {
        match conn.handshake_kind() {
            Some(HandshakeKind::Resumed) => self.count_handshake(true),
            Some(HandshakeKind::Full | HandshakeKind::FullWithHelloRetryRequest) => {
                self.count_handshake(false)
            }
            None => {}
        }
    }
}

/// The protocol of a session value rustls 0.23 hands to `put`: its encoding
/// (`ServerSessionValue`) starts with a server-name flag (0, or 1 followed
/// by a length byte and the name) and then the protocol version (0x0303 for
/// TLS 1.2, 0x0304 for TLS 1.3) and the cipher suite. `None` for anything
/// else — bytes another library wrote, or a future rustls's encoding.
pub fn protocol_of(value: &[u8]) -> Option<Protocol> {
    let rest = match value.split_first()? {
        (0, rest) => rest,
        (1, rest) => {
            let (&len, rest) = rest.split_first()?;
            rest.get(usize::from(len)..)?
        }
        _ => return None,
    };
    // Version (2 bytes) and cipher suite (2 bytes) at least.
    match rest {
        [0x03, 0x03, _, _, ..] => Some(Protocol::Tls12),
        [0x03, 0x04, _, _, ..] => Some(Protocol::Tls13),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_is_read_after_the_optional_server_name() {
        assert_eq!(protocol_of(&[0, 3, 3, 0xc0, 0x2f]), Some(Protocol::Tls12));
        assert_eq!(
            protocol_of(&[0, 3, 4, 0x13, 0x01, 9]),
            Some(Protocol::Tls13)
        );
        let mut named = vec![1, 9];
        named.extend_from_slice(b"localhost");
        named.extend_from_slice(&[3, 4, 0x13, 0x02]);
        assert_eq!(protocol_of(&named), Some(Protocol::Tls13));
    }

    #[test]
    fn anything_else_is_not_a_session() {
        for bad in [
            &[][..],
            &[0],
            &[0, 3, 3],
            &[0, 3, 2, 0, 0],
            &[2, 3, 3, 0, 0],
            &[1, 200, 3, 3, 0, 0],
            // An OpenSSL DER session starts with a SEQUENCE.
            &[0x30, 0x82, 0x01, 0x00, 0x02],
        ] {
            assert_eq!(protocol_of(bad), None, "{bad:?}");
        }
    }
}
