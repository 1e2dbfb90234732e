#!/usr/bin/env bash
# Benchmarks replicas sharing one ledger in Redis: release `hookfwd forward` processes and a real
# redis-server against the in-process fake GitHub with 20 ms of added API latency, on 127.0.0.1 only.
#
# On one 10,000-delivery backlog, each phase with a fresh Redis database: one replica drains it
# (the baseline), two replicas drain it (rate against the baseline, GETs per delivery in total),
# and two drain it while one is killed -9 a third of the way (lost, repeats). A few minutes in all.
# Prints a Markdown table, and whether each target is met, for docs/benchmarks.md.
# Knob for quick runs: REPLICAS_BACKLOG (see the top of tests/benches/replicas.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v redis-server >/dev/null || { echo "bench: redis-server is required (apt-get install redis-server)" >&2; exit 1; }
cargo build --release --bin hookfwd
HOOKFWD_BIN=$PWD/target/release/hookfwd cargo bench -p hookfwd-e2e --bench replicas
