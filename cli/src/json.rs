//! Every `--json` line hookfwd prints: one enum, tagged by `type`, so each line says what it is.
//!
//! The field names are an interface: scripts read them. Rename none; add a field or a variant instead.

use chrono::{DateTime, Utc};
use github::HookResponse;
use serde::Serialize;

pub use crate::answer::AnswerJson;

/// One line of `--json` output, `{"type": …, …}`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line<'a> {
    /// `dev`/`forward`/`wait`: a source's hook is set up.
    Hook {
        source: &'a str,
        hook_id: Option<u64>,
        /// `found`, `created` or `app`.
        origin: &'a str,
        hook_url: Option<&'a str>,
        target: &'a str,
        events: &'a [String],
    },
    /// A source could not be set up.
    #[serde(rename = "error")]
    SourceFailed { source: &'a str, message: &'a str },
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
        /// The source whose hook brought it.
        source: &'a str,
        /// The API's delivery id; none for a pushed delivery.
        id: Option<u64>,
        guid: &'a str,
        /// `api` or `stream`.
        via: &'a str,
        event: &'a str,
        action: Option<&'a str>,
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
        /// The source whose hook brought it.
        source: &'a str,
        /// The API's delivery id; none for a pushed delivery.
        id: Option<u64>,
        guid: &'a str,
        /// `api` or `stream`.
        via: &'a str,
        event: &'a str,
        action: Option<&'a str>,
        attempts: u32,
        /// The last rejection's status.
        status: u16,
        /// The last rejection: `headers`, `body` (its first 64 KiB), `body_length`, `body_truncated`.
        #[serde(flatten)]
        answer: AnswerJson<'a>,
    },
    /// The handler could not be reached; the delivery is tried again.
    Retry { source: &'a str, id: u64, guid: &'a str, reason: &'a str, attempt: u32, wait_ms: u64 },
    /// The run was stopped (Ctrl-C, SIGTERM): what was forwarded, what this run parked
    /// (`hookfwd replay --parked` sends it again), and what the next run catches up: the
    /// deliveries in retry and those queued behind them.
    Stopped { forwarded: u64, parked: usize, retrying: usize, queued: usize },
    /// A blackhole stream connected.
    #[serde(rename = "stream")]
    StreamUp {
        /// Always `up`.
        state: &'a str,
        hook: String,
        resumed: bool,
    },
    /// A blackhole stream dropped; polling covers it.
    #[serde(rename = "stream")]
    StreamDown {
        /// Always `down`.
        state: &'a str,
        hook: String,
        reason: &'a str,
    },
    /// A streaming source's counts of pushed deliveries not forwarded, at the end: forged ones, and
    /// repeated POSTs of an attempt already forwarded.
    Summary { source: &'a str, rejected: u64, repeats: u64, unrecorded: u64 },
    /// GitHub asked hookfwd to wait (a rate limit).
    Waiting { until: DateTime<Utc>, reason: &'a str },
    /// Something went wrong and the relay goes on.
    Warning {
        message: &'a str,
        /// What happened, for scripts: the relay's warning in snake_case (`forged`, `stream_refused`, …),
        /// or `ledger_down`/`ledger_back`; none for the CLI's own warnings.
        #[serde(skip_serializing_if = "Option::is_none")]
        kind: Option<&'a str>,
    },
    /// Something failed for one hook, or for the whole relay.
    Error { hook: Option<String>, message: &'a str },
    /// `wait`: the delivery waited for was handled.
    Matched { id: u64, guid: &'a str, event: &'a str, action: Option<&'a str>, status: u16 },
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
    Ping { hook: String, hook_id: Option<u64> },
    /// `replay --save`: one delivery was saved as a fixture file.
    Saved { guid: &'a str, event: &'a str, action: Option<&'a str>, path: String },
    /// `trigger redeliver`, `redeliver --failed`: GitHub is (or would be) redelivering a delivery.
    Redeliver {
        hook: String,
        hook_id: Option<u64>,
        guid: &'a str,
        id: u64,
        event: &'a str,
        action: Option<&'a str>,
        /// `redeliver --failed` only: the latest attempt's status code and status.
        #[serde(skip_serializing_if = "Option::is_none")]
        status_code: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<&'a str>,
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
        owner: String,
        id: u64,
        url: Option<&'a str>,
        events: &'a [String],
        active: bool,
        content_type: Option<&'a str>,
        last_response: Option<&'a HookResponse>,
        /// Whether hookfwd created it, or it delivers to `--hook-url`.
        hookfwd: bool,
        /// Whether hookfwd created it (the record in the state directory).
        created_by_hookfwd: bool,
    },
    /// `hooks rm`, or `--cleanup` on stopping: the hook is gone.
    Deleted { owner: String, id: u64 },
    /// `hooks prune`: a hook hookfwd created that has not been used since `last_used`.
    Unused { source: String, hook_id: u64, url: Option<&'a str>, last_used: DateTime<Utc> },
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
    /// `owner/repo`, the org, or `app`.
    pub source: String,
    /// The hook, as the feed names it: `octo/hello hook 42`.
    pub hook: String,
    /// The hook's id (none for a GitHub App's hook).
    pub hook_id: Option<u64>,
    /// The hook's URL (the blackhole).
    pub hook_url: Option<String>,
    /// Where its deliveries go.
    pub target: String,
    /// `stream` (pushed by the blackhole, polled as a safety net) or `poll`.
    pub via: &'static str,
}

impl Line<'_> {
    /// The line as JSON text, without a newline.
    pub fn to_json(&self) -> String {
        // Every field is a string, number, bool, time or a derived struct of those: serializing cannot fail.
        serde_json::to_string(self).expect("a JSON line serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_starts_with_its_type_and_keeps_its_field_names() {
        let line = Line::StreamUp { state: "up", hook: "octo/hello hook 1".into(), resumed: true };
        assert_eq!(line.to_json(), r#"{"type":"stream","state":"up","hook":"octo/hello hook 1","resumed":true}"#);
        let line = Line::Check { check: "token", ok: false, level: "fail", message: "none", hint: None };
        assert_eq!(
            line.to_json(),
            r#"{"type":"check","check":"token","ok":false,"level":"fail","message":"none","hint":null}"#
        );
        let line = Line::SourceFailed { source: "octo/hello", message: "no" };
        assert_eq!(line.to_json(), r#"{"type":"error","source":"octo/hello","message":"no"}"#);
        let line = Line::Warning { message: "m", kind: Some("forged") };
        assert_eq!(line.to_json(), r#"{"type":"warning","message":"m","kind":"forged"}"#);
        let line = Line::Warning { message: "m", kind: None };
        assert_eq!(line.to_json(), r#"{"type":"warning","message":"m"}"#, "the CLI's own warnings have no kind");
    }
}
