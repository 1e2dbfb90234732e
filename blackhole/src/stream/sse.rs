//! The subscriber side of the push stream: the `GET` that opens one, the task that copies events from the
//! hub's buffer into the response as Server-Sent Events, and the response body those frames flow through.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame};
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use tokio::sync::{mpsc, watch};

use crate::idle::Phase;

use super::*;

/// Whether a request asks for a stream: a `GET` that accepts `text/event-stream`.
pub(crate) fn is_subscription(head: &Parts) -> bool {
    head.method == hyper::Method::GET
        && head.headers.get_all(header::ACCEPT).iter().any(|value| {
            value.to_str().is_ok_and(|accept| {
                accept.split(',').any(|kind| {
                    kind.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
                })
            })
        })
}

/// Answers a subscription: 401 without a token that opens its path, 503 when full (or, with `--redis`, when
/// the shared stream cannot be read), else the stream.
pub(crate) async fn subscribe(hub: &Arc<Hub>, head: &Parts, phase: &Phase) -> Reply {
    if !hub.config.tokens.accepts(head.headers.get(header::AUTHORIZATION), head.uri.path()) {
        return fixed(StatusCode::UNAUTHORIZED, UNAUTHORIZED, &[(header::WWW_AUTHENTICATE, "Bearer")]);
    }
    if head.uri.path().len() > MAX_PATH {
        return fixed(StatusCode::URI_TOO_LONG, b"a path this long is not streamed\n", &[]);
    }
    let Ok(permit) = hub.subscribers.clone().try_acquire_owned() else {
        return fixed(StatusCode::SERVICE_UNAVAILABLE, b"too many streams\n", &[(header::RETRY_AFTER, "5")]);
    };
    let last_event_id = head.headers.get("last-event-id").and_then(|value| value.to_str().ok());
    let Some((subscription, resumed, boot)) = hub.subscribe(head.uri.path(), last_event_id, permit).await else {
        return fixed(
            StatusCode::SERVICE_UNAVAILABLE,
            b"the shared stream cannot be read now\n",
            &[(header::RETRY_AFTER, "5")],
        );
    };
    phase.stream();
    // Capacity 1: the task stays at most one frame ahead of what the socket has taken.
    let (tx, rx) = mpsc::channel(1);
    let hello = format!("retry: 1000\n\nevent: hello\ndata: {{\"boot\":\"{boot}\",\"resumed\":{resumed}}}\n\n");
    // Forced: `--max-subscribers` bounds what hellos can take.
    let hello = hub.forced_frame(hello);
    tokio::spawn(pump(subscription, hello, tx, hub.shutdown.clone(), hub.config.keepalive));
    let mut response = Response::new(Either::Right(SseBody { rx }));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    // A stream is the last response on its connection: when it ends, the client reconnects anyway.
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A response with a fixed body and extra headers.
pub(crate) fn fixed(status: StatusCode, body: &'static [u8], headers: &[(header::HeaderName, &'static str)]) -> Reply {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from_static(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    for (name, value) in headers {
        response.headers_mut().insert(name.clone(), HeaderValue::from_static(value));
    }
    response
}

/// Why a stream stops.
enum Stop {
    /// The client left, the server is stopping, or the event being sent left the buffer mid-way.
    Ended,
    /// The subscriber cannot be given its next event: it gets `gap`, then the stream ends.
    Behind,
}

/// Feeds one subscriber's response from the buffer until it ends, falls behind, or the server stops.
async fn pump(
    mut sub: Subscription,
    hello: Bytes,
    tx: mpsc::Sender<Bytes>,
    mut shutdown: watch::Receiver<bool>,
    keepalive: Duration,
) {
    if !send(&tx, &mut shutdown, hello).await {
        return;
    }
    let hub = sub.hub.clone();
    loop {
        // Mark the newest seq seen before looking, so a publish after the look wakes the wait below.
        sub.newest.borrow_and_update();
        let stop = match hub.next(sub.path.as_str(), sub.cursor) {
            Next::Event(event) => {
                let seq = event.seq;
                match send_event(&hub, sub.path.as_str(), event, &tx, &mut shutdown).await {
                    Ok(()) => {
                        sub.cursor = seq;
                        continue;
                    }
                    Err(stop) => Some(stop),
                }
            }
            Next::Gap => Some(Stop::Behind),
            Next::Wait => None,
        };
        match stop {
            Some(Stop::Behind) => {
                let gap = "event: gap\ndata: {\"reason\":\"this stream fell behind the replay buffer\"}\n\n";
                send(&tx, &mut shutdown, Bytes::from_static(gap.as_bytes())).await;
                return;
            }
            Some(Stop::Ended) => return,
            None => {}
        }
        let quiet = tokio::select! {
            changed = sub.newest.changed() => if changed.is_err() { return } else { false },
            _ = shutdown.wait_for(|stop| *stop) => return,
            () = tx.closed() => return,
            () = tokio::time::sleep(keepalive) => true,
        };
        if quiet && !send(&tx, &mut shutdown, Bytes::from_static(b": keep-alive\n\n")).await {
            return;
        }
    }
}

/// Hands a frame to the response as soon as hyper takes it; false when the stream is over.
async fn send(tx: &mpsc::Sender<Bytes>, shutdown: &mut watch::Receiver<bool>, frame: Bytes) -> bool {
    tokio::select! {
        sent = tx.send(frame) => sent.is_ok(),
        _ = shutdown.wait_for(|stop| *stop) => false,
    }
}

/// Sends one `delivery` event, its body base64-encoded a chunk at a time as the socket takes it.
///
/// The event is held only while a frame is encoded, never across a wait: the buffer alone keeps it,
/// so evicting it frees its memory at once, and a reader still sending it is cut at its next frame.
async fn send_event(
    hub: &Hub,
    path: &str,
    event: Arc<Event>,
    tx: &mpsc::Sender<Bytes>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), Stop> {
    let seq = event.seq;
    let len = event.body.len();
    let mut head = format!(
        "id: {}\nevent: delivery\ndata: {{\"received_at\":\"{}\",\"headers\":{},\"body\":\"",
        hub.event_id(seq),
        event.received_at,
        event.headers
    );
    // A body that fits one frame goes out with its head and tail in one write, as most do.
    if len <= BODY_CHUNK {
        STANDARD.encode_string(&event.body, &mut head);
        head.push_str("\"}\n\n");
    }
    drop(event);
    // Nothing of this event has been sent yet, so the subscriber can still be told it fell behind.
    let head = hub.frame(head).ok_or(Stop::Behind)?;
    if !send(tx, shutdown, head).await {
        return Err(Stop::Ended);
    }
    if len <= BODY_CHUNK {
        return Ok(());
    }
    for start in (0..len).step_by(BODY_CHUNK) {
        let Some(event) = hub.event(path, seq) else { return Err(Stop::Ended) };
        let text = STANDARD.encode(&event.body[start..len.min(start + BODY_CHUNK)]);
        drop(event);
        // Mid-event a `gap` cannot be told apart from the body: the stream just ends.
        let Some(frame) = hub.frame(text) else { return Err(Stop::Ended) };
        if !send(tx, shutdown, frame).await {
            return Err(Stop::Ended);
        }
    }
    if send(tx, shutdown, Bytes::from_static(b"\"}\n\n")).await { Ok(()) } else { Err(Stop::Ended) }
}

/// A stream's response body: the frames its pump task sends.
pub(crate) struct SseBody {
    /// Frames from the pump; the stream ends when it stops.
    rx: mpsc::Receiver<Bytes>,
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|frame| frame.map(|data| Ok(Frame::data(data))))
    }
}
