//! The tools of `hookfwd mcp`: an agent waits for, reads, replays, redelivers and sends deliveries, over the
//! deliveries the relay keeps in the inspector's store. Results are JSON text with the `--json` lines' field
//! names; a payload is bounded per result and read whole by ranges; nothing secret is in any result; a tool
//! that fails says why in one sentence (`isError`), and the server goes on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use github::Secret;
use relay::filter::Filter;
use relay::{Event, Forwarder, Outgoing, Target};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::inspect::server::{Edit, ask_redelivery, send_again};
use crate::inspect::store::{Entry, Store};
use crate::json::{DeliveryFields, Headers};

/// The most payload bytes one result carries; `get_delivery` with `offset` reads the rest.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// How long `wait_for_delivery` waits when not told.
const DEFAULT_WAIT: u64 = 60;
/// The longest wait one call may ask for; an agent calls again to wait longer.
const MAX_WAIT: u64 = 600;
/// How many deliveries `recent_deliveries` lists when not told, and at most.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

/// The deliveries kept for the agent, and a signal for each change.
pub struct Deliveries {
    /// The inspector's store, bounded in count and bytes.
    store: Mutex<Store>,
    /// Bumped at every change of the store, for waiters.
    changed: watch::Sender<u64>,
    /// Why the relay stopped, once it has.
    stopped: Mutex<Option<String>>,
    /// No handler (`--to` not given): the engine's "answers" are not the handler's, so they are not kept.
    keep_only: bool,
}

impl Deliveries {
    /// At most `keep` deliveries; `keep_only` when there is no handler.
    pub fn new(keep: usize, keep_only: bool) -> Self {
        Self { store: Mutex::new(Store::new(keep)), changed: watch::channel(0).0, stopped: Mutex::new(None), keep_only }
    }

    /// The store; a panic elsewhere while it was held does not stop the server.
    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that the relay stopped, and why, for the tools to say.
    pub fn stopped(&self, sentence: String) {
        *self.stopped.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sentence);
        self.changed.send_modify(|count| *count += 1);
    }

    fn why_stopped(&self) -> Option<String> {
        self.stopped.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Takes in one relay event.
    fn observe(&self, event: &Event) {
        if self.keep_only && matches!(event, Event::Answered { .. }) {
            return;
        }
        if self.lock().observe(event).is_some() {
            self.changed.send_modify(|count| *count += 1);
        }
    }
}

/// Keeps each delivery the relay brings, and logs on stderr what the user of the client should know.
pub async fn keep(mut events: mpsc::Receiver<Event>, deliveries: Arc<Deliveries>) {
    while let Some(event) = events.recv().await {
        match &event {
            Event::SourceFailed { source, error } => tracing::error!("{source}: {error}"),
            Event::Warning(warning) => tracing::warn!("{}", crate::warning::sentence(warning)),
            Event::Ready { sources, .. } => tracing::info!(sources, "ready"),
            Event::StreamUp { hook, .. } => tracing::info!(%hook, "stream up"),
            Event::StreamDown { hook, reason } => tracing::info!(%hook, reason, "stream down; polling"),
            _ => {}
        }
        deliveries.observe(&event);
    }
}

/// The MCP server: its tools over the kept deliveries.
#[derive(Clone)]
pub struct Server {
    /// What the relay brought.
    deliveries: Arc<Deliveries>,
    /// GitHub, for `redeliver`.
    client: github::Client,
    /// The handler, for `send_event` (`replay` sends to where the delivery went).
    handler: Option<Target>,
    /// The local secret deliveries are signed with.
    secret: Option<Secret>,
    /// The tools, as the macros list them.
    tool_router: ToolRouter<Self>,
}

/// A delivery, named by the `guid` the results show (or its first 8 or more characters), or by its GitHub `id`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum DeliveryId {
    /// GitHub's delivery id (`id` in results; a pushed delivery has none).
    Id(u64),
    /// The `guid` (X-GitHub-Delivery), whole or its first 8 or more characters.
    Guid(String),
}

