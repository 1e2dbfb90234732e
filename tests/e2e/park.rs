//! Issue 12, items 2 and 5, through the real binary: a delivery the handler keeps rejecting is
//! parked and the queue moves on (`replay --parked` and the `r` key send it again), a handler that
//! is down is waited for, and an event overlapping sources both bring is forwarded once.

use std::path::Path;
use std::time::Duration;

use e2e::{Account, Recorder, eventually};
use fake_github::{FakeGitHub, HookSpec};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_e2eParkTokenThatMustNeverBePrinted1";
const SECRET: &str = "park-local-secret-never-printed-51c2";
const REPO: &str = "park-org/widgets";
const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };
/// What the handler's bug answers.
const REJECTION: &str = r#"{"error":"no such user: ghost"}"#;
/// In the payload of the one delivery the handler's bug hits.
const POISON: &str = "\"title\":\"poison\"";

/// `dev` on [`REPO`], polling every 100 ms, without the inspector.
fn dev_args<'a>(fake_hook_url: &'a str, target: &'a str, state: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["dev", "--repo", REPO, "--to", target, "--hook-url", fake_hook_url];
    args.extend(["--interval", "100ms", "--state-dir", state, "--no-inspect"]);
    args.extend(extra);
    args
}

fn issue(n: usize, title: &str) -> Value {
    json!({"action": "opened", "issue": {"number": n, "title": title}, "repository": {"full_name": REPO}})
}

fn path(dir: &Path) -> &str {
    dir.to_str().expect("temporary directories have UTF-8 paths")
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).expect("a JSON line")
}

