//! The request to the target: rebuilds GitHub's request, signs it with the local secret, POSTs it, and reads the answer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use github::{Delivery, Secret, signature};

use crate::Target;
use crate::filter::{Filter, FilterError};

/// The content type of JSON hooks.
const JSON: &str = "application/json";
/// The content type of `form` hooks: the body is `payload=<urlencoded JSON>`.
const FORM: &str = "application/x-www-form-urlencoded";
/// The most of a handler's answer body kept, for the feed, `--json` and the inspector.
pub const MAX_ANSWER: usize = 64 * 1024;
/// The most of an answer body read (counted, not kept) to learn its length and reuse the connection.
const MAX_DRAIN: u64 = 16 * 1024 * 1024;
/// The request headers as GitHub spells them: of two that differ only in case, this one is GitHub's.
const GITHUB_SPELLING: &[&str] = &[
    "User-Agent",
    "X-GitHub-Delivery",
    "X-GitHub-Event",
    "X-GitHub-Hook-ID",
    "X-GitHub-Hook-Installation-Target-ID",
    "X-GitHub-Hook-Installation-Target-Type",
    "X-GitHub-Enterprise-Host",
    "X-GitHub-Enterprise-Version",
];

/// One request for the target: GitHub's headers, the exact payload bytes, fresh signatures.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Header names and values, signatures included.
    pub headers: Vec<(String, String)>,
    /// The body exactly as sent: the payload bytes, or `payload=<urlencoded>` for form hooks.
    pub body: Vec<u8>,
}

impl Outgoing {
    /// Rebuilds the request GitHub sent for `delivery`, signed with `secret` when given
    /// (without one, GitHub's signature headers are dropped: they cannot verify).
    ///
    /// Every `X-GitHub-*` header GitHub recorded is kept as sent (so Enterprise Server's
    /// host and version headers pass too), and `User-Agent`; `X-GitHub-Event` and
    /// `X-GitHub-Delivery` fall back to the delivery's own fields.
    pub fn from_delivery(delivery: &Delivery, secret: Option<&Secret>) -> Self {
        let payload = delivery.request.payload.as_ref().map_or("null", |raw| raw.get());
        let form = delivery.header("Content-Type").is_some_and(|value| value.to_ascii_lowercase().starts_with(FORM));
        let body = if form {
            form_urlencoded::Serializer::new(String::new()).append_pair("payload", payload).finish().into_bytes()
        } else {
            payload.as_bytes().to_vec()
        };

        let mut headers: Vec<(String, String)> = Vec::new();
        for (name, value) in delivery.request.headers.iter().flatten() {
            let lower = name.to_ascii_lowercase();
            if !lower.starts_with("x-github-") && lower != "user-agent" {
                continue;
            }
            keep_once(&mut headers, name, value);
        }
        if delivery.header("X-GitHub-Event").is_none() {
            headers.push(("X-GitHub-Event".into(), delivery.event.clone()));
        }
        if delivery.header("X-GitHub-Delivery").is_none() {
            headers.push(("X-GitHub-Delivery".into(), delivery.guid.clone()));
        }
        if delivery.header("User-Agent").is_none() {
            headers.push(("User-Agent".into(), "GitHub-Hookshot/hookfwd".into()));
        }
        headers.push(("Content-Type".into(), if form { FORM } else { JSON }.into()));
        sign(&mut headers, &body, secret);
        Self { headers, body }
    }

