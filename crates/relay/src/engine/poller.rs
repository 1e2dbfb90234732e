//! The poller: lists new deliveries every interval and queues them for the forwarder. While the
//! source's stream is healthy it is only the safety net, listing every `--safety-interval`
//! (a conditional request, free when nothing changed); a doorbell makes it list at once, but never
//! sooner than `--interval` after the last list, however many ring (anyone can POST to the hook URL).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use github::{Backoff, DeliveryItem, Listing, NextPage, Page, RateLimit};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::ledger::{self, WINDOW};
use crate::{Call, Error, Event, Warning};

use super::owner::Handle;
use super::{Ctx, PER_PAGE, SourceRun, is_auth, wait_after};

/// The poll interval: the configured one while a fifth or more of the budget is left (idle
/// polls answer 304 and cost nothing, so there is no reason to slow down); below that,
/// stretched so that `sources` polling at this pace, each poll costing a call, cannot spend
/// the rate budget (less a reserve) before it resets.
pub(crate) fn poll_interval(base: Duration, rate: RateLimit, sources: usize, now: DateTime<Utc>) -> Duration {
    let (Some(remaining), Some(reset_at)) = (rate.remaining, rate.reset_at) else { return base };
    if rate.limit.is_some_and(|limit| u64::from(remaining) * 5 >= u64::from(limit)) {
        return base;
    }
    let to_reset = (reset_at - now).to_std().unwrap_or(Duration::ZERO);
    // Keep 5% (at least 10 calls) for fetching payloads and for the user's other tools.
    let reserve = rate.limit.map_or(50, |limit| (limit / 20).max(10));
    if remaining <= reserve {
        return base.max(to_reset + Duration::from_secs(1));
    }
    let needed = to_reset.mul_f64(sources.max(1) as f64 / f64::from(remaining - reserve));
    base.max(needed)
}

/// An unfinished scan, kept when a later page failed: page one will answer 304 next time,
/// so the rest must be listed from where it stopped.
pub(super) struct Resume {
    /// The next page to list, if the scan must go on.
    next: Option<NextPage>,
    /// Unknown deliveries found so far.
    found: Vec<DeliveryItem>,
    /// The newest delivery listed so far.
    newest: Option<DateTime<Utc>>,
    /// Where the scan ends.
    stop_before: DateTime<Utc>,
    /// Whether the scan goes all the way to `stop_before`, or stops at a page it wholly knows.
    deep: bool,
}

/// How often a poll that finds something new pages back the whole window for late arrivals;
/// the others stop at the first page they wholly know, so a busy hook costs a page or two a poll.
/// Well under [`WINDOW`], so a late arrival is caught before the floor passes it.
pub(super) const DEEP_SCAN_EVERY: Duration = Duration::from_secs(60);

