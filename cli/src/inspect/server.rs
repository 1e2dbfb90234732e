//! The inspector's HTTP side: the embedded page, a JSON API, live updates over SSE, and the buttons' actions.
//!
//! Loopback only. Every request must name a loopback `Host` (a DNS-rebinding page names its own) and every
//! state-changing one must carry the run's token, which only the page served here knows (against CSRF).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use relay::service::loopback_host;
use relay::{Forwarder, Target};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::store::Store;
use crate::fixture::Fixture;

type Body = BoxBody<Bytes, Infallible>;

const PAGE: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// The header the page sends its token in.
pub const TOKEN_HEADER: &str = "x-hookfwd-token";
/// The header a replayed request carries, so a handler (and its logs) can tell it from GitHub's.
const REPLAY_HEADER: &str = "X-Hookfwd-Replay";
/// How long the handler has to answer a replay.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(30);

/// What every request handler shares.
pub struct Shared {
    /// The deliveries held.
    pub store: Mutex<Store>,
    /// A summary line per change, for the page's live list.
    pub updates: broadcast::Sender<String>,
    /// The per-run token the page sends with every state-changing request.
    pub token: String,
    /// GitHub, for Redeliver.
    pub client: github::Client,
}

impl Shared {
    /// Tells open pages that entry `seq` changed.
    pub fn announce(&self, seq: u64) {
        if self.updates.receiver_count() == 0 {
            return;
        }
        let summary = self.lock().get(seq).map(super::store::Entry::summary);
        if let Some(summary) = summary {
            let _ = self.updates.send(summary.to_string());
        }
    }

    /// The store; a panic elsewhere while it was held does not stop the inspector.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Answers one request.
pub async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let host = request.headers().get(HOST).and_then(|value| value.to_str().ok()).unwrap_or_default();
    if !loopback_host(host) {
        return Ok(text(StatusCode::FORBIDDEN, "refused: the hookfwd inspector answers only to localhost\n"));
    }
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if method == Method::POST {
        let token = request.headers().get(TOKEN_HEADER).and_then(|value| value.to_str().ok()).unwrap_or_default();
        if token.is_empty() || token != shared.token {
            return Ok(json_answer(StatusCode::FORBIDDEN, &json!({"error": "missing or wrong inspector token"})));
        }
    }
    let answer = match (&method, parts.as_slice()) {
        (&Method::GET, [""]) => {
            let page = PAGE.replace("__TOKEN__", &shared.token);
            with_type(StatusCode::OK, "text/html; charset=utf-8", page)
        }
        (&Method::GET, ["app.js"]) => with_type(StatusCode::OK, "text/javascript; charset=utf-8", SCRIPT.to_string()),
        (&Method::GET, ["style.css"]) => with_type(StatusCode::OK, "text/css; charset=utf-8", STYLE.to_string()),
        (&Method::GET, ["api", "deliveries"]) => json_answer(StatusCode::OK, &Value::Array(shared.lock().list())),
        (&Method::GET, ["api", "events"]) => events(&shared),
        (&Method::GET, ["api", "stats"]) => {
            let (held, bytes) = shared.lock().held();
            json_answer(StatusCode::OK, &json!({"held": held, "bytes": bytes, "max_bytes": super::store::MAX_BYTES}))
        }
        (&Method::GET, ["api", "deliveries", seq]) => match entry_detail(&shared, seq) {
            Some(detail) => json_answer(StatusCode::OK, &detail),
            None => not_found(),
        },
        (&Method::GET, ["api", "deliveries", seq, "curl"]) => match curl(&shared, seq) {
            Some(command) => text(StatusCode::OK, &command),
            None => not_found(),
        },
        (&Method::GET, ["api", "deliveries", seq, "fixture"]) => fixture(&shared, seq),
        (&Method::POST, ["api", "deliveries", seq, "replay"]) => replay(&shared, seq).await,
        (&Method::POST, ["api", "deliveries", seq, "redeliver"]) => redeliver(&shared, seq).await,
        (&Method::GET | &Method::POST, _) => not_found(),
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
    };
    Ok(answer)
}

fn entry_detail(shared: &Shared, seq: &str) -> Option<Value> {
    let seq: u64 = seq.parse().ok()?;
    shared.lock().get(seq).map(super::store::Entry::detail)
}

/// The live list: each change as one SSE `data:` line holding the row's summary.
fn events(shared: &Arc<Shared>) -> Response<Body> {
    let receiver = shared.updates.subscribe();
    // A first comment, so the page knows at once that the stream is open.
    let hello = futures::stream::once(async { Ok::<_, Infallible>(Frame::data(Bytes::from_static(b": live\n\n"))) });
    let updates = futures::stream::unfold(receiver, |mut receiver| async move {
        let frame = match receiver.recv().await {
            Ok(line) => Frame::data(Bytes::from(format!("data: {line}\n\n"))),
            // A slow page missed some: it reloads the whole list on this event.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                Frame::data(Bytes::from_static(b"event: reload\ndata: {}\n\n"))
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok::<_, Infallible>(frame), receiver))
    });
    let stream = futures::StreamExt::chain(hello, updates);
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

