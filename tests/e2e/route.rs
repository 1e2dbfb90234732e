//! Issue 23's routing: `--filter` (a jq expression on the payload) on `dev`, `wait`, `replay` and in rules;
//! a delivery it leaves out is handled once (one `skipped by --filter` line, never fetched again), a filter
//! that fails is a no with one warning, and a bad one is exit 2 with the column. Fan-out: each target of a
//! rule has its own order, retries and ledger, so one that is down holds back no other.

use std::time::Duration;

use e2e::{Account, Recorder};
use serde_json::{Value, json};

/// How long a test waits for what it expects before it fails.
const PATIENCE: Duration = Duration::from_secs(60);

const TOKEN: &str = "ghp_e2eRouteTokenNeverPrinted00000001";
const SECRET: &str = "route-local-secret-never-printed";
const REPO: &str = "octo-org/route";
const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };

/// An `issues` payload of issue `n` with `action`, and `labels` when given.
fn issue(n: usize, action: &str, labels: Option<&[&str]>) -> Value {
    let mut payload = ACCOUNT.issue_opened(n);
    payload["action"] = json!(action);
    if let Some(labels) = labels {
        payload["issue"]["labels"] = json!(labels);
    }
    payload
}

/// The issue numbers the handler received, in order.
fn numbers(handler: &Recorder) -> Vec<u64> {
    handler
        .received()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["issue"]["number"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_forwards_only_what_the_filter_lets_through_and_shows_each_skipped_one_once() {
    let (fake, hook) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let to = handler.url();
    let dev = ACCOUNT.dev(&fake, &to, state.path(), &["--filter", r#".action == "opened""#]);
    dev.wait_line("Ready!").await;
    for (n, action) in [(1, "opened"), (2, "closed"), (3, "opened"), (4, "edited")] {
        fake.emit(REPO, "issues", issue(n, action, None)).await;
    }
    let skipped = dev.wait_lines("skipped by --filter", 2).await;
    // Answered (so recorded) before the run stops.
    dev.wait_lines("<--", 2).await;
    dev.signal(libc::SIGTERM);
    let finished = dev.finish().await;
    assert_eq!(numbers(&handler), [1, 3]);
    // Each skipped delivery once, named by its kind and guid.
    let lines: Vec<&str> = finished.stdout.lines().filter(|line| line.contains("skipped by --filter")).collect();
    assert_eq!(lines.len(), 2, "{}", finished.stdout);
    assert_eq!(lines, skipped);
    let deliveries = fake.deliveries(hook);
    for (line, action) in lines.iter().zip(["closed", "edited"]) {
        let delivery = deliveries.iter().find(|d| d.action.as_deref() == Some(action)).unwrap();
        assert!(line.contains(&format!("issues.{action} [{}", &delivery.guid[..8])), "{line}");
    }
    finished.assert_never_printed(&[TOKEN, SECRET]);

    // Handled: the next run neither fetches nor shows them again.
    let fetched = fake.stats().get_delivery;
    let dev = ACCOUNT.dev(&fake, &to, state.path(), &["--filter", r#".action == "opened""#, "--json"]);
    dev.wait_line(r#""type":"ready""#).await;
    fake.emit(REPO, "issues", issue(5, "opened", None)).await;
    dev.wait_line(r#""type":"forwarded""#).await;
    dev.signal(libc::SIGTERM);
    let lines = dev.finish().await.json();
    assert_eq!(numbers(&handler), [1, 3, 5]);
    assert!(!lines.iter().any(|line| line["type"] == "filtered"), "{lines:?}");
    assert_eq!(fake.stats().get_delivery, fetched + 1, "only issue 5 is fetched");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filter_that_fails_on_some_payloads_is_a_no_with_one_warning() {
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    // `.issue.labels[]` fails on an issue without labels (null cannot be iterated).
    let filter = r#"any(.issue.labels[]; . == "bug")"#;
    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--filter", filter, "--json"]);
    dev.wait_line(r#""type":"ready""#).await;
    let payloads = vec![
        issue(1, "opened", Some(&["bug"])),
        issue(2, "opened", None),
        issue(3, "opened", Some(&["docs"])),
        issue(4, "opened", None),
        issue(5, "opened", Some(&["docs", "bug"])),
    ];
    for payload in payloads {
        fake.emit(REPO, "issues", payload).await;
    }
    dev.wait_lines(r#""type":"filtered""#, 3).await;
    dev.wait_lines(r#""type":"forwarded""#, 2).await;
    dev.signal(libc::SIGTERM);
    let lines = dev.finish().await.json();
    assert_eq!(numbers(&handler), [1, 5]);
    let filtered: Vec<u64> = lines
        .iter()
        .filter(|line| line["type"] == "filtered")
        .map(|line| {
            assert_eq!(line["target"], json!(handler.url()), "{line}");
            line["id"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(filtered.len(), 3, "{lines:?}");
    let warnings: Vec<&Value> = lines.iter().filter(|line| line["kind"] == "filter_failed").collect();
    assert_eq!(warnings.len(), 1, "one warning for two failures: {lines:?}");
    let message = warnings[0]["message"].as_str().unwrap();
    assert!(message.contains(filter) && message.contains("issues.opened"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_filter_is_exit_2_with_jaqs_message_and_the_column() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let state = tempfile::tempdir().unwrap();
    let dev = ACCOUNT.dev(&fake, "localhost:1", state.path(), &["--filter", ".action =="]);
    let rule = json!({"from": [REPO], "to": "localhost:1", "filter": ".a | nosuch(1)",
                      "hook": {"config": {"url": fake.blackhole_url()}}})
    .to_string();
    let forward = ACCOUNT.against(&fake, &["forward", "--rule", &rule, "--json"], &[]);
    let (dev, forward) = tokio::join!(dev.finish(), forward.finish());
    assert_eq!(dev.code, Some(2), "{}", dev.stderr);
    assert!(dev.stderr.contains("expected term") && dev.stderr.contains("at column 11"), "{}", dev.stderr);
    assert_eq!(forward.code, Some(2), "{}", forward.stderr);
    let last = forward.json().pop().expect("an error line");
    let message = last["message"].as_str().unwrap();
    assert!(message.contains("undefined filter nosuch/1 at column 6"), "{message}");
    // Nothing was asked of GitHub: a bad expression is said before anything starts.
    assert_eq!(fake.stats().list_deliveries, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_with_a_filter_ends_only_on_a_matching_delivery() {
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let (hook_url, to) = (fake.blackhole_url(), handler.url());
    let state_dir = state.path().to_str().unwrap();
    let args = [
        "wait",
        "--repo",
        REPO,
        "--hook-url",
        &hook_url,
        "--event",
        "issues",
        "--filter",
        ".issue.number == 2",
        "--to",
        &to,
        "--interval",
        "100ms",
        "--give-up-after",
        "60s",
        "--json",
    ];
    let wait = ACCOUNT.against(&fake, &args, &[("HOOKFWD_STATE_DIR", state_dir)]);
    wait.wait_line(r#""type":"ready""#).await;
    fake.emit(REPO, "issues", issue(1, "opened", None)).await;
    // The first issue does not end the wait: it is skipped, and the wait goes on.
    wait.wait_line(r#""type":"filtered""#).await;
    fake.emit(REPO, "issues", issue(2, "opened", None)).await;
    let finished = wait.finish().await;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    let lines = finished.json();
    let matched: Vec<&Value> = lines.iter().filter(|line| line["type"] == "matched").collect();
    assert_eq!(matched.len(), 1, "{lines:?}");
    assert_eq!(numbers(&handler), [2]);
    assert_eq!(matched[0]["guid"], json!(handler.received()[0].guid()));
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_with_a_filter_sends_only_what_it_lets_through() {
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    for n in 1..=4 {
        fake.emit(REPO, "issues", issue(n, if n % 2 == 0 { "closed" } else { "opened" }, None)).await;
    }
    let hook_url = fake.blackhole_url();
    let args = [
        "replay",
        "--repo",
        REPO,
        "--hook-url",
        &hook_url,
        "--since",
        "1h",
        "--filter",
        r#"$action == "closed""#,
        "--to",
        &handler.url(),
        "--json",
    ];
    let finished = ACCOUNT.against(&fake, &args, &[]).finish().await;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    assert_eq!(numbers(&handler), [2, 4]);
    let lines = finished.json();
    let last = lines.last().unwrap();
    assert_eq!(
        (&last["type"], &last["total"], &last["sent"], &last["filtered"]),
        (&json!("replayed"), &json!(4), &json!(2), &json!(2))
    );
    assert_eq!(lines.iter().filter(|line| line["type"] == "filtered").count(), 2, "{lines:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_that_is_down_holds_back_no_other_and_gets_everything_in_order_when_back() {
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    let up = Recorder::start().await;
    // Nothing listens there yet: the first target refuses every connection until it starts.
    let down_addr = e2e::free_addr();
    let down_url = format!("http://{down_addr}/");
    let state = tempfile::tempdir().unwrap();
    // The down target is the rule's first (`dev` gives its own `--to`), the other its second.
    let dev = ACCOUNT.dev(&fake, &down_url, state.path(), &["--to", &up.url(), "--json"]);
    dev.wait_line(r#""type":"ready""#).await;
    for n in 1..=4 {
        fake.emit(REPO, "issues", issue(n, "opened", None)).await;
    }
    // The other target gets every delivery while the first is down.
    up.wait_for(PATIENCE, "every delivery at the target that is up", |got| got.len() >= 4).await;
    let retry: Value = serde_json::from_str(&dev.wait_line(r#""type":"retry""#).await).unwrap();
    assert_eq!(retry["target"], json!(down_url), "{retry}");
    let back = Recorder::on(tokio::net::TcpListener::bind(down_addr).await.expect("the port is still free"));
    dev.wait_lines(r#""type":"forwarded""#, 8).await;
    dev.signal(libc::SIGTERM);
    let lines = dev.finish().await.json();
    assert_eq!(numbers(&up), [1, 2, 3, 4]);
    assert_eq!(numbers(&back), [1, 2, 3, 4], "in order");
    let forwarded = |target: &str| {
        lines.iter().filter(|line| line["type"] == "forwarded" && line["target"] == json!(target)).count()
    };
    assert_eq!((forwarded(&down_url), forwarded(&up.url())), (4, 4), "{lines:?}");

    // Each target resumes from its own ledger: what came while stopped reaches both, once.
    fake.emit(REPO, "issues", issue(5, "opened", None)).await;
    let dev = ACCOUNT.dev(&fake, &down_url, state.path(), &["--to", &up.url()]);
    up.wait_for(PATIENCE, "issue 5 at the second target", |got| got.len() >= 5).await;
    back.wait_for(PATIENCE, "issue 5 at the first target", |got| got.len() >= 5).await;
    dev.wait_lines("<--", 2).await;
    dev.signal(libc::SIGTERM);
    dev.finish().await;
    assert_eq!(numbers(&up), [1, 2, 3, 4, 5]);
    assert_eq!(numbers(&back), [1, 2, 3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_target_gets_what_its_own_filter_lets_through() {
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    let (all, opened, closed) = (Recorder::start().await, Recorder::start().await, Recorder::start().await);
    let state = tempfile::tempdir().unwrap();
    let opened_route = format!(r#"{} if .action == "opened""#, opened.url());
    let closed_route = format!(r#"{} if $action == "closed""#, closed.url());
    let dev = ACCOUNT.dev(&fake, &all.url(), state.path(), &["--to", &opened_route, "--to", &closed_route, "--json"]);
    dev.wait_line(r#""type":"ready""#).await;
    for (n, action) in [(1, "opened"), (2, "closed"), (3, "opened")] {
        fake.emit(REPO, "issues", issue(n, action, None)).await;
    }
    all.wait_for(PATIENCE, "every delivery", |got| got.len() >= 3).await;
    opened.wait_for(PATIENCE, "the opened ones", |got| got.len() >= 2).await;
    closed.wait_for(PATIENCE, "the closed one", |got| !got.is_empty()).await;
    // Each target skips the others' once: one filtered line each.
    dev.wait_lines(r#""type":"filtered""#, 3).await;
    dev.wait_lines(r#""type":"forwarded""#, 6).await;
    dev.signal(libc::SIGTERM);
    let lines = dev.finish().await.json();
    assert_eq!((numbers(&all), numbers(&opened), numbers(&closed)), (vec![1, 2, 3], vec![1, 3], vec![2]));
    let skipped_at = |url: &str| lines.iter().filter(|l| l["type"] == "filtered" && l["target"] == json!(url)).count();
    assert_eq!((skipped_at(&all.url()), skipped_at(&opened.url()), skipped_at(&closed.url())), (0, 1, 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn in_push_mode_each_target_gets_the_pushed_bytes_without_a_get() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    fake.set_ping_on_create(false);
    const STREAM_TOKEN: &str = "route-stream-token-never-printed";
    let blackhole = e2e::Blackhole::start(&["--stream-token", STREAM_TOKEN, "--stream-keepalive", "1s"]);
    let (first, second) = (Recorder::start().await, Recorder::start().await);
    let state = tempfile::tempdir().unwrap();
    let extra = ["--to", &second.url(), "--json"];
    let streaming = [("HOOKFWD_STREAM_TOKEN", STREAM_TOKEN)];
    let dev = ACCOUNT.dev_at(&fake, &blackhole.url("/route"), &first.url(), state.path(), &extra, &streaming);
    dev.wait_line(r#""type":"ready""#).await;
    dev.wait_lines(r#""state":"up""#, 2).await;
    for n in 1..=3 {
        fake.emit(REPO, "issues", issue(n, "opened", None)).await;
    }
    dev.wait_lines(r#""type":"forwarded""#, 6).await;
    dev.signal(libc::SIGTERM);
    let finished = dev.finish().await;
    assert_eq!((numbers(&first), numbers(&second)), (vec![1, 2, 3], vec![1, 2, 3]));
    let lines = finished.json();
    let forwarded: Vec<&Value> = lines.iter().filter(|line| line["type"] == "forwarded").collect();
    assert!(forwarded.iter().all(|line| line["via"] == "stream"), "{forwarded:?}");
    assert_eq!(fake.stats().get_delivery, 0, "a pushed delivery costs no GET, whatever the targets");
    finished.assert_never_printed(&[TOKEN, SECRET, STREAM_TOKEN]);
}
