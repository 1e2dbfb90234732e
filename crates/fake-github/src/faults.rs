//! Faults a test can switch on at run time: latency, server errors, rate limits, dropped connections, retention,
//! a skewed clock and poisoned delivery records.
//!
//! Rates are applied deterministically (an accumulator, not a dice roll), so a rate of
//! 0.25 fails exactly every fourth API request and tests never flake on luck.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// GitHub keeps deliveries for about three days.
const DEFAULT_RETENTION: Duration = Duration::from_secs(3 * 24 * 3600);

/// A cloneable handle on the fake's faults; every setter takes effect on the next API request.
#[derive(Clone)]
pub struct Faults(Arc<Mutex<FaultState>>);

/// What the faults currently are.
struct FaultState {
    /// Added to every API answer.
    latency: Duration,
    /// Fraction of API requests answered 502 or 500.
    server_error_rate: f64,
    /// Accumulates `server_error_rate`; a request fails each time it reaches 1.
    server_error_acc: f64,
    /// Alternates 502 and 500 between injected errors.
    server_error_count: u64,
    /// Fraction of API requests whose connection is closed without an answer.
    drop_rate: f64,
    /// Accumulates `drop_rate`.
    drop_acc: f64,
    /// How many more requests hit the secondary rate limit.
    secondary_left: u32,
    /// The `retry-after` those requests carry.
    secondary_retry_after: Duration,
    /// Until when the primary budget of every token is exhausted.
    primary_exhausted_until: Option<DateTime<Utc>>,
    /// Deliveries older than this are forgotten.
    retention: Duration,
    /// Added to every `delivered_at` the API reports, as if GitHub's clock were off.
    clock_skew: chrono::Duration,
    /// Delivery records spoiled on purpose, by delivery id.
    poisoned: HashMap<u64, Poison>,
    /// Hostile answers in force, each for a number of answers or (`None`) until cleared.
    hostile: Vec<(Hostile, Option<u32>)>,
    /// Numbers the fresh links of [`Hostile::EndlessPages`].
    hops: u64,
}

/// How one delivery's record is spoiled, as a broken or hostile GitHub might report it.
#[derive(Debug, Clone, Default)]
pub struct Poison {
    /// Reported instead of the real `delivered_at`, in the list and in the delivery.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Request headers added to the recorded ones (any name and value, even ones HTTP cannot carry).
    pub headers: Vec<(String, String)>,
    /// The whole answer to a GET of the delivery, instead of its JSON (such as a truncated body).
    pub body: Option<String>,
}

/// A broken or hostile answer the fake gives in place of GitHub's, to prove hookfwd survives it.
/// Set with [`Faults::set_hostile`] or `POST /_fake/hostile` `{"answer": "link_loop", "times"?: n}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Hostile {
    /// A deliveries list answers a JSON array that never ends, streamed without a length.
    EndlessList,
    /// A single delivery answers this many bytes more than it would (padding generated as it is
    /// sent, never held), with its length declared.
    HugeDelivery {
        /// Padding bytes.
        bytes: u64,
    },
    /// A deliveries list's `rel="next"` link points back at its first page.
    LinkLoop,
    /// A deliveries list's `rel="next"` link is a fresh URL every time, serving the same page.
    EndlessPages,
    /// Every delivery of `event` is listed with a `delivered_at` that is not a time.
    MalformedItem {
        /// The event whose deliveries are listed broken, such as `push`.
        event: String,
    },
    /// Every answer says `remaining` calls are left until a reset `reset_in_s` seconds from now.
    FarRateReset {
        /// `x-ratelimit-remaining`.
        remaining: u32,
        /// `x-ratelimit-reset`, in seconds from now.
        reset_in_s: u64,
    },
    /// A deliveries list answers 304 even to a request that sent no `If-None-Match`.
    SpuriousNotModified,
    /// Guids in lists and deliveries end in terminal control sequences (ESC, BEL, CR, LF).
    ControlCharacters,
}

/// What the faults decide for one API request.
pub(crate) struct Verdict {
    /// Sleep this long before answering.
    pub latency: Duration,
    /// Close the connection without answering.
    pub drop: bool,
    /// Answer with this server error.
    pub server_error: Option<u16>,
    /// Answer 403 secondary rate limit with this `retry-after`.
    pub secondary: Option<Duration>,
}

impl FaultState {
    fn new() -> Self {
        Self {
            latency: Duration::ZERO,
            server_error_rate: 0.0,
            server_error_acc: 0.0,
            server_error_count: 0,
            drop_rate: 0.0,
            drop_acc: 0.0,
            secondary_left: 0,
            secondary_retry_after: Duration::ZERO,
            primary_exhausted_until: None,
            retention: DEFAULT_RETENTION,
            clock_skew: chrono::Duration::zero(),
            poisoned: HashMap::new(),
            hostile: Vec::new(),
            hops: 0,
        }
    }
}

impl Default for Faults {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(FaultState::new())))
    }
}

