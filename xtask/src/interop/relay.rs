//! A one-connection loopback TCP relay that can drop the server's side
//! abortively: a reset (RST), as a client closing with `SO_LINGER` 0 sends
//! (s_time does), or the kernel of a killed client that had unread data.
//! s_client itself cannot close that way, so the preconnect scenario puts
//! this between it and the server.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often the relay's threads look at the stop flag.
const POLL: Duration = Duration::from_millis(10);
/// How long the relay waits for its one client.
const ACCEPT_DEADLINE: Duration = Duration::from_secs(10);

/// The client's and the server's side of the relayed connection.
type Sides = (TcpStream, TcpStream);

/// A relay from a loopback port of its own to `server`, for one connection.
pub struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<io::Result<Sides>>>,
}

impl Relay {
    /// Listens on `127.0.0.1:0`; the first connection is joined to a new
    /// connection to `server` and bytes are copied both ways.
    pub fn start(server: SocketAddr) -> io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let worker = thread::spawn(move || relay_one(&listener, server, &flag));
        Ok(Relay {
            addr,
            stop,
            worker: Some(worker),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops copying and closes the server's side with a reset (no FIN, no
    /// close_notify: nothing more the client sends reaches the server), then
    /// the client's side.
    pub fn reset(mut self) -> Result<(), String> {
        let (client, server) = self.finish()?;
        set_linger_zero(&server).map_err(|e| format!("relay: SO_LINGER 0: {e}"))?;
        drop(server);
        drop(client);
        Ok(())
    }

    fn finish(&mut self) -> Result<Sides, String> {
        self.stop.store(true, Ordering::SeqCst);
        let worker = self.worker.take().ok_or("relay already stopped")?;
        match worker.join() {
            Ok(Ok(sides)) => Ok(sides),
            Ok(Err(e)) => Err(format!("relay: {e}")),
            Err(_) => Err("relay thread panicked".into()),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Accepts one client, connects to `server`, copies both ways until `stop`
/// and returns both sides (the copying threads have ended by then, so these
/// are the last handles: dropping them closes the sockets).
fn relay_one(
    listener: &TcpListener,
    server: SocketAddr,
    stop: &Arc<AtomicBool>,
) -> io::Result<Sides> {
    let client = accept_until(listener, stop)?;
    let upstream = TcpStream::connect(server)?;
    for side in [&client, &upstream] {
        side.set_nodelay(true)?;
        side.set_read_timeout(Some(POLL))?;
    }
    let copies = [
        copy_until(client.try_clone()?, upstream.try_clone()?, Arc::clone(stop)),
        copy_until(upstream.try_clone()?, client.try_clone()?, Arc::clone(stop)),
    ];
    for copy in copies {
        let _ = copy.join();
    }
    Ok((client, upstream))
}

fn accept_until(listener: &TcpListener, stop: &AtomicBool) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + ACCEPT_DEADLINE;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no client connected to the relay",
                    ));
                }
                thread::sleep(POLL);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Copies `from` to `to` until `stop` is set, `from` ends (passed on as a
/// FIN) or either side fails.
fn copy_until(mut from: TcpStream, mut to: TcpStream, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while !stop.load(Ordering::SeqCst) {
            match from.read(&mut buf) {
                Ok(0) => {
                    let _ = to.shutdown(Shutdown::Write);
                    return;
                }
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return,
            }
        }
    })
}

/// `SO_LINGER` on with a zero timeout: closing the socket sends a reset.
fn set_linger_zero(stream: &TcpStream) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is open (we hold `stream`); the option value is a valid
    // `linger` of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_both_ways_and_resets_the_server_side() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let relay = Relay::start(server.local_addr().unwrap()).unwrap();
        let mut client = TcpStream::connect(relay.addr()).unwrap();
        let (mut upstream, _) = server.accept().unwrap();

        client.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        upstream.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        upstream.write_all(b"world").unwrap();
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"world");

        relay.reset().unwrap();
        upstream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let err = upstream.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    }
}
