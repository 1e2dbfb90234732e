//! Pacing under GitHub's secondary rate limits: points per minute per endpoint, and requests at once.
//!
//! GitHub refuses a client that spends more than [`SECONDARY_PER_MINUTE`] points a minute on one
//! endpoint (a GET costs 1 point, a write 5) or has more than [`SECONDARY_CONCURRENT`] requests in
//! flight, and then asks it to wait a minute or more. Every clone of a client goes through one
//! [`Pacer`], so that many sources on one token stay under both instead of finding them.
//!
//! Processes on one token (replicas) share GitHub's limits too: a [`SharedPace`] given to the client
//! keeps the points a minute for all of them, and the local buckets are the fallback when it cannot.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::lock;

/// GitHub's secondary limit: points a minute for one REST endpoint.
pub const SECONDARY_PER_MINUTE: u32 = 900;
/// GitHub's secondary limit: requests in flight at once.
pub const SECONDARY_CONCURRENT: u32 = 100;

/// How fast a client may call GitHub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// The secondary limit kept under: points a minute per endpoint (GitHub's [`SECONDARY_PER_MINUTE`]).
    pub limit: u32,
    /// Points a minute the client spends on one endpoint, at most, once its burst is spent.
    pub per_minute: u32,
    /// Points the client may spend on one endpoint at once before pacing starts.
    pub burst: u32,
    /// Requests in flight at once, at most, over every endpoint.
    pub concurrent: usize,
}

impl Default for Pace {
    /// Well under GitHub's figures, so that no minute can add up to them: 720 points a minute with a
    /// burst of 120 spend at most 840 in any minute, against GitHub's 900; 24 requests at once, against 100.
    fn default() -> Self {
        Self::under(SECONDARY_PER_MINUTE, SECONDARY_CONCURRENT)
    }
}

impl Pace {
    /// A pace that keeps under a secondary limit of `per_minute` points an endpoint and `concurrent`
    /// requests at once (GitHub's, or a test's): 80% of the rate, with a burst that keeps any one
    /// minute under the limit, and a quarter of the concurrency.
    pub fn under(per_minute: u32, concurrent: u32) -> Self {
        let rate = (per_minute.saturating_mul(4) / 5).max(1);
        let burst = (per_minute.saturating_sub(rate) * 2 / 3).max(1);
        let concurrent = usize::try_from(concurrent / 4).unwrap_or(usize::MAX).max(1);
        Self { limit: per_minute, per_minute: rate, burst, concurrent }
    }

    /// Polls a minute that the sources sharing one list endpoint may make together, leaving a
    /// tenth of its pace for older pages.
    pub fn polls_per_minute(&self) -> u32 {
        (self.per_minute.saturating_mul(9) / 10).max(1)
    }

    /// Whether `sources` polling one endpoint every `interval` keep to [`Pace::polls_per_minute`].
    pub fn sustains(&self, sources: usize, interval: Duration) -> bool {
        sources as f64 * 60.0 <= f64::from(self.polls_per_minute()) * interval.as_secs_f64()
    }

    /// The shortest poll interval at which `sources` polling one endpoint keep to
    /// [`Pace::polls_per_minute`]: rounded up to a whole second, or under a second to a tenth.
    pub fn shortest_interval(&self, sources: usize) -> Duration {
        let seconds = sources as f64 * 60.0 / f64::from(self.polls_per_minute());
        if seconds <= 1.0 {
            Duration::from_millis(((seconds * 10.0).ceil() as u64 * 100).max(100))
        } else {
            Duration::from_secs(seconds.ceil() as u64)
        }
    }
}

/// The points a request costs against the secondary limit, by method, as GitHub counts them.
pub fn points(method: &str) -> u32 {
    match method {
        "GET" | "HEAD" | "OPTIONS" => 1,
        _ => 5,
    }
}

/// A budget of points a minute per endpoint shared with the other processes on the same
/// credentials (replicas), kept elsewhere (the relay keeps one in Redis). The client asks it before
/// each call instead of its own buckets.
pub trait SharedPace: Send + Sync {
    /// Takes `cost` points of `endpoint`'s budget, which `pace` keeps for every process on these
    /// credentials together: the wait until they are there, or [`Turn::Alone`] when the shared budget
    /// cannot be reached.
    fn reserve<'a>(
        &'a self,
        endpoint: &'a str,
        cost: u32,
        pace: Pace,
    ) -> Pin<Box<dyn Future<Output = Turn> + Send + 'a>>;
}

