//! One table row built from labelled s_client runs against one or more
//! servers, rendered as `A New, B Reused, A New` (consecutive runs with the
//! same label are grouped; a label without runs, like `restart`, marks a
//! moment between them).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use super::check::{Check, TLS12, TLS13, render, saved, wrong_protocols};
use super::context::Context;
use super::sclient::{Handshake, SClient};
use super::server::Server;

/// The TLS version of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// TLS 1.2 with session-id resumption (`-tls1_2 -no_ticket`).
    Tls12,
    /// TLS 1.3 with the server's stateful tickets (`-tls1_3`).
    Tls13,
}

impl Version {
    /// Both versions, in row order.
    pub const BOTH: [Version; 2] = [Version::Tls12, Version::Tls13];

    /// `TLSv1.2` / `TLSv1.3`, as s_client prints it.
    pub fn name(self) -> &'static str {
        match self {
            Version::Tls12 => TLS12,
            Version::Tls13 => TLS13,
        }
    }

    /// A scratch file name for this version's saved session: `{stem}-12.sess`.
    pub fn session_file(self, stem: &str) -> String {
        match self {
            Version::Tls12 => format!("{stem}-12.sess"),
            Version::Tls13 => format!("{stem}-13.sess"),
        }
    }

    /// An s_client aimed at `addr` for this version (TLS 1.2: session ids only).
    pub fn client(self, ctx: &Context, addr: SocketAddr) -> SClient {
        match self {
            Version::Tls12 => ctx.client(addr).tls12_session_id(),
            Version::Tls13 => ctx.client(addr).tls13(),
        }
    }
}

/// The labelled handshakes of one row.
pub struct Steps<'a> {
    ctx: &'a Context,
    version: Version,
    groups: Vec<(String, Vec<Handshake>)>,
    slowest: Duration,
}

