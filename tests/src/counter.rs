//! A counting webhook handler for the benchmarks: verifies each signature, keeps guid and time.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use github::Secret;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What the counter saw: each delivery's guid and when it arrived, and bad signatures.
#[derive(Default)]
pub struct Seen {
    /// Each delivery's guid and arrival time, in order.
    pub arrivals: Vec<(String, Instant)>,
    /// Requests whose signature did not verify.
    pub bad_signatures: usize,
}

/// A handler on 127.0.0.1:0 that checks each signature and keeps only the guid and the time,
/// for benchmarks. Lighter than [`crate::Recorder`], which keeps every body and header.
pub struct Counter {
    /// `http://127.0.0.1:PORT/webhook`.
    pub url: String,
    /// Requests so far.
    count: Arc<AtomicUsize>,
    /// What arrived.
    pub seen: Arc<Mutex<Seen>>,
}

impl Counter {
    /// Starts a handler that verifies with `secret`.
    pub async fn start(secret: &str) -> Self {
        let secret = Secret::new(secret);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let url = format!("http://{}/webhook", listener.local_addr().expect("bound address"));
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (counter, log) = (count.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (counter, log, secret) = (counter.clone(), log.clone(), secret.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let (counter, log, secret) = (counter.clone(), log.clone(), secret.clone());
                        async move {
                            let header = |name: &str| {
                                let value = request.headers().get(name).and_then(|v| v.to_str().ok());
                                value.unwrap_or_default().to_string()
                            };
                            let (guid, signature) = (header("x-github-delivery"), header("x-hub-signature-256"));
                            let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let at = Instant::now();
                            let valid = github::signature::verify_sha256(&secret, &body, &signature);
                            {
                                let mut seen = log.lock().expect("handler lock");
                                seen.arrivals.push((guid, at));
                                seen.bad_signatures += usize::from(!valid);
                            }
                            counter.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, count, seen }
    }

    /// Requests so far.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}
