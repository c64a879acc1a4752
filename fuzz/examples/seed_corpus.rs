//! Writes the seed corpus of every fuzz target (`corpus/<target>/`) from
//! real handshakes and a real cache: `cargo xtask fuzz --seeds`.
//!
//! * A real `redis-server` (testkit) holds sessions stored by the OpenSSL
//!   binding's cache through three `RedisStore`s: sealed with the fixed
//!   key ring in the compact format, sealed in the previous format, and
//!   plaintext (the bare core envelope). Values are read back with `GET`.
//! * Clients — rust-openssl (TLS 1.2 and 1.3, fresh and resuming) and
//!   `openssl s_client` (likewise, through `-sess_out` / `-sess_in`) —
//!   connect through a recording proxy that keeps each ClientHello as it
//!   came off the wire; each is also written re-cut into one-byte and
//!   seven-byte records.
//! * Key files as the docs describe them (comments, rotation, CRLF).
//!
//! It replaces what the five corpus folders held (sessions and tickets are
//! random, so each run's seeds differ); file names are the content's hash.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslSession, SslSessionCacheMode, SslVerifyMode,
    SslVersion,
};
use tls_session_cache::{SessionKey, SessionStore, StoreError, StoreStats, StoredSession};
use tls_session_cache_fuzz::{PREFIX, flag, key_prefix, ring};
use tls_session_cache_openssl::SessionCache;
use tls_session_cache_redis::naming::{KeyFormat, previous_redis_key, redis_key};
use tls_session_cache_redis::{RedisStore, fuzzing};
use tls_session_cache_testkit::RedisServer;
use tls_session_cache_testkit::hello::{
    ClientHello, first_message_len, handshake_payload, records,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A store that remembers the keys put through it.
struct Recording<S> {
    inner: S,
    keys: Arc<Mutex<Vec<SessionKey>>>,
}

impl<S: SessionStore> SessionStore for Recording<S> {
    fn put(
        &self,
        key: &SessionKey,
        session: &StoredSession,
    ) -> std::result::Result<(), StoreError> {
        self.keys.lock().unwrap().push(*key);
        self.inner.put(key, session)
    }
    fn get(&self, key: &SessionKey) -> std::result::Result<Option<StoredSession>, StoreError> {
        self.inner.get(key)
    }
    fn take(&self, key: &SessionKey) -> std::result::Result<Option<StoredSession>, StoreError> {
        self.inner.take(key)
    }
    fn remove(&self, key: &SessionKey) -> std::result::Result<bool, StoreError> {
        self.inner.remove(key)
    }
    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}

/// A TLS server with the binding's cache on `store`: answers "hello\n".
fn server(store: impl SessionStore, single_use: bool) -> Result<SocketAddr> {
    let (cert, key) = tls_session_cache_openssl::self_signed_localhost()?;
    let mut b = SslContextBuilder::new(SslMethod::tls_server())?;
    b.set_certificate(&cert)?;
    b.set_private_key(&key)?;
    let cache = SessionCache::builder()
        .store(store)
        .single_use_tls13(single_use)
        .build()?;
    cache.install(&mut b)?;
    let ctx = b.build();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        let _cache = cache;
        for stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let Ok(ssl) = Ssl::new(&ctx) else { continue };
            if let Ok(mut tls) = ssl.accept(stream) {
                let _ = tls.write_all(b"hello\n");
                let mut line = [0u8; 64];
                let _ = tls.read(&mut line);
                let _ = tls.shutdown();
            }
        }
    });
    Ok(addr)
}

/// A proxy to `to` that keeps the first handshake message (the ClientHello)
/// of each connection, as the records it came in.
fn recording_proxy(to: SocketAddr, hellos: Arc<Mutex<Vec<Vec<u8>>>>) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let hellos = Arc::clone(&hellos);
            thread::spawn(move || {
                let Ok(server) = TcpStream::connect(to) else {
                    return;
                };
                let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone())
                else {
                    return;
                };
                let (mut s_read, mut c_write) = (server, client);
                thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Write);
                });
                let mut seen = Vec::new();
                let mut kept = false;
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = c_read.read(&mut buf) {
                    if !kept {
                        seen.extend_from_slice(&buf[..n]);
                        if let Some(payload) = handshake_payload_prefix(&seen)
                            && first_message_len(&payload).is_some()
                        {
                            hellos.lock().unwrap().push(seen.clone());
                            kept = true;
                        }
                    }
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    Ok(addr)
}

/// The handshake payload of the complete records at the start of `wire`.
fn handshake_payload_prefix(wire: &[u8]) -> Option<Vec<u8>> {
    let mut end = 0;
    while let Some(header) = wire.get(end..end + 5) {
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if wire.len() < end + 5 + len {
            break;
        }
        end += 5 + len;
    }
    handshake_payload(&wire[..end])
}

