//! One blocking connection to a Redis server (TCP, a Unix socket, or TLS
//! on rust-openssl), read under the call's deadline and a byte budget.
//!
//! **Why not redis-rs's `Connection`.** Its reads wait up to the socket's
//! read timeout *each*, so a Redis that drips one byte every 30 ms held a
//! 50 ms lookup for 600 ms (issue 15); and its parser reads a bulk string
//! of whatever length the reply announces, so a 64 MiB value was read
//! whole (and the connection kept the 64 MiB buffer) before the store could
//! see its size. Here commands and the reply parser are still redis-rs's
//! (`Wire` implements its `ConnectionLike`), but every read goes through a
//! guard that
//!
//! * refuses to start a read once the call's deadline has passed, and
//!   shortens the socket's read timeout to what is left of it — one budget
//!   per call, however the peer paces its bytes;
//! * stops reading a reply after `max_reply` bytes ([`REPLY_TOO_LARGE`]):
//!   the call fails, the connection (and whatever its parser buffered) is
//!   dropped, never pooled. No allocation is sized by a length Redis sends
//!   beyond what was read: redis-rs's parser grows its buffer with the
//!   bytes that arrive, and presizes arrays to at most 4096 elements.
//!
//! Why a guard on the bytes rather than bounded commands (`STRLEN` then
//! `GETRANGE 0 N`): `take` must stay one atomic `GETDEL` (single use across
//! the fleet), which has no bounded form; `STRLEN` first would add a round
//! trip to every lookup and still race with a writer; a Lua script would
//! need `EVAL` permission in every ACL. Counting bytes costs nothing
//! measurable (docs/performance.md) and covers every command and reply,
//! `CLUSTER SLOTS` and Sentinel's included (with their own budgets).
//!
//! Connection set-up is bounded by the same deadline: the name is resolved
//! on a helper thread the caller waits for no longer than the budget (at
//! most [`MAX_RESOLVERS`] such threads at once; a resolver stuck beyond
//! that fails further connects at once rather than piling up threads), each
//! address is tried with what is left of the budget, then TLS, `AUTH`
//! (or `HELLO 3 AUTH` for RESP3) and `SELECT`, each under the deadline.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use openssl::ssl::{HandshakeError, SslStream};
use redis::{ConnectionLike, ErrorKind, Parser, RedisConnectionInfo, RedisError, Value};

use crate::deadline::{deadline_passed, remaining};
use crate::tls::{Tls, handshake_failure};

/// Start of the message of the error a call fails with when a reply is
/// larger than its byte budget (kind `Io`: the connection is dropped and
/// the failure counts towards the breaker).
pub(crate) const REPLY_TOO_LARGE: &str = "Redis reply larger than";

/// Most name resolutions running at once (each on its own thread).
pub(crate) const MAX_RESOLVERS: usize = 4;

static RESOLVING: AtomicUsize = AtomicUsize::new(0);

/// Whether `e` is a reply refused for its size.
pub(crate) fn is_reply_too_large(e: &RedisError) -> bool {
    e.is_io_error() && e.to_string().contains(REPLY_TOO_LARGE)
}

/// The socket under a connection.
enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixStream),
    Tls(Box<SslStream<TcpStream>>),
}

impl Stream {
    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(Some(t)),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_read_timeout(Some(t)),
            Stream::Tls(s) => s.get_ref().set_read_timeout(Some(t)),
        }
    }

    fn set_write_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(Some(t)),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_write_timeout(Some(t)),
            Stream::Tls(s) => s.get_ref().set_write_timeout(Some(t)),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(bytes).and_then(|()| s.flush()),
            #[cfg(unix)]
            Stream::Unix(s) => s.write_all(bytes).and_then(|()| s.flush()),
            Stream::Tls(s) => s.write_all(bytes).and_then(|()| s.flush()),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

/// Slack a socket timeout may have over what is left of the budget before
/// it is shortened (one `setsockopt`): a blocking read or write then ends
/// at most this long after the deadline, and the next one is refused.
const TIMEOUT_SLACK: Duration = Duration::from_millis(2);

/// The socket timeout to set for an operation with `left` of the budget,
/// when the one set now (`current`) does not fit: longer than `left` by
/// more than [`TIMEOUT_SLACK`], or shorter than half of it (a previous
/// call shortened it). `None`: keep it, no system call.
fn refit(current: Duration, left: Duration) -> Option<Duration> {
    (current > left + TIMEOUT_SLACK || current < left / 2).then_some(left)
}

