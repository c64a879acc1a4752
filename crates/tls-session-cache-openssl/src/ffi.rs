//! OpenSSL functions `openssl-sys` 0.9 does not declare. All exist in
//! OpenSSL ≥ 1.1.1, which is the oldest version this crate supports.

use std::ffi::{c_int, c_long, c_uchar, c_uint, c_void};

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::ssl::{SslSession, SslSessionRef};
use openssl_sys::{SSL, SSL_CTX, SSL_SESSION};

/// `void (*)(const SSL *ssl, int where, int ret)` — the info callback.
pub type InfoCallback = unsafe extern "C" fn(*const SSL, c_int, c_int);

/// `SSL_CB_HANDSHAKE_START`: a handshake is about to begin.
pub const SSL_CB_HANDSHAKE_START: c_int = 0x10;
/// `SSL_CB_HANDSHAKE_DONE`: a handshake has finished.
pub const SSL_CB_HANDSHAKE_DONE: c_int = 0x20;

unsafe extern "C" {
    pub fn SSL_CTX_set_info_callback(ctx: *mut SSL_CTX, cb: Option<InfoCallback>);
    pub fn SSL_CTX_get_info_callback(ctx: *mut SSL_CTX) -> Option<InfoCallback>;
    pub fn SSL_set_info_callback(ssl: *mut SSL, cb: Option<InfoCallback>);
    pub fn SSL_get_info_callback(ssl: *const SSL) -> Option<InfoCallback>;
    /// `uint64_t` in OpenSSL 3, `unsigned long` in 1.1.1: 64 bits on the
    /// LP64 platforms this crate is built for.
    pub fn SSL_get_options(ssl: *const SSL) -> u64;
    pub fn SSL_CTX_set_timeout(ctx: *mut SSL_CTX, t: c_long) -> c_long;
    pub fn SSL_SESSION_get0_id_context(s: *const SSL_SESSION, len: *mut c_uint) -> *const c_uchar;
    pub fn SSL_in_init(s: *const SSL) -> c_int;
    pub fn SSL_in_before(s: *const SSL) -> c_int;
    pub fn SSL_SESSION_dup(src: *const SSL_SESSION) -> *mut SSL_SESSION;
    pub fn SSL_SESSION_set_ex_data(s: *mut SSL_SESSION, idx: c_int, data: *mut c_void) -> c_int;
    pub fn SSL_SESSION_get_ex_data(s: *const SSL_SESSION, idx: c_int) -> *mut c_void;
}

/// `CRYPTO_EX_INDEX_SSL_SESSION`.
pub const CRYPTO_EX_INDEX_SSL_SESSION: c_int = 2;

/// A new session object with `session`'s contents (`SSL_SESSION_dup`),
/// owned by no one but the caller; `None` if OpenSSL could not allocate.
pub(crate) fn dup_session(session: &SslSessionRef) -> Option<SslSession> {
    // SAFETY: `session` is live; SSL_SESSION_dup returns a new object with
    // one reference (or null), which `from_ptr` takes over.
    unsafe {
        let copy = SSL_SESSION_dup(session.as_ptr());
        (!copy.is_null()).then(|| SslSession::from_ptr(copy))
    }
}

/// The session-id context recorded in a session.
///
/// # Safety
/// `sess` is a live session; the slice must not outlive it.
pub(crate) unsafe fn session_context<'a>(sess: *const SSL_SESSION) -> &'a [u8] {
    let mut len: c_uint = 0;
    // SAFETY: returns a pointer into the session and its length.
    let p = unsafe { SSL_SESSION_get0_id_context(sess, &mut len) };
    if p.is_null() || len == 0 {
        return &[];
    }
    unsafe { std::slice::from_raw_parts(p, len as usize) }
}

#[cfg(test)]
unsafe extern "C" {
    pub fn SSL_SESSION_new() -> *mut SSL_SESSION;
    pub fn SSL_SESSION_set1_id(s: *mut SSL_SESSION, sid: *const c_uchar, len: c_uint) -> c_int;
}
