//! The high-availability benchmark: two release `hookfwd forward` replicas in push mode sharing
//! one ledger in a real `redis-server`, both subscribed to the blackhole, against the in-process
//! fake GitHub with 20 ms of added API latency. Prints a Markdown table for `docs/benchmarks.md`.
//!
//! Single events at irregular spacing (latency from the fake's POST to the handler, p50 / p99), a
//! burst of 2,000 (time from the last POST answered to the last arrival), then one safety poll:
//! API calls and GETs per delivery, lost and repeated. With `HA_BLACKHOLES=2` the hook URL is
//! nginx, alternating two `blackhole --redis` instances that share the stream through Redis.
//!
//! `HA_PHASES` picks the phases, comma-separated: `steady` (the above, the default), and the
//! outages, each under one event every 20 ms and followed by a safety poll: `blackhole` (one
//! instance killed -9 for 2 s, started again on its port), `replica` (one killed -9 for good),
//! `redis` (the blackholes' own Redis killed -9 for 3 s, started again empty on its port); `outages`
//! is all three. Lost, repeated, POSTs answered non-2xx and GETs are counted per phase.
//!
//! Run it with `bench/ha.sh`. Everything listens on 127.0.0.1. Knobs: `HOOKFWD_BIN`,
//! `BLACKHOLE_BIN` (else both are built in release), `HA_EVENTS` (200), `HA_BURST` (2000),
//! `HA_BLACKHOLES` (1, or 2 behind `HA_FRONT`, the URL of a round-robin proxy bench/ha.sh starts),
//! `HA_PHASES` (`steady`).

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
    let phases: Vec<String> =
        std::env::var("HA_PHASES").unwrap_or_else(|_| "steady".into()).split(',').map(str::to_string).collect();

    let redis = RedisServer::start();
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_repo(REPO);
    fake.set_ping_on_create(false);
    fake.set_rate_limit(1_000_000);
    fake.faults().set_latency(LATENCY);
    fake.set_secondary_limits(fake_github::SecondaryLimits { per_minute: None, concurrent: None });
    let handler = Counter::start(SECRET).await;

    // One blackhole, or two sharing the stream in their own Redis (not the ledger's, so that it can
    // be killed alone) behind the round-robin front bench/ha.sh runs.
    let mut hole_redis = RedisServer::start();
    let mut holes = Vec::new();
    let backends: Vec<String> =
        std::env::var("HA_BACKENDS").unwrap_or_default().split(',').map(str::to_string).collect();
    let hook_url = if blackholes == 2 {
        let front = std::env::var("HA_FRONT").expect("HA_FRONT: the round-robin proxy's URL (bench/ha.sh)");
        for listen in &backends {
            holes.push(blackhole(&blackhole_bin, Some(&hole_redis.url()), listen).await.0);
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
    if phases.iter().any(|p| p == "steady") {
        steady(&fake, hook, &handler, &replicas, events, burst, blackholes).await;
    }
    let mut replicas = replicas;
    let wanted = |name: &str| phases.iter().any(|p| p == name || p == "outages");
    if wanted("blackhole") || wanted("replica") || wanted("redis") {
        println!("\nOutages, each under a single event every 20 ms (GitHub's stand-in POSTs one at a time).\n");
        println!("| outage | deliveries | POSTs answered non-2xx | lost / repeated | GETs (per delivery) | other |");
        println!("|---|---|---|---|---|---|");
    }
    if wanted("blackhole") && blackholes == 2 {
        // One blackhole killed -9 for 2 s, then started again on its port.
        let since = fake.deliveries(hook).iter().map(|d| d.id).max().unwrap_or(0);
        let before = fake.stats();
        let (sent, ()) = tokio::join!(traffic(&fake, Duration::from_secs(6)), async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            drop(holes.remove(0));
            tokio::time::sleep(Duration::from_secs(2)).await;
            holes.insert(0, blackhole(&blackhole_bin, Some(&hole_redis.url()), &backends[0]).await.0);
        });
        let tally =
            settle(&fake, hook, &handler, since, &before, (Duration::from_secs(33), Duration::from_secs(45))).await;
        println!(
            "| one blackhole killed -9 for 2 s, then started again | {} ({sent} sent) | {} ({}) | {} / {} | {} ({:.4}) | target 0 lost, 0 repeated, ≤ 0.1 GETs each ({}){} |",
            tally.deliveries,
            tally.failed,
            tally.statuses,
            tally.lost,
            tally.repeated,
            tally.gets,
            tally.per_delivery(tally.gets),
            verdict(tally.lost == 0 && tally.repeated == 0 && tally.per_delivery(tally.gets) <= 0.1),
            tally.when_gets()
        );
    }
    if wanted("replica") {
        // One replica killed -9 mid-traffic; the other takes over its claims when they expire (30 s).
        let since = fake.deliveries(hook).iter().map(|d| d.id).max().unwrap_or(0);
        let before = fake.stats();
        let at_kill = AtomicUsize::new(0);
        let (sent, ()) = tokio::join!(traffic(&fake, Duration::from_secs(4)), async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let victim = replicas.remove(0);
            drop(victim);
            at_kill.store(fake.stats().since(&before).get_delivery as usize, Ordering::Relaxed);
        });
        let tally =
            settle(&fake, hook, &handler, since, &before, (Duration::from_secs(65), Duration::from_secs(90))).await;
        println!(
            "| one replica killed -9 | {} ({sent} sent) | {} | {} / {} | {} ({:.4}) | target 0 lost, repeated ≤ what it had at the handler, GETs only for its own unsettled claims ({}); {} GETs before the kill; the last arrived {:.1} s after the traffic{} |",
            tally.deliveries,
            tally.failed,
            tally.lost,
            tally.repeated,
            tally.gets,
            tally.per_delivery(tally.gets),
            verdict(tally.lost == 0 && tally.failed == 0),
            at_kill.load(Ordering::Relaxed),
            tally.last_after.as_secs_f64(),
            tally.when_gets()
        );
    }
    if wanted("redis") && blackholes == 2 {
        // The blackholes' Redis killed for 3 s, then started again on the same port (empty: no AOF).
        let since = fake.deliveries(hook).iter().map(|d| d.id).max().unwrap_or(0);
        let before = fake.stats();
        let window = std::sync::Mutex::new((None, None));
        let (sent, ()) = tokio::join!(traffic(&fake, Duration::from_secs(8)), async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            hole_redis.stop();
            let down = fake.deliveries(hook).iter().map(|d| d.id).max().unwrap_or(0);
            tokio::time::sleep(Duration::from_secs(3)).await;
            hole_redis.restart();
            let up = fake.deliveries(hook).iter().map(|d| d.id).max().unwrap_or(0);
            *window.lock().expect("window lock") = (Some((down, up)), Some(Instant::now()));
        });
        let back = window.lock().expect("window lock").1.expect("Redis restarted");
        let (down, up) = window.lock().expect("window lock").0.expect("Redis restarted");
        let tally =
            settle(&fake, hook, &handler, since, &before, (Duration::from_secs(33), Duration::from_secs(45))).await;
        let recorded = fake.deliveries(hook);
        // Deliveries whose POST started while Redis was down (the first after it went and the last before it came).
        let outage: Vec<_> = recorded.iter().filter(|d| d.id > down + 1 && d.id <= up).collect();
        let outage_ok = outage.iter().filter(|d| (200..300).contains(&d.status_code)).count();
        let pushed: HashSet<&str> = recorded
            .iter()
            .filter(|d| d.id > up && (200..300).contains(&d.status_code))
            .map(|d| d.guid.as_str())
            .collect();
        let first_pushed = {
            let seen = handler.seen.lock().expect("counter lock");
            seen.arrivals.iter().filter(|(guid, _)| pushed.contains(guid.as_str())).map(|(_, at)| *at).min()
        };
        let resumed = first_pushed.map(|at| at.saturating_duration_since(back));
        println!(
            "| the blackholes' Redis killed -9 for 3 s, then started again | {} ({sent} sent) | {} of {} POSTs while it was down ({}) | {} / {} | {} ({:.4}) | Redis back → first pushed delivery at the handler: {}; target every POST meanwhile non-2xx, 0 lost, streaming resumes ({}){} |",
            tally.deliveries,
            outage.len() - outage_ok,
            outage.len(),
            tally.statuses,
            tally.lost,
            tally.repeated,
            tally.gets,
            tally.per_delivery(tally.gets),
            resumed.map_or_else(|| "never".to_string(), ms),
            verdict(outage_ok == 0 && tally.lost == 0 && resumed.is_some()),
            tally.when_gets()
        );
    }
    if blackholes != 2 && (wanted("blackhole") || wanted("redis")) {
        println!("\n(the blackhole and Redis outages need HA_BLACKHOLES=2)");
    }
    for replica in &replicas {
        for line in replica.watched.lock().expect("watch lock").iter().filter(|l| !l.contains(r#""state":"up""#)) {
            eprintln!("ha bench: {line}");
        }
    }
}

