//! The ledger replicas share in Redis, as one replica uses it: what this replica listed, claimed
//! and holds besides Redis itself (see the [module](super)'s "Replicas" section for the rules).
//!
//! A replica lists like any other, but queues only what it claimed, a few at a time (per fetch
//! at once, [`CLAIM_AHEAD_PER_FETCH`]), so that replicas share the fetches; what another replica
//! holds waits here and is tried again, so that a dead replica's deliveries are taken over once
//! its claims expire. Every replica subscribes to the stream too: the first to claim a pushed
//! POST's event forwards it, with no GET; the others drop their copy.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use github::{Backoff, DeliveryItem};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{Attempts, CLAIM_TTL, Claim, ClaimOf, Durable, Ledger, Push, PushClaim, Record, SharedLedger, claim_name};
use crate::{Error, Event};

/// How many claimed deliveries a replica queues ahead of its forwarder, per fetch at once.
const CLAIM_AHEAD_PER_FETCH: usize = 4;
/// How many waiting deliveries one claim call looks at.
const CANDIDATES: usize = 256;
/// How long a delivery another replica holds waits before it is tried again.
const RETRY_TAKEN: Duration = Duration::from_secs(2);
/// A claim is trusted for its TTL less a third (10 s of 30 s): a renewal in flight, clocks on two
/// machines. Held claims are renewed every third of the TTL too, so one missed renewal is survived.
fn claim_margin() -> Duration {
    *CLAIM_TTL / 3
}
/// How often the time of the last successful poll is written.
const CHECKED_EVERY: Duration = Duration::from_secs(60);

/// One hook's shared ledger, as this replica holds it.
pub struct RedisLedger {
    /// The hook's ledger in Redis.
    shared: SharedLedger,
    /// How many claimed deliveries to keep queued.
    ahead: usize,
    /// The shared floor, as last seen.
    floor: DateTime<Utc>,
    /// Listed deliveries found done at or above the floor: id → delivered_at.
    done: HashMap<u64, DateTime<Utc>>,
    /// Listed deliveries this replica does not hold: not tried yet, or another replica holds them.
    waiting: BTreeMap<(DateTime<Utc>, u64), Waiting>,
    /// Claims this replica holds: id → when Redis last confirmed it.
    held: HashMap<u64, Instant>,
    /// Pushed POSTs this replica claimed and has not settled: guid → stream event ids, oldest first.
    pushes: HashMap<String, VecDeque<String>>,
    /// When the last successful poll was last written.
    checked: Option<Instant>,
    /// Whether Redis could not be reached at the last try (said once in the feed, and when back).
    down: bool,
    /// Where `LedgerDown` and `Claims` go.
    events: mpsc::Sender<Event>,
    /// The run's stop: a wait for Redis ends with it.
    cancel: CancellationToken,
}

/// A listed delivery this replica does not hold.
struct Waiting {
    /// The delivery.
    item: DeliveryItem,
    /// Another replica held it at the last try: not before this is it tried again.
    retry_at: Option<Instant>,
}

