//! The push-mode benchmark: release `hookfwd dev` and `blackhole` against the in-process fake
//! GitHub with 20 ms of added API latency, push mode and `--interval 1s` polling side by side in
//! one run. Prints a Markdown table for `docs/benchmarks.md`.
//!
//! For each mode: single events at irregular spacing (added latency from the fake's POST to the
//! handler, p50 / p99), a burst through one blackhole and one hookfwd (deliveries/s, lost,
//! repeated), API calls per delivery over both, then a quiet spell (rate-limited calls while
//! idle). Run it with `bench/push.sh`. Everything listens on 127.0.0.1. Knobs: `HOOKFWD_BIN`,
//! `BLACKHOLE_BIN` (else both are built in release), `PUSH_EVENTS` (100), `PUSH_BURST` (5000),
//! `PUSH_IDLE_SECS` (40).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::bench::{XorShift, env_number, ms, percentile, release_bin, status_kib, verdict};
use e2e::{Counter, Guard};
use fake_github::FakeGitHub;
use serde_json::json;

const TOKEN: &str = "ghp_benchPushTokenNeverPrinted0000001";
const SECRET: &str = "push-bench-secret-never-printed";
const STREAM_TOKEN: &str = "push-bench-stream-token";
const REPO: &str = "octo/push";
/// The secret GitHub signs the push-mode hook's deliveries with (given to hookfwd as the hook's secret).
const UPSTREAM: &str = "push-bench-upstream-secret";
/// Added to every fake API answer: a nearby GitHub.
const LATENCY: Duration = Duration::from_millis(20);
/// No burst may take longer than this.
const DEADLINE: Duration = Duration::from_secs(180);

/// Push mode or polling.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Push,
    Poll,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Push => "push (stream)",
            Self::Poll => "poll `--interval 1s`",
        }
    }
}

/// A child process whose stdout is read (and dropped) so it never blocks; killed when dropped.
struct Child {
    _guard: Guard,
    pid: u32,
    /// Lines matching what the caller watches for.
    watched: Arc<Mutex<Vec<String>>>,
}

impl Child {
    fn spawn(mut command: Command, watch: &'static [&'static str]) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the child starts");
        let watched = Arc::new(Mutex::new(Vec::new()));
        for stream in [child.stdout.take().map(read_box), child.stderr.take().map(read_box)].into_iter().flatten() {
            let lines = watched.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if watch.iter().any(|needle| line.contains(needle)) {
                        lines.lock().expect("watch lock").push(line);
                    }
                }
            });
        }
        let pid = child.id();
        Self { _guard: Guard(child), pid, watched }
    }

    async fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self.watched.lock().expect("watch lock").iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            assert!(Instant::now() < deadline, "no `{needle}` line");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn read_box(stream: impl std::io::Read + Send + 'static) -> Box<dyn std::io::Read + Send> {
    Box::new(stream)
}

/// What one mode measured.
struct Run {
    /// Emit to arrival of single events, sorted.
    latencies: Vec<Duration>,
    /// Single events that never arrived.
    missing: usize,
    /// API calls counted against the rate limit, and GETs, over singles and burst.
    counted: u64,
    gets: u64,
    lists: u64,
    /// Deliveries made over singles and burst.
    deliveries: usize,
    /// The burst: its size, time from the first emit to the last arrival, distinct and total arrivals.
    burst: usize,
    burst_time: Duration,
    distinct: usize,
    arrivals: usize,
    /// Rate-limited calls over the quiet spell, and how long it was.
    idle_counted: u64,
    idle: Duration,
    /// Push mode: pre-signed deliveries POSTed straight to the blackhole, measured apart from the fake.
    direct: Option<Direct>,
    /// hookfwd's and the blackhole's peak RSS, in KiB.
    hookfwd_hwm: Option<u64>,
    blackhole_hwm: Option<u64>,
}

