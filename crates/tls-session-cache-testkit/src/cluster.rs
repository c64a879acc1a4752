//! A Redis Cluster of masters, each a [`RedisServer`].

use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::error::Error;
use crate::server::RedisServer;

const READY_ATTEMPTS: u32 = 400;
const READY_WAIT: Duration = Duration::from_millis(25);

/// A Redis Cluster of masters without replicas, on free loopback ports.
///
/// Nodes run with `cluster-require-full-coverage no`, so when one master
/// dies the others keep serving their own slots — the situation a fleet's
/// session store must survive.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` nodes (at least 3), joins them with
    /// `redis-cli --cluster create … --cluster-replicas 0 --cluster-yes`, and
    /// waits until every node reports `cluster_state:ok`.
    pub fn start(masters: usize) -> Result<RedisCluster, Error> {
        if masters < 3 {
            return Err(Error::TooFewMasters(masters));
        }
        let mut nodes = Vec::with_capacity(masters);
        for _ in 0..masters {
            nodes.push(RedisServer::start_with_args(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
                "--cluster-require-full-coverage",
                "no",
            ])?);
        }
        let cluster = RedisCluster { nodes };
        cluster.create()?;
        cluster.wait_ok()?;
        Ok(cluster)
    }

    /// The nodes, in the order they were started.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The node at `index`.
    pub fn node(&self, index: usize) -> Result<&RedisServer, Error> {
        self.nodes.get(index).ok_or(Error::NoSuchNode(index))
    }

    /// `redis://127.0.0.1:PORT/` of every node.
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,…` — every node as a seed.
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self.nodes.iter().map(RedisServer::addr).collect();
        format!("redis+cluster://{}", addrs.join(","))
    }

    /// Kills the master at `index` (SIGKILL). Its slots become unreachable;
    /// the other masters keep serving theirs.
    pub fn kill(&mut self, index: usize) -> Result<(), Error> {
        self.nodes
            .get_mut(index)
            .ok_or(Error::NoSuchNode(index))?
            .stop()
    }

    fn create(&self) -> Result<(), Error> {
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(self.nodes.iter().map(RedisServer::addr))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => Error::NotInstalled {
                    program: "redis-cli",
                },
                _ => Error::Spawn {
                    program: "redis-cli",
                    source,
                },
            })?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if output.status.success() && text.contains("All 16384 slots covered") {
            Ok(())
        } else {
            Err(Error::ClusterCreate {
                status: output.status.to_string(),
                output: text,
            })
        }
    }

    fn wait_ok(&self) -> Result<(), Error> {
        let mut last = String::new();
        for _ in 0..READY_ATTEMPTS {
            match self.all_ok() {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            thread::sleep(READY_WAIT);
        }
        Err(Error::ClusterNotReady {
            attempts: READY_ATTEMPTS,
            last,
        })
    }

    fn all_ok(&self) -> Result<(), String> {
        for node in &self.nodes {
            let mut con = node.connection().map_err(|e| e.to_string())?;
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut con)
                .map_err(|e| e.to_string())?;
            if !info.lines().any(|l| l.trim() == "cluster_state:ok") {
                return Err(format!("node {} not ok yet", node.addr()));
            }
        }
        Ok(())
    }
}
