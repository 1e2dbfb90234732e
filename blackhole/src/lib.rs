//! The blackhole: an HTTP server that answers 200 to every request and keeps nothing.
//!
//! GitHub records a delivery only for a hook whose URL it could try, so every
//! hook hookfwd polls points here. The server is the one public piece of
//! hookfwd, so it is built to be hard to knock over:
//!
//! - request bodies are streamed and dropped frame by frame, never held whole
//!   (with streaming on, a POST body is collected to publish it, within a
//!   shared budget);
//! - a client gets [`Config::header_timeout`] to send its headers (slowloris),
//!   [`Config::body_timeout`] for the whole body, and after [`Config::body_grace`]
//!   a body must keep up [`Config::body_min_rate`] (slow-body floods); a
//!   connection that moves no byte for [`Config::idle_timeout`] is cut;
//! - a body over [`Config::max_body`] gets 413, before reading when its
//!   `Content-Length` says so;
//! - at most [`Config::max_connections`] are open at once, so file
//!   descriptors never run out; further clients wait in the listen backlog,
//!   and when every slot is taken the slowest body in progress gives its slot
//!   to the next; one client address (one /64 for IPv6) holds at most
//!   [`Config::max_connections_per_ip`];
//! - accept errors (`EMFILE` and the like) are logged and backed off, never fatal.
//!
//! With [`Config::stream`], every POST is also handed to the subscribers of
//! its path (see the `stream` module and docs/stream.md); with its `redis`
//! (the `redis` feature), through a Redis Stream that every instance shares,
//! and a POST that cannot be appended gets 503.
//!
//! [`run`] takes an already-bound listener and a shutdown future, so the
//! caller decides where to listen and when to stop.

mod body;
mod idle;
mod redis_url;
mod stream;
mod tls;
mod token;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body, Incoming};
use hyper::header;
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub use redis_url::{RedisUrl, RedisUrlError};
pub use stream::StreamConfig;
pub use tls::load_tls;
pub use token::{TokenError, Tokens};
pub use tokio_rustls::TlsAcceptor;

use crate::body::{Refused, SlowBodies};
use crate::idle::{Idle, Phase, Stop};
use crate::stream::{Hub, Reply, fixed};
use crate::tls::Stream;

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

/// With every slot taken, how long a new client waits for the body cut for it to free its slot
/// before the next slowest is cut too.
const GIVE_WAY_WAIT: Duration = Duration::from_millis(50);

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
    /// Largest request body; a larger one gets 413 and its connection is closed.
    pub max_body: u64,
    /// How long a client gets to send a whole request body, however steadily it trickles.
    /// GitHub gives up on a delivery after 10 s, so a body still arriving later is no use to it.
    pub body_timeout: Duration,
    /// How long a body may arrive slower than [`Config::body_min_rate`] before it is cut.
    pub body_grace: Duration,
    /// After the grace, a body gets one more second for every this many bytes it has sent, so one
    /// that averages less is cut with 408; 0 for no floor. GitHub sends each body at once.
    pub body_min_rate: u64,
    /// Most connections open at once from one client address; 0 for no limit
    /// (behind a proxy every client has the proxy's address).
    pub max_connections_per_ip: usize,
    /// Hand every POST to the subscribers of its path; off when `None`.
    pub stream: Option<StreamConfig>,
}

/// GitHub caps a webhook payload at 25 MB; the default body limit leaves headroom for that.
pub const DEFAULT_MAX_BODY: u64 = 32 * 1024 * 1024;

impl Default for Config {
    fn default() -> Self {
        Config {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 1024,
            drain_timeout: Duration::from_secs(10),
            log_requests: false,
            tls: None,
            max_body: DEFAULT_MAX_BODY,
            body_timeout: Duration::from_secs(10),
            body_grace: Duration::from_secs(2),
            body_min_rate: 1024,
            max_connections_per_ip: 64,
            stream: None,
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
            .field("max_body", &self.max_body)
            .field("body_timeout", &self.body_timeout)
            .field("body_grace", &self.body_grace)
            .field("body_min_rate", &self.body_min_rate)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("stream", &self.stream)
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
    /// The streams' buffers, when streaming is on.
    hub: Option<Arc<Hub>>,
    /// Open connections per client address, when that is capped.
    peers: Mutex<HashMap<IpAddr, usize>>,
    /// Bodies being read slowly, one of which gives its slot away when all are taken.
    slow: SlowBodies,
    /// Closes the connections that wait for a request once the server stops.
    stop: Arc<Stop>,
}

impl Shared {
    /// Counts a new connection from `ip`; `None` when that address already holds its share.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<PeerSlot> {
        let cap = self.config.max_connections_per_ip;
        if cap == 0 {
            return Some(PeerSlot { shared: self.clone(), ip: None });
        }
        let ip = peer_key(ip);
        let mut peers = self.peers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let open = peers.entry(ip).or_insert(0);
        if *open >= cap {
            return None;
        }
        *open += 1;
        Some(PeerSlot { shared: self.clone(), ip: Some(ip) })
    }
}

/// The address a client is counted as: an IPv6 client by its /64, which one host can hold whole.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// One connection's place in its address's count, given back when dropped.
struct PeerSlot {
    /// Where the count is kept.
    shared: Arc<Shared>,
    /// The counted address (see [`peer_key`]); `None` when addresses are not counted.
    ip: Option<IpAddr>,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let Some(ip) = self.ip else { return };
        let mut peers = self.shared.peers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(open) = peers.get_mut(&ip) {
            *open -= 1;
            if *open == 0 {
                peers.remove(&ip);
            }
        }
    }
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
/// After `shutdown` the listener is closed, streams end, open connections
/// finish the request in flight (idle ones close at once), and the function returns
/// when they are all done or [`Config::drain_timeout`] has passed.
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let addr = listener.local_addr().map_err(Error::LocalAddr)?;
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    info!(%scheme, "listening on {addr}");