fn client(version: SslVersion) -> Result<(SslContext, Arc<Mutex<Vec<SslSession>>>)> {
    let mut b = SslContextBuilder::new(SslMethod::tls_client())?;
    b.set_min_proto_version(Some(version))?;
    b.set_max_proto_version(Some(version))?;
    b.set_verify(SslVerifyMode::NONE);
    b.set_session_cache_mode(SslSessionCacheMode::CLIENT | SslSessionCacheMode::NO_INTERNAL);
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    b.set_new_session_callback(move |_, s| sink.lock().unwrap().push(s));
    Ok((b.build(), got))
}

/// One rust-openssl handshake to `addr`, offering `offer`; the sessions it
/// was given.
fn connect(
    ctx: &(SslContext, Arc<Mutex<Vec<SslSession>>>),
    addr: SocketAddr,
    offer: Option<&SslSession>,
) -> Result<Vec<SslSession>> {
    ctx.1.lock().unwrap().clear();
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut ssl = Ssl::new(&ctx.0)?;
    if let Some(s) = offer {
        // SAFETY: the session comes from a context of the same method.
        unsafe { ssl.set_session(s)? };
    }
    let mut tls = ssl.connect(stream).map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(&mut tls).read_line(&mut line)?;
    tls.write_all(b"bye\n")?;
    let _ = tls.shutdown();
    Ok(std::mem::take(&mut *ctx.1.lock().unwrap()))
}

/// `openssl s_client` to `addr`: a fresh handshake saving the session, then
/// one resuming it.
fn s_client(addr: SocketAddr, version: &str, dir: &Path) -> Result<()> {
    let sess = dir.join(format!("s_client{version}.pem"));
    for resume in [false, true] {
        let mut cmd = Command::new("openssl");
        cmd.args([
            "s_client",
            "-connect",
            &addr.to_string(),
            version,
            "-ign_eof",
        ]);
        if resume {
            cmd.arg("-sess_in").arg(&sess);
        } else {
            cmd.arg("-sess_out").arg(&sess);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        // -ign_eof: the line goes out, and s_client stays until the server
        // answers it and closes (TLS 1.3 tickets arrive before).
        child.stdin.take().ok_or("stdin")?.write_all(b"bye\n")?;
        let mut out = String::new();
        child
            .stdout
            .take()
            .ok_or("stdout")?
            .read_to_string(&mut out)?;
        child.wait()?;
        if !out.contains("hello") {
            return Err(format!("s_client {version} got no greeting: {out}").into());
        }
    }
    Ok(())
}

fn write_seed(dir: &Path, bytes: &[u8]) -> Result<()> {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("{:016x}", h.finish())), bytes)?;
    Ok(())
}