impl RedisLedger {
    /// This replica's view of `shared`, whose floor is `floor`; `fetch_concurrency` sets how
    /// many deliveries it claims ahead.
    pub fn new(
        shared: SharedLedger,
        floor: DateTime<Utc>,
        fetch_concurrency: usize,
        events: mpsc::Sender<Event>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            shared,
            ahead: CLAIM_AHEAD_PER_FETCH * fetch_concurrency.max(1),
            floor,
            done: HashMap::new(),
            waiting: BTreeMap::new(),
            held: HashMap::new(),
            pushes: HashMap::new(),
            checked: None,
            down: false,
            events,
            cancel,
        }
    }

    /// Notes the floor Redis answered with, and forgets what it covers.
    fn raise_floor(&mut self, floor: DateTime<Utc>) {
        if floor <= self.floor {
            return;
        }
        self.floor = floor;
        self.done.retain(|_, t| *t >= floor);
        self.waiting = self.waiting.split_off(&(floor, 0));
    }

    /// Says in the feed, once, that Redis cannot be reached, or that it can again; and what Redis
    /// answered with that could not be trusted and was fixed.
    async fn reachable(&mut self, error: Option<&redis::RedisError>) {
        for warning in self.shared.take_warnings() {
            let _ = self.events.send(Event::Warning(warning)).await;
        }
        let event = match error {
            Some(error) => {
                debug!(%error, "the shared ledger failed");
                if std::mem::replace(&mut self.down, true) {
                    return;
                }
                Event::LedgerDown {
                    reason: Some(format!("the ledger at {} cannot be reached ({error})", self.shared.shown())),
                }
            }
            None if std::mem::replace(&mut self.down, false) => Event::LedgerDown { reason: None },
            None => return,
        };
        let _ = self.events.send(event).await;
    }

    async fn claims(&self, outcome: &'static str, count: u64) {
        if count > 0 {
            let _ = self.events.send(Event::Claims { outcome, count }).await;
        }
    }

    /// Waits before trying Redis again; `false` once the run stops.
    async fn pause(&self, backoff: &mut Backoff) -> bool {
        tokio::select! {
            () = tokio::time::sleep(backoff.next_wait()) => true,
            () = self.cancel.cancelled() => false,
        }
    }

    /// Claims what waits here, up to what the queue has room for.
    async fn claim(&mut self, backlog: usize) -> Vec<DeliveryItem> {
        let room = self.ahead.saturating_sub(backlog);
        let now = Instant::now();
        let candidates: Vec<(DateTime<Utc>, u64)> = self
            .waiting
            .iter()
            .filter(|(_, waiting)| waiting.retry_at.is_none_or(|at| at <= now))
            .take(CANDIDATES)
            .map(|(key, _)| *key)
            .collect();
        if room == 0 || candidates.is_empty() {
            return Vec::new();
        }
        let asked: Vec<(u64, DateTime<Utc>, &str)> = candidates
            .iter()
            .filter_map(|key| self.waiting.get(key).map(|waiting| (key.1, key.0, waiting.item.guid.as_str())))
            .collect();
        let (claims, floor) = match self.shared.claim(&asked, room).await {
            Ok(answer) => answer,
            Err(error) => {
                // Everything stays waiting; the next poll or forward tries again.
                self.reachable(Some(&error)).await;
                return Vec::new();
            }
        };
        self.reachable(None).await;
        let mut claimed = Vec::new();
        let mut taken_over = 0;
        for (key, claim) in candidates.into_iter().zip(claims) {
            match claim {
                Claim::Done => {
                    self.waiting.remove(&key);
                    self.done.insert(key.1, key.0);
                }
                Claim::Claimed => {
                    if let Some(waiting) = self.waiting.remove(&key) {
                        taken_over += u64::from(waiting.retry_at.is_some());
                        self.held.insert(key.1, now);
                        claimed.push(waiting.item);
                    }
                }
                Claim::Taken => {
                    if let Some(waiting) = self.waiting.get_mut(&key) {
                        waiting.retry_at = Some(now + RETRY_TAKEN);
                    }
                }
                Claim::Untried => {}
            }
        }
        self.raise_floor(floor);
        self.claims("taken_over", taken_over).await;
        claimed
    }

    /// A claim this replica lost: the delivery waits again, another replica has it.
    async fn lose(&mut self, item: &DeliveryItem) {
        self.held.remove(&item.id);
        let retry_at = Some(Instant::now() + RETRY_TAKEN);
        self.waiting.insert((item.delivered_at, item.id), Waiting { item: item.clone(), retry_at });
        self.claims("lost", 1).await;
    }

    /// Marks a listed delivery done in Redis, an API attempt of `guid`, trying until Redis answers
    /// or the run stops.
    async fn done(&mut self, id: u64, at: DateTime<Utc>, guid: Option<&str>, body: Option<&str>) {
        let mut backoff = Backoff::default();
        let (ours, floor) = loop {
            match self.shared.done(id, at, guid, body).await {
                Ok(answer) => break answer,
                Err(error) => {
                    self.reachable(Some(&error)).await;
                    // Stopped: its claim expires and another replica forwards it again, a repeat, never a loss.
                    if !self.pause(&mut backoff).await {
                        return;
                    }
                }
            }
        };
        self.reachable(None).await;
        self.held.remove(&id);
        self.done.insert(id, at);
        self.raise_floor(floor);
        if !ours {
            self.claims("lost", 1).await;
        }
    }

    /// Counts a pushed POST of `guid` this replica claimed as handled through the stream, trying
    /// until Redis answers or the run stops.
    async fn pushed(&mut self, guid: &str, at: DateTime<Utc>) {
        let Some(event) = self.pushes.get_mut(guid).and_then(VecDeque::pop_front) else { return };
        if self.pushes.get(guid).is_some_and(VecDeque::is_empty) {
            self.pushes.remove(guid);
        }
        let mut backoff = Backoff::default();
        let ours = loop {
            match self.shared.pushed(&event, guid, at).await {
                Ok(ours) => break ours,
                Err(error) => {
                    self.reachable(Some(&error)).await;
                    // Stopped: its claim ends, and the API brings the attempt again, a repeat, never a loss.
                    if !self.pause(&mut backoff).await {
                        return;
                    }
                }
            }
        };
        self.reachable(None).await;
        if !ours {
            self.claims("lost", 1).await;
        }
    }

    /// Every claim this replica holds, by name.
    fn claim_names(&self) -> (Vec<u64>, Vec<String>) {
        let ids: Vec<u64> = self.held.keys().copied().collect();
        let events = self.pushes.values().flatten().map(|event| claim_name(ClaimOf::Pushed(event)));
        let names = ids.iter().map(|id| claim_name(ClaimOf::Listed(*id))).chain(events).collect();
        (ids, names)
    }
}

