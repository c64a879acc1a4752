//! The store `--store` names, for a blocking cache (actix-web) or an async
//! one (axum, hyper).

use std::sync::Arc;

use tls_session_cache::{MemoryStore, SessionStore};
use tls_session_cache_redis::{AsyncRedisStore, AsyncTieredStore, RedisStore, TieredStore};
use tls_session_cache_tokio::AsyncSessionStore;

use crate::common::{self, Args};

/// The warning logged when a Redis store has no `--seal-key-file`.
const EPHEMERAL: &str = "no --seal-key-file: sealing sessions under an ephemeral key made now; \
                         other servers cannot open this server's sessions";

/// A Redis store kept beside the cache, for the counters only its own type
/// knows.
#[derive(Clone)]
pub enum RedisHandle {
    /// A blocking Redis store (standalone or Cluster).
    Blocking(Arc<RedisStore>),
    /// A tiered store (local memory in front of a blocking Redis store).
    Tiered(Arc<TieredStore>),
    /// The async Redis store (standalone, Cluster or Sentinel).
    Async(Arc<AsyncRedisStore>),
    /// An async tiered store (local memory in front of the async Redis
    /// store).
    AsyncTiered(Arc<AsyncTieredStore>),
}

/// Notes on stderr for flags that the chosen store does not use, as the
/// example servers print them.
fn memory_notes(program: &str, args: &Args, has_keys: bool) {
    if has_keys {
        eprintln!(
            "{program}: note: --seal-key-file is checked but not used with --store memory \
             (sessions never leave this process)"
        );
    }
    if args.redis_timeout.is_some() {
        eprintln!("{program}: note: --redis-timeout-ms is not used with --store memory");
    }
}

/// Whether `s` is a Redis store URL (standalone, Cluster or Sentinel).
fn is_redis(s: &str) -> bool {
    [
        "redis://",
        "rediss://",
        "redis+cluster://",
        "rediss+cluster://",
        "redis+sentinel://",
        "rediss+sentinel://",
    ]
    .iter()
    .any(|scheme| s.starts_with(scheme))
}

/// A blocking store from `--store memory|redis://…|rediss://…|redis+cluster://…|redis+sentinel://…|tiered+redis://…`.
pub fn open_blocking(
    program: &str,
    args: &Args,
) -> Result<(Box<dyn SessionStore>, Option<RedisHandle>), String> {
    let keys = common::seal_keys(args)?;
    let spec = args.store.as_str();
    let redis = |url: &str, keys| -> Result<RedisStore, String> {
        common::redis_builder(url, keys, args, EPHEMERAL)?
            .build()
            .map_err(|e| format!("--store {url}: {e}"))
    };
    let opened = match spec {
        "memory" => {
            memory_notes(program, args, keys.is_some());
            return Ok((Box::new(MemoryStore::default()), None));
        }
        s if is_redis(s) => {
            let store = Arc::new(redis(s, keys)?);
            (
                Box::new(Arc::clone(&store)) as Box<dyn SessionStore>,
                RedisHandle::Blocking(store),
            )
        }
        s if s.strip_prefix("tiered+").is_some_and(is_redis) => {
            let remote = redis(&s["tiered+".len()..], keys)?;
            let store = Arc::new(TieredStore::new(MemoryStore::default(), remote));
            (
                Box::new(Arc::clone(&store)) as Box<dyn SessionStore>,
                RedisHandle::Tiered(store),
            )
        }
        s => {
            return Err(format!(
                "--store {s}: expected memory, redis://HOST:PORT, \
                 rediss://HOST:PORT, redis+cluster://HOST:PORT,HOST:PORT,…, \
                 redis+sentinel://HOST:PORT,…/NAME or tiered+redis://HOST:PORT"
            ));
        }
    };
    let remote = match &opened.1 {
        RedisHandle::Blocking(r) => r.as_ref(),
        RedisHandle::Tiered(t) => t.remote(),
        RedisHandle::Async(_) | RedisHandle::AsyncTiered(_) => {
            return Ok((opened.0, Some(opened.1)));
        }
    };
    match remote.ping() {
        Ok(()) => log::info!("session store {spec}: connected"),
        Err(e) => log::warn!(
            "session store {spec} does not answer ({e}); starting anyway: handshakes are full \
             until it answers"
        ),
    }
    Ok((opened.0, Some(opened.1)))
}

/// An async store from `--store memory|redis://…|rediss://…|redis+cluster://…|redis+sentinel://…|tiered+redis://…`
/// (the spellings of the blocking stores).
pub fn open_async(
    program: &str,
    args: &Args,
) -> Result<(Arc<dyn AsyncSessionStore>, Option<RedisHandle>), String> {
    let keys = common::seal_keys(args)?;
    let redis = |url: &str, keys| -> Result<AsyncRedisStore, String> {
        common::redis_builder(url, keys, args, EPHEMERAL)?
            .build_async()
            .map_err(|e| format!("--store {url}: {e}"))
    };
    match args.store.as_str() {
        "memory" => {
            memory_notes(program, args, keys.is_some());
            Ok((Arc::new(MemoryStore::default()), None))
        }
        s if is_redis(s) => {
            let store = Arc::new(redis(s, keys)?);
            Ok((
                Arc::clone(&store) as Arc<dyn AsyncSessionStore>,
                Some(RedisHandle::Async(store)),
            ))
        }
        s if s.strip_prefix("tiered+").is_some_and(is_redis) => {
            let remote = redis(&s["tiered+".len()..], keys)?;
            let store = Arc::new(AsyncTieredStore::new(MemoryStore::default(), remote));
            Ok((
                Arc::clone(&store) as Arc<dyn AsyncSessionStore>,
                Some(RedisHandle::AsyncTiered(store)),
            ))
        }
        s => Err(format!(
            "--store {s}: expected memory, redis://HOST:PORT, \
             rediss://HOST:PORT, redis+cluster://HOST:PORT,HOST:PORT,…, \
             redis+sentinel://HOST:PORT,…/NAME or tiered+redis://HOST:PORT"
        )),
    }
}
