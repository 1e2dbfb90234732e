//! The poll interval many sources on one token can sustain, and where each source's polls fall in it.
//!
//! Two GitHub limits bound it: the secondary limit per endpoint (every source's list counts,
//! a 304 too), which the client's [`github::Pace`] keeps under, and the primary hourly budget, which
//! idle polls do not touch (GitHub answers them 304) but polls that find something do.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use github::{HookRef, Pace, RateLimit};

use super::poller::poll_interval;
use crate::Warning;

/// The interval chosen for a run, and why it is longer than asked, if it is.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The interval between a source's polls, from the start: the asked one or longer.
    pub(crate) interval: Duration,
    /// The interval in force at the start, when the primary budget is already low (it recovers at
    /// the reset, as [`poll_interval`] says poll by poll).
    pub(crate) in_force: Duration,
    /// Why, with the numbers, when the asked interval cannot be sustained.
    pub(crate) warning: Option<Warning>,
}

/// The endpoint a source's polls count against: `GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries`.
pub(crate) fn list_endpoint(hook: &HookRef) -> String {
    github::endpoint("GET", &format!("{}/deliveries", hook.path()))
}

/// The interval `hooks` can be polled at, asked to poll every `asked`, under `pace` and with `rate` left.
pub(crate) fn plan(asked: Duration, hooks: &[HookRef], pace: Pace, rate: RateLimit, now: DateTime<Utc>) -> Plan {
    let mut per_endpoint: HashMap<String, usize> = HashMap::new();
    for hook in hooks {
        *per_endpoint.entry(list_endpoint(hook)).or_default() += 1;
    }
    let busiest = per_endpoint.values().copied().max().unwrap_or(0);
    let sources = hooks.len();
    let mut warning = None;
    let interval = if !pace.sustains(busiest, asked) {
        let shortest = pace.shortest_interval(busiest).max(asked);
        let need = (busiest as f64 * 60.0 / asked.as_secs_f64().max(0.001)).round() as u64;
        warning = Some(Warning::EndpointBusy {
            busiest,
            sources,
            asked,
            calls_per_minute: need,
            limit_per_minute: pace.limit,
            kept_to: pace.polls_per_minute(),
            interval: shortest,
        });
        shortest
    } else {
        asked
    };
    let primary = poll_interval(interval, rate, sources, now);
    if primary > interval {
        warning = Some(Warning::BudgetLow {
            sources,
            interval,
            remaining: rate.remaining.map_or(0, u64::from),
            limit: rate.limit,
            reset_at: rate.reset_at,
            stretched: primary,
        });
    }
    Plan { interval, in_force: primary.max(interval), warning }
}

/// When the `index`th of `count` sources first polls: spread evenly over one `interval`, so
/// that their polls do not come in bursts.
pub(crate) fn first_poll(interval: Duration, index: usize, count: usize) -> Duration {
    if count <= 1 {
        return Duration::ZERO;
    }
    interval.mul_f64(index as f64 / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repos(n: usize) -> Vec<HookRef> {
        (0..n).map(|i| HookRef::Repo { owner: "acme".into(), repo: format!("r{i}"), id: i as u64 + 1 }).collect()
    }

    fn orgs(n: usize) -> Vec<HookRef> {
        (0..n).map(|i| HookRef::Org { org: format!("org{i}"), id: 1000 + i as u64 }).collect()
    }

    #[test]
    fn many_sources_on_one_endpoint_stretch_the_interval_and_say_so() {
        let now = Utc::now();
        let hooks = [repos(100), orgs(10)].concat();
        let plan = plan(Duration::from_secs(1), &hooks, Pace::default(), RateLimit::default(), now);
        // The repositories share one endpoint: 100 × 60 / 648 = 9.3 s, so 10 s; the organizations' is another.
        assert_eq!(plan.interval, Duration::from_secs(10));
        assert_eq!(plan.in_force, plan.interval);
        let Some(Warning::EndpointBusy {
            busiest,
            sources,
            asked,
            calls_per_minute,
            limit_per_minute,
            kept_to,
            interval,
        }) = plan.warning
        else {
            panic!("{:?}", plan.warning);
        };
        assert_eq!((busiest, sources, asked), (100, 110, Duration::from_secs(1)));
        assert_eq!((calls_per_minute, limit_per_minute, kept_to), (6000, 900, 648));
        assert_eq!(interval, Duration::from_secs(10));
    }

    #[test]
    fn an_interval_the_budget_sustains_is_kept_silently() {
        let now = Utc::now();
        let fast = plan(Duration::from_millis(100), &repos(1), Pace::default(), RateLimit::default(), now);
        assert_eq!(fast.interval, Duration::from_millis(100), "one source at 100ms is 600 a minute");
        let two = plan(Duration::from_millis(100), &repos(2), Pace::default(), RateLimit::default(), now);
        assert_eq!(two.interval, Duration::from_millis(200));
        let plan = plan(Duration::from_secs(1), &repos(10), Pace::default(), RateLimit::default(), now);
        assert_eq!((plan.interval, plan.in_force), (Duration::from_secs(1), Duration::from_secs(1)));
        assert!(plan.warning.is_none());
        let slow = super::plan(Duration::from_secs(30), &repos(300), Pace::default(), RateLimit::default(), now);
        assert_eq!(slow.interval, Duration::from_secs(30), "300 × 60 / 30 = 600 a minute fits in 648");
        assert!(slow.warning.is_none());
    }

    #[test]
    fn a_lowered_limit_is_planned_for_with_its_own_numbers() {
        let now = Utc::now();
        let pace = Pace::under(60, 100);
        // 48 a minute, 43 for polls: 30 sources need 30 × 60 / 43 = 41.9 s.
        let plan = plan(Duration::from_secs(1), &repos(30), pace, RateLimit::default(), now);
        assert_eq!(plan.interval, Duration::from_secs(42));
        let Some(Warning::EndpointBusy { busiest: 30, sources: 30, calls_per_minute, limit_per_minute, .. }) =
            plan.warning
        else {
            panic!("{:?}", plan.warning);
        };
        assert_eq!((calls_per_minute, limit_per_minute), (1800, 60));
    }

    #[test]
    fn a_low_primary_budget_is_the_tighter_one_when_it_is() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let reset_at = Some(now + chrono::TimeDelta::seconds(3600));
        let low = RateLimit { limit: Some(5000), remaining: Some(350), reset_at };
        let plan = plan(Duration::from_secs(1), &repos(3), Pace::default(), low, now);
        // 3 sources × 3600 s / (350 - 250) = 108 s, as the poller stretches it; the base stays.
        assert_eq!(plan.interval, Duration::from_secs(1));
        assert_eq!(plan.in_force, Duration::from_secs(108));
        let Some(Warning::BudgetLow { sources, interval, remaining, limit, reset_at: reset, stretched }) = plan.warning
        else {
            panic!("{:?}", plan.warning);
        };
        assert_eq!((sources, interval, remaining, limit), (3, Duration::from_secs(1), 350, Some(5000)));
        assert_eq!((reset, stretched), (reset_at, Duration::from_secs(108)));
    }

    #[test]
    fn first_polls_are_spread_over_one_interval() {
        let interval = Duration::from_secs(10);
        assert_eq!(first_poll(interval, 0, 1), Duration::ZERO);
        let firsts: Vec<Duration> = (0..4).map(|i| first_poll(interval, i, 4)).collect();
        assert_eq!(firsts, [0, 2500, 5000, 7500].map(Duration::from_millis));
    }
}