/// The reader the parser sees: the deadline and the byte budget.
struct Guard<'a> {
    stream: &'a mut Stream,
    /// The socket's read timeout now.
    read_set: &'a mut Duration,
    deadline: Instant,
    /// Bytes this reply may still take.
    left: usize,
    cap: usize,
}

impl Read for Guard<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{REPLY_TOO_LARGE} {} bytes: refused before reading it whole",
                    self.cap
                ),
            ));
        }
        let time = remaining(self.deadline).map_err(|_| {
            io::Error::new(io::ErrorKind::TimedOut, "the call's time budget ran out")
        })?;
        if let Some(t) = refit(*self.read_set, time) {
            self.stream.set_read_timeout(t)?;
            *self.read_set = t;
        }
        let n = buf.len().min(self.left);
        let got = self.stream.read(&mut buf[..n])?;
        self.left -= got;
        Ok(got)
    }
}

/// A blocking connection to one Redis server.
pub(crate) struct Wire {
    stream: Stream,
    parser: Parser,
    db: i64,
    open: bool,
    deadline: Instant,
    max_reply: usize,
    /// The socket's read and write timeouts now.
    read_set: Duration,
    write_set: Duration,
}

/// Where a connection goes.
pub(crate) enum Address<'a> {
    Tcp(&'a str, u16),
    #[cfg(unix)]
    Unix(&'a std::path::Path),
}

/// The addresses of `host`, within `deadline`: an IP address at once, a
/// name on a helper thread the caller stops waiting for at the deadline.
pub(crate) fn resolve(host: &str, port: u16, deadline: Instant) -> io::Result<Vec<SocketAddr>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let timed_out = || {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("resolving {host} took longer than the call's budget"),
        )
    };
    let wait = remaining(deadline).map_err(|_| timed_out())?;
    if RESOLVING.fetch_add(1, Ordering::AcqRel) >= MAX_RESOLVERS {
        RESOLVING.fetch_sub(1, Ordering::AcqRel);
        return Err(timed_out());
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let name = host.to_string();
    let spawned = std::thread::Builder::new()
        .name("redis-resolve".into())
        .spawn(move || {
            let addrs = (name.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>());
            RESOLVING.fetch_sub(1, Ordering::AcqRel);
            let _ = tx.send(addrs);
        });
    if let Err(e) = spawned {
        RESOLVING.fetch_sub(1, Ordering::AcqRel);
        return Err(e);
    }
    match rx.recv_timeout(wait) {
        Ok(result) => result,
        Err(_) => Err(timed_out()),
    }
}

