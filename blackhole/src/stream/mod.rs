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
//! Every byte the hub holds is counted against one budget, `--stream-buffer-total` (see `budget`):
//! bodies as they are collected, events, path names and the frames on their way to a socket. When
//! something needs room, the oldest buffered events of any path make it. A subscriber never holds an
//! event across a wait, so an evicted event's memory is freed at once; one that was still sending it
//! is cut at its next frame.
//!
//! With `--redis` (the `redis` feature), a POST is appended to a Redis Stream instead, and each path's
//! buffer becomes a mirror of that stream, filled by one reader per path (see `redis`); subscribers are
//! served from the buffer exactly as without it.
//!
//! This module is the hub and its buffer; `sse` is the subscriber side (the request that opens a stream,
//! its pump task, the event frames, and the response body).

mod budget;
#[cfg(feature = "redis")]
mod redis;
mod sse;

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::collections::hash_map::{HashMap, RandomState};
#[cfg(feature = "redis")]
use std::future::Future;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::Response;
use hyper::header::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::RedisUrl;
use crate::token::Tokens;
use budget::{Budget, Charge};
pub(crate) use sse::{SseBody, fixed, is_subscription, subscribe};

/// A response: a small fixed body, or a stream.
pub(crate) type Reply = Response<Either<Full<Bytes>, SseBody>>;

/// Bytes of body encoded per frame; a multiple of 3 so that base64 pads only the last one.
const BODY_CHUNK: usize = 48 * 1024;

/// Most events all paths' buffers hold together, whatever their sizes; bounds the index of paths.
const TOTAL_EVENTS: usize = 16 * 1024;

/// Longest path that is streamed. GitHub's hook URLs are short; a POST to a longer path is answered
/// 200 and not streamed, and a subscription to one gets 414, so that no one can fill the buffer
/// with path names.
pub(crate) const MAX_PATH: usize = 1024;

/// What an event costs beyond its bytes: the `Event` and its `Arc`, its slot in its path's buffer
/// and in the index of all events, and the allocations of its strings (about 200 bytes measured).
const EVENT_OVERHEAD: usize = 256;

/// What a path costs beyond its name: its map entry, its `Path`, its `watch` channel.
const PATH_OVERHEAD: usize = 512;

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
    /// Most bytes streaming holds in all: buffered events, bodies being collected, path names and
    /// frames being written. One client address may hold at most half of it in bodies being collected.
    pub buffer_total: usize,
    /// Longest silence on a stream before a `: keep-alive` comment.
    pub keepalive: Duration,
    /// Most streams served at once.
    pub max_subscribers: usize,
    /// Share every path's stream with the other instances through this Redis; memory only when `None`.
    pub redis: Option<RedisUrl>,
}

/// An event's place in its path's order: without Redis, its seq in this boot; with Redis, its stream
/// entry id `MS-N` as `MS << 64 | N`, so that ids from any instance compare as Redis orders them.
type Seq = u128;

/// One delivery as it will be streamed.
struct Event {
    /// Its place in its path's order.
    seq: Seq,
    /// When it was put in the buffer, for the age bound.
    at: Instant,
    /// The `received_at` timestamp, RFC 3339.
    received_at: String,
    /// The selected request headers as one JSON object.
    headers: String,
    /// The exact body bytes.
    body: Bytes,
    /// The budget held for all of the above; what it counts against the byte bounds.
    charge: Charge,
}

impl Event {
    /// What it counts against the byte bounds.
    fn size(&self) -> usize {
        self.charge.bytes()
    }
}

/// A path's name, stored once and shared by the map, the index of events and the streams on it.
struct PathName {
    /// The path, as in the request line without its query.
    name: Box<str>,
    /// The budget held for the name and the path's entry, as long as anything names it.
    _charge: Charge,
}

/// A [`PathName`] as a map key that can be looked up by `&str`.
#[derive(Clone)]
struct Key(Arc<PathName>);

