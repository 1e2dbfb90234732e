//! `hookfwd dev` through the real binary: crash recovery, shutdown, output hygiene, bad credentials.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use e2e::{OctokitReceiver, Recorder, Running};
use fake_github::FakeGitHub;
use github::Secret;
use serde_json::{Value, json};

const TOKEN: &str = "ghp_e2eTokenThatMustNeverBePrinted0001";
const SECRET: &str = "local-secret-never-printed-7f3a";
const REPO: &str = "octo-org/hello-world";

/// Starts `hookfwd dev` on the repository against the fake, signing with the local secret.
fn start_dev(fake: &FakeGitHub, target: &str, state: &Path, extra: &[&str]) -> Running {
    start_dev_signing_with(SECRET, fake, target, state, extra)
}

/// Like [`start_dev`], with another local secret.
fn start_dev_signing_with(secret: &str, fake: &FakeGitHub, target: &str, state: &Path, extra: &[&str]) -> Running {
    let hook_url = fake.blackhole_url();
    let api_url = fake.api_url().to_string();
    let mut args: Vec<&OsStr> = ["dev", "--repo", REPO, "--to", target, "--hook-url", &hook_url, "--api-url", &api_url]
        .into_iter()
        .chain(["--interval", "100ms", "--state-dir"])
        .map(OsStr::new)
        .collect();
    args.push(state.as_os_str());
    args.extend(extra.iter().map(OsStr::new));
    Running::hookfwd(args, &[("GITHUB_TOKEN", OsStr::new(TOKEN)), ("HOOKFWD_SECRET", OsStr::new(secret))])
}

async fn fake_with_repo() -> FakeGitHub {
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_repo(REPO);
    fake
}

fn payload(n: usize) -> Value {
    json!({"action": "opened", "number": n, "issue": {"number": n, "title": format!("issue {n}")},
           "repository": {"full_name": REPO}, "sender": {"login": "octocat"}})
}

/// Every recorded request carries a valid signature made with the local secret over the exact body.
fn assert_signed(received: &[e2e::Received]) {
    let secret = Secret::new(SECRET);
    for request in received {
        let signature = request.header("x-hub-signature-256").expect("signed");
        assert!(github::signature::verify_sha256(&secret, &request.body, signature), "bad signature");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn resumes_after_kill_without_loss() {
    let fake = fake_with_repo().await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = start_dev(&fake, &handler.url(), state.path(), &["--json"]);
    let hook: Value = serde_json::from_str(&dev.wait_line("\"type\":\"hook\"").await).unwrap();
    let hook_id = hook["hook_id"].as_u64().expect("hook id");
    dev.wait_line("\"type\":\"ready\"").await;

    // A stream of events; hookfwd is killed in the middle of it, and restarted while it goes on.
    let total = 60;
    for n in 0..20 {
        fake.emit(REPO, "issues", payload(n)).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handler.wait_for(Duration::from_secs(30), "the first forwards", |got| got.len() >= 5).await;
    dev.signal(libc::SIGKILL);
    let code = dev.finish().await.code;
    assert_eq!(code, None, "killed by a signal");
    for n in 20..40 {
        fake.emit(REPO, "issues", payload(n)).await;
    }
    let dev = start_dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    for n in 40..total {
        fake.emit(REPO, "issues", payload(n)).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // GitHub pings a hook it creates; the ping arrived before "ready" and is not part of the stream.
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
    let fake = fake_with_repo().await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = start_dev(&fake, &handler.url(), state.path(), &["-vvv"]);
    dev.wait_line("Ready").await;
    for n in 0..3 {
        fake.emit(REPO, "issues", payload(n)).await;
    }
    let received = handler.wait_for(Duration::from_secs(30), "three forwards", |got| got.len() >= 3).await;
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

    let dev = start_dev(&fake, &handler.url(), state.path(), &[]);
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

    let dev = start_dev(&fake, &handler.url(), state.path(), &[]);
    let e2e::Finished { code, stderr, .. } = dev.finish().await;
    assert_ne!(code, Some(0));
    assert!(stderr.contains(REPO) && stderr.contains("not found"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn octokit_accepts_every_event_relayed_from_github() {
    let fake = fake_with_repo().await;
    let receiver = OctokitReceiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();

    let dev = start_dev(&fake, receiver.url(), state.path(), &["--json"]);
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
    // GitHub's ping for the hook hookfwd created may be relayed too; every relayed delivery is accepted.
    let forwarded = dev.wait_lines("\"type\":\"forwarded\"", guids.len()).await.len();
    receiver.wait_for(Duration::from_secs(10), "every relayed delivery", |lines| lines.len() >= forwarded).await;
    assert!(receiver.rejections().is_empty(), "{:?}", receiver.rejections());
}

#[tokio::test(flavor = "multi_thread")]
async fn octokit_rejects_a_relay_signing_with_another_secret() {
    let fake = fake_with_repo().await;
    let receiver = OctokitReceiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();

    let dev = start_dev_signing_with("not-the-handlers-secret", &fake, receiver.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    fake.emit(REPO, "issues", payload(1)).await;
    let rejected = receiver.wait_for(Duration::from_secs(30), "a rejection", |lines| !lines.is_empty()).await;
    assert_eq!(rejected[0]["type"], "rejected", "{rejected:?}");
    let line: Value = serde_json::from_str(&dev.wait_line("\"type\":\"forwarded\"").await).unwrap();
    assert_eq!(line["status"], 400, "the feed reports the handler's refusal: {line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_hookfwd_on_the_same_hook_and_state_is_refused() {
    let fake = fake_with_repo().await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let first = start_dev(&fake, &handler.url(), state.path(), &["--json"]);
    first.wait_line("\"type\":\"ready\"").await;
    let second = start_dev(&fake, &handler.url(), state.path(), &["--json"]).finish().await;
    assert_eq!(second.code, Some(1), "{}", second.stderr);
    let holder = format!("already being forwarded by hookfwd process {}", first.pid());
    assert!(second.stderr.contains(&holder), "{}", second.stderr);
    assert!(second.stderr.contains("; stop it, or give this run its own --state-dir"), "{}", second.stderr);

    // The first one goes on forwarding, once.
    fake.emit(REPO, "issues", payload(7)).await;
    let received = handler.wait_for(Duration::from_secs(30), "the forward", |got| !got.is_empty()).await;
    assert_signed(&received);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_revoked_while_running_stops_with_exit_3() {
    let fake = fake_with_repo().await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = start_dev(&fake, &handler.url(), state.path(), &[]);
    dev.wait_line("Ready").await;
    fake.revoke_token(TOKEN);
    let e2e::Finished { code, stderr, .. } = dev.finish().await;
    assert_eq!(code, Some(3), "a token that GitHub now rejects cannot recover: {stderr}");
    let sentences: Vec<&str> = stderr.lines().filter(|line| line.starts_with("hookfwd: ")).collect();
    assert_eq!(sentences.len(), 1, "{stderr}");
    assert!(sentences[0].contains("401"), "one sentence names the failure: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains(TOKEN), "{stderr}");
}
