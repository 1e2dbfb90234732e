//! One source's state, and the rule that joins the two paths: *each attempt of a delivery
//! reaches the handler once*.
//!
//! Only the source's owner task ([`super::owner`]) holds a [`State`]; the stream, the poller and
//! the forwarder send it messages. Nothing here does I/O but the ledger's, and every clock is
//! passed in, so the model test (`tests/model.rs`) drives it with the same events as the engine.
//!
//! # The rule
//!
//! GitHub's record is the authority on what an attempt is. A redelivery carries the same guid,
//! body and signature as the original, so the stream alone cannot tell it from the same POST
//! arriving twice (a proxy's retry, a replayed capture). So, per guid, the ledger counts the
//! attempts handled through the API (`api`, one per listed id) and through the stream (`pushed`),
//! and this state adds what is queued or in flight on each path ([`State::reconcile`]):
//!
//! * a **pushed** POST of a guid this source has never seen is forwarded at once (`pushed` + 1);
//!   one of a guid it has seen is a *repeat* until GitHub's record says otherwise: it rings the
//!   doorbell and waits up to [`REPEAT_WAIT`] for the list to show a new attempt;
//! * a **listed** delivery not yet handled is the twin of what the stream forwarded when
//!   `pushed > api` (recorded, no GET); otherwise it is a new attempt, forwarded with a waiting
//!   repeat's bytes (no GET) if there is one, else fetched;
//! * a repeat that no new attempt claims within [`REPEAT_WAIT`] is dropped and counted.
//!
//! GitHub's signature covers the body only, so the same bytes under another guid (or event) are a
//! *relabelled* copy until GitHub lists that guid: they wait as a repeat does. A pushed guid that
//! GitHub's list still lacks [`UNRECORDED_AFTER`] polls later was forwarded on the stream's word
//! alone, and is reported.
//!
//! So the handler sees each guid as many times as GitHub attempted it, whichever path brought
//! each attempt. The time constants are explained in `docs/operations.md` ("How the stream and
//! the API agree").
//!
//! Replicas sharing a ledger in Redis keep the counts there, with the attempts claimed and not
//! settled on either path: [`Ledger::claim_push`] applies the pushed half of the rule in one
//! script, claiming the POST by the stream's event id so that one replica forwards it and the
//! others drop their copy ([`PushOutcome::Copy`]); the claim script applies the listed half (a
//! twin is done there).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use github::DeliveryItem;
use tokio::time::Instant;

use crate::Error;
use crate::ledger::{Attempts, Durable, Ledger, Push, PushClaim, Record};

/// How long a listed delivery waits for a healthy stream to bring it, from when it was first
/// listed (on this machine's clock, so a skewed clock cannot stretch it): the blackhole hands each
/// POST to the stream before GitHub even lists it, so one still missing by then was missed.
pub const STREAM_GRACE: Duration = Duration::from_secs(10);

/// How long a repeated POST waits for GitHub's list to show it is a new attempt (a redelivery);
/// the poller lists at `--interval` meanwhile. Past it the repeat is dropped; a redelivery listed
/// later still is fetched from the API, so this bounds a GET saved, never a loss.
pub const REPEAT_WAIT: Duration = Duration::from_secs(10);

/// How many polls, at least [`REPEAT_WAIT`] apart from the push in all, may fail to list a pushed
/// guid before it is reported as unknown to GitHub: the first poll may come before GitHub's list
/// shows what it just delivered.
pub const UNRECORDED_AFTER: u32 = 2;

/// How long a guid the stream brought is remembered for its listing ([`State`]'s `streamed`):
/// longer than the default `--safety-interval` (30 s), so the safety poll finds it.
const STREAMED_FOR: Duration = Duration::from_secs(60);

/// How far before its `received_at` (the blackhole's clock) a pushed delivery holds the floor
/// back: GitHub's `delivered_at` for it is a little earlier, and the clocks may differ.
const PUSH_MARGIN: TimeDelta = TimeDelta::seconds(60);

/// The most body bytes of pushed deliveries held at once: beyond it the stream stops reading, so
/// a slow handler makes the blackhole drop this subscriber (it resumes later, or the API catches
/// up) rather than grow hookfwd's memory.
pub const MAX_PUSHED_BYTES: u64 = 32 << 20;

