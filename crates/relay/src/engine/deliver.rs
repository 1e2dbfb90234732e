//! The fetcher and forwarder: fetch listed payloads a few ahead, forward each delivery (listed or
//! pushed) in order, record it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use github::{Delivery, DeliveryItem};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, info, instrument};

use crate::{Error, Event, Outgoing, Via};
use github::Backoff;

use super::queue::{Pending, Shared};
use super::{Ctx, GONE_AFTER, SourceRun, blocking, is_auth, wait_after};

/// How long GitHub waits for a hook's answer before it counts the delivery as failed.
const GITHUB_TIMEOUT: Duration = Duration::from_secs(10);

/// What fetching a listed delivery gave.
pub(super) enum Fetched {
    /// The whole delivery.
    Delivery(Box<Delivery>),
    /// GitHub no longer has it (past retention).
    Gone,
    /// Stopped.
    Cancelled,
    /// GitHub refused the credentials (a revoked token): nothing can be fetched any more.
    Refused(github::Error),
    /// Pushed: nothing to fetch.
    Pushed,
    /// An event the rule does not forward: skipped without fetching it, and recorded.
    Unwanted,
}

/// Takes queued deliveries oldest first, fetches a few ahead, forwards each in order, records it.
pub(super) async fn forward_loop(
    ctx: Arc<Ctx>,
    source: Arc<SourceRun>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let taken = {
        let (shared, cancel) = (shared.clone(), cancel.clone());
        futures::stream::unfold((), move |()| {
            let (shared, cancel) = (shared.clone(), cancel.clone());
            async move {
                loop {
                    if cancel.is_cancelled() {
                        return None;
                    }
                    if let Some(item) = shared.take_next() {
                        return Some((item, ()));
                    }
                    tokio::select! {
                        () = shared.notify.notified() => {}
                        () = cancel.cancelled() => return None,
                    }
                }
            }
        })
    };
    // Each fetch is its own task: `buffered` polls its futures only while this loop waits for
    // the next one, so unspawned fetches would stall while a delivery is forwarded and recorded,
    // and go out in bursts of `fetch_concurrency` rather than one as each slot frees.
    // The window holds twice as many as may be fetched at once, so that `fetch_concurrency`
    // GETs stay in flight while fetched deliveries wait their turn to be forwarded in order.
    let concurrency = ctx.settings.fetch_concurrency.max(1);
    let permits = Arc::new(Semaphore::new(concurrency));
    let fetched = taken
        .map(|taken| {
            let event = match &taken.pending {
                Pending::Listed(item) => &item.event,
                Pending::Pushed(pushed) => &pushed.event,
            };
            if !source.rule.wants(event) {
                return futures::future::Either::Left(std::future::ready((taken, Fetched::Unwanted)));
            }
            let Pending::Listed(item) = &taken.pending else {
                return futures::future::Either::Left(std::future::ready((taken, Fetched::Pushed)));
            };
            let (ctx, source, cancel, permits) = (ctx.clone(), source.clone(), cancel.clone(), permits.clone());
            let fetching = AbortOnDropHandle::new(tokio::spawn({
                let item = item.clone();
                async move {
                    // The semaphore is never closed, so a permit always comes.
                    let _permit = permits.acquire_owned().await;
                    fetch(&ctx, &source, &item, &cancel).await
                }
            }));
            futures::future::Either::Right(async move {
                let outcome = match fetching.await {
                    Ok(outcome) => outcome,
                    Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                    // Aborted only when the runtime shuts down.
                    Err(_) => Fetched::Cancelled,
                };
                (taken, outcome)
            })
        })
        .buffered(2 * concurrency);
    let mut fetched = std::pin::pin!(fetched);
    while let Some((taken, outcome)) = fetched.next().await {
        let item = match &taken.pending {
            Pending::Listed(item) => item.clone(),
            Pending::Pushed(pushed) => pushed.item(),
        };
        match outcome {
            Fetched::Cancelled => return Ok(()),
            Fetched::Unwanted => debug!(delivery = item.id, event = %item.event, "not among --events; skipped"),
            Fetched::Refused(error) => return Err(Error::GitHub(error)),
            Fetched::Gone => {
                ctx.events
                    .emit(Event::Warning {
                        message: format!(
                            "delivery {} of {} is no longer kept by GitHub and was skipped",
                            item.id, source.name
                        ),
                    })
                    .await;
            }
            Fetched::Delivery(delivery) => {
                // Shared with the events (the inspector, --record) without a copy of the payload.
                let request = std::sync::Arc::new(Outgoing::from_delivery(&delivery, source.secret.as_ref()));
                drop(delivery);
                if !deliver(&ctx, &source, &item, &request, Via::Api, &cancel).await {
                    return Ok(());
                }
            }
            Fetched::Pushed => {
                let Pending::Pushed(pushed) = &taken.pending else { continue };
                let request =
                    std::sync::Arc::new(Outgoing::from_pushed(&pushed.headers, &pushed.body, source.secret.as_ref()));
                if !deliver(&ctx, &source, &item, &request, Via::Stream, &cancel).await {
                    return Ok(());
                }
            }
        }
        let shared = shared.clone();
        blocking(move || shared.record(&taken)).await?;
    }
    Ok(())
}

