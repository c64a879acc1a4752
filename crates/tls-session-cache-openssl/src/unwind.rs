//! Never unwinding into C.
//!
//! `catch_unwind` returns the panic's payload, and dropping a payload can
//! itself panic (its `Drop` is arbitrary code). Code that runs inside an
//! `extern "C"` callback uses these helpers so that not even that second
//! panic reaches OpenSSL.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Drops a caught panic payload; if dropping it panics as well, the second
/// payload is forgotten (leaked) rather than unwound into C.
pub fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

/// Runs `f` and swallows any panic it raises (see [`drop_payload`]).
///
/// ```
/// tls_session_cache_openssl::unwind::quietly(|| panic!("never leaves"));
/// ```
pub fn quietly(f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        drop_payload(payload);
    }
}
