//! The push stream's client side: Server-Sent Events from the blackhole (see docs/stream.md).
//!
//! [`Parser`] turns bytes into events, whatever the chunking; [`Subscription`] is one
//! connection: `GET <hook URL>` with `Accept: text/event-stream`, the bearer token and, on a
//! reconnect, `Last-Event-ID`. The engine's stream task (in `engine::push`) reconnects, verifies
//! and queues what arrives.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use github::Secret;
use serde::Deserialize;
use url::Url;

/// The most bytes one event may hold: GitHub caps payloads at 25 MB, which is about 34 MB as
/// base64, plus the headers.
pub const MAX_EVENT_BYTES: usize = 40 << 20;
/// A stream quiet for this long has dropped: the blackhole sends a keep-alive every 15 s.
pub const SILENCE: Duration = Duration::from_secs(45);

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `id:` field, if the event had one.
    pub id: Option<String>,
    /// The `event:` field; `message` when absent.
    pub name: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// What the parser found in a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete event.
    Event(Event),
    /// A comment line (`: keep-alive`).
    Comment,
    /// An event longer than the limit, discarded; its id, if it came before the limit was hit.
    TooLarge {
        /// The `id:` field, if seen.
        id: Option<String>,
    },
}

/// An incremental SSE parser: feed it chunks as they arrive; a partial event is kept until its
/// blank line, and lost if the stream ends first (it was never complete).
#[derive(Debug)]
pub struct Parser {
    /// The current line, not yet ended.
    line: Vec<u8>,
    /// The last byte was `\r`: a `\n` right after it ends nothing more.
    after_cr: bool,
    /// The event being built.
    id: Option<String>,
    name: Option<String>,
    data: String,
    /// Whether `data` holds anything (an empty `data:` line counts).
    has_data: bool,
    /// Bytes of the event so far, against `max`.
    size: usize,
    /// The event outgrew `max`: its data is being dropped.
    oversized: bool,
    /// The most bytes an event may hold.
    max: usize,
}