    /// The request the blackhole pushed, forwarded with its exact body bytes: GitHub's
    /// `X-GitHub-*`, `User-Agent` and `Content-Type` headers as sent, signed with `secret` when
    /// given (GitHub's own signatures, made with the upstream secret, are always replaced).
    pub fn from_pushed(headers: &[(String, String)], body: &[u8], secret: Option<&Secret>) -> Self {
        let mut kept = Vec::new();
        for (name, value) in headers {
            let lower = name.to_ascii_lowercase();
            if lower.starts_with("x-github-") || lower == "user-agent" || lower == "content-type" {
                keep_once(&mut kept, name, value);
            }
        }
        if !kept.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
            kept.push(("Content-Type".into(), JSON.into()));
        }
        sign(&mut kept, body, secret);
        Self { headers: kept, body: body.to_vec() }
    }

    /// A synthetic delivery indistinguishable in form from GitHub's, for `hookfwd send`.
    ///
    /// The installation target is the payload's repository (or organization) when it names one.
    pub fn synthetic(event: &str, payload: &[u8], secret: Option<&Secret>) -> Self {
        // Made-up numbers in GitHub's ranges; nothing secret.
        let hook_id = 100_000_000 + (github::random::fraction() * 899_999_999.0) as u32;
        let agent = (github::random::fraction() * f64::from(0x1000_0000)) as u32;
        let (target_type, target_id) = installation_target(payload).unwrap_or(("repository", u64::from(hook_id)));
        let mut headers = vec![
            ("Accept".into(), "*/*".into()),
            ("Content-Type".into(), JSON.into()),
            ("User-Agent".into(), format!("GitHub-Hookshot/{agent:07x}")),
            ("X-GitHub-Delivery".into(), uuid::Uuid::new_v4().to_string()),
            ("X-GitHub-Event".into(), event.to_string()),
            ("X-GitHub-Hook-ID".into(), hook_id.to_string()),
            ("X-GitHub-Hook-Installation-Target-ID".into(), target_id.to_string()),
            ("X-GitHub-Hook-Installation-Target-Type".into(), target_type.into()),
        ];
        sign(&mut headers, payload, secret);
        Self { headers, body: payload.to_vec() }
    }

    /// `headers` and `body` as given (an edited request), with signatures made with `secret` when given.
    pub fn signed(headers: Vec<(String, String)>, body: Vec<u8>, secret: Option<&Secret>) -> Self {
        let mut headers = headers;
        sign(&mut headers, &body, secret);
        Self { headers, body }
    }

    /// A header's value, matched without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The payload: the body, or the `payload` field of a form-encoded one.
    pub fn payload(&self) -> std::borrow::Cow<'_, [u8]> {
        let form = self.header("Content-Type").is_some_and(|kind| kind.to_ascii_lowercase().starts_with(FORM));
        if !form {
            return std::borrow::Cow::Borrowed(&self.body);
        }
        let payload = form_urlencoded::parse(&self.body).find(|(name, _)| name == "payload");
        std::borrow::Cow::Owned(payload.map(|(_, value)| value.into_owned().into_bytes()).unwrap_or_default())
    }

    /// Whether `filter` lets this request through: run on its payload, with its headers (names in
    /// lower case, a repeated one's values joined with `, `) as `$headers`.
    ///
    /// A payload that is not JSON fails the filter, as a filter's own error does.
    pub fn passes(&self, filter: &Filter, event: &str, action: Option<&str>) -> Result<bool, FilterError> {
        let payload: serde_json::Value = serde_json::from_slice(&self.payload())
            .map_err(|_| FilterError::Failed { message: "the payload is not JSON".into() })?;
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in &self.headers {
            headers
                .entry(name.to_ascii_lowercase())
                .and_modify(|values| {
                    values.push_str(", ");
                    values.push_str(value);
                })
                .or_insert_with(|| value.clone());
        }
        filter.matches(&payload, &headers, event, action)
    }
}

/// Replaces any signature headers with ones computed over `body` with `secret`.
fn sign(headers: &mut Vec<(String, String)>, body: &[u8], secret: Option<&Secret>) {
    headers.retain(|(name, _)| {
        !name.eq_ignore_ascii_case("X-Hub-Signature-256") && !name.eq_ignore_ascii_case("X-Hub-Signature")
    });
    if let Some(secret) = secret {
        headers.push(("X-Hub-Signature".into(), signature::sha1(secret, body)));
        headers.push(("X-Hub-Signature-256".into(), signature::sha256(secret, body)));
    }
}

/// `("repository", id)` or `("organization", id)` from a payload, as GitHub's installation-target headers say.
fn installation_target(payload: &[u8]) -> Option<(&'static str, u64)> {
    #[derive(serde::Deserialize)]
    struct Named {
        id: u64,
    }
    #[derive(serde::Deserialize)]
    struct Payload {
        repository: Option<Named>,
        organization: Option<Named>,
    }
    let parsed: Payload = serde_json::from_slice(payload).ok()?;
    match (parsed.repository, parsed.organization) {
        (Some(repo), _) => Some(("repository", repo.id)),
        (None, Some(org)) => Some(("organization", org.id)),
        _ => None,
    }
}

/// How the target answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// From sending the request to the answer's headers.
    pub latency: Duration,
    /// The answer's headers and the start of its body.
    pub answer: Answer,
}

