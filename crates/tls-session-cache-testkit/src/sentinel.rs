//! Redis Sentinel: a master, a replica of it, and Sentinels watching the
//! master, all on free loopback ports.

use std::thread;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::server::RedisServer;

/// How long [`RedisSentinel::start`] and [`RedisSentinel::wait_failover`]
/// wait at most, and the pause between checks.
const READY_GUARD: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(25);

/// The master's name in the Sentinels' configuration.
pub const MASTER_NAME: &str = "sessions";

/// A master, one replica, and Sentinels (quorum 1) that fail over to the
/// replica within a few seconds of the master's death
/// (`down-after-milliseconds` 1000).
#[derive(Debug)]
pub struct RedisSentinel {
    master: RedisServer,
    replica: RedisServer,
    sentinels: Vec<RedisServer>,
}

impl RedisSentinel {
    /// Starts the master, the replica (`--replicaof`) and `sentinels`
    /// Sentinels, then waits until the replica is in sync and every
    /// Sentinel knows the master and its replica. `data_args` go to both
    /// data nodes (an ACL user, say; then `master_auth` is the
    /// `(user, password)` the replica and the Sentinels use).
    pub fn start(
        sentinels: usize,
        data_args: &[&str],
        master_auth: Option<(&str, &str)>,
    ) -> Result<RedisSentinel, Error> {
        let mut replica_args: Vec<String> = data_args.iter().map(|s| s.to_string()).collect();
        if let Some((user, pass)) = master_auth {
            replica_args.extend([
                "--masteruser".into(),
                user.into(),
                "--masterauth".into(),
                pass.into(),
            ]);
        }
        let mut master_args = replica_args.clone();
        // Either may become a replica after a failover.
        master_args.extend(["--replica-announce-ip".into(), "127.0.0.1".into()]);
        let master_refs: Vec<&str> = master_args.iter().map(String::as_str).collect();
        let master = RedisServer::start_with_args(&master_refs)?;
        replica_args.extend([
            "--replica-announce-ip".into(),
            "127.0.0.1".into(),
            "--replicaof".into(),
            "127.0.0.1".into(),
            master.port().to_string(),
        ]);
        let replica_refs: Vec<&str> = replica_args.iter().map(String::as_str).collect();
        let replica = RedisServer::start_with_args(&replica_refs)?;
        let mut conf = vec![
            format!(
                "sentinel monitor {MASTER_NAME} 127.0.0.1 {} 1",
                master.port()
            ),
            format!("sentinel down-after-milliseconds {MASTER_NAME} 1000"),
            format!("sentinel failover-timeout {MASTER_NAME} 10000"),
            format!("sentinel parallel-syncs {MASTER_NAME} 1"),
            "sentinel resolve-hostnames no".to_string(),
        ];
        if let Some((user, pass)) = master_auth {
            conf.push(format!("sentinel auth-user {MASTER_NAME} {user}"));
            conf.push(format!("sentinel auth-pass {MASTER_NAME} {pass}"));
        }
        let mut started = Vec::with_capacity(sentinels);
        for _ in 0..sentinels.max(1) {
            started.push(RedisServer::start_sentinel(&conf)?);
        }
        let set = RedisSentinel {
            master,
            replica,
            sentinels: started,
        };
        set.wait_ready(master_auth)?;
        Ok(set)
    }

    /// `redis+sentinel://127.0.0.1:S1,…/sessions`.
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self.sentinels.iter().map(RedisServer::addr).collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", addrs.join(","))
    }

    /// The master's name.
    pub fn master_name(&self) -> &'static str {
        MASTER_NAME
    }

    /// The node started as master.
    pub fn master(&self) -> &RedisServer {
        &self.master
    }

    /// The node started as replica.
    pub fn replica(&self) -> &RedisServer {
        &self.replica
    }

    /// The Sentinels.
    pub fn sentinels(&self) -> &[RedisServer] {
        &self.sentinels
    }

    /// Kills the node started as master (SIGKILL).
    pub fn kill_master(&mut self) -> Result<(), Error> {
        self.master.stop()
    }

    /// The master's address (`127.0.0.1:PORT`) as the first Sentinel that
    /// answers reports it.
    pub fn reported_master(&self) -> Result<String, Error> {
        let mut last = String::new();
        for s in &self.sentinels {
            match s.cli(None, &["SENTINEL", "get-master-addr-by-name", MASTER_NAME]) {
                Ok(out) => {
                    let parts: Vec<&str> = out.lines().map(str::trim).collect();
                    if let [ip, port] = parts[..] {
                        return Ok(format!("{ip}:{port}"));
                    }
                    last = out;
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::Sentinel(format!(
            "no sentinel reports the master: {last}"
        )))
    }

    /// Waits (bounded) until every Sentinel reports the replica as master;
    /// returns how long that took from the call.
    pub fn wait_failover(&self) -> Result<Duration, Error> {
        let started = Instant::now();
        let want = self.replica.addr();
        loop {
            let all = self.sentinels.iter().all(|s| {
                s.cli(None, &["SENTINEL", "get-master-addr-by-name", MASTER_NAME])
                    .map(|out| out.lines().map(str::trim).collect::<Vec<_>>().join(":") == want)
                    .unwrap_or(false)
            });
            if all {
                return Ok(started.elapsed());
            }
            if started.elapsed() > READY_GUARD {
                return Err(Error::Sentinel(format!(
                    "no failover to {want} after {READY_GUARD:?}"
                )));
            }
            thread::sleep(POLL);
        }
    }

    fn wait_ready(&self, auth: Option<(&str, &str)>) -> Result<(), Error> {
        let started = Instant::now();
        let want = self.master.addr();
        let mut last = String::new();
        while started.elapsed() < READY_GUARD {
            match self.check(auth, &want) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            thread::sleep(POLL);
        }
        Err(Error::Sentinel(last))
    }

    fn check(&self, auth: Option<(&str, &str)>, want: &str) -> Result<(), String> {
        let info = self
            .master
            .cli(auth, &["INFO", "replication"])
            .map_err(|e| e.to_string())?;
        if !info.contains("connected_slaves:1") || !info.contains("state=online") {
            return Err(format!("replica not in sync yet: {info}"));
        }
        for s in &self.sentinels {
            let master = s
                .cli(None, &["SENTINEL", "get-master-addr-by-name", MASTER_NAME])
                .map_err(|e| e.to_string())?;
            if master.lines().map(str::trim).collect::<Vec<_>>().join(":") != want {
                return Err(format!("sentinel {} reports {master:?}", s.addr()));
            }
            let replicas = s
                .cli(None, &["SENTINEL", "replicas", MASTER_NAME])
                .map_err(|e| e.to_string())?;
            if !replicas.contains(&self.replica.port().to_string()) {
                return Err(format!(
                    "sentinel {} does not know the replica yet",
                    s.addr()
                ));
            }
        }
        Ok(())
    }
}