    // No hyper timer: `Idle` runs the header timeout with the connection's one timer.
    let mut http = http1::Builder::new();
    http.max_buf_size(MAX_BUF_SIZE).max_header_size(MAX_HEADER_SIZE);
    let drain_timeout = config.drain_timeout;
    let max_connections = config.max_connections;
    let limit = Arc::new(Semaphore::new(max_connections));
    // Streams are not requests to drain: they end as soon as shutdown starts.
    let (stop_streams, streams_stopped) = watch::channel(false);
    let hub = config.stream.clone().map(|stream| Arc::new(Hub::new(stream, streams_stopped.clone())));
    if let Some(hub) = &hub {
        tokio::spawn(hub.clone().sweep_until_stopped());
        info!("streaming deliveries to subscribers");
    }
    let shared = Arc::new(Shared {
        http,
        config,
        hub,
        peers: Mutex::new(HashMap::new()),
        slow: SlowBodies::default(),
        stop: Arc::default(),
    });
    let mut backoff = ACCEPT_BACKOFF.0;

    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = ACCEPT_BACKOFF.0;
                // Closing at once costs the least; the client's share is already open.
                let Some(slot) = shared.admit(peer.ip()) else {
                    debug!(peer = %peer.ip(), "connection refused: too many from this address");
                    continue;
                };
                // Beyond the cap, clients queue in the kernel rather than costing an fd here: this
                // one waits for a slot before the next is accepted, as in mini-redis.
                let permit = match limit.clone().try_acquire_owned() {
                    Ok(permit) => permit,
                    Err(_) => match give_way(&limit, &shared.slow, shutdown.as_mut()).await {
                        Some(permit) => permit,
                        None => break,
                    },
                };
                tokio::spawn(serve(stream, shared.clone(), (permit, slot)));
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
    stop_streams.send_replace(true);
    shared.stop.stop();
    info!(connections = max_connections - limit.available_permits(), "shutting down");
    // Every connection holds a permit until it closes: all of them back means all closed.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    match tokio::time::timeout(drain_timeout, limit.acquire_many(all)).await {
        Ok(_) => info!("all connections closed"),
        Err(_) => warn!(deadline = ?drain_timeout, "drain deadline passed; dropping the connections left"),
    }
    Ok(())
}

/// With every slot taken, cuts the slowest body in progress (again every [`GIVE_WAY_WAIT`]) until a
/// slot is free; `None` when shutdown comes first.
async fn give_way(
    limit: &Arc<Semaphore>,
    slow: &SlowBodies,
    mut shutdown: Pin<&mut impl Future<Output = ()>>,
) -> Option<OwnedSemaphorePermit> {
    loop {
        slow.cut_slowest();
        tokio::select! {
            biased;
            () = &mut shutdown => return None,
            // The semaphore lives in `run` and is never closed.
            permit = limit.clone().acquire_owned() => return permit.ok(),
            () = tokio::time::sleep(GIVE_WAY_WAIT) => {}
        }
    }
}

/// Serves one accepted connection, over TLS when configured, until it closes; errors are the
/// client's doing and logged only at debug level.
///
/// The slots are held until then: one of `--max-connections`, one of its address's share.
async fn serve(stream: TcpStream, shared: Arc<Shared>, slots: (OwnedSemaphorePermit, PeerSlot)) {
    // Responses are one small write; Nagle would only delay them.
    if let Err(err) = stream.set_nodelay(true) {
        debug!(error = %err, "cannot set TCP_NODELAY");
    }
    let phase = Phase::default();
    let peer = slots.1.ip;
    let io = Idle::new(stream, &shared.config, phase.clone(), shared.stop.clone());
    let io = match &shared.config.tls {
        None => Stream::Plain(io),
        Some(acceptor) => match tokio::time::timeout(shared.config.header_timeout, acceptor.accept(io)).await {
            Ok(Ok(tls)) => Stream::Tls(Box::new(tls)),
            Ok(Err(err)) => return debug!(error = %err, "TLS handshake failed"),
            Err(_) => return debug!("TLS handshake timed out"),
        },
    };
    let handler = shared.clone();
    let service = service_fn(move |req| {
        // hyper calls this once the head is in: its clock stops.
        phase.request();
        handle(req, handler.clone(), phase.clone(), peer)
    });
    if let Err(err) = shared.http.serve_connection(TokioIo::new(io), service).await {
        debug!(error = %err, "connection ended with an error");
    }
}

