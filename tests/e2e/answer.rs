//! The handler's answer, shown everywhere: a failing handler's body in the feed, `send`, `wait` and `--json`.

use e2e::{Account, Recorder};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_e2eAnswerTokenNeverPrinted000003";
const SECRET: &str = "answer-secret-never-printed-5d1e";
const REPO: &str = "octo-org/answers";
const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };
const SENDER: Account = Account { token: "", secret: SECRET, repo: REPO };
const EXPLODED: &str = r#"{"error":"handler exploded"}"#;

#[tokio::test]
async fn send_shows_a_failing_handlers_body_and_json_carries_the_answer() {
    let handler = Recorder::start().await;
    handler.answer_with(500, EXPLODED);

    let text =
        SENDER.hookfwd(["send", "--event", "issues", "--to", &handler.url()], &[("NO_COLOR", "1")]).finish().await;
    assert_ne!(text.code, Some(0), "a 500 fails the send");
    assert!(text.stdout.contains("500") && text.stdout.contains(EXPLODED), "stdout: {}", text.stdout);

    let json = SENDER
        .hookfwd(["send", "--event", "issues", "--to", &handler.url(), "--json"], &[("NO_COLOR", "1")])
        .finish()
        .await;
    let sent = json.json().into_iter().find(|line| line["type"] == "sent").expect("a sent line");
    assert_eq!(sent["status"], 500);
    assert_eq!(sent["body"], EXPLODED);
    assert_eq!(sent["body_length"], EXPLODED.len());
    assert_eq!(sent["headers"]["content-length"], EXPLODED.len().to_string());
    assert_eq!(sent["body_truncated"], false);
}

#[tokio::test]
async fn a_2xx_body_is_shown_only_with_verbose() {
    let handler = Recorder::start().await;
    handler.answer_with(200, "accepted, thanks");
    let quiet =
        SENDER.hookfwd(["send", "--event", "issues", "--to", &handler.url()], &[("NO_COLOR", "1")]).finish().await;
    assert_eq!(quiet.code, Some(0), "{}", quiet.stderr);
    assert!(!quiet.stdout.contains("accepted, thanks"), "{}", quiet.stdout);
    let verbose = SENDER
        .hookfwd(["send", "--event", "issues", "--to", &handler.url(), "-v"], &[("NO_COLOR", "1")])
        .finish()
        .await;
    assert!(verbose.stdout.contains("accepted, thanks"), "{}", verbose.stdout);
}

#[tokio::test]
async fn the_feed_shows_the_first_lines_of_a_failing_answer_and_verbose_the_whole_body() {
    // A hook made by hand, so that no creation ping is answered before the delivery under test.
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    let long: String = (1..=12).map(|n| format!("trace line {n}\n")).collect();
    handler.answer_with(400, &format!("{EXPLODED}\n{long}"));
    let state = tempfile::tempdir().unwrap();

    let run = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--no-inspect"]);
    run.wait_line("Ready!").await;
    fake.emit(REPO, "issues", json!({"action": "opened", "number": 1})).await;
    // The answer and its body are feed lines: on stdout with the rest of the feed.
    // "more line(s)" closes the answer's block: every line of it has been printed.
    run.wait_line("more line(s)").await;
    let stdout = run.lines().join("\n");
    assert!(stdout.contains("[400]") && stdout.contains(EXPLODED), "{stdout}");
    assert!(!stdout.contains("trace line 5"), "only the first lines without -v: {stdout}");
    assert!(stdout.contains("more line(s)"), "{stdout}");
    drop(run);

    let state = tempfile::tempdir().unwrap();
    let run = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--no-inspect", "-v"]);
    run.wait_line("Ready!").await;
    fake.emit(REPO, "issues", json!({"action": "opened", "number": 2})).await;
    run.wait_line("trace line 12").await;
}

#[tokio::test]
async fn json_forwarded_lines_carry_status_headers_body_and_length() {
    // A hook made by hand, so that no creation ping is answered before the delivery under test.
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    handler.answer_with(500, EXPLODED);
    let state = tempfile::tempdir().unwrap();
    let run = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--no-inspect", "--json"]);
    run.wait_line("\"type\":\"ready\"").await;
    fake.emit(REPO, "issues", json!({"action": "opened", "number": 3})).await;
    let line: Value = serde_json::from_str(&run.wait_line("\"type\":\"forwarded\"").await).unwrap();
    assert_eq!(line["status"], 500);
    assert_eq!(line["body"], EXPLODED);
    assert_eq!(line["body_length"], EXPLODED.len());
    assert!(line["headers"].as_object().is_some_and(|headers| headers.contains_key("content-length")), "{line}");
}

#[tokio::test]
async fn a_401_from_the_handler_asks_once_whether_it_verifies_with_hookfwd_secret() {
    // A hook made by hand, so that no creation ping is answered before the deliveries under test.
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    let handler = Recorder::start().await;
    handler.answer_with(401, r#"{"error":"bad signature"}"#);
    let state = tempfile::tempdir().unwrap();
    let run = ACCOUNT.dev(&fake, &handler.url(), state.path(), &["--no-inspect"]);
    run.wait_line("Ready!").await;
    fake.emit(REPO, "issues", json!({"action": "opened", "number": 1})).await;
    fake.emit(REPO, "issues", json!({"action": "opened", "number": 2})).await;
    run.wait_lines("<-- [401]", 2).await;
    run.signal(libc::SIGTERM);
    let finished = run.finish().await;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    let hints: Vec<&str> = finished.stdout.lines().filter(|line| line.contains("HOOKFWD_SECRET?")).collect();
    assert_eq!(hints.len(), 1, "once per run: {}", finished.stdout);
    assert!(
        hints[0].ends_with(
            "!!! the handler answered 401: does the handler verify with HOOKFWD_SECRET? hookfwd signs \
                            each delivery with it"
        ),
        "{}",
        hints[0]
    );
    finished.assert_never_printed(&[TOKEN, SECRET]);
}
