//! The shared-pace benchmark: replicas on one token draining a backlog against the in-process fake
//! GitHub with GitHub's secondary limits on (900 points a minute per endpoint, 100 requests at
//! once) and no `--secondary-limit` given, before (each replica pacing alone at the full limit) and
//! after (the replicas pacing together in the ledger's Redis). Prints a Markdown table for
//! `docs/benchmarks.md`.
//!
//! Run it with `bench/pace.sh`, which builds both binaries. Everything listens on 127.0.0.1. Knobs:
//! `PACE_BEFORE_BIN` and `HOOKFWD_BIN` (the binaries), `PACE_BACKLOG` (1000), `PACE_REPLICAS` (3).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::bench::{env_number, release_bin, spawn_hookfwd, verdict};
use e2e::{Counter as Handler, Guard, RedisServer};
use fake_github::{FakeGitHub, HookSpec, SecondaryLimits, Stats};
use serde_json::json;

const TOKEN: &str = "ghp_benchPaceTokenNeverPrintedNorStored1";
const SECRET: &str = "pace-bench-secret-never-printed";
const REPO: &str = "octo/paced";
/// Added to every fake API answer: a nearby GitHub.
const LATENCY: Duration = Duration::from_millis(20);
/// No drain may take longer than this.
const DEADLINE: Duration = Duration::from_secs(600);

/// Starts one replica of `bin` on `ledger`, its feed read and dropped; killed when dropped.
fn replica(bin: &Path, fake: &FakeGitHub, target: &str, ledger: &str, state: &Path) -> Guard {
    let rule = json!({"from": [REPO], "to": target, "hook": {"config": {"url": fake.blackhole_url()}}});
    let mut child = spawn_hookfwd(
        Command::new(bin)
            .args(["forward", "--json", "--rule", &rule.to_string(), "--api-url", fake.api_url().as_str()])
            .args(["--interval", "1s", "--since", "1h", "--ledger", ledger, "--state-dir"])
            .arg(state),
        TOKEN,
        SECRET,
        Stdio::null(),
    );
    let out = child.stdout.take().expect("piped");
    std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).for_each(drop));
    Guard(child)
}

/// What one drain measured.
struct Drain {
    /// Spawn to the last arrival.
    took: Duration,
    /// Distinct deliveries at the handler.
    distinct: usize,
    /// The fake's counters over the drain.
    stats: Stats,
}

/// A fresh fake and Redis, `backlog` deliveries on the hook, and `replicas` replicas of `bin` until
/// the handler has every delivery.
async fn drain(bin: &Path, replicas: usize, backlog: usize) -> Drain {
    let redis = RedisServer::start();
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_hook(REPO, HookSpec::new(fake.blackhole_url()));
    fake.set_rate_limit(100_000);
    let payloads = (0..backlog).map(|n| json!({"action": "opened", "number": n})).collect();
    assert_eq!(fake.emit_many(REPO, "issues", payloads).await.len(), backlog);
    fake.faults().set_latency(LATENCY);
    // GitHub's figures, with nothing spent yet.
    fake.set_secondary_limits(SecondaryLimits::default());
    let handler = Handler::start(SECRET).await;
    let states: Vec<tempfile::TempDir> = (0..replicas).map(|_| tempfile::tempdir().expect("a state dir")).collect();
    let spawned = Instant::now();
    let running: Vec<Guard> =
        states.iter().map(|state| replica(bin, &fake, &handler.url, &redis.url(), state.path())).collect();
    let distinct = || {
        let seen = handler.seen.lock().expect("handler lock");
        seen.arrivals.iter().map(|(guid, _)| guid.clone()).collect::<HashSet<_>>().len()
    };
    let mut reported = Instant::now();
    while distinct() < backlog && spawned.elapsed() < DEADLINE {
        if reported.elapsed() > Duration::from_secs(10) {
            eprintln!("pace bench: {} of {backlog} after {:.0} s", distinct(), spawned.elapsed().as_secs_f64());
            reported = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(running);
    let last = handler.seen.lock().expect("handler lock").arrivals.iter().map(|(_, at)| *at).max();
    Drain { took: last.unwrap_or_else(Instant::now) - spawned, distinct: distinct(), stats: fake.stats() }
}

/// `1000 of 1000 in 75.0 s`, or what had arrived when the deadline stopped the drain.
fn drained(drain: &Drain, backlog: usize) -> String {
    let took = drain.took.as_secs_f64();
    if drain.distinct < backlog {
        format!(
            "{} of {backlog} (the last at {took:.1} s; none more by the {} s deadline)",
            drain.distinct,
            DEADLINE.as_secs()
        )
    } else {
        format!("{backlog} of {backlog} in {took:.1} s")
    }
}

fn main() {
    // `cargo test --bench` passes arguments; this harness takes none.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let before_bin =
        PathBuf::from(std::env::var_os("PACE_BEFORE_BIN").expect("PACE_BEFORE_BIN: bench/pace.sh sets it"));
    let after_bin = release_bin("HOOKFWD_BIN", "hookfwd");
    let backlog = env_number("PACE_BACKLOG", 1000) as usize;
    let replicas = env_number("PACE_REPLICAS", 3) as usize;
    let before = drain(&before_bin, replicas, backlog).await;
    eprintln!("pace bench: before, {} in {:.1} s", before.distinct, before.took.as_secs_f64());
    let after = drain(&after_bin, replicas, backlog).await;
    eprintln!("pace bench: after, {} in {:.1} s", after.distinct, after.took.as_secs_f64());

    println!(
        "| {replicas} replicas on one token drain {backlog} (no `--secondary-limit`) | before: each paces alone | after: paced together in Redis | target |"
    );
    println!("|---|---|---|---|");
    println!(
        "| secondary-limit answers from the fake | {} | {} | 0 after ({}) |",
        before.stats.secondary_limited,
        after.stats.secondary_limited,
        verdict(after.stats.secondary_limited == 0)
    );
    println!(
        "| drained, spawn → last arrival | {} | {} | every delivery ({}) |",
        drained(&before, backlog),
        drained(&after, backlog),
        verdict(after.distinct == backlog)
    );
    println!(
        "| payload GETs / list calls | {} / {} | {} / {} | |",
        before.stats.get_delivery, before.stats.list_deliveries, after.stats.get_delivery, after.stats.list_deliveries
    );
}
