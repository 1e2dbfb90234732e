//! What the inspector remembers: the last deliveries with their requests and every attempt's answer,
//! bounded in count and in bytes. Nothing here is written to disk (the ledger stays ids-only).

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use github::{DeliveryItem, HookRef};
use relay::{Answer, Event, Outgoing, Via};
use serde_json::{Value, json};
use url::Url;

use crate::json::{Headers, HookFields};

/// The most bytes of requests and answers held. Past it, the oldest deliveries lose their bodies
/// first and keep their rows (for the list and Redeliver on GitHub); the newest is always whole.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

/// One try at forwarding a delivery.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// When the answer (or the failure) came.
    pub at: DateTime<Utc>,
    /// The handler's status, when it answered.
    pub status: Option<u16>,
    /// From sending to the answer's headers.
    pub latency_ms: u64,
    /// The answer's headers and the start of its body.
    pub answer: Option<Answer>,
    /// Why the handler could not be reached.
    pub error: Option<String>,
}

/// One delivery as the inspector shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its number in this run, the page's key.
    pub seq: u64,
    /// The hook it came from.
    pub hook: HookRef,
    /// The delivery as GitHub listed it.
    pub item: DeliveryItem,
    /// Which path brought it.
    pub via: Via,
    /// Sent again from the inspector's Replay button.
    pub replay: bool,
    /// A replay of an edited request.
    pub edited: bool,
    /// The row this one follows: the row a replay replayed, or the previous row of the same delivery
    /// (guid) on the same hook, such as the one a redelivery or a parked delivery sent again follows.
    pub original: Option<u64>,
    /// It sends again a delivery that was parked (the `r` key, or the page's Send again).
    pub resent: bool,
    /// The handler kept rejecting it, so it was parked and the queue moved on.
    pub parked: bool,
    /// Where it went.
    pub target: Option<Url>,
    /// The request as forwarded, from the moment it is about to be sent.
    pub request: Option<Arc<Outgoing>>,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
    /// When it was first seen.
    pub seen: DateTime<Utc>,
    /// Its request and answers' bodies were dropped to stay within [`MAX_BYTES`].
    pub trimmed: bool,
}

impl Entry {
    /// The bytes this entry holds, for the bound.
    fn bytes(&self) -> usize {
        let request = self.request.as_ref().map_or(0, |request| {
            request.body.len() + request.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()
        });
        let answers: usize = self
            .attempts
            .iter()
            .filter_map(|attempt| attempt.answer.as_ref())
            .map(|answer| answer.body.len() + answer.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>())
            .sum();
        512 + request + answers
    }

    /// Drops the request and the answers' bodies, keeping the row.
    fn trim(&mut self) {
        self.request = None;
        for attempt in &mut self.attempts {
            attempt.answer = None;
        }
        self.trimmed = true;
    }

    /// The last attempt's status, if it was answered.
    pub fn status(&self) -> Option<u16> {
        self.attempts.last().and_then(|attempt| attempt.status)
    }

    /// The list row: no headers or bodies. Fields the `--json` lines also have keep their names there.
    pub fn summary(&self) -> Value {
        let last = self.attempts.last();
        let hook = HookFields::of(&self.hook);
        json!({"seq": self.seq, "guid": self.item.guid, "event": self.item.event, "action": self.item.action,
            "kind": self.item.kind(), "source": hook.source, "hook_id": hook.hook_id, "via": self.via.as_str(),
            "redelivery": self.item.redelivery, "replay": self.replay, "edited": self.edited,
            "original": self.original, "resent": self.resent, "parked": self.parked, "seen": self.seen,
            "delivered_at": self.item.delivered_at, "status": self.status(),
            "error": last.and_then(|attempt| attempt.error.clone()),
            "latency_ms": last.map(|attempt| attempt.latency_ms), "attempts": self.attempts.len(),
            "size": self.request.as_ref().map(|request| request.body.len()), "trimmed": self.trimmed})
    }

