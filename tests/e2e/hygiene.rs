//! Issue 21's hygiene through the real binary: `replay` with no selector, the hook URL rule against a stand-in,
//! `hooks rm` and `hooks prune`, the creation ping under `--events`, and the words a mistake gets.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use e2e::{Account, Finished, Recorder, Running};
use fake_github::{FakeGitHub, HookSpec};
use serde_json::Value;

const TOKEN: &str = "ghp_e2eHygieneTokenNeverPrinted0000021";
const SECRET: &str = "hygiene-secret-never-printed-21c4";
const REPO: &str = "octo-org/hello-world";
const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };
const SCOPES: &str = "repo, admin:repo_hook";

/// `hookfwd ARGS --api-url (the fake's)`, run to the end; the token and secret never printed.
async fn run(fake: &FakeGitHub, args: &[&str]) -> Finished {
    let finished = ACCOUNT.against(fake, args, &[]).finish().await;
    finished.assert_never_printed(&[TOKEN, SECRET]);
    finished
}

/// `hookfwd dev` on `repo` against `fake`, its hook at `hook_url`, polling every 100 ms, with `--json` and `extra`.
fn dev(fake: &FakeGitHub, repo: &str, hook_url: &str, to: &str, state: &Path, extra: &[&str]) -> Running {
    let state = state.to_str().expect("a UTF-8 temp path");
    let args = ["dev", "--repo", repo, "--to", to, "--hook-url", hook_url, "--state-dir", state, "--interval", "100ms"];
    ACCOUNT.against(fake, &[&args[..], &["--json", "--no-inspect"], extra].concat(), &[])
}

/// Runs `dev` until it is ready, stops it, and returns the id of the hook its `hook` line names.
async fn created_by_dev(fake: &FakeGitHub, repo: &str, hook_url: &str, to: &str, state: &Path) -> u64 {
    let run = dev(fake, repo, hook_url, to, state, &[]);
    let hook: Value = serde_json::from_str(&run.wait_line("\"type\":\"hook\"").await).unwrap();
    assert_eq!(hook["origin"], "created", "{hook}");
    run.wait_line("\"type\":\"ready\"").await;
    run.signal(libc::SIGINT);
    assert_eq!(run.finish().await.code, Some(0));
    hook["hook_id"].as_u64().expect("a hook id")
}

/// The directory of this fake's ledgers in `state`.
fn instance_dir(fake: &FakeGitHub, state: &Path) -> PathBuf {
    let api = fake.api_url();
    state.join(format!("{}-{}", api.host_str().unwrap(), api.port().unwrap()))
}

