//! A webhook handler for tests: a real HTTP server on 127.0.0.1:0 that records every request
//! and answers the status the test sets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request the recorder received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request path.
    pub path: String,
    /// Headers, names lower-cased (the last of a repeated name).
    pub headers: BTreeMap<String, String>,
    /// Every header line as received, in order, names lower-cased: a repeated name appears each time.
    pub header_lines: Vec<(String, String)>,
    /// The body bytes.
    pub body: Bytes,
}

impl Received {
    /// A header by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// How many times a header (by lower-case name) was sent.
    pub fn header_count(&self, name: &str) -> usize {
        self.header_lines.iter().filter(|(key, _)| key == name).count()
    }

    /// The `X-GitHub-Delivery` header, or `""`.
    pub fn guid(&self) -> &str {
        self.header("x-github-delivery").unwrap_or_default()
    }
}

/// Needles, and the status and body answered to a request whose body contains one.
type Rejects = Arc<Mutex<Vec<(Vec<u8>, u16, Bytes)>>>;

/// The recorder; it stops serving when dropped.
pub struct Recorder {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    /// The body of every answer (`ok` unless [`Recorder::answer_with`] set one).
    body: Arc<Mutex<Bytes>>,
    /// Milliseconds to wait before answering.
    delay: Arc<AtomicU64>,
    /// Requests whose body contains a needle get its status and body instead (see [`Recorder::reject`]).
    rejects: Rejects,
    /// The `X-GitHub-Delivery` of every request, whatever it was answered.
    tries: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Starts a recorder answering 200.
    pub async fn start() -> Self {
        Self::on(TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0"))
    }

    /// Starts a recorder answering 200 on `listener`, such as a port a handler that was down comes back on.
    pub fn on(listener: TcpListener) -> Self {
        let addr = listener.local_addr().expect("bound address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let body = Arc::new(Mutex::new(Bytes::from_static(b"ok")));
        let delay = Arc::new(AtomicU64::new(0));
        let rejects: Rejects = Arc::default();
        let tries: Arc<Mutex<Vec<String>>> = Arc::default();
        let (log, answer, said, pause) = (received.clone(), status.clone(), body.clone(), delay.clone());
        let (refuse, tried) = (rejects.clone(), tries.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, answer, said, pause) = (log.clone(), answer.clone(), said.clone(), pause.clone());
                let (refuse, tried) = (refuse.clone(), tried.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (log, answer, said, pause) = (log.clone(), answer.clone(), said.clone(), pause.clone());
                        let (refuse, tried) = (refuse.clone(), tried.clone());
                        async move {
                            tokio::time::sleep(Duration::from_millis(pause.load(Ordering::SeqCst))).await;
                            let path = request.uri().path().to_string();
                            let header_lines: Vec<(String, String)> = request
                                .headers()
                                .iter()
                                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
                                .collect();
                            let headers: BTreeMap<String, String> = header_lines.iter().cloned().collect();
                            let body = request.into_body().collect().await?.to_bytes();
                            let guid = headers.get("x-github-delivery").cloned().unwrap_or_default();
                            tried.lock().expect("recorder lock").push(guid);
                            let rejected = refuse
                                .lock()
                                .expect("recorder lock")
                                .iter()
                                .find(|(needle, _, _)| body.windows(needle.len()).any(|w| w == needle.as_slice()))
                                .map(|(_, status, said)| (*status, said.clone()));
                            let status = rejected.as_ref().map_or_else(|| answer.load(Ordering::SeqCst), |r| r.0);
                            if (200..300).contains(&status) {
                                log.lock().expect("recorder lock").push(Received { path, headers, header_lines, body });
                            }
                            let said = match rejected {
                                Some((_, said)) => said,
                                None => said.lock().expect("recorder lock").clone(),
                            };
                            let mut response = Response::new(Full::new(said));
                            *response.status_mut() = hyper::StatusCode::from_u16(status).expect("valid status");
                            Ok::<_, hyper::Error>(response)
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Self { addr, received, status, body, delay, rejects, tries, task }
    }

    /// `http://127.0.0.1:PORT/webhook`.
    pub fn url(&self) -> String {
        format!("http://{}/webhook", self.addr)
    }

    /// Answer `status` from now on; requests answered with a non-2xx status are not recorded.
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Answer `status` with `body` from now on.
    pub fn answer_with(&self, status: u16, body: &str) {
        *self.body.lock().expect("recorder lock") = Bytes::copy_from_slice(body.as_bytes());
        self.answer(status);
    }

    /// Wait this long before answering each request from now on (a slow handler).
    pub fn delay(&self, delay: Duration) {
        self.delay.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Answer `status` with `body` to every request whose body contains `needle` (a handler bug
    /// that only one delivery hits); other requests are answered as before.
    pub fn reject(&self, needle: &str, status: u16, body: &str) {
        let answer = (needle.as_bytes().to_vec(), status, Bytes::copy_from_slice(body.as_bytes()));
        self.rejects.lock().expect("recorder lock").push(answer);
    }

    /// Stop every [`Recorder::reject`]: the bug is fixed.
    pub fn accept_all(&self) {
        self.rejects.lock().expect("recorder lock").clear();
    }

    /// How many requests carried `X-GitHub-Delivery: guid`, whatever they were answered.
    pub fn tries(&self, guid: &str) -> usize {
        self.tries.lock().expect("recorder lock").iter().filter(|tried| *tried == guid).count()
    }

    /// How many requests were recorded so far.
    pub fn count(&self) -> usize {
        self.received.lock().expect("recorder lock").len()
    }

    /// Everything recorded so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("recorder lock").clone()
    }

    /// Waits until `done` holds for what was recorded, or panics after `timeout`.
    pub async fn wait_for(&self, timeout: Duration, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let check = async || Some(self.received()).filter(|received| done(received));
        crate::poll(timeout, check, || format!("timed out waiting for {what}; got {} requests", self.count())).await
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
