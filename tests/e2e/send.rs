//! `hookfwd send` through the real binary, against the octokit receiver and a recording handler;
//! plus what every command owes on bad input: one clear line, exit 2, no secret.

use std::collections::HashSet;
use std::process::{Output, Stdio};
use std::time::Duration;

use e2e::{OctokitReceiver, Recorder, hookfwd};
use github::Secret;
use github::signature::{sha1, verify_sha256};
use serde_json::Value;

const SECRET: &str = "send-secret-never-printed-91c2";

/// What a run of `hookfwd` printed and how it ended.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The stdout lines parsed as JSON (for `--json` runs).
    fn json(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
            .collect()
    }
}

/// Runs `hookfwd args…` with `HOOKFWD_SECRET=secret` and `stdin` as input, and checks what
/// every run owes: no panic, no backtrace, and the secret nowhere in the output.
async fn run_with(args: &[&str], secret: &str, stdin: Option<&[u8]>) -> Run {
    let mut command = tokio::process::Command::new(hookfwd());
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOOKFWD_SECRET", secret)
        .env("NO_COLOR", "1")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("hookfwd starts");
    if let Some(bytes) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(bytes).await.expect("write stdin");
        drop(pipe);
    }
    let output: Output =
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.expect("hookfwd exits").unwrap();
    let run = Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains("panicked") && !text.contains("RUST_BACKTRACE"), "hookfwd {args:?} panicked: {text}");
        assert!(!text.contains(secret), "hookfwd {args:?} printed the secret: {text}");
    }
    if args.contains(&"--json") {
        e2e::lines::assert_valid(&format!("hookfwd {}", args.join(" ")), &run.stdout);
    }
    run
}

async fn run(args: &[&str]) -> Run {
    run_with(args, SECRET, None).await
}

/// One `"type":"sent"` line from a `--json` run that sent once.
fn sent(run: &Run) -> Value {
    let mut lines = run.json();
    // A run that fails says why in a last `error` line.
    if run.code != Some(0) {
        assert_eq!(lines.pop().map(|line| line["type"].clone()), Some("error".into()), "{}", run.stdout);
    }
    assert_eq!(lines.len(), 1, "one line per request: {}", run.stdout);
    assert_eq!(lines[0]["type"], "sent");
    lines[0].clone()
}

