#!/usr/bin/env bash
# Benchmarks the relay: the release `hookfwd dev` against the in-process fake GitHub with
# 20 ms of added API latency, on 127.0.0.1 only.
#
# A 10,000-delivery backlog drains (throughput against concurrency ÷ latency, peak and
# progressive RSS, GETs per delivery); the same process, idle-polling at --interval 1s, gets
# 20 single events at irregular spacing (added latency just after a backlog), then a quiet
# minute (rate-limited calls); a fresh relay on a quiet hook gets 60 events (added latency);
# then the backlog drains again with no added latency. About four minutes in all.
# Prints a Markdown table, and whether each target is met, for docs/benchmarks.md.
# Knobs for quick runs: RELAY_BACKLOG, RELAY_AFTER_EVENTS, RELAY_EVENTS, RELAY_IDLE_SECS, RELAY_SKIP_ZERO=1
# (see the top of tests/benches/relay.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bin hookfwd
HOOKFWD_BIN=$PWD/target/release/hookfwd cargo bench -p hookfwd-e2e --bench relay
