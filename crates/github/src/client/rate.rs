//! Rate limits: reading GitHub's budget headers, telling a rate-limited answer from a refusal, waiting
//! it out (shared by every clone), and the retry policy with its backoff.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};

use super::{Client, lock};
use crate::status::github_message;
use crate::{Error, Result};

/// GitHub's rate-limit window. No rate limit is waited out for longer (plus up to a minute of jitter): a
/// reset or `retry-after` further ahead is a broken header, not a reason to stop for years.
pub const RATE_WINDOW: Duration = Duration::from_secs(3600);
/// Up to this much is added to a wait cut down to [`RATE_WINDOW`], so that many clients do not
/// all come back in the same second.
const WAIT_JITTER: Duration = Duration::from_secs(60);

/// The rate budget as of the last response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls allowed per window.
    pub limit: Option<u32>,
    /// Calls left in this window.
    pub remaining: Option<u32>,
    /// When the window resets.
    pub reset_at: Option<DateTime<Utc>>,
}

/// A rate-limit wait the client is in, for a status line: every call holds off until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    /// When calls resume.
    pub until: DateTime<Utc>,
    /// Why, in a few words: `GitHub's rate limit is exhausted`.
    pub reason: String,
}

/// How long to wait between retries, and for how long to wait out rate limits.
///
/// The defaults follow GitHub's guidance; tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first backoff after a server error or a transport failure.
    pub base: Duration,
    /// The longest backoff between two attempts.
    pub cap: Duration,
    /// Attempts in all (the first one included) before a server error or transport failure is returned.
    pub attempts: u32,
    /// The wait after a secondary rate limit that gives no `retry-after` (GitHub asks for at least a minute).
    pub secondary_wait: Duration,
    /// The longest wait after consecutive secondary rate limits.
    pub secondary_cap: Duration,
    /// Waits for a rate limit longer than this fail with [`Error::RateLimited`] instead; `None` always waits.
    pub max_rate_limit_wait: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
            attempts: 5,
            secondary_wait: Duration::from_secs(60),
            secondary_cap: Duration::from_secs(15 * 60),
            max_rate_limit_wait: None,
        }
    }
}

impl Client {
    /// Waits until the rate limit that `throttle` describes is over, and makes every clone wait too.
    pub(super) async fn wait_out(&self, throttle: Throttle, what: &str) -> Result<()> {
        let now = Utc::now();
        let streak = match throttle {
            Throttle::Primary { .. } => 0,
            Throttle::Secondary { .. } => self.inner.secondary_streak.fetch_add(1, Ordering::Relaxed),
        };
        let wait = throttle_wait(&throttle, now, streak, &self.policy);
        let until = chrono::TimeDelta::from_std(wait)
            .ok()
            .and_then(|delta| now.checked_add_signed(delta))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if self.policy.max_rate_limit_wait.is_some_and(|max| wait > max) {
            return Err(Error::RateLimited { reset_at: until });
        }
        {
            let mut pause = lock(&self.inner.pause);
            *pause = Some(pause.map_or(until, |other| other.max(until)));
        }
        let reason = match throttle {
            Throttle::Primary { .. } => {
                tracing::info!(what, until = %until, wait_secs = wait.as_secs(),
                    "the GitHub rate limit is exhausted; waiting for it to reset");
                "GitHub's rate limit is exhausted"
            }
            Throttle::Secondary { .. } => {
                tracing::info!(what, until = %until, wait_secs = wait.as_secs(),
                    in_a_row = streak + 1, "GitHub's secondary rate limit was hit; waiting");
                "GitHub's secondary rate limit was hit"
            }
        };
        let announced = Wait { until, reason: reason.to_string() };
        self.inner.waits.send_replace(Some(announced.clone()));
        tokio::time::sleep(wait).await;
        // Only this wait's own announcement is taken back; a longer one that began meanwhile stays.
        self.inner.waits.send_if_modified(|current| {
            let ours = current.as_ref() == Some(&announced);
            if ours {
                *current = None;
            }
            ours
        });
        Ok(())
    }