/// A [`SharedPace`]'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// The points are taken; the call goes after this wait.
    After(Duration),
    /// The shared budget cannot be reached: the client paces alone, with its own buckets at
    /// `1/share` of the pace, so that `share` processes doing the same stay under the limit.
    Alone {
        /// The processes assumed to share the credentials (at least 1).
        share: u32,
    },
}

/// One endpoint's token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Points available as of `at` (may be negative: spent ahead, to be waited for).
    points: f64,
    /// When `points` was last brought up to date.
    at: Instant,
}

/// What every clone shares: a token bucket per endpoint template, and a cap on requests in flight.
pub(crate) struct Pacer {
    /// The pace in force.
    pace: Mutex<Pace>,
    /// One bucket per endpoint template (`GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries`).
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Requests in flight; replaced (not resized) when the pace changes.
    in_flight: Mutex<Arc<Semaphore>>,
    /// The budget shared with other processes on these credentials, once set.
    shared: OnceLock<Arc<dyn SharedPace>>,
}

impl Pacer {
    pub(crate) fn new(pace: Pace) -> Self {
        Self {
            pace: Mutex::new(pace),
            buckets: Mutex::default(),
            in_flight: Mutex::new(Arc::new(Semaphore::new(pace.concurrent.max(1)))),
            shared: OnceLock::new(),
        }
    }

    /// Paces through `shared` from now on; `false` if a shared budget was set already.
    pub(crate) fn share(&self, shared: Arc<dyn SharedPace>) -> bool {
        self.shared.set(shared).is_ok()
    }

    pub(crate) fn pace(&self) -> Pace {
        *lock(&self.pace)
    }

    pub(crate) fn set(&self, pace: Pace) {
        *lock(&self.pace) = pace;
        *lock(&self.in_flight) = Arc::new(Semaphore::new(pace.concurrent.max(1)));
        lock(&self.buckets).clear();
    }

