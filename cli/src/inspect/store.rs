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
    /// Where it went.
    pub target: Option<Url>,
    /// The request as forwarded (absent until the first answer, for a delivery whose handler is down).
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
            "redelivery": self.item.redelivery, "replay": self.replay, "seen": self.seen,
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

/// The last deliveries, newest last.
#[derive(Debug)]
pub struct Store {
    entries: VecDeque<Entry>,
    keep: usize,
    max_bytes: usize,
    bytes: usize,
    next: u64,
}

impl Store {
    /// A store of at most `keep` deliveries and [`MAX_BYTES`].
    pub fn new(keep: usize) -> Self {
        Self::bounded(keep, MAX_BYTES)
    }

    /// A store of at most `keep` deliveries and `max_bytes`.
    pub fn bounded(keep: usize, max_bytes: usize) -> Self {
        Self { entries: VecDeque::new(), keep: keep.max(1), max_bytes, bytes: 0, next: 1 }
    }

    /// How many deliveries are held, and their bytes.
    pub fn held(&self) -> (usize, usize) {
        (self.entries.len(), self.bytes)
    }

    /// Every entry's summary, oldest first.
    pub fn list(&self) -> Vec<Value> {
        self.entries.iter().map(Entry::summary).collect()
    }

    /// One entry.
    pub fn get(&self, seq: u64) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.seq == seq)
    }

    /// Takes in a relay event; returns the seq of the entry it changed.
    pub fn observe(&mut self, event: &Event) -> Option<u64> {
        match event {
            Event::Delivering { hook, item, via } => Some(self.add(hook.clone(), item.clone(), *via, false)),
            Event::Answered { hook, item, target, status, latency, via, answer, request } => {
                let seq = match self.current(&item.guid) {
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
                Some(seq)
            }
            // A 5xx was already recorded by its Answered event; only an unreachable handler is new here.
            Event::Retrying { item, reason, .. } if reason.parse::<u16>().is_err() => {
                let seq = self.current(&item.guid)?;
                let attempt =
                    Attempt { at: Utc::now(), status: None, latency_ms: 0, answer: None, error: Some(reason.clone()) };
                self.update(seq, |entry| entry.attempts.push(attempt));
                Some(seq)
            }
            _ => None,
        }
    }

    /// Records a replay from the page: a new entry marked as one.
    pub fn replayed(
        &mut self,
        original: &Entry,
        request: Arc<Outgoing>,
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
            entry.attempts.push(attempt);
        });
        seq
    }

    /// The newest entry for a guid that the relay (not a replay) is delivering.
    fn current(&self, guid: &str) -> Option<u64> {
        self.entries.iter().rev().find(|entry| entry.item.guid == guid && !entry.replay).map(|entry| entry.seq)
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

    fn answered(guid: &str, status: u16, size: usize) -> Event {
        Event::Answered {
            hook: HookRef::Repo { owner: "o".into(), repo: "r".into(), id: 1 },
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
        let first = store.observe(&answered("g1", 503, 10)).unwrap();
        let second = store.observe(&answered("g1", 200, 10)).unwrap();
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
}
