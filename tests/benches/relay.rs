//! The relay benchmark: the release `hookfwd dev` binary against the in-process fake GitHub
//! with 20 ms of added API latency. Prints a Markdown table for `docs/benchmarks.md`.
//!
//! Phases, in one run: a 10,000-delivery backlog drains (throughput, RSS, GETs per delivery);
//! the same process, now idle-polling at `--interval 1s`, gets 20 single events at irregular
//! spacing (added latency just after a backlog), then a quiet minute (rate-limited calls while
//! idle); a fresh relay on a quiet hook gets 60 such events (added latency); last, the backlog
//! drains again with no added latency, for comparison.
//!
//! Run it with `bench/relay.sh`. Everything listens on 127.0.0.1. Knobs, for quick runs:
//! `HOOKFWD_BIN` (the binary; else it is built in release), `RELAY_BACKLOG` (10000),
//! `RELAY_AFTER_EVENTS` (20), `RELAY_EVENTS` (60), `RELAY_IDLE_SECS` (60), `RELAY_SKIP_ZERO=1`
//! (no 0 ms drain); for looking into a miss, `RELAY_LOG=FILE` (hookfwd's debug log) and
//! `RELAY_VERBOSE=1` (each event's latency); `RELAY_NO_INSPECT=1` runs hookfwd without its inspector.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::bench::{XorShift, env_number, mib, ms, percentile, release_bin, spawn_hookfwd, status_kib, verdict};
use e2e::{Counter as Handler, Guard};
use fake_github::{FakeGitHub, HookSpec, Stats};
use serde_json::json;

const TOKEN: &str = "ghp_benchRelayTokenNeverPrinted000001";
const SECRET: &str = "relay-bench-secret-never-printed";
const REPO: &str = "octo/backlog";
/// Added to every fake API answer: a nearby GitHub.
const LATENCY: Duration = Duration::from_millis(20);
/// `Settings::fetch_concurrency` in crates/relay/src/lib.rs.
const FETCH_CONCURRENCY: f64 = 8.0;
/// Each payload carries this much filler, so the backlog's payloads (40 MiB) outweigh the memory allowed.
const FILLER: usize = 4096;
/// No phase may take longer than this.
const PHASE_DEADLINE: Duration = Duration::from_secs(240);

/// A running `hookfwd dev`, its feed counted by type.
struct Relay {
    /// Killed when the relay is dropped.
    _child: Guard,
    /// Its process id, for `/proc`.
    pid: u32,
    /// When the `ready` line was read.
    ready: Arc<Mutex<Option<Instant>>>,
    /// `error`, `retry` and `warning` lines.
    trouble: Arc<Mutex<Vec<String>>>,
    /// Its `--state-dir`, removed when the relay is dropped.
    _state: tempfile::TempDir,
}

impl Relay {
    fn start(bin: &Path, fake: &FakeGitHub, target: &str) -> Self {
        let state = tempfile::tempdir().expect("a temporary state dir");
        let mut command = Command::new(bin);
        // RELAY_LOG=FILE keeps hookfwd's debug log, for looking into a missed target.
        let log = std::env::var_os("RELAY_LOG")
            .map(|path| std::fs::File::options().create(true).append(true).open(path).expect("RELAY_LOG is writable"));
        if log.is_some() {
            command.arg("-vv");
        }
        let child = command
            .args(["dev", "--repo", REPO, "--to", target, "--hook-url", &fake.blackhole_url()])
            .args(["--api-url", fake.api_url().as_str(), "--interval", "1s", "--since", "1h", "--json"])
            .args(["--secondary-limit", "1000000000"])
            // RELAY_NO_INSPECT=1: without the inspector, to compare the drain rate with it.
            .args(std::env::var_os("RELAY_NO_INSPECT").map(|_| "--no-inspect"))
            .arg("--state-dir")
            .arg(state.path());
        let mut child = spawn_hookfwd(child, TOKEN, SECRET, log.map_or_else(Stdio::piped, Stdio::from));
        let ready = Arc::new(Mutex::new(None));
        let trouble = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("piped");
        let (ready_at, lines) = (ready.clone(), trouble.clone());
        // Reading the feed as it comes keeps the relay from ever blocking on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.contains(r#""type":"ready""#) {
                    ready_at.lock().expect("ready lock").get_or_insert(Instant::now());
                } else if ["error", "retry", "warning"].iter().any(|t| line.contains(&format!(r#""type":"{t}""#))) {
                    lines.lock().expect("trouble lock").push(line);
                }
            }
        });
        if let Some(mut err) = child.stderr.take() {
            std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        }
        let pid = child.id();
        Self { _child: Guard(child), pid, ready, trouble, _state: state }
    }

    fn trouble(&self) -> Vec<String> {
        self.trouble.lock().expect("trouble lock").clone()
    }
}

