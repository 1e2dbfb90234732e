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

/// The same rule across two replicas sharing one ledger in a real `redis-server`: each replica's
/// [`State`] over a real [`relay::ledger::RedisLedger`], both subscribed to the blackhole, each
/// reading every POST (same stream event id on both) at its own pace. What can happen: new
/// deliveries, GitHub's redeliveries and repeated POSTs (each a new stream event), a replica reading
/// its stream, polling, forwarding, and dying (before or after the handler's answer) to be started
/// afresh, its leases then ended. What must hold is the count per guid, as above, whichever replica
/// forwarded each attempt. Unix only: Redis ships no Windows build.
#[cfg(unix)]
mod replicas {
    use std::collections::{HashMap, VecDeque};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use chrono::{DateTime, TimeDelta, Utc};
    use github::{DeliveryItem, HookRef};
    use proptest::prelude::*;
    use relay::ledger::{Connection, Location, RedisLedger};
    use relay::state::{How, Pending, Pushed, State};
    use testkit::RedisServer;
    use tokio::sync::mpsc;
    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;

    /// One thing that can happen; `usize` picks a replica (mod 2) or a delivery (mod those made).
    #[derive(Debug, Clone)]
    enum Step {
        /// GitHub makes a new delivery and POSTs it: both streams will bring it.
        New,
        /// GitHub redelivers delivery `n`: a new attempt, a new POST.
        Redeliver(usize),
        /// Delivery `n`'s POST reaches the blackhole again: a new POST, no new attempt.
        Repeat(usize),
        /// Replica `r` reads the next POST on its stream.
        Read(usize),
        /// Replica `r` lists GitHub's record.
        Poll(usize),
        /// Replica `r` forwards its oldest delivery; the handler takes it.
        Forward(usize),
        /// Replica `r` dies after the handler's answer and before the record; it starts afresh.
        CrashAfterAnswer(usize),
        /// Replica `r` dies between steps and starts afresh.
        Crash(usize),
        /// Time passes, in seconds.
        Wait(u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => Just(Step::New),
            1 => (0..8usize).prop_map(Step::Redeliver),
            1 => (0..8usize).prop_map(Step::Repeat),
            6 => (0..2usize).prop_map(Step::Read),
            3 => (0..2usize).prop_map(Step::Poll),
            5 => (0..2usize).prop_map(Step::Forward),
            1 => (0..2usize).prop_map(Step::CrashAfterAnswer),
            1 => (0..2usize).prop_map(Step::Crash),
            2 => (1..15u8).prop_map(Step::Wait),
        ]
    }

    /// A POST on the stream: the guid, which delivery's bytes, its event id, when received.
    type Post = (String, usize, String, DateTime<Utc>);

    /// One replica: its state, and the POSTs its stream has yet to read.
    struct Replica {
        name: String,
        state: State<RedisLedger>,
        inbox: VecDeque<Post>,
    }

    /// Hooks numbered apart, so that each case has keys of its own in the one Redis.
    static HOOKS: AtomicU64 = AtomicU64::new(1);

