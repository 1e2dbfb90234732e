//! The queue of deliveries to forward, from both paths, and the ledger, shared by a source's
//! poller, stream and forwarder.
//!
//! The identity rule lives in [`crate::ledger`]: each attempt of a guid is forwarded once. Here
//! it is applied to what is queued or in flight as well as to what is recorded, so neither path
//! forwards (or fetches) what the other is still forwarding. When one path finds the other busy
//! with the same attempt, it leaves an IOU ("owed") that is recorded as a claim the moment the
//! busy attempt is recorded, which keeps the two counts even.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use github::DeliveryItem;
use tokio::sync::Notify;

use crate::Error;
use crate::ledger::{Attempts, Handled, Ledger};

use super::claims::Replica;

/// How far before its `received_at` (the blackhole's clock) a pushed delivery holds the floor
/// back: GitHub's `delivered_at` for it is a little earlier, and the clocks may differ.
const PUSH_MARGIN: TimeDelta = TimeDelta::seconds(60);

/// A delivery the blackhole pushed: GitHub's exact bytes and headers.
#[derive(Debug)]
pub(crate) struct Pushed {
    /// `X-GitHub-Delivery`.
    pub(crate) guid: String,
    /// `X-GitHub-Event`.
    pub(crate) event: String,
    /// The payload's `action`, if any.
    pub(crate) action: Option<String>,
    /// When the blackhole finished reading it.
    pub(crate) received_at: DateTime<Utc>,
    /// GitHub's headers as the blackhole saw them, names lower-case.
    pub(crate) headers: Vec<(String, String)>,
    /// The exact body bytes.
    pub(crate) body: Vec<u8>,
}

impl Pushed {
    /// What the feed shows for it: a listed-delivery look-alike, without an id (GitHub gave none).
    pub(crate) fn item(&self) -> DeliveryItem {
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
pub(super) enum Pending {
    /// Listed by the poller: its payload must be fetched.
    Listed(DeliveryItem),
    /// Pushed by the blackhole: forwarded as it is.
    Pushed(Arc<Pushed>),
}

impl Pending {
    /// Where it sorts: oldest first, listed by id, pushed in arrival order.
    fn key(&self, seq: u64) -> (DateTime<Utc>, Key) {
        match self {
            Self::Listed(item) => (item.delivered_at, Key::Listed(item.id)),
            Self::Pushed(pushed) => (pushed.received_at, Key::Pushed(seq)),
        }
    }
}

/// Tells queued deliveries apart within one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// A listed delivery, by id.
    Listed(u64),
    /// A pushed delivery, by arrival.
    Pushed(u64),
}

/// What became of a pushed delivery handed to [`Shared::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PushOutcome {
    /// Queued for the forwarder.
    Queued,
    /// Already handled through the API: recorded as a claim, not forwarded.
    Claimed,
    /// The API path is forwarding it now: claimed once that is recorded.
    Owed,
    /// Older than the floor: handled long ago.
    Old,
}

/// Deliveries waiting to be forwarded, oldest first, and those being forwarded.
#[derive(Default)]
pub(super) struct Queue {
    /// Not yet taken, with each one's sort key.
    pending: BTreeMap<(DateTime<Utc>, Key), Pending>,
    /// Taken by the forwarder, not yet recorded.
    in_flight: BTreeSet<(DateTime<Utc>, Key)>,
    /// Ids of the listed deliveries among both, and of those owed.
    ids: HashSet<u64>,
    /// Per guid: attempts queued or in flight on each path.
    busy: HashMap<String, Attempts>,
    /// Listed deliveries the stream is forwarding: claimed when it is recorded.
    owed_listed: HashMap<String, Vec<(u64, DateTime<Utc>)>>,
    /// Pushed attempts the API path is forwarding: claimed when it is recorded.
    owed_pushed: HashMap<String, Vec<DateTime<Utc>>>,
    /// Numbers pushed deliveries in arrival order.
    next_seq: u64,
}