impl<'a> Steps<'a> {
    /// No runs yet.
    pub fn new(ctx: &'a Context, version: Version) -> Steps<'a> {
        Steps {
            ctx,
            version,
            groups: Vec::new(),
            slowest: Duration::ZERO,
        }
    }

    /// A handshake with `server` that saves the session it gets in `file`
    /// (for TLS 1.3: the ticket); an error if none arrives.
    pub fn issue(&mut self, label: &str, server: &Server, file: &Path) -> Result<(), String> {
        // A file left by an earlier run would hide a missing ticket.
        let _ = std::fs::remove_file(file);
        let client = self.version.client(self.ctx, server.addr()).sess_out(file);
        self.run(label, server, client)?;
        saved(file)
    }

    /// Like [`Steps::issue`], with a server whose store refuses sessions
    /// (Redis down or unreachable). A server that sends a TLS 1.3 ticket
    /// only when its store kept the session (rustls) must send none then:
    /// its handshake is recorded under `no_ticket_label` and `Ok(false)`
    /// returned (nothing to offer). Every other case is [`Steps::issue`],
    /// `Ok(true)`.
    pub fn issue_refused(
        &mut self,
        label: &str,
        no_ticket_label: &str,
        server: &Server,
        file: &Path,
    ) -> Result<bool, String> {
        if !(self.ctx.ticket_only_when_stored && self.version == Version::Tls13) {
            self.issue(label, server, file)?;
            return Ok(true);
        }
        let _ = std::fs::remove_file(file);
        let client = self.version.client(self.ctx, server.addr()).sess_out(file);
        self.run(no_ticket_label, server, client)?;
        match saved(file) {
            Err(_) => Ok(false),
            // A ticket now means the store kept the session after all
            // (a recovered store): issued like any other.
            Ok(()) => {
                if let Some((_, handshakes)) = self.groups.pop() {
                    self.push(label, handshakes);
                }
                Ok(true)
            }
        }
    }

    /// A handshake with `server` offering the session saved in `file`;
    /// `true` if it was `Reused`.
    pub fn offer(&mut self, label: &str, server: &Server, file: &Path) -> Result<bool, String> {
        let client = self.version.client(self.ctx, server.addr()).sess_in(file);
        let handshakes = self.run(label, server, client)?;
        Ok(handshakes.last().is_some_and(|h| h.reused))
    }

    /// Adds handshakes made outside [`Steps::issue`] and [`Steps::offer`]
    /// (like an idle s_client's) under `label`.
    pub fn record(&mut self, label: &str, handshakes: Vec<Handshake>) {
        self.push(label, handshakes);
    }

    /// Marks a moment between runs, like `restart`.
    pub fn mark(&mut self, label: &str) {
        self.groups.push((label.to_string(), Vec::new()));
    }

    /// Appends the runs of `other` (same version) after these.
    pub fn extend(&mut self, other: Steps<'_>) {
        for (label, handshakes) in other.groups {
            self.push(&label, handshakes);
        }
        self.slowest = self.slowest.max(other.slowest);
    }

    /// The TLS version of these runs.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The longest single s_client run so far.
    pub fn slowest(&self) -> Duration {
        self.slowest
    }

    /// `A New, B Reused, …`.
    pub fn observed(&self) -> String {
        self.groups
            .iter()
            .map(
                |(label, handshakes)| match (label.is_empty(), handshakes.is_empty()) {
                    (true, _) => render(handshakes),
                    (false, true) => label.clone(),
                    (false, false) => format!("{label} {}", render(handshakes)),
                },
            )
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// PASS when the rendered runs equal `expected`, every handshake used
    /// this row's version, and `problems` is empty. A `note` (timings,
    /// attempts) is shown after the observed runs but not compared.
    pub fn check(&self, expected: &str, note: Option<String>, problems: Vec<String>) -> Check {
        let protocol = self.version.name();
        let seen: Vec<Handshake> = self.groups.iter().flat_map(|(_, h)| h.clone()).collect();
        let mut all = wrong_protocols(&seen, protocol);
        all.extend(problems);
        let mut check = Check::compare(protocol, expected, self.observed(), all);
        if let Some(note) = note {
            check.observed = format!("{} ({note})", check.observed);
        }
        check
    }

    fn run(
        &mut self,
        label: &str,
        server: &Server,
        client: SClient,
    ) -> Result<Vec<Handshake>, String> {
        let started = Instant::now();
        let outcome = client
            .run()
            .map_err(|e| format!("{label}: {e}{}", server.log_excerpt()))?;
        self.slowest = self.slowest.max(started.elapsed());
        self.push(label, outcome.handshakes.clone());
        Ok(outcome.handshakes)
    }

    fn push(&mut self, label: &str, handshakes: Vec<Handshake>) {
        match self.groups.last_mut() {
            Some((last, seen)) if last == label && !seen.is_empty() && !handshakes.is_empty() => {
                seen.extend(handshakes)
            }
            _ => self.groups.push((label.to_string(), handshakes)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn hs(reused: bool, protocol: &str) -> Vec<Handshake> {
        vec![Handshake {
            reused,
            protocol: protocol.into(),
            offered: reused,
        }]
    }

    fn ctx() -> Context {
        Context::new(PathBuf::from("openssl"), PathBuf::from("server")).unwrap()
    }

    #[test]
    fn runs_are_grouped_by_label_and_marks_stand_alone() {
        let ctx = ctx();
        let mut steps = Steps::new(&ctx, Version::Tls13);
        steps.push("A", hs(false, TLS13));
        steps.push("B", hs(true, TLS13));
        steps.push("A", hs(false, TLS13));
        assert_eq!(steps.observed(), "A New, B Reused, A New");
        assert!(
            steps
                .check("A New, B Reused, A New", None, vec![])
                .failure
                .is_none()
        );

        let mut down = Steps::new(&ctx, Version::Tls12);
        down.push("", hs(false, TLS12));
        down.mark("restart");
        for _ in 0..3 {
            down.push("down:", hs(false, TLS12));
        }
        assert_eq!(down.observed(), "New, restart, down: New×3");
    }

    #[test]
    fn a_note_is_shown_but_not_compared_and_a_wrong_version_fails() {
        let ctx = ctx();
        let mut steps = Steps::new(&ctx, Version::Tls12);
        steps.push("A", hs(false, TLS12));
        let check = steps.check("A New", Some("0.05 s".into()), vec![]);
        assert_eq!(check.observed, "A New (0.05 s)");
        assert!(check.failure.is_none());

        let check = steps.check("A New", None, vec!["/stats errors=0".into()]);
        assert_eq!(check.failure.as_deref(), Some("/stats errors=0"));

        steps.push("A", hs(true, TLS13));
        let check = steps.check("A New, Reused", None, vec![]);
        assert!(check.failure.unwrap().contains("negotiated TLSv1.3"));
    }
}
