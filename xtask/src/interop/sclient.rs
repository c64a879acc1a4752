//! `openssl s_client` runs: command line, deadline, and parsing of what it
//! printed (`New, TLSv1.x` / `Reused, TLSv1.x` per handshake) and of the
//! example server's HTTP answer.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process;

/// How long one s_client run may take before it is killed.
const DEADLINE: Duration = Duration::from_secs(10);
/// Handshakes `s_client -reconnect` makes: the first plus five reconnects.
pub const RECONNECT_HANDSHAKES: usize = 6;
/// How long an idle s_client's saved session must stay unchanged before the
/// ticket flight is taken as over (OpenSSL servers send two TLS 1.3 tickets
/// back to back; each overwrites the `-sess_out` file).
const SESSION_SETTLE: Duration = Duration::from_millis(200);
/// How often an idle s_client's output and session file are looked at.
const IDLE_POLL: Duration = Duration::from_millis(10);
/// The last line of a session PEM that s_client writes with `-sess_out`.
const SESSION_PEM_END: &str = "-----END SSL SESSION PARAMETERS-----";

/// One `openssl s_client` invocation, built up flag by flag.
#[derive(Clone, Debug)]
pub struct SClient {
    openssl: PathBuf,
    args: Vec<String>,
    offers_session: bool,
    reconnect: bool,
    path: String,
}

/// One completed handshake as s_client reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// `Reused` (true) or `New` (false).
    pub reused: bool,
    /// `TLSv1.2`, `TLSv1.3`, ….
    pub protocol: String,
    /// The client offered a saved session in this handshake.
    pub offered: bool,
}

/// What one s_client run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Every handshake, in order (more than one with `-reconnect`).
    pub handshakes: Vec<Handshake>,
    /// The JSON body of the server's HTTP answer (sent on the last connection).
    pub body: Value,
}

impl SClient {
    /// `openssl s_client -connect ADDR -servername localhost -ign_eof`,
    /// sending `GET /` and waiting until the server closes the connection
    /// (so TLS 1.3 NewSessionTickets sent after the handshake are received).
    pub fn new(openssl: &Path, addr: SocketAddr) -> SClient {
        let args = ["s_client", "-connect", &addr.to_string()]
            .into_iter()
            .chain(["-servername", "localhost", "-ign_eof"])
            .map(String::from)
            .collect();
        SClient {
            openssl: openssl.to_path_buf(),
            args,
            offers_session: false,
            reconnect: false,
            path: "/".into(),
        }
    }

    fn arg(mut self, a: &str) -> SClient {
        self.args.push(a.to_string());
        self
    }

    /// TLS 1.2 with session-id resumption only: `-tls1_2 -no_ticket`.
    pub fn tls12_session_id(self) -> SClient {
        self.arg("-tls1_2").arg("-no_ticket")
    }

    /// TLS 1.3: `-tls1_3`.
    pub fn tls13(self) -> SClient {
        self.arg("-tls1_3")
    }

    /// Save the session (the last ticket, for TLS 1.3) to `file`: `-sess_out`.
    pub fn sess_out(self, file: &Path) -> SClient {
        self.arg("-sess_out").arg(&file.display().to_string())
    }

    /// Offer the session saved in `file`: `-sess_in`.
    pub fn sess_in(mut self, file: &Path) -> SClient {
        self.offers_session = true;
        self.arg("-sess_in").arg(&file.display().to_string())
    }

    /// Reconnect five times offering the previous session: `-reconnect`.
    pub fn reconnect(mut self) -> SClient {
        self.reconnect = true;
        self.arg("-reconnect")
    }

    /// Request `path` instead of `/`.
    pub fn path(mut self, path: &str) -> SClient {
        self.path = path.to_string();
        self
    }

    /// Runs s_client and parses its output. The server's `/` answer is
    /// cross-checked against what s_client saw on the last connection: a
    /// disagreement on `resumed` or `protocol` is an error.
    pub fn run(&self) -> Result<Outcome, String> {
        let outcome = self.run_raw()?;
        if self.path == "/" {
            cross_check(&outcome)?;
        }
        Ok(outcome)
    }

    /// Starts s_client with its stdin held open and nothing to send: it
    /// completes the handshake, reads whatever the server sends (TLS 1.3
    /// tickets, saved with `-sess_out`) and waits, as a preconnecting
    /// browser does, until [`IdleClient::kill`].
    pub fn start_idle(&self) -> Result<IdleClient, String> {
        let mut child = Command::new(&self.openssl)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", self.openssl.display()))?;
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let readers = vec![
            collect(child.stdout.take(), Arc::clone(&stdout)),
            collect(child.stderr.take(), Arc::clone(&stderr)),
        ];
        Ok(IdleClient {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            readers,
            command: format!("openssl {}", self.args.join(" ")),
        })
    }

