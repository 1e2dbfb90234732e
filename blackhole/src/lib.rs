//! The blackhole: an HTTP server that answers 200 to every request and keeps nothing.
//!
//! GitHub records a delivery only for a hook whose URL it could try, so every
//! hook hookfwd polls points here. The server is the one public piece of
//! hookfwd, so it is built to be hard to knock over:
//!
//! - request bodies are streamed and dropped frame by frame, never held whole;
//! - a client gets [`Config::header_timeout`] to send its headers (slowloris)
//!   and a connection that moves no byte for [`Config::idle_timeout`] is cut;
//! - at most [`Config::max_connections`] are open at once, so file
//!   descriptors never run out; further clients wait in the listen backlog;
//! - accept errors (`EMFILE` and the like) are logged and backed off, never fatal.
//!
//! [`run`] takes an already-bound listener and a shutdown future, so the
//! caller decides where to listen and when to stop.

mod idle;
mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub use tls::load_tls;
pub use tokio_rustls::TlsAcceptor;

use crate::idle::Idle;

/// The body of every response: small, and enough for a human with curl to see it worked.
const BODY: &[u8] = b"ok\n";

/// Largest read buffer per connection. hyper grows its buffer while reads
/// fill it, so a big upload would otherwise reach hyper's 400 KB default on
/// every connection; 64 KiB still reads a 25 MB body in few syscalls.
const MAX_BUF_SIZE: usize = 64 * 1024;

/// Largest request head (request line and headers). GitHub sends about 2 KB;
/// nginx allows 32 KB. Without it hyper's limit is only the buffer size.
const MAX_HEADER_SIZE: usize = 32 * 1024;

/// First and last pause after a failed `accept`.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// How the server behaves; every limit has a default fit for a public host.
#[derive(Clone)]
pub struct Config {
    /// How long a client may take to send a request's headers, from the moment
    /// the server waits for them. It also ends idle keep-alive connections.
    pub header_timeout: Duration,
    /// How long a connection may move no byte in either direction (a stalled
    /// body, a response nobody reads, a TLS handshake that never ends) before it is cut.
    pub idle_timeout: Duration,
    /// Most connections served at once; others wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests before giving up on them.
    pub drain_timeout: Duration,
    /// Log one line per request (method, path, GitHub event and delivery, size, duration).
    pub log_requests: bool,
    /// Serve HTTPS with this acceptor; plain HTTP when `None`.
    pub tls: Option<TlsAcceptor>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 1024,
            drain_timeout: Duration::from_secs(10),
            log_requests: false,
            tls: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The acceptor has no Debug; whether TLS is on is what matters.
        f.debug_struct("Config")
            .field("header_timeout", &self.header_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("drain_timeout", &self.drain_timeout)
            .field("log_requests", &self.log_requests)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// What can stop the blackhole from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listener has no local address, so there is nothing to announce.
    #[error("cannot read the listener's local address")]
    LocalAddr(#[source] io::Error),
    /// A TLS certificate or key file could not be read or parsed.
    #[error("cannot read the TLS {what} from {path}")]
    TlsFile {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file as given on the command line.
        path: std::path::PathBuf,
        /// Why it could not be read.
        #[source]
        source: tokio_rustls::rustls::pki_types::pem::Error,
    },
    /// The certificate and key were read but rustls refused them (say, they do not match).
    #[error("the TLS certificate and key cannot be used together")]
    TlsConfig(#[source] tokio_rustls::rustls::Error),
}

/// What every connection task needs, shared behind one `Arc`.
struct Shared {
    /// The HTTP/1 connection settings, built once.
    http: http1::Builder,
    /// The server's configuration.
    config: Config,
}

/// Binds a listener on `addr` with a deep backlog.
///
/// Clients beyond [`Config::max_connections`] wait in the backlog; at the
/// usual 128 the kernel would drop their SYNs and they would retry for seconds.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Serves connections from `listener` until `shutdown` completes, then drains.
///
/// After `shutdown` the listener is closed, open connections finish the
/// request in flight (idle ones close at once), and the function returns
/// when they are all done or [`Config::drain_timeout`] has passed.
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let addr = listener.local_addr().map_err(Error::LocalAddr)?;
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    info!(%scheme, "listening on {addr}");

    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_buf_size(MAX_BUF_SIZE)
        .max_header_size(MAX_HEADER_SIZE);
    let drain_timeout = config.drain_timeout;
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let shared = Arc::new(Shared { http, config });
    let graceful = GracefulShutdown::new();
    let mut backoff = ACCEPT_BACKOFF.0;

    tokio::pin!(shutdown);
    loop {
        // Wait for a free slot before accepting, as mini-redis does: beyond
        // the cap, clients queue in the kernel rather than costing an fd here.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                // The semaphore lives in this function and is never closed.
                Err(_) => unreachable!("the connection semaphore is never closed"),
            },
        };
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                backoff = ACCEPT_BACKOFF.0;
                tokio::spawn(serve(stream, shared.clone(), graceful.watcher(), permit));
            }
            Err(err) => {
                // Out of fds or memory, or a connection reset before we took
                // it: none is the server's end, so wait a little and go on.
                warn!(error = %err, retry_in = ?backoff, "accept failed");
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
            }
        }
    }

    // Close the listener first so that new clients are refused, not left waiting.
    drop(listener);
    info!(connections = graceful.count(), "shutting down");
    match tokio::time::timeout(drain_timeout, graceful.shutdown()).await {
        Ok(()) => info!("all connections closed"),
        Err(_) => warn!(deadline = ?drain_timeout, "drain deadline passed; dropping the connections left"),
    }
    Ok(())
}

