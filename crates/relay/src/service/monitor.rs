//! What the events say about each source: set up or not, when it last made progress, whether
//! the delivery at the head of its queue is stuck; and the metrics fed from the same events.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::Utc;
use github::HookRef;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::time::Instant;

use super::metrics::{Labels, Metrics, status_class};
use crate::Event;

/// Progress is recent if it is no older than this many poll intervals…
const FRESH_INTERVALS: u32 = 3;
/// …or than this, whichever is longer.
const FRESH_AT_LEAST: Duration = Duration::from_secs(30);

/// Health and metrics of one run, fed with every [`Event`] (see [`Monitor::observe`]).
/// Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Monitor {
    /// What clones share.
    inner: Arc<Inner>,
}

/// What clones share.
struct Inner {
    /// Holds the metrics, for `/metrics`.
    registry: Registry,
    /// The metrics.
    metrics: Metrics,
    /// What the events said so far.
    state: Mutex<State>,
}

/// What the events said so far.
struct State {
    /// When the run started, for a setup that never ends.
    started: Instant,
    /// Every source was tried and polling started ([`Event::Ready`]).
    polling: bool,
    /// Each source by name.
    sources: BTreeMap<String, SourceHealth>,
    /// Which source a hook belongs to.
    hooks: HashMap<HookRef, String>,
    /// Why the shared ledger cannot be reached, while it cannot.
    ledger_down: Option<String>,
    /// How recent progress must be for `/readyz`: from the asked interval, then from the one in
    /// force once the run says it ([`Event::Ready`]), which many sources can stretch.
    fresh: Duration,
}

/// One source's health.
struct SourceHealth {
    /// Why it could not be set up, if it could not.
    failed: Option<String>,
    /// When it was set up.
    set_up: Instant,
    /// The last successful poll or stream message.
    progress: Option<Instant>,
    /// Since when deliveries have been waiting with none forwarded, if any are waiting.
    busy_since: Option<Instant>,
    /// The last failure to list, fetch or forward, for the reason.
    last_error: Option<String>,
}

/// A source that is not ready, and why: `/readyz`'s body lists these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotReady {
    /// The source (`owner/repo`, the org, or `app`); `None` before any source was set up.
    pub source: Option<String>,
    /// One sentence.
    pub reason: String,
}

impl Monitor {
    /// A monitor for a run polling every `interval`.
    pub fn new(interval: Duration) -> Self {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let state = State {
            started: Instant::now(),
            polling: false,
            sources: BTreeMap::new(),
            hooks: HashMap::new(),
            ledger_down: None,
            fresh: fresh_for(interval),
        };
        Self { inner: Arc::new(Inner { registry, metrics, state: Mutex::new(state) }) }
    }

    /// How recent a source's progress must be for `/readyz`: max(3 × interval, 30 s).
    pub fn fresh(&self) -> Duration {
        self.state().fresh
    }

    /// Counts a GitHub call; give this to [`github::Client::observe`].
    pub fn github_observer(&self) -> github::Observer {
        let requests = self.inner.metrics.github_requests.clone();
        Arc::new(move |endpoint: &str, status: &str| {
            let labels: Labels = vec![("endpoint", endpoint.to_string()), ("status", status.to_string())];
            requests.get_or_create(&labels).inc();
        })
    }

