#!/usr/bin/env bash
# Benchmarks the inspector's memory: the release `hookfwd dev` forwards 500 deliveries of 1 MiB with the
# inspector on, its RSS is read while the inspector holds them, and its payload search is timed. Prints
# Markdown tables for docs/benchmarks.md. Knobs: INSPECT_COUNT, INSPECT_SIZE (see tests/benches/inspect.rs).
# The drain rate with and without the inspector: bench/relay.sh, then RELAY_NO_INSPECT=1 bench/relay.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bin hookfwd
HOOKFWD_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/hookfwd cargo bench -p hookfwd-e2e --bench inspect
