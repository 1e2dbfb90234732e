//! The admin listener: `/healthz`, `/readyz` and `/metrics` over plain HTTP/1.
//!
//! The caller binds the listener (a library never binds); this only accepts and answers.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Monitor;

/// At most this many connections at once: probes and a scraper need a few.
const CONNECTIONS: usize = 32;
/// A connection is closed after this long, whatever it is doing.
const CONNECTION_TIME: Duration = Duration::from_secs(30);

/// Answers on `listener` until `cancel` fires.
pub async fn serve(listener: TcpListener, monitor: Monitor, cancel: CancellationToken) {
    let permits = Arc::new(Semaphore::new(CONNECTIONS));
    loop {
        let permit = tokio::select! {
            // The semaphore is never closed.
            permit = permits.clone().acquire_owned() => permit,
            () = cancel.cancelled() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = cancel.cancelled() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                debug!(%error, "admin listener could not accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let monitor = monitor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |request| {
                let monitor = monitor.clone();
                async move { Ok::<_, Infallible>(answer(&request, &monitor)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIME, connection).await;
        });
    }
}

/// The answer to one request.
fn answer(request: &Request<Incoming>, monitor: &Monitor) -> Response<Full<Bytes>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET\n".into());
    }
    match request.uri().path() {
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => match monitor.readiness() {
            Ok(()) => reply(StatusCode::OK, "application/json", "{\"ready\":true}\n".into()),
            Err(not_ready) => {
                let body = serde_json::json!({"ready": false, "sources": not_ready});
                reply(StatusCode::SERVICE_UNAVAILABLE, "application/json", format!("{body}\n"))
            }
        },
        "/metrics" => {
            reply(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", monitor.metrics_text())
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "try /healthz, /readyz or /metrics\n".into()),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
