//! One token's GitHub budget shared by replicas through Redis: the secondary limit's points a
//! minute per endpoint, paced for every replica on the same credentials together, so that
//! `--secondary-limit` is the token's limit and not a share of it.
//!
//! Each endpoint template (the keys the client's own pacer uses) is one GCRA (generic cell rate
//! algorithm) in Redis: a theoretical arrival time (TAT) that each call moves on by its cost, at
//! the pace's interval per point, the burst being how far ahead of now the TAT may run before a
//! call waits. It is the client's token bucket, kept in one key. Keys, with the credentials'
//! digest ([`github::Client::identity`], never the token) as the hash tag, so that one token's keys
//! live in one Redis Cluster slot:
//!
//! ```text
//! hookfwd:pace:{identity}:{instance}:{endpoint}   string, the TAT in unix µs, expiring at it
//! hookfwd:pace:{identity}:{instance}:replicas     sorted set: replicas pacing, by last call (µs)
//! ```
//!
//! Time is Redis's own (`TIME`), so replicas' clocks need not agree. While Redis cannot be reached
//! the client paces alone at a share of the pace: `1/N`, N the replicas seen pacing in the last
//! minute, and never more than half ([`FALLBACK_SHARE`]); said once a run with
//! [`Warning::SharedPaceUnreachable`], and Redis is tried again every [`RETRY_AFTER`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use github::{Pace, SharedPace, Turn};
use redis::Script;
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Connection;
use crate::{Event, Warning};

/// The fewest replicas assumed while Redis cannot be reached: each paces alone at half at most.
pub const FALLBACK_SHARE: u32 = 2;
/// How long after a failed call Redis is tried again; meanwhile calls pace alone at once, rather
/// than each waiting for Redis to time out.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);
/// How long one call to Redis may take before the client paces alone.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// A replica counts among those sharing the token for this long after its last call.
const SEEN_FOR: Duration = Duration::from_secs(60);

/// The GCRA. KEYS[1] is the endpoint's TAT, KEYS[2] the replicas pacing; ARGV the interval per
/// point and the burst's tolerance (µs), the cost (points), this replica, and [`SEEN_FOR`] (µs).
/// Returns the wait (µs) and how many replicas paced within [`SEEN_FOR`]. What another program left
/// at the keys (another type, a TAT that is no number or more than an hour ahead) is started again.
const GCRA: &str = r"
-- Times go out as '%d': Lua prints a number of more than 14 digits with an exponent.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval, tolerance, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local seen_for = tonumber(ARGV[5])
local tat = now
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'string' then
  tat = tonumber(redis.call('GET', KEYS[1])) or now
elseif kind ~= 'none' then
  redis.call('DEL', KEYS[1])
end
if tat < now or tat > now + 3600000000 then tat = now end
local after = tat + cost * interval
redis.call('SET', KEYS[1], string.format('%d', after), 'PX', math.floor((after - now) / 1000) + 1)
if redis.call('TYPE', KEYS[2])['ok'] ~= 'zset' then redis.call('DEL', KEYS[2]) end
redis.call('ZADD', KEYS[2], string.format('%d', now), ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('(%d', now - seen_for))
redis.call('PEXPIRE', KEYS[2], math.floor(seen_for / 1000))
return {math.floor(math.max(0, after - now - tolerance)), redis.call('ZCARD', KEYS[2])}
";

/// Loaded once; each call is an `EVALSHA`.
static GCRA_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(GCRA));

/// One token's budget in Redis, as one replica paces through it: give it to the GitHub client with
/// [`github::Client::share_pace`].
pub struct RedisPace {
    /// The ledger's connection.
    manager: ConnectionManager,
    /// `hookfwd:pace:{identity}:{instance}:`.
    prefix: String,
    /// This replica's name, as the ledger's claims know it.
    replica: String,
    /// The ledger's URL without its password, for the warning.
    shown: String,
    /// Replicas seen pacing at the last answer, for the share while Redis cannot be reached.
    seen: AtomicU32,
    /// Until when calls pace alone without asking Redis, after a failure.
    alone_until: Mutex<Option<Instant>>,
    /// Whether pacing alone was said already (once a run).
    warned: AtomicBool,
    /// Where the warning goes; weak, so that a client outliving the run does not keep its events open.
    events: mpsc::WeakSender<Event>,
}

