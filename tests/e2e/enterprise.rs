//! Two promises through the real `hookfwd` binary: GitHub Enterprise Server (the API under
//! `https://HOST/api/v3`) and GitHub Apps (the App hook's deliveries, read with an RS256 JWT).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::{Account, Received, Recorder, Running};
use fake_github::{FakeGitHub, HookSpec};
use github::Secret;
use serde_json::{Value, json};

const TOKEN: &str = "ghp_enterpriseE2eTokenNeverPrinted0042";
const SECRET: &str = "enterprise-local-secret-never-printed-91c4";
/// What GitHub signs with; hookfwd must re-sign with [`SECRET`] instead.
const GITHUB_SIDE_SECRET: &str = "github-side-secret-never-printed-5d20";
const REPO: &str = "octo-corp/ledger";
const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };
const APP_ID: u64 = 424_242;
const INSTALLATION_ID: u64 = 9_090_901;

/// One of the test-only keys in `crates/github/tests/keys` (see its README).
fn key(name: &str) -> PathBuf {
    e2e::workspace_root().join("crates/github/tests/keys").join(name)
}

/// Every request carries a valid signature made with the local secret over the exact body.
fn assert_signed(received: &[Received]) {
    let secret = Secret::new(SECRET);
    for request in received {
        let signature = request.header("x-hub-signature-256").expect("signed");
        assert!(github::signature::verify_sha256(&secret, &request.body, signature), "bad signature");
    }
}

/// Waits until every guid in `expected` was received, then asserts each arrived exactly once.
async fn assert_each_once(handler: &Recorder, expected: &HashSet<String>) -> Vec<Received> {
    let received = handler
        .wait_for(Duration::from_secs(60), "every delivery", |got| {
            let seen: HashSet<&str> = got.iter().filter_map(|r| r.header("x-github-delivery")).collect();
            expected.iter().all(|guid| seen.contains(guid.as_str()))
        })
        .await;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for request in &received {
        *counts.entry(request.header("x-github-delivery").expect("a delivery id")).or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "forwarded more than once: {repeated:?}");
    received
}

/// The non-empty lines of the PEM body (not its BEGIN/END armour), none of which may ever be printed.
fn pem_body_lines(path: &Path) -> Vec<String> {
    let pem = std::fs::read_to_string(path).expect("the test key reads");
    pem.lines().filter(|line| !line.is_empty() && !line.starts_with("-----")).map(str::to_string).collect()
}

// ---------------------------------------------------------------------------------------------
// GitHub Enterprise Server

/// A GHES-like fake under `/api/v3` with the repository and a hook on the blackhole that signs
/// with GitHub's own secret, and `count` deliveries already recorded on it.
async fn enterprise_with_backlog(count: usize) -> (FakeGitHub, u64, HashSet<String>) {
    let fake = FakeGitHub::start_with_prefix("/api/v3").await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_repo(REPO);
    let mut spec = HookSpec::new(fake.blackhole_url());
    spec.secret = Some(GITHUB_SIDE_SECRET.to_string());
    let hook = fake.add_hook(REPO, spec);
    let ids = fake.emit_many(REPO, "issues", (0..count).map(|n| ACCOUNT.issue_opened(n)).collect()).await;
    assert_eq!(ids.len(), count);
    let guids: HashSet<String> = fake.deliveries(hook).into_iter().map(|d| d.guid).collect();
    assert_eq!(guids.len(), count);
    (fake, hook, guids)
}