    /// Sleeps while another call has found the API rate-limited.
    pub(super) async fn hold_off(&self) {
        let until = *lock(&self.inner.pause);
        if let Some(wait) = until.and_then(|until| (until - Utc::now()).to_std().ok()) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The `x-ratelimit-*` headers, if the response had any. A reset further than one window from
/// `now` is cut to one window: GitHub's budget refills every hour, so a later one is a broken header.
pub(crate) fn parse_rate_limit(headers: &HeaderMap, now: DateTime<Utc>) -> Option<RateLimit> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<i64>().ok();
    let limit = number("x-ratelimit-limit").and_then(|n| u32::try_from(n).ok());
    let remaining = number("x-ratelimit-remaining").and_then(|n| u32::try_from(n).ok());
    let window = chrono::TimeDelta::from_std(RATE_WINDOW).unwrap_or(chrono::TimeDelta::hours(1));
    let latest = now.checked_add_signed(window).unwrap_or(now);
    let reset_at =
        number("x-ratelimit-reset").and_then(|secs| DateTime::from_timestamp(secs, 0)).map(|reset| reset.min(latest));
    (limit.is_some() || remaining.is_some() || reset_at.is_some()).then_some(RateLimit { limit, remaining, reset_at })
}

/// A rate-limited answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Throttle {
    /// The hourly budget is spent until `reset_at`.
    Primary {
        /// When it refills.
        reset_at: Option<DateTime<Utc>>,
    },
    /// Too many requests too fast.
    Secondary {
        /// GitHub's `retry-after`.
        retry_after: Option<Duration>,
    },
}

