//! Free loopback ports.

use std::net::TcpListener;

use crate::error::Error;

/// A port on 127.0.0.1 that was free a moment ago. When `with_bus` is set,
/// `port + 10000` (Redis Cluster's bus port) was free too.
///
/// There is a window between this check and `redis-server` binding the
/// port; the caller retries with another port when the server reports the
/// address in use.
pub(crate) fn free_port(with_bus: bool) -> Result<u16, Error> {
    for _ in 0..64 {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        if !with_bus {
            return Ok(port);
        }
        let Some(bus) = port.checked_add(10_000) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", bus)).is_ok() {
            return Ok(port);
        }
    }
    Err(Error::NoFreePort)
}
