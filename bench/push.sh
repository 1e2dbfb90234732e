#!/usr/bin/env bash
# Benchmarks push mode against polling: the release `hookfwd dev` and `blackhole` against the
# in-process fake GitHub with 20 ms of added API latency, on 127.0.0.1 only. For each mode:
# 100 single events at irregular spacing (added latency from the fake's POST to the handler),
# a burst of 5,000 through one blackhole and one hookfwd (deliveries/s, lost, repeated), API
# calls per delivery, then 40 quiet seconds (rate-limited calls while idle). About four minutes.
# Prints a Markdown table, and whether each push-mode target is met, for docs/benchmarks.md.
# Knobs for quick runs: PUSH_EVENTS, PUSH_BURST, PUSH_IDLE_SECS (see tests/benches/push.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bin hookfwd --bin blackhole
HOOKFWD_BIN=$PWD/target/release/hookfwd BLACKHOLE_BIN=$PWD/target/release/blackhole \
  cargo bench -p hookfwd-e2e --bench push
