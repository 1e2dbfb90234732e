//! `--redis`: blackhole instances behind one URL share one Redis Stream per hook path.
//!
//! A POST is appended with one Lua script (`APPEND`) that trims the stream to the same bounds as the
//! memory buffer: `--stream-buffer-count`, `--stream-buffer-age` and `--stream-buffer-bytes`. Redis
//! trims streams by count (`MAXLEN`) or id (`MINID`) but knows no entry's size, so the script keeps a
//! list of `ID SIZE` per stream and a byte total, and drops the oldest entries until all three bounds
//! hold: the byte bound is as exact as in memory, with no per-entry cap that would refuse a large body.
//!
//! Each path's keys share one Cluster hash slot (`blackhole:{PATH}:…`), every key is passed in `KEYS`,
//! and the scripts are loaded once (`EVALSHA`, reloaded by the client after a Redis restart):
//! - `blackhole:{PATH}:stream`, the entries: `r` received_at, `h` headers, `b` body, `p` the id of the
//!   entry appended before it on this path, so a reader sees at once when it missed one;
//! - `blackhole:{PATH}:index`, a list of `ID SIZE`, oldest first, for trimming by bytes;
//! - `blackhole:{PATH}:meta`, a hash: `last` (id), `bytes` (total), `boot` (named by `hello`: the
//!   same on every instance while the stream lives).
//!
//! The stream and index expire with the buffer age after the last POST, the meta after a day.
//!
//! Subscribers are served from the hub's buffer as without Redis: one reader task per path with
//! subscribers on this instance (whatever their number) loads the stream, then follows it with a
//! blocking `XREAD` on its own connection, and puts each entry in the buffer. While an instance cannot
//! append, its POSTs get 503 (GitHub records a failed delivery, which hookfwd fetches from the API), it
//! says so once, and the next POST that can be appended says it is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, RedisError, Script, Value};
use tokio::sync::{OnceCell, OwnedSemaphorePermit};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Collected, Event, Hub, Key, Path, Seq, StreamConfig, Subscription};
use crate::RedisUrl;

/// Appends one entry and trims the stream. KEYS: stream, index, meta. ARGV: count, bytes, age (ms),
/// boot, meta lifetime (ms), received_at, headers, body. Returns the entry's id.
const APPEND: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local stream, index, meta = KEYS[1], KEYS[2], KEYS[3]
local count, max_bytes, age = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local size = #ARGV[6] + #ARGV[7] + #ARGV[8]
if redis.call('EXISTS', stream) == 0 then
  redis.call('DEL', index)
  redis.call('HSET', meta, 'bytes', 0)
end
redis.call('HSETNX', meta, 'boot', ARGV[4])
local prev = redis.call('HGET', meta, 'last') or ''
local id = redis.call('XADD', stream, '*', 'r', ARGV[6], 'h', ARGV[7], 'b', ARGV[8], 'p', prev)
redis.call('RPUSH', index, id .. ' ' .. size)
redis.call('HSET', meta, 'last', id)
local bytes = redis.call('HINCRBY', meta, 'bytes', size)
local now = redis.call('TIME')
local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - age
local len = redis.call('XLEN', stream)
while len > 0 do
  local head = redis.call('LINDEX', index, 0)
  if not head then break end
  local first, first_size = string.match(head, '^(%S+) (%d+)$')
  local ms = tonumber(string.match(first, '^(%d+)'))
  if len <= count and bytes <= max_bytes and ms >= oldest then break end
  redis.call('LPOP', index)
  redis.call('XDEL', stream, first)
  bytes = redis.call('HINCRBY', meta, 'bytes', -tonumber(first_size))
  len = len - 1
end
redis.call('PEXPIRE', stream, age)
redis.call('PEXPIRE', index, age)
redis.call('PEXPIRE', meta, ARGV[5])
return id
";

