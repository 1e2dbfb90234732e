//! The relay engine driven in-process against the fake GitHub and a local receiver that
//! verifies every signature.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_github::{FakeGitHub, HookSpec};
use github::{Auth, Client, Config, HookRef, Owner, RetryPolicy, Secret};
use relay::{Event, HookOrigin, Rule, Settings, Source, Target};
use serde_json::json;
use testkit::{Received, Recorder, eventually};
use tokio::net::TcpListener;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "ghp_relaytestsrelaytestsrelaytests0000";
const SECRET: &str = "local-handler-secret";
/// Long enough for any of these runs; a hang fails instead of blocking CI.
const PATIENCE: Duration = Duration::from_secs(60);

/// The recorder's URL as the relay's target.
fn target(receiver: &Recorder) -> Target {
    Target::parse(&receiver.url()).unwrap()
}

/// Whether `X-Hub-Signature-256` verifies with [`SECRET`].
fn signed(request: &Received) -> bool {
    let signature = request.header("x-hub-signature-256").unwrap_or_default();
    github::signature::verify_sha256(&Secret::new(SECRET), &request.body, signature)
}

fn client(fake: &FakeGitHub) -> Client {
    let config =
        Config { api_url: fake.api_url(), auth: Auth::Token(Secret::new(TOKEN)), timeout: Duration::from_secs(10) };
    Client::new(config).unwrap().with_retry_policy(RetryPolicy {
        base: Duration::from_millis(20),
        cap: Duration::from_millis(200),
        attempts: 3,
        secondary_wait: Duration::from_millis(100),
        secondary_cap: Duration::from_millis(500),
        max_rate_limit_wait: None,
    })
}

async fn fake() -> FakeGitHub {
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook, admin:org_hook");
    fake.set_ping_on_create(false);
    fake
}

fn rule(from: &[&str], target: Target, hook_url: &str) -> Rule {
    Rule {
        sources: from.iter().map(|s| Source::Owner(Owner::parse(s).unwrap())).collect(),
        target,
        hook_url: Some(hook_url.to_string()),
        events: Vec::new(),
        actions: Vec::new(),
        filter: None,
        more: Vec::new(),
        installations: Vec::new(),
        repositories: Vec::new(),
        secret: Some(Secret::new(SECRET)),
        secret_env: None,
        stream_token: None,
        hook_secret: None,
    }
}

fn settings(state: &std::path::Path) -> Settings {
    Settings {
        interval: Duration::from_millis(50),
        safety_interval: Duration::from_secs(30),
        since: None,
        state_dir: state.to_path_buf(),
        cleanup: false,
        fetch_concurrency: 8,
        target_timeout: Duration::from_secs(5),
        forbidden_for: Duration::from_secs(60),
        ..Settings::default()
    }
}

/// A relay running in the background, with the events it sent.
struct Running {
    cancel: CancellationToken,
    task: JoinHandle<Result<(), relay::Error>>,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Running {
    fn start(client: Client, rules: Vec<Rule>, settings: Settings) -> Self {
        let (tx, mut rx) = mpsc::channel(64);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(relay::run(client, rules, settings, tx, cancel.clone()));
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = events.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                log.lock().unwrap().push(event);
            }
        });
        Self { cancel, task, events }
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    fn count(&self, matches: impl Fn(&Event) -> bool) -> usize {
        self.events.lock().unwrap().iter().filter(|e| matches(e)).count()
    }

    async fn polled(&self, more: usize) {
        let before = self.count(|e| matches!(e, Event::Polled { .. }));
        eventually("polls", async || self.count(|e| matches!(e, Event::Polled { .. })) >= before + more).await;
    }

    async fn stop(self) -> Result<(), relay::Error> {
        self.cancel.cancel();
        tokio::time::timeout(PATIENCE, self.task).await.expect("the relay stops when cancelled").unwrap()
    }
}

