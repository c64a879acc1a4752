//! The async stores' connection to one Redis (feature `tokio`): a redis-rs
//! multiplexed connection over a byte-capped stream ([`open`]), the
//! connection as a store holds it ([`Held`]), and the errors a call reports
//! when its time or its byte credit runs out. Shared by the standalone and
//! Sentinel store (`asynchronous`) and the Cluster store (`async_cluster`),
//! below both.

use std::pin::Pin;
use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisConnectionInfo, RedisError};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::backend::Dialer;
use crate::capped::{Budget, Capped};
use crate::tls::handshake_failure;
use crate::wire::REPLY_TOO_LARGE;

/// The shared connection, its generation and its read budget.
#[derive(Clone)]
pub(crate) struct Held {
    pub(crate) con: MultiplexedConnection,
    pub(crate) id: u64,
    pub(crate) budget: Arc<Budget>,
}

/// The error of a call whose time ran out.
pub(crate) fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

/// The error a call reports when its connection's byte credit tripped
/// (`e`, what redis-rs said): a reply refused for its size, counted in
/// `redis.oversize_replies` by `settle`. The caller drops the connection.
pub(crate) fn over_credit(e: &RedisError) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{REPLY_TOO_LARGE} the call's share of the connection: {e}"),
    ))
}

/// Opens a multiplexed connection with `dialer`'s address, TLS and
/// settings (the caller bounds the time); its driver runs as a task, and
/// its reads spend `budget` (see `capped`): each call grants it first.
pub(crate) async fn open(
    dialer: &Dialer,
    budget: &Arc<Budget>,
) -> Result<MultiplexedConnection, RedisError> {
    let settings = dialer.settings();
    if let Some(path) = dialer.unix_path() {
        let stream = tokio::net::UnixStream::connect(path).await?;
        return finish(settings, Capped::new(stream, Arc::clone(budget))).await;
    }
    let (host, port) = dialer.tcp().ok_or_else(|| {
        RedisError::from((ErrorKind::InvalidClientConfig, "unsupported Redis address"))
    })?;
    let tcp = tokio::net::TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    match dialer.tls() {
        None => finish(settings, Capped::new(tcp, Arc::clone(budget))).await,
        Some(tls) => {
            let ssl = tls.ssl(host)?;
            let mut stream = tokio_openssl::SslStream::new(ssl, tcp)
                .map_err(|e| RedisError::from(std::io::Error::other(e)))?;
            if let Err(e) = Pin::new(&mut stream).connect().await {
                let verify = stream.ssl().verify_result();
                return Err(handshake_failure(
                    &format!("{host}:{port}"),
                    &e,
                    Some(verify),
                ));
            }
            finish(settings, Capped::new(stream, Arc::clone(budget))).await
        }
    }
}

/// `AUTH` and `SELECT` on `stream` (redis-rs), then the driver task.
async fn finish<S>(
    settings: &RedisConnectionInfo,
    stream: S,
) -> Result<MultiplexedConnection, RedisError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The store bounds every call itself.
    let config = AsyncConnectionConfig::new().set_response_timeout(None);
    let (con, driver) = MultiplexedConnection::new_with_config(settings, stream, config).await?;
    tokio::spawn(driver);
    Ok(con)
}
