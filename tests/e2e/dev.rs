//! `hookfwd dev` through the real binary: crash recovery, shutdown, output hygiene, bad credentials.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{Guard, Receiver, Recorder, hookfwd};
use fake_github::FakeGitHub;
use github::Secret;
use serde_json::{Value, json};

const TOKEN: &str = "ghp_e2eTokenThatMustNeverBePrinted0001";
const SECRET: &str = "local-secret-never-printed-7f3a";
const REPO: &str = "octo-org/hello-world";

/// A running `hookfwd dev`, with its output collected as it arrives.
struct Dev {
    child: Guard,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Dev {
    fn start(fake: &FakeGitHub, target: &str, state: &Path, extra: &[&str]) -> Self {
        Self::start_signing_with(SECRET, fake, target, state, extra)
    }

    /// Like [`Dev::start`], with another local secret.
    fn start_signing_with(secret: &str, fake: &FakeGitHub, target: &str, state: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(hookfwd())
            .args(["dev", "--repo", REPO, "--to", target, "--hook-url", &fake.blackhole_url()])
            .args(["--api-url", fake.api_url().as_str(), "--interval", "100ms"])
            .arg("--state-dir")
            .arg(state)
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GITHUB_TOKEN", TOKEN)
            .env("HOOKFWD_SECRET", secret)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hookfwd starts");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (lines, out) = (stdout.clone(), child.stdout.take().expect("piped stdout"));
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let (text, mut err) = (stderr.clone(), child.stderr.take().expect("piped stderr"));
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buffer) {
                text.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        Self { child: Guard(child), stdout, stderr }
    }

    /// Waits for a stdout line containing `needle` and returns it.
    async fn wait_line(&self, needle: &str) -> String {
        self.wait_lines(needle, 1).await.swap_remove(0)
    }

    /// Waits for at least `count` stdout lines containing `needle` and returns them all.
    async fn wait_lines(&self, needle: &str, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let lines: Vec<String> =
                self.stdout.lock().unwrap().iter().filter(|line| line.contains(needle)).cloned().collect();
            if lines.len() >= count {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` line; stdout: {:?}; stderr: {}",
                self.stdout.lock().unwrap(),
                self.stderr.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for the process to exit and returns its code with everything it printed.
    async fn exit(mut self) -> (Option<i32>, String, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.0.try_wait().expect("wait works") {
                break status;
            }
            assert!(Instant::now() < deadline, "hookfwd did not exit");
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        tokio::time::sleep(Duration::from_millis(100)).await; // let the readers drain the pipes
        let stdout = self.stdout.lock().unwrap().join("\n");
        let stderr = self.stderr.lock().unwrap().clone();
        (status.code(), stdout, stderr)
    }
}

async fn fake_with_repo() -> FakeGitHub {
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_repo(REPO);
    fake
}

fn payload(n: usize) -> Value {
    json!({"action": "opened", "number": n, "issue": {"number": n, "title": format!("issue {n}")},
           "repository": {"full_name": REPO}, "sender": {"login": "octocat"}})
}

/// Every recorded request carries a valid signature made with the local secret over the exact body.
fn assert_signed(received: &[e2e::Received]) {
    let secret = Secret::new(SECRET);
    for request in received {
        let signature = request.header("x-hub-signature-256").expect("signed");
        assert!(github::signature::verify_sha256(&secret, &request.body, signature), "bad signature");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn resumes_after_kill_without_loss() {
    let fake = fake_with_repo().await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = Dev::start(&fake, &handler.url(), state.path(), &["--json"]);
    let hook: Value = serde_json::from_str(&dev.wait_line("\"type\":\"hook\"").await).unwrap();
    let hook_id = hook["hook_id"].as_u64().expect("hook id");
    dev.wait_line("\"type\":\"ready\"").await;

    // A stream of events; hookfwd is killed in the middle of it, and restarted while it goes on.
    let total = 60;
    for n in 0..20 {
        fake.emit(REPO, "issues", payload(n)).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handler.wait_for(Duration::from_secs(30), "the first forwards", |got| got.len() >= 5).await;
    dev.child.signal(libc::SIGKILL);
    let (code, _, _) = dev.exit().await;
    assert_eq!(code, None, "killed by a signal");
    for n in 20..40 {
        fake.emit(REPO, "issues", payload(n)).await;
    }
    let dev = Dev::start(&fake, &handler.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    for n in 40..total {
        fake.emit(REPO, "issues", payload(n)).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // GitHub pings a hook it creates; the ping arrived before "ready" and is not part of the stream.
    let emitted: HashSet<String> =
        fake.deliveries(hook_id).into_iter().filter(|d| d.event == "issues").map(|d| d.guid).collect();
    assert_eq!(emitted.len(), total);
    let received = handler
        .wait_for(Duration::from_secs(60), "every delivery", |got| {
            let seen: HashSet<&str> = got.iter().filter_map(|r| r.header("x-github-delivery")).collect();
            emitted.iter().all(|guid| seen.contains(guid.as_str()))
        })
        .await;
    assert_signed(&received);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for request in &received {
        *counts.entry(request.header("x-github-delivery").unwrap()).or_default() += 1;
    }
    let repeated: usize = counts.values().map(|n| n - 1).sum();
    assert!(repeated <= 8, "a crash may repeat at most the deliveries in flight, but {repeated} were repeated");
    drop(dev);
}

#[tokio::test(flavor = "multi_thread")]
async fn stops_on_sigterm_and_never_prints_secrets() {
    let fake = fake_with_repo().await;
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = Dev::start(&fake, &handler.url(), state.path(), &["-vvv"]);
    dev.wait_line("Ready").await;
    for n in 0..3 {
        fake.emit(REPO, "issues", payload(n)).await;
    }
    let received = handler.wait_for(Duration::from_secs(30), "three forwards", |got| got.len() >= 3).await;
    assert_signed(&received);
    dev.wait_line("<--").await;

    dev.child.signal(libc::SIGTERM);
    let (code, stdout, stderr) = dev.exit().await;
    assert_eq!(code, Some(0), "SIGTERM is a clean stop; stderr: {stderr}");
    assert!(stdout.contains("--> issues.opened"), "the feed shows each delivery: {stdout}");
    assert!(stdout.contains("<-- [200] POST"), "the feed shows the handler's answer: {stdout}");
    for secret in [TOKEN, SECRET] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "a secret was printed");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");

    // The ledger is private to the user.
    use std::os::unix::fs::PermissionsExt;
    let ledgers: Vec<_> = std::fs::read_dir(state.path()).unwrap().map(|entry| entry.unwrap().path()).collect();
    assert!(!ledgers.is_empty(), "a ledger was written");
    for ledger in ledgers.iter().filter(|path| path.is_file()) {
        let mode = std::fs::metadata(ledger).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", ledger.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_token_is_one_sentence_and_exit_3() {
    let fake = FakeGitHub::start().await;
    fake.add_repo(REPO);
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = Dev::start(&fake, &handler.url(), state.path(), &[]);
    let (code, stdout, stderr) = dev.exit().await;
    assert_eq!(code, Some(3), "stdout: {stdout}; stderr: {stderr}");
    assert!(stderr.contains("401"), "names the failure: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{stderr}");
    assert!(!stderr.contains(TOKEN) && !stdout.contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_repository_is_named_and_fails() {
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    let handler = Recorder::start().await;
    let state = tempfile::tempdir().unwrap();

    let dev = Dev::start(&fake, &handler.url(), state.path(), &[]);
    let (code, _, stderr) = dev.exit().await;
    assert_ne!(code, Some(0));
    assert!(stderr.contains(REPO) && stderr.contains("not found"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn octokit_accepts_every_event_relayed_from_github() {
    let fake = fake_with_repo().await;
    let receiver = Receiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();

    let dev = Dev::start(&fake, receiver.url(), state.path(), &["--json"]);
    let hook: Value = serde_json::from_str(&dev.wait_line("\"type\":\"hook\"").await).unwrap();
    let hook_id = hook["hook_id"].as_u64().expect("hook id");
    dev.wait_line("\"type\":\"ready\"").await;
    let mut guids = Vec::new();
    for event in github::samples::EVENTS {
        let ids = fake.emit_sample(REPO, event).await.expect("a sample for every event");
        assert_eq!(ids.len(), 1, "one hook, one delivery");
        let guid = fake.deliveries(hook_id).into_iter().find(|d| d.id == ids[0]).expect("recorded").guid;
        guids.push((event, guid));
    }
    for (event, guid) in &guids {
        let line = receiver.wait_for_delivery(guid).await;
        assert_eq!(line["type"], "event", "octokit verified and parsed {event}: {line}");
        assert_eq!(line["name"], **event);
    }
    assert!(receiver.rejections().is_empty(), "{:?}", receiver.rejections());
    // GitHub's ping for the hook hookfwd created may be relayed too; every relayed delivery is accepted.
    let forwarded = dev.wait_lines("\"type\":\"forwarded\"", guids.len()).await.len();
    receiver.wait_for(Duration::from_secs(10), "every relayed delivery", |lines| lines.len() >= forwarded).await;
    assert!(receiver.rejections().is_empty(), "{:?}", receiver.rejections());
}

#[tokio::test(flavor = "multi_thread")]
async fn octokit_rejects_a_relay_signing_with_another_secret() {
    let fake = fake_with_repo().await;
    let receiver = Receiver::start(SECRET).await;
    let state = tempfile::tempdir().unwrap();

    let dev = Dev::start_signing_with("not-the-handlers-secret", &fake, receiver.url(), state.path(), &["--json"]);
    dev.wait_line("\"type\":\"ready\"").await;
    fake.emit(REPO, "issues", payload(1)).await;
    let rejected = receiver.wait_for(Duration::from_secs(30), "a rejection", |lines| !lines.is_empty()).await;
    assert_eq!(rejected[0]["type"], "rejected", "{rejected:?}");
    let line: Value = serde_json::from_str(&dev.wait_line("\"type\":\"forwarded\"").await).unwrap();
    assert_eq!(line["status"], 400, "the feed reports the handler's refusal: {line}");
}