    /// The detail view: the request, the payload as text, every attempt with its answer.
    pub fn detail(&self) -> Value {
        let mut value = self.summary();
        let headers =
            self.request.as_ref().map(|request| Headers::from(request.headers.as_slice())).unwrap_or_default();
        let payload = self.request.as_ref().map(|request| String::from_utf8_lossy(&request.body).into_owned());
        let attempts: Vec<Value> = self
            .attempts
            .iter()
            .map(|attempt| {
                let answer = attempt.answer.as_ref().map(|answer| {
                    json!({"headers": Headers::from(answer.headers.as_slice()), "body": answer.text(),
                        "body_length": answer.body_length, "body_truncated": answer.truncated()})
                });
                json!({"at": attempt.at, "status": attempt.status, "latency_ms": attempt.latency_ms,
                    "error": attempt.error, "answer": answer})
            })
            .collect();
        if let Some(map) = value.as_object_mut() {
            map.insert("target".into(), json!(self.target.as_ref().map(Url::as_str)));
            map.insert("headers".into(), json!(headers));
            map.insert("payload".into(), json!(payload));
            map.insert("attempts_detail".into(), Value::Array(attempts));
        }
        value
    }
}

/// A source this run serves, as its hook's setup said.
#[derive(Debug, Clone)]
pub struct Served {
    /// `owner/repo`, the org, or `app`.
    pub source: String,
    /// Its hook.
    pub hook: HookRef,
    /// The hook's URL (the blackhole).
    pub hook_url: Option<String>,
    /// Where its deliveries go.
    pub target: Url,
    /// Whether the blackhole streams its deliveries.
    pub streaming: bool,
}

impl Served {
    fn to_json(&self) -> Value {
        json!({"source": self.source, "hook": self.hook.to_string(), "hook_url": self.hook_url,
            "target": self.target.as_str(), "streaming": self.streaming})
    }
}

/// What an event changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The row of this seq.
    Row(u64),
    /// The sources served.
    Served,
}

/// The last deliveries, newest last, and the sources served.
#[derive(Debug)]
pub struct Store {
    entries: VecDeque<Entry>,
    keep: usize,
    max_bytes: usize,
    bytes: usize,
    next: u64,
    served: Vec<Served>,
}

impl Store {
    /// A store of at most `keep` deliveries and [`MAX_BYTES`].
    pub fn new(keep: usize) -> Self {
        Self::bounded(keep, MAX_BYTES)
    }

    /// A store of at most `keep` deliveries and `max_bytes`.
    pub fn bounded(keep: usize, max_bytes: usize) -> Self {
        Self { entries: VecDeque::new(), keep: keep.max(1), max_bytes, bytes: 0, next: 1, served: Vec::new() }
    }

    /// How many deliveries are held, and their bytes.
    pub fn held(&self) -> (usize, usize) {
        (self.entries.len(), self.bytes)
    }

