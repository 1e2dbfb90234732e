//! The forwarder: takes each source's deliveries (listed or pushed) in order, forwards each to the
//! target, and records it, or skips and records one that can never be forwarded.
//!
//! The handler being down (unreachable, a timeout, a 502, 503 or 504: it is restarting) is
//! retried until it is back. A 5xx from a live handler is a rejection of this delivery: with
//! [`OnHandlerError::Park`], after `max_attempts` of them the delivery is parked in the ledger and
//! the queue moves on, so one bad delivery never holds up the rest.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use github::DeliveryItem;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, info, instrument, warn};

use crate::filter::Filter;
use crate::ledger::{self, Durable};
use crate::request::Answer;
use crate::{Error, Event, OnHandlerError, Outgoing, SendError, SkipReason, Via, Warning};
use github::Backoff;

use super::fetch::{Budget, Fetched, fetch, size};
use super::owner::Handle;
use super::state::{How, Pending, Pushed, Taken};
use super::{Ctx, SourceRun};

/// How long GitHub waits for a hook's answer before it counts the delivery as failed.
const GITHUB_TIMEOUT: Duration = Duration::from_secs(10);

/// What one delivery made of the target.
pub(super) enum Delivered {
    /// The target answered (other than 5xx): record it.
    Answered,
    /// The request can never be sent (a header HTTP cannot carry): skip it, for this reason.
    Invalid(SkipReason),
    /// The live handler rejected it `attempts` times, the last with `status`: park it.
    Parked {
        /// The rejections.
        attempts: u32,
        /// The last rejection's status.
        status: u16,
        /// The last rejection's answer.
        answer: Answer,
    },
    /// The run stopped first.
    Stopped,
}

/// A delivery in the window, and what it waits for.
enum Ready {
    /// Settled without being forwarded: not among the rule's events (as forwarded), or another
    /// source forwards the same original delivery to the same target (as a duplicate).
    Settled(How),
    /// GitHub's exact bytes, from the stream: nothing to fetch.
    Pushed(Arc<Pushed>),
    /// Its payload, fetched in a task of its own, with its size.
    Fetching(AbortOnDropHandle<(Fetched, u64)>),
}

/// The most deliveries recorded and not yet on disk before the forwarder waits for the oldest:
/// records sync in groups while it forwards, and a crash repeats at most this many.
pub(super) const UNSYNCED: usize = 32;

/// What the forwarder keeps between deliveries: the window of deliveries taken, and the records
/// not yet on disk.
struct Pipeline {
    ctx: Arc<Ctx>,
    source: Arc<SourceRun>,
    owner: Handle,
    cancel: CancellationToken,
    /// Fetches at once.
    permits: Arc<Semaphore>,
    /// The fetch window's bytes.
    budget: Arc<Budget>,
    /// Deliveries taken, oldest first.
    window: VecDeque<(Taken, Ready)>,
    /// Records not yet on disk, oldest first.
    unsynced: VecDeque<Durable>,
}

impl Pipeline {
    /// Takes more of the queue into the window: up to twice as many as may be fetched at once
    /// (so that `fetch_concurrency` GETs stay in flight while fetched deliveries wait their turn),
    /// and no more bytes than the budget allows. `head` counts the oldest, out of the window while
    /// it is awaited.
    async fn fill(&mut self, head: usize) -> Result<(), Error> {
        let concurrency = self.ctx.settings.fetch_concurrency.max(1);
        while self.window.len() + head < 2 * concurrency && self.budget.admits(self.window.len() + head) {
            let Some(taken) = self.owner.take().await? else { break };
            let ready = self.ready(&taken);
            self.window.push_back((taken, ready));
        }
        Ok(())
    }