/// A curl command that sends the delivery as it was forwarded, signed for the local secret.
fn curl(shared: &Shared, seq: &str) -> Option<String> {
    let seq: u64 = seq.parse().ok()?;
    let store = shared.lock();
    let entry = store.get(seq)?;
    let (request, target) = (entry.request.as_ref()?, entry.target.as_ref()?);
    let mut command = format!("curl -sS -X POST {}", quote(target.as_str()));
    for (name, value) in &request.headers {
        command.push_str(&format!(" \\\n  -H {}", quote(&format!("{name}: {value}"))));
    }
    command.push_str(&format!(" \\\n  --data-binary {}\n", quote(&String::from_utf8_lossy(&request.body))));
    Some(command)
}

/// `text` in single quotes for a POSIX shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The delivery as a fixture file, downloaded by the browser.
fn fixture(shared: &Shared, seq: &str) -> Response<Body> {
    let Ok(seq) = seq.parse::<u64>() else { return not_found() };
    let store = shared.lock();
    let Some((entry, request)) = store.get(seq).and_then(|entry| Some((entry, entry.request.as_ref()?))) else {
        return not_found();
    };
    let fixture = Fixture::new(&entry.item, request);
    let mut response = with_type(StatusCode::OK, "application/json", fixture.to_json());
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", fixture.file_name())) {
        response.headers_mut().insert("content-disposition", value);
    }
    response
}

/// Replay to handler: the same request (same signature) again, now, as a new row marked as a replay.
async fn replay(shared: &Arc<Shared>, seq: &str) -> Response<Body> {
    let Ok(seq) = seq.parse::<u64>() else { return not_found() };
    let Some(original) = shared.lock().get(seq).cloned() else { return not_found() };
    let (Some(request), Some(target)) = (original.request.clone(), original.target.clone()) else {
        let error = if original.trimmed {
            "its request was dropped to keep the inspector's memory bounded; use Redeliver on GitHub"
        } else {
            "this delivery has not been forwarded yet"
        };
        return json_answer(StatusCode::CONFLICT, &json!({"error": error}));
    };
    let mut again = (*request).clone();
    again.headers.push((REPLAY_HEADER.into(), "1".into()));
    let again = Arc::new(again);
    let outcome = Forwarder::new(Target(target), REPLAY_TIMEOUT).send(&again).await.map_err(|error| error.to_string());
    let status = outcome.as_ref().ok().map(|response| response.status);
    let error = outcome.as_ref().err().cloned();
    let new = shared.lock().replayed(&original, again, outcome);
    shared.announce(new);
    json_answer(StatusCode::OK, &json!({"seq": new, "status": status, "error": error}))
}

/// Redeliver on GitHub: GitHub sends it again (a new delivery with the same guid, marked a redelivery).
async fn redeliver(shared: &Arc<Shared>, seq: &str) -> Response<Body> {
    let Ok(seq) = seq.parse::<u64>() else { return not_found() };
    let Some(entry) = shared.lock().get(seq).cloned() else { return not_found() };
    let id = match entry.item.id {
        0 => match crate::cmd::trigger::find_delivery(&shared.client, &entry.hook, &entry.item.guid).await {
            Ok(Some(item)) => item.id,
            Ok(None) => {
                return json_answer(
                    StatusCode::CONFLICT,
                    &json!({"error": "GitHub no longer lists this delivery, so it cannot redeliver it"}),
                );
            }
            Err(error) => return json_answer(StatusCode::BAD_GATEWAY, &json!({"error": format!("{error:#}")})),
        },
        id => id,
    };
    match shared.client.redeliver(&entry.hook, id).await {
        Ok(()) => json_answer(StatusCode::OK, &json!({"redelivering": id})),
        Err(error) => json_answer(StatusCode::BAD_GATEWAY, &json!({"error": error.to_string()})),
    }
}

fn with_type(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(BodyExt::boxed(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'"),
    );
    response
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    with_type(status, "text/plain; charset=utf-8", body.to_string())
}

fn json_answer(status: StatusCode, value: &Value) -> Response<Body> {
    with_type(status, "application/json", value.to_string())
}

fn not_found() -> Response<Body> {
    json_answer(StatusCode::NOT_FOUND, &json!({"error": "no such delivery (the inspector keeps only the latest)"}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_pass_and_an_authority_with_more_is_none() {
        for host in ["localhost:4040", "127.0.0.1:4040", "[::1]:4040"] {
            assert!(loopback_host(host), "{host}");
        }
        for host in ["evil.example:4040", "localhost:4040@evil.example", "localhost:4040/@evil.example"] {
            assert!(!loopback_host(host), "{host}");
        }
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
