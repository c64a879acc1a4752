//! A Redis of the scenario's own plus a seal key file: what a fleet of
//! example servers shares (scenarios 6–9).

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tls_session_cache_testkit::RedisServer;

use super::context::Context;
use super::server::Server;

/// A `redis-server` on a free loopback port (killed on drop) and a seal key
/// file that every server started through it uses.
pub struct SharedStore {
    redis: RedisServer,
    key_file: PathBuf,
}

impl SharedStore {
    /// Writes a fresh seal key into the scratch directory and starts Redis.
    pub fn start(ctx: &Context) -> Result<SharedStore, String> {
        let key_file = ctx.file("seal.key");
        write_seal_key(&key_file).map_err(|e| format!("{}: {e}", key_file.display()))?;
        let redis = RedisServer::start().map_err(|e| format!("redis-server: {e}"))?;
        eprintln!("    started redis-server on {}", redis.addr());
        Ok(SharedStore { redis, key_file })
    }

    /// An example server on this Redis with this key, plus `extra` arguments.
    pub fn server(&self, ctx: &Context, extra: &[&str]) -> Result<Server, String> {
        let url = format!("redis://127.0.0.1:{}", self.redis.port());
        let key_file = self.key_file.display().to_string();
        let mut args = vec!["--store", &url, "--seal-key-file", &key_file];
        args.extend_from_slice(extra);
        // Scenarios check behaviour, not latency: a generous budget unless
        // the scenario sets its own (store-down does), so a loaded machine
        // does not turn a slow reply into a miss.
        if !extra.contains(&"--redis-timeout-ms") {
            args.extend_from_slice(&["--redis-timeout-ms", "1000"]);
        }
        ctx.start_server(&args)
    }

    /// Kills Redis (like a crash); its port stays reserved for [`Self::start_again`].
    pub fn kill(&mut self) -> Result<(), String> {
        eprintln!("    stopping redis-server on {}", self.redis.addr());
        self.redis
            .stop()
            .map_err(|e| format!("stopping redis-server: {e}"))
    }

    /// Starts Redis again on the same port (empty: persistence is off).
    pub fn start_again(&mut self) -> Result<(), String> {
        eprintln!("    starting redis-server again on {}", self.redis.addr());
        self.redis
            .restart()
            .map_err(|e| format!("restarting redis-server: {e}"))
    }
}

/// Stops `servers` (each must exit 0 on SIGTERM), then Redis.
pub fn stop_all(
    store: SharedStore,
    servers: impl IntoIterator<Item = Server>,
) -> Result<(), String> {
    let mut problems: Vec<String> = servers
        .into_iter()
        .filter_map(|s| s.stop().err().map(|e| e.to_string()))
        .collect();
    let mut redis = store.redis;
    if let Err(e) = redis.stop() {
        problems.push(format!("stopping redis-server: {e}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// One random 256-bit key as 64 hex characters, in a file only its owner can
/// read (mode 600), as `--seal-key-file` wants it.
fn write_seal_key(path: &Path) -> std::io::Result<()> {
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    // A new file, so the mode applies (an old one could be wider).
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(e);
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{hex}")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_seal_key_file_holds_one_fresh_hex_key_readable_by_its_owner_only() {
        let dir = std::env::temp_dir().join(format!("xtask-seal-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("seal.key");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();

        write_seal_key(&path).unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        write_seal_key(&path).unwrap();
        let second = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        assert_eq!(mode, 0o600);
        let key = first.strip_suffix('\n').unwrap();
        assert_eq!(key.len(), 64);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(first, second);
    }
}
