//! The queue's tests: both paths, one ledger, and what each way of handling a delivery records.

use super::*;
use github::HookRef;

const GUID: &str = "0b989ba4-242f-11e5-81e1-c7b6966d2516";

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
}

fn shared(dir: &std::path::Path) -> Shared {
    let hook = HookRef::Repo { owner: "o".into(), repo: "r".into(), id: 1 };
    Shared::new(Ledger::create(dir, &hook, at(0), [], at(0)).unwrap())
}

fn listed(id: u64, t: i64) -> DeliveryItem {
    let mut item = pushed(t).item();
    item.id = id;
    item.delivered_at = at(t);
    item
}

fn pushed(t: i64) -> Pushed {
    Pushed {
        guid: GUID.into(),
        event: "issues".into(),
        action: None,
        received_at: at(t),
        headers: Vec::new(),
        body: b"{}".to_vec(),
    }
}

/// Forwards whatever is queued, as the forwarder would; returns what it took.
fn forward_all(shared: &Shared) -> Vec<Pending> {
    let mut forwarded = Vec::new();
    while let Some(taken) = shared.take_next() {
        shared.handled(&taken, How::Forwarded).unwrap();
        forwarded.push(taken.pending);
    }
    forwarded
}

#[test]
fn a_pushed_delivery_is_claimed_by_the_poll_without_a_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let shared = shared(dir.path());
    assert_eq!(shared.push(pushed(10)).unwrap(), PushOutcome::Queued);
    assert_eq!(forward_all(&shared).len(), 1);
    assert_eq!(shared.enqueue(vec![listed(1, 10)]).unwrap(), 0, "claimed, not queued");
    assert!(shared.file_ledger().unwrap().is_recorded(1, at(10)));
    assert_eq!(shared.file_ledger().unwrap().attempts(GUID), Attempts { api: 1, pushed: 1 });
}

#[test]
fn a_skipped_listed_delivery_makes_its_pushed_copy_a_claim() {
    let dir = tempfile::tempdir().unwrap();
    let shared = shared(dir.path());
    assert_eq!(shared.enqueue(vec![listed(1, 10)]).unwrap(), 1);
    let taken = shared.take_next().unwrap();
    shared.handled(&taken, How::Skipped).unwrap();
    assert!(shared.file_ledger().unwrap().is_skipped(1));
    assert_eq!(shared.backlog(), 0);
    assert_eq!(shared.push(pushed(10)).unwrap(), PushOutcome::Claimed, "skipped is handled on both paths");
    assert!(forward_all(&shared).is_empty());
}

#[test]
fn a_listed_delivery_is_not_pushed_again() {
    let dir = tempfile::tempdir().unwrap();
    let shared = shared(dir.path());
    assert_eq!(shared.enqueue(vec![listed(1, 10)]).unwrap(), 1);
    assert_eq!(forward_all(&shared).len(), 1);
    assert_eq!(shared.push(pushed(10)).unwrap(), PushOutcome::Claimed);
    assert!(forward_all(&shared).is_empty());
}

#[test]
fn a_redelivery_is_forwarded_once_whichever_path_sees_it_first() {
    let dir = tempfile::tempdir().unwrap();
    let shared = shared(dir.path());
    // The original through the stream, then listed.
    shared.push(pushed(10)).unwrap();
    forward_all(&shared);
    shared.enqueue(vec![listed(1, 10)]).unwrap();
    // The redelivery: listed first this time, then pushed.
    assert_eq!(shared.enqueue(vec![listed(2, 20), listed(1, 10)]).unwrap(), 1);
    assert_eq!(forward_all(&shared).len(), 1);
    assert_eq!(shared.push(pushed(20)).unwrap(), PushOutcome::Claimed);
    // A third attempt through the stream only.
    assert_eq!(shared.push(pushed(30)).unwrap(), PushOutcome::Queued);
    assert_eq!(forward_all(&shared).len(), 1);
    assert_eq!(shared.enqueue(vec![listed(3, 30), listed(2, 20), listed(1, 10)]).unwrap(), 0);
    assert_eq!(shared.file_ledger().unwrap().attempts(GUID), Attempts { api: 3, pushed: 3 });
}

