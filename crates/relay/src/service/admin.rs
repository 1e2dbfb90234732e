//! The admin listener: `/healthz`, `/readyz` and `/metrics` over plain HTTP/1.
//!
//! The caller binds the listener (a library never binds); this only accepts and answers.
//!
//! A page on another site can point its own name at this listener (DNS rebinding) and read what
//! it answers, so only `/healthz` and `/readyz` answer any `Host` (cluster probes name the pod's
//! address, or whatever the probe says); everything else needs a `Host` naming this machine: a
//! loopback name, the address listened on, or, listening on every address (`0.0.0.0`), any IP
//! address (what Prometheus scrapes by). A rebinding page always sends a name, never an address.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HOST, HeaderValue};
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
    let bound = listener.local_addr().map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |addr| addr.ip());
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
                async move { Ok::<_, Infallible>(answer(&request, &monitor, bound)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIME, connection).await;
        });
    }
}

/// The answer to one request on a listener bound to `bound`.
fn answer(request: &Request<Incoming>, monitor: &Monitor, bound: IpAddr) -> Response<Full<Bytes>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET\n".into());
    }
    let path = request.uri().path();
    let host = request.headers().get(HOST).and_then(|value| value.to_str().ok()).unwrap_or_default();
    if !matches!(path, "/healthz" | "/readyz") && !names_this_machine(host, bound) {
        let refused = "refused: /metrics answers only to a Host that is localhost or an IP address\n";
        return reply(StatusCode::FORBIDDEN, "text/plain", refused.into());
    }
    match path {
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

/// Whether a `Host` header names this machine as listening on `bound`: a loopback name, `bound`
/// itself, or any IP address when `bound` is every address.
fn names_this_machine(host: &str, bound: IpAddr) -> bool {
    let Some(name) = host_name(host) else { return false };
    loopback(name) || name.parse::<IpAddr>().is_ok_and(|ip| ip == bound || bound.is_unspecified())
}

/// Whether a `Host` header names this machine by a loopback name: `localhost`, `127.x.y.z` or
/// `[::1]`, with any port. Anything but exactly `host[:port]` (user info, a path, a port that is
/// not a number: `localhost:80@evil.example`) names nothing.
pub fn loopback_host(host: &str) -> bool {
    host_name(host).is_some_and(loopback)
}

fn loopback(name: &str) -> bool {
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host of a `Host` header (`name`, `1.2.3.4`, or an IPv6 address without its brackets), if
/// the header is exactly `host[:port]` as HTTP allows.
fn host_name(host: &str) -> Option<&str> {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => {
            let (inside, after) = rest.split_once(']')?;
            inside.parse::<std::net::Ipv6Addr>().ok()?;
            (inside, after)
        }
        None => {
            let end = host.find(':').unwrap_or(host.len());
            let name = &host[..end];
            let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
            (!name.is_empty() && name.chars().all(allowed)).then_some(())?;
            (name, &host[end..])
        }
    };
    let digits = |port: &str| !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    (port.is_empty() || port.strip_prefix(':').is_some_and(digits)).then_some(name)
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn a_host_is_exactly_a_name_or_address_and_a_port() {
        for host in ["localhost", "localhost:4040", "127.0.0.1:4040", "127.3.2.1", "[::1]:4040", "LOCALHOST:1"] {
            assert!(loopback_host(host), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:4040",
            "localhost.evil.example",
            "10.0.0.1:4040",
            "[::2]:1",
            "localhost:4040@evil.example",
            "localhost@evil.example",
            "localhost:4040/x",
            "localhost:port",
            "localhost:",
            "[::1]evil",
            "[::1]:80@evil.example",
            "127.0.0.1:4040:1",
        ] {
            assert!(!loopback_host(host), "{host}");
        }
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        assert!(names_this_machine("10.1.2.3:9090", any), "a pod's address, listening on every address");
        assert!(!names_this_machine("rebind.evil.example:9090", any));
        let pod: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(names_this_machine("10.1.2.3:9090", pod) && names_this_machine("localhost:9090", pod));
        assert!(!names_this_machine("10.9.9.9:9090", pod), "another address than the one listened on");
    }

    /// The status line of a GET of `path` with `host` as the `Host`, over a real socket.
    async fn status(addr: std::net::SocketAddr, path: &str, host: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer.lines().next().unwrap_or_default().to_string()
    }

    #[tokio::test]
    async fn metrics_answer_only_to_a_host_naming_this_machine_and_probes_to_any() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        tokio::spawn(serve(listener, Monitor::new(Duration::from_secs(1)), cancel.clone()));
        let port = addr.port();
        assert_eq!(status(addr, "/metrics", &format!("localhost:{port}")).await, "HTTP/1.1 200 OK");
        assert_eq!(status(addr, "/metrics", &format!("127.0.0.1:{port}")).await, "HTTP/1.1 200 OK");
        for rebound in [format!("rebind.evil.example:{port}"), format!("localhost:{port}@evil.example")] {
            assert_eq!(status(addr, "/metrics", &rebound).await, "HTTP/1.1 403 Forbidden", "{rebound}");
        }
        assert_eq!(status(addr, "/healthz", "10.1.2.3:9090").await, "HTTP/1.1 200 OK");
        assert_ne!(status(addr, "/readyz", "rebind.evil.example").await, "HTTP/1.1 403 Forbidden");
        cancel.cancel();
    }
}
