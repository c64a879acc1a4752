//! Sessions fetched for a connection *before* OpenSSL asks for them, and
//! tickets a handshake already took.
//!
//! An async server cannot let `get_session_cb` wait for a remote store: the
//! callback runs on an executor thread. Instead it looks the session up
//! while OpenSSL waits in its client-hello callback (`SSL_CLIENT_HELLO_RETRY`),
//! and parks what it found on the connection with [`park`]. When the
//! handshake is driven again and OpenSSL calls the get callback, the
//! callback answers from the parked entries and **never touches the store**
//! for that connection — an id that was not parked is a miss.
//!
//! A blocking lookup that *takes* a single-use TLS 1.3 ticket remembers it
//! on the connection too (crate-internal): after a HelloRetryRequest
//! OpenSSL parses the offered PSKs again and asks for the same ticket,
//! which the store no longer has. A remembered entry answers only its own
//! id; other ids still go to the store.
//!
//! **Both are good for one handshake only.** The info callback clears them
//! when the handshake is done ([`end_handshake`]): a later handshake on the
//! same connection (a TLS 1.2 renegotiation) must not be answered from a
//! snapshot taken at the first ClientHello — the session may have been
//! removed since. A connection with nothing parked (any connection of a
//! blocking server, and every connection once its handshake is done) is
//! looked up in the store. Single use across connections is the fetcher's
//! job: it must `take` TLS 1.3 tickets, as the get callback does.

use once_cell::sync::Lazy;
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslRef};
use tls_session_cache::{SessionId, StoredSession};

/// What was fetched for one connection's current handshake.
#[derive(Default)]
pub(crate) struct Parked {
    /// Whether the entries are the only answers (an async lookup parked
    /// them): an id not among them is a miss, and the store is not asked.
    authoritative: bool,
    /// Each id looked up, with what the store answered (`None`: a miss).
    entries: Vec<(SessionId, Option<StoredSession>)>,
}

static PARKED_INDEX: Lazy<Result<Index<Ssl, Parked>, ErrorStack>> = Lazy::new(Ssl::new_ex_index);

fn index() -> Result<Index<Ssl, Parked>, ErrorStack> {
    PARKED_INDEX.clone()
}

/// The connection's parked state, made empty if it has none.
fn parked_mut(ssl: &mut SslRef) -> Result<&mut Parked, ErrorStack> {
    let index = index()?;
    if ssl.ex_data(index).is_none() {
        // rust-openssl boxes the value; the index's free function drops it
        // (and the session bytes) when the SSL is freed.
        ssl.set_ex_data(index, Parked::default());
    }
    ssl.ex_data_mut(index).ok_or_else(ErrorStack::get)
}

/// Parks the outcome of a lookup of `id` on the connection: `Some(session)`
/// if the store had it, `None` for a miss. Until the handshake is done the
/// get callback answers this connection from what is parked, without the
/// store.
pub fn park(
    ssl: &mut SslRef,
    id: SessionId,
    session: Option<StoredSession>,
) -> Result<(), ErrorStack> {
    let parked = parked_mut(ssl)?;
    parked.authoritative = true;
    parked.entries.retain(|(k, _)| *k != id);
    parked.entries.push((id, session));
    Ok(())
}

/// Marks the connection as served from parked entries without parking any:
/// every id OpenSSL asks for in this handshake is then a miss, and the
/// store is not called. For a connection whose ClientHello offered nothing
/// worth a lookup.
pub fn park_nothing(ssl: &mut SslRef) -> Result<(), ErrorStack> {
    parked_mut(ssl)?.authoritative = true;
    Ok(())
}

/// Whether the connection's current handshake is served from parked entries.
pub fn is_parked(ssl: &SslRef) -> bool {
    index().is_ok_and(|index| ssl.ex_data(index).is_some_and(|p| p.authoritative))
}

/// Remembers a ticket this handshake took from the store, so that a second
/// ClientHello (after a HelloRetryRequest) can still resume it. Does not
/// make the connection's answers authoritative. A failure to remember (out
/// of memory) only costs the HelloRetryRequest case its resumption.
pub(crate) fn remember(ssl: &mut SslRef, id: SessionId, session: StoredSession) {
    if let Ok(parked) = parked_mut(ssl) {
        parked.entries.retain(|(k, _)| *k != id);
        parked.entries.push((id, Some(session)));
    }
}