/// Lists new deliveries every interval and queues them for the forwarder.
pub(super) async fn poll_loop(
    ctx: Arc<Ctx>,
    source: Arc<SourceRun>,
    owner: Handle,
    first: Duration,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let mut poll_now = owner.poll_now.clone();
    let mut warned_missed = false;
    let mut backoff = Backoff::default();
    let mut resume: Option<Resume> = None;
    // The newest delivery ever listed: later scans page back only a window before it.
    let mut newest_listed: Option<DateTime<Utc>> = None;
    // The start scanned everything it had to.
    let mut last_deep_scan = tokio::time::Instant::now();
    // The start listed every source at once already; from here on each polls at its own place in
    // the interval, so that many sources' polls do not come in bursts.
    let mut next_at = tokio::time::Instant::now() + first;
    // When the last list began: doorbells wait until `--interval` after it.
    let mut listed_at: Option<tokio::time::Instant> = None;
    // Since when every poll was refused a permission: a scope taken away mid-run.
    let mut forbidden_since: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next_at) => {}
            changed = poll_now.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let earliest = listed_at.map(|at| at + ctx.settings.interval);
                if let Some(earliest) = earliest.filter(|at| *at > tokio::time::Instant::now()) {
                    next_at = next_at.min(earliest);
                    continue;
                }
            }
            () = cancel.cancelled() => return Ok(()),
        }
        listed_at = Some(tokio::time::Instant::now());
        let mut wait;
        let polled = tokio::select! {
            polled = poll_once(&ctx, &source, &owner, &mut resume, &mut newest_listed, last_deep_scan.elapsed() >= DEEP_SCAN_EVERY) => polled,
            () = cancel.cancelled() => return Ok(()),
        };
        let rate = ctx.client.rate_limit();
        match polled {
            Ok((found, deep)) => {
                backoff.reset();
                forbidden_since = None;
                let queued = owner.listed(found?).await?;
                if queued.missed > 0 && !std::mem::replace(&mut warned_missed, true) {
                    ctx.events.warn(Warning::StreamMissed { source: source.name.clone() }).await;
                }
                for guid in queued.unrecorded {
                    ctx.events.warn(Warning::Unrecorded { source: source.name.clone(), guid }).await;
                }
                if deep {
                    last_deep_scan = tokio::time::Instant::now();
                }
                let backlog = owner.backlog().await?;
                debug!(hook = %source.hook, queued = queued.queued, backlog, "polled");
                ctx.events.emit(Event::Polled { hook: source.hook.clone(), at: Utc::now(), backlog, rate }).await;
                owner.checked().await;
                let plan = owner.plan().await?;
                let base = if plan.safety_only { ctx.settings.safety_interval } else { ctx.settings.interval };
                wait = poll_interval(base, rate, ctx.sources, Utc::now());
                if let Some(due) = plan.due_in {
                    wait = wait.min(due);
                }
                if wait > base {
                    let until = TimeDelta::from_std(wait)
                        .ok()
                        .and_then(|wait| Utc::now().checked_add_signed(wait))
                        .unwrap_or(DateTime::<Utc>::MAX_UTC);
                    let left = rate.remaining.map_or_else(String::new, |left| format!(" ({left} left)"));
                    let reason =
                        format!("the GitHub rate budget is low{left}, so polls are spaced out until it resets");
                    ctx.events.emit(Event::Waiting { until, reason }).await;
                }
            }
            Err(error) if is_auth(&error) => return Err(Error::GitHub(error)),
            Err(error @ github::Error::Forbidden { .. })
                if forbidden_since.get_or_insert_with(tokio::time::Instant::now).elapsed()
                    >= ctx.settings.forbidden_for =>
            {
                return Err(Error::GitHub(error));
            }
            Err(error) => {
                if !matches!(error, github::Error::Forbidden { .. }) {
                    forbidden_since = None;
                }
                debug!(hook = %source.hook, "poll failed");
                let (hook, error) = (Some(source.hook.clone()), Arc::new(error));
                let call = Call::List { source: source.name.clone() };
                ctx.events.emit(Event::Error { hook, call, error: error.clone() }).await;
                wait = wait_after(&error, &mut backoff).max(ctx.settings.interval);
            }
        }
        next_at = tokio::time::Instant::now() + wait;
    }
}

/// One poll: a conditional list, then older pages down to what the ledger holds.
pub(super) async fn poll_once(
    ctx: &Ctx,
    source: &SourceRun,
    owner: &Handle,
    resume: &mut Option<Resume>,
    newest_listed: &mut Option<DateTime<Utc>>,
    deep: bool,
) -> Result<(Result<Vec<DeliveryItem>, Error>, bool), github::Error> {
    // Each target of a hook lists it with ETags of its own: another target's poll must not make it miss a change.
    let client = &source.lister;
    let mut state = match client.list_deliveries(&source.hook, PER_PAGE).await? {
        Listing::NotModified => match resume.take() {
            Some(state) => state,
            None => return Ok((Ok(Vec::new()), false)),
        },
        Listing::Page(mut page) => {
            warn_skipped(ctx, std::mem::take(&mut page.skipped)).await;
            let known = match owner.known(page.items.clone()).await {
                Ok(known) => known,
                Err(error) => return Ok((Err(error), false)),
            };
            let window = TimeDelta::from_std(WINDOW).unwrap_or(TimeDelta::MAX);
            let floor = known.0;
            // Late arrivals are late relative to what was listed, so a window before the newest
            // listed delivery is enough; never above the floor, where the ledger forgets ids.
            let stop_before = newest_listed.and_then(|n| n.checked_sub_signed(window)).map_or(floor, |t| t.max(floor));
            let mut state = Resume { next: None, found: Vec::new(), newest: None, stop_before, deep };
            state.next = take_page(&mut state, page, &known.1);
            state
        }
    };
    while let Some(next) = state.next.clone() {
        match client.next_deliveries(&next).await {
            Ok(mut page) => {
                warn_skipped(ctx, std::mem::take(&mut page.skipped)).await;
                let known = match owner.known(page.items.clone()).await {
                    Ok((_, known)) => known,
                    Err(error) => return Ok((Err(error), false)),
                };
                state.next = take_page(&mut state, page, &known);
            }
            // A list that loops or never ends: keep what it gave, and start afresh next time
            // (following the same link again would only fail again).
            Err(error @ (github::Error::PagingLoop { .. } | github::Error::TooManyPages { .. })) => {
                // A ledger that cannot be written stops the forwarder at its next record anyway.
                if let Err(ledger) = owner.listed(state.found).await {
                    debug!(hook = %source.hook, error = %ledger, "could not queue what the list gave");
                }
                return Err(error);
            }
            Err(error) => {
                *resume = Some(state);
                return Err(error);
            }
        }
    }
    // A delivery stamped in the future must not stop later scans short of the ones after it.
    let newest = state.newest.map(|newest| ledger::trusted(newest, Utc::now()));
    *newest_listed = (*newest_listed).max(newest);
    Ok((Ok(state.found), state.deep))
}

