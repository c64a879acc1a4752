//! Sessions fetched for a connection *before* OpenSSL asks for them.
//!
//! An async server cannot let `get_session_cb` wait for a remote store: the
//! callback runs on an executor thread. Instead it looks the session up
//! while OpenSSL waits in its client-hello callback (`SSL_CLIENT_HELLO_RETRY`),
//! and parks what it found on the connection with [`park`]. When the
//! handshake is driven again and OpenSSL calls the get callback, the
//! callback answers from the parked entries and **never touches the store**
//! for that connection — an id that was not parked is a miss.
//!
//! A connection with nothing parked (any connection of a blocking server)
//! is looked up in the store as before.
//!
//! Parked entries stay until the connection is freed, so that OpenSSL may
//! ask twice for the same id in one handshake (a TLS 1.3 HelloRetryRequest
//! makes it parse the offered PSKs again). Single use across connections
//! is the fetcher's job: it must `take` TLS 1.3 tickets, as the get callback
//! does.

use once_cell::sync::Lazy;
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslRef};
use tls_session_cache::{SessionId, StoredSession};

/// What was fetched for one connection.
#[derive(Default)]
pub(crate) struct Parked {
    /// Each id looked up, with what the store answered (`None`: a miss).
    entries: Vec<(SessionId, Option<StoredSession>)>,
}

static PARKED_INDEX: Lazy<Result<Index<Ssl, Parked>, ErrorStack>> = Lazy::new(Ssl::new_ex_index);

fn index() -> Result<Index<Ssl, Parked>, ErrorStack> {
    PARKED_INDEX.clone()
}

/// Parks the outcome of a lookup of `id` on the connection: `Some(session)`
/// if the store had it, `None` for a miss. From now on the get callback
/// answers this connection from what is parked, without the store.
pub fn park(
    ssl: &mut SslRef,
    id: SessionId,
    session: Option<StoredSession>,
) -> Result<(), ErrorStack> {
    let index = index()?;
    if ssl.ex_data(index).is_none() {
        // rust-openssl boxes the value; the index's free function drops it
        // (and the session bytes) when the SSL is freed.
        ssl.set_ex_data(index, Parked::default());
    }
    if let Some(parked) = ssl.ex_data_mut(index) {
        parked.entries.retain(|(k, _)| *k != id);
        parked.entries.push((id, session));
    }
    Ok(())
}

/// Marks the connection as served from parked entries without parking any:
/// every id OpenSSL asks for is then a miss, and the store is not called.
/// For a connection whose ClientHello offered nothing worth a lookup.
pub fn park_nothing(ssl: &mut SslRef) -> Result<(), ErrorStack> {
    let index = index()?;
    if ssl.ex_data(index).is_none() {
        ssl.set_ex_data(index, Parked::default());
    }
    Ok(())
}

/// Whether the connection is served from parked entries.
pub fn is_parked(ssl: &SslRef) -> bool {
    index().is_ok_and(|index| ssl.ex_data(index).is_some())
}

/// What the get callback finds parked for `id`.
pub(crate) enum ParkedLookup {
    /// Nothing is parked on this connection: ask the store.
    NotParked,
    /// The connection is served from parked entries; this is the answer
    /// for `id` (`None`: a miss, including an id that was not looked up).
    Answer(Option<StoredSession>),
}

/// The parked answer for `id`, if the connection has parked entries.
pub(crate) fn parked_lookup(ssl: &SslRef, id: &[u8]) -> ParkedLookup {
    let Ok(index) = index() else {
        return ParkedLookup::NotParked;
    };
    match ssl.ex_data(index) {
        None => ParkedLookup::NotParked,
        Some(parked) => ParkedLookup::Answer(
            parked
                .entries
                .iter()
                .find(|(k, _)| k.as_bytes() == id)
                .and_then(|(_, s)| s.clone()),
        ),
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
        assert!(matches!(parked_lookup(&ssl, &[1; 32]), ParkedLookup::Answer(Some(x)) if x == s));
        assert!(matches!(
            parked_lookup(&ssl, &[2; 32]),
            ParkedLookup::Answer(None)
        ));
        assert!(matches!(
            parked_lookup(&ssl, &[3; 32]),
            ParkedLookup::Answer(None)
        ));
        let mut other = Ssl::new(&ctx).unwrap();
        park_nothing(&mut other).unwrap();
        assert!(matches!(
            parked_lookup(&other, &[1; 32]),
            ParkedLookup::Answer(None)
        ));
    }
}