fn main() -> Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    for target in [
        "envelope",
        "seal_open",
        "keyring",
        "client_hello",
        "stored_session",
    ] {
        let dir = out.join(target);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
    }
    let tmp = tempfile_dir()?;
    let redis = RedisServer::start()?;

    // Three stores on one Redis, each behind its own server.
    let sealed_keys = Arc::new(Mutex::new(Vec::new()));
    let previous_keys = Arc::new(Mutex::new(Vec::new()));
    let plain_keys = Arc::new(Mutex::new(Vec::new()));
    let sealed = RedisStore::builder(&redis.url())
        .prefix(PREFIX)
        .seal_keys(ring())
        .build()?;
    let previous = RedisStore::builder(&redis.url())
        .prefix(PREFIX)
        .seal_keys(ring())
        .write_format(KeyFormat::Previous)
        .build()?;
    let plain = RedisStore::builder(&redis.url())
        .prefix("plain")
        .insecure_plaintext()
        .build()?;
    let servers = [
        server(
            Recording {
                inner: sealed,
                keys: Arc::clone(&sealed_keys),
            },
            false,
        )?,
        server(
            Recording {
                inner: previous,
                keys: Arc::clone(&previous_keys),
            },
            false,
        )?,
        server(
            Recording {
                inner: plain,
                keys: Arc::clone(&plain_keys),
            },
            false,
        )?,
    ];

    let hellos = Arc::new(Mutex::new(Vec::new()));
    for addr in servers {
        let proxy = recording_proxy(addr, Arc::clone(&hellos))?;
        for version in [SslVersion::TLS1_2, SslVersion::TLS1_3] {
            let ctx = client(version)?;
            let sessions = connect(&ctx, proxy, None)?;
            let offer = sessions.last().ok_or("no session received")?;
            connect(&ctx, proxy, Some(offer))?;
        }
        s_client(proxy, "-tls1_2", &tmp)?;
        s_client(proxy, "-tls1_3", &tmp)?;
    }
    // Give the proxies' threads the last ClientHellos.
    thread::sleep(Duration::from_millis(200));

    let mut conn = redis.connection()?;
    let mut get = |name: &[u8]| -> Result<Option<Vec<u8>>> {
        Ok(redis::cmd("GET")
            .arg(name)
            .query::<Option<Vec<u8>>>(&mut conn)?)
    };
    let mut n_values = 0;
    // Sealed values (both formats): seal_open seeds, sealed and opened.
    for (keys, previous_format) in [(&sealed_keys, false), (&previous_keys, true)] {
        for key in keys.lock().unwrap().iter() {
            let compact = redis_key(PREFIX, key);
            let old = previous_redis_key(PREFIX, key);
            let (name, value, prev) = match (get(compact.as_bytes())?, get(old.as_bytes())?) {
                (Some(v), _) => (compact, v, false),
                (None, Some(v)) if previous_format => (old, v, true),
                _ => continue, // taken (single use) or removed
            };
            let mut flags = if key.protocol == tls_session_cache::Protocol::Tls13 {
                flag::TLS13
            } else {
                0
            };
            if prev {
                flags |= flag::PREVIOUS;
            }
            let mut seed = key_prefix(flags, key);
            seed.extend_from_slice(&value);
            write_seed(&out.join("seal_open"), &seed)?;
            let (version, plain) = fuzzing::open(&ring(), name.as_bytes(), &value)?;
            let mut pflags = flags | flag::PLAINTEXT;
            if fuzzing::is_stripped(version) {
                pflags |= flag::STRIPPED;
            }
            if version == fuzzing::SEAL_V3 || version == fuzzing::SEAL_V4 {
                pflags |= flag::DERIVED;
            }
            let mut seed = key_prefix(pflags, key);
            seed.extend_from_slice(&plain);
            write_seed(&out.join("seal_open"), &seed)?;
            n_values += 1;
        }
    }
    // Plaintext values: bare envelopes, for the envelope and stored_session targets.
    for key in plain_keys.lock().unwrap().iter() {
        let Some(envelope) = get(redis_key("plain", key).as_bytes())? else {
            continue;
        };
        write_seed(&out.join("envelope"), &envelope)?;
        let flags = if key.protocol == tls_session_cache::Protocol::Tls13 {
            flag::TLS13
        } else {
            0
        };
        let mut seed = key_prefix(flags | 16, key);
        seed.extend_from_slice(&envelope);
        write_seed(&out.join("stored_session"), &seed)?;
        let (_, stored) = tls_session_cache::decode(&envelope)?;
        let mut seed = key_prefix(flags, key);
        seed.extend_from_slice(&stored.der);
        write_seed(&out.join("stored_session"), &seed)?;
        n_values += 1;
    }

    // ClientHellos as sent, and re-cut into small records.
    let hellos = std::mem::take(&mut *hellos.lock().unwrap());
    for wire in &hellos {
        write_seed(&out.join("client_hello"), wire)?;
        let payload = handshake_payload_prefix(wire).ok_or("a recorded ClientHello")?;
        let len = first_message_len(&payload).ok_or("a whole ClientHello")?;
        for fragment in [1, 7] {
            write_seed(
                &out.join("client_hello"),
                &records(&payload[..len], fragment),
            )?;
        }
    }
    // And hand-built ones a real client never sends.
    for hello in [
        ClientHello::tls12(&[]),
        ClientHello::tls12(&[0xaa; 33]),
        ClientHello::tls13(vec![vec![0xbb; 32]; 8]),
        ClientHello::tls13(vec![vec![1], vec![0xcc; 32]]),
    ] {
        write_seed(
            &out.join("client_hello"),
            &records(&hello.encode(), usize::MAX),
        )?;
    }

    // Key files.
    let (a, b) = (
        "00".repeat(32),
        "0123456789abcdefABCDEF".repeat(3)[..64].to_owned(),
    );
    for text in [
        format!("{a}\n"),
        format!("# current\n{a}\n\n# rotated 2025-01-01\n{b}\n"),
        format!("{a}\r\n{b}\r\n"),
        format!("  {b}  \n#\n"),
    ] {
        write_seed(&out.join("keyring"), text.as_bytes())?;
    }

    eprintln!(
        "seed corpus in {}: {} stored values, {} ClientHellos recorded",
        out.display(),
        n_values,
        hellos.len()
    );
    if n_values == 0 || hellos.len() < 12 {
        return Err("too few sessions or ClientHellos recorded".into());
    }
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("seed-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