impl Queue {
    /// The oldest delivery still waiting, other than `except`: the floor must not pass it.
    fn keep_from(&self, except: Option<&(DateTime<Utc>, Key)>) -> Option<DateTime<Utc>> {
        let holds = |(t, key): &(DateTime<Utc>, Key)| match key {
            Key::Listed(_) => *t,
            Key::Pushed(_) => t.checked_sub_signed(PUSH_MARGIN).unwrap_or(*t),
        };
        let pending = self.pending.keys().map(holds).min();
        let in_flight = self.in_flight.iter().filter(|key| Some(*key) != except).map(holds).min();
        match (pending, in_flight) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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

/// The state a source's poller, stream and forwarder share.
pub(super) struct Shared {
    /// Lock order: `queue`, then `ledger`.
    pub(super) queue: Mutex<Queue>,
    /// The durable record.
    pub(super) ledger: Book,
    /// Wakes the forwarder when something was queued.
    pub(super) notify: Notify,
    /// Wakes the poller at once: the stream (re)connected without resuming, or rang the doorbell.
    pub(super) poll_now: Notify,
    /// Whether the stream is connected and healthy, so the poller only needs the safety interval.
    pub(super) streaming: AtomicBool,
    /// Pushed deliveries whose signature did not verify.
    pub(super) rejected: AtomicU64,
    /// Body bytes of pushed deliveries queued or in flight, against [`MAX_PUSHED_BYTES`].
    pushed_bytes: AtomicU64,
    /// Wakes the stream task when a pushed delivery was recorded, so there is room again.
    pub(super) room: Notify,
    /// Until when the poller keeps to `--interval` after a doorbell: GitHub lists a delivery only
    /// once its attempt has finished, which can be a little after the blackhole pushed it.
    pub(super) doorbell_until: Mutex<Option<tokio::time::Instant>>,
    /// When a fresh (not resumed) stream came up: what GitHub delivered before then is the API's to bring.
    stream_up_at: Mutex<Option<DateTime<Utc>>>,
}

/// The most body bytes of pushed deliveries held at once: beyond it the stream task stops
/// reading, so a slow handler makes the blackhole drop this subscriber (it resumes later, or the
/// API catches up) rather than grow hookfwd's memory.
pub(super) const MAX_PUSHED_BYTES: u64 = 32 << 20;

/// How long after a doorbell the poller keeps polling at `--interval`.
pub(super) const DOORBELL: std::time::Duration = std::time::Duration::from_secs(10);

/// The ledger a source records in: its file, or the one replicas share in Redis.
pub(super) enum Book {
    /// The file ledger under the state directory.
    File(Mutex<Ledger>),
    /// The shared ledger, and what this replica listed, claimed and holds.
    Shared(Replica),
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves consistent data here: every update is a single step.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Shared state around `ledger`, with nothing queued.
    #[cfg(test)]
    pub(super) fn new(ledger: Ledger) -> Self {
        Self::with(Book::File(Mutex::new(ledger)))
    }

    /// Shared state around the ledger `book`, with nothing queued.
    pub(super) fn with(book: Book) -> Self {
        Self {
            queue: Mutex::default(),
            ledger: book,
            notify: Notify::new(),
            poll_now: Notify::new(),
            streaming: AtomicBool::new(false),
            rejected: AtomicU64::new(0),
            pushed_bytes: AtomicU64::new(0),
            room: Notify::new(),
            doorbell_until: Mutex::new(None),
            stream_up_at: Mutex::new(None),
        }
    }

    /// Makes the poller list at once, and keep to `--interval` for [`DOORBELL`].
    pub(super) fn ring(&self) {
        *lock(&self.doorbell_until) = Some(tokio::time::Instant::now() + DOORBELL);
        self.poll_now.notify_one();
    }

    /// The stream is healthy. A fresh one (not resumed) brings only what GitHub delivers from now on:
    /// the poller lists at once, and what was delivered before now is the API's to bring.
    pub(super) fn stream_came_up(&self, resumed: bool) {
        if !resumed {
            // GitHub's `delivered_at` has whole seconds: one made in the second the stream came up
            // (or the one before, rounding) may still come through it, so it waits for it too.
            let now = Utc::now();
            let second = now.with_nanosecond(0).unwrap_or(now);
            *lock(&self.stream_up_at) = Some(second - TimeDelta::seconds(1));
        }
        self.streaming.store(true, Ordering::Relaxed);
        if !resumed {
            self.poll_now.notify_one();
        }
    }

    /// While the stream is healthy and no doorbell rang, listed deliveries made at or after this
    /// time wait for the stream ([`super::poller::STREAM_GRACE`]); earlier ones no stream brings.
    pub(super) fn hold_from(&self) -> Option<DateTime<Utc>> {
        self.safety_only().then(|| lock(&self.stream_up_at).unwrap_or(DateTime::<Utc>::MIN_UTC))
    }

    /// Whether the poller may keep to the safety interval: the stream is healthy and no doorbell rang lately.
    pub(super) fn safety_only(&self) -> bool {
        self.is_streaming() && lock(&self.doorbell_until).is_none_or(|until| tokio::time::Instant::now() >= until)
    }

    pub(super) fn floor(&self) -> DateTime<Utc> {
        match &self.ledger {
            Book::File(ledger) => lock(ledger).floor(),
            Book::Shared(replica) => replica.floor(),
        }
    }

    /// The shared ledger's replica, if the ledger is in Redis.
    pub(super) fn replica(&self) -> Option<&Replica> {
        match &self.ledger {
            Book::File(_) => None,
            Book::Shared(replica) => Some(replica),
        }
    }

    /// The file ledger; asking for it with a shared ledger is a bug in hookfwd.
    pub(super) fn file_ledger(&self) -> Result<MutexGuard<'_, Ledger>, Error> {
        match &self.ledger {
            Book::File(ledger) => Ok(lock(ledger)),
            Book::Shared(_) => Err(Error::TaskFailed("the file ledger was asked for with a shared ledger".into())),
        }
    }

    /// Queues listed deliveries this replica claimed in the shared ledger; returns how many.
    pub(super) fn queue_claimed(&self, items: Vec<DeliveryItem>) -> usize {
        let mut queue = lock(&self.queue);
        let mut added = 0;
        for item in items {
            if queue.ids.insert(item.id) {
                let pending = Pending::Listed(item);
                queue.pending.insert(pending.key(0), pending);
                added += 1;
            }
        }
        drop(queue);
        if added > 0 {
            self.notify.notify_one();
        }
        added
    }

    /// Takes a delivery out of the queue without recording it (the shared ledger records it, or
    /// another replica holds it now).
    pub(super) fn unqueue(&self, taken: &Taken) {
        let mut queue = lock(&self.queue);
        if let Pending::Listed(item) = &taken.pending {
            queue.ids.remove(&item.id);
        }
        queue.in_flight.remove(&taken.key);
    }

    /// Whether another pushed delivery may be queued now (always, when none is held).
    pub(super) fn has_room(&self) -> bool {
        let held = self.pushed_bytes.load(Ordering::Relaxed);
        held == 0 || held < MAX_PUSHED_BYTES
    }

    /// Whether the stream is healthy.
    pub(super) fn is_streaming(&self) -> bool {
        self.streaming.load(Ordering::Relaxed)
    }

    /// Whether a listed delivery is already handled, waiting, or owed.
    pub(super) fn is_known(&self, item: &DeliveryItem) -> bool {
        let queue = lock(&self.queue);
        queue.ids.contains(&item.id)
            || match &self.ledger {
                Book::File(ledger) => lock(ledger).is_recorded(item.id, item.delivered_at),
                Book::Shared(replica) => replica.knows(item),
            }
    }

    /// Queues the listed deliveries not yet handled or waiting, and claims those the stream
    /// brought (blocking: a claim fsyncs); returns how many were queued.
    pub(super) fn enqueue(&self, items: Vec<DeliveryItem>) -> Result<usize, Error> {
        let mut queue = lock(&self.queue);
        let mut ledger = self.file_ledger()?;
        let mut added = 0;
        let mut claims: Vec<&DeliveryItem> = Vec::new();
        let mut claimed: HashMap<&str, u32> = HashMap::new();
        for item in &items {
            if queue.ids.contains(&item.id) || ledger.is_recorded(item.id, item.delivered_at) {
                continue;
            }
            let done = ledger.attempts(&item.guid);
            let busy = queue.busy(&item.guid);
            let api = done.api + claimed.get(item.guid.as_str()).copied().unwrap_or(0);
            if done.pushed > api {
                // The stream forwarded this attempt: record it, spend no GET.
                *claimed.entry(&item.guid).or_default() += 1;
                claims.push(item);
            } else if done.pushed + busy.pushed > api + busy.api {
                // The stream is forwarding it now.
                queue.ids.insert(item.id);
                queue.owed_listed.entry(item.guid.clone()).or_default().push((item.id, item.delivered_at));
            } else {
                queue.ids.insert(item.id);
                queue.add_busy(&item.guid, 1, 0);
                queue.pending.insert(Pending::Listed(item.clone()).key(0), Pending::Listed(item.clone()));
                added += 1;
            }
        }
        if !claims.is_empty() {
            let handled: Vec<Handled<'_>> =
                claims.iter().map(|item| (item.id, item.delivered_at, Some(item.guid.as_str()))).collect();
            ledger.record_handled(&handled, queue.keep_from(None))?;
        }
        drop(ledger);
        drop(queue);
        if added > 0 {
            self.notify.notify_one();
        }
        Ok(added)
    }

    /// Queues a pushed delivery unless the API path handled it or is handling it (blocking: a
    /// claim fsyncs).
    pub(super) fn push(&self, pushed: Pushed) -> Result<PushOutcome, Error> {
        let mut queue = lock(&self.queue);
        let mut ledger = self.file_ledger()?;
        if pushed.received_at < ledger.floor() {
            return Ok(PushOutcome::Old);
        }
        let done = ledger.attempts(&pushed.guid);
        let busy = queue.busy(&pushed.guid);
        if done.api > done.pushed {
            ledger.record_pushed(&pushed.guid, pushed.received_at)?;
            return Ok(PushOutcome::Claimed);
        }
        if done.api + busy.api > done.pushed + busy.pushed {
            queue.owed_pushed.entry(pushed.guid.clone()).or_default().push(pushed.received_at);
            return Ok(PushOutcome::Owed);
        }
        drop(ledger);
        self.pushed_bytes.fetch_add(pushed.body.len() as u64, Ordering::Relaxed);
        queue.add_busy(&pushed.guid, 0, 1);
        let seq = queue.next_seq;
        queue.next_seq += 1;
        let pending = Pending::Pushed(Arc::new(pushed));
        queue.pending.insert(pending.key(seq), pending);
        drop(queue);
        self.notify.notify_one();
        Ok(PushOutcome::Queued)
    }

    /// Takes the oldest waiting delivery, with the key to record it by.
    pub(super) fn take_next(&self) -> Option<Taken> {
        let mut queue = lock(&self.queue);
        let (key, pending) = queue.pending.pop_first()?;
        queue.in_flight.insert(key);
        Some(Taken { key, pending })
    }

    /// Deliveries queued or in flight.
    pub(super) fn backlog(&self) -> usize {
        let queue = lock(&self.queue);
        queue.pending.len() + queue.in_flight.len()
    }

    /// Un-parks a delivery that was sent again and answered (blocking: it fsyncs).
    /// With the ledger in Redis nothing is listed as parked, so there is nothing to un-park.
    pub(super) fn unpark(&self, id: u64, guid: &str) -> Result<bool, Error> {
        match &self.ledger {
            Book::File(ledger) => lock(ledger).unpark(id, Some(guid)),
            Book::Shared(_) => Ok(false),
        }
    }

    /// Whether this source's ledger holds an attempt of `guid`, forwarded or claimed.
    /// With the ledger in Redis, only this run's claims count (`dedupe::Claims`): the ledger keeps ids, not guids.
    pub(super) fn has_guid(&self, guid: &str) -> bool {
        match &self.ledger {
            Book::File(ledger) => {
                let attempts = lock(ledger).attempts(guid);
                attempts.api + attempts.pushed > 0
            }
            Book::Shared(_) => false,
        }
    }

    /// Writes `taken` to the file ledger as `how` says (blocking: it fsyncs), never moving the floor
    /// past a waiting delivery, and settles what the other path owed it. A skipped listed delivery
    /// becomes a `k` record; a skipped pushed one has no id to skip by, so it is recorded as pushed:
    /// either way it counts as handled on both paths. A parked one is handled too, and listed as
    /// parked until it is sent again. A duplicate (another source forwards the same original
    /// delivery to the same target) is recorded without its guid: should that source stop before
    /// recording it, its next run must not find the guid here and take it for forwarded.
    pub(super) fn handled(&self, taken: &Taken, how: How) -> Result<(), Error> {
        let mut queue = lock(&self.queue);
        let keep_from = queue.keep_from(Some(&taken.key));
        let mut ledger = self.file_ledger()?;
        match &taken.pending {
            Pending::Listed(item) => {
                let handled = (item.id, item.delivered_at, Some(item.guid.as_str()));
                match how {
                    How::Forwarded => ledger.record_handled(&[handled], keep_from)?,
                    How::Skipped => ledger.skip(handled, keep_from)?,
                    How::Parked => ledger.park(handled, keep_from)?,
                    How::Duplicate => ledger.record_handled(&[(item.id, item.delivered_at, None)], keep_from)?,
                }
                if let Some(received_at) = pop(&mut queue.owed_pushed, &item.guid) {
                    ledger.record_pushed(&item.guid, received_at)?;
                }
                queue.ids.remove(&item.id);
                queue.add_busy(&item.guid, -1, 0);
            }
            Pending::Pushed(pushed) => {
                if how != How::Duplicate {
                    ledger.record_pushed(&pushed.guid, pushed.received_at)?;
                }
                if how == How::Parked {
                    ledger.park((0, pushed.received_at, Some(pushed.guid.as_str())), keep_from)?;
                }
                if let Some((id, delivered_at)) = pop(&mut queue.owed_listed, &pushed.guid) {
                    let guid = (how != How::Duplicate).then_some(pushed.guid.as_str());
                    ledger.record_handled(&[(id, delivered_at, guid)], keep_from)?;
                    queue.ids.remove(&id);
                }
                queue.add_busy(&pushed.guid, 0, -1);
                self.pushed_bytes.fetch_sub(pushed.body.len() as u64, Ordering::Relaxed);
                self.room.notify_one();
            }
        }
        queue.in_flight.remove(&taken.key);
        Ok(())
    }
}

/// How a taken delivery was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum How {
    /// The handler took it.
    Forwarded,
    /// It can never be forwarded.
    Skipped,
    /// The handler kept rejecting it.
    Parked,
    /// Another source forwards the same original delivery to the same target.
    Duplicate,
}

/// A delivery the forwarder took, and where it sat in the queue.
#[derive(Debug, Clone)]
pub(super) struct Taken {
    /// Its place in the queue.
    key: (DateTime<Utc>, Key),
    /// The delivery.
    pub(super) pending: Pending,
}

/// Takes one owed entry of `guid`, the oldest.
fn pop<T>(owed: &mut HashMap<String, Vec<T>>, guid: &str) -> Option<T> {
    let list = owed.get_mut(guid)?;
    let first = (!list.is_empty()).then(|| list.remove(0));
    if list.is_empty() {
        owed.remove(guid);
    }
    first
}

#[cfg(test)]
mod tests;