/// What the handler said besides its status: headers, and the body's first [`MAX_ANSWER`] bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// Header names and values (a value that is not UTF-8 is shown lossily).
    pub headers: Vec<(String, String)>,
    /// The body's first [`MAX_ANSWER`] bytes.
    pub body: Vec<u8>,
    /// The body's full length: its `Content-Length`, or the bytes read (counting stops at 16 MiB).
    pub body_length: u64,
}

impl Answer {
    /// The captured body as text (bytes that are not UTF-8 replaced).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// Whether the body was longer than what was kept.
    pub fn truncated(&self) -> bool {
        self.body_length > self.body.len() as u64
    }
}

impl Response {
    /// Whether the target is in trouble and the delivery should be retried (5xx).
    pub fn is_retryable(&self) -> bool {
        self.status >= 500
    }
}

/// The URL of [`Target::keep`]: a scheme `--to` never accepts, so no user's target can be mistaken for it.
const KEEP: &str = "hookfwd:keep";

impl Target {
    /// No handler: each delivery counts as handled the moment it is about to be sent, with nothing sent
    /// (`hookfwd mcp` without `--to`, where deliveries are only kept for the agent).
    pub fn keep() -> Self {
        // A constant that parses: `hookfwd:keep` is an absolute URL.
        Self(url::Url::parse(KEEP).expect("a valid URL"))
    }

    /// Whether this is [`Target::keep`].
    pub fn is_keep(&self) -> bool {
        self.0.as_str() == KEEP
    }
}

/// POSTs [`Outgoing`] requests to one target.
#[derive(Debug, Clone)]
pub struct Forwarder {
    /// The target URL.
    target: Target,
    /// Shared connection pool; redirects are not followed (a 3xx is the target's answer).
    http: reqwest::Client,
    /// Per-attempt timeout.
    timeout: Duration,
}

impl Forwarder {
    /// A forwarder to `target`, giving up on one attempt after `timeout`.
    pub fn new(target: Target, timeout: Duration) -> Self {
        let http = github::http_client()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            // Only TLS initialisation can fail, and reqwest's own `Client::new` panics on that too.
            .expect("the TLS backend initialises");
        Self { target, http, timeout }
    }

    /// The target this forwarder POSTs to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends one request once.
    ///
    /// A request no HTTP server could receive (a header name or value that cannot be sent) is
    /// [`SendError::Invalid`] before anything goes out: retrying it would fail the same way forever.
    pub async fn send(&self, request: &Outgoing) -> Result<Response, SendError> {
        if self.target.is_keep() {
            return Ok(Response { status: 200, latency: Duration::ZERO, answer: Answer::default() });
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &request.headers {
            let Ok(header) = reqwest::header::HeaderName::from_bytes(name.as_bytes()) else {
                return Err(SendError::Invalid {
                    reason: format!("its header name {name:?} is not a valid HTTP header name"),
                });
            };
            let Ok(value) = reqwest::header::HeaderValue::from_str(value) else {
                // The value itself is GitHub's data: it is not printed.
                return Err(SendError::Invalid {
                    reason: format!(
                        "its header {name} has a value with a line break, NUL or other character HTTP cannot carry"
                    ),
                });
            };
            headers.append(header, value);
        }
        let builder = self.http.post(self.target.0.clone()).timeout(self.timeout).headers(headers);
        let started = Instant::now();
        let mut response = builder.body(request.body.clone()).send().await.map_err(|e| {
            if self.target.0.scheme() == "https" && answered_plain_http(&e) {
                SendError::Unreachable { reason: PLAIN_HTTP.to_string() }
            } else {
                SendError::of(&e)
            }
        })?;
        let latency = started.elapsed();
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        let declared = response.content_length();
        // Keep the start of the body for the user; count the rest (bounded) so the connection can be reused.
        let mut body = Vec::new();
        let mut read: u64 = 0;
        while read < MAX_DRAIN {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_ANSWER.saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..room.min(chunk.len())]);
                    read += chunk.len() as u64;
                }
                _ => break,
            }
        }
        let body_length = declared.unwrap_or(read).max(read);
        Ok(Response { status, latency, answer: Answer { headers, body, body_length } })
    }
}

/// Why an `https://` target failed when the handler behind it speaks plain HTTP.
pub const PLAIN_HTTP: &str = "the handler answered in plain HTTP, not HTTPS; use http:// in --to";

