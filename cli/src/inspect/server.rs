//! The inspector's HTTP side: the embedded page, a JSON API, live updates over SSE, and the buttons' actions.
//!
//! Loopback only. Every request must name a loopback `Host` (a DNS-rebinding page names its own) and every
//! state-changing one must carry the run's token, which only the page served here knows (against CSRF).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use github::{HookRef, Secret};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use relay::service::loopback_host;
use relay::{Forwarder, Outgoing, Target};
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, watch};
use url::Url;

use super::store::{self, Store};
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
/// The largest edited request taken: more than GitHub ever sends (25 MB).
const MAX_EDIT: usize = 32 << 20;
/// Headers HTTP sets for each connection, which an edited replay may not set.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];
/// Headers hookfwd sets on a replay: the signatures over the bytes sent, and the replay's mark.
const SET_BY_HOOKFWD: &[&str] = &["x-hub-signature", "x-hub-signature-256", "x-hookfwd-replay"];

/// What every request handler shares.
pub struct Shared {
    /// The deliveries held.
    pub store: Mutex<Store>,
    /// Each change, for the page's live list.
    pub updates: broadcast::Sender<Update>,
    /// The per-run token the page sends with every state-changing request.
    pub token: String,
    /// GitHub, for Redeliver.
    pub client: github::Client,
    /// The run's retry key, as the `r` key presses it: it skips the retry wait under way and sends the
    /// deliveries parked during this run again, un-parking each one the handler takes.
    pub press: watch::Sender<u64>,
    /// Each rule's local secret, to sign an edited replay with.
    pub signers: Vec<Signer>,
}

/// A rule's sources and target, and the local secret their deliveries are signed with.
pub struct Signer {
    /// The sources, as their hooks' setup names them (`owner/repo`, an org, `app`).
    pub sources: Vec<String>,
    /// Where their deliveries go.
    pub target: Url,
    /// The local secret, if the rule has one.
    pub secret: Option<Secret>,
}

/// One change for open pages: an SSE event name (`None`: a row's summary) and its data.
#[derive(Debug, Clone)]
pub struct Update {
    /// The SSE event's name; `None` for the default, a row.
    pub event: Option<&'static str>,
    /// One line of JSON.
    pub data: String,
}

impl Shared {
    /// Tells open pages that entry `seq` changed.
    pub fn announce(&self, seq: u64) {
        if self.updates.receiver_count() == 0 {
            return;
        }
        let summary = self.lock().get(seq).map(super::store::Entry::summary);
        if let Some(summary) = summary {
            let _ = self.updates.send(Update { event: None, data: summary.to_string() });
        }
    }

    /// Tells open pages which sources are served now.
    pub fn announce_served(&self) {
        let served = self.lock().served();
        let _ = self.updates.send(Update { event: Some("served"), data: served.to_string() });
    }

    /// The local secret a hook's deliveries are signed with.
    fn secret_for(&self, hook: &HookRef) -> Option<Secret> {
        let served = self.lock().source_of(hook).cloned()?;
        let signer = self
            .signers
            .iter()
            .find(|signer| signer.target == served.target && signer.sources.contains(&served.source))?;
        signer.secret.clone()
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
        (&Method::GET, ["api", "served"]) => json_answer(StatusCode::OK, &shared.lock().served()),
        (&Method::GET, ["api", "search"]) => search(&shared, request.uri().query()).await,
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
        (&Method::POST, ["api", "deliveries", seq, "replay"]) => replay(&shared, seq, request.into_body()).await,
        (&Method::POST, ["api", "deliveries", seq, "again"]) => again(&shared, seq),
        (&Method::POST, ["api", "deliveries", seq, "redeliver"]) => redeliver(&shared, seq).await,
        (&Method::GET | &Method::POST, _) => not_found(),
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
    };
    Ok(answer)
}

fn entry_detail(shared: &Shared, seq: &str) -> Option<Value> {
    let seq: u64 = seq.parse().ok()?;
    shared.lock().detail(seq)
}

