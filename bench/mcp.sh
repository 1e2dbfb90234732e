#!/usr/bin/env bash
# Benchmarks `hookfwd mcp`: from the fake GitHub's POST to the blackhole to the answer of a
# wait_for_delivery under way, in push mode, on 127.0.0.1 (see tests/benches/mcp.rs). Prints a
# Markdown table for docs/benchmarks.md. Knobs: MCP_EVENTS (50); PROFILE=release for release binaries
# (default: the debug build, which the tests run).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${PROFILE:-dev}
dir=debug
[ "$profile" = release ] && dir=release
cargo build --profile "$profile" --bin hookfwd --bin blackhole
target=${CARGO_TARGET_DIR:-$PWD/target}
CARGO_BIN_EXE_hookfwd=$target/$dir/hookfwd CARGO_BIN_EXE_blackhole=$target/$dir/blackhole \
  cargo bench --profile "$profile" -p hookfwd-e2e --bench mcp
