//! Issue 21's one JSON schema, through the real binaries: a hook is named alike by every command, a pushed
//! delivery's id is `null` on every line, and a failure is an `error` line on stdout before the exit.
//! (That every `--json` line of the suite matches docs/hookfwd-lines.schema.json, `e2e::Running` checks.)

use std::path::Path;

use e2e::{Account, Blackhole, Recorder, free_addr};
use fake_github::FakeGitHub;
use serde_json::{Value, json};

const TOKEN: &str = "ghp_e2eJsonLinesTokenNeverPrinted0001";
const SECRET: &str = "json-lines-local-secret-never-printed";
const STREAM_TOKEN: &str = "json-lines-stream-token-never-printed";
const REPO: &str = "octo-org/json-lines";
const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };

/// `hookfwd ARGS --json` against `fake`, its state in `state`, to its end.
async fn json_run(fake: &FakeGitHub, state: &Path, args: &[&str]) -> (Option<i32>, Vec<Value>, String) {
    let all = [args, &["--json"]].concat();
    let finished = ACCOUNT.against(fake, &all, &[("HOOKFWD_STATE_DIR", state.to_str().unwrap())]).finish().await;
    (finished.code, finished.json(), finished.stderr)
}

/// The last line, which must be an `error` of `kind`, and its message.
fn last_error(lines: &[Value], kind: &str) -> String {
    let last = lines.last().expect("a line before the exit");
    assert_eq!((&last["type"], &last["kind"]), (&json!("error"), &json!(kind)), "{lines:?}");
    last["message"].as_str().expect("a message").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_names_a_hook_by_its_source_and_hook_id() {
    let (fake, hook) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let (hook_url, to) = (fake.blackhole_url(), handler.url());

    let dev = ACCOUNT.dev(&fake, &to, state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    let forwarded: Value = serde_json::from_str(&dev.wait_line("\"type\":\"forwarded\"").await).unwrap();
    let guid = forwarded["guid"].as_str().unwrap().to_string();
    dev.signal(libc::SIGTERM);
    let mut lines = dev.finish().await.json();

    let state = state.path();
    let selector = ["--repo", REPO, "--hook-url", &hook_url];
    let replay = [&["replay", "--to", &to, "--guid", &guid][..], &selector].concat();
    let ping = [&["trigger", "ping"][..], &selector].concat();
    let id = hook.to_string();
    let runs: [&[&str]; 4] =
        [&replay, &ping, &["hooks", "list", "--repo", REPO], &["hooks", "rm", &id, "--repo", REPO, "--yes"]];
    for args in runs {
        let (code, more, stderr) = json_run(&fake, state, args).await;
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        lines.extend(more);
    }

    let named: Vec<&Value> = lines.iter().filter(|line| line.get("hook_id").is_some()).collect();
    let kinds: Vec<&str> = named.iter().map(|line| line["type"].as_str().unwrap()).collect();
    for kind in ["hook", "forwarded", "ping", "deleted"] {
        assert!(kinds.contains(&kind), "no {kind} line names the hook: {kinds:?}");
    }
    for line in &named {
        assert_eq!((&line["source"], &line["hook_id"]), (&json!(REPO), &json!(hook)), "{line}");
    }
    let ready = lines.iter().find(|line| line["type"] == "ready").expect("a ready line");
    assert_eq!(ready["sources"][0]["source"], REPO);
    assert_eq!(ready["sources"][0]["hook_id"], hook);
    let replayed: Vec<&Value> = lines.iter().filter(|line| line["guid"] == guid.as_str()).collect();
    assert_eq!(replayed.len(), 2, "dev's forwarded line and replay's: {replayed:?}");
    assert!(replayed.iter().all(|line| line["id"] == forwarded["id"] && line["id"].is_u64()), "{replayed:?}");
    let summary = lines.iter().find(|line| line["type"] == "replayed").expect("replay's last line");
    assert_eq!((&summary["total"], &summary["sent"], &summary["parked"]), (&json!(1), &json!(1), &json!(false)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pushed_delivery_has_a_null_id_on_its_retry_lines() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    fake.set_ping_on_create(false);
    let blackhole = Blackhole::start(&["--stream-token", STREAM_TOKEN, "--stream-keepalive", "1s"]);
    let state = tempfile::tempdir().unwrap();
    // Nothing listens there: the pushed delivery is retried.
    let down = free_addr().to_string();
    let env = [("HOOKFWD_STREAM_TOKEN", STREAM_TOKEN)];
    let dev = ACCOUNT.dev_at(&fake, &blackhole.url("/json"), &down, state.path(), &["--json"], &env);
    let hook: Value = serde_json::from_str(&dev.wait_line("\"type\":\"hook\"").await).unwrap();
    dev.wait_line("\"state\":\"up\"").await;
    fake.emit(REPO, "issues", ACCOUNT.issue_opened(1)).await;
    let retry: Value = serde_json::from_str(&dev.wait_line("\"type\":\"retry\"").await).unwrap();
    let guid = fake.deliveries(hook["hook_id"].as_u64().unwrap())[0].guid.clone();
    assert_eq!((&retry["guid"], &retry["id"]), (&json!(guid), &Value::Null), "GitHub's POST has no id: {retry}");
    assert_eq!(
        (&retry["source"], &retry["event"], &retry["action"]),
        (&json!(REPO), &json!("issues"), &json!("opened"))
    );
    dev.signal(libc::SIGTERM);
    let lines = dev.finish().await.json();
    assert!(lines.iter().any(|line| line["type"] == "stopped"), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_is_an_error_line_on_stdout_before_the_exit() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let state = tempfile::tempdir().unwrap();
    let state = state.path();

    // A handler that is not there.
    let down = format!("http://{}/webhook", free_addr());
    let finished = ACCOUNT.hookfwd(["send", "issues.opened", "--to", &down, "--json"], &[]).finish().await;
    let (code, lines, stderr) = (finished.code, finished.json(), finished.stderr);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let message = last_error(&lines, "failure");
    assert!(message.starts_with(&format!("could not reach the handler at {down}")), "{message}");
    assert!(stderr.contains(&message), "stderr keeps the sentence: {stderr}");

    // A token GitHub refuses, before anything is set up.
    let strange = Account { token: "ghp_e2eJsonLinesUnknownToken00000000", ..ACCOUNT };
    let args = ["dev", "--repo", REPO, "--to", &down, "--hook-url", &fake.blackhole_url(), "--json"];
    let finished = strange.against(&fake, &args, &[("HOOKFWD_STATE_DIR", state.to_str().unwrap())]).finish().await;
    assert_eq!(finished.code, Some(3), "{}", finished.stderr);
    let lines = finished.json();
    last_error(&lines, "auth");
    assert!(lines.last().unwrap()["hint"].is_string(), "{lines:?}");
    assert!(lines.iter().all(|line| line["type"] != "ready"), "refused before Ready: {lines:?}");
    finished.assert_never_printed(&[strange.token, SECRET]);

    // A flag clap refuses.
    let (code, lines, stderr) =
        json_run(&fake, state, &["dev", "--repo", REPO, "--to", &down, "--interval", "0s"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(last_error(&lines, "usage").contains("--interval"), "{lines:?}");

    // Nothing parked is no failure: one line says so.
    let args = ["replay", "--parked", "--repo", REPO, "--to", &down, "--hook-url", &fake.blackhole_url()];
    fake.add_hook(REPO, fake_github::HookSpec::new(fake.blackhole_url()));
    let (code, lines, stderr) = json_run(&fake, state, &args).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        (&lines[0]["type"], &lines[0]["parked"], &lines[0]["total"]),
        (&json!("replayed"), &json!(true), &json!(0))
    );
}
