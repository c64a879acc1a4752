//! Store keys: the protocol, the session-id context and the session id.
//!
//! OpenSSL looks a session up by the id the client offers (a TLS ≤ 1.2
//! session id, or a TLS 1.3 stateful ticket, which is a fresh 32-byte id).
//! Sessions are only valid inside the session-id context they were made in
//! (`SSL_CTX_set_session_id_context`), so the key holds the context: two
//! contexts never see each other's sessions.
//!
//! **Keys are protocol-bound.** TLS 1.2 session ids and TLS 1.3 tickets
//! are both 32 random bytes, and a TLS 1.2 session id travels in clear in
//! the ClientHello and ServerHello. If both lived under the same key, a
//! TLS 1.3 ClientHello offering a TLS 1.2 session id as its PSK identity
//! would make a single-use lookup `take` — destroy — that TLS 1.2 session
//! (OpenSSL would then refuse it, too late). The protocol is therefore
//! part of the key: a lookup made for one protocol can neither find nor
//! consume a session of the other.

use std::fmt;

use crate::session::Protocol;

/// Longest session id OpenSSL makes or accepts (`SSL_MAX_SSL_SESSION_ID_LENGTH`).
pub const MAX_SESSION_ID_LEN: usize = 32;
/// Longest session-id context (`SSL_MAX_SID_CTX_LENGTH`).
pub const MAX_CONTEXT_LEN: usize = 32;

/// A key part of the wrong length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A session id must be 1..=32 bytes.
    #[error("session id of {0} bytes: must be 1..=32 bytes")]
    IdLength(usize),
    /// A session-id context must be 0..=32 bytes.
    #[error("session-id context of {0} bytes: must be 0..=32 bytes")]
    ContextLength(usize),
}

/// Fixed-capacity byte string, inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Inline {
    len: u8,
    bytes: [u8; 32],
}

impl Inline {
    fn new(src: &[u8]) -> Self {
        let mut bytes = [0u8; 32];
        bytes[..src.len()].copy_from_slice(src);
        Inline {
            len: src.len() as u8,
            bytes,
        }
    }
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// A session id: 1..=32 bytes, as offered by a client or made by the server.
///
/// ```
/// use tls_session_cache::{KeyError, SessionId};
/// assert!(SessionId::new(&[1; 32]).is_ok());
/// assert_eq!(SessionId::new(&[]), Err(KeyError::IdLength(0)));
/// assert_eq!(SessionId::new(&[0; 33]), Err(KeyError::IdLength(33)));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Inline);

impl SessionId {
    /// Validates the length (1..=32 bytes).
    pub fn new(id: &[u8]) -> Result<Self, KeyError> {
        if id.is_empty() || id.len() > MAX_SESSION_ID_LEN {
            return Err(KeyError::IdLength(id.len()));
        }
        Ok(SessionId(Inline::new(id)))
    }
    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(")?;
        write_hex(f, self.as_bytes())?;
        f.write_str(")")
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, self.as_bytes())
    }
}

/// A session-id context: 0..=32 bytes chosen by the server
/// (`SSL_CTX_set_session_id_context`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionIdContext(Inline);

impl SessionIdContext {
    /// Validates the length (0..=32 bytes).
    pub fn new(ctx: &[u8]) -> Result<Self, KeyError> {
        if ctx.len() > MAX_CONTEXT_LEN {
            return Err(KeyError::ContextLength(ctx.len()));
        }
        Ok(SessionIdContext(Inline::new(ctx)))
    }
    /// The empty context.
    pub const fn empty() -> Self {
        SessionIdContext(Inline {
            len: 0,
            bytes: [0; 32],
        })
    }
    /// The context's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl Default for SessionIdContext {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for SessionIdContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionIdContext(")?;
        write_hex(f, self.as_bytes())?;
        f.write_str(")")
    }
}

impl fmt::Display for SessionIdContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, self.as_bytes())
    }
}

/// The store key: a session id inside its session-id context, for one
/// protocol (see the module note: keys are protocol-bound).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SessionKey {
    /// Which protocol's namespace the id lives in.
    pub protocol: Protocol,
    /// The session-id context the session was made in.
    pub context: SessionIdContext,
    /// The session id (or TLS 1.3 stateful ticket).
    pub id: SessionId,
}

impl SessionKey {
    /// A key from its validated parts.
    pub fn new(protocol: Protocol, context: SessionIdContext, id: SessionId) -> Self {
        SessionKey {
            protocol,
            context,
            id,
        }
    }
    /// A key from raw bytes, validating both lengths.
    ///
    /// ```
    /// use tls_session_cache::{Protocol, SessionKey};
    /// let tls12 = SessionKey::from_slices(Protocol::Tls12, b"svc", &[7; 32])?;
    /// let tls13 = SessionKey::from_slices(Protocol::Tls13, b"svc", &[7; 32])?;
    /// assert_ne!(tls12, tls13); // the same bytes never meet across protocols
    /// # Ok::<(), tls_session_cache::KeyError>(())
    /// ```
    pub fn from_slices(protocol: Protocol, context: &[u8], id: &[u8]) -> Result<Self, KeyError> {
        Ok(SessionKey {
            protocol,
            context: SessionIdContext::new(context)?,
            id: SessionId::new(id)?,
        })
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.context, self.protocol.tag(), self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_validated() {
        assert_eq!(SessionId::new(&[]).unwrap_err(), KeyError::IdLength(0));
        assert_eq!(
            SessionId::new(&[0; 33]).unwrap_err(),
            KeyError::IdLength(33)
        );
        assert_eq!(SessionId::new(&[9; 1]).unwrap().as_bytes(), &[9]);
        assert_eq!(
            SessionIdContext::new(&[0; 33]).unwrap_err(),
            KeyError::ContextLength(33)
        );
        assert_eq!(
            SessionIdContext::new(&[]).unwrap(),
            SessionIdContext::empty()
        );
    }

    #[test]
    fn contexts_separate_keys() {
        let t = Protocol::Tls12;
        let a = SessionKey::from_slices(t, b"a", &[1; 32]).unwrap();
        let b = SessionKey::from_slices(t, b"b", &[1; 32]).unwrap();
        assert_ne!(a, b);
        // Same bytes with a different split between context and id differ too.
        let c = SessionKey::from_slices(t, b"ab", &[1]).unwrap();
        let d = SessionKey::from_slices(t, b"a", &[b'b', 1]).unwrap();
        assert_ne!(c, d);
        assert_eq!(format!("{a}"), format!("61:12:{}", "01".repeat(32)));
    }

    #[test]
    fn protocols_separate_keys() {
        let a = SessionKey::from_slices(Protocol::Tls12, b"a", &[1; 32]).unwrap();
        let b = SessionKey::from_slices(Protocol::Tls13, b"a", &[1; 32]).unwrap();
        assert_ne!(a, b);
        assert_eq!(format!("{b}"), format!("61:13:{}", "01".repeat(32)));
    }
}
