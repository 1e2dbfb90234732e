//! Replicas sharing one ledger in Redis: what this replica listed, claimed and holds, and the
//! steps of the poller and the forwarder that go through Redis (see [`crate::ledger`]'s
//! "Replicas" section for the rules).
//!
//! A replica lists like any other, but queues only what it claimed, a few at a time
//! ([`CLAIM_AHEAD`]), so that replicas share the fetches; what another replica holds waits here
//! and is tried again, so that a dead replica's deliveries are taken over once its claims expire.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use github::{Backoff, DeliveryItem};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::ledger::{CLAIM_TTL, Claim, SharedLedger};
use crate::{Error, Event};

use super::queue::{How, Pending, Shared, Taken, lock};
use super::{Ctx, blocking};

/// How many claimed deliveries a replica queues ahead of its forwarder, per fetch at once.
const CLAIM_AHEAD_PER_FETCH: usize = 4;
/// How many waiting deliveries one claim call looks at.
const CANDIDATES: usize = 256;
/// How long a delivery another replica holds waits before it is tried again.
const RETRY_TAKEN: Duration = Duration::from_secs(2);
/// A claim is trusted for its TTL less this: a renewal in flight, clocks on two machines.
const CLAIM_MARGIN: Duration = Duration::from_secs(10);
/// How often held claims are renewed.
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How often the time of the last successful poll is written.
const CHECKED_EVERY: Duration = Duration::from_secs(60);

/// What a replica knows of one hook's shared ledger, besides Redis itself.
pub(super) struct Replica {
    /// The hook's ledger in Redis.
    pub(super) ledger: SharedLedger,
    /// What this replica listed, claimed and holds.
    local: Mutex<Local>,
    /// Whether Redis could not be reached at the last try (said once in the feed, and when back).
    down: AtomicBool,
}

/// What this replica listed, claimed and holds.
struct Local {
    /// The shared floor, as last seen.
    floor: DateTime<Utc>,
    /// Listed deliveries found done at or above the floor: id → delivered_at.
    done: HashMap<u64, DateTime<Utc>>,
    /// Listed deliveries this replica does not hold: not tried yet, or another replica holds them.
    waiting: BTreeMap<(DateTime<Utc>, u64), Waiting>,
    /// Claims this replica holds: id → when Redis last confirmed it.
    held: HashMap<u64, Instant>,
    /// When the last successful poll was last written.
    checked: Option<Instant>,
}

/// A listed delivery this replica does not hold.
struct Waiting {
    /// The delivery.
    item: DeliveryItem,
    /// Another replica held it at the last try: not before this is it tried again.
    retry_at: Option<Instant>,
}

impl Replica {
    /// A replica of `ledger`, whose floor is `floor`.
    pub(super) fn new(ledger: SharedLedger, floor: DateTime<Utc>) -> Self {
        let local =
            Local { floor, done: HashMap::new(), waiting: BTreeMap::new(), held: HashMap::new(), checked: None };
        Self { ledger, local: Mutex::new(local), down: AtomicBool::new(false) }
    }

    /// The shared floor as last seen.
    pub(super) fn floor(&self) -> DateTime<Utc> {
        lock(&self.local).floor
    }

    /// Whether a listed delivery is handled, held, or waiting here already.
    pub(super) fn knows(&self, item: &DeliveryItem) -> bool {
        let local = lock(&self.local);
        item.delivered_at < local.floor
            || local.done.contains_key(&item.id)
            || local.held.contains_key(&item.id)
            || local.waiting.contains_key(&(item.delivered_at, item.id))
    }

    /// Notes the floor Redis answered with, and forgets what it covers.
    fn raise_floor(local: &mut Local, floor: DateTime<Utc>) {
        if floor <= local.floor {
            return;
        }
        local.floor = floor;
        local.done.retain(|_, t| *t >= floor);
        local.waiting = local.waiting.split_off(&(floor, 0));
    }

    /// Says in the feed, once, that Redis cannot be reached, or that it can again.
    async fn reachable(&self, ctx: &Ctx, error: Option<&redis::RedisError>) {
        match error {
            Some(error) => {
                debug!(%error, "the shared ledger failed");
                if !self.down.swap(true, Ordering::SeqCst) {
                    let reason = format!("the ledger at {} cannot be reached ({error})", self.ledger.shown());
                    ctx.events.emit(Event::LedgerDown { reason: Some(reason) }).await;
                }
            }
            None => {
                if self.down.swap(false, Ordering::SeqCst) {
                    ctx.events.emit(Event::LedgerDown { reason: None }).await;
                }
            }
        }
    }
}