/// `wait_for_delivery`'s arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitArgs {
    /// Only deliveries this jq expression yields true for, run on the payload with `$headers` (lower-case
    /// names), `$event` and `$action`, such as `.pull_request.head.ref == "feature/x"`.
    pub filter: Option<String>,
    /// Only this event, such as `pull_request`.
    pub event: Option<String>,
    /// Only this action, such as `opened`.
    pub action: Option<String>,
    /// Give up after this many seconds (default 60, at most 600); `delivery` is then null.
    pub timeout_s: Option<u64>,
    /// Return the first delivery after this one (the `cursor` of an earlier result) instead of the first to
    /// arrive after the call: none is missed between two calls.
    pub cursor: Option<u64>,
}

/// `recent_deliveries`' arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecentArgs {
    /// Only deliveries this jq expression yields true for (as wait_for_delivery's `filter`).
    pub filter: Option<String>,
    /// At most this many, the newest first (default 20, at most 100).
    pub limit: Option<usize>,
}

/// `get_delivery`'s arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetArgs {
    /// The delivery: its `guid` (or first 8+ characters), or its GitHub `id`.
    pub id: DeliveryId,
    /// The payload from this byte on (default 0), for a payload larger than one result holds.
    pub offset: Option<usize>,
    /// At most this many payload bytes (default and most: 65536).
    pub length: Option<usize>,
}

/// `replay`'s arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayArgs {
    /// The delivery: its `guid` (or first 8+ characters), or its GitHub `id`.
    pub id: DeliveryId,
    /// Send this payload instead (exact text), signed with the local secret; default: the request as forwarded.
    pub payload: Option<String>,
}

/// `redeliver`'s arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeliverArgs {
    /// The delivery: its `guid` (or first 8+ characters), or its GitHub `id`.
    pub id: DeliveryId,
}

/// `send_event`'s arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendArgs {
    /// EVENT or EVENT.ACTION, such as `pull_request.opened` or `push`: GitHub's own example payload.
    pub event_action: String,
    /// Edits of the payload before it is signed, each `PATH=VALUE`: a dotted path with array indices
    /// (`pull_request.head.ref=feature/x`); VALUE is JSON when it parses as JSON, else a string.
    pub set: Option<Vec<String>>,
}

type ToolResult = Result<CallToolResult, ErrorData>;

#[tool_router]
impl Server {
    /// A server over `deliveries`; `handler` is `--to`, and `secret` signs what `send_event` and an edited
    /// `replay` send.
    pub fn new(
        deliveries: Arc<Deliveries>,
        client: github::Client,
        handler: Option<Target>,
        secret: Option<Secret>,
    ) -> Self {
        Self { deliveries, client, handler, secret, tool_router: Self::tool_router() }
    }