    /// Waits for `endpoint`'s turn to spend `cost` points, then for a slot among the requests in
    /// flight; the permit holds the slot until it is dropped.
    pub(crate) async fn admit(&self, endpoint: &str, cost: u32) -> OwnedSemaphorePermit {
        let wait = match self.shared.get() {
            Some(shared) => match shared.reserve(endpoint, cost, self.pace()).await {
                Turn::After(wait) => wait,
                Turn::Alone { share } => self.reserve(endpoint, cost, Instant::now(), share),
            },
            None => self.reserve(endpoint, cost, Instant::now(), 1),
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let in_flight = lock(&self.in_flight).clone();
        // No semaphore is ever closed (a replaced one is dropped once its holders are done), so a
        // permit always comes.
        in_flight.acquire_owned().await.expect("the semaphore is never closed")
    }

    /// Takes `cost` points from `endpoint`'s bucket at `now`, its rate and burst `1/share` of the
    /// pace's; how long to wait until they were there.
    fn reserve(&self, endpoint: &str, cost: u32, now: Instant, share: u32) -> Duration {
        let pace = self.pace();
        let share = f64::from(share.max(1));
        let per_second = f64::from(pace.per_minute.max(1)) / 60.0 / share;
        let burst = (f64::from(pace.burst) / share).max(1.0);
        let mut buckets = lock(&self.buckets);
        let bucket = buckets.entry(endpoint.to_string()).or_insert(Bucket { points: burst, at: now });
        let refilled = bucket.points + now.saturating_duration_since(bucket.at).as_secs_f64() * per_second;
        bucket.points = refilled.min(burst) - f64::from(cost);
        bucket.at = now;
        if bucket.points >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-bucket.points / per_second) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pace_keeps_any_minute_under_githubs_figures() {
        let pace = Pace::default();
        assert_eq!(pace, Pace { limit: 900, per_minute: 720, burst: 120, concurrent: 25 });
        assert!(pace.per_minute + pace.burst < SECONDARY_PER_MINUTE);
        assert!((pace.concurrent as u32) < SECONDARY_CONCURRENT);
        let low = Pace::under(60, 4);
        assert!(low.per_minute + low.burst <= 60, "{low:?}");
        assert_eq!(low.concurrent, 1);
    }

    #[test]
    fn the_shortest_interval_keeps_the_polls_of_every_source_under_the_pace() {
        let pace = Pace::default();
        // 648 polls a minute: 100 sources need 100 × 60 / 648 = 9.3 s, so 10 s.
        assert_eq!(pace.polls_per_minute(), 648);
        assert_eq!(pace.shortest_interval(100), Duration::from_secs(10));
        assert_eq!(pace.shortest_interval(10), Duration::from_secs(1));
        // Under a second, to a tenth: 2 × 60 / 648 = 0.19 s.
        assert_eq!(pace.shortest_interval(2), Duration::from_millis(200));
        assert_eq!(pace.shortest_interval(1), Duration::from_millis(100));
        for sources in [1, 2, 7, 30, 110, 1000] {
            assert!(pace.sustains(sources, pace.shortest_interval(sources)), "{sources}");
        }
        assert!(pace.sustains(1, Duration::from_millis(100)), "600 a minute fits in 648");
        assert!(!pace.sustains(2, Duration::from_millis(100)));
    }

    #[test]
    fn a_bucket_gives_its_burst_then_one_turn_per_point_at_the_pace() {
        let pacer = Pacer::new(Pace { limit: 75, per_minute: 60, burst: 3, concurrent: 4 });
        let start = Instant::now();
        let endpoint = "GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries";
        let waits: Vec<Duration> = (0..5).map(|_| pacer.reserve(endpoint, 1, start, 1)).collect();
        assert_eq!(waits[..3], [Duration::ZERO; 3]);
        assert_eq!(waits[3], Duration::from_secs(1));
        assert_eq!(waits[4], Duration::from_secs(2));
        // Another endpoint has a bucket of its own.
        assert_eq!(pacer.reserve("GET /orgs/{org}/hooks/{hook_id}/deliveries", 1, start, 1), Duration::ZERO);
        // A write costs five points.
        assert_eq!(pacer.reserve("POST /repos/{owner}/{repo}/hooks", points("POST"), start, 1), Duration::from_secs(2));
        // After a minute the bucket is full again, and no fuller than its burst.
        let later = start + Duration::from_secs(60);
        let waits: Vec<Duration> = (0..4).map(|_| pacer.reserve(endpoint, 1, later, 1)).collect();
        assert_eq!(waits, [Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::from_secs(1)]);
    }

    #[test]
    fn no_minute_spends_more_than_the_pace_and_its_burst() {
        let pace = Pace::default();
        let pacer = Pacer::new(pace);
        let start = Instant::now();
        // Ask for a turn as often as anyone could, for five minutes, and count the turns per minute.
        let mut turns = Vec::new();
        for _ in 0..5000 {
            turns.push(start + pacer.reserve("GET /x", 1, start, 1));
        }
        for minute in 0..4 {
            let from = start + Duration::from_secs(minute * 60);
            let in_minute = turns.iter().filter(|at| **at >= from && **at < from + Duration::from_secs(60)).count();
            assert!(in_minute as u32 <= pace.per_minute + pace.burst, "minute {minute}: {in_minute}");
        }
    }

    #[test]
    fn pacing_alone_for_a_share_spends_that_share_of_the_pace() {
        let pace = Pace { limit: 75, per_minute: 60, burst: 4, concurrent: 4 };
        let pacer = Pacer::new(pace);
        let start = Instant::now();
        // A half: a burst of 2, then a point every 2 s.
        let waits: Vec<Duration> = (0..4).map(|_| pacer.reserve("GET /half", 1, start, 2)).collect();
        assert_eq!(waits, [Duration::ZERO, Duration::ZERO, Duration::from_secs(2), Duration::from_secs(4)]);
        // Two processes, each alone at half, spend no more in a minute than one at the whole pace.
        let (a, b) = (Pacer::new(pace), Pacer::new(pace));
        let mut turns = 0;
        for pacer in [&a, &b] {
            turns += (0..200).filter(|_| pacer.reserve("GET /x", 1, start, 2) < Duration::from_secs(60)).count();
        }
        assert!(turns as u32 <= pace.per_minute + pace.burst, "{turns}");
    }

    #[tokio::test]
    async fn requests_in_flight_are_capped() {
        let pacer = Pacer::new(Pace { limit: 9000, per_minute: 6000, burst: 100, concurrent: 2 });
        let first = pacer.admit("GET /a", 1).await;
        let _second = pacer.admit("GET /b", 1).await;
        let third = tokio::time::timeout(Duration::from_millis(50), pacer.admit("GET /c", 1)).await;
        assert!(third.is_err(), "a third request waits while two are in flight");
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), pacer.admit("GET /c", 1)).await;
        assert!(third.is_ok(), "and goes once one ends");
    }
}
