//! Overlapping sources: an original delivery (one guid) that several sources' hooks bring, such as
//! an organization's and one of its repositories', is forwarded to a target once.
//!
//! The first source to take a guid for a target owns it for this run; the others record their
//! copy as handled without fetching it. After a restart, a guid another source's ledger holds
//! (forwarded to the same target) is owned by that source. A redelivery is always forwarded:
//! someone asked for it on that hook. The GitHub App's hook takes no part: its deliveries of an
//! event carry the installation and a target type of their own, so they are not copies of a
//! repository's.
//!
//! This registry is the one piece of state sources share: a plain map behind a lock that is
//! never held across an await, and no source's own state is in it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

/// The most guids remembered; the oldest go first (by then each source has long taken its copy).
const MAX_OWNED: usize = 50_000;

/// Which source owns each (target, guid) this run.
#[derive(Default)]
pub(super) struct Overlaps {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// (target, guid) → the source that forwards it.
    owners: HashMap<(String, String), String>,
    /// The keys in the order owned, for the bound.
    order: VecDeque<(String, String)>,
}

impl Overlaps {
    /// Adds a source whose ledger already holds `guids`, forwarded to `target`.
    pub(super) fn join(&self, source: &str, target: &str, guids: Vec<String>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        for guid in guids {
            inner.own((target.to_string(), guid), source);
        }
    }

    /// Whether another source forwards `guid` to `target`; if none does, `source` owns it now.
    pub(super) fn is_elsewhere(&self, source: &str, target: &str, guid: &str) -> bool {
        // Every update is one step, so a panic elsewhere leaves the map consistent.
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (target.to_string(), guid.to_string());
        if let Some(owner) = inner.owners.get(&key) {
            return owner != source;
        }
        inner.own(key, source);
        false
    }
}

impl Inner {
    fn own(&mut self, key: (String, String), source: &str) {
        if self.owners.insert(key.clone(), source.to_string()).is_none() {
            self.order.push_back(key);
        }
        if self.order.len() > MAX_OWNED
            && let Some(oldest) = self.order.pop_front()
        {
            self.owners.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_source_owns_a_guid_per_target_and_a_ledger_answers_after_a_restart() {
        let overlaps = Overlaps::default();
        assert!(!overlaps.is_elsewhere("acme", "http://t/", "g1"));
        assert!(overlaps.is_elsewhere("acme/widgets", "http://t/", "g1"), "the org's hook brought it first");
        assert!(!overlaps.is_elsewhere("acme", "http://t/", "g1"), "its own");
        assert!(!overlaps.is_elsewhere("acme/widgets", "http://other/", "g1"), "another target gets it too");

        // A new run: the org's ledger already holds the guid.
        let overlaps = Overlaps::default();
        overlaps.join("acme", "http://t/", vec!["g2".into()]);
        assert!(overlaps.is_elsewhere("acme/widgets", "http://t/", "g2"));
        assert!(!overlaps.is_elsewhere("acme/widgets", "http://t/", "g3"));
    }
}