/// Emits one event every 20 ms for `length`; how many.
async fn traffic(fake: &FakeGitHub, length: Duration) -> usize {
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < length {
        let tick = Instant::now();
        fake.emit(REPO, "issues", json!({"action": "labeled", "number": sent})).await;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20).saturating_sub(tick.elapsed())).await;
    }
    sent
}

/// What became of the deliveries after `since`.
struct Tally {
    deliveries: usize,
    /// POSTs answered non-2xx (or not at all).
    failed: usize,
    /// The fake's statuses of those, counted.
    statuses: String,
    lost: usize,
    repeated: usize,
    gets: u64,
    /// From the end of the traffic to the last arrival.
    last_after: Duration,
    /// From the end of the traffic to the first and the last GET seen (if after it).
    gets_between: Option<(Duration, Duration)>,
}

impl Tally {
    /// When the GETs came, for the table.
    fn when_gets(&self) -> String {
        self.gets_between.map_or_else(String::new, |(first, last)| {
            format!("; GETs {:.1}–{:.1} s after the traffic", first.as_secs_f64(), last.as_secs_f64())
        })
    }

    fn per_delivery(&self, n: u64) -> f64 {
        n as f64 / self.deliveries.max(1) as f64
    }
}

/// Waits (up to `wait`) until every delivery after `since` is at the handler, and at least `quiet`
/// (a safety poll, and what it fetches or repeats, falls in this phase); tallies them.
async fn settle(
    fake: &FakeGitHub,
    hook: u64,
    handler: &Counter,
    since: u64,
    before: &fake_github::Stats,
    (quiet, wait): (Duration, Duration),
) -> Tally {
    let ended = Instant::now();
    let recorded: Vec<_> = fake.deliveries(hook).into_iter().filter(|d| d.id > since).collect();
    let guids: HashSet<String> = recorded.iter().map(|d| d.guid.clone()).collect();
    let arrived = || {
        let seen = handler.seen.lock().expect("counter lock");
        let ours: Vec<_> = seen.arrivals.iter().filter(|(guid, _)| guids.contains(guid)).cloned().collect();
        ours
    };
    // When the GETs came, from the end of the traffic.
    let (mut gets, mut first_get, mut last_get) = (fake.stats().since(before).get_delivery, None, None);
    let all = || arrived().iter().map(|(guid, _)| guid).collect::<HashSet<_>>().len() >= guids.len();
    while (ended.elapsed() < quiet.max(Duration::from_secs(1)) || !all()) && ended.elapsed() < wait {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = fake.stats().since(before).get_delivery;
        if now > gets {
            first_get.get_or_insert(ended.elapsed());
            last_get = Some(ended.elapsed());
            gets = now;
        }
    }
    let arrivals = arrived();
    let distinct = arrivals.iter().map(|(guid, _)| guid).collect::<HashSet<_>>().len();
    let mut statuses: Vec<(String, usize)> = Vec::new();
    for d in recorded.iter().filter(|d| !(200..300).contains(&d.status_code)) {
        match statuses.iter_mut().find(|(status, _)| *status == d.status) {
            Some((_, n)) => *n += 1,
            None => statuses.push((d.status.clone(), 1)),
        }
    }
    let statuses: Vec<String> = statuses.iter().map(|(status, n)| format!("{n} × {status}")).collect();
    Tally {
        deliveries: recorded.len(),
        failed: recorded.iter().filter(|d| !(200..300).contains(&d.status_code)).count(),
        statuses: if statuses.is_empty() { "none".into() } else { statuses.join(", ") },
        lost: guids.len() - distinct,
        repeated: arrivals.len() - distinct,
        gets: fake.stats().since(before).get_delivery,
        gets_between: first_get.zip(last_get),
        last_after: arrivals
            .iter()
            .map(|(_, at)| *at)
            .max()
            .map(|at| at.saturating_duration_since(ended))
            .unwrap_or_default(),
    }
}

/// The steady run: single events (latency), a burst, one safety poll (API calls per delivery).
async fn steady(
    fake: &FakeGitHub,
    hook: u64,
    handler: &Counter,
    replicas: &[Child],
    events: usize,
    burst: usize,
    blackholes: u64,
) {
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
