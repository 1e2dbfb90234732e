#!/usr/bin/env bash
# Benchmarks replicas on one token sharing its GitHub budget through Redis: PACE_REPLICAS (3)
# `hookfwd forward` replicas on one Redis ledger drain a PACE_BACKLOG (1000) backlog against the
# in-process fake GitHub with GitHub's secondary limits on (900 points a minute per endpoint) and no
# --secondary-limit given, on 127.0.0.1 only. Twice: before, with the hookfwd of PACE_BEFORE (a
# revision where each replica paces alone at the full limit; default 7a272de, the last one before
# shared pacing), and after, with this tree's. Counts the fake's secondary-limit answers (target 0
# after). A few minutes. PACE_PROFILE (release) is the profile both binaries are built with; the
# harness runs in the dev profile (`cargo test --bench`), as bench/budget.sh's does.
# Prints a Markdown table for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v redis-server >/dev/null || { echo "bench: redis-server is required (apt-get install redis-server)" >&2; exit 1; }
profile=${PACE_PROFILE:-release}
out=$profile
[ "$profile" = dev ] && out=debug
target=${CARGO_TARGET_DIR:-$PWD/target}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The old tree, built in a target directory of its own: Cargo names a workspace's artifacts by their
# path in the workspace, so in one directory the two trees would take each other's binaries.
mkdir "$tmp/before"
git archive "${PACE_BEFORE:-7a272de}" | tar -x -C "$tmp/before"
(cd "$tmp/before" && CARGO_TARGET_DIR=$target/pace-before cargo build --profile "$profile" --bin hookfwd)
cargo build --profile "$profile" --bin hookfwd
PACE_BEFORE_BIN=$target/pace-before/$out/hookfwd HOOKFWD_BIN=$target/$out/hookfwd \
  cargo test --quiet -p hookfwd-e2e --bench pace