    /// What a taken delivery waits for: settled in its turn, its bytes at hand, or its fetch.
    fn ready(&self, taken: &Taken) -> Ready {
        let (ctx, source) = (&self.ctx, &self.source);
        let item = taken.pending.item();
        if !source.wants(&item) {
            // Not among --events, --action or the App's installations and repositories.
            return Ready::Settled(How::Forwarded);
        }
        if is_duplicate(ctx, source, &taken.pending) {
            return Ready::Settled(How::Duplicate);
        }
        let pushed = match &taken.pending {
            Pending::Pushed(pushed) | Pending::Listed(_, Some(pushed)) => pushed,
            Pending::Listed(item, None) => {
                let (ctx, source, cancel, permits, budget) =
                    (ctx.clone(), source.clone(), self.cancel.clone(), self.permits.clone(), self.budget.clone());
                budget.fetching.fetch_add(1, Ordering::SeqCst);
                let item = item.clone();
                return Ready::Fetching(AbortOnDropHandle::new(tokio::spawn(async move {
                    let outcome = {
                        // The semaphore is never closed, so a permit always comes.
                        let _permit = permits.acquire_owned().await;
                        fetch(&ctx, &source, &item, &cancel).await
                    };
                    let size = size(&outcome);
                    budget.fetched(size);
                    budget.fetching.fetch_sub(1, Ordering::SeqCst);
                    (outcome, size)
                })));
            }
        };
        // Its bytes are bounded where the stream took them in.
        Ready::Pushed(pushed.clone())
    }

    /// Records `taken`, keeping at most [`UNSYNCED`] records waiting for the disk.
    async fn settle(&mut self, taken: Taken, how: How) -> Result<(), Error> {
        let durable = self.owner.settle(taken, how).await?;
        self.unsynced.push_back(durable);
        while self.unsynced.front().is_some_and(Durable::is_done) {
            self.unsynced.pop_front();
        }
        while self.unsynced.len() > UNSYNCED {
            if let Some(oldest) = self.unsynced.pop_front() {
                oldest.wait().await?;
            }
        }
        Ok(())
    }
}

