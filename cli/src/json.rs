//! Every `--json` line hookfwd prints: one enum, tagged by `type`, so each line says what it is.
//!
//! The field names are an interface: scripts read them, `docs/json.md` explains them and
//! `docs/hookfwd-lines.schema.json` holds them (the end-to-end tests validate every line they see against
//! it). A change here goes into both. The same thing has the same name on every line: `source` and
//! `hook_id` for a hook, `id` (null when pushed) and `guid` for a delivery, `status` for an HTTP status.

use chrono::{DateTime, SecondsFormat, Utc};
use github::{HookRef, HookResponse};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

pub use crate::answer::AnswerJson;

/// One line of `--json` output, `{"type": …, …, "time": …}`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line<'a> {
    /// `dev`/`forward`/`wait`: a source's hook is set up.
    Hook {
        #[serde(flatten)]
        hook: HookFields,
        /// `found`, `created` or `app`.
        origin: &'a str,
        hook_url: Option<&'a str>,
        target: &'a str,
        events: &'a [String],
    },
    /// Every source is set up, and forwarding has begun.
    Ready {
        /// One object per source, in the order they were set up.
        sources: &'a [ReadySource],
        interval_ms: u64,
        /// `stream` or `poll`.
        mode: &'a str,
        safety_interval_ms: u64,
        /// Where the token came from, masked.
        token: &'a str,
        /// Where the secret came from, masked.
        secret: &'a str,
        /// The local inspector's URL, when it runs.
        inspector: Option<&'a str>,
    },
    /// The handler answered a delivery.
    Forwarded {
        /// The hook that brought it.
        #[serde(flatten)]
        hook: HookFields,
        #[serde(flatten)]
        delivery: DeliveryFields<'a>,
        /// `api` or `stream`.
        via: &'a str,
        redelivery: bool,
        delivered_at: DateTime<Utc>,
        target: &'a str,
        status: u16,
        /// Whether the handler accepted it (a 2xx `status`), for a script to test.
        ok: bool,
        latency_ms: u64,
        /// The handler's answer: `headers`, `body` (its first 64 KiB), `body_length`, `body_truncated`.
        #[serde(flatten)]
        answer: AnswerJson<'a>,
    },
    /// The handler rejected a delivery `attempts` times (a 5xx from a live handler): it is parked in the
    /// ledger, and `hookfwd replay --parked` sends it again.
    Parked {
        #[serde(flatten)]
        hook: HookFields,
        #[serde(flatten)]
        delivery: DeliveryFields<'a>,
        /// The target that kept rejecting it.
        target: &'a str,
        /// `api` or `stream`.
        via: &'a str,
        attempts: u32,
        /// The last rejection's status.
        status: u16,
        /// The last rejection: `headers`, `body` (its first 64 KiB), `body_length`, `body_truncated`.
        #[serde(flatten)]
        answer: AnswerJson<'a>,
    },
    /// The handler could not be reached (or answered 5xx); the delivery is tried again.
    Retry {
        #[serde(flatten)]
        hook: HookFields,
        #[serde(flatten)]
        delivery: DeliveryFields<'a>,
        /// The target being retried.
        target: &'a str,
        /// `connection refused`, a timeout, or the handler's status code as text.
        reason: &'a str,
        attempt: u32,
        wait_ms: u64,
    },
    /// The run was stopped (Ctrl-C, SIGTERM): what was forwarded, what this run parked
    /// (`hookfwd replay --parked` sends it again), and what the next run catches up: the
    /// deliveries in retry and those queued behind them.
    Stopped { forwarded: u64, parked: usize, retrying: usize, queued: usize },
    /// A blackhole stream connected.
    #[serde(rename = "stream")]
    StreamUp {
        /// Always `up`.
        state: &'a str,
        #[serde(flatten)]
        hook: HookFields,
        resumed: bool,
    },
    /// A blackhole stream dropped; polling covers it.
    #[serde(rename = "stream")]
    StreamDown {
        /// Always `down`.
        state: &'a str,
        #[serde(flatten)]
        hook: HookFields,
        reason: &'a str,
    },
    /// A streaming source's counts of pushed deliveries not forwarded, at the end: forged ones, and
    /// repeated POSTs of an attempt already forwarded.
    Summary { source: &'a str, rejected: u64, repeats: u64, unrecorded: u64 },
    /// GitHub asked hookfwd to wait (a rate limit).
    Waiting { until: DateTime<Utc>, reason: &'a str },
    /// Something went wrong and the run goes on.
    Warning {
        message: &'a str,
        /// What happened, for scripts: the relay's warning in snake_case (`forged`, `stream_refused`, …),
        /// `ledger_down`/`ledger_back`, or one of the CLI's own (docs/json.md lists them).
        kind: &'a str,
    },
    /// Something failed: for one source or call, and the run goes on (`kind` `source`, `start`, `list`,
    /// `fetch`, `redeliver`); or for the whole run, the last line before it exits (`kind` names the
    /// exit code: `failure` 1, `usage` 2, `auth` 3, `rejected` 4, `timeout` 5).
    Error {
        message: &'a str,
        kind: &'a str,
        /// The hook concerned, when there is one.
        #[serde(flatten)]
        hook: Option<HookFields>,
        /// What to do about it, when hookfwd knows.
        #[serde(skip_serializing_if = "Option::is_none")]
        hint: Option<&'a str>,
    },
    /// `wait`: the delivery waited for was handled.
    Matched {
        #[serde(flatten)]
        hook: HookFields,
        #[serde(flatten)]
        delivery: DeliveryFields<'a>,
        status: u16,
    },
    /// `send`: one delivery was sent.
    Sent {
        event: &'a str,
        action: Option<&'a str>,
        guid: &'a str,
        /// The fixture file it came from (`send --fixture`).
        #[serde(skip_serializing_if = "Option::is_none")]
        fixture: Option<&'a str>,
        status: u16,
        /// Whether the handler accepted it (a 2xx `status`), for a script to test.
        ok: bool,
        latency_ms: u64,
        target: &'a str,
        /// The handler's answer.
        #[serde(flatten)]
        answer: AnswerJson<'a>,
    },
    /// `--check-schema`: a payload does not match GitHub's schema for its event and action (forwarded
    /// or sent all the same). `guid` is none for `send`, which checks a payload once for every `--repeat`.
    Schema {
        event: &'a str,
        action: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        guid: Option<&'a str>,
        /// The schema's name in GitHub's OpenAPI description, such as `webhook-issues-opened`.
        schema: &'a str,
        /// Each mismatch: `{"pointer": "/issue/number", "message": "expected integer"}`.
        problems: Vec<Problem<'a>>,
    },
    /// `send --list`: one event/action pair `send` knows.
    Example {
        /// `event.action`, or the event alone.
        name: &'a str,
        event: &'a str,
        action: Option<&'a str>,
        /// `example` (GitHub's published example) or `schema` (generated from GitHub's schema).
        origin: &'a str,
    },
    /// `trigger ping`: GitHub is sending a ping.
    Ping {
        #[serde(flatten)]
        hook: HookFields,
    },
    /// `replay --save`: one delivery was saved as a fixture file.
    Saved {
        #[serde(flatten)]
        hook: HookFields,
        #[serde(flatten)]
        delivery: DeliveryFields<'a>,
        path: String,
    },
    /// `replay`'s outcome, its last line (before an `error` line when it fails).
    Replayed {
        /// `--parked`: the deliveries sent were the parked ones.
        parked: bool,
        /// Deliveries chosen (or parked).
        total: usize,
        /// Sent to the handler (and, with `--parked`, un-parked), or saved with `--save`.
        sent: usize,
        /// Answered other than 2xx.
        refused: usize,
        /// Could not be read from GitHub.
        skipped: usize,
        /// Left out by `--filter` (fetched, not sent).
        filtered: usize,
    },
    /// A delivery was not sent to `target`: `--filter` (or its rule's `filter`) did not let it through, or
    /// failed on it (a `warning` of kind `filter_failed` said so, once). It counts as handled.
    Filtered {
        #[serde(flatten)]
        hook: HookFields,
        #[serde(flatten)]
        delivery: DeliveryFields<'a>,
        /// `api` or `stream`.
        via: &'a str,
        /// The target it was not sent to; none for `replay --save`.
        target: Option<&'a str>,
    },
    /// `trigger redeliver`, `redeliver --failed`: GitHub is (or would be) redelivering a delivery.
    Redeliver {
        #[serde(flatten)]
        hook: HookFields,
        #[serde(flatten)]
        delivery: DeliveryFields<'a>,
        /// `redeliver --failed` only: the latest attempt's HTTP status (0 when it got no answer), GitHub's
        /// words for it, and when it was made.
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        status_text: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        delivered_at: Option<DateTime<Utc>>,
        /// `redeliver --failed` only: `--dry-run` was given, and whether GitHub was asked.
        #[serde(skip_serializing_if = "Option::is_none")]
        dry_run: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        asked: Option<bool>,
    },
    /// `demo`: the demo's handler received a delivery, and whether its signature verified.
    Handler { event: &'a str, action: Option<&'a str>, guid: &'a str, verified: bool },
    /// `hooks list`: one hook.
    #[serde(rename = "hook")]
    ListedHook {
        #[serde(flatten)]
        hook: HookFields,
        hook_url: Option<&'a str>,
        events: &'a [String],
        active: bool,
        content_type: Option<&'a str>,
        last_response: Option<&'a HookResponse>,
        /// Whether hookfwd created it (the record in the state directory).
        created_by_hookfwd: bool,
    },
    /// `hooks rm`, or `--cleanup` on stopping: the hook is gone.
    Deleted {
        #[serde(flatten)]
        hook: HookFields,
    },
    /// `hooks prune`: a hook hookfwd created that has not been used since `last_used`.
    Unused {
        #[serde(flatten)]
        hook: HookFields,
        url: Option<&'a str>,
        last_used: DateTime<Utc>,
    },
    /// `doctor`: one check's outcome.
    Check {
        check: &'a str,
        ok: bool,
        /// `pass`, `warn` or `fail`.
        level: &'a str,
        message: &'a str,
        hint: Option<&'a str>,
    },
}

/// The hook a line is about: `source` (`owner/repo`, the org, or `app`) and `hook_id` (none for the App's hook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookFields {
    /// `owner/repo`, the org, or `app`.
    pub source: String,
    /// The hook's id; none for the App's hook.
    pub hook_id: Option<u64>,
}

impl HookFields {
    /// The fields of `hook`.
    pub fn of(hook: &HookRef) -> Self {
        let source = match hook {
            HookRef::Repo { owner, repo, .. } => format!("{owner}/{repo}"),
            HookRef::Org { org, .. } => org.clone(),
            HookRef::App { .. } => "app".to_string(),
        };
        Self { source, hook_id: hook.id() }
    }
}

/// The delivery a line is about: `id` (GitHub's; none for a pushed delivery, which GitHub gave none),
/// `guid` (`X-GitHub-Delivery`), `event` and `action`.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryFields<'a> {
    /// GitHub's delivery id; none when GitHub gave hookfwd none.
    pub id: Option<u64>,
    /// `X-GitHub-Delivery`.
    pub guid: &'a str,
    /// `X-GitHub-Event`.
    pub event: &'a str,
    /// The payload's `action`, if any.
    pub action: Option<&'a str>,
}