impl RedisPace {
    /// The budget of the credentials named `identity` on the GitHub instance `instance` (see
    /// [`super::instance`]), paced through `connection` as the replica `replica`.
    pub fn new(
        connection: &Connection,
        instance: &str,
        identity: &str,
        replica: &str,
        events: &mpsc::Sender<Event>,
    ) -> Self {
        Self {
            manager: connection.manager(),
            prefix: format!("hookfwd:pace:{{{identity}}}:{instance}:"),
            replica: replica.to_string(),
            shown: connection.shown().to_string(),
            seen: AtomicU32::new(1),
            alone_until: Mutex::new(None),
            warned: AtomicBool::new(false),
            events: events.downgrade(),
        }
    }

    /// Takes `cost` points of `endpoint`'s budget under `pace`: the wait, and the replicas seen.
    async fn gcra(&self, endpoint: &str, cost: u32, pace: Pace) -> Result<(Duration, u32), redis::RedisError> {
        // Whole microseconds, rounded up: a little slower than the pace, never faster.
        let interval = 60_000_000u64.div_ceil(u64::from(pace.per_minute.max(1)));
        let mut invocation = GCRA_SCRIPT.prepare_invoke();
        invocation
            .key(format!("{}{endpoint}", self.prefix))
            .key(format!("{}replicas", self.prefix))
            .arg(interval)
            .arg(interval * u64::from(pace.burst))
            .arg(cost)
            .arg(&self.replica)
            .arg(SEEN_FOR.as_micros() as u64);
        let (wait, seen): (u64, u32) = invocation.invoke_async(&mut self.manager.clone()).await?;
        Ok((Duration::from_micros(wait), seen))
    }

    /// The turn when Redis could not answer: alone, at a share; said once.
    async fn alone(&self, error: &str) -> Turn {
        *self.alone_until.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + RETRY_AFTER);
        let share = self.seen.load(Ordering::Relaxed).max(FALLBACK_SHARE);
        tracing::info!(url = %self.shown, error, share, "the shared GitHub budget cannot be reached; pacing alone");
        if !self.warned.swap(true, Ordering::Relaxed) {
            let warning = Warning::SharedPaceUnreachable { url: self.shown.clone(), share };
            if let Some(events) = self.events.upgrade() {
                let _ = events.send(Event::Warning(warning)).await;
            }
        }
        Turn::Alone { share }
    }
}

impl SharedPace for RedisPace {
    fn reserve<'a>(
        &'a self,
        endpoint: &'a str,
        cost: u32,
        pace: Pace,
    ) -> Pin<Box<dyn Future<Output = Turn> + Send + 'a>> {
        Box::pin(async move {
            let retry_at = *self.alone_until.lock().unwrap_or_else(PoisonError::into_inner);
            if retry_at.is_some_and(|at| Instant::now() < at) {
                return Turn::Alone { share: self.seen.load(Ordering::Relaxed).max(FALLBACK_SHARE) };
            }
            match tokio::time::timeout(ANSWER_WITHIN, self.gcra(endpoint, cost, pace)).await {
                Ok(Ok((wait, seen))) => {
                    self.seen.store(seen.max(1), Ordering::Relaxed);
                    *self.alone_until.lock().unwrap_or_else(PoisonError::into_inner) = None;
                    Turn::After(wait)
                }
                Ok(Err(error)) => self.alone(&error.to_string()).await,
                Err(_) => self.alone("no answer in time").await,
            }
        })
    }
}
