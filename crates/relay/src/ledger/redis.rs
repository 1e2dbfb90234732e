//! The ledger in Redis (or Valkey), shared by replicas on different machines: the invariant of
//! the [module](super) kept with atomic Lua scripts, plus claims, so that each delivery is fetched
//! and forwarded by one replica at a time.
//!
//! Keys, per GitHub instance and hook (as the file ledger's directory and file name are):
//!
//! ```text
//! hookfwd:{instance}:{hook key}:origin      string, unix µs
//! hookfwd:{instance}:{hook key}:floor       string, unix µs
//! hookfwd:{instance}:{hook key}:checked     string, unix µs (the last successful poll)
//! hookfwd:{instance}:{hook key}:newest      string, unix µs (the newest done delivery, as trusted)
//! hookfwd:{instance}:{hook key}:done        sorted set: delivery id, scored by delivered_at (µs)
//! hookfwd:{instance}:{hook key}:claimed     sorted set: ids claimed and not done, scored alike
//! hookfwd:{instance}:{hook key}:claim:{id}  string, the replica holding it, with a TTL
//! ```
//!
//! Times are microseconds: Lua numbers are doubles, exact to 2^53, which nanoseconds overflow.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use github::HookRef;
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{WINDOW, trusted};
use crate::Error;

/// How long a claim lives unless renewed: a dead replica's deliveries wait this long at most.
/// 30 s; see [`claim_ttl`].
pub static CLAIM_TTL: std::sync::LazyLock<Duration> = std::sync::LazyLock::new(claim_ttl);

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
        let shown = shown.to_string();
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

/// A text that is not a URL, for a message: everything between `://` and `@` could be a password.
fn redact_unparsed(text: &str) -> String {
    match (text.find("://"), text.rfind('@')) {
        (Some(start), Some(at)) if at > start => format!("{}***{}", &text[..start + 3], &text[at..]),
        _ => text.to_string(),
    }
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
            prefix: format!("hookfwd:{instance}:{}:", hook.key()),
            replica: replica.to_string(),
            shown: self.shown.clone(),
            ttl: *CLAIM_TTL,
        }
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
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
    /// `hookfwd:{instance}:{hook key}:`.
    prefix: String,
    /// This replica's name, the value of the claims it holds.
    replica: String,
    /// The URL without its password, for messages.
    shown: String,
    /// How long a claim lives unless renewed ([`CLAIM_TTL`]).
    ttl: Duration,
}

/// Initialises a hook's ledger unless another replica did: `origin`, `floor` = origin, `checked`,
/// and the deliveries that count as handled. Returns the state in force.
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('SET', KEYS[2], ARGV[1])
  redis.call('SET', KEYS[3], ARGV[2])
  for i = 3, #ARGV, 2 do
    redis.call('ZADD', KEYS[4], ARGV[i + 1], ARGV[i])
  end
end
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2]), redis.call('GET', KEYS[3]) or ARGV[2]}
";

