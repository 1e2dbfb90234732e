//! GitHub's secondary rate limits: points a minute per endpoint and requests in flight, per caller.
//!
//! On by default with GitHub's figures (900 points a minute for one endpoint, counted per route
//! template such as `GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries`, where a GET costs 1 point
//! and a write 5; 100 requests at once), so that every test sees a client that bursts. Tests
//! lower or switch them off through `POST /_fake/secondary`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// GitHub's figures.
pub const PER_MINUTE: u32 = 900;
/// GitHub's figures.
pub const CONCURRENT: u32 = 100;
/// The window points are counted over.
const WINDOW: Duration = Duration::from_secs(60);

/// The secondary limits in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondaryLimits {
    /// Points a minute per endpoint per caller; `None`: unlimited.
    pub per_minute: Option<u32>,
    /// Requests in flight per caller; `None`: unlimited.
    pub concurrent: Option<u32>,
}

impl Default for SecondaryLimits {
    fn default() -> Self {
        Self { per_minute: Some(PER_MINUTE), concurrent: Some(CONCURRENT) }
    }
}

/// Why a request was refused, and how long the caller should wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Too many points on this endpoint in the last minute: wait until enough have aged out.
    PerMinute { retry_after: Duration },
    /// Too many requests at once.
    Concurrent,
}

#[derive(Default)]
struct State {
    limits: SecondaryLimits,
    /// Points spent per (caller, endpoint), with when, for the sliding minute.
    spent: HashMap<(String, String), VecDeque<(Instant, u32)>>,
    /// Requests in flight per caller.
    in_flight: HashMap<String, u32>,
    /// The most requests one caller had in flight at once.
    peak: u32,
}

/// The limits and what each caller spent.
#[derive(Clone, Default)]
pub(crate) struct Secondary(Arc<Mutex<State>>);

/// A request in flight, counted until it is dropped.
pub(crate) struct InFlight {
    secondary: Secondary,
    caller: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.secondary.lock();
        if let Some(count) = state.in_flight.get_mut(&self.caller) {
            *count = count.saturating_sub(1);
        }
    }
}

impl Secondary {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn limits(&self) -> SecondaryLimits {
        self.lock().limits
    }

    /// Sets the limits and forgets what was spent.
    pub(crate) fn set(&self, limits: SecondaryLimits) {
        let mut state = self.lock();
        state.limits = limits;
        state.spent.clear();
    }

    /// The most requests one caller had in flight at once so far.
    pub(crate) fn peak(&self) -> u32 {
        self.lock().peak
    }

    /// Counts a request of `caller` in flight, or refuses it when the caller has as many as allowed.
    pub(crate) fn enter(&self, caller: &str) -> Result<InFlight, Refusal> {
        let mut state = self.lock();
        let limit = state.limits.concurrent;
        let count = state.in_flight.entry(caller.to_string()).or_default();
        if limit.is_some_and(|limit| *count >= limit) {
            return Err(Refusal::Concurrent);
        }
        *count += 1;
        let now = *count;
        state.peak = state.peak.max(now);
        Ok(InFlight { secondary: self.clone(), caller: caller.to_string() })
    }

    /// Spends `points` of `caller` on `endpoint` at `now`, or refuses them (spending nothing) when
    /// the last minute holds too many already.
    pub(crate) fn spend(&self, caller: &str, endpoint: &str, points: u32, now: Instant) -> Result<(), Refusal> {
        let mut state = self.lock();
        let Some(limit) = state.limits.per_minute else { return Ok(()) };
        let spent = state.spent.entry((caller.to_string(), endpoint.to_string())).or_default();
        while spent.front().is_some_and(|(at, _)| now.saturating_duration_since(*at) >= WINDOW) {
            spent.pop_front();
        }
        let total: u32 = spent.iter().map(|(_, points)| points).sum();
        if total + points <= limit {
            spent.push_back((now, points));
            return Ok(());
        }
        // Until enough of the oldest points leave the minute.
        let mut freed = 0;
        let mut retry_after = WINDOW;
        for (at, spent_points) in spent.iter() {
            freed += spent_points;
            if total - freed + points <= limit {
                retry_after = (*at + WINDOW).saturating_duration_since(now);
                break;
            }
        }
        Err(Refusal::PerMinute { retry_after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries";

    #[test]
    fn points_are_counted_per_caller_and_endpoint_over_a_sliding_minute() {
        let secondary = Secondary::default();
        secondary.set(SecondaryLimits { per_minute: Some(3), concurrent: None });
        let start = Instant::now();
        for _ in 0..3 {
            secondary.spend("t1", LIST, 1, start).unwrap();
        }
        let later = start + Duration::from_secs(20);
        assert_eq!(
            secondary.spend("t1", LIST, 1, later),
            Err(Refusal::PerMinute { retry_after: Duration::from_secs(40) })
        );
        // Another endpoint, another caller: their own minutes.
        secondary.spend("t1", "GET /orgs/{org}/hooks/{hook_id}/deliveries", 1, later).unwrap();
        secondary.spend("t2", LIST, 1, later).unwrap();
        // A write costs more than is left.
        assert!(secondary.spend("t2", LIST, 5, later).is_err());
        // A refused request spent nothing; a minute later the first points are gone.
        secondary.spend("t1", LIST, 1, start + WINDOW).unwrap();
    }

    #[test]
    fn requests_in_flight_are_capped_per_caller() {
        let secondary = Secondary::default();
        secondary.set(SecondaryLimits { per_minute: None, concurrent: Some(2) });
        let first = secondary.enter("t1").unwrap();
        let _second = secondary.enter("t1").unwrap();
        assert_eq!(secondary.enter("t1").err(), Some(Refusal::Concurrent));
        let _other = secondary.enter("t2").unwrap();
        drop(first);
        let _third = secondary.enter("t1").unwrap();
        assert_eq!(secondary.peak(), 2);
    }
}
