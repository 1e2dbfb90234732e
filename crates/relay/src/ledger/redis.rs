//! The ledger in Redis (or Valkey), shared by replicas on different machines: the invariant of
//! the [module](super) kept with atomic Lua scripts, plus claims, so that each delivery is fetched
//! and forwarded by one replica at a time.
//!
//! Keys, per GitHub instance and hook (as the file ledger's directory and file name are), all with
//! one hash tag, so that in a Redis Cluster a hook's keys live in one slot; every script gets them
//! all in `KEYS` and builds no key name:
//!
//! ```text
//! hookfwd:{instance:hook key}:origin    string, unix µs
//! hookfwd:{instance:hook key}:floor     string, unix µs
//! hookfwd:{instance:hook key}:checked   string, unix µs (the last successful poll)
//! hookfwd:{instance:hook key}:newest    string, unix µs (the newest done delivery, as trusted)
//! hookfwd:{instance:hook key}:done      sorted set: delivery id, scored by delivered_at (µs)
//! hookfwd:{instance:hook key}:claimed   sorted set: claims not settled, scored by the time they hold the floor at
//! hookfwd:{instance:hook key}:owners    hash: claim → the replica holding it
//! hookfwd:{instance:hook key}:leases    sorted set: claim → when its lease ends (Redis's clock, ms)
//! hookfwd:{instance:hook key}:underway  hash: claim → its guid (an attempt under way)
//! hookfwd:{instance:hook key}:events    sorted set: stream event ids some replica took, scored by received_at
//! hookfwd:{instance:hook key}:guids     hash: guid → "api pushed pending" (attempts handled on each path, and claimed and not settled)
//! hookfwd:{instance:hook key}:bodies    hash: body key → guid (the same bytes under another guid are a relabelled copy)
//! hookfwd:{instance:hook key}:aged      sorted set: `g:`guid and `b:`body key, scored by their newest time, to forget them with the floor
//! ```
//!
//! A claim is `d:<delivery id>` (a listed delivery) or `e:<stream event id>` (a pushed POST).
//!
//! Times are microseconds: Lua numbers are doubles, exact to 2^53, which nanoseconds overflow.
//!
//! Anything can write to Redis, so every script first checks what it reads ([`PRELUDE`]), as
//! [`super::FileLedger::open`] checks its file: a key holding another type of value is reset, a time
//! further ahead than the clock allows is moved back, the floor is kept at or above the origin, and
//! a claim that never expires is given a lease. Each fix is one [`Warning`], naming the key.

use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use github::HookRef;
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{SKEW, WINDOW, trusted};
use crate::warning::LedgerFix;
use crate::{Error, Warning};

/// How long a claim lives unless renewed: a dead replica's deliveries wait this long at most.
/// 30 s; see [`claim_ttl`].
pub static CLAIM_TTL: LazyLock<Duration> = LazyLock::new(claim_ttl);

/// 30 s, or the milliseconds in `HOOKFWD_TEST_CLAIM_TTL_MS` (hidden, for tests): a test of a replica killed
/// while it held claims then waits seconds for another to take them over, not half a minute.
fn claim_ttl() -> Duration {
    let asked = std::env::var("HOOKFWD_TEST_CLAIM_TTL_MS").ok().and_then(|ms| ms.parse().ok());
    asked.map_or(Duration::from_secs(30), Duration::from_millis)
}
/// How long to keep trying to reach the ledger when starting.
pub const CONNECT_FOR: Duration = Duration::from_secs(10);
/// How long one Redis command may take before it counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a shared ledger lives: a `redis://` (or `valkey://`, `rediss://`) URL, checked.
///
/// Its `Display` hides the password.
#[derive(Clone)]
pub struct Location {
    /// The URL as given, password included, for connecting.
    url: String,
    /// The URL with the password replaced by `***`, for every message.
    shown: String,
}

