//! `cargo xtask bench --nginx`: server CPU per connection under `openssl
//! s_time -reuse -tls1_2` with no request (every connection a TLS 1.2
//! session-id resumption, closed right after its handshake), for the example
//! server (memory store, release build) and for nginx (one worker,
//! `ssl_session_cache shared:SSL:10m`, `ssl_session_tickets off`), both on
//! one self-signed P-256 certificate made at run time, side by side in
//! interleaved rounds. CPU is utime + stime from `/proc/PID/stat` (all
//! threads; for nginx the master and its workers) divided by the
//! connections s_time made. A benchmark, not a test: nothing here passes or
//! fails on a number.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::cpu;
use crate::cargo;
use crate::error::Error;
use crate::interop::server::Server;
use crate::process;
use crate::stime::{self, Reuse};

/// How long nginx may take to listen and start its worker.
const STARTUP_DEADLINE: Duration = Duration::from_secs(10);
/// How long nginx may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long `openssl req` may take to make the certificate.
const CERT_DEADLINE: Duration = Duration::from_secs(30);

/// Options after `bench --nginx`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    /// Interleaved rounds; each server gets one s_time run per round.
    rounds: u32,
    /// `s_time -time` of each run.
    seconds: u64,
    /// The `openssl` binary (certificate and s_time).
    openssl: PathBuf,
    /// The `nginx` binary.
    nginx: PathBuf,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, Error> {
        let mut o = Options {
            rounds: 5,
            seconds: 2,
            openssl: PathBuf::from("openssl"),
            nginx: PathBuf::from("nginx"),
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if !matches!(
                flag.as_str(),
                "--rounds" | "--seconds" | "--openssl" | "--nginx-bin"
            ) {
                return Err(Error::Usage(format!(
                    "unknown flag `{flag}` for `bench --nginx`"
                )));
            }
            let value = it
                .next()
                .ok_or_else(|| Error::Usage(format!("`bench --nginx {flag}` needs a value")))?;
            let number = || {
                value.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    Error::Usage(format!(
                        "`{flag} {value}`: expected a positive whole number"
                    ))
                })
            };
            match flag.as_str() {
                "--rounds" => o.rounds = number()?,
                "--seconds" => o.seconds = u64::from(number()?),
                "--openssl" => o.openssl = PathBuf::from(value),
                _ => o.nginx = PathBuf::from(value),
            }
        }
        Ok(o)
    }
}

/// Runs the comparison and prints its table on stdout (progress on stderr).
pub fn run(args: &[String]) -> Result<(), Error> {
    let o = Options::parse(args)?;
    if o.nginx == Path::new("nginx") {
        crate::prereq::ensure(
            &[crate::prereq::NGINX, crate::prereq::OPENSSL],
            crate::prereq::Install::WhenUnattended,
        )?;
    }
    let nginx_version = nginx_version(&o.nginx)?;
    let example_bin = cargo::build_release_example("tls-session-cache-openssl", "server")?;
    let dir = TempDir::create()?;
    let (cert, key) = make_certificate(&o.openssl, &dir.0)?;
    let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());

    let example = Server::start(&example_bin, &["--cert", &cert_arg, "--key", &key_arg])?;
    let nginx = Nginx::start(&o.nginx, &dir.0, &cert, &key)?;
    let mut targets = [
        Target::new("example server (memory store)", example.addr()),
        Target::new(&format!("{nginx_version} (shared:SSL:10m)"), nginx.addr),
    ];
    let pids = |i: usize| -> Result<Vec<u32>, Error> {
        match i {
            0 => Ok(example.pid().into_iter().collect()),
            _ => nginx.pids(),
        }
    };
    for round in 0..o.rounds {
        // Alternate who goes first, so neither always runs on a warmer machine.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let measured = measure(&o, targets[i].addr, &pids(i)?)?;
            eprintln!(
                "round {}/{}: {:<40} {}",
                round + 1,
                o.rounds,
                targets[i].name,
                measured.describe()
            );
            targets[i].total.add(&measured);
        }
    }
    nginx.stop()?;
    example.stop()?;
    print_table(&targets);
    Ok(())
}

/// A server being measured and its totals.
struct Target {
    name: String,
    addr: SocketAddr,
    total: Measured,
}

impl Target {
    fn new(name: &str, addr: SocketAddr) -> Target {
        Target {
            name: name.to_string(),
            addr,
            total: Measured::default(),
        }
    }
}

/// What one or more s_time runs against one server came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Measured {
    /// Connections s_time made, the first of each run included.
    connections: u64,
    /// Connections after the first of each run.
    timed: u64,
    /// Of those, the resumed ones.
    resumed: u64,
    /// Server CPU ticks spent meanwhile.
    ticks: u64,
}

impl Measured {
    fn add(&mut self, other: &Measured) {
        self.connections += other.connections;
        self.timed += other.timed;
        self.resumed += other.resumed;
        self.ticks += other.ticks;
    }

