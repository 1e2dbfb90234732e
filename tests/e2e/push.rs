//! Push mode through the real binaries: the fake GitHub POSTs to the hook URL on a real
//! `blackhole` with a stream token, `hookfwd dev` subscribes to it, and the `@octokit/webhooks`
//! receiver verifies what arrives. Identity across the two paths, faults of the stream, and
//! what a stream costs in API calls.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use e2e::{Account, Blackhole, OctokitReceiver, Running, eventually};
use fake_github::{FakeGitHub, HookSpec};
use serde_json::Value;

const TOKEN: &str = "ghp_e2ePushTokenThatMustNeverBePrinted01";
const SECRET: &str = "local-secret-never-printed-push-5c2e";
const STREAM_TOKEN: &str = "stream-token-never-printed-9d41";
/// The environment of a `dev` in push mode.
const STREAMING: &[(&str, &str)] = &[("HOOKFWD_STREAM_TOKEN", STREAM_TOKEN)];
const UPSTREAM: &str = "upstream-secret-never-printed-71b0";
const REPO: &str = "octo-org/hello-world";
const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };

async fn fake_with_repo() -> FakeGitHub {
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_repo(REPO);
    fake.set_ping_on_create(false);
    fake
}

fn streaming_blackhole() -> Blackhole {
    Blackhole::start(&["--stream-token", STREAM_TOKEN, "--stream-keepalive", "1s"])
}

/// The `forwarded` JSON lines so far.
fn forwarded(dev: &Running) -> Vec<Value> {
    dev.lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["type"] == "forwarded")
        .collect()
}

/// How many times the receiver accepted each guid.
fn accepted(receiver: &OctokitReceiver) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for event in receiver.events() {
        *counts.entry(event["id"].as_str().unwrap_or_default().to_string()).or_default() += 1;
    }
    counts
}

/// The hook hookfwd created, from its `hook` JSON line.
async fn hook_id(dev: &Running) -> u64 {
    let hook: Value = serde_json::from_str(&dev.wait_line("\"type\":\"hook\"").await).unwrap();
    hook["hook_id"].as_u64().expect("a hook id")
}

/// Waits until every guid in `guids` was accepted by the receiver.
async fn all_arrive(receiver: &OctokitReceiver, guids: &[String], within: Duration) {
    receiver
        .wait_for(within, "every delivery", |_| {
            let seen = accepted(receiver);
            guids.iter().all(|guid| seen.contains_key(guid))
        })
        .await;
}

fn guids(fake: &FakeGitHub, hook: u64) -> Vec<String> {
    let mut guids: Vec<String> = fake.deliveries(hook).into_iter().map(|d| d.guid).collect();
    guids.dedup();
    guids
}

