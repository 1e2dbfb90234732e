//! The accept loop: one hyper HTTP/1 connection task per client, all stopped by one cancellation token.

use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::Inner;
use crate::http::{AnswerBody, Dropped, finish, read_body, strip_prefix};

/// Accepts connections until `shutdown` is cancelled; open connections are closed then too.
pub(crate) async fn run(listener: TcpListener, inner: Arc<Inner>, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(%error, "fake GitHub could not accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let inner = Arc::clone(&inner);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let inner = Arc::clone(&inner);
                async move { answer(inner, request).await }
            });
            let connection = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = shutdown.cancelled() => {}
                // A dropped connection (the fault) ends here with an error, by design.
                _ = connection => {}
            }
        });
    }
}

/// Answers one request: the control surface under `{prefix}/_fake/`, GitHub's API everywhere else.
async fn answer(inner: Arc<Inner>, request: Request<Incoming>) -> Result<Response<AnswerBody>, Dropped> {
    let path = strip_prefix(request.uri().path(), &inner.prefix);
    let control: Option<Vec<String>> = path.and_then(|path| {
        let mut segments = path.split('/').filter(|segment| !segment.is_empty());
        (segments.next() == Some("_fake")).then(|| segments.map(str::to_string).collect())
    });
    let Some(segments) = control else {
        return crate::api::handle(inner, request).await;
    };
    let (parts, body) = request.into_parts();
    let body = read_body(body).await.unwrap_or_default();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let reply = crate::control::handle(&inner, &parts.method, &segments, &body).await;
    Ok(finish(&inner, reply, None))
}
