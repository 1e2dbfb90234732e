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

/// The interval chosen for a run, and why it is longer than asked, if it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The interval between a source's polls, from the start: the asked one or longer.
    pub(crate) interval: Duration,
    /// The interval in force at the start, when the primary budget is already low (it recovers at
    /// the reset, as [`poll_interval`] says poll by poll).
    pub(crate) in_force: Duration,
    /// One sentence with the numbers, when the asked interval cannot be sustained.
    pub(crate) warning: Option<String>,
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
        let sharing = if busiest == sources { String::new() } else { format!(" (of {sources})") };
        warning = Some(format!(
            "{busiest} sources{sharing} at {} would need {} list calls a minute on one endpoint, over GitHub's {} per \
             endpoint (hookfwd keeps to {}); polling every {}",
            human(asked),
            thousands(need),
            thousands(u64::from(pace.limit)),
            thousands(u64::from(pace.polls_per_minute())),
            human(shortest),
        ));
        shortest
    } else {
        asked
    };
    let primary = poll_interval(interval, rate, sources, now);
    if primary > interval {
        let left = rate.remaining.map_or(0, u64::from);
        let limit =
            rate.limit.map_or_else(String::new, |limit| format!(" of GitHub's {} an hour", thousands(limit.into())));
        let reset =
            rate.reset_at.map_or_else(String::new, |at| format!(" before it resets at {}", at.format("%H:%M:%S UTC")));
        warning = Some(format!(
            "{sources} sources at {} could spend the {} calls left{limit}{reset} when their polls find deliveries; \
             polling every {} until then",
            human(interval),
            thousands(left),
            human(primary),
        ));
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

/// `8s`, `1m 30s`, `250ms`.
fn human(duration: Duration) -> String {
    let rounded = if duration >= Duration::from_secs(1) { Duration::from_secs(duration.as_secs()) } else { duration };
    humantime::format_duration(rounded).to_string()
}

/// `6,600`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
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
        assert_eq!(
            plan.warning.as_deref(),
            Some(
                "100 sources (of 110) at 1s would need 6,000 list calls a minute on one endpoint, over GitHub's 900 \
                 per endpoint (hookfwd keeps to 648); polling every 10s"
            )
        );
    }

    #[test]
    fn an_interval_the_budget_sustains_is_kept_silently() {
        let now = Utc::now();
        let fast = plan(Duration::from_millis(100), &repos(1), Pace::default(), RateLimit::default(), now);
        assert_eq!(fast.interval, Duration::from_millis(100), "one source at 100ms is 600 a minute");
        let two = plan(Duration::from_millis(100), &repos(2), Pace::default(), RateLimit::default(), now);
        assert_eq!(two.interval, Duration::from_millis(200));
        let plan = plan(Duration::from_secs(1), &repos(10), Pace::default(), RateLimit::default(), now);
        assert_eq!(plan, Plan { interval: Duration::from_secs(1), in_force: Duration::from_secs(1), warning: None });
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
        let warning = plan.warning.unwrap();
        assert!(warning.starts_with("30 sources at 1s would need 1,800 list calls a minute"), "{warning}");
        assert!(warning.contains("over GitHub's 60 per endpoint"), "{warning}");
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
        let warning = plan.warning.unwrap();
        assert!(
            warning.starts_with(
                "3 sources at 1s could spend the 350 calls left of GitHub's 5,000 an hour before it resets at"
            ),
            "{warning}"
        );
        assert!(warning.ends_with("polling every 1m 48s until then"), "{warning}");
    }

    #[test]
    fn first_polls_are_spread_over_one_interval() {
        let interval = Duration::from_secs(10);
        assert_eq!(first_poll(interval, 0, 1), Duration::ZERO);
        let firsts: Vec<Duration> = (0..4).map(|i| first_poll(interval, i, 4)).collect();
        assert_eq!(firsts, [0, 2500, 5000, 7500].map(Duration::from_millis));
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(thousands(6600), "6,600");
        assert_eq!(thousands(900), "900");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(human(Duration::from_millis(8400)), "8s");
        assert_eq!(human(Duration::from_millis(250)), "250ms");
    }
}
