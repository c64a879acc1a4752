//! The answers of `GET /stats` (JSON, the example servers' members) and
//! `GET /metrics` (Prometheus text format) for a blocking or an async cache.

use tls_session_cache_openssl::prometheus::Exposition;
use tls_session_cache_openssl::{CacheStats, SessionCache};
use tls_session_cache_redis::local_hits_metric;
use tls_session_cache_tokio::AsyncSessionCache;

use crate::common;
use crate::stores::RedisHandle;

/// A cache whose statistics a server reports, with its Redis store if any.
#[derive(Clone)]
pub struct Report {
    cache: Cache,
    redis: Option<RedisHandle>,
}

#[derive(Clone)]
enum Cache {
    Blocking(SessionCache),
    Async(AsyncSessionCache),
}

impl Report {
    /// The statistics of a blocking cache.
    pub fn blocking(cache: SessionCache, redis: Option<RedisHandle>) -> Report {
        Report {
            cache: Cache::Blocking(cache),
            redis,
        }
    }

    /// The statistics of an async cache.
    pub fn asynchronous(cache: AsyncSessionCache, redis: Option<RedisHandle>) -> Report {
        Report {
            cache: Cache::Async(cache),
            redis,
        }
    }

    fn session_cache(&self) -> &SessionCache {
        match &self.cache {
            Cache::Blocking(c) => c,
            Cache::Async(c) => c.session_cache(),
        }
    }

    fn stats(&self) -> CacheStats {
        match &self.cache {
            Cache::Blocking(c) => c.stats(),
            Cache::Async(c) => c.stats(),
        }
    }

    /// The cache's session-id context, as the `context` label of `/metrics`.
    pub fn context_label(&self) -> String {
        String::from_utf8_lossy(self.session_cache().context().as_bytes()).into_owned()
    }

    /// `GET /stats`: `CacheStats::to_json`, then `"async":{…}` for an async
    /// cache, then `"redis":{…}` for a Redis store — the members and order
    /// of the blocking and the async example servers.
    pub fn json(&self) -> String {
        let mut extra = Vec::new();
        if let Cache::Async(c) = &self.cache {
            extra.push(("async", c.async_stats().to_json()));
        }
        if let Some(redis) = &self.redis {
            let json = match redis {
                RedisHandle::Blocking(r) => {
                    common::redis_json(r.redis_stats(), r.circuit_state(), None)
                }
                RedisHandle::Tiered(t) => common::redis_json(
                    t.remote().redis_stats(),
                    t.remote().circuit_state(),
                    Some(t.local_hits()),
                ),
                RedisHandle::Async(r) => {
                    common::redis_json(r.redis_stats(), r.circuit_state(), None)
                }
                RedisHandle::AsyncTiered(t) => common::redis_json(
                    t.remote().redis_stats(),
                    t.remote().circuit_state(),
                    Some(t.local_hits()),
                ),
            };
            extra.push(("redis", json));
        }
        self.stats().to_json_with(&extra)
    }

    /// `GET /metrics`: the same counters in the Prometheus text format,
    /// labelled with the cache's context.
    pub fn metrics(&self) -> String {
        let context = self.context_label();
        let mut e = Exposition::new();
        e.add(&context, self.stats().metrics());
        if let Cache::Async(c) = &self.cache {
            e.add(&context, c.async_stats().metrics());
        }
        match &self.redis {
            None => {}
            Some(RedisHandle::Blocking(r)) => {
                e.add(&context, r.redis_stats().metrics(r.circuit_state()));
            }
            Some(RedisHandle::Tiered(t)) => {
                let r = t.remote();
                e.add(&context, r.redis_stats().metrics(r.circuit_state()));
                e.add(&context, [local_hits_metric(t.local_hits())]);
            }
            Some(RedisHandle::Async(r)) => {
                e.add(&context, r.redis_stats().metrics(r.circuit_state()));
            }
            Some(RedisHandle::AsyncTiered(t)) => {
                let r = t.remote();
                e.add(&context, r.redis_stats().metrics(r.circuit_state()));
                e.add(&context, [local_hits_metric(t.local_hits())]);
            }
        }
        e.render()
    }
}
