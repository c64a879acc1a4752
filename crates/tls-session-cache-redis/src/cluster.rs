//! Redis Cluster: our own slot routing over one connection pool and one
//! circuit breaker per master.
//!
//! Why not redis-rs's synchronous `ClusterConnection`: every call on it can
//! cost several timeouts when a master is *frozen* (alive for TCP, not
//! answering). It retries a timed-out command (`RetryImmediately`) as many
//! times as its retry count; building one connects to the seeds one by one
//! until one answers, then to *every* master (`refresh_slots`), paying a
//! connect timeout for each frozen one; and a master it could not reach is
//! reconnected on every command to it. Measured with 300 ms timeouts: 634 ms
//! per lookup on a frozen shard with a warm connection, up to 2.56 s when a
//! new one had to be built. And because the other shards keep answering, a
//! store-wide breaker never opens.
//!
//! Here a call touches exactly one master (plus, rarely, one redirect
//! target), through that master's own pool and breaker, under the call's
//! deadline (see `backend`):
//!
//! * The slot map comes from `CLUSTER SLOTS`, asked of one node per attempt
//!   (rotating, preferring nodes whose breaker is clean). It is loaded by
//!   the first call and reloaded, at most once per [`REFRESH_INTERVAL`],
//!   after a `MOVED` or after a master failed (its slots may have moved to
//!   a promoted replica).
//! * `MOVED` is followed once, to the node it names (and that slot is
//!   patched in the map at once); `ASK` once, with `ASKING` first — but
//!   only to a node already known (a seed, or a master `CLUSTER SLOTS`
//!   named). A redirect to any other host is not followed: the call fails
//!   (counted in `RedisStats::unknown_redirects`) and the map is reloaded,
//!   so a node that really joined is used once the cluster lists it.
//!   Credentials therefore go only to the seeds and the masters the slot
//!   map names (with `rediss+cluster://`, each after its certificate
//!   verified for its address), and redirects cannot grow the set of
//!   nodes; a slot map naming more than 1000 masters is refused.
//! * A frozen master's breaker opens after `threshold` failures; its
//!   sessions are then instant misses while the other masters are served
//!   as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redis::{ConnectionLike, ErrorKind, RedisError, ServerErrorKind, Value};
use tls_session_cache::StoreError;

use crate::backend::{Dialer, Pool, Timeouts, admit, remaining, settle, through};
use crate::breaker::{Breaker, CircuitState};
use crate::naming::RedisKey;
use crate::stats::{Counters, bump};

/// Shortest time between two reloads of the slot map after a failure or
/// a redirect.
pub(crate) const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Number of hash slots of a Redis Cluster.
const SLOTS: u16 = 16384;

/// The largest `CLUSTER SLOTS` reply read: about 100 bytes per slot range
/// and node, so room for thousands of masters and replicas, and a bound on
/// what a hostile node can make the store read.
pub(crate) const SLOTS_REPLY_MAX: usize = 4 << 20;

/// Most masters a slot map may name (Redis Cluster's own recommended
/// maximum is 1000 nodes): a bound on the pools a `CLUSTER SLOTS` reply
/// can make.
const MAX_MASTERS: usize = 1000;

/// Circuit breaker settings, one breaker per master.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BreakerSettings {
    pub(crate) threshold: u32,
    pub(crate) backoff: Duration,
    pub(crate) max_backoff: Duration,
}

/// One master: its address, connections and breaker.
pub(crate) struct Node {
    addr: String,
    pool: Pool,
    breaker: Breaker,
}

/// Slot ranges (inclusive, sorted by start) and their masters.
#[derive(Default)]
struct SlotMap {
    ranges: Vec<(u16, u16, Arc<Node>)>,
}

impl SlotMap {
    fn owner(&self, slot: u16) -> Option<&Arc<Node>> {
        let i = self.ranges.partition_point(|r| r.1 < slot);
        self.ranges
            .get(i)
            .filter(|r| r.0 <= slot)
            .map(|(_, _, node)| node)
    }
}