/// Opens a path's stream for reading. KEYS: meta. ARGV: boot, meta lifetime (ms). Returns `last`, `boot`.
const OPEN: &str = r"
redis.call('HSETNX', KEYS[1], 'boot', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('HMGET', KEYS[1], 'last', 'boot')
";

/// How long the meta hash outlives the last POST or subscription, at least (and at least twice the
/// buffer age, so that it outlives its stream): long enough that a stream that went quiet and expired
/// comes back with the same `boot` and no false gap.
const META_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long one command may take (a blocking read: this beyond its block) before it counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a reader's `XREAD` blocks; also how soon a reader whose last subscriber left stops.
const BLOCK: Duration = Duration::from_secs(2);

/// Most entries one read takes.
const READ_COUNT: usize = 64;

/// How long a subscription waits for its path's stream to be loaded before it is answered 503.
const LOAD_WAIT: Duration = Duration::from_secs(3);

/// How long a subscription resuming from an id this instance has not read yet waits for it.
const CATCH_UP_WAIT: Duration = Duration::from_secs(1);

/// First and last pause before a reader tries Redis again.
const RETRY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));

/// The Redis every instance appends to, and what this instance needs to use it.
pub(crate) struct Shared {
    /// The client, for the readers' own connections.
    client: redis::Client,
    /// The URL without its password, for logs.
    url: RedisUrl,
    /// The connection appends go through, made at the first POST and reconnecting by itself.
    appender: OnceCell<ConnectionManager>,
    /// `APPEND`, loaded once.
    append: Script,
    /// `OPEN`, loaded once.
    open: Script,
    /// This instance's boot: the `boot` of a stream it starts.
    boot: String,
    /// The bounds every stream is trimmed to: count, bytes, age in ms.
    bounds: (usize, usize, u128),
    /// How long a meta hash lives, in ms (see [`META_LIFETIME`]).
    meta_lifetime: u128,
    /// Whether the last append failed, so that an outage is logged once.
    down: AtomicBool,
    /// The last reader generation handed out.
    readers: AtomicU64,
}

impl Shared {
    /// Everything but connections: those are made when first needed, so that an instance starts
    /// (and answers 503) while Redis is down.
    pub(crate) fn new(url: &RedisUrl, boot: &str, config: &StreamConfig) -> Shared {
        Shared {
            // Checked when the URL was parsed.
            client: redis::Client::open(url.expose()).expect("a --redis URL the client accepted"),
            url: url.clone(),
            appender: OnceCell::new(),
            append: Script::new(APPEND),
            open: Script::new(OPEN),
            boot: boot.to_string(),
            bounds: (config.buffer_count, config.buffer_bytes, config.buffer_age.as_millis().max(1)),
            meta_lifetime: META_LIFETIME.max(config.buffer_age * 2).as_millis(),
            down: AtomicBool::new(false),
            readers: AtomicU64::new(0),
        }
    }

    /// Appends a delivery to its path's stream; false when Redis cannot take it (the POST gets 503).
    pub(crate) async fn append(&self, path: &str, received_at: String, headers: String, body: Collected) -> bool {
        let appended = async {
            let mut connection = self.appender().await?;
            let (count, bytes, age) = self.bounds;
            let [stream, index, meta] = keys(path);
            let mut invocation = self.append.key(stream);
            invocation.key(index).key(meta).arg(count).arg(bytes).arg(age.to_string());
            invocation.arg(&self.boot).arg(self.meta_lifetime.to_string());
            invocation.arg(received_at).arg(headers).arg(body.body.as_ref());
            invocation.invoke_async::<String>(&mut connection).await
        };
        match appended.await {
            Ok(_) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    info!(redis = %self.url, "Redis takes deliveries again; POSTs are answered 200");
                }
                true
            }
            Err(error) => {
                if !self.down.swap(true, Ordering::Relaxed) {
                    warn!(redis = %self.url, %error, "cannot append to Redis; answering POSTs 503 until it is back");
                }
                false
            }
        }
    }

    /// The appends' connection, made now if it is not yet.
    async fn appender(&self) -> Result<ConnectionManager, RedisError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(RETRY.1);
        let manager = self.appender.get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config));
        manager.await.cloned()
    }
}

/// A path's keys, in one hash slot: stream, index, meta. A path holding `}` still gives its three
/// keys one tag (all start alike) and no other path's keys (the suffixes differ).
fn keys(path: &str) -> [String; 3] {
    ["stream", "index", "meta"].map(|kind| format!("blackhole:{{{path}}}:{kind}"))
}

