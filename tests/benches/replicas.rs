//! The replicas benchmark: release `hookfwd forward` processes sharing one ledger in a real
//! `redis-server`, against the in-process fake GitHub with 20 ms of added API latency. Prints a
//! Markdown table for `docs/benchmarks.md`.
//!
//! Phases, in one run, each on the same seeded hook and a fresh Redis database (so each drains
//! the whole backlog from `--since 1h`): one replica drains it (the baseline); two replicas drain
//! it (the rate against the baseline, and GETs per delivery in total); two replicas drain it and
//! one is killed -9 a third of the way (lost deliveries, repeats).
//!
//! Run it with `bench/replicas.sh`. Everything listens on 127.0.0.1. Knobs: `HOOKFWD_BIN` (the
//! binary; else it is built in release), `REPLICAS_BACKLOG` (10000).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::bench::{env_number, release_bin, spawn_hookfwd, verdict};
use e2e::{Counter as Handler, Guard, RedisServer};
use fake_github::{FakeGitHub, HookSpec, Stats};
use serde_json::json;

const TOKEN: &str = "ghp_benchReplicasTokenNeverPrinted0001";
const SECRET: &str = "replicas-bench-secret-never-printed";
const REPO: &str = "octo/replicas";
/// Added to every fake API answer: a nearby GitHub.
const LATENCY: Duration = Duration::from_millis(20);
/// No phase may take longer than this (a killed replica's claims take 30 s to expire).
const PHASE_DEADLINE: Duration = Duration::from_secs(300);

/// A running `hookfwd forward` replica; killed when dropped.
struct Replica {
    child: Guard,
    /// Its `--state-dir` (another machine's), removed when dropped.
    _state: tempfile::TempDir,
}

impl Replica {
    fn start(bin: &Path, fake: &FakeGitHub, target: &str, ledger: &str) -> Self {
        let state = tempfile::tempdir().expect("a temporary state dir");
        let rule = json!({"from": [REPO], "to": target, "hook": {"config": {"url": fake.blackhole_url()}}});
        let mut child = spawn_hookfwd(
            Command::new(bin)
                .args(["forward", "--json", "--rule", &rule.to_string(), "--api-url", fake.api_url().as_str()])
                .args(["--interval", "1s", "--since", "1h", "--ledger", ledger, "--state-dir"])
                // The engine's rate, not GitHub's secondary limit (lifted in the fake too): see docs/benchmarks.md.
                .args(["--secondary-limit", "1000000000"])
                .arg(state.path()),
            TOKEN,
            SECRET,
            Stdio::piped(),
        );
        // Reading the feed as it comes keeps the replica from ever blocking on a full pipe.
        let out = child.stdout.take().expect("piped");
        std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).for_each(drop));
        if let Some(mut err) = child.stderr.take() {
            std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        }
        Self { child: Guard(child), _state: state }
    }
}

/// What one drain measured.
struct Drain {
    /// Spawn to the last arrival.
    total: Duration,
    /// Deliveries the handler got, and distinct guids among them.
    received: usize,
    distinct: usize,
    /// Fake stats over the drain.
    stats: Stats,
}

impl Drain {
    fn rate(&self) -> f64 {
        self.distinct as f64 / self.total.as_secs_f64()
    }

    fn gets_per_delivery(&self) -> f64 {
        self.stats.get_delivery as f64 / self.distinct.max(1) as f64
    }
}

