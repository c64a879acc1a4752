//! Internals for the fuzz targets in the repository's `fuzz/` folder only:
//! not part of the API, and may change in any release.
//!
//! [`plan_from_records`] feeds raw bytes, as a client would send them over
//! TCP, to a real OpenSSL server connection whose client-hello callback
//! reads the ClientHello exactly as the async cache's does (`read_plan`:
//! the legacy session id, the `pre_shared_key` and `supported_versions`
//! extensions) and plans the lookups. OpenSSL's record layer reassembles
//! fragmented records; the callback then answers "retry", as the cache's
//! first call does, so nothing past the ClientHello is processed.

use std::cell::RefCell;
use std::io::{self, Read, Write};

use foreign_types::ForeignTypeRef;
use once_cell::sync::Lazy;
use openssl::ssl::{
    ClientHelloResponse, Ssl, SslContext, SslContextBuilder, SslMethod, SslVersion,
};

use crate::hello::{Plan, read_plan};

thread_local! {
    static PLANNED: RefCell<Option<Plan>> = const { RefCell::new(None) };
}

fn context(max: Option<SslVersion>) -> SslContext {
    let mut b = SslContextBuilder::new(SslMethod::tls_server()).expect("an SSL_CTX");
    b.set_max_proto_version(max).expect("a protocol version");
    b.set_client_hello_callback(|ssl, _alert| {
        // SAFETY: `ssl` is live and inside its client-hello callback.
        let plan = unsafe { read_plan(ssl.as_ptr(), true) };
        PLANNED.with(|p| *p.borrow_mut() = Some(plan));
        Ok(ClientHelloResponse::RETRY)
    });
    b.build()
}

static TLS13: Lazy<SslContext> = Lazy::new(|| context(None));
static TLS12: Lazy<SslContext> = Lazy::new(|| context(Some(SslVersion::TLS1_2)));

/// The bytes a client sent, then end of file; what the server writes back
/// is dropped.
struct Wire<'a>(&'a [u8]);

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The lookups the async cache would plan for the ClientHello in `records`
/// (bytes off the wire: one or more TLS records), on a server that allows
/// TLS 1.3 or not, with single-use TLS 1.3 tickets; `None` when OpenSSL did
/// not get as far as a ClientHello it accepts to call the callback with.
pub fn plan_from_records(records: &[u8], server_allows_tls13: bool) -> Option<Plan> {
    let ctx = if server_allows_tls13 {
        &*TLS13
    } else {
        &*TLS12
    };
    PLANNED.with(|p| p.borrow_mut().take());
    let ssl = Ssl::new(ctx).expect("an SSL");
    // Fails: end of file, an alert, or the callback's retry.
    let _ = ssl.accept(Wire(records));
    PLANNED.with(|p| p.borrow_mut().take())
}