impl Parser {
    /// A parser that discards events over `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            line: Vec::new(),
            after_cr: false,
            id: None,
            name: None,
            data: String::new(),
            has_data: false,
            size: 0,
            oversized: false,
            max,
        }
    }

    /// Parses `chunk`, returning the frames it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        for &byte in chunk {
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(frame) = self.line_ended(&line) {
                        frames.push(frame);
                    }
                }
                _ => {
                    self.after_cr = false;
                    self.size += 1;
                    if self.size > self.max {
                        self.oversized = true;
                        self.line.clear();
                        self.data.clear();
                    } else {
                        self.line.push(byte);
                    }
                }
            }
        }
        frames
    }

    fn line_ended(&mut self, line: &[u8]) -> Option<Frame> {
        if line.is_empty() {
            return self.dispatch();
        }
        if self.oversized {
            return None;
        }
        if line[0] == b':' {
            return Some(Frame::Comment);
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.name = Some(value.to_string()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            // `retry:` and unknown fields: the reconnect delay is ours to choose.
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<Frame> {
        let id = self.id.take();
        let name = self.name.take();
        let data = std::mem::take(&mut self.data);
        let has_data = std::mem::replace(&mut self.has_data, false);
        self.size = 0;
        if std::mem::replace(&mut self.oversized, false) {
            return Some(Frame::TooLarge { id });
        }
        if !has_data {
            return None;
        }
        Some(Frame::Event(Event { id, name: name.unwrap_or_else(|| "message".into()), data }))
    }
}

/// The `hello` event's data.
#[derive(Debug, Clone, Deserialize)]
pub struct Hello {
    /// This run of the blackhole.
    pub boot: String,
    /// Every event after the `Last-Event-ID` sent follows, with no gap.
    pub resumed: bool,
}

/// A `delivery` event's data.
#[derive(Debug, Clone, Deserialize)]
struct DeliveryData {
    received_at: DateTime<Utc>,
    headers: std::collections::BTreeMap<String, String>,
    body: String,
}

/// A delivery as the blackhole pushed it, decoded but not yet verified.
#[derive(Debug, Clone)]
pub struct PushedDelivery {
    /// When the blackhole finished reading it.
    pub received_at: DateTime<Utc>,
    /// Its headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The exact body bytes.
    pub body: Vec<u8>,
}

impl PushedDelivery {
    /// Decodes a `delivery` event's data; `None` when it is not what docs/stream.md says.
    pub fn parse(data: &str) -> Option<Self> {
        let raw: DeliveryData = serde_json::from_str(data).ok()?;
        let body = base64::engine::general_purpose::STANDARD.decode(raw.body.as_bytes()).ok()?;
        let headers = raw.headers.into_iter().map(|(name, value)| (name.to_ascii_lowercase(), value)).collect();
        Some(Self { received_at: raw.received_at, headers, body })
    }

    /// A header's value, by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// Whether `X-Hub-Signature-256` is the signature of the body with the hook's upstream secret.
    pub fn verifies(&self, upstream: &Secret) -> bool {
        self.header("x-hub-signature-256")
            .is_some_and(|signature| github::signature::verify_sha256(upstream, &self.body, signature))
    }
}

/// How a subscription attempt was answered.
#[derive(Debug)]
pub enum Answer {
    /// `200 text/event-stream`: events follow.
    Streaming(reqwest::Response),
    /// `401`: the token was refused.
    Refused,
    /// `200 text/plain`, the blackhole's own answer to any request: it runs without a stream token.
    NotStreaming,
    /// Nothing accepts connections at the blackhole's address.
    NothingListens,
    /// A status no blackhole gives (a `404`, a `405`, a `200` page of HTML): the hook URL serves
    /// something else.
    NotABlackhole {
        /// The status it answered.
        status: u16,
    },
    /// Anything else (a proxy's `502`, `503` for too many streams, a timeout); worth trying again later.
    Unavailable(String),
}

/// The stream URL for a hook URL: the same origin and path, without query or fragment.
pub fn stream_url(hook_url: &str) -> Option<Url> {
    let mut url = Url::parse(hook_url).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    Some(url)
}

/// The HTTP client for streams: no overall timeout (a stream lasts), a bounded connect.
pub fn client() -> reqwest::Client {
    github::http_client()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        // Only TLS initialisation can fail, and reqwest's own `Client::new` panics on that too.
        .expect("the TLS backend initialises")
}

/// Opens one subscription to `url`.
pub async fn subscribe(http: &reqwest::Client, url: &Url, token: &Secret, last_id: Option<&str>) -> Answer {
    let mut request = http
        .get(url.clone())
        .header("Accept", "text/event-stream")
        .header("Cache-Control", "no-cache")
        .bearer_auth(token.expose());
    if let Some(id) = last_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = match tokio::time::timeout(SILENCE, request.send()).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => {
            return match crate::SendError::of(&error) {
                crate::SendError::Refused => Answer::NothingListens,
                other => Answer::Unavailable(other.to_string()),
            };
        }
        Err(_) => return Answer::Unavailable("timed out".into()),
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match status {
        200 if content_type.starts_with("text/event-stream") => Answer::Streaming(response),
        200 if content_type.starts_with("text/plain") => Answer::NotStreaming,
        401 => Answer::Refused,
        // A proxy in front of the blackhole, or the blackhole's own limits (streams, path length).
        414 | 502..=504 => Answer::Unavailable(format!("answered {status}")),
        _ => Answer::NotABlackhole { status },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(frames: Vec<Frame>) -> Vec<Event> {
        frames
            .into_iter()
            .filter_map(|frame| match frame {
                Frame::Event(event) => Some(event),
                _ => None,
            })
            .collect()
    }

    const STREAM: &str = "retry: 1000\n\nevent: hello\ndata: {\"boot\":\"b\",\"resumed\":false}\n\n: keep-alive\n\nid: b-1\nevent: delivery\ndata: {\"x\":1}\n\n";

    #[test]
    fn parses_the_contracts_example_however_it_is_split() {
        let whole = events(Parser::new(1024).feed(STREAM.as_bytes()));
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].name, "hello");
        assert_eq!(whole[1], Event { id: Some("b-1".into()), name: "delivery".into(), data: "{\"x\":1}".into() });
        // Every split point, and byte by byte, gives the same events.
        for cut in 0..STREAM.len() {
            let mut parser = Parser::new(1024);
            let mut frames = parser.feed(&STREAM.as_bytes()[..cut]);
            frames.extend(parser.feed(&STREAM.as_bytes()[cut..]));
            assert_eq!(events(frames), whole, "split at {cut}");
        }
        let mut parser = Parser::new(1024);
        let bytewise: Vec<Frame> = STREAM.bytes().flat_map(|b| parser.feed(&[b])).collect();
        assert_eq!(events(bytewise), whole);
    }

    #[test]
    fn accepts_crlf_and_lone_cr_line_ends() {
        let crlf = STREAM.replace('\n', "\r\n");
        assert_eq!(events(Parser::new(1024).feed(crlf.as_bytes())).len(), 2);
        let cr = STREAM.replace('\n', "\r");
        assert_eq!(events(Parser::new(1024).feed(cr.as_bytes())).len(), 2);
        // A CRLF split across chunks ends one line, not two.
        let mut parser = Parser::new(1024);
        let mut frames = parser.feed(b"data: a\r");
        frames.extend(parser.feed(b"\ndata: b\r\n\r\n"));
        assert_eq!(events(frames)[0].data, "a\nb");
    }

    #[test]
    fn comments_are_keep_alives_and_multi_line_data_joins() {
        let frames = Parser::new(1024).feed(b": keep-alive\n\ndata:one\ndata: two\ndata\n\n");
        assert_eq!(frames[0], Frame::Comment);
        assert_eq!(events(frames)[0], Event { id: None, name: "message".into(), data: "one\ntwo\n".into() });
    }

    #[test]
    fn an_event_over_the_limit_is_discarded_and_the_next_one_parses() {
        let mut parser = Parser::new(64);
        let big = format!("id: b-7\nevent: delivery\ndata: {}\n\nid: b-8\ndata: small\n\n", "x".repeat(200));
        let frames = parser.feed(big.as_bytes());
        assert_eq!(frames[0], Frame::TooLarge { id: Some("b-7".into()) });
        assert_eq!(
            events(frames),
            vec![Event { id: Some("b-8".into()), name: "message".into(), data: "small".into() }]
        );
    }

    #[test]
    fn a_cut_mid_event_yields_nothing() {
        let mut parser = Parser::new(1024);
        assert!(events(parser.feed(b"id: b-1\nevent: delivery\ndata: {\"rece")).is_empty());
    }

    #[test]
    fn decodes_and_verifies_a_pushed_delivery() {
        let secret = Secret::new("It's a Secret to Everybody");
        let body = b"Hello, World!";
        let signature = github::signature::sha256(&secret, body);
        let data = serde_json::json!({
            "received_at": "2026-12-01T19:30:00.123456Z",
            "headers": {"X-GitHub-Delivery": "g-1", "x-hub-signature-256": signature},
            "body": base64::engine::general_purpose::STANDARD.encode(body),
        })
        .to_string();
        let pushed = PushedDelivery::parse(&data).unwrap();
        assert_eq!(pushed.body, body);
        assert_eq!(pushed.header("x-github-delivery"), Some("g-1"));
        assert!(pushed.verifies(&secret));
        assert!(!pushed.verifies(&Secret::new("wrong")));
        assert!(PushedDelivery::parse("{\"received_at\":1}").is_none());
        assert!(PushedDelivery::parse(&data.replace("SGVsbG8", "!!!")).is_none(), "bad base64");
    }

    #[test]
    fn the_stream_url_is_the_hook_url_without_its_query() {
        assert_eq!(stream_url("https://bh.example/alice?x=1#f").unwrap().as_str(), "https://bh.example/alice");
        assert!(stream_url("ftp://bh.example/").is_none());
    }
}