    /// Takes in one event of the run.
    pub fn observe(&self, event: &Event) {
        let metrics = &self.inner.metrics;
        let mut state = self.state();
        let now = Instant::now();
        match event {
            Event::HookReady { source, hook, .. } => {
                state.hooks.insert(hook.clone(), source.clone());
                state.sources.insert(source.clone(), SourceHealth::new(now, None));
            }
            Event::SourceFailed { source, error } => {
                state.sources.insert(source.clone(), SourceHealth::new(now, Some(error.clone())));
            }
            Event::Ready { interval, .. } => {
                state.polling = true;
                state.fresh = fresh_for(*interval);
                metrics.poll_interval.set(interval.as_secs_f64());
            }
            Event::Polled { hook, at, backlog, rate } => {
                let Some(name) = state.hooks.get(hook).cloned() else { return };
                if let Some(health) = state.sources.get_mut(&name) {
                    health.progress = Some(now);
                    health.busy_since = match (backlog, health.busy_since) {
                        (0, _) => None,
                        (_, Some(since)) => Some(since),
                        (_, None) => Some(now),
                    };
                }
                let labels: Labels = vec![("source", name)];
                metrics.backlog.get_or_create(&labels).set(i64::try_from(*backlog).unwrap_or(i64::MAX));
                metrics.last_progress.get_or_create(&labels).set(at.timestamp_millis() as f64 / 1000.0);
                if let Some(remaining) = rate.remaining {
                    metrics.rate_remaining.set(i64::from(remaining));
                }
            }
            Event::StreamAlive { hook } => {
                let Some(name) = state.hooks.get(hook).cloned() else { return };
                if let Some(health) = state.sources.get_mut(&name) {
                    health.progress = Some(now);
                }
                metrics
                    .last_progress
                    .get_or_create(&vec![("source", name)])
                    .set(Utc::now().timestamp_millis() as f64 / 1000.0);
            }
            Event::Answered { hook, item, status, latency, .. } => {
                let name = state.hooks.get(hook).cloned().unwrap_or_else(|| hook.to_string());
                let labels: Labels = vec![("source", name.clone()), ("status_class", status_class(*status))];
                metrics.forwarded.get_or_create(&labels).inc();
                metrics.forward_duration.observe(latency.as_secs_f64());
                let lag = (Utc::now() - item.delivered_at).num_milliseconds().max(0) as f64 / 1000.0;
                metrics.lag.observe(lag);
                // A 5xx is retried: the head of the queue has not moved.
                if *status < 500
                    && let Some(health) = state.sources.get_mut(&name)
                    && health.busy_since.is_some()
                {
                    health.busy_since = Some(now);
                }
            }
            // Parked: the head of the queue moved on.
            Event::Parked { hook, .. } => {
                let name = state.hooks.get(hook).cloned().unwrap_or_else(|| hook.to_string());
                if let Some(health) = state.sources.get_mut(&name)
                    && health.busy_since.is_some()
                {
                    health.busy_since = Some(now);
                }
            }
            Event::LedgerDown { reason } => state.ledger_down = reason.clone(),
            Event::Claims { outcome, count } => {
                metrics.claims.get_or_create(&vec![("outcome", (*outcome).to_string())]).inc_by(*count);
            }
            Event::Warning(crate::Warning::Unrecorded { source, .. }) => {
                metrics.unrecorded.get_or_create(&vec![("source", source.clone())]).inc();
            }
            Event::Retrying { hook, reason, .. } => state.note_error(hook, format!("the target: {reason}")),
            Event::Error { hook: Some(hook), call, error } => state.note_error(hook, failed(call, error)),
            _ => {}
        }
    }

    /// `Ok` if every source is set up and made progress recently, else each one that is not and why.
    pub fn readiness(&self) -> Result<(), Vec<NotReady>> {
        let state = self.state();
        let now = Instant::now();
        let fresh = state.fresh;
        let mut not_ready = Vec::new();
        if !state.polling {
            not_ready.push(NotReady { source: None, reason: "the sources are still being set up".into() });
        }
        if let Some(reason) = &state.ledger_down {
            not_ready
                .push(NotReady { source: None, reason: format!("{reason}; nothing is forwarded until it is back") });
        }
        for (name, health) in &state.sources {
            let reason = if let Some(error) = &health.failed {
                Some(format!("could not be set up: {error}"))
            } else {
                match health.progress {
                    None if state.polling => Some(format!(
                        "no successful poll yet, {}s after it was set up{}",
                        now.duration_since(health.set_up).as_secs(),
                        health.last_error_suffix()
                    )),
                    None => None,
                    Some(at) if now.duration_since(at) > fresh => Some(format!(
                        "no successful poll or stream message for {}s (more than {}s){}",
                        now.duration_since(at).as_secs(),
                        fresh.as_secs(),
                        health.last_error_suffix()
                    )),
                    Some(_) => None,
                }
            };
            if let Some(reason) = reason {
                not_ready.push(NotReady { source: Some(name.clone()), reason });
            }
        }
        if not_ready.is_empty() { Ok(()) } else { Err(not_ready) }
    }

    /// One sentence if some source made no progress for longer than `max_stall`: no successful
    /// poll, or deliveries waiting with none forwarded; or setup itself took that long.
    pub fn stalled(&self, max_stall: Duration) -> Option<String> {
        let state = self.state();
        let now = Instant::now();
        let limit = humantime::format_duration(max_stall);
        if !state.polling {
            return (now.duration_since(state.started) > max_stall)
                .then(|| format!("no source was set up within --max-stall {limit}"));
        }
        for (name, health) in state.sources.iter().filter(|(_, health)| health.failed.is_none()) {
            let since = health.progress.unwrap_or(health.set_up);
            if now.duration_since(since) > max_stall {
                return Some(format!(
                    "{name} made no progress (no successful poll or stream message) for longer than --max-stall {limit}{}",
                    health.last_error_suffix()
                ));
            }
            if health.busy_since.is_some_and(|since| now.duration_since(since) > max_stall) {
                return Some(format!(
                    "{name} forwarded nothing for longer than --max-stall {limit} while deliveries waited{}",
                    health.last_error_suffix()
                ));
            }
        }
        None
    }