impl<'a> DeliveryFields<'a> {
    /// The fields of `item`; a pushed delivery's id is 0 in the relay, `null` here.
    pub fn of(item: &'a github::DeliveryItem) -> Self {
        Self {
            id: (item.id != 0).then_some(item.id),
            guid: &item.guid,
            event: &item.event,
            action: item.action.as_deref(),
        }
    }
}

/// HTTP headers, one shape everywhere (`--json` lines, fixtures, the inspector's API): an object of
/// name → value, in the order they came. A repeated name is one entry, its values joined with `, `
/// (RFC 9110 §5.3), the one way an object keeps them. Read from that object, or from the list of
/// `[name, value]` pairs that fixtures held before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The headers, each name once (the first spelling kept), repeated values joined.
    pub fn merged(&self) -> Vec<(&str, String)> {
        let mut merged: Vec<(&str, String)> = Vec::with_capacity(self.0.len());
        for (name, value) in &self.0 {
            match merged.iter_mut().find(|(seen, _)| seen.eq_ignore_ascii_case(name)) {
                Some((_, values)) => {
                    values.push_str(", ");
                    values.push_str(value);
                }
                None => merged.push((name, value.clone())),
            }
        }
        merged
    }
}

impl From<&[(String, String)]> for Headers {
    fn from(pairs: &[(String, String)]) -> Self {
        Self(pairs.to_vec())
    }
}

