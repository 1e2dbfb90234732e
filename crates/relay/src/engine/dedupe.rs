//! Overlapping sources: an original delivery (one guid) that several sources' hooks bring, such as
//! an organization's and one of its repositories', is forwarded to a target once.
//!
//! The first source to take a guid for a target claims it for this run; the others record their
//! copy as handled without fetching it. After a restart, a guid another source's ledger holds
//! (forwarded to the same target) counts as claimed. A redelivery is always forwarded: someone
//! asked for it on that hook. The GitHub App's hook takes no part: its deliveries of an event
//! carry the installation and a target type of their own, so they are not copies of a repository's.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use super::queue::{Shared, lock};

/// The most claims remembered; the oldest go first (by then each source has long taken its copy).
const MAX_CLAIMS: usize = 50_000;

/// Which source claimed each (target, guid) this run, and every source's shared state.
#[derive(Default)]
pub(super) struct Claims {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// (target, guid) → the source that claimed it.
    owners: HashMap<(String, String), String>,
    /// The claims in the order made, for the bound.
    order: VecDeque<(String, String)>,
    /// Every running source: its name, its target, and its queue and ledger.
    peers: Vec<(String, String, Weak<Shared>)>,
}

impl Claims {
    /// Adds a running source, whose ledger then answers for the guids it forwarded.
    pub(super) fn join(&self, source: &str, target: &str, shared: &Arc<Shared>) {
        lock(&self.inner).peers.push((source.to_string(), target.to_string(), Arc::downgrade(shared)));
    }

    /// Whether another source forwards `guid` to `target`; if none does, `source` claims it.
    pub(super) fn is_elsewhere(&self, source: &str, target: &str, guid: &str) -> bool {
        let mut inner = lock(&self.inner);
        let key = (target.to_string(), guid.to_string());
        if let Some(owner) = inner.owners.get(&key) {
            return owner != source;
        }
        let forwarded = inner
            .peers
            .iter()
            .filter(|(peer, to, _)| peer != source && to == target)
            .filter_map(|(_, _, shared)| shared.upgrade())
            .any(|shared| shared.has_guid(guid));
        if forwarded {
            return true;
        }
        inner.owners.insert(key.clone(), source.to_string());
        inner.order.push_back(key);
        if inner.order.len() > MAX_CLAIMS
            && let Some(oldest) = inner.order.pop_front()
        {
            inner.owners.remove(&oldest);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Ledger;
    use chrono::DateTime;
    use github::HookRef;

    #[test]
    fn the_first_source_claims_a_guid_per_target_and_a_ledger_answers_after_a_restart() {
        let claims = Claims::default();
        assert!(!claims.is_elsewhere("acme", "http://t/", "g1"));
        assert!(claims.is_elsewhere("acme/widgets", "http://t/", "g1"), "the org's hook brought it first");
        assert!(!claims.is_elsewhere("acme", "http://t/", "g1"), "its own claim");
        assert!(!claims.is_elsewhere("acme/widgets", "http://other/", "g1"), "another target gets it too");

        // A new run: the org's ledger already holds the guid.
        let dir = tempfile::tempdir().unwrap();
        let hook = HookRef::Org { org: "acme".into(), id: 1 };
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut ledger = Ledger::create(dir.path(), &hook, at, [], at).unwrap();
        ledger.record_handled(&[(5, at, Some("g2"))], None).unwrap();
        let shared = Arc::new(Shared::new(ledger));
        let claims = Claims::default();
        claims.join("acme", "http://t/", &shared);
        assert!(claims.is_elsewhere("acme/widgets", "http://t/", "g2"));
        assert!(!claims.is_elsewhere("acme/widgets", "http://t/", "g3"));
    }
}