/// A delivery the blackhole pushed: GitHub's exact bytes and headers.
#[derive(Debug)]
pub struct Pushed {
    /// `X-GitHub-Delivery`.
    pub guid: String,
    /// `X-GitHub-Event`.
    pub event: String,
    /// The payload's `action`, if any.
    pub action: Option<String>,
    /// When the blackhole finished reading it.
    pub received_at: DateTime<Utc>,
    /// GitHub's headers as the blackhole saw them, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The exact body bytes.
    pub body: Vec<u8>,
    /// The stream's event id (SSE `id:`): the same POST has the same one on every subscriber.
    pub event_id: Option<String>,
}

impl Pushed {
    /// Its body's key, from `X-Hub-Signature-256` (else `X-Hub-Signature`): a digest of the body
    /// under the hook's secret.
    pub fn body_key(&self) -> Option<String> {
        let header = |name: &str| self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
        header("x-hub-signature-256").or_else(|| header("x-hub-signature")).and_then(crate::ledger::body_key)
    }

    /// What tells this POST from another for replicas: the stream's event id, else (an event
    /// without one) its guid and when the blackhole received it, the same on every subscriber.
    pub fn event_key(&self) -> String {
        self.event_id.clone().unwrap_or_else(|| format!("{}@{}", self.guid, self.received_at.timestamp_micros()))
    }

    /// What the feed shows for it: a listed-delivery look-alike, without an id (GitHub gave none).
    pub fn item(&self) -> DeliveryItem {
        DeliveryItem {
            id: 0,
            guid: self.guid.clone(),
            delivered_at: self.received_at,
            redelivery: false,
            duration: 0.0,
            status: "OK".into(),
            status_code: 200,
            event: self.event.clone(),
            action: self.action.clone(),
            installation_id: None,
            repository_id: None,
            throttled_at: None,
        }
    }
}

/// One delivery waiting to be forwarded.
#[derive(Debug, Clone)]
pub enum Pending {
    /// Listed by the poller; with the bytes of a repeated POST that GitHub's list showed to be
    /// this attempt (nothing to fetch), else its payload must be fetched.
    Listed(DeliveryItem, Option<Arc<Pushed>>),
    /// Pushed by the blackhole, the first attempt of its guid: forwarded as it is.
    Pushed(Arc<Pushed>),
}

impl Pending {
    /// The delivery as the feed shows it.
    pub fn item(&self) -> DeliveryItem {
        match self {
            Self::Listed(item, _) => item.clone(),
            Self::Pushed(pushed) => pushed.item(),
        }
    }

    /// Where it sorts: oldest first, listed by id, pushed in arrival order.
    fn key(&self, seq: u64) -> Key {
        match self {
            Self::Listed(item, _) => (item.delivered_at, Order::Listed(item.id)),
            Self::Pushed(pushed) => (pushed.received_at, Order::Pushed(seq)),
        }
    }
}

/// Tells queued deliveries apart within one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Order {
    /// A listed delivery, by id.
    Listed(u64),
    /// A pushed delivery, by arrival.
    Pushed(u64),
}

/// A place in the queue.
type Key = (DateTime<Utc>, Order);

/// A delivery the forwarder took, and where it sat in the queue.
#[derive(Debug, Clone)]
pub struct Taken {
    /// Its place in the queue.
    key: Key,
    /// The delivery.
    pub pending: Pending,
    /// Its body's key, once fetched ([`crate::ledger::body_key`] of the signature GitHub's record shows).
    pub body: Option<String>,
}

/// How a taken delivery was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// The handler took it.
    Forwarded,
    /// It can never be forwarded.
    Skipped,
    /// The handler kept rejecting it.
    Parked,
    /// Another source forwards the same original delivery to the same target.
    Duplicate,
}

/// What became of a pushed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The first attempt of its guid: queued for the forwarder.
    Queued,
    /// Its guid was seen: it waits for GitHub's list to say whether it is a new attempt.
    Repeat,
    /// Older than the floor: handled long ago.
    Old,
    /// Another replica's copy of a POST (the same stream event) one of them took already.
    Copy,
}

/// What the state tells the poller about its next poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPlan {
    /// The stream is healthy and no doorbell rang lately: the safety interval is enough.
    pub safety_only: bool,
    /// When something held (a listing waiting for the stream, a repeat) is due, if anything is.
    pub due_in: Option<Duration>,
}

