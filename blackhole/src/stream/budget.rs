//! The one byte budget, `--stream-buffer-total`, that everything the hub holds is counted against.
//!
//! A [`Charge`] is bytes taken from the budget; it gives them back when dropped. Each thing that holds
//! memory for streaming owns the charge for it, so the count follows the memory's real lifetime: a
//! body while it is collected, an event while anything references it, a path name while any index or
//! stream names it, a frame until hyper has written it. Giving back is an atomic subtraction, so a
//! charge may be dropped anywhere, also under the hub's lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes held for streaming, and their bound.
pub(crate) struct Budget {
    /// The bound: `--stream-buffer-total`.
    total: usize,
    /// Bytes charged now; may pass `total` only by what [`Budget::force`] allows.
    used: AtomicUsize,
}

impl Budget {
    pub(crate) fn new(total: usize) -> Arc<Budget> {
        Arc::new(Budget { total, used: AtomicUsize::new(0) })
    }

    /// Takes `bytes` if they fit under the bound.
    pub(crate) fn take(self: &Arc<Self>, bytes: usize) -> Option<Charge> {
        let reserved = self.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            used.checked_add(bytes).filter(|after| *after <= self.total)
        });
        reserved.is_ok().then(|| Charge { budget: self.clone(), bytes })
    }

    /// Takes `bytes` even past the bound: only for what another limit already bounds small.
    pub(crate) fn force(self: &Arc<Self>, bytes: usize) -> Charge {
        self.used.fetch_add(bytes, Ordering::Relaxed);
        Charge { budget: self.clone(), bytes }
    }

    /// How many more bytes must be freed before `bytes` fit.
    pub(crate) fn shortfall(&self, bytes: usize) -> usize {
        (self.used.load(Ordering::Relaxed).saturating_add(bytes)).saturating_sub(self.total)
    }

    /// Bytes charged now, for tests.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// Bytes taken from a [`Budget`], given back when dropped.
pub(crate) struct Charge {
    /// Where they were taken from.
    budget: Arc<Budget>,
    /// How many.
    bytes: usize,
}

impl Charge {
    /// The bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Merges another charge of the same budget into this one.
    pub(crate) fn merge(&mut self, mut other: Charge) {
        self.bytes += std::mem::take(&mut other.bytes);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_given_back_when_dropped_and_never_pass_the_bound() {
        let budget = Budget::new(100);
        let mut first = budget.take(60).unwrap();
        assert!(budget.take(41).is_none());
        first.merge(budget.take(40).unwrap());
        assert_eq!(budget.used(), 100);
        let second = budget.force(5);
        assert_eq!(budget.shortfall(10), 15);
        first.merge(second);
        assert_eq!((first.bytes(), budget.used()), (105, 105));
        drop(first);
        assert_eq!(budget.used(), 0);
    }
}