/// Serves one accepted connection, over TLS when configured, until it closes.
async fn serve(stream: TcpStream, shared: Arc<Shared>, watcher: Watcher, _permit: OwnedSemaphorePermit) {
    // Responses are one small write; Nagle would only delay them.
    if let Err(err) = stream.set_nodelay(true) {
        debug!(error = %err, "cannot set TCP_NODELAY");
    }
    let io = Idle::new(stream, shared.config.idle_timeout);
    match &shared.config.tls {
        None => serve_http(io, &shared, watcher).await,
        Some(acceptor) => match tokio::time::timeout(shared.config.header_timeout, acceptor.accept(io)).await {
            Ok(Ok(tls)) => serve_http(tls, &shared, watcher).await,
            Ok(Err(err)) => debug!(error = %err, "TLS handshake failed"),
            Err(_) => debug!("TLS handshake timed out"),
        },
    }
}

/// Runs HTTP/1 on `io`; errors are the client's doing and logged only at debug level.
async fn serve_http<I>(io: I, shared: &Shared, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let log = shared.config.log_requests;
    let conn = shared.http.serve_connection(TokioIo::new(io), service_fn(move |req| absorb(req, log)));
    if let Err(err) = watcher.watch(conn).await {
        debug!(error = %err, "connection ended with an error");
    }
}

/// Answers 200 to any request after reading its body to the end and dropping it.
///
/// The body is read rather than ignored so that the client can finish
/// sending and keep its connection; each frame is dropped as it arrives.
async fn absorb(req: Request<Incoming>, log: bool) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let started = log.then(Instant::now);
    let (head, mut body) = req.into_parts();
    let mut bytes: u64 = 0;
    while let Some(frame) = body.frame().await {
        // A body error means the connection is gone; returning it makes hyper close it.
        if let Some(data) = frame?.data_ref() {
            bytes += data.len() as u64;
        }
    }
    if let Some(started) = started {
        let header = |name| head.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-");
        info!(
            method = %head.method,
            path = head.uri.path(),
            event = header("x-github-event"),
            delivery = header("x-github-delivery"),
            bytes,
            duration = ?started.elapsed(),
            "request"
        );
    }
    Ok(Response::new(Full::new(Bytes::from_static(BODY))))
}