impl Serialize for Headers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let merged = self.merged();
        let mut map = serializer.serialize_map(Some(merged.len()))?;
        for (name, value) in &merged {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = Headers;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of header names to values, or a list of [name, value] pairs")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(Headers(pairs))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Headers, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = seq.next_element::<(String, String)>()? {
                    pairs.push(pair);
                }
                Ok(Headers(pairs))
            }
        }
        deserializer.deserialize_any(Either).map_err(de::Error::custom)
    }
}

/// One mismatch of a `schema` line.
#[derive(Debug, Clone, Serialize)]
pub struct Problem<'a> {
    /// A JSON pointer into the payload; empty for the whole payload.
    pub pointer: &'a str,
    /// What is wrong, such as `expected integer`.
    pub message: &'a str,
}

impl<'a> Problem<'a> {
    /// Each problem of a report.
    pub fn all(report: &'a webhooks::Report) -> Vec<Self> {
        report.problems.iter().map(|p| Problem { pointer: &p.pointer, message: &p.message }).collect()
    }
}

/// One source of the `ready` line: where its deliveries come from and go.
#[derive(Debug, Clone, Serialize)]
pub struct ReadySource {
    /// `source` and `hook_id`.
    #[serde(flatten)]
    pub hook: HookFields,
    /// The hook's URL (the blackhole).
    pub hook_url: Option<String>,
    /// Where its deliveries go.
    pub target: String,
    /// `stream` (pushed by the blackhole, polled as a safety net) or `poll`.
    pub via: &'static str,
}