    /// Every entry's summary, oldest first.
    pub fn list(&self) -> Vec<Value> {
        self.entries.iter().map(Entry::summary).collect()
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &Entry> {
        self.entries.iter()
    }

    /// The seq of the newest entry ever added (0 before the first), whether or not it is still held.
    pub fn last_seq(&self) -> u64 {
        self.next - 1
    }

    /// One entry.
    pub fn get(&self, seq: u64) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.seq == seq)
    }

    /// One entry's detail, with the rows that follow it (its replays, the row that sent it again).
    pub fn detail(&self, seq: u64) -> Option<Value> {
        let mut detail = self.get(seq)?.detail();
        let later: Vec<Value> = self
            .entries
            .iter()
            .filter(|entry| entry.original == Some(seq))
            .map(|entry| {
                json!({"seq": entry.seq, "replay": entry.replay, "resent": entry.resent,
                "redelivery": entry.item.redelivery})
            })
            .collect();
        if let Some(map) = detail.as_object_mut() {
            map.insert("later".into(), Value::Array(later));
        }
        Some(detail)
    }

    /// The sources served so far.
    pub fn served(&self) -> Value {
        Value::Array(self.served.iter().map(Served::to_json).collect())
    }

    /// The source a hook serves.
    pub fn source_of(&self, hook: &HookRef) -> Option<&Served> {
        self.served.iter().find(|served| &served.hook == hook)
    }

    /// Whether `seq` is the newest row of its delivery on its hook that the relay (not a replay) sent.
    pub fn is_current(&self, entry: &Entry) -> bool {
        self.current(&entry.hook, &entry.item.guid) == Some(entry.seq)
    }

    /// Each held request, for a search off the lock.
    pub fn requests(&self) -> Vec<(u64, Arc<Outgoing>)> {
        self.entries.iter().filter_map(|entry| Some((entry.seq, entry.request.clone()?))).collect()
    }

    /// Takes in a relay event; says what it changed.
    pub fn observe(&mut self, event: &Event) -> Option<Change> {
        match event {
            Event::HookReady { source, hook, hook_url, target, streaming, .. } => {
                let served = Served {
                    source: source.clone(),
                    hook: hook.clone(),
                    hook_url: hook_url.clone(),
                    target: target.clone(),
                    streaming: *streaming,
                };
                self.served.retain(|known| &known.hook != hook);
                self.served.push(served);
                Some(Change::Served)
            }
            Event::Delivering { hook, item, via, request } => {
                let previous = self.current(hook, &item.guid);
                let resent = previous.and_then(|seq| self.get(seq)).is_some_and(|entry| entry.parked);
                let target = self.source_of(hook).map(|served| served.target.clone());
                let seq = self.add(hook.clone(), item.clone(), *via, false);
                self.update(seq, |entry| {
                    entry.request = Some(request.clone());
                    entry.target = target;
                    entry.original = previous;
                    entry.resent = resent;
                });
                Some(Change::Row(seq))
            }
            Event::Answered { hook, item, target, status, latency, via, answer, request } => {
                let seq = match self.current(hook, &item.guid) {
                    Some(seq) => seq,
                    None => self.add(hook.clone(), item.clone(), *via, false),
                };
                let attempt = Attempt {
                    at: Utc::now(),
                    status: Some(*status),
                    latency_ms: latency.as_millis() as u64,
                    answer: Some(answer.clone()),
                    error: None,
                };
                self.update(seq, |entry| {
                    entry.target = Some(target.clone());
                    entry.request = Some(request.clone());
                    entry.attempts.push(attempt);
                });
                Some(Change::Row(seq))
            }
            // A 5xx was already recorded by its Answered event; only an unreachable handler is new here.
            Event::Retrying { hook, item, reason, .. } if reason.parse::<u16>().is_err() => {
                let seq = self.current(hook, &item.guid)?;
                let attempt =
                    Attempt { at: Utc::now(), status: None, latency_ms: 0, answer: None, error: Some(reason.clone()) };
                self.update(seq, |entry| entry.attempts.push(attempt));
                Some(Change::Row(seq))
            }
            Event::Parked { hook, item, .. } => {
                let seq = self.current(hook, &item.guid)?;
                self.update(seq, |entry| entry.parked = true);
                Some(Change::Row(seq))
            }
            _ => None,
        }
    }

    /// Records a replay from the page: a new entry marked as one, following `original`.
    pub fn replayed(
        &mut self,
        original: &Entry,
        request: Arc<Outgoing>,
        edited: bool,
        outcome: Result<relay::Response, String>,
    ) -> u64 {
        let seq = self.add(original.hook.clone(), original.item.clone(), original.via, true);
        let attempt = match outcome {
            Ok(response) => Attempt {
                at: Utc::now(),
                status: Some(response.status),
                latency_ms: response.latency.as_millis() as u64,
                answer: Some(response.answer),
                error: None,
            },
            Err(reason) => Attempt { at: Utc::now(), status: None, latency_ms: 0, answer: None, error: Some(reason) },
        };
        let target = original.target.clone();
        self.update(seq, |entry| {
            entry.request = Some(request);
            entry.target = target;
            entry.edited = edited;
            entry.original = Some(original.seq);
            entry.attempts.push(attempt);
        });
        seq
    }

    /// The newest entry for a delivery on a hook that the relay (not a replay) is delivering.
    fn current(&self, hook: &HookRef, guid: &str) -> Option<u64> {
        self.entries
            .iter()
            .rev()
            .find(|entry| entry.item.guid == guid && &entry.hook == hook && !entry.replay)
            .map(|entry| entry.seq)
    }

    fn add(&mut self, hook: HookRef, item: DeliveryItem, via: Via, replay: bool) -> u64 {
        let seq = self.next;
        self.next += 1;
        let entry = Entry {
            seq,
            hook,
            item,
            via,
            replay,
            edited: false,
            original: None,
            resent: false,
            parked: false,
            target: None,
            request: None,
            attempts: Vec::new(),
            seen: Utc::now(),
            trimmed: false,
        };
        self.bytes += entry.bytes();
        self.entries.push_back(entry);
        self.evict();
        seq
    }

    fn update(&mut self, seq: u64, change: impl FnOnce(&mut Entry)) {
        if let Some(entry) = self.entries.iter_mut().find(|entry| entry.seq == seq) {
            let before = entry.bytes();
            change(entry);
            if entry.trimmed {
                // A later attempt of a trimmed delivery does not bring its body back.
                entry.trim();
            }
            self.bytes = self.bytes + entry.bytes() - before;
        }
        self.evict();
    }

    /// Keeps to the bounds: whole entries beyond the count go, oldest first; past the byte bound the
    /// oldest entries lose their request and answer bodies but keep their rows (the newest stays whole).
    fn evict(&mut self) {
        while self.entries.len() > self.keep.max(1) {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.bytes();
            }
        }
        let newest = self.entries.len().saturating_sub(1);
        for entry in self.entries.iter_mut().take(newest) {
            if self.bytes <= self.max_bytes {
                break;
            }
            if entry.trimmed {
                continue;
            }
            let before = entry.bytes();
            entry.trim();
            self.bytes = self.bytes + entry.bytes() - before;
        }
    }
}

