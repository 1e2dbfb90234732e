//! `hookfwd dev` against a broken or hostile GitHub (the fake's `Hostile` answers): memory stays
//! bounded, paging never spins, a bad item costs only itself, waits are bounded and shown, and
//! nothing GitHub says can drive the terminal.

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use e2e::{Account, Recorder, Running};
use fake_github::{FakeGitHub, Hostile};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_hostileTestTokenNeverPrinted000001";
const SECRET: &str = "hostile-local-secret-never-printed";
const REPO: &str = "octo-org/hostile";
const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };

/// How many `issues` deliveries the handler got. (hookfwd forwards the creation ping of the hook it
/// created too, so tests count by event.)
fn issues(got: &[e2e::Received]) -> usize {
    got.iter().filter(|request| request.header("x-github-event") == Some("issues")).count()
}

/// The highest resident set size `pid` has had, in bytes (`VmHWM` in `/proc/PID/status`).
pub(super) fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status is readable");
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).expect("a VmHWM line");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmHWM in kB");
    kib * 1024
}

/// The `--json` lines of `dev` whose `message` contains `needle`.
fn messages(dev: &Running, needle: &str) -> Vec<Value> {
    dev.lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"].as_str().is_some_and(|message| message.contains(needle)))
        .collect()
}

async fn wait_message(dev: &Running, needle: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(line) = messages(dev, needle).pop() {
            return line;
        }
        assert!(Instant::now() < deadline, "no message with `{needle}`: {:?}\n{}", dev.lines(), dev.stderr());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// How far hookfwd's memory may grow: the caps are 32 MiB a list and 100 MiB a delivery, while
/// the answers below are endless and 500 MB (before the caps: 6.3 GB in 15 s, and 1.6 GB).
const MEMORY_BOUND: u64 = 256 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_list_and_a_500_mb_delivery_keep_memory_bounded_and_forwarding_goes_on() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;

    // An endless list, twice; then GitHub's own list again, and the delivery it holds is forwarded.
    fake.faults().set_hostile(Hostile::EndlessList, Some(2));
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    let refused = wait_message(&dev, "larger than").await;
    assert!(refused["message"].as_str().unwrap().contains("listing the deliveries"), "{refused}");
    handler.wait_for(Duration::from_secs(60), "the delivery after the endless lists", |got| issues(got) == 1).await;

    // A 500 MB delivery, generated as it is sent: refused by its declared length, never read.
    fake.faults().set_hostile(Hostile::HugeDelivery { bytes: 500 * 1000 * 1000 }, Some(1));
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(2)).await;
    // Reported as a failed fetch today, or as a skipped delivery once the relay skips permanent errors.
    let refused = wait_message(&dev, "larger than the 104857600 bytes").await;
    assert!(refused["message"].as_str().unwrap().contains("delivery 1000000000"), "{refused}");

    let peak = peak_rss(dev.pid());
    eprintln!("hookfwd peak RSS (VmHWM) after an endless list and a 500 MB delivery: {} MiB", peak / (1024 * 1024));
    assert!(peak < MEMORY_BOUND, "hookfwd peaked at {} MiB", peak / (1024 * 1024));
    assert!(dev.lines().iter().all(|line| serde_json::from_str::<Value>(line).is_ok()), "one JSON object a line");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_loop_costs_a_bounded_number_of_list_calls_and_says_so() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;

    fake.faults().set_hostile(Hostile::LinkLoop, None);
    let before = fake.stats().list_deliveries;
    for n in 0..3 {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
    }
    let error = wait_message(&dev, "links back to a page").await;
    assert_eq!(error["type"], "error", "{error}");
    // What the looping list did give is forwarded.
    handler.wait_for(Duration::from_secs(30), "the three deliveries", |got| issues(got) == 3).await;
    // Polling went on past the loop: a later delivery is forwarded too. A spinning scan would have made
    // thousands of list calls by then; polls every 100 ms make a 304 each, and a few pages per change.
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(3)).await;
    handler.wait_for(Duration::from_secs(30), "the later delivery", |got| issues(got) == 4).await;
    let calls = fake.stats().list_deliveries - before;
    assert!(calls < 100, "{calls} list calls (a spinning loop makes thousands a second)");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_list_item_is_skipped_with_its_reason_and_the_rest_forwarded() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;

    fake.faults().set_hostile(Hostile::MalformedItem { event: "push".into() }, None);
    let bad = fake.emit(REPO, "push", json!({"ref": "refs/heads/main"})).await;
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(2)).await;
    handler.wait_for(Duration::from_secs(30), "both good deliveries", |got| issues(got) == 2).await;
    let events: Vec<_> = handler.received().iter().map(|r| r.header("x-github-event").map(str::to_string)).collect();
    assert!(!events.contains(&Some("push".to_string())), "the unreadable one is not forwarded: {events:?}");
    let warning = wait_message(&dev, &format!("skipped delivery {}", bad[0])).await;
    assert_eq!(warning["type"], "warning", "{warning}");
    assert!(warning["message"].as_str().unwrap().contains("unreadable"), "the reason is given: {warning}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limit_reset_ten_years_ahead_waits_at_most_an_hour_and_says_so() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    let ten_years = 10 * 365 * 24 * 3600;
    let most = |line: &Value| {
        let until: DateTime<Utc> = serde_json::from_value(line["until"].clone()).expect("an until time");
        assert!(until > Utc::now() + chrono::TimeDelta::minutes(50), "a long wait: {line}");
        assert!(until <= Utc::now() + chrono::TimeDelta::seconds(3600 + 61), "at most the window: {line}");
    };

    // A 200 that says one call is left until a reset ten years ahead: polls are spaced, not stopped.
    fake.faults().set_hostile(Hostile::FarRateReset { remaining: 1, reset_in_s: ten_years }, None);
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    let spaced: Value = serde_json::from_str(&dev.wait_line("\"type\":\"waiting\"").await).unwrap();
    most(&spaced);
    assert!(spaced["reason"].as_str().unwrap().contains("budget"), "{spaced}");
    drop(dev);
    fake.faults().clear_hostile();

    // A 403 with the budget spent until ten years ahead.
    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    fake.faults().exhaust_primary(Duration::from_secs(ten_years));
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(2)).await;
    let limited = dev.wait_lines("\"type\":\"waiting\"", 1).await;
    let limited: Value = serde_json::from_str(&limited[0]).unwrap();
    most(&limited);
    assert!(limited["reason"].as_str().unwrap().contains("rate limit"), "{limited}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_304_at_start_without_a_validator_does_not_forward_the_old_backlog() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    // A first run creates the hook; its deliveries are the backlog a fresh start must not forward.
    let first = tempfile::tempdir().unwrap();
    let dev = ACCOUNT.dev(&fake, &handler.url(), first.path(), &["--json"]);
    let hook: Value = serde_json::from_str(&dev.wait_line("\"type\":\"hook\"").await).unwrap();
    let hook_id = hook["hook_id"].as_u64().expect("a hook id");
    dev.wait_line("\"type\":\"ready\"").await;
    drop(dev);
    for n in 0..3 {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
    }
    let old = handler.received().len();

    // The fresh start's lists answer 304 twice although it sent no If-None-Match.
    fake.faults().set_hostile(Hostile::SpuriousNotModified, Some(2));
    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(99)).await;
    let guid = fake.deliveries(hook_id).last().expect("the new delivery").guid.clone();
    // A later delivery forwarded means the backlog, older, would have been forwarded before it.
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(100)).await;
    let later = fake.deliveries(hook_id).last().expect("the later delivery").guid.clone();
    let received = handler
        .wait_for(Duration::from_secs(30), "the later delivery", |got| got.iter().any(|r| r.guid() == later))
        .await;
    let received: Vec<&str> = received[old..].iter().map(|r| r.guid()).collect();
    assert_eq!(received, [guid.as_str(), later.as_str()], "only the new deliveries, not the backlog");
}

