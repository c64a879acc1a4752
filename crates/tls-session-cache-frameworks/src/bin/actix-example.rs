//! actix-web 4 over `bind_openssl`, with the **blocking** session cache.
//!
//! The cache is two lines on the `SslAcceptorBuilder` handed to
//! `bind_openssl` (marked below). Lookups run inside OpenSSL's callbacks on
//! actix's worker threads: with the memory store that costs nothing; with
//! Redis a lookup holds its worker (and every connection on it) for one
//! round trip, and up to the Redis timeout (`--redis-timeout-ms`, default
//! 50 ms) when Redis is slow, until the circuit breaker opens. Prefer
//! `--store tiered+redis://…` there: TLS 1.2 lookups are then answered
//! locally when they can be. For lookups that never block, see the axum and
//! hyper examples.
//!
//! ```text
//! actix-example [--listen 127.0.0.1:8443] [--cert PEM --key PEM]
//!               [--store memory|redis://HOST:PORT|redis+cluster://…|tiered+redis://HOST:PORT]
//!               [--seal-key-file PATH] [--redis-timeout-ms MS]
//!               [--lifetime SECS] [--context STR] [--tickets] [--threads N]
//! ```
//!
//! `--threads` is the number of actix workers. Answers `GET /stats` (JSON),
//! `GET /metrics` (Prometheus text) and anything else with the connection's
//! handshake; prints `listening on IP:PORT`; exits 0 on SIGTERM / SIGINT.

use std::process::ExitCode;

use actix_tls::accept::openssl::TlsStream;
use actix_web::dev::Extensions;
use actix_web::http::Version;
use actix_web::rt::net::TcpStream;
use actix_web::{App, HttpRequest, HttpResponse, HttpResponseBuilder, HttpServer, web};
use tls_session_cache_frameworks::report::Report;
use tls_session_cache_frameworks::tls::Handshake;
use tls_session_cache_frameworks::{Logger, common, stores};
use tls_session_cache_openssl::prometheus::CONTENT_TYPE as METRICS_CONTENT_TYPE;

const STORES: &str =
    "memory|redis://HOST:PORT|redis+cluster://H1:P1,H2:P2,...|tiered+redis://HOST:PORT";

fn main() -> ExitCode {
    Logger::install();
    let args = match common::args_or_usage("actix-example", STORES) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let (acceptor, report) = match setup(&args) {
        Ok(x) => x,
        Err(msg) => {
            eprintln!("actix-example: {msg}");
            return ExitCode::from(2);
        }
    };
    match actix_web::rt::System::new().block_on(serve(&args, acceptor, report)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("actix-example: {e}");
            ExitCode::from(1)
        }
    }
}

/// The acceptor builder for `bind_openssl`, with the cache installed.
fn setup(args: &common::Args) -> Result<(openssl::ssl::SslAcceptorBuilder, Report), String> {
    let (store, redis) = stores::open_blocking("actix-example", args)?;
    let mut acceptor = common::acceptor(args)?; // certificate and key
    // The session cache: build it, install it on the acceptor. That is all.
    let cache = common::cache_settings(args)
        .store(store)
        .build()
        .map_err(|e| e.to_string())?;
    cache.install(&mut acceptor).map_err(|e| e.to_string())?;
    Ok((acceptor, Report::blocking(cache, redis)))
}

async fn serve(
    args: &common::Args,
    acceptor: openssl::ssl::SslAcceptorBuilder,
    report: Report,
) -> std::io::Result<()> {
    let report = web::Data::new(report);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(report.clone())
            .route("/stats", web::get().to(stats))
            .route("/metrics", web::get().to(metrics))
            .default_service(web::to(handshake))
    })
    .on_connect(remember_handshake)
    .workers(args.threads)
    .shutdown_timeout(1)
    .bind_openssl(args.listen, acceptor)?; // actix sets ALPN (h2, http/1.1)
    for addr in server.addrs() {
        common::announce(addr)?;
    }
    server.run().await
}

/// Keeps each connection's handshake for `GET /`.
fn remember_handshake(conn: &dyn std::any::Any, ext: &mut Extensions) {
    if let Some(tls) = conn.downcast_ref::<TlsStream<TcpStream>>() {
        ext.insert(Handshake::of(tls.ssl()));
    }
}

/// A 200 answer; HTTP/1.x connections are closed after it, as the example
/// servers do (clients such as `openssl s_client` read until the close).
fn ok(req: &HttpRequest) -> HttpResponseBuilder {
    let mut res = HttpResponse::Ok();
    if req.version() < Version::HTTP_2 {
        res.force_close();
    }
    res
}

async fn handshake(req: HttpRequest) -> HttpResponse {
    let body = req
        .conn_data::<Handshake>()
        .map(Handshake::to_json)
        .unwrap_or_default();
    ok(&req).content_type("application/json").body(body)
}

async fn stats(req: HttpRequest, report: web::Data<Report>) -> HttpResponse {
    ok(&req)
        .content_type("application/json")
        .body(report.json())
}

async fn metrics(req: HttpRequest, report: web::Data<Report>) -> HttpResponse {
    ok(&req)
        .content_type(METRICS_CONTENT_TYPE)
        .body(report.metrics())
}