    /// Resumed share of the timed connections, in percent.
    fn resumed_percent(&self) -> f64 {
        Reuse {
            connections: self.timed,
            reused: self.resumed,
        }
        .percent()
    }

    /// Server CPU per connection, in microseconds.
    fn cpu_micros_per_connection(&self) -> Option<f64> {
        (self.connections > 0)
            .then(|| self.ticks as f64 * cpu::tick().as_secs_f64() * 1e6 / self.connections as f64)
    }

    fn describe(&self) -> String {
        format!(
            "{} connections, {:.1} % resumed, {}",
            self.connections,
            self.resumed_percent(),
            micros(self.cpu_micros_per_connection())
        )
    }
}

fn micros(value: Option<f64>) -> String {
    value.map_or("n/a".into(), |v| format!("{v:.1} µs CPU/connection"))
}

/// One s_time run against `addr`, with the CPU of `pids` read before and after.
fn measure(o: &Options, addr: SocketAddr, pids: &[u32]) -> Result<Measured, Error> {
    let before = cpu_ticks(pids)?;
    let reuse = stime::run(&o.openssl, addr, o.seconds).map_err(Error::Bench)?;
    let after = cpu_ticks(pids)?;
    Ok(Measured {
        connections: reuse.total(),
        timed: reuse.connections,
        resumed: reuse.reused,
        ticks: after.saturating_sub(before),
    })
}

fn cpu_ticks(pids: &[u32]) -> Result<u64, Error> {
    pids.iter()
        .map(|&pid| cpu::ticks(pid))
        .sum::<Result<u64, String>>()
        .map_err(Error::Bench)
}

/// The table on stdout: one row per server, then the ratio.
fn print_table(targets: &[Target; 2]) {
    let headers = ["server", "connections", "resumed", "CPU µs/connection"];
    let rows: Vec<[String; 4]> = targets
        .iter()
        .map(|t| {
            [
                t.name.clone(),
                t.total.connections.to_string(),
                format!("{:.1} %", t.total.resumed_percent()),
                t.total
                    .cpu_micros_per_connection()
                    .map_or("n/a".into(), |v| format!("{v:.1}")),
            ]
        })
        .collect();
    let mut widths = headers.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                let pad = w.saturating_sub(c.chars().count());
                // Numbers are right-aligned.
                if i == 0 {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect();
        println!("{}", padded.join(" | ").trim_end());
    };
    line(headers);
    println!("{}", widths.map(|w| "-".repeat(w)).join("-+-"));
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3]]);
    }
    let per = |t: &Target| t.total.cpu_micros_per_connection();
    match (per(&targets[0]), per(&targets[1])) {
        (Some(example), Some(nginx)) if nginx > 0.0 => {
            println!(
                "\nCPU per connection, example/nginx: {:.2}×",
                example / nginx
            )
        }
        _ => println!("\nCPU per connection, example/nginx: n/a (no CPU measured for nginx)"),
    }
}

/// `nginx version: nginx/1.22.1` → `nginx/1.22.1`; an error saying how to
/// install nginx if it does not run.
fn nginx_version(nginx: &Path) -> Result<String, Error> {
    let missing = |why: String| {
        Error::Missing(format!(
            "`{} -v` {why}: install nginx (`apt-get install nginx-light`) or pass \
             `--nginx-bin PATH`",
            nginx.display()
        ))
    };
    let out = Command::new(nginx)
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| missing(format!("could not run ({e})")))?;
    if !out.status.success() {
        return Err(missing(format!("failed ({})", out.status)));
    }
    // nginx prints its version on stderr.
    let text = String::from_utf8_lossy(&out.stderr);
    Ok(text
        .trim()
        .rsplit(": ")
        .next()
        .unwrap_or("nginx")
        .to_string())
}

/// A self-signed P-256 certificate for `localhost` (the key type the
/// example server makes for itself) in `dir`: `(cert.pem, key.pem)`.
fn make_certificate(openssl: &Path, dir: &Path) -> Result<(PathBuf, PathBuf), Error> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mut cmd = Command::new(openssl);
    cmd.args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert);
    let done =
        process::run_with_deadline(cmd, b"", CERT_DEADLINE).map_err(|source| Error::Spawn {
            program: openssl.display().to_string(),
            source,
        })?;
    if done.timed_out || !done.status.is_some_and(|s| s.success()) {
        return Err(Error::Bench(format!(
            "`openssl req` could not make a certificate: {}",
            done.stderr.trim()
        )));
    }
    Ok((cert, key))
}

/// The nginx configuration: one worker, TLS on `addr` with `cert`/`key`,
/// the shared session cache without tickets; everything it writes goes
/// into `dir`.
fn config(dir: &Path, addr: SocketAddr, cert: &Path, key: &Path) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen {addr} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets off;
        ssl_session_timeout 5m;
        location / {{ return 200 \"ok\\n\"; }}
    }}
}}
",
        cert = cert.display(),
        key = key.display()
    )
}

