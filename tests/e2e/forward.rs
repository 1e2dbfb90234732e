//! Issue 4's relay guarantees through the real `hookfwd` binary, the fake GitHub and a handler that
//! checks signatures: backlogs, hook reuse, redeliveries, idle polls, outages, GitHub faults, and
//! `hookfwd forward` with many rules, malformed rules and a source that cannot be set up.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use e2e::{Account, Finished, Received, Recorder, Running, eventually};
use fake_github::{FakeGitHub, HookSpec, RecordedDelivery, Stats};
use github::Secret;
use serde_json::{Value, json};

const TOKEN: &str = "ghp_forwardE2eTokenNeverPrinted00042";
const SECRET: &str = "forward-e2e-secret-never-printed-9d1e";
const REPO: &str = "fwd-org/relay";
const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };
/// How long any one wait in these tests may take before it fails rather than hangs.
const PATIENCE: Duration = Duration::from_secs(90);

/// Starts `hookfwd forward ARGS` against the fake, polling every 100 ms.
fn start_forward(fake: &FakeGitHub, state: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
    let (api_url, state) = (fake.api_url().to_string(), state_arg(state));
    let mut all = vec!["forward", "--api-url", &api_url, "--interval", "100ms", "--state-dir", &state];
    all.extend(args);
    ACCOUNT.hookfwd(&all, env)
}

fn state_arg(state: &Path) -> String {
    state.to_str().expect("temporary directories have UTF-8 paths").to_string()
}

/// Waits for `polls` more idle polls (304s), so anything hookfwd would still send has had its chance.
async fn settle(fake: &FakeGitHub, polls: u64) {
    let from = fake.stats().not_modified;
    eventually("idle polls", async || fake.stats().not_modified >= from + polls).await;
}

/// The parsed `--json` lines of `type`.
fn json_lines(run: &Running, kind: &str) -> Vec<Value> {
    run.lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["type"] == kind)
        .collect()
}

/// Waits for the `--json` `hook` line and returns it.
async fn hook_line(run: &Running) -> Value {
    serde_json::from_str(&run.wait_line("\"type\":\"hook\"").await).expect("a JSON hook line")
}

fn guid(request: &Received) -> &str {
    request.header("x-github-delivery").expect("every forward carries X-GitHub-Delivery")
}

/// The guids of what the handler got, in arrival order, leaving out GitHub's pings of created hooks.
fn guids(received: &[Received]) -> Vec<String> {
    received.iter().filter(|r| r.header("x-github-event") != Some("ping")).map(|r| guid(r).to_string()).collect()
}

/// The guids of a hook's deliveries oldest first, as GitHub lists them: by `delivered_at` (whole
/// seconds in the API), then by id.
fn oldest_first(deliveries: &[RecordedDelivery]) -> Vec<String> {
    let mut deliveries = deliveries.to_vec();
    deliveries.sort_by_key(|d| (d.delivered_at.timestamp(), d.id));
    deliveries.into_iter().map(|d| d.guid).collect()
}

/// Every request carries an `X-Hub-Signature-256` made with `secret` over the exact body.
fn assert_signed_with(secret: &str, received: &[Received]) {
    let secret = Secret::new(secret);
    for request in received {
        let signature = request.header("x-hub-signature-256").expect("signed");
        assert!(
            github::signature::verify_sha256(&secret, &request.body, signature),
            "bad signature on {}",
            guid(request)
        );
    }
}

/// Nothing secret was printed, and nothing panicked.
fn assert_clean(finished: &Finished, secrets: &[&str]) {
    for secret in [TOKEN, SECRET].iter().chain(secrets) {
        assert!(!finished.stdout.contains(secret) && !finished.stderr.contains(secret), "a secret was printed");
    }
    assert!(!finished.stderr.contains("panicked"), "{}", finished.stderr);
}

/// Stops `run` with SIGTERM, checks that it exits 0 and printed no secret, and returns its output.
async fn stop(run: Running, secrets: &[&str]) -> Finished {
    run.signal(libc::SIGTERM);
    let finished = run.finish().await;
    assert_eq!(finished.code, Some(0), "SIGTERM is a clean stop; stderr: {}", finished.stderr);
    assert_clean(&finished, secrets);
    finished
}

