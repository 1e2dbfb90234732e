//! Replicas sharing one ledger in a real `redis-server` (`--ledger redis://…`): each delivery
//! reaches the handler once and is fetched once, in push mode forwarded from the stream with no
//! GET, a replica killed -9 loses nothing, Redis going away stops forwarding with one sentence
//! (feed and `/readyz`) until it is back, and a bad or unreachable ledger URL is one sentence and
//! the right exit code.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use e2e::{Account, Balancer, Blackhole, OctokitReceiver, Recorder, RedisServer, Running, eventually};
use fake_github::{FakeGitHub, HookSpec};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_replicasE2eTokenNeverPrinted0000009";
const SECRET: &str = "replicas-e2e-secret-never-printed-91f0";
const REPO: &str = "octo/replicated";
const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };
/// How long any one wait may take before the test fails rather than hangs.
const PATIENCE: Duration = Duration::from_secs(60);
/// How long a claim lives in these tests (30 s in production): a dead replica's claims expire in seconds.
const CLAIM_TTL_MS: &str = "3000";
const STREAM_TOKEN: &str = "replicas-stream-token-never-printed-3e1";
/// The secret GitHub signs the push-mode hook's deliveries with.
const UPSTREAM: &str = "replicas-upstream-secret-never-printed-7a";

/// A fake with [`REPO`]'s hook and `count` deliveries on it: the fake, the hook's id, and their guids.
async fn fake_with_backlog(count: usize) -> (FakeGitHub, u64, Vec<String>) {
    let fake = FakeGitHub::start().await;
    // What these tests are about is who fetches what, not pacing (tests/e2e/pace.rs): no secondary limit.
    fake.set_secondary_limits(fake_github::SecondaryLimits { per_minute: None, concurrent: None });
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_repo(REPO);
    let hook = fake.add_hook(REPO, HookSpec::new(fake.blackhole_url()));
    let payloads = (0..count).map(|n| json!({"action": "opened", "issue": {"number": n}})).collect();
    let ids = fake.emit_many(REPO, "issues", payloads).await;
    let guids = fake.deliveries(hook).into_iter().filter(|d| ids.contains(&d.id)).map(|d| d.guid).collect();
    (fake, hook, guids)
}

/// `hookfwd forward` on [`REPO`] with the ledger at `ledger`, its own state directory (another
/// machine), polling every 100 ms, forwarding what the last hour brought.
fn replica(fake: &FakeGitHub, ledger: &str, target: &str, state: &tempfile::TempDir, extra: &[&str]) -> Running {
    replica_from(fake, ledger, target, state, &[&["--since", "1h"], extra].concat())
}

/// [`replica`] without `--since`: the first replica of the hook starts from its newest delivery.
fn replica_from(fake: &FakeGitHub, ledger: &str, target: &str, state: &tempfile::TempDir, extra: &[&str]) -> Running {
    forward(fake, &fake.blackhole_url(), ledger, target, state, extra, &[])
}