    #[tool(description = "Wait for the next GitHub webhook delivery (optionally of one event and action, or \
        one a jq `filter` yields true for) and return it with its headers and payload. Without `cursor`, the \
        first that arrives after the call; with the `cursor` of an earlier result, the first after that one, so \
        that none is missed.")]
    async fn wait_for_delivery(&self, Parameters(args): Parameters<WaitArgs>) -> ToolResult {
        let filter = match compile(args.filter.as_deref()) {
            Ok(filter) => filter,
            Err(sentence) => return failed(sentence),
        };
        let mut changed = self.deliveries.changed.subscribe();
        let cursor = args.cursor.unwrap_or_else(|| self.deliveries.lock().last_seq());
        let wait = Duration::from_secs(args.timeout_s.unwrap_or(DEFAULT_WAIT).min(MAX_WAIT));
        let deadline = tokio::time::Instant::now() + wait;
        let wanted = |entry: &Entry| {
            arrived(entry)
                && args.event.as_ref().is_none_or(|event| &entry.item.event == event)
                && args.action.as_ref().is_none_or(|action| entry.item.action.as_ref() == Some(action))
        };
        // Rows up to here were looked at: a delivery's request never changes, so neither does the answer.
        let mut checked = cursor;
        let mut failures = Failures::default();
        loop {
            changed.borrow_and_update();
            let fresh: Vec<Entry> = {
                let store = self.deliveries.lock();
                store.entries().filter(|entry| entry.seq > checked && wanted(entry)).cloned().collect()
            };
            // Filtered off the lock: a payload may be megabytes.
            for entry in fresh {
                checked = entry.seq;
                if passes(filter.as_ref(), &entry, &mut failures) {
                    let mut result = json!({"delivery": detail(&entry, 0, MAX_PAYLOAD), "cursor": entry.seq});
                    failures.note(&mut result);
                    return ok(&result);
                }
            }
            if let Some(why) = self.deliveries.why_stopped() {
                return failed(format!("no delivery will come: the relay stopped ({why})"));
            }
            tokio::select! {
                _ = changed.changed() => {}
                () = tokio::time::sleep_until(deadline) => {
                    let mut result = json!({"delivery": null, "cursor": checked.max(cursor), "timed_out": true});
                    failures.note(&mut result);
                    return ok(&result);
                }
            }
        }
    }

    #[tool(description = "List the latest deliveries kept (newest first), without headers or payloads: \
        get_delivery reads one whole.")]
    async fn recent_deliveries(&self, Parameters(args): Parameters<RecentArgs>) -> ToolResult {
        let limit = args.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let filter = match compile(args.filter.as_deref()) {
            Ok(filter) => filter,
            Err(sentence) => return failed(sentence),
        };
        let (held, cursor) = {
            let store = self.deliveries.lock();
            let held: Vec<Entry> = match filter {
                // Filtered off the lock: payloads may be megabytes.
                Some(_) => store.entries().rev().cloned().collect(),
                None => store.entries().rev().take(limit).cloned().collect(),
            };
            (held, store.last_seq())
        };
        let mut failures = Failures::default();
        let deliveries: Vec<Value> = held
            .iter()
            .filter(|entry| passes(filter.as_ref(), entry, &mut failures))
            .take(limit)
            .map(summary)
            .collect();
        let mut result = json!({"deliveries": deliveries, "cursor": cursor});
        failures.note(&mut result);
        ok(&result)
    }

    #[tool(description = "One delivery with its headers and payload; a payload larger than 64 KiB comes in \
        parts: pass `offset` (the `next_offset` of the previous part) to read on.")]
    async fn get_delivery(&self, Parameters(args): Parameters<GetArgs>) -> ToolResult {
        let entry = match self.find(&args.id) {
            Ok(entry) => entry,
            Err(sentence) => return failed(sentence),
        };
        let length = args.length.unwrap_or(MAX_PAYLOAD).clamp(1, MAX_PAYLOAD);
        ok(&detail(&entry, args.offset.unwrap_or(0), length))
    }

    #[tool(description = "Send a delivery to the handler (--to) again, now, as forwarded (same signature), or \
        with another `payload` signed with the local secret; returns the handler's answer.")]
    async fn replay(&self, Parameters(args): Parameters<ReplayArgs>) -> ToolResult {
        let original = match self.find(&args.id) {
            Ok(entry) => entry,
            Err(sentence) => return failed(sentence),
        };
        let edited = args.payload.is_some();
        let edit = args.payload.map(|payload| Edit { payload: Some(payload), headers: None });
        let (request, outcome) = match send_again(&original, edit, self.secret.as_ref()).await {
            Ok(sent) => sent,
            Err(sentence) => return failed(sentence.into()),
        };
        let target = original.target.as_ref().map(|url| url.to_string()).unwrap_or_default();
        let result = match &outcome {
            Ok(response) => Ok(answered(&target, response)),
            Err(error) => Err(format!("the handler at {target} could not be reached: {error}")),
        };
        let seq = self.deliveries.lock().replayed(&original, request, edited, outcome);
        self.deliveries.changed.send_modify(|count| *count += 1);
        match result {
            Ok(mut answer) => {
                answer["seq"] = json!(seq);
                answer["guid"] = json!(original.item.guid);
                ok(&answer)
            }
            Err(sentence) => failed(sentence),
        }
    }

    #[tool(description = "Ask GitHub to redeliver a delivery: GitHub sends it again, and wait_for_delivery \
        returns it (`redelivery: true`).")]
    async fn redeliver(&self, Parameters(args): Parameters<RedeliverArgs>) -> ToolResult {
        let entry = match self.find(&args.id) {
            Ok(entry) => entry,
            Err(sentence) => return failed(sentence),
        };
        match ask_redelivery(&self.client, &entry).await {
            Ok(id) => ok(&json!({"redelivering": true, "id": id, "guid": entry.item.guid})),
            Err((_, sentence)) => failed(format!("GitHub did not redeliver {}: {sentence}", entry.item.guid)),
        }
    }

    #[tool(description = "Send a synthetic delivery, identical in form to GitHub's, to the handler (--to): \
        GitHub's example payload for EVENT.ACTION (as `hookfwd send` does), edited by `set`.")]
    async fn send_event(&self, Parameters(args): Parameters<SendArgs>) -> ToolResult {
        let Some(handler) = &self.handler else {
            return failed("there is no handler to send it to: this run was started without --to".into());
        };
        let mut edits = Vec::new();
        for text in args.set.iter().flatten() {
            match webhooks::Edit::parse(text) {
                Ok(edit) => edits.push(edit),
                Err(error) => return failed(format!("`{text}` is not an edit: {error}")),
            }
        }
        let (event, action, payload) = match crate::cmd::send::example_payload(&args.event_action, &edits) {
            Ok(prepared) => prepared,
            Err(error) => return failed(crate::exit::sentence(&error)),
        };
        let request = Outgoing::synthetic(&event, &payload, self.secret.as_ref());
        let guid = request.header("X-GitHub-Delivery").unwrap_or_default().to_string();
        let target = handler.0.to_string();
        match Forwarder::new(handler.clone(), crate::cmd::send::TIMEOUT).send(&request).await {
            Ok(response) => {
                let mut answer = answered(&target, &response);
                answer["event"] = json!(event);
                answer["action"] = json!(action);
                answer["guid"] = json!(guid);
                ok(&answer)
            }
            Err(error) => failed(format!("the handler at {target} could not be reached: {error}")),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("hookfwd", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "GitHub webhook deliveries of the repositories hookfwd was started for, as they arrive. \
                 wait_for_delivery waits for the next one; pass its `cursor` back to miss none.",
            )
    }
}

