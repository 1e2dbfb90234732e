//! The queue of listed deliveries and the ledger, shared by a source's poller and forwarder.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use github::DeliveryItem;
use tokio::sync::Notify;

use crate::Error;
use crate::ledger::Ledger;

/// Listed deliveries waiting to be forwarded, oldest first, and those being forwarded.
#[derive(Default)]
pub(super) struct Queue {
    /// Listed, not yet taken.
    pending: BTreeMap<(DateTime<Utc>, u64), DeliveryItem>,
    /// Taken by the forwarder, not yet recorded.
    in_flight: BTreeSet<(DateTime<Utc>, u64)>,
    /// Ids of both.
    ids: HashSet<u64>,
}

/// [`Ledger::record`] or [`Ledger::skip`]: id, `delivered_at`, `keep_from`.
type Write = fn(&mut Ledger, u64, DateTime<Utc>, Option<DateTime<Utc>>) -> Result<(), Error>;

/// The state a source's poller and forwarder share.
pub(super) struct Shared {
    /// Lock order: `queue`, then `ledger`.
    pub(super) queue: Mutex<Queue>,
    /// The durable record.
    pub(super) ledger: Mutex<Ledger>,
    /// Wakes the forwarder when the poller queued something.
    pub(super) notify: Notify,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves consistent data here: every update is a single step.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(super) fn floor(&self) -> DateTime<Utc> {
        lock(&self.ledger).floor()
    }

    /// Whether a listed delivery is already handled or waiting.
    pub(super) fn is_known(&self, item: &DeliveryItem) -> bool {
        let queue = lock(&self.queue);
        queue.ids.contains(&item.id) || lock(&self.ledger).is_recorded(item.id, item.delivered_at)
    }

    /// Queues the deliveries not yet handled or waiting; returns how many.
    pub(super) fn enqueue(&self, items: Vec<DeliveryItem>) -> usize {
        let mut queue = lock(&self.queue);
        let ledger = lock(&self.ledger);
        let mut added = 0;
        for item in items {
            if queue.ids.contains(&item.id) || ledger.is_recorded(item.id, item.delivered_at) {
                continue;
            }
            queue.ids.insert(item.id);
            queue.pending.insert((item.delivered_at, item.id), item);
            added += 1;
        }
        drop(ledger);
        drop(queue);
        if added > 0 {
            self.notify.notify_one();
        }
        added
    }

    /// Takes the oldest waiting delivery.
    pub(super) fn take_next(&self) -> Option<DeliveryItem> {
        let mut queue = lock(&self.queue);
        let (key, item) = queue.pending.pop_first()?;
        queue.in_flight.insert(key);
        Some(item)
    }

    pub(super) fn backlog(&self) -> usize {
        lock(&self.queue).ids.len()
    }

    /// Records a handled delivery in the ledger (blocking: it fsyncs).
    pub(super) fn record(&self, item: &DeliveryItem) -> Result<(), Error> {
        self.handled(item, Ledger::record)
    }

    /// Records a delivery that can never be forwarded as skipped (blocking: it fsyncs).
    pub(super) fn skip(&self, item: &DeliveryItem) -> Result<(), Error> {
        self.handled(item, Ledger::skip)
    }

    /// Writes `item` to the ledger with `write`, never moving the floor past a waiting delivery.
    fn handled(&self, item: &DeliveryItem, write: Write) -> Result<(), Error> {
        let key = (item.delivered_at, item.id);
        let mut queue = lock(&self.queue);
        let oldest_pending = queue.pending.first_key_value().map(|(k, _)| k.0);
        let oldest_in_flight = queue.in_flight.iter().find(|k| **k != key).map(|k| k.0);
        let keep_from = match (oldest_pending, oldest_in_flight) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        write(&mut lock(&self.ledger), item.id, item.delivered_at, keep_from)?;
        queue.in_flight.remove(&key);
        queue.ids.remove(&item.id);
        Ok(())
    }
}
