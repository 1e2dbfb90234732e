//! Many sources on one token (issue 9): the poll interval stretched with a warning that says why,
//! `hookfwd_poll_interval_seconds`, polls and fetches spread under the fake's secondary limit, and
//! `--action` skipping deliveries before their payload is fetched.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use e2e::{Recorder, Running};
use fake_github::{FakeGitHub, HookSpec};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_budgetE2eTokenNeverPrinted00000777";
const SECRET: &str = "budget-e2e-secret-never-printed-9f1b";
const ORG: &str = "budget-org";

/// A fake that knows the token, with `repos` repositories of [`ORG`], each with a hook on the
/// fake's blackhole; their names and hook ids.
async fn fake_with_repos(repos: usize) -> (FakeGitHub, Vec<String>, Vec<u64>) {
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook, admin:org_hook");
    fake.set_ping_on_create(false);
    let names: Vec<String> = (0..repos).map(|n| format!("{ORG}/repo-{n:02}")).collect();
    let mut hooks = Vec::new();
    for name in &names {
        fake.add_repo(name);
        hooks.push(fake.add_hook(name, HookSpec::new(fake.blackhole_url())));
    }
    (fake, names, hooks)
}

/// `hookfwd dev` against the fake with the token and the local secret, `--json`, and `extra`.
fn dev(fake: &FakeGitHub, repos: &[String], target: &str, state: &Path, extra: &[&str]) -> Running {
    let (api, hook_url) = (fake.api_url().to_string(), fake.blackhole_url());
    let mut args: Vec<&OsStr> =
        ["dev", "--to", target, "--api-url", &api, "--hook-url", &hook_url, "--json"].map(OsStr::new).to_vec();
    for repo in repos {
        args.extend([OsStr::new("--repo"), OsStr::new(repo)]);
    }
    args.extend([OsStr::new("--state-dir"), state.as_os_str(), OsStr::new("--no-inspect")]);
    args.extend(extra.iter().map(OsStr::new));
    let env = [("GITHUB_TOKEN", OsStr::new(TOKEN)), ("HOOKFWD_SECRET", OsStr::new(SECRET))];
    Running::hookfwd(args, &env)
}

/// The fake's counters, read through its control surface as another process would.
async fn stats(fake: &FakeGitHub) -> Value {
    let url = format!("{}_fake/stats", fake.api_url());
    e2e::get(url).await.expect("the control surface answers").json().await.expect("stats are JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_sources_at_a_too_short_interval_poll_under_the_secondary_limit_and_say_so() {
    let (fake, repos, hooks) = fake_with_repos(30).await;
    // A fifth of GitHub's figure, so that 30 sources at 1 s are well over it; hookfwd is told the same.
    let lowered = e2e::http()
        .post(format!("{}_fake/secondary", fake.api_url()))
        .json(&json!({"per_minute": 300}))
        .send()
        .await
        .expect("the control surface answers");
    assert_eq!(lowered.status(), 204);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let admin = e2e::free_addr().to_string();
    let extra = ["--interval", "1s", "--secondary-limit", "300", "--admin-listen", &admin];
    let run = dev(&fake, &repos, &handler.url(), state.path(), &extra);

    let warning: Value = serde_json::from_str(&run.wait_line("list calls a minute").await).unwrap();
    assert_eq!(warning["type"], "warning");
    // hookfwd keeps to 80% of the limit and leaves a tenth of that for older pages: 216 polls a
    // minute, so 30 sources need 30 × 60 / 216 = 8.3 s, rounded up to 9 s.
    assert_eq!(
        warning["message"],
        "30 sources at 1s would need 1,800 list calls a minute on one endpoint, over GitHub's 300 per endpoint \
         (hookfwd keeps to 216); polling every 9s"
    );
    run.wait_line("\"type\":\"ready\"").await;
    let metrics = e2e::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("\nhookfwd_poll_interval_seconds 9.0\n"), "{metrics}");

    let mut guids = HashSet::new();
    for repo in &repos {
        let ids = fake.emit(repo, "issues", json!({"action": "opened", "repository": {"full_name": repo}})).await;
        assert_eq!(ids.len(), 1);
    }
    for hook in &hooks {
        guids.extend(fake.deliveries(*hook).into_iter().map(|delivery| delivery.guid));
    }
    assert_eq!(guids.len(), 30);
    let received = handler
        .wait_for(Duration::from_secs(90), "every repository's delivery", |got| {
            let seen: HashSet<&str> = got.iter().filter_map(|r| r.header("x-github-delivery")).collect();
            guids.iter().all(|guid| seen.contains(guid.as_str()))
        })
        .await;
    assert_eq!(received.len(), 30, "each delivery once");
    let counters = stats(&fake).await;
    assert_eq!(counters["secondary_limited"], 0, "no call met the secondary limit: {counters}");
    assert!(counters["list_deliveries"].as_u64().unwrap() >= 60, "every source polled: {counters}");
    drop(run);
}

#[tokio::test(flavor = "multi_thread")]
async fn action_forwards_only_that_action_and_never_fetches_the_others() {
    let (fake, repos, hooks) = fake_with_repos(1).await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let run = dev(&fake, &repos, &handler.url(), state.path(), &["--interval", "100ms", "--action", "opened"]);
    run.wait_line("\"type\":\"ready\"").await;
    let repo = &repos[0];
    for (n, action) in ["closed", "opened", "labeled"].iter().enumerate() {
        fake.emit(repo, "issues", json!({"action": action, "number": n, "repository": {"full_name": repo}})).await;
    }
    // A push has no action, so it is not `opened` either.
    fake.emit(repo, "push", json!({"ref": "refs/heads/main", "repository": {"full_name": repo}})).await;
    for (n, action) in ["closed", "opened"].iter().enumerate() {
        fake.emit(repo, "issues", json!({"action": action, "number": n, "repository": {"full_name": repo}})).await;
    }
    let opened: HashSet<String> = fake
        .deliveries(hooks[0])
        .into_iter()
        .filter(|delivery| delivery.action.as_deref() == Some("opened"))
        .map(|delivery| delivery.guid)
        .collect();
    assert_eq!(opened.len(), 2);
    // Forwarding keeps GitHub's order: once the last `opened` is answered, every earlier delivery is settled.
    let received = handler.wait_for(Duration::from_secs(30), "both opened", |got| got.len() >= 2).await;
    run.wait_lines("\"type\":\"forwarded\"", 2).await;
    drop(run);
    let got: HashSet<String> =
        received.iter().filter_map(|r| r.header("x-github-delivery")).map(String::from).collect();
    assert_eq!(got, opened, "only the opened deliveries were forwarded");
    assert_eq!(handler.received().len(), 2);
    assert_eq!(fake.stats().get_delivery, 2, "only the opened deliveries were fetched");
}
