//! The TLS side of the examples: ALPN and what a connection's handshake did.

use openssl::ssl::{AlpnError, SslAcceptorBuilder, SslRef, select_next_proto};

/// The protocols offered by [`set_alpn`], in the server's order of
/// preference, in ALPN wire form.
const H2_THEN_HTTP11: &[u8] = b"\x02h2\x08http/1.1";

/// Makes the server choose `h2` when the client offers it, else
/// `http/1.1`; a client offering neither gets no ALPN (and speaks HTTP/1.1).
pub fn set_alpn(acceptor: &mut SslAcceptorBuilder) {
    acceptor.set_alpn_select_callback(|_, client| {
        select_next_proto(H2_THEN_HTTP11, client).ok_or(AlpnError::NOACK)
    });
}

/// What the handshake of one connection did, as `GET /` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Whether it resumed a session.
    pub resumed: bool,
    /// `TLSv1.2`, `TLSv1.3`.
    pub protocol: &'static str,
    /// The session id (TLS 1.3: of the session the handshake established
    /// or resumed), in hex.
    pub session_id: String,
}

impl Handshake {
    /// The handshake of `ssl`, once it is done.
    pub fn of(ssl: &SslRef) -> Handshake {
        Handshake {
            resumed: ssl.session_reused(),
            protocol: ssl.version_str(),
            session_id: ssl
                .session()
                .map(|s| s.id().iter().map(|b| format!("{b:02x}")).collect())
                .unwrap_or_default(),
        }
    }

    /// `{"resumed":bool,"protocol":"TLSv1.3","session_id":"hex"}`, the
    /// example servers' answer to `GET /`.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"resumed\":{},\"protocol\":\"{}\",\"session_id\":\"{}\"}}",
            self.resumed, self.protocol, self.session_id
        )
    }
}