/// The guids of a hook's deliveries in the order the relay must forward them: oldest first.
fn oldest_first(fake: &FakeGitHub, hook: u64) -> Vec<String> {
    let mut deliveries = fake.deliveries(hook);
    deliveries.sort_by_key(|d| (d.delivered_at.timestamp(), d.id));
    deliveries.into_iter().map(|d| d.guid).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_a_250_delivery_backlog_once_each_oldest_first_signed_and_byte_exact() {
    let fake = fake().await;
    let hook = fake.add_hook("octo/hello", HookSpec::new(fake.blackhole_url()));
    let payloads = (0..250).map(|n| json!({"n": n, "text": "spaced  out ünïcode", "nested": {"f": 1.50}})).collect();
    let ids = fake.emit_many("octo/hello", "issues", payloads).await;
    assert_eq!(ids.len(), 250);
    let receiver = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let mut settings = settings(state.path());
    settings.since = Some(Duration::from_secs(3600));

    let running =
        Running::start(client(&fake), vec![rule(&["octo/hello"], target(&receiver), &fake.blackhole_url())], settings);
    eventually("250 deliveries", async || receiver.count() >= 250).await;
    running.polled(3).await;
    running.stop().await.unwrap();

    let received = receiver.received();
    assert_eq!(received.len(), 250, "each delivery exactly once");
    let guids: Vec<_> = received.iter().map(Received::guid).collect();
    assert_eq!(guids, oldest_first(&fake, hook), "oldest first");
    let recorded: HashMap<_, _> = fake.deliveries(hook).into_iter().map(|d| (d.guid.clone(), d)).collect();
    for request in &received {
        assert!(signed(request), "signature verifies");
        let original = &recorded[request.guid()];
        assert_eq!(request.body, original.payload, "payload bytes unchanged");
        assert_eq!(request.header("x-github-event"), Some("issues"));
        assert_eq!(request.header("x-github-hook-id"), Some(hook.to_string().as_str()));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert!(request.header("user-agent").unwrap().starts_with("GitHub-Hookshot/"));
        assert!(request.header("x-github-hook-installation-target-id").is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuses_the_hook_found_by_url_even_when_another_is_listed_first() {
    let fake = fake().await;
    let _other = fake.add_hook("octo/hello", HookSpec::new("https://elsewhere.example/hook"));
    let ours = fake.add_hook("octo/hello", HookSpec::new(fake.blackhole_url()));
    let receiver = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let running = Running::start(
        client(&fake),
        vec![rule(&["octo/hello"], target(&receiver), &fake.blackhole_url())],
        settings(state.path()),
    );
    eventually("ready", async || running.count(|e| matches!(e, Event::Ready { .. })) == 1).await;
    running.polled(1).await;
    let ready = running.events().into_iter().find_map(|e| match e {
        Event::HookReady { hook, origin, .. } => Some((hook, origin)),
        _ => None,
    });
    assert_eq!(
        ready,
        Some((HookRef::Repo { owner: "octo".into(), repo: "hello".into(), id: ours }, HookOrigin::Found))
    );
    assert_eq!(fake.stats().hook_creates, 0);
    fake.emit("octo/hello", "push", json!({"ref": "refs/heads/main"})).await;
    eventually("the push", async || receiver.count() == 1).await;
    running.stop().await.unwrap();
    assert_eq!(receiver.received()[0].guid(), fake.deliveries(ours)[0].guid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_a_missing_hook_and_cleanup_deletes_only_that() {
    let fake = fake().await;
    fake.add_repo("octo/hello");
    let receiver = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let mut settings = settings(state.path());
    settings.cleanup = true;
    let mut rule = rule(&["octo/hello"], target(&receiver), &fake.blackhole_url());
    rule.events = vec!["push".into()];
    let running = Running::start(client(&fake), vec![rule], settings);
    running.polled(1).await;
    let created = running.events().into_iter().find_map(|e| match e {
        Event::HookReady { hook, origin: HookOrigin::Created, events, .. } => Some((hook, events)),
        _ => None,
    });
    let (hook, events) = created.expect("the hook was created");
    assert_eq!(events, ["push"]);
    fake.emit("octo/hello", "push", json!({"ref": "refs/heads/main"})).await;
    eventually("the push", async || receiver.count() == 1).await;
    running.stop().await.unwrap();
    assert_eq!(fake.stats().hook_deletes, 1);
    let owner = Owner::parse("octo/hello").unwrap();
    let left = client(&fake).list_hooks(&owner).await.unwrap();
    assert!(left.iter().all(|h| Some(h.id) != hook.id()), "the created hook is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_is_forwarded_again() {
    let fake = fake().await;
    let hook = fake.add_hook("octo/hello", HookSpec::new(fake.blackhole_url()));
    let receiver = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let running = Running::start(
        client(&fake),
        vec![rule(&["octo/hello"], target(&receiver), &fake.blackhole_url())],
        settings(state.path()),
    );
    running.polled(1).await;
    let ids = fake.emit("octo/hello", "issues", json!({"action": "opened"})).await;
    eventually("the delivery", async || receiver.count() == 1).await;
    let hook_ref = HookRef::Repo { owner: "octo".into(), repo: "hello".into(), id: hook };
    client(&fake).redeliver(&hook_ref, ids[0]).await.unwrap();
    eventually("the redelivery", async || receiver.count() == 2).await;
    running.polled(3).await;
    running.stop().await.unwrap();
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].guid(), received[1].guid(), "a redelivery keeps the guid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_poll_costs_no_rate_limit() {
    let fake = fake().await;
    fake.add_hook("octo/hello", HookSpec::new(fake.blackhole_url()));
    fake.emit("octo/hello", "push", json!({})).await;
    let receiver = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let running = Running::start(
        client(&fake),
        vec![rule(&["octo/hello"], target(&receiver), &fake.blackhole_url())],
        settings(state.path()),
    );
    running.polled(2).await;
    let before = fake.stats();
    running.polled(10).await;
    let after = fake.stats();
    running.stop().await.unwrap();
    assert_eq!(after.counted, before.counted, "idle polls are free");
    assert!(after.not_modified >= before.not_modified + 9, "{before:?} {after:?}");
    assert_eq!(receiver.count(), 0, "a delivery from before the start is not forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_down_for_seconds_loses_nothing() {
    let fake = fake().await;
    let hook = fake.add_hook("octo/hello", HookSpec::new(fake.blackhole_url()));
    let payloads = (0..20).map(|n| json!({"n": n})).collect();
    fake.emit_many("octo/hello", "issues", payloads).await;
    // Reserve a port, then leave it closed: the handler is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let target = Target::parse(&format!("127.0.0.1:{port}/webhook")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut settings = settings(state.path());
    settings.since = Some(Duration::from_secs(3600));
    let running = Running::start(client(&fake), vec![rule(&["octo/hello"], target, &fake.blackhole_url())], settings);
    eventually("retries", async || running.count(|e| matches!(e, Event::Retrying { .. })) >= 3).await;
    // More arrive while it is down.
    fake.emit_many("octo/hello", "issues", (20..30).map(|n| json!({"n": n})).collect()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let receiver = Recorder::on(TcpListener::bind(("127.0.0.1", port)).await.unwrap());
    eventually("30 deliveries", async || receiver.count() >= 30).await;
    running.polled(3).await;
    running.stop().await.unwrap();
    let guids: Vec<String> = receiver.received().iter().map(|r| r.guid().to_string()).collect();
    assert_eq!(guids, oldest_first(&fake, hook), "all of them, once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_server_errors_and_secondary_limits_lose_nothing() {
    let fake = fake().await;
    let hook = fake.add_hook("octo/hello", HookSpec::new(fake.blackhole_url()));
    fake.emit_many("octo/hello", "issues", (0..150).map(|n| json!({"n": n})).collect()).await;
    let receiver = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let mut settings = settings(state.path());
    settings.since = Some(Duration::from_secs(3600));
    fake.faults().set_server_error_rate(0.2);
    fake.faults().secondary_limit(5, Duration::from_millis(200));
    let running =
        Running::start(client(&fake), vec![rule(&["octo/hello"], target(&receiver), &fake.blackhole_url())], settings);
    eventually("150 deliveries", async || receiver.count() >= 150).await;
    fake.emit_many("octo/hello", "issues", (150..170).map(|n| json!({"n": n})).collect()).await;
    eventually("170 deliveries", async || receiver.count() >= 170).await;
    running.polled(3).await;
    running.stop().await.unwrap();
    assert!(fake.stats().server_errors > 0 && fake.stats().secondary_limited > 0, "{:?}", fake.stats());
    let guids: Vec<String> = receiver.received().iter().map(|r| r.guid().to_string()).collect();
    assert_eq!(guids, oldest_first(&fake, hook));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_organization_hooks() {
    let fake = fake().await;
    fake.add_org("acme");
    fake.add_repo("acme/widgets");
    let hook = fake.add_hook("acme", HookSpec::new(fake.blackhole_url()));
    let receiver = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let running = Running::start(
        client(&fake),
        vec![rule(&["acme"], target(&receiver), &fake.blackhole_url())],
        settings(state.path()),
    );
    running.polled(1).await;
    fake.emit("acme/widgets", "push", json!({"ref": "refs/heads/main"})).await;
    eventually("the org delivery", async || receiver.count() == 1).await;
    running.stop().await.unwrap();
    let request = &receiver.received()[0];
    assert_eq!(request.header("x-github-hook-id"), Some(hook.to_string().as_str()));
    assert!(signed(request));
    let ledgers = relay::ledger::dir(state.path(), &fake.api_url());
    assert!(relay::ledger::FileLedger::path(&ledgers, &HookRef::Org { org: "acme".into(), id: hook }).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_repositories_in_one_run_and_a_failed_source_does_not_stop_the_others() {
    let fake = fake().await;
    let a = fake.add_hook("octo/a", HookSpec::new(fake.blackhole_url()));
    let b = fake.add_hook("octo/b", HookSpec::new(fake.blackhole_url()));
    let receiver = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let running = Running::start(
        client(&fake),
        vec![rule(&["octo/a", "octo/missing", "octo/b"], target(&receiver), &fake.blackhole_url())],
        settings(state.path()),
    );
    eventually("ready", async || running.count(|e| matches!(e, Event::Ready { sources: 2, .. })) == 1).await;
    running.polled(2).await;
    let failed: Vec<_> = running
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::SourceFailed { source, error } => Some((source, error)),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "octo/missing");
    assert!(failed[0].1.contains("octo/missing") && !failed[0].1.contains('\n'), "{}", failed[0].1);
    for n in 0..3 {
        fake.emit("octo/a", "push", json!({"n": n})).await;
        fake.emit("octo/b", "push", json!({"n": n})).await;
    }
    eventually("six deliveries", async || receiver.count() == 6).await;
    running.polled(3).await;
    running.stop().await.unwrap();
    let by_hook = |id: u64| {
        receiver.received().iter().filter(|r| r.header("x-github-hook-id") == Some(id.to_string().as_str())).count()
    };
    assert_eq!((by_hook(a), by_hook(b)), (3, 3));
    assert_eq!(receiver.count(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_source_at_all_is_an_error() {
    let fake = fake().await;
    let receiver = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let running = Running::start(
        client(&fake),
        vec![rule(&["octo/missing", "ghost-org"], target(&receiver), &fake.blackhole_url())],
        settings(state.path()),
    );
    let result = tokio::time::timeout(PATIENCE, running.task).await.unwrap().unwrap();
    assert!(matches!(result, Err(relay::Error::NoSources(_))), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_a_restart_and_catches_up_on_what_arrived_meanwhile() {
    let fake = fake().await;
    let hook = fake.add_hook("octo/hello", HookSpec::new(fake.blackhole_url()));
    fake.emit("octo/hello", "push", json!({"before": "start"})).await;
    let receiver = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let rules = vec![rule(&["octo/hello"], target(&receiver), &fake.blackhole_url())];

    let running = Running::start(client(&fake), rules.clone(), settings(state.path()));
    running.polled(1).await;
    fake.emit_many("octo/hello", "issues", (0..5).map(|n| json!({"n": n})).collect()).await;
    eventually("five", async || receiver.count() == 5).await;
    running.stop().await.unwrap();

    // While stopped: 120 more, more than a page.
    fake.emit_many("octo/hello", "issues", (5..125).map(|n| json!({"n": n})).collect()).await;
    let running = Running::start(client(&fake), rules, settings(state.path()));
    eventually("all", async || receiver.count() >= 125).await;
    running.polled(3).await;
    running.stop().await.unwrap();

    let guids: Vec<String> = receiver.received().iter().map(|r| r.guid().to_string()).collect();
    let mut expected = oldest_first(&fake, hook);
    expected.remove(0); // from before the first start
    assert_eq!(guids, expected);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_is_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let fake = fake().await;
    let hook = fake.add_hook("octo/hello", HookSpec::new(fake.blackhole_url()));
    let receiver = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().join("nested/state");
    let running = Running::start(
        client(&fake),
        vec![rule(&["octo/hello"], target(&receiver), &fake.blackhole_url())],
        settings(&dir),
    );
    running.polled(1).await;
    running.stop().await.unwrap();
    let ledgers = relay::ledger::dir(&dir, &fake.api_url());
    let path = relay::ledger::FileLedger::path(
        &ledgers,
        &HookRef::Repo { owner: "octo".into(), repo: "hello".into(), id: hook },
    );
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&ledgers).unwrap().permissions().mode() & 0o777, 0o700);
}

#[test]
fn a_malformed_rule_gets_one_clear_error() {
    let err = Rule::from_json(r#"{"from":["octo/hello"],"to":"localhost:3000","hook":{"config":{"ur":"x"}}}"#)
        .unwrap_err()
        .to_string();
    assert_eq!(err.lines().count(), 1);
    assert!(err.starts_with("invalid rule: unknown field `ur`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_stops_the_run_with_the_github_error() {
    let fake = fake().await;
    fake.add_hook("octo/hello", HookSpec::new(fake.blackhole_url()));
    fake.revoke_token(TOKEN);
    let receiver = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let running = Running::start(
        client(&fake),
        vec![rule(&["octo/hello", "octo/other"], target(&receiver), &fake.blackhole_url())],
        settings(state.path()),
    );
    let result = tokio::time::timeout(PATIENCE, running.task).await.unwrap().unwrap();
    let error = result.unwrap_err();
    assert!(matches!(error, relay::Error::GitHub(github::Error::Unauthorized)), "{error:?}");
    // One level each (hyper's rule): the variant says the GitHub sentence, and its source is that error's
    // cause (none for a 401), so a caller joining the chain says the sentence once.
    assert_eq!(error.to_string(), github::Error::Unauthorized.to_string());
    assert!(std::error::Error::source(&error).is_none(), "{:?}", std::error::Error::source(&error));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_refused_on_every_poll_for_the_whole_window_stops_the_run_with_the_403() {
    let fake = fake().await;
    fake.add_hook("octo/hello", HookSpec::new(fake.blackhole_url()));
    let receiver = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let mut settings = settings(state.path());
    settings.forbidden_for = Duration::from_millis(500);
    let running =
        Running::start(client(&fake), vec![rule(&["octo/hello"], target(&receiver), &fake.blackhole_url())], settings);
    running.polled(1).await;
    // The scope is taken away mid-run: every poll is now refused.
    fake.add_token(TOKEN, "public_repo");
    let result = tokio::time::timeout(PATIENCE, running.task).await.expect("the run stops by itself").unwrap();
    let error = result.unwrap_err();
    assert!(matches!(error, relay::Error::GitHub(github::Error::Forbidden { .. })), "{error:?}");
}

/// The shared ledger's rules against a real `redis-server`: claims are exclusive and expire,
/// done is seen by every replica, and the floor never passes a claimed delivery. Unix only: Redis
/// ships no Windows build (CI's Windows job runs the rest of this file).
#[cfg(unix)]
mod shared_ledger {
    use chrono::{DateTime, TimeDelta, Utc};
    use relay::ledger::{Claim, Location, PushClaim, SharedLedger, WINDOW};
    use relay::{LedgerFix, Warning};
    use testkit::RedisServer;

    use super::*;

    const INSTANCE: &str = "127.0.0.1-1";

    fn hook() -> HookRef {
        HookRef::Repo { owner: "o".into(), repo: "r".into(), id: 7 }
    }

    async fn replicas(redis: &RedisServer) -> (SharedLedger, SharedLedger) {
        let connection = Location::parse(&redis.url()).unwrap().connect(Duration::from_secs(5)).await.unwrap();
        (connection.hook(INSTANCE, &hook(), "replica-a"), connection.hook(INSTANCE, &hook(), "replica-b"))
    }

    /// A listed delivery as a claim offers it: its id, `delivered_at` and guid.
    fn offer((id, t): (u64, DateTime<Utc>)) -> (u64, DateTime<Utc>, &'static str) {
        (id, t, "")
    }

    fn minutes_ago(minutes: i64) -> DateTime<Utc> {
        // Whole seconds, as GitHub's delivered_at.
        DateTime::from_timestamp(Utc::now().timestamp() - minutes * 60, 0).unwrap()
    }

    #[tokio::test]
    #[ignore = "needs redis-server; scripts/test runs it"]
    async fn a_claim_is_one_replicas_until_it_expires_and_then_another_takes_it() {
        let redis = RedisServer::start();
        let (a, b) = replicas(&redis).await;
        let (a, b) = (a.with_claim_ttl(Duration::from_millis(500)), b.with_claim_ttl(Duration::from_millis(500)));
        let origin = minutes_ago(60);
        a.create(origin, &[], Utc::now()).await.unwrap();
        let item = (1, minutes_ago(30));
        assert_eq!(a.claim(&[offer(item)], 10).await.unwrap().0, [Claim::Claimed]);
        assert_eq!(b.claim(&[offer(item)], 10).await.unwrap().0, [Claim::Taken], "held by a");
        // Renewed, it stays a's past its first TTL.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(a.renew(&["d:1".to_string()]).await.unwrap(), [true]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(b.claim(&[offer(item)], 10).await.unwrap().0, [Claim::Taken], "renewed by a");
        // a dies: its claim expires and b takes the delivery over.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while b.claim(&[offer(item)], 10).await.unwrap().0 != [Claim::Claimed] {
            assert!(tokio::time::Instant::now() < deadline, "a's claim never expired");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(a.renew(&["d:1".to_string()]).await.unwrap(), [false], "a learns it lost the claim");
        let (ours, _) = b.done(1, item.1, None, None).await.unwrap();
        assert!(ours);
    }

    #[tokio::test]
    #[ignore = "needs redis-server; scripts/test runs it"]
    async fn done_is_seen_by_every_replica_and_claims_stop_at_the_asked_count() {
        let redis = RedisServer::start();
        let (a, b) = replicas(&redis).await;
        a.create(minutes_ago(60), &[], Utc::now()).await.unwrap();
        let items: Vec<_> = (1..=5).map(|id| (id, minutes_ago(50 - id as i64))).collect();
        let (claims, _) = a.claim(&items.iter().copied().map(offer).collect::<Vec<_>>(), 2).await.unwrap();
        assert_eq!(claims, [Claim::Claimed, Claim::Claimed, Claim::Untried, Claim::Untried, Claim::Untried]);
        let (claims, _) = b.claim(&items.iter().copied().map(offer).collect::<Vec<_>>(), 10).await.unwrap();
        assert_eq!(claims, [Claim::Taken, Claim::Taken, Claim::Claimed, Claim::Claimed, Claim::Claimed]);
        a.done(1, items[0].1, None, None).await.unwrap();
        assert!(b.is_done(1).await.unwrap());
        let (claims, _) = b.claim(&[offer(items[0])], 10).await.unwrap();
        assert_eq!(claims, [Claim::Done], "what a forwarded, b never fetches");
        // A replica starting later finds the state the first one made.
        let state = b.state().await.unwrap().unwrap();
        assert_eq!(state.origin, minutes_ago(60));
        assert_eq!(b.create(minutes_ago(1), &[], Utc::now()).await.unwrap().origin, minutes_ago(60));
    }

    #[tokio::test]
    #[ignore = "needs redis-server; scripts/test runs it"]
    async fn the_floor_never_passes_a_delivery_claimed_and_not_done() {
        let redis = RedisServer::start();
        let (a, b) = replicas(&redis).await;
        a.create(minutes_ago(120), &[], Utc::now()).await.unwrap();
        let window = TimeDelta::from_std(WINDOW).unwrap();
        let old = (1, minutes_ago(100));
        let new = (2, minutes_ago(1));
        assert_eq!(a.claim(&[offer(old)], 10).await.unwrap().0, [Claim::Claimed]);
        assert_eq!(b.claim(&[offer(new)], 10).await.unwrap().0, [Claim::Claimed]);
        // b's delivery alone would move the floor to a window before it, past a's.
        let (_, floor) = b.done(2, new.1, None, None).await.unwrap();
        assert!(floor <= old.1, "the floor {floor} passed the claimed delivery at {}", old.1);
        // Once a's is done too, the floor moves up to a window before the newest.
        let (_, floor) = a.done(1, old.1, None, None).await.unwrap();
        assert_eq!(floor, new.1 - window);
        assert_eq!(b.state().await.unwrap().unwrap().floor, floor, "one floor for every replica");
        assert_eq!(a.claim(&[offer(old)], 10).await.unwrap().0, [Claim::Done], "below the floor is handled");
    }

    /// The key `name` of [`hook`]'s ledger.
    fn key(name: &str) -> String {
        format!("hookfwd:{{{INSTANCE}:{}}}:{name}", hook().key())
    }

    #[tokio::test]
    #[ignore = "needs redis-server; scripts/test runs it"]
    async fn a_floor_in_the_future_missing_or_below_the_origin_is_fixed_with_one_warning_each() {
        let redis = RedisServer::start();
        let (a, _) = replicas(&redis).await;
        let origin = minutes_ago(60);
        a.create(origin, &[], Utc::now()).await.unwrap();
        // In the year 5138: every delivery until then would look handled.
        redis.command(&format!("SET {} 99999999999999999", key("floor"))).unwrap();
        let (claims, floor) = a.claim(&[offer((1, minutes_ago(1)))], 10).await.unwrap();
        assert_eq!(claims, [Claim::Claimed], "a delivery of a minute ago is not handled");
        assert!(origin < floor && floor < Utc::now(), "{floor}");
        let warnings = a.take_warnings();
        assert!(
            matches!(&warnings[..], [Warning::LedgerFloorInFuture { ledger, until }]
                if ledger.contains(&key("floor")) && until.timestamp_micros() == 99999999999999999),
            "{warnings:?}"
        );
        a.claim(&[offer((2, minutes_ago(1)))], 10).await.unwrap();
        assert!(a.take_warnings().is_empty(), "said once");
        // Deleted: set again, and never before where the ledger started.
        redis.command(&format!("DEL {}", key("floor"))).unwrap();
        let state = a.state().await.unwrap().unwrap();
        assert!(state.floor >= origin, "{state:?}");
        let warnings = a.take_warnings();
        assert!(
            matches!(&warnings[..], [Warning::SharedLedgerFixed { key: said, fix: LedgerFix::FloorMissing { .. }, .. }]
                if *said == key("floor")),
            "{warnings:?}"
        );
        // Below the origin: moved up to it.
        let below = (origin - TimeDelta::hours(1)).timestamp_micros();
        redis.command(&format!("SET {} {below}", key("floor"))).unwrap();
        assert_eq!(a.state().await.unwrap().unwrap().floor, origin);
        let warnings = a.take_warnings();
        assert!(
            matches!(&warnings[..], [Warning::SharedLedgerFixed { fix: LedgerFix::FloorBelowOrigin { set_to, .. }, .. }]
                if *set_to == origin),
            "{warnings:?}"
        );
        // An origin in the future is moved back too, never past the floor (which was not).
        redis.command(&format!("SET {} 99999999999999999", key("origin"))).unwrap();
        let state = a.state().await.unwrap().unwrap();
        assert_eq!((state.origin, state.floor), (origin, origin));
        let warnings = a.take_warnings();
        assert!(matches!(&warnings[..], [Warning::LedgerFloorInFuture { .. }]), "{warnings:?}");
    }

    #[tokio::test]
    #[ignore = "needs redis-server; scripts/test runs it"]
    async fn a_value_of_the_wrong_type_is_reset_with_a_warning_naming_its_key() {
        let redis = RedisServer::start();
        let (a, _) = replicas(&redis).await;
        a.create(minutes_ago(60), &[], Utc::now()).await.unwrap();
        redis.command(&format!("SET {} not-a-sorted-set", key("done"))).unwrap();
        redis.command(&format!("DEL {}", key("floor"))).unwrap();
        redis.command(&format!("HSET {} a b", key("floor"))).unwrap();
        redis.command(&format!("SET {} soon", key("newest"))).unwrap();
        let (claims, _) = a.claim(&[offer((1, minutes_ago(1)))], 10).await.unwrap();
        assert_eq!(claims, [Claim::Claimed], "forwarding goes on");
        a.done(1, minutes_ago(1), None, None).await.unwrap();
        let mut fixed: Vec<(String, String)> = a
            .take_warnings()
            .into_iter()
            .filter_map(|warning| match warning {
                Warning::SharedLedgerFixed { key, fix: LedgerFix::WrongType { found }, .. } => Some((key, found)),
                _ => None,
            })
            .collect();
        fixed.sort();
        let expected = [(key("done"), "string"), (key("floor"), "hash"), (key("newest"), "text")];
        assert_eq!(fixed, expected.map(|(key, found)| (key, found.to_string())));
        assert!(a.is_done(1).await.unwrap());
    }

    #[tokio::test]
    #[ignore = "needs redis-server; scripts/test runs it"]
    async fn a_claim_that_never_expires_is_given_the_ttl_of_a_replica_that_died() {
        let redis = RedisServer::start();
        let (a, _) = replicas(&redis).await;
        let a = a.with_claim_ttl(Duration::from_millis(500));
        a.create(minutes_ago(60), &[], Utc::now()).await.unwrap();
        redis.command(&format!("HSET {} d:1 ghost", key("owners"))).unwrap();
        let item = (1, minutes_ago(1));
        assert_eq!(a.claim(&[offer(item)], 10).await.unwrap().0, [Claim::Taken]);
        let warnings = a.take_warnings();
        assert!(
            matches!(&warnings[..], [Warning::SharedLedgerFixed { key: said, fix: LedgerFix::ClaimNeverExpires { id: 1 }, .. }]
                if *said == key("owners")),
            "{warnings:?}"
        );
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while a.claim(&[offer(item)], 10).await.unwrap().0 != [Claim::Claimed] {
            assert!(tokio::time::Instant::now() < deadline, "the planted claim never expired");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(a.take_warnings().is_empty(), "said once");
    }

    #[tokio::test]
    #[ignore = "needs redis-server; scripts/test runs it"]
    async fn a_pushed_post_is_one_replicas_its_copies_are_dropped_and_its_listed_twin_is_done_with_no_claim() {
        let redis = RedisServer::start();
        let (a, b) = replicas(&redis).await;
        a.create(minutes_ago(60), &[], Utc::now()).await.unwrap();
        let at = minutes_ago(1);
        let first = a.push("boot-1", "guid-1", at, Some("body-1")).await.unwrap().0;
        assert_eq!(first, PushClaim::First);
        // The same POST on b's stream: another replica took it.
        assert_eq!(b.push("boot-1", "guid-1", at, Some("body-1")).await.unwrap().0, PushClaim::Copy);
        // The same guid in another POST (a proxy's retry, or a redelivery): GitHub's list decides.
        assert_eq!(b.push("boot-2", "guid-1", at, Some("body-1")).await.unwrap().0, PushClaim::Seen);
        // The same bytes under another guid: a relabelled copy until GitHub lists that guid.
        assert_eq!(b.push("boot-3", "guid-9", at, Some("body-1")).await.unwrap().0, PushClaim::Seen);
        // Listed while a forwards it: a holds that attempt.
        let listed = (1, at, "guid-1");
        assert_eq!(b.claim(&[listed], 10).await.unwrap().0, [Claim::Taken]);
        assert!(a.pushed("boot-1", "guid-1", at).await.unwrap(), "a's claim held");
        // Forwarded by the stream: the listed attempt is its twin, done with no fetch.
        assert_eq!(b.claim(&[listed], 10).await.unwrap().0, [Claim::Done]);
        assert!(a.is_done(1).await.unwrap());
        // GitHub's redelivery is a new attempt, claimed once.
        let redelivery = (2, minutes_ago(0), "guid-1");
        assert_eq!(a.claim(&[redelivery], 10).await.unwrap().0, [Claim::Claimed]);
        assert_eq!(b.claim(&[redelivery], 10).await.unwrap().0, [Claim::Taken]);
        assert!(a.take_warnings().is_empty() && b.take_warnings().is_empty());
    }

    #[tokio::test]
    #[ignore = "needs redis-server; scripts/test runs it"]
    async fn a_push_whose_replica_died_is_claimed_through_the_api_once_its_lease_ends() {
        let redis = RedisServer::start();
        let (a, b) = replicas(&redis).await;
        let (a, b) = (a.with_claim_ttl(Duration::from_millis(300)), b.with_claim_ttl(Duration::from_millis(300)));
        a.create(minutes_ago(60), &[], Utc::now()).await.unwrap();
        let at = minutes_ago(1);
        assert_eq!(a.push("boot-1", "guid-1", at, None).await.unwrap().0, PushClaim::First);
        // a dies with the bytes: its lease ends, and b fetches the attempt GitHub lists.
        let listed = (1, at, "guid-1");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while b.claim(&[listed], 10).await.unwrap().0 != [Claim::Claimed] {
            assert!(tokio::time::Instant::now() < deadline, "a's push claim never ended");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(a.renew(&["e:boot-1".to_string()]).await.unwrap(), [false], "a learns it lost the claim");
        // b's copy of the same POST, late on its stream, is still a copy.
        assert_eq!(b.push("boot-1", "guid-1", at, None).await.unwrap().0, PushClaim::Copy);
    }

    #[tokio::test]
    #[ignore = "needs redis-server; scripts/test runs it"]
    async fn a_claim_whose_owner_is_gone_and_never_listed_again_stops_holding_the_floor() {
        let redis = RedisServer::start();
        let (a, b) = replicas(&redis).await;
        let (a, b) = (a.with_claim_ttl(Duration::from_millis(100)), b.with_claim_ttl(Duration::from_millis(100)));
        a.create(minutes_ago(120), &[], Utc::now()).await.unwrap();
        let window = TimeDelta::from_std(WINDOW).unwrap();
        let old = (1, minutes_ago(100));
        let new = (2, minutes_ago(1));
        // a claims one, dies, and GitHub never lists it again.
        assert_eq!(a.claim(&[offer(old)], 10).await.unwrap().0, [Claim::Claimed]);
        assert_eq!(b.claim(&[offer(new)], 10).await.unwrap().0, [Claim::Claimed]);
        let (_, floor) = b.done(2, new.1, None, None).await.unwrap();
        assert!(floor <= old.1, "the floor {floor} passed a claim still in its lease");
        // Six leases after it ended (0.6 s here, 3 minutes in production) it is released.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let (_, floor) = b.claim(&[], 10).await.unwrap();
            if floor == new.1 - window {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the floor stayed at {floor}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(redis.command(&format!("ZCARD {}", key("claimed"))).unwrap().trim(), ":0");
    }

    #[test]
    fn a_ledger_url_is_checked_and_its_password_never_shown() {
        for (url, says) in [
            ("mysql://x", "only redis://"),
            ("redis://", "names no host"),
            ("redis://host:6379/zero", "must be a number"),
            ("not a url", "not a URL"),
        ] {
            let error = Location::parse(url).err().unwrap_or_else(|| panic!("{url} was accepted")).to_string();
            assert!(error.contains(says), "{url}: {error}");
        }
        let error = Location::parse("mysql://user:hunter2@db/0").err().unwrap().to_string();
        assert!(!error.contains("hunter2") && error.contains("***"), "{error}");
        // Typos that make it no URL at all still hide whatever stands before the `@`.
        for (typo, shown) in [
            ("redis//user:hunter2@db:6379/0", "redis//***@db:6379/0"),
            ("redis:/user:hunter2@db", "redis:/***@db"),
            ("user:hunter2@db", "user:***@db"),
            ("hunter2@db", "***@db"),
            ("redis:user:hunter2@db", "redis:***@db"),
        ] {
            let error = Location::parse(typo).err().unwrap().to_string();
            assert!(error.contains(shown) && !error.contains("hunter2"), "{typo}: {error}");
        }
        let location = Location::parse("redis://:hunter2@127.0.0.1:6379/3").unwrap();
        assert_eq!(location.to_string(), "redis://:***@127.0.0.1:6379/3");
        assert!(!format!("{location:?}").contains("hunter2"));
    }
}

/// One token's GitHub budget shared by replicas in a real `redis-server` (`RedisPace`): the
/// replicas' calls together keep to the pace, other credentials keep their own budget, and while
/// Redis cannot be reached each replica paces alone at a share, said once.
#[cfg(unix)]
mod shared_pace {
    use github::{Pace, SharedPace, Turn};
    use relay::Warning;
    use relay::ledger::{FALLBACK_SHARE, Location, RedisPace};
    use testkit::RedisServer;
    use tokio::time::Instant;

    use super::*;

    const INSTANCE: &str = "127.0.0.1-1";
    const ENDPOINT: &str = "GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries/{delivery_id}";

    /// A replica's pacer on its own connection, for the credentials `identity`.
    async fn replica(redis: &RedisServer, identity: &str, name: &str, events: &mpsc::Sender<Event>) -> RedisPace {
        let connection = Location::parse(&redis.url()).unwrap().connect(Duration::from_secs(5)).await.unwrap();
        RedisPace::new(&connection, INSTANCE, identity, name, events)
    }

    /// The moments `calls` calls at once on [`ENDPOINT`] may go: now plus each one's wait.
    async fn turns(pacer: &RedisPace, pace: Pace, calls: usize) -> Vec<Instant> {
        let calls = (0..calls).map(|_| async { Instant::now() + after(pacer.reserve(ENDPOINT, 1, pace).await) });
        futures::future::join_all(calls).await
    }

    /// The wait of a turn that Redis gave.
    fn after(turn: Turn) -> Duration {
        match turn {
            Turn::After(wait) => wait,
            Turn::Alone { share } => panic!("Redis answers, yet the pacer paces alone at 1/{share}"),
        }
    }

    #[tokio::test]
    #[ignore = "needs redis-server; scripts/test runs it"]
    async fn two_replicas_on_one_token_together_spend_no_more_than_the_limit_in_a_minute() {
        let redis = RedisServer::start();
        let (events, _keep) = mpsc::channel(8);
        let a = replica(&redis, "one-token", "replica-a", &events).await;
        let b = replica(&redis, "one-token", "replica-b", &events).await;
        let pace = Pace::under(120, 100);
        // Each asks for a turn as often as anyone could: four minutes' worth of the limit in all,
        // at once. A turn is the moment its call may go: now plus the wait.
        let start = Instant::now();
        let (turns_a, turns_b) = tokio::join!(turns(&a, pace, 240), turns(&b, pace, 240));
        let in_first_minute =
            |turns: &[Instant]| turns.iter().filter(|at| **at < start + Duration::from_secs(60)).count();
        let (first_a, first_b) = (in_first_minute(&turns_a), in_first_minute(&turns_b));
        assert!(first_a + first_b <= pace.limit as usize, "{first_a} + {first_b} turns in the first minute");
        // And the budget is spent, by both: not one replica starved, nor the pace slowed to nothing.
        assert!(first_a + first_b >= pace.per_minute as usize, "{first_a} + {first_b}");
        assert!(first_a > 0 && first_b > 0, "{first_a} and {first_b}");
        // Writes cost five points, on their own endpoint's budget.
        let write = "POST /repos/{owner}/{repo}/hooks";
        let burst: Vec<Duration> =
            futures::future::join_all((0..4).map(|_| a.reserve(write, 5, pace))).await.into_iter().map(after).collect();
        assert_eq!(burst.iter().filter(|wait| wait.is_zero()).count(), pace.burst as usize / 5, "{burst:?}");

        // Other credentials are not slowed by this token's spending.
        let other = replica(&redis, "another-token", "replica-c", &events).await;
        assert_eq!(after(other.reserve(ENDPOINT, 1, pace).await), Duration::ZERO);
        // A key that another program overwrote is started again rather than stopping the pacing.
        let key = format!("hookfwd:pace:{{another-token}}:{INSTANCE}:{ENDPOINT}");
        assert!(redis.command(&format!("DEL \"{key}\"")).is_some_and(|reply| reply.starts_with(":1")));
        assert!(redis.command(&format!("HSET \"{key}\" a b")).is_some_and(|reply| reply.starts_with(":1")));
        assert_eq!(after(other.reserve(ENDPOINT, 1, pace).await), Duration::ZERO);
        // The keys name the credentials by what the client gives (a digest), one hash tag for all of them.
        let keys = redis.command("KEYS *").unwrap_or_default();
        assert!(keys.contains("hookfwd:pace:{one-token}:127.0.0.1-1:replicas"), "{keys}");
    }

    #[tokio::test]
    #[ignore = "needs redis-server; scripts/test runs it"]
    async fn with_redis_gone_each_replica_paces_alone_at_a_share_says_so_once_and_comes_back() {
        let mut redis = RedisServer::start();
        let (events, mut warnings) = mpsc::channel(8);
        let pacers = [
            replica(&redis, "one-token", "replica-a", &events).await,
            replica(&redis, "one-token", "replica-b", &events).await,
            replica(&redis, "one-token", "replica-c", &events).await,
        ];
        let pace = Pace::under(120, 100);
        for pacer in &pacers {
            after(pacer.reserve(ENDPOINT, 1, pace).await);
        }
        let a = &pacers[0];
        // Three replicas were seen, so each paces at a third while Redis is gone.
        after(a.reserve(ENDPOINT, 1, pace).await);
        redis.stop();
        assert_eq!(a.reserve(ENDPOINT, 1, pace).await, Turn::Alone { share: 3 });
        assert_eq!(a.reserve(ENDPOINT, 1, pace).await, Turn::Alone { share: 3 });
        let said = warnings.recv().await.expect("a warning");
        assert!(
            matches!(&said, Event::Warning(Warning::SharedPaceUnreachable { share: 3, url }) if url == &redis.url()),
            "{said:?}"
        );
        // Never fewer than FALLBACK_SHARE: b last saw two replicas (c had not paced yet).
        let b = &pacers[1];
        assert_eq!(b.reserve(ENDPOINT, 1, pace).await, Turn::Alone { share: FALLBACK_SHARE });

        redis.restart();
        eventually("the pacer asking Redis again", async || {
            matches!(a.reserve(ENDPOINT, 1, pace).await, Turn::After(_))
        })
        .await;
        // Once a run: a's next outage is not said again (b, another process, said its own once).
        redis.stop();
        assert!(matches!(a.reserve(ENDPOINT, 1, pace).await, Turn::Alone { .. }));
        drop(events);
        drop(pacers);
        let more: Vec<Event> = std::iter::from_fn(|| warnings.try_recv().ok()).collect();
        assert!(matches!(&more[..], [Event::Warning(Warning::SharedPaceUnreachable { share: 2, .. })]), "{more:?}");
    }
}