/// The rows whose request (headers or payload) holds `?q=`, in any letter case: `{"seqs": [...]}`.
async fn search(shared: &Shared, query: Option<&str>) -> Response<Body> {
    let needle = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == "q")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if needle.is_empty() {
        return json_answer(StatusCode::OK, &json!({"seqs": []}));
    }
    // Searched off the lock and off the async workers: up to 16 MiB of payloads.
    let requests = shared.lock().requests();
    let seqs = tokio::task::spawn_blocking(move || store::search(&requests, &needle)).await.unwrap_or_default();
    json_answer(StatusCode::OK, &json!({"seqs": seqs}))
}

/// The live list: each change as one SSE `data:` line holding the row's summary.
fn events(shared: &Arc<Shared>) -> Response<Body> {
    let receiver = shared.updates.subscribe();
    // A first comment, so the page knows at once that the stream is open.
    let hello = futures::stream::once(async { Ok::<_, Infallible>(Frame::data(Bytes::from_static(b": live\n\n"))) });
    let updates = futures::stream::unfold(receiver, |mut receiver| async move {
        let frame = match receiver.recv().await {
            Ok(Update { event: None, data }) => Frame::data(Bytes::from(format!("data: {data}\n\n"))),
            Ok(Update { event: Some(name), data }) => {
                Frame::data(Bytes::from(format!("event: {name}\ndata: {data}\n\n")))
            }
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

/// Replay to handler: the same request (same signature) again, now, as a new row marked as a replay; or, with
/// an edit in the body (`{"payload": "…", "headers": {…}}`), the edited request signed with the local secret.
async fn replay(shared: &Arc<Shared>, seq: &str, body: Incoming) -> Response<Body> {
    let Ok(seq) = seq.parse::<u64>() else { return not_found() };
    let body = match Limited::new(body, MAX_EDIT).collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            let error = "the edited request is larger than 32 MiB, more than GitHub ever sends";
            return json_answer(StatusCode::PAYLOAD_TOO_LARGE, &json!({"error": error}));
        }
        Err(_) => return bad_request("the request's body could not be read".into()),
    };
    let edit = match Edit::parse(&body) {
        Ok(edit) => edit,
        Err(sentence) => return bad_request(sentence),
    };
    let Some(original) = shared.lock().get(seq).cloned() else { return not_found() };
    let edited = edit.is_some();
    let secret = shared.secret_for(&original.hook);
    let (again, outcome) = match send_again(&original, edit, secret.as_ref()).await {
        Ok(sent) => sent,
        Err(error) => return json_answer(StatusCode::CONFLICT, &json!({"error": error})),
    };
    let status = outcome.as_ref().ok().map(|response| response.status);
    let error = outcome.as_ref().err().cloned();
    let new = shared.lock().replayed(&original, again, edited, outcome);
    shared.announce(new);
    json_answer(StatusCode::OK, &json!({"seq": new, "status": status, "error": error}))
}

/// Sends `original`'s request to its handler again, now, marked as a replay: as forwarded (same signature), or
/// edited and signed with `secret`. Returns the request sent and the outcome, for [`Store::replayed`]; or why
/// it cannot be sent, in one sentence.
pub async fn send_again(
    original: &store::Entry,
    edit: Option<Edit>,
    secret: Option<&Secret>,
) -> Result<(Arc<Outgoing>, Result<relay::Response, String>), &'static str> {
    let (Some(request), Some(target)) = (original.request.clone(), original.target.clone()) else {
        return Err(if original.trimmed {
            "its request was dropped to keep the inspector's memory bounded; use Redeliver on GitHub"
        } else {
            "this delivery has not been forwarded yet"
        });
    };
    let target = Target(target);
    if target.is_keep() {
        return Err("there is no handler to send it to: this run was started without --to");
    }
    let mut again = match edit {
        None => (*request).clone(),
        Some(edit) => {
            let headers = edit.headers.unwrap_or_else(|| {
                let kept = request.headers.iter().filter(|(name, _)| !is_set_by_hookfwd(name));
                kept.cloned().collect()
            });
            let body = edit.payload.map_or_else(|| request.body.clone(), String::into_bytes);
            Outgoing::signed(headers, body, secret)
        }
    };
    again.headers.push((REPLAY_HEADER.into(), "1".into()));
    let again = Arc::new(again);
    let outcome = Forwarder::new(target, REPLAY_TIMEOUT).send(&again).await.map_err(|error| error.to_string());
    Ok((again, outcome))
}

/// An edit of a delivery's request, from the page: the payload's exact bytes and the headers to send (all of
/// them but those hookfwd sets), each optional.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Edit {
    /// The payload, as text.
    pub payload: Option<String>,
    /// Every header to send, in place of the delivery's.
    pub headers: Option<Vec<(String, String)>>,
}