/// What queuing listed deliveries did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Queued {
    /// Deliveries queued for the forwarder.
    pub queued: usize,
    /// Deliveries a healthy stream should have brought and did not (the hook URL's path may not
    /// be the one streamed).
    pub missed: usize,
    /// Pushed guids forwarded that GitHub's list still lacks [`UNRECORDED_AFTER`] polls later.
    pub unrecorded: Vec<String>,
}

/// What a streaming source refused, for its summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refused {
    /// Pushed deliveries whose signature did not verify.
    pub forged: u64,
    /// Repeated (or relabelled) POSTs that GitHub's record showed to be no new attempt.
    pub repeats: u64,
    /// Pushed deliveries forwarded that GitHub has no record of.
    pub unrecorded: u64,
}

/// The stream as the state sees it.
#[derive(Debug, Default)]
struct Stream {
    /// Connected and healthy.
    up: bool,
    /// A fresh (not resumed) stream brings only what GitHub delivered from about then on.
    fresh_from: Option<DateTime<Utc>>,
    /// Until when the poller keeps to `--interval`: a doorbell rang.
    doorbell_until: Option<Instant>,
}

/// One source's queue, stream status and ledger; see the [module doc](self) for the rule.
pub struct State<L> {
    /// The durable record.
    ledger: L,
    /// Waiting to be forwarded, oldest first.
    queue: BTreeMap<Key, Pending>,
    /// Taken by the forwarder, not yet settled.
    in_flight: BTreeSet<Key>,
    /// Ids of the listed deliveries queued, in flight, or twins.
    ids: HashSet<u64>,
    /// Per guid: attempts queued or in flight on each path.
    busy: HashMap<String, Attempts>,
    /// Listed deliveries whose attempt the stream is forwarding now: recorded with it.
    twins: HashMap<String, Vec<(u64, DateTime<Utc>)>>,
    /// Repeated POSTs waiting for GitHub's list, per guid, with when each came.
    repeats: HashMap<String, Vec<(Instant, Arc<Pushed>)>>,
    /// Listed while the stream was healthy, waiting [`STREAM_GRACE`] for it, with when first listed.
    held: Vec<(Instant, DeliveryItem)>,
    /// The stream.
    stream: Stream,
    /// Body bytes of pushed deliveries queued or in flight, against [`MAX_PUSHED_BYTES`].
    pushed_bytes: u64,
    /// Numbers pushed deliveries in arrival order.
    next_seq: u64,
    /// Pushed guids forwarded and not listed yet: since when, and the polls since.
    unlisted: HashMap<String, (Instant, u32)>,
    /// Bodies forwarded from the stream, by signature, with their guid and when they came.
    bodies: Bodies,
    /// Guids the stream brought, to this replica or another ([`PushOutcome::Copy`]), with when,
    /// for [`STREAMED_FOR`]: their listing need not wait for the stream (replicas' counts are in
    /// Redis, not in [`Ledger::attempts`]).
    streamed: HashMap<String, Instant>,
    /// What was refused, for the summary.
    pub refused: Refused,
}

impl<L: Ledger> State<L> {
    /// A state around `ledger`, with nothing queued.
    pub fn new(ledger: L) -> Self {
        let mut bodies = Bodies::default();
        let mut known = ledger.pushed_bodies();
        known.sort_by_key(|(_, _, at)| *at);
        for (body, guid, at) in known {
            bodies.remember(body, guid, at, ledger.floor());
        }
        Self {
            ledger,
            queue: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            ids: HashSet::new(),
            busy: HashMap::new(),
            twins: HashMap::new(),
            repeats: HashMap::new(),
            held: Vec::new(),
            stream: Stream::default(),
            pushed_bytes: 0,
            next_seq: 0,
            unlisted: HashMap::new(),
            bodies,
            streamed: HashMap::new(),
            refused: Refused::default(),
        }
    }

    /// The ledger.
    pub fn ledger(&mut self) -> &mut L {
        &mut self.ledger
    }

    /// Gives the ledger back, for closing, with what was refused: the repeats still waiting for
    /// GitHub's list count too (a new attempt among them is the API's to bring on the next run).
    pub fn finish(self) -> (L, Refused) {
        let waiting = self.repeats.values().map(Vec::len).sum::<usize>() as u64;
        (self.ledger, Refused { repeats: self.refused.repeats + waiting, ..self.refused })
    }

    /// Everything delivered before this is handled.
    pub fn floor(&self) -> DateTime<Utc> {
        self.ledger.floor()
    }

