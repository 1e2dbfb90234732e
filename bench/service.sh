#!/usr/bin/env bash
# Benchmarks stall detection: the static `hookfwd forward` the image ships (scripts/build-static),
# with the container's default flags plus --max-stall, against the fake-github binary on 127.0.0.1.
#
# Once /readyz answers 200, the fake stalls every API call (an hour of added latency, so each list
# call hangs until hookfwd's own 30 s timeout), and the script measures how long /readyz takes to
# answer 503 (a run without --max-stall, which would end it first) and how long a run with
# --max-stall takes to exit. Targets: 503 within 30 s; exit 1 after
# --max-stall (20 s) plus at most a second of checking. Runs RUNS times (default 3).
# Prints a Markdown table for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-3}
max_stall=${MAX_STALL:-20}
hookfwd=$PWD/$(scripts/build-static hookfwd)
cargo build --quiet --bin fake-github
fake_bin=$PWD/target/debug/fake-github
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

token=ghp_benchServiceToken000000000000000001
now() { date +%s.%N; }
# Waits (at most 120 s) until $1 answers HTTP status $2.
until_status() {
  local deadline=$((SECONDS + 120))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = "$2" ]; do
    if [ $SECONDS -ge $deadline ]; then
      echo "bench/service.sh: $1 never answered $2; hookfwd said: $(cat "$work/hookfwd.err")" >&2
      exit 1
    fi
    sleep 0.1
  done
}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# One measurement: a fresh fake and hookfwd (with extra flags $@), ready, then stalled. Sets
# $unready (seconds to /readyz 503, or "-") and $exited/$code (seconds to exit, or "-").
measure() {
  "$fake_bin" --token "$token:repo,admin:repo_hook" --repo bench-org/api >"$work/fake.out" 2>"$work/fake.err" &
  fake=$!
  until [ -s "$work/fake.out" ]; do sleep 0.05; done
  api=$(head -n1 "$work/fake.out")
  curl -fsS -X POST "${api}_fake/hooks" -d "{\"owner\":\"bench-org/api\",\"url\":\"${api}_fake/blackhole\"}" >/dev/null
  printf '[[rule]]\nfrom = ["bench-org/api"]\nto = "http://127.0.0.1:9/"\nhook_url = "%s_fake/blackhole"\n' "$api" \
    >"$work/hookfwd.toml"
  admin=127.0.0.1:$(port)
  GITHUB_TOKEN=$token HOOKFWD_STATE_DIR=$(mktemp -d -p "$work") "$hookfwd" forward --config "$work/hookfwd.toml" \
    --admin-listen "$admin" --api-url "$api" "$@" >/dev/null 2>"$work/hookfwd.err" &
  relay=$!
  until_status "http://$admin/readyz" 200
  curl -fsS -X POST "${api}_fake/faults" -d '{"latency_ms": 3600000}' >/dev/null
  stalled=$(now)
  if [ $# -eq 0 ]; then
    until_status "http://$admin/readyz" 503
    unready=$(printf '%.1f' "$(echo "$(now) - $stalled" | bc)")
    kill "$relay"
    wait "$relay" || true
  else
    set +e
    wait "$relay"
    code=$?
    set -e
    exited=$(printf '%.1f' "$(echo "$(now) - $stalled" | bc)")
    last=$(tail -n1 "$work/hookfwd.err")
  fi
  kill "$fake" 2>/dev/null || true
  wait "$fake" 2>/dev/null || true
  : >"$work/fake.out"
}

echo "| run | /readyz 503 after the stall (s), no --max-stall | exit after the stall (s), --max-stall ${max_stall}s | exit code |"
echo "|---|---|---|---|"
for run in $(seq "$runs"); do
  measure
  measure --max-stall "${max_stall}s"
  echo "| $run | $unready | $exited | $code |"
done
echo
echo "hookfwd's last line: $last"
