//! The blocking server of the load group: `threads` OS threads, each
//! blocked in `accept` on the same listener and serving one connection at
//! a time with the binding's synchronous callbacks (so a Redis lookup
//! holds its thread for the whole round trip). The classic pre-threaded
//! server; connections beyond `threads` wait in the listen backlog.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use openssl::ssl::SslContext;

use crate::cpu::ThreadClock;
use crate::error::BenchError;
use crate::server::{ServerCounts, accept_loop};

/// A running thread-pool server.
pub struct PoolServer {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    /// Its counters.
    pub counts: Arc<ServerCounts>,
    clocks: Vec<ThreadClock>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl PoolServer {
    /// Starts `threads` threads named `{name}-N` serving `ctx`.
    pub fn start(name: &str, ctx: SslContext, threads: usize) -> Result<PoolServer, BenchError> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(ServerCounts::default());
        let mut server = PoolServer {
            addr,
            counts: Arc::clone(&counts),
            clocks: Vec::new(),
            stop: Arc::clone(&stop),
            threads: Vec::new(),
        };
        for i in 0..threads {
            let listener = listener.try_clone()?;
            let (ctx, stop, counts) = (ctx.clone(), Arc::clone(&stop), Arc::clone(&counts));
            let thread = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || accept_loop(&listener, &ctx, &stop, &counts, "blocking server"))?;
            // Kept at once: if anything later fails, Drop stops this thread.
            let clock = ThreadClock::of(&thread);
            server.threads.push(thread);
            server.clocks.push(clock?);
        }
        Ok(server)
    }

    /// CPU time all its threads have used so far.
    pub fn cpu(&self) -> Duration {
        self.clocks.iter().map(|c| c.now()).sum()
    }
}

impl Drop for PoolServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // One connection wakes one thread blocked in accept.
        for _ in 0..self.threads.len() {
            let _ = TcpStream::connect(self.addr);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
