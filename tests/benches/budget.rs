//! The budget benchmark: 100 repositories and 10 organizations on one token, one `hookfwd dev`
//! (the release binary) against the in-process fake GitHub with 20 ms of added API latency and
//! GitHub's secondary limits on (900 points a minute per endpoint, 100 requests at once).
//! Prints a Markdown table for `docs/benchmarks.md`.
//!
//! Phases, in one run: start at `--interval 1s` (hookfwd says which interval it can sustain, and
//! `/metrics` shows it); an idle window (`BUDGET_IDLE_SECS`, 120) counts the calls that spend the
//! primary budget, scaled to an hour; then `BUDGET_EVENTS` (60) single events on random sources at
//! irregular spacing measure the latency from GitHub's delivery to the handler's answer. Over the
//! whole run the fake counts secondary-limit answers (the target is none).
//!
//! Run it with `bench/budget.sh`. Everything listens on 127.0.0.1. Knobs: `HOOKFWD_BIN` (the
//! binary; else it is built in release), `BUDGET_IDLE_SECS`, `BUDGET_EVENTS`, `BUDGET_REPOS` (100),
//! `BUDGET_ORGS` (10).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::bench::{XorShift, env_number, ms, percentile, release_bin, spawn_hookfwd, verdict};
use e2e::{Counter as Handler, Guard};
use fake_github::{FakeGitHub, HookSpec};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_benchBudgetTokenNeverPrinted000001";
const SECRET: &str = "budget-bench-secret-never-printed";
/// Added to every fake API answer: a nearby GitHub.
const LATENCY: Duration = Duration::from_millis(20);
/// How long any one wait may take.
const DEADLINE: Duration = Duration::from_secs(300);

