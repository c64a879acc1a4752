//! Lookup latency of the blocking and the async store on a standalone
//! Redis and on a 3-master Cluster (both started here by the test kit, on
//! loopback): `GET` hits of 1000 sealed 200-byte sessions, 20 000 one after
//! the other, then (async) 20 000 by 64 tasks on a 2-worker runtime.
//!
//! ```text
//! cargo run --release -p tls-session-cache-redis --features tokio --example cluster_lookups
//! ```
//!
//! Numbers and the machine: `docs/performance.md`, "Async Redis Cluster".
use std::sync::Arc;
use std::time::{Duration, Instant};
use tls_session_cache::{Protocol, SessionKey, SessionStore, StoredSession};
use tls_session_cache_redis::{AsyncRedisStore, KeyRing, RedisStore};
use tls_session_cache_testkit::{RedisCluster, RedisServer};

const N: usize = 20_000;

fn keys() -> Vec<(SessionKey, StoredSession)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (0..1000)
        .map(|_| {
            let mut id = [0u8; 32];
            openssl::rand::rand_bytes(&mut id).unwrap();
            let mut der = vec![0u8; 200];
            openssl::rand::rand_bytes(&mut der).unwrap();
            (
                SessionKey::from_slices(Protocol::Tls12, b"bench", &id).unwrap(),
                StoredSession::new(der, now, now + 600, Protocol::Tls12),
            )
        })
        .collect()
}

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e6
}

async fn run_async(
    name: &str,
    store: Arc<AsyncRedisStore>,
    ks: &Arc<Vec<(SessionKey, StoredSession)>>,
) {
    for (k, s) in ks.iter() {
        store.put(k, s).await.unwrap();
    }
    for (k, _) in ks.iter() {
        store.get(k).await.unwrap().unwrap();
    } // warm
    let mut lat = Vec::with_capacity(N);
    let t = Instant::now();
    for i in 0..N {
        let s = Instant::now();
        store.get(&ks[i % ks.len()].0).await.unwrap().unwrap();
        lat.push(s.elapsed());
    }
    let seq = t.elapsed();
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..64 {
        let (store, ks) = (Arc::clone(&store), Arc::clone(ks));
        set.spawn(async move {
            for i in (w..N).step_by(64) {
                store.get(&ks[i % ks.len()].0).await.unwrap().unwrap();
            }
        });
    }
    set.join_all().await;
    let conc = t.elapsed();
    println!(
        "{name}: sequential {N} GET hits: p50 {:.0} us, p99 {:.0} us, {:.0}/s; 64 concurrent: {:.0}/s; errors {}",
        pct(lat.clone(), 0.5),
        pct(lat, 0.99),
        N as f64 / seq.as_secs_f64(),
        N as f64 / conc.as_secs_f64(),
        store.stats().errors
    );
}

fn run_blocking(name: &str, store: RedisStore, ks: &[(SessionKey, StoredSession)]) {
    for (k, s) in ks {
        store.put(k, s).unwrap();
    }
    for (k, _) in ks {
        store.get(k).unwrap().unwrap();
    }
    let mut lat = Vec::with_capacity(N);
    let t = Instant::now();
    for i in 0..N {
        let s = Instant::now();
        store.get(&ks[i % ks.len()].0).unwrap().unwrap();
        lat.push(s.elapsed());
    }
    let seq = t.elapsed();
    println!(
        "{name}: sequential {N} GET hits: p50 {:.0} us, p99 {:.0} us, {:.0}/s",
        pct(lat.clone(), 0.5),
        pct(lat, 0.99),
        N as f64 / seq.as_secs_f64()
    );
}

fn main() {
    let redis = RedisServer::start().expect("cannot start redis-server");
    let cluster = RedisCluster::start(3).expect("cannot start a Redis Cluster");
    let ks = Arc::new(keys());
    let b = |url: &str| {
        RedisStore::builder(url)
            .seal_keys(KeyRing::new([7; 32]))
            .timeouts(Duration::from_secs(1))
    };
    run_blocking(
        "blocking, standalone",
        b(&redis.url()).build().unwrap(),
        &ks,
    );
    run_blocking("blocking, cluster", b(&cluster.url()).build().unwrap(), &ks);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run_async(
            "async, standalone",
            Arc::new(b(&redis.url()).build_async().unwrap()),
            &ks,
        )
        .await;
        run_async(
            "async, cluster",
            Arc::new(b(&cluster.url()).build_async().unwrap()),
            &ks,
        )
        .await;
    });
}