impl Server {
    /// The delivery `id` names: its newest row that the relay (not a replay) brought.
    fn find(&self, id: &DeliveryId) -> Result<Entry, String> {
        let store = self.deliveries.lock();
        let named = |entry: &&Entry| match id {
            DeliveryId::Id(id) => entry.item.id == *id,
            DeliveryId::Guid(guid) if guid.len() >= 8 => entry.item.guid.starts_with(guid.as_str()),
            DeliveryId::Guid(_) => false,
        };
        let mut found = store.entries().rev().filter(|entry| !entry.replay).filter(named);
        let Some(entry) = found.next() else {
            return Err(match id {
                DeliveryId::Guid(guid) if guid.len() < 8 => {
                    format!("`{guid}` is too short to name a delivery: give its guid, or at least 8 characters of it")
                }
                DeliveryId::Guid(guid) => format!("no delivery {guid} is kept (only the latest are)"),
                DeliveryId::Id(id) => format!("no delivery with id {id} is kept (only the latest are)"),
            });
        };
        if let Some(other) = found.find(|other| other.item.guid != entry.item.guid) {
            return Err(format!(
                "several deliveries start with that, such as {} and {}: give more of the guid",
                entry.item.guid, other.item.guid
            ));
        }
        Ok(entry.clone())
    }
}

/// `filter`, compiled; or jaq's message and column, as one sentence.
fn compile(filter: Option<&str>) -> Result<Option<Filter>, String> {
    filter.map(Filter::parse).transpose().map_err(|error| format!("{error}"))
}

/// How many deliveries a filter failed on (counted as no), and the first message.
#[derive(Default)]
struct Failures {
    count: usize,
    first: Option<String>,
}

impl Failures {
    /// Adds `filter_failed` to a result when the filter failed on some delivery, so the agent can fix it.
    fn note(&self, result: &mut Value) {
        if let Some(first) = &self.first {
            result["filter_failed"] = json!(format!("{first} (on {} deliveries, counted as no match)", self.count));
        }
    }
}

/// Whether `entry` passes `filter` (none: every one does). A delivery the filter fails on does not pass.
fn passes(filter: Option<&Filter>, entry: &Entry, failures: &mut Failures) -> bool {
    let Some(filter) = filter else { return true };
    let Some(request) = &entry.request else { return false };
    let Some(payload) = payload_value(&request.body) else { return false };
    let headers: BTreeMap<String, String> =
        request.headers.iter().map(|(name, value)| (name.to_ascii_lowercase(), value.clone())).collect();
    match filter.matches(&payload, &headers, &entry.item.event, entry.item.action.as_deref()) {
        Ok(matches) => matches,
        Err(error) => {
            failures.count += 1;
            failures.first.get_or_insert_with(|| error.to_string());
            false
        }
    }
}