#[tokio::main]
async fn main() {
    let bin = release_bin("HOOKFWD_BIN", "hookfwd");
    let repos = env_number("BUDGET_REPOS", 100) as usize;
    let orgs = env_number("BUDGET_ORGS", 10) as usize;
    let idle_secs = env_number("BUDGET_IDLE_SECS", 120);
    let events = env_number("BUDGET_EVENTS", 60) as usize;

    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook, admin:org_hook");
    fake.set_ping_on_create(false);
    // Each source: its owner (for emitting) and its hook. Repositories under a user, so that no
    // organization source also receives a repository's events.
    let mut sources: Vec<(String, u64)> = Vec::new();
    for n in 0..repos {
        let name = format!("bench-user/repo-{n:03}");
        fake.add_repo(&name);
        sources.push((name.clone(), fake.add_hook(&name, HookSpec::new(fake.blackhole_url()))));
    }
    for n in 0..orgs {
        let org = format!("bench-org-{n:02}");
        fake.add_org(&org);
        sources.push((org.clone(), fake.add_hook(&org, HookSpec::new(fake.blackhole_url()))));
    }
    fake.faults().set_latency(LATENCY);
    let handler = Handler::start(SECRET).await;
    let admin = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let state = tempfile::tempdir().expect("a temporary state dir");

    let mut command = Command::new(&bin);
    command.args([
        "dev",
        "--to",
        &handler.url,
        "--hook-url",
        &fake.blackhole_url(),
        "--api-url",
        fake.api_url().as_str(),
    ]);
    command.args(["--interval", "1s", "--json", "--no-inspect", "--admin-listen", &admin.to_string()]);
    for (owner, _) in &sources {
        command.args([if owner.contains('/') { "--repo" } else { "--org" }, owner]);
    }
    let spawned = Instant::now();
    let mut child = spawn_hookfwd(command.arg("--state-dir").arg(state.path()), TOKEN, SECRET, Stdio::null());
    let stdout = child.stdout.take().expect("piped stdout");
    let _child = Guard(child);
    let lines: Arc<Mutex<Vec<Value>>> = Arc::default();
    let feed = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                feed.lock().expect("feed lock").push(value);
            }
        }
    });
    let line_of = |kind: &str| lines.lock().expect("feed lock").iter().find(|line| line["type"] == kind).cloned();
    while line_of("ready").is_none() {
        assert!(spawned.elapsed() < DEADLINE, "hookfwd never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let startup = spawned.elapsed();
    let warnings: Vec<String> = lines
        .lock()
        .expect("feed lock")
        .iter()
        .filter(|line| line["type"] == "warning")
        .filter_map(|line| line["message"].as_str().map(str::to_string))
        .collect();
    let metrics = e2e::get(format!("http://{admin}/metrics")).await.expect("metrics").text().await.expect("text");
    let interval: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("hookfwd_poll_interval_seconds "))
        .and_then(|value| value.parse().ok())
        .expect("hookfwd_poll_interval_seconds in /metrics");

    // Idle: a full interval to settle into the staggered rhythm, then count.
    tokio::time::sleep(Duration::from_secs_f64(interval * 2.0)).await;
    let before = fake.stats();
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let idle = fake.stats().since(&before);
    let per_hour = |n: u64| n as f64 * 3600.0 / idle_secs as f64;

    // Events: one at a time on a random source, 0.5 to 3 s apart.
    let mut random = XorShift(0x5eed_b0d9e7);
    let mut emitted: HashMap<String, Instant> = HashMap::new();
    let event_start = fake.stats();
    for n in 0..events {
        let (owner, hook) = &sources[(random.next_u64() % sources.len() as u64) as usize];
        let payload = if owner.contains('/') {
            json!({"action": "opened", "number": n, "repository": {"full_name": owner}})
        } else {
            json!({"action": "member_added", "number": n, "organization": {"login": owner}})
        };
        let event = if owner.contains('/') { "issues" } else { "organization" };
        let at = Instant::now();
        let ids = fake.emit(owner, event, payload).await;
        let guid = fake.deliveries(*hook).into_iter().find(|d| ids.contains(&d.id)).expect("recorded").guid;
        emitted.insert(guid, at);
        tokio::time::sleep(Duration::from_millis(500 + random.next_u64() % 2500)).await;
    }
    let waiting = Instant::now();
    while handler.count() < events && waiting.elapsed() < DEADLINE {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let during_events = fake.stats().since(&event_start);
    let total = fake.stats();
    let mut latencies: Vec<Duration> = {
        let seen = handler.seen.lock().expect("handler lock");
        seen.arrivals
            .iter()
            .filter_map(|(guid, at)| emitted.get(guid).map(|sent| at.saturating_duration_since(*sent)))
            .collect()
    };
    latencies.sort();
    let worst = latencies.last().copied().unwrap_or_default();
    let bad = handler.seen.lock().expect("handler lock").bad_signatures;

    let sustained = repos.max(orgs) as f64 * 60.0 / interval;
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!("| sources | {repos} repositories + {orgs} organizations, one token | |");
    println!("| set up to `ready` | {:.1} s | |", startup.as_secs_f64());
    println!("| interval asked / chosen | 1 s / {interval} s | |");
    for warning in &warnings {
        println!("| warning at start | {warning} | |");
    }
    println!("| list calls a minute on the busiest endpoint, at that interval | {sustained:.0} | ≤ 900 |");
    println!(
        "| idle {idle_secs} s: API calls / 304s / calls against the primary budget | {} / {} / {} | |",
        idle.requests, idle.not_modified, idle.counted
    );
    println!(
        "| primary-budget calls per idle hour (×{:.0}) | {:.0} | 0: idle polls answer 304 |",
        3600.0 / idle_secs as f64,
        per_hour(idle.counted)
    );
    println!(
        "| {events} events: delivered / latency p50 / p95 / worst | {} / {} / {} / {} | worst ≤ interval + 1 s ({}) |",
        latencies.len(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 95.0)),
        ms(worst),
        verdict(latencies.len() == events && worst.as_secs_f64() <= interval + 1.0)
    );
    println!(
        "| calls during the events: list / GET delivery / counted | {} / {} / {} | |",
        during_events.list_deliveries, during_events.get_delivery, during_events.counted
    );
    println!("| bad signatures | {bad} | 0 |");
    println!(
        "| secondary-limit answers, whole run | {} | 0 ({}) |",
        total.secondary_limited,
        verdict(total.secondary_limited == 0)
    );
    println!("| most requests in flight at once | {} | < 100 |", total.peak_in_flight);
}