    /// Whether a listed delivery is handled, waiting, held or queued already.
    pub fn knows(&self, item: &DeliveryItem) -> bool {
        self.ids.contains(&item.id) || self.held.iter().any(|(_, held)| held.id == item.id) || self.ledger.knows(item)
    }

    /// Deliveries queued or in flight.
    pub fn backlog(&self) -> usize {
        self.queue.len() + self.in_flight.len()
    }

    /// What the next run forwards of what this one holds: queued, in flight, and listed deliveries
    /// waiting for the stream.
    pub fn left(&self) -> usize {
        self.backlog() + self.held.len()
    }

    /// Body bytes of pushed deliveries held: queued, in flight, or waiting as repeats.
    pub fn held_bytes(&self) -> u64 {
        self.pushed_bytes
    }

    /// Whether another pushed delivery may be taken in now (always, when none is held).
    pub fn has_room(&self) -> bool {
        self.pushed_bytes < MAX_PUSHED_BYTES
    }

    /// The stream came up at `now`. A fresh one (not resumed) brings only what GitHub delivers from
    /// about now on; what was delivered before is the API's to bring.
    pub fn stream_up(&mut self, resumed: bool, now: DateTime<Utc>) {
        if !resumed {
            // GitHub's `delivered_at` has whole seconds: one made in the second the stream came up
            // (or the one before, rounding) may still come through it, so it waits for it too.
            let second = now.with_nanosecond(0).unwrap_or(now);
            self.stream.fresh_from = Some(second - TimeDelta::seconds(1));
        }
        self.stream.up = true;
    }

    /// The stream dropped: everything held for it is the API's now.
    pub fn stream_down(&mut self) {
        self.stream.up = false;
    }

    /// A doorbell: the poller lists at once, and at `--interval` for [`REPEAT_WAIT`].
    pub fn ring(&mut self, now: Instant) {
        self.stream.doorbell_until = Some(now + REPEAT_WAIT);
    }

    /// What the poller should do next.
    pub fn plan(&self, now: Instant) -> PollPlan {
        let rung = self.stream.doorbell_until.is_some_and(|until| now < until);
        let held = self.held.iter().map(|(at, _)| *at + STREAM_GRACE);
        let repeats = self.repeats.values().flatten().map(|(at, _)| *at + REPEAT_WAIT);
        let due = held.chain(repeats).min().map(|at| at.saturating_duration_since(now));
        PollPlan { safety_only: self.stream.up && !rung, due_in: due }
    }

    /// Takes in a pushed delivery whose signature verified (see the rule in the [module doc](self)).
    /// Replicas apply the rule in the shared ledger, where a claim on the stream's event id lets
    /// one of them forward each POST.
    pub async fn pushed(&mut self, pushed: Pushed, now: Instant) -> PushOutcome {
        if pushed.received_at < self.ledger.floor() {
            return PushOutcome::Old;
        }
        let body = pushed.body_key();
        let event = pushed.event_key();
        let push = Push { event: &event, guid: &pushed.guid, at: pushed.received_at, body: body.as_deref() };
        let repeat = match self.ledger.claim_push(push).await {
            Some(PushClaim::Old) => return PushOutcome::Old,
            Some(PushClaim::Copy) => {
                self.streamed.insert(pushed.guid, now);
                return PushOutcome::Copy;
            }
            Some(PushClaim::Seen) => true,
            Some(PushClaim::First) => false,
            None => {
                let seen = self.seen(&pushed.guid);
                let relabelled =
                    body.as_deref().and_then(|body| self.bodies.guid(body)).is_some_and(|guid| guid != pushed.guid);
                seen.api + seen.pushed > 0 || relabelled
            }
        };
        // Held bytes count against the bound whether queued or waiting as a repeat.
        self.pushed_bytes += pushed.body.len() as u64;
        if repeat {
            self.ring(now);
            self.repeats.entry(pushed.guid.clone()).or_default().push((now, Arc::new(pushed)));
            return PushOutcome::Repeat;
        }
        self.add_busy(&pushed.guid, 0, 1);
        self.streamed.insert(pushed.guid.clone(), now);
        if let Some(body) = body {
            self.bodies.remember(body, pushed.guid.clone(), pushed.received_at, self.ledger.floor());
        }
        self.unlisted.insert(pushed.guid.clone(), (now, 0));
        let seq = self.next_seq;
        self.next_seq += 1;
        let pending = Pending::Pushed(Arc::new(pushed));
        self.queue.insert(pending.key(seq), pending);
        PushOutcome::Queued
    }

