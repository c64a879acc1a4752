//! Which connections are alive, by serial number.
//!
//! Needed only where `SSL_free` decides about the session *before* freeing
//! the connection's ex data (OpenSSL ≥ 3.2, see [`close`](crate::close)):
//! there the remove callback tells `SSL_free`'s removal of a live
//! connection's session from an application removing a session by asking
//! whether the session belongs to a connection that is still alive. Each
//! connection gets a serial when its handshake is done; the serial is
//! written into its session's ex data (an integer: copies of the session
//! made by OpenSSL carry it harmlessly) and leaves this set when the
//! connection's ex data is freed — on ≥ 3.2 after the removal decision.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const SHARDS: usize = 8;

/// The serials of the connections alive now (sharded sets).
#[derive(Default)]
pub(crate) struct Live {
    shards: [Mutex<HashSet<u64>>; SHARDS],
}

/// The next serial; 0 is never handed out (it means "none").
static NEXT: AtomicU64 = AtomicU64::new(1);

impl Live {
    fn shard(&self, serial: u64) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        // No user code runs under the lock: a poisoned lock is consistent.
        self.shards[serial as usize % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// A new serial, alive from now on.
    pub(crate) fn enter(&self) -> u64 {
        let serial = NEXT.fetch_add(1, Ordering::Relaxed);
        self.shard(serial).insert(serial);
        serial
    }

    /// The connection of `serial` is gone.
    pub(crate) fn leave(&self, serial: u64) {
        self.shard(serial).remove(&serial);
    }

    /// Whether the connection of `serial` is alive.
    pub(crate) fn contains(&self, serial: u64) -> bool {
        serial != 0 && self.shard(serial).contains(&serial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_enter_and_leave() {
        let live = Live::default();
        let a = live.enter();
        let b = live.enter();
        assert_ne!(a, b);
        assert!(live.contains(a) && live.contains(b));
        live.leave(a);
        assert!(!live.contains(a) && live.contains(b));
        assert!(!live.contains(0));
    }
}