impl Location {
    /// Checks a ledger URL: a Redis scheme, a host, and a database number if a path is given.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |shown: String, reason: &str| Error::LedgerUrl { url: shown, reason: reason.to_string() };
        let Ok(parsed) = url::Url::parse(text) else {
            return Err(bad(redact_unparsed(text), "it is not a URL; give redis://HOST:PORT/DB"));
        };
        let mut shown = parsed.clone();
        if parsed.password().is_some() {
            // Setting a password on a URL that has one cannot fail.
            let _ = shown.set_password(Some("***"));
        }
        // Without a host (`redis:/user:pass@host`) the credentials are in the path, where the URL keeps them.
        let shown = if parsed.has_host() { shown.to_string() } else { redact_unparsed(text) };
        if !matches!(parsed.scheme(), "redis" | "rediss" | "valkey" | "valkeys") {
            return Err(bad(shown, "only redis:// (or rediss://, valkey://) ledgers are supported"));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(bad(shown, "it names no host; give redis://HOST:PORT/DB"));
        }
        let db = parsed.path().trim_start_matches('/');
        if !db.is_empty() && db.parse::<u32>().is_err() {
            return Err(bad(shown, "the database after the host must be a number, such as /0"));
        }
        if redis::Client::open(text).is_err() {
            return Err(bad(shown, "the Redis client does not accept it"));
        }
        Ok(Self { url: text.to_string(), shown })
    }

    /// Connects, trying again for up to `within` while the server cannot be reached; fails with
    /// [`Error::LedgerUnreachable`].
    pub async fn connect(&self, within: Duration) -> Result<Connection, Error> {
        let unreachable = |source: redis::RedisError| Error::LedgerUnreachable { url: self.shown.clone(), source };
        let client = redis::Client::open(self.url.as_str()).map_err(unreachable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_max_delay(Duration::from_secs(2));
        let deadline = tokio::time::Instant::now() + within;
        let mut backoff = github::Backoff::default();
        loop {
            let attempt = async {
                let mut manager = ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
                redis::cmd("PING").query_async::<String>(&mut manager).await?;
                Ok::<_, redis::RedisError>(manager)
            };
            // The client retries a first connection by itself too: the deadline bounds it all.
            let error = match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(manager)) => return Ok(Connection { manager, shown: self.shown.clone() }),
                Ok(Err(error)) => error,
                Err(_) => {
                    let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time");
                    return Err(unreachable(timed_out.into()));
                }
            };
            let wait = backoff.next_wait();
            if tokio::time::Instant::now() + wait > deadline {
                return Err(unreachable(error));
            }
            tokio::time::sleep(wait).await;
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({})", self.shown)
    }
}

/// A text that is not a URL, for a message: everything before the last `@` could be a password
/// (`redis//user:pass@host` too), so only what looks like a scheme and its slashes is kept of it.
fn redact_unparsed(text: &str) -> String {
    let Some(at) = text.rfind('@') else { return text.to_string() };
    let scheme = text.find(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c))).unwrap_or(text.len());
    let slashes = text[scheme..].find(|c: char| !":/".contains(c)).map_or(text.len(), |n| scheme + n);
    let keep = if slashes > scheme && slashes <= at { slashes } else { 0 };
    format!("{}***{}", &text[..keep], &text[at..])
}

/// A connection to the shared ledger, reconnecting by itself; cheap to clone.
#[derive(Clone)]
pub struct Connection {
    /// Reconnects after a dropped connection.
    manager: ConnectionManager,
    /// The URL without its password.
    shown: String,
}

impl Connection {
    /// The ledger of `hook` on the GitHub instance `instance` (see [`super::instance`]), as the
    /// replica `replica` (unique per process) sees it.
    pub fn hook(&self, instance: &str, hook: &HookRef, replica: &str) -> SharedLedger {
        SharedLedger {
            manager: self.manager.clone(),
            prefix: format!("hookfwd:{{{instance}:{}}}:", hook.key()),
            replica: replica.to_string(),
            shown: self.shown.clone(),
            ttl: *CLAIM_TTL,
            fixed: Arc::default(),
        }
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The connection itself, for the GitHub budget replicas share ([`super::RedisPace`]).
    pub(super) fn manager(&self) -> ConnectionManager {
        self.manager.clone()
    }
}

/// What a hook's shared ledger says about where forwarding starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    /// Where forwarding started.
    pub origin: DateTime<Utc>,
    /// Every delivery before this has been handled.
    pub floor: DateTime<Utc>,
    /// The last successful poll by any replica.
    pub checked: DateTime<Utc>,
}

/// What a claim on one listed delivery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This replica holds it now: fetch and forward it.
    Claimed,
    /// Handled already (done, or below the floor).
    Done,
    /// Another replica holds it.
    Taken,
    /// Not tried: this replica claimed as many as it asked for.
    Untried,
}

/// One hook's ledger in Redis, as one replica sees it. Cheap to clone.
#[derive(Clone)]
pub struct SharedLedger {
    /// The connection.
    manager: ConnectionManager,
    /// `hookfwd:{instance:hook key}:`, the braces a Redis Cluster hash tag.
    prefix: String,
    /// This replica's name, the value of the claims it holds.
    replica: String,
    /// The URL without its password, for messages.
    shown: String,
    /// How long a claim lives unless renewed ([`CLAIM_TTL`]).
    ttl: Duration,
    /// What the scripts found at the keys and fixed, until [`SharedLedger::take_warnings`]; shared by clones.
    fixed: Arc<Mutex<Vec<Warning>>>,
}