/// The fake GitHub with one repository hook, ready for a backlog.
async fn fake_with_hook() -> (FakeGitHub, u64) {
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    // The engine's own throughput: GitHub's 900 GETs a minute would cap the drain at 15 a second
    // (bench/budget.sh measures hookfwd under that limit), so neither side enforces it here.
    fake.set_secondary_limits(fake_github::SecondaryLimits { per_minute: None, concurrent: None });
    let hook = fake.add_hook(REPO, HookSpec::new(fake.blackhole_url()));
    // One GET per delivery: 10,000 is more than GitHub's default 5,000 an hour (a GitHub App
    // installation gets up to 12,500; Enterprise Cloud 15,000).
    fake.set_rate_limit(50_000);
    (fake, hook)
}

async fn seed(fake: &FakeGitHub, backlog: usize) {
    let filler = "x".repeat(FILLER);
    let payloads = (0..backlog).map(|n| json!({"action": "opened", "number": n, "filler": filler})).collect();
    let started = Instant::now();
    let ids = fake.emit_many(REPO, "issues", payloads).await;
    assert_eq!(ids.len(), backlog, "every seeded event made a delivery");
    eprintln!("relay bench: seeded {backlog} deliveries in {:.1} s", started.elapsed().as_secs_f64());
}

/// What one backlog drain measured.
struct Drain {
    /// Spawn to the last delivery's arrival.
    total: Duration,
    /// The `ready` line to the last arrival (the initial listing is done before `ready`).
    from_ready: Option<Duration>,
    /// RSS when 25, 50, 75 and 100 % had arrived, in KiB.
    rss_at: [Option<u64>; 4],
    /// The highest sampled VmRSS, and VmHWM at the end, in KiB.
    sampled_peak: u64,
    hwm: Option<u64>,
    /// Fake stats over the drain.
    stats: Stats,
    /// Delivered / distinct / bad signatures.
    received: usize,
    distinct: usize,
    bad_signatures: usize,
}

impl Drain {
    fn rate(&self) -> f64 {
        self.received as f64 / self.total.as_secs_f64()
    }

    fn rate_from_ready(&self) -> Option<f64> {
        self.from_ready.map(|d| self.received as f64 / d.as_secs_f64())
    }
}

