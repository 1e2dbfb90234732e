//! The `hookfwd mcp` benchmark: how soon a `wait_for_delivery` under way returns a delivery POSTed through
//! the blackhole. `hookfwd mcp` and `blackhole` (the binaries in `CARGO_BIN_EXE_hookfwd` and
//! `CARGO_BIN_EXE_blackhole`, which `bench/mcp.sh` builds) against the in-process fake GitHub, push mode,
//! everything on 127.0.0.1. For each of `MCP_EVENTS` deliveries (50): the wait is asked for, then the fake
//! POSTs the delivery to the blackhole; the time is from the start of that POST to the tool's answer on the
//! client's side. Prints a Markdown table for `docs/benchmarks.md`.

use std::time::{Duration, Instant};

use e2e::bench::{env_number, ms, percentile, verdict};
use e2e::mcp::parse_ok;
use e2e::{Blackhole, McpClient};
use fake_github::FakeGitHub;
use serde_json::json;

const TOKEN: &str = "ghp_benchMcpTokenNeverPrinted00000001";
const STREAM_TOKEN: &str = "mcp-bench-stream-token";
const REPO: &str = "octo/mcp";
/// The target: a wait returns within this of the POST.
const TARGET: Duration = Duration::from_millis(100);

#[tokio::main]
async fn main() {
    let events = env_number("MCP_EVENTS", 50) as usize;
    let fake = FakeGitHub::start().await;
    fake.add_token(TOKEN, "repo, admin:repo_hook");
    fake.add_repo(REPO);
    fake.set_ping_on_create(false);
    let blackhole = Blackhole::start(&["--stream-token", STREAM_TOKEN, "--stream-keepalive", "1s"]);
    let state = tempfile::tempdir().expect("a state directory");
    let api_url = fake.api_url().to_string();
    let hook_url = blackhole.url("/bench");
    let args = ["mcp", "--repo", REPO, "--hook-url", &hook_url, "--api-url", &api_url, "-v", "--state-dir"];
    let mut args: Vec<&str> = args.to_vec();
    args.push(state.path().to_str().expect("a UTF-8 path"));
    let env = [("GITHUB_TOKEN", TOKEN), ("HOOKFWD_STREAM_TOKEN", STREAM_TOKEN)];
    let mut mcp = McpClient::start(args, &env).await;
    e2e::eventually("the blackhole's stream", async || mcp.stderr().contains("stream up")).await;

    let mut cursor = 0;
    let mut times = Vec::with_capacity(events);
    for n in 0..events {
        let waiting = mcp.call_later("wait_for_delivery", json!({"cursor": cursor, "timeout_s": 30})).await;
        let payload = json!({"action": "opened", "issue": {"number": n}, "repository": {"full_name": REPO}});
        let posted = Instant::now();
        fake.emit(REPO, "issues", payload).await;
        let result = parse_ok("wait_for_delivery", &mcp.result(waiting).await);
        times.push(posted.elapsed());
        assert_eq!(result["delivery"]["via"], "stream", "{result}");
        cursor = result["cursor"].as_u64().expect("a cursor");
        // Irregular spacing, as real events come.
        tokio::time::sleep(Duration::from_millis(20 + (n as u64 * 37) % 80)).await;
    }
    mcp.finish().await;
    times.sort_unstable();
    let (p50, p99, max) = (percentile(&times, 50.0), percentile(&times, 99.0), times[times.len() - 1]);
    println!("| deliveries | p50 | p99 | max | within {} ms |", TARGET.as_millis());
    println!("|---|---|---|---|---|");
    println!("| {events} | {} | {} | {} | {} |", ms(p50), ms(p99), ms(max), verdict(max <= TARGET));
}