/// Takes queued deliveries oldest first, fetches a few ahead, forwards each in order, records it.
///
/// A delivery that can never be forwarded (unreadable, too large, a header HTTP cannot carry) is
/// skipped with one warning and recorded as skipped, so the rest of the source goes on.
pub(super) async fn forward_loop(
    ctx: Arc<Ctx>,
    source: Arc<SourceRun>,
    owner: Handle,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let mut queued = owner.queued.clone();
    let permits = Arc::new(Semaphore::new(ctx.settings.fetch_concurrency.max(1)));
    let mut this = Pipeline {
        ctx: ctx.clone(),
        source: source.clone(),
        owner: owner.clone(),
        cancel: cancel.clone(),
        permits,
        budget: Arc::new(Budget::default()),
        window: VecDeque::new(),
        unsynced: VecDeque::new(),
    };
    let mut warned_future = false;
    let mut retry = fresh(&ctx.settings.retry_now);
    // This run's parked deliveries, sent again when the user asks (the `r` key).
    let mut parked: Vec<(Pending, DeliveryItem)> = Vec::new();
    // A press seen while idle (waiting for it marks it seen).
    let mut again = false;
    loop {
        if std::mem::take(&mut again) || retry.as_mut().is_some_and(|retry| retry.has_changed().unwrap_or(false)) {
            if let Some(retry) = retry.as_mut() {
                retry.borrow_and_update();
            }
            if !send_parked_again(&ctx, &source, &owner, &mut parked, &cancel).await? {
                return Ok(());
            }
        }
        queued.borrow_and_update();
        this.fill(0).await?;
        let Some((mut taken, ready)) = this.window.pop_front() else {
            // Everything recorded is worth having on disk before waiting for more.
            while let Some(oldest) = this.unsynced.pop_front() {
                oldest.wait().await?;
            }
            tokio::select! {
                changed = queued.changed() => if changed.is_err() { return Ok(()) } else { continue },
                () = pressed(&mut retry) => {
                    again = true;
                    continue;
                }
                () = cancel.cancelled() => return Ok(()),
            }
        };
        let item = taken.pending.item();
        let (via, request, size) = match ready {
            Ready::Settled(how) => {
                debug!(delivery = item.id, event = %item.event, ?how, "settled without forwarding");
                this.settle(taken, how).await?;
                continue;
            }
            Ready::Pushed(pushed) => {
                let request = Outgoing::from_pushed(&pushed.headers, &pushed.body, source.secret.as_ref());
                (Via::Stream, Ok(request), 0)
            }
            Ready::Fetching(mut fetching) => {
                // While the oldest is fetched, newly queued deliveries join the window.
                let joined = loop {
                    tokio::select! {
                        joined = &mut fetching => break joined,
                        changed = queued.changed() => match changed {
                            Ok(()) => this.fill(1).await?,
                            Err(_) => return Ok(()),
                        },
                        () = cancel.cancelled() => return Ok(()),
                    }
                };
                let (outcome, size) = match joined {
                    Ok(done) => done,
                    Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                    // Aborted only when the runtime shuts down.
                    Err(_) => return Ok(()),
                };
                let request = match outcome {
                    Fetched::Cancelled => return Ok(()),
                    Fetched::Refused(error) => return Err(Error::GitHub(error)),
                    Fetched::Gone => Err(SkipReason::Gone),
                    Fetched::Poison(error) => Err(SkipReason::Refused(Arc::new(error))),
                    Fetched::Delivery(delivery) => {
                        let signature = delivery.header("x-hub-signature-256").or(delivery.header("x-hub-signature"));
                        taken.body = signature.and_then(ledger::body_key);
                        Ok(Outgoing::from_delivery(&delivery, source.secret.as_ref()))
                    }
                };
                (Via::Api, request, size)
            }
        };
        let listed = matches!(taken.pending, Pending::Listed(..));
        if listed && !warned_future && ledger::is_future(item.delivered_at, Utc::now()) {
            warned_future = true;
            let (source, id, delivered_at) = (source.name.clone(), item.id, item.delivered_at);
            ctx.events.warn(Warning::FutureDelivery { source, id, delivered_at, skew: ledger::SKEW }).await;
        }
        // Only a listed delivery can belong to another replica: a pushed one is never asked about.
        if request.is_ok() && listed && !owner.confirm(taken.clone()).await? {
            // Another replica holds it now: it is not this one's to forward.
            this.budget.forwarded(size);
            continue;
        }
        if let (Ok(request), Some(filter)) = (&request, &source.filter)
            && !passes(&ctx, filter, request, &item).await
        {
            // Handled: a restart neither fetches nor forwards it again.
            this.budget.forwarded(size);
            this.settle(taken, How::Forwarded).await?;
            let (hook, target) = (source.hook.clone(), Some(source.forwarder.target().0.clone()));
            ctx.events.emit(Event::Filtered { hook, item, via, target }).await;
            continue;
        }
        let delivered = match request {
            // Shared with the events (the inspector, --record) without a copy of the payload.
            Ok(request) => deliver(&ctx, &source, &item, &Arc::new(request), via, &cancel).await,
            Err(reason) => Delivered::Invalid(reason),
        };
        this.budget.forwarded(size);
        match delivered {
            Delivered::Stopped => return Ok(()),
            Delivered::Answered => this.settle(taken, How::Forwarded).await?,
            Delivered::Parked { attempts, status, answer } => {
                info!(delivery = item.id, attempts, status, "parked");
                if parked.len() < MAX_PARKED_AGAIN {
                    parked.push((taken.pending.clone(), item.clone()));
                }
                this.settle(taken, How::Parked).await?;
                let hook = source.hook.clone();
                let target = source.forwarder.target().0.clone();
                ctx.events.emit(Event::Parked { hook, item, target, via, attempts, status, answer }).await;
            }
            Delivered::Invalid(reason) => {
                // No guid here: the log writes fields as they are, and GitHub's (or a hostile API's) may hold escapes.
                warn!(delivery = item.id, "skipped");
                let skipped = Warning::Skipped { source: source.name.clone(), item, pushed: !listed, reason };
                ctx.events.warn(skipped).await;
                this.settle(taken, How::Skipped).await?;
            }
        }
    }
}

/// Whether `filter` lets `request` through. One that fails (an error, a value other than true or
/// false) counts as no, and is warned about once per filter and run: it may fail on every delivery.
async fn passes(ctx: &Ctx, filter: &Filter, request: &Outgoing, item: &DeliveryItem) -> bool {
    match request.passes(filter, &item.event, item.action.as_deref()) {
        Ok(passes) => passes,
        Err(error) => {
            debug!(delivery = item.id, "the filter failed");
            // A poisoned lock only means another forwarder panicked: warning twice is harmless.
            let first = ctx.warned_filters.lock().map_or(true, |mut warned| warned.insert(filter.expr().to_owned()));
            if first {
                let (filter, item) = (filter.expr().to_owned(), item.clone());
                ctx.events.warn(Warning::FilterFailed { filter, item, error }).await;
            }
            false
        }
    }
}