/// A stream entry id `MS-N` as a [`Seq`].
fn parse_id(id: &str) -> Option<Seq> {
    let (ms, n) = id.trim().split_once('-')?;
    Some(Seq::from(ms.parse::<u64>().ok()?) << 64 | Seq::from(n.parse::<u64>().ok()?))
}

/// A [`Seq`] as the stream entry id it came from.
pub(super) fn entry_id(seq: Seq) -> String {
    format!("{}-{}", seq >> 64, seq as u64)
}

/// One stream entry as read.
struct Entry {
    /// Its id, as Redis wrote it.
    id: String,
    /// The same, as a number.
    seq: Seq,
    /// The id of the entry before it on this path; empty for the first of a new stream.
    prev: String,
    /// The delivery.
    received_at: String,
    headers: String,
    body: Vec<u8>,
}

impl Entry {
    /// The seq up to which a reader that had not seen `prev` missed entries.
    fn missed_upto(&self) -> Seq {
        parse_id(&self.prev).unwrap_or(self.seq - 1)
    }
}

/// The entries of an `XRANGE` reply.
fn range_entries(value: Value) -> Vec<Entry> {
    let Value::Array(list) = value else { return Vec::new() };
    list.into_iter().filter_map(entry).collect()
}

/// The entries of an `XREAD` reply on one key: nil when the block timed out, else `[[key, entries]]`
/// (a map from key to entries in RESP3).
fn read_entries(value: Value) -> Vec<Entry> {
    let entries = match value {
        Value::Array(mut keys) if !keys.is_empty() => match keys.swap_remove(0) {
            Value::Array(mut pair) => pair.pop(),
            _ => None,
        },
        Value::Map(mut keys) if !keys.is_empty() => Some(keys.swap_remove(0).1),
        _ => None,
    };
    entries.map(range_entries).unwrap_or_default()
}

fn entry(value: Value) -> Option<Entry> {
    let Value::Array(mut parts) = value else { return None };
    let fields = parts.pop()?;
    let id = text(parts.pop()?)?;
    let seq = parse_id(&id)?;
    let mut entry =
        Entry { id, seq, prev: String::new(), received_at: String::new(), headers: String::new(), body: Vec::new() };
    let Value::Array(fields) = fields else { return None };
    let mut fields = fields.into_iter();
    while let (Some(name), Some(Value::BulkString(value))) = (fields.next(), fields.next()) {
        match text(name)?.as_str() {
            "r" => entry.received_at = String::from_utf8(value).ok()?,
            "h" => entry.headers = String::from_utf8(value).ok()?,
            "b" => entry.body = value,
            "p" => entry.prev = String::from_utf8(value).ok()?,
            _ => {}
        }
    }
    Some(entry)
}

fn text(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(text) => Some(text),
        _ => None,
    }
}

/// Where a reader is in its path's stream.
struct Reader {
    /// The hub it fills.
    hub: Arc<Hub>,
    /// The Redis it reads.
    shared: Arc<Shared>,
    /// The path it follows.
    path: Key,
    /// Its generation: it stops when its path names another (or none).
    generation: u64,
    /// Its own connection, for blocking reads.
    connection: Option<MultiplexedConnection>,
    /// The id of the newest entry put in the buffer ("" for none); `None` until the stream is loaded.
    last: Option<String>,
}