/// `replay --parked` on [`REPO`] to `target`.
async fn replay_parked(fake: &FakeGitHub, target: &str, state: &str) -> e2e::Finished {
    let hook_url = fake.blackhole_url();
    let args = ["replay", "--parked", "--repo", REPO, "--hook-url", &hook_url, "--to", target, "--state-dir", state];
    ACCOUNT.against(fake, &args, &[]).finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_the_handler_rejects_is_parked_after_three_attempts_and_the_queue_moves_on() {
    // A hook made by hand: one hookfwd created would bring its creation ping before the events.
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook, admin:org_hook").await;
    let handler = Recorder::start().await;
    handler.reject(POISON, 500, REJECTION);
    let state = tempfile::tempdir().unwrap();
    let (hook_url, target) = (fake.blackhole_url(), handler.url());

    let run = ACCOUNT.against(&fake, &dev_args(&hook_url, &target, path(state.path()), &["--json"]), &[]);
    run.wait_line("\"type\":\"ready\"").await;
    fake.emit(REPO, "issues", issue(1, "poison")).await;
    fake.emit(REPO, "issues", issue(2, "fine")).await;
    fake.emit(REPO, "issues", issue(3, "fine too")).await;

    let parked = parse(&run.wait_line("\"type\":\"parked\"").await);
    let guid = parked["guid"].as_str().unwrap().to_string();
    assert_eq!(parked["source"], REPO);
    assert_eq!(parked["via"], "api");
    assert_eq!(parked["event"], "issues");
    assert_eq!(parked["action"], "opened");
    assert_eq!(parked["attempts"], 3);
    assert_eq!(parked["status"], 500);
    assert_eq!(parked["body"], REJECTION);
    assert!(parked["id"].as_u64().is_some(), "{parked}");
    let received = handler.wait_for(Duration::from_secs(60), "the two after it", |got| got.len() >= 2).await;
    assert!(received.iter().all(|request| request.guid() != guid));
    assert_eq!(handler.tries(&guid), 3, "three attempts, then parked");
    assert_eq!(run.lines().iter().filter(|line| line.contains("\"type\":\"parked\"")).count(), 1, "said once");

    // While `dev` holds the ledger, `replay --parked` says where to press r instead.
    let busy = replay_parked(&fake, &target, path(state.path())).await;
    assert_eq!(busy.code, Some(1), "{}", busy.stderr);
    assert!(busy.stderr.contains("which holds its ledger; press r in that terminal"), "{}", busy.stderr);

    // After a restart it is still parked: not sent again.
    run.signal(libc::SIGTERM);
    assert_eq!(run.finish().await.code, Some(0));
    let run = ACCOUNT.against(&fake, &dev_args(&hook_url, &target, path(state.path()), &["--json"]), &[]);
    run.wait_line("\"type\":\"ready\"").await;
    fake.emit(REPO, "issues", issue(4, "after the restart")).await;
    handler.wait_for(Duration::from_secs(60), "the one after the restart", |got| got.len() >= 3).await;
    run.signal(libc::SIGTERM);
    let finished = run.finish().await;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    assert_eq!(handler.tries(&guid), 3, "a parked delivery is not sent again by a restart");
    assert!(!finished.stdout.contains("\"type\":\"parked\""), "{}", finished.stdout);

    // The bug fixed, `replay --parked` sends it again and un-parks it.
    handler.accept_all();
    let replayed = replay_parked(&fake, &target, path(state.path())).await;
    assert_eq!(replayed.code, Some(0), "{}", replayed.stderr);
    assert!(replayed.stdout.contains("sent 1 parked delivery again"), "a feed line: {}", replayed.stdout);
    assert!(handler.received().iter().any(|request| request.guid() == guid), "the handler took it");
    let again = replay_parked(&fake, &target, path(state.path())).await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(again.stdout.starts_with(&format!("nothing is parked for {REPO} hook ")), "{}", again.stdout);
    assert_eq!(again.stdout.lines().count(), 1, "{}", again.stdout);
    assert_eq!(handler.tries(&guid), 4, "sent once more, by the first replay only");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_feed_says_once_that_a_delivery_was_parked_and_how_to_send_it_again() {
    // A hook made by hand: one hookfwd created would bring its creation ping before the events.
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook, admin:org_hook").await;
    let handler = Recorder::start().await;
    handler.reject(POISON, 500, REJECTION);
    let state = tempfile::tempdir().unwrap();
    let (hook_url, target) = (fake.blackhole_url(), handler.url());
    let hook_id = fake.add_hook(REPO, HookSpec::new(hook_url.clone()));
    let run = ACCOUNT.against(&fake, &dev_args(&hook_url, &target, path(state.path()), &[]), &[]);
    run.wait_line("Ready!").await;
    fake.emit(REPO, "issues", issue(1, "poison")).await;
    fake.emit(REPO, "issues", issue(2, "fine")).await;
    handler.wait_for(Duration::from_secs(60), "the one after it", |got| !got.is_empty()).await;
    run.signal(libc::SIGTERM);
    let finished = run.finish().await;
    let parked: Vec<&str> = finished.stdout.lines().filter(|line| line.contains(" parked after ")).collect();
    assert_eq!(parked.len(), 1, "{}", finished.stdout);
    let guid = fake.deliveries(hook_id).into_iter().find(|d| d.event == "issues").unwrap().guid;
    // The human feed shortens guids.
    let guid = format!("{}…", &guid[..8]);
    // stdin is not a terminal here, so there is no `r` to press.
    let sentence = format!(
        "!!! issues.opened [{guid}] parked after 3 attempts (500 {{\"error\":\"no such user: ghost\"}}); send it again \
         with `hookfwd replay --parked` · from {REPO}"
    );
    assert!(parked[0].ends_with(&sentence), "{}\nwanted: {sentence}", parked[0]);
    let retries: Vec<&str> = finished.stdout.lines().filter(|line| line.contains(&format!("[{guid}]: 500"))).collect();
    assert_eq!(retries.len(), 2, "two retries before it is parked: {}", finished.stdout);
    finished.assert_never_printed(&[TOKEN, SECRET]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_answering_503_keeps_the_delivery_retrying_and_never_parks_it() {
    // A hook made by hand: one hookfwd created would bring its creation ping before the events.
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook, admin:org_hook").await;
    let handler = Recorder::start().await;
    handler.answer(503);
    let state = tempfile::tempdir().unwrap();
    let (hook_url, target) = (fake.blackhole_url(), handler.url());
    let run = ACCOUNT.against(
        &fake,
        &dev_args(&hook_url, &target, path(state.path()), &["--json", "--max-attempts", "2"]),
        &[],
    );
    run.wait_line("\"type\":\"ready\"").await;
    fake.emit(REPO, "issues", issue(1, "while restarting")).await;
    let retry = parse(&run.wait_line("\"type\":\"retry\"").await);
    let guid = retry["guid"].as_str().unwrap().to_string();
    eventually("five attempts", async || handler.tries(&guid) >= 5).await;
    handler.answer(200);
    handler.wait_for(Duration::from_secs(60), "the delivery", |got| got.iter().any(|r| r.guid() == guid)).await;
    run.signal(libc::SIGTERM);
    let finished = run.finish().await;
    assert!(
        !finished.stdout.contains("\"type\":\"parked\""),
        "a handler that is down is waited for: {}",
        finished.stdout
    );
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_down_twenty_seconds_is_retried_at_most_every_two_seconds_and_gets_the_delivery_back() {
    // A hook made by hand: one hookfwd created would bring its creation ping before the events.
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook, admin:org_hook").await;
    // The handler's port, closed: nothing listens there until it is back.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let target = format!("http://{port}/webhook");
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let run = ACCOUNT.against(&fake, &dev_args(&hook_url, &target, path(state.path()), &["--json"]), &[]);
    run.wait_line("\"type\":\"ready\"").await;
    fake.emit(REPO, "issues", issue(1, "while the handler restarts")).await;
    let retries = |run: &e2e::Running| -> Vec<Value> {
        run.lines().iter().map(|line| parse(line)).filter(|line| line["type"] == "retry").collect()
    };
    // Down for 20 s of the waits hookfwd reports, each of them a refused connection.
    let down = eventually("20 s of retries", async || {
        let retries = retries(&run);
        let waited: u64 = retries.iter().map(|line| line["wait_ms"].as_u64().unwrap()).sum();
        (waited >= 20_000).then_some(retries)
    })
    .await;
    assert!(down.iter().all(|line| line["reason"] == "connection refused"), "{down:?}");
    let handler = Recorder::on(tokio::net::TcpListener::bind(port).await.expect("the handler's port again"));
    let received = handler.wait_for(Duration::from_secs(60), "the delivery", |got| !got.is_empty()).await;
    let forwarded = parse(&run.wait_line("\"type\":\"forwarded\"").await);
    assert_eq!(forwarded["guid"], received[0].guid());
    run.signal(libc::SIGTERM);
    let finished = run.finish().await;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    // Every wait, the one under way when the handler came back included, was at most 2 s, and the first
    // attempt after it was taken: the delivery arrived within 2 s of the handler coming back.
    let retries: Vec<Value> = finished.json().into_iter().filter(|line| line["type"] == "retry").collect();
    let waits: Vec<u64> = retries.iter().map(|line| line["wait_ms"].as_u64().unwrap()).collect();
    assert!(waits.iter().all(|wait| (100..=2000).contains(wait) && wait % 100 == 0), "{waits:?}");
    assert!(waits.len() >= 10, "retried about every 1-2 s, not backed off: {waits:?}");
    assert_eq!(handler.tries(received[0].guid()), 1, "taken at the first attempt after it came back");
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_blocks_on_a_rejected_delivery_by_default_and_parks_it_with_on_handler_error_park() {
    // A hook made by hand: one hookfwd created would bring its creation ping before the events.
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook, admin:org_hook").await;
    let handler = Recorder::start().await;
    handler.reject(POISON, 500, REJECTION);
    let state = tempfile::tempdir().unwrap();
    let rule =
        json!({"from": [REPO], "to": handler.url(), "hook": {"config": {"url": fake.blackhole_url()}}}).to_string();
    let forward = |extra: &[&str]| {
        let mut args = vec!["forward", "--json", "--rule", &rule, "--interval", "100ms", "--no-inspect"];
        args.extend(["--state-dir", path(state.path())]);
        args.extend(extra);
        ACCOUNT.against(&fake, &args, &[])
    };
    let run = forward(&[]);
    run.wait_line("\"type\":\"ready\"").await;
    fake.emit(REPO, "issues", issue(1, "poison")).await;
    fake.emit(REPO, "issues", issue(2, "fine")).await;
    let retry = parse(&run.wait_line("\"type\":\"retry\"").await);
    let guid = retry["guid"].as_str().unwrap().to_string();
    eventually("five attempts", async || handler.tries(&guid) >= 5).await;
    assert_eq!(handler.count(), 0, "forward blocks: the delivery behind it waits");
    assert!(!run.lines().iter().any(|line| line.contains("\"type\":\"parked\"")));
    run.signal(libc::SIGTERM);
    assert_eq!(run.finish().await.code, Some(0));

    let run = forward(&["--on-handler-error", "park"]);
    let parked = parse(&run.wait_line("\"type\":\"parked\"").await);
    assert_eq!(parked["guid"], guid.as_str());
    assert_eq!(parked["attempts"], 3);
    handler.wait_for(Duration::from_secs(60), "the one behind it", |got| got.len() == 1).await;
    run.signal(libc::SIGTERM);
    assert_eq!(run.finish().await.code, Some(0));
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn the_r_key_sends_this_runs_parked_deliveries_again() {
    use std::io::Write;
    use std::os::fd::{FromRawFd, OwnedFd};

    // A hook made by hand: one hookfwd created would bring its creation ping before the events.
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook, admin:org_hook").await;
    let handler = Recorder::start().await;
    handler.reject(POISON, 500, REJECTION);
    let state = tempfile::tempdir().unwrap();
    let (hook_url, target) = (fake.blackhole_url(), handler.url());

    // A pseudo-terminal as stdin: what `dev` reads its keys from.
    let (mut leader, mut follower) = (-1, -1);
    // SAFETY: both out-pointers are valid; no name, settings or size is asked for.
    let opened =
        unsafe { libc::openpty(&mut leader, &mut follower, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(opened, 0, "openpty");
    // SAFETY: openpty returned two new descriptors that nothing else owns.
    let (leader, follower) = unsafe { (OwnedFd::from_raw_fd(leader), OwnedFd::from_raw_fd(follower)) };
    let mut keys = std::fs::File::from(leader);
    let api_url = fake.api_url().to_string();
    let mut args = dev_args(&hook_url, &target, path(state.path()), &[]);
    args.extend(["--api-url", &api_url]);
    let run = ACCOUNT.hookfwd_reading(args, &[("NO_COLOR", "1")], follower.into());
    run.wait_line("Ready!").await;
    fake.emit(REPO, "issues", issue(1, "poison")).await;
    fake.emit(REPO, "issues", issue(2, "fine")).await;
    handler.wait_for(Duration::from_secs(60), "the one after it", |got| !got.is_empty()).await;
    let parked = run.wait_line(" parked after 3 attempts").await;
    assert!(parked.contains("send it again with `hookfwd replay --parked` or press r · from"), "{parked}");

    handler.accept_all();
    keys.write_all(b"r").unwrap();
    handler.wait_for(Duration::from_secs(60), "the parked one, sent again", |got| got.len() == 2).await;
    run.signal(libc::SIGTERM);
    let finished = run.finish().await;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    let guid = handler.received()[1].guid().to_string();
    assert_eq!(handler.tries(&guid), 4, "three rejections, then the one the key sent");
    // Un-parked in the ledger: nothing is left for `replay --parked`.
    let again = replay_parked(&fake, &target, path(state.path())).await;
    assert!(again.stdout.starts_with("nothing is parked for"), "{}", again.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_an_organization_and_its_repository_both_bring_is_forwarded_once_and_twice_with_no_dedupe() {
    for (extra, copies, what) in [
        (None, 1, "each is forwarded once (--no-dedupe forwards both copies)"),
        (Some("--no-dedupe"), 2, "with --no-dedupe each is forwarded twice"),
    ] {
        // A hook made by hand: one hookfwd created would bring its creation ping before the events.
        let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook, admin:org_hook").await;
        fake.add_org("park-org");
        fake.add_hook(REPO, HookSpec::new(fake.blackhole_url()));
        fake.add_hook("park-org", HookSpec::new(fake.blackhole_url()));
        let handler = Recorder::start().await;
        let state = tempfile::tempdir().unwrap();
        let (hook_url, target) = (fake.blackhole_url(), handler.url());
        let mut args = vec!["dev", "--json", "--org", "park-org", "--repo", REPO, "--to", &target];
        args.extend([
            "--hook-url",
            &hook_url,
            "--interval",
            "100ms",
            "--no-inspect",
            "--state-dir",
            path(state.path()),
        ]);
        args.extend(extra);
        let run = ACCOUNT.against(&fake, &args, &[]);
        let warning = parse(&run.wait_line("\"type\":\"warning\"").await);
        let sentence = format!(
            "{REPO} is a source and so is its organization park-org: GitHub sends each of its events to both hooks, \
             and {what}"
        );
        assert_eq!(warning["message"], sentence.as_str());
        run.wait_line("\"type\":\"ready\"").await;
        fake.emit(REPO, "push", json!({"ref": "refs/heads/main", "repository": {"full_name": REPO}})).await;
        let forwarded = run.wait_lines("\"type\":\"forwarded\"", copies).await;
        // Both hooks listed it well before a later event is forwarded from both: then nothing more is coming.
        let from = fake.stats().not_modified;
        eventually("idle polls", async || fake.stats().not_modified >= from + 20).await;
        run.signal(libc::SIGTERM);
        let finished = run.finish().await;
        assert_eq!(finished.code, Some(0), "{}", finished.stderr);
        let lines: Vec<Value> = finished.json().into_iter().filter(|line| line["type"] == "forwarded").collect();
        assert_eq!(lines.len(), copies, "{extra:?}: {forwarded:?}");
        assert_eq!(handler.count(), copies, "{extra:?}");
        let guids: std::collections::HashSet<&str> = lines.iter().map(|line| line["guid"].as_str().unwrap()).collect();
        assert_eq!(guids.len(), 1, "one event");
        for line in &lines {
            assert!(
                ["park-org", REPO].contains(&line["source"].as_str().unwrap()),
                "each line names its source: {line}"
            );
        }
    }
}