/// `https://HOST/api/v3` as a user types it: no trailing slash.
fn typed_api_url(fake: &FakeGitHub) -> String {
    fake.api_url().as_str().trim_end_matches('/').to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn enterprise_server_backlog_is_paged_under_api_v3_and_forwarded_once_each() {
    let backlog = 160;
    let (fake, hook, mut expected) = enterprise_with_backlog(backlog).await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let api_url = typed_api_url(&fake);
    assert!(api_url.ends_with("/api/v3"), "{api_url}");
    let hook_url = fake.blackhole_url();
    let state_dir = state.path().to_str().unwrap();

    let dev = Running::hookfwd(
        [
            "dev",
            "--api-url",
            &api_url,
            "--repo",
            REPO,
            "--to",
            &handler.url(),
            "--hook-url",
            &hook_url,
            "--since",
            "1h",
            "--interval",
            "100ms",
            "--state-dir",
            state_dir,
            "--json",
        ],
        &[("HOOKFWD_SECRET", OsStr::new(SECRET)), ("GITHUB_TOKEN", OsStr::new(TOKEN))],
    );
    let line: Value = serde_json::from_str(&dev.wait_line("\"type\":\"hook\"").await).unwrap();
    assert_eq!(line["hook_id"], hook, "the existing hook was found under the prefix: {line}");
    assert_eq!(line["origin"], "found", "{line}");
    dev.wait_line("\"type\":\"ready\"").await;

    // Then a live one, which must arrive once too.
    let live = fake.emit(REPO, "issues", ACCOUNT.issue_opened(backlog)).await;
    assert_eq!(live.len(), 1);
    expected.extend(fake.deliveries(hook).into_iter().filter(|d| d.id == live[0]).map(|d| d.guid));
    assert_eq!(expected.len(), backlog + 1);

    let received = assert_each_once(&handler, &expected).await;
    assert_eq!(received.len(), backlog + 1, "nothing but the backlog and the live delivery");
    assert_signed(&received);
    for request in &received {
        assert_eq!(request.header("x-github-event"), Some("issues"));
        assert_eq!(request.header("x-github-hook-id"), Some(hook.to_string().as_str()));
    }
    // Oldest first: by `delivered_at` (GitHub gives whole seconds), then id. emit_many sends
    // concurrently, so neither the payloads' numbers nor the ids alone give that order.
    let keys: HashMap<String, (i64, u64)> =
        fake.deliveries(hook).into_iter().map(|d| (d.guid, (d.delivered_at.timestamp(), d.id))).collect();
    let order: Vec<(i64, u64)> = received.iter().map(|r| keys[r.header("x-github-delivery").unwrap()]).collect();
    assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "forwarded out of order: {order:?}");
    // A page holds at most 100, so the backlog took the Link under /api/v3 at least once.
    assert!(fake.stats().list_deliveries >= 2, "{:?}", fake.stats());

    dev.signal(libc::SIGTERM);
    let finished = dev.finish().await;
    assert_eq!(finished.code, Some(0), "stderr: {}", finished.stderr);
    let forwarded = finished.json().into_iter().filter(|line| line["type"] == "forwarded").count();
    assert_eq!(forwarded, backlog + 1, "one feed line per delivery");
    finished.assert_never_printed(&[TOKEN, SECRET, GITHUB_SIDE_SECRET]);
}

#[tokio::test(flavor = "multi_thread")]
async fn enterprise_server_hooks_list_and_doctor_work_under_api_v3() {
    let (fake, hook, _) = enterprise_with_backlog(1).await;
    let other = fake.add_hook(REPO, HookSpec::new("https://ci.example.com/hooks").events(&["push"]));
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let hook_url = fake.blackhole_url();
    let env = [("GITHUB_TOKEN", OsStr::new(TOKEN)), ("HOOKFWD_SECRET", OsStr::new(SECRET))];

    // Both the typed form and the one with a trailing slash.
    for api_url in [typed_api_url(&fake), fake.api_url().to_string()] {
        let list = Running::hookfwd(
            ["hooks", "list", "--api-url", &api_url, "--repo", REPO, "--hook-url", &hook_url, "--json"],
            &env,
        )
        .finish()
        .await;
        assert_eq!(list.code, Some(0), "{api_url}: {}", list.stderr);
        list.assert_never_printed(&[TOKEN, SECRET]);
        let hooks = list.json();
        assert_eq!(hooks.len(), 2, "{}", list.stdout);
        let mine = hooks.iter().find(|line| line["hook_id"] == hook).expect("our hook is listed");
        assert_eq!(mine["created_by_hookfwd"], false, "made by the fake: {mine}");
        assert_eq!(mine["hook_url"], json!(hook_url));
        let theirs = hooks.iter().find(|line| line["hook_id"] == other).expect("the other hook is listed");
        assert_eq!(theirs["created_by_hookfwd"], false, "{theirs}");

        let doctor = Running::hookfwd(
            ["doctor", "--api-url", &api_url, "--repo", REPO, "--hook-url", &hook_url, "--state-dir", state_dir],
            &env,
        )
        .finish()
        .await;
        assert_eq!(doctor.code, Some(0), "{api_url}\nstdout: {}\nstderr: {}", doctor.stdout, doctor.stderr);
        assert!(!doctor.stdout.contains('✗'), "{}", doctor.stdout);
        for expected in [format!("✓ {REPO}: visible"), format!("hook {hook} delivers to {hook_url}")] {
            assert!(doctor.stdout.contains(&expected), "no `{expected}` in {}", doctor.stdout);
        }
        doctor.assert_never_printed(&[TOKEN, SECRET]);
    }
}

