//! axum on axum-server, with **non-blocking** lookups: the async session
//! cache and its axum-server acceptor (`tls-session-cache-tokio`, feature
//! `axum-server`).
//!
//! The cache is three lines (marked below): build it, install it on the
//! `SslAcceptorBuilder`, hand axum-server a `SessionCacheAcceptor` instead
//! of its own OpenSSL acceptor. The acceptor drives OpenSSL's client-hello
//! retry, so a Redis lookup is awaited and never blocks a tokio worker.
//! (axum-server's own `OpenSSLAcceptor` cannot be used with the async
//! cache: its single `accept` call fails on `WANT_CLIENT_HELLO_CB`.)
//!
//! ```text
//! axum-example [--listen 127.0.0.1:8443] [--cert PEM --key PEM]
//!              [--store memory|redis://HOST:PORT|redis+cluster://…|tiered+redis://HOST:PORT]
//!              [--seal-key-file PATH]
//!              [--redis-timeout-ms MS] [--lifetime SECS] [--context STR]
//!              [--tickets] [--threads N]
//! ```
//!
//! `--threads` is the number of tokio worker threads. HTTP/1.1 and HTTP/2
//! (ALPN `h2`). Answers `GET /stats` (JSON), `GET /metrics` (Prometheus
//! text) and anything else with the connection's handshake; prints
//! `listening on IP:PORT`; exits 0 on SIGTERM / SIGINT.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use axum::extract::State;
use axum::http::{Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use axum_server::Handle;
use axum_server::accept::Accept;
use tls_session_cache_frameworks::report::Report;
use tls_session_cache_frameworks::tls::{self, Handshake};
use tls_session_cache_frameworks::{Logger, common, stores};
use tls_session_cache_openssl::prometheus::CONTENT_TYPE as METRICS_CONTENT_TYPE;
use tls_session_cache_tokio::acceptor::SessionCacheAcceptor;
use tls_session_cache_tokio::{AsyncSessionCache, SslStream};
use tower_layer::Layer;

fn main() -> ExitCode {
    Logger::install();
    let args = match common::args_or_usage(
        "axum-example",
        "memory|redis://HOST:PORT|redis+cluster://H1:P1,H2:P2,...|tiered+redis://HOST:PORT",
    ) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build();
    match runtime.map(|rt| rt.block_on(async_main(args))) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("axum-example: cannot start the runtime: {e}");
            ExitCode::from(1)
        }
    }
}

/// The acceptor with the cache installed, inside the runtime (the cache
/// spawns its writer task).
fn setup(args: &common::Args) -> Result<(SessionCacheAcceptor, Report), String> {
    let (store, redis) = stores::open_async("axum-example", args)?;
    let mut ssl = common::acceptor(args)?; // certificate and key
    tls::set_alpn(&mut ssl); // h2, http/1.1
    // The session cache: build it, install it, accept through it.
    let cache = AsyncSessionCache::builder_arc(store)
        .session_cache(common::cache_settings(args))
        .build()
        .map_err(|e| e.to_string())?;
    cache.install(&mut ssl).map_err(|e| e.to_string())?;
    let acceptor = SessionCacheAcceptor::new(cache.clone(), ssl.build().into_context());
    Ok((acceptor, Report::asynchronous(cache, redis)))
}

async fn async_main(args: common::Args) -> ExitCode {
    let (acceptor, report) = match setup(&args) {
        Ok(x) => x,
        Err(msg) => {
            eprintln!("axum-example: {msg}");
            return ExitCode::from(2);
        }
    };
    let cache = acceptor.cache().clone();
    let app = Router::new()
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .fallback(handshake)
        .with_state(report);
    let handle = Handle::new();
    tokio::spawn(stop_on_signal(handle.clone()));
    let ready = handle.clone();
    tokio::spawn(async move {
        if let Some(addr) = ready.listening().await
            && let Err(e) = common::announce(addr)
        {
            log::error!("stdout: {e}");
        }
    });
    let served = axum_server::bind(args.listen)
        .acceptor(WithHandshake(acceptor))
        .handle(handle)
        .serve(app.into_make_service())
        .await;
    cache.flush().await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axum-example: {e}");
            ExitCode::from(1)
        }
    }
}

/// SIGTERM or SIGINT: stop accepting, give connections a second.
async fn stop_on_signal(handle: Handle<std::net::SocketAddr>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        log::error!("cannot listen for signals");
        return;
    };
    tokio::select! {
        _ = term.recv() => log::info!("SIGTERM: stopping"),
        _ = int.recv() => log::info!("SIGINT: stopping"),
    }
    handle.graceful_shutdown(Some(Duration::from_secs(1)));
}

/// The cache's acceptor, then the connection's handshake added to every
/// request's extensions (for `GET /`).
#[derive(Clone)]
struct WithHandshake(SessionCacheAcceptor);

type Accepted<I, S> = io::Result<(SslStream<I>, axum::middleware::AddExtension<S, Handshake>)>;

impl<I, S> Accept<I, S> for WithHandshake
where
    SessionCacheAcceptor: Accept<I, S, Stream = SslStream<I>, Service = S>,
    <SessionCacheAcceptor as Accept<I, S>>::Future: Send + 'static,
    I: 'static,
    S: 'static,
{
    type Stream = SslStream<I>;
    type Service = axum::middleware::AddExtension<S, Handshake>;
    type Future = Pin<Box<dyn Future<Output = Accepted<I, S>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepted = self.0.accept(stream, service);
        Box::pin(async move {
            let (tls, service) = accepted.await?;
            let handshake = Handshake::of(tls.ssl());
            Ok((tls, Extension(handshake).layer(service)))
        })
    }
}

/// A 200 answer; HTTP/1.x connections are closed after it, as the example
/// servers do (clients such as `openssl s_client` read until the close).
fn answer(version: Version, content_type: &'static str, body: String) -> Response {
    let mut res = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    if version < Version::HTTP_2 {
        res.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    res
}

async fn handshake(version: Version, Extension(h): Extension<Handshake>) -> Response {
    answer(version, "application/json", h.to_json())
}

async fn stats(version: Version, State(report): State<Report>) -> Response {
    answer(version, "application/json", report.json())
}

async fn metrics(version: Version, State(report): State<Report>) -> Response {
    answer(version, METRICS_CONTENT_TYPE, report.metrics())
}