/// The ids of `repo`'s hooks, as `hooks list --json` gives them.
async fn hook_ids(fake: &FakeGitHub, repo: &str) -> Vec<u64> {
    let listed = run(fake, &["hooks", "list", "--repo", repo, "--json"]).await;
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    listed.json().iter().map(|line| line["hook_id"].as_u64().or(line["id"].as_u64()).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_with_no_selector_refuses_off_a_terminal_and_a_since_time_sends() {
    let (fake, _) = ACCOUNT.fake_with_hook(SCOPES).await;
    let handler = Recorder::start().await;
    for n in 0..2 {
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await;
    }
    let (to, hook_url) = (handler.url(), fake.blackhole_url());
    let replay = ["replay", "--repo", REPO, "--to", &to, "--hook-url", &hook_url];

    let refused = run(&fake, &replay).await;
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert_eq!(refused.stderr.lines().count(), 1, "one sentence: {}", refused.stderr);
    for selector in ["--since", "--event", "--guid", "--parked"] {
        assert!(refused.stderr.contains(selector), "names {selector}: {}", refused.stderr);
    }
    assert!(handler.received().is_empty(), "nothing was sent");

    // A time works as --since does, and the count is a feed line, on stdout.
    let hour_ago = (Utc::now() - chrono::TimeDelta::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let sent = run(&fake, &[&replay[..], &["--since", &hour_ago]].concat()).await;
    assert_eq!(sent.code, Some(0), "{}", sent.stderr);
    assert_eq!(handler.received().len(), 2);
    assert_eq!(sent.stdout.lines().last(), Some("replayed 2 deliveries"), "{}", sent.stdout);
    assert_eq!(sent.stderr, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_made_at_a_loopback_url_against_a_stand_in_is_warned_about_once() {
    let fake = ACCOUNT.fake(SCOPES).await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    assert!(hook_url.starts_with("http://127.0.0.1:"), "{hook_url}");

    let made = dev(&fake, REPO, &hook_url, &handler.url(), state.path(), &[]);
    let warning: Value = serde_json::from_str(&made.wait_line("loopback_hook_url").await).unwrap();
    assert_eq!(warning["type"], "warning");
    let message = warning["message"].as_str().unwrap();
    assert!(message.contains(&hook_url) && message.contains("docs/deploy.md"), "{message}");
    made.wait_line("\"type\":\"ready\"").await;
    made.signal(libc::SIGINT);
    assert_eq!(made.finish().await.code, Some(0), "a warning, not a refusal");

    // Found again, it is the user's hook as it stands: nothing more is said.
    let found = dev(&fake, REPO, &hook_url, &handler.url(), state.path(), &[]);
    found.wait_line("\"type\":\"ready\"").await;
    found.signal(libc::SIGINT);
    let finished = found.finish().await;
    assert!(!finished.stdout.contains("loopback_hook_url"), "{}", finished.stdout);

    // --allow-private-hook-url says it is meant.
    let other = tempfile::tempdir().unwrap();
    let allowed =
        dev(&fake, REPO, &format!("{hook_url}/allowed"), &handler.url(), other.path(), &["--allow-private-hook-url"]);
    allowed.wait_line("\"origin\":\"created\"").await;
    allowed.wait_line("\"type\":\"ready\"").await;
    allowed.signal(libc::SIGINT);
    let finished = allowed.finish().await;
    assert!(!finished.stdout.contains("loopback_hook_url"), "{}", finished.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_rm_of_an_unknown_id_says_it_does_not_exist_without_asking_for_yes() {
    let (fake, hook) = ACCOUNT.fake_with_hook(SCOPES).await;
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let finished = run(&fake, &["hooks", "rm", "999", "--repo", REPO, "--state-dir", state_dir]).await;
    assert_eq!(finished.code, Some(1), "{}", finished.stderr);
    assert_eq!(
        finished.stderr.lines().next(),
        Some(&*format!(
            "hookfwd: {REPO} hook 999 does not exist, or the token cannot see it; `hookfwd hooks list --repo {REPO}` \
             lists its hooks"
        )),
        "{}",
        finished.stderr
    );
    assert!(!finished.stderr.contains("--yes"), "{}", finished.stderr);
    assert_eq!(hook_ids(&fake, REPO).await, [hook], "the hook that exists is untouched");

    // Without --repo, an id the state directory does not know asks for one.
    let finished = run(&fake, &["hooks", "rm", &hook.to_string(), "--state-dir", state_dir]).await;
    assert_eq!(finished.code, Some(2), "{}", finished.stderr);
    assert!(finished.stderr.contains("name its repository with --repo OWNER/REPO"), "{}", finished.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_rm_finds_the_repository_of_a_hook_hookfwd_created_in_the_state_directory() {
    let fake = ACCOUNT.fake(SCOPES).await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    // `octo-org/hello-world` could be read back from its file names three ways; GitHub tells which.
    let id = created_by_dev(&fake, REPO, &fake.blackhole_url(), &handler.url(), state.path()).await;
    let finished = run(&fake, &["hooks", "rm", &id.to_string(), "--state-dir", state.path().to_str().unwrap()]).await;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    assert_eq!(finished.stdout.trim(), format!("✓ deleted {REPO} hook {id}"));
    assert!(hook_ids(&fake, REPO).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_prune_lists_then_deletes_only_the_hooks_hookfwd_created_that_went_unused() {
    const BUSY: &str = "octo-org/busy";
    let fake = ACCOUNT.fake(SCOPES).await;
    fake.add_repo(BUSY);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let idle = created_by_dev(&fake, REPO, &fake.blackhole_url(), &handler.url(), state.path()).await;
    let busy = created_by_dev(&fake, BUSY, &fake.blackhole_url(), &handler.url(), state.path()).await;
    let by_hand = fake.add_hook(REPO, HookSpec::new("https://elsewhere.example/hook"));

    // Ten days pass: at GitHub (the hooks' creation, their pings), and in the ledgers' last reads.
    let ten_days = Duration::from_secs(10 * 24 * 3600);
    fake.age(ten_days);
    let then = (Utc::now() - chrono::TimeDelta::days(10)).timestamp_nanos_opt().unwrap();
    for (repo, id) in [(REPO, idle), (BUSY, busy)] {
        let ledger = instance_dir(&fake, state.path()).join(format!("repos-{}-hooks-{id}", repo.replace('/', "-")));
        let text = std::fs::read_to_string(&ledger).expect("dev wrote the ledger");
        let aged: Vec<String> = text
            .lines()
            .map(|line| if line.starts_with("c ") { format!("c {then}") } else { line.to_string() })
            .collect();
        std::fs::write(&ledger, aged.join("\n") + "\n").unwrap();
    }
    // One of them had a delivery since.
    fake.emit(BUSY, "issues", ACCOUNT.issue_opened(1)).await;

    let listed = run(&fake, &["hooks", "prune", "--state-dir", state_dir]).await;
    assert_eq!(listed.code, Some(2), "off a terminal it only lists: {}", listed.stderr);
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", listed.stdout);
    assert!(
        lines[0].starts_with(&format!("{REPO} hook {idle}  ")) && lines[0].ends_with("unused for 10days"),
        "{}",
        lines[0]
    );
    assert_eq!(listed.stderr.trim(), "hookfwd: pass --yes to delete the 1 hook above");
    assert_eq!(hook_ids(&fake, REPO).await, [idle, by_hand], "nothing deleted yet");

    let pruned = run(&fake, &["hooks", "prune", "--state-dir", state_dir, "--yes", "--json"]).await;
    assert_eq!(pruned.code, Some(0), "{}", pruned.stderr);
    let kinds: Vec<String> = pruned.json().iter().map(|line| line["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds, ["unused", "deleted"], "{}", pruned.stdout);
    assert_eq!(hook_ids(&fake, REPO).await, [by_hand], "one made by hand is never pruned");
    assert_eq!(hook_ids(&fake, BUSY).await, [busy], "one with a delivery in the last 7 days is in use");

    let again = run(&fake, &["hooks", "prune", "--state-dir", state_dir]).await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(again.stdout.trim(), "no hook hookfwd created has gone unused for 7days");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_creation_ping_is_forwarded_unless_events_leave_it_out() {
    for (asked, pinged) in [("issues,ping", true), ("issues", false)] {
        let fake = ACCOUNT.fake(SCOPES).await;
        let handler = Recorder::start().await;
        let state = tempfile::tempdir().unwrap();
        let run = dev(&fake, REPO, &fake.blackhole_url(), &handler.url(), state.path(), &["--events", asked]);
        run.wait_line("\"type\":\"ready\"").await;
        fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
        // Oldest first: a ping that is forwarded comes before the issue.
        let got = handler.wait_for(Duration::from_secs(30), "the issue", |got| {
            got.iter().any(|request| request.header("x-github-event") == Some("issues"))
        });
        let events: Vec<String> =
            got.await.iter().filter_map(|request| request.header("x-github-event").map(str::to_string)).collect();
        let expected: &[&str] = if pinged { &["ping", "issues"] } else { &["issues"] };
        assert_eq!(events, expected, "--events {asked}");
        run.signal(libc::SIGINT);
        let finished = run.finish().await;
        assert!(!finished.stdout.contains("not subscribed to ping"), "GitHub pings every hook: {}", finished.stdout);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_likely_slip_gets_what_was_probably_meant() {
    for (args, meant) in [
        (&["dve"][..], "a similar subcommand exists: 'dev'"),
        (&["send", "--event", "ping", "--to", ":3000"], "did you mean http://localhost:3000?"),
        (&["send", "--event", "ping", "--to", "3000/webhook"], "did you mean http://localhost:3000/webhook?"),
        (
            &["trigger", "ping", "--repo", "https://github.com/octo-org/hello-world"],
            "did you mean octo-org/hello-world?",
        ),
        (
            &["trigger", "ping", "--repo", "git@github.com:octo-org/hello-world.git"],
            "did you mean octo-org/hello-world?",
        ),
    ] {
        let finished = Running::hookfwd(args, &[]).finish().await;
        assert_eq!(finished.code, Some(2), "{args:?}: {}", finished.stderr);
        assert!(finished.stderr.contains(meant), "{args:?}: {}", finished.stderr);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn github_s_refusals_and_an_unreachable_api_are_one_sentence_each() {
    let fake = ACCOUNT.fake(SCOPES).await;
    let missing = run(&fake, &["hooks", "list", "--repo", "octo-org/nonexistent"]).await;
    assert_eq!(missing.code, Some(1), "{}", missing.stderr);
    assert_eq!(
        missing.stderr.lines().next(),
        Some("hookfwd: the hooks of octo-org/nonexistent: not found, or not visible to this token (404)"),
        "said once: {}",
        missing.stderr
    );

    // A port nothing listens on: the connection's fate in a few words, not the HTTP library's levels.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let finished = ACCOUNT.hookfwd(["hooks", "list", "--repo", REPO, "--api-url", &api], &[]).finish().await;
    assert_eq!(finished.code, Some(1), "{}", finished.stderr);
    assert_eq!(
        finished.stderr.lines().next(),
        Some(&*format!("hookfwd: could not reach the GitHub API at {api}: the connection was refused")),
        "{}",
        finished.stderr
    );
}