/// TCP to the first address of `host` that answers, within `deadline`.
pub(crate) fn connect_tcp(
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<TcpStream, RedisError> {
    let mut last = None;
    for addr in resolve(host, port, deadline)? {
        match TcpStream::connect_timeout(&addr, remaining(deadline)?) {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => e.into(),
        None => RedisError::from((
            ErrorKind::InvalidClientConfig,
            "could not resolve to any addresses",
        )),
    })
}

impl Wire {
    /// Connects to `addr` (TLS with `tls`), then `AUTH`/`HELLO` and
    /// `SELECT`, all before `deadline`.
    pub(crate) fn connect(
        addr: Address<'_>,
        tls: Option<&Tls>,
        settings: &RedisConnectionInfo,
        deadline: Instant,
        max_reply: usize,
    ) -> Result<Wire, RedisError> {
        let stream = match addr {
            #[cfg(unix)]
            Address::Unix(path) => Stream::Unix(std::os::unix::net::UnixStream::connect(path)?),
            Address::Tcp(host, port) => {
                let tcp = connect_tcp(host, port, deadline)?;
                match tls {
                    None => Stream::Tcp(tcp),
                    Some(tls) => {
                        let left = remaining(deadline)?;
                        tcp.set_read_timeout(Some(left))?;
                        tcp.set_write_timeout(Some(left))?;
                        // The handshake's waits; `Wire` takes over after.
                        match tls.ssl(host)?.connect(tcp) {
                            Ok(s) => Stream::Tls(Box::new(s)),
                            Err(HandshakeError::SetupFailure(e)) => {
                                return Err(RedisError::from(io::Error::other(e)));
                            }
                            Err(HandshakeError::Failure(mid) | HandshakeError::WouldBlock(mid)) => {
                                let verify = Some(mid.ssl().verify_result());
                                return Err(handshake_failure(
                                    &format!("{host}:{port}"),
                                    mid.error(),
                                    verify,
                                ));
                            }
                        }
                    }
                }
            }
        };
        let mut con = Wire {
            stream,
            parser: Parser::new(),
            db: settings.db(),
            open: true,
            deadline,
            max_reply,
            // Unknown until set: the first read and write set them.
            read_set: Duration::MAX,
            write_set: Duration::MAX,
        };
        con.setup(settings)?;
        Ok(con)
    }

    /// `AUTH` (or `HELLO 3 AUTH`) and `SELECT`, as redis-rs does for its
    /// own connections, under the connection's deadline.
    fn setup(&mut self, settings: &RedisConnectionInfo) -> Result<(), RedisError> {
        let resp3 = settings.protocol().supports_resp3();
        if resp3 || settings.password().is_some() {
            let mut hello = if resp3 {
                let mut c = redis::cmd("HELLO");
                c.arg(3);
                if settings.password().is_some() {
                    c.arg("AUTH");
                    c.arg(settings.username().unwrap_or("default"));
                }
                c
            } else {
                let mut c = redis::cmd("AUTH");
                if let Some(user) = settings.username() {
                    c.arg(user);
                }
                c
            };
            if let Some(password) = settings.password() {
                hello.arg(password);
            }
            match hello.query::<Value>(self) {
                Ok(_) => {}
                Err(e) if e.is_io_error() || e.is_timeout() => return Err(e),
                Err(e) if settings.password().is_some() => {
                    return Err(RedisError::from((
                        ErrorKind::AuthenticationFailed,
                        "Password authentication failed",
                        e.code().unwrap_or("").to_string(),
                    )));
                }
                Err(e) => return Err(e),
            }
        }
        if settings.db() != 0 {
            redis::cmd("SELECT").arg(settings.db()).query::<()>(self)?;
        }
        Ok(())
    }

    /// The deadline of the call now using the connection, and the byte
    /// budget of each of its replies.
    pub(crate) fn arm(&mut self, deadline: Instant, max_reply: usize) {
        self.deadline = deadline;
        self.max_reply = max_reply;
    }

    fn read_value(&mut self) -> Result<Value, RedisError> {
        let mut guard = Guard {
            stream: &mut self.stream,
            read_set: &mut self.read_set,
            deadline: self.deadline,
            left: self.max_reply,
            cap: self.max_reply,
        };
        loop {
            match self.parser.parse_value(&mut guard) {
                // RESP3 pushes are not replies.
                Ok(Value::Push { .. }) => continue,
                Ok(v) => return Ok(v),
                Err(e) => {
                    self.open = false;
                    return Err(e);
                }
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), RedisError> {
        let time = match remaining(self.deadline) {
            Ok(t) => t,
            Err(_) => return Err(deadline_passed()),
        };
        let mut sent = Ok(());
        if let Some(t) = refit(self.write_set, time) {
            sent = self.stream.set_write_timeout(t);
            self.write_set = t;
        }
        let sent = sent.and_then(|()| self.stream.write_all(bytes));
        if let Err(e) = sent {
            self.open = false;
            return Err(e.into());
        }
        Ok(())
    }
}

impl ConnectionLike for Wire {
    fn req_packed_command(&mut self, cmd: &[u8]) -> Result<Value, RedisError> {
        self.send(cmd)?;
        self.read_value()
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>, RedisError> {
        self.send(cmd)?;
        let mut out = Vec::with_capacity(count.min(64));
        for i in 0..offset + count {
            let v = self.read_value()?;
            if i >= offset {
                out.push(v);
            }
        }
        Ok(out)
    }

    fn get_db(&self) -> i64 {
        self.db
    }

    fn check_connection(&mut self) -> bool {
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_reset_only_when_they_do_not_fit() {
        let ms = Duration::from_millis;
        // Unknown (MAX), or longer than what is left beyond the slack.
        assert_eq!(refit(Duration::MAX, ms(50)), Some(ms(50)));
        assert_eq!(refit(ms(50), ms(40)), Some(ms(40)));
        // Within the slack: no system call.
        assert_eq!(refit(ms(50), ms(49)), None);
        assert_eq!(refit(ms(40), ms(50)), None);
        // Shortened by an earlier call to well under what is left: restored.
        assert_eq!(refit(ms(3), ms(50)), Some(ms(50)));
    }
}
