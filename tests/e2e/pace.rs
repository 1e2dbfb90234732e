//! One token's GitHub budget shared by replicas through Redis (issue 20): replicas on one ledger in
//! a real `redis-server`, each told the token's secondary limit (not a share of it), drain a backlog
//! with no secondary-limit answer from the fake, pacing through one budget named by a digest of the
//! token, never the token.

use std::collections::HashSet;
use std::time::Duration;

use e2e::{Account, Recorder, RedisServer, Running};
use fake_github::{FakeGitHub, HookSpec, SecondaryLimits};
use serde_json::json;

const TOKEN: &str = "ghp_paceE2eTokenNeverPrintedNorStored07";
const SECRET: &str = "pace-e2e-secret-never-printed-5d2c";
const REPO: &str = "octo/paced";
const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };
/// The fake's secondary limit, in points a minute per endpoint, and the `--secondary-limit` every
/// replica is given: the token's figure. An eighth of GitHub's 900, so that a drain that spends
/// past the pace's burst takes seconds rather than minutes.
const LIMIT: u32 = 120;
/// Replicas on the token.
const REPLICAS: usize = 3;
/// The backlog drained: more than the pace's burst (16 of 120), so that the pacing goes on after it.
const BACKLOG: usize = 40;
/// How long the drain may take before the test fails rather than hangs (about 15 s at the pace).
const PATIENCE: Duration = Duration::from_secs(90);

/// `hookfwd forward` on [`REPO`] with the ledger at `ledger`, its own state directory (another
/// machine), forwarding what the last hour brought, at the token's secondary limit.
fn replica(fake: &FakeGitHub, ledger: &str, target: &str, state: &tempfile::TempDir) -> Running {
    let rule = json!({"from": [REPO], "to": target, "hook": {"config": {"url": fake.blackhole_url()}}}).to_string();
    let (api, state) = (fake.api_url().to_string(), state.path().to_str().expect("UTF-8 path").to_string());
    let limit = LIMIT.to_string();
    let mut args = vec!["forward", "--json", "--rule", &rule, "--api-url", &api, "--state-dir", &state];
    args.extend(["--ledger", ledger, "--since", "1h", "--interval", "100ms", "--secondary-limit", &limit]);
    ACCOUNT.hookfwd(&args, &[])
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_on_one_token_drain_a_backlog_with_no_secondary_limit_answer() {
    let redis = RedisServer::start();
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_repo(REPO);
    let hook = fake.add_hook(REPO, HookSpec::new(fake.blackhole_url()));
    let payloads = (0..BACKLOG).map(|n| json!({"action": "opened", "issue": {"number": n}})).collect();
    let ids = fake.emit_many(REPO, "issues", payloads).await;
    let guids: HashSet<String> =
        fake.deliveries(hook).into_iter().filter(|d| ids.contains(&d.id)).map(|d| d.guid).collect();
    assert_eq!(guids.len(), BACKLOG);
    fake.set_secondary_limits(SecondaryLimits { per_minute: Some(LIMIT), ..SecondaryLimits::default() });

    let handler = Recorder::start().await;
    let states: Vec<tempfile::TempDir> = (0..REPLICAS).map(|_| tempfile::tempdir().unwrap()).collect();
    let runs: Vec<Running> = states.iter().map(|state| replica(&fake, &redis.url(), &handler.url(), state)).collect();
    let received = handler
        .wait_for(PATIENCE, "every delivery of the backlog", |got| {
            let seen: HashSet<&str> = got.iter().filter_map(|r| r.header("x-github-delivery")).collect();
            guids.iter().all(|guid| seen.contains(guid.as_str()))
        })
        .await;
    let stats = fake.stats();
    assert_eq!(stats.secondary_limited, 0, "no call met the secondary limit: {stats:?}");
    assert_eq!(received.len(), BACKLOG, "each delivery once");

    // Every replica paced through one budget, named by the token's digest and not by the token.
    let identity = github::Client::new(github::Config {
        api_url: fake.api_url(),
        auth: github::Auth::Token(github::Secret::new(TOKEN)),
        timeout: Duration::from_secs(10),
    })
    .unwrap()
    .identity();
    let api = fake.api_url();
    let instance = format!("{}-{}", api.host_str().unwrap_or_default(), api.port().unwrap_or_default());
    let replicas = redis.command(&format!("ZCARD hookfwd:pace:{{{identity}}}:{instance}:replicas"));
    assert_eq!(replicas.as_deref(), Some(":3\r\n"), "every replica paced through the token's budget");
    let keys = redis.command("KEYS *").unwrap_or_default();
    assert!(keys.contains(&identity) && !keys.contains(TOKEN), "{keys}");
    for run in &runs {
        assert!(!run.stderr().contains(TOKEN) && !run.lines().concat().contains(TOKEN));
    }
}