/// Answers one request: a stream to a subscription, else 200 once the body is read.
///
/// Only streaming and the request log need the request's head after its body, so only they keep it
/// (boxed): hyper moves this future into place for every request, and with the head in it the copy
/// was a measurable share of a request's CPU.
fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    phase: Phase,
    peer: Option<IpAddr>,
) -> impl Future<Output = Result<Reply, hyper::Error>> + Send + 'static {
    let (head, body) = req.into_parts();
    let post = head.method == Method::POST;
    let head = (shared.hub.is_some() || shared.config.log_requests).then(|| Box::new(head));
    answer(head, post, body, shared, phase, peer)
}

/// Answers a subscription with its stream; any other request with 200 after reading its body to the
/// end, publishing a POST's body to its stream.
///
/// The body is read rather than ignored so that the client can finish
/// sending and keep its connection. Without streaming each frame is dropped
/// as it arrives; with it, a POST's frames are collected to publish, unless
/// its path is longer than anyone's hook URL. `head` is there when streaming
/// or the request log needs it.
async fn answer(
    head: Option<Box<Parts>>,
    post: bool,
    mut body: Incoming,
    shared: Arc<Shared>,
    phase: Phase,
    peer: Option<IpAddr>,
) -> Result<Reply, hyper::Error> {
    let config = &shared.config;
    if let (Some(hub), Some(head)) = (&shared.hub, &head)
        && stream::is_subscription(head)
    {
        let reply = stream::subscribe(hub, head, &phase).await;
        phase.answered();
        return Ok(reply);
    }
    let started = config.log_requests.then(Instant::now);
    // hyper has parsed `Content-Length` already; looking it up again costs a hash per request.
    let declared = body.size_hint().exact();
    let mut collector = match (&shared.hub, &head) {
        (Some(hub), Some(head)) if post && head.uri.path().len() <= stream::MAX_PATH => {
            Some(hub.collector(declared.unwrap_or(config.max_body).min(config.max_body), peer))
        }
        _ => None,
    };
    let outcome = if declared.is_some_and(|declared| declared > config.max_body) {
        Err(Refused::TooLarge)
    } else {
        body::read(&mut body, config, &shared.slow, |data| {
            if let Some(collector) = &mut collector {
                collector.push(data);
            }
        })
        .await?
    };
    #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
    let mut stored = true;
    if let (Ok(_), Some(hub), Some(head)) = (&outcome, &shared.hub, &head)
        && let Some(body) = collector.and_then(stream::Collector::finish)
    {
        #[cfg(feature = "redis")]
        if let Some(append) = hub.store(head.uri.path(), &head.headers, body) {
            stored = append.await;
        }
        #[cfg(not(feature = "redis"))]
        hub.publish(head.uri.path(), &head.headers, body);
    }
    let reply = match outcome {
        // Fail closed: GitHub records a failed delivery, which hookfwd then fetches from the API.
        Ok(_) if !stored => {
            fixed(StatusCode::SERVICE_UNAVAILABLE, b"the shared stream cannot take this delivery now\n", &[])
        }
        // GitHub reads only the status, and naming the type cost 4 % of a POST's CPU (a header map to
        // fill, encode and clear); a person, or a subscriber asking a blackhole that does not stream,
        // is told it is text.
        Ok(_) if post => Reply::new(Either::Left(Full::new(Bytes::from_static(BODY)))),
        Ok(_) => fixed(StatusCode::OK, BODY, &[]),
        // Closing the connection stops the rest of the body; hyper would otherwise read it to reuse the connection.
        Err(Refused::TooLarge) => {
            fixed(StatusCode::PAYLOAD_TOO_LARGE, b"request body too large\n", &[(header::CONNECTION, "close")])
        }
        Err(Refused::TooSlow) => {
            fixed(StatusCode::REQUEST_TIMEOUT, b"request body too slow\n", &[(header::CONNECTION, "close")])
        }
    };
    phase.answered();
    if let (Some(started), Some(head)) = (started, &head) {
        let header = |name| head.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-");
        info!(
            method = %head.method,
            path = head.uri.path(),
            event = header("x-github-event"),
            delivery = header("x-github-delivery"),
            status = reply.status().as_u16(),
            bytes = outcome.ok(),
            duration = ?started.elapsed(),
            "request"
        );
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_and_a_mapped_ipv4_one_by_its_address() {
        let key = |ip: &str| peer_key(ip.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }

    #[test]
    fn debug_of_the_config_never_shows_a_stream_token() {
        let stream = StreamConfig {
            tokens: Tokens::parse("first-s3cret,second-s3cret").unwrap(),
            buffer_count: 256,
            buffer_bytes: 1 << 25,
            buffer_age: Duration::from_secs(120),
            buffer_total: 1 << 26,
            keepalive: Duration::from_secs(15),
            max_subscribers: 256,
            redis: None,
        };
        let shown = format!("{:?}", Config { stream: Some(stream), ..Config::default() });
        assert!(shown.contains("buffer_count: 256"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
