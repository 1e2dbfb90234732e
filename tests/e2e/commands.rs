//! `replay`, `trigger`, `wait`, `hooks` and `doctor` through the real binary, against the fake GitHub.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use e2e::{Finished, Recorder, Running, eventually};
use fake_github::{FakeGitHub, HookSpec};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_e2eCommandsTokenNeverPrinted00042";
const SECRET: &str = "commands-secret-never-printed-91c2";
const REPO: &str = "octo-org/hello-world";

/// A fake GitHub that knows the token and the repository, with one hook at its blackhole URL.
async fn github() -> (FakeGitHub, u64) {
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_repo(REPO);
    let hook = fake.add_hook(REPO, HookSpec::new(fake.blackhole_url()));
    (fake, hook)
}

/// A `hookfwd` child with a clean environment, its output collected as it arrives.
struct Run(Running);

impl Run {
    /// Starts `hookfwd ARGS --api-url FAKE` with GITHUB_TOKEN=`token`, HOOKFWD_SECRET and a state directory.
    fn start(fake: &FakeGitHub, token: &str, state: &Path, args: &[&str]) -> Self {
        let api_url = fake.api_url().to_string();
        let env = [
            ("HOME", state.as_os_str()),
            ("HOOKFWD_STATE_DIR", state.as_os_str()),
            ("GITHUB_TOKEN", OsStr::new(token)),
            ("HOOKFWD_SECRET", OsStr::new(SECRET)),
        ];
        Self(Running::hookfwd(args.iter().copied().chain(["--api-url", api_url.as_str()]), &env))
    }

    /// Waits for a stdout line containing `needle`.
    async fn wait_line(&self, needle: &str) -> String {
        self.0.wait_line(needle).await
    }

    /// Waits for the process to exit; checks that the token and secret were never printed.
    async fn finish(self) -> Finished {
        let finished = self.0.finish().await;
        finished.assert_never_printed(&[TOKEN, SECRET]);
        finished
    }
}

/// Runs `hookfwd ARGS` to completion with the good token.
async fn hookfwd_run(fake: &FakeGitHub, state: &Path, args: &[&str]) -> Finished {
    Run::start(fake, TOKEN, state, args).finish().await
}