async fn run(mode: Mode, hookfwd: &Path, blackhole: &Path, events: usize, burst: usize, idle: Duration) -> Run {
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_repo(REPO);
    fake.set_ping_on_create(false);
    fake.set_rate_limit(1_000_000);
    fake.faults().set_latency(LATENCY);
    // The engine's pace, not GitHub's secondary limit (lifted in hookfwd too), as bench/relay.sh measures it.
    fake.set_secondary_limits(fake_github::SecondaryLimits { per_minute: None, concurrent: None });
    let handler = Counter::start(SECRET).await;
    let state = tempfile::tempdir().expect("a state dir");

    let mut bh = Command::new(blackhole);
    bh.args(["--listen", "127.0.0.1:0", "--stream-token", STREAM_TOKEN, "--max-connections-per-ip", "0"])
        .env_clear()
        .env("NO_COLOR", "1");
    let bh = Child::spawn(bh, &["listening on"]);
    let line = bh.wait_for("listening on").await;
    let addr = line.split("listening on ").nth(1).and_then(|rest| rest.split_whitespace().next()).expect("an address");
    let hook_url = match mode {
        Mode::Push => format!("http://{addr}/bench"),
        // Polling's hook delivers to the same blackhole; nothing subscribes.
        Mode::Poll => format!("http://{addr}/bench-poll"),
    };
    if mode == Mode::Push {
        // Found by hookfwd, with the secret it verifies pushed deliveries with.
        fake.add_hook(REPO, fake_github::HookSpec::new(&hook_url).secret(UPSTREAM));
    }

    let mut relay = Command::new(hookfwd);
    relay
        .args(["dev", "--json", "--repo", REPO, "--to", &handler.url, "--hook-url", &hook_url])
        .args(["--api-url", fake.api_url().as_str(), "--interval", "1s", "--secondary-limit", "1000000000"])
        .arg("--state-dir")
        .arg(state.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GITHUB_TOKEN", TOKEN)
        .env("HOOKFWD_SECRET", SECRET);
    if mode == Mode::Push {
        relay.env("HOOKFWD_STREAM_TOKEN", STREAM_TOKEN).env("HOOKFWD_HOOK_SECRET", UPSTREAM);
    }
    let relay = Child::spawn(
        relay,
        &[r#""type":"hook""#, r#""type":"ready""#, r#""state":"up""#, r#""type":"warning""#, r#""state":"down""#],
    );
    let hook: serde_json::Value = serde_json::from_str(&relay.wait_for(r#""type":"hook""#).await).expect("JSON");
    let hook = hook["hook_id"].as_u64().expect("the hook hookfwd polls");
    relay.wait_for(r#""type":"ready""#).await;
    if mode == Mode::Push {
        relay.wait_for(r#""state":"up""#).await;
    }
    // Settle into idle polls (304s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = fake.stats();

    // Singles at irregular spacing.
    let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut emitted: HashMap<u64, Instant> = HashMap::new();
    let start_count = handler.count();
    for n in 0..events {
        tokio::time::sleep(Duration::from_millis(100 + random.next_u64() % 401)).await;
        let at = Instant::now();
        for id in fake.emit(REPO, "issues", json!({"action": "edited", "number": n})).await {
            emitted.insert(id, at);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while handler.count() < start_count + emitted.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let guids: HashMap<String, u64> = fake.deliveries(hook).into_iter().map(|d| (d.guid, d.id)).collect();
    let mut latencies: Vec<Duration> = {
        let seen = handler.seen.lock().expect("counter lock");
        seen.arrivals[start_count..]
            .iter()
            .filter_map(|(guid, arrived)| Some(arrived.saturating_duration_since(*emitted.get(guids.get(guid)?)?)))
            .collect()
    };
    latencies.sort();
    let missing = emitted.len().saturating_sub(latencies.len());

    // A burst through one blackhole and one hookfwd.
    let burst_start = handler.count();
    let started = Instant::now();
    let payloads = (0..burst).map(|n| json!({"action": "opened", "number": n})).collect();
    fake.emit_many(REPO, "issues", payloads).await;
    while handler.count() < burst_start + burst && started.elapsed() < DEADLINE {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (burst_time, distinct, arrivals) = {
        let seen = handler.seen.lock().expect("counter lock");
        let tail = &seen.arrivals[burst_start..];
        let last = tail.iter().map(|(_, at)| *at).max().unwrap_or_else(Instant::now);
        let distinct = tail.iter().map(|(guid, _)| guid.as_str()).collect::<HashSet<_>>().len();
        (last.saturating_duration_since(started), distinct, tail.len())
    };
    // Let the safety poll (push) or the last poll (poll) run before counting calls.
    tokio::time::sleep(Duration::from_secs(if mode == Mode::Push { 32 } else { 3 })).await;
    let busy = fake.stats().since(&before);
    let deliveries = fake.deliveries(hook).len();

    let direct = match mode {
        Mode::Push => Some(direct_burst(&handler, &hook_url, hook, burst).await),
        Mode::Poll => None,
    };

    // A quiet spell.
    let before_idle = fake.stats();
    tokio::time::sleep(idle).await;
    let quiet = fake.stats().since(&before_idle);
    let watched = relay.watched.lock().expect("watch lock");
    for line in watched.iter().filter(|line| line.contains("warning") || line.contains(r#""state":"down""#)) {
        eprintln!("push bench: {}: {line}", mode.name());
    }
    Run {
        latencies,
        missing,
        counted: busy.counted,
        gets: busy.get_delivery,
        lists: busy.list_deliveries,
        deliveries,
        burst,
        burst_time,
        distinct,
        arrivals,
        idle_counted: quiet.counted,
        idle,
        direct,
        hookfwd_hwm: status_kib(relay.pid, "VmHWM:"),
        blackhole_hwm: status_kib(bh.pid, "VmHWM:"),
    }
}

/// What the burst of pre-signed POSTs straight to the blackhole measured.
struct Direct {
    /// Deliveries POSTed.
    sent: usize,
    /// From the first POST to the last one answered: the emitter's own pace.
    emitted_in: Duration,
    /// From the first POST to the last arrival at the handler.
    arrived_in: Duration,
    /// Distinct and total arrivals.
    distinct: usize,
    arrivals: usize,
}

/// POSTs `count` deliveries signed as GitHub would to the blackhole as fast as it takes them (8
/// connections), and waits for them at the handler: hookfwd's push throughput, not the fake's.
async fn direct_burst(handler: &Counter, hook_url: &str, hook: u64, count: usize) -> Direct {
    let secret = github::Secret::new(UPSTREAM);
    let requests: Vec<(String, Vec<u8>, String)> = (0..count)
        .map(|n| {
            let guid = uuid::Uuid::new_v4().to_string();
            let body =
                serde_json::to_vec(&json!({"action": "opened", "number": n, "issue": {"number": n}})).expect("JSON");
            let signature = github::signature::sha256(&secret, &body);
            (guid, body, signature)
        })
        .collect();
    let client = e2e::http();
    let start_count = handler.count();
    let started = Instant::now();
    let requests = Arc::new(Mutex::new(requests.into_iter()));
    let senders = (0..8).map(|_| {
        let (client, requests, url) = (client.clone(), requests.clone(), hook_url.to_string());
        tokio::spawn(async move {
            loop {
                let next = requests.lock().expect("requests lock").next();
                let Some((guid, body, signature)) = next else { break };
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("user-agent", "GitHub-Hookshot/bench")
                    .header("x-github-event", "issues")
                    .header("x-github-delivery", guid)
                    .header("x-github-hook-id", hook.to_string())
                    .header("x-hub-signature-256", signature)
                    .body(body)
                    .send()
                    .await
                    .expect("the blackhole answers");
                assert!(answer.status().is_success(), "{}", answer.status());
            }
        })
    });
    futures::future::join_all(senders).await;
    let emitted_in = started.elapsed();
    while handler.count() < start_count + count && started.elapsed() < DEADLINE {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seen = handler.seen.lock().expect("counter lock");
    let tail = &seen.arrivals[start_count..];
    let last = tail.iter().map(|(_, at)| *at).max().unwrap_or_else(Instant::now);
    let distinct = tail.iter().map(|(guid, _)| guid.as_str()).collect::<HashSet<_>>().len();
    Direct {
        sent: count,
        emitted_in,
        arrived_in: last.saturating_duration_since(started),
        distinct,
        arrivals: tail.len(),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let hookfwd = release_bin("HOOKFWD_BIN", "hookfwd");
    let blackhole = release_bin("BLACKHOLE_BIN", "blackhole");
    let events = env_number("PUSH_EVENTS", 100) as usize;
    let burst = env_number("PUSH_BURST", 5000) as usize;
    let idle = Duration::from_secs(env_number("PUSH_IDLE_SECS", 40));
    let mut runs = Vec::new();
    for mode in [Mode::Push, Mode::Poll] {
        eprintln!("push bench: {}", mode.name());
        runs.push((mode, run(mode, &hookfwd, &blackhole, events, burst, idle).await));
    }

    println!("| measure | {} | {} | target (push) |", runs[0].0.name(), runs[1].0.name());
    println!("|---|---|---|---|");
    let cell = |f: &dyn Fn(&Run) -> String| [f(&runs[0].1), f(&runs[1].1)];
    let row = |measure: &str, cells: [String; 2], target: String| {
        println!("| {measure} | {} | {} | {target} |", cells[0], cells[1]);
    };
    let push = &runs[0].1;
    let (p50, p99) = (percentile(&push.latencies, 50.0), percentile(&push.latencies, 99.0));
    row(
        &format!("added latency, fake's POST → handler, {events} single events: p50 / p99 / max"),
        cell(&|r| {
            let missing = if r.missing > 0 { format!(" ({} never arrived)", r.missing) } else { String::new() };
            format!(
                "{} / {} / {}{missing}",
                ms(percentile(&r.latencies, 50.0)),
                ms(percentile(&r.latencies, 99.0)),
                ms(r.latencies.last().copied().unwrap_or_default())
            )
        }),
        format!(
            "p50 ≤ 20 ms, p99 ≤ 100 ms ({})",
            verdict(push.missing == 0 && p50 <= Duration::from_millis(20) && p99 <= Duration::from_millis(100))
        ),
    );
    let per = |r: &Run| r.counted as f64 / r.deliveries.max(1) as f64;
    row(
        "rate-limited API calls per delivery (singles + burst, then one safety poll)",
        cell(&|r| {
            format!(
                "{:.4} ({} calls: {} lists, {} GETs; {} deliveries)",
                per(r),
                r.counted,
                r.lists,
                r.gets,
                r.deliveries
            )
        }),
        format!("≤ 0.02 ({})", verdict(per(push) <= 0.02)),
    );
    let rate = |r: &Run| r.arrivals as f64 / r.burst_time.as_secs_f64().max(0.001);
    row(
        "burst through one blackhole and one hookfwd: deliveries/s (first emit → last arrival)",
        cell(&|r| format!("{:.0}/s ({} in {:.1} s)", rate(r), r.burst, r.burst_time.as_secs_f64())),
        format!("≥ 1,000/s ({})", verdict(rate(push) >= 1000.0)),
    );
    row(
        "burst: lost / repeated",
        cell(&|r| format!("{} / {}", r.burst.saturating_sub(r.distinct), r.arrivals - r.distinct)),
        format!("0 lost ({})", verdict(push.distinct == push.burst)),
    );
    row(
        "rate-limited calls while idle",
        cell(&|r| format!("{} in {} s", r.idle_counted, r.idle.as_secs())),
        format!("0 ({})", verdict(push.idle_counted == 0)),
    );
    if let Some(direct) = &push.direct {
        let rate = direct.arrivals as f64 / direct.arrived_in.as_secs_f64().max(0.001);
        let emitter = direct.sent as f64 / direct.emitted_in.as_secs_f64().max(0.001);
        row(
            "pre-signed POSTs straight to the blackhole (8 connections): delivered/s (first POST → last arrival); the emitter's own rate; lost / repeated",
            [
                format!(
                    "{rate:.0}/s ({} in {:.2} s); emitter {emitter:.0}/s; {} / {}",
                    direct.sent,
                    direct.arrived_in.as_secs_f64(),
                    direct.sent.saturating_sub(direct.distinct),
                    direct.arrivals - direct.distinct
                ),
                "n/a".into(),
            ],
            format!(
                "≥ 3,000/s, 0 lost, 0 repeated ({})",
                verdict(rate >= 3000.0 && direct.distinct == direct.sent && direct.arrivals == direct.sent)
            ),
        );
    }
    let kib = |v: Option<u64>| v.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    row(
        "peak RSS: hookfwd / blackhole",
        cell(&|r| format!("{} / {}", kib(r.hookfwd_hwm), kib(r.blackhole_hwm))),
        String::new(),
    );
}
