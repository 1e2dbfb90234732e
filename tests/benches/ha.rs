//! The high-availability benchmark: two release `hookfwd forward` replicas in push mode sharing
//! one ledger in a real `redis-server`, both subscribed to the blackhole, against the in-process
//! fake GitHub with 20 ms of added API latency. Prints a Markdown table for `docs/benchmarks.md`.
//!
//! Single events at irregular spacing (latency from the fake's POST to the handler, p50 / p99), a
//! burst of 2,000 (time from the last POST answered to the last arrival), then one safety poll:
//! API calls and GETs per delivery, lost and repeated. With `HA_BLACKHOLES=2` the hook URL is
//! nginx, alternating two `blackhole --redis` instances that share the stream through Redis.
//!
//! Run it with `bench/ha.sh`. Everything listens on 127.0.0.1. Knobs: `HOOKFWD_BIN`,
//! `BLACKHOLE_BIN` (else both are built in release), `HA_EVENTS` (200), `HA_BURST` (2000),
//! `HA_BLACKHOLES` (1, or 2 behind `HA_FRONT`, the URL of a round-robin proxy bench/ha.sh starts).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use e2e::bench::{XorShift, env_number, ms, percentile, release_bin, spawn_hookfwd, verdict};
use e2e::{Counter, Guard, RedisServer};
use fake_github::{FakeGitHub, HookSpec};
use serde_json::json;

const TOKEN: &str = "ghp_benchHaTokenNeverPrinted00000000001";
const SECRET: &str = "ha-bench-secret-never-printed";
const STREAM_TOKEN: &str = "ha-bench-stream-token";
const UPSTREAM: &str = "ha-bench-upstream-secret";
const REPO: &str = "octo/ha";
/// Added to every fake API answer: a nearby GitHub.
const LATENCY: Duration = Duration::from_millis(20);
/// Nothing may take longer than this.
const DEADLINE: Duration = Duration::from_secs(120);

/// A child process whose output is read as it comes (so it never blocks); killed when dropped.
struct Child {
    _guard: Guard,
    /// Lines with any of the watched needles.
    watched: Arc<std::sync::Mutex<Vec<String>>>,
    /// `forwarded` lines.
    forwarded: Arc<AtomicUsize>,
}