impl Edit {
    /// `None` for an empty body (replay the request as forwarded), else the edit, or one sentence saying
    /// what is wrong with it.
    fn parse(body: &[u8]) -> Result<Option<Self>, String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
            return Err(
                r#"the body must be a JSON object such as {"payload": "…", "headers": {"Name": "value"}}"#.into()
            );
        };
        let mut edit = Self::default();
        for (field, value) in fields {
            match (field.as_str(), value) {
                ("payload", Value::String(payload)) => edit.payload = Some(payload),
                ("payload", _) => return Err("\"payload\" must be a string: the exact bytes to send".into()),
                ("headers", Value::Object(headers)) => edit.headers = Some(Self::headers(headers)?),
                ("headers", _) => {
                    return Err("\"headers\" must be an object of header names and string values".into());
                }
                (other, _) => {
                    return Err(format!("unknown field {other:?}; the body takes \"payload\" and \"headers\""));
                }
            }
        }
        Ok(Some(edit))
    }

    /// The headers of an edit, each one HTTP can carry and hookfwd does not set itself.
    fn headers(headers: Map<String, Value>) -> Result<Vec<(String, String)>, String> {
        let mut checked = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let Value::String(value) = value else {
                return Err(format!("the header {name:?} must have a string value"));
            };
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("{name:?} is not a valid HTTP header name"));
            }
            if HeaderValue::from_str(&value).is_err() {
                return Err(format!(
                    "the value of {name} holds a line break, a character outside ASCII or another character an \
                     HTTP header cannot carry"
                ));
            }
            let lower = name.to_ascii_lowercase();
            if HOP_BY_HOP.contains(&lower.as_str()) {
                return Err(format!("{name} is set by HTTP itself for each connection; leave it out"));
            }
            if is_set_by_hookfwd(&name) {
                return Err(format!(
                    "{name} is set by hookfwd, which signs the bytes it sends with the local secret and marks \
                     replays; leave it out"
                ));
            }
            checked.push((name, value));
        }
        Ok(checked)
    }
}

/// Whether hookfwd sets the header `name` on a replay itself.
fn is_set_by_hookfwd(name: &str) -> bool {
    SET_BY_HOOKFWD.iter().any(|set| name.eq_ignore_ascii_case(set))
}

/// Retry now, or Send again: presses the run's retry key, as the `r` key does. A delivery whose handler has
/// not answered (or answered 5xx) is tried again at once; this run's parked ones are sent again, each
/// un-parked once the handler takes it.
fn again(shared: &Shared, seq: &str) -> Response<Body> {
    let Ok(seq) = seq.parse::<u64>() else { return not_found() };
    let store = shared.lock();
    let Some(entry) = store.get(seq) else { return not_found() };
    let waiting = entry.attempts.last().is_some_and(|last| last.status.is_none_or(|status| status >= 500));
    let refused = if entry.replay {
        Some("a replay is sent once; Replay sends it again")
    } else if !store.is_current(entry) {
        Some("this delivery was sent again since; the newer row shows how that went")
    } else if !entry.parked && !waiting {
        Some("only a parked delivery, or one the handler has not taken yet, is sent again from here; Replay sends any")
    } else {
        None
    };
    if let Some(error) = refused {
        return json_answer(StatusCode::CONFLICT, &json!({"error": error}));
    }
    let parked = entry.parked;
    drop(store);
    shared.press.send_modify(|presses| *presses += 1);
    json_answer(StatusCode::OK, &json!({"pressed": true, "parked": parked}))
}

