//! The fetcher: gets listed deliveries' payloads from GitHub a few ahead of the forwarder, bounded
//! in count and in bytes, retrying GitHub's errors until a delivery comes or is gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use github::{Delivery, DeliveryItem};
use tokio_util::sync::CancellationToken;
use tracing::{debug, instrument};

use crate::{Call, Event};
use github::Backoff;

use super::{Ctx, GONE_AFTER, SourceRun, is_auth, wait_after};

/// How many bytes of fetched deliveries may wait for their turn, per source: enough to keep
/// the fetches going ahead of a handler, small next to the memory of any machine. A single
/// delivery larger than this is still fetched, alone.
pub(crate) const WINDOW_BYTES: u64 = 64 * 1024 * 1024;

/// What fetching a listed delivery gave.
pub(super) enum Fetched {
    /// The whole delivery.
    Delivery(Box<Delivery>),
    /// GitHub no longer has it (past retention).
    Gone,
    /// GitHub's answer for it can never be used (unreadable, or too large): skip it.
    Poison(github::Error),
    /// Stopped.
    Cancelled,
    /// GitHub refused the credentials (a revoked token): nothing can be fetched any more.
    Refused(github::Error),
}

/// The fetch window's memory: fetched deliveries waiting to be forwarded are bounded in bytes,
/// not only in count, so large payloads cannot pile up (20 payloads of 25 MB once took 627 MB).
///
/// The size of a delivery is known only once it is fetched, so a fetch starts only while the
/// bytes already waiting plus an estimate for every fetch in flight (the largest recent size)
/// fit in [`WINDOW_BYTES`]; until the first size is known, one fetch runs at a time.
#[derive(Default)]
pub(super) struct Budget {
    /// Bytes of deliveries fetched and not yet forwarded.
    pub(super) waiting: AtomicU64,
    /// Fetches in flight.
    pub(super) fetching: AtomicUsize,
    /// The size to expect of the next fetch: the largest recent one, decaying; 0 before the first.
    estimate: AtomicU64,
}

impl Budget {
    /// Whether another fetch may start, with `window` fetched or fetching ahead of the forwarder.
    pub(super) fn admits(&self, window: usize) -> bool {
        if window == 0 {
            return true;
        }
        let fetching = self.fetching.load(Ordering::SeqCst) as u64;
        match self.estimate.load(Ordering::SeqCst) {
            0 => fetching == 0,
            estimate => {
                self.waiting.load(Ordering::SeqCst).saturating_add(estimate.saturating_mul(fetching + 1))
                    <= WINDOW_BYTES
            }
        }
    }

    /// A fetch of `size` bytes finished: it waits in the window until [`Budget::forwarded`].
    pub(super) fn fetched(&self, size: u64) {
        self.waiting.fetch_add(size, Ordering::SeqCst);
        // The largest recent size, forgotten by an eighth per fetch, so one large payload does not
        // slow a hook of small ones for long.
        let _ = self.estimate.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |old| Some(size.max(old - old / 8)));
    }

    /// A fetched delivery of `size` bytes left the window.
    pub(super) fn forwarded(&self, size: u64) {
        let _ = self.waiting.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |old| Some(old.saturating_sub(size)));
    }
}

/// The bytes a fetched delivery holds: its payload and headers.
pub(super) fn size(fetched: &Fetched) -> u64 {
    let Fetched::Delivery(delivery) = fetched else { return 0 };
    let payload = delivery.request.payload.as_ref().map_or(0, |raw| raw.get().len());
    let headers: usize = delivery.request.headers.iter().flatten().map(|(name, value)| name.len() + value.len()).sum();
    (payload + headers) as u64
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
            Err(error) if error.is_permanent() => return Fetched::Poison(error),
            Err(error) => error,
        };
        if matches!(error, github::Error::NotFound { .. }) {
            not_found += 1;
        }
        debug!(delivery = item.id, "fetch failed");
        let (hook, error) = (Some(source.hook.clone()), Arc::new(error));
        let call = Call::Fetch { source: source.name.clone(), id: item.id };
        ctx.events.emit(Event::Error { hook, call, error: error.clone() }).await;
        let wait = wait_after(&error, &mut backoff);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => return Fetched::Cancelled,
        }
    }
}