impl Child {
    fn spawn(mut child: std::process::Child, watch: &'static [&'static str]) -> Self {
        let watched = Arc::new(std::sync::Mutex::new(Vec::new()));
        let forwarded = Arc::new(AtomicUsize::new(0));
        let streams: [Option<Box<dyn std::io::Read + Send>>; 2] = [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ];
        for stream in streams.into_iter().flatten() {
            let (watched, forwarded) = (watched.clone(), forwarded.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if line.contains(r#""type":"forwarded""#) {
                        forwarded.fetch_add(1, Ordering::Relaxed);
                    } else if watch.iter().any(|needle| line.contains(needle)) {
                        watched.lock().expect("watch lock").push(line);
                    }
                }
            });
        }
        Self { _guard: Guard(child), watched, forwarded }
    }

    async fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self.watched.lock().expect("watch lock").iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            let watched = self.watched.lock().expect("watch lock").clone();
            assert!(Instant::now() < deadline, "no `{needle}` line: {watched:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A blackhole with the stream token (and `--redis`, if given); its address.
async fn blackhole(bin: &Path, redis: Option<&str>, listen: &str) -> (Child, String) {
    let mut command = Command::new(bin);
    command
        .args(["--listen", listen, "--stream-token", STREAM_TOKEN, "--max-connections-per-ip", "0"])
        .env_clear()
        .env("NO_COLOR", "1");
    if let Some(url) = redis {
        command.args(["--redis", url]);
    }
    let child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("blackhole");
    let child = Child::spawn(child, &["listening on"]);
    let line = child.wait_for("listening on").await;
    let addr = line.split("listening on ").nth(1).and_then(|rest| rest.split_whitespace().next()).expect("an address");
    let addr = addr.to_string();
    (child, addr)
}

/// A `forward` replica in push mode on the hook at `hook_url`, with the ledger in `ledger`.
fn replica(bin: &Path, fake: &FakeGitHub, hook_url: &str, target: &str, ledger: &str, state: &Path) -> Child {
    let rule = json!({"from": [REPO], "to": target, "hook": {"config": {"url": hook_url}}});
    let child = spawn_hookfwd(
        Command::new(bin)
            .args(["forward", "--json", "--rule", &rule.to_string(), "--api-url", fake.api_url().as_str()])
            .args(["--interval", "1s", "--ledger", ledger, "--secondary-limit", "1000000000"])
            .args(["--stream-token", STREAM_TOKEN, "--hook-secret", UPSTREAM, "--state-dir"])
            .arg(state),
        TOKEN,
        SECRET,
        Stdio::piped(),
    );
    Child::spawn(child, &[r#""state":"up""#, r#""type":"warning""#, r#""state":"down""#, "hookfwd:"])
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let hookfwd = release_bin("HOOKFWD_BIN", "hookfwd");
    let blackhole_bin = release_bin("BLACKHOLE_BIN", "blackhole");
    let events = env_number("HA_EVENTS", 200) as usize;
    let burst = env_number("HA_BURST", 2000) as usize;
    let blackholes = env_number("HA_BLACKHOLES", 1);

    let redis = RedisServer::start();
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_repo(REPO);
    fake.set_ping_on_create(false);
    fake.set_rate_limit(1_000_000);
    fake.faults().set_latency(LATENCY);
    fake.set_secondary_limits(fake_github::SecondaryLimits { per_minute: None, concurrent: None });
    let handler = Counter::start(SECRET).await;

    // One blackhole, or two sharing the stream in Redis behind the round-robin front bench/ha.sh runs.
    let mut holes = Vec::new();
    let hook_url = if blackholes == 2 {
        let front = std::env::var("HA_FRONT").expect("HA_FRONT: the round-robin proxy's URL (bench/ha.sh)");
        for listen in std::env::var("HA_BACKENDS").expect("HA_BACKENDS").split(',') {
            holes.push(blackhole(&blackhole_bin, Some(&redis.url()), listen).await.0);
        }
        format!("{front}/bench")
    } else {
        let (child, addr) = blackhole(&blackhole_bin, None, "127.0.0.1:0").await;
        holes.push(child);
        format!("http://{addr}/bench")
    };
    let hook = fake.add_hook(REPO, HookSpec::new(&hook_url).secret(UPSTREAM));

    let states = [tempfile::tempdir().expect("a state dir"), tempfile::tempdir().expect("a state dir")];
    let replicas: Vec<Child> = states
        .iter()
        .map(|state| replica(&hookfwd, &fake, &hook_url, &handler.url, &redis.url(), state.path()))
        .collect();
    for replica in &replicas {
        replica.wait_for(r#""state":"up""#).await;
    }
    // Settle into idle safety polls.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = fake.stats();

    // Single events at irregular spacing.
    let mut random = XorShift(0x2545_f491_4f6c_dd1d);
    let mut emitted: HashMap<u64, Instant> = HashMap::new();
    for n in 0..events {
        tokio::time::sleep(Duration::from_millis(20 + random.next_u64() % 101)).await;
        let at = Instant::now();
        for id in fake.emit(REPO, "issues", json!({"action": "edited", "number": n})).await {
            emitted.insert(id, at);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while handler.count() < emitted.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ids: HashMap<String, u64> = fake.deliveries(hook).into_iter().map(|d| (d.guid, d.id)).collect();
    let mut latencies: Vec<Duration> = {
        let seen = handler.seen.lock().expect("counter lock");
        let at = |guid: &String| emitted.get(ids.get(guid)?).copied();
        seen.arrivals.iter().filter_map(|(guid, arrived)| Some(arrived.saturating_duration_since(at(guid)?))).collect()
    };
    latencies.sort();

    // A burst.
    let burst_start = handler.count();
    let started = Instant::now();
    let payloads = (0..burst).map(|n| json!({"action": "opened", "number": n})).collect();
    fake.emit_many(REPO, "issues", payloads).await;
    let posted = Instant::now();
    while handler.count() < burst_start + burst && started.elapsed() < DEADLINE {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let last = {
        let seen = handler.seen.lock().expect("counter lock");
        seen.arrivals[burst_start..].iter().map(|(_, at)| *at).max().unwrap_or_else(Instant::now)
    };
    // One safety poll of each replica (every 30 s) records what the stream brought.
    tokio::time::sleep(Duration::from_secs(32)).await;
    let spent = fake.stats().since(&before);
    let deliveries = fake.deliveries(hook).len();
    let (arrivals, distinct, bad) = {
        let seen = handler.seen.lock().expect("counter lock");
        let distinct = seen.arrivals.iter().map(|(guid, _)| guid.as_str()).collect::<HashSet<_>>().len();
        (seen.arrivals.len(), distinct, seen.bad_signatures)
    };
    for replica in &replicas {
        for line in replica.watched.lock().expect("watch lock").iter().filter(|l| !l.contains(r#""state":"up""#)) {
            eprintln!("ha bench: {line}");
        }
    }

    let per = |n: u64| n as f64 / deliveries.max(1) as f64;
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    let after_last = last.saturating_duration_since(posted);
    let split: Vec<String> = replicas.iter().map(|r| r.forwarded.load(Ordering::Relaxed).to_string()).collect();
    let front = if blackholes == 2 { "two blackholes (`--redis`) behind nginx round robin" } else { "one blackhole" };
    println!("Two `forward` replicas in push mode on one Redis ledger, {front}; fake GitHub 20 ms away.\n");
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| fake's POST → handler, {events} single events: p50 / p99 / max | {} / {} / {} | p50 ≤ 20 ms, p99 ≤ 200 ms ({}) |",
        ms(p50),
        ms(p99),
        ms(latencies.last().copied().unwrap_or_default()),
        verdict(latencies.len() == events && p50 <= Duration::from_millis(20) && p99 <= Duration::from_millis(200))
    );
    println!(
        "| burst of {burst}: last POST answered → all at the handler (first POST → last POST) | {:.2} s ({:.2} s) | ≤ 5 s ({}) |",
        after_last.as_secs_f64(),
        posted.saturating_duration_since(started).as_secs_f64(),
        verdict(handler.count() >= burst_start + burst && after_last <= Duration::from_secs(5))
    );
    println!(
        "| API calls per delivery, singles + burst + one safety poll | {:.4} ({} calls: {} lists, {} GETs; {deliveries} deliveries) | ≤ 0.02 ({}) |",
        per(spent.requests),
        spent.requests,
        spent.list_deliveries,
        spent.get_delivery,
        verdict(per(spent.requests) <= 0.02)
    );
    println!(
        "| GETs per delivery | {:.4} | ≤ 0.02 ({}) |",
        per(spent.get_delivery),
        verdict(per(spent.get_delivery) <= 0.02)
    );
    println!(
        "| lost / repeated / bad signatures | {} / {} / {bad} | 0 / 0 / 0 ({}) |",
        deliveries.saturating_sub(distinct),
        arrivals - distinct,
        verdict(distinct == deliveries && arrivals == distinct && bad == 0)
    );
    println!("| forwarded by each replica | {} | both take part |", split.join(" / "));
}
