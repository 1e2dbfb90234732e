//! Where a source starts forwarding: now, `--since`, or where its ledger ends.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use github::{Backoff, DeliveryItem, HookRef, Page};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::ledger::{self, FileLedger, RedisLedger, SharedLedger, State};
use crate::{Call, Error, Event, Warning};

use super::poller::warn_skipped;
use super::{Ctx, PER_PAGE, RETENTION, SourceRun, blocking, wait_after};

/// A source's ledger, opened or created, and what to forward first.
pub(super) enum Begun {
    /// The file under the state directory.
    File(FileLedger, Vec<DeliveryItem>),
    /// The ledger replicas share in Redis.
    Redis(RedisLedger, Vec<DeliveryItem>),
}

/// Where a source starts forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartingPoint {
    /// No ledger, no `--since`: the newest listed delivery is the starting point.
    StartNow,
    /// No ledger: forward everything delivered from this time on.
    StartFrom(DateTime<Utc>),
    /// Resume from the ledger; with `extend_to`, also forward what it has not recorded since then.
    Resume {
        /// `--since` reaching before the ledger's origin.
        extend_to: Option<DateTime<Utc>>,
        /// The last poll is older than GitHub's retention: some deliveries may be gone.
        stale: bool,
    },
}

/// Decides where to start from the ledger (its origin and last poll), `--since`, whether hookfwd
/// created the hook (`created`), and the time.
///
/// A hook hookfwd created has no past before it: without a ledger, everything it delivered is
/// forwarded, GitHub's `ping` for its creation included. Deciding that by what the first listing
/// happens to hold instead would make the ping's fate a race between GitHub's whole-second
/// `delivered_at` and the moment forwarding starts.
pub(crate) fn starting_point(
    ledger: Option<(DateTime<Utc>, DateTime<Utc>)>,
    since: Option<Duration>,
    created: bool,
    now: DateTime<Utc>,
) -> StartingPoint {
    let from = since.map(|since| crate::since::cutoff(now, since));
    let retention = TimeDelta::from_std(RETENTION).unwrap_or(TimeDelta::MAX);
    match ledger {
        None if created => {
            StartingPoint::StartFrom(now.checked_sub_signed(retention).unwrap_or(DateTime::<Utc>::MIN_UTC))
        }
        None => from.map_or(StartingPoint::StartNow, StartingPoint::StartFrom),
        Some((origin, checked)) => {
            StartingPoint::Resume { extend_to: from.filter(|from| *from < origin), stale: now - checked > retention }
        }
    }
}

/// Opens or creates the ledger (the file, or the one replicas share) and lists what to forward
/// first. `None` when cancelled.
pub(super) async fn start(ctx: &Ctx, source: &SourceRun, cancel: &CancellationToken) -> Result<Option<Begun>, Error> {
    if let Some(replicas) = &ctx.replicas {
        let ledger = replicas.connection.hook(&replicas.instance, &source.hook, &replicas.id);
        return start_shared(ctx, source, ledger, cancel).await;
    }
    let dir = source.ledger_dir.clone();
    let hook = source.hook.clone();
    let mut existing = blocking(move || FileLedger::open(&dir, &hook)).await?;
    for warning in existing.as_mut().map(FileLedger::take_warnings).unwrap_or_default() {
        ctx.events.warn(warning).await;
    }
    let (dir, hook) = (ctx.settings.state_dir.clone(), source.hook.clone());
    let created = blocking(move || Ok(ledger::created_by_hookfwd(&dir, &hook))).await?;
    let now = Utc::now();
    let point =
        starting_point(existing.as_ref().map(|l| (l.origin(), l.last_checked())), ctx.settings.since, created, now);
    debug!(hook = %source.hook, ?point, "start");
    let mut backoff = Backoff::default();
    loop {
        let attempt = start_once(ctx, source, &point, existing.as_ref(), now).await;
        match attempt {
            Ok(Begin::Create { origin, done, first }) => {
                let (dir, hook) = (source.ledger_dir.clone(), source.hook.clone());
                let ledger = blocking(move || FileLedger::create(&dir, &hook, origin, done, Utc::now())).await?;
                return Ok(Some(Begun::File(ledger, first)));
            }
            Ok(Begin::Resume { known, extend_to, first }) => {
                let Some(mut ledger) = existing else {
                    return Err(Error::Ledger {
                        path: ctx.settings.state_dir.clone(),
                        action: "read",
                        source: std::io::Error::other("the ledger vanished while starting"),
                    });
                };
                if let StartingPoint::Resume { stale: true, .. } = point {
                    let (source, last_polled) = (source.name.clone(), ledger.last_checked());
                    ctx.events.warn(Warning::StalePoll { source, last_polled, retention: RETENTION }).await;
                }
                if let Some(origin) = extend_to {
                    ledger = blocking(move || {
                        ledger.extend_back(origin, known)?;
                        ledger.durable().block().map(|()| ledger)
                    })
                    .await?;
                }
                return Ok(Some(Begun::File(ledger, first)));
            }
            // Only what may pass is worth waiting for: a refusal fails the source at once.
            Err(error) if !error.is_transient() => return Err(Error::GitHub(error)),
            Err(error) => {
                let error = Arc::new(error);
                let hook = Some(source.hook.clone());
                ctx.events.emit(Event::Error { hook, call: Call::Start, error: error.clone() }).await;
                let wait = wait_after(&error, &mut backoff);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = cancel.cancelled() => return Ok(None),
                }
            }
        }
    }
}