/// A foreground nginx (`-p DIR -c nginx.conf -g 'daemon off;'`), stopped
/// with SIGTERM when dropped.
struct Nginx {
    child: Option<Child>,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Nginx {
    /// Writes the configuration for a free loopback port into `dir`, starts
    /// nginx and waits until it accepts connections and has its worker.
    fn start(nginx: &Path, dir: &Path, cert: &Path, key: &Path) -> Result<Nginx, Error> {
        let addr = free_loopback_port().map_err(|e| Error::Bench(format!("free port: {e}")))?;
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(dir, addr, cert, key)).map_err(|source| Error::File {
            path: conf.display().to_string(),
            source,
        })?;
        let stderr_path = dir.join("stderr.log");
        let stderr = File::create(&stderr_path).map_err(|source| Error::File {
            path: stderr_path.display().to_string(),
            source,
        })?;
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|source| Error::Spawn {
                program: nginx.display().to_string(),
                source,
            })?;
        let mut server = Nginx {
            child: Some(child),
            addr,
            dir: dir.to_path_buf(),
        };
        server.wait_ready()?;
        eprintln!("    started nginx on {addr} (config {})", conf.display());
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<(), Error> {
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(Error::Bench(format!(
                    "nginx exited ({status}){}",
                    self.logs()
                )));
            }
            let listening = TcpStream::connect(self.addr).is_ok();
            if listening && self.pids().is_ok_and(|p| p.len() > 1) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Bench(format!(
                    "nginx not ready on {} within {} s{}",
                    self.addr,
                    STARTUP_DEADLINE.as_secs(),
                    self.logs()
                )));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The master and its workers.
    fn pids(&self) -> Result<Vec<u32>, Error> {
        let master = self
            .child
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| Error::Bench("nginx is not running".into()))?;
        let mut pids = vec![master];
        pids.extend(cpu::children(master));
        Ok(pids)
    }

    /// nginx's stderr and error log, for error messages.
    fn logs(&self) -> String {
        ["stderr.log", "error.log"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(self.dir.join(f)).ok())
            .filter(|text| !text.trim().is_empty())
            .map(|text| {
                format!(
                    "\n    nginx: {}",
                    text.trim().replace('\n', "\n    nginx: ")
                )
            })
            .collect()
    }

    /// SIGTERM (nginx's fast shutdown), SIGKILL after a grace period.
    fn stop(mut self) -> Result<(), Error> {
        let Some(child) = self.child.take() else {
            return Ok(());
        };
        match process::terminate(child, STOP_GRACE) {
            (_, false) => Ok(()),
            (_, true) => Err(Error::Bench(format!(
                "nginx still running {} s after SIGTERM, killed{}",
                STOP_GRACE.as_secs(),
                self.logs()
            ))),
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = process::terminate(child, STOP_GRACE);
        }
    }
}

/// A loopback address whose port was free a moment ago (nginx cannot be
/// told to pick one and report it).
fn free_loopback_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// A directory for the certificate and nginx's files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> Result<TempDir, Error> {
        let dir = std::env::temp_dir().join(format!("xtask-bench-nginx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| Error::File {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_flags_and_rejects_bad_ones() {
        let o = Options::parse(&args(&["--rounds", "3", "--seconds", "1"])).unwrap();
        assert_eq!((o.rounds, o.seconds), (3, 1));
        assert_eq!(o.nginx, PathBuf::from("nginx"));
        assert!(Options::parse(&args(&["--rounds", "0"])).is_err());
        assert!(Options::parse(&args(&["--rounds"])).is_err());
        assert!(Options::parse(&args(&["--fast"])).is_err());
    }

    #[test]
    fn the_config_has_one_worker_a_shared_cache_and_no_tickets() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 4433));
        let conf = config(
            Path::new("/tmp/x"),
            addr,
            Path::new("/tmp/x/c.pem"),
            Path::new("/tmp/x/k.pem"),
        );
        for line in [
            "worker_processes 1;",
            "listen 127.0.0.1:4433 ssl;",
            "ssl_session_cache shared:SSL:10m;",
            "ssl_session_tickets off;",
            "ssl_certificate /tmp/x/c.pem;",
        ] {
            assert!(conf.contains(line), "{line}");
        }
    }

    #[test]
    fn cpu_per_connection_adds_up_over_rounds() {
        let mut total = Measured::default();
        let round = Measured {
            connections: 101,
            timed: 100,
            resumed: 99,
            ticks: 0,
        };
        total.add(&round);
        total.add(&round);
        assert_eq!(total.connections, 202);
        assert!((total.resumed_percent() - 99.0).abs() < 1e-9);
        assert_eq!(total.cpu_micros_per_connection(), Some(0.0));
        assert_eq!(Measured::default().cpu_micros_per_connection(), None);
    }
}
