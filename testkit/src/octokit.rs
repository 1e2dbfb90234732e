//! A real third-party webhook receiver: `@octokit/webhooks` under Node (tests/receiver/receiver.mjs).
//!
//! It verifies `X-Hub-Signature-256` with its own secret and parses the payload the way
//! many production handlers do, so a delivery it accepts is one a real handler accepts.
//! Each line it prints is collected: `{"type":"event","id","name","action"}` for a delivery
//! verified and parsed, `{"type":"rejected","status","id","name","error"}` for any other answer.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Guard, workspace_root};

/// How long Node may take to start and print its port.
const STARTUP: Duration = Duration::from_secs(20);

/// The running receiver; killed when dropped.
pub struct OctokitReceiver {
    /// The `node` process.
    _child: Guard,
    /// `http://127.0.0.1:PORT/webhook`.
    url: String,
    /// Every JSON line printed after the first, in order.
    lines: Arc<Mutex<Vec<Value>>>,
}

impl OctokitReceiver {
    /// Starts the receiver with `secret` and waits until it listens.
    ///
    /// Panics with a clear message when Node is missing or the npm packages cannot be installed:
    /// these tests must fail, not skip, without the real receiver.
    pub async fn start(secret: &str) -> Self {
        let dir = receiver_dir();
        let mut child = Command::new("node")
            .arg("receiver.mjs")
            .current_dir(dir)
            .env("WEBHOOK_SECRET", secret)
            .env("WEBHOOK_PATH", "/webhook")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("could not start `node receiver.mjs` in {}: {error}", dir.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let child = Guard(child);

        let url = Arc::new(Mutex::new(None::<String>));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (first, rest) = (url.clone(), lines.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening ") {
                    *first.lock().expect("receiver lock") = Some(url.trim().to_string());
                } else {
                    let value = serde_json::from_str(&line)
                        .unwrap_or_else(|_| serde_json::json!({"type": "unparsed", "line": line}));
                    rest.lock().expect("receiver lock").push(value);
                }
            }
        });

        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(url) = url.lock().expect("receiver lock").clone() {
                return Self { _child: child, url, lines };
            }
            assert!(Instant::now() < deadline, "the octokit receiver did not print its port within {STARTUP:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The URL the receiver answers webhooks on.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<Value> {
        self.lines.lock().expect("receiver lock").clone()
    }

    /// The deliveries verified and parsed so far.
    pub fn events(&self) -> Vec<Value> {
        self.of_type("event")
    }

    /// The requests answered with anything but 2xx so far.
    pub fn rejections(&self) -> Vec<Value> {
        self.of_type("rejected")
    }

    fn of_type(&self, kind: &str) -> Vec<Value> {
        self.lines().into_iter().filter(|line| line["type"] == kind).collect()
    }

    /// Waits until `done` holds for the lines so far, or panics after `timeout` naming `what`.
    pub async fn wait_for(&self, timeout: Duration, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let check = async || Some(self.lines()).filter(|lines| done(lines));
        crate::poll(timeout, check, || format!("timed out waiting for {what}; the receiver printed {:?}", self.lines()))
            .await
    }

    /// Waits for the line about delivery `id` (accepted or rejected) and returns it.
    pub async fn wait_for_delivery(&self, id: &str) -> Value {
        let what = format!("delivery {id}");
        let lines =
            self.wait_for(Duration::from_secs(10), &what, |lines| lines.iter().any(|line| line["id"] == id)).await;
        lines.into_iter().find(|line| line["id"] == id).expect("found above")
    }
}

/// `tests/receiver`, with Node checked and the npm packages installed (once per test run).
fn receiver_dir() -> &'static PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY.get_or_init(|| {
        let dir = workspace_root().join("tests/receiver");
        let version = Command::new("node").arg("--version").output();
        match version {
            Ok(output) if output.status.success() => {}
            _ => panic!(
                "Node.js (20 or later) is needed for the octokit receiver but `node` was not found on PATH; \
                 install it, then run scripts/test"
            ),
        }
        if !dir.join("node_modules/@octokit/webhooks").is_dir() {
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status();
            assert!(
                status.is_ok_and(|status| status.success()),
                "`npm ci` in {} failed; the octokit receiver's packages are missing",
                dir.display()
            );
        }
        dir
    })
}
