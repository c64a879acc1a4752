//! A stored session: the serialised session plus what a store needs to know
//! about it without parsing it.

use std::fmt;

use bytes::Bytes;

use crate::clock::UnixTime;

/// The protocol family a session belongs to; it decides how it is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TLS 1.2 and earlier: looked up by session id, reusable until expiry.
    Tls12,
    /// TLS 1.3 stateful ticket: looked up by a 32-byte ticket, single use.
    Tls13,
}

impl Protocol {
    /// The name OpenSSL prints for it (`SSL_get_version`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tls12 => "TLSv1.2",
            Protocol::Tls13 => "TLSv1.3",
        }
    }

    /// The short tag written in keys: `12` or `13`.
    pub fn tag(self) -> &'static str {
        match self {
            Protocol::Tls12 => "12",
            Protocol::Tls13 => "13",
        }
    }
}

/// A session as a store keeps it: opaque serialised bytes (DER, from
/// `i2d_SSL_SESSION`), its creation and expiry times, its protocol, and
/// whether it may be resumed only once.
///
/// `created` is the time of the full handshake that authenticated the
/// peer, carried through TLS 1.3 resumption chains so that the chain cannot
/// outlive [`CachePolicy::max_lifetime`](crate::CachePolicy).
///
/// Cloning is cheap (the bytes are reference counted). `Debug` never prints
/// the bytes: they hold the master secret.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The serialised session.
    pub der: Bytes,
    /// When the peer was last authenticated by a full handshake.
    pub created: UnixTime,
    /// After this instant (`now >= expires`) the session is gone.
    pub expires: UnixTime,
    /// TLS ≤ 1.2 session or TLS 1.3 stateful ticket.
    pub protocol: Protocol,
    /// The session may be resumed once only (TLS 1.3 tickets by default).
    pub single_use: bool,
}

impl StoredSession {
    /// A session, single use when it is TLS 1.3.
    pub fn new(
        der: impl Into<Bytes>,
        created: UnixTime,
        expires: UnixTime,
        protocol: Protocol,
    ) -> Self {
        StoredSession {
            der: der.into(),
            created,
            expires,
            protocol,
            single_use: protocol == Protocol::Tls13,
        }
    }

    /// Whether the session has expired at `now`.
    pub fn is_expired(&self, now: UnixTime) -> bool {
        now >= self.expires
    }

    /// Drops the session, first overwriting its bytes with zeros when this
    /// is the last reference to them (`der` is reference counted: while
    /// another clone holds them, they are that holder's to scrub). Returns
    /// whether it scrubbed.
    ///
    /// ```
    /// use tls_session_cache::{Protocol, StoredSession};
    /// let s = StoredSession::new(vec![7u8; 48], 0, 10, Protocol::Tls12);
    /// let other = s.clone();
    /// assert!(!s.scrub()); // `other` still holds the bytes
    /// assert!(other.scrub());
    /// ```
    pub fn scrub(self) -> bool {
        match self.der.try_into_mut() {
            Ok(mut bytes) => {
                zeroize::Zeroize::zeroize(bytes.as_mut());
                true
            }
            Err(_) => false,
        }
    }
}

impl fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSession")
            .field("der", &format_args!("<{} bytes redacted>", self.der.len()))
            .field("created", &self.created)
            .field("expires", &self.expires)
            .field("protocol", &self.protocol)
            .field("single_use", &self.single_use)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_secret_bytes() {
        let s = StoredSession::new(vec![0xAB; 48], 1, 2, Protocol::Tls12);
        let shown = format!("{s:?}");
        assert!(!shown.contains("171"), "{shown}");
        assert!(!shown.to_lowercase().contains("ab, ab"), "{shown}");
        assert!(shown.contains("48 bytes redacted"), "{shown}");
    }

    #[test]
    fn expiry_is_exclusive() {
        let s = StoredSession::new(vec![1], 10, 20, Protocol::Tls13);
        assert!(s.single_use);
        assert!(!s.is_expired(19));
        assert!(s.is_expired(20));
    }
}