/// Starts a source on the ledger replicas share: the first replica of a hook decides where
/// forwarding starts (now, or `--since`), as with a new file ledger; the others, and later runs,
/// list from the shared floor. Waits while Redis or GitHub cannot be reached. `None` when cancelled.
async fn start_shared(
    ctx: &Ctx,
    source: &SourceRun,
    ledger: SharedLedger,
    cancel: &CancellationToken,
) -> Result<Option<Begun>, Error> {
    let (dir, hook) = (ctx.settings.state_dir.clone(), source.hook.clone());
    let created = blocking(move || Ok(ledger::created_by_hookfwd(&dir, &hook))).await?;
    let mut backoff = Backoff::default();
    let mut down = false;
    loop {
        let attempt = tokio::select! {
            attempt = start_shared_once(ctx, source, &ledger, created) => attempt,
            () = cancel.cancelled() => return Ok(None),
        };
        let wait = match attempt {
            Ok((state, first)) => {
                if down {
                    ctx.events.emit(Event::LedgerDown { reason: None }).await;
                }
                let retention = TimeDelta::from_std(RETENTION).unwrap_or(TimeDelta::MAX);
                if Utc::now() - state.checked > retention {
                    let (source, last_polled) = (source.name.clone(), state.checked);
                    ctx.events.warn(Warning::StalePoll { source, last_polled, retention: RETENTION }).await;
                }
                if let Some(since) = ctx.settings.since
                    && crate::since::cutoff(Utc::now(), since) < state.origin
                {
                    let (source, origin) = (source.name.clone(), state.origin);
                    ctx.events.warn(Warning::SinceBeforeSharedLedger { source, origin }).await;
                }
                let events = ctx.events.0.clone();
                let replica =
                    RedisLedger::new(ledger, state.floor, ctx.settings.fetch_concurrency, events, cancel.clone());
                return Ok(Some(Begun::Redis(replica, first)));
            }
            Err(Failure::GitHub(error)) if !error.is_transient() => return Err(Error::GitHub(error)),
            Err(Failure::GitHub(error)) => {
                let error = Arc::new(error);
                let hook = Some(source.hook.clone());
                ctx.events.emit(Event::Error { hook, call: Call::Start, error: error.clone() }).await;
                wait_after(&error, &mut backoff)
            }
            Err(Failure::Ledger(error)) => {
                if !std::mem::replace(&mut down, true) {
                    let reason = format!("the ledger at {} cannot be reached ({error})", ledger.shown());
                    ctx.events.emit(Event::LedgerDown { reason: Some(reason) }).await;
                }
                backoff.next_wait()
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => return Ok(None),
        }
    }
}

/// What stopped one attempt to start on the shared ledger.
enum Failure {
    /// GitHub.
    GitHub(github::Error),
    /// Redis.
    Ledger(redis::RedisError),
}

/// One attempt: the shared state (created if this is the hook's first replica), and every listed
/// delivery from its floor on (the claims sort out which are handled).
async fn start_shared_once(
    ctx: &Ctx,
    source: &SourceRun,
    ledger: &SharedLedger,
    created: bool,
) -> Result<(State, Vec<DeliveryItem>), Failure> {
    let now = Utc::now();
    if let Some(state) = ledger.state().await.map_err(Failure::Ledger)? {
        let first = scan_all(ctx, &source.hook, state.floor).await.map_err(Failure::GitHub)?;
        return Ok((state, first));
    }
    let point = starting_point(None, ctx.settings.since, created, now);
    let (origin, done, first) = match point {
        StartingPoint::StartFrom(from) => {
            (from, Vec::new(), scan_all(ctx, &source.hook, from).await.map_err(Failure::GitHub)?)
        }
        _ => {
            let page = first_page(&ctx.client, &source.hook).await.map_err(Failure::GitHub)?;
            warn_skipped(ctx, page.skipped).await;
            let newest = page.items.iter().map(|item| item.delivered_at).max().unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
            let origin = ledger::trusted(newest, now);
            let done: Vec<_> =
                page.items.iter().filter(|i| i.delivered_at >= origin).map(|i| (i.id, i.delivered_at)).collect();
            (origin, done, Vec::new())
        }
    };
    let state = ledger.create(origin, &done, now).await.map_err(Failure::Ledger)?;
    if state.origin != origin {
        // Another replica started the hook first: list from its floor.
        let first = scan_all(ctx, &source.hook, state.floor).await.map_err(Failure::GitHub)?;
        return Ok((state, first));
    }
    Ok((state, first))
}

/// What the first listing decided.
pub(super) enum Begin {
    /// A new ledger from `origin`, with `done` counting as handled; `first` to forward.
    Create { origin: DateTime<Utc>, done: Vec<(u64, DateTime<Utc>)>, first: Vec<DeliveryItem> },
    /// The existing ledger; `known` were forwarded before (for `extend_to`); `first` to forward.
    Resume { known: Vec<(u64, DateTime<Utc>)>, extend_to: Option<DateTime<Utc>>, first: Vec<DeliveryItem> },
}

pub(super) async fn start_once(
    ctx: &Ctx,
    source: &SourceRun,
    point: &StartingPoint,
    ledger: Option<&FileLedger>,
    now: DateTime<Utc>,
) -> Result<Begin, github::Error> {
    let client = &ctx.client;
    let hook = &source.hook;
    match (point, ledger) {
        (StartingPoint::StartNow, _) => {
            let page = first_page(client, hook).await?;
            warn_skipped(ctx, page.skipped).await;
            // An empty list: whatever shows up later is new. As far as the clock trusts it, so a
            // delivery stamped in the future cannot hide the ones after it; what is listed now
            // counts as handled either way.
            let newest = page.items.iter().map(|item| item.delivered_at).max().unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
            let origin = ledger::trusted(newest, now);
            let items = page.items;
            let done = items.iter().filter(|i| i.delivered_at >= origin).map(|i| (i.id, i.delivered_at)).collect();
            Ok(Begin::Create { origin, done, first: Vec::new() })
        }
        (StartingPoint::StartFrom(from), _) => {
            let first = scan_all(ctx, hook, *from).await?;
            Ok(Begin::Create { origin: *from, done: Vec::new(), first })
        }
        (StartingPoint::Resume { extend_to, .. }, Some(ledger)) => {
            let stop_before = extend_to.unwrap_or(ledger.floor()).min(ledger.floor());
            let items = scan_all(ctx, hook, stop_before).await?;
            let (origin, floor) = (ledger.origin(), ledger.floor());
            let mut known = Vec::new();
            let mut first = Vec::new();
            for item in items {
                if extend_to.is_some() && item.delivered_at >= origin && item.delivered_at < floor {
                    known.push((item.id, item.delivered_at));
                } else if extend_to.is_some_and(|to| item.delivered_at >= to && item.delivered_at < origin)
                    || !ledger.is_recorded(item.id, item.delivered_at)
                {
                    first.push(item);
                }
            }
            Ok(Begin::Resume { known, extend_to: *extend_to, first })
        }
        (StartingPoint::Resume { .. }, None) => Ok(Begin::Create { origin: now, done: Vec::new(), first: Vec::new() }),
    }
}

/// Every listed delivery from `stop_before` on, paging back as far as needed.
pub(super) async fn scan_all(
    ctx: &Ctx,
    hook: &HookRef,
    stop_before: DateTime<Utc>,
) -> Result<Vec<DeliveryItem>, github::Error> {
    let page = ctx.client.deliveries_since(hook, stop_before).await?;
    warn_skipped(ctx, page.skipped).await;
    Ok(page.items)
}

/// The newest page, in full even if this client listed it before (a 304 would hide it).
pub(super) async fn first_page(client: &github::Client, hook: &HookRef) -> Result<Page, github::Error> {
    client.newest_deliveries(hook, PER_PAGE).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn without_a_ledger_starts_now_or_at_since() {
        assert_eq!(starting_point(None, None, false, at(0)), StartingPoint::StartNow);
        assert_eq!(starting_point(None, Some(HOUR), false, at(7200)), StartingPoint::StartFrom(at(3600)));
    }

    #[test]
    fn a_hook_hookfwd_created_is_forwarded_from_before_its_first_delivery() {
        let three_days = RETENTION.as_secs() as i64;
        assert_eq!(
            starting_point(None, None, true, at(0)),
            StartingPoint::StartFrom(at(-three_days)),
            "its creation ping too"
        );
        assert_eq!(starting_point(None, Some(HOUR), true, at(0)), StartingPoint::StartFrom(at(-three_days)));
        // Once it has a ledger, it resumes like any other.
        let ledger = Some((at(-10), at(-5)));
        assert_eq!(starting_point(ledger, None, true, at(0)), StartingPoint::Resume { extend_to: None, stale: false });
    }

    #[test]
    fn with_a_ledger_resumes_and_extends_only_back() {
        let ledger = Some((at(1000), at(5000)));
        assert_eq!(
            starting_point(ledger, None, false, at(6000)),
            StartingPoint::Resume { extend_to: None, stale: false }
        );
        // --since reaching after the origin adds nothing: the ledger covers it.
        assert_eq!(
            starting_point(ledger, Some(HOUR), false, at(6000)),
            StartingPoint::Resume { extend_to: None, stale: false }
        );
        assert_eq!(
            starting_point(ledger, Some(2 * HOUR), false, at(6000)),
            StartingPoint::Resume { extend_to: Some(at(-1200)), stale: false }
        );
    }

    #[test]
    fn warns_when_the_gap_is_longer_than_retention() {
        let ledger = Some((at(0), at(0)));
        let later = at(RETENTION.as_secs() as i64 + 60);
        assert_eq!(starting_point(ledger, None, false, later), StartingPoint::Resume { extend_to: None, stale: true });
    }
}
