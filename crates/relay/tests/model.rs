//! A model-based test of the rule that joins the two paths: *each attempt of a delivery reaches
//! the handler once*.
//!
//! The reference model is GitHub's record (the attempts of each guid) and the handler's count of
//! what it received per guid. The real state machine ([`relay::state::State`] over a real
//! [`FileLedger`] in a temporary directory) is driven by random sequences of what can happen:
//! new deliveries and GitHub's redeliveries (pushed when the stream is up), the same POST
//! repeated at the blackhole, its bytes relabelled under a guid GitHub never made, polls that
//! list GitHub's record, the stream going up and down,
//! forwards the handler takes or refuses (down), and crashes that restart from the durable
//! ledger. The handler cannot tell two attempts of a guid apart (same body, same signature), so
//! what must hold is a count per guid:
//!
//! * never more than GitHub's attempts, plus one for each crash that struck between the
//!   handler's answer and the record;
//! * once everything has settled, no fewer: every attempt was forwarded, so the floor never
//!   passed an unsettled delivery; and no pushed byte is still held.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use github::{DeliveryItem, HookRef};
use proptest::prelude::*;
use relay::ledger::FileLedger;
use relay::state::{How, Pending, Pushed, State, Taken};
use tokio::time::Instant;

/// One thing that can happen.
#[derive(Debug, Clone)]
enum Step {
    /// GitHub makes a new delivery (a new guid); the blackhole streams it if the stream is up.
    New,
    /// GitHub redelivers the delivery numbered `n` (modulo those made): a new attempt, same guid and bytes.
    Redeliver(usize),
    /// The same POST of delivery `n` reaches the blackhole again: no new attempt.
    Repeat(usize),
    /// Delivery `n`'s bytes and signature reach the blackhole under a new guid: never an attempt.
    Relabel(usize),
    /// A poll lists GitHub's record.
    Poll,
    /// The stream comes up (fresh) or drops.
    Stream(bool),
    /// The forwarder takes the oldest delivery; the handler takes it (`true`) or is down.
    Forward(bool),
    /// The handler answers the oldest, and hookfwd dies before recording it; it restarts from its ledger.
    CrashAfterAnswer,
    /// hookfwd dies between steps and restarts from its ledger.
    Crash,
    /// Time passes, in seconds.
    Wait(u8),
    /// The blackhole's clock drifts from GitHub's by this many seconds (within the margin the
    /// engine trusts: a minute either way).
    Skew(i8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::New),
        2 => (0..8usize).prop_map(Step::Redeliver),
        2 => (0..8usize).prop_map(Step::Repeat),
        1 => (0..8usize).prop_map(Step::Relabel),
        3 => Just(Step::Poll),
        1 => any::<bool>().prop_map(Step::Stream),
        4 => Just(Step::Forward(true)),
        1 => Just(Step::Forward(false)),
        1 => Just(Step::CrashAfterAnswer),
        1 => Just(Step::Crash),
        2 => (1..15u8).prop_map(Step::Wait),
        1 => (-60..=60i8).prop_map(Step::Skew),
    ]
}

/// One attempt in GitHub's record.
#[derive(Debug, Clone)]
struct Attempt {
    id: u64,
    guid: String,
    at: DateTime<Utc>,
    redelivery: bool,
}