#[derive(Default)]
struct RefreshState {
    /// The map may be out of date (a redirect or a failed master was seen).
    stale: bool,
    /// When the last reload started.
    last: Option<Instant>,
    /// A reload of a loaded map is running (others keep the old map).
    running: bool,
    /// Rotates the node asked next.
    next: usize,
}

/// Routing to the masters of one Redis Cluster.
pub(crate) struct Cluster {
    /// Settings (credentials, database, TLS) of the first seed; every node
    /// is reached with them, at its own address.
    template: Dialer,
    seeds: Vec<(String, u16)>,
    nodes: Mutex<HashMap<String, Arc<Node>>>,
    map: RwLock<Arc<SlotMap>>,
    refresh: Mutex<RefreshState>,
    max_idle: usize,
    timeouts: Timeouts,
    breaker: BreakerSettings,
}

/// Where a call goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Route<'a> {
    /// The master of this key's slot.
    Key(&'a RedisKey),
    /// Any master that answers (`PING`).
    Any,
}

/// The hash slot of `key`: CRC16 (XMODEM) of its hash tag — the part
/// between the first `{` and the next `}` when that is not empty — or of
/// the whole key, modulo 16384.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .map(|close| &rest[..close])
        })
        .filter(|tag| !tag.is_empty());
    crc16_xmodem(tagged.unwrap_or(key)) % SLOTS
}

/// CRC-16/XMODEM (polynomial 0x1021, initial value 0), bit by bit.
fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// An error for a reply or a situation that leaves no node to ask.
fn routing_error(what: &'static str, detail: String) -> RedisError {
    RedisError::from((ErrorKind::ClusterConnectionNotFound, what, detail))
}

impl Cluster {
    /// Routing over the seed nodes (TCP addresses, each with the
    /// credentials and TLS settings every node is reached with). Does not
    /// connect.
    pub(crate) fn new(
        seeds: Vec<Dialer>,
        max_idle: usize,
        timeouts: Timeouts,
        breaker: BreakerSettings,
    ) -> Result<Cluster, RedisError> {
        let mut addrs = Vec::with_capacity(seeds.len());
        for seed in &seeds {
            match seed.tcp() {
                Some((host, port)) => addrs.push((host.to_string(), port)),
                None => {
                    return Err(RedisError::from((
                        ErrorKind::InvalidClientConfig,
                        "cluster nodes must be TCP (redis://HOST:PORT)",
                    )));
                }
            }
        }
        let template = seeds
            .into_iter()
            .next()
            .ok_or_else(|| RedisError::from((ErrorKind::InvalidClientConfig, "no seed node")))?;
        Ok(Cluster {
            template,
            seeds: addrs,
            nodes: Mutex::new(HashMap::new()),
            map: RwLock::new(Arc::new(SlotMap::default())),
            refresh: Mutex::new(RefreshState::default()),
            max_idle,
            timeouts,
            breaker,
        })
    }

    /// The node at `host:port`, made (not connected) on first use.
    fn node(&self, host: &str, port: u16) -> Result<Arc<Node>, RedisError> {
        let addr = format!("{host}:{port}");
        let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = nodes.get(&addr) {
            return Ok(Arc::clone(n));
        }
        let dialer = self.template.at(host, port)?;
        let b = self.breaker;
        let node = Arc::new(Node {
            pool: Pool::new(dialer, self.max_idle, self.timeouts),
            breaker: Breaker::new(b.threshold, b.backoff, b.max_backoff),
            addr: addr.clone(),
        });
        nodes.insert(addr, Arc::clone(&node));
        Ok(node)
    }

