//! The newcomer's path through the real binary (issue 12): exit codes for a missing scope, `--events`
//! filtering locally, hooks that lack the asked events, and the handler's timeout.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use e2e::{Recorder, Running};
use fake_github::{FakeGitHub, HookSpec};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_e2eNewcomerTokenNeverPrinted00001";
const REPO: &str = "octo-org/newcomer";
/// Set so that the "no local secret" warning does not mix with the ones under test.
const SECRET: &str = "newcomer-local-secret-never-printed";

/// `hookfwd` with the token and a local secret, the fake's API URL and its own state directory.
fn hookfwd(fake: &FakeGitHub, state: &Path, args: &[&str]) -> Running {
    let api_url = fake.api_url().to_string();
    let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    all.extend([OsStr::new("--api-url"), OsStr::new(&api_url)]);
    if matches!(args.first(), Some(&"dev" | &"wait")) {
        all.extend([OsStr::new("--interval"), OsStr::new("100ms"), OsStr::new("--state-dir"), state.as_os_str()]);
    }
    Running::hookfwd(all, &[("GITHUB_TOKEN", OsStr::new(TOKEN)), ("HOOKFWD_SECRET", OsStr::new(SECRET))])
}

async fn fake_with(scopes: &str) -> FakeGitHub {
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, scopes);
    fake.add_repo(REPO);
    fake
}

/// A hook on the repository delivering `events` to the fake's blackhole URL, as if made by hand.
fn hook_for(fake: &FakeGitHub, events: &[&str]) -> u64 {
    let mut spec = HookSpec::new(fake.blackhole_url());
    spec.events = events.iter().map(|event| event.to_string()).collect();
    fake.add_hook(REPO, spec)
}

fn payload(n: usize) -> Value {
    json!({"action": "opened", "number": n, "repository": {"full_name": REPO}, "sender": {"login": "octocat"}})
}