fn issue(n: usize) -> Value {
    json!({"action": "opened", "number": n, "issue": {"number": n, "title": format!("issue {n}: ünïcode  and spaces")},
           "repository": {"full_name": REPO}, "sender": {"login": "octocat"}})
}

fn push(repo: &str, n: usize) -> Value {
    json!({"ref": "refs/heads/main", "after": format!("{n:040x}"), "repository": {"full_name": repo},
           "sender": {"login": "octocat"}})
}

/// Emits issues events one at a time, so GitHub's order is unambiguous; returns their guids.
async fn emit_issues(fake: &FakeGitHub, hook_id: u64, numbers: std::ops::Range<usize>) -> Vec<String> {
    let mut ids = Vec::new();
    for n in numbers {
        ids.extend(fake.emit(REPO, "issues", issue(n)).await);
    }
    // Other hooks on the repository get their own deliveries (same guid, other ids).
    fake.deliveries(hook_id).into_iter().filter(|d| ids.contains(&d.id)).map(|d| d.guid).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_250_delivery_backlog_is_forwarded_once_each_oldest_first_signed_and_byte_exact() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook, admin:org_hook").await;
    let hook_id = fake.add_hook(REPO, HookSpec::new(fake.blackhole_url()));
    let ids = fake.emit_many(REPO, "issues", (0..250).map(issue).collect()).await;
    assert_eq!(ids.len(), 250);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json", "--since", "1h"]);
    let hook = hook_line(&dev).await;
    assert_eq!(hook["hook_id"], hook_id, "{hook}");
    handler.wait_for(PATIENCE, "the whole backlog", |got| got.len() >= 250).await;
    settle(&fake, 5).await;
    let forwarded = json_lines(&dev, "forwarded");
    stop(dev, &[]).await;

    let received = handler.received();
    assert_eq!(received.len(), 250, "each delivery exactly once");
    let recorded = fake.deliveries(hook_id);
    assert_eq!(guids(&received), oldest_first(&recorded), "oldest first");
    assert_signed_with(SECRET, &received);
    let by_guid: HashMap<&str, &RecordedDelivery> = recorded.iter().map(|d| (d.guid.as_str(), d)).collect();
    for request in &received {
        assert_eq!(request.body, by_guid[guid(request)].payload, "the payload is byte for byte GitHub's");
        assert_eq!(request.header("x-github-event"), Some("issues"));
        assert_eq!(request.header("x-github-hook-id"), Some(hook_id.to_string().as_str()));
    }
    assert_eq!(forwarded.len(), 250, "one feed line per delivery");
    assert!(forwarded.iter().all(|line| line["status"] == 200), "{forwarded:?}");
    assert!(fake.stats().list_deliveries >= 3, "a backlog of 250 is three pages of 100");
}

