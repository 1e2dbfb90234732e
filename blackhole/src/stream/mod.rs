//! The push stream: each POST handed to the subscribers of its path as Server-Sent Events.
//!
//! docs/stream.md is the wire contract. The shape here: one [`Hub`] holds a
//! replay buffer per path (a `VecDeque` of shared events, bounded by count,
//! bytes and age) and a `watch` per path that says "something new". Each
//! subscriber is a small task with a cursor (the last seq it sent) that
//! copies events from the buffer into its response as the socket takes them.
//! Nothing is queued per subscriber: a reader whose cursor falls off the
//! buffer gets `gap` and its stream ends, and one whose socket will not take
//! a frame is cut by the connection's stall timer. Publishing never waits.

//!
//! This module is the hub and its buffer; `sse` is the subscriber side (the request that opens a stream,
//! its pump task, the event frames, and the response body).

mod sse;

use std::collections::VecDeque;
use std::collections::hash_map::{HashMap, RandomState};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::Response;
use hyper::header::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::token::Tokens;
pub(crate) use sse::{SseBody, fixed, is_subscription, subscribe};

/// A response: a small fixed body, or a stream.
pub(crate) type Reply = Response<Either<Full<Bytes>, SseBody>>;

/// Bytes of body encoded per frame; a multiple of 3 so that base64 pads only the last one.
const BODY_CHUNK: usize = 48 * 1024;

/// Most events all paths' buffers hold together, whatever their sizes; bounds the index of paths.
const TOTAL_EVENTS: usize = 16 * 1024;

/// The answer to a subscription without a valid token; the same for every path.
const UNAUTHORIZED: &[u8] = b"a valid stream token is required\n";

/// How streaming behaves; given only when the blackhole has stream tokens.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// The tokens a subscriber may present.
    pub tokens: Tokens,
    /// Most deliveries one path's replay buffer keeps.
    pub buffer_count: usize,
    /// Most body and header bytes one path's replay buffer keeps.
    pub buffer_bytes: usize,
    /// How long a delivery stays in the replay buffer.
    pub buffer_age: Duration,
    /// Most bytes every path's buffer holds together, and most bytes of POST bodies being collected at once.
    pub buffer_total: usize,
    /// Longest silence on a stream before a `: keep-alive` comment.
    pub keepalive: Duration,
    /// Most streams served at once.
    pub max_subscribers: usize,
}

/// One delivery as it will be streamed.
struct Event {
    /// Its place in this boot's sequence, across all paths.
    seq: u64,
    /// When it was put in the buffer, for the age bound.
    at: Instant,
    /// The `received_at` timestamp, RFC 3339.
    received_at: String,
    /// The selected request headers as one JSON object.
    headers: String,
    /// The exact body bytes.
    body: Bytes,
}

impl Event {
    /// What it counts against the byte bounds.
    fn size(&self) -> usize {
        self.body.len() + self.headers.len() + self.received_at.len()
    }
}

/// One path's replay buffer and its subscribers.
struct Path {
    /// Buffered events, oldest first.
    events: VecDeque<Arc<Event>>,
    /// Sum of the events' sizes.
    bytes: usize,
    /// The highest seq no longer known to this buffer: a cursor below it has missed something.
    evicted_upto: u64,
    /// The seq of the newest event, for subscribers to wait on.
    newest: watch::Sender<u64>,
    /// Open streams on this path; the entry is kept while there is one.
    subscribers: usize,
}

/// Every path's buffer, behind one lock: the runtime has one thread and each step is short.
struct State {
    /// The last seq handed out.
    seq: u64,
    /// Buffers by path.
    paths: HashMap<String, Path>,
    /// Every buffered event's seq and path, oldest first, for the total bounds;
    /// entries of events a path has evicted on its own are skipped when reached.
    order: VecDeque<(u64, String)>,
    /// Sum of all buffered events' sizes.
    bytes: usize,
}

/// The streams' shared state: buffers, limits and the shutdown signal.
pub(crate) struct Hub {
    /// This run's id, the prefix of every event id.
    boot: String,
    /// Limits and tokens.
    config: StreamConfig,
    /// Buffers.
    state: Mutex<State>,
    /// One permit per open stream.
    subscribers: Arc<Semaphore>,
    /// One permit per byte of POST body being collected for publishing.
    collecting: Arc<Semaphore>,
    /// Becomes `true` when the server shuts down: every stream ends.
    shutdown: watch::Receiver<bool>,
}

