//! [`FakeRedis`]: a small RESP server on a free loopback port that plays a
//! hostile or broken Redis, scripted per command.
//!
//! It reads commands (RESP arrays of bulk strings, as every client sends
//! them) and answers each with what the script returns for it: a well-formed
//! reply, the wrong type, a bulk string announcing a huge length, a reply
//! cut short, nothing at all, a closed connection, or a reply dripped one
//! byte at a time. It counts the connections it accepted and the bytes it
//! managed to send, so a test can tell a client that read a reply whole
//! from one that hung up early.
//!
//! ```
//! use tls_session_cache_testkit::{FakeRedis, Reply};
//! let fake = FakeRedis::start(|cmd: &[Vec<u8>]| match cmd[0].as_slice() {
//!     b"PING" => Reply::simple("PONG"),
//!     _ => Reply::Silent,
//! })?;
//! assert!(fake.url().starts_with("redis://127.0.0.1:"));
//! # Ok::<(), tls_session_cache_testkit::Error>(())
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::Error;

/// How the fake answers one command.
#[derive(Debug, Clone)]
pub enum Reply {
    /// These bytes, verbatim (a whole reply, a wrong type, a truncated one).
    Raw(Vec<u8>),
    /// These bytes, then the connection is closed (a reply cut off
    /// mid-way, when the bytes are a prefix of one).
    ThenClose(Vec<u8>),
    /// These bytes one at a time, `every` apart (a Redis that drips).
    Drip {
        /// The reply.
        bytes: Vec<u8>,
        /// The pause before each byte.
        every: Duration,
    },
    /// `header`, then `len` filler bytes as fast as the client takes them,
    /// then `\r\n` (a bulk string of `len` bytes when `header` is
    /// `$len\r\n`), or until the client hangs up.
    Flood {
        /// What comes first, e.g. `$1073741824\r\n`.
        header: Vec<u8>,
        /// Filler bytes after it.
        len: u64,
    },
    /// No answer; the connection stays open and later commands are read.
    Silent,
    /// The connection is closed at once, nothing sent.
    Close,
}

impl Reply {
    /// `+text\r\n`.
    pub fn simple(text: &str) -> Reply {
        Reply::Raw(format!("+{text}\r\n").into_bytes())
    }
    /// `$len\r\nbytes\r\n`.
    pub fn bulk(bytes: &[u8]) -> Reply {
        Reply::Raw(bulk(bytes))
    }
    /// `$-1\r\n` (nil).
    pub fn nil() -> Reply {
        Reply::Raw(b"$-1\r\n".to_vec())
    }
    /// `:n\r\n`.
    pub fn int(n: i64) -> Reply {
        Reply::Raw(format!(":{n}\r\n").into_bytes())
    }
    /// `-message\r\n`.
    pub fn error(message: &str) -> Reply {
        Reply::Raw(format!("-{message}\r\n").into_bytes())
    }
}

/// `$len\r\nbytes\r\n`: a RESP bulk string.
pub fn bulk(bytes: &[u8]) -> Vec<u8> {
    let mut v = format!("${}\r\n", bytes.len()).into_bytes();
    v.extend_from_slice(bytes);
    v.extend_from_slice(b"\r\n");
    v
}

type Script = dyn Fn(&[Vec<u8>]) -> Reply + Send + Sync;

struct Shared {
    script: Box<Script>,
    stop: AtomicBool,
    connections: AtomicU64,
    commands: AtomicU64,
    sent: AtomicU64,
}

/// A scripted RESP server on 127.0.0.1, stopped when dropped.
pub struct FakeRedis {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeRedis")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl FakeRedis {
    /// Listens on a free loopback port (ready when this returns) and
    /// answers every command with `script(command)`: the command's name
    /// (upper-cased) and arguments.
    pub fn start(
        script: impl Fn(&[Vec<u8>]) -> Reply + Send + Sync + 'static,
    ) -> Result<FakeRedis, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            script: Box::new(script),
            stop: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("fake-redis".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if s.stop.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    s.connections.fetch_add(1, Ordering::Relaxed);
                    let s = Arc::clone(&s);
                    let _ = std::thread::Builder::new()
                        .name("fake-redis-conn".into())
                        .spawn(move || serve(&s, stream));
                }
            })?;
        Ok(FakeRedis {
            port,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Commands read so far.
    pub fn commands(&self) -> u64 {
        self.shared.commands.load(Ordering::Relaxed)
    }

    /// Bytes the kernel accepted from the fake so far (what the clients
    /// read, plus what sat in socket buffers when they hung up).
    pub fn bytes_sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }
}

impl Drop for FakeRedis {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Wake the acceptor.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// Reads one RESP command (an array of bulk strings, or an inline line).
fn read_command(r: &mut BufReader<TcpStream>) -> Option<Vec<Vec<u8>>> {
    let mut line = Vec::new();
    if r.read_until(b'\n', &mut line).ok()? == 0 {
        return None;
    }
    let text = String::from_utf8_lossy(&line).trim_end().to_string();
    let Some(n) = text.strip_prefix('*') else {
        // Inline command.
        return Some(
            text.split_whitespace()
                .map(|w| w.as_bytes().to_vec())
                .collect(),
        );
    };
    let n: usize = n.parse().ok()?;
    let mut args = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        line.clear();
        r.read_until(b'\n', &mut line).ok()?;
        let len: usize = String::from_utf8_lossy(&line)
            .trim_end()
            .strip_prefix('$')?
            .parse()
            .ok()?;
        if len > 64 << 20 {
            return None;
        }
        let mut arg = vec![0u8; len + 2];
        r.read_exact(&mut arg).ok()?;
        arg.truncate(len);
        args.push(arg);
    }
    if let Some(first) = args.first_mut() {
        first.make_ascii_uppercase();
    }
    Some(args)
}

fn serve(s: &Shared, stream: TcpStream) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut input = BufReader::new(stream);
    let send = |out: &mut TcpStream, bytes: &[u8]| -> bool {
        match out.write_all(bytes) {
            Ok(()) => {
                s.sent.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    };
    while let Some(cmd) = read_command(&mut input) {
        if s.stop.load(Ordering::Acquire) || cmd.is_empty() {
            break;
        }
        s.commands.fetch_add(1, Ordering::Relaxed);
        match (s.script)(&cmd) {
            Reply::Raw(bytes) => {
                if !send(&mut out, &bytes) {
                    break;
                }
            }
            Reply::ThenClose(bytes) => {
                send(&mut out, &bytes);
                break;
            }
            Reply::Drip { bytes, every } => {
                for b in bytes {
                    std::thread::sleep(every);
                    if s.stop.load(Ordering::Acquire) || !send(&mut out, &[b]) {
                        return;
                    }
                }
            }
            Reply::Flood { header, len } => {
                if !send(&mut out, &header) {
                    break;
                }
                let chunk = vec![b'x'; 64 * 1024];
                let mut left = len;
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    if s.stop.load(Ordering::Acquire) || !send(&mut out, &chunk[..n]) {
                        return;
                    }
                    left -= n as u64;
                }
                if !send(&mut out, b"\r\n") {
                    break;
                }
            }
            Reply::Silent => {}
            Reply::Close => break,
        }
    }
    let _ = out.shutdown(Shutdown::Both);
}
