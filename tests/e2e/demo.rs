//! `hookfwd demo` through the real binary: every event forwarded through the stream and verified.

use std::collections::HashSet;

use e2e::Running;
use serde_json::Value;

/// The events the demo emits.
const EVENTS: [&str; 3] = ["push", "issues", "pull_request"];

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_forwards_every_event_via_the_stream_to_a_handler_that_verifies_it() {
    let run = Running::hookfwd(["demo", "--json"], &[]).finish().await;
    assert_eq!(run.code, Some(0), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let lines = run.json();
    let of_type = |kind: &str| -> Vec<&Value> { lines.iter().filter(|line| line["type"] == kind).collect() };

    let forwarded = of_type("forwarded");
    let events: HashSet<&str> = forwarded.iter().filter_map(|line| line["event"].as_str()).collect();
    assert_eq!(events, HashSet::from(EVENTS), "{}", run.stdout);
    for line in &forwarded {
        assert_eq!(line["via"], "stream", "{line}");
        assert_eq!(line["status"], 200, "{line}");
    }
    let verified: HashSet<&str> = of_type("handler")
        .iter()
        .filter(|line| line["verified"] == true)
        .filter_map(|line| line["guid"].as_str())
        .collect();
    for line in &forwarded {
        assert!(verified.contains(line["guid"].as_str().unwrap()), "the handler did not verify {line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_ends_with_the_commands_for_the_real_github() {
    let run = Running::hookfwd(["demo"], &[("NO_COLOR", std::ffi::OsStr::new("1"))]).finish().await;
    assert_eq!(run.code, Some(0), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert_eq!(run.stdout.matches("· via stream").count(), EVENTS.len(), "{}", run.stdout);
    // The demo makes its token and secret up: the Ready line says so rather than name a flag nobody gave; and it
    // ends by itself, so no Ctrl-C.
    let ready = run.stdout.lines().find(|line| line.contains("· secret ")).unwrap_or_default();
    assert!(ready.contains("· token made up by the demo for the stand-in GitHub (***) ·"), "{ready}");
    assert!(ready.ends_with("· secret made up by the demo for its handler (***)"), "{ready}");
    assert!(!run.stdout.contains("Ctrl-C"), "{}", run.stdout);
    assert!(run.stdout.contains("run `hookfwd demo --inspect`"), "the inspector is offered: {}", run.stdout);
    assert!(!run.stdout.contains("!!!"), "no warning: its loopback blackhole is meant: {}", run.stdout);
    assert_eq!(run.stdout.matches("handler verified the signature of").count(), EVENTS.len(), "{}", run.stdout);
    let last: Vec<&str> = run.stdout.lines().rev().take(2).collect();
    assert_eq!(last[1].trim(), "export GITHUB_TOKEN=ghp_… HOOKFWD_SECRET=… HOOKFWD_STREAM_TOKEN=…", "{}", run.stdout);
    assert!(
        last[0].trim().starts_with("hookfwd dev --repo OWNER/REPO --to localhost:3000/webhook --hook-url "),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_with_the_inspector_runs_until_stopped_and_lists_every_delivery_there() {
    let run = Running::hookfwd(["demo", "--inspect", "127.0.0.1:0"], &[("NO_COLOR", std::ffi::OsStr::new("1"))]);
    let line = run.wait_line("Explore the deliveries at ").await;
    let url = line.split("Explore the deliveries at ").nth(1).and_then(|rest| rest.split(';').next()).unwrap();
    assert!(line.ends_with("; Ctrl-C to stop."), "{line}");
    let rows: Vec<Value> = e2e::get(format!("{url}/api/deliveries")).await.unwrap().json().await.unwrap();
    let kinds: HashSet<&str> =
        rows.iter().filter_map(|row| row["kind"].as_str()).map(|kind| kind.split('.').next().unwrap()).collect();
    assert_eq!(kinds, HashSet::from(EVENTS), "{rows:?}");
    run.signal(libc::SIGINT);
    let finished = run.finish().await;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
}