    /// The node a `MOVED`/`ASK` names (`host:port`), if it is known: a
    /// seed or a master of the slot map. A redirect is never a reason to
    /// connect to (and send the credentials to) a new host, nor to grow the
    /// set of nodes: an unknown target fails the call (the map is reloaded
    /// at the next occasion, and the node is used once `CLUSTER SLOTS`
    /// names it).
    fn node_at(&self, addr: &str) -> Result<Arc<Node>, RedisError> {
        let known = self
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(addr)
            .cloned();
        known.ok_or_else(|| {
            routing_error(
                "redirect to a node not in the slot map, not followed",
                addr.to_string(),
            )
        })
    }

    fn current_map(&self) -> Arc<SlotMap> {
        Arc::clone(&self.map.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn mark_stale(&self) {
        self.refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stale = true;
    }

    /// Runs `request` on the master `route` leads to, within `deadline`,
    /// through that master's breaker.
    pub(crate) fn call<T>(
        &self,
        counters: &Counters,
        budget: Duration,
        deadline: Instant,
        route: Route<'_>,
        request: impl Fn(&mut dyn ConnectionLike) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        let map = self.ensure_map(counters, budget, deadline)?;
        let node = match route {
            Route::Key(key) => match map.owner(key_slot(key.as_bytes())) {
                Some(n) => Arc::clone(n),
                None => {
                    // A slot no master serves (being reassigned?): reload soon.
                    self.mark_stale();
                    bump(&counters.errors);
                    return Err(StoreError::Unavailable(format!(
                        "no cluster master serves the slot of {key}"
                    )));
                }
            },
            Route::Any => self.pick(&map)?,
        };
        if remaining(deadline).is_err() {
            // Loading the map used the whole budget; not this node's fault.
            bump(&counters.errors);
            bump(&counters.timeouts);
            return Err(StoreError::Timeout(budget));
        }
        admit(&node.breaker, counters)?;
        let result = node.pool.query(deadline, &request);
        let redirect = match &result {
            Err(e) => redirect_of(e),
            Ok(_) => None,
        };
        let Some((asking, addr, slot)) = redirect else {
            if matches!(&result, Err(e) if crate::backend::is_unavailability(e)) {
                // Its slots may have moved to a promoted replica.
                self.mark_stale();
            }
            return settle(&node.breaker, counters, budget, result);
        };
        // The node answered: it is up. Follow the redirect once.
        node.breaker.success();
        let target = match self.node_at(&addr) {
            Ok(t) => t,
            Err(e) => {
                self.mark_stale();
                bump(&counters.unknown_redirects);
                return settle(&node.breaker, counters, budget, Err(e));
            }
        };
        if !asking {
            self.patch(slot, &target);
        }
        through(&target.breaker, counters, budget, || {
            target.pool.query(deadline, |con| {
                if asking {
                    redis::cmd("ASKING").query::<()>(con)?;
                }
                request(con)
            })
        })
    }

    /// After `MOVED`: `slot` is served by `target`; the rest of the map is
    /// reloaded at the next occasion.
    fn patch(&self, slot: u16, target: &Arc<Node>) {
        let mut guard = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let mut ranges = Vec::with_capacity(guard.ranges.len() + 2);
        for (start, end, node) in &guard.ranges {
            if *start <= slot && slot <= *end {
                if *start < slot {
                    ranges.push((*start, slot - 1, Arc::clone(node)));
                }
                if slot < *end {
                    ranges.push((slot + 1, *end, Arc::clone(node)));
                }
            } else {
                ranges.push((*start, *end, Arc::clone(node)));
            }
        }
        ranges.push((slot, slot, Arc::clone(target)));
        ranges.sort_by_key(|r| r.0);
        *guard = Arc::new(SlotMap { ranges });
        drop(guard);
        self.mark_stale();
    }

    /// The slot map, loaded first when there is none; reloaded (by one
    /// call at a time) when stale and the interval has passed.
    fn ensure_map(
        &self,
        counters: &Counters,
        budget: Duration,
        deadline: Instant,
    ) -> Result<Arc<SlotMap>, StoreError> {
        let map = self.current_map();
        let loaded = !map.ranges.is_empty();
        let node = {
            let mut st = self.refresh.lock().unwrap_or_else(PoisonError::into_inner);
            let due = !loaded
                || (st.stale
                    && !st.running
                    && st.last.is_none_or(|t| t.elapsed() >= REFRESH_INTERVAL));
            if !due {
                return Ok(map);
            }
            st.last = Some(Instant::now());
            st.running = true;
            st.next = st.next.wrapping_add(1);
            self.candidate(&map, st.next)
        };
        let outcome = node.and_then(|node| {
            through(&node.breaker, counters, budget, || {
                let reply: Value = node.pool.query_capped(deadline, SLOTS_REPLY_MAX, |con| {
                    redis::cmd("CLUSTER").arg("SLOTS").query(con)
                })?;
                self.parse_slots(&node, reply)
            })
        });
        {
            let mut st = self.refresh.lock().unwrap_or_else(PoisonError::into_inner);
            st.running = false;
            if outcome.is_ok() {
                st.stale = false;
            }
        }
        match outcome {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                *self.map.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&fresh);
                self.prune(&fresh);
                Ok(fresh)
            }
            // A loaded map is still the best guess.
            Err(e) if loaded => {
                log::debug!("redis session store: cluster slot map not reloaded: {e}");
                Ok(map)
            }
            Err(e) => Err(e),
        }
    }