impl Key {
    fn new(path: &str, charge: Charge) -> Key {
        Key(Arc::new(PathName { name: path.into(), _charge: charge }))
    }

    fn as_str(&self) -> &str {
        &self.0.name
    }
}

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The same as `str`'s, as `Borrow` requires.
        self.as_str().hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Key {}

/// What a path's name and entry count against the budget.
fn path_cost(path: &str) -> usize {
    path.len() + PATH_OVERHEAD
}

/// One path's replay buffer and its subscribers.
struct Path {
    /// Buffered events, oldest first.
    events: VecDeque<Arc<Event>>,
    /// Sum of the events' sizes.
    bytes: usize,
    /// The highest seq no longer known to this buffer: a cursor below it has missed something.
    evicted_upto: Seq,
    /// The seq of the newest event, for subscribers to wait on.
    newest: watch::Sender<Seq>,
    /// Open streams on this path; the entry is kept while there is one.
    subscribers: usize,
    /// With Redis: the generation of the reader that mirrors this path's stream (0: none), and the
    /// stream's `boot` once that reader has loaded it.
    #[cfg(feature = "redis")]
    mirror: (u64, watch::Sender<Option<Arc<str>>>),
}

/// Every path's buffer, behind one lock: the runtime has one thread and each step is short.
struct State {
    /// The last seq handed out.
    seq: u64,
    /// Buffers by path.
    paths: HashMap<Key, Path>,
    /// Every buffered event's seq and path, oldest first, for the total bounds;
    /// entries of events a path has evicted on its own are skipped when reached.
    order: VecDeque<(Seq, Key)>,
    /// Sum of all buffered events' sizes: what evicting could free.
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
    /// Every byte held for streaming.
    budget: Arc<Budget>,
    /// Bytes of bodies being collected, by client address, each at most `share`.
    shares: Mutex<HashMap<IpAddr, usize>>,
    /// Most bytes of bodies one address may be collecting at once.
    share: usize,
    /// Becomes `true` when the server shuts down: every stream ends.
    shutdown: watch::Receiver<bool>,
    /// The Redis every instance appends to, with `--redis`.
    #[cfg(feature = "redis")]
    shared: Option<Arc<redis::Shared>>,
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
        Hub {
            #[cfg(feature = "redis")]
            shared: config.redis.as_ref().map(|url| Arc::new(redis::Shared::new(url, &boot, &config))),
            boot,
            subscribers: Arc::new(Semaphore::new(config.max_subscribers)),
            budget: Budget::new(config.buffer_total),
            shares: Mutex::new(HashMap::new()),
            share: config.buffer_total / 2,
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

    /// Takes `bytes` from the budget, evicting the oldest buffered events for room when it must.
    fn take(&self, bytes: usize) -> Option<Charge> {
        self.budget.take(bytes).or_else(|| self.make_room(&mut self.lock(), bytes))
    }

    /// Evicts the oldest buffered events of any path until `bytes` fit, and takes them; `None`
    /// when the buffer cannot free enough (the rest is held by bodies and frames).
    fn make_room(&self, state: &mut State, bytes: usize) -> Option<Charge> {
        if self.budget.shortfall(bytes) > state.bytes {
            return None;
        }
        loop {
            if let Some(charge) = self.budget.take(bytes) {
                return Some(charge);
            }
            if !state.evict_oldest() {
                return None;
            }
        }
    }

    /// Starts collecting a POST body for publishing. It will be at most `limit` bytes (its
    /// `Content-Length`, else `--max-body`); `peer` is the client address whose share it counts
    /// against, `None` when addresses are not counted.
    pub(crate) fn collector(&self, limit: u64, peer: Option<IpAddr>) -> Collector<'_> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Collector { hub: self, body: Some(Vec::new()), charge: None, limit, peer, shared: 0 }
    }

