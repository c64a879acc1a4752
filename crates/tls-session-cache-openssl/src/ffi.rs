//! OpenSSL functions `openssl-sys` 0.9 does not declare. All exist in
//! OpenSSL ≥ 1.1.1, which is the oldest version this crate supports.

use std::ffi::{c_int, c_long, c_uchar, c_uint};

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
}

#[cfg(test)]
unsafe extern "C" {
    pub fn SSL_SESSION_new() -> *mut SSL_SESSION;
    pub fn SSL_SESSION_set1_id(s: *mut SSL_SESSION, sid: *const c_uchar, len: c_uint) -> c_int;
}
