//! The newcomer's path through the real binary (issue 12): exit codes for a missing scope, `--events`
//! filtering locally, hooks that lack the asked events, and the handler's timeout.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use e2e::{Account, Recorder, Running, eventually};
use fake_github::{FakeGitHub, HookSpec};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_e2eNewcomerTokenNeverPrinted00001";
const REPO: &str = "octo-org/newcomer";
const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };
/// Set so that the "no local secret" warning does not mix with the ones under test.
const SECRET: &str = "newcomer-local-secret-never-printed";

/// [`Account::against`] the fake, with `dev` and `wait` polling every 100 ms and keeping their state in `state`.
fn run_against(fake: &FakeGitHub, state: &Path, args: &[&str]) -> Running {
    let mut all = args.to_vec();
    if matches!(args.first(), Some(&"dev" | &"wait")) {
        all.extend(["--interval", "100ms", "--state-dir", state.to_str().expect("a UTF-8 temp path")]);
    }
    ACCOUNT.against(fake, &all, &[])
}

/// A hook on the repository delivering `events` to the fake's blackhole URL, as if made by hand.
fn hook_for(fake: &FakeGitHub, events: &[&str]) -> u64 {
    let mut spec = HookSpec::new(fake.blackhole_url());
    spec.events = events.iter().map(|event| event.to_string()).collect();
    fake.add_hook(REPO, spec)
}

