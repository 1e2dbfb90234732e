//! `hookfwd dev` through the real binary: crash recovery, shutdown, output hygiene, bad credentials.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use e2e::{Account, OctokitReceiver, Recorder};
use fake_github::FakeGitHub;
use github::Secret;
use serde_json::Value;

pub(super) const TOKEN: &str = "ghp_e2eTokenThatMustNeverBePrinted0001";
pub(super) const SECRET: &str = "local-secret-never-printed-7f3a";
pub(super) const REPO: &str = "octo-org/hello-world";
pub(super) const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };
pub(super) const SCOPES: &str = "repo, admin:repo_hook";

/// Every recorded request carries a valid signature made with the local secret over the exact body.
pub(super) fn assert_signed(received: &[e2e::Received]) {
    let secret = Secret::new(SECRET);
    for request in received {
        let signature = request.header("x-hub-signature-256").expect("signed");
        assert!(github::signature::verify_sha256(&secret, &request.body, signature), "bad signature");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn resumes_after_kill_without_loss() {
    let fake = ACCOUNT.fake(SCOPES).await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    let hook: Value = serde_json::from_str(&dev.wait_line("\"type\":\"hook\"").await).unwrap();
    let hook_id = hook["hook_id"].as_u64().expect("hook id");
    dev.wait_line("\"type\":\"ready\"").await;

    // A stream of events; hookfwd is killed in the middle of it, and restarted while it goes on.
    let total = 60;
    for n in 0..20 {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handler.wait_for(Duration::from_secs(30), "the first forwards", |got| got.len() >= 5).await;
    dev.signal(libc::SIGKILL);
    let code = dev.finish().await.code;
    assert_eq!(code, None, "killed by a signal");
    for n in 20..40 {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
    }
    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    for n in 40..total {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // GitHub pings a hook it creates; hookfwd forwards that ping too, but it is not part of the stream.
    let emitted: HashSet<String> =
        fake.deliveries(hook_id).into_iter().filter(|d| d.event == "issues").map(|d| d.guid).collect();
    assert_eq!(emitted.len(), total);
    let received = handler
        .wait_for(Duration::from_secs(60), "every delivery", |got| {
            let seen: HashSet<&str> = got.iter().filter_map(|r| r.header("x-github-delivery")).collect();
            emitted.iter().all(|guid| seen.contains(guid.as_str()))
        })
        .await;
    assert_signed(&received);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for request in &received {
        *counts.entry(request.header("x-github-delivery").unwrap()).or_default() += 1;
    }
    let repeated: usize = counts.values().map(|n| n - 1).sum();
    assert!(repeated <= 8, "a crash may repeat at most the deliveries in flight, but {repeated} were repeated");
    drop(dev);
}

#[tokio::test(flavor = "multi_thread")]
async fn stops_on_sigterm_and_never_prints_secrets() {
    let fake = ACCOUNT.fake(SCOPES).await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["-vvv"]);
    dev.wait_line("Ready").await;
    for n in 0..3 {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
    }
    let issues = |got: &[e2e::Received]| got.iter().filter(|r| r.header("x-github-event") == Some("issues")).count();
    let received = handler.wait_for(Duration::from_secs(30), "three forwards", |got| issues(got) >= 3).await;
    assert_signed(&received);
    dev.wait_line("<--").await;

    dev.signal(libc::SIGTERM);
    let e2e::Finished { code, stdout, stderr } = dev.finish().await;
    assert_eq!(code, Some(0), "SIGTERM is a clean stop; stderr: {stderr}");
    assert!(stdout.contains("--> issues.opened"), "the feed shows each delivery: {stdout}");
    assert!(stdout.contains("<-- [200] POST"), "the feed shows the handler's answer: {stdout}");
    for secret in [TOKEN, SECRET] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "a secret was printed");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");

    // The ledger is private to the user.
    use std::os::unix::fs::PermissionsExt;
    // One directory per GitHub instance, named for its API host and port.
    let instance = state.path().join(format!("127.0.0.1-{}", fake.api_url().port().unwrap()));
    let ledgers: Vec<_> = std::fs::read_dir(&instance).unwrap().map(|entry| entry.unwrap().path()).collect();
    assert!(ledgers.iter().any(|path| path.is_file()), "a ledger was written");
    for ledger in &ledgers {
        let mode = std::fs::metadata(ledger).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", ledger.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_token_is_one_sentence_and_exit_3() {
    let fake = FakeGitHub::start().await;
    fake.add_repo(REPO);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &[]);
    let finished = dev.finish().await;
    finished.assert_never_printed(&[TOKEN]);
    let e2e::Finished { code, stdout, stderr } = finished;
    assert_eq!(code, Some(3), "stdout: {stdout}; stderr: {stderr}");
    assert!(stderr.contains("401"), "names the failure: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_repository_is_named_and_fails() {
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &[]);
    let e2e::Finished { code, stderr, .. } = dev.finish().await;
    assert_ne!(code, Some(0));
    assert!(stderr.contains(REPO) && stderr.contains("not found"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn octokit_accepts_every_event_relayed_from_github() {
    let fake = ACCOUNT.fake(SCOPES).await;
    let receiver = OctokitReceiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();

    let dev = ACCOUNT.dev(&fake, receiver.url(), state.path(), &["--json"]);
    let hook: Value = serde_json::from_str(&dev.wait_line("\"type\":\"hook\"").await).unwrap();
    let hook_id = hook["hook_id"].as_u64().expect("hook id");
    dev.wait_line("\"type\":\"ready\"").await;
    let mut guids = Vec::new();
    for event in github::samples::EVENTS {
        let ids = fake.emit_sample(REPO, event).await.expect("a sample for every event");
        assert_eq!(ids.len(), 1, "one hook, one delivery");
        let guid = fake.deliveries(hook_id).into_iter().find(|d| d.id == ids[0]).expect("recorded").guid;
        guids.push((event, guid));
    }
    for (event, guid) in &guids {
        let line = receiver.wait_for_delivery(guid).await;
        assert_eq!(line["type"], "event", "octokit verified and parsed {event}: {line}");
        assert_eq!(line["name"], **event);
    }
    assert!(receiver.rejections().is_empty(), "{:?}", receiver.rejections());
    // GitHub's ping for the hook hookfwd created is relayed too, and accepted like the rest.
    let forwarded = dev.wait_lines("\"type\":\"forwarded\"", guids.len() + 1).await.len();
    receiver.wait_for(Duration::from_secs(10), "every relayed delivery", |lines| lines.len() >= forwarded).await;
    assert!(receiver.rejections().is_empty(), "{:?}", receiver.rejections());
    assert!(receiver.events().iter().any(|event| event["name"] == "ping"), "{:?}", receiver.events());
}

#[tokio::test(flavor = "multi_thread")]
async fn octokit_rejects_a_relay_signing_with_another_secret() {
    let fake = ACCOUNT.fake(SCOPES).await;
    let receiver = OctokitReceiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();

    let dev =
        Account { secret: "not-the-handlers-secret", ..ACCOUNT }.dev(&fake, receiver.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    let rejected = receiver.wait_for(Duration::from_secs(30), "a rejection", |lines| !lines.is_empty()).await;
    assert_eq!(rejected[0]["type"], "rejected", "{rejected:?}");
    let line: Value = serde_json::from_str(&dev.wait_line("\"type\":\"forwarded\"").await).unwrap();
    assert_eq!(line["status"], 400, "the feed reports the handler's refusal: {line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_hookfwd_on_the_same_hook_and_state_is_refused() {
    let fake = ACCOUNT.fake(SCOPES).await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let first = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    first.wait_line("\"type\":\"ready\"").await;
    let second = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]).finish().await;
    assert_eq!(second.code, Some(1), "{}", second.stderr);
    let holder = format!("already being forwarded by hookfwd process {}", first.pid());
    assert!(second.stderr.contains(&holder), "{}", second.stderr);
    assert!(second.stderr.contains("; stop that one first (Ctrl-C in its terminal)"), "{}", second.stderr);

    // The first one goes on forwarding, once.
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(7)).await;
    let received = handler.wait_for(Duration::from_secs(30), "the forward", |got| !got.is_empty()).await;
    assert_signed(&received);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_revoked_while_running_stops_with_exit_3() {
    let fake = ACCOUNT.fake(SCOPES).await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &[]);
    dev.wait_line("Ready").await;
    fake.revoke_token(TOKEN);
    let e2e::Finished { code, stderr, .. } = dev.finish().await;
    assert_eq!(code, Some(3), "a token that GitHub now rejects cannot recover: {stderr}");
    let sentences: Vec<&str> = stderr.lines().filter(|line| line.starts_with("hookfwd: ")).collect();
    assert_eq!(sentences.len(), 1, "{stderr}");
    assert!(sentences[0].contains("401"), "one sentence names the failure: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains(TOKEN), "{stderr}");
}