impl Reader {
    /// Follows the stream until the path has no subscriber here or the server stops, trying Redis
    /// again while it is down.
    async fn run(mut self) {
        let mut shutdown = self.hub.shutdown.clone();
        let mut retry = RETRY.0;
        while self.hub.keep_reading(&self.path, self.generation) {
            let step = tokio::select! {
                step = self.step() => step,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            match step {
                Ok(()) => retry = RETRY.0,
                Err(error) => {
                    debug!(path = self.path.as_str(), %error, "cannot read the shared stream; trying again");
                    self.connection = None;
                    tokio::select! {
                        () = tokio::time::sleep(retry) => {}
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                    retry = (retry * 2).min(RETRY.1);
                }
            }
        }
    }

    /// Loads the stream, or reads what came after the last entry, and puts it in the buffer.
    async fn step(&mut self) -> Result<(), RedisError> {
        let shared = &self.shared;
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(RESPONSE_TIMEOUT))
                    .set_response_timeout(Some(BLOCK + RESPONSE_TIMEOUT));
                let connection = shared.client.get_multiplexed_async_connection_with_config(&config).await?;
                self.connection.insert(connection)
            }
        };
        let [stream, _, meta] = keys(self.path.as_str());
        match &self.last {
            None => {
                // `last` before the entries: an entry appended in between is read next, not missed.
                let mut open = shared.open.key(meta);
                open.arg(&shared.boot).arg(shared.meta_lifetime.to_string());
                let (last, boot): (Option<String>, Option<String>) = open.invoke_async(connection).await?;
                let all = redis::cmd("XRANGE").arg(&stream).arg("-").arg("+").query_async(connection).await?;
                let boot = boot.unwrap_or_else(|| shared.boot.clone());
                self.last =
                    Some(self.hub.load(&self.path, self.generation, &boot, last.as_deref(), range_entries(all)));
            }
            Some(last) => {
                let after = if last.is_empty() { "0-0" } else { last };
                let mut read = redis::cmd("XREAD");
                read.arg("COUNT").arg(READ_COUNT).arg("BLOCK").arg(BLOCK.as_millis() as u64);
                let read = read.arg("STREAMS").arg(&stream).arg(after).query_async(connection).await?;
                let last = self.last.take().unwrap_or_default();
                self.last = Some(self.hub.mirror(&self.path, self.generation, last, read_entries(read)));
            }
        }
        Ok(())
    }
}

impl Hub {
    /// [`Hub::subscribe`] on a shared stream: starts this path's reader if it has none, waits until it
    /// has loaded the stream (`None` if it cannot in time: Redis is down), and then until it has read
    /// `last_event_id` if that was appended through another instance a moment ago.
    pub(super) async fn subscribe_shared(
        self: &Arc<Self>,
        path: &str,
        last_event_id: Option<&str>,
        permit: OwnedSemaphorePermit,
    ) -> Option<(Subscription, bool, String)> {
        let shared = self.shared.clone()?;
        let (mut subscription, mut loaded) = {
            let mut guard = self.lock();
            let state = &mut *guard;
            let name = match state.paths.get_key_value(path) {
                Some((name, _)) => name.clone(),
                // Forced: `--max-subscribers` and `MAX_PATH` bound what streams' names can take.
                None => Key::new(path, self.budget.force(super::path_cost(path))),
            };
            let entry = state.paths.entry(name.clone()).or_insert_with(|| Path::new(0));
            entry.subscribers += 1;
            if entry.mirror.0 == 0 {
                let generation = shared.readers.fetch_add(1, Ordering::Relaxed) + 1;
                entry.mirror = (generation, tokio::sync::watch::Sender::new(None));
                let reader = Reader {
                    hub: self.clone(),
                    shared: shared.clone(),
                    path: name.clone(),
                    generation,
                    connection: None,
                    last: None,
                };
                tokio::spawn(reader.run());
            }
            let subscription = Subscription {
                hub: self.clone(),
                path: name,
                cursor: 0,
                newest: entry.newest.subscribe(),
                _permit: permit,
            };
            (subscription, entry.mirror.1.subscribe())
        };
        let boot = tokio::time::timeout(LOAD_WAIT, loaded.wait_for(Option::is_some)).await.ok()?.ok()?.clone()?;
        let wanted = last_event_id.and_then(parse_id);
        if let Some(wanted) = wanted {
            let newest = &mut subscription.newest;
            let _ = tokio::time::timeout(CATCH_UP_WAIT, newest.wait_for(|newest| *newest >= wanted)).await;
        }
        let mut state = self.lock();
        let entry = state.paths.get_mut(path)?;
        let latest = *entry.newest.borrow();
        let resumed = wanted.filter(|seq| *seq <= latest && *seq >= entry.evicted_upto);
        subscription.cursor = resumed.unwrap_or(latest);
        Some((subscription, resumed.is_some(), boot.to_string()))
    }