/// Adds `rate` to `acc` and says whether this request is one of the unlucky ones.
fn tick(acc: &mut f64, rate: f64) -> bool {
    if rate <= 0.0 {
        return false;
    }
    *acc += rate.min(1.0);
    if *acc >= 1.0 - 1e-9 {
        *acc -= 1.0;
        true
    } else {
        false
    }
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, FaultState> {
        // A panic while holding this lock leaves plain numbers behind, which stay usable.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `latency` to every API answer.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Answers this fraction of API requests with a 502 or 500 (alternating) and GitHub's error body.
    pub fn set_server_error_rate(&self, rate: f64) {
        let mut state = self.lock();
        state.server_error_rate = rate.clamp(0.0, 1.0);
        state.server_error_acc = 0.0;
    }

    /// The next `n` API requests answer 403 with `retry-after` and GitHub's secondary-rate-limit message.
    pub fn secondary_limit(&self, n: u32, retry_after: Duration) {
        let mut state = self.lock();
        state.secondary_left = n;
        state.secondary_retry_after = retry_after;
    }

    /// Exhausts every token's primary budget until `reset_in` from now.
    pub fn exhaust_primary(&self, reset_in: Duration) {
        let reset = Utc::now() + chrono::Duration::from_std(reset_in).unwrap_or(chrono::Duration::hours(1));
        self.lock().primary_exhausted_until = Some(reset);
    }

    /// Closes this fraction of API requests' connections without an answer.
    pub fn set_drop_rate(&self, rate: f64) {
        let mut state = self.lock();
        state.drop_rate = rate.clamp(0.0, 1.0);
        state.drop_acc = 0.0;
    }

    /// Forgets deliveries older than `retention` (GitHub keeps about three days).
    pub fn set_retention(&self, retention: Duration) {
        self.lock().retention = retention;
    }

    /// Reports every `delivered_at` shifted by `skew` (negative: GitHub's clock is behind).
    pub fn set_clock_skew(&self, skew: chrono::Duration) {
        self.lock().clock_skew = skew;
    }

    /// Spoils the record of delivery `id` as `poison` says, from now on.
    pub fn poison(&self, id: u64, poison: Poison) {
        self.lock().poisoned.insert(id, poison);
    }

    /// The `delivered_at` the API reports for delivery `id`, made at `at`.
    pub(crate) fn reported_time(&self, id: u64, at: DateTime<Utc>) -> DateTime<Utc> {
        let state = self.lock();
        match state.poisoned.get(&id).and_then(|poison| poison.delivered_at) {
            Some(at) => at,
            None => at.checked_add_signed(state.clock_skew).unwrap_or(at),
        }
    }

    /// How delivery `id`'s record is spoiled, if it is.
    pub(crate) fn poisoned(&self, id: u64) -> Option<Poison> {
        self.lock().poisoned.get(&id).cloned()
    }

    /// Gives `answer` in place of GitHub's, for the next `times` answers it applies to, or until cleared.
    pub fn set_hostile(&self, answer: Hostile, times: Option<u32>) {
        self.lock().hostile.push((answer, times));
    }

    /// Stops every hostile answer.
    pub fn clear_hostile(&self) {
        self.lock().hostile.clear();
    }

    /// The first hostile answer in force that `applies`, counting it as given.
    pub(crate) fn take_hostile(&self, applies: impl Fn(&Hostile) -> bool) -> Option<Hostile> {
        let mut state = self.lock();
        let index = state.hostile.iter().position(|(answer, _)| applies(answer))?;
        let (answer, times) = &mut state.hostile[index];
        let answer = answer.clone();
        if let Some(left) = times {
            *left = left.saturating_sub(1);
            if *left == 0 {
                state.hostile.remove(index);
            }
        }
        Some(answer)
    }

    /// A fresh number for an endless page's link.
    pub(crate) fn next_hop(&self) -> u64 {
        let mut state = self.lock();
        state.hops += 1;
        state.hops
    }

    /// Switches every fault off (retention goes back to three days).
    pub fn clear(&self) {
        *self.lock() = FaultState::new();
    }

    /// The current retention.
    pub fn retention(&self) -> Duration {
        self.lock().retention
    }

    /// When the exhausted primary budget resets, if it is exhausted now.
    pub(crate) fn primary_exhausted(&self) -> Option<DateTime<Utc>> {
        let mut state = self.lock();
        match state.primary_exhausted_until {
            Some(until) if until > Utc::now() => Some(until),
            Some(_) => {
                state.primary_exhausted_until = None;
                None
            }
            None => None,
        }
    }

    /// Decides the fate of one API request.
    pub(crate) fn judge(&self) -> Verdict {
        let mut guard = self.lock();
        let state = &mut *guard;
        let drop = tick(&mut state.drop_acc, state.drop_rate);
        let server_error = (!drop && tick(&mut state.server_error_acc, state.server_error_rate)).then(|| {
            state.server_error_count += 1;
            if state.server_error_count % 2 == 1 { 502 } else { 500 }
        });
        let secondary = (!drop && server_error.is_none() && state.secondary_left > 0).then(|| {
            state.secondary_left -= 1;
            state.secondary_retry_after
        });
        Verdict { latency: state.latency, drop, server_error, secondary }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_exact_fractions() {
        let faults = Faults::default();
        faults.set_server_error_rate(0.25);
        let failed = (0..100).filter(|_| faults.judge().server_error.is_some()).count();
        assert_eq!(failed, 25);
    }
}