// ---------------------------------------------------------------------------------------------
// GitHub App

/// A fake with the App registered (its test public key) and the repository.
async fn fake_with_app() -> FakeGitHub {
    let fake = FakeGitHub::start().await;
    let public = std::fs::read_to_string(key("app-test-key.pub.pem")).expect("the test public key reads");
    fake.add_app(APP_ID, &public, INSTALLATION_ID);
    fake.add_repo(REPO);
    fake
}

/// `hookfwd dev --app …` with the App's credentials and no token in the environment.
fn start_app_dev(fake: &FakeGitHub, key: &Path, target: &str, state: &Path, extra: &[&str]) -> Running {
    start_app_dev_with(fake, key, target, state, extra, &[])
}

/// [`start_app_dev`] with more environment.
fn start_app_dev_with(
    fake: &FakeGitHub,
    key: &Path,
    target: &str,
    state: &Path,
    extra: &[&str],
    env: &[(&str, &OsStr)],
) -> Running {
    start_app_dev_as(APP_ID, fake, key, target, state, extra, env)
}

/// [`start_app_dev_with`] as the App `app_id`.
fn start_app_dev_as(
    app_id: u64,
    fake: &FakeGitHub,
    key: &Path,
    target: &str,
    state: &Path,
    extra: &[&str],
    env: &[(&str, &OsStr)],
) -> Running {
    let api_url = fake.api_url().to_string();
    let app_id = app_id.to_string();
    let mut args: Vec<&OsStr> = ["dev", "--app", "--app-id", &app_id, "--app-key"].map(OsStr::new).to_vec();
    args.push(key.as_os_str());
    args.extend(["--to", target, "--api-url", &api_url, "--interval", "100ms", "--json"].map(OsStr::new));
    args.push(OsStr::new("--state-dir"));
    args.push(state.as_os_str());
    args.extend(extra.iter().map(OsStr::new));
    let mut env = env.to_vec();
    env.push(("HOOKFWD_SECRET", OsStr::new(SECRET)));
    Running::hookfwd(args, &env)
}