/// Whether a 403 or 429 is a rate limit, and which one (as GitHub documents them).
pub(crate) fn throttle(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Throttle> {
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let retry_after = headers
        .get(header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        // Longer than the window is a broken header, not a reason to sleep for years.
        .map(|secs| Duration::from_secs(secs).min(RATE_WINDOW));
    let message = github_message(body).unwrap_or_default().to_ascii_lowercase();
    let secondary_message = message.contains("secondary rate limit") || message.contains("abuse detection");
    // The reset as sent: `throttle_wait` cuts the wait, and a clock of its own keeps this pure.
    let rate = parse_rate_limit(headers, DateTime::<Utc>::MAX_UTC);
    let exhausted = rate.is_some_and(|rate| rate.remaining == Some(0));
    if secondary_message || (retry_after.is_some() && !exhausted) {
        Some(Throttle::Secondary { retry_after })
    } else if exhausted {
        Some(Throttle::Primary { reset_at: rate.and_then(|rate| rate.reset_at) })
    } else if status == StatusCode::TOO_MANY_REQUESTS || message.contains("rate limit") {
        Some(Throttle::Secondary { retry_after })
    } else {
        None
    }
}

/// How long to wait out `throttle` at `now`, after `streak` secondary limits in a row: as GitHub
/// asks (until the reset; `retry-after` if given, else at least a minute), never more than
/// [`RATE_WINDOW`] plus a little jitter.
pub(crate) fn throttle_wait(throttle: &Throttle, now: DateTime<Utc>, streak: u32, policy: &RetryPolicy) -> Duration {
    let wait = match throttle {
        Throttle::Primary { reset_at } => {
            // A second more than the reset, as GitHub's clock and ours may differ by a little
            // (and the header is rounded down to the second).
            let until_reset = match reset_at {
                Some(reset) => (*reset - now).to_std().unwrap_or(Duration::ZERO),
                None => policy.secondary_wait,
            };
            until_reset + Duration::from_secs(1)
        }
        Throttle::Secondary { retry_after } => {
            let first = retry_after.unwrap_or(policy.secondary_wait).max(Duration::from_secs(1));
            let cap = policy.secondary_cap.max(first);
            first.saturating_mul(1u32 << streak.min(16)).min(cap)
        }
    };
    if wait > RATE_WINDOW { RATE_WINDOW + WAIT_JITTER.mul_f64(crate::random::fraction()) } else { wait }
}

/// The jittered exponential backoff before retry number `attempt + 1`, by `policy`.
pub(crate) fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    crate::backoff::jittered(policy.base, policy.cap, attempt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::tests::headers;
    use crate::{Auth, Config, Secret};
    use url::Url;

    #[test]
    fn reads_rate_limit_headers() {
        let now = DateTime::from_timestamp(1_699_999_000, 0).unwrap();
        let rate = parse_rate_limit(
            &headers(&[
                ("x-ratelimit-limit", "5000"),
                ("x-ratelimit-remaining", "4999"),
                ("x-ratelimit-reset", "1700000000"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(rate.limit, Some(5000));
        assert_eq!(rate.remaining, Some(4999));
        assert_eq!(rate.reset_at, DateTime::from_timestamp(1_700_000_000, 0));
        assert_eq!(parse_rate_limit(&headers(&[]), now), None);
        assert_eq!(parse_rate_limit(&headers(&[("x-ratelimit-remaining", "x")]), now), None);
    }

    #[test]
    fn a_reset_years_ahead_is_read_as_one_window() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let ten_years = (now.timestamp() + 10 * 365 * 24 * 3600).to_string();
        let rate =
            parse_rate_limit(&headers(&[("x-ratelimit-remaining", "1"), ("x-ratelimit-reset", &ten_years)]), now);
        assert_eq!(rate.unwrap().reset_at, Some(now + chrono::TimeDelta::hours(1)));
    }

    #[test]
    fn no_rate_limit_wait_is_longer_than_the_window_plus_jitter() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let policy = RetryPolicy::default();
        let most = RATE_WINDOW + WAIT_JITTER;
        let far = Throttle::Primary { reset_at: Some(now + chrono::TimeDelta::days(3650)) };
        let wait = throttle_wait(&far, now, 0, &policy);
        assert!(wait >= RATE_WINDOW && wait <= most, "{wait:?}");

        let exhausted = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "99999999999")]);
        let primary = throttle(StatusCode::FORBIDDEN, &exhausted, b"{}").unwrap();
        assert!(throttle_wait(&primary, now, 0, &policy) <= most);

        let retry = headers(&[("retry-after", "315360000")]);
        let secondary = throttle(StatusCode::TOO_MANY_REQUESTS, &retry, b"").unwrap();
        assert_eq!(secondary, Throttle::Secondary { retry_after: Some(RATE_WINDOW) });
        for streak in 0..20 {
            assert!(throttle_wait(&secondary, now, streak, &policy) <= most);
        }
        let long_cap = RetryPolicy { secondary_cap: Duration::from_secs(86_400 * 365), ..policy };
        assert!(throttle_wait(&Throttle::Secondary { retry_after: None }, now, 30, &long_cap) <= most);
    }

    #[test]
    fn a_secondary_limit_waits_retry_after_as_given_else_a_minute() {
        // GitHub: wait `retry-after` seconds when it is there; otherwise at least a minute.
        let now = Utc::now();
        let policy = RetryPolicy::default();
        let one = throttle(StatusCode::FORBIDDEN, &headers(&[("retry-after", "1")]), b"").unwrap();
        assert_eq!(throttle_wait(&one, now, 0, &policy), Duration::from_secs(1));
        let body = br#"{"message":"You have exceeded a secondary rate limit."}"#;
        let bare = throttle(StatusCode::FORBIDDEN, &headers(&[]), body).unwrap();
        assert_eq!(throttle_wait(&bare, now, 0, &policy), Duration::from_secs(60));
    }

    #[test]
    fn tells_primary_from_secondary_limits() {
        let exhausted = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1700000000")]);
        let reset_at = DateTime::from_timestamp(1_700_000_000, 0);
        assert_eq!(throttle(StatusCode::FORBIDDEN, &exhausted, b"{}"), Some(Throttle::Primary { reset_at }));
        assert_eq!(throttle(StatusCode::TOO_MANY_REQUESTS, &exhausted, b""), Some(Throttle::Primary { reset_at }));

        let retry = headers(&[("x-ratelimit-remaining", "10"), ("retry-after", "30")]);
        let secondary = Some(Throttle::Secondary { retry_after: Some(Duration::from_secs(30)) });
        assert_eq!(throttle(StatusCode::FORBIDDEN, &retry, b""), secondary);

        let body = br#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes."}"#;
        let remaining = headers(&[("x-ratelimit-remaining", "10")]);
        assert_eq!(throttle(StatusCode::FORBIDDEN, &remaining, body), Some(Throttle::Secondary { retry_after: None }));

        let denied = br#"{"message":"Resource not accessible by personal access token"}"#;
        assert_eq!(throttle(StatusCode::FORBIDDEN, &remaining, denied), None);
        assert_eq!(throttle(StatusCode::NOT_FOUND, &exhausted, b""), None);
    }

    #[test]
    fn waits_until_reset_plus_a_second() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let policy = RetryPolicy::default();
        let primary = Throttle::Primary { reset_at: Some(now + chrono::TimeDelta::seconds(100)) };
        assert_eq!(throttle_wait(&primary, now, 0, &policy), Duration::from_secs(101));
        let past = Throttle::Primary { reset_at: Some(now - chrono::TimeDelta::seconds(5)) };
        assert_eq!(throttle_wait(&past, now, 0, &policy), Duration::from_secs(1));
        let unknown = Throttle::Primary { reset_at: None };
        assert_eq!(throttle_wait(&unknown, now, 0, &policy), Duration::from_secs(61));
    }

    #[test]
    fn secondary_waits_grow_for_consecutive_limits() {
        let now = Utc::now();
        let policy = RetryPolicy::default();
        let bare = Throttle::Secondary { retry_after: None };
        let waits: Vec<u64> = (0..6).map(|streak| throttle_wait(&bare, now, streak, &policy).as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 480, 900, 900]);
        let given = Throttle::Secondary { retry_after: Some(Duration::from_secs(5)) };
        assert_eq!(throttle_wait(&given, now, 0, &policy), Duration::from_secs(5));
        assert_eq!(throttle_wait(&given, now, 1, &policy), Duration::from_secs(10));
        let zero = Throttle::Secondary { retry_after: Some(Duration::ZERO) };
        assert_eq!(throttle_wait(&zero, now, 0, &policy), Duration::from_secs(1), "never hammer");
    }

    fn token_client() -> Client {
        let config = Config {
            api_url: Url::parse("http://127.0.0.1:1").unwrap(),
            auth: Auth::Token(Secret::new("t")),
            timeout: Duration::from_secs(1),
        };
        Client::new(config).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn waits_out_a_secondary_limit_and_shows_it_to_clones() {
        let client = token_client();
        let clone = client.clone();
        let start = tokio::time::Instant::now();
        let throttle = Throttle::Secondary { retry_after: Some(Duration::from_secs(5)) };
        let wait = tokio::spawn(async move { clone.wait_out(throttle, "a test").await });
        tokio::task::yield_now().await;
        let until = client.waiting_until().expect("a clone is waiting");
        assert!(until > Utc::now() + chrono::TimeDelta::seconds(4), "{until}");
        wait.await.unwrap().unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        // The next one in a row waits twice as long.
        let throttle = Throttle::Secondary { retry_after: Some(Duration::from_secs(5)) };
        let start = tokio::time::Instant::now();
        client.wait_out(throttle, "a test").await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_the_primary_reset_or_refuses_past_the_maximum() {
        let client = token_client();
        let start = tokio::time::Instant::now();
        let reset_at = Some(Utc::now() + chrono::TimeDelta::seconds(120));
        client.wait_out(Throttle::Primary { reset_at }, "a test").await.unwrap();
        let waited = start.elapsed();
        assert!(waited > Duration::from_secs(119) && waited <= Duration::from_secs(121), "{waited:?}");

        let policy = RetryPolicy { max_rate_limit_wait: Some(Duration::from_secs(60)), ..RetryPolicy::default() };
        let impatient = client.with_retry_policy(policy);
        let start = tokio::time::Instant::now();
        let error = impatient.wait_out(Throttle::Primary { reset_at }, "a test").await.unwrap_err();
        assert!(matches!(error, Error::RateLimited { .. }), "{error}");
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[test]
    fn backoff_is_jittered_and_capped() {
        let policy = RetryPolicy::default();
        for attempt in 0..40 {
            let full = Duration::from_secs(1).saturating_mul(1 << attempt.min(16)).min(policy.cap);
            for _ in 0..20 {
                let wait = backoff(&policy, attempt);
                assert!(wait <= policy.cap, "attempt {attempt}: {wait:?}");
                assert!(wait >= full / 2 && wait <= full, "attempt {attempt}: {wait:?}");
            }
        }
    }
}
