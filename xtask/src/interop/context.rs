//! What scenarios share: the openssl binary, the server binary, a scratch
//! directory, and the shared in-memory server with a tally of what was done
//! on it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::sclient::{Outcome, SClient};
use super::server::Server;
use super::tally::Tally;

/// State handed to every scenario.
pub struct Context {
    /// The `openssl` binary that runs `s_client`.
    pub openssl: PathBuf,
    /// The example server binary.
    pub server_bin: PathBuf,
    /// The server sends a TLS 1.3 ticket only when its store kept the
    /// session (rustls: a refused `put` means no ticket); OpenSSL servers
    /// send one either way. Rows with a store that refuses say so.
    pub ticket_only_when_stored: bool,
    scratch: Scratch,
    shared: Option<(Server, Tally)>,
}

impl Context {
    /// A context with a fresh scratch directory.
    pub fn new(openssl: PathBuf, server_bin: PathBuf) -> std::io::Result<Context> {
        Ok(Context {
            openssl,
            server_bin,
            ticket_only_when_stored: false,
            scratch: Scratch::create()?,
            shared: None,
        })
    }

    /// A path in the scratch directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.scratch.0.join(name)
    }

    /// An s_client aimed at `addr`.
    pub fn client(&self, addr: SocketAddr) -> SClient {
        SClient::new(&self.openssl, addr)
    }

    /// Starts a server of our own with `args` (the memory store by default).
    pub fn start_server(&self, args: &[&str]) -> Result<Server, String> {
        Server::start(&self.server_bin, args).map_err(|e| e.to_string())
    }

    /// The address of the shared server (default options, in-memory store),
    /// started on first use.
    pub fn shared_addr(&mut self) -> Result<SocketAddr, String> {
        if self.shared.is_none() {
            let server = self.start_server(&[])?;
            self.shared = Some((server, Tally::default()));
        }
        self.shared
            .as_ref()
            .map(|(s, _)| s.addr())
            .ok_or_else(|| "shared server missing".into())
    }

    /// Runs `client` against the shared server and counts its handshakes.
    pub fn on_shared(&mut self, client: SClient) -> Result<Outcome, String> {
        let outcome = client.run();
        if let (Ok(o), Some((_, tally))) = (&outcome, self.shared.as_mut()) {
            tally.count(&o.handshakes);
        }
        outcome.map_err(|e| self.with_shared_log(e))
    }

    /// What was done on the shared server so far (empty if not started).
    pub fn shared_tally(&self) -> Tally {
        self.shared.as_ref().map(|(_, t)| *t).unwrap_or_default()
    }

    /// Stops the shared server, returning it if it was running.
    pub fn take_shared(&mut self) -> Option<Server> {
        self.shared.take().map(|(s, _)| s)
    }

    fn with_shared_log(&self, e: String) -> String {
        match &self.shared {
            Some((s, _)) => format!("{e}{}", s.log_excerpt()),
            None => e,
        }
    }
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn create() -> std::io::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("xtask-interop-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new(&self.0));
    }
}
