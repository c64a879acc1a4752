//! hyper 1 + hyper-util (HTTP/1.1 and HTTP/2 by ALPN), with **non-blocking**
//! lookups through `tls-session-cache-tokio`'s `accept`.
//!
//! The cache is three lines (marked below): build it, install it on the
//! `SslAcceptorBuilder`, and run each handshake with `cache.accept(ssl,
//! tcp).await` instead of `tokio_openssl::SslStream::accept` (which fails on
//! the cache's client-hello retry). The lookups, Redis included, are awaited
//! there; no tokio worker blocks.
//!
//! ```text
//! hyper-example [--listen 127.0.0.1:8443] [--cert PEM --key PEM]
//!               [--store memory|redis://HOST:PORT|redis+cluster://…|tiered+redis://HOST:PORT]
//!               [--seal-key-file PATH]
//!               [--redis-timeout-ms MS] [--lifetime SECS] [--context STR]
//!               [--tickets] [--threads N]
//! ```
//!
//! `--threads` is the number of tokio worker threads. Answers `GET /stats`
//! (JSON), `GET /metrics` (Prometheus text) and anything else with the
//! connection's handshake; prints `listening on IP:PORT`; exits 0 on
//! SIGTERM / SIGINT (in-flight connections get a second to finish).

use std::convert::Infallible;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use openssl::ssl::{Ssl, SslContext};
use tls_session_cache_frameworks::report::Report;
use tls_session_cache_frameworks::tls::{self, Handshake};
use tls_session_cache_frameworks::{Logger, common, stores};
use tls_session_cache_openssl::prometheus::CONTENT_TYPE as METRICS_CONTENT_TYPE;
use tls_session_cache_tokio::AsyncSessionCache;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;

/// How long in-flight connections may go on after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    Logger::install();
    let args = match common::args_or_usage(
        "hyper-example",
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
            eprintln!("hyper-example: cannot start the runtime: {e}");
            ExitCode::from(1)
        }
    }
}

/// The cache (built inside the runtime: it spawns its writer task) and the
/// context it is installed on.
fn setup(args: &common::Args) -> Result<(AsyncSessionCache, SslContext, Report), String> {
    let (store, redis) = stores::open_async("hyper-example", args)?;
    let mut ssl = common::acceptor(args)?; // certificate and key
    tls::set_alpn(&mut ssl); // h2, http/1.1
    // The session cache: build it and install it; connections are accepted
    // with `cache.accept` (see `connection`).
    let cache = AsyncSessionCache::builder_arc(store)
        .session_cache(common::cache_settings(args))
        .build()
        .map_err(|e| e.to_string())?;
    cache.install(&mut ssl).map_err(|e| e.to_string())?;
    let report = Report::asynchronous(cache.clone(), redis);
    Ok((cache, ssl.build().into_context(), report))
}

async fn async_main(args: common::Args) -> ExitCode {
    let (cache, ctx, report) = match setup(&args) {
        Ok(x) => x,
        Err(msg) => {
            eprintln!("hyper-example: {msg}");
            return ExitCode::from(2);
        }
    };
    match serve(&args, cache, ctx, Arc::new(report)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hyper-example: {e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(
    args: &common::Args,
    cache: AsyncSessionCache,
    ctx: SslContext,
    report: Arc<Report>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(args.listen).await?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    common::announce(listener.local_addr()?)?;
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = term.recv() => { log::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { log::info!("SIGINT: stopping"); break; }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let (cache, ctx, report) = (cache.clone(), ctx.clone(), Arc::clone(&report));
                    connections.spawn(async move {
                        if let Err(e) = connection(&cache, &ctx, report, tcp).await {
                            log::debug!("connection: {e}");
                        }
                    });
                }
                Err(e) => log::warn!("accept: {e}"),
            },
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        connections.abort_all();
    }
    cache.flush().await;
    Ok(())
}

/// One connection: the handshake through the cache, then hyper.
async fn connection(
    cache: &AsyncSessionCache,
    ctx: &SslContext,
    report: Arc<Report>,
    tcp: TcpStream,
) -> Result<(), String> {
    tcp.set_nodelay(true).ok();
    let ssl = Ssl::new(ctx).map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(common::IO_TIMEOUT, cache.accept(ssl, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    // The handshake's new sessions reach the store before the client can
    // come back (a client reconnecting at once then resumes for sure).
    cache.flush().await;
    let handshake = Arc::new(Handshake::of(tls.ssl()));
    let service = service_fn(move |req| {
        let (report, handshake) = (Arc::clone(&report), Arc::clone(&handshake));
        async move { Ok::<_, Infallible>(respond(&req, &report, &handshake)) }
    });
    auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tls), service)
        .await
        .map_err(|e| e.to_string())
}

fn respond(
    req: &Request<Incoming>,
    report: &Report,
    handshake: &Handshake,
) -> Response<Full<Bytes>> {
    let (content_type, body) = match req.uri().path() {
        "/stats" => ("application/json", report.json()),
        "/metrics" => (METRICS_CONTENT_TYPE, report.metrics()),
        _ => ("application/json", handshake.to_json()),
    };
    let mut res = Response::new(Full::new(Bytes::from(body)));
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // HTTP/1.x connections are closed after the answer, as the example
    // servers do (clients such as `openssl s_client` read until the close).
    if req.version() < Version::HTTP_2 {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}
