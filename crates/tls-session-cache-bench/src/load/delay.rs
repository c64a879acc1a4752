//! A TCP proxy on 127.0.0.1 that delays everything the upstream (Redis)
//! sends by a fixed time: a "slow Redis", as one a network hop away or
//! busy with other clients would be.
//!
//! Per proxied connection three threads: requests are copied upstream at
//! once; replies are read as they come, stamped, and written back to the
//! client `delay` after they arrived. Replies are delayed, not serialised:
//! a pipelined (multiplexed) connection with ten requests in flight gets
//! ten replies each `delay` late, not the last one `10 × delay` late. So
//! every Redis round trip takes at least `delay`, whatever the client.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running delay proxy.
pub struct DelayProxy {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    /// Reply chunks delayed so far (a chunk may hold several replies).
    pub chunks: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DelayProxy {
    /// Starts a proxy to `upstream` that delays its replies by `delay`.
    pub fn start(upstream: SocketAddr, delay: Duration) -> io::Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let chunks = Arc::new(AtomicU64::new(0));
        let (stop2, chunks2) = (Arc::clone(&stop), Arc::clone(&chunks));
        let thread = std::thread::Builder::new()
            .name("delay-proxy".into())
            .spawn(move || {
                for client in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let outcome = client.and_then(|c| {
                        let chunks = Arc::clone(&chunks2);
                        relay(c, upstream, delay, chunks)
                    });
                    if let Err(e) = outcome {
                        log::warn!("delay proxy: {e}");
                    }
                }
            })?;
        Ok(DelayProxy {
            addr,
            chunks,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept. Relays already running end when their
        // client closes its connection.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the three threads of one proxied connection.
fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    delay: Duration,
    chunks: Arc<AtomicU64>,
) -> io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut client_in, mut server_out) = (client.try_clone()?, server.try_clone()?);
    let (mut server_in, mut client_out) = (server, client);
    std::thread::Builder::new()
        .name("delay-proxy-up".into())
        .spawn(move || {
            // Requests go upstream undelayed; at the client's EOF, pass it on.
            let _ = io::copy(&mut client_in, &mut server_out);
            let _ = server_out.shutdown(Shutdown::Write);
        })?;
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::Builder::new()
        .name("delay-proxy-read".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match server_in.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                }
            }
            // Dropping `tx` ends the writer once it has sent everything.
        })?;
    std::thread::Builder::new()
        .name("delay-proxy-write".into())
        .spawn(move || {
            for (arrived, chunk) in rx {
                let due = arrived + delay;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                chunks.fetch_add(1, Ordering::Relaxed);
                if client_out.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = client_out.shutdown(Shutdown::Write);
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback: whatever it reads, it writes back.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let mut s = s.unwrap();
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let _ = io::copy(&mut r, &mut s);
                });
            }
        });
        addr
    }

    #[test]
    fn relays_both_ways_in_order_and_passes_eof_on() {
        let proxy = DelayProxy::start(echo_server(), Duration::from_millis(1)).unwrap();
        let mut c = TcpStream::connect(proxy.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut writer = c.try_clone().unwrap();
        let data = sent.clone();
        let w = std::thread::spawn(move || {
            for part in data.chunks(1000) {
                writer.write_all(part).unwrap();
            }
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        w.join().unwrap();
        assert_eq!(got.len(), sent.len());
        assert!(got == sent, "bytes reordered or altered");
        assert!(proxy.chunks.load(Ordering::Relaxed) >= 1);
    }
}
