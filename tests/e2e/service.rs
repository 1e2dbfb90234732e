//! Issue 9's service features through the real `hookfwd` binary and the fake GitHub: the admin
//! listener (`/healthz`, `/readyz`, `/metrics`), `--max-stall`, a taken admin address, and
//! `hookfwd redeliver --failed`.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use e2e::{Account, Recorder, Running};
use fake_github::{FakeGitHub, HookSpec};
use serde_json::Value;

const TOKEN: &str = "ghp_serviceE2eTokenNeverPrinted000091";
const SECRET: &str = "service-e2e-secret-never-printed-4c2a";
const REPO: &str = "svc-org/api";
const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };
/// How long any one wait in these tests may take before it fails rather than hangs.
const PATIENCE: Duration = Duration::from_secs(120);
/// Long enough that every list call of a stalled fake hangs until hookfwd's own timeout.
const HANG: Duration = Duration::from_secs(3600);

/// Writes a one-rule config forwarding [`REPO`] to `target`, as the container's ConfigMap would.
fn config(dir: &Path, fake: &FakeGitHub, target: &str) -> String {
    let path = dir.join("hookfwd.toml");
    let text = format!("[[rule]]\nfrom = [\"{REPO}\"]\nto = \"{target}\"\nhook_url = \"{}\"\n", fake.blackhole_url());
    std::fs::write(&path, text).expect("write the config");
    path.to_str().expect("UTF-8 temporary path").to_string()
}

/// `hookfwd forward --config … --admin-listen ADDR` against the fake, polling every 100 ms, plus `extra`.
fn start_service(fake: &FakeGitHub, dir: &Path, target: &str, admin: SocketAddr, extra: &[&str]) -> Running {
    let (config, api, admin, state) =
        (config(dir, fake, target), fake.api_url().to_string(), admin.to_string(), dir.join("state"));
    let state = state.to_str().expect("UTF-8 temporary path").to_string();
    let mut args = vec!["forward", "--config", &config, "--admin-listen", &admin, "--api-url", &api];
    args.extend(["--interval", "100ms", "--state-dir", &state]);
    args.extend(extra);
    ACCOUNT.hookfwd(&args, &[])
}