    /// Puts a delivery in its path's buffer and wakes that path's subscribers.
    pub(crate) fn publish(&self, path: &str, headers: &HeaderMap, body: Collected) {
        let received_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let headers = headers_json(headers);
        let Collected { body, charge } = body;
        let mut state = self.lock();
        let seq = state.seq + 1;
        if self.insert(
            &mut state,
            path,
            Event { seq: seq.into(), at: Instant::now(), received_at, headers, body, charge },
        ) {
            state.seq = seq;
        } else {
            tracing::warn!("the stream buffer is full of bodies being read; this delivery is not streamed");
        }
    }

    /// Stores a collected POST: put in this instance's buffer at once (`None`), or with `--redis`, the
    /// append to the shared stream to await (false when Redis cannot take it: the POST then gets 503).
    /// Boxed, so that a POST's future stays as small without `--redis` as without the feature.
    #[cfg(feature = "redis")]
    pub(crate) fn store(
        &self,
        path: &str,
        headers: &HeaderMap,
        body: Collected,
    ) -> Option<std::pin::Pin<Box<dyn Future<Output = bool> + Send + '_>>> {
        let Some(shared) = &self.shared else {
            self.publish(path, headers, body);
            return None;
        };
        let received_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let (path, headers) = (path.to_string(), headers_json(headers));
        Some(Box::pin(async move { shared.append(&path, received_at, headers, body).await }))
    }

    /// Puts `event` at the end of its path's buffer, taking room for what its charge does not cover
    /// yet (all but the body), and wakes the path's subscribers; false when there is no room.
    fn insert(&self, state: &mut State, path: &str, mut event: Event) -> bool {
        let name = match state.paths.get_key_value(path) {
            Some((name, _)) => Some(name.clone()),
            None => self.make_room(state, path_cost(path)).map(|charge| Key::new(path, charge)),
        };
        let room = self.make_room(state, event.received_at.len() + event.headers.len() + EVENT_OVERHEAD);
        let (Some(name), Some(room)) = (name, room) else { return false };
        event.charge.merge(room);
        let event = Arc::new(event);
        let (size, seq) = (event.size(), event.seq);
        // Room may have been made by evicting this path's last event, and with it the path.
        let entry = state.paths.entry(name.clone()).or_insert_with(|| Path::new(seq - 1));
        entry.events.push_back(event);
        entry.bytes += size;
        state.bytes += size;
        state.order.push_back((seq, name));
        entry.evict(&self.config, Instant::now(), &mut state.bytes);
        entry.newest.send_replace(seq);
        state.evict_total();
        true
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
        order.retain(|(seq, path)| {
            paths.get(path.as_str()).is_some_and(|p| p.events.front().is_some_and(|e| e.seq <= *seq))
        });
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

    /// Registers a subscriber on `path`; returns it with whether `last_event_id` resumes without a gap
    /// and the `boot` its hello names; `None` when the shared stream cannot be read (Redis is down).
    async fn subscribe(
        self: &Arc<Self>,
        path: &str,
        last_event_id: Option<&str>,
        permit: OwnedSemaphorePermit,
    ) -> Option<(Subscription, bool, String)> {
        #[cfg(feature = "redis")]
        if self.shared.is_some() {
            return self.subscribe_shared(path, last_event_id, permit).await;
        }
        let (subscription, resumed) = self.subscribe_local(path, last_event_id, permit);
        Some((subscription, resumed, self.boot.clone()))
    }

    /// An event's SSE id: `BOOT-SEQ` in memory, the stream entry's id `MS-N` with Redis.
    fn event_id(&self, seq: Seq) -> String {
        #[cfg(feature = "redis")]
        if self.shared.is_some() {
            return redis::entry_id(seq);
        }
        format!("{}-{seq}", self.boot)
    }

    /// [`Hub::subscribe`] on this instance's own buffer.
    fn subscribe_local(
        self: &Arc<Self>,
        path: &str,
        last_event_id: Option<&str>,
        permit: OwnedSemaphorePermit,
    ) -> (Subscription, bool) {
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        let latest = Seq::from(state.seq);
        let name = match state.paths.get_key_value(path) {
            Some((name, _)) => name.clone(),
            // Forced: `--max-subscribers` and `MAX_PATH` bound what streams' names can take.
            None => Key::new(path, self.budget.force(path_cost(path))),
        };
        let entry = state.paths.entry(name.clone()).or_insert_with(|| Path::new(latest));
        entry.evict(&self.config, now, &mut state.bytes);
        entry.subscribers += 1;
        let resumed = last_event_id
            .and_then(|id| id.trim().split_once('-'))
            .filter(|(boot, _)| *boot == self.boot)
            .and_then(|(_, seq)| seq.parse::<Seq>().ok())
            .filter(|seq| *seq <= latest && *seq >= entry.evicted_upto);
        let subscription = Subscription {
            hub: self.clone(),
            path: name,
            cursor: resumed.unwrap_or(latest),
            newest: entry.newest.subscribe(),
            _permit: permit,
        };
        (subscription, resumed.is_some())
    }

    /// What the subscriber on `path` whose cursor is `cursor` sends next.
    fn next(&self, path: &str, cursor: Seq) -> Next {
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

    /// Event `seq` of `path`, unless it has left the buffer.
    fn event(&self, path: &str, seq: Seq) -> Option<Arc<Event>> {
        let state = self.lock();
        let events = &state.paths.get(path)?.events;
        let at = events.partition_point(|event| event.seq < seq);
        events.get(at).filter(|event| event.seq == seq).cloned()
    }

    /// A frame of a stream, counted against the budget until hyper has written it; `None` when
    /// there is no room for it even after evicting every buffered event.
    fn frame(&self, text: String) -> Option<Bytes> {
        let charge = self.take(text.len())?;
        Some(Bytes::from_owner(Charged { text, _charge: charge }))
    }

    /// A frame counted against the budget even past its bound: only for what another limit bounds small.
    fn forced_frame(&self, text: String) -> Bytes {
        Bytes::from_owner(Charged { _charge: self.budget.force(text.len()), text })
    }
}

/// The text of a frame with the budget held for it.
struct Charged {
    /// The frame.
    text: String,
    /// Held until the frame's last `Bytes` is dropped.
    _charge: Charge,
}

impl AsRef<[u8]> for Charged {
    fn as_ref(&self) -> &[u8] {
        self.text.as_bytes()
    }
}

impl Path {
    /// An empty buffer that can vouch for nothing up to `last`.
    fn new(last: Seq) -> Path {
        Path {
            events: VecDeque::new(),
            bytes: 0,
            evicted_upto: last,
            newest: watch::Sender::new(last),
            subscribers: 0,
            #[cfg(feature = "redis")]
            mirror: (0, watch::Sender::new(None)),
        }
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
    /// Keeps the index of all events within its bound.
    fn evict_total(&mut self) {
        while self.order.len() > TOTAL_EVENTS && self.evict_oldest() {}
    }

    /// Drops the oldest event of any path (or a stale index entry); false when there is none.
    fn evict_oldest(&mut self) -> bool {
        let Some((seq, path)) = self.order.pop_front() else { return false };
        if let Some(entry) = self.paths.get_mut(path.as_str()) {
            // The path may have evicted this event already; then the entry is only stale.
            if entry.events.front().is_some_and(|event| event.seq == seq) {
                entry.pop(&mut self.bytes);
            }
            if entry.is_unused() {
                self.paths.remove(path.as_str());
            }
        }
        true
    }
}

/// A collected body and the budget held for it.
pub(crate) struct Collected {
    /// The exact bytes.
    body: Bytes,
    /// The budget held for them (their allocation).
    charge: Charge,
}

/// A POST body being collected for publishing, within the budget and its address's share of it.
///
/// Budget is taken as bytes arrive, never for a declared length that may not come.
pub(crate) struct Collector<'a> {
    /// The hub whose budget it draws on.
    hub: &'a Hub,
    /// The bytes so far; `None` once collecting was given up (the body is then not published).
    body: Option<Vec<u8>>,
    /// The budget held for the body's allocation.
    charge: Option<Charge>,
    /// The most the body can grow to.
    limit: usize,
    /// The address whose share holds the bytes.
    peer: Option<IpAddr>,
    /// Bytes counted in that share.
    shared: usize,
}

impl Collector<'_> {
    /// Appends a frame of the body, unless collecting has been given up.
    pub(crate) fn push(&mut self, data: &[u8]) {
        let Some(len) = self.body.as_ref().map(Vec::len) else { return };
        let held = self.charge.as_ref().map_or(0, Charge::bytes);
        let needed = len + data.len();
        // Double as a `Vec` would, but never past what the body can be, and count the whole allocation.
        if needed > held && !self.hold(held.saturating_mul(2).min(self.limit).max(needed) - held) {
            // Out of budget: give the memory back; the delivery reaches hookfwd by its API poll.
            self.body = None;
            self.charge = None;
            tracing::warn!("too many bodies being collected at once; this delivery is not streamed");
            return;
        }
        let held = self.charge.as_ref().map_or(0, Charge::bytes);
        if let Some(body) = &mut self.body {
            body.reserve_exact(held - len);
            body.extend_from_slice(data);
        }
    }

    /// Takes `more` bytes of budget, within the address's share.
    fn hold(&mut self, more: usize) -> bool {
        let hub = self.hub;
        let mut shares = self.peer.map(|_| hub.shares.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        let share = match (&mut shares, self.peer) {
            (Some(shares), Some(peer)) => Some(shares.entry(peer).or_insert(0)),
            _ => None,
        };
        if share.as_ref().is_some_and(|share| **share + more > hub.share) {
            return false;
        }
        let Some(taken) = hub.take(more) else { return false };
        match &mut self.charge {
            Some(charge) => charge.merge(taken),
            None => self.charge = Some(taken),
        }
        if let Some(share) = share {
            *share += more;
            self.shared += more;
        }
        true
    }

    /// The whole body, unless collecting was given up.
    pub(crate) fn finish(mut self) -> Option<Collected> {
        let body = self.body.take()?;
        let charge = self.charge.take().unwrap_or_else(|| self.hub.budget.force(0));
        Some(Collected { body: Bytes::from(body), charge })
    }
}

impl Drop for Collector<'_> {
    fn drop(&mut self) {
        let Some(peer) = self.peer.filter(|_| self.shared > 0) else { return };
        let mut shares = self.hub.shares.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(share) = shares.get_mut(&peer) {
            *share -= self.shared;
            if *share == 0 {
                shares.remove(&peer);
            }
        }
    }
}