fn marked(action: Option<&str>, marker: &str) -> Value {
    let mut payload = json!({"marker": marker, "repository": {"full_name": REPO}});
    if let Some(action) = action {
        payload["action"] = json!(action);
    }
    payload
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_forwards_filtered_deliveries_oldest_first_without_a_ledger() {
    let (fake, hook) = github().await;
    let state = tempfile::tempdir().unwrap();
    let recorder = Recorder::start().await;
    fake.emit(REPO, "push", marked(None, "too-old")).await;
    fake.age(Duration::from_secs(2 * 3600));
    for (event, action, marker) in [
        ("push", None, "a"),
        ("issues", Some("opened"), "issue"),
        ("push", None, "b"),
        ("pull_request", Some("closed"), "pr"),
        ("push", None, "c"),
    ] {
        fake.emit(REPO, event, marked(action, marker)).await;
    }

    let hook_url = fake.blackhole_url();
    let to = recorder.url();
    let args = ["replay", "--repo", REPO, "--to", &to, "--hook-url", &hook_url, "--since", "1h"];
    let run =
        hookfwd_run(&fake, state.path(), &[&args[..], &["--event", "push", "--limit", "2", "--json"]].concat()).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);

    // The two newest pushes of the last hour, oldest first, with GitHub's headers and our signature.
    let received = recorder.received();
    let markers: Vec<Value> =
        received.iter().map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["marker"].clone()).collect();
    assert_eq!(markers, [json!("b"), json!("c")]);
    let pushes: Vec<String> = fake.deliveries(hook).into_iter().filter(|d| d.event == "push").map(|d| d.guid).collect();
    let guids: Vec<&str> = received.iter().map(|r| r.header("x-github-delivery").unwrap()).collect();
    assert_eq!(guids, [pushes[2].as_str(), pushes[3].as_str()]);
    for request in &received {
        assert_eq!(request.header("x-github-event"), Some("push"));
        let signature = request.header("x-hub-signature-256").expect("a signature");
        assert!(
            github::signature::verify_sha256(&github::Secret::new(SECRET), &request.body, signature),
            "{signature}"
        );
    }

    // One JSON line per delivery, then what was replayed, and no ledger written anywhere.
    let mut lines = run.json();
    let replayed = lines.pop().expect("a last line");
    assert_eq!((&replayed["type"], &replayed["total"], &replayed["sent"]), (&json!("replayed"), &json!(2), &json!(2)));
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(lines.iter().all(|line| line["type"] == "forwarded" && line["status"] == 200), "{}", run.stdout);
    assert_eq!(lines[1]["guid"], json!(pushes[3]));
    let leftovers: Vec<_> = walk(state.path());
    assert!(leftovers.is_empty(), "replay wrote {leftovers:?}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_exits_4_when_the_handler_refuses() {
    let (fake, _) = github().await;
    let state = tempfile::tempdir().unwrap();
    let recorder = Recorder::start().await;
    recorder.answer(400);
    fake.emit(REPO, "push", marked(None, "x")).await;

    let (to, hook_url) = (recorder.url(), fake.blackhole_url());
    let args = ["replay", "--repo", REPO, "--to", &to, "--hook-url", &hook_url, "--since", "1h"];
    let run = hookfwd_run(&fake, state.path(), &args).await;
    assert_eq!(run.code, Some(4), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stderr.contains("refused 1 of 1"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_without_hook_url_needs_one_when_there_are_many_hooks() {
    let (fake, _) = github().await;
    fake.add_hook(REPO, HookSpec::new("https://elsewhere.example/hook"));
    let state = tempfile::tempdir().unwrap();
    let run =
        hookfwd_run(&fake, state.path(), &["replay", "--repo", REPO, "--to", "localhost:9", "--since", "1h"]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("--hook-url") && run.stderr.contains("https://elsewhere.example/hook"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn trigger_ping_makes_github_send_a_ping() {
    let (fake, hook) = github().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let run = hookfwd_run(&fake, state.path(), &["trigger", "ping", "--repo", REPO, "--hook-url", &hook_url]).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(run.stdout.contains("ping"), "{}", run.stdout);
    eventually("a ping delivery", async || fake.deliveries(hook).into_iter().find(|d| d.event == "ping")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn trigger_redeliver_makes_a_redelivery_with_the_same_guid() {
    let (fake, hook) = github().await;
    let state = tempfile::tempdir().unwrap();
    fake.emit(REPO, "issues", marked(Some("opened"), "x")).await;
    let original = fake.deliveries(hook).pop().expect("a delivery");
    assert!(!original.redelivery);

    let hook_url = fake.blackhole_url();
    let args = ["trigger", "redeliver", &original.guid, "--repo", REPO, "--hook-url", &hook_url];
    let run = hookfwd_run(&fake, state.path(), &args).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let again = eventually("a redelivery", async || {
        fake.deliveries(hook).into_iter().find(|d| d.guid == original.guid && d.id != original.id)
    })
    .await;
    assert!(again.redelivery);
    assert_eq!(again.event, "issues");

    // The guid as the human feed shortens it, as `replay --guid` takes it.
    let short = format!("{}…", &original.guid[..8]);
    let args = ["trigger", "redeliver", &short, "--repo", REPO, "--hook-url", &hook_url];
    let run = hookfwd_run(&fake, state.path(), &args).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(run.stdout.contains(&original.guid), "the whole guid is named: {}", run.stdout);
    eventually("a second redelivery", async || {
        (fake.deliveries(hook).into_iter().filter(|d| d.guid == original.guid).count() == 3).then_some(())
    })
    .await;

    let args = ["trigger", "redeliver", "no-such-guid", "--repo", REPO, "--hook-url", &hook_url];
    let run = hookfwd_run(&fake, state.path(), &args).await;
    assert_eq!(run.code, Some(1), "stderr: {}", run.stderr);
    assert!(run.stderr.contains("no delivery with guid no-such-guid"), "{}", run.stderr);
}

/// Starts `hookfwd wait` for `issues.opened` and waits for its ready line.
async fn start_wait(fake: &FakeGitHub, state: &Path, to: &str, timeout: &str) -> Run {
    let hook_url = fake.blackhole_url();
    let args = [
        "wait",
        "--repo",
        REPO,
        "--event",
        "issues",
        "--action",
        "opened",
        "--to",
        to,
        "--hook-url",
        &hook_url,
        "--give-up-after",
        timeout,
        "--interval",
        "100ms",
        "--json",
    ];
    let run = Run::start(fake, TOKEN, state, &args);
    run.wait_line(r#""type":"ready""#).await;
    run
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_exits_0_once_a_matching_delivery_was_handled() {
    let (fake, _) = github().await;
    let state = tempfile::tempdir().unwrap();
    let recorder = Recorder::start().await;
    let wait = start_wait(&fake, state.path(), &recorder.url(), "60s").await;

    // Not matching: forwarded all the same, and the wait goes on.
    fake.emit(REPO, "push", marked(None, "push")).await;
    fake.emit(REPO, "issues", marked(Some("closed"), "closed")).await;
    recorder.wait_for(Duration::from_secs(30), "the non-matching deliveries", |r| r.len() == 2).await;
    fake.emit(REPO, "issues", marked(Some("opened"), "opened")).await;

    let run = wait.finish().await;
    assert_eq!(run.code, Some(0), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let matched = run.json().into_iter().find(|line| line["type"] == "matched").expect("a matched line");
    assert_eq!(matched["action"], "opened");
    assert_eq!(matched["status"], 200);
    let markers: Vec<Value> = recorder
        .received()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["marker"].clone())
        .collect();
    assert_eq!(markers, [json!("push"), json!("closed"), json!("opened")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_exits_5_when_nothing_matches_in_time() {
    let (fake, _) = github().await;
    let state = tempfile::tempdir().unwrap();
    let recorder = Recorder::start().await;
    let wait = start_wait(&fake, state.path(), &recorder.url(), "2s").await;
    fake.emit(REPO, "issues", marked(Some("closed"), "closed")).await;

    let run = wait.finish().await;
    assert_eq!(run.code, Some(5), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stderr.contains("no new issues.opened delivery"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_exits_4_when_the_handler_rejects_the_match() {
    let (fake, _) = github().await;
    let state = tempfile::tempdir().unwrap();
    let recorder = Recorder::start().await;
    recorder.answer(422);
    let wait = start_wait(&fake, state.path(), &recorder.url(), "60s").await;
    fake.emit(REPO, "issues", marked(Some("opened"), "opened")).await;

    let run = wait.finish().await;
    assert_eq!(run.code, Some(4), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stderr.contains("rejected issues.opened"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_list_marks_hookfwds_hook_and_rm_deletes_one() {
    let (fake, ours) = github().await;
    let other = fake.add_hook(REPO, HookSpec::new("https://ci.example/hook").events(&["push"]));
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();

    let run =
        hookfwd_run(&fake, state.path(), &["hooks", "list", "--repo", REPO, "--hook-url", &hook_url, "--json"]).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let hooks = run.json();
    assert_eq!(hooks.len(), 2, "{}", run.stdout);
    let mine = hooks.iter().find(|hook| hook["hook_id"] == ours).expect("our hook");
    assert_eq!((&mine["source"], &mine["hook_url"]), (&json!(REPO), &json!(hook_url)), "{mine}");
    assert_eq!(mine["created_by_hookfwd"], false, "made by hand, as the fake's hooks are: {mine}");
    let theirs = hooks.iter().find(|hook| hook["hook_id"] == other).expect("the other hook");
    assert_eq!(theirs["created_by_hookfwd"], false);
    assert_eq!(theirs["events"], json!(["push"]));

    let run = hookfwd_run(&fake, state.path(), &["hooks", "list", "--repo", REPO, "--hook-url", &hook_url]).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let marked: Vec<&str> = run.stdout.lines().filter(|line| line.contains("hookfwd")).collect();
    assert_eq!(marked.len(), 1, "{}", run.stdout);
    assert!(marked[0].contains(&hook_url) && marked[0].contains(&ours.to_string()), "{}", run.stdout);

    let id = other.to_string();
    let run = hookfwd_run(&fake, state.path(), &["hooks", "rm", &id, "--repo", REPO, "--yes"]).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let run = hookfwd_run(&fake, state.path(), &["hooks", "list", "--repo", REPO, "--json"]).await;
    let ids: Vec<Value> = run.json().into_iter().map(|hook| hook["hook_id"].clone()).collect();
    assert_eq!(ids, [json!(ours)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_passes_against_the_fake() {
    let (fake, _) = github().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let dir = state.path().join("state");
    let dir = dir.to_str().unwrap();
    let run =
        hookfwd_run(&fake, state.path(), &["doctor", "--repo", REPO, "--hook-url", &hook_url, "--state-dir", dir])
            .await;
    assert_eq!(run.code, Some(0), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(!run.stdout.contains('✗'), "{}", run.stdout);
    for expected in ["✓ token: found in GITHUB_TOKEN (ghp_***)", "✓ octo-org/hello-world: visible", "✓ hook URL"]
    {
        assert!(run.stdout.contains(expected), "no `{expected}` in {}", run.stdout);
    }
    assert!(run.stdout.contains("delivers to"), "{}", run.stdout);
    assert!(run.stdout.contains("is not HTTPS"), "{}", run.stdout);
    assert!(run.stdout.contains("is writable"), "{}", run.stdout);
    assert!(walk(state.path()).is_empty(), "doctor left files behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_exits_3_for_a_rejected_token() {
    let (fake, _) = github().await;
    let state = tempfile::tempdir().unwrap();
    let bad = "ghp_revokedTokenThatGitHubRejects0000001";
    let run = Run::start(&fake, bad, state.path(), &["doctor", "--repo", REPO]).finish().await;
    assert_eq!(run.code, Some(3), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("✗ token accepted: GitHub rejected it"), "{}", run.stdout);
    assert!(!run.stdout.contains(bad) && !run.stderr.contains(bad), "the bad token was printed");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_reports_a_repository_it_cannot_see() {
    let (fake, _) = github().await;
    let state = tempfile::tempdir().unwrap();
    let run = hookfwd_run(&fake, state.path(), &["doctor", "--repo", "octo-org/missing"]).await;
    assert_eq!(run.code, Some(1), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("✗ octo-org/missing: not found"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_hookfwd_did_not_create_needs_yes_and_every_created_one_is_marked() {
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_repo(REPO);
    let foreign = fake.add_hook(REPO, HookSpec::new("https://ci.example/production").events(&["push"]));
    let state = tempfile::tempdir().unwrap();

    // Off a terminal, picking the only hook for the user, or deleting one by id, is refused without --yes.
    let run = hookfwd_run(&fake, state.path(), &["trigger", "ping", "--repo", REPO]).await;
    assert_eq!(run.code, Some(2), "stderr: {}", run.stderr);
    let refused = format!("{REPO} hook {foreign} was not created by hookfwd; pass --yes to ping it anyway");
    assert!(run.stderr.contains(&refused), "{}", run.stderr);
    let id = foreign.to_string();
    let run = hookfwd_run(&fake, state.path(), &["hooks", "rm", &id, "--repo", REPO]).await;
    assert_eq!(run.code, Some(2), "stderr: {}", run.stderr);
    let refused = format!("{REPO} hook {foreign} was not created by hookfwd; pass --yes to delete it anyway");
    assert!(run.stderr.contains(&refused), "{}", run.stderr);
    assert!(fake.deliveries(foreign).iter().all(|d| d.event != "ping"), "a refused ping was sent");

    // A hook that `dev` creates is remembered in the state directory.
    let recorder = Recorder::start().await;
    let (to, mine_url) = (recorder.url(), format!("{}/mine", fake.blackhole_url()));
    let dev = Run::start(
        &fake,
        TOKEN,
        state.path(),
        &["dev", "--repo", REPO, "--to", &to, "--hook-url", &mine_url, "--json"],
    );
    let line: Value = serde_json::from_str(&dev.wait_line("\"type\":\"hook\"").await).unwrap();
    assert_eq!(line["origin"], "created", "{line}");
    let mine = line["hook_id"].as_u64().expect("a hook id");
    dev.wait_line("\"type\":\"ready\"").await;
    dev.0.signal(libc::SIGTERM);
    dev.finish().await;

    // Without --hook-url, every hook hookfwd created is marked, and the columns line up.
    let run = hookfwd_run(&fake, state.path(), &["hooks", "list", "--repo", REPO, "--json"]).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let hooks = run.json();
    let by_id = |id: u64| hooks.iter().find(|hook| hook["hook_id"] == id).expect("listed").clone();
    assert_eq!(by_id(mine)["created_by_hookfwd"], json!(true));
    assert_eq!(by_id(foreign)["created_by_hookfwd"], json!(false));
    let run = hookfwd_run(&fake, state.path(), &["hooks", "list", "--repo", REPO]).await;
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    let marked: Vec<&&str> = lines.iter().filter(|line| line.contains("← created by hookfwd")).collect();
    assert_eq!(marked.len(), 1, "{}", run.stdout);
    assert!(marked[0].contains(&mine_url), "{}", run.stdout);
    let column = |line: &str, text: &str| line.find(text).map(|at| line[..at].chars().count());
    for text in ["events:", "active", "last:"] {
        assert_eq!(column(lines[0], text), column(lines[1], text), "`{text}` is not aligned:\n{}", run.stdout);
    }

    // hookfwd's own hook goes without asking; the other one with --yes.
    let id = mine.to_string();
    let run = hookfwd_run(&fake, state.path(), &["hooks", "rm", &id, "--repo", REPO]).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let id = foreign.to_string();
    let run = hookfwd_run(&fake, state.path(), &["hooks", "rm", &id, "--repo", REPO, "--yes"]).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let run = hookfwd_run(&fake, state.path(), &["hooks", "list", "--repo", REPO, "--json"]).await;
    assert!(run.json().is_empty(), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_by_guid_sends_the_latest_attempt_and_an_unknown_guid_is_not_found() {
    let (fake, hook) = github().await;
    let state = tempfile::tempdir().unwrap();
    let recorder = Recorder::start().await;
    fake.emit(REPO, "issues", marked(Some("opened"), "x")).await;
    let original = fake.deliveries(hook).pop().expect("a delivery");
    let hook_url = fake.blackhole_url();
    let args = ["trigger", "redeliver", &original.guid, "--repo", REPO, "--hook-url", &hook_url];
    assert_eq!(hookfwd_run(&fake, state.path(), &args).await.code, Some(0));
    eventually("a redelivery", async || fake.deliveries(hook).into_iter().find(|d| d.redelivery)).await;

    let to = recorder.url();
    let replay = ["replay", "--repo", REPO, "--to", &to, "--hook-url", &hook_url, "--guid", &original.guid];
    let run = hookfwd_run(&fake, state.path(), &replay).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(recorder.received().len(), 1, "only the latest attempt");
    assert!(run.stdout.contains("issues.opened"), "the feed names the event and action: {}", run.stdout);

    let run = hookfwd_run(&fake, state.path(), &[&replay[..], &["--all-attempts"]].concat()).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(recorder.received().len(), 3, "both attempts the second time");

    // The guid as the human feed shortens it finds the same delivery.
    let short = format!("{}…", &original.guid[..8]);
    let by_short = ["replay", "--repo", REPO, "--to", &to, "--hook-url", &hook_url, "--guid", &short];
    let run = hookfwd_run(&fake, state.path(), &by_short).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(recorder.received().len(), 4, "the latest attempt, found by its short guid");
    assert_eq!(recorder.received()[3].header("x-github-delivery"), Some(original.guid.as_str()));

    let unknown = ["replay", "--repo", REPO, "--to", &to, "--hook-url", &hook_url, "--guid", "no-such-guid"];
    let run = hookfwd_run(&fake, state.path(), &unknown).await;
    assert_eq!(run.code, Some(1), "stderr: {}", run.stderr);
    let sentence =
        format!("delivery no-such-guid not found among the deliveries of the last 24h of {REPO} hook {hook}");
    assert!(run.stderr.contains(&sentence), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_checks_the_handler_the_hooks_events_and_whether_github_reaches_it() {
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_repo(REPO);
    let hook_url = fake.blackhole_url();
    let hook = fake.add_hook(REPO, HookSpec::new(hook_url.clone()).events(&["push"]));
    let recorder = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().join("state");
    let (dir, to) = (dir.to_str().unwrap(), recorder.url());
    let doctor = ["doctor", "--repo", REPO, "--hook-url", &hook_url, "--state-dir", dir, "--to", &to, "--json"];
    let check = |run: &Finished, name: &str| -> Value {
        run.json().into_iter().find(|line| line["check"] == name).unwrap_or_else(|| panic!("no {name}: {}", run.stdout))
    };

    let run = hookfwd_run(&fake, state.path(), &[&doctor[..], &["--events", "push,check_run"]].concat()).await;
    assert_eq!(run.code, Some(1), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let names: Vec<Value> = run.json().into_iter().map(|line| line["check"].clone()).collect();
    let distinct: std::collections::HashSet<String> = names.iter().map(Value::to_string).collect();
    assert_eq!(distinct.len(), names.len(), "check names repeat: {names:?}");
    let events = check(&run, &format!("{REPO} hook events"));
    assert_eq!(events["level"], "fail", "{events}");
    assert_eq!(events["message"], format!("hook {hook} does not take check_run (it takes push)"));
    let handler = check(&run, "handler");
    assert_eq!(handler["level"], "pass", "{handler}");
    assert_eq!(recorder.received().len(), 1, "the handler got doctor's ping");
    assert_eq!(check(&run, &format!("{REPO} hook last response"))["level"], "warn", "nothing delivered yet");

    fake.emit(REPO, "push", marked(None, "reach")).await;
    let run = hookfwd_run(&fake, state.path(), &[&doctor[..], &["--events", "push"]].concat()).await;
    assert_eq!(run.code, Some(0), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let last = check(&run, &format!("{REPO} hook last response"));
    assert_eq!(last["level"], "pass", "{last}");
    assert_eq!(last["message"], format!("GitHub's last delivery to hook {hook} got 200: GitHub reaches it"));

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let run = hookfwd_run(&fake, state.path(), &["doctor", "--repo", REPO, "--to", &closed, "--json"]).await;
    assert_eq!(run.code, Some(1), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let handler = check(&run, "handler");
    assert_eq!(handler["message"], format!("http://{closed}/: connection refused"), "{handler}");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_signs_its_ping_and_fails_a_handler_answering_500_or_401_with_the_hint() {
    let (fake, _) = github().await;
    let recorder = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let to = recorder.url();
    let doctor = ["doctor", "--repo", REPO, "--to", &to, "--json"];
    let handler = |run: &Finished| -> Value {
        run.json().into_iter().find(|line| line["check"] == "handler").unwrap_or_else(|| panic!("{}", run.stdout))
    };

    // Taken: signed with the local secret, as every forwarded delivery is.
    let run = hookfwd_run(&fake, state.path(), &doctor).await;
    assert_eq!(run.code, Some(0), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let ping = recorder.received().pop().expect("the handler got doctor's ping");
    let signature = ping.header("x-hub-signature-256").expect("a signed ping");
    assert!(github::signature::verify_sha256(&github::Secret::new(SECRET), &ping.body, signature));
    assert_eq!(handler(&run)["message"], format!("{to} answered 200 to a ping signed with the local secret"));
    let secret = run.json().into_iter().find(|line| line["check"] == "local secret").expect("a local secret check");
    assert_eq!(secret["level"], "pass", "{secret}");

    for (status, hint) in [
        (500, "the handler failed on it (see its logs); hookfwd retries what it fails, then parks it"),
        (401, "does the handler verify with HOOKFWD_SECRET?"),
        (403, "does the handler verify with HOOKFWD_SECRET?"),
    ] {
        recorder.answer(status);
        let run = hookfwd_run(&fake, state.path(), &doctor).await;
        assert_eq!(run.code, Some(1), "{status}: stdout: {}\nstderr: {}", run.stdout, run.stderr);
        let line = handler(&run);
        assert_eq!(line["level"], "fail", "{line}");
        assert_eq!(line["message"], format!("{to} answered {status} to a ping signed with the local secret"));
        assert_eq!(line["hint"], hint, "{line}");
    }

    // Without a local secret that is the one cause said: the handler's 401 to an unsigned ping points at it.
    let api_url = fake.api_url().to_string();
    let env = [("GITHUB_TOKEN", OsStr::new(TOKEN)), ("HOOKFWD_STATE_DIR", state.path().as_os_str())];
    let run = Running::hookfwd(doctor.iter().copied().chain(["--api-url", &api_url]), &env).finish().await;
    assert_eq!(run.code, Some(1), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let lines = run.json();
    let secret = lines.iter().find(|line| line["check"] == "local secret").expect("a local secret check");
    assert_eq!(secret["level"], "fail", "{secret}");
    assert_eq!(handler(&run)["hint"], "set HOOKFWD_SECRET to the secret the handler verifies with");
    run.assert_never_printed(&[TOKEN, SECRET]);
}

/// Scripts tell `--json` lines apart by `type`: every line of `dev`, `send`, `hooks list` and `doctor` has one.
#[tokio::test(flavor = "multi_thread")]
async fn every_json_line_of_dev_send_hooks_list_and_doctor_has_a_type() {
    let (fake, _) = github().await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let (hook_url, to) = (fake.blackhole_url(), handler.url());
    let dir = state.path().join("state");
    let dir = dir.to_str().unwrap();

    let dev_args = ["dev", "--repo", REPO, "--to", &to, "--hook-url", &hook_url, "--interval", "100ms"];
    let dev = Run::start(&fake, TOKEN, state.path(), &[&dev_args[..], &["--state-dir", dir, "--json"]].concat());
    dev.wait_line(r#""type":"ready""#).await;
    fake.emit(REPO, "push", marked(None, "typed")).await;
    dev.wait_line(r#""type":"forwarded""#).await;
    dev.0.signal(libc::SIGTERM);
    let mut runs = vec![("dev", dev.finish().await)];
    let send =
        Running::hookfwd(["send", "--event", "push", "--to", &to, "--json"], &[("HOOKFWD_SECRET", SECRET.as_ref())]);
    runs.push(("send", send.finish().await));
    let list = ["hooks", "list", "--repo", REPO, "--hook-url", &hook_url, "--json"];
    runs.push(("hooks list", hookfwd_run(&fake, state.path(), &list).await));
    let doctor = ["doctor", "--repo", REPO, "--hook-url", &hook_url, "--state-dir", dir, "--json"];
    runs.push(("doctor", hookfwd_run(&fake, state.path(), &doctor).await));

    for (command, run) in &runs {
        let types: Vec<String> =
            run.json().iter().map(|line| line["type"].as_str().unwrap_or("none").to_string()).collect();
        assert!(!types.is_empty(), "{command} printed no JSON line; stderr: {}", run.stderr);
        let expected: &[&str] = match *command {
            "dev" => &["hook", "ready", "forwarded"],
            "send" => &["sent"],
            "hooks list" => &["hook"],
            _ => &["check"],
        };
        for kind in &types {
            assert!(kind != "none", "{command} printed a line without a type: {}", run.stdout);
        }
        for kind in expected {
            assert!(types.iter().any(|seen| seen == kind), "{command} printed no `{kind}` line: {}", run.stdout);
        }
    }
    let doctor = &runs[3].1;
    assert!(doctor.json().iter().all(|line| line["type"] == "check" && line["check"].is_string()), "{}", doctor.stdout);
}
