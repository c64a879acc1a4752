//! A call's deadline: what is left of its time budget, and the error when
//! nothing is. Below the connection (`wire`) and the pools (`backend`).

use std::time::{Duration, Instant};

use redis::RedisError;

/// The error of a call whose budget ran out before it could be sent.
pub(crate) fn deadline_passed() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the call's time budget ran out",
    ))
}

/// What is left of the budget, or a timeout error when nothing is.
pub(crate) fn remaining(deadline: Instant) -> Result<Duration, RedisError> {
    let left = deadline.saturating_duration_since(Instant::now());
    // Sockets treat a zero timeout as "wait forever"; below 1 ms is nothing.
    if left < Duration::from_millis(1) {
        Err(deadline_passed())
    } else {
        Ok(left)
    }
}
