//! Bytes per stored session **in Redis**: Redis's own `used_memory` (from
//! `INFO memory`) before and after storing N real sealed sessions through
//! `RedisStore::put`, once in the previous key format and once in the
//! compact one, each on a fresh `redis-server`.
//!
//! * The sessions are the harvested DER (TLS 1.2 and TLS 1.3), sealed with
//!   AES-256-GCM as in production, context [`CONTEXT`] (5 bytes), 32-byte
//!   ids, one hour to live (so every key has an expiry, as in production).
//! * **previous**: `RedisStoreBuilder::write_format(KeyFormat::Previous)`,
//!   which writes what servers before the compact names wrote:
//!   `tls-session:{hex ctx}:{{hex id}}`, seal version 1 over the full core
//!   envelope. That format writes only reusable TLS 1.2 sessions (a name
//!   without a protocol is never written for a session that is taken), so
//!   the TLS 1.3 row stores the TLS 1.3 DER as a reusable session under a
//!   TLS 1.2 key: name and value have exactly the lengths an older server
//!   gave a TLS 1.3 ticket (its name had no protocol either; the envelope
//!   carries the TLS 1.3 flag).
//! * **compact**: the default format, the session's own protocol.
//!
//! `used_memory` counts what jemalloc hands Redis (`zmalloc_size`, i.e.
//! size classes included), for the whole keyspace: per-key dict entries,
//! the expires dict, both hash tables' bucket arrays. The delta is taken
//! with the store's connection and the measuring connection both open
//! before and after, so client buffers cancel out.

use std::time::Instant;

use tls_session_cache::{Protocol, SessionKey, SessionStore, StoredSession};
use tls_session_cache_redis::naming::{DEFAULT_PREFIX, previous_redis_key};
use tls_session_cache_redis::{KeyFormat, KeyRing, RedisKey, RedisStore};
use tls_session_cache_testkit::RedisServer;

use crate::error::BenchError;
use crate::harvest::Harvest;
use crate::memory::id;
use crate::setup::{CONTEXT, Proto};

/// One measurement: one protocol's sessions in one key format.
#[derive(Debug, Clone)]
pub struct RedisBytes {
    /// Which harvested session was stored.
    pub proto: Proto,
    /// `previous` or `compact`.
    pub format: &'static str,
    /// Its DER size.
    pub der_len: usize,
    /// How many sessions were stored.
    pub sessions: usize,
    /// Length of one key name, bytes.
    pub key_len: usize,
    /// Length of one stored value, bytes (`STRLEN`).
    pub value_len: usize,
    /// `used_memory` after − before, per session.
    pub per_session: f64,
    /// `MEMORY USAGE` of one key (Redis's own estimate for the key alone,
    /// without its share of the hash tables).
    pub memory_usage: u64,
    /// Seconds to store them all.
    pub insert_secs: f64,
}

/// The format's name in tables and JSON.
fn format_name(format: KeyFormat) -> &'static str {
    match format {
        KeyFormat::Previous => "previous",
        _ => "compact",
    }
}

fn verification(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::Verification(format!("{what}: {e}"))
}

/// A field of `INFO` (`name:value` lines).
fn info_field(
    con: &mut redis::Connection,
    section: &str,
    name: &str,
) -> Result<String, BenchError> {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(con)
        .map_err(|e| verification("INFO", e))?;
    info.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| BenchError::Verification(format!("INFO {section} has no {name}")))
}

fn used_memory(con: &mut redis::Connection) -> Result<u64, BenchError> {
    info_field(con, "memory", "used_memory")?
        .parse()
        .map_err(|e| verification("used_memory", e))
}

/// `redis-server`'s version and allocator, for the report.
pub fn server_description() -> Result<String, BenchError> {
    let server = RedisServer::start()?;
    let mut con = server.connection()?;
    Ok(format!(
        "redis {} ({})",
        info_field(&mut con, "server", "redis_version")?,
        info_field(&mut con, "memory", "mem_allocator")?
    ))
}

/// Stores `sessions` copies of `proto`'s harvested session in `format` on
/// a fresh `redis-server` and measures what Redis spends on them.
pub fn measure(
    h: &Harvest,
    proto: Proto,
    format: KeyFormat,
    sessions: usize,
) -> Result<RedisBytes, BenchError> {
    let der = h.der(proto).clone();
    let protocol = match proto {
        Proto::Tls12 => Protocol::Tls12,
        Proto::Tls13 => Protocol::Tls13,
    };
    // The previous format holds reusable TLS 1.2-keyed sessions only (see
    // the module notes); the compact one the session's own protocol.
    let (key_protocol, single_use) = match format {
        KeyFormat::Previous => (Protocol::Tls12, false),
        _ => (protocol, protocol == Protocol::Tls13),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut session = StoredSession::new(der.clone(), now, now + 3600, protocol);
    session.single_use = single_use;
    let keys: Vec<SessionKey> = (0..sessions as u64)
        .map(|i| SessionKey::from_slices(key_protocol, CONTEXT, &id(i)))
        .collect::<Result<_, _>>()
        .map_err(|e| verification("key", e))?;

    let server = RedisServer::start()?;
    let store = RedisStore::builder(&server.url())
        .seal_keys(KeyRing::generate()?)
        .timeouts(std::time::Duration::from_secs(1))
        .write_format(format)
        .build()?;
    store.ping().map_err(|e| verification("PING", e))?;
    let mut con = server.connection()?;
    let before = used_memory(&mut con)?;
    let start = Instant::now();
    for key in &keys {
        store
            .put(key, &session)
            .map_err(|e| verification("redis put", e))?;
    }
    let insert_secs = start.elapsed().as_secs_f64();
    let after = used_memory(&mut con)?;

    let dbsize: u64 = redis::cmd("DBSIZE")
        .query(&mut con)
        .map_err(|e| verification("DBSIZE", e))?;
    if dbsize != sessions as u64 {
        return Err(BenchError::Verification(format!(
            "redis holds {dbsize} keys after {sessions} puts"
        )));
    }
    let name: RedisKey = match format {
        KeyFormat::Previous => previous_redis_key(DEFAULT_PREFIX, &keys[0]),
        _ => store.redis_key(&keys[0]),
    };
    let value_len: usize = redis::cmd("STRLEN")
        .arg(&name)
        .query(&mut con)
        .map_err(|e| verification("STRLEN", e))?;
    if value_len == 0 {
        return Err(BenchError::Verification(format!("no value under {name}")));
    }
    let memory_usage: u64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(&name)
        .arg("SAMPLES")
        .arg(0)
        .query(&mut con)
        .map_err(|e| verification("MEMORY USAGE", e))?;
    Ok(RedisBytes {
        proto,
        format: format_name(format),
        der_len: der.len(),
        sessions,
        key_len: name.len(),
        value_len,
        per_session: after.saturating_sub(before) as f64 / sessions as f64,
        memory_usage,
        insert_secs,
    })
}
