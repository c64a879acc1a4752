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
use std::ffi::c_int;
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use once_cell::sync::Lazy;
use openssl_sys::SSL;

/// The `SSL` ex-data slot of a connection's serial: an integer stored in
/// the pointer (never dereferenced, nothing to free, so no free function);
/// negative if OpenSSL could not register it (then no serials are kept).
static CONN_SERIAL: Lazy<c_int> = Lazy::new(|| {
    // SAFETY: registers an index with no new, dup or free function.
    unsafe { openssl_sys::SSL_get_ex_new_index(0, ptr::null_mut(), None, None, None) }
});

/// The connection's serial (0: none yet).
///
/// # Safety
/// `ssl` is a live `SSL` (or one inside `SSL_free`'s ex-data loop).
pub(crate) unsafe fn conn_serial(ssl: *mut SSL) -> u64 {
    let index = *CONN_SERIAL;
    if index < 0 {
        return 0;
    }
    // SAFETY: `ssl` is live; the slot holds an integer, never a pointer.
    unsafe { openssl_sys::SSL_get_ex_data(ssl, index) }.addr() as u64
}

/// Records the connection's serial.
///
/// # Safety
/// `ssl` is a live `SSL`.
pub(crate) unsafe fn set_conn_serial(ssl: *mut SSL, serial: u64) {
    let index = *CONN_SERIAL;
    if index >= 0 {
        // An integer in the pointer: nothing to free.
        // SAFETY: `ssl` is live; the index is ours.
        unsafe {
            openssl_sys::SSL_set_ex_data(ssl, index, ptr::without_provenance_mut(serial as usize))
        };
    }
}

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
