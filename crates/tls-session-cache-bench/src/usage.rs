//! The command line's usage text, below the arguments' parser and the
//! error type that prints it.

/// How to call the benchmark.
pub const USAGE: &str = "\
usage: handshake-bench [--seconds S] [--rounds N] [--json FILE] [--svg FILE]
                       [--pool N] [--config C,...] [--protocol 1.2|1.3] [--no-extras]
                       [--load] [--concurrency N] [--server-threads K] [--redis-delay-ms MS]
                       [--redis-bytes] [--redis-sessions N]

  --seconds S     seconds per configuration per round (default 1)
  --rounds N      interleaved rounds (default 9, at least 1)
  --json FILE     write the results as JSON
  --svg FILE      write a bar chart of handshakes/s
  --pool N        sessions (TLS 1.2) / tickets (TLS 1.3) the client cycles through (default 32)
  --config C,...  only these of full,internal,memory,tiered,redis (for profiling)
                  and of the load group blocking-redis,async-redis,blocking-redis-slow,
                  async-redis-slow (`load` = all four)
  --protocol P    only TLS 1.2 or only TLS 1.3 (for profiling)
  --no-extras     skip the lookup-cost and bytes-per-session measurements

bytes per session in Redis (part of the extras; previous vs compact key format):
  --redis-bytes       only this measurement: no handshakes, no other extras (~15 s)
  --redis-sessions N  sessions stored per protocol and format (default 100000; 0 = skip)

concurrent load (blocking callback vs async lookup on Redis; not in the default run):
  --load          add the four load configurations to the run (~75 s more by default)
  --concurrency N simultaneous client connections (default 16)
  --server-threads K  threads of the blocking server = tokio workers of the async one (default 2)
  --redis-delay-ms MS delay added to every Redis reply in the -slow configurations (default 1)
  the pool per client is ceil(--pool / --concurrency) sessions";