/// The world: GitHub, the handler, the clocks, and hookfwd's state.
struct World {
    dir: tempfile::TempDir,
    hook: HookRef,
    /// GitHub's record, oldest first.
    attempts: Vec<Attempt>,
    /// The guids made, in order.
    guids: Vec<String>,
    /// What the handler received, per guid.
    received: HashMap<String, u32>,
    /// Crashes that struck between an answer and its record, per guid.
    allowed: HashMap<String, u32>,
    /// Guids made up for relabelled copies so far.
    relabelled: usize,
    /// Seconds since the start, on both clocks.
    t: i64,
    start_wall: DateTime<Utc>,
    start: Instant,
    /// The blackhole's clock less GitHub's, in seconds.
    skew: i64,
    stream_up: bool,
    /// The delivery the forwarder holds while the handler is down.
    holding: Option<Taken>,
    state: Option<State<FileLedger>>,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let hook = HookRef::Repo { owner: "o".into(), repo: "r".into(), id: 1 };
        // GitHub's times a little in the past, so that no clock rule clamps them.
        let start_wall = Utc::now() - TimeDelta::hours(1);
        let ledger = FileLedger::create(dir.path(), &hook, start_wall, [], Utc::now()).unwrap();
        World {
            dir,
            hook,
            attempts: Vec::new(),
            guids: Vec::new(),
            received: HashMap::new(),
            allowed: HashMap::new(),
            relabelled: 0,
            t: 0,
            start_wall,
            start: Instant::now(),
            skew: 0,
            stream_up: false,
            holding: None,
            state: Some(State::new(ledger)),
        }
    }

    fn wall(&self) -> DateTime<Utc> {
        self.start_wall + TimeDelta::seconds(self.t)
    }

    fn now(&self) -> Instant {
        self.start + Duration::from_secs(self.t as u64)
    }

    fn state(&mut self) -> &mut State<FileLedger> {
        self.state.as_mut().expect("a state")
    }

    fn item(&self, attempt: &Attempt) -> DeliveryItem {
        DeliveryItem {
            id: attempt.id,
            guid: attempt.guid.clone(),
            delivered_at: attempt.at,
            redelivery: attempt.redelivery,
            duration: 0.1,
            status: "OK".into(),
            status_code: 200,
            event: "issues".into(),
            action: Some("opened".into()),
            installation_id: None,
            repository_id: None,
            throttled_at: None,
        }
    }

    /// The POST of `guid` as the blackhole streams it, carrying the body (and signature) of `made`.
    fn pushed(&self, guid: &str, made: usize) -> Pushed {
        let signature = format!("sha256={made:064x}");
        Pushed {
            guid: guid.to_string(),
            event: "issues".into(),
            action: Some("opened".into()),
            received_at: self.wall() + TimeDelta::seconds(self.skew),
            headers: vec![("x-github-delivery".into(), guid.to_string()), ("x-hub-signature-256".into(), signature)],
            body: format!("{{\"made\":{made}}}").into_bytes(),
            event_id: None,
        }
    }

    /// GitHub attempts `guid` once more, and the blackhole streams the POST if the stream is up.
    async fn attempt(&mut self, guid: String, redelivery: bool) {
        let attempt = Attempt { id: self.attempts.len() as u64 + 1, guid: guid.clone(), at: self.wall(), redelivery };
        self.attempts.push(attempt);
        self.push(&guid).await;
    }

    async fn push(&mut self, guid: &str) {
        let made = self.guids.iter().position(|made| made == guid).expect("a guid GitHub made");
        self.push_as(guid, made).await;
    }

    async fn push_as(&mut self, guid: &str, made: usize) {
        if self.stream_up {
            let (pushed, now) = (self.pushed(guid, made), self.now());
            self.state().pushed(pushed, now).await;
        }
    }

    async fn poll(&mut self) {
        let items: Vec<DeliveryItem> = self.attempts.iter().rev().map(|a| self.item(a)).collect();
        let now = self.now();
        let state = self.state();
        let unknown = items.into_iter().filter(|item| !state.knows(item)).collect();
        state.listed(unknown, now).await.unwrap();
    }

    /// The handler receives the oldest delivery; the ledger records it unless `crash`.
    async fn forward(&mut self, up: bool, crash: bool) {
        let mut taken = match self.holding.take() {
            Some(taken) => taken,
            None => match self.state().take() {
                Some(taken) => taken,
                None => return,
            },
        };
        // A fetched delivery's key comes from the signature in GitHub's record.
        if let Pending::Listed(item, None) = &taken.pending {
            let made = self.guids.iter().position(|made| *made == item.guid).expect("a guid GitHub made");
            taken.body = relay::ledger::body_key(&format!("sha256={made:064x}"));
        }
        if !up {
            self.holding = Some(taken);
            return;
        }
        let guid = match &taken.pending {
            Pending::Listed(item, _) => item.guid.clone(),
            Pending::Pushed(pushed) => pushed.guid.clone(),
        };
        let received = self.received.entry(guid.clone()).or_default();
        *received += 1;
        let received = *received;
        let attempted = self.attempts.iter().filter(|a| a.guid == guid).count() as u32;
        let allowed = self.allowed.get(&guid).copied().unwrap_or(0);
        assert!(
            received <= attempted + allowed,
            "{guid} reached the handler {received} times for {attempted} attempts"
        );
        if crash {
            *self.allowed.entry(guid).or_default() += 1;
            self.restart();
            return;
        }
        self.state().settle(&taken, How::Forwarded).await.unwrap().wait().await.unwrap();
    }

    /// hookfwd dies: what it held in memory is gone; it starts again from the durable ledger.
    fn restart(&mut self) {
        self.holding = None;
        let (ledger, _) = self.state.take().expect("a state").finish();
        // Dropped without closing: what was recorded is written, nothing is compacted.
        drop(ledger);
        let ledger = FileLedger::open(self.dir.path(), &self.hook).unwrap().expect("the ledger");
        self.state = Some(State::new(ledger));
        self.stream_up = false;
    }

    async fn run(&mut self, step: Step) {
        match step {
            Step::New => {
                let guid = format!("guid-{}", self.guids.len());
                self.guids.push(guid.clone());
                self.attempt(guid, false).await;
            }
            Step::Redeliver(n) if !self.guids.is_empty() => {
                let guid = self.guids[n % self.guids.len()].clone();
                self.attempt(guid, true).await;
            }
            Step::Repeat(n) if !self.guids.is_empty() => {
                let guid = self.guids[n % self.guids.len()].clone();
                self.push(&guid).await;
            }
            Step::Relabel(n) if !self.guids.is_empty() => {
                let made = n % self.guids.len();
                self.relabelled += 1;
                let guid = format!("relabel-{}", self.relabelled);
                // Bytes hookfwd never handled cannot be told from a new delivery but by GitHub's
                // record, which the stream does not wait for: such a copy may pass once (and is
                // reported). Bytes it handled never pass under another guid.
                let original = &self.guids[made];
                let handled = self.received.get(original).copied().unwrap_or(0);
                if handled <= self.allowed.get(original).copied().unwrap_or(0) {
                    self.allowed.insert(guid.clone(), 1);
                }
                self.push_as(&guid, made).await;
            }
            Step::Redeliver(_) | Step::Repeat(_) | Step::Relabel(_) => {}
            Step::Poll => self.poll().await,
            Step::Stream(up) => {
                self.stream_up = up;
                let wall = self.wall();
                match up {
                    true => self.state().stream_up(false, wall),
                    false => self.state().stream_down(),
                }
            }
            Step::Forward(up) => self.forward(up, false).await,
            Step::CrashAfterAnswer => self.forward(true, true).await,
            Step::Crash => self.restart(),
            Step::Wait(seconds) => self.t += i64::from(seconds),
            Step::Skew(seconds) => self.skew = i64::from(seconds),
        }
        self.t += 1;
    }

    /// Lets everything settle: the stream down, time past every grace, polls and forwards until
    /// nothing is left.
    async fn settle(&mut self) {
        self.stream_up = false;
        self.state().stream_down();
        self.t += 60;
        for _ in 0..4 {
            self.poll().await;
            while self.holding.is_some() || self.state().backlog() > 0 {
                self.forward(true, false).await;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn each_attempt_reaches_the_handler_once(steps in proptest::collection::vec(step(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(async {
            let mut world = World::new();
            for step in steps {
                world.run(step).await;
            }
            world.settle().await;
            assert_eq!(world.state().held_bytes(), 0, "every pushed byte held was let go");
            for guid in &world.guids {
                let attempted = world.attempts.iter().filter(|a| &a.guid == guid).count() as u32;
                let received = world.received.get(guid).copied().unwrap_or(0);
                let allowed = world.allowed.get(guid).copied().unwrap_or(0);
                assert!(received >= attempted, "{guid}: {attempted} attempts, the handler got {received}");
                assert!(received <= attempted + allowed, "{guid}: {attempted} attempts (+{allowed} crashes), the handler got {received}");
            }
        });
    }
}

/// A redelivery whose POST comes through the stream is forwarded as the attempt GitHub's record says it is
/// (a redelivery), even when the list that shows it is the first to show the original too: the stream's
/// attempts pair with GitHub's oldest first.
#[tokio::test]
async fn a_redelivery_through_the_stream_is_forwarded_as_the_redelivery() {
    let mut world = World::new();
    world.run(Step::Stream(true)).await;
    world.run(Step::New).await;
    world.run(Step::Forward(true)).await;
    // GitHub redelivers it before any poll listed the original: its POST waits for the list.
    world.run(Step::Redeliver(0)).await;
    world.run(Step::Poll).await;
    let taken = world.state().take().expect("the redelivery, queued");
    match &taken.pending {
        Pending::Listed(item, Some(_)) => {
            assert!(item.redelivery && item.id == 2, "the stream's bytes go with the redelivery: {item:?}");
        }
        other => panic!("the redelivery's pushed bytes, listed: {other:?}"),
    }
}
