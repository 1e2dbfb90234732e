//! The inspector's memory benchmark: `hookfwd dev` forwards 500 deliveries of 1 MiB each (a backlog from
//! the in-process fake GitHub) with the inspector on, then its RSS is read while the inspector holds them
//! (as many as its byte bound lets it), and the text filter's search of every held payload is timed. Prints
//! Markdown tables for `docs/benchmarks.md`.
//!
//! Run it with `bench/inspect.sh`. Everything listens on 127.0.0.1. Knobs: `HOOKFWD_BIN` (the binary; else
//! it is built in release), `INSPECT_COUNT` (500), `INSPECT_SIZE` (1048576 bytes of payload each).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::bench::{env_number, release_bin, spawn_hookfwd, status_kib, verdict};
use e2e::{Counter, Guard};
use fake_github::{FakeGitHub, HookSpec};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_benchInspectTokenNeverPrinted0001";
const SECRET: &str = "inspect-bench-secret-never-printed";
const REPO: &str = "octo/inspected";

#[tokio::main]
async fn main() {
    let count = env_number("INSPECT_COUNT", 500) as usize;
    let size = env_number("INSPECT_SIZE", 1024 * 1024) as usize;
    let bin = release_bin("HOOKFWD_BIN", "hookfwd");
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_hook(REPO, HookSpec::new(fake.blackhole_url()));
    fake.set_rate_limit(50_000);
    let filler = "x".repeat(size);
    for chunk in (0..count).collect::<Vec<_>>().chunks(50) {
        let payloads = chunk.iter().map(|n| json!({"action": "opened", "number": n, "filler": filler})).collect();
        fake.emit_many(REPO, "issues", payloads).await;
    }
    let handler = Counter::start(SECRET).await;
    let state = tempfile::tempdir().expect("a temporary state dir");
    let mut child = spawn_hookfwd(
        Command::new(&bin)
            .args(["dev", "--repo", REPO, "--to", &handler.url, "--hook-url", &fake.blackhole_url()])
            .args(["--api-url", fake.api_url().as_str(), "--interval", "1s", "--since", "1h", "--json"])
            .args(["--inspect", "127.0.0.1:0", "--state-dir"])
            .arg(state.path()),
        TOKEN,
        SECRET,
        Stdio::null(),
    );
    let pid = child.id();
    let out = child.stdout.take().expect("piped");
    let _child = Guard(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains(r#""type":"ready""#) {
                let _ = tx.send(line);
            }
        }
    });
    let ready: Value = serde_json::from_str(&rx.recv_timeout(Duration::from_secs(60)).expect("a ready line")).unwrap();
    let url = ready["inspector"].as_str().expect("the inspector's URL").to_string();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    while handler.count() < count {
        assert!(Instant::now() < deadline, "only {} of {count} forwarded in 10 minutes", handler.count());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats: Value = e2e::get(format!("{url}/api/stats")).await.unwrap().json().await.unwrap();
    let held = stats["held"].as_u64().unwrap_or(0);
    let rss = status_kib(pid, "VmRSS").unwrap_or(0);
    let hwm = status_kib(pid, "VmHWM").unwrap_or(0);
    let list: Vec<Value> = e2e::get(format!("{url}/api/deliveries")).await.unwrap().json().await.unwrap();
    let whole = list.iter().filter(|row| row["trimmed"] == false).count();
    println!(
        "| deliveries × payload | forwarded in | rows listed (with bodies) | bytes held (bound) | RSS | peak RSS |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {count} × {} KiB | {:.1} s | {held} (list {}, {whole} whole) | {:.1} MiB ({:.0} MiB) | {:.1} MiB | {:.1} MiB |",
        size / 1024,
        drained.as_secs_f64(),
        list.len(),
        stats["bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
        stats["max_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
    );
    println!("\npeak RSS < 64 MiB: {}", verdict(hwm < 64 * 1024));

    // The text filter's search of payloads at its worst: text no held request holds, so every byte is read.
    let mut took: Vec<f64> = Vec::new();
    for _ in 0..9 {
        let asked = Instant::now();
        let found: Value = e2e::get(format!("{url}/api/search?q=no-such-text")).await.unwrap().json().await.unwrap();
        took.push(asked.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(found["seqs"].as_array().map(Vec::len), Some(0), "{found}");
    }
    took.sort_by(f64::total_cmp);
    println!("\n| payload search over the bytes held | median | slowest of 9 |");
    println!("|---|---|---|");
    println!(
        "| {:.1} MiB in {held} rows | {:.1} ms | {:.1} ms |",
        stats["bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
        took[4],
        took[8]
    );
    println!("\npayload search median < 100 ms: {}", verdict(took[4] < 100.0));
}