    /// The node to ask for the slot map (or to `PING`): the masters of the
    /// map, then the seeds, rotating from `turn`; nodes whose breaker has
    /// seen no failure first, then any whose breaker is not open.
    fn candidate(&self, map: &SlotMap, turn: usize) -> Result<Arc<Node>, StoreError> {
        let masters = map.ranges.iter().map(|(_, _, n)| Arc::clone(n));
        let seeds = self
            .seeds
            .iter()
            .filter_map(|(host, port)| self.node(host, *port).ok());
        choose(masters.chain(seeds), turn, |n| &n.breaker)
    }

    fn pick(&self, map: &SlotMap) -> Result<Arc<Node>, StoreError> {
        let turn = {
            let mut st = self.refresh.lock().unwrap_or_else(PoisonError::into_inner);
            st.next = st.next.wrapping_add(1);
            st.next
        };
        self.candidate(map, turn)
    }

    /// Parses a `CLUSTER SLOTS` reply asked of `asked` (see
    /// [`slot_ranges`]) into a map of this cluster's nodes.
    fn parse_slots(&self, asked: &Node, reply: Value) -> Result<SlotMap, RedisError> {
        let mut ranges = Vec::new();
        for (start, end, host, port) in slot_ranges(&asked.addr, reply)? {
            ranges.push((start, end, self.node(&host, port)?));
        }
        Ok(SlotMap { ranges })
    }

    /// Forgets nodes that are neither in `map` nor seeds (their idle
    /// connections close).
    fn prune(&self, map: &SlotMap) {
        let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        nodes.retain(|addr, node| {
            map.ranges.iter().any(|(_, _, n)| Arc::ptr_eq(n, node))
                || self.seeds.iter().any(|(h, p)| *addr == format!("{h}:{p}"))
        });
    }