/// The seqs of `requests` whose headers or payload hold `needle`, in any letter case.
pub fn search(requests: &[(u64, Arc<Outgoing>)], needle: &str) -> Vec<u64> {
    let needle = needle.to_lowercase();
    let holds = |text: &str| text.to_lowercase().contains(&needle);
    requests
        .iter()
        .filter(|(_, request)| {
            request.headers.iter().any(|(name, value)| holds(name) || holds(value))
                || holds(&String::from_utf8_lossy(&request.body))
        })
        .map(|(seq, _)| *seq)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn item(guid: &str) -> DeliveryItem {
        serde_json::from_value(json!({"id": 7, "guid": guid, "delivered_at": "2026-01-02T03:04:05Z",
            "redelivery": false, "duration": 0.1, "status": "OK", "status_code": 200, "event": "issues",
            "action": "opened"}))
        .unwrap()
    }

    fn hook() -> HookRef {
        HookRef::Repo { owner: "o".into(), repo: "r".into(), id: 1 }
    }

    fn row(change: Option<Change>) -> u64 {
        match change {
            Some(Change::Row(seq)) => seq,
            other => panic!("no row changed: {other:?}"),
        }
    }

    fn delivering(guid: &str, payload: &str) -> Event {
        let request = Arc::new(Outgoing::synthetic("issues", payload.as_bytes(), None));
        Event::Delivering { hook: hook(), item: item(guid), via: Via::Api, request }
    }

    fn parked(guid: &str) -> Event {
        let answer = Answer { headers: vec![], body: b"nope".to_vec(), body_length: 4 };
        let target = url::Url::parse("http://127.0.0.1:3000/hook").unwrap();
        Event::Parked { hook: hook(), item: item(guid), target, via: Via::Api, attempts: 3, status: 500, answer }
    }

    fn answered(guid: &str, status: u16, size: usize) -> Event {
        Event::Answered {
            hook: hook(),
            item: item(guid),
            target: Url::parse("http://127.0.0.1:3000/").unwrap(),
            status,
            latency: Duration::from_millis(4),
            via: Via::Api,
            answer: Answer { headers: vec![], body: b"nope".to_vec(), body_length: 4 },
            request: Arc::new(Outgoing::synthetic("issues", &vec![b' '; size], None)),
        }
    }

    #[test]
    fn every_attempt_of_a_delivery_lands_in_one_entry() {
        let mut store = Store::new(10);
        let first = row(store.observe(&answered("g1", 503, 10)));
        let second = row(store.observe(&answered("g1", 200, 10)));
        assert_eq!(first, second);
        let entry = store.get(first).unwrap();
        assert_eq!(entry.attempts.len(), 2);
        assert_eq!(entry.status(), Some(200));
        assert_eq!(entry.detail()["attempts_detail"][0]["answer"]["body"], "nope");
    }

    #[test]
    fn the_oldest_go_by_count_and_lose_their_bodies_by_bytes() {
        let mut store = Store::bounded(3, 10_000);
        for n in 0..5 {
            store.observe(&answered(&format!("g{n}"), 200, 10));
        }
        assert_eq!(store.list().len(), 3);
        assert_eq!(store.list()[0]["guid"], "g2");
        for n in 5..8 {
            store.observe(&answered(&format!("g{n}"), 200, 4_000));
        }
        let (count, bytes) = store.held();
        assert_eq!(count, 3, "rows stay while the count allows");
        assert!(bytes <= 10_000, "{bytes} bytes");
        let rows = store.list();
        assert_eq!(rows.iter().map(|row| row["guid"].as_str().unwrap()).collect::<Vec<_>>(), ["g5", "g6", "g7"]);
        assert_eq!(rows[0]["trimmed"], true, "the oldest lost its body: {rows:?}");
        assert_eq!(rows[2]["trimmed"], false, "the newest is whole");
        let oldest = store.get(rows[0]["seq"].as_u64().unwrap()).unwrap();
        assert!(oldest.request.is_none() && oldest.attempts[0].answer.is_none());
        assert_eq!(oldest.status(), Some(200), "the status stays with the row");
    }

    #[test]
    fn a_delivery_shows_its_request_before_the_handler_answers() {
        let mut store = Store::new(10);
        let ready = Event::HookReady {
            source: "o/r".into(),
            hook: hook(),
            origin: relay::HookOrigin::Found,
            hook_url: Some("https://blackhole.example/alice".into()),
            target: Url::parse("http://127.0.0.1:3000/hook").unwrap(),
            events: vec!["*".into()],
            streaming: true,
        };
        assert_eq!(store.observe(&ready), Some(Change::Served));
        assert_eq!(store.served()[0]["target"], "http://127.0.0.1:3000/hook");
        let seq = row(store.observe(&delivering("g1", r#"{"number":1}"#)));
        let unreachable = Event::Retrying {
            hook: hook(),
            item: item("g1"),
            target: url::Url::parse("http://127.0.0.1:3000/hook").unwrap(),
            reason: "connection refused".into(),
            wait: Duration::from_secs(1),
            attempt: 1,
        };
        assert_eq!(store.observe(&unreachable), Some(Change::Row(seq)));
        let detail = store.detail(seq).unwrap();
        assert_eq!(detail["payload"], r#"{"number":1}"#, "{detail}");
        let headers = detail["headers"].as_object().unwrap();
        assert!(headers.keys().any(|name| name.eq_ignore_ascii_case("x-github-event")), "{detail}");
        assert_eq!(detail["target"], "http://127.0.0.1:3000/hook", "the source's target, before any answer");
        assert_eq!(detail["status"], Value::Null);
        assert_eq!(detail["error"], "connection refused");
    }

    #[test]
    fn a_parked_delivery_sent_again_is_a_new_row_that_follows_it() {
        let mut store = Store::new(10);
        let first = row(store.observe(&delivering("g1", "{}")));
        store.observe(&answered("g1", 500, 2));
        assert_eq!(store.observe(&parked("g1")), Some(Change::Row(first)));
        assert!(store.get(first).unwrap().parked);
        assert!(store.is_current(store.get(first).unwrap()));

        let again = row(store.observe(&delivering("g1", "{}")));
        assert_ne!(again, first);
        let row = store.get(again).unwrap();
        assert!(row.resent && !row.parked && row.original == Some(first), "{:?}", row.summary());
        assert!(!store.is_current(store.get(first).unwrap()), "the newer row is the delivery's now");
        assert_eq!(store.detail(first).unwrap()["later"][0]["seq"], again);
        // The answer goes to the newer row.
        store.observe(&answered("g1", 200, 2));
        assert_eq!(store.get(again).unwrap().status(), Some(200));
        assert_eq!(store.get(first).unwrap().status(), Some(500));
    }

    #[test]
    fn the_same_guid_on_two_hooks_is_two_deliveries() {
        let mut store = Store::new(10);
        let first = row(store.observe(&delivering("g1", "{}")));
        let org = HookRef::Org { org: "o".into(), id: 2 };
        let request = Arc::new(Outgoing::synthetic("issues", b"{}", None));
        let other = row(store.observe(&Event::Delivering { hook: org, item: item("g1"), via: Via::Api, request }));
        store.observe(&answered("g1", 200, 2));
        assert_eq!(store.get(first).unwrap().status(), Some(200));
        assert_eq!(store.get(other).unwrap().status(), None, "the org hook's copy was not answered");
        assert_eq!(store.get(other).unwrap().original, None);
    }

    #[test]
    fn a_search_finds_payloads_and_headers_in_any_case() {
        let mut store = Store::new(10);
        let first = row(store.observe(&delivering("g1", r#"{"title":"Hello Ünïcode"}"#)));
        let second = row(store.observe(&delivering("g2", r#"{"ref":"refs/heads/main"}"#)));
        let requests = store.requests();
        assert_eq!(search(&requests, "hello ünï"), [first]);
        assert_eq!(search(&requests, "REFS/HEADS"), [second]);
        assert_eq!(search(&requests, "x-github-event"), [first, second], "header names too");
        assert!(search(&requests, "absent").is_empty());
    }
}