/// Lua shared by every script: checks and fixes what it reads, so that nothing another program
/// left at our keys stops forwarding or hides deliveries. Every script gets the same keys
/// ([`KEYS`], in that order), so none builds a key name. `ledger(now, skew, window)` resets a key
/// holding another type of value, moves back a time further ahead than the clock allows (origin
/// and newest beyond the skew, the floor beyond the clock: no replica sets it past its own clock
/// less a window), and keeps the floor at or above the origin (a missing one is set again as
/// `advance` would have left it). It returns the floor, or nil if no replica started the hook.
/// Each fix is one entry of `notes`: {what, key, what was there, what it set}.
///
/// Claims are named `d:<delivery id>` (a listed delivery) or `e:<stream event id>` (a pushed
/// POST); `owners` says whose each is, `leases` until when (Redis's clock, ms), `claimed` holds the
/// floor below each, and `underway` names the guid of each. `guids` counts, per guid, the
/// attempts handled through the API and through the stream (as the file ledger's `d` and `p`
/// lines do), and those claimed and not settled on either path (`pending`, as the engine's own
/// count of what is queued or in flight).
const PRELUDE: &str = r"
local notes = {}
local function note(kind, key, found, set)
  notes[#notes + 1] = {kind, key, tostring(found), tostring(set)}
end
local function fmt(t) return string.format('%d', t) end
local function typed(key, want)
  local found = redis.call('TYPE', key)['ok']
  if found == 'none' or found == want then return found == want end
  redis.call('DEL', key)
  note('type', key, found, '')
  return false
end
local function time(key)
  if not typed(key, 'string') then return nil end
  local text = redis.call('GET', key)
  if string.match(text, '^%-?%d+$') then return tonumber(text), text end
  redis.call('DEL', key)
  note('type', key, 'text', '')
  return nil
end
local function clock_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function owner(c)
  return redis.call('HGET', KEYS[7], c)
end
local function counts(g)
  local v = redis.call('HGET', KEYS[10], g)
  if not v then return 0, 0, 0 end
  local a, p, n = string.match(v, '^(%d+) (%d+) (%d+)$')
  if not a then return 0, 0, 0 end
  return tonumber(a), tonumber(p), tonumber(n)
end
local function set_counts(g, a, p, n, t)
  if a + p + n == 0 then
    redis.call('HDEL', KEYS[10], g)
  else
    redis.call('HSET', KEYS[10], g, a .. ' ' .. p .. ' ' .. n)
  end
  if t then
    local old = redis.call('ZSCORE', KEYS[13], 'g:' .. g)
    if not old or tonumber(old) < t then redis.call('ZADD', KEYS[13], fmt(t), 'g:' .. g) end
  end
end
local function take(c, me, until_ms, hold)
  redis.call('HSET', KEYS[7], c, me)
  redis.call('ZADD', KEYS[8], until_ms, c)
  redis.call('ZADD', KEYS[5], fmt(hold), c)
end
local function hold(c, g, t)
  if g == '' or redis.call('HGET', KEYS[11], c) then return end
  redis.call('HSET', KEYS[11], c, g)
  local a, p, n = counts(g)
  set_counts(g, a, p, n + 1, t)
end
local function release(c)
  redis.call('HDEL', KEYS[7], c)
  redis.call('ZREM', KEYS[8], c)
  redis.call('ZREM', KEYS[5], c)
  local g = redis.call('HGET', KEYS[11], c)
  if g then
    redis.call('HDEL', KEYS[11], c)
    local a, p, n = counts(g)
    set_counts(g, a, p, math.max(n - 1, 0))
  end
end
local function sweep(now_ms, grace)
  for _, c in ipairs(redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', '(' .. fmt(now_ms - grace), 'LIMIT', 0, 64)) do
    release(c)
  end
  for _, c in ipairs(redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', '(' .. fmt(now_ms), 'LIMIT', 0, 64)) do
    if string.sub(c, 1, 2) == 'e:' then release(c) end
  end
  for _, c in ipairs(redis.call('ZRANGE', KEYS[5], 0, 7)) do
    if not owner(c) then redis.call('ZREM', KEYS[5], c) end
  end
end
local function ledger(now, skew, window)
  local origin, origin_text = time(KEYS[1])
  local floor, floor_text = time(KEYS[2])
  local newest, newest_text = time(KEYS[3])
  typed(KEYS[4], 'zset')
  typed(KEYS[5], 'zset')
  typed(KEYS[7], 'hash')
  typed(KEYS[8], 'zset')
  typed(KEYS[9], 'zset')
  typed(KEYS[10], 'hash')
  typed(KEYS[11], 'hash')
  typed(KEYS[12], 'hash')
  typed(KEYS[13], 'zset')
  local back = now - window - skew
  if newest and newest > now + skew then
    newest = now - skew
    note('future', KEYS[3], newest_text, fmt(newest))
    redis.call('SET', KEYS[3], fmt(newest))
  end
  local moved = false
  if floor and floor > now then
    floor = back
    moved = true
    note('future', KEYS[2], floor_text, fmt(floor))
  end
  if origin and origin > now + skew then
    origin = math.min(floor or back, back)
    note('future', KEYS[1], origin_text, fmt(origin))
    redis.call('SET', KEYS[1], fmt(origin))
  end
  if not origin then
    if not floor then return nil end
    origin = floor
    note('no-origin', KEYS[1], '', fmt(origin))
    redis.call('SET', KEYS[1], fmt(origin))
  end
  if not floor then
    floor = origin
    if newest then floor = math.max(origin, math.min(newest, now) - window) end
    local oldest = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
    if #oldest > 0 then floor = math.max(origin, math.min(floor, tonumber(oldest[2]))) end
    moved = true
    note('no-floor', KEYS[2], '', fmt(floor))
  elseif floor < origin then
    if not moved then note('below', KEYS[2], floor_text, fmt(origin)) end
    floor = origin
    moved = true
  end
  if moved then redis.call('SET', KEYS[2], fmt(floor)) end
  return floor
end
local function finish(id, t, trusted, g, body, floor)
  local new = false
  if t >= floor then new = redis.call('ZADD', KEYS[4], fmt(t), id) == 1 end
  if new and g ~= '' then
    local a, p, n = counts(g)
    set_counts(g, a + 1, p, n, t)
  end
  if body ~= '' and g ~= '' and t >= floor then
    redis.call('HSET', KEYS[12], body, g)
    redis.call('ZADD', KEYS[13], fmt(t), 'b:' .. body)
  end
  redis.call('SET', KEYS[3], fmt(math.max(time(KEYS[3]) or 0, trusted)))
end
local function advance(now, window, floor)
  local candidate = math.min(time(KEYS[3]) or 0, now) - window
  local oldest = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
  if #oldest > 0 then candidate = math.min(candidate, tonumber(oldest[2])) end
  if candidate <= floor then return floor end
  redis.call('SET', KEYS[2], fmt(candidate))
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. fmt(candidate))
  redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', '(' .. fmt(candidate))
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[13], '-inf', '(' .. fmt(candidate), 'LIMIT', 0, 512)) do
    local name = string.sub(m, 3)
    if string.sub(m, 1, 1) == 'b' then
      redis.call('HDEL', KEYS[12], name)
    else
      local a, p, n = counts(name)
      if n == 0 then redis.call('HDEL', KEYS[10], name) end
    end
    redis.call('ZREM', KEYS[13], m)
  end
  return candidate
end
";

/// The state in force: origin, floor and the last poll ('' if none), then the notes; ARGV now,
/// skew, window.
const STATE: &str = r"
local floor = ledger(tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
local checked = time(KEYS[6])
if not floor then return {'', '', '', notes} end
return {redis.call('GET', KEYS[1]), fmt(floor), checked and fmt(checked) or '', notes}
";

/// Initialises a hook's ledger unless another replica did: `origin` (ARGV[4]), `floor` = origin,
/// `checked` (ARGV[5]), and the deliveries that count as handled (pairs from ARGV[6]); then as
/// [`STATE`].
const CREATE: &str = r"
local floor = ledger(tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if not floor then
  redis.call('SET', KEYS[1], ARGV[4])
  redis.call('SET', KEYS[2], ARGV[4])
  redis.call('DEL', KEYS[3])
  redis.call('SET', KEYS[6], ARGV[5])
  for i = 6, #ARGV, 2 do
    redis.call('ZADD', KEYS[4], ARGV[i + 1], ARGV[i])
  end
  floor = tonumber(ARGV[4])
end
local checked = time(KEYS[6])
return {redis.call('GET', KEYS[1]), fmt(floor), checked and fmt(checked) or ARGV[5], notes}
";

/// Claims for this replica (ARGV[4]), for ARGV[5] ms, oldest first, up to `max` (ARGV[6]) listed
/// deliveries (id, delivered_at, trusted, guid from ARGV[8]) that are neither handled nor held by
/// another replica; returns per delivery 0 (done), 1 (claimed), 2 (taken) or 3 (not tried: `max`
/// reached), then the floor and the notes. A listed delivery whose guid the stream forwarded
/// more often than the API (`pushed > api`) is the stream's twin: done, with no GET; one whose
/// guid is at the handler through the stream now is taken. A claim whose lease ended is taken
/// over; one that never ends, or later than this replica's would, is no live replica's (they
/// renew theirs): it is given this replica's lease, so it ends as a dead replica's does. First,
/// claims whose owner is gone are released (ARGV[7], the grace) and the floor moves.
const CLAIM: &str = r"
local now, window = tonumber(ARGV[1]), tonumber(ARGV[3])
local floor = ledger(now, tonumber(ARGV[2]), window) or 0
local now_ms, ttl = clock_ms(), tonumber(ARGV[5])
sweep(now_ms, tonumber(ARGV[7]))
local left = tonumber(ARGV[6])
local out = {}
for i = 8, #ARGV, 4 do
  local id, t, g = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 3]
  local c = 'd:' .. id
  local a, p, n = counts(g)
  if t < floor or redis.call('ZSCORE', KEYS[4], id) then
    out[#out + 1] = '0'
  elseif g ~= '' and n - (redis.call('HGET', KEYS[11], c) and 1 or 0) > 0 then
    out[#out + 1] = '2'
  elseif g ~= '' and p > a then
    finish(id, t, tonumber(ARGV[i + 2]), g, '', floor)
    out[#out + 1] = '0'
  elseif left <= 0 then
    out[#out + 1] = '3'
  else
    local holder, lease = owner(c), redis.call('ZSCORE', KEYS[8], c)
    if not holder or holder == ARGV[4] or (lease and tonumber(lease) < now_ms) then
      take(c, ARGV[4], now_ms + ttl, t)
      hold(c, g, t)
      left = left - 1
      out[#out + 1] = '1'
    else
      if not lease or tonumber(lease) > now_ms + ttl then
        redis.call('ZADD', KEYS[8], now_ms + ttl, c)
        redis.call('ZADD', KEYS[5], fmt(t), c)
        note('claim', KEYS[7], lease and (tonumber(lease) - now_ms) or -1, id)
      end
      out[#out + 1] = '2'
    end
  end
end
if floor > 0 then floor = advance(now, window, floor) end
return {out, fmt(floor), notes}
";

/// Marks one delivery done (ARGV[5], delivered at ARGV[6], trusted as ARGV[7], its guid ARGV[8] and
/// body key ARGV[9], either ''), counts it as an API attempt of its guid the first time, releases
/// its claim if it is still this replica's (ARGV[4]), releases claims whose owner is gone (ARGV[10],
/// the grace), and moves the floor to a window before the newest done delivery, but never past a
/// claimed one. Returns whether the claim was still this replica's, the floor, and the notes.
const DONE: &str = r"
local now, window = tonumber(ARGV[1]), tonumber(ARGV[3])
local floor = ledger(now, tonumber(ARGV[2]), window)
local c = 'd:' .. ARGV[5]
local ours = owner(c) == ARGV[4]
if ours then release(c) else redis.call('ZREM', KEYS[5], c) end
if not floor then return {ours and 1 or 0, '0', notes} end
finish(ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8], ARGV[9], floor)
sweep(clock_ms(), tonumber(ARGV[10]))
floor = advance(now, window, floor)
return {ours and 1 or 0, fmt(floor), notes}
";

/// A pushed POST (stream event ARGV[7], guid ARGV[8], received at ARGV[9], body key ARGV[10] or '')
/// as this replica (ARGV[4]) got it: 'old' below the floor; 'copy' if some replica got that event
/// already; 'seen' if its guid was handled or is under way on either path, or its body came under
/// another guid (a repeat: GitHub's list decides); else 'first', claimed for ARGV[5] ms, holding
/// the floor ARGV[11] µs before it. Then the floor and the notes.
const PUSH: &str = r"
local floor = ledger(tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if not floor then return {'seen', '0', notes} end
local now_ms = clock_ms()
sweep(now_ms, tonumber(ARGV[6]))
local ev, g, at, body = ARGV[7], ARGV[8], tonumber(ARGV[9]), ARGV[10]
if at < floor then return {'old', fmt(floor), notes} end
if redis.call('ZSCORE', KEYS[9], ev) then return {'copy', fmt(floor), notes} end
redis.call('ZADD', KEYS[9], fmt(at), ev)
local a, p, n = counts(g)
local other = body ~= '' and redis.call('HGET', KEYS[12], body)
if a + p + n > 0 or (other and other ~= g) then return {'seen', fmt(floor), notes} end
local c = 'e:' .. ev
take(c, ARGV[4], now_ms + tonumber(ARGV[5]), at - tonumber(ARGV[11]))
hold(c, g, at)
if body ~= '' then
  redis.call('HSET', KEYS[12], body, g)
  redis.call('ZADD', KEYS[13], fmt(at), 'b:' .. body)
end
return {'first', fmt(floor), notes}
";

/// A pushed POST (stream event ARGV[5], guid ARGV[6], received at ARGV[7]) the handler answered
/// (or that can never be forwarded): counted as an attempt through the stream, its claim
/// released. Returns whether the claim was still this replica's (ARGV[4]), and the notes.
const PUSHED: &str = r"
local floor = ledger(tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])) or 0
local c = 'e:' .. ARGV[5]
local ours = owner(c) == ARGV[4]
if redis.call('HGET', KEYS[11], c) then release(c) end
local at = tonumber(ARGV[7])
if at >= floor then
  local a, p, n = counts(ARGV[6])
  set_counts(ARGV[6], a, p + 1, n, at)
end
return {ours and 1 or 0, notes}
";

/// Extends each claim (ARGV from 3) still this replica's (ARGV[1]) by ARGV[2] ms; 1 per claim
/// kept, 0 per claim lost.
const RENEW: &str = r"
local now_ms = clock_ms()
local out = {}
for i = 3, #ARGV do
  if owner(ARGV[i]) == ARGV[1] then
    redis.call('ZADD', KEYS[8], now_ms + tonumber(ARGV[2]), ARGV[i])
    out[#out + 1] = '1'
  else
    out[#out + 1] = '0'
  end
end
return out
";

/// Drops each claim (ARGV from 2) still this replica's (ARGV[1]), so that another replica takes
/// the delivery at once (a pushed one through the API: its bytes go with this replica).
const RELEASE: &str = r"
for i = 2, #ARGV do
  if owner(ARGV[i]) == ARGV[1] then release(ARGV[i]) end
end
return 0
";

/// One script, [`PRELUDE`] first.
fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// The keys every script gets, in this order (`KEYS[1]` is `origin`).
const KEYS: [&str; 13] = [
    "origin", "floor", "newest", "done", "claimed", "checked", "owners", "leases", "events", "guids", "underway",
    "bodies", "aged",
];

/// Loaded once per process; `invoke_async` sends the digest (`EVALSHA`) and the body only when
/// Redis does not know it yet.
static STATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(STATE));
static CREATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(CREATE));
static CLAIM_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(CLAIM));
static DONE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(DONE));
static PUSH_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(PUSH));
static PUSHED_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(PUSHED));
static RENEW_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(RENEW));
static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(RELEASE));

/// One fix a script made, as it returns it: what, the key, what was there, what it set.
type Note = (String, String, String, String);

/// What the shared ledger says of a pushed POST ([`SharedLedger::push`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushClaim {
    /// Below the floor: handled long ago.
    Old,
    /// Another replica (or this one) got this stream event already.
    Copy,
    /// Its guid was handled or is under way, or its bytes came under another guid: a repeat
    /// until GitHub's list says otherwise.
    Seen,
    /// The first attempt of its guid: this replica holds it and forwards it.
    First,
}

/// How far before its `received_at` a pushed POST at the handler holds the floor back (the
/// engine's margin for the clocks of GitHub and the blackhole).
const PUSH_HOLD: TimeDelta = TimeDelta::seconds(60);
/// How long after its lease ended a claim whose owner is gone is released, for a delivery no
/// replica lists again (GitHub forgot it): six leases, 3 minutes with the default TTL.
const GRACE_LEASES: u32 = 6;

impl SharedLedger {
    /// The key `name` of this hook.
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The same ledger with claims living `ttl` rather than [`CLAIM_TTL`] (for tests: the engine
    /// trusts a claim for [`CLAIM_TTL`] less a margin, so it must not be shorter there).
    pub fn with_claim_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// What the scripts found at the ledger's keys and fixed since the last call, once each.
    pub fn take_warnings(&self) -> Vec<Warning> {
        std::mem::take(&mut *self.fixed.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis() as u64
    }

    fn grace_ms(&self) -> u64 {
        (self.ttl * GRACE_LEASES).as_millis() as u64
    }

    /// A script on the hook's keys ([`KEYS`]); the local clock, the skew and the window first of the arguments.
    fn invocation<'a>(&self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        for name in KEYS {
            invocation.key(self.key(name));
        }
        let window = TimeDelta::from_std(WINDOW).unwrap_or(TimeDelta::MAX);
        let skew = TimeDelta::from_std(SKEW).unwrap_or(TimeDelta::MAX);
        invocation
            .arg(micros(Utc::now()))
            .arg(skew.num_microseconds().unwrap_or(i64::MAX))
            .arg(window.num_microseconds().unwrap_or(i64::MAX));
        invocation
    }

    /// A script on the hook's keys that needs no clock.
    fn keyed<'a>(&self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        for name in KEYS {
            invocation.key(self.key(name));
        }
        invocation
    }

    /// Keeps what a script fixed, as warnings.
    fn noted(&self, notes: Vec<Note>) {
        if notes.is_empty() {
            return;
        }
        let warnings = notes.into_iter().map(|note| self.warning(note));
        self.fixed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(warnings);
    }

    /// The warning for one fix of the [`PRELUDE`] or [`CLAIM`].
    fn warning(&self, (kind, key, found, set): Note) -> Warning {
        let at = |text: &str| text.parse::<i64>().ok().and_then(DateTime::from_timestamp_micros);
        let set_to = at(&set).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let fix = match kind.as_str() {
            "future" => {
                let until = at(&found).unwrap_or(DateTime::<Utc>::MAX_UTC);
                return Warning::LedgerFloorInFuture { ledger: format!("key {key} in {}", self.shown), until };
            }
            "no-origin" => LedgerFix::OriginMissing { set_to },
            "no-floor" => LedgerFix::FloorMissing { set_to },
            "below" => LedgerFix::FloorBelowOrigin { was: at(&found).unwrap_or(DateTime::<Utc>::MIN_UTC), set_to },
            "claim" => LedgerFix::ClaimNeverExpires { id: set.parse().unwrap_or_default() },
            _ => LedgerFix::WrongType { found },
        };
        Warning::SharedLedgerFixed { url: self.shown.clone(), key, fix }
    }

    /// The hook's state, or `None` if no replica has started it yet.
    pub async fn state(&self) -> Result<Option<State>, redis::RedisError> {
        let (origin, floor, checked, notes): (String, String, String, Vec<Note>) =
            self.invocation(&STATE_SCRIPT).invoke_async(&mut self.manager.clone()).await?;
        self.noted(notes);
        let Ok(origin) = origin.parse() else { return Ok(None) };
        Ok(Some(state(origin, &floor, &checked)))
    }

    /// Starts the hook's ledger at `origin` with `done` handled, unless another replica started
    /// it first; returns the state in force.
    pub async fn create(
        &self,
        origin: DateTime<Utc>,
        done: &[(u64, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<State, redis::RedisError> {
        let mut invocation = self.invocation(&CREATE_SCRIPT);
        invocation.arg(micros(origin)).arg(micros(now));
        for (id, t) in done.iter().filter(|(_, t)| *t >= origin) {
            invocation.arg(*id).arg(micros(*t));
        }
        let (origin, floor, checked, notes): (String, String, String, Vec<Note>) =
            invocation.invoke_async(&mut self.manager.clone()).await?;
        self.noted(notes);
        Ok(state(origin.parse().unwrap_or_default(), &floor, &checked))
    }

    /// Claims, in the order given, up to `max` of the listed deliveries `(id, delivered_at, guid)`
    /// that are neither handled nor held by another replica, for [`CLAIM_TTL`]; returns what each
    /// claim found, and the floor. A delivery whose attempt the stream forwarded is done here.
    pub async fn claim(
        &self,
        items: &[(u64, DateTime<Utc>, &str)],
        max: usize,
    ) -> Result<(Vec<Claim>, DateTime<Utc>), redis::RedisError> {
        let mut invocation = self.invocation(&CLAIM_SCRIPT);
        invocation.arg(&self.replica).arg(self.ttl_ms()).arg(max).arg(self.grace_ms());
        let now = Utc::now();
        for (id, t, guid) in items {
            invocation.arg(*id).arg(micros(*t)).arg(micros(trusted(*t, now))).arg(*guid);
        }
        let (codes, floor, notes): (Vec<String>, String, Vec<Note>) =
            invocation.invoke_async(&mut self.manager.clone()).await?;
        self.noted(notes);
        let claims = codes
            .iter()
            .map(|code| match code.as_str() {
                "1" => Claim::Claimed,
                "2" => Claim::Taken,
                "3" => Claim::Untried,
                _ => Claim::Done,
            })
            .collect();
        Ok((claims, floor.parse().map_or(DateTime::<Utc>::UNIX_EPOCH, time)))
    }

    /// Marks the delivery `id` done (forwarded and answered, or skipped), an API attempt of
    /// `guid` (with its body's key), releases its claim, and moves the shared floor as the
    /// [module](super) says, never past a claimed delivery; returns whether the claim was still
    /// this replica's, and the floor.
    pub async fn done(
        &self,
        id: u64,
        delivered_at: DateTime<Utc>,
        guid: Option<&str>,
        body: Option<&str>,
    ) -> Result<(bool, DateTime<Utc>), redis::RedisError> {
        let mut invocation = self.invocation(&DONE_SCRIPT);
        invocation.arg(&self.replica).arg(id).arg(micros(delivered_at)).arg(micros(trusted(delivered_at, Utc::now())));
        invocation.arg(guid.unwrap_or_default()).arg(body.unwrap_or_default()).arg(self.grace_ms());
        let (ours, floor, notes): (i64, String, Vec<Note>) = invocation.invoke_async(&mut self.manager.clone()).await?;
        self.noted(notes);
        Ok((ours == 1, floor.parse().map_or(DateTime::<Utc>::UNIX_EPOCH, time)))
    }

    /// Decides a pushed POST, the stream's event `event` of `guid` received at `at` (see
    /// [`PushClaim`]); a [`PushClaim::First`] is this replica's for [`CLAIM_TTL`], renewed as
    /// listed deliveries' claims are, until [`SharedLedger::pushed`]. Also returns the floor.
    pub async fn push(
        &self,
        event: &str,
        guid: &str,
        at: DateTime<Utc>,
        body: Option<&str>,
    ) -> Result<(PushClaim, DateTime<Utc>), redis::RedisError> {
        let mut invocation = self.invocation(&PUSH_SCRIPT);
        invocation.arg(&self.replica).arg(self.ttl_ms()).arg(self.grace_ms());
        invocation.arg(event).arg(guid).arg(micros(at)).arg(body.unwrap_or_default());
        invocation.arg(PUSH_HOLD.num_microseconds().unwrap_or_default());
        let (verdict, floor, notes): (String, String, Vec<Note>) =
            invocation.invoke_async(&mut self.manager.clone()).await?;
        self.noted(notes);
        let claim = match verdict.as_str() {
            "first" => PushClaim::First,
            "copy" => PushClaim::Copy,
            "old" => PushClaim::Old,
            _ => PushClaim::Seen,
        };
        Ok((claim, floor.parse().map_or(DateTime::<Utc>::UNIX_EPOCH, time)))
    }

    /// Counts the pushed POST `event` of `guid`, received at `at`, as an attempt the stream
    /// handled, and releases its claim; returns whether the claim was still this replica's.
    pub async fn pushed(&self, event: &str, guid: &str, at: DateTime<Utc>) -> Result<bool, redis::RedisError> {
        let mut invocation = self.invocation(&PUSHED_SCRIPT);
        invocation.arg(&self.replica).arg(event).arg(guid).arg(micros(at));
        let (ours, notes): (i64, Vec<Note>) = invocation.invoke_async(&mut self.manager.clone()).await?;
        self.noted(notes);
        Ok(ours == 1)
    }

    /// Extends this replica's `claims` ([`claim_name`]) by [`CLAIM_TTL`]; returns, per claim,
    /// whether it was still this replica's.
    pub async fn renew(&self, claims: &[String]) -> Result<Vec<bool>, redis::RedisError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.keyed(&RENEW_SCRIPT);
        invocation.arg(&self.replica).arg(self.ttl_ms());
        for claim in claims {
            invocation.arg(claim);
        }
        let kept: Vec<i64> = invocation.invoke_async(&mut self.manager.clone()).await?;
        Ok(kept.into_iter().map(|kept| kept == 1).collect())
    }

    /// Gives up this replica's `claims` ([`claim_name`]) (when it stops), so that another replica
    /// takes those deliveries at once rather than after [`CLAIM_TTL`].
    pub async fn release(&self, claims: &[String]) -> Result<(), redis::RedisError> {
        if claims.is_empty() {
            return Ok(());
        }
        let mut invocation = self.keyed(&RELEASE_SCRIPT);
        invocation.arg(&self.replica);
        for claim in claims {
            invocation.arg(claim);
        }
        invocation.invoke_async::<i64>(&mut self.manager.clone()).await?;
        Ok(())
    }

    /// Whether Redis answers at all.
    pub async fn ping(&self) -> Result<(), redis::RedisError> {
        redis::cmd("PING").query_async::<String>(&mut self.manager.clone()).await.map(drop)
    }

    /// Notes a successful poll at `now`.
    pub async fn checked(&self, now: DateTime<Utc>) -> Result<(), redis::RedisError> {
        redis::cmd("SET").arg(self.key("checked")).arg(micros(now)).exec_async(&mut self.manager.clone()).await
    }

    /// Whether the delivery `id` is done (for tests and checks; the engine learns it from claims).
    pub async fn is_done(&self, id: u64) -> Result<bool, redis::RedisError> {
        let score: Option<f64> =
            redis::cmd("ZSCORE").arg(self.key("done")).arg(id).query_async(&mut self.manager.clone()).await?;
        Ok(score.is_some())
    }
}

/// The name of a claim: `d:<id>` for a listed delivery, `e:<event id>` for a pushed POST.
pub fn claim_name(claim: ClaimOf<'_>) -> String {
    match claim {
        ClaimOf::Listed(id) => format!("d:{id}"),
        ClaimOf::Pushed(event) => format!("e:{event}"),
    }
}

/// What a claim is on.
#[derive(Debug, Clone, Copy)]
pub enum ClaimOf<'a> {
    /// A listed delivery, by id.
    Listed(u64),
    /// A pushed POST, by the stream's event id.
    Pushed(&'a str),
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A state as [`STATE`] and [`CREATE`] return it; a last poll after the local clock counts as now.
fn state(origin: i64, floor: &str, checked: &str) -> State {
    State {
        origin: time(origin),
        floor: floor.parse().map_or(time(origin), time),
        checked: checked.parse().map_or(DateTime::<Utc>::UNIX_EPOCH, time).min(Utc::now()),
    }
}