/// Forgets what was parked or remembered: the handshake it was fetched for
/// is over. Called by the info callback when a handshake is done.
pub(crate) fn end_handshake(ssl: &mut SslRef) {
    if let Ok(index) = index()
        && let Some(parked) = ssl.ex_data_mut(index)
    {
        parked.authoritative = false;
        parked.entries.clear();
    }
}

/// What the get callback finds on the connection for `id`.
pub(crate) enum ParkedLookup {
    /// Nothing parked or remembered for it: ask the store.
    NotParked,
    /// The connection is served from parked entries; this is the answer
    /// for `id` (`None`: a miss, including an id that was not looked up).
    Parked(Option<StoredSession>),
    /// This handshake already took this ticket from the store.
    Remembered(StoredSession),
}

/// The answer for `id` from the connection, if it has one.
pub(crate) fn parked_lookup(ssl: &SslRef, id: &[u8]) -> ParkedLookup {
    let Ok(index) = index() else {
        return ParkedLookup::NotParked;
    };
    let Some(parked) = ssl.ex_data(index) else {
        return ParkedLookup::NotParked;
    };
    let found = parked.entries.iter().find(|(k, _)| k.as_bytes() == id);
    match found {
        _ if parked.authoritative => ParkedLookup::Parked(found.and_then(|(_, s)| s.clone())),
        Some((_, Some(session))) => ParkedLookup::Remembered(session.clone()),
        _ => ParkedLookup::NotParked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ssl::{SslContext, SslMethod};
    use tls_session_cache::Protocol;

    #[test]
    fn parked_entries_answer_and_unknown_ids_miss() {
        let ctx = SslContext::builder(SslMethod::tls_server())
            .unwrap()
            .build();
        let mut ssl = Ssl::new(&ctx).unwrap();
        assert!(!is_parked(&ssl));
        assert!(matches!(
            parked_lookup(&ssl, &[1; 32]),
            ParkedLookup::NotParked
        ));
        let s = StoredSession::new(vec![1, 2, 3], 1, 2, Protocol::Tls13);
        park(&mut ssl, SessionId::new(&[1; 32]).unwrap(), Some(s.clone())).unwrap();
        park(&mut ssl, SessionId::new(&[2; 32]).unwrap(), None).unwrap();
        assert!(is_parked(&ssl));
        assert!(matches!(parked_lookup(&ssl, &[1; 32]), ParkedLookup::Parked(Some(x)) if x == s));
        assert!(matches!(
            parked_lookup(&ssl, &[2; 32]),
            ParkedLookup::Parked(None)
        ));
        assert!(matches!(
            parked_lookup(&ssl, &[3; 32]),
            ParkedLookup::Parked(None)
        ));
        let mut other = Ssl::new(&ctx).unwrap();
        park_nothing(&mut other).unwrap();
        assert!(matches!(
            parked_lookup(&other, &[1; 32]),
            ParkedLookup::Parked(None)
        ));
        // Good for one handshake: once it is done, the store is asked again.
        end_handshake(&mut ssl);
        assert!(!is_parked(&ssl));
        assert!(matches!(
            parked_lookup(&ssl, &[1; 32]),
            ParkedLookup::NotParked
        ));
    }

    #[test]
    fn remembered_tickets_answer_their_own_id_only() {
        let ctx = SslContext::builder(SslMethod::tls_server())
            .unwrap()
            .build();
        let mut ssl = Ssl::new(&ctx).unwrap();
        let s = StoredSession::new(vec![1, 2, 3], 1, 2, Protocol::Tls13);
        remember(&mut ssl, SessionId::new(&[1; 32]).unwrap(), s.clone());
        assert!(!is_parked(&ssl), "remembering is not parking");
        assert!(matches!(parked_lookup(&ssl, &[1; 32]), ParkedLookup::Remembered(x) if x == s));
        assert!(matches!(
            parked_lookup(&ssl, &[2; 32]),
            ParkedLookup::NotParked
        ));
        end_handshake(&mut ssl);
        assert!(matches!(
            parked_lookup(&ssl, &[1; 32]),
            ParkedLookup::NotParked
        ));
    }
}
