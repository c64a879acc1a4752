//! Issue 10 across a fleet: a client that drops TCP after the handshake
//! (no request, no close_notify) leaves its session in Redis for every
//! server; a fatal alert on the connection removes it from Redis.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use openssl::ssl::{
    SslConnector, SslMethod, SslOptions, SslSession, SslStream, SslVerifyMode, SslVersion,
};
use tls_session_cache_e2e::{
    KeyFile, ServerProcess, Version, connect, counter, start_redis, stats, store_url,
};

const KEY: &str = "4f1c2a3b5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";

/// A TLS 1.2 handshake with `addr` (offering `offer`), nothing else: the
/// caller drops the stream (no close_notify) or abuses it.
fn handshake(addr: SocketAddr, offer: Option<&SslSession>) -> SslStream<TcpStream> {
    let mut builder = SslConnector::builder(SslMethod::tls_client()).unwrap();
    builder.set_verify(SslVerifyMode::NONE);
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .unwrap();
    builder
        .set_max_proto_version(Some(SslVersion::TLS1_2))
        .unwrap();
    builder.set_options(SslOptions::NO_TICKET);
    let mut config = builder.build().configure().unwrap();
    config.set_verify_hostname(false);
    let mut ssl = config.into_ssl("localhost").unwrap();
    if let Some(session) = offer {
        // SAFETY: made by a client context of the same method and settings.
        unsafe { ssl.set_session(session) }.unwrap();
    }
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    ssl.connect(tcp).unwrap()
}

/// Makes the client's close an abortive one (SO_LINGER 0: RST, not FIN),
/// as a browser abandoning a preconnect or a load balancer's health check
/// does: the server's read and write fail, it cannot send close_notify.
fn abort_on_close(tls: &SslStream<TcpStream>) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            tls.get_ref().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
}

/// The client's session, copied before the client's own OpenSSL marks it
/// not resumable (it does when the stream is dropped without shutdown).
fn session_of(tls: &SslStream<TcpStream>) -> SslSession {
    SslSession::from_der(&tls.ssl().session().unwrap().to_der().unwrap()).unwrap()
}

/// Two servers on one Redis. A serves one connection at a time
/// (`--threads 1`), so its `/stats` answer comes after the connection
/// before it has ended.
fn fleet(url: &str, keys: &KeyFile) -> (ServerProcess, ServerProcess) {
    let path = keys.path().to_str().unwrap();
    let args = ["--store", url, "--seal-key-file", path];
    let mut one = args.to_vec();
    one.extend(["--threads", "1"]);
    (ServerProcess::start(&one), ServerProcess::start(&args))
}

#[test]
fn a_preconnect_to_a_leaves_a_session_that_b_resumes() {
    let redis = start_redis();
    let keys = KeyFile::new(&[KEY]);
    let (a, b) = fleet(&store_url(&redis), &keys);
    let tls = handshake(a.addr(), None);
    assert!(!tls.ssl().session_reused());
    let session = session_of(&tls);
    abort_on_close(&tls);
    drop(tls);
    // A has seen the connection end (its one worker serves the next
    // request after it): its statistics say so.
    let sa = stats(a.addr());
    assert_eq!(counter(&sa, "kept_unclean_close"), 1, "{sa}");
    assert_eq!(counter(&sa, "removed"), 0, "{sa}");

    let on_b = connect(b.addr(), Version::Tls12, Some(&session));
    assert!(on_b.resumed, "B did not resume; B's log:\n{}", b.stderr());
    let sb = stats(b.addr());
    assert_eq!(counter(&sb, "resumed"), 1, "{sb}");
}

#[test]
fn a_fatal_alert_on_a_removes_the_session_from_redis_for_b() {
    let redis = start_redis();
    let keys = KeyFile::new(&[KEY]);
    let (a, b) = fleet(&store_url(&redis), &keys);
    let mut tls = handshake(a.addr(), None);
    let session = session_of(&tls);
    // An application-data record that cannot authenticate: A answers with a
    // fatal bad_record_mac alert and removes the session.
    let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x40];
    record.extend_from_slice(&[0x5a; 0x40]);
    tls.get_mut().write_all(&record).unwrap();
    let mut alert = Vec::new();
    let _ = tls.get_mut().read_to_end(&mut alert);
    assert!(!alert.is_empty(), "A sent no alert");
    let sa = stats(a.addr());
    assert_eq!(counter(&sa, "removed_by.fatal_alert"), 1, "{sa}");

    let on_b = connect(b.addr(), Version::Tls12, Some(&session));
    assert!(
        !on_b.resumed,
        "B resumed a session removed after a fatal alert"
    );
}