/// Starts hookfwd on a seeded backlog and samples it until every delivery arrived.
async fn drain(bin: &Path, fake: &FakeGitHub, handler: &Handler, backlog: usize) -> (Relay, Drain) {
    let before = fake.stats();
    let spawned = Instant::now();
    let relay = Relay::start(bin, fake, &handler.url);
    let milestones = [backlog.div_ceil(4), backlog.div_ceil(2), (backlog * 3).div_ceil(4), backlog];
    let mut rss_at = [None; 4];
    let mut sampled_peak = 0;
    let mut last_report = Instant::now();
    loop {
        let count = handler.count();
        let rss = status_kib(relay.pid, "VmRSS:");
        sampled_peak = sampled_peak.max(rss.unwrap_or(0));
        for (slot, milestone) in rss_at.iter_mut().zip(milestones) {
            if slot.is_none() && count >= milestone {
                *slot = rss;
            }
        }
        if count >= backlog {
            break;
        }
        if spawned.elapsed() > PHASE_DEADLINE {
            eprintln!("relay bench: drain stopped at the deadline with {count} of {backlog}");
            break;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("relay bench: {count} of {backlog} after {:.0} s", spawned.elapsed().as_secs_f64());
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hwm = status_kib(relay.pid, "VmHWM:");
    let after = fake.stats();
    let seen = handler.seen.lock().expect("handler lock");
    let last = seen.arrivals.iter().map(|(_, at)| *at).max().unwrap_or_else(Instant::now);
    let ready = *relay.ready.lock().expect("ready lock");
    let distinct = seen.arrivals.iter().map(|(guid, _)| guid.as_str()).collect::<std::collections::HashSet<_>>().len();
    let result = Drain {
        total: last - spawned,
        from_ready: ready.map(|ready| last.saturating_duration_since(ready)),
        rss_at,
        sampled_peak,
        hwm,
        stats: after.since(&before),
        received: seen.arrivals.len(),
        distinct,
        bad_signatures: seen.bad_signatures,
    };
    drop(seen);
    (relay, result)
}

/// What the added-latency phase measured.
struct Latency {
    /// Emit to arrival, sorted.
    sorted: Vec<Duration>,
    /// Events that never arrived.
    missing: usize,
    /// Fake stats over the phase.
    stats: Stats,
}

impl Latency {
    fn row(&self, row: &mut impl FnMut(&str, String, &str), what: &str) {
        let p50 = percentile(&self.sorted, 50.0);
        let events = self.sorted.len() + self.missing;
        row(
            &format!("added latency at `--interval 1s`, {what}, {events} events: p50 / p90 / max"),
            format!(
                "{} / {} / {}{}; {} list calls ({:.1} per event), {} answered 304",
                ms(p50),
                ms(percentile(&self.sorted, 90.0)),
                ms(self.sorted.last().copied().unwrap_or_default()),
                if self.missing > 0 { format!(" ({} never arrived)", self.missing) } else { String::new() },
                self.stats.list_deliveries,
                self.stats.list_deliveries as f64 / events.max(1) as f64,
                self.stats.not_modified,
            ),
            &format!(
                "p50 ≤ 700 ms ({})",
                verdict(self.missing == 0 && !self.sorted.is_empty() && p50 <= Duration::from_millis(700))
            ),
        );
    }
}

/// Emits single events at irregular spacing while the relay idles; each one's emit-to-handler time.
async fn added_latency(fake: &FakeGitHub, hook: u64, handler: &Handler, events: usize) -> Latency {
    let before = fake.stats();
    let start_count = handler.count();
    let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut emitted = HashMap::new();
    for n in 0..events {
        tokio::time::sleep(Duration::from_millis(200 + random.next_u64() % 1101)).await;
        let at = Instant::now();
        for id in fake.emit(REPO, "issues", json!({"action": "edited", "number": n})).await {
            emitted.insert(id, at);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while handler.count() < start_count + emitted.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let guids: HashMap<String, u64> = fake.deliveries(hook).into_iter().map(|d| (d.guid, d.id)).collect();
    let seen = handler.seen.lock().expect("handler lock");
    let mut latencies: Vec<Duration> = seen.arrivals[start_count..]
        .iter()
        .filter_map(|(guid, arrived)| Some(arrived.saturating_duration_since(*emitted.get(guids.get(guid)?)?)))
        .collect();
    if std::env::var_os("RELAY_VERBOSE").is_some() {
        let unix = |at: Instant| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            now.as_secs_f64() - at.elapsed().as_secs_f64()
        };
        for (guid, arrived) in &seen.arrivals[start_count..] {
            if let Some(emitted) = guids.get(guid).and_then(|id| emitted.get(id)) {
                let took = arrived.saturating_duration_since(*emitted).as_millis();
                eprintln!("relay bench: emitted at {:.3}, arrived after {took} ms", unix(*emitted));
            }
        }
    }
    latencies.sort();
    let missing = emitted.len() - latencies.len();
    Latency { sorted: latencies, missing, stats: fake.stats().since(&before) }
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let bin = release_bin("HOOKFWD_BIN", "hookfwd");
    let backlog = env_number("RELAY_BACKLOG", 10_000) as usize;
    let events = env_number("RELAY_EVENTS", 60) as usize;
    let after_events = env_number("RELAY_AFTER_EVENTS", 20) as usize;
    let idle = Duration::from_secs(env_number("RELAY_IDLE_SECS", 60));
    let bound = FETCH_CONCURRENCY / LATENCY.as_secs_f64();
    let mut rows: Vec<[String; 3]> = Vec::new();
    let mut row =
        |measure: &str, result: String, target: &str| rows.push([measure.to_string(), result, target.to_string()]);

    // 1. The backlog, at 20 ms.
    let (fake, hook) = fake_with_hook().await;
    seed(&fake, backlog).await;
    fake.faults().set_latency(LATENCY);
    let handler = Handler::start(SECRET).await;
    let (relay, slow) = drain(&bin, &fake, &handler, backlog).await;
    let recorded = fake.deliveries(hook).len();
    eprintln!("relay bench: drained {} in {:.1} s", slow.received, slow.total.as_secs_f64());

    let ratio = slow.rate() / bound;
    row("theoretical bound (concurrency ÷ latency)", format!("{bound:.0} deliveries/s (8 ÷ 20 ms)"), "");
    row(
        &format!("drain {backlog} deliveries, spawn → last arrival"),
        format!("{:.1} s, {:.0} deliveries/s", slow.total.as_secs_f64(), slow.rate()),
        "",
    );
    row("… as a share of the bound", format!("{:.1} %", ratio * 100.0), &format!("≥ 80 % ({})", verdict(ratio >= 0.8)));
    if let (Some(from_ready), Some(rate)) = (slow.from_ready, slow.rate_from_ready()) {
        row(
            "drain, `ready` → last arrival (listing excluded)",
            format!(
                "{:.1} s, {rate:.0} deliveries/s, {:.1} % of the bound",
                from_ready.as_secs_f64(),
                rate / bound * 100.0
            ),
            "",
        );
    }
    row(
        "forwarded / distinct / bad signatures",
        format!("{} / {} / {}", slow.received, slow.distinct, slow.bad_signatures),
        &format!(
            "{backlog} / {backlog} / 0 ({})",
            verdict(slow.received == backlog && slow.distinct == backlog && slow.bad_signatures == 0)
        ),
    );
    let peak = slow.hwm.unwrap_or(slow.sampled_peak);
    let rss: Vec<String> = slow.rss_at.iter().map(|r| r.map_or("?".into(), mib)).collect();
    row("peak RSS (VmHWM)", mib(peak), &format!("≤ 30 MiB ({})", verdict(peak > 0 && peak <= 30 * 1024)));
    let known: Vec<u64> = slow.rss_at.iter().flatten().copied().collect();
    let spread = known.iter().max().zip(known.iter().min()).map(|(max, min)| max - min);
    row(
        "RSS at 25 / 50 / 75 / 100 % (sampled every 50 ms)",
        format!("{} (spread {})", rss.join(" / "), spread.map_or("?".into(), mib)),
        &format!("flat, spread ≤ 2 MiB ({})", verdict(spread.is_some_and(|s| s <= 2 * 1024) && known.len() == 4)),
    );
    let per = slow.stats.get_delivery as f64 / recorded.max(1) as f64;
    row(
        "delivery GETs per delivery",
        format!("{per:.3} ({} GETs, {recorded} deliveries)", slow.stats.get_delivery),
        &format!("≤ 1.02 ({})", verdict(per <= 1.02)),
    );
    row(
        "list calls during the drain",
        format!("{} ({} answered 304)", slow.stats.list_deliveries, slow.stats.not_modified),
        "",
    );

    // 2. Added latency right after the backlog, the same process now idle-polling every second.
    let after_backlog = added_latency(&fake, hook, &handler, after_events).await;
    after_backlog.row(&mut row, "just after the backlog");

    // 3. A quiet spell.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = fake.stats();
    tokio::time::sleep(idle).await;
    let quiet = fake.stats().since(&before);
    let per_hour = quiet.counted as f64 * 3600.0 / idle.as_secs_f64();
    row(
        &format!("rate-limited calls while idle ({} s, extrapolated to the hour)", idle.as_secs()),
        format!(
            "{} in {} s → {per_hour:.0} per hour ({} list calls, {} answered 304)",
            quiet.counted,
            idle.as_secs(),
            quiet.list_deliveries,
            quiet.not_modified
        ),
        &format!("0 ({})", verdict(quiet.counted == 0)),
    );
    let idle_rss = status_kib(relay.pid, "VmRSS:");
    row("RSS after the idle spell", idle_rss.map_or("?".into(), mib), "");
    let trouble = relay.trouble();
    drop(relay);

    // 4. Added latency on a quiet hook: a fresh fake and relay, nothing delivered in the last minutes.
    {
        let (fake, hook) = fake_with_hook().await;
        fake.faults().set_latency(LATENCY);
        let handler = Handler::start(SECRET).await;
        let relay = Relay::start(&bin, &fake, &handler.url);
        let deadline = Instant::now() + Duration::from_secs(30);
        while relay.ready.lock().expect("ready lock").is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Let it settle into idle polls (304s) before the first event.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let quiet = added_latency(&fake, hook, &handler, events).await;
        quiet.row(&mut row, "quiet hook");
    }

    // 5. The same backlog with no added latency.
    if std::env::var_os("RELAY_SKIP_ZERO").is_none() {
        let (fake, _) = fake_with_hook().await;
        seed(&fake, backlog).await;
        let handler = Handler::start(SECRET).await;
        let (relay, fast) = drain(&bin, &fake, &handler, backlog).await;
        drop(relay);
        row(
            "drain at 0 ms latency, spawn → last arrival",
            format!(
                "{:.1} s, {:.0} deliveries/s, peak RSS {}",
                fast.total.as_secs_f64(),
                fast.rate(),
                mib(fast.hwm.unwrap_or(fast.sampled_peak))
            ),
            "",
        );
        row("20 ms drain ÷ 0 ms drain", format!("{:.2}", slow.rate() / fast.rate()), "");
    }

    println!("| measure | result | target |");
    println!("|---|---|---|");
    for [measure, result, target] in &rows {
        println!("| {measure} | {result} | {target} |");
    }
    if !trouble.is_empty() {
        println!("\n{} error/retry/warning lines in the 20 ms run's feed; the first:", trouble.len());
        for line in trouble.iter().take(5) {
            println!("    {line}");
        }
    }
}