/// Whether a TLS handshake failed because the server answered in plain HTTP: rustls reads the
/// first bytes of `HTTP/1.1 400` as a record of an unknown content type. rustls is not a direct
/// dependency, so its error is recognised by its text, inside the I/O error tokio-rustls wraps it in.
fn answered_plain_http(error: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(current) = source {
        if current.to_string().contains("InvalidContentType") {
            return true;
        }
        source = current.source();
    }
    false
}

/// Adds one header unless `headers` has its name already in any case: a request holding
/// `X-GitHub-Event` twice in different cases would otherwise reach the handler as two headers.
/// GitHub's own spelling wins, else the first.
fn keep_once(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    match headers.iter_mut().find(|(kept, _)| kept.eq_ignore_ascii_case(name)) {
        None => headers.push((name.to_string(), value.to_string())),
        Some(kept) if !GITHUB_SPELLING.contains(&kept.0.as_str()) && GITHUB_SPELLING.contains(&name) => {
            *kept = (name.to_string(), value.to_string());
        }
        Some(_) => {}
    }
}

/// Why one attempt to send a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Nothing accepts connections at the target's address: a local handler restarting, worth
    /// retrying soon (a refused connection costs the handler nothing).
    #[error("connection refused")]
    Refused,
    /// The target could not be reached or dropped the connection: worth retrying.
    /// The reason is one line without the URL (the feed already shows it), such as `connection reset`.
    #[error("{reason}")]
    Unreachable {
        /// Such as `connection reset` or `could not connect`.
        reason: String,
    },
    /// The target did not answer in time: worth retrying.
    #[error("timed out")]
    Timeout,
    /// The request can never be sent as it is (a header HTTP cannot carry): retrying cannot help.
    #[error("{reason}")]
    Invalid {
        /// What is wrong with it, such as `its header X-GitHub-Event has a value with a line break…`.
        reason: String,
    },
}