#[tokio::test(flavor = "multi_thread")]
async fn reuses_the_hook_found_by_url_even_when_another_hook_is_listed_first() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook, admin:org_hook").await;
    // Another developer's hook on the same repository, listed first.
    let other = fake.add_hook(REPO, HookSpec::new(format!("{}/someone-else", fake.blackhole_url())));
    let mine = fake.add_hook(REPO, HookSpec::new(fake.blackhole_url()));
    assert!(other < mine, "the other hook is listed first");
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    let hook = hook_line(&dev).await;
    assert_eq!(hook["origin"], "found", "{hook}");
    assert_eq!(hook["hook_id"], mine, "{hook}");
    dev.wait_line("\"type\":\"ready\"").await;
    let sent = emit_issues(&fake, mine, 0..1).await.remove(0);
    handler.wait_for(PATIENCE, "the delivery", |got| !got.is_empty()).await;
    settle(&fake, 5).await;
    stop(dev, &[]).await;

    let received = handler.received();
    assert_eq!(received.len(), 1, "forwarded once, from one hook only");
    assert_eq!(guid(&received[0]), sent);
    assert_eq!(received[0].header("x-github-hook-id"), Some(mine.to_string().as_str()));
    assert_eq!(fake.stats().hook_creates, 0, "no hook was created");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivery_through_the_api_is_forwarded_again() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook, admin:org_hook").await;
    let hook_id = fake.add_hook(REPO, HookSpec::new(fake.blackhole_url()));
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    let original = emit_issues(&fake, hook_id, 0..1).await.remove(0);
    handler.wait_for(PATIENCE, "the original", |got| got.len() == 1).await;

    let (hook_url, api_url) = (fake.blackhole_url(), fake.api_url().to_string());
    let trigger = ACCOUNT.hookfwd(
        ["trigger", "redeliver", &original, "--json", "--repo", REPO, "--hook-url", &hook_url, "--api-url", &api_url],
        &[],
    );
    let finished = trigger.finish().await;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    assert_clean(&finished, &[]);
    assert_eq!(finished.json()[0]["type"], "redeliver", "{}", finished.stdout);
    assert_eq!(fake.stats().redeliver, 1);

    let received = handler
        .wait_for(PATIENCE, "the redelivery", |got| got.iter().filter(|r| guid(r) == original).count() == 2)
        .await;
    assert_eq!(received[0].body, received[1].body, "the same payload");
    assert_signed_with(SECRET, &received);
    let line = dev.wait_line("\"redelivery\":true").await;
    assert!(line.contains(&original), "the feed marks the redelivery: {line}");
    stop(dev, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_polls_cost_no_rate_limited_calls() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook, admin:org_hook").await;
    fake.add_hook(REPO, HookSpec::new(fake.blackhole_url()));
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    settle(&fake, 1).await;
    let before: Stats = fake.stats();
    settle(&fake, 15).await;
    let after = fake.stats();
    assert!(after.not_modified >= before.not_modified + 15);
    assert_eq!(after.counted, before.counted, "an idle poll is a 304, which costs no rate limit: {after:?}");
    assert_eq!(after.get_delivery, before.get_delivery);
    assert!(handler.received().is_empty());
    stop(dev, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_down_for_seconds_loses_nothing_and_keeps_the_order() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook, admin:org_hook").await;
    let hook_id = fake.add_hook(REPO, HookSpec::new(fake.blackhole_url()));
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    let mut sent = emit_issues(&fake, hook_id, 0..5).await;
    handler.wait_for(PATIENCE, "the first five", |got| got.len() == 5).await;

    // The handler goes down: it answers 503 (and records nothing) until hookfwd has retried a few times.
    handler.answer(503);
    sent.extend(emit_issues(&fake, hook_id, 5..15).await);
    eventually("three retries of the same delivery", async || {
        json_lines(&dev, "retry").iter().any(|line| line["attempt"].as_u64() >= Some(3))
    })
    .await;
    let retried: HashSet<String> =
        json_lines(&dev, "retry").iter().map(|line| line["guid"].as_str().unwrap().to_string()).collect();
    assert_eq!(retried, HashSet::from([sent[5].clone()]), "only the oldest waiting delivery is retried");
    handler.answer(200);
    sent.extend(emit_issues(&fake, hook_id, 15..20).await);

    handler.wait_for(PATIENCE, "all twenty", |got| got.len() >= 20).await;
    settle(&fake, 5).await;
    stop(dev, &[]).await;
    let received = handler.received();
    assert_eq!(guids(&received), sent, "nothing lost, nothing repeated, in order");
    assert_signed_with(SECRET, &received);
}

#[tokio::test(flavor = "multi_thread")]
async fn github_502s_and_secondary_limits_lose_nothing_and_the_process_stays_up() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook, admin:org_hook").await;
    let hook_id = fake.add_hook(REPO, HookSpec::new(fake.blackhole_url()));
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    // With a retry-after, each secondary limit waits 1 s, doubling while they come in a row (1 + 2 + 4 s).
    let faults = fake.faults();
    faults.set_server_error_rate(0.2);
    faults.secondary_limit(3, Duration::from_secs(1));
    let mut sent = emit_issues(&fake, hook_id, 0..30).await;
    handler.wait_for(PATIENCE, "all thirty", |got| got.len() >= 30).await;
    let stats = fake.stats();
    assert!(stats.server_errors >= 5, "GitHub answered 5xx: {stats:?}");
    assert_eq!(stats.secondary_limited, 3, "{stats:?}");

    // Still up and still forwarding after the storm.
    faults.clear();
    sent.extend(emit_issues(&fake, hook_id, 30..31).await);
    handler.wait_for(PATIENCE, "one more", |got| got.len() >= 31).await;
    settle(&fake, 5).await;
    stop(dev, &[]).await;
    let received = handler.received();
    assert_eq!(guids(&received), sent, "nothing lost, nothing repeated, in order");
    assert_signed_with(SECRET, &received);
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_rules_serve_an_organization_and_several_repositories_each_to_its_target() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook, admin:org_hook").await;
    fake.add_org("fwd-org2");
    for repo in ["fwd-org1/one", "fwd-org1/two", "fwd-org2/app", "fwd-other/svc"] {
        fake.add_repo(repo);
    }
    let (first, second) = (Recorder::start().await, Recorder::start().await);
    let state = tempfile::tempdir().unwrap();
    let hook_url = fake.blackhole_url();
    let seed = json!({"from": ["fwd-org1/one", "fwd-org1/two", "fwd-org2"], "to": first.url(),
                      "hook": {"config": {"url": hook_url}, "events": ["check_run", "push"]}});
    let other = json!({"from": ["fwd-other/svc"], "to": second.url(), "hook": {"config": {"url": hook_url}}});
    let (seed, other) = (seed.to_string(), other.to_string());

    let run = start_forward(&fake, state.path(), &["--json", "--rule", &seed, "--rule", &other], &[]);
    run.wait_line("\"type\":\"ready\"").await;
    let hooks = json_lines(&run, "hook");
    let sources: HashSet<&str> = hooks.iter().map(|hook| hook["source"].as_str().unwrap()).collect();
    assert_eq!(sources, HashSet::from(["fwd-org1/one", "fwd-org1/two", "fwd-org2", "fwd-other/svc"]));
    for hook in hooks.iter().filter(|hook| hook["source"] != "fwd-other/svc") {
        assert_eq!(hook["origin"], "created", "{hook}");
        assert_eq!(hook["events"], json!(["check_run", "push"]), "the seed's events: {hook}");
    }

    let hook_ids: HashMap<String, u64> = hooks
        .iter()
        .map(|hook| (hook["source"].as_str().unwrap().to_string(), hook["hook_id"].as_u64().unwrap()))
        .collect();

    let mut to_first = Vec::new();
    for (repo, source) in
        [("fwd-org1/one", "fwd-org1/one"), ("fwd-org1/two", "fwd-org1/two"), ("fwd-org2/app", "fwd-org2")]
    {
        to_first.push(emit(&fake, hook_ids[source], repo, "push", push(repo, to_first.len())).await);
    }
    let check_run = json!({"action": "completed", "check_run": {"id": 7}, "repository": {"full_name": "fwd-org1/one"}});
    to_first.push(emit(&fake, hook_ids["fwd-org1/one"], "fwd-org1/one", "check_run", check_run).await);
    let to_second =
        vec![emit(&fake, hook_ids["fwd-other/svc"], "fwd-other/svc", "push", push("fwd-other/svc", 9)).await];

    first.wait_for(PATIENCE, "four deliveries", |got| guids(got).len() >= 4).await;
    second.wait_for(PATIENCE, "one delivery", |got| !guids(got).is_empty()).await;
    settle(&fake, 10).await;
    stop(run, &[]).await;
    let (a, b) = (first.received(), second.received());
    assert_eq!(sorted(guids(&a)), sorted(to_first.clone()), "every source of the first rule reached its target once");
    assert_eq!(guids(&b), to_second, "the second rule's source reached the second target only");
    let one: Vec<String> = guids(&a).into_iter().filter(|g| *g == to_first[0] || *g == to_first[3]).collect();
    assert_eq!(one, [to_first[0].clone(), to_first[3].clone()], "one source's deliveries stay in order");
    let org = a.iter().find(|r| guid(r) == to_first[2]).expect("the organization's push");
    assert_eq!(org.header("x-github-hook-installation-target-type"), Some("organization"));
    assert_eq!(org.header("x-github-hook-id"), Some(hook_ids["fwd-org2"].to_string().as_str()));
    assert_signed_with(SECRET, &a);
    assert_signed_with(SECRET, &b);
}