impl Ledger for RedisLedger {
    fn floor(&self) -> DateTime<Utc> {
        self.floor
    }

    fn knows(&self, item: &DeliveryItem) -> bool {
        item.delivered_at < self.floor
            || self.done.contains_key(&item.id)
            || self.held.contains_key(&item.id)
            || self.waiting.contains_key(&(item.delivered_at, item.id))
    }

    /// The counts per guid live in Redis, where [`Ledger::claim_push`] and the claims read them.
    fn attempts(&self, _guid: &str) -> Attempts {
        Attempts::default()
    }

    /// Claimed by its event id in Redis; with Redis unreachable a repeat, which the list (and a
    /// claim, once Redis is back) decides.
    fn claim_push(&mut self, push: Push<'_>) -> impl Future<Output = Option<PushClaim>> + Send {
        let (event, guid, at, body) =
            (push.event.to_string(), push.guid.to_string(), push.at, push.body.map(str::to_string));
        async move {
            let (claim, floor) = match self.shared.push(&event, &guid, at, body.as_deref()).await {
                Ok(answer) => answer,
                Err(error) => {
                    self.reachable(Some(&error)).await;
                    return Some(PushClaim::Seen);
                }
            };
            self.reachable(None).await;
            self.raise_floor(floor);
            if claim == PushClaim::First {
                self.pushes.entry(guid).or_default().push_back(event);
            }
            Some(claim)
        }
    }

    fn admit(
        &mut self,
        items: Vec<DeliveryItem>,
        backlog: usize,
    ) -> impl Future<Output = Result<Vec<DeliveryItem>, Error>> + Send {
        for item in items {
            if item.delivered_at >= self.floor && !self.done.contains_key(&item.id) && !self.held.contains_key(&item.id)
            {
                self.waiting.entry((item.delivered_at, item.id)).or_insert(Waiting { item, retry_at: None });
            }
        }
        async move { Ok(self.claim(backlog).await) }
    }