#[test]
fn neither_path_takes_what_the_other_has_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let shared = shared(dir.path());
    shared.push(pushed(10)).unwrap();
    let taken = shared.take_next().unwrap();
    // The safety poll lists it while the handler is slow: no fetch, no second forward.
    assert_eq!(shared.enqueue(vec![listed(1, 10)]).unwrap(), 0);
    assert!(shared.take_next().is_none());
    shared.handled(&taken, How::Forwarded).unwrap();
    assert!(shared.file_ledger().unwrap().is_recorded(1, at(10)), "claimed when the push was recorded");

    // And the reverse: the API path is forwarding when the push arrives.
    shared.enqueue(vec![listed(2, 20)]).unwrap();
    let taken = shared.take_next().unwrap();
    assert_eq!(shared.push(pushed(20)).unwrap(), PushOutcome::Owed);
    shared.handled(&taken, How::Forwarded).unwrap();
    assert!(shared.take_next().is_none());
    assert_eq!(shared.file_ledger().unwrap().attempts(GUID), Attempts { api: 2, pushed: 2 }, "the counts stay even");
}

#[test]
fn a_parked_delivery_is_handled_on_both_paths_and_listed_as_parked() {
    let dir = tempfile::tempdir().unwrap();
    let shared = shared(dir.path());
    // Parked when listed: its pushed copy is a claim, not forwarded.
    assert_eq!(shared.enqueue(vec![listed(1, 10)]).unwrap(), 1);
    shared.handled(&shared.take_next().unwrap(), How::Parked).unwrap();
    assert_eq!(shared.backlog(), 0, "the queue moves on");
    assert_eq!(shared.push(pushed(10)).unwrap(), PushOutcome::Claimed);
    // Parked when pushed: remembered by guid (no id), and its listed copy is a claim.
    let mut other = pushed(20);
    other.guid = "another-guid".into();
    shared.push(other).unwrap();
    shared.handled(&shared.take_next().unwrap(), How::Parked).unwrap();
    let mut twin = listed(2, 20);
    twin.guid = "another-guid".into();
    assert_eq!(shared.enqueue(vec![twin]).unwrap(), 0, "claimed, not fetched");
    let parked: Vec<(u64, Option<String>)> =
        shared.file_ledger().unwrap().parked().into_iter().map(|parked| (parked.id, parked.guid)).collect();
    assert_eq!(parked, [(1, Some(GUID.to_string())), (0, Some("another-guid".to_string()))]);
    assert!(shared.unpark(1, GUID).unwrap());
}

#[test]
fn a_duplicate_is_recorded_without_its_guid_so_no_other_source_takes_it_for_forwarded() {
    let dir = tempfile::tempdir().unwrap();
    let shared = shared(dir.path());
    shared.enqueue(vec![listed(1, 10)]).unwrap();
    shared.handled(&shared.take_next().unwrap(), How::Duplicate).unwrap();
    assert!(shared.file_ledger().unwrap().is_recorded(1, at(10)), "handled: not listed again");
    assert!(!shared.has_guid(GUID), "but not counted as forwarded here");
    shared.enqueue(vec![listed(2, 20)]).unwrap();
    shared.handled(&shared.take_next().unwrap(), How::Forwarded).unwrap();
    assert!(shared.has_guid(GUID));
}

#[test]
fn a_pushed_delivery_below_the_floor_is_old() {
    let dir = tempfile::tempdir().unwrap();
    let shared = shared(dir.path());
    let window = crate::ledger::WINDOW.as_secs() as i64;
    shared.enqueue(vec![listed(1, window + 100)]).unwrap();
    forward_all(&shared);
    assert_eq!(shared.push(pushed(50)).unwrap(), PushOutcome::Old);
}

#[test]
fn a_waiting_push_holds_the_floor_back() {
    let dir = tempfile::tempdir().unwrap();
    let shared = shared(dir.path());
    let window = crate::ledger::WINDOW.as_secs() as i64;
    shared.push(pushed(100)).unwrap();
    let mut other = listed(1, window + 1000);
    other.guid = "another-guid".into();
    assert_eq!(shared.enqueue(vec![other]).unwrap(), 1);
    // The listed one is newer but forwarded while the push waits.
    let mut queue = lock(&shared.queue);
    let (key, pending) = queue.pending.pop_last().unwrap();
    queue.in_flight.insert(key);
    drop(queue);
    shared.handled(&Taken { key, pending }, How::Forwarded).unwrap();
    assert!(shared.floor() <= at(100) - PUSH_MARGIN, "{}", shared.floor());
}

#[test]
fn pushed_bodies_held_are_bounded_until_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let shared = shared(dir.path());
    assert!(shared.has_room());
    let mut big = pushed(10);
    big.body = vec![b' '; MAX_PUSHED_BYTES as usize];
    shared.push(big).unwrap();
    assert!(!shared.has_room(), "the stream stops reading");
    forward_all(&shared);
    assert!(shared.has_room());
}
