//! A round-robin HTTP load balancer on 127.0.0.1:0 for the tests, as nginx's `upstream` is in
//! front of several blackholes: each request goes to the next backend in turn, and its answer is
//! streamed back as it comes (a blackhole's stream stays open).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The balancer; it stops when dropped.
pub struct Balancer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Balancer {
    /// Starts a balancer alternating `backends` (`host:port`).
    pub async fn start(backends: Vec<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("bound address");
        let backends = Arc::new(backends);
        let next = Arc::new(AtomicUsize::new(0));
        let client = crate::http();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (backends, next, client) = (backends.clone(), next.clone(), client.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let backend = backends[next.fetch_add(1, Ordering::SeqCst) % backends.len()].clone();
                        pass(client.clone(), backend, request)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, task }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends `request` on to `backend` and streams its answer back; 502 if the backend cannot be reached.
async fn pass(
    client: reqwest::Client,
    backend: String,
    request: Request<Incoming>,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|body| body.to_bytes()).unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let mut sent = client.request(parts.method, format!("http://{backend}{path}")).body(body);
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST {
            sent = sent.header(name, value);
        }
    }
    let Ok(answer) = sent.send().await else {
        let body = Full::new(Bytes::from_static(b"bad gateway")).boxed();
        return Ok(Response::builder().status(502).body(body).expect("a response"));
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    // Hop-by-hop: the balancer's own connection frames the body.
    let hop = [hyper::header::CONNECTION, hyper::header::TRANSFER_ENCODING, hyper::header::CONTENT_LENGTH];
    for (name, value) in answer.headers().iter().filter(|(name, _)| !hop.contains(name)) {
        response = response.header(name, value);
    }
    let chunks = futures::stream::unfold(answer, |mut answer| async move {
        let chunk = answer.chunk().await.ok().flatten()?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), answer))
    });
    Ok(response.body(BodyExt::boxed(StreamBody::new(chunks))).expect("a response"))
}
