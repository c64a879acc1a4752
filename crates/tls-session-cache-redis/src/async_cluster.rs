//! Redis Cluster for the async store: the blocking store's slot routing
//! (see `cluster`) over one multiplexed connection and one circuit breaker
//! per master, every call under one `tokio::time` deadline.
//!
//! Why not redis-rs's `cluster_async::ClusterConnection`: it hides which
//! master a command goes to, so a breaker per master cannot be kept around
//! it (and a store-wide breaker never opens while the other shards answer);
//! it connects to every master named by the slot map when it is built and
//! when it refreshes, and retries a command that timed out on a frozen
//! master; it follows a `MOVED` or `ASK` to whatever address the reply
//! names, with the configured credentials; and its TLS is redis-rs's own
//! (native-tls or rustls), not the rust-openssl TLS and checks the rest of
//! this crate uses (see `tls`). Routing here is the blocking store's, so
//! both stores behave alike:
//!
//! * The slot map comes from `CLUSTER SLOTS`, asked of one node per attempt
//!   (rotating, preferring nodes whose breaker is clean). It is loaded by
//!   the first call and reloaded, at most once per [`REFRESH_INTERVAL`],
//!   after a redirect or after a master failed.
//! * `MOVED` is followed once and patches that slot in the map; `ASK` once,
//!   with `ASKING` sent in the same pipeline (a multiplexed connection
//!   interleaves other callers' commands, and `ASKING` applies to the
//!   connection's next command). A redirect is followed only to a node the
//!   cluster already named in `CLUSTER SLOTS` (or a seed): the credentials
//!   go nowhere else. A redirect to a node not yet known fails the call (a
//!   miss) and the map is reloaded soon after.
//! * A frozen master costs the calls for its slots one deadline each until
//!   its own breaker opens; then they are refused at once, while the other
//!   masters are served as before.
//!
//! A node's connection is opened by the first call that needs it (one at a
//! time; others wait within their own deadline) and dropped after a call
//! found the node gone or slow, so the next call opens a fresh one.
//!
//! Against a hostile or broken node the protections are the standalone
//! async store's, from the same code: every connection reads through a
//! byte credit (`capped`, opened by `asynchronous::open`), each call
//! granting its largest legitimate reply first (a session call's
//! `max_reply`, `CLUSTER SLOTS` up to `cluster::SLOTS_REPLY_MAX`), so an
//! oversized reply is refused before it is read whole, counted in
//! `redis.oversize_replies`, and the connection dropped; a slot map naming
//! more than `cluster::MAX_MASTERS` masters is refused (`slot_ranges`, as
//! for the blocking Cluster); a redirect to an unknown node is counted in
//! `redis.unknown_redirects`. The replay memory, value checks and
//! rate-limited warnings are the store's (`store::Shared`), whatever the
//! route.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redis::{Cmd, FromRedisValue, RedisError, Value};
use tls_session_cache::StoreError;
use tokio::time::Instant as Deadline;

use crate::async_conn::{Held, open, over_credit, timed_out};
use crate::backend::{Dialer, admit, is_unavailability, settle};
use crate::breaker::{Breaker, CircuitState};
use crate::capped::Budget;
use crate::cluster::{
    BreakerSettings, REFRESH_INTERVAL, Route, SLOTS_REPLY_MAX, choose, key_slot, redirect_of,
    slot_ranges,
};
use crate::stats::{Counters, bump};

/// One master (or seed): its address, connection and breaker.
struct Node {
    addr: String,
    dialer: Dialer,
    breaker: Breaker,
    /// The multiplexed connection every call to this node shares.
    conn: Mutex<Option<Held>>,
    /// Held while a connection is being made: one at a time.
    connecting: tokio::sync::Mutex<()>,
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