    /// The metrics in the OpenMetrics text format.
    pub fn metrics_text(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail; the encoder fails only on a broken writer.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.inner.registry);
        text
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// max(3 × `interval`, 30 s).
fn fresh_for(interval: Duration) -> Duration {
    interval.saturating_mul(FRESH_INTERVALS).max(FRESH_AT_LEAST)
}

/// A failed call as `/readyz` and `--max-stall` name it after `last error:`.
fn failed(call: &crate::Call, error: &github::Error) -> String {
    match call {
        crate::Call::Start => error.to_string(),
        crate::Call::List { source } => format!("listing the deliveries of {source} failed: {error}"),
        crate::Call::Fetch { source, id } => format!("fetching delivery {id} of {source} failed: {error}"),
    }
}

impl State {
    fn note_error(&mut self, hook: &HookRef, message: String) {
        if let Some(health) = self.hooks.get(hook).and_then(|name| self.sources.get_mut(name)) {
            health.last_error = Some(message);
        }
    }
}

impl SourceHealth {
    fn new(now: Instant, failed: Option<String>) -> Self {
        Self { failed, set_up: now, progress: None, busy_since: None, last_error: None }
    }

    /// `; last error: …`, or nothing.
    fn last_error_suffix(&self) -> String {
        self.last_error.as_ref().map_or_else(String::new, |error| format!("; last error: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use github::{DeliveryItem, RateLimit};
    use url::Url;

    use super::*;
    use crate::HookOrigin;

    fn hook() -> HookRef {
        HookRef::Repo { owner: "octo".into(), repo: "hello".into(), id: 1 }
    }

    fn ready(monitor: &Monitor) {
        monitor.observe(&Event::HookReady {
            source: "octo/hello".into(),
            hook: hook(),
            origin: HookOrigin::Found,
            hook_url: None,
            target: Url::parse("http://127.0.0.1:1/").unwrap(),
            events: vec!["*".into()],
            streaming: false,
        });
        monitor.observe(&Event::Ready { sources: 1, interval: Duration::from_secs(1) });
    }

    fn polled(monitor: &Monitor, backlog: usize) {
        monitor.observe(&Event::Polled { hook: hook(), at: Utc::now(), backlog, rate: RateLimit::default() });
    }

    fn answered(monitor: &Monitor, status: u16) {
        let item: DeliveryItem = serde_json::from_value(serde_json::json!({
            "id": 1, "guid": "g", "delivered_at": Utc::now(), "redelivery": false, "duration": 0.1,
            "status": "OK", "status_code": 200, "event": "push"
        }))
        .unwrap();
        monitor.observe(&Event::Answered {
            hook: hook(),
            item,
            target: Url::parse("http://127.0.0.1:1/").unwrap(),
            status,
            latency: Duration::from_millis(5),
            via: crate::Via::Api,
            answer: crate::request::Answer { headers: Vec::new(), body: Vec::new(), body_length: 0 },
            request: Arc::new(crate::Outgoing::synthetic("push", b"{}", None)),
        });
    }

    #[tokio::test(start_paused = true)]
    async fn ready_after_a_poll_and_not_once_polls_stop_for_the_fresh_window() {
        let monitor = Monitor::new(Duration::from_secs(1));
        assert_eq!(monitor.fresh(), Duration::from_secs(30));
        assert!(monitor.readiness().is_err(), "not ready while setting up");
        ready(&monitor);
        polled(&monitor, 0);
        assert_eq!(monitor.readiness(), Ok(()));
        tokio::time::advance(Duration::from_secs(31)).await;
        let not_ready = monitor.readiness().unwrap_err();
        assert_eq!(not_ready[0].source.as_deref(), Some("octo/hello"));
        assert!(not_ready[0].reason.contains("no successful poll or stream message for 31s"), "{not_ready:?}");
        polled(&monitor, 0);
        assert_eq!(monitor.readiness(), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stretched_interval_stretches_what_counts_as_recent() {
        let monitor = Monitor::new(Duration::from_secs(1));
        monitor.observe(&Event::HookReady {
            source: "octo/hello".into(),
            hook: hook(),
            origin: HookOrigin::Found,
            hook_url: None,
            target: Url::parse("http://localhost:3000/").unwrap(),
            events: Vec::new(),
            streaming: false,
        });
        monitor.observe(&Event::Ready { sources: 1, interval: Duration::from_secs(20) });
        assert_eq!(monitor.fresh(), Duration::from_secs(60));
        polled(&monitor, 0);
        tokio::time::advance(Duration::from_secs(45)).await;
        assert_eq!(monitor.readiness(), Ok(()), "two polls of 20 s may pass without one");
        assert!(monitor.metrics_text().contains("hookfwd_poll_interval_seconds 20.0"));
    }

    #[tokio::test(start_paused = true)]
    async fn stream_messages_are_progress_between_rare_safety_polls() {
        let monitor = Monitor::new(Duration::from_secs(1));
        ready(&monitor);
        polled(&monitor, 0);
        for _ in 0..10 {
            tokio::time::advance(Duration::from_secs(15)).await;
            monitor.observe(&Event::StreamAlive { hook: hook() });
        }
        assert_eq!(monitor.readiness(), Ok(()));
        assert_eq!(monitor.stalled(Duration::from_secs(20)), None);
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(monitor.readiness().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_source_that_failed_setup_keeps_the_run_unready() {
        let monitor = Monitor::new(Duration::from_secs(1));
        ready(&monitor);
        monitor.observe(&Event::SourceFailed { source: "octo/gone".into(), error: "not found".into() });
        polled(&monitor, 0);
        let not_ready = monitor.readiness().unwrap_err();
        assert_eq!(not_ready.len(), 1);
        assert_eq!(not_ready[0].source.as_deref(), Some("octo/gone"));
        assert!(monitor.stalled(Duration::from_secs(1)).is_none(), "a failed source is not polled, so not stalled");
    }

    #[tokio::test(start_paused = true)]
    async fn stalls_without_polls_or_with_a_stuck_head() {
        let monitor = Monitor::new(Duration::from_secs(1));
        let max = Duration::from_secs(20);
        tokio::time::advance(Duration::from_secs(21)).await;
        assert!(monitor.stalled(max).unwrap().contains("no source was set up"));
        ready(&monitor);
        polled(&monitor, 0);
        tokio::time::advance(Duration::from_secs(19)).await;
        assert_eq!(monitor.stalled(max), None);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(monitor.stalled(max).unwrap().contains("no successful poll"));

        polled(&monitor, 3);
        tokio::time::advance(Duration::from_secs(15)).await;
        polled(&monitor, 3);
        answered(&monitor, 503);
        tokio::time::advance(Duration::from_secs(6)).await;
        polled(&monitor, 3);
        assert!(monitor.stalled(max).unwrap().contains("forwarded nothing"), "a 5xx does not move the head");
        answered(&monitor, 200);
        assert_eq!(monitor.stalled(max), None);
        tokio::time::advance(Duration::from_secs(21)).await;
        polled(&monitor, 0);
        assert_eq!(monitor.stalled(max), None, "an empty queue is not stuck");
    }

    #[tokio::test(start_paused = true)]
    async fn a_parked_delivery_moves_the_head_of_the_queue() {
        let monitor = Monitor::new(Duration::from_secs(1));
        let max = Duration::from_secs(20);
        ready(&monitor);
        polled(&monitor, 3);
        tokio::time::advance(Duration::from_secs(15)).await;
        answered(&monitor, 500);
        tokio::time::advance(Duration::from_secs(6)).await;
        polled(&monitor, 3);
        assert!(monitor.stalled(max).is_some(), "rejected, not yet parked: stuck");
        let item: DeliveryItem = serde_json::from_value(serde_json::json!({
            "id": 1, "guid": "g", "delivered_at": Utc::now(), "redelivery": false, "duration": 0.1,
            "status": "OK", "status_code": 200, "event": "push"
        }))
        .unwrap();
        let answer = crate::request::Answer::default();
        let target = url::Url::parse("http://127.0.0.1:3000/").unwrap();
        monitor.observe(&Event::Parked {
            hook: hook(),
            item,
            target,
            via: crate::Via::Api,
            attempts: 3,
            status: 500,
            answer,
        });
        assert_eq!(monitor.stalled(max), None, "parked: the queue moves on");
    }

    #[tokio::test]
    async fn metrics_carry_the_documented_names_and_labels() {
        let monitor = Monitor::new(Duration::from_secs(1));
        ready(&monitor);
        polled(&monitor, 2);
        answered(&monitor, 202);
        (monitor.github_observer())("GET /repos/{owner}/{repo}/hooks", "200");
        let text = monitor.metrics_text();
        for line in [
            r#"hookfwd_deliveries_forwarded_total{source="octo/hello",status_class="2xx"} 1"#,
            "hookfwd_forward_duration_seconds_count 1",
            "hookfwd_delivery_lag_seconds_count 1",
            r#"hookfwd_backlog{source="octo/hello"} 2"#,
            r#"hookfwd_github_requests_total{endpoint="GET /repos/{owner}/{repo}/hooks",status="200"} 1"#,
            "hookfwd_github_rate_limit_remaining 0",
            r#"hookfwd_last_progress_timestamp_seconds{source="octo/hello"} "#,
            "hookfwd_poll_interval_seconds 1.0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