const SCOPE_SENTENCE: &str = "it needs the `admin:repo_hook` scope (classic token)";

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_the_hook_scope_exits_3_at_start_naming_the_scope() {
    let fake = fake_with("public_repo").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url];
    let finished = hookfwd(&fake, state.path(), &args).finish().await;
    assert_eq!(finished.code, Some(3), "a missing scope is exit 3; stderr: {}", finished.stderr);
    let last = finished.stderr.lines().find(|line| line.starts_with("hookfwd: ")).unwrap_or_default().to_string();
    assert!(last.contains(SCOPE_SENTENCE) && last.contains("has scopes: public_repo"), "{}", finished.stderr);
    assert!(!last.contains("no source could be set up"), "the scope is the one reason: {last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_exits_3_when_the_token_lacks_the_hook_scope() {
    let fake = fake_with("public_repo").await;
    let state = tempfile::tempdir().unwrap();
    let args = ["doctor", "--repo", REPO, "--state-dir", state.path().to_str().unwrap()];
    let finished = hookfwd(&fake, state.path(), &args).finish().await;
    assert_eq!(finished.code, Some(3), "stdout: {}\nstderr: {}", finished.stdout, finished.stderr);
    assert!(finished.stderr.contains(SCOPE_SENTENCE), "{}", finished.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_filter_locally_and_skip_the_others_before_fetching_them() {
    let fake = fake_with("repo, admin:repo_hook").await;
    hook_for(&fake, &["*"]);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--events", "push", "--json"];
    let dev = hookfwd(&fake, state.path(), &args);
    dev.wait_line("\"type\":\"ready\"").await;
    for n in 0..3 {
        fake.emit(REPO, "issues", payload(n)).await;
    }
    fake.emit(REPO, "push", json!({"ref": "refs/heads/main", "repository": {"full_name": REPO}})).await;
    let received = handler.wait_for(Duration::from_secs(30), "the push", |got| !got.is_empty()).await;
    // The issues deliveries were listed before the push, so they were taken (and skipped) first.
    dev.wait_line("\"type\":\"forwarded\"").await;
    drop(dev);
    assert!(received.iter().all(|request| request.header("x-github-event") == Some("push")), "only push goes");
    assert_eq!(fake.stats().get_delivery, 1, "only the push was fetched");
    assert_eq!(handler.received().len(), 1, "the issues deliveries were never forwarded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_without_the_asked_events_is_warned_about_by_name() {
    let fake = fake_with("repo, admin:repo_hook").await;
    let hook_id = hook_for(&fake, &["push"]);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = [
        "dev",
        "--repo",
        REPO,
        "--to",
        &handler.url(),
        "--hook-url",
        &hook_url,
        "--events",
        "push,check_run",
        "--json",
    ];
    let dev = hookfwd(&fake, state.path(), &args);
    let line = dev.wait_line("\"type\":\"warning\"").await;
    let warning: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        warning["message"],
        format!(
            "{REPO} hook {hook_id} is not subscribed to check_run, so GitHub never sends them; add them to the \
             hook's events in its settings"
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_for_an_event_the_hook_is_not_sent_fails_at_once() {
    let fake = fake_with("repo, admin:repo_hook").await;
    let hook_id = hook_for(&fake, &["push"]);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["wait", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--event", "check_run", "-q"];
    // The default --timeout is 120 s: failing at once is what ends this well before it.
    let finished = hookfwd(&fake, state.path(), &args).finish().await;
    assert_eq!(finished.code, Some(1), "{}", finished.stderr);
    let expected = format!(
        "hookfwd: {REPO} hook {hook_id} is not subscribed to check_run, so GitHub never sends it; add it to the \
         hook's events in its settings"
    );
    assert!(finished.stderr.lines().any(|line| line == expected), "{}", finished.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_bounds_each_attempt_at_the_handler() {
    let fake = fake_with("repo, admin:repo_hook").await;
    hook_for(&fake, &["*"]);
    let handler = Recorder::start().await;
    handler.delay(Duration::from_secs(5));
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--timeout", "1s", "--json"];
    let dev = hookfwd(&fake, state.path(), &args);
    dev.wait_line("\"type\":\"ready\"").await;
    fake.emit(REPO, "issues", payload(1)).await;
    let retry: Value = serde_json::from_str(&dev.wait_line("\"type\":\"retry\"").await).unwrap();
    assert_eq!(retry["reason"], "timed out", "{retry}");
    // Once the handler is quick again the delivery goes through.
    handler.delay(Duration::ZERO);
    dev.wait_line("\"type\":\"forwarded\"").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_slower_than_github_allows_is_warned_about_once() {
    let fake = fake_with("repo, admin:repo_hook").await;
    hook_for(&fake, &["*"]);
    let handler = Recorder::start().await;
    handler.delay(Duration::from_millis(10_500));
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--json"];
    let dev = hookfwd(&fake, state.path(), &args);
    dev.wait_line("\"type\":\"ready\"").await;
    fake.emit_many(REPO, "issues", vec![payload(1), payload(2)]).await;
    dev.wait_lines("\"type\":\"forwarded\"", 2).await;
    let warnings: Vec<Value> = dev
        .lines()
        .iter()
        .filter(|line| line.contains("\"type\":\"warning\""))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(warnings.len(), 1, "warned once, not per delivery: {warnings:?}");
    let message = warnings[0]["message"].as_str().unwrap();
    assert!(message.starts_with("the handler took 10."), "{message}");
    assert!(message.ends_with("GitHub gives up after 10 s, so in production this delivery would fail"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_prints_one_summary_line_and_exits_0() {
    let fake = fake_with("repo, admin:repo_hook").await;
    hook_for(&fake, &["*"]);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url];
    let dev = hookfwd(&fake, state.path(), &args);
    dev.wait_line("Ready").await;
    fake.emit_many(REPO, "issues", vec![payload(1), payload(2)]).await;
    dev.wait_lines("<--", 2).await;
    dev.signal(libc::SIGINT);
    let finished = dev.finish().await;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    let last = finished.stdout.lines().last().unwrap_or_default();
    assert_eq!(last, "Stopped: 2 deliveries forwarded; nothing is waiting.", "{}", finished.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_says_what_is_still_waiting_for_next_time() {
    let fake = fake_with("repo, admin:repo_hook").await;
    hook_for(&fake, &["*"]);
    let handler = Recorder::start().await;
    handler.answer(503);
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--json"];
    let dev = hookfwd(&fake, state.path(), &args);
    dev.wait_line("\"type\":\"ready\"").await;
    fake.emit_many(REPO, "issues", vec![payload(1), payload(2)]).await;
    dev.wait_line("\"type\":\"retry\"").await;
    dev.signal(libc::SIGINT);
    let finished = dev.finish().await;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    let last: Value = serde_json::from_str(finished.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last, json!({"type": "stopped", "forwarded": 0, "waiting": 2}), "{}", finished.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_and_its_organization_as_sources_are_warned_about_and_each_line_names_its_source() {
    let fake = fake_with("repo, admin:repo_hook, admin:org_hook").await;
    fake.add_org("octo-org");
    hook_for(&fake, &["*"]);
    fake.add_hook("octo-org", HookSpec::new(fake.blackhole_url()));
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--org", "octo-org", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--json"];
    // Both copies forwarded, so that both lines show which source brought theirs.
    let args = [&args[..], &["--no-dedupe"]].concat();
    let dev = hookfwd(&fake, state.path(), &args);
    let warning: Value = serde_json::from_str(&dev.wait_line("\"type\":\"warning\"").await).unwrap();
    assert_eq!(
        warning["message"],
        format!(
            "{REPO} is a source and so is its organization octo-org: GitHub sends each of its events to both hooks, \
             and with --no-dedupe each is forwarded twice"
        )
    );
    dev.wait_line("\"type\":\"ready\"").await;
    fake.emit(REPO, "issues", payload(1)).await;
    let forwarded = dev.wait_lines("\"type\":\"forwarded\"", 2).await;
    let mut sources: Vec<String> = forwarded
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["source"].as_str().unwrap().to_string())
        .collect();
    sources.sort();
    assert_eq!(sources, ["octo-org", REPO]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inactive_hook_is_a_feed_warning_not_a_log_line() {
    let fake = fake_with("repo, admin:repo_hook").await;
    let mut spec = HookSpec::new(fake.blackhole_url());
    spec.active = false;
    let hook_id = fake.add_hook(REPO, spec);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--json"];
    let dev = hookfwd(&fake, state.path(), &args);
    let warning: Value = serde_json::from_str(&dev.wait_line("\"type\":\"warning\"").await).unwrap();
    assert_eq!(
        warning["message"],
        format!(
            "{REPO} hook {hook_id} is inactive, so GitHub records no deliveries for it; activate it in the \
             repository's webhook settings"
        )
    );
    dev.wait_line("\"type\":\"ready\"").await;
    dev.signal(libc::SIGTERM);
    let finished = dev.finish().await;
    assert_eq!(finished.code, Some(0));
    assert!(finished.stderr.trim().is_empty(), "no raw log lines without -v: {}", finished.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn github_server_errors_are_feed_errors_without_raw_log_lines() {
    let fake = fake_with("repo, admin:repo_hook").await;
    hook_for(&fake, &["*"]);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--json"];
    let dev = hookfwd(&fake, state.path(), &args);
    dev.wait_line("\"type\":\"ready\"").await;
    fake.faults().set_server_error_rate(1.0);
    let error: Value = serde_json::from_str(&dev.wait_line("\"type\":\"error\"").await).unwrap();
    assert!(error["message"].as_str().unwrap().starts_with("listing the deliveries of"), "{error}");
    fake.faults().set_server_error_rate(0.0);
    dev.signal(libc::SIGTERM);
    let finished = dev.finish().await;
    assert_eq!(finished.code, Some(0));
    assert!(finished.stderr.trim().is_empty(), "no raw log lines without -v: {}", finished.stderr);
}
