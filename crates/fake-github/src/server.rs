//! The accept loop: one hyper HTTP/1 connection task per client, all stopped by one cancellation token.

use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Inner;

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
                async move { crate::api::handle(inner, request).await }
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
