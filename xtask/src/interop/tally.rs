//! What the scenarios did to one server, to compare with its `/stats`.

use super::sclient::Handshake;

/// Handshakes seen by s_client against one server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Completed handshakes.
    pub handshakes: u64,
    /// Handshakes s_client reported `Reused`.
    pub reused: u64,
    /// Handshakes in which the client offered a saved session; each makes
    /// the server look the session up once.
    pub offers: u64,
}

impl Tally {
    /// Adds the handshakes of one s_client run.
    pub fn count(&mut self, handshakes: &[Handshake]) {
        for h in handshakes {
            self.handshakes += 1;
            self.reused += u64::from(h.reused);
            self.offers += u64::from(h.offered);
        }
    }

    /// Handshakes s_client reported `New`.
    pub fn full(&self) -> u64 {
        self.handshakes - self.reused
    }

    /// Offers the server could not resume.
    pub fn misses(&self) -> u64 {
        self.offers - self.reused
    }
}