    /// Once Redis confirms the claim is still this replica's (waiting while Redis cannot be reached).
    fn confirm(&mut self, item: &DeliveryItem) -> impl Future<Output = bool> + Send {
        let fresh = CLAIM_TTL.saturating_sub(claim_margin());
        async move {
            let mut backoff = Backoff::default();
            loop {
                match self.held.get(&item.id).copied() {
                    Some(at) if at.elapsed() < fresh => return true,
                    Some(_) => {}
                    None => {
                        self.lose(item).await;
                        return false;
                    }
                }
                let asked = Instant::now();
                match self.shared.renew(&[claim_name(ClaimOf::Listed(item.id))]).await {
                    Ok(kept) => {
                        self.reachable(None).await;
                        if kept.first() == Some(&true) {
                            self.held.insert(item.id, asked);
                            return true;
                        }
                        self.held.remove(&item.id);
                    }
                    Err(error) => {
                        self.reachable(Some(&error)).await;
                        if !self.pause(&mut backoff).await {
                            return false;
                        }
                    }
                }
            }
        }
    }

    /// In Redis every way of handling a delivery is "done": replicas keep ids, so a parked delivery
    /// is not listed for `replay --parked` (the feed and the inspector still show it).
    fn record(
        &mut self,
        records: &[Record],
        _keep_from: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<Durable, Error>> + Send {
        let records = records.to_vec();
        async move {
            // A body's key goes with the listed delivery of its guid recorded next.
            let mut body: Option<(String, String)> = None;
            for record in records {
                match record {
                    Record::Forwarded { id, at, guid }
                    | Record::Skipped { id, at, guid }
                    | Record::Parked { id, at, guid } => {
                        let key = body.take().filter(|(of, _)| guid.as_deref() == Some(of)).map(|(_, key)| key);
                        self.done(id, at, guid.as_deref(), key.as_deref()).await;
                    }
                    Record::Pushed { guid, at, .. } | Record::ParkedPushed { guid, at, .. } => {
                        self.pushed(&guid, at).await
                    }
                    Record::Body { guid, body: key, .. } => body = Some((guid, key)),
                }
            }
            Ok(Durable::kept())
        }
    }

    fn unpark(&mut self, _id: u64, _guid: &str) -> Result<Durable, Error> {
        Ok(Durable::kept())
    }

    async fn checked(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        if self.checked.is_some_and(|at| at.elapsed() < CHECKED_EVERY) {
            return Ok(());
        }
        match self.shared.checked(now).await {
            Ok(()) => self.checked = Some(Instant::now()),
            Err(error) => self.reachable(Some(&error)).await,
        }
        Ok(())
    }

    fn maintain_every(&self) -> Option<Duration> {
        Some(if self.down { Duration::from_secs(1) } else { claim_margin() })
    }

    /// Renews the claims held; with none, a PING tells whether Redis is back.
    async fn maintain(&mut self) {
        let (ids, names) = self.claim_names();
        let asked = Instant::now();
        let answer = if names.is_empty() {
            self.shared.ping().await.map(|()| Vec::new())
        } else {
            self.shared.renew(&names).await
        };
        let kept = match answer {
            Ok(kept) => kept,
            Err(error) => return self.reachable(Some(&error)).await,
        };
        self.reachable(None).await;
        // A pushed POST whose claim ended is forwarded still: the API may bring it too, a repeat.
        let mut lost = kept.iter().skip(ids.len()).filter(|kept| !**kept).count() as u64;
        for (id, kept) in ids.into_iter().zip(kept) {
            if kept {
                // Only while still held: one settled meanwhile is done, not held again.
                if let Some(at) = self.held.get_mut(&id) {
                    *at = asked;
                }
            } else if self.held.remove(&id).is_some() {
                lost += 1;
            }
        }
        self.claims("lost", lost).await;
    }

    fn guids(&self) -> Vec<String> {
        Vec::new()
    }

    /// Releases the claims still held, so that another replica takes them at once.
    async fn close(self) -> Result<(), Error> {
        let (_, names) = self.claim_names();
        if let Err(error) = self.shared.release(&names).await {
            debug!(%error, "could not release the claims held; they expire");
        }
        Ok(())
    }
}
