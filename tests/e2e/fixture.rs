//! Fixtures through the real binary: `--record`, `replay --save`, `send --fixture`, and their bad input.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::{Account, Recorder, Running};
use fake_github::HookSpec;
use github::Secret;
use github::signature::verify_sha256;
use serde_json::{Value, json};

const TOKEN: &str = "ghp_e2eFixtureTokenNeverPrinted000077";
const SECRET: &str = "fixture-secret-never-printed-0c4b";
const OTHER_SECRET: &str = "fixture-other-secret-never-printed-77";
const REPO: &str = "octo-org/fixtures";
const ACCOUNT: Account = Account { token: TOKEN, secret: SECRET, repo: REPO };

fn fixtures(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).map(|entry| entry.path()).collect())
        .unwrap_or_default();
    files.retain(|path| path.extension().is_some_and(|ext| ext == "json"));
    files.sort();
    files
}

async fn wait_files(dir: &Path, count: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let files = fixtures(dir);
        if files.len() >= count {
            return files;
        }
        assert!(Instant::now() < deadline, "{} fixtures, not {count}", files.len());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// No signature, secret or token in any fixture file.
fn assert_clean(files: &[PathBuf]) {
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for secret in [SECRET, TOKEN, "sha256=", "sha1=", "X-Hub-Signature"] {
            assert!(!text.contains(secret), "{} holds {secret}: {text}", file.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn recorded_deliveries_are_sent_again_byte_exact_and_resigned_with_the_local_secret() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    // A hook that exists already: one hookfwd created would record its creation ping too.
    fake.add_hook(REPO, HookSpec::new(fake.blackhole_url()));
    let handler = Recorder::start().await;
    let (state, record) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let record_dir = record.path().join("made/by/record");
    let (hook_url, api_url) = (fake.blackhole_url(), fake.api_url().to_string());
    let args = [
        "dev",
        "--repo",
        REPO,
        "--to",
        &handler.url(),
        "--hook-url",
        &hook_url,
        "--api-url",
        &api_url,
        "--interval",
        "100ms",
        "--no-inspect",
        "--state-dir",
        state.path().to_str().unwrap(),
        "--record",
        record_dir.to_str().unwrap(),
    ];
    let dev = ACCOUNT.hookfwd(args, &[]);
    dev.wait_line("Ready!").await;
    fake.emit(REPO, "issues", json!({"action": "opened", "number": 1, "title": "spaced  \u{e9}"})).await;
    fake.emit(REPO, "push", json!({"ref": "refs/heads/main", "n": 2})).await;
    let files = wait_files(&record_dir, 2).await;
    handler.wait_for(Duration::from_secs(30), "two forwards", |got| got.len() >= 2).await;
    drop(dev);
    assert_clean(&files);
    let saved: Vec<Value> =
        files.iter().map(|file| serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()).collect();
    assert_eq!(saved[0]["hookfwd_fixture"], 2);
    assert_eq!(saved[0]["headers"]["X-GitHub-Event"], "issues", "headers as on --json lines: {}", saved[0]);
    assert_eq!(saved[0]["event"], "issues");
    assert_eq!(saved[0]["action"], "opened");
    assert_eq!(saved[1]["event"], "push");
    let forwarded = handler.received();

    // Sent again to another handler with another secret: the same bytes, a signature that verifies.
    let again = Recorder::start().await;
    let sent = Account { secret: OTHER_SECRET, ..ACCOUNT }
        .hookfwd(["send", "--fixture", record_dir.to_str().unwrap(), "--to", &again.url(), "--json"], &[])
        .finish()
        .await;
    assert_eq!(sent.code, Some(0), "{}", sent.stderr);
    let received = again.received();
    assert_eq!(received.len(), 2);
    for (request, original) in received.iter().zip(&forwarded) {
        assert_eq!(request.body, original.body, "the payload bytes are kept exactly");
        assert_eq!(request.header("x-github-delivery"), original.header("x-github-delivery"));
        let signature = request.header("x-hub-signature-256").expect("re-signed");
        assert!(verify_sha256(&Secret::new(OTHER_SECRET), &request.body, signature));
    }
    let lines = sent.json();
    assert_eq!(lines.len(), 2, "{}", sent.stdout);
    assert!(lines.iter().all(|line| line["type"] == "sent" && line["status"] == 200), "{}", sent.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_save_exports_deliveries_instead_of_forwarding_them() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    fake.add_hook(REPO, HookSpec::new(fake.blackhole_url()));
    for n in 0..3 {
        fake.emit(REPO, "issues", json!({"action": "opened", "number": n})).await;
    }
    let (state, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (hook_url, api_url) = (fake.blackhole_url(), fake.api_url().to_string());
    let args = [
        "replay",
        "--repo",
        REPO,
        "--hook-url",
        &hook_url,
        "--api-url",
        &api_url,
        "--since",
        "1h",
        "--save",
        out.path().to_str().unwrap(),
    ];
    let run = Running::hookfwd(
        args,
        &[
            ("GITHUB_TOKEN", OsStr::new(TOKEN)),
            ("HOOKFWD_SECRET", OsStr::new(SECRET)),
            ("HOOKFWD_STATE_DIR", state.path().as_os_str()),
        ],
    )
    .finish()
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let files = fixtures(out.path());
    assert_eq!(files.len(), 3, "{}", run.stdout);
    assert_clean(&files);
    let numbers: Vec<Value> = files
        .iter()
        .map(|file| {
            serde_json::from_slice::<Value>(&std::fs::read(file).unwrap()).unwrap()["payload"]["number"].clone()
        })
        .collect();
    assert_eq!(numbers, [json!(0), json!(1), json!(2)], "name order is delivery order");
}

#[tokio::test]
async fn a_file_that_is_not_a_fixture_is_one_sentence_and_nothing_is_sent() {
    let handler = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        br#"{"hookfwd_fixture":1,"event":"ping","guid":"g","headers":[],"payload":{}}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("b.json"), br#"{"zen":"not a fixture"}"#).unwrap();
    let run = ACCOUNT
        .hookfwd(["send", "--fixture", dir.path().to_str().unwrap(), "--to", &handler.url()], &[])
        .finish()
        .await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].contains("b.json is not a hookfwd fixture"), "{}", run.stderr);
    assert!(handler.received().is_empty(), "nothing is sent when one file is bad");
}

#[tokio::test]
async fn recording_into_an_unwritable_directory_is_one_sentence() {
    let fake = ACCOUNT.fake("repo, admin:repo_hook").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let into = file.join("fixtures");
    let (hook_url, api_url) = (fake.blackhole_url(), fake.api_url().to_string());
    let args = [
        "dev",
        "--repo",
        REPO,
        "--to",
        "localhost:9",
        "--hook-url",
        &hook_url,
        "--api-url",
        &api_url,
        "--no-inspect",
        "--record",
        into.to_str().unwrap(),
    ];
    let run = ACCOUNT.hookfwd(args, &[]).finish().await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].contains("cannot write fixtures into"), "{}", run.stderr);
}