/// One warning per listed item that could not be read.
pub(super) async fn warn_skipped(ctx: &Ctx, skipped: Vec<github::Unreadable>) {
    for item in skipped {
        ctx.events.warn(Warning::UnreadableListing { item }).await;
    }
}

/// Tells the user about every wait of the GitHub client that is longer than `interval`, until `cancel`.
pub(super) async fn announce_waits(
    client: github::Client,
    events: super::Emitter,
    interval: Duration,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let mut waits = client.waits();
    loop {
        tokio::select! {
            changed = waits.changed() => if changed.is_err() { return Ok(()) },
            () = cancel.cancelled() => return Ok(()),
        }
        let wait = waits.borrow_and_update().clone();
        if let Some(wait) = wait
            && (wait.until - Utc::now()).to_std().is_ok_and(|left| left > interval)
        {
            events.emit(Event::Waiting { until: wait.until, reason: wait.reason }).await;
        }
    }
}

/// Keeps a page's unknown deliveries (`known` says which are known, item by item); the next
/// page's link if the scan must go on.
pub(super) fn take_page(state: &mut Resume, page: Page, known: &[bool]) -> Option<NextPage> {
    let reached = page.items.iter().any(|item| item.delivered_at < state.stop_before);
    let mut wholly_known = !page.items.is_empty();
    for (item, known) in page.items.into_iter().zip(known.iter().copied().chain(std::iter::repeat(false))) {
        state.newest = state.newest.max(Some(item.delivered_at));
        if item.delivered_at >= state.stop_before && !known {
            wholly_known = false;
            state.found.push(item);
        }
    }
    if reached || (wholly_known && !state.deep) { None } else { page.next }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn stretches_the_interval_when_the_budget_runs_low() {
        let base = Duration::from_secs(1);
        let now = at(0);
        let plenty = RateLimit { limit: Some(5000), remaining: Some(4900), reset_at: Some(at(3600)) };
        assert_eq!(poll_interval(base, plenty, 1, now), base);
        let fast = Duration::from_millis(100);
        assert_eq!(poll_interval(fast, plenty, 4, now), fast, "a full budget never slows idle polls");
        let fifth = RateLimit { limit: Some(5000), remaining: Some(999), reset_at: Some(at(3600)) };
        // 1 source × 3600 s / (999 - 250) ≈ 4.8 s once less than a fifth is left.
        assert!(poll_interval(base, fifth, 1, now) > Duration::from_secs(4));
        let low = RateLimit { limit: Some(5000), remaining: Some(350), reset_at: Some(at(3600)) };
        // 3 sources × 3600 s / (350 - 250) = 108 s.
        assert_eq!(poll_interval(base, low, 3, now), Duration::from_secs(108));
        let spent = RateLimit { limit: Some(5000), remaining: Some(100), reset_at: Some(at(600)) };
        assert_eq!(poll_interval(base, spent, 1, now), Duration::from_secs(601));
        assert_eq!(poll_interval(base, RateLimit::default(), 5, now), base);
    }
}