/// Emits one event that reaches exactly one hook, `hook_id`; returns its guid.
async fn emit(fake: &FakeGitHub, hook_id: u64, owner: &str, event: &str, payload: Value) -> String {
    let ids = fake.emit(owner, event, payload).await;
    assert_eq!(ids.len(), 1, "{owner} has one hook for {event}");
    fake.deliveries(hook_id).into_iter().find(|d| d.id == ids[0]).expect("delivered to that hook").guid
}

fn sorted(mut guids: Vec<String>) -> Vec<String> {
    guids.sort();
    guids
}

#[tokio::test(flavor = "multi_thread")]
async fn a_toml_config_sends_each_rule_to_its_own_target_signed_with_its_own_secret() {
    const SECRET_A: &str = "toml-rule-a-secret-never-printed-51";
    const SECRET_B: &str = "toml-rule-b-secret-never-printed-73";
    let fake = ACCOUNT.fake("repo, admin:repo_hook, admin:org_hook").await;
    fake.add_org("fwd-toml-org");
    fake.add_repo("fwd-toml-org/web");
    fake.add_repo("fwd-toml-user/svc");
    let (first, second) = (Recorder::start().await, Recorder::start().await);
    let state = tempfile::tempdir().unwrap();
    let config = state.path().join("hookfwd.toml");
    std::fs::write(
        &config,
        format!(
            r#"# two rules, two targets, two secrets
[[rule]]
from = ["fwd-toml-org"]
to = "{}"
hook_url = "{hook_url}"
events = ["push"]
secret_env = "FWD_TOML_SECRET_A"

[[rule]]
from = ["fwd-toml-user/svc"]
to = "{}"
hook_url = "{hook_url}"
secret_env = "FWD_TOML_SECRET_B"
"#,
            first.url(),
            second.url(),
            hook_url = fake.blackhole_url()
        ),
    )
    .unwrap();
    let env = [("FWD_TOML_SECRET_A", SECRET_A), ("FWD_TOML_SECRET_B", SECRET_B)];
    let config = state_arg(&config);

    let run = start_forward(&fake, &state.path().join("state"), &["--json", "--config", &config], &env);
    let ready: Value = serde_json::from_str(&run.wait_line("\"type\":\"ready\"").await).unwrap();
    assert_eq!(ready["secret"], "FWD_TOML_SECRET_A (***)", "the Ready line names the secret's variable");
    let hook_ids: HashMap<String, u64> = json_lines(&run, "hook")
        .iter()
        .map(|hook| (hook["source"].as_str().unwrap().to_string(), hook["hook_id"].as_u64().unwrap()))
        .collect();
    assert_eq!(hook_ids.len(), 2, "{hook_ids:?}");
    let org = emit(&fake, hook_ids["fwd-toml-org"], "fwd-toml-org/web", "push", push("fwd-toml-org/web", 1)).await;
    let user =
        emit(&fake, hook_ids["fwd-toml-user/svc"], "fwd-toml-user/svc", "push", push("fwd-toml-user/svc", 2)).await;

    first.wait_for(PATIENCE, "the organization's push", |got| !guids(got).is_empty()).await;
    second.wait_for(PATIENCE, "the repository's push", |got| !guids(got).is_empty()).await;
    settle(&fake, 10).await;
    stop(run, &[SECRET_A, SECRET_B]).await;
    let (a, b) = (first.received(), second.received());
    assert_eq!(guids(&a), [org], "rule 1's source reached rule 1's target only");
    assert_eq!(guids(&b), [user], "rule 2's source reached rule 2's target only");
    assert_signed_with(SECRET_A, &a);
    assert_signed_with(SECRET_B, &b);
    let wrong = Secret::new(SECRET_A);
    assert!(b.iter().all(|r| !github::signature::verify_sha256(
        &wrong,
        &r.body,
        r.header("x-hub-signature-256").unwrap()
    )));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_rule_is_one_line_on_stderr_and_exit_2() {
    let state = tempfile::tempdir().unwrap();
    let config = state.path().join("bad.toml");
    std::fs::write(
        &config,
        "[[rule]]\nfrom = [\"o/r\"]\nto = \"localhost:1\"\n\n[[rule]]\nfrom = [\"o\"]\nto = \"billing\"\n",
    )
    .unwrap();
    let config = state_arg(&config);
    let cases: [(&[&str], &str); 5] = [
        (&["--rule", r#"{"from":[],"to":"x"}"#], "names no repository"),
        (&["--rule", r#"{"from":["o/r"],"to":"localhost:1""#], "not valid JSON"),
        (&["--rule", r#"{"from":["o/r"],"to":"localhost:1","hooks":{}}"#], "unknown field `hooks`"),
        (
            &["--rule", r#"{"from":["o/r"],"to":"localhost:1"}"#, "--rule", r#"{"from":["a/b/c"],"to":"localhost:1"}"#],
            "`a/b/c`",
        ),
        (&["--config", &config], "rule 2: `to` is `billing`"),
    ];
    for (args, expected) in cases {
        let mut all =
            vec!["forward", "--api-url", "http://127.0.0.1:9/", "--state-dir", state.path().to_str().unwrap()];
        all.extend(args);
        let finished = ACCOUNT.hookfwd(&all, &[]).finish().await;
        assert_eq!(finished.code, Some(2), "{args:?}: {}", finished.stderr);
        assert_clean(&finished, &[]);
        assert!(finished.stdout.is_empty(), "{args:?}: {}", finished.stdout);
        let lines: Vec<&str> = finished.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {:?}", finished.stderr);
        assert!(lines[0].starts_with("hookfwd: ") && lines[0].contains(expected), "{args:?}: {}", lines[0]);
        assert!(!lines[0].contains("Error {") && !lines[0].contains("RUST_BACKTRACE"), "{}", lines[0]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_that_cannot_be_set_up_is_named_in_one_line_and_the_others_forward() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook, admin:org_hook").await;
    fake.add_repo("fwd-nine/ok1");
    fake.add_repo("fwd-nine/ok2");
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let rule = json!({"from": ["fwd-nine/ok1", "fwd-nine/missing", "fwd-nine/ok2"], "to": handler.url(),
                      "hook": {"config": {"url": fake.blackhole_url()}}})
    .to_string();

    let run = start_forward(&fake, state.path(), &["--rule", &rule], &[]);
    let ready = run.wait_line("Ready!").await;
    assert!(ready.contains("fwd-nine/ok1") && ready.contains("fwd-nine/ok2"), "{ready}");
    assert!(!ready.contains("missing"), "{ready}");
    let mut sent = Vec::new();
    for repo in ["fwd-nine/ok1", "fwd-nine/ok2"] {
        sent.extend(fake.emit(repo, "push", push(repo, sent.len())).await);
    }
    assert_eq!(sent.len(), 2);
    handler.wait_for(PATIENCE, "both pushes", |got| guids(got).len() >= 2).await;
    settle(&fake, 5).await;
    let finished = stop(run, &[]).await;

    // A feed line, on stdout with the Ready line it is shown with.
    let named: Vec<&str> = finished.stdout.lines().filter(|line| line.contains("✗ fwd-nine/missing")).collect();
    assert_eq!(named.len(), 1, "one line names the source: {}", finished.stdout);
    assert!(named[0].contains("not found"), "and says what failed: {}", named[0]);
    assert!(!finished.stdout.contains("✗ fwd-nine/ok"), "the others did not fail: {}", finished.stdout);
    assert_eq!(guids(&handler.received()).len(), 2, "the others forward, once each");
}