/// POSTs one delivery until the target answers other than 5xx, or the request proves unsendable.
#[instrument(skip_all, fields(delivery = item.id, event = %item.event))]
pub(super) async fn deliver(
    ctx: &Ctx,
    source: &SourceRun,
    item: &DeliveryItem,
    request: &std::sync::Arc<Outgoing>,
    via: Via,
    cancel: &CancellationToken,
) -> Delivered {
    let mut backoff = Backoff::default();
    // A refused connection is a local handler restarting: tried again at least every REFUSED_CAP.
    let mut refused = Backoff::new(Backoff::BASE, REFUSED_CAP);
    let mut attempt = 0;
    let mut rejections = 0;
    let mut retry = fresh(&ctx.settings.retry_now);
    let hook = source.hook.clone();
    ctx.events.emit(Event::Delivering { hook, item: item.clone(), via, request: request.clone() }).await;
    loop {
        attempt += 1;
        let sent = tokio::select! {
            sent = source.forwarder.send(request.as_ref()) => sent,
            () = cancel.cancelled() => return Delivered::Stopped,
        };
        let mut waits = &mut backoff;
        let reason = match sent {
            Ok(response) => {
                info!(delivery = item.id, status = response.status, "forwarded");
                if response.latency > GITHUB_TIMEOUT && !ctx.warned_slow.swap(true, Ordering::Relaxed) {
                    let (item, latency) = (item.clone(), response.latency);
                    ctx.events.warn(Warning::SlowHandler { item, latency, limit: GITHUB_TIMEOUT }).await;
                }
                ctx.events
                    .emit(Event::Answered {
                        hook: source.hook.clone(),
                        item: item.clone(),
                        target: source.forwarder.target().0.clone(),
                        status: response.status,
                        latency: response.latency,
                        via,
                        answer: response.answer.clone(),
                        request: request.clone(),
                    })
                    .await;
                // The most common mistake: the handler verifies with another secret than hookfwd signs with.
                if matches!(response.status, 401 | 403) && !ctx.warned_unauthorized.swap(true, Ordering::Relaxed) {
                    let (status, signed) = (response.status, source.secret.is_some());
                    ctx.events.warn(Warning::HandlerUnauthorized { status, signed }).await;
                }
                if !response.is_retryable() {
                    return Delivered::Answered;
                }
                if !is_down(response.status) {
                    rejections += 1;
                    if ctx.settings.on_handler_error == OnHandlerError::Park
                        && rejections >= ctx.settings.max_attempts.max(1)
                    {
                        let (status, answer) = (response.status, response.answer);
                        return Delivered::Parked { attempts: rejections, status, answer };
                    }
                }
                response.status.to_string()
            }
            Err(error) if !error.is_transient() => return Delivered::Invalid(SkipReason::Unsendable(error)),
            Err(error) => {
                if error == SendError::Refused {
                    waits = &mut refused;
                }
                error.to_string()
            }
        };
        let wait = tenths(waits.next_wait());
        debug!(delivery = item.id, attempt, reason = %reason, "target unavailable; retrying");
        let (hook, target) = (source.hook.clone(), source.forwarder.target().0.clone());
        ctx.events.emit(Event::Retrying { hook, item: item.clone(), target, reason, wait, attempt }).await;
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            // The user asked to retry now.
            () = pressed(&mut retry) => (backoff, refused) = (Backoff::default(), Backoff::new(Backoff::BASE, REFUSED_CAP)),
            () = cancel.cancelled() => return Delivered::Stopped,
        }
    }
}

/// The longest wait between attempts while the handler refuses connections: it is a local handler,
/// back within seconds of a restart, and a refused connection costs it nothing. The exponential
/// backoff up to [`Backoff::CAP`] stays for 5xx answers and timeouts, which a loaded handler gives.
pub(crate) const REFUSED_CAP: Duration = Duration::from_secs(2);

/// `wait` rounded to a tenth of a second (at least one): the wait the feed and `--json` report is
/// the one slept, to the same digit.
fn tenths(wait: Duration) -> Duration {
    Duration::from_millis((wait.as_millis() as u64).div_ceil(100).max(1) * 100)
}

/// The most parked deliveries of one run kept to send again on the `r` key (the rest: `replay --parked`).
const MAX_PARKED_AGAIN: usize = 100;

/// Whether the handler's `status` says it is down or restarting (a proxy's or a load balancer's
/// answer), rather than rejecting this delivery.
fn is_down(status: u16) -> bool {
    matches!(status, 502..=504)
}