    fn run_raw(&self) -> Result<Outcome, String> {
        let mut cmd = Command::new(&self.openssl);
        cmd.args(&self.args);
        let request = format!("GET {} HTTP/1.1\r\nHost: localhost\r\n\r\n", self.path);
        let done = process::run_with_deadline(cmd, request.as_bytes(), DEADLINE)
            .map_err(|e| format!("could not start {}: {e}", self.openssl.display()))?;
        let context = || {
            format!(
                "`openssl {}`, exit {}; stderr: {}",
                self.args.join(" "),
                done.status.map_or("unknown".into(), |s| s.to_string()),
                last_lines(&done.stderr, 6)
            )
        };
        if done.timed_out {
            return Err(format!(
                "s_client still running after {} s, killed ({})",
                DEADLINE.as_secs(),
                context()
            ));
        }
        let mut handshakes = parse_handshakes(&done.stdout);
        if handshakes.is_empty() {
            return Err(format!("no completed handshake ({})", context()));
        }
        for (i, h) in handshakes.iter_mut().enumerate() {
            h.offered = if i == 0 {
                self.offers_session
            } else {
                self.reconnect
            };
        }
        let body = parse_http_body(&done.stdout).map_err(|e| format!("{e} ({})", context()))?;
        Ok(Outcome { handshakes, body })
    }
}

/// An s_client started by [`SClient::start_idle`]: connected, idle, its
/// stdin open. Killed on drop.
pub struct IdleClient {
    child: Child,
    /// Held open so that s_client keeps waiting; never written.
    stdin: Option<ChildStdin>,
    /// What s_client printed so far, on stdout and on stderr.
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Reading stdout and stderr until s_client exits.
    readers: Vec<JoinHandle<()>>,
    command: String,
}

impl IdleClient {
    /// Waits until s_client has printed its handshake and saved a complete
    /// session in `file` (its `-sess_out`) that then stays unchanged for
    /// [`SESSION_SETTLE`]: for TLS 1.3, the last ticket of the flight.
    /// Bounded by the s_client deadline.
    pub fn wait_for_session(&mut self, file: &Path) -> Result<(), String> {
        let started = Instant::now();
        let mut last: Option<(String, Instant)> = None;
        loop {
            let printed = !parse_handshakes(&text(&self.stdout)).is_empty();
            let saved = std::fs::read_to_string(file)
                .ok()
                .filter(|pem| pem.contains(SESSION_PEM_END));
            last = match (last, saved) {
                (Some((seen, since)), Some(now)) if seen == now => {
                    if printed && since.elapsed() >= SESSION_SETTLE {
                        return Ok(());
                    }
                    Some((seen, since))
                }
                (_, saved) => saved.map(|pem| (pem, Instant::now())),
            };
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "`{}` exited ({status}) before saving a session in {}; stderr: {}",
                    self.command,
                    file.display(),
                    last_lines(&text(&self.stderr), 6)
                ));
            }
            if started.elapsed() >= DEADLINE {
                return Err(format!(
                    "`{}` saved no complete session in {} within {} s (printed a handshake: {printed})",
                    self.command,
                    file.display(),
                    DEADLINE.as_secs()
                ));
            }
            thread::sleep(IDLE_POLL);
        }
    }

    /// SIGKILL: s_client ends without a request and without close_notify
    /// (its kernel closes the socket). Returns the handshakes it printed.
    pub fn kill(mut self) -> Vec<Handshake> {
        self.stop();
        parse_handshakes(&text(&self.stdout))
    }

    /// Kills s_client, reaps it and waits for its pipes to be read to the end.
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdin = None;
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for IdleClient {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Appends everything read from `pipe` to `sink` as it arrives, so that it
/// can be looked at while the program runs.
fn collect(pipe: Option<impl Read + Send + 'static>, sink: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let Some(mut pipe) = pipe else {
            return;
        };
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if let Ok(mut sink) = sink.lock() {
                sink.extend_from_slice(&chunk[..n]);
            }
        }
    })
}