    /// Whether the reader `generation` of `path` goes on: the path still has subscribers here and this
    /// reader. When they have all gone, the path's mirror is dropped with its reader.
    fn keep_reading(&self, path: &Key, generation: u64) -> bool {
        let mut state = self.lock();
        let Some(entry) = state.paths.get_mut(path.as_str()) else { return false };
        if entry.mirror.0 != generation {
            return false;
        }
        if entry.subscribers > 0 {
            return true;
        }
        state.paths.remove(path.as_str());
        false
    }

    /// Puts a freshly loaded stream in the buffer (anything before its first entry counts as missed)
    /// and tells the waiting subscribers its `boot`; returns the id to read after.
    fn load(&self, path: &Key, generation: u64, boot: &str, last: Option<&str>, entries: Vec<Entry>) -> String {
        let newest = entries.last().map(|entry| entry.id.clone()).or(last.map(str::to_string)).unwrap_or_default();
        let mut state = self.lock();
        let Some(entry) = state.paths.get_mut(path.as_str()).filter(|entry| entry.mirror.0 == generation) else {
            return newest;
        };
        let latest = parse_id(&newest).unwrap_or(0);
        entry.evicted_upto = entries.first().map_or(latest, Entry::missed_upto);
        entry.newest.send_replace(latest);
        let previous = entries.first().map(|entry| entry.prev.clone()).unwrap_or_default();
        let last = self.put(&mut state, path, previous, entries);
        if let Some(entry) = state.paths.get_mut(path.as_str()) {
            entry.mirror.1.send_replace(Some(boot.into()));
        }
        last
    }

    /// Puts entries read after `last` in the buffer; returns the id to read after.
    fn mirror(&self, path: &Key, generation: u64, last: String, entries: Vec<Entry>) -> String {
        let mut state = self.lock();
        if state.paths.get(path.as_str()).is_none_or(|entry| entry.mirror.0 != generation) {
            return last;
        }
        self.put(&mut state, path, last, entries)
    }

    /// Puts entries in the path's buffer in order; an entry whose predecessor is not `last` marks
    /// everything before it as missed, so that a subscriber there gets `gap`. Returns the newest id.
    fn put(&self, state: &mut super::State, path: &Key, mut last: String, entries: Vec<Entry>) -> String {
        let now = (Instant::now(), SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis());
        for entry in entries {
            let missed = (entry.prev != last).then(|| entry.missed_upto());
            let seq = entry.seq;
            // Its age counts from when it was appended, on whichever instance.
            let age = Duration::from_millis(now.1.saturating_sub(seq >> 64).try_into().unwrap_or(u64::MAX));
            let at = now.0.checked_sub(age).unwrap_or(now.0);
            let Entry { id, received_at, headers, body, .. } = entry;
            let charge = self.make_room(state, body.len());
            let event = charge.map(|charge| Event { seq, at, received_at, headers, body: Bytes::from(body), charge });
            let inserted = event.is_some_and(|event| self.insert(state, path.as_str(), event));
            if let Some(path) = state.paths.get_mut(path.as_str()) {
                let evicted = missed.into_iter().chain((!inserted).then_some(seq)).max();
                path.evicted_upto = path.evicted_upto.max(evicted.unwrap_or(0));
                if !inserted {
                    path.newest.send_replace(seq);
                }
            }
            last = id;
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_round_trip_and_order_as_redis_orders_them() {
        let seq = parse_id("1765049000123-7").unwrap();
        assert_eq!(entry_id(seq), "1765049000123-7");
        assert!(parse_id("1765049000123-8").unwrap() > seq);
        assert!(parse_id("1765049000124-0").unwrap() > seq);
        assert!(parse_id("5f3a9c1e-41").is_none());
        assert!(parse_id("").is_none());
    }

    #[test]
    fn a_paths_keys_share_one_hash_tag() {
        assert_eq!(
            keys("/alice"),
            ["blackhole:{/alice}:stream", "blackhole:{/alice}:index", "blackhole:{/alice}:meta"]
        );
    }
}
