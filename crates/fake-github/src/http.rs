//! The HTTP side of every answer, API or control surface: the [`Reply`] being built, a body generated as
//! it is sent, the headers every GitHub answer carries, weak ETags, request bodies within their limit, and
//! GitHub's timestamps.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use crate::Inner;

/// The largest request body accepted.
pub(crate) const BODY_LIMIT: usize = 5 * 1024 * 1024;

/// An answer's body: whole, or generated as it is sent (a hostile answer).
pub(crate) type AnswerBody = Either<Full<Bytes>, Generated>;

/// How many bytes a generated body hands over at a time.
const CHUNK: usize = 64 * 1024;

/// A body made as it is sent: `head`, `unit` `left` times (forever when `None`), then `tail`.
pub(crate) struct Generated {
    head: Option<Bytes>,
    unit: Bytes,
    left: Option<u64>,
    tail: Option<Bytes>,
}

impl Generated {
    /// `head`, then `unit` repeated to make about `bytes` bytes (forever when `None`), then `tail`.
    pub(crate) fn new(head: &[u8], unit: &[u8], bytes: Option<u64>, tail: &[u8]) -> Self {
        // Whole units in one chunk, so that the repetition stays valid JSON.
        let per_chunk = (CHUNK / unit.len().max(1)).max(1);
        let unit = Bytes::from(unit.repeat(per_chunk));
        let left = bytes.map(|bytes| bytes.div_ceil(unit.len() as u64));
        Self { head: Some(Bytes::copy_from_slice(head)), unit, left, tail: Some(Bytes::copy_from_slice(tail)) }
    }
}

impl Body for Generated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(head) = this.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        match &mut this.left {
            None => return Poll::Ready(Some(Ok(Frame::data(this.unit.clone())))),
            Some(left @ 1..) => {
                *left -= 1;
                return Poll::Ready(Some(Ok(Frame::data(this.unit.clone()))));
            }
            Some(_) => {}
        }
        Poll::Ready(this.tail.take().map(|tail| Ok(Frame::data(tail))))
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.left == Some(0) && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let Some(left) = self.left else { return SizeHint::default() };
        let edges = self.head.as_ref().map_or(0, Bytes::len) + self.tail.as_ref().map_or(0, Bytes::len);
        SizeHint::with_exact(edges as u64 + left * self.unit.len() as u64)
    }
}

/// The connection is closed without an answer (the drop fault).
#[derive(Debug)]
pub(crate) struct Dropped;

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

/// An answer before the common headers are added.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
    pub headers: Vec<(&'static str, String)>,
    /// Whether it counts against the primary budget.
    pub counted: bool,
    /// A body generated as it is sent, in place of `body`.
    pub generated: Option<Box<Generated>>,
}

impl Reply {
    pub fn json(status: StatusCode, value: &Value) -> Self {
        // Serialising a Value cannot fail: its keys are strings.
        Self::raw(status, serde_json::to_vec(value).unwrap_or_default())
    }

    pub fn raw(status: StatusCode, body: impl Into<Bytes>) -> Self {
        Self { status, body: body.into(), headers: Vec::new(), counted: true, generated: None }
    }

    /// `reply` with its body replaced by one generated as it is sent.
    pub(crate) fn generated(mut reply: Reply, body: Generated) -> Self {
        reply.body = Bytes::new();
        reply.generated = Some(Box::new(body));
        reply
    }

    pub fn empty(status: StatusCode) -> Self {
        Self::raw(status, Bytes::new())
    }

    /// GitHub's `basic-error`.
    pub fn error(status: StatusCode, message: &str, documentation_url: &str) -> Self {
        Self::json(
            status,
            &json!({"message": message, "documentation_url": documentation_url, "status": status.as_u16().to_string()}),
        )
    }

    pub fn not_found(documentation_url: &str) -> Self {
        Self::error(StatusCode::NOT_FOUND, "Not Found", documentation_url)
    }

    /// GitHub's `validation-error` with one custom error about a hook.
    pub fn invalid(message: &str, field: Option<&str>, documentation_url: &str) -> Self {
        let mut error = json!({"resource": "Hook", "code": "custom", "message": message});
        if let Some(field) = field {
            error["field"] = json!(field);
        }
        Self::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"message": "Validation Failed", "errors": [error], "documentation_url": documentation_url, "status": "422"}),
        )
    }

    /// GitHub's answer to a body that does not match the operation's schema.
    pub fn bad_request_body(detail: &str, documentation_url: &str) -> Self {
        Self::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"message": format!("Invalid request.\n\n{detail}"), "documentation_url": documentation_url, "status": "422"}),
        )
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// `path` below `prefix` (`/api/v3/repos` → `/repos`); `None` when it lies outside. An empty prefix keeps every path.
pub(crate) fn strip_prefix<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    match path.strip_prefix(prefix)? {
        "" => Some("/"),
        rest if rest.starts_with('/') => Some(rest),
        _ => None,
    }
}

/// Reads a request body up to [`BODY_LIMIT`]; `None` when it is too large or broken.
pub(crate) async fn read_body(body: Incoming) -> Option<Bytes> {
    Limited::new(body, BODY_LIMIT).collect().await.ok().map(|collected| collected.to_bytes())
}

pub(crate) fn with_scopes(reply: Reply, scopes: &Option<String>) -> Reply {
    match scopes {
        Some(scopes) => reply.header("x-oauth-scopes", scopes.clone()),
        None => reply,
    }
}

/// Adds the headers every GitHub answer carries.
pub(crate) fn finish(inner: &Inner, reply: Reply, limits: Option<Limits>) -> Response<AnswerBody> {
    let body = match reply.generated {
        Some(generated) => Either::Right(*generated),
        None => Either::Left(Full::new(reply.body)),
    };
    let mut response = Response::new(body);
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.append(name, value);
        }
    };
    set("content-type", "application/json; charset=utf-8");
    set("server", "github.com");
    set("x-github-media-type", "github.v3; format=json");
    set("x-github-api-version-selected", "2022-11-28");
    set("x-github-request-id", &inner.request_id());
    if let Some(limits) = limits {
        set("x-ratelimit-limit", &limits.limit.to_string());
        set("x-ratelimit-remaining", &limits.remaining.to_string());
        set("x-ratelimit-used", &limits.used.to_string());
        set("x-ratelimit-reset", &limits.reset.to_string());
        set("x-ratelimit-resource", "core");
    }
    for (name, value) in &reply.headers {
        set(name, value);
    }
    response
}

/// A weak ETag over the body, which changes whenever the answer does.
pub(crate) fn etag(body: &[u8]) -> String {
    let fnv = |seed: u64| body.iter().fold(seed, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3));
    format!("W/\"{:016x}{:016x}\"", fnv(0xcbf2_9ce4_8422_2325), fnv(0x6c62_272e_07bb_0142))
}

/// GitHub's time format: RFC 3339, whole seconds, `Z`.
pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A budget's numbers as GitHub reports them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
    pub(crate) used: u32,
    pub(crate) reset: i64,
}

impl Limits {
    pub(crate) fn json(&self) -> Value {
        json!({"limit": self.limit, "remaining": self.remaining, "reset": self.reset, "used": self.used})
    }
}