    /// Every known master's address and circuit state, sorted by address.
    pub(crate) fn circuits(&self) -> Vec<(String, CircuitState)> {
        let map = self.current_map();
        let mut out: Vec<(String, CircuitState)> = Vec::new();
        for (_, _, n) in &map.ranges {
            if !out.iter().any(|(a, _)| *a == n.addr) {
                out.push((n.addr.clone(), n.breaker.state()));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The worst of the masters' circuit states (open > half-open > closed).
    pub(crate) fn worst_circuit(&self) -> CircuitState {
        let rank = |s: &CircuitState| match s {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        };
        self.circuits()
            .into_iter()
            .map(|(_, s)| s)
            .max_by_key(rank)
            .unwrap_or(CircuitState::Closed)
    }
}

/// Parses a `CLUSTER SLOTS` reply asked of `asked` (`host:port`):
/// `[[start, end, [host, port, id, …], replicas…], …]` into the masters'
/// slot ranges `(start, end, host, port)`, sorted by start. An empty host
/// means "the host you asked". A reply naming more than [`MAX_MASTERS`]
/// masters is refused before any node is made for it. The blocking and the
/// async Cluster both parse through here.
pub(crate) fn slot_ranges(
    asked: &str,
    reply: Value,
) -> Result<Vec<(u16, u16, String, u16)>, RedisError> {
    let bad = |what: &str| routing_error("unexpected CLUSTER SLOTS reply", what.to_string());
    let Value::Array(entries) = reply else {
        return Err(bad("not an array"));
    };
    let asked_host = asked.rsplit_once(':').map_or(asked, |(h, _)| h);
    let mut ranges = Vec::with_capacity(entries.len().min(usize::from(SLOTS)));
    let mut masters: Vec<(String, u16)> = Vec::new();
    for entry in entries {
        let Value::Array(fields) = entry else {
            return Err(bad("entry not an array"));
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return Err(bad("entry fields"));
        };
        let host = match master.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => return Err(bad("master host")),
        };
        let host = if host.is_empty() || host == "?" {
            asked_host.to_string()
        } else {
            host
        };
        let Some(Value::Int(port)) = master.get(1) else {
            return Err(bad("master port"));
        };
        let (Ok(start), Ok(end), Ok(port)) = (
            u16::try_from(*start),
            u16::try_from(*end),
            u16::try_from(*port),
        ) else {
            return Err(bad("numbers out of range"));
        };
        if start > end || end >= SLOTS {
            return Err(bad("slot range"));
        }
        if !masters.iter().any(|(h, p)| *h == host && *p == port) {
            masters.push((host.clone(), port));
            if masters.len() > MAX_MASTERS {
                return Err(bad("more masters than a cluster can have"));
            }
        }
        ranges.push((start, end, host, port));
    }
    if ranges.is_empty() {
        return Err(bad("no slots assigned"));
    }
    ranges.sort_by_key(|r| r.0);
    Ok(ranges)
}

/// `(asking, "host:port", slot)` when `e` is a `MOVED` or `ASK` redirect.
pub(crate) fn redirect_of(e: &RedisError) -> Option<(bool, String, u16)> {
    let asking = match e.kind() {
        ErrorKind::Server(ServerErrorKind::Moved) => false,
        ErrorKind::Server(ServerErrorKind::Ask) => true,
        _ => return None,
    };
    e.redirect_node()
        .map(|(addr, slot)| (asking, addr.to_string(), slot))
}

/// The choice behind the blocking and the async Cluster stores'
/// `candidate`: among `nodes` (duplicates skipped), rotating from
/// `turn`, the first whose breaker has seen no failure, else the first whose
/// breaker is not open, else the one at `turn`.
pub(crate) fn choose<N>(
    nodes: impl Iterator<Item = Arc<N>>,
    turn: usize,
    breaker: impl Fn(&N) -> &Breaker,
) -> Result<Arc<N>, StoreError> {
    let mut all: Vec<Arc<N>> = Vec::new();
    for n in nodes {
        if !all.iter().any(|m| Arc::ptr_eq(m, &n)) {
            all.push(n);
        }
    }
    if all.is_empty() {
        return Err(StoreError::Unavailable("no cluster node known".into()));
    }
    let len = all.len();
    let rotated = (0..len).map(|i| &all[(turn + i) % len]);
    let clean = rotated.clone().find(|n| breaker(n).clean());
    let pick = clean
        .or_else(|| {
            rotated
                .clone()
                .find(|n| breaker(n).state() != CircuitState::Open)
        })
        .unwrap_or(&all[turn % len]);
    Ok(Arc::clone(pick))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // CRC-16/XMODEM check value, and examples from the Redis Cluster spec.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // An empty tag does not count: the whole key is hashed.
        assert_eq!(key_slot(b"foo{}{bar}"), crc16_xmodem(b"foo{}{bar}") % SLOTS);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }
}