/// The payload as JSON: the body of a JSON hook, or the `payload` field of a form hook's.
fn payload_value(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok().or_else(|| {
        let (_, payload) = form_urlencoded::parse(body).find(|(name, _)| name == "payload")?;
        serde_json::from_str(&payload).ok()
    })
}

/// Whether the relay brought this row from GitHub (a new delivery, or a redelivery), rather than a replay or a
/// parked delivery sent again.
fn arrived(entry: &Entry) -> bool {
    !entry.replay && !entry.resent
}

/// A delivery without headers or payload: the inspector's row, with GitHub's `id`.
fn summary(entry: &Entry) -> Value {
    let mut value = entry.summary();
    value["id"] = json!(DeliveryFields::of(&entry.item).id);
    value
}

/// A delivery with its headers and at most `length` bytes of its payload from `offset` (moved back to the
/// start of a character).
fn detail(entry: &Entry, offset: usize, length: usize) -> Value {
    let mut value = summary(entry);
    value["target"] = json!(entry.target.as_ref().filter(|url| !Target((*url).clone()).is_keep()).map(|u| u.as_str()));
    let Some(request) = &entry.request else {
        value["payload"] = Value::Null;
        value["note"] = json!("its request was dropped to keep memory bounded; redeliver asks GitHub for it again");
        return value;
    };
    value["headers"] = json!(Headers::from(request.headers.as_slice()));
    let text = String::from_utf8_lossy(&request.body);
    let (part, start, end) = window(&text, offset, length);
    value["payload"] = json!(part);
    value["payload_offset"] = json!(start);
    value["payload_length"] = json!(text.len());
    value["payload_truncated"] = json!(start > 0 || end < text.len());
    if end < text.len() {
        value["next_offset"] = json!(end);
        value["note"] = json!(format!(
            "payload truncated: bytes {start}..{end} of {}; get_delivery with offset {end} reads on",
            text.len()
        ));
    }
    value
}

/// At most `length` bytes of `text` from `offset`, both ends moved back to the start of a character; with
/// where the part starts and ends.
fn window(text: &str, offset: usize, length: usize) -> (&str, usize, usize) {
    let back = |mut at: usize| {
        at = at.min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    let start = back(offset);
    let mut end = back(start.saturating_add(length));
    if end == start && start < text.len() {
        // A window narrower than one character still moves on by that character.
        end = (start + 1..=text.len()).find(|&at| text.is_char_boundary(at)).unwrap_or(text.len());
    }
    (&text[start..end], start, end)
}

/// The handler's answer, as `--json`'s `sent` line names it.
fn answered(target: &str, response: &relay::Response) -> Value {
    let mut value = json!(crate::answer::AnswerJson::of(&response.answer));
    value["status"] = json!(response.status);
    value["ok"] = json!((200..300).contains(&response.status));
    value["latency_ms"] = json!(response.latency.as_millis() as u64);
    value["target"] = json!(target);
    value
}

fn ok(value: &Value) -> ToolResult {
    Ok(CallToolResult::success(vec![ContentBlock::text(value.to_string())]))
}

/// A tool's failure: one sentence, `isError`, and the server goes on.
fn failed(sentence: String) -> ToolResult {
    Ok(CallToolResult::error(vec![ContentBlock::text(sentence)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_never_splits_a_character_and_always_moves_on() {
        let text = "aé€b";
        assert_eq!(window(text, 0, 64), ("aé€b", 0, 7));
        assert_eq!(window(text, 0, 2), ("a", 0, 1), "é is two bytes: not cut");
        assert_eq!(window(text, 2, 3), ("é", 1, 3), "an offset inside é starts at é");
        assert_eq!(window(text, 3, 1), ("€", 3, 6), "a window narrower than € still returns it");
        assert_eq!(window(text, 99, 4), ("", 7, 7));
    }

    #[test]
    fn parts_of_a_big_payload_join_to_the_whole() {
        let text = "ü".repeat(100_000);
        let (mut joined, mut offset) = (String::new(), 0);
        while offset < text.len() {
            let (part, start, end) = window(&text, offset, MAX_PAYLOAD);
            assert_eq!(start, offset);
            assert!(part.len() <= MAX_PAYLOAD);
            joined.push_str(part);
            offset = end;
        }
        assert_eq!(joined, text);
    }
}
