# shellcheck shell=bash
# Shared by the blackhole benchmarks (sourced, not run): checks for tools, a scratch directory
# and the background processes, all removed or stopped on exit.

# require TOOL...: stop with one sentence when a tool is missing.
require() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
  done
}

# A scratch directory, and the PIDs of background processes to stop when the script exits.
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