    /// Takes in what a poll listed, and releases what waited long enough: each delivery not yet
    /// known is a twin of the stream's (recorded), a repeat's new attempt, or queued to fetch.
    pub async fn listed(&mut self, items: Vec<DeliveryItem>, now: Instant) -> Result<Queued, Error> {
        for item in &items {
            self.unlisted.remove(&item.guid);
        }
        let unrecorded = self.unrecorded(now);
        self.streamed.retain(|_, at| now.duration_since(*at) < STREAMED_FOR);
        for item in items {
            if !self.knows(&item) {
                self.held.push((now, item));
            }
        }
        let fresh_from = self.stream.up.then(|| self.stream.fresh_from.unwrap_or(DateTime::<Utc>::MIN_UTC));
        let (ready, held): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held).into_iter().partition(|(at, item)| {
            // Waits for the stream while it may still bring the attempt; not once the stream
            // brought this guid (a twin, or a repeat waiting for this very listing).
            let seen = self.seen(&item.guid);
            fresh_from.is_none_or(|from| item.delivered_at < from)
                || now.duration_since(*at) >= STREAM_GRACE
                || seen.pushed > seen.api
                || self.repeats.contains_key(&item.guid)
                || self.streamed.contains_key(&item.guid)
        });
        self.held = held;
        // Its listing came: a later attempt of the guid waits for the stream as any does.
        for (_, item) in &ready {
            self.streamed.remove(&item.guid);
        }
        let mut due: Vec<(bool, DeliveryItem)> = ready
            .into_iter()
            .map(|(at, item)| (self.stream.up && now.duration_since(at) >= STREAM_GRACE, item))
            .collect();
        // Oldest first, as the stream brought them: a guid's pushed attempts pair with GitHub's in order, so
        // a redelivery's bytes go with the redelivery (GitHub lists newest first).
        due.sort_by_key(|(_, item)| (item.delivered_at, item.id));
        let mut done = self.reconcile(due).await?;
        self.expire_repeats(now);
        self.refused.unrecorded += unrecorded.len() as u64;
        done.unrecorded = unrecorded;
        Ok(done)
    }

    /// Counts a poll against every pushed guid it did not list; those unlisted long enough.
    fn unrecorded(&mut self, now: Instant) -> Vec<String> {
        let mut gone = Vec::new();
        self.unlisted.retain(|guid, (at, polls)| {
            *polls += 1;
            let due = *polls >= UNRECORDED_AFTER && now.duration_since(*at) >= REPEAT_WAIT;
            if due {
                gone.push(guid.clone());
            }
            !due
        });
        gone
    }

    /// Applies the rule to listed deliveries not yet known: `waited` says the stream had its grace.
    async fn reconcile(&mut self, items: Vec<(bool, DeliveryItem)>) -> Result<Queued, Error> {
        let mut done = Queued::default();
        let backlog = self.backlog();
        let mut twins: Vec<Record> = Vec::new();
        let mut fetch = Vec::new();
        let mut waited_for = HashSet::new();
        for (waited, item) in items {
            if self.ids.contains(&item.id) || self.ledger.knows(&item) {
                continue;
            }
            let handled = self.ledger.attempts(&item.guid);
            let recorded = twins.iter().filter(|r| r.guid() == Some(item.guid.as_str())).count() as u32;
            // Everything under way counts, the twins already waiting for the stream's attempt included.
            let seen = self.seen(&item.guid);
            if handled.pushed > handled.api + recorded {
                // The stream forwarded this attempt: record it, spend no GET.
                twins.push(Record::Forwarded { id: item.id, at: item.delivered_at, guid: Some(item.guid.clone()) });
            } else if seen.pushed > seen.api + recorded {
                // The stream is forwarding it now: recorded with it.
                self.ids.insert(item.id);
                self.twins.entry(item.guid.clone()).or_default().push((item.id, item.delivered_at));
            } else {
                if waited {
                    waited_for.insert(item.id);
                }
                fetch.push(item);
            }
        }
        if !twins.is_empty() {
            let keep_from = self.keep_from(None);
            self.ledger.record(&twins, keep_from).await?;
        }
        // Replicas queue only what they claimed (the twin of another replica's push is done in
        // Redis); a file ledger queues everything.
        let admitted = self.ledger.admit(fetch, self.backlog()).await?;
        done.missed = self.queue_admitted(admitted, &waited_for);
        done.queued = self.backlog() - backlog;
        Ok(done)
    }

    /// Queues listed deliveries the ledger admitted, each with the bytes of a repeat of its guid if
    /// one waits (the stream did bring that attempt: no GET); how many of `waited_for` (the stream
    /// had its grace) came with none.
    fn queue_admitted(&mut self, admitted: Vec<DeliveryItem>, waited_for: &HashSet<u64>) -> usize {
        let mut missed = 0;
        for item in admitted {
            let repeat = self.repeats.get_mut(&item.guid).and_then(|list| (!list.is_empty()).then(|| list.remove(0)));
            let pushed = repeat.map(|(_, pushed)| pushed);
            missed += usize::from(waited_for.contains(&item.id) && pushed.is_none());
            self.queue_listed(Pending::Listed(item, pushed));
        }
        self.repeats.retain(|_, list| !list.is_empty());
        missed
    }

    /// Queues more of what the ledger holds back (replicas lease a few at a time); how many.
    pub async fn top_up(&mut self) -> Result<usize, Error> {
        let backlog = self.backlog();
        let more = self.ledger.admit(Vec::new(), backlog).await?;
        self.queue_admitted(more, &HashSet::new());
        Ok(self.backlog() - backlog)
    }

    /// Drops the repeats that waited [`REPEAT_WAIT`] with no new attempt listed.
    fn expire_repeats(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for list in self.repeats.values_mut() {
            let (keep, gone): (Vec<_>, Vec<_>) =
                std::mem::take(list).into_iter().partition(|(at, _)| now.duration_since(*at) < REPEAT_WAIT);
            *list = keep;
            expired.extend(gone);
        }
        self.repeats.retain(|_, list| !list.is_empty());
        self.refused.repeats += expired.len() as u64;
        for (_, pushed) in expired {
            self.release_bytes(&pushed);
        }
    }

    /// Pushed bytes no longer held.
    fn release_bytes(&mut self, pushed: &Pushed) {
        self.pushed_bytes = self.pushed_bytes.saturating_sub(pushed.body.len() as u64);
    }

    fn queue_listed(&mut self, pending: Pending) {
        if let Pending::Listed(item, _) = &pending
            && self.ids.insert(item.id)
        {
            self.add_busy(&item.guid, 1, 0);
            self.queue.insert(pending.key(0), pending);
        }
    }

    /// Takes the oldest waiting delivery.
    pub fn take(&mut self) -> Option<Taken> {
        let (key, pending) = self.queue.pop_first()?;
        self.in_flight.insert(key);
        Some(Taken { key, pending, body: None })
    }

    /// Whether `taken` is still this process's to forward (replicas: its lease holds); if not it
    /// leaves the queue, and another replica forwards it.
    pub async fn confirm(&mut self, taken: &Taken) -> bool {
        let Pending::Listed(item, _) = &taken.pending else { return true };
        if self.ledger.confirm(item).await {
            return true;
        }
        self.unqueue(taken);
        false
    }

    fn unqueue(&mut self, taken: &Taken) {
        if let Pending::Listed(item, pushed) = &taken.pending {
            self.ids.remove(&item.id);
            self.add_busy(&item.guid, -1, 0);
            if let Some(pushed) = pushed {
                self.release_bytes(pushed);
            }
        }
        self.in_flight.remove(&taken.key);
    }

    /// Records `taken` as `how` says, never moving the floor past a waiting delivery, with the
    /// twins the stream's attempt stood for. The promise says when it is on disk.
    pub async fn settle(&mut self, taken: &Taken, how: How) -> Result<Durable, Error> {
        let keep_from = self.keep_from(Some(&taken.key));
        let mut records = Vec::new();
        let guid = |guid: &str| (how != How::Duplicate).then(|| guid.to_string());
        match &taken.pending {
            Pending::Listed(item, pushed) => {
                let (id, at, guid) = (item.id, item.delivered_at, guid(&item.guid));
                let body = pushed.as_ref().map_or_else(|| taken.body.clone(), |pushed| pushed.body_key());
                if let (Some(guid), Some(body)) = (&guid, body) {
                    self.bodies.remember(body.clone(), guid.clone(), at, self.ledger.floor());
                    records.push(Record::Body { guid: guid.clone(), at, body });
                }
                records.push(match how {
                    How::Forwarded | How::Duplicate => Record::Forwarded { id, at, guid },
                    How::Skipped => Record::Skipped { id, at, guid },
                    How::Parked => Record::Parked { id, at, guid },
                });
            }
            Pending::Pushed(pushed) => {
                let (at, guid, body) = (pushed.received_at, pushed.guid.clone(), pushed.body_key());
                match how {
                    How::Duplicate => {}
                    How::Parked => records.push(Record::ParkedPushed { guid, at, body }),
                    How::Forwarded | How::Skipped => records.push(Record::Pushed { guid, at, body }),
                }
                if let Some(list) = self.twins.get_mut(&pushed.guid) {
                    let (id, at) = list.remove(0);
                    if list.is_empty() {
                        self.twins.remove(&pushed.guid);
                    }
                    self.ids.remove(&id);
                    records.push(Record::Forwarded {
                        id,
                        at,
                        guid: (how != How::Duplicate).then(|| pushed.guid.clone()),
                    });
                }
            }
        }
        if let Pending::Pushed(pushed) | Pending::Listed(_, Some(pushed)) = &taken.pending {
            self.release_bytes(pushed);
        }
        let durable = self.ledger.record(&records, keep_from).await?;
        match &taken.pending {
            Pending::Listed(item, _) => {
                self.ids.remove(&item.id);
                self.add_busy(&item.guid, -1, 0);
            }
            Pending::Pushed(pushed) => self.add_busy(&pushed.guid, 0, -1),
        }
        self.in_flight.remove(&taken.key);
        Ok(durable)
    }

    /// Attempts of `guid` handled or under way, on each path.
    fn seen(&self, guid: &str) -> Attempts {
        let done = self.ledger.attempts(guid);
        let busy = self.busy(guid);
        let twins = self.twins.get(guid).map_or(0, Vec::len) as u32;
        Attempts { api: done.api + busy.api + twins, pushed: done.pushed + busy.pushed }
    }

    /// The oldest delivery still waiting, other than `except`: the floor must not pass it.
    fn keep_from(&self, except: Option<&Key>) -> Option<DateTime<Utc>> {
        let holds = |(t, order): &Key| match order {
            Order::Listed(_) => *t,
            Order::Pushed(_) => t.checked_sub_signed(PUSH_MARGIN).unwrap_or(*t),
        };
        let queued = self.queue.keys().map(holds);
        let in_flight = self.in_flight.iter().filter(|key| Some(*key) != except).map(holds);
        let twins = self.twins.values().flatten().map(|(_, t)| *t);
        let held = self.held.iter().map(|(_, item)| item.delivered_at);
        queued.chain(in_flight).chain(twins).chain(held).min()
    }

    fn busy(&self, guid: &str) -> Attempts {
        self.busy.get(guid).copied().unwrap_or_default()
    }

    fn add_busy(&mut self, guid: &str, api: i64, pushed: i64) {
        let entry = self.busy.entry(guid.to_string()).or_default();
        entry.api = (i64::from(entry.api) + api).max(0) as u32;
        entry.pushed = (i64::from(entry.pushed) + pushed).max(0) as u32;
        if *entry == Attempts::default() {
            self.busy.remove(guid);
        }
    }
}

/// The keys of bodies the stream brought, each with its guid, for as long as the ledger remembers
/// guids (down to the floor), and at most [`crate::ledger::MAX_DONE`].
#[derive(Debug, Default)]
struct Bodies {
    guids: HashMap<String, String>,
    order: VecDeque<(DateTime<Utc>, String)>,
}

impl Bodies {
    fn guid(&self, signature: &str) -> Option<&str> {
        self.guids.get(signature).map(String::as_str)
    }

    fn remember(&mut self, signature: String, guid: String, at: DateTime<Utc>, floor: DateTime<Utc>) {
        while let Some((oldest, _)) = self.order.front()
            && (*oldest < floor || self.order.len() >= crate::ledger::MAX_DONE)
        {
            if let Some((_, gone)) = self.order.pop_front() {
                self.guids.remove(&gone);
            }
        }
        if self.guids.insert(signature.clone(), guid).is_none() {
            self.order.push_back((at, signature));
        }
    }
}