#[tokio::test(flavor = "multi_thread")]
async fn terminal_escapes_from_github_are_printed_as_visible_text() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &[]);
    dev.wait_line("Ready").await;

    fake.faults().set_hostile(Hostile::ControlCharacters, None);
    let event = "issues\u{1b}]0;title\u{7}";
    let action = "op\u{1b}[2Jened\r\n[fake line";
    fake.emit(REPO, event, json!({"action": action, "repository": {"full_name": REPO}})).await;
    let line = dev.wait_line("--> issues").await;
    assert!(line.contains("\\u{1b}") && line.contains("\\u{d}\\u{a}[fake line"), "shown as text: {line:?}");
    // Whatever else is said about it (the handler's answer, a refusal, a retry) is said in the same way: up
    // to the answer's line, which comes last.
    dev.wait_line("<-- ").await;
    let (stdout, stderr) = (dev.lines(), dev.stderr());
    for text in stdout.iter().map(String::as_str).chain([stderr.as_str()]) {
        let raw: Vec<char> = text.chars().filter(|c| c.is_control() && *c != '\n').collect();
        assert!(raw.is_empty(), "raw control characters {raw:?} in {text:?}");
    }
    assert!(stdout.iter().all(|line| !line.starts_with("[fake line")), "no forged line: {stdout:?}");
    assert!(stderr.lines().all(|line| !line.starts_with("[fake line")), "no forged line: {stderr}");
}

/// `hookfwd replay --since 1h` of the repository's hook against the fake, to completion.
async fn replay(fake: &FakeGitHub, target: &str) -> e2e::Finished {
    let hook_url = fake.blackhole_url();
    let api_url = fake.api_url().to_string();
    let args =
        ["replay", "--repo", REPO, "--to", target, "--hook-url", &hook_url, "--api-url", &api_url, "--since", "1h"];
    Running::hookfwd(args, &[("GITHUB_TOKEN", OsStr::new(TOKEN)), ("NO_COLOR", OsStr::new("1"))]).finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_skips_a_delivery_too_large_to_read_and_replays_the_rest() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    fake.add_hook(REPO, fake_github::HookSpec::new(fake.blackhole_url()));
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.extend(fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await);
    }
    // Replay goes oldest first: the first delivery it asks for answers 200 MB.
    fake.faults().set_hostile(Hostile::HugeDelivery { bytes: 200 * 1000 * 1000 }, Some(1));
    let run = replay(&fake, &handler.url()).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(handler.received().len(), 2, "the other two are replayed");
    // The skip is a feed warning (stdout); the run's outcome is the one sentence on stderr.
    assert!(run.stdout.contains(&format!("skipped delivery {}", ids[0])), "{}", run.stdout);
    assert!(run.stderr.contains("replayed 2 of 3"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_of_a_looping_list_stops_with_one_sentence() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    fake.add_hook(REPO, fake_github::HookSpec::new(fake.blackhole_url()));
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    fake.faults().set_hostile(Hostile::LinkLoop, None);
    let run = replay(&fake, &handler.url()).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("links back to a page"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "one sentence: {}", run.stderr);
    assert_eq!(fake.stats().list_deliveries, 2, "the first page and the link back, once");
}