impl SendError {
    /// Whether sending the same request again may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Invalid { .. })
    }

    /// Classifies a failed attempt.
    pub(crate) fn of(error: &reqwest::Error) -> Self {
        if error.is_timeout() {
            return Self::Timeout;
        }
        if error.is_builder() {
            return Self::Invalid { reason: "it cannot be made into an HTTP request".into() };
        }
        let unreachable = |reason: &str| Self::Unreachable { reason: reason.into() };
        let mut source: Option<&dyn std::error::Error> = Some(error);
        while let Some(current) = source {
            if let Some(io) = current.downcast_ref::<std::io::Error>() {
                return match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => Self::Refused,
                    std::io::ErrorKind::ConnectionReset => unreachable("connection reset"),
                    std::io::ErrorKind::TimedOut => Self::Timeout,
                    _ => unreachable(&io.to_string()),
                };
            }
            source = current.source();
        }
        unreachable(if error.is_connect() { "could not connect" } else { "the request failed" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_keeping_target_answers_without_sending_and_no_flag_names_it() {
        let target = Target::keep();
        assert!(target.is_keep());
        let sent = Forwarder::new(target, Duration::from_secs(1)).send(&Outgoing::synthetic("ping", b"{}", None)).await;
        assert_eq!(sent.map(|response| response.status), Ok(200));
        assert!(Target::parse("hookfwd:keep").is_err(), "--to cannot give it");
        assert!(!Target::parse("localhost:3000").unwrap().is_keep());
    }
    use github::signature::verify_sha256;

    fn delivery(headers: &str, payload: &str) -> Delivery {
        serde_json::from_str(&format!(
            r#"{{"id":7,"guid":"0b989ba4-242f-11e5-81e1-c7b6966d2516","delivered_at":"2021-05-12T20:33:44Z","redelivery":false,"event":"issues","action":"opened","status_code":200,"request":{{"headers":{headers},"payload":{payload}}}}}"#
        ))
        .unwrap()
    }

    const HEADERS: &str = r#"{"Accept":"*/*","content-type":"application/json","User-Agent":"GitHub-Hookshot/abc1234","x-github-delivery":"0b989ba4-242f-11e5-81e1-c7b6966d2516","X-GitHub-Event":"issues","X-GitHub-Hook-ID":"42","X-GitHub-Hook-Installation-Target-ID":"79929171","X-GitHub-Hook-Installation-Target-Type":"repository","X-Hub-Signature":"sha1=upstream","X-Hub-Signature-256":"sha256=upstream"}"#;

    #[test]
    fn keeps_githubs_headers_and_payload_bytes_and_resigns() {
        let payload = r#"{"action":"opened",  "issue":{"title":"é \u00e9"}, "n":1.50}"#;
        let secret = Secret::new("It's a Secret to Everybody");
        let out = Outgoing::from_delivery(&delivery(HEADERS, payload), Some(&secret));
        assert_eq!(out.body, payload.as_bytes());
        assert_eq!(out.header("X-GitHub-Event"), Some("issues"));
        assert_eq!(out.header("X-GitHub-Delivery"), Some("0b989ba4-242f-11e5-81e1-c7b6966d2516"));
        assert_eq!(out.header("X-GitHub-Hook-ID"), Some("42"));
        assert_eq!(out.header("X-GitHub-Hook-Installation-Target-ID"), Some("79929171"));
        assert_eq!(out.header("X-GitHub-Hook-Installation-Target-Type"), Some("repository"));
        assert_eq!(out.header("User-Agent"), Some("GitHub-Hookshot/abc1234"));
        assert_eq!(out.header("Content-Type"), Some(JSON));
        let sig = out.header("X-Hub-Signature-256").unwrap();
        assert!(verify_sha256(&secret, &out.body, sig));
        assert_eq!(out.header("X-Hub-Signature"), Some(signature::sha1(&secret, &out.body).as_str()));
        let names: Vec<_> = out.headers.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
        assert_eq!(names.iter().filter(|n| n.starts_with("x-hub-signature")).count(), 2);
        assert_eq!(names.iter().filter(|n| *n == "content-type").count(), 1);
    }

    #[test]
    fn pushed_requests_keep_the_exact_bytes_and_are_resigned_locally() {
        let body = br#"{"action":"opened",  "n":1.50}"#;
        let upstream = Secret::new("upstream");
        let local = Secret::new("local");
        let headers: Vec<(String, String)> = [
            ("x-github-event", "issues"),
            ("x-github-delivery", "0b989ba4-242f-11e5-81e1-c7b6966d2516"),
            ("user-agent", "GitHub-Hookshot/abc1234"),
            ("content-type", "application/json"),
            ("x-hub-signature-256", &signature::sha256(&upstream, body)),
            ("x-forwarded-for", "203.0.113.9"),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        let out = Outgoing::from_pushed(&headers, body, Some(&local));
        assert_eq!(out.body, body);
        assert_eq!(out.header("X-GitHub-Event"), Some("issues"));
        assert_eq!(out.header("Content-Type"), Some(JSON));
        assert_eq!(out.header("X-Forwarded-For"), None, "only GitHub's headers pass");
        assert!(verify_sha256(&local, body, out.header("X-Hub-Signature-256").unwrap()));
        let out = Outgoing::from_pushed(&headers, body, None);
        assert_eq!(out.header("X-Hub-Signature-256"), None, "the upstream signature never reaches the handler");
    }

    #[test]
    fn drops_upstream_signatures_without_a_secret() {
        let out = Outgoing::from_delivery(&delivery(HEADERS, "{}"), None);
        assert_eq!(out.header("X-Hub-Signature-256"), None);
        assert_eq!(out.header("X-Hub-Signature"), None);
    }

    #[test]
    fn falls_back_to_the_deliverys_fields() {
        let out = Outgoing::from_delivery(&delivery("{}", r#"{"a":1}"#), None);
        assert_eq!(out.header("X-GitHub-Event"), Some("issues"));
        assert_eq!(out.header("X-GitHub-Delivery"), Some("0b989ba4-242f-11e5-81e1-c7b6966d2516"));
        assert!(out.header("User-Agent").unwrap().starts_with("GitHub-Hookshot/"));
        assert_eq!(out.header("Content-Type"), Some(JSON));
    }

    #[test]
    fn form_hooks_get_a_urlencoded_payload_field() {
        let payload = r#"{"a":"b c&d=e","u":"é"}"#;
        let secret = Secret::new("s");
        let out = Outgoing::from_delivery(
            &delivery(r#"{"Content-Type":"application/x-www-form-urlencoded","X-GitHub-Event":"issues"}"#, payload),
            Some(&secret),
        );
        assert_eq!(out.header("Content-Type"), Some(FORM));
        let body = String::from_utf8(out.body.clone()).unwrap();
        assert!(body.starts_with("payload=%7B%22a%22"), "{body}");
        let decoded: Vec<_> = form_urlencoded::parse(&out.body).collect();
        assert_eq!(decoded.len(), 1);
        assert_eq!(decoded[0].0, "payload");
        assert_eq!(decoded[0].1, payload);
        assert!(verify_sha256(&secret, &out.body, out.header("X-Hub-Signature-256").unwrap()));
    }

    #[test]
    fn synthetic_requests_look_like_githubs() {
        let secret = Secret::new("It's a Secret to Everybody");
        let payload = br#"{"zen":"Keep it logically awesome.","repository":{"id":1296269}}"#;
        let out = Outgoing::synthetic("ping", payload, Some(&secret));
        assert_eq!(out.body, payload);
        assert_eq!(out.header("X-GitHub-Event"), Some("ping"));
        let guid = out.header("X-GitHub-Delivery").unwrap();
        assert_eq!(uuid::Uuid::parse_str(guid).unwrap().get_version_num(), 4);
        let agent = out.header("User-Agent").unwrap();
        let hex = agent.strip_prefix("GitHub-Hookshot/").unwrap();
        assert!(hex.len() == 7 && hex.chars().all(|c| c.is_ascii_hexdigit()), "{agent}");
        assert!(out.header("X-GitHub-Hook-ID").unwrap().parse::<u64>().is_ok());
        assert_eq!(out.header("X-GitHub-Hook-Installation-Target-ID"), Some("1296269"));
        assert_eq!(out.header("X-GitHub-Hook-Installation-Target-Type"), Some("repository"));
        assert!(verify_sha256(&secret, payload, out.header("X-Hub-Signature-256").unwrap()));
        assert!(out.header("X-Hub-Signature").unwrap().starts_with("sha1="));
        // Two sends are two deliveries.
        let again = Outgoing::synthetic("ping", payload, Some(&secret));
        assert_ne!(again.header("X-GitHub-Delivery"), Some(guid));
    }

    #[test]
    fn githubs_published_vector_verifies_through_synthetic() {
        let secret = Secret::new("It's a Secret to Everybody");
        let out = Outgoing::synthetic("ping", b"Hello, World!", Some(&secret));
        assert_eq!(
            out.header("X-Hub-Signature-256"),
            Some("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
        );
        assert_eq!(out.header("X-GitHub-Hook-Installation-Target-Type"), Some("repository"));
    }

    #[test]
    fn keeps_one_of_each_header_whatever_its_case() {
        let headers = r#"{"X-GitHub-Event":"issues","x-github-event":"push","X-GITHUB-DELIVERY":"other","X-GitHub-Delivery":"0b989ba4-242f-11e5-81e1-c7b6966d2516","user-agent":"a","User-Agent":"b"}"#;
        let out = Outgoing::from_delivery(&delivery(headers, "{}"), None);
        for name in ["x-github-event", "x-github-delivery", "user-agent"] {
            let count = out.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count();
            assert_eq!(count, 1, "{name}: {:?}", out.headers);
        }
        // GitHub's own spelling wins, wherever it sorts.
        assert_eq!(out.header("X-GitHub-Event"), Some("issues"));
        assert_eq!(out.header("X-GitHub-Delivery"), Some("0b989ba4-242f-11e5-81e1-c7b6966d2516"));
        assert_eq!(out.header("User-Agent"), Some("b"));
    }

    #[tokio::test]
    async fn a_header_http_cannot_carry_is_invalid_not_unreachable() {
        let forwarder = Forwarder::new(Target::parse("127.0.0.1:9").unwrap(), Duration::from_secs(2));
        for (name, value) in
            [("X-GitHub-Event", "a\r\nInjected: yes"), ("X-GitHub-Event", "nul\0"), ("X-GitHub Bad", "v")]
        {
            let mut request = Outgoing::synthetic("ping", b"{}", None);
            request.headers.push((name.into(), value.into()));
            let error = forwarder.send(&request).await.unwrap_err();
            assert!(matches!(error, SendError::Invalid { .. }), "{name}: {error:?}");
            assert!(!error.is_transient());
            assert!(!error.to_string().contains("Injected"), "the value is not echoed: {error}");
        }
    }

    #[tokio::test]
    async fn unreachable_targets_give_a_short_reason() {
        // Bind then drop, so the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let forwarder = Forwarder::new(Target::parse(&format!("127.0.0.1:{port}")).unwrap(), Duration::from_secs(2));
        let err = forwarder.send(&Outgoing::synthetic("ping", b"{}", None)).await.unwrap_err();
        assert_eq!(err, SendError::Refused);
        assert_eq!(err.to_string(), "connection refused");
        assert!(err.is_transient());
    }
}