    /// This map with `slot` served by `target`.
    fn patched(&self, slot: u16, target: &Arc<Node>) -> SlotMap {
        let mut ranges = Vec::with_capacity(self.ranges.len() + 2);
        for (start, end, node) in &self.ranges {
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
        SlotMap { ranges }
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

/// Routing to the masters of one Redis Cluster, for the async store.
pub(crate) struct AsyncCluster {
    /// Settings (credentials, database, TLS) every node is reached with.
    template: Dialer,
    seeds: Vec<(String, u16)>,
    nodes: Mutex<HashMap<String, Arc<Node>>>,
    map: RwLock<Arc<SlotMap>>,
    refresh: Mutex<RefreshState>,
    breaker: BreakerSettings,
    next_id: AtomicU64,
    /// The largest reply a session call reads (`Shared::max_reply`): what
    /// each call grants its connection's byte credit.
    max_reply: usize,
}

impl Node {
    fn held(&self) -> Option<Held> {
        self.conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Drops the connection if it is still generation `id` (or any, with
    /// `None`).
    fn forget(&self, id: Option<u64>) {
        let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if id.is_none() || slot.as_ref().map(|h| h.id) == id {
            *slot = None;
        }
    }

    /// The node's connection, made now if there is none.
    async fn connection(&self, ids: &AtomicU64, max_reply: usize) -> Result<Held, RedisError> {
        if let Some(h) = self.held() {
            return Ok(h);
        }
        let _making = self.connecting.lock().await;
        if let Some(h) = self.held() {
            return Ok(h);
        }
        let budget = Budget::new(max_reply);
        let held = Held {
            con: open(&self.dialer, &budget).await?,
            id: ids.fetch_add(1, Ordering::Relaxed),
            budget,
        };
        *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = Some(held.clone());
        Ok(held)
    }

    /// `cmd` on this node (after `ASKING`, in one pipeline, when `asking`),
    /// connecting first if need be, all before `deadline`; its reply may
    /// take `reply_max` bytes of the connection's credit. A connection
    /// that failed, timed out or went beyond its credit is dropped.
    async fn query<T: FromRedisValue>(
        &self,
        cluster: &AsyncCluster,
        deadline: Deadline,
        cmd: &Cmd,
        asking: bool,
        reply_max: usize,
    ) -> Result<T, RedisError> {
        let attempt = async {
            let mut held = self.connection(&cluster.next_id, cluster.max_reply).await?;
            held.budget.grant_reply(reply_max);
            let result = if asking {
                redis::pipe()
                    .cmd("ASKING")
                    .ignore()
                    .add_command(cmd.clone())
                    .query_async::<(T,)>(&mut held.con)
                    .await
                    .map(|(v,)| v)
            } else {
                cmd.query_async::<T>(&mut held.con).await
            };
            if let Err(e) = &result
                && (is_unavailability(e) || held.budget.tripped())
            {
                self.forget(Some(held.id));
                if held.budget.tripped() {
                    return Err(over_credit(e));
                }
            }
            result
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(r) => r,
            Err(_) => {
                self.forget(None);
                Err(timed_out())
            }
        }
    }
}

impl AsyncCluster {
    /// Routing over `seeds` (TCP addresses, each with the credentials and
    /// TLS every node is reached with: the first seed's). Does not connect;
    /// `None` without a seed or with a seed that is not TCP.
    /// `max_reply` is the largest reply a session call reads.
    pub(crate) fn new(
        seeds: Vec<Dialer>,
        breaker: BreakerSettings,
        max_reply: usize,
    ) -> Option<AsyncCluster> {
        let addrs = seeds
            .iter()
            .map(|s| s.tcp().map(|(h, p)| (h.to_string(), p)))
            .collect::<Option<Vec<_>>>()?;
        let template = seeds.into_iter().next()?;
        Some(AsyncCluster {
            template,
            seeds: addrs,
            nodes: Mutex::new(HashMap::new()),
            map: RwLock::new(Arc::new(SlotMap::default())),
            refresh: Mutex::new(RefreshState::default()),
            breaker,
            next_id: AtomicU64::new(1),
            max_reply,
        })
    }

    /// The node at `host:port`, made (not connected) on first use.
    fn node(&self, host: &str, port: u16) -> Result<Arc<Node>, RedisError> {
        let addr = format!("{host}:{port}");
        let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = nodes.get(&addr) {
            return Ok(Arc::clone(n));
        }
        let b = self.breaker;
        let node = Arc::new(Node {
            dialer: self.template.at(host, port)?,
            breaker: Breaker::new(b.threshold, b.backoff, b.max_backoff),
            addr: addr.clone(),
            conn: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        });
        nodes.insert(addr, Arc::clone(&node));
        Ok(node)
    }

    /// The node a `MOVED`/`ASK` names, if it is one the cluster named in
    /// its slot map (or a seed); never a new one.
    fn known(&self, addr: &str) -> Option<Arc<Node>> {
        self.nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(addr)
            .cloned()
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

    /// Runs `cmd` on the master `route` leads to, through that master's
    /// breaker; everything (loading the slot map, connecting, a redirect)
    /// within `budget` from now.
    pub(crate) async fn call<T: FromRedisValue>(
        &self,
        counters: &Counters,
        budget: Duration,
        route: Route<'_>,
        cmd: &Cmd,
    ) -> Result<T, StoreError> {
        let deadline = Deadline::now() + budget;
        let map = self.ensure_map(counters, budget, deadline).await?;
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
        if Deadline::now() + Duration::from_millis(1) >= deadline {
            // Loading the map used the whole budget; not this node's fault.
            bump(&counters.errors);
            bump(&counters.timeouts);
            return Err(StoreError::Timeout(budget));
        }
        admit(&node.breaker, counters)?;
        let result = node.query(self, deadline, cmd, false, self.max_reply).await;
        let redirect = match &result {
            Err(e) => redirect_of(e),
            Ok(_) => None,
        };
        let Some((asking, addr, slot)) = redirect else {
            if matches!(&result, Err(e) if is_unavailability(e)) {
                // Its slots may have moved to a promoted replica.
                self.mark_stale();
            }
            return settle(&node.breaker, counters, budget, result);
        };
        // The node answered: it is up. Follow the redirect once, to a node
        // the cluster has named.
        node.breaker.success();
        let Some(target) = self.known(&addr) else {
            self.mark_stale();
            bump(&counters.errors);
            bump(&counters.unknown_redirects);
            log::debug!(
                "redis session store: {} redirects slot {slot} to {addr}, not in the slot map; \
                 not followed until the map is reloaded",
                node.addr
            );
            return Err(StoreError::Unavailable(format!(
                "cluster redirect to {addr}, a node not in the slot map"
            )));
        };
        if !asking {
            let mut guard = self.map.write().unwrap_or_else(PoisonError::into_inner);
            let patched = guard.patched(slot, &target);
            *guard = Arc::new(patched);
            drop(guard);
            // The rest of the map is reloaded at the next occasion.
            self.mark_stale();
        }
        admit(&target.breaker, counters)?;
        let result = target
            .query(self, deadline, cmd, asking, self.max_reply)
            .await;
        settle(&target.breaker, counters, budget, result)
    }

    /// The slot map, loaded first when there is none; reloaded (by one
    /// call at a time) when stale and the interval has passed.
    async fn ensure_map(
        &self,
        counters: &Counters,
        budget: Duration,
        deadline: Deadline,
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
        // Cleared even when this future is dropped mid-reload.
        let _running = Running(&self.refresh);
        let outcome = match node {
            Err(e) => Err(e),
            Ok(node) => match admit(&node.breaker, counters) {
                Err(e) => Err(e),
                Ok(()) => {
                    let reply = node
                        .query::<Value>(
                            self,
                            deadline,
                            redis::cmd("CLUSTER").arg("SLOTS"),
                            false,
                            SLOTS_REPLY_MAX,
                        )
                        .await
                        .and_then(|reply| self.parse_slots(&node, reply));
                    settle(&node.breaker, counters, budget, reply)
                }
            },
        };
        if outcome.is_ok() {
            self.refresh
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .stale = false;
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

    fn parse_slots(&self, asked: &Node, reply: Value) -> Result<SlotMap, RedisError> {
        let mut ranges = Vec::new();
        for (start, end, host, port) in slot_ranges(&asked.addr, reply)? {
            ranges.push((start, end, self.node(&host, port)?));
        }
        Ok(SlotMap { ranges })
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

    /// Forgets nodes that are neither in `map` nor seeds (their connections
    /// close when no call holds them).
    fn prune(&self, map: &SlotMap) {
        let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        nodes.retain(|addr, node| {
            map.ranges.iter().any(|(_, _, n)| Arc::ptr_eq(n, node))
                || self.seeds.iter().any(|(h, p)| *addr == format!("{h}:{p}"))
        });
    }

    /// Every master's address and circuit state, sorted by address.
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

/// Marks the end of a slot-map reload when dropped.
struct Running<'a>(&'a Mutex<RefreshState>);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .running = false;
    }
}