/// Redeliver on GitHub: GitHub sends it again (a new delivery with the same guid, marked a redelivery).
async fn redeliver(shared: &Arc<Shared>, seq: &str) -> Response<Body> {
    let Ok(seq) = seq.parse::<u64>() else { return not_found() };
    let Some(entry) = shared.lock().get(seq).cloned() else { return not_found() };
    match ask_redelivery(&shared.client, &entry).await {
        Ok(id) => json_answer(StatusCode::OK, &json!({"redelivering": id})),
        Err((status, error)) => json_answer(status, &json!({"error": error})),
    }
}

/// Asks GitHub to redeliver `entry` (a pushed one is found in GitHub's list first: the stream gave it no id);
/// returns the id GitHub redelivers, or why not: a status for the page and one sentence.
pub async fn ask_redelivery(client: &github::Client, entry: &store::Entry) -> Result<u64, (StatusCode, String)> {
    let id = match entry.item.id {
        0 => match crate::cmd::trigger::find_delivery(client, &entry.hook, &entry.item.guid).await {
            Ok(Some(item)) => item.id,
            Ok(None) => {
                let error = "GitHub no longer lists this delivery, so it cannot redeliver it";
                return Err((StatusCode::CONFLICT, error.into()));
            }
            Err(error) => return Err((StatusCode::BAD_GATEWAY, format!("{error:#}"))),
        },
        id => id,
    };
    match client.redeliver(&entry.hook, id).await {
        Ok(()) => Ok(id),
        Err(error) => Err((StatusCode::BAD_GATEWAY, error.to_string())),
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

fn bad_request(sentence: String) -> Response<Body> {
    json_answer(StatusCode::BAD_REQUEST, &json!({"error": sentence}))
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
    fn an_edit_takes_a_payload_string_and_headers_http_can_carry() {
        assert_eq!(Edit::parse(b""), Ok(None), "no body: replay as forwarded");
        assert_eq!(Edit::parse(b" \n"), Ok(None));
        let edit = Edit::parse(br#"{"payload": "{\"n\": 1}", "headers": {"X-GitHub-Event": "issues"}}"#).unwrap();
        let edit = edit.unwrap();
        assert_eq!(edit.payload.as_deref(), Some(r#"{"n": 1}"#));
        assert_eq!(edit.headers, Some(vec![("X-GitHub-Event".into(), "issues".into())]));
        assert_eq!(Edit::parse(br#"{"headers": {}}"#).unwrap().unwrap().payload, None, "the payload as it was");
    }

    #[test]
    fn a_bad_edit_is_one_sentence() {
        for (body, says) in [
            (&br#"not json"#[..], "must be a JSON object"),
            (br#"["payload"]"#, "must be a JSON object"),
            (br#"{"payload": 1}"#, "\"payload\" must be a string"),
            (br#"{"payload": "x", "extra": 1}"#, "unknown field \"extra\""),
            (br#"{"headers": ["X-A: 1"]}"#, "\"headers\" must be an object"),
            (br#"{"headers": {"X-A": 1}}"#, "must have a string value"),
            (br#"{"headers": {"Bad Name": "1"}}"#, "\"Bad Name\" is not a valid HTTP header name"),
            (br#"{"headers": {"X-A": "one\r\nX-B: two"}}"#, "the value of X-A holds a line break"),
            (br#"{"headers": {"Transfer-Encoding": "chunked"}}"#, "Transfer-Encoding is set by HTTP itself"),
            (br#"{"headers": {"content-length": "3"}}"#, "content-length is set by HTTP itself"),
            (br#"{"headers": {"X-Hub-Signature-256": "sha256=00"}}"#, "X-Hub-Signature-256 is set by hookfwd"),
            (br#"{"headers": {"X-Hookfwd-Replay": "0"}}"#, "X-Hookfwd-Replay is set by hookfwd"),
        ] {
            let error = Edit::parse(body).expect_err(&String::from_utf8_lossy(body));
            assert!(error.contains(says), "{error}");
            assert_eq!(error.lines().count(), 1, "{error}");
        }
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