/// The bytes collected so far, as lossy UTF-8.
fn text(collected: &Mutex<Vec<u8>>) -> String {
    let bytes = collected.lock().map(|b| b.clone()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The server's JSON `resumed`/`protocol` must match s_client's last line.
fn cross_check(outcome: &Outcome) -> Result<(), String> {
    let Some(last) = outcome.handshakes.last() else {
        return Err("no handshake".into());
    };
    let resumed = outcome.body["resumed"]
        .as_bool()
        .ok_or_else(|| format!("server body has no boolean `resumed`: {}", outcome.body))?;
    let protocol = outcome.body["protocol"]
        .as_str()
        .ok_or_else(|| format!("server body has no string `protocol`: {}", outcome.body))?;
    if resumed != last.reused || protocol != last.protocol {
        return Err(format!(
            "s_client and server disagree: s_client `{}, {}`, server {}",
            word(last.reused),
            last.protocol,
            outcome.body
        ));
    }
    Ok(())
}

/// `New`/`Reused`.
pub fn word(reused: bool) -> &'static str {
    if reused { "Reused" } else { "New" }
}

/// The lines `New, TLSv1.3, Cipher is …` / `Reused, TLSv1.2, Cipher is …`
/// before the HTTP answer (a body could contain such lines; `s_server -www`'s
/// does). A failed handshake prints `New, (NONE), …` and is not a handshake.
fn parse_handshakes(stdout: &str) -> Vec<Handshake> {
    let before_answer = stdout.find("HTTP/1.").map_or(stdout, |at| &stdout[..at]);
    before_answer
        .lines()
        .filter_map(|line| {
            let (kind, rest) = line.split_once(", ")?;
            let reused = match kind {
                "New" => false,
                "Reused" => true,
                _ => return None,
            };
            let protocol = rest.split(',').next()?.trim();
            if !protocol.starts_with("TLSv") {
                return None;
            }
            Some(Handshake {
                reused,
                protocol: protocol.to_string(),
                offered: false,
            })
        })
        .collect()
}

/// The JSON body of the (last) `HTTP/1.1 200 OK` answer in s_client's output.
fn parse_http_body(stdout: &str) -> Result<Value, String> {
    let at = stdout
        .rfind("HTTP/1.1 ")
        .ok_or("no HTTP answer from the server")?;
    let answer = &stdout[at..];
    let status_line = answer.lines().next().unwrap_or_default();
    if !status_line.starts_with("HTTP/1.1 200") {
        return Err(format!("server answered `{}`", status_line.trim_end()));
    }
    let body_at = answer
        .find("\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| answer.find("\n\n").map(|i| i + 2))
        .ok_or("HTTP answer without a body")?;
    // s_client may print `closed` etc. after the body: read one JSON value.
    serde_json::Deserializer::from_str(&answer[body_at..])
        .into_iter::<Value>()
        .next()
        .ok_or("empty HTTP body".to_string())?
        .map_err(|e| format!("HTTP body is not JSON: {e}"))
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(n)..];
    if tail.is_empty() {
        "(empty)".into()
    } else {
        tail.join(" | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TLS13_RUN: &str = "CONNECTED(00000003)\n---\nNew, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384\nServer public key is 256 bit\n---\nPost-Handshake New Session Ticket arrived:\nSSL-Session:\n    Protocol  : TLSv1.3\n---\nHTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"resumed\":false,\"protocol\":\"TLSv1.3\",\"session_id\":\"ab\"}\nclosed\n";

    #[test]
    fn parses_handshake_lines_and_body() {
        let hs = parse_handshakes(TLS13_RUN);
        assert_eq!(hs.len(), 1);
        assert!(!hs[0].reused);
        assert_eq!(hs[0].protocol, "TLSv1.3");
        let body = parse_http_body(TLS13_RUN).unwrap();
        assert_eq!(body["resumed"], false);
        let outcome = Outcome {
            handshakes: hs,
            body,
        };
        assert!(cross_check(&outcome).is_ok());
    }

    #[test]
    fn disagreement_between_client_and_server_is_an_error() {
        let outcome = Outcome {
            handshakes: vec![Handshake {
                reused: true,
                protocol: "TLSv1.3".into(),
                offered: true,
            }],
            body: serde_json::json!({"resumed": false, "protocol": "TLSv1.3"}),
        };
        assert!(cross_check(&outcome).unwrap_err().contains("disagree"));
    }

    #[test]
    fn reconnect_output_has_one_line_per_handshake_and_failures_are_not_handshakes() {
        let out = "New, TLSv1.2, Cipher is X\ndrop connection and then reconnect\nReused, TLSv1.2, Cipher is X\nNew, (NONE), Cipher is (NONE)\nHTTP/1.0 200 ok\r\n\r\nReused, TLSv1.2, Cipher is X\n";
        let hs = parse_handshakes(out);
        assert_eq!(
            hs.iter().map(|h| h.reused).collect::<Vec<_>>(),
            vec![false, true]
        );
    }

    #[test]
    fn non_200_and_non_json_answers_are_errors() {
        assert!(parse_http_body("HTTP/1.1 404 Not Found\r\n\r\n{}").is_err());
        assert!(parse_http_body("HTTP/1.1 200 OK\r\n\r\nhello").is_err());
        assert!(parse_http_body("nothing").is_err());
    }
}