#[tokio::test(flavor = "multi_thread")]
async fn pushed_deliveries_arrive_verified_via_the_stream_without_a_get() {
    let fake = fake_with_repo().await;
    let blackhole = streaming_blackhole();
    let receiver = OctokitReceiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();
    let dev = ACCOUNT.dev_at(&fake, &blackhole.url("/alice"), receiver.url(), state.path(), &["--json"], STREAMING);
    let hook = hook_id(&dev).await;
    let ready: Value = serde_json::from_str(&dev.wait_line("\"type\":\"ready\"").await).unwrap();
    assert_eq!(ready["mode"], "stream");
    dev.wait_line("\"state\":\"up\"").await;

    for n in 0..10 {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
    }
    let emitted = guids(&fake, hook);
    assert_eq!(emitted.len(), 10);
    all_arrive(&receiver, &emitted, Duration::from_secs(20)).await;
    assert!(receiver.rejections().is_empty(), "{:?}", receiver.rejections());
    dev.wait_lines("\"type\":\"forwarded\"", 10).await;
    let lines = forwarded(&dev);
    assert!(lines.iter().all(|line| line["via"] == "stream" && line["status"] == 200), "{lines:?}");
    assert_eq!(fake.stats().get_delivery, 0, "a pushed delivery costs no GET");
    // The stored upstream secret is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let secret = walk(state.path()).into_iter().find(|path| path.extension().is_some_and(|e| e == "secret"));
        let secret = secret.expect("the upstream secret is kept");
        assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
    }
    dev.signal(libc::SIGTERM);
    let finished = dev.finish().await;
    for secret in [TOKEN, SECRET, STREAM_TOKEN] {
        assert!(!finished.stdout.contains(secret) && !finished.stderr.contains(secret), "a secret was printed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_delivery_seen_by_both_paths_is_forwarded_once() {
    let fake = fake_with_repo().await;
    let blackhole = streaming_blackhole();
    let receiver = OctokitReceiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();
    // A safety poll every 200 ms lists every delivery the stream brought, too.
    let dev = ACCOUNT.dev_at(
        &fake,
        &blackhole.url("/alice"),
        receiver.url(),
        state.path(),
        &["--json", "--safety-interval", "200ms"],
        STREAMING,
    );
    let hook = hook_id(&dev).await;
    dev.wait_line("\"state\":\"up\"").await;
    for n in 0..20 {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let emitted = guids(&fake, hook);
    all_arrive(&receiver, &emitted, Duration::from_secs(20)).await;
    // Several safety polls later, still once each.
    let lists = fake.stats().list_deliveries;
    eventually("more safety polls", async || fake.stats().list_deliveries >= lists + 5).await;
    let counts = accepted(&receiver);
    assert!(emitted.iter().all(|guid| counts[guid] == 1), "{counts:?}");
    assert_eq!(fake.stats().get_delivery, 0, "the poll claims what the stream brought, without a GET");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivery_is_forwarded_again_once() {
    let fake = fake_with_repo().await;
    let blackhole = streaming_blackhole();
    let receiver = OctokitReceiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();
    let dev = ACCOUNT.dev_at(
        &fake,
        &blackhole.url("/alice"),
        receiver.url(),
        state.path(),
        &["--json", "--safety-interval", "200ms"],
        STREAMING,
    );
    let hook = hook_id(&dev).await;
    dev.wait_line("\"state\":\"up\"").await;
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    let original = fake.deliveries(hook).pop().expect("a delivery");
    all_arrive(&receiver, std::slice::from_ref(&original.guid), Duration::from_secs(20)).await;

    let api_url = fake.api_url().to_string();
    let hook_url = blackhole.url("/alice");
    let trigger = [
        "trigger",
        "redeliver",
        original.guid.as_str(),
        "--repo",
        REPO,
        "--hook-url",
        &hook_url,
        "--api-url",
        &api_url,
    ];
    let run = Running::hookfwd(trigger, &[("GITHUB_TOKEN", OsStr::new(TOKEN))]).finish().await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    receiver
        .wait_for(Duration::from_secs(20), "the redelivery", |_| accepted(&receiver).get(&original.guid) == Some(&2))
        .await;
    let lists = fake.stats().list_deliveries;
    eventually("more safety polls", async || fake.stats().list_deliveries >= lists + 5).await;
    assert_eq!(accepted(&receiver)[&original.guid], 2, "the original and the redelivery, once each");
    assert_eq!(fake.stats().get_delivery, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blackhole_killed_mid_stream_and_restarted_loses_nothing() {
    let fake = fake_with_repo().await;
    let blackhole = streaming_blackhole();
    let receiver = OctokitReceiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();
    let dev = ACCOUNT.dev_at(&fake, &blackhole.url("/alice"), receiver.url(), state.path(), &["--json"], STREAMING);
    let hook = hook_id(&dev).await;
    dev.wait_line("\"state\":\"up\"").await;
    for n in 0..10 {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
    }
    let killed = blackhole.kill();
    // GitHub records these as failed attempts; only the API can bring them.
    for n in 10..20 {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
    }
    dev.wait_line("\"state\":\"down\"").await;
    let blackhole = Blackhole::restart(killed);
    dev.wait_lines("\"state\":\"up\"", 2).await;
    for n in 20..30 {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
    }
    let emitted = guids(&fake, hook);
    assert_eq!(emitted.len(), 30);
    all_arrive(&receiver, &emitted, Duration::from_secs(30)).await;
    let counts = accepted(&receiver);
    assert!(emitted.iter().all(|guid| counts[guid] == 1), "each once: {counts:?}");
    let lines = forwarded(&dev);
    assert!(lines.iter().any(|line| line["via"] == "api"), "the gap came from the API");
    assert!(lines.iter().any(|line| line["via"] == "stream"));
    drop(blackhole);
}

#[tokio::test(flavor = "multi_thread")]
async fn hookfwd_killed_mid_stream_and_restarted_loses_nothing() {
    let fake = fake_with_repo().await;
    let blackhole = streaming_blackhole();
    let receiver = OctokitReceiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();
    let dev = ACCOUNT.dev_at(&fake, &blackhole.url("/alice"), receiver.url(), state.path(), &["--json"], STREAMING);
    let hook = hook_id(&dev).await;
    dev.wait_line("\"state\":\"up\"").await;
    for n in 0..20 {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    receiver.wait_for(Duration::from_secs(20), "the first forwards", |events| events.len() >= 5).await;
    dev.signal(libc::SIGKILL);
    assert_eq!(dev.finish().await.code, None, "killed by a signal");
    for n in 20..30 {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
    }
    let dev = ACCOUNT.dev_at(&fake, &blackhole.url("/alice"), receiver.url(), state.path(), &["--json"], STREAMING);
    dev.wait_line("\"state\":\"up\"").await;
    for n in 30..40 {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
    }
    let emitted = guids(&fake, hook);
    assert_eq!(emitted.len(), 40);
    all_arrive(&receiver, &emitted, Duration::from_secs(30)).await;
    let repeated: usize = accepted(&receiver).values().map(|n| n - 1).sum();
    assert!(repeated <= 8, "a crash may repeat at most the deliveries in flight, but {repeated} were repeated");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_post_to_the_blackhole_is_never_forwarded() {
    let fake = fake_with_repo().await;
    let blackhole = streaming_blackhole();
    let receiver = OctokitReceiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();
    let dev = ACCOUNT.dev_at(&fake, &blackhole.url("/alice"), receiver.url(), state.path(), &["--json"], STREAMING);
    let hook = hook_id(&dev).await;
    dev.wait_line("\"state\":\"up\"").await;

    // Anything may POST to the blackhole: without GitHub's headers it claims to be no delivery.
    let noise = e2e::http().post(blackhole.url("/alice")).body("{\"zen\":\"a scanner\"}").send().await;
    assert_eq!(noise.unwrap().status(), 200);
    let forged = "0f0f0f0f-dead-beef-0000-000000000001";
    let body = ACCOUNT.issue_opened(666).to_string();
    let sent = e2e::http()
        .post(blackhole.url("/alice"))
        .header("content-type", "application/json")
        .header("x-github-event", "issues")
        .header("x-github-delivery", forged)
        .header("x-github-hook-id", hook.to_string())
        .header("x-hub-signature-256", github::signature::sha256(&github::Secret::new("guessed"), body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200, "the blackhole takes anything");
    let warning = dev.wait_line("does not verify").await;
    assert!(warning.contains("\"type\":\"warning\""), "{warning}");
    // A genuine delivery after it still arrives, so the forged one had its chance to be forwarded.
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    receiver.wait_for(Duration::from_secs(20), "the genuine delivery", |events| !events.is_empty()).await;
    assert!(!accepted(&receiver).contains_key(forged));
    assert!(receiver.rejections().is_empty());
    dev.signal(libc::SIGTERM);
    let finished = dev.finish().await;
    let summary = finished.json().into_iter().find(|line| line["type"] == "summary").expect("a summary line");
    assert_eq!(summary["rejected"], 1, "the forged POST only");
    assert_eq!(finished.stdout.matches("does not verify").count(), 1, "one warning");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_stream_token_is_one_sentence_and_exit_3() {
    let fake = fake_with_repo().await;
    let blackhole = streaming_blackhole();
    let state = tempfile::tempdir().unwrap();
    let wrong = "not-the-token-either-0c1d";
    let env = [("HOOKFWD_STREAM_TOKEN", wrong)];
    let dev = ACCOUNT.dev_at(&fake, &blackhole.url("/alice"), "localhost:9", state.path(), &["--json"], &env);
    let finished = dev.finish().await;
    assert_eq!(finished.code, Some(3), "stderr: {}", finished.stderr);
    let error: Vec<&str> = finished.stderr.lines().filter(|line| line.starts_with("hookfwd:")).collect();
    assert_eq!(error.len(), 1, "{}", finished.stderr);
    assert!(error[0].contains("refused the stream token"), "{}", error[0]);
    assert!(!finished.stdout.contains("\"type\":\"ready\""), "it failed before Ready: {}", finished.stdout);
    assert!(!finished.stderr.contains(wrong) && !finished.stdout.contains(wrong), "the token was printed");
    assert!(!finished.stderr.contains("panicked"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_never_connects_is_connecting_on_the_ready_line_and_warned_about_with_why() {
    let fake = fake_with_repo().await;
    let state = tempfile::tempdir().unwrap();
    // Nothing listens at the hook URL's address.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let hook_url = format!("http://{closed}/alice");
    let dev = ACCOUNT.dev_at(&fake, &hook_url, "localhost:9", state.path(), &[], STREAMING);
    let ready = dev.wait_line("Ready!").await;
    let mode = dev.wait_line("connecting to the stream…").await;
    assert!(!mode.contains("streaming"), "{ready}\n{mode}");
    let warning = dev.wait_line("the stream is not up after").await;
    assert!(warning.contains(&format!("nothing listens at {closed} (connection refused)")), "{warning}");
    dev.signal(libc::SIGTERM);
    let finished = dev.finish().await;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    assert_eq!(finished.stdout.matches("the stream is not up").count(), 1, "said once: {}", finished.stdout);
    finished.assert_never_printed(&[TOKEN, SECRET, STREAM_TOKEN]);

    // A hook URL that serves something else than a blackhole: a web server answering 404.
    let other = e2e::Recorder::start().await;
    other.answer(404);
    let hook_url = other.url();
    let dev = ACCOUNT.dev_at(&fake, &hook_url, "localhost:9", state.path(), &["--json"], STREAMING);
    let warning: Value = serde_json::from_str(&dev.wait_line("\"kind\":\"stream_not_up\"").await).unwrap();
    let message = warning["message"].as_str().unwrap();
    assert!(message.contains("answered 404 where a blackhole streams or answers 200"), "{message}");
    assert!(message.contains("serves something else"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_refused_mid_run_is_a_warning_and_polling_goes_on() {
    let fake = fake_with_repo().await;
    let blackhole = streaming_blackhole();
    let receiver = OctokitReceiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();
    let dev = ACCOUNT.dev_at(&fake, &blackhole.url("/alice"), receiver.url(), state.path(), &["--json"], STREAMING);
    let hook = hook_id(&dev).await;
    dev.wait_line("\"state\":\"up\"").await;
    // The blackhole comes back with the token rotated away from hookfwd's.
    let (addr, _) = blackhole.kill();
    let rotated = vec!["--stream-token".to_string(), "rotated-token-never-printed".to_string()];
    let _blackhole = Blackhole::restart((addr, rotated));
    let warning = dev.wait_line("refused the stream token").await;
    assert!(warning.contains("\"type\":\"warning\""), "{warning}");
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    all_arrive(&receiver, &guids(&fake, hook), Duration::from_secs(20)).await;
    let line = dev.wait_line("\"type\":\"forwarded\"").await;
    assert!(line.contains("\"via\":\"api\""), "{line}");
    dev.signal(libc::SIGTERM);
    let finished = dev.finish().await;
    assert_eq!(finished.code, Some(0), "still running until stopped: {}", finished.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_upstream_secret_deliveries_arrive_via_the_api_promptly() {
    let fake = fake_with_repo().await;
    let blackhole = streaming_blackhole();
    let receiver = OctokitReceiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();
    // A hook hookfwd finds rather than creates: it cannot know the secret GitHub signs with.
    let hook = fake.add_hook(REPO, HookSpec::new(blackhole.url("/bob")).secret(UPSTREAM));
    let dev = ACCOUNT.dev_at(&fake, &blackhole.url("/bob"), receiver.url(), state.path(), &["--json"], STREAMING);
    dev.wait_line("\"state\":\"up\"").await;
    let started = Instant::now();
    for n in 0..5 {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
    }
    let emitted = guids(&fake, hook);
    all_arrive(&receiver, &emitted, Duration::from_secs(20)).await;
    // Promptly: a doorbell, not the 30 s safety poll.
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    let lines = forwarded(&dev);
    assert!(lines.iter().all(|line| line["via"] == "api"), "{lines:?}");
    let counts = accepted(&receiver);
    assert!(emitted.iter().all(|guid| counts[guid] == 1), "{counts:?}");

    // With --hook-secret the same hook streams.
    dev.signal(libc::SIGTERM);
    assert_eq!(dev.finish().await.code, Some(0));
    let env = [("HOOKFWD_STREAM_TOKEN", STREAM_TOKEN), ("HOOKFWD_HOOK_SECRET", UPSTREAM)];
    let dev = ACCOUNT.dev_at(&fake, &blackhole.url("/bob"), receiver.url(), state.path(), &["--json"], &env);
    dev.wait_line("\"state\":\"up\"").await;
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(9)).await;
    let guid = fake.deliveries(hook).pop().expect("the new delivery").guid;
    let line = dev.wait_line(&guid).await;
    assert!(line.contains("\"via\":\"stream\""), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blackhole_that_does_not_stream_is_one_warning_then_polling() {
    let fake = fake_with_repo().await;
    let blackhole = Blackhole::start(&[]);
    let receiver = OctokitReceiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();
    let dev = ACCOUNT.dev_at(&fake, &blackhole.url("/alice"), receiver.url(), state.path(), &["--json"], STREAMING);
    let hook = hook_id(&dev).await;
    let warning = dev.wait_line("does not stream").await;
    assert!(warning.contains("--stream-token"), "{warning}");
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    all_arrive(&receiver, &guids(&fake, hook), Duration::from_secs(20)).await;
    assert_eq!(dev.lines().iter().filter(|line| line.contains("does not stream")).count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_repositories_on_one_hook_path_each_stream_their_own_deliveries() {
    let fake = fake_with_repo().await;
    let other = "octo-org/other";
    fake.add_repo(other);
    let blackhole = streaming_blackhole();
    let receiver = OctokitReceiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();
    // Both hooks deliver to /shared, so both subscriptions see both repositories' POSTs.
    let dev = ACCOUNT.dev_at(
        &fake,
        &blackhole.url("/shared"),
        receiver.url(),
        state.path(),
        &["--json", "--repo", other],
        STREAMING,
    );
    dev.wait_lines("\"state\":\"up\"", 2).await;
    for n in 0..3 {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
        fake.emit(other, "issues", ACCOUNT.issue_opened(n)).await;
    }
    receiver.wait_for(Duration::from_secs(20), "six deliveries", |events| events.len() >= 6).await;
    dev.wait_lines("\"type\":\"forwarded\"", 6).await;
    assert!(forwarded(&dev).iter().all(|line| line["via"] == "stream"));
    dev.signal(libc::SIGTERM);
    let finished = dev.finish().await;
    assert!(!finished.stdout.contains("does not verify"), "another hook's delivery is no forgery");
    let summaries: Vec<Value> = finished.json().into_iter().filter(|line| line["type"] == "summary").collect();
    assert_eq!(summaries.len(), 2);
    assert!(summaries.iter().all(|line| line["rejected"] == 0), "{summaries:?}");
    assert_eq!(accepted(&receiver).values().sum::<usize>(), 6, "each once");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_checks_the_stream_the_token_and_the_upstream_secret() {
    let fake = fake_with_repo().await;
    let blackhole = streaming_blackhole();
    let state = tempfile::tempdir().unwrap();
    fake.add_hook(REPO, HookSpec::new(blackhole.url("/alice")).secret(UPSTREAM));
    let api_url = fake.api_url().to_string();
    let hook_url = blackhole.url("/alice");
    let state_dir = state.path().to_str().unwrap();
    let args =
        ["doctor", "--json", "--repo", REPO, "--hook-url", &hook_url, "--api-url", &api_url, "--state-dir", state_dir];
    let doctor = |env: Vec<(&'static str, &'static str)>| {
        let mut vars = vec![("GITHUB_TOKEN", OsStr::new(TOKEN)), ("HOOKFWD_SECRET", OsStr::new(SECRET))];
        vars.extend(env.into_iter().map(|(name, value)| (name, OsStr::new(value))));
        Running::hookfwd(args, &vars)
    };
    let stream_lines = |finished: &e2e::Finished| -> Vec<Value> {
        let stream = |line: &Value| line["check"] == "stream" || line["check"] == "stream secret";
        finished.json().into_iter().filter(stream).collect()
    };

    let finished = doctor(vec![("HOOKFWD_STREAM_TOKEN", STREAM_TOKEN)]).finish().await;
    assert_eq!(finished.code, Some(0), "{}", finished.stdout);
    let lines = stream_lines(&finished);
    assert!(lines[0]["message"].as_str().unwrap().contains("accepted the token"), "{lines:?}");
    assert_eq!(lines[1]["level"], "warn", "the upstream secret is unknown: {lines:?}");

    let env = vec![("HOOKFWD_STREAM_TOKEN", STREAM_TOKEN), ("HOOKFWD_HOOK_SECRET", UPSTREAM)];
    let finished = doctor(env).finish().await;
    assert!(stream_lines(&finished).iter().all(|line| line["level"] == "pass"), "{}", finished.stdout);

    let finished = doctor(vec![("HOOKFWD_STREAM_TOKEN", "wrong-token-0000")]).finish().await;
    assert_eq!(finished.code, Some(3), "{}", finished.stdout);
    let lines = stream_lines(&finished);
    assert!(lines[0]["message"].as_str().unwrap().contains("refused the stream token"));
    // Only the first cause: with the token refused, whether pushes could be verified is beside the point.
    assert_eq!(lines.len(), 1, "{lines:?}");
    finished.assert_never_printed(&[STREAM_TOKEN, UPSTREAM, SECRET, "wrong-token-0000"]);
}

#[cfg(unix)]
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// A `dev` in push mode that knows the hook's secret, and GitHub's first delivery, forwarded.
struct Signed {
    fake: FakeGitHub,
    _blackhole: Blackhole,
    receiver: OctokitReceiver,
    hook_url: String,
    hook: u64,
    dev: Running,
    _state: tempfile::TempDir,
    original: fake_github::RecordedDelivery,
}

impl Signed {
    async fn start(path: &str) -> Self {
        let fake = fake_with_repo().await;
        let blackhole = streaming_blackhole();
        let receiver = OctokitReceiver::start(SECRET).await;
        let hook_url = blackhole.url(path);
        let hook = fake.add_hook(REPO, HookSpec::new(&hook_url).secret(UPSTREAM));
        let env = [("HOOKFWD_STREAM_TOKEN", STREAM_TOKEN), ("HOOKFWD_HOOK_SECRET", UPSTREAM)];
        let state = tempfile::tempdir().unwrap();
        let flags = ["--json", "--safety-interval", "200ms"];
        let dev = ACCOUNT.dev_at(&fake, &hook_url, receiver.url(), state.path(), &flags, &env);
        dev.wait_line("\"state\":\"up\"").await;
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
        let original = fake.deliveries(hook).pop().expect("a delivery");
        all_arrive(&receiver, std::slice::from_ref(&original.guid), Duration::from_secs(20)).await;
        Signed { fake, _blackhole: blackhole, receiver, hook_url, hook, dev, _state: state, original }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_post_repeated_at_the_blackhole_is_forwarded_once_and_a_redelivery_again_without_a_get() {
    let Signed { fake, _blackhole, receiver, hook_url, hook, dev, _state, original } = Signed::start("/dave").await;

    // A proxy's retry, or a captured request replayed: the same bytes and headers.
    post_edited(&hook_url, &original, |_, value| Some(value.into())).await;
    post_edited(&hook_url, &original, |_, value| Some(value.into())).await;
    // GitHub's own redelivery: the same guid, body and signature, and a new attempt in its record.
    let api_url = fake.api_url().to_string();
    let trigger =
        ["trigger", "redeliver", &original.guid, "--repo", REPO, "--hook-url", &hook_url, "--api-url", &api_url];
    let run = Running::hookfwd(trigger, &[("GITHUB_TOKEN", OsStr::new(TOKEN))]).finish().await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    receiver
        .wait_for(Duration::from_secs(30), "the redelivery", |_| accepted(&receiver).get(&original.guid) == Some(&2))
        .await;
    // A later delivery through the same stream: once it arrived, every repeat before it was seen.
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(2)).await;
    let sentinel = fake.deliveries(hook).pop().expect("a delivery");
    all_arrive(&receiver, std::slice::from_ref(&sentinel.guid), Duration::from_secs(20)).await;
    dev.signal(libc::SIGTERM);
    let finished = dev.finish().await;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    assert_eq!(accepted(&receiver)[&original.guid], 2, "the original and GitHub's redelivery, once each");
    assert_eq!(fake.stats().get_delivery, 0, "the redelivery's bytes came through the stream");
    let summary = finished.json().into_iter().find(|line| line["type"] == "summary").expect("a summary line");
    assert_eq!(summary["repeats"], 2, "{summary}");
}

/// Sends `sent`'s exact body to `url` again, with its headers as `edit` leaves them (`None` drops one).
async fn post_edited(url: &str, sent: &fake_github::RecordedDelivery, edit: impl Fn(&str, &str) -> Option<String>) {
    let mut request = e2e::http().post(url).body(sent.payload.clone());
    for (name, value) in &sent.request_headers {
        if let Some(value) = edit(&name.to_ascii_lowercase(), value) {
            request = request.header(name, value);
        }
    }
    let answer = request.send().await.expect("the blackhole answers");
    assert!(answer.status().is_success(), "{}", answer.status());
}

/// GitHub's signature covers the body only: its bytes relabelled (a new guid and another event) or
/// stripped of the hook id never reach the handler, and a signed delivery GitHub never made is
/// forwarded on the blackhole's word but reported.
#[tokio::test(flavor = "multi_thread")]
async fn relabelled_copies_of_a_signed_delivery_never_reach_the_handler_and_one_github_never_made_is_reported() {
    let Signed { fake, _blackhole, receiver, hook_url, hook, dev, _state, original } = Signed::start("/erin").await;

    let relabelled = "11111111-2222-3333-4444-555555555555";
    post_edited(&hook_url, &original, |name, value| match name {
        "x-github-delivery" => Some(relabelled.into()),
        "x-github-event" => Some("push".into()),
        _ => Some(value.into()),
    })
    .await;
    let no_hook = "66666666-7777-8888-9999-000000000000";
    post_edited(&hook_url, &original, |name, value| match name {
        "x-github-delivery" => Some(no_hook.into()),
        "x-github-hook-id" => None,
        _ => Some(value.into()),
    })
    .await;
    // New bytes signed with the hook's secret under a guid GitHub never used: only its record can tell.
    let unrecorded = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
    let mut made = original.clone();
    made.payload = serde_json::to_vec(&ACCOUNT.issue_opened(99)).unwrap().into();
    let signature = github::signature::sha256(&github::Secret::new(UPSTREAM.to_string()), &made.payload);
    post_edited(&hook_url, &made, |name, value| match name {
        "x-github-delivery" => Some(unrecorded.into()),
        "x-hub-signature-256" => Some(signature.clone()),
        "x-hub-signature" => None,
        _ => Some(value.into()),
    })
    .await;
    all_arrive(&receiver, &[unrecorded.to_string()], Duration::from_secs(20)).await;
    // A later delivery through the same stream: once it arrived, every POST before it was seen.
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(2)).await;
    let sentinel = fake.deliveries(hook).pop().expect("a delivery");
    all_arrive(&receiver, std::slice::from_ref(&sentinel.guid), Duration::from_secs(20)).await;
    let warning: Value = serde_json::from_str(&dev.wait_line("\"kind\":\"unrecorded\"").await).unwrap();
    assert!(warning["message"].as_str().unwrap().contains(unrecorded), "{warning}");
    dev.signal(libc::SIGTERM);
    let finished = dev.finish().await;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    let seen = accepted(&receiver);
    assert_eq!(seen.get(&original.guid), Some(&1), "{seen:?}");
    assert_eq!(seen.get(relabelled), None, "the relabelled copy reached the handler");
    assert_eq!(seen.get(no_hook), None, "the copy without a hook id reached the handler");
    assert_eq!(fake.stats().get_delivery, 0, "{seen:?}");
    let summary = finished.json().into_iter().find(|line| line["type"] == "summary").expect("a summary line");
    assert_eq!(summary["unrecorded"], 1, "{summary}");
    assert_eq!(summary["repeats"], 1, "the relabelled copy: {summary}");
}

/// Anyone can POST to the hook URL: without the hook's secret every push only rings the doorbell,
/// and a flood of them lists no more than once per `--interval`.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_doorbells_lists_at_most_once_per_interval() {
    let fake = fake_with_repo().await;
    let blackhole = streaming_blackhole();
    let receiver = OctokitReceiver::start(SECRET).await;
    let hook_url = blackhole.url("/frank");
    // Made by someone else: hookfwd does not know its secret.
    let hook = fake.add_hook(REPO, HookSpec::new(&hook_url).secret(UPSTREAM));
    let state = tempfile::tempdir().unwrap();
    let dev = ACCOUNT.dev_at(&fake, &hook_url, receiver.url(), state.path(), &["--json"], STREAMING);
    dev.wait_line("\"state\":\"up\"").await;
    let before = fake.stats().list_deliveries;
    let started = Instant::now();
    let client = e2e::http();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let posts = (0..20).map(|n| {
            client
                .post(&hook_url)
                .header("x-github-event", "issues")
                .header("x-github-delivery", format!("00000000-0000-0000-0000-{:012}", sent + n))
                .header("x-github-hook-id", hook.to_string())
                .body("{}")
                .send()
        });
        for answer in futures::future::join_all(posts).await {
            assert!(answer.expect("the blackhole answers").status().is_success());
        }
        sent += 20;
    }
    let (lists, elapsed) = (fake.stats().list_deliveries - before, started.elapsed());
    // `Account::dev_at` polls every 100 ms.
    let most = elapsed.as_millis() as u64 / 100 + 2;
    eprintln!("{sent} doorbells in {elapsed:?} made {lists} lists");
    assert!(lists <= most, "{sent} doorbells in {elapsed:?} made {lists} lists, more than {most}");
    // A genuine delivery still arrives (by the API: the stream's copy cannot be verified).
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    let genuine = fake.deliveries(hook).pop().expect("a delivery");
    all_arrive(&receiver, std::slice::from_ref(&genuine.guid), Duration::from_secs(20)).await;
    assert_eq!(accepted(&receiver).len(), 1, "nothing unverified was forwarded");
}