/// GETs `path` from the admin listener: the status and the body; `None` while nothing listens.
async fn get(admin: SocketAddr, path: &str) -> Option<(u16, String)> {
    let response = e2e::get(format!("http://{admin}{path}")).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// Asks `path` until `done` holds for the answer, and returns it; fails after [`PATIENCE`].
async fn until_answer(admin: SocketAddr, path: &str, run: &Running, done: impl Fn(u16, &str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some((status, body)) = get(admin, path).await
            && done(status, &body)
        {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never answered as expected; stderr: {}", run.stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the one sample of `metrics` whose line starts with `series` (name and labels).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_200_while_polls_succeed_and_503_naming_the_source_once_github_hangs() {
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook, admin:org_hook").await;
    let handler = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let admin = e2e::free_addr();
    let run = start_service(&fake, dir.path(), &handler.url(), admin, &[]);
    assert_eq!(until_answer(admin, "/healthz", &run, |status, _| status == 200).await, "ok\n");
    let ready = until_answer(admin, "/readyz", &run, |status, _| status == 200).await;
    assert_eq!(serde_json::from_str::<Value>(&ready).unwrap()["ready"], true);

    fake.faults().set_latency(HANG);
    let body = until_answer(admin, "/readyz", &run, |status, _| status == 503).await;
    let body: Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!(body["ready"], false);
    assert_eq!(body["sources"][0]["source"], REPO, "{body}");
    let reason = body["sources"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("no successful poll or stream message for"), "{reason}");
    assert_eq!(get(admin, "/healthz").await.map(|(status, _)| status), Some(200), "alive while unready");

    fake.faults().clear();
    until_answer(admin, "/readyz", &run, |status, _| status == 200).await;
    let finished = stop(run).await;
    assert!(!finished.stderr.contains(TOKEN) && !finished.stdout.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_carry_every_documented_series_and_count_the_deliveries_forwarded() {
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook, admin:org_hook").await;
    let handler = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let admin = e2e::free_addr();
    let run = start_service(&fake, dir.path(), &handler.url(), admin, &[]);
    until_answer(admin, "/readyz", &run, |status, _| status == 200).await;
    let before = until_answer(admin, "/metrics", &run, |status, _| status == 200).await;
    let forwarded = format!("hookfwd_deliveries_forwarded_total{{source=\"{REPO}\",status_class=\"2xx\"}}");
    assert_eq!(sample(&before, &forwarded), None, "nothing forwarded yet:\n{before}");

    for _ in 0..3 {
        fake.emit_sample(REPO, "push").await.expect("a push sample");
    }
    handler.wait_for(PATIENCE, "three pushes", |received| received.len() >= 3).await;
    // The 304 comes from an idle poll after the three were listed, which may follow their forwarding.
    let idle = "hookfwd_github_requests_total{endpoint=\"GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries\",status=\"304\"}";
    let after =
        until_answer(admin, "/metrics", &run, |_, body| sample(body, &forwarded) == Some(3.0) && body.contains(idle))
            .await;
    for series in [
        "hookfwd_forward_duration_seconds_count 3",
        "hookfwd_delivery_lag_seconds_count 3",
        &format!("hookfwd_backlog{{source=\"{REPO}\"}}"),
        "hookfwd_github_rate_limit_remaining ",
        &format!("hookfwd_last_progress_timestamp_seconds{{source=\"{REPO}\"}}"),
        "hookfwd_github_requests_total{endpoint=\"GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries\",status=\"200\"}",
        "hookfwd_github_requests_total{endpoint=\"GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries\",status=\"304\"}",
        "hookfwd_github_requests_total{endpoint=\"GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries/{delivery_id}\",status=\"200\"} 3",
    ] {
        assert!(after.contains(series), "{series} missing from\n{after}");
    }
    for help in ["# TYPE hookfwd_forward_duration_seconds histogram", "# TYPE hookfwd_deliveries_forwarded counter"] {
        assert!(after.contains(help), "{help} missing from\n{after}");
    }
    let progress = format!("hookfwd_last_progress_timestamp_seconds{{source=\"{REPO}\"}}");
    let (first, last) = (sample(&before, &progress).unwrap(), sample(&after, &progress).unwrap());
    assert!(last > first, "progress moves on: {first} then {last}");
    stop(run).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn max_stall_exits_1_with_one_sentence_when_github_hangs() {
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook, admin:org_hook").await;
    let handler = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let run = start_service(&fake, dir.path(), &handler.url(), e2e::free_addr(), &["--json", "--max-stall", "2s"]);
    run.wait_line("\"type\":\"ready\"").await;
    fake.faults().set_latency(HANG);
    let finished = run.finish().await;
    assert_eq!(finished.code, Some(1), "stderr: {}", finished.stderr);
    let line = finished.stderr.lines().find(|line| line.starts_with("hookfwd: ")).expect("an error line");
    assert!(line.contains(REPO) && line.contains("--max-stall 2s") && line.contains("no successful poll"), "{line}");
    assert!(!finished.stderr.contains("panicked"), "{}", finished.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_stall_exits_1_when_the_head_of_the_queue_never_gets_through() {
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook, admin:org_hook").await;
    let handler = Recorder::start().await;
    handler.answer(503);
    let dir = tempfile::tempdir().unwrap();
    let run = start_service(&fake, dir.path(), &handler.url(), e2e::free_addr(), &["--json", "--max-stall", "2s"]);
    run.wait_line("\"type\":\"ready\"").await;
    fake.emit_sample(REPO, "push").await.expect("a push sample");
    let finished = run.finish().await;
    assert_eq!(finished.code, Some(1), "stderr: {}", finished.stderr);
    let line = finished.stderr.lines().find(|line| line.starts_with("hookfwd: ")).expect("an error line");
    assert!(line.contains("forwarded nothing") && line.contains("503"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_address_in_use_is_one_sentence_and_exit_1() {
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook, admin:org_hook").await;
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = start_service(&fake, dir.path(), "http://127.0.0.1:9/", taken.local_addr().unwrap(), &[]);
    let finished = run.finish().await;
    assert_eq!(finished.code, Some(1));
    let addr = taken.local_addr().unwrap();
    assert_eq!(
        finished.stderr.trim(),
        format!("hookfwd: the admin address {addr} is already in use; choose another --admin-listen")
    );
    assert_eq!(fake.stats().list_hooks, 0, "it stops before asking GitHub anything");
}

/// Stops a service run with SIGTERM, as Kubernetes does, and returns what it printed.
async fn stop(run: Running) -> e2e::Finished {
    run.signal(libc::SIGTERM);
    let finished = run.finish().await;
    assert_eq!(finished.code, Some(0), "a SIGTERM ends the service cleanly; stderr: {}", finished.stderr);
    finished
}

/// A fake whose hook on [`REPO`] POSTs to `hook_url`: `fail` pushes that failed (500), then an
/// `issues` delivery that succeeded. Returns the fake, the hook and the failed guids, oldest first.
async fn with_failures(hook_url: &Recorder, fail: usize) -> (FakeGitHub, u64, Vec<String>) {
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_repo(REPO);
    let hook = fake.add_hook(REPO, HookSpec::new(hook_url.url()));
    hook_url.answer(500);
    let mut failed = Vec::new();
    for _ in 0..fail {
        let ids = fake.emit_sample(REPO, "push").await.expect("a push sample");
        failed.push(guid(&fake, hook, ids[0]));
    }
    hook_url.answer(200);
    fake.emit_sample(REPO, "issues").await.expect("an issues sample");
    (fake, hook, failed)
}

fn guid(fake: &FakeGitHub, hook: u64, delivery: u64) -> String {
    fake.deliveries(hook).into_iter().find(|d| d.id == delivery).expect("a recorded delivery").guid
}

/// `hookfwd redeliver --failed --json --repo REPO --hook-url URL` against the fake, plus `extra`.
fn redeliver(fake: &FakeGitHub, hook_url: &Recorder, extra: &[&str]) -> Running {
    let (api, url) = (fake.api_url().to_string(), hook_url.url());
    let mut args = vec!["redeliver", "--failed", "--json", "--repo", REPO, "--hook-url", &url, "--api-url", &api];
    args.extend(extra);
    ACCOUNT.hookfwd(&args, &[])
}

/// The guids of the `redeliver` lines printed.
fn redelivered(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
        .filter(|line| line["type"] == "redeliver")
        .map(|line| line["guid"].as_str().expect("a guid").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn redeliver_dry_run_lists_each_failed_guid_without_asking_github() {
    let hook_url = Recorder::start().await;
    let (fake, hook, failed) = with_failures(&hook_url, 2).await;
    // The first failure was redelivered by hand and got through: its latest attempt succeeded.
    let first = fake.deliveries(hook).into_iter().find(|d| d.guid == failed[0]).unwrap();
    let client = github::Client::new(github::Config {
        api_url: fake.api_url(),
        auth: github::Auth::Token(github::Secret::new(TOKEN)),
        timeout: Duration::from_secs(10),
    })
    .unwrap();
    let hook_ref = github::HookRef::Repo { owner: "svc-org".into(), repo: "api".into(), id: hook };
    client.redeliver(&hook_ref, first.id).await.unwrap();
    let asked_before = fake.stats().redeliver;

    let finished = redeliver(&fake, &hook_url, &["--dry-run", "--since", "1h"]).finish().await;
    assert_eq!(finished.code, Some(0), "stderr: {}", finished.stderr);
    assert_eq!(redelivered(&finished.stdout), [failed[1].clone()]);
    let line: Value = serde_json::from_str(finished.stdout.lines().next().unwrap()).unwrap();
    assert_eq!((line["dry_run"].clone(), line["status"].clone()), (Value::Bool(true), Value::from(500)));
    assert_eq!(fake.stats().redeliver, asked_before, "a dry run asks GitHub for nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn redeliver_asks_once_for_each_failed_guid_and_the_handler_gets_them() {
    let hook_url = Recorder::start().await;
    let (fake, hook, failed) = with_failures(&hook_url, 3).await;
    let received_before = hook_url.received().len();

    let finished = redeliver(&fake, &hook_url, &[]).finish().await;
    assert_eq!(finished.code, Some(0), "stderr: {}", finished.stderr);
    assert_eq!(redelivered(&finished.stdout), failed, "oldest first, each once");
    assert_eq!(fake.stats().redeliver, 3);
    let received = hook_url.wait_for(PATIENCE, "three redeliveries", |r| r.len() >= received_before + 3).await;
    let mut got: Vec<String> =
        received[received_before..].iter().map(|r| r.header("x-github-delivery").unwrap().to_string()).collect();
    got.sort();
    let mut want = failed.clone();
    want.sort();
    assert_eq!(got, want);
    assert!(fake.deliveries(hook).iter().filter(|d| d.redelivery).all(|d| d.status_code == 200));

    // Their latest attempts succeeded: a second run finds nothing to ask for.
    let again = redeliver(&fake, &hook_url, &[]).finish().await;
    assert_eq!((again.code, redelivered(&again.stdout).len()), (Some(0), 0), "stderr: {}", again.stderr);
    assert_eq!(fake.stats().redeliver, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn redeliver_watch_asks_for_new_failures_once_even_when_the_redelivery_fails_again() {
    let hook_url = Recorder::start().await;
    let (fake, hook, failed) = with_failures(&hook_url, 1).await;
    hook_url.answer(500);
    let run = redeliver(&fake, &hook_url, &["--watch", "--interval", "200ms"]);
    run.wait_line(&failed[0]).await;

    let later = fake.emit_sample(REPO, "push").await.expect("a push sample");
    let new_guid = guid(&fake, hook, later[0]);
    run.wait_line(&new_guid).await;
    // Several more looks: both redeliveries failed again, and neither is asked for again.
    let asked = fake.stats().redeliver;
    let from = fake.stats().list_deliveries;
    let deadline = Instant::now() + PATIENCE;
    while fake.stats().list_deliveries < from + 4 {
        assert!(Instant::now() < deadline, "the watch stopped looking; stderr: {}", run.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((asked, fake.stats().redeliver), (2, 2));
    run.signal(libc::SIGTERM);
    let finished = run.finish().await;
    assert_eq!(finished.code, Some(0), "stderr: {}", finished.stderr);
    assert_eq!(redelivered(&finished.stdout), [failed[0].clone(), new_guid]);
}