/// Gets one delivery, retrying GitHub errors until it comes, is gone, or the run stops.
#[instrument(skip_all, fields(delivery = item.id))]
pub(super) async fn fetch(ctx: &Ctx, source: &SourceRun, item: &DeliveryItem, cancel: &CancellationToken) -> Fetched {
    let mut backoff = Backoff::default();
    let mut not_found = 0;
    loop {
        let result = tokio::select! {
            result = ctx.client.get_delivery(&source.hook, item.id) => result,
            () = cancel.cancelled() => return Fetched::Cancelled,
        };
        let error = match result {
            Ok(delivery) => return Fetched::Delivery(Box::new(delivery)),
            Err(github::Error::NotFound { .. }) if not_found + 1 >= GONE_AFTER => return Fetched::Gone,
            Err(error) if is_auth(&error) => return Fetched::Refused(error),
            Err(error) => error,
        };
        if matches!(error, github::Error::NotFound { .. }) {
            not_found += 1;
        }
        debug!(delivery = item.id, "fetch failed");
        ctx.events
            .emit(Event::Error {
                hook: Some(source.hook.clone()),
                message: format!("fetching delivery {} of {} failed: {error}", item.id, source.name),
            })
            .await;
        let wait = wait_after(&error, &mut backoff);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => return Fetched::Cancelled,
        }
    }
}

/// POSTs one delivery until the target answers other than 5xx; `false` if the run stopped first.
#[instrument(skip_all, fields(delivery = item.id, event = %item.event))]
pub(super) async fn deliver(
    ctx: &Ctx,
    source: &SourceRun,
    item: &DeliveryItem,
    request: &std::sync::Arc<Outgoing>,
    via: Via,
    cancel: &CancellationToken,
) -> bool {
    let mut backoff = Backoff::default();
    let mut attempt = 0;
    ctx.events.emit(Event::Delivering { hook: source.hook.clone(), item: item.clone(), via }).await;
    loop {
        attempt += 1;
        let sent = tokio::select! {
            sent = source.forwarder.send(request.as_ref()) => sent,
            () = cancel.cancelled() => return false,
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
                    return true;
                }
                response.status.to_string()
            }
            Err(reason) => reason,
        };
        let wait = backoff.next_wait();
        debug!(delivery = item.id, attempt, reason = %reason, "target unavailable; retrying");
        ctx.events.emit(Event::Retrying { hook: source.hook.clone(), item: item.clone(), reason, wait, attempt }).await;
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => return false,
        }
    }
}
