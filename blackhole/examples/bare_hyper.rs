//! The yardstick for `bench/blackhole.sh`: the least a hyper server can do for the blackhole's job,
//! with none of its guards (no timeouts, no limits, no per-address count, no stream).
//!
//! Built and run the way the blackhole is (one current-thread runtime, HTTP/1 only, `TCP_NODELAY`,
//! each body read to its end and dropped, `ok\n` back), so that what the blackhole spends beyond it
//! per request is what its guards cost. `bare_hyper 127.0.0.1:PORT`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = TcpListener::bind(&addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            // A client that goes away mid-request is no concern of a yardstick.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(ok)).await;
        });
    }
}

/// Reads the body to its end (so the connection is kept) and answers 200.
async fn ok(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut body = req.into_body();
    while let Some(Ok(_)) = body.frame().await {}
    Ok(Response::new(Full::new(Bytes::from_static(b"ok\n"))))
}