/// Whether another source forwards this original delivery to the same target (see [`super::overlap`]).
fn is_duplicate(ctx: &Ctx, source: &SourceRun, pending: &Pending) -> bool {
    // The App's hook is another kind of delivery (it names the installation), not a copy of a repository's.
    if !ctx.settings.dedupe || ctx.sources < 2 || matches!(source.hook, github::HookRef::App { .. }) {
        return false;
    }
    let guid = match pending {
        // A redelivery was asked for on this hook: it is forwarded whatever the others did.
        Pending::Listed(item, _) if item.redelivery => return false,
        Pending::Listed(item, _) => &item.guid,
        Pending::Pushed(pushed) => &pushed.guid,
    };
    ctx.overlaps.is_elsewhere(&source.name, source.forwarder.target().0.as_str(), guid)
}

/// A receiver of the `r` key's presses that counts only those from now on.
fn fresh(retry: &Option<tokio::sync::watch::Receiver<u64>>) -> Option<tokio::sync::watch::Receiver<u64>> {
    let mut retry = retry.clone()?;
    retry.borrow_and_update();
    Some(retry)
}

/// Waits for the next press of the `r` key; forever when there is no terminal to press it on.
async fn pressed(retry: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    let Some(receiver) = retry else { return std::future::pending().await };
    if receiver.changed().await.is_err() {
        // The terminal's reader is gone: no more presses.
        std::future::pending::<()>().await;
    }
}

/// Sends this run's parked deliveries again, oldest first; each one the handler takes is
/// un-parked. Returns `false` when the run stopped meanwhile.
async fn send_parked_again(
    ctx: &Ctx,
    source: &SourceRun,
    owner: &Handle,
    parked: &mut Vec<(Pending, DeliveryItem)>,
    cancel: &CancellationToken,
) -> Result<bool, Error> {
    let mut still = Vec::new();
    for (pending, item) in std::mem::take(parked) {
        let (request, via) = match &pending {
            Pending::Listed(_, Some(pushed)) | Pending::Pushed(pushed) => (resend_pushed(pushed, source), Via::Stream),
            Pending::Listed(listed, None) => match fetch(ctx, source, listed, cancel).await {
                Fetched::Delivery(delivery) => {
                    (Arc::new(Outgoing::from_delivery(&delivery, source.secret.as_ref())), Via::Api)
                }
                Fetched::Cancelled => return Ok(false),
                Fetched::Refused(error) => return Err(Error::GitHub(error)),
                // Gone or unreadable by now: `replay --parked` says so; nothing to send here.
                _ => continue,
            },
        };
        match deliver(ctx, source, &item, &request, via, cancel).await {
            Delivered::Answered => owner.unpark(item.id, item.guid.clone()).await?.wait().await?,
            Delivered::Parked { attempts, status, answer } => {
                let hook = source.hook.clone();
                let target = source.forwarder.target().0.clone();
                ctx.events
                    .emit(Event::Parked { hook, item: item.clone(), target, via, attempts, status, answer })
                    .await;
                still.push((pending, item));
            }
            Delivered::Invalid(_) => {}
            Delivered::Stopped => return Ok(false),
        }
    }
    *parked = still;
    Ok(true)
}

/// The request for a pushed delivery, as the forwarder first sent it.
fn resend_pushed(pushed: &Pushed, source: &SourceRun) -> Arc<Outgoing> {
    Arc::new(Outgoing::from_pushed(&pushed.headers, &pushed.body, source.secret.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_rounded_up_to_a_tenth_of_a_second() {
        assert_eq!(tenths(Duration::from_millis(178)), Duration::from_millis(200));
        assert_eq!(tenths(Duration::from_millis(1400)), Duration::from_millis(1400));
        assert_eq!(tenths(Duration::ZERO), Duration::from_millis(100));
    }

    #[test]
    fn a_refused_connection_is_tried_again_at_least_every_two_seconds() {
        let mut refused = Backoff::new(Backoff::BASE, REFUSED_CAP);
        let waits: Vec<Duration> = (0..50).map(|_| tenths(refused.next_wait())).collect();
        assert!(waits.iter().all(|wait| *wait <= REFUSED_CAP), "{waits:?}");
        // From the fourth on, between 1 and 2 s: a restarting handler is not hammered either.
        assert!(waits[3..].iter().all(|wait| *wait >= Duration::from_secs(1)), "{waits:?}");
    }
}