/// Queues listed deliveries: what the file ledger does not hold, or, with a shared ledger, what
/// this replica claimed of them and of those waiting. Returns how many were queued.
pub(super) async fn admit(ctx: &Ctx, shared: &Arc<Shared>, items: Vec<DeliveryItem>) -> Result<usize, Error> {
    let Some(replica) = shared.replica() else {
        let shared = shared.clone();
        return blocking(move || shared.enqueue(items)).await;
    };
    let ahead = CLAIM_AHEAD_PER_FETCH * ctx.settings.fetch_concurrency.max(1);
    // Before taking `local`: the poller holds the queue while it asks `knows` (lock order: queue, then local).
    let room = ahead.saturating_sub(shared.backlog());
    let candidates = {
        let mut local = lock(&replica.local);
        for item in items {
            if item.delivered_at >= local.floor
                && !local.done.contains_key(&item.id)
                && !local.held.contains_key(&item.id)
            {
                local.waiting.entry((item.delivered_at, item.id)).or_insert(Waiting { item, retry_at: None });
            }
        }
        let now = Instant::now();
        let candidates: Vec<(DateTime<Utc>, u64)> = local
            .waiting
            .iter()
            .filter(|(_, waiting)| waiting.retry_at.is_none_or(|at| at <= now))
            .take(CANDIDATES)
            .map(|(key, _)| *key)
            .collect();
        candidates
    };
    if room == 0 || candidates.is_empty() {
        return Ok(0);
    }
    let asked: Vec<(u64, DateTime<Utc>)> = candidates.iter().map(|(t, id)| (*id, *t)).collect();
    let (claims, floor) = match replica.ledger.claim(&asked, room).await {
        Ok(answer) => answer,
        Err(error) => {
            // Everything stays waiting; the next poll or forward tries again.
            replica.reachable(ctx, Some(&error)).await;
            return Ok(0);
        }
    };
    replica.reachable(ctx, None).await;
    let mut claimed = Vec::new();
    let mut taken_over = 0;
    {
        let mut local = lock(&replica.local);
        let now = Instant::now();
        for (key, claim) in candidates.into_iter().zip(claims) {
            match claim {
                Claim::Done => {
                    local.waiting.remove(&key);
                    local.done.insert(key.1, key.0);
                }
                Claim::Claimed => {
                    if let Some(waiting) = local.waiting.remove(&key) {
                        taken_over += u64::from(waiting.retry_at.is_some());
                        local.held.insert(key.1, now);
                        claimed.push(waiting.item);
                    }
                }
                Claim::Taken => {
                    if let Some(waiting) = local.waiting.get_mut(&key) {
                        waiting.retry_at = Some(now + RETRY_TAKEN);
                    }
                }
                Claim::Untried => {}
            }
        }
        Replica::raise_floor(&mut local, floor);
    }
    if taken_over > 0 {
        ctx.events.emit(Event::Claims { outcome: "taken_over", count: taken_over }).await;
    }
    Ok(shared.queue_claimed(claimed))
}

/// Whether this replica may forward `taken` now: always with the file ledger; with a shared one,
/// once Redis confirms the claim is still this replica's (waiting while Redis cannot be reached).
/// A claim found lost drops the delivery from the queue: it waits again, another replica has it.
pub(super) async fn may_forward(ctx: &Ctx, shared: &Arc<Shared>, taken: &Taken, cancel: &CancellationToken) -> bool {
    let (Some(replica), Pending::Listed(item)) = (shared.replica(), &taken.pending) else { return true };
    let fresh = CLAIM_TTL.saturating_sub(CLAIM_MARGIN);
    let mut backoff = Backoff::default();
    loop {
        let confirmed = lock(&replica.local).held.get(&item.id).copied();
        match confirmed {
            Some(at) if at.elapsed() < fresh => return true,
            Some(_) => {}
            None => {
                lose(ctx, shared, replica, taken, item).await;
                return false;
            }
        }
        let asked = Instant::now();
        match replica.ledger.renew(&[item.id]).await {
            Ok(kept) => {
                replica.reachable(ctx, None).await;
                if kept.first() == Some(&true) {
                    lock(&replica.local).held.insert(item.id, asked);
                    return true;
                }
                lock(&replica.local).held.remove(&item.id);
            }
            Err(error) => {
                replica.reachable(ctx, Some(&error)).await;
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_wait()) => {}
                    () = cancel.cancelled() => return false,
                }
            }
        }
    }
}

/// A claim this replica lost: the delivery leaves the queue and waits again.
async fn lose(ctx: &Ctx, shared: &Shared, replica: &Replica, taken: &Taken, item: &DeliveryItem) {
    shared.unqueue(taken);
    {
        let mut local = lock(&replica.local);
        local.held.remove(&item.id);
        let retry_at = Some(Instant::now() + RETRY_TAKEN);
        local.waiting.insert((item.delivered_at, item.id), Waiting { item: item.clone(), retry_at });
    }
    ctx.events.emit(Event::Claims { outcome: "lost", count: 1 }).await;
}