#[tokio::test]
async fn octokit_verifies_every_listed_event_and_action_and_receives_each_under_its_own_name() {
    let receiver = OctokitReceiver::start(SECRET).await;
    let listed = run(&["send", "--list", "--json"]).await;
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    let examples = listed.json();
    assert!(examples.len() >= 150, "{} event/action pairs listed", examples.len());
    let names: Vec<&str> = examples.iter().map(|example| example["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), names.iter().collect::<HashSet<_>>().len(), "each listed once");

    // One run sends them all in turn, each a delivery of its own.
    let args: Vec<&str> = ["send", "--to", receiver.url(), "--json"].into_iter().chain(names.iter().copied()).collect();
    let out = run(&args).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let sent = out.json();
    assert_eq!(sent.len(), examples.len(), "one line per delivery");
    let seen =
        receiver.wait_for(Duration::from_secs(60), "every delivery", |lines| lines.len() >= examples.len()).await;
    assert!(receiver.rejections().is_empty(), "{:?}", receiver.rejections());
    for (example, line) in examples.iter().zip(&sent) {
        assert_eq!((&line["event"], &line["action"]), (&example["event"], &example["action"]), "{example}");
        assert_eq!(line["status"], 200, "{line}");
        let received = seen.iter().find(|seen| seen["id"] == line["guid"]).expect("received");
        assert_eq!(received["type"], "event", "verified: {received}");
        assert_eq!(received["name"], example["event"], "under its own event name");
        assert_eq!(received["action"], example["action"]);
    }
}

#[tokio::test]
async fn set_edits_the_payload_before_it_is_signed() {
    let handler = Recorder::start().await;
    let out = run(&[
        "send",
        "issues.opened",
        "--set",
        "issue.title=hello",
        "--set",
        "issue.number=42",
        "--to",
        &handler.url(),
    ])
    .await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("warning"), "both paths are in the example: {}", out.stderr);
    let received = handler.wait_for(Duration::from_secs(5), "the delivery", |r| r.len() == 1).await;
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["issue"]["number"], 42, "a number, not the string \"42\"");
    assert_eq!(body["issue"]["title"], "hello");
    assert_eq!(body["action"], "opened");
    let signature = received[0].header("x-hub-signature-256").unwrap();
    assert!(verify_sha256(&Secret::new(SECRET), &received[0].body, signature), "signed after the edit");

    // --set-string forces a string; a path not in the example is added, and the nearest one named.
    let out = run(&[
        "send",
        "issues.opened",
        "--set-string",
        "issue.number=42",
        "--set",
        "issue.titel=x",
        "--to",
        &handler.url(),
    ])
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`issue.titel` is not in GitHub's issues.opened example; added (the nearest is `issue.title`)"),
        "{}",
        out.stderr
    );
    let received = handler.wait_for(Duration::from_secs(5), "the second delivery", |r| r.len() == 2).await;
    let body: Value = serde_json::from_slice(&received[1].body).unwrap();
    assert_eq!((&body["issue"]["number"], &body["issue"]["titel"]), (&Value::from("42"), &Value::from("x")));

    // A payload file and a fixture take --set too.
    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("payload.json");
    std::fs::write(&payload, r#"{"action":"opened","commits":[{"message":"a"}]}"#).unwrap();
    let fixture = dir.path().join("fixture.json");
    std::fs::write(
        &fixture,
        r#"{"hookfwd_fixture":1,"event":"push","guid":"g-1","headers":[],"payload":{"ref":"main"}}"#,
    )
    .unwrap();
    let file = payload.to_str().unwrap();
    let out =
        run(&["send", "--event", "push", "--payload", file, "--set", "commits.0.message=fix", "--to", &handler.url()])
            .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let out =
        run(&["send", "--fixture", fixture.to_str().unwrap(), "--set", "ref=refs/heads/x", "--to", &handler.url()])
            .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let received = handler.wait_for(Duration::from_secs(5), "the file and the fixture", |r| r.len() == 4).await;
    assert_eq!(&received[2].body[..], br#"{"action":"opened","commits":[{"message":"fix"}]}"#);
    assert_eq!(&received[3].body[..], br#"{"ref":"refs/heads/x"}"#);
    for request in &received[2..] {
        let signature = request.header("x-hub-signature-256").unwrap();
        assert!(verify_sha256(&Secret::new(SECRET), &request.body, signature));
    }
}

#[tokio::test]
async fn repo_makes_the_payload_come_from_that_repository() {
    let handler = Recorder::start().await;
    let out = run(&["send", "pull_request.opened", "--repo", "octo-org/hello-world", "--to", &handler.url()]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let received = handler.wait_for(Duration::from_secs(5), "the delivery", |r| r.len() == 1).await;
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["repository"]["full_name"], "octo-org/hello-world");
    assert_eq!(body["repository"]["owner"]["login"], "octo-org");
    assert_eq!(body["sender"]["login"], "octo-org");
    assert_eq!(body["pull_request"]["base"]["repo"]["full_name"], "octo-org/hello-world");
    let id = body["repository"]["id"].to_string();
    assert_eq!(received[0].header("x-github-hook-installation-target-id"), Some(id.as_str()));
}

#[tokio::test]
async fn check_schema_names_the_mismatched_member_and_sends_all_the_same() {
    let handler = Recorder::start().await;
    let bad = ["send", "issues.opened", "--set", "issue.number=\"42\"", "--check-schema", "--to", &handler.url()];
    let out = run(&[&bad[..], &["--json"]].concat()).await;
    assert_eq!(out.code, Some(0), "a mismatch never stops a delivery: {}", out.stderr);
    let lines = out.json();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert_eq!(lines[0]["type"], "schema");
    assert_eq!(lines[0]["schema"], "webhook-issues-opened");
    assert_eq!(lines[0]["problems"], serde_json::json!([{"pointer": "/issue/number", "message": "expected integer"}]));
    assert_eq!(lines[1]["type"], "sent");
    assert_eq!(lines[1]["status"], 200);
    let out = run(&bad).await;
    let line = out.stdout.lines().find(|line| line.contains("schema")).expect("a schema line");
    assert!(line.ends_with("/issue/number: expected integer"), "{line}");

    // GitHub's own example says nothing.
    let out = run(&["send", "issues.opened", "--check-schema", "--to", &handler.url(), "--json"]).await;
    assert_eq!(sent(&out)["status"], 200, "only the sent line: {}", out.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_check_schema_reports_a_forwarded_payload_once_and_forwards_it() {
    const ACCOUNT: e2e::Account =
        e2e::Account { token: "ghp_e2eSendSchemaTokenNeverPrinted01", secret: SECRET, repo: "octo-org/hello-world" };
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();
    let dev = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--json", "--check-schema"]);
    dev.wait_line("\"type\":\"ready\"").await;

    let example: Value = serde_json::from_str(webhooks::lookup("issues.opened").unwrap().payload()).unwrap();
    let mut broken = example.clone();
    broken["issue"]["number"] = Value::from("7");
    fake.emit(ACCOUNT.repo, "issues", example).await;
    fake.emit(ACCOUNT.repo, "issues", broken).await;
    // Two issues and the ping GitHub sends a hook it creates.
    let forwarded = dev.wait_lines("\"type\":\"forwarded\"", 3).await;
    let guids: Vec<String> = forwarded
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line["event"] == "issues")
        .map(|line| line["guid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(guids.len(), 2, "{forwarded:?}");
    // (The fake's own ping, a short stand-in for GitHub's, gets a schema line of its own.)
    let issues = "\"type\":\"schema\",\"event\":\"issues\"";
    let schema: Value = serde_json::from_str(&dev.wait_line(issues).await).unwrap();
    assert_eq!(schema["guid"], guids[1].as_str(), "the broken one: {schema}");
    assert_eq!(schema["problems"], serde_json::json!([{"pointer": "/issue/number", "message": "expected integer"}]));
    let schema_lines = dev.lines().iter().filter(|line| line.contains(issues)).count();
    assert_eq!(schema_lines, 1, "GitHub's example matches, and each delivery is reported once");
    handler.wait_for(Duration::from_secs(10), "both forwarded", |r| r.len() >= 2).await;
    dev.signal(libc::SIGTERM);
    dev.finish().await;
}

#[tokio::test]
async fn action_flag_sets_the_action_octokit_sees() {
    let receiver = OctokitReceiver::start(SECRET).await;
    let out = run(&["send", "--event", "pull_request", "--action", "closed", "--to", receiver.url(), "--json"]).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let line = sent(&out);
    assert_eq!(line["action"], "closed");
    let seen = receiver.wait_for_delivery(line["guid"].as_str().unwrap()).await;
    assert_eq!(
        (seen["type"].as_str(), seen["name"].as_str(), seen["action"].as_str()),
        (Some("event"), Some("pull_request"), Some("closed"))
    );

    let out = run(&["send", "--event", "push", "--action", "opened", "--to", receiver.url()]).await;
    assert_eq!(out.code, Some(2), "push has no action: {}", out.stderr);
}

#[tokio::test]
async fn octokit_rejects_the_wrong_secret_and_send_exits_4_unless_expected() {
    let receiver = OctokitReceiver::start(SECRET).await;
    let wrong = "not-the-receivers-secret-55";
    let out = run_with(&["send", "--event", "ping", "--to", receiver.url(), "--json"], wrong, None).await;
    assert_eq!(out.code, Some(4), "a rejection exits 4: {}{}", out.stdout, out.stderr);
    let line = sent(&out);
    assert_eq!(line["status"], 400);
    let seen = receiver.wait_for_delivery(line["guid"].as_str().unwrap()).await;
    assert_eq!(seen["type"], "rejected");
    assert!(seen["error"].as_str().unwrap().contains("signature does not match"), "{seen}");
    assert_eq!(out.stderr.lines().count(), 1, "one sentence: {}", out.stderr);
    assert!(out.stderr.contains("400"), "{}", out.stderr);

    let out =
        run_with(&["send", "--event", "ping", "--to", receiver.url(), "--expect-status", "400"], wrong, None).await;
    assert_eq!(out.code, Some(0), "the expected rejection succeeds: {}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.lines().count(), 1, "one line per request: {}", out.stdout);

    let out = run(&["send", "--event", "ping", "--to", receiver.url(), "--expect-status", "400"]).await;
    assert_eq!(out.code, Some(4), "a 200 is not the expected 400: {}{}", out.stdout, out.stderr);
}

#[tokio::test]
async fn payload_file_is_sent_byte_exact_with_githubs_headers() {
    let handler = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payload.json");
    // Whitespace, key order, escapes and a trailing newline that re-serialising would change.
    let payload = "{ \"zen\" :\"é \\u00e9\",\n  \"action\":\"opened\", \"n\": 1.50,\"repository\":{\"id\":42}}\n";
    std::fs::write(&path, payload).unwrap();

    let out = run(&["send", "--event", "issues", "--payload", path.to_str().unwrap(), "--to", &handler.url()]).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.lines().count(), 1, "one line per request: {}", out.stdout);
    assert!(out.stdout.contains("issues.opened") && out.stdout.contains("200"), "{}", out.stdout);

    let received = handler.wait_for(Duration::from_secs(5), "the delivery", |r| r.len() == 1).await;
    let request = &received[0];
    assert_eq!(request.path, "/webhook");
    assert_eq!(&request.body[..], payload.as_bytes(), "byte-exact body");
    let secret = Secret::new(SECRET);
    let sha256 = request.header("x-hub-signature-256").expect("X-Hub-Signature-256");
    assert!(verify_sha256(&secret, &request.body, sha256), "the sha256 signature verifies");
    assert_eq!(request.header("x-hub-signature"), Some(sha1(&secret, &request.body).as_str()));
    assert_eq!(request.header("x-github-event"), Some("issues"));
    let guid = request.header("x-github-delivery").expect("X-GitHub-Delivery");
    assert!(uuid::Uuid::parse_str(guid).is_ok(), "the delivery id is a uuid: {guid}");
    assert!(out.stdout.contains(guid), "the line names the delivery: {}", out.stdout);
    assert!(request.header("x-github-hook-id").is_some_and(|id| id.parse::<u64>().is_ok()));
    assert_eq!(request.header("x-github-hook-installation-target-id"), Some("42"));
    assert_eq!(request.header("x-github-hook-installation-target-type"), Some("repository"));
    assert!(request.header("user-agent").is_some_and(|agent| agent.starts_with("GitHub-Hookshot/")));
    assert_eq!(request.header("content-type"), Some("application/json"));

    // stdin works the same way.
    let out =
        run_with(&["send", "--event", "issues", "--payload", "-", "--to", &handler.url()], SECRET, Some(b"[1]")).await;
    assert_eq!(out.code, Some(2), "an array is not a webhook payload: {}", out.stderr);
    let out =
        run_with(&["send", "--event", "custom", "--payload", "-", "--to", &handler.url()], SECRET, Some(b"{\"a\":1}"))
            .await;
    assert_eq!(out.code, Some(0), "any event name goes with a payload: {}", out.stderr);
    let received = handler.wait_for(Duration::from_secs(5), "the stdin delivery", |r| r.len() == 2).await;
    assert_eq!(&received[1].body[..], b"{\"a\":1}");
    assert_eq!(received[1].header("x-github-event"), Some("custom"));
}

#[tokio::test]
async fn action_flag_changes_only_the_action_of_a_payload_file() {
    let handler = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payload.json");
    std::fs::write(&path, r#"{"action":"opened","number":7,"pull_request":{"title":"é","n":1.50}}"#).unwrap();
    let file = path.to_str().unwrap();
    let out =
        run(&["send", "--event", "pull_request", "--payload", file, "--action", "closed", "--to", &handler.url()])
            .await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let received = handler.wait_for(Duration::from_secs(5), "the delivery", |r| r.len() == 1).await;
    assert_eq!(
        &received[0].body[..],
        r#"{"action":"closed","number":7,"pull_request":{"title":"é","n":1.50}}"#.as_bytes()
    );
    let sha256 = received[0].header("x-hub-signature-256").unwrap();
    assert!(verify_sha256(&Secret::new(SECRET), &received[0].body, sha256), "signed after the change");
}

#[tokio::test]
async fn repeat_sends_each_time_a_new_delivery() {
    let handler = Recorder::start().await;
    let out = run(&["send", "--event", "push", "--repeat", "3", "--to", &handler.url(), "--json"]).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let lines = out.json();
    assert_eq!(lines.len(), 3, "one line per request: {}", out.stdout);
    let guids: HashSet<&str> = lines.iter().map(|line| line["guid"].as_str().unwrap()).collect();
    assert_eq!(guids.len(), 3, "three distinct guids: {guids:?}");

    let received = handler.wait_for(Duration::from_secs(5), "three deliveries", |r| r.len() == 3).await;
    let delivered: HashSet<&str> = received.iter().map(|r| r.header("x-github-delivery").unwrap()).collect();
    assert_eq!(delivered, guids);
    assert!(received.windows(2).all(|pair| pair[0].body == pair[1].body), "the same payload each time");
}

#[tokio::test]
async fn an_unreachable_handler_exits_1_with_one_line() {
    // A port that was just free: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = run(&["send", "--event", "ping", "--to", &format!("127.0.0.1:{port}/webhook")]).await;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "one sentence: {}", out.stderr);
    assert!(out.stderr.contains("could not reach the handler"), "{}", out.stderr);
}

#[tokio::test]
async fn an_event_name_http_cannot_carry_is_exit_2_not_an_unreachable_handler() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payload.json");
    std::fs::write(&path, "{}").unwrap();
    let event = "push\r\nX-Injected: yes";
    let out =
        run(&["send", "--event", event, "--payload", path.to_str().unwrap(), "--to", "127.0.0.1:9/webhook"]).await;
    let line = assert_usage_error(&out, "an event name with a line break");
    assert!(line.contains("cannot be sent") && !line.contains("could not reach"), "{line}");
}

/// Asserts a usage error: exit 2, one error line on stderr (clap may add its `--help` pointer), nothing on stdout.
fn assert_usage_error(out: &Run, what: &str) -> String {
    assert_eq!(out.code, Some(2), "{what} exits 2: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "{what}: nothing on stdout: {}", out.stdout);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|line| {
            !line.trim().is_empty() && !line.starts_with("For more information") && !line.starts_with("hint:")
        })
        .collect();
    assert_eq!(lines.len(), 1, "{what}: one clear line, got: {}", out.stderr);
    lines[0].to_string()
}

#[tokio::test]
async fn bad_input_gets_one_clear_line_and_exit_2() {
    let to = "127.0.0.1:9/webhook";

    let line = assert_usage_error(&run(&["send", "--event", "nope", "--to", to]).await, "an unknown event");
    assert!(line.contains("`nope`") && line.contains("hookfwd send --list"), "{line}");
    let line = assert_usage_error(&run(&["send", "pull_request.synchronise", "--to", to]).await, "a misspelt action");
    assert!(line.contains("did you mean `pull_request.synchronize`?"), "{line}");
    let line = assert_usage_error(&run(&["send", "isues.opened", "--to", to]).await, "a misspelt event");
    assert!(line.contains("did you mean `issues.opened`?"), "{line}");
    let line = assert_usage_error(&run(&["send", "push", "--set", "=1", "--to", to]).await, "an empty --set path");
    assert!(line.contains("empty path"), "{line}");
    let line = assert_usage_error(
        &run(&["send", "push", "--set", "commits.9.id=1", "--to", to]).await,
        "an index past the end",
    );
    assert!(line.contains("`commits.9` is past the end of `commits`"), "{line}");
    let line = assert_usage_error(&run(&["send", "push", "--set", "ref.x=1", "--to", to]).await, "through a string");
    assert!(line.contains("goes through `ref`, which is a string"), "{line}");

    let line = assert_usage_error(
        &run(&["send", "--event", "push", "--payload", "/nonexistent/payload.json", "--to", to]).await,
        "a missing payload file",
    );
    assert!(line.contains("/nonexistent/payload.json"), "names the file: {line}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(&path, "not json {").unwrap();
    let line = assert_usage_error(
        &run(&["send", "--event", "push", "--payload", path.to_str().unwrap(), "--to", to]).await,
        "a payload that is not JSON",
    );
    assert!(line.contains("not valid JSON"), "{line}");

    let line = assert_usage_error(&run(&["send", "--event", "push", "--to", "garbage"]).await, "--to garbage");
    assert!(line.contains("garbage"), "{line}");
    assert_usage_error(&run(&["send", "--event", "push", "--to", "ftp://x/y"]).await, "--to ftp://");
    assert_usage_error(&run(&["send", "--event", "push", "--to", to, "--repeat", "0"]).await, "--repeat 0");

    let dev = ["dev", "--repo", "octo-org/hello-world", "--to", "localhost:3000"];
    let line = assert_usage_error(&run(&[&dev[..], &["--interval", "0"]].concat()).await, "--interval 0");
    assert!(line.contains("interval"), "{line}");
    let line =
        assert_usage_error(&run(&["dev", "--repo", "not/a/slug", "--to", "localhost:3000"]).await, "a malformed slug");
    assert!(line.contains("not/a/slug"), "{line}");
    assert_usage_error(&run(&["dev", "--repo", "octo", "--to", "localhost:3000"]).await, "an org given as --repo");
}

#[tokio::test]
async fn help_never_shows_the_secret_from_the_environment() {
    for args in [&["send", "--help"][..], &["dev", "--help"], &["--help"], &["replay", "--help"]] {
        // run() asserts the secret is absent.
        let out = run(args).await;
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
        assert!(out.stdout.contains("HOOKFWD_SECRET") || args == ["--help"], "{args:?} names the variable");
    }
}

#[tokio::test]
async fn completions_print_a_script_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]).await;
        assert_eq!(out.code, Some(0), "{shell}: {}", out.stderr);
        assert!(out.stdout.contains("hookfwd"), "{shell} script names hookfwd");
        assert!(out.stdout.lines().count() > 10, "{shell} script is not trivial");
    }
}

#[tokio::test]
async fn a_since_further_back_than_dates_go_is_one_line_and_exit_2() {
    // Before the check, `--since 300000y` overflowed the date arithmetic: a SIGABRT or a backtrace.
    let repo = ["--repo", "octo-org/hello-world", "--to", "localhost:3000", "--since", "300000y"];
    for command in [&["dev"][..], &["wait", "--event", "push"], &["replay"]] {
        let args = [command, &repo[..]].concat();
        let out = run(&args).await;
        let line = assert_usage_error(&out, &format!("{command:?} --since 300000y"));
        assert!(line.contains("300000y") && line.contains("10 years"), "{line}");
        assert!(!out.stderr.contains("panicked") && !out.stderr.contains("backtrace"), "{}", out.stderr);
    }
}

#[tokio::test]
async fn completions_offer_the_built_in_event_names_and_any_event_is_still_accepted() {
    let out = run(&["completions", "bash"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for event in ["pull_request", "workflow_job", "check_suite"] {
        assert!(out.stdout.contains(event), "bash completes --event with {event}");
    }
    let recorder = Recorder::start().await;
    let payload = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(payload.path(), br#"{"action":"created"}"#).unwrap();
    let path = payload.path().to_str().unwrap();
    let out = run(&["send", "--event", "sponsorship", "--payload", path, "--to", &recorder.url(), "--json"]).await;
    assert_eq!(out.code, Some(0), "an event without a sample is still sent: {}", out.stderr);
}

#[tokio::test]
async fn a_bare_port_as_to_suggests_localhost_and_expect_status_takes_only_http_statuses() {
    let out = run(&["send", "--event", "ping", "--to", "3000"]).await;
    let line = assert_usage_error(&out, "--to 3000");
    assert!(
        line.ends_with("`3000` is not a target URL or host:port[/path]; did you mean http://localhost:3000?"),
        "{line}"
    );
    for status in ["99", "600", "0"] {
        let out = run(&["send", "--event", "ping", "--to", "localhost:1", "--expect-status", status]).await;
        let line = assert_usage_error(&out, &format!("--expect-status {status}"));
        assert!(line.contains("100..=599") || line.contains("not in 100"), "{line}");
    }
}

#[tokio::test]
async fn send_warns_about_an_action_github_never_sends_for_the_event() {
    let recorder = Recorder::start().await;
    let out = run(&["send", "--event", "issues", "--action", "merged", "--to", &recorder.url()]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("warning: GitHub never sends issues with action `merged` (it sends assigned, "),
        "{}",
        out.stderr
    );
    let out = run(&["send", "--event", "issues", "--action", "closed", "--to", &recorder.url()]).await;
    assert!(!out.stderr.contains("never sends"), "{}", out.stderr);
}

#[tokio::test]
async fn an_https_target_at_a_plain_http_handler_says_exactly_that() {
    let recorder = Recorder::start().await;
    let https = recorder.url().replacen("http://", "https://", 1);
    let out = run(&["send", "--event", "ping", "--to", &https]).await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("the handler answered in plain HTTP, not HTTPS; use http:// in --to"),
        "{}",
        out.stderr
    );
}
