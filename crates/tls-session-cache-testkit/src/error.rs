//! Why a Redis process could not be started or used.

/// Why a Redis test process could not be started or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `redis-server` or `redis-cli` is not on `PATH`.
    #[error(
        "`{program}` was not found on PATH; install it with `apt-get install redis-server` \
         (the package provides both redis-server and redis-cli)"
    )]
    NotInstalled {
        /// The program that is missing.
        program: &'static str,
    },
    /// The program exists but could not be spawned.
    #[error("could not run `{program}`: {source}")]
    Spawn {
        /// The program.
        program: &'static str,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// Creating the temporary directory or a similar local operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The server exited before it answered `PING`.
    #[error("redis-server on port {port} exited before it was ready ({status}); log tail:\n{log}")]
    Exited {
        /// The port it was asked to listen on.
        port: u16,
        /// Its exit status.
        status: String,
        /// The last lines of its log file.
        log: String,
    },
    /// The server did not answer `PING` within the bounded number of attempts.
    #[error("redis-server on port {port} not ready after {attempts} attempts: {last}")]
    NotReady {
        /// The port.
        port: u16,
        /// How many times readiness was checked.
        attempts: u32,
        /// The last failure seen.
        last: String,
    },
    /// No free loopback port could be found.
    #[error("no free loopback port found")]
    NoFreePort,
    /// `redis-cli --cluster create` failed.
    #[error("redis-cli --cluster create failed ({status}):\n{output}")]
    ClusterCreate {
        /// Its exit status.
        status: String,
        /// What it printed.
        output: String,
    },
    /// A cluster did not reach `cluster_state:ok` on every node.
    #[error("cluster not ready after {attempts} attempts: {last}")]
    ClusterNotReady {
        /// How many times every node was checked.
        attempts: u32,
        /// The last failure seen.
        last: String,
    },
    /// A cluster needs at least three masters (`redis-cli --cluster create`'s minimum).
    #[error("a cluster needs at least 3 masters, {0} requested")]
    TooFewMasters(usize),
    /// No node with this index.
    #[error("no cluster node with index {0}")]
    NoSuchNode(usize),
    /// A Redis command sent by the test kit failed.
    #[error("redis command failed: {0}")]
    Redis(#[from] redis::RedisError),
    /// `redis-cli` failed or printed an error reply.
    #[error("redis-cli {args}: {output}")]
    Cli {
        /// Its arguments (no password: that goes in the environment).
        args: String,
        /// What it printed.
        output: String,
    },
    /// The `openssl` command-line program, which makes the test
    /// certificates, is not on `PATH`.
    #[error(
        "`openssl` was not found on PATH; it makes the test certificates: \
         install it with `apt-get install -y openssl`"
    )]
    OpensslNotInstalled,
    /// An `openssl` command making the test certificates failed.
    #[error("making test certificates: `{command}` failed ({status}): {stderr}")]
    Pki {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Sentinel did not reach the expected state in time.
    #[error("sentinel not ready: {0}")]
    Sentinel(String),
    /// Sending a signal with `kill(1)` failed.
    #[error("could not signal redis-server: {0}")]
    Signal(String),
}
