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

use crate::ledger;
use crate::request::Answer;
use crate::{Error, Event, OnHandlerError, Outgoing, Via};
use github::Backoff;

use super::fetch::{Budget, Fetched, fetch, size};
use super::queue::{How, Pending, Pushed, Shared, Taken};
use super::{Ctx, SourceRun, blocking, claims};

/// How long GitHub waits for a hook's answer before it counts the delivery as failed.
const GITHUB_TIMEOUT: Duration = Duration::from_secs(10);

/// What one delivery made of the target.
pub(super) enum Delivered {
    /// The target answered (other than 5xx): record it.
    Answered,
    /// The request can never be sent (a header HTTP cannot carry): skip it, for this reason.
    Invalid(String),
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

/// A delivery in the window: a listed one with its fetch running ahead of the forwarder, or a
/// pushed one (nothing to fetch).
type Fetching = (Taken, Option<AbortOnDropHandle<(Fetched, u64)>>);

/// Takes queued deliveries oldest first, fetches a few ahead, forwards each in order, records it.
///
/// A delivery that can never be forwarded (unreadable, too large, a header HTTP cannot carry) is
/// skipped with one warning and recorded as skipped, so the rest of the source goes on.
pub(super) async fn forward_loop(
    ctx: Arc<Ctx>,
    source: Arc<SourceRun>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> Result<(), Error> {
    // Each fetch is its own task, so fetches go on while a delivery is forwarded and recorded.
    // The window holds up to twice as many as may be fetched at once (so that
    // `fetch_concurrency` GETs stay in flight while fetched deliveries wait their turn to be
    // forwarded in order), and no more bytes than the budget allows.
    let concurrency = ctx.settings.fetch_concurrency.max(1);
    let permits = Arc::new(Semaphore::new(concurrency));
    let budget = Arc::new(Budget::default());
    let mut window: VecDeque<Fetching> = VecDeque::new();
    let mut warned_future = false;
    // `head` counts the oldest delivery, taken out of the window while it is awaited.
    let admit = |window: &mut VecDeque<Fetching>, head: usize| {
        while window.len() + head < 2 * concurrency && budget.admits(window.len() + head) {
            let Some(taken) = shared.take_next() else { break };
            let wanted = match &taken.pending {
                Pending::Listed(item) => source.wants(item),
                Pending::Pushed(pushed) => source.wants(&pushed.item()),
            };
            let settled = if !wanted {
                // Not among --events, --action or the App's installations and repositories:
                // settled without a fetch, in its turn.
                Some(Fetched::Unwanted)
            } else if is_duplicate(&ctx, &source, &taken.pending) {
                // Another source's hook brought the same event to the same target: settled without a fetch.
                Some(Fetched::Duplicate)
            } else {
                None
            };
            if let Some(settled) = settled {
                let settled = AbortOnDropHandle::new(tokio::spawn(std::future::ready((settled, 0))));
                window.push_back((taken, Some(settled)));
                continue;
            }
            let Pending::Listed(item) = &taken.pending else {
                // Pushed: nothing to fetch, and its bytes are bounded where it was queued.
                window.push_back((taken, None));
                continue;
            };
            let (ctx, source, cancel, permits, budget) =
                (ctx.clone(), source.clone(), cancel.clone(), permits.clone(), budget.clone());
            budget.fetching.fetch_add(1, Ordering::SeqCst);
            let fetching = AbortOnDropHandle::new(tokio::spawn({
                let item = item.clone();
                async move {
                    let outcome = {
                        // The semaphore is never closed, so a permit always comes.
                        let _permit = permits.acquire_owned().await;
                        fetch(&ctx, &source, &item, &cancel).await
                    };
                    let size = size(&outcome);
                    budget.fetched(size);
                    budget.fetching.fetch_sub(1, Ordering::SeqCst);
                    (outcome, size)
                }
            }));
            window.push_back((taken, Some(fetching)));
        }
    };
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
            if !send_parked_again(&ctx, &source, &shared, &mut parked, &cancel).await? {
                return Ok(());
            }
        }
        admit(&mut window, 0);
        let Some((taken, fetching)) = window.pop_front() else {
            tokio::select! {
                () = shared.notify.notified() => continue,
                () = pressed(&mut retry) => {
                    again = true;
                    continue;
                }
                () = cancel.cancelled() => return Ok(()),
            }
        };
        let (outcome, size) = match fetching {
            None => (Fetched::Pushed, 0),
            Some(mut fetching) => {
                // While the oldest is fetched, newly queued deliveries join the window.
                let joined = loop {
                    tokio::select! {
                        joined = &mut fetching => break joined,
                        () = shared.notify.notified() => admit(&mut window, 1),
                        () = cancel.cancelled() => return Ok(()),
                    }
                };
                match joined {
                    Ok(done) => done,
                    Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                    // Aborted only when the runtime shuts down.
                    Err(_) => return Ok(()),
                }
            }
        };
        let item = match &taken.pending {
            Pending::Listed(item) => item.clone(),
            Pending::Pushed(pushed) => pushed.item(),
        };
        let listed = matches!(taken.pending, Pending::Listed(_));
        if listed && !warned_future && ledger::is_future(item.delivered_at, Utc::now()) {
            warned_future = true;
            let message = format!(
                "GitHub says delivery {} of {} was made at {}, ahead of this computer's clock by more than {} \
                 minutes; it is forwarded, and later deliveries still are (is either clock wrong?)",
                item.id,
                source.name,
                item.delivered_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ledger::SKEW.as_secs() / 60
            );
            ctx.events.emit(Event::Warning { message }).await;
        }
        let mut rejected = None;
        let skipped = match outcome {
            Fetched::Cancelled => return Ok(()),
            Fetched::Unwanted => {
                debug!(delivery = item.id, event = %item.event, "not among --events; skipped");
                None
            }
            Fetched::Duplicate => {
                debug!(delivery = item.id, event = %item.event, "forwarded through another source; recorded");
                budget.forwarded(size);
                claims::settle(&ctx, &shared, taken, How::Duplicate, &cancel).await?;
                continue;
            }
            Fetched::Refused(error) => return Err(Error::GitHub(error)),
            Fetched::Gone => Some("GitHub no longer keeps it".to_string()),
            Fetched::Poison(error) => Some(error.to_string()),
            Fetched::Delivery(_) if !claims::may_forward(&ctx, &shared, &taken, &cancel).await => {
                // Another replica holds it now (or the run stopped): it is not this one's to forward.
                budget.forwarded(size);
                continue;
            }
            Fetched::Delivery(delivery) => {
                // Shared with the events (the inspector, --record) without a copy of the payload.
                let request = std::sync::Arc::new(Outgoing::from_delivery(&delivery, source.secret.as_ref()));
                drop(delivery);
                match deliver(&ctx, &source, &item, &request, Via::Api, &cancel).await {
                    Delivered::Answered => None,
                    Delivered::Invalid(reason) => Some(reason),
                    Delivered::Parked { attempts, status, answer } => {
                        rejected = Some((Via::Api, attempts, status, answer));
                        None
                    }
                    Delivered::Stopped => return Ok(()),
                }
            }
            Fetched::Pushed => {
                let Pending::Pushed(pushed) = &taken.pending else { continue };
                let request =
                    std::sync::Arc::new(Outgoing::from_pushed(&pushed.headers, &pushed.body, source.secret.as_ref()));
                match deliver(&ctx, &source, &item, &request, Via::Stream, &cancel).await {
                    Delivered::Answered => None,
                    Delivered::Invalid(reason) => Some(reason),
                    Delivered::Parked { attempts, status, answer } => {
                        rejected = Some((Via::Stream, attempts, status, answer));
                        None
                    }
                    Delivered::Stopped => return Ok(()),
                }
            }
        };
        budget.forwarded(size);
        if let Some((via, attempts, status, answer)) = rejected {
            info!(delivery = item.id, attempts, status, "parked");
            if parked.len() < MAX_PARKED_AGAIN {
                parked.push((taken.pending.clone(), item.clone()));
            }
            claims::settle(&ctx, &shared, taken, How::Parked, &cancel).await?;
            let hook = source.hook.clone();
            ctx.events.emit(Event::Parked { hook, item, via, attempts, status, answer }).await;
            continue;
        }
        match skipped {
            None => claims::settle(&ctx, &shared, taken, How::Forwarded, &cancel).await?,
            Some(reason) => {
                let which =
                    if listed { format!("delivery {}", item.id) } else { format!("pushed delivery {}", item.guid) };
                // No guid here: the log writes fields as they are, and GitHub's (or a hostile API's) may hold escapes.
                warn!(delivery = item.id, "skipped");
                let message = format!("{which} ({}) of {} was skipped: {reason}", item.kind(), source.name);
                ctx.events.emit(Event::Warning { message }).await;
                claims::settle(&ctx, &shared, taken, How::Skipped, &cancel).await?;
            }
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
    let mut attempt = 0;
    let mut rejections = 0;
    let mut retry = fresh(&ctx.settings.retry_now);
    ctx.events.emit(Event::Delivering { hook: source.hook.clone(), item: item.clone(), via }).await;
    loop {
        attempt += 1;
        let sent = tokio::select! {
            sent = source.forwarder.send(request.as_ref()) => sent,
            () = cancel.cancelled() => return Delivered::Stopped,
        };
        let reason = match sent {
            Ok(response) => {
                info!(delivery = item.id, status = response.status, "forwarded");
                if response.latency > GITHUB_TIMEOUT && !ctx.warned_slow.swap(true, Ordering::Relaxed) {
                    let message = format!(
                        "the handler took {:.1} s to answer {} [{}]; GitHub gives up after 10 s, so in production \
                         this delivery would fail",
                        response.latency.as_secs_f64(),
                        item.kind(),
                        item.guid
                    );
                    ctx.events.emit(Event::Warning { message }).await;
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
            Err(error) if !error.is_transient() => return Delivered::Invalid(error.to_string()),
            Err(error) => error.to_string(),
        };
        let wait = backoff.next_wait();
        debug!(delivery = item.id, attempt, reason = %reason, "target unavailable; retrying");
        ctx.events.emit(Event::Retrying { hook: source.hook.clone(), item: item.clone(), reason, wait, attempt }).await;
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            // The user asked to retry now.
            () = pressed(&mut retry) => backoff = Backoff::default(),
            () = cancel.cancelled() => return Delivered::Stopped,
        }
    }
}

/// The most parked deliveries of one run kept to send again on the `r` key (the rest: `replay --parked`).
const MAX_PARKED_AGAIN: usize = 100;

/// Whether the handler's `status` says it is down or restarting (a proxy's or a load balancer's
/// answer), rather than rejecting this delivery.
fn is_down(status: u16) -> bool {
    matches!(status, 502..=504)
}

/// Whether another source forwards this original delivery to the same target (see [`super::dedupe`]).
fn is_duplicate(ctx: &Ctx, source: &SourceRun, pending: &Pending) -> bool {
    // The App's hook is another kind of delivery (it names the installation), not a copy of a repository's.
    if !ctx.settings.dedupe || ctx.sources < 2 || matches!(source.hook, github::HookRef::App { .. }) {
        return false;
    }
    let guid = match pending {
        // A redelivery was asked for on this hook: it is forwarded whatever the others did.
        Pending::Listed(item) if item.redelivery => return false,
        Pending::Listed(item) => &item.guid,
        Pending::Pushed(pushed) => &pushed.guid,
    };
    ctx.claims.is_elsewhere(&source.name, source.forwarder.target().0.as_str(), guid)
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
    shared: &Arc<Shared>,
    parked: &mut Vec<(Pending, DeliveryItem)>,
    cancel: &CancellationToken,
) -> Result<bool, Error> {
    let mut still = Vec::new();
    for (pending, item) in std::mem::take(parked) {
        let (request, via) = match &pending {
            Pending::Listed(listed) => match fetch(ctx, source, listed, cancel).await {
                Fetched::Delivery(delivery) => {
                    (Arc::new(Outgoing::from_delivery(&delivery, source.secret.as_ref())), Via::Api)
                }
                Fetched::Cancelled => return Ok(false),
                Fetched::Refused(error) => return Err(Error::GitHub(error)),
                // Gone or unreadable by now: `replay --parked` says so; nothing to send here.
                _ => continue,
            },
            Pending::Pushed(pushed) => (resend_pushed(pushed, source), Via::Stream),
        };
        match deliver(ctx, source, &item, &request, via, cancel).await {
            Delivered::Answered => {
                let (shared, guid) = (shared.clone(), item.guid.clone());
                let id = item.id;
                blocking(move || shared.unpark(id, &guid)).await?;
            }
            Delivered::Parked { attempts, status, answer } => {
                let hook = source.hook.clone();
                ctx.events.emit(Event::Parked { hook, item: item.clone(), via, attempts, status, answer }).await;
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