/// A line with the time it was written.
#[derive(Serialize)]
struct Stamped<'l, 'a> {
    #[serde(flatten)]
    line: &'l Line<'a>,
    /// RFC 3339, UTC, to the millisecond.
    time: String,
}

impl Line<'_> {
    /// The line as JSON text, without a newline, stamped with the time now.
    pub fn to_json(&self) -> String {
        self.to_json_at(Utc::now())
    }

    /// The line as JSON text, stamped with `time`.
    pub fn to_json_at(&self, time: DateTime<Utc>) -> String {
        let stamped = Stamped { line: self, time: time.to_rfc3339_opts(SecondsFormat::Millis, true) };
        // Every field is a string, number, bool, time or a derived struct of those: serializing cannot fail.
        serde_json::to_string(&stamped).expect("a JSON line serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        "2026-01-02T03:04:05.678Z".parse().unwrap()
    }

    fn hook() -> HookFields {
        HookFields::of(&HookRef::Repo { owner: "octo".into(), repo: "hello".into(), id: 1 })
    }

    #[test]
    fn every_line_starts_with_its_type_and_ends_with_its_time() {
        let line = Line::StreamUp { state: "up", hook: hook(), resumed: true };
        assert_eq!(
            line.to_json_at(at()),
            r#"{"type":"stream","state":"up","source":"octo/hello","hook_id":1,"resumed":true,"time":"2026-01-02T03:04:05.678Z"}"#
        );
        let line = Line::Check { check: "token", ok: false, level: "fail", message: "none", hint: None };
        assert_eq!(
            line.to_json_at(at()),
            r#"{"type":"check","check":"token","ok":false,"level":"fail","message":"none","hint":null,"time":"2026-01-02T03:04:05.678Z"}"#
        );
        let line = Line::Stopped { forwarded: 1, parked: 2, retrying: 3, queued: 4 };
        let json = line.to_json();
        assert!(json.starts_with(r#"{"type":"stopped","forwarded":1,"parked":2,"retrying":3,"queued":4,"time":"20"#));
    }

    #[test]
    fn an_error_names_its_hook_only_when_it_has_one() {
        let line = Line::Error { message: "no", kind: "source", hook: Some(hook()), hint: None };
        assert_eq!(
            line.to_json_at(at()),
            r#"{"type":"error","message":"no","kind":"source","source":"octo/hello","hook_id":1,"time":"2026-01-02T03:04:05.678Z"}"#
        );
        let line = Line::Error { message: "no", kind: "auth", hook: None, hint: Some("run doctor") };
        assert_eq!(
            line.to_json_at(at()),
            r#"{"type":"error","message":"no","kind":"auth","hint":"run doctor","time":"2026-01-02T03:04:05.678Z"}"#
        );
    }

    #[test]
    fn a_hook_is_named_by_its_source_and_id() {
        let org = HookFields::of(&HookRef::Org { org: "acme".into(), id: 7 });
        assert_eq!((org.source.as_str(), org.hook_id), ("acme", Some(7)));
        let app = HookFields::of(&HookRef::App { app_id: Some(3) });
        assert_eq!((app.source.as_str(), app.hook_id), ("app", None));
    }

    #[test]
    fn headers_are_an_object_in_order_with_repeats_joined_and_read_in_either_shape() {
        let pairs = |list: &[(&str, &str)]| list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        let headers = Headers(pairs(&[("X-GitHub-Event", "issues"), ("Vary", "a"), ("accept", "*/*"), ("vary", "b")]));
        let text = serde_json::to_string(&headers).unwrap();
        assert_eq!(text, r#"{"X-GitHub-Event":"issues","Vary":"a, b","accept":"*/*"}"#);
        let back: Headers = serde_json::from_str(&text).unwrap();
        assert_eq!(back, Headers(pairs(&[("X-GitHub-Event", "issues"), ("Vary", "a, b"), ("accept", "*/*")])));
        let old: Headers = serde_json::from_str(r#"[["X-GitHub-Event","issues"],["Accept","*/*"]]"#).unwrap();
        assert_eq!(old, Headers(pairs(&[("X-GitHub-Event", "issues"), ("Accept", "*/*")])));
        assert!(serde_json::from_str::<Headers>(r#""issues""#).is_err());
    }
}