/// `hookfwd forward` on [`REPO`]'s hook at `hook_url`, with the ledger at `ledger`, its own state
/// directory (another machine), polling every 100 ms.
fn forward(
    fake: &FakeGitHub,
    hook_url: &str,
    ledger: &str,
    target: &str,
    state: &tempfile::TempDir,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Running {
    let rule = json!({"from": [REPO], "to": target, "hook": {"config": {"url": hook_url}}}).to_string();
    let (api, state) = (fake.api_url().to_string(), state.path().to_str().expect("UTF-8 path").to_string());
    let mut args = vec!["forward", "--json", "--rule", &rule, "--api-url", &api, "--state-dir", &state];
    args.extend(["--interval", "100ms", "--ledger", ledger, "--secondary-limit", "1000000000"]);
    args.extend(extra);
    let env = [&[("HOOKFWD_TEST_CLAIM_TTL_MS", CLAIM_TTL_MS)], env].concat();
    ACCOUNT.hookfwd(&args, &env)
}

/// Push mode: blackholes with a stream token (one, or two sharing the stream in Redis behind a
/// round-robin balancer), [`REPO`]'s hook on them signed with [`UPSTREAM`], two replicas on one
/// Redis ledger subscribed to it, safety polls every second, and a handler.
struct PushedReplicas {
    redis: RedisServer,
    fake: FakeGitHub,
    _blackholes: (Vec<Blackhole>, Option<Balancer>),
    hook: u64,
    handler: Recorder,
    a: Running,
    b: Running,
    _states: [tempfile::TempDir; 2],
}

impl PushedReplicas {
    async fn start(path: &str, blackholes: usize) -> Self {
        let redis = RedisServer::start();
        let fake = FakeGitHub::start().await;
        fake.add_token(TOKEN, "repo, admin:repo_hook");
        fake.add_repo(REPO);
        let (holes, balancer, hook_url) = if blackholes == 1 {
            let blackhole = Blackhole::start(&["--stream-token", STREAM_TOKEN, "--stream-keepalive", "1s"]);
            let hook_url = blackhole.url(path);
            (vec![blackhole], None, hook_url)
        } else {
            let args = ["--stream-token", STREAM_TOKEN, "--stream-keepalive", "1s", "--redis", &redis.url()];
            let holes: Vec<Blackhole> = (0..blackholes).map(|_| Blackhole::start(&args)).collect();
            let backends = holes.iter().map(|hole| hole.url("").trim_start_matches("http://").to_string()).collect();
            let balancer = Balancer::start(backends).await;
            let hook_url = balancer.url(path);
            (holes, Some(balancer), hook_url)
        };
        let hook = fake.add_hook(REPO, HookSpec::new(&hook_url).secret(UPSTREAM));
        let handler = Recorder::start().await;
        let states = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let env = [("HOOKFWD_STREAM_TOKEN", STREAM_TOKEN), ("HOOKFWD_HOOK_SECRET", UPSTREAM)];
        let extra = ["--safety-interval", "1s"];
        let start = |state| forward(&fake, &hook_url, &redis.url(), &handler.url(), state, &extra, &env);
        let (a, b) = (start(&states[0]), start(&states[1]));
        a.wait_line("\"state\":\"up\"").await;
        b.wait_line("\"state\":\"up\"").await;
        Self { redis, fake, _blackholes: (holes, balancer), hook, handler, a, b, _states: states }
    }

    /// Emits `count` deliveries, one after another as GitHub makes them; their guids.
    async fn emit(&self, count: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for n in 0..count {
            ids.extend(self.fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await);
        }
        self.fake.deliveries(self.hook).into_iter().filter(|d| ids.contains(&d.id)).map(|d| d.guid).collect()
    }

    /// Waits until the handler has taken `count` requests.
    async fn handler_has(&self, count: usize) {
        eventually("the traffic to be under way", async || self.handler.count() >= count).await;
    }

    /// Waits until the handler has each of `guids` and Redis has every one of the hook's deliveries
    /// done (a listed delivery is done once its attempt reached the handler, by either path).
    async fn until_settled(&self, guids: &[String], runs: &[&Running]) {
        let done = ledger_key(&self.fake, self.hook, "done");
        let deliveries = self.fake.deliveries(self.hook).len();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got: Vec<String> = self.handler.received().iter().map(|r| r.guid().to_string()).collect();
            let missing = guids.iter().filter(|guid| !got.contains(guid)).count();
            let recorded = self.redis.command(&format!("ZCARD {done}")).unwrap_or_default();
            if missing == 0 && recorded.trim() == format!(":{deliveries}") {
                return;
            }
            let stderr: Vec<String> = runs.iter().map(|run| run.stderr()).collect();
            assert!(Instant::now() < deadline, "{missing} missing, {recorded:?} done in Redis; stderr: {stderr:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many times the handler got each guid, and the guids whose body is not the one GitHub
    /// POSTed or whose signature does not verify with the local secret.
    fn received(&self) -> (HashMap<String, usize>, Vec<String>) {
        let sent: HashMap<String, bytes::Bytes> =
            self.fake.deliveries(self.hook).into_iter().map(|d| (d.guid, d.body)).collect();
        let secret = github::Secret::new(SECRET.to_string());
        let mut counts = HashMap::new();
        let mut altered = Vec::new();
        for request in self.handler.received() {
            let guid = request.guid().to_string();
            let signed =
                request.header("x-hub-signature-256") == Some(&*github::signature::sha256(&secret, &request.body));
            if sent.get(&guid) != Some(&request.body) || !signed {
                altered.push(guid.clone());
            }
            *counts.entry(guid).or_default() += 1;
        }
        (counts, altered)
    }
}

/// The `forwarded` lines of `run`, and how many of them came through the API.
fn forwarded_lines(run: &Running) -> (usize, usize) {
    let lines: Vec<Value> = run
        .lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["type"] == "forwarded")
        .collect();
    (lines.len(), lines.iter().filter(|line| line["via"] != "stream").count())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_behind_two_balanced_blackholes_forward_each_pushed_delivery_once_byte_exact_with_no_get() {
    let run = PushedReplicas::start("/ha", 2).await;
    let guids = run.emit(60).await;
    assert_eq!(guids.len(), 60);
    run.until_settled(&guids, &[&run.a, &run.b]).await;
    let (counts, altered) = run.received();
    assert_eq!(counts.len(), 60, "{counts:?}");
    assert!(counts.values().all(|n| *n == 1), "each once: {counts:?}");
    assert!(altered.is_empty(), "not GitHub's bytes, or not signed with the local secret: {altered:?}");
    assert_eq!(run.fake.stats().get_delivery, 0, "a GET for a delivery the stream brought");
    // The handler's answer comes before the feed line that reports it: wait for the last line.
    let lines = || (forwarded_lines(&run.a), forwarded_lines(&run.b));
    eventually("a forwarded line per delivery", async || lines().0.0 + lines().1.0 >= 60).await;
    let ((by_a, _), (by_b, _)) = lines();
    assert_eq!(by_a + by_b, 60, "a forwarded {by_a}, b {by_b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_mode_replica_killed_mid_traffic_loses_nothing_and_its_pushes_come_back_through_the_api() {
    let run = PushedReplicas::start("/ha-kill", 1).await;
    // A slow handler, so that the killed replica has pushed deliveries queued and one at the handler.
    run.handler.delay(Duration::from_millis(30));
    let emitting = async {
        let guids = run.emit(80).await;
        assert_eq!(guids.len(), 80);
        guids
    };
    let killing = async {
        run.handler_has(20).await;
        run.a.signal(libc::SIGKILL);
    };
    let (guids, ()) = tokio::join!(emitting, killing);
    assert!(run.handler.count() < 80, "the traffic ended before the kill; emit more");
    // b takes over what a had claimed once its leases end (3 s here): through the API, its bytes gone with a.
    run.until_settled(&guids, &[&run.b]).await;
    let (counts, _) = run.received();
    assert!(guids.iter().all(|guid| counts.contains_key(guid)), "lost: {counts:?}");
    // a forwarded one delivery at a time: at most that one was answered and not recorded.
    let repeats: usize = counts.values().map(|n| n - 1).sum();
    assert!(repeats <= 1, "{repeats} repeats: {counts:?}");
    // A GET only for what was forwarded through the API (what a held when it died); none for
    // what the stream brought. The feed line comes after the handler's answer: wait for the last.
    let by_api = || forwarded_lines(&run.a).1 + forwarded_lines(&run.b).1;
    let gets = run.fake.stats().get_delivery as usize;
    eventually("a forwarded line per GET", async || by_api() >= gets).await;
    assert_eq!(gets, by_api(), "a GET for a delivery the stream brought");
    assert!(gets >= 1, "a held nothing when it died: emit faster, or slow the handler");
}

/// The Redis key `name` of [`REPO`]'s hook `hook` in the ledger of replicas on `fake`.
fn ledger_key(fake: &FakeGitHub, hook: u64, name: &str) -> String {
    let api = fake.api_url();
    let instance = format!("{}-{}", api.host_str().unwrap_or_default(), api.port().unwrap_or_default());
    let hook = github::HookRef::Repo { owner: "octo".into(), repo: "replicated".into(), id: hook };
    format!("hookfwd:{{{instance}:{}}}:{name}", hook.key())
}

/// Sends one command to `redis`, which must take it.
fn command(redis: &RedisServer, line: &str) {
    let reply = redis.command(line).unwrap_or_default();
    assert!(!reply.is_empty() && !reply.starts_with('-'), "{line}: {reply:?}");
}

/// The `--json` warning lines of `run` whose kind is `kind`.
fn warnings(run: &Running, kind: &str) -> Vec<Value> {
    let lines = run.lines().into_iter().filter_map(|line| serde_json::from_str::<Value>(&line).ok());
    lines.filter(|line| line["type"] == "warning" && line["kind"] == kind).collect()
}

/// How many times the receiver got each guid.
fn counts(receiver: &OctokitReceiver) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for event in receiver.events() {
        *counts.entry(event["id"].as_str().unwrap_or_default().to_string()).or_default() += 1;
    }
    counts
}

/// Waits until the receiver has every one of `guids`.
async fn until_all(receiver: &OctokitReceiver, guids: &[String], runs: &[&Running]) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = counts(receiver);
        let missing = guids.iter().filter(|guid| !got.contains_key(*guid)).count();
        if missing == 0 {
            return;
        }
        let stderr: Vec<String> = runs.iter().map(|run| run.stderr()).collect();
        assert!(Instant::now() < deadline, "{missing} deliveries never arrived; stderr: {stderr:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Emits one more delivery and waits until the receiver has it: the sentinel after which a late copy of an
/// earlier delivery would have shown up (each replica forwards oldest first).
async fn one_more(fake: &FakeGitHub, hook: u64, receiver: &OctokitReceiver, runs: &[&Running]) {
    let ids = fake.emit(REPO, "issues", json!({"action": "opened", "issue": {"number": 100_000}})).await;
    let guids: Vec<String> =
        fake.deliveries(hook).into_iter().filter(|d| ids.contains(&d.id)).map(|d| d.guid).collect();
    until_all(receiver, &guids, runs).await;
}

/// The guids received more than once, and how many extra copies in all.
fn repeats(receiver: &OctokitReceiver) -> usize {
    counts(receiver).values().map(|n| n - 1).sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_on_one_hook_forward_each_delivery_once_and_fetch_it_once() {
    let redis = RedisServer::start();
    let (fake, hook, guids) = fake_with_backlog(300).await;
    let receiver = OctokitReceiver::start(SECRET).await;
    let (a_state, b_state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = replica(&fake, &redis.url(), receiver.url(), &a_state, &[]);
    let b = replica(&fake, &redis.url(), receiver.url(), &b_state, &[]);
    until_all(&receiver, &guids, &[&a, &b]).await;
    one_more(&fake, hook, &receiver, &[&a, &b]).await;
    let counts = counts(&receiver);
    assert_eq!(counts.len(), 301);
    assert!(counts.values().all(|n| *n == 1), "each guid once: {:?}", counts.values().filter(|n| **n > 1).count());
    let gets = fake.stats().get_delivery;
    assert!(gets as f64 <= 301.0 * 1.01, "{gets} GETs for 301 deliveries");
    // Both took part: the fetches were shared.
    let forwarded = |run: &Running| run.lines().iter().filter(|line| line.contains("\"forwarded\"")).count();
    // The handler's answer comes before the feed line that reports it: wait for the last line.
    eventually("a forwarded line per delivery", async || forwarded(&a) + forwarded(&b) >= 301).await;
    let (by_a, by_b) = (forwarded(&a), forwarded(&b));
    assert!(by_a > 0 && by_b > 0, "a forwarded {by_a}, b {by_b}");
    assert_eq!(by_a + by_b, 301);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_killed_mid_drain_loses_nothing_and_repeats_at_most_what_it_had_in_flight() {
    let redis = RedisServer::start();
    let (fake, hook, guids) = fake_with_backlog(300).await;
    // A slower GitHub, so that the drain is still going when one replica dies.
    fake.faults().set_latency(Duration::from_millis(60));
    let receiver = OctokitReceiver::start(SECRET).await;
    let (a_state, b_state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = replica(&fake, &redis.url(), receiver.url(), &a_state, &[]);
    let b = replica(&fake, &redis.url(), receiver.url(), &b_state, &[]);
    receiver.wait_for(PATIENCE, "the drain to be under way", |lines| lines.len() >= 50).await;
    a.signal(libc::SIGKILL);
    assert!(counts(&receiver).len() < 300, "the drain ended before the kill; make the backlog larger");
    // b takes over what a had claimed once those claims expire.
    until_all(&receiver, &guids, &[&b]).await;
    one_more(&fake, hook, &receiver, &[&b]).await;
    // a forwarded one delivery at a time: at most that one was answered and not marked done.
    assert!(repeats(&receiver) <= 1, "{} repeats", repeats(&receiver));
    drop(a);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_going_away_stops_forwarding_with_one_sentence_and_readyz_503_until_it_is_back() {
    let mut redis = RedisServer::start_persistent();
    let (fake, _, guids) = fake_with_backlog(200).await;
    fake.faults().set_latency(Duration::from_millis(60));
    let receiver = OctokitReceiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();
    let admin = e2e::free_addr().to_string();
    let run = replica(&fake, &redis.url(), receiver.url(), &state, &["--admin-listen", &admin]);
    receiver.wait_for(PATIENCE, "the drain to be under way", |lines| lines.len() >= 50).await;
    redis.stop();
    let line = run.wait_line("cannot be reached").await;
    let warning: Value = serde_json::from_str(&line).expect("a JSON feed line");
    let message = warning["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("the ledger at {}", redis.url())), "{message}");
    assert!(message.contains("forwarding nothing meanwhile"), "{message}");
    let ready = e2e::get(format!("http://{admin}/readyz")).await.expect("the admin listener answers");
    assert_eq!(ready.status().as_u16(), 503);
    let body = ready.text().await.unwrap();
    assert!(body.contains("the ledger at redis://127.0.0.1:"), "{body}");
    // The sentinel that hookfwd goes on working while the ledger is down: three of its attempts to reach
    // it again, on the port Redis left...
    let port = std::net::TcpListener::bind(redis.addr()).expect("the port Redis left");
    port.set_nonblocking(true).unwrap();
    let mut attempts = 0;
    eventually("three attempts to reach the ledger", async || {
        while let Ok((connection, _)) = port.accept() {
            drop(connection);
            attempts += 1;
        }
        attempts >= 3
    })
    .await;
    drop(port);
    let frozen = receiver.events().len();
    redis.restart();
    run.wait_line("reachable again").await;
    // ...and forwards nothing meanwhile: a claim is trusted no longer than it lives (3 s here) less a margin,
    // so with Redis gone only the delivery being forwarded when it went can still be.
    let feed = run.lines();
    let down = feed.iter().position(|line| line.contains("cannot be reached")).expect("the warning");
    let back = feed.iter().position(|line| line.contains("reachable again")).expect("the notice");
    let forwarded = feed[down..back].iter().filter(|line| line.contains("\"forwarded\"")).count();
    assert!(forwarded <= 1, "{forwarded} forwarded while the ledger was down");
    assert!(frozen < 200, "the drain ended before Redis stopped");
    until_all(&receiver, &guids, &[&run]).await;
    let ready = e2e::get(format!("http://{admin}/readyz")).await.expect("the admin listener answers");
    assert_eq!(ready.status().as_u16(), 200, "{}", ready.text().await.unwrap_or_default());
    assert!(repeats(&receiver) <= 1, "{} repeats", repeats(&receiver));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_ledger_url_is_one_sentence_and_exit_2_without_its_password() {
    let fake = FakeGitHub::start().await;
    for (url, says) in [
        ("mysql://x", "only redis://"),
        ("redis:///0", "names no host"),
        ("redis://:hunter2@/0", "not a URL"),
        ("redis://127.0.0.1:6379/zero", "must be a number"),
        ("redis//user:hunter2@127.0.0.1/0", "not a URL"),
    ] {
        let run = replica(&fake, url, "localhost:1", &tempfile::tempdir().unwrap(), &[]);
        let finished = run.finish().await;
        assert_eq!(finished.code, Some(2), "{url}: {}", finished.stderr);
        let stderr = finished.stderr.trim();
        assert!(stderr.starts_with("hookfwd: the ledger URL") && stderr.contains(says), "{url}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        finished.assert_never_printed(&["hunter2", TOKEN, SECRET]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_at_start_is_one_sentence_and_exit_1_within_ten_seconds() {
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    let url = format!("redis://:hunter2@{}/0", e2e::free_addr());
    // Built before the clock starts.
    e2e::hookfwd();
    let started = Instant::now();
    let finished = replica(&fake, &url, "localhost:1", &tempfile::tempdir().unwrap(), &[]).finish().await;
    let took = started.elapsed();
    assert_eq!(finished.code, Some(1), "{}", finished.stderr);
    // It kept trying for the connect window (a lower bound: a loaded machine only makes it later).
    assert!(took >= Duration::from_secs(8), "gave up after {took:?}");
    let shown = url.replace("hunter2", "***");
    assert!(
        finished.stderr.starts_with(&format!("hookfwd: could not reach the ledger at {shown}: ")),
        "{}",
        finished.stderr
    );
    finished.assert_never_printed(&["hunter2", TOKEN, SECRET]);
    // Only the CLI's check that the API answers: nothing is set up or listed without a ledger.
    assert_eq!(fake.stats().list_deliveries, 0, "deliveries were listed without a ledger");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_far_future_floor_planted_in_redis_is_moved_back_with_one_warning_and_deliveries_still_arrive() {
    let redis = RedisServer::start();
    let (fake, hook, _) = fake_with_backlog(0).await;
    let receiver = OctokitReceiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();
    let run = replica(&fake, &redis.url(), receiver.url(), &state, &[]);
    one_more(&fake, hook, &receiver, &[&run]).await;
    // The year 5138: every delivery until then would look forwarded.
    let floor = ledger_key(&fake, hook, "floor");
    command(&redis, &format!("SET {floor} 99999999999999999"));
    one_more(&fake, hook, &receiver, &[&run]).await;
    one_more(&fake, hook, &receiver, &[&run]).await;
    let said = warnings(&run, "ledger_floor_in_future");
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0]["message"].as_str().unwrap_or_default().contains(&floor), "{said:?}");
    assert_eq!(repeats(&receiver), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_floor_deleted_from_redis_is_not_set_again_before_where_the_ledger_started() {
    let redis = RedisServer::start();
    // Twenty deliveries from before the ledger starts: never forwarded, however the floor is tampered with.
    // GitHub made them seconds apart in the minutes before, within the window a floor trails by.
    let (fake, hook, before) = fake_with_backlog(20).await;
    let now = chrono::Utc::now();
    for (n, delivery) in fake.deliveries(hook).iter().enumerate() {
        let delivered_at = Some(now - chrono::TimeDelta::seconds(160 - 5 * n as i64));
        fake.faults().poison(delivery.id, fake_github::Poison { delivered_at, ..Default::default() });
    }
    let receiver = OctokitReceiver::start(SECRET).await;
    let (a_state, b_state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = replica_from(&fake, &redis.url(), receiver.url(), &a_state, &[]);
    // Started from the newest delivery: what comes after "ready" is new.
    a.wait_line("\"type\":\"ready\"").await;
    one_more(&fake, hook, &receiver, &[&a]).await;
    command(&redis, &format!("DEL {}", ledger_key(&fake, hook, "floor")));
    one_more(&fake, hook, &receiver, &[&a]).await;
    a.signal(libc::SIGKILL);
    // A replica started afterwards lists from the floor in Redis.
    let b = replica_from(&fake, &redis.url(), receiver.url(), &b_state, &[]);
    b.wait_line("\"type\":\"ready\"").await;
    one_more(&fake, hook, &receiver, &[&b]).await;
    let got = counts(&receiver);
    let again: Vec<&String> = before.iter().filter(|guid| got.contains_key(*guid)).collect();
    assert!(again.is_empty(), "{} of 20 earlier deliveries forwarded", again.len());
    assert_eq!((got.len(), repeats(&receiver)), (3, 0));
    let said = warnings(&a, "shared_ledger_fixed");
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0]["message"].as_str().unwrap_or_default().contains("had no floor"), "{said:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_planted_in_redis_with_no_live_owner_expires_and_the_delivery_is_forwarded() {
    let redis = RedisServer::start();
    let (fake, hook, guids) = fake_with_backlog(3).await;
    let ids: Vec<u64> = fake.deliveries(hook).iter().map(|delivery| delivery.id).collect();
    // A claim with no lease, held by no replica: without one it would withhold the delivery forever.
    let owners = ledger_key(&fake, hook, "owners");
    command(&redis, &format!("HSET {owners} d:{} ghost-replica", ids[1]));
    let receiver = OctokitReceiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();
    let run = replica(&fake, &redis.url(), receiver.url(), &state, &[]);
    until_all(&receiver, &guids, &[&run]).await;
    let said = warnings(&run, "shared_ledger_fixed");
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0]["message"].as_str().unwrap_or_default().contains(&owners), "{said:?}");
    assert_eq!(repeats(&receiver), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_of_the_wrong_type_in_redis_is_one_warning_naming_the_key_and_forwarding_goes_on() {
    let redis = RedisServer::start();
    let (fake, hook, _) = fake_with_backlog(0).await;
    let receiver = OctokitReceiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();
    let run = replica(&fake, &redis.url(), receiver.url(), &state, &[]);
    one_more(&fake, hook, &receiver, &[&run]).await;
    let done = ledger_key(&fake, hook, "done");
    command(&redis, &format!("DEL {done}"));
    command(&redis, &format!("HSET {done} planted yes"));
    one_more(&fake, hook, &receiver, &[&run]).await;
    one_more(&fake, hook, &receiver, &[&run]).await;
    let said = warnings(&run, "shared_ledger_fixed");
    assert_eq!(said.len(), 1, "{said:?}");
    let message = said[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&done) && message.contains("a hash"), "{message}");
    assert!(run.lines().iter().all(|line| !line.contains("cannot be reached")), "{:?}", run.lines());
}