#[tokio::test(flavor = "multi_thread")]
async fn app_hook_deliveries_are_forwarded_once_each_with_the_app_jwt() {
    let fake = fake_with_app().await;
    let app_hook = fake.app_hook_id(APP_ID).expect("the App has a hook");
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let pem = key("app-test-key.pem");

    let dev = start_app_dev(&fake, &pem, &handler.url(), state.path(), &[]);
    let hook: Value = serde_json::from_str(&dev.wait_line("\"type\":\"hook\"").await).unwrap();
    assert_eq!(hook["origin"], "app", "the hook line names the App source: {hook}");
    let ready: Value = serde_json::from_str(&dev.wait_line("\"type\":\"ready\"").await).unwrap();
    let credentials = ready["token"].as_str().unwrap_or_default();
    assert!(credentials.contains(&format!("GitHub App {APP_ID}")), "the Ready line names the App: {ready}");

    let mut ids = Vec::new();
    for n in 0..5 {
        ids.extend(fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await);
    }
    ids.extend(fake.emit_sample(REPO, "push").await.expect("a push sample"));
    assert_eq!(ids.len(), 6, "one App hook, one delivery each");
    let expected: HashSet<String> =
        fake.deliveries(app_hook).into_iter().filter(|d| ids.contains(&d.id)).map(|d| d.guid).collect();
    assert_eq!(expected.len(), 6);

    let received = assert_each_once(&handler, &expected).await;
    assert_signed(&received);
    for request in &received {
        assert_eq!(request.header("x-github-hook-installation-target-type"), Some("integration"), "{request:?}");
        assert_eq!(request.header("x-github-hook-installation-target-id"), Some(APP_ID.to_string().as_str()));
    }

    dev.signal(libc::SIGTERM);
    let finished = dev.finish().await;
    assert_eq!(finished.code, Some(0), "stderr: {}", finished.stderr);
    let mut secrets = vec![SECRET.to_string()];
    secrets.extend(pem_body_lines(&pem));
    finished.assert_never_printed(&secrets.iter().map(String::as_str).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_the_app_does_not_have_is_one_line_and_exit_3() {
    let fake = fake_with_app().await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let wrong = key("other-test-key.pem");

    let finished = start_app_dev(&fake, &wrong, &handler.url(), state.path(), &[]).finish().await;
    assert_eq!(finished.code, Some(3), "stdout: {}\nstderr: {}", finished.stdout, finished.stderr);
    // One line saying what failed (a `hint:` line may follow it).
    let lines: Vec<&str> =
        finished.stderr.lines().filter(|line| !line.trim().is_empty() && !line.starts_with("hint:")).collect();
    assert_eq!(lines.len(), 1, "one clear line: {}", finished.stderr);
    assert!(lines[0].contains("401") || lines[0].to_lowercase().contains("app"), "names the failure: {}", lines[0]);
    assert!(!finished.stderr.contains("panicked") && !finished.stderr.contains("RUST_BACKTRACE"));
    let mut secrets = vec![SECRET.to_string()];
    secrets.extend(pem_body_lines(&wrong));
    finished.assert_never_printed(&secrets.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(handler.received().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_rule_and_an_app_rule_in_one_process_with_app_credentials_only() {
    let fake = fake_with_app().await;
    let app_hook = fake.app_hook_id(APP_ID).expect("the App has a hook");
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let pem = key("app-test-key.pem");
    let hook_url = fake.blackhole_url();
    let installation = INSTALLATION_ID.to_string();
    // Without GitHub's ping for the hook hookfwd creates (which it forwards), so the handler gets only the events.
    fake.set_ping_on_create(false);

    // The repository's hook is managed with an installation token, the App hook with the JWT. Two
    // rules, as `dev --app --repo` makes (see `with_app_repo_is_still_a_repository_hook_of_its_own`).
    let repo_rule = json!({"from": [REPO], "to": handler.url(), "hook": {"config": {"url": hook_url}}}).to_string();
    let app_rule = json!({"app": true, "to": handler.url()}).to_string();
    let (app_id, api_url) = (APP_ID.to_string(), fake.api_url().to_string());
    let mut args: Vec<&OsStr> =
        ["forward", "--rule", &repo_rule, "--rule", &app_rule, "--app-id", &app_id, "--app-key"]
            .map(OsStr::new)
            .to_vec();
    args.push(pem.as_os_str());
    args.extend(
        ["--api-url", &api_url, "--interval", "100ms", "--json", "--no-inspect", "--state-dir"].map(OsStr::new),
    );
    args.push(state.path().as_os_str());
    let env = [("HOOKFWD_INSTALLATION_ID", OsStr::new(&installation)), ("HOOKFWD_SECRET", OsStr::new(SECRET))];
    let dev = Running::hookfwd(args, &env);
    let ready: Value = serde_json::from_str(&dev.wait_line("\"type\":\"ready\"").await).unwrap();
    assert_eq!(ready["sources"].as_array().map(Vec::len), Some(2), "both sources are forwarded: {ready}");
    let hooks: Vec<Value> = dev
        .lines()
        .iter()
        .filter(|line| line.contains("\"type\":\"hook\""))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let repo_hook = hooks.iter().find(|hook| hook["source"] == REPO).expect("the repository's hook")["hook_id"]
        .as_u64()
        .expect("its id");

    let ids = fake.emit(REPO, "issues", ACCOUNT.issue_opened(7)).await;
    assert_eq!(ids.len(), 2, "the repository's hook and the App's each record one delivery");
    let guid = |hook: u64| fake.deliveries(hook).into_iter().find(|d| ids.contains(&d.id)).expect("recorded").guid;
    // GitHub gives one event the same guid on every hook; each hook's delivery is forwarded once.
    assert_eq!(guid(repo_hook), guid(app_hook));
    let received = handler.wait_for(Duration::from_secs(60), "both deliveries", |got| got.len() >= 2).await;
    assert_signed(&received);
    let mut kinds: Vec<&str> =
        received.iter().filter_map(|r| r.header("x-github-hook-installation-target-type")).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["integration", "repository"], "{received:?}");

    // And nothing more: a later delivery on the App hook alone marks the end of what was sent.
    fake.set_app_hook(APP_ID, HookSpec::new(hook_url.clone()).events(&["push"]));
    let marker = fake.emit_sample(REPO, "push").await.expect("a push sample");
    assert_eq!(marker.len(), 2);
    let received = handler.wait_for(Duration::from_secs(60), "the push deliveries", |got| got.len() >= 4).await;
    assert_eq!(received.len(), 4, "each hook's delivery once: {received:?}");

    dev.signal(libc::SIGTERM);
    let finished = dev.finish().await;
    assert_eq!(finished.code, Some(0), "stderr: {}", finished.stderr);
    let mut secrets = vec![SECRET.to_string()];
    secrets.extend(pem_body_lines(&pem));
    finished.assert_never_printed(&secrets.iter().map(String::as_str).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn app_installation_and_only_repo_choose_among_the_app_hooks_deliveries_before_any_get() {
    let fake = fake_with_app().await;
    const OTHER_REPO: &str = "octo-corp/elsewhere";
    const OTHER_INSTALLATION: u64 = 777;
    fake.add_repo(OTHER_REPO);
    let app_hook = fake.app_hook_id(APP_ID).expect("the App has a hook");
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let pem = key("app-test-key.pem");
    let installation = INSTALLATION_ID.to_string();
    let extra = ["--installation", &installation, "--only-repo", REPO];
    let dev = start_app_dev(&fake, &pem, &handler.url(), state.path(), &extra);
    let ready: Value = serde_json::from_str(&dev.wait_line("\"type\":\"ready\"").await).unwrap();
    assert_eq!(ready["sources"].as_array().map(Vec::len), Some(1), "only the App hook, no hook of the repository");

    let in_installation = |repo: &str, installation: u64, n: usize| {
        json!({"action": "opened", "number": n, "installation": {"id": installation},
               "repository": {"full_name": repo}, "sender": {"login": "octocat"}})
    };
    let mut wanted = Vec::new();
    wanted.extend(fake.emit(REPO, "issues", in_installation(REPO, INSTALLATION_ID, 1)).await);
    fake.emit(REPO, "issues", in_installation(REPO, OTHER_INSTALLATION, 2)).await;
    fake.emit(OTHER_REPO, "issues", in_installation(OTHER_REPO, INSTALLATION_ID, 3)).await;
    fake.emit(REPO, "issues", in_installation(REPO, OTHER_INSTALLATION, 4)).await;
    // Last, so that once it is forwarded every earlier one was settled (forwarding keeps GitHub's order).
    wanted.extend(fake.emit(REPO, "issues", in_installation(REPO, INSTALLATION_ID, 5)).await);
    let listed = fake.deliveries(app_hook);
    assert_eq!(listed.len(), 5, "the App hook records every installation's deliveries");
    assert_eq!(listed.iter().filter(|d| d.installation_id == Some(OTHER_INSTALLATION)).count(), 2);
    let expected: HashSet<String> = listed.iter().filter(|d| wanted.contains(&d.id)).map(|d| d.guid.clone()).collect();

    let received = assert_each_once(&handler, &expected).await;
    dev.wait_lines("\"type\":\"forwarded\"", 2).await;
    drop(dev);
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(handler.received().len(), 2, "nothing of another installation or repository");
    assert_eq!(fake.stats().get_delivery, 2, "the others were never fetched");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_app_repo_is_still_a_repository_hook_of_its_own() {
    let fake = fake_with_app().await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let pem = key("app-test-key.pem");
    let installation = INSTALLATION_ID.to_string();

    // Without a hook URL, `--repo` needs one, and the refusal names the flag that filters now.
    let extra = ["--installation", &installation, "--repo", REPO];
    let refused = start_app_dev(&fake, &pem, &handler.url(), state.path(), &extra).finish().await;
    assert_eq!(refused.code, Some(2), "stderr: {}", refused.stderr);
    assert!(refused.stderr.contains("--hook-url") && refused.stderr.contains("--only-repo"), "{}", refused.stderr);

    let hook_url = fake.blackhole_url();
    let extra = ["--installation", &installation, "--repo", REPO, "--hook-url", &hook_url];
    let dev = start_app_dev(&fake, &pem, &handler.url(), state.path(), &extra);
    let ready: Value = serde_json::from_str(&dev.wait_line("\"type\":\"ready\"").await).unwrap();
    let sources = ready["sources"].as_array().expect("sources");
    assert_eq!(sources.len(), 2, "the App hook and the repository's own hook: {ready}");
    let repository = sources.iter().find(|source| source["source"] == REPO).expect("the repository's hook");
    assert_eq!(repository["hook_url"], hook_url.as_str(), "{ready}");
}

/// A second App, with the fake GitHub's own test key (see `crates/fake-github/tests/keys`).
const OTHER_APP_ID: u64 = 515_151;

fn other_app_key(name: &str) -> PathBuf {
    e2e::workspace_root().join("crates/fake-github/tests/keys").join(name)
}

/// The guids of `app_id`'s hook deliveries among `ids`.
fn app_guids(fake: &FakeGitHub, app_id: u64, ids: &[u64]) -> HashSet<String> {
    let hook = fake.app_hook_id(app_id).expect("the App has a hook");
    fake.deliveries(hook).into_iter().filter(|d| ids.contains(&d.id)).map(|d| d.guid).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_apps_forward_side_by_side_from_one_state_directory() {
    let fake = fake_with_app().await;
    let public = std::fs::read_to_string(other_app_key("app.pub.pem")).expect("the test public key reads");
    fake.add_app(OTHER_APP_ID, &public, INSTALLATION_ID + 1);
    let (first, second) = (Recorder::start().await, Recorder::start().await);
    let state = tempfile::tempdir().unwrap();

    let one = start_app_dev(&fake, &key("app-test-key.pem"), &first.url(), state.path(), &[]);
    one.wait_line("\"type\":\"ready\"").await;
    let two = start_app_dev_as(OTHER_APP_ID, &fake, &other_app_key("app.pem"), &second.url(), state.path(), &[], &[]);
    two.wait_line("\"type\":\"ready\"").await;
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.extend(fake.emit(REPO, "issues", ACCOUNT.issue_opened(n)).await);
    }
    let (mine, theirs) = (app_guids(&fake, APP_ID, &ids), app_guids(&fake, OTHER_APP_ID, &ids));
    assert_eq!((mine.len(), theirs.len()), (4, 4), "each App's hook records every event");
    let got = assert_each_once(&first, &mine).await;
    assert_eq!(got.len(), 4, "only its own App's deliveries: {got:?}");
    let got = assert_each_once(&second, &theirs).await;
    assert_eq!(got.len(), 4, "only its own App's deliveries: {got:?}");
    for dev in [one, two] {
        dev.signal(libc::SIGTERM);
        let finished = dev.finish().await;
        assert_eq!(finished.code, Some(0), "stderr: {}", finished.stderr);
    }
    let dir = state.path().join(format!("127.0.0.1-{}", fake.api_url().port().unwrap()));
    for app in [APP_ID, OTHER_APP_ID] {
        assert!(dir.join(format!("app-{app}-hook")).is_file(), "each App has its own ledger");
    }
}