/// One open stream; leaving its path's entry when dropped.
struct Subscription {
    /// The hub it belongs to.
    hub: Arc<Hub>,
    /// The path it follows.
    path: Key,
    /// The seq of the last event sent, or the point it started from.
    cursor: Seq,
    /// Changes when its path gets a new event.
    newest: watch::Receiver<Seq>,
    /// Its slot among `--max-subscribers`.
    _permit: OwnedSemaphorePermit,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        if let Some(entry) = state.paths.get_mut(self.path.as_str()) {
            entry.subscribers -= 1;
            if entry.is_unused() {
                state.paths.remove(self.path.as_str());
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
fn buffered(hub: &Hub, path: &str) -> Vec<Seq> {
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
            redis: None,
        };
        Arc::new(Hub::new(config, watch::channel(false).1))
    }

    /// Collects and publishes a body of `size` bytes as a POST would, from `peer`.
    fn post(hub: &Hub, path: &str, size: usize, peer: Option<IpAddr>) -> bool {
        let mut collector = hub.collector(size as u64, peer);
        collector.push(&vec![b'x'; size]);
        let Some(body) = collector.finish() else { return false };
        hub.publish(path, &HeaderMap::new(), body);
        true
    }

    fn publish(hub: &Hub, path: &str, size: usize) {
        assert!(post(hub, path, size, None), "not collected");
    }

    /// What one event of `body` bytes with no headers costs: "{}" and a 27-byte timestamp besides.
    const fn event_cost(body: usize) -> usize {
        body + 2 + 27 + EVENT_OVERHEAD
    }

    #[test]
    fn the_total_bound_evicts_the_oldest_event_of_any_path() {
        // Two path names and three events fit; a fourth event evicts the oldest.
        let hub = hub(100, 1 << 20, 2 * path_cost("/a") + 3 * event_cost(1000) + 100);
        publish(&hub, "/a", 1000);
        publish(&hub, "/b", 1000);
        publish(&hub, "/a", 1000);
        publish(&hub, "/b", 1000);
        assert_eq!(buffered(&hub, "/a"), vec![3]);
        assert_eq!(buffered(&hub, "/b"), vec![2, 4]);
        assert_eq!(hub.budget.used(), 2 * path_cost("/a") + 3 * event_cost(1000));
    }

    #[test]
    fn every_byte_counted_is_given_back_when_the_buffers_empty() {
        let hub = hub(100, 1 << 20, 1 << 20);
        for i in 0..200 {
            publish(&hub, &format!("/path-{}", i % 50), 100 + i);
        }
        assert!(hub.budget.used() > 50 * path_cost("/path-00"));
        while hub.lock().evict_oldest() {}
        assert!(hub.lock().paths.is_empty());
        assert_eq!(hub.budget.used(), 0);
    }

    #[test]
    fn a_body_being_collected_is_counted_as_it_arrives_and_evicts_old_events_for_room() {
        let total = path_cost("/a") + 2 * event_cost(10_000);
        let hub = hub(100, 1 << 20, total);
        publish(&hub, "/a", 10_000);
        publish(&hub, "/a", 10_000);
        // A body declaring more than the whole budget takes nothing until its bytes come.
        let mut collector = hub.collector(1 << 30, None);
        assert_eq!(hub.budget.used(), total);
        collector.push(&[b'x'; 100]);
        assert_eq!(buffered(&hub, "/a"), vec![2], "the oldest event did not make room");
        collector.push(&vec![b'x'; 15_000]);
        assert!(buffered(&hub, "/a").is_empty());
        // Past all the budget there is: given up, and its bytes given back (the empty path's name went with its events).
        collector.push(&vec![b'x'; total]);
        assert!(collector.finish().is_none());
        assert_eq!(hub.budget.used(), 0);
    }

    #[test]
    fn one_address_collects_at_most_half_the_budget() {
        let hub = hub(100, 1 << 20, 100_000);
        let (one, other) = (Some(IpAddr::from([192, 0, 2, 1])), Some(IpAddr::from([192, 0, 2, 2])));
        let mut first = hub.collector(40_000, one);
        first.push(&[b'x'; 40_000]);
        assert!(!post(&hub, "/a", 20_000, one), "one address collected past half the budget");
        assert!(post(&hub, "/a", 20_000, other));
        // Published bodies leave the share: only bodies still arriving count.
        assert!(first.finish().is_some());
        assert!(post(&hub, "/a", 20_000, one));
    }

    #[test]
    fn an_evicted_event_is_freed_at_once_and_frames_are_counted_until_written() {
        let hub = hub(100, 1 << 20, 1 << 20);
        publish(&hub, "/a", 100_000);
        let event = hub.event("/a", 1).expect("buffered");
        let frame = hub.frame("x".repeat(1000)).unwrap();
        drop(event);
        while hub.lock().evict_oldest() {}
        assert!(hub.event("/a", 1).is_none());
        assert_eq!(hub.budget.used(), 1000);
        drop(frame);
        assert_eq!(hub.budget.used(), 0);
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