/// What a subscriber should send next.
enum Next {
    /// This event.
    Event(Arc<Event>),
    /// Nothing yet.
    Wait,
    /// Events after the cursor were evicted.
    Gap,
}

impl Hub {
    /// A hub with a random boot id; streams end when `shutdown` turns `true`.
    pub(crate) fn new(config: StreamConfig, shutdown: watch::Receiver<bool>) -> Hub {
        // The standard library seeds its hasher keys from the OS: random enough for a run id.
        let boot = format!("{:08x}", RandomState::new().hash_one(std::process::id()) as u32);
        let collecting = Arc::new(Semaphore::new(config.buffer_total.min(Semaphore::MAX_PERMITS)));
        Hub {
            boot,
            subscribers: Arc::new(Semaphore::new(config.max_subscribers)),
            collecting,
            config,
            state: Mutex::new(State { seq: 0, paths: HashMap::new(), order: VecDeque::new(), bytes: 0 }),
            shutdown,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing under the lock can panic halfway through an update (the release build aborts on
        // panic anyway), so a poisoned lock still holds consistent buffers: go on with them.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts collecting a POST body for publishing; `declared` is its `Content-Length`.
    pub(crate) fn collector(&self, declared: Option<u64>) -> Collector {
        let mut collector = Collector { body: Some(Vec::new()), permit: None, collecting: self.collecting.clone() };
        // Reserve the declared size at once when the budget allows: one allocation, no copies.
        // The caller has refused a declared size over the body limit already.
        if let Some(declared) = declared.map(|declared| declared as usize)
            && collector.ensure(declared)
            && let Some(body) = &mut collector.body
        {
            body.reserve_exact(declared);
        }
        collector
    }

    /// Puts a delivery in its path's buffer and wakes that path's subscribers.
    pub(crate) fn publish(&self, path: &str, headers: &HeaderMap, body: Bytes) {
        let received_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let headers = headers_json(headers);
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        state.seq += 1;
        let event = Arc::new(Event { seq: state.seq, at: now, received_at, headers, body });
        let size = event.size();
        let seq = event.seq;
        let last = seq - 1;
        let entry = state.paths.entry(path.to_owned()).or_insert_with(|| Path::new(last));
        entry.events.push_back(event);
        entry.bytes += size;
        state.bytes += size;
        state.order.push_back((seq, path.to_owned()));
        entry.evict(&self.config, now, &mut state.bytes);
        entry.newest.send_replace(seq);
        state.evict_total(&self.config);
    }

    /// Drops events past their age from every path; called now and then so quiet paths free their memory.
    pub(crate) fn sweep(&self) {
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        for path in state.paths.values_mut() {
            path.evict(&self.config, now, &mut state.bytes);
        }
        state.paths.retain(|_, path| !path.is_unused());
        // Drop index entries of events that are gone, so the index shrinks with the buffers.
        let State { order, paths, .. } = state;
        order.retain(|(seq, path)| paths.get(path).is_some_and(|p| p.events.front().is_some_and(|e| e.seq <= *seq)));
    }

    /// Sweeps now and then (a quarter of the buffer age, within 1 to 30 s) until shutdown.
    pub(crate) async fn sweep_until_stopped(self: Arc<Self>) {
        let period = (self.config.buffer_age / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
        let mut tick = tokio::time::interval(period);
        let mut stopped = self.shutdown.clone();
        loop {
            tokio::select! {
                _ = tick.tick() => self.sweep(),
                _ = stopped.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// Registers a subscriber on `path`; returns it with whether `last_event_id` resumes without a gap.
    fn subscribe(
        self: &Arc<Self>,
        path: &str,
        last_event_id: Option<&str>,
        permit: OwnedSemaphorePermit,
    ) -> (Subscription, bool) {
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        let latest = state.seq;
        let entry = state.paths.entry(path.to_owned()).or_insert_with(|| Path::new(latest));
        entry.evict(&self.config, now, &mut state.bytes);
        entry.subscribers += 1;
        let resumed = last_event_id
            .and_then(|id| id.trim().split_once('-'))
            .filter(|(boot, _)| *boot == self.boot)
            .and_then(|(_, seq)| seq.parse::<u64>().ok())
            .filter(|seq| *seq <= latest && *seq >= entry.evicted_upto);
        let subscription = Subscription {
            hub: self.clone(),
            path: path.to_owned(),
            cursor: resumed.unwrap_or(latest),
            newest: entry.newest.subscribe(),
            _permit: permit,
        };
        (subscription, resumed.is_some())
    }

    /// What the subscriber on `path` whose cursor is `cursor` sends next.
    fn next(&self, path: &str, cursor: u64) -> Next {
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(entry) = state.paths.get_mut(path) else { return Next::Gap };
        entry.evict(&self.config, now, &mut state.bytes);
        if entry.evicted_upto > cursor {
            return Next::Gap;
        }
        let first = entry.events.partition_point(|event| event.seq <= cursor);
        match entry.events.get(first) {
            Some(event) => Next::Event(event.clone()),
            None => Next::Wait,
        }
    }

    /// Whether event `seq` of `path` has left the buffer (a slow reader was still sending it).
    fn evicted(&self, path: &str, seq: u64) -> bool {
        self.lock().paths.get(path).is_none_or(|entry| entry.evicted_upto >= seq)
    }
}

impl Path {
    /// An empty buffer that can vouch for nothing up to `last`.
    fn new(last: u64) -> Path {
        Path { events: VecDeque::new(), bytes: 0, evicted_upto: last, newest: watch::Sender::new(last), subscribers: 0 }
    }

    /// Drops the oldest events until the path is within its bounds.
    fn evict(&mut self, config: &StreamConfig, now: Instant, total: &mut usize) {
        while let Some(front) = self.events.front() {
            let expired = now.saturating_duration_since(front.at) > config.buffer_age;
            if !expired && self.events.len() <= config.buffer_count && self.bytes <= config.buffer_bytes {
                break;
            }
            self.pop(total);
        }
    }

    fn pop(&mut self, total: &mut usize) {
        if let Some(event) = self.events.pop_front() {
            self.bytes -= event.size();
            *total -= event.size();
            self.evicted_upto = self.evicted_upto.max(event.seq);
        }
    }

    fn is_unused(&self) -> bool {
        self.events.is_empty() && self.subscribers == 0
    }
}

impl State {
    /// Drops the oldest events of any path until all buffers together are within the total bounds.
    fn evict_total(&mut self, config: &StreamConfig) {
        while self.bytes > config.buffer_total || self.order.len() > TOTAL_EVENTS {
            let Some((seq, path)) = self.order.pop_front() else { break };
            let Some(entry) = self.paths.get_mut(&path) else { continue };
            // The path may have evicted this event already; then the entry is only stale.
            if entry.events.front().is_some_and(|event| event.seq == seq) {
                entry.pop(&mut self.bytes);
            }
            if entry.is_unused() {
                self.paths.remove(&path);
            }
        }
    }
}

/// A POST body being collected for publishing, within the hub's collecting budget.
pub(crate) struct Collector {
    /// The bytes so far; `None` once the budget ran out (the body is then not published).
    body: Option<Vec<u8>>,
    /// The budget held for them.
    permit: Option<OwnedSemaphorePermit>,
    /// The budget.
    collecting: Arc<Semaphore>,
}

impl Collector {
    /// Holds budget for `needed` bytes in all; false when there is none.
    fn ensure(&mut self, needed: usize) -> bool {
        let held = self.permit.as_ref().map_or(0, OwnedSemaphorePermit::num_permits);
        if needed <= held {
            return true;
        }
        let more = u32::try_from(needed - held).ok();
        match (more.and_then(|more| self.collecting.clone().try_acquire_many_owned(more).ok()), &mut self.permit) {
            (Some(taken), Some(permit)) => permit.merge(taken),
            (Some(taken), None) => self.permit = Some(taken),
            (None, _) => return false,
        }
        true
    }

    /// Appends a frame of the body, unless collecting has been given up.
    pub(crate) fn push(&mut self, data: &[u8]) {
        let Some(len) = self.body.as_ref().map(Vec::len) else { return };
        if !self.ensure(len + data.len()) {
            // Out of budget: give the memory back; the delivery reaches hookfwd by its API poll.
            self.body = None;
            self.permit = None;
            tracing::warn!("too many bodies being collected at once; this delivery is not streamed");
            return;
        }
        if let Some(body) = &mut self.body {
            body.extend_from_slice(data);
        }
    }

    /// The whole body, unless collecting was given up.
    pub(crate) fn finish(self) -> Option<Bytes> {
        self.body.map(Bytes::from)
    }
}

/// One open stream; leaving its path's entry when dropped.
struct Subscription {
    /// The hub it belongs to.
    hub: Arc<Hub>,
    /// The path it follows.
    path: String,
    /// The seq of the last event sent, or the point it started from.
    cursor: u64,
    /// Changes when its path gets a new event.
    newest: watch::Receiver<u64>,
    /// Its slot among `--max-subscribers`.
    _permit: OwnedSemaphorePermit,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        if let Some(entry) = state.paths.get_mut(&self.path) {
            entry.subscribers -= 1;
            if entry.is_unused() {
                state.paths.remove(&self.path);
            }
        }
    }
}

/// The request headers a stream carries, as one JSON object: GitHub's, the signature, type and agent.
fn headers_json(headers: &HeaderMap) -> String {
    let mut json = String::from("{");
    for name in headers.keys() {
        let name = name.as_str();
        let wanted = name.starts_with("x-github-")
            || name.starts_with("x-hub-signature")
            || name == "content-type"
            || name == "user-agent";
        let Some(value) = headers.get(name).filter(|_| wanted) else { continue };
        if json.len() > 1 {
            json.push(',');
        }
        push_json_string(&mut json, name);
        json.push(':');
        push_json_string(&mut json, &String::from_utf8_lossy(value.as_bytes()));
    }
    json.push('}');
    json
}

fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The seqs buffered for `path`, for tests of the buffer bounds.
#[cfg(test)]
fn buffered(hub: &Hub, path: &str) -> Vec<u64> {
    hub.lock().paths.get(path).map(|p| p.events.iter().map(|e| e.seq).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn hub(count: usize, bytes: usize, total: usize) -> Arc<Hub> {
        let config = StreamConfig {
            tokens: Tokens::parse("t").unwrap(),
            buffer_count: count,
            buffer_bytes: bytes,
            buffer_age: Duration::from_secs(120),
            buffer_total: total,
            keepalive: Duration::from_secs(15),
            max_subscribers: 4,
        };
        Arc::new(Hub::new(config, watch::channel(false).1))
    }

    fn publish(hub: &Hub, path: &str, size: usize) {
        hub.publish(path, &HeaderMap::new(), Bytes::from(vec![b'x'; size]));
    }

    #[test]
    fn the_total_bound_evicts_the_oldest_event_of_any_path() {
        // Each event counts its 1000 body bytes, "{}" for headers and a 27-byte timestamp: three fit.
        let hub = hub(100, 1 << 20, 3100);
        publish(&hub, "/a", 1000);
        publish(&hub, "/b", 1000);
        publish(&hub, "/a", 1000);
        publish(&hub, "/b", 1000);
        assert_eq!(buffered(&hub, "/a"), vec![3]);
        assert_eq!(buffered(&hub, "/b"), vec![2, 4]);
    }

    #[test]
    fn a_cursor_behind_an_evicted_event_gets_a_gap() {
        let hub = hub(2, 1 << 20, 1 << 20);
        for _ in 0..3 {
            publish(&hub, "/a", 10);
        }
        assert!(matches!(hub.next("/a", 0), Next::Gap));
        assert!(matches!(hub.next("/a", 1), Next::Event(e) if e.seq == 2));
        assert!(matches!(hub.next("/a", 3), Next::Wait));
    }

    #[test]
    fn headers_json_keeps_githubs_headers_only_and_escapes() {
        let mut headers = HeaderMap::new();
        headers.insert("x-github-event", HeaderValue::from_static("push"));
        headers.insert("x-hub-signature-256", HeaderValue::from_static("sha256=ab"));
        headers.insert("user-agent", HeaderValue::from_static("GitHub-Hookshot/\"x\""));
        headers.insert("authorization", HeaderValue::from_static("Bearer no"));
        headers.insert("cookie", HeaderValue::from_static("no"));
        let json = headers_json(&headers);
        assert!(json.contains(r#""x-github-event":"push""#), "{json}");
        assert!(json.contains(r#""x-hub-signature-256":"sha256=ab""#), "{json}");
        assert!(json.contains(r#""user-agent":"GitHub-Hookshot/\"x\"""#), "{json}");
        assert!(!json.contains("authorization") && !json.contains("cookie"), "{json}");
    }
}