    struct World<'r> {
        redis: &'r RedisServer,
        connection: Connection,
        redis_hook: HookRef,
        origin: DateTime<Utc>,
        /// GitHub's record: id, guid, delivered_at, redelivery.
        attempts: Vec<(u64, String, DateTime<Utc>, bool)>,
        guids: Vec<String>,
        received: HashMap<String, u32>,
        allowed: HashMap<String, u32>,
        t: i64,
        start_wall: DateTime<Utc>,
        start: Instant,
        events: u64,
        replicas: Vec<Replica>,
        born: u64,
        /// Where the replicas' events go (drained, unread).
        feed: (mpsc::Sender<relay::Event>, mpsc::Receiver<relay::Event>),
    }

    impl<'r> World<'r> {
        async fn new(redis: &'r RedisServer, connection: Connection) -> Self {
            let hook = HookRef::Repo { owner: "o".into(), repo: "r".into(), id: HOOKS.fetch_add(1, Ordering::SeqCst) };
            let start_wall = Utc::now() - TimeDelta::hours(1);
            let mut world = World {
                redis,
                connection,
                redis_hook: hook,
                origin: start_wall,
                attempts: Vec::new(),
                guids: Vec::new(),
                received: HashMap::new(),
                allowed: HashMap::new(),
                t: 0,
                start_wall,
                start: Instant::now(),
                events: 0,
                replicas: Vec::new(),
                born: 0,
                feed: mpsc::channel(1 << 16),
            };
            for _ in 0..2 {
                let replica = world.replica().await;
                world.replicas.push(replica);
            }
            world
        }

        fn wall(&self) -> DateTime<Utc> {
            self.start_wall + TimeDelta::seconds(self.t)
        }

        fn now(&self) -> Instant {
            self.start + Duration::from_secs(self.t as u64)
        }

        /// A replica started afresh, its stream up.
        async fn replica(&mut self) -> Replica {
            self.born += 1;
            let name = format!("replica-{}", self.born);
            let shared = self.connection.hook("model", &self.redis_hook, &name);
            let begun = shared.create(self.origin, &[], Utc::now()).await.unwrap();
            let ledger = RedisLedger::new(shared, begun.floor, 1, self.feed.0.clone(), CancellationToken::new());
            let mut state = State::new(ledger);
            state.stream_up(false, self.wall());
            Replica { name, state, inbox: VecDeque::new() }
        }

        fn drain(&mut self) {
            while self.feed.1.try_recv().is_ok() {}
        }

        fn item(&self, (id, guid, at, redelivery): &(u64, String, DateTime<Utc>, bool)) -> DeliveryItem {
            DeliveryItem {
                id: *id,
                guid: guid.clone(),
                delivered_at: *at,
                redelivery: *redelivery,
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

        /// A new POST of `guid` at the blackhole, for both streams.
        fn post(&mut self, guid: &str) {
            let made = self.guids.iter().position(|made| made == guid).expect("a guid GitHub made");
            self.events += 1;
            let post = (guid.to_string(), made, format!("boot-{}", self.events), self.wall());
            for replica in &mut self.replicas {
                replica.inbox.push_back(post.clone());
            }
        }

        fn attempt(&mut self, guid: String, redelivery: bool) {
            let id = self.attempts.len() as u64 + 1;
            self.attempts.push((id, guid.clone(), self.wall(), redelivery));
            self.post(&guid);
        }

        async fn read(&mut self, r: usize) {
            let now = self.now();
            let replica = &mut self.replicas[r];
            let Some((guid, made, event, at)) = replica.inbox.pop_front() else { return };
            let pushed = Pushed {
                guid: guid.clone(),
                event: "issues".into(),
                action: Some("opened".into()),
                received_at: at,
                headers: vec![
                    ("x-github-delivery".into(), guid),
                    ("x-hub-signature-256".into(), format!("sha256={made:064x}")),
                ],
                body: format!("{{\"made\":{made}}}").into_bytes(),
                event_id: Some(event),
            };
            replica.state.pushed(pushed, now).await;
        }

        async fn poll(&mut self, r: usize) {
            let items: Vec<DeliveryItem> = self.attempts.iter().rev().map(|a| self.item(a)).collect();
            let now = self.now();
            let state = &mut self.replicas[r].state;
            let unknown = items.into_iter().filter(|item| !state.knows(item)).collect();
            state.listed(unknown, now).await.unwrap();
        }

        /// Replica `r` forwards its oldest delivery; `false` if it had none.
        async fn forward(&mut self, r: usize, crash: bool) -> bool {
            let Some(mut taken) = self.replicas[r].state.take() else { return false };
            if !self.replicas[r].state.confirm(&taken).await {
                return true;
            }
            let guid = match &taken.pending {
                Pending::Listed(item, None) => {
                    let made = self.guids.iter().position(|made| *made == item.guid).expect("a guid GitHub made");
                    taken.body = relay::ledger::body_key(&format!("sha256={made:064x}"));
                    item.guid.clone()
                }
                Pending::Listed(item, Some(_)) => item.guid.clone(),
                Pending::Pushed(pushed) => pushed.guid.clone(),
            };
            let received = self.received.entry(guid.clone()).or_default();
            *received += 1;
            let received = *received;
            let attempted = self.attempts.iter().filter(|a| a.1 == guid).count() as u32;
            let allowed = self.allowed.get(&guid).copied().unwrap_or(0);
            assert!(
                received <= attempted + allowed,
                "{guid} reached the handler {received} times for {attempted} attempts"
            );
            if crash {
                *self.allowed.entry(guid).or_default() += 1;
                self.crash(r).await;
                return true;
            }
            self.replicas[r].state.settle(&taken, How::Forwarded).await.unwrap();
            true
        }

        /// Replica `r` dies, its leases end (as Redis's clock would, 30 s on), and it starts afresh.
        async fn crash(&mut self, r: usize) {
            let fresh = self.replica().await;
            let dead = std::mem::replace(&mut self.replicas[r], fresh);
            let key = |name: &str| format!("hookfwd:{{model:{}}}:{name}", self.redis_hook.key());
            let end = format!(
                "EVAL \"local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) \
                 for _, c in ipairs(redis.call('HKEYS', KEYS[1])) do \
                 if redis.call('HGET', KEYS[1], c) == ARGV[1] then redis.call('ZADD', KEYS[2], now - 1, c) end end \
                 return 0\" 2 {} {} {}",
                key("owners"),
                key("leases"),
                dead.name
            );
            self.redis_command(&end);
            // Dropped without closing: nothing released, what was recorded is in Redis.
            drop(dead);
        }

        fn redis_command(&self, line: &str) {
            let reply = self.redis.command(line).unwrap_or_default();
            assert!(reply.starts_with(':'), "{line}: {reply}");
        }

        async fn run(&mut self, step: Step) {
            match step {
                Step::New => {
                    let guid = format!("guid-{}", self.guids.len());
                    self.guids.push(guid.clone());
                    self.attempt(guid, false);
                }
                Step::Redeliver(n) if !self.guids.is_empty() => {
                    let guid = self.guids[n % self.guids.len()].clone();
                    self.attempt(guid, true);
                }
                Step::Repeat(n) if !self.guids.is_empty() => {
                    let guid = self.guids[n % self.guids.len()].clone();
                    self.post(&guid);
                }
                Step::Redeliver(_) | Step::Repeat(_) => {}
                Step::Read(r) => self.read(r % 2).await,
                Step::Poll(r) => self.poll(r % 2).await,
                Step::Forward(r) => {
                    self.forward(r % 2, false).await;
                }
                Step::CrashAfterAnswer(r) => {
                    self.forward(r % 2, true).await;
                }
                Step::Crash(r) => self.crash(r % 2).await,
                Step::Wait(seconds) => self.t += i64::from(seconds),
            }
            self.drain();
            self.t += 1;
        }

        /// Lets everything settle: every POST read, then polls and forwards on both replicas until
        /// each attempt reached the handler (waiting real time for claims another replica let go).
        async fn settle(&mut self) {
            for r in 0..2 {
                while !self.replicas[r].inbox.is_empty() {
                    self.read(r).await;
                }
            }
            self.t += 60;
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                for r in 0..2 {
                    self.replicas[r].state.stream_down();
                    self.poll(r).await;
                    self.replicas[r].state.top_up().await.unwrap();
                    while self.forward(r, false).await {}
                }
                self.drain();
                let short = self.guids.iter().any(|guid| {
                    let attempted = self.attempts.iter().filter(|a| &a.1 == guid).count() as u32;
                    self.received.get(guid).copied().unwrap_or(0) < attempted
                });
                if !short || std::time::Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    #[test]
    #[ignore = "needs redis-server; scripts/test runs it"]
    fn each_attempt_reaches_the_handler_once_across_two_replicas() {
        let redis = RedisServer::start();
        let mut runner =
            proptest::test_runner::TestRunner::new(ProptestConfig { cases: 32, ..ProptestConfig::default() });
        let result = runner.run(&proptest::collection::vec(step(), 1..40), |steps| {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let connection = Location::parse(&redis.url()).unwrap().connect(Duration::from_secs(5)).await.unwrap();
                let mut world = World::new(&redis, connection).await;
                for step in steps {
                    world.run(step).await;
                }
                world.settle().await;
                for replica in &world.replicas {
                    assert_eq!(replica.state.held_bytes(), 0, "every pushed byte held was let go");
                }
                for guid in &world.guids {
                    let attempted = world.attempts.iter().filter(|a| &a.1 == guid).count() as u32;
                    let received = world.received.get(guid).copied().unwrap_or(0);
                    let allowed = world.allowed.get(guid).copied().unwrap_or(0);
                    assert!(received >= attempted, "{guid}: {attempted} attempts, the handler got {received}");
                    assert!(
                        received <= attempted + allowed,
                        "{guid}: {attempted} attempts (+{allowed} crashes), the handler got {received}"
                    );
                }
            });
            Ok(())
        });
        if let Err(error) = result {
            panic!("{error}");
        }
    }
}