const SCOPE_SENTENCE: &str = "it needs the `admin:repo_hook` scope (classic token)";

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_the_hook_scope_exits_3_at_start_naming_the_scope() {
    let fake = ACCOUNT.fake("public_repo").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url];
    let finished = run_against(&fake, state.path(), &args).finish().await;
    assert_eq!(finished.code, Some(3), "a missing scope is exit 3; stderr: {}", finished.stderr);
    let last = finished.stderr.lines().find(|line| line.starts_with("hookfwd: ")).unwrap_or_default().to_string();
    assert!(last.contains(SCOPE_SENTENCE) && last.contains("has scopes: public_repo"), "{}", finished.stderr);
    assert!(!last.contains("no source could be set up"), "the scope is the one reason: {last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_exits_3_when_the_token_lacks_the_hook_scope() {
    let fake = ACCOUNT.fake("public_repo").await;
    let state = tempfile::tempdir().unwrap();
    let args = ["doctor", "--repo", REPO, "--state-dir", state.path().to_str().unwrap()];
    let finished = run_against(&fake, state.path(), &args).finish().await;
    assert_eq!(finished.code, Some(3), "stdout: {}\nstderr: {}", finished.stdout, finished.stderr);
    assert!(finished.stderr.contains(SCOPE_SENTENCE), "{}", finished.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_filter_locally_and_skip_the_others_before_fetching_them() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    hook_for(&fake, &["*"]);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--events", "push", "--json"];
    let dev = run_against(&fake, state.path(), &args);
    dev.wait_line("\"type\":\"ready\"").await;
    for n in 0..3 {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
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
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
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
    let dev = run_against(&fake, state.path(), &args);
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
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let hook_id = hook_for(&fake, &["push"]);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["wait", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--event", "check_run", "-q"];
    // The default --timeout is 120 s: failing at once is what ends this well before it.
    let finished = run_against(&fake, state.path(), &args).finish().await;
    assert_eq!(finished.code, Some(1), "{}", finished.stderr);
    let expected = format!(
        "hookfwd: {REPO} hook {hook_id} is not subscribed to check_run, so GitHub never sends it; add it to the \
         hook's events in its settings"
    );
    assert!(finished.stderr.lines().any(|line| line == expected), "{}", finished.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_bounds_each_attempt_at_the_handler() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    hook_for(&fake, &["*"]);
    let handler = Recorder::start().await;
    handler.delay(Duration::from_secs(5));
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--timeout", "1s", "--json"];
    let dev = run_against(&fake, state.path(), &args);
    dev.wait_line("\"type\":\"ready\"").await;
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    let retry: Value = serde_json::from_str(&dev.wait_line("\"type\":\"retry\"").await).unwrap();
    assert_eq!(retry["reason"], "timed out", "{retry}");
    // Once the handler is quick again the delivery goes through.
    handler.delay(Duration::ZERO);
    dev.wait_line("\"type\":\"forwarded\"").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_slower_than_github_allows_is_warned_about_once() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    hook_for(&fake, &["*"]);
    let handler = Recorder::start().await;
    handler.delay(Duration::from_millis(10_500));
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--json"];
    let dev = run_against(&fake, state.path(), &args);
    dev.wait_line("\"type\":\"ready\"").await;
    fake.emit_many(REPO, "issues", vec![ACCOUNT.issue_opened(1), ACCOUNT.issue_opened(2)]).await;
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
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    hook_for(&fake, &["*"]);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url];
    let dev = run_against(&fake, state.path(), &args);
    dev.wait_line("Ready").await;
    fake.emit_many(REPO, "issues", vec![ACCOUNT.issue_opened(1), ACCOUNT.issue_opened(2)]).await;
    dev.wait_lines("<--", 2).await;
    dev.signal(libc::SIGINT);
    let finished = dev.finish().await;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    let last = finished.stdout.lines().last().unwrap_or_default();
    assert_eq!(last, "Stopped: 2 deliveries forwarded; nothing is waiting.", "{}", finished.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_counts_what_was_forwarded_parked_in_retry_and_queued() {
    for json in [true, false] {
        let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
        hook_for(&fake, &["*"]);
        let handler = Recorder::start().await;
        // A bug only one delivery hits (parked after 3 answers), and one the handler cannot take while it
        // restarts (503: retried until it can): the one behind it waits.
        handler.reject("\"title\":\"issue 2\"", 500, "no such user");
        handler.reject("\"title\":\"issue 3\"", 503, "restarting");
        let state = tempfile::tempdir().unwrap();
        let hook_url = fake.blackhole_url();
        // All made before the start and caught up with --since, so all are queued at `ready`: emitted after it,
        // a poll could list only some of them before Ctrl-C.
        // One at a time, so that they are forwarded in this order.
        for n in 1..=4 {
            fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
        }
        let to = handler.url();
        let mut args = vec!["dev", "--repo", REPO, "--to", &to, "--hook-url", &hook_url, "--since", "1h"];
        if json {
            args.push("--json");
        }
        let dev = run_against(&fake, state.path(), &args);
        let retried = |line: &String| line.contains("\"type\":\"retry\"") || line.contains(": 503, retry");
        let parked = if json { "\"type\":\"parked\"" } else { " parked after 3 attempts" };
        dev.wait_line(parked).await;
        // The first retry of the 503 after the parked one: the third delivery is in retry.
        eventually("the 503 retried", async || {
            let lines = dev.lines();
            let after = lines.iter().position(|line| line.contains(parked))?;
            lines[after..].iter().any(retried).then_some(())
        })
        .await;
        dev.signal(libc::SIGINT);
        let finished = dev.finish().await;
        assert_eq!(finished.code, Some(0), "{}", finished.stderr);
        let last = finished.stdout.lines().last().unwrap_or_default();
        if json {
            let mut last: Value = serde_json::from_str(last).unwrap();
            assert!(last.as_object_mut().unwrap().remove("time").is_some(), "every line has a time");
            let counts = json!({"type": "stopped", "forwarded": 1, "parked": 1, "retrying": 1, "queued": 1});
            assert_eq!(last, counts, "{}", finished.stdout);
        } else {
            let command =
                format!("`hookfwd replay --parked --repo {REPO} --hook-url {hook_url} --to {}`", handler.url());
            let said = format!(
                "Stopped: 1 delivery forwarded; 1 parked: send it again with {command}; 1 in retry and 1 queued will \
                 be caught up next time."
            );
            assert_eq!(last, said, "{}", finished.stdout);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_and_its_organization_as_sources_are_warned_about_and_each_line_names_its_source() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook, admin:org_hook").await;
    fake.add_org("octo-org");
    hook_for(&fake, &["*"]);
    fake.add_hook("octo-org", HookSpec::new(fake.blackhole_url()));
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--org", "octo-org", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--json"];
    // Both copies forwarded, so that both lines show which source brought theirs.
    let args = [&args[..], &["--no-dedupe"]].concat();
    let dev = run_against(&fake, state.path(), &args);
    let warning: Value = serde_json::from_str(&dev.wait_line("\"type\":\"warning\"").await).unwrap();
    assert_eq!(
        warning["message"],
        format!(
            "{REPO} is a source and so is its organization octo-org: GitHub sends each of its events to both hooks, \
             and with --no-dedupe each is forwarded twice"
        )
    );
    dev.wait_line("\"type\":\"ready\"").await;
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
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
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let mut spec = HookSpec::new(fake.blackhole_url());
    spec.active = false;
    let hook_id = fake.add_hook(REPO, spec);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--json"];
    let dev = run_against(&fake, state.path(), &args);
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
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    hook_for(&fake, &["*"]);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--json"];
    let dev = run_against(&fake, state.path(), &args);
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

// Output shape (item 11): guids, where lines go, -q, and the JSON lines scripts read.

#[tokio::test(flavor = "multi_thread")]
async fn the_human_feed_shortens_guids_and_json_keeps_them_whole() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let hook_id = hook_for(&fake, &["*"]);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url];
    let dev = run_against(&fake, state.path(), &args);
    dev.wait_line("Ready").await;
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    let answered = dev.wait_line("<--").await;
    let guid = fake.deliveries(hook_id)[0].guid.clone();
    assert!(answered.contains(&format!("[{}…]", &guid[..8])), "{answered}");
    let delivering = dev.wait_line("-->").await;
    assert!(delivering.contains(&format!("[{}…]", &guid[..8])), "{delivering}");
    assert!(!dev.lines().join("\n").contains(&guid), "the whole guid is for --json: {:?}", dev.lines());
    // Stopped as a person stops it, so the ledger holds the first delivery and the next run skips it.
    dev.signal(libc::SIGINT);
    assert_eq!(dev.finish().await.code, Some(0));

    let json = run_against(
        &fake,
        state.path(),
        &["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--json"],
    );
    json.wait_line("\"type\":\"ready\"").await;
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(2)).await;
    let forwarded: Value = serde_json::from_str(&json.wait_line("\"type\":\"forwarded\"").await).unwrap();
    assert_eq!(forwarded["guid"], fake.deliveries(hook_id)[1].guid, "{forwarded}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_feed_line_goes_to_stdout_when_it_is_not_a_terminal() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    hook_for(&fake, &["issues"]);
    let handler = Recorder::start().await;
    handler.answer(500);
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--events", "issues,check_run"];
    let dev = run_against(&fake, state.path(), &args);
    dev.wait_line("Ready").await;
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    dev.wait_line("<-- [500]").await;
    dev.wait_line(": 500, retry 1 in").await;
    dev.signal(libc::SIGINT);
    let finished = dev.finish().await;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    // The warning, the rejection, its retry and the stop line are all feed lines, in order on stdout.
    let warning = finished.stdout.lines().position(|line| line.contains("is not subscribed to check_run"));
    let rejected = finished.stdout.lines().position(|line| line.contains("<-- [500]"));
    assert!(warning.is_some() && rejected.is_some() && warning < rejected, "{}", finished.stdout);
    assert!(
        finished.stdout.lines().last().unwrap().starts_with("Stopped: 0 deliveries forwarded"),
        "{}",
        finished.stdout
    );
    assert_eq!(finished.stderr, "", "stderr is for logs (-v) and the status line, and neither is on");
}

#[tokio::test(flavor = "multi_thread")]
async fn quiet_shows_warnings_rejections_and_retries_and_nothing_that_went_well() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    hook_for(&fake, &["issues"]);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let filter = ["--events", "issues,check_run", "--since", "1h", "-q"];
    let to = handler.url();
    let args = [&["dev", "--repo", REPO, "--to", &to, "--hook-url", &hook_url][..], &filter].concat();
    let dev = run_against(&fake, state.path(), &args);
    dev.wait_line("is not subscribed to check_run").await;
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    handler.wait_for(Duration::from_secs(30), "the first delivery", |got| got.len() == 1).await;
    handler.answer(503);
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(2)).await;
    dev.wait_line("<-- [503]").await;
    dev.wait_line(": 503, retry 1 in").await;
    dev.signal(libc::SIGINT);
    let finished = dev.finish().await;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    let lines: Vec<&str> = finished.stdout.lines().collect();
    // The Ready line stays: it says the run is up, and where the inspector is.
    assert!(lines.iter().any(|line| line.starts_with("Ready!")), "{lines:?}");
    assert!(lines.iter().any(|line| line.contains("inspect deliveries at http://127.0.0.1:")), "{lines:?}");
    assert!(lines.iter().all(|line| !line.contains("-->")), "{lines:?}");
    assert!(lines.iter().all(|line| !line.contains("<-- [200]")), "a delivery that went well is not shown: {lines:?}");
    assert!(lines.iter().all(|line| !line.starts_with("Stopped")), "{lines:?}");
    assert_eq!(finished.stderr, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_lines_say_whether_the_handler_accepted_a_delivery() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    hook_for(&fake, &["*"]);
    let handler = Recorder::start().await;
    handler.answer(404);
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--json"];
    let dev = run_against(&fake, state.path(), &args);
    dev.wait_line("\"type\":\"ready\"").await;
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    let rejected: Value = serde_json::from_str(&dev.wait_line("\"type\":\"forwarded\"").await).unwrap();
    assert_eq!((&rejected["status"], &rejected["ok"]), (&json!(404), &json!(false)), "{rejected}");
    handler.answer(200);
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(2)).await;
    let accepted: Value = serde_json::from_str(&dev.wait_lines("\"type\":\"forwarded\"", 2).await[1]).unwrap();
    assert_eq!((&accepted["status"], &accepted["ok"]), (&json!(200), &json!(true)), "{accepted}");
    drop(dev);

    handler.answer(500);
    let args = ["send", "--event", "ping", "--to", &handler.url(), "--json"];
    let sent = Running::hookfwd(args, &[("HOOKFWD_SECRET", OsStr::new(SECRET))]).finish().await;
    assert_eq!(sent.code, Some(4), "{}", sent.stderr);
    let line = &sent.json()[0];
    assert_eq!((&line["type"], &line["status"], &line["ok"]), (&json!("sent"), &json!(500), &json!(false)), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ready_line_lists_each_source_as_an_object() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let hook_id = hook_for(&fake, &["*"]);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--json"];
    let dev = run_against(&fake, state.path(), &args);
    let hook: Value = serde_json::from_str(&dev.wait_line("\"type\":\"hook\"").await).unwrap();
    let ready: Value = serde_json::from_str(&dev.wait_line("\"type\":\"ready\"").await).unwrap();
    assert_eq!(
        ready["sources"],
        json!([{
            "source": REPO,
            "hook_id": hook_id,
            "hook_url": hook_url,
            "target": hook["target"],
            "via": "poll",
        }]),
        "{ready}"
    );
}

/// The `check` names of a `doctor --json` run (a failing run ends with an `error` line, which has none).
fn check_names(finished: &e2e::Finished) -> Vec<String> {
    finished.json().iter().filter_map(|line| Some(line["check"].as_str()?.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_each_check_once() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    hook_for(&fake, &["push"]);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let state_dir = state.path().to_str().unwrap();
    let args = [
        "doctor",
        "--repo",
        REPO,
        "--hook-url",
        &hook_url,
        "--events",
        "push,issues",
        "--to",
        &handler.url(),
        "--state-dir",
        state_dir,
        "--json",
    ];
    let api_url = fake.api_url().to_string();
    let env = [
        ("GITHUB_TOKEN", OsStr::new(TOKEN)),
        ("HOOKFWD_STREAM_TOKEN", OsStr::new("a-stream-token")),
        ("HOOKFWD_HOOK_SECRET", OsStr::new("an-upstream-secret")),
    ];
    let all = args.iter().copied().chain(["--api-url", &api_url]);
    let finished = Running::hookfwd(all, &env).finish().await;
    let names = check_names(&finished);
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    let events_check = format!("{REPO} hook events");
    // The fake's blackhole does not stream, so whether pushes could be verified is not asked (push::doctor… is).
    for name in ["token", "GitHub API", "stream", "local secret", "handler", events_check.as_str()] {
        assert!(names.iter().any(|check| check == name), "no {name} check: {names:?}");
    }

    // A token without the hook scope: the repository is visible, managing its hooks is what fails.
    let fake = ACCOUNT.fake("public_repo").await;
    let args = ["doctor", "--repo", REPO, "--state-dir", state_dir, "--json"];
    let finished = run_against(&fake, state.path(), &args).finish().await;
    assert_eq!(finished.code, Some(3), "{}", finished.stderr);
    let lines = finished.json();
    let failed: Vec<&str> =
        lines.iter().filter(|line| line["ok"] == false).map(|line| line["check"].as_str().unwrap()).collect();
    assert_eq!(failed, [format!("{REPO} hooks")], "{}", finished.stdout);
    let names = check_names(&finished);
    assert!(names.contains(&REPO.to_string()), "{names:?}");
}

// An unreachable API at start (item 3): one sentence, no log lines, and no waiting out retries.

/// A port nothing listens on: connecting is refused.
fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// A listener that takes every connection and never answers, as a blackholed address does; held open
/// until the returned guard is dropped.
fn silent_api() -> (String, std::net::TcpListener) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepting = listener.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((socket, _)) = accepting.accept() {
            held.push(socket);
        }
    });
    (url, listener)
}

/// `hookfwd ARGS --api-url API` with a token and a secret.
fn against(api: &str, args: &[&str]) -> Running {
    ACCOUNT.hookfwd(args.iter().copied().chain(["--api-url", api]), &[])
}

/// Asserts that the run failed with exit 1, the one sentence `expected` (a prefix, for a transport's
/// own words after it) and the network hint, and nothing else on stderr.
fn assert_one_sentence(finished: &e2e::Finished, expected: &str) {
    assert_eq!(finished.code, Some(1), "stdout: {}\nstderr: {}", finished.stdout, finished.stderr);
    let lines: Vec<&str> = finished.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "one sentence and its hint, no log line: {}", finished.stderr);
    assert!(lines[0].starts_with(expected), "{}", finished.stderr);
    assert_eq!(lines[1], "hint: check --api-url (or GITHUB_API_URL) and your network");
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_fails_with_one_sentence_when_the_api_refuses_connections() {
    let state = tempfile::tempdir().unwrap();
    let api = refused_url();
    let args = ["dev", "--repo", REPO, "--to", "localhost:3000", "--hook-url", "http://127.0.0.1:9/h"];
    let finished =
        against(&api, &[&args[..], &["--state-dir", state.path().to_str().unwrap()]].concat()).finish().await;
    assert_one_sentence(&finished, &format!("hookfwd: could not reach the GitHub API at {api}: "));
    assert_eq!(finished.stdout, "", "nothing was set up, so nothing is shown");
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_fails_with_one_sentence_when_the_api_host_does_not_resolve() {
    let state = tempfile::tempdir().unwrap();
    // `.invalid` never resolves (RFC 2606); a resolver that cannot be reached at all is a silent API.
    let api = "http://hookfwd-e2e.invalid";
    let args = ["dev", "--repo", REPO, "--to", "localhost:3000", "--hook-url", "http://127.0.0.1:9/h"];
    let finished = against(api, &[&args[..], &["--state-dir", state.path().to_str().unwrap()]].concat()).finish().await;
    assert_one_sentence(&finished, &format!("hookfwd: could not reach the GitHub API at {api}: "));
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_forward_and_wait_give_up_on_a_silent_api_with_one_sentence() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let (api, _listener) = silent_api();
    let rule = format!(
        r#"{{"from": ["{REPO}"], "to": "localhost:3000", "hook": {{"config": {{"url": "http://127.0.0.1:9/h"}}}}}}"#
    );
    let source =
        ["--repo", REPO, "--to", "localhost:3000", "--hook-url", "http://127.0.0.1:9/h", "--state-dir", state_dir];
    let runs = [
        against(&api, &[&["dev"][..], &source].concat()),
        against(&api, &["forward", "--rule", &rule, "--state-dir", state_dir]),
        against(&api, &[&["wait", "--event", "push"][..], &source].concat()),
    ];
    // The sentence names the bound: the start gives up on its own, not at the 30 s request timeout.
    let expected = format!("hookfwd: could not reach the GitHub API at {api}: it did not answer within 8 s");
    for run in runs {
        let finished = run.finish().await;
        assert_one_sentence(&finished, &expected);
        assert_eq!(finished.stderr.lines().next().unwrap(), expected);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_that_asks_github_gives_up_on_a_silent_api_with_one_sentence() {
    let (api, _listener) = silent_api();
    let source = ["--repo", REPO, "--hook-url", "http://127.0.0.1:9/h"];
    let runs = [
        against(&api, &[&["hooks", "list"][..], &source[..2]].concat()),
        against(&api, &[&["replay", "--to", "localhost:3000", "--since", "1h"][..], &source].concat()),
        against(&api, &[&["trigger", "ping"][..], &source].concat()),
        against(&api, &[&["redeliver", "--failed", "--dry-run"][..], &source].concat()),
    ];
    let expected = format!("hookfwd: could not reach the GitHub API at {api}: it did not answer within 8 s");
    for run in runs {
        let finished = run.finish().await;
        assert_one_sentence(&finished, &expected);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_fails_its_api_check_at_once_when_the_api_is_silent_or_refuses() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let (silent, _listener) = silent_api();
    let refused = refused_url();
    for (api, reason) in [(&silent, "it did not answer within 8 s".to_string()), (&refused, String::new())] {
        let finished = against(api, &["doctor", "--repo", REPO, "--state-dir", state_dir, "--json"]).finish().await;
        assert_eq!(finished.code, Some(1), "{}", finished.stderr);
        let lines = finished.json();
        let check = lines.iter().find(|line| line["check"] == "GitHub API").expect("an API check");
        assert_eq!(check["ok"], false, "{check}");
        let message = check["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("could not reach the GitHub API at {api}: {reason}")), "{message}");
        assert!(lines.iter().all(|line| line["check"] != REPO), "no check waits on the API: {}", finished.stdout);
        assert_eq!(finished.stderr.trim(), "hookfwd: 1 check failed", "no log lines");
    }
}

// Stopping with --cleanup (item 9).

#[tokio::test(flavor = "multi_thread")]
async fn stopping_with_cleanup_says_which_hook_it_deleted() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let hook_url = fake.blackhole_url();
    for json in [false, true] {
        let state = tempfile::tempdir().unwrap();
        let target = handler.url();
        let mut args = vec!["dev", "--repo", REPO, "--to", &target, "--hook-url", &hook_url, "--cleanup"];
        if json {
            args.push("--json");
        }
        let dev = run_against(&fake, state.path(), &args);
        let ready = dev.wait_line(if json { "\"type\":\"ready\"" } else { "Ready" }).await;
        let hook: Value = if json { serde_json::from_str(&ready).unwrap() } else { Value::Null };
        dev.signal(libc::SIGINT);
        let finished = dev.finish().await;
        assert_eq!(finished.code, Some(0), "{}", finished.stderr);
        let lines: Vec<&str> = finished.stdout.lines().collect();
        let stopped = lines.len() - 1;
        if json {
            let id = hook["sources"][0]["hook_id"].as_u64().unwrap();
            let deleted: Value = serde_json::from_str(lines[stopped - 1]).unwrap();
            assert_eq!(
                (&deleted["type"], &deleted["source"], &deleted["hook_id"]),
                (&json!("deleted"), &json!(REPO), &json!(id))
            );
        } else {
            let id = ready.split("(hook ").nth(1).and_then(|rest| rest.split(',').next()).unwrap();
            assert_eq!(
                lines[stopped - 1],
                format!("Deleted the hook this run created (--cleanup): {REPO} hook {id}."),
                "{}",
                finished.stdout
            );
        }
        let last = if json { "{\"type\":\"stopped\"" } else { "Stopped: " };
        assert!(lines[stopped].starts_with(last), "{}", finished.stdout);
    }
}

// Labels and messages (item 8): the sentences not tested with `send` (tests/e2e/send.rs) or the demo.

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_that_is_not_found_says_to_check_the_name_and_the_tokens_access() {
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", "octo-org/no-such-repo", "--to", "localhost:3000", "--hook-url", &hook_url];
    let finished = run_against(&fake, state.path(), &args).finish().await;
    assert_eq!(finished.code, Some(1), "{}", finished.stderr);
    let lines: Vec<&str> = finished.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "hookfwd: the hooks of octo-org/no-such-repo: not found, or not visible to this token (404)",
            "hint: check the spelling, and that the token can see it",
        ],
        "{}",
        finished.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_on_the_same_state_directory_names_the_process_holding_it() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let hook_id = hook_for(&fake, &["*"]);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let args = ["dev", "--repo", REPO, "--to", &handler.url(), "--hook-url", &hook_url, "--no-inspect"];
    let first = run_against(&fake, state.path(), &args);
    first.wait_line("Ready").await;
    let second = run_against(&fake, state.path(), &args).finish().await;
    assert_eq!(second.code, Some(1), "{}", second.stderr);
    let line = second.stderr.lines().next().unwrap_or_default();
    let holder = format!("hookfwd process {}", first.pid());
    assert!(
        line.starts_with(&format!(
            "hookfwd: no source could be set up: {REPO} hook {hook_id} is already being forwarded by {holder} using "
        )),
        "{line}"
    );
    assert!(line.ends_with("; stop that one first (Ctrl-C in its terminal), since two runs on one hook would forward every delivery twice"), "{line}");
    assert!(!line.contains("--state-dir"), "another state directory would forward everything twice: {line}");
}