/// Records a handled delivery (forwarded and answered, or skipped when `skipped`): in the file
/// ledger, or as done in Redis, trying until Redis answers or the run stops. With a shared
/// ledger, then claims more if the queue runs low.
pub(super) async fn settle(
    ctx: &Ctx,
    shared: &Arc<Shared>,
    taken: Taken,
    how: How,
    cancel: &CancellationToken,
) -> Result<(), Error> {
    let Some(replica) = shared.replica() else {
        let shared = shared.clone();
        return blocking(move || shared.handled(&taken, how)).await;
    };
    // In Redis every way of handling a delivery is "done": replicas keep ids, so a parked delivery is
    // not listed for `replay --parked` (the feed and the inspector still show it).
    let Pending::Listed(item) = &taken.pending else {
        // With a shared ledger the stream only rings the doorbell: nothing pushed is queued.
        shared.unqueue(&taken);
        return Ok(());
    };
    let mut backoff = Backoff::default();
    let (ours, floor) = loop {
        match replica.ledger.done(item.id, item.delivered_at).await {
            Ok(answer) => break answer,
            Err(error) => {
                replica.reachable(ctx, Some(&error)).await;
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_wait()) => {}
                    // Its claim expires and another replica forwards it again: a repeat, never a loss.
                    () = cancel.cancelled() => return Ok(()),
                }
            }
        }
    };
    replica.reachable(ctx, None).await;
    shared.unqueue(&taken);
    {
        let mut local = lock(&replica.local);
        local.held.remove(&item.id);
        local.done.insert(item.id, item.delivered_at);
        Replica::raise_floor(&mut local, floor);
    }
    if !ours {
        ctx.events.emit(Event::Claims { outcome: "lost", count: 1 }).await;
    }
    let ahead = CLAIM_AHEAD_PER_FETCH * ctx.settings.fetch_concurrency.max(1);
    if shared.backlog() <= ahead / 2 {
        admit(ctx, shared, Vec::new()).await?;
    }
    Ok(())
}

/// Notes a successful poll: in the file ledger (persisted once a minute), or in Redis.
pub(super) async fn checked(ctx: &Ctx, shared: &Arc<Shared>) -> Result<(), Error> {
    let Some(replica) = shared.replica() else {
        let checked = shared.clone();
        return blocking(move || checked.file_ledger()?.checked(Utc::now())).await;
    };
    if lock(&replica.local).checked.is_some_and(|at| at.elapsed() < CHECKED_EVERY) {
        return Ok(());
    }
    match replica.ledger.checked(Utc::now()).await {
        Ok(()) => lock(&replica.local).checked = Some(Instant::now()),
        Err(error) => replica.reachable(ctx, Some(&error)).await,
    }
    Ok(())
}

/// Renews this replica's claims until `cancel`, then releases those still held, so that
/// another replica takes them at once. Does nothing with the file ledger.
pub(super) async fn renew_loop(ctx: Arc<Ctx>, shared: Arc<Shared>, cancel: CancellationToken) -> Result<(), Error> {
    let Some(replica) = shared.replica() else { return Ok(()) };
    loop {
        let wait = if replica.down.load(Ordering::SeqCst) { Duration::from_secs(1) } else { RENEW_EVERY };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => break,
        }
        let ids: Vec<u64> = lock(&replica.local).held.keys().copied().collect();
        let asked = Instant::now();
        // With nothing held, a PING tells whether Redis is back.
        let answer = if ids.is_empty() {
            replica.ledger.ping().await.map(|()| Vec::new())
        } else {
            replica.ledger.renew(&ids).await
        };
        let kept = match answer {
            Ok(kept) => kept,
            Err(error) => {
                replica.reachable(&ctx, Some(&error)).await;
                continue;
            }
        };
        replica.reachable(&ctx, None).await;
        let mut lost = 0;
        {
            let mut local = lock(&replica.local);
            for (id, kept) in ids.into_iter().zip(kept) {
                if kept {
                    // Only while still held: one settled meanwhile is done, not held again.
                    if let Some(at) = local.held.get_mut(&id) {
                        *at = asked;
                    }
                } else if local.held.remove(&id).is_some() {
                    lost += 1;
                }
            }
        }
        if lost > 0 {
            ctx.events.emit(Event::Claims { outcome: "lost", count: lost }).await;
        }
        // Deliveries another replica let go of are taken over, polls or not.
        admit(&ctx, &shared, Vec::new()).await?;
    }
    let ids: Vec<u64> = lock(&replica.local).held.keys().copied().collect();
    if let Err(error) = replica.ledger.release(&ids).await {
        debug!(%error, "could not release the claims held; they expire");
    }
    Ok(())
}