/// Starts `replicas` replicas on database `db` and waits until the handler got every delivery;
/// with `kill_at`, kills the first one -9 once that share of the backlog arrived.
async fn drain(
    bin: &Path,
    fake: &FakeGitHub,
    redis: &RedisServer,
    db: u32,
    replicas: usize,
    backlog: usize,
    kill_at: Option<f64>,
) -> Drain {
    let handler = Handler::start(SECRET).await;
    let ledger = format!("redis://{}/{db}", redis.addr());
    let before = fake.stats();
    let spawned = Instant::now();
    let running: Vec<Replica> = (0..replicas).map(|_| Replica::start(bin, fake, &handler.url, &ledger)).collect();
    let mut killed = kill_at.is_none();
    let mut last_report = Instant::now();
    loop {
        let distinct = {
            let seen = handler.seen.lock().expect("handler lock");
            seen.arrivals.iter().map(|(guid, _)| guid.as_str()).collect::<HashSet<_>>().len()
        };
        if !killed && kill_at.is_some_and(|share| distinct as f64 >= share * backlog as f64) {
            running[0].child.signal(libc::SIGKILL);
            eprintln!("replicas bench: killed one replica -9 at {distinct} of {backlog}");
            killed = true;
        }
        if distinct >= backlog {
            break;
        }
        if spawned.elapsed() > PHASE_DEADLINE {
            eprintln!("replicas bench: stopped at the deadline with {distinct} of {backlog}");
            break;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("replicas bench: {distinct} of {backlog} after {:.0} s", spawned.elapsed().as_secs_f64());
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Late repeats would arrive within a poll or two.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = fake.stats().since(&before);
    drop(running);
    let seen = handler.seen.lock().expect("handler lock");
    let last = seen.arrivals.iter().map(|(_, at)| *at).max().unwrap_or_else(Instant::now);
    let distinct = seen.arrivals.iter().map(|(guid, _)| guid.as_str()).collect::<HashSet<_>>().len();
    Drain { total: last - spawned, received: seen.arrivals.len(), distinct, stats }
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let bin = release_bin("HOOKFWD_BIN", "hookfwd");
    let backlog = env_number("REPLICAS_BACKLOG", 10_000) as usize;
    let redis = RedisServer::start();
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_hook(REPO, HookSpec::new(fake.blackhole_url()));
    // One GET per delivery, three drains.
    fake.set_rate_limit(100_000);
    fake.set_secondary_limits(fake_github::SecondaryLimits { per_minute: None, concurrent: None });
    let payloads = (0..backlog).map(|n| json!({"action": "opened", "number": n})).collect();
    let ids = fake.emit_many(REPO, "issues", payloads).await;
    assert_eq!(ids.len(), backlog, "every seeded event made a delivery");
    fake.faults().set_latency(LATENCY);

    let one = drain(&bin, &fake, &redis, 1, 1, backlog, None).await;
    eprintln!("replicas bench: one replica drained {} in {:.1} s", one.distinct, one.total.as_secs_f64());
    let two = drain(&bin, &fake, &redis, 2, 2, backlog, None).await;
    eprintln!("replicas bench: two replicas drained {} in {:.1} s", two.distinct, two.total.as_secs_f64());
    let killed = drain(&bin, &fake, &redis, 3, 2, backlog, Some(1.0 / 3.0)).await;

    let speedup = two.rate() / one.rate();
    let rows = [
        [
            format!("one replica drains {backlog} (Redis ledger), spawn → last arrival"),
            format!(
                "{:.1} s, {:.0} deliveries/s, {:.3} GETs per delivery",
                one.total.as_secs_f64(),
                one.rate(),
                one.gets_per_delivery()
            ),
            String::new(),
        ],
        [
            format!("two replicas drain {backlog}, spawn → last arrival"),
            format!("{:.1} s, {:.0} deliveries/s", two.total.as_secs_f64(), two.rate()),
            String::new(),
        ],
        ["two replicas ÷ one".into(), format!("{speedup:.2}×"), format!("≥ 1.6× ({})", verdict(speedup >= 1.6))],
        [
            "GETs per delivery, two replicas in total".into(),
            format!(
                "{:.3} ({} GETs, {} received, {} distinct)",
                two.gets_per_delivery(),
                two.stats.get_delivery,
                two.received,
                two.distinct
            ),
            format!("≤ 1.01 ({})", verdict(two.gets_per_delivery() <= 1.01 && two.received == two.distinct)),
        ],
        [
            "one of two replicas killed -9 a third of the way: lost / repeats".into(),
            format!(
                "{} lost, {} repeats, {:.1} s to drain, {:.3} GETs per delivery",
                backlog - killed.distinct,
                killed.received - killed.distinct,
                killed.total.as_secs_f64(),
                killed.gets_per_delivery()
            ),
            format!(
                "0 lost, repeats ≤ 1 in flight ({})",
                verdict(killed.distinct == backlog && killed.received - killed.distinct <= 1)
            ),
        ],
    ];
    println!("| measure | result | target |");
    println!("|---|---|---|");
    for [measure, result, target] in &rows {
        println!("| {measure} | {result} | {target} |");
    }
}
