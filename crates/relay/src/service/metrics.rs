//! The Prometheus metrics, named as `docs/service.md` lists them.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A label set as `(name, value)` pairs.
pub(super) type Labels = Vec<(&'static str, String)>;

/// Every metric, registered in one registry.
pub(super) struct Metrics {
    /// `hookfwd_deliveries_forwarded_total{source,status_class}`: answers from the target.
    pub forwarded: Family<Labels, Counter>,
    /// `hookfwd_forward_duration_seconds`: from sending a delivery to the target's answer.
    pub forward_duration: Histogram,
    /// `hookfwd_delivery_lag_seconds`: from GitHub's `delivered_at` to the target's answer.
    pub lag: Histogram,
    /// `hookfwd_backlog{source}`: deliveries listed and not yet forwarded, as of the last poll.
    pub backlog: Family<Labels, Gauge>,
    /// `hookfwd_github_requests_total{endpoint,status}`: every answer from GitHub (`error`: none came).
    pub github_requests: Family<Labels, Counter>,
    /// `hookfwd_github_rate_limit_remaining`: calls left in GitHub's window, as of the last poll.
    pub rate_remaining: Gauge,
    /// `hookfwd_last_progress_timestamp_seconds{source}`: the last successful poll or stream message, Unix seconds.
    pub last_progress: Family<Labels, Gauge<f64, AtomicU64>>,
    /// `hookfwd_claims_total{outcome}`: claims on shared-ledger deliveries that changed hands.
    pub claims: Family<Labels, Counter>,
    /// `hookfwd_poll_interval_seconds`: the poll interval in force, longer than asked when GitHub's limits need it.
    pub poll_interval: Gauge<f64, AtomicU64>,
    /// `hookfwd_pushed_unrecorded_total{source}`: deliveries the stream brought that GitHub has no record of.
    pub unrecorded: Family<Labels, Counter>,
}

impl Metrics {
    /// Registers every metric in `registry`, which adds the `_total` suffix to counters.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            forwarded: Family::default(),
            // 1 ms to about 65 s.
            forward_duration: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            // 50 ms to about 14 h: lag includes time spent offline, up to GitHub's 3 days and beyond.
            lag: Histogram::new(exponential_buckets(0.05, 2.0, 21)),
            backlog: Family::default(),
            github_requests: Family::default(),
            rate_remaining: Gauge::default(),
            last_progress: Family::default(),
            claims: Family::default(),
            poll_interval: Gauge::default(),
            unrecorded: Family::default(),
        };
        registry.register(
            "hookfwd_deliveries_forwarded",
            "Deliveries the target answered, by source and status class (2xx, 4xx, 5xx)",
            metrics.forwarded.clone(),
        );
        registry.register(
            "hookfwd_forward_duration_seconds",
            "Time from sending a delivery to the target's answer",
            metrics.forward_duration.clone(),
        );
        registry.register(
            "hookfwd_delivery_lag_seconds",
            "Time from GitHub's delivered_at to the target's answer",
            metrics.lag.clone(),
        );
        registry.register(
            "hookfwd_backlog",
            "Deliveries listed and not yet forwarded, as of the source's last poll",
            metrics.backlog.clone(),
        );
        registry.register(
            "hookfwd_github_requests",
            "Answers from the GitHub API by endpoint template and status (error: none came)",
            metrics.github_requests.clone(),
        );
        registry.register(
            "hookfwd_github_rate_limit_remaining",
            "Calls left in GitHub's primary rate-limit window, as of the last poll",
            metrics.rate_remaining.clone(),
        );
        registry.register(
            "hookfwd_last_progress_timestamp_seconds",
            "When the source last made progress (a successful poll or stream message), in Unix seconds",
            metrics.last_progress.clone(),
        );
        registry.register(
            "hookfwd_claims",
            "Claims on deliveries in the shared (Redis) ledger that changed hands: taken_over from another \
             replica, or lost to one",
            metrics.claims.clone(),
        );
        registry.register(
            "hookfwd_poll_interval_seconds",
            "The poll interval in force: the asked one, or longer when GitHub's limits cannot sustain it",
            metrics.poll_interval.clone(),
        );
        registry.register(
            "hookfwd_pushed_unrecorded",
            "Deliveries the blackhole pushed and hookfwd forwarded that GitHub's list of the hook's deliveries \
             still lacked two polls later: a signed delivery sent to the hook URL again, by someone else",
            metrics.unrecorded.clone(),
        );
        metrics
    }
}

/// `2xx`, `4xx`, …: one label value per class, not per code.
pub(super) fn status_class(status: u16) -> String {
    format!("{}xx", status / 100)
}
