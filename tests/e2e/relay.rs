//! The relay engine through the real binary: a long backlog drains with flat memory.

use std::collections::HashSet;
use std::convert::Infallible;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use e2e::{Guard, hookfwd};
use fake_github::{FakeGitHub, HookSpec};
use github::Secret;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

const TOKEN: &str = "ghp_e2eRelayBacklogTokenNeverPrinted01";
const SECRET: &str = "relay-backlog-secret-never-printed";
const REPO: &str = "octo/backlog";
const BACKLOG: usize = 10_000;
/// The promise: a backlog of any length drains within this peak resident set.
const PEAK_RSS_KIB: u64 = 30 * 1024;

/// What the counting receiver saw: delivery guids, and how many signatures failed.
#[derive(Default)]
struct Seen {
    guids: Vec<String>,
    bad_signatures: usize,
}

/// A handler on 127.0.0.1:0 that checks each signature and keeps only the guid.
async fn receiver() -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        let header = |name: &str| {
                            request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
                        };
                        let (guid, signature) = (header("x-github-delivery"), header("x-hub-signature-256"));
                        let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let valid = github::signature::verify_sha256(&Secret::new(SECRET), &body, &signature);
                        let mut seen = log.lock().unwrap();
                        seen.guids.push(guid);
                        seen.bad_signatures += usize::from(!valid);
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (url, seen)
}

/// The peak resident set of a process, from `/proc/PID/status`.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn a_ten_thousand_delivery_backlog_drains_with_flat_memory() {
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_hook(REPO, HookSpec::new(fake.blackhole_url()));
    // One call per delivery: more than GitHub's default 5,000 an hour, as on a GitHub App installation.
    fake.set_rate_limit(50_000);
    // 4 KiB each: 40 MiB of payloads in all, more than the memory allowed.
    let filler = "x".repeat(4096);
    let payloads = (0..BACKLOG).map(|n| json!({"action": "opened", "number": n, "filler": filler})).collect();
    assert_eq!(fake.emit_many(REPO, "issues", payloads).await.len(), BACKLOG);
    let (target, seen) = receiver().await;
    let state = tempfile::tempdir().unwrap();

    let mut child = Command::new(hookfwd())
        .args(["dev", "--repo", REPO, "--to", &target, "--hook-url", &fake.blackhole_url()])
        .args(["--api-url", fake.api_url().as_str(), "--interval", "100ms", "--since", "1h"])
        .arg("--state-dir")
        .arg(state.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GITHUB_TOKEN", TOKEN)
        .env("HOOKFWD_SECRET", SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hookfwd starts");
    // Drain both pipes so the feed never blocks the relay.
    for mut pipe in
        [Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, Box::new(child.stderr.take().unwrap())]
    {
        std::thread::spawn(move || std::io::copy(&mut pipe, &mut std::io::sink()));
    }
    let child = Guard(child);
    let pid = child.0.id();

    let deadline = Instant::now() + Duration::from_secs(300);
    let mut peak = 0;
    while seen.lock().unwrap().guids.len() < BACKLOG {
        peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
        assert!(Instant::now() < deadline, "only {} of {BACKLOG} forwarded", seen.lock().unwrap().guids.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
    drop(child);

    let seen = seen.lock().unwrap();
    assert_eq!(seen.guids.len(), BACKLOG);
    assert_eq!(seen.guids.iter().collect::<HashSet<_>>().len(), BACKLOG, "each delivery once");
    assert_eq!(seen.bad_signatures, 0);
    assert!(peak > 0, "VmHWM was readable");
    assert!(peak <= PEAK_RSS_KIB, "peak RSS {peak} KiB > {PEAK_RSS_KIB} KiB");
}