/// Claims, oldest first, up to `max` listed deliveries that are neither handled nor held by
/// another replica; returns per delivery 0 (done), 1 (claimed), 2 (taken) or 3 (not tried: `max`
/// reached), then the floor.
const CLAIM: &str = r"
local floor = tonumber(redis.call('GET', KEYS[3]) or '0')
local left = tonumber(ARGV[4])
local out = {}
for i = 5, #ARGV, 2 do
  local id, t = ARGV[i], tonumber(ARGV[i + 1])
  if t < floor or redis.call('ZSCORE', KEYS[1], id) then
    out[#out + 1] = '0'
  elseif left <= 0 then
    out[#out + 1] = '3'
  elseif redis.call('SET', ARGV[1] .. id, ARGV[2], 'NX', 'PX', ARGV[3]) then
    redis.call('ZADD', KEYS[2], t, id)
    left = left - 1
    out[#out + 1] = '1'
  else
    out[#out + 1] = '2'
  end
end
out[#out + 1] = string.format('%d', floor)
return out
";

/// Marks one delivery done, releases its claim, and moves the floor to a window before the
/// newest done delivery (as far as its time is trusted), but never past one claimed and not done. Returns whether the claim was still this
/// replica's, and the floor.
const DONE: &str = r"
local ours = redis.call('GET', KEYS[4]) == ARGV[1]
if ours then redis.call('DEL', KEYS[4]) end
redis.call('ZREM', KEYS[2], ARGV[2])
local floor = tonumber(redis.call('GET', KEYS[3]) or '0')
if tonumber(ARGV[3]) >= floor then redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2]) end
local newest = math.max(tonumber(redis.call('GET', KEYS[5]) or '0'), tonumber(ARGV[4]))
redis.call('SET', KEYS[5], string.format('%d', newest))
local candidate = newest - tonumber(ARGV[5])
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #oldest > 0 then candidate = math.min(candidate, tonumber(oldest[2])) end
if candidate > floor then
  floor = candidate
  redis.call('SET', KEYS[3], string.format('%d', floor))
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', floor))
end
return {ours and 1 or 0, string.format('%d', floor)}
";

/// Extends each claim still this replica's; 1 per claim kept, 0 per claim lost.
const RENEW: &str = r"
local out = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[#out + 1] = '1'
  else
    out[#out + 1] = '0'
  end
end
return out
";

/// Drops each claim still this replica's, so that another takes the delivery at once.
const RELEASE: &str = r"
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return 0
";

impl SharedLedger {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn claim_key(&self, id: u64) -> String {
        format!("{}claim:{id}", self.prefix)
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

    /// The hook's state, or `None` if no replica has started it yet.
    pub async fn state(&self) -> Result<Option<State>, redis::RedisError> {
        let mut conn = self.manager.clone();
        let (origin, floor, checked): (Option<i64>, Option<i64>, Option<i64>) = redis::pipe()
            .get(self.key("origin"))
            .get(self.key("floor"))
            .get(self.key("checked"))
            .query_async(&mut conn)
            .await?;
        Ok(origin.map(|origin| State {
            origin: time(origin),
            floor: time(floor.unwrap_or(origin)),
            checked: checked.map_or(DateTime::<Utc>::UNIX_EPOCH, time),
        }))
    }

    /// Starts the hook's ledger at `origin` with `done` handled, unless another replica started
    /// it first; returns the state in force.
    pub async fn create(
        &self,
        origin: DateTime<Utc>,
        done: &[(u64, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<State, redis::RedisError> {
        let script = Script::new(CREATE);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.key("origin"))
            .key(self.key("floor"))
            .key(self.key("checked"))
            .key(self.key("done"))
            .arg(micros(origin))
            .arg(micros(now));
        for (id, t) in done.iter().filter(|(_, t)| *t >= origin) {
            invocation.arg(*id).arg(micros(*t));
        }
        let (origin, floor, checked): (i64, i64, i64) = invocation.invoke_async(&mut self.manager.clone()).await?;
        Ok(State { origin: time(origin), floor: time(floor), checked: time(checked) })
    }

    /// Claims, in the order given, up to `max` of the listed deliveries `(id, delivered_at)` that
    /// are neither handled nor held by another replica, for [`CLAIM_TTL`]; returns what each
    /// claim found, and the floor.
    pub async fn claim(
        &self,
        items: &[(u64, DateTime<Utc>)],
        max: usize,
    ) -> Result<(Vec<Claim>, DateTime<Utc>), redis::RedisError> {
        let script = Script::new(CLAIM);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.key("done"))
            .key(self.key("claimed"))
            .key(self.key("floor"))
            .arg(self.key("claim:"))
            .arg(&self.replica)
            .arg(self.ttl.as_millis() as u64)
            .arg(max);
        for (id, t) in items {
            invocation.arg(*id).arg(micros(*t));
        }
        let mut out: Vec<String> = invocation.invoke_async(&mut self.manager.clone()).await?;
        let floor = out.pop().and_then(|floor| floor.parse().ok()).map_or(DateTime::<Utc>::UNIX_EPOCH, time);
        let claims = out
            .iter()
            .map(|code| match code.as_str() {
                "1" => Claim::Claimed,
                "2" => Claim::Taken,
                "3" => Claim::Untried,
                _ => Claim::Done,
            })
            .collect();
        Ok((claims, floor))
    }

    /// Marks the delivery `id` done (forwarded and answered, or skipped), releases its claim,
    /// and moves the shared floor as the [module](super) says, never past a claimed delivery;
    /// returns whether the claim was still this replica's, and the floor.
    pub async fn done(&self, id: u64, delivered_at: DateTime<Utc>) -> Result<(bool, DateTime<Utc>), redis::RedisError> {
        let window = TimeDelta::from_std(WINDOW).unwrap_or(TimeDelta::MAX);
        let (ours, floor): (i64, String) = Script::new(DONE)
            .key(self.key("done"))
            .key(self.key("claimed"))
            .key(self.key("floor"))
            .key(self.claim_key(id))
            .key(self.key("newest"))
            .arg(&self.replica)
            .arg(id)
            .arg(micros(delivered_at))
            .arg(micros(trusted(delivered_at, Utc::now())))
            .arg(window.num_microseconds().unwrap_or(i64::MAX))
            .invoke_async(&mut self.manager.clone())
            .await?;
        Ok((ours == 1, floor.parse().map_or(DateTime::<Utc>::UNIX_EPOCH, time)))
    }

    /// Extends this replica's claims on `ids` by [`CLAIM_TTL`]; returns, per id, whether the claim
    /// was still this replica's.
    pub async fn renew(&self, ids: &[u64]) -> Result<Vec<bool>, redis::RedisError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let script = Script::new(RENEW);
        let mut invocation = script.prepare_invoke();
        for id in ids {
            invocation.key(self.claim_key(*id));
        }
        invocation.arg(&self.replica).arg(self.ttl.as_millis() as u64);
        let kept: Vec<i64> = invocation.invoke_async(&mut self.manager.clone()).await?;
        Ok(kept.into_iter().map(|kept| kept == 1).collect())
    }

    /// Gives up this replica's claims on `ids` (when it stops), so that another replica takes
    /// those deliveries at once rather than after [`CLAIM_TTL`].
    pub async fn release(&self, ids: &[u64]) -> Result<(), redis::RedisError> {
        if ids.is_empty() {
            return Ok(());
        }
        let script = Script::new(RELEASE);
        let mut invocation = script.prepare_invoke();
        for id in ids {
            invocation.key(self.claim_key(*id));
        }
        invocation.arg(&self.replica).invoke_async::<i64>(&mut self.manager.clone()).await?;
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

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}
