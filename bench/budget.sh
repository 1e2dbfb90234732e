#!/usr/bin/env bash
# Benchmarks many sources on one token: 100 repositories and 10 organizations in one `hookfwd dev`
# (the static release binary the image ships, from scripts/build-static) against the in-process
# fake GitHub with 20 ms of added API latency and GitHub's secondary limits on, on 127.0.0.1 only.
#
# Measures the interval hookfwd chooses for --interval 1s (and its warning), the calls against the
# primary budget in an idle window (BUDGET_IDLE_SECS, default 120 s) scaled to an hour, the latency
# of 60 single events at that interval (worst case), and the fake's secondary-limit answers (target
# 0). About four minutes after the build. The harness and its in-process fake run in the dev
# profile (`cargo test --bench`), which spares a second release build; hookfwd is the release binary.
# Prints a Markdown table for docs/benchmarks.md. Knobs: BUDGET_IDLE_SECS, BUDGET_EVENTS,
# BUDGET_REPOS, BUDGET_ORGS (see the top of tests/benches/budget.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

HOOKFWD_BIN=$PWD/$(scripts/build-static hookfwd) cargo test --quiet -p hookfwd-e2e --bench budget
