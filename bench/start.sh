#!/usr/bin/env bash
# Measures how long `hookfwd dev` takes to fail when GitHub's API cannot be reached at start: a port
# nothing listens on (connection refused), a listener that takes the connection and never answers (a
# blackholed address), and a host name that does not resolve (`.invalid`). Target: under 10 s each,
# with one sentence on stderr. BASELINE=path/to/an/older/hookfwd measures it too, in the same run, each
# case capped at CAP seconds (default 240). Prints a Markdown table for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
require python3 cargo bc

cap=${CAP:-240}
cargo build --quiet --bin hookfwd
hookfwd=$PWD/target/debug/hookfwd

# A port nothing listens on.
refused=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# A listener that accepts every connection and never answers.
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
print(s.getsockname()[1], flush=True)
held = []
while True:
    held.append(s.accept()[0])
' >"$work/silent.port" &
pids+=($!)
until [ -s "$work/silent.port" ]; do sleep 0.05; done
silent=$(cat "$work/silent.port")

now() { date +%s.%N; }
# run BIN API: prints "seconds exit-code first-stderr-line" for one failing start.
run() {
  local start code
  start=$(now)
  set +e
  GITHUB_TOKEN=ghp_benchStartToken0000000000000000001 timeout "$cap" "$1" dev --repo bench-org/api \
    --to localhost:3000 --hook-url http://127.0.0.1:9/h --state-dir "$work/state" --no-inspect --api-url "$2" \
    >/dev/null 2>"$work/err"
  code=$?
  set -e
  printf '%.1f|%s|%s' "$(echo "$(now) - $start" | bc)" "$code" "$(head -n1 "$work/err")"
}

echo "| API at start | hookfwd (s) | exit | its sentence | baseline (s) | baseline exit |"
echo "|---|---|---|---|---|---|"
for case in "refused|http://127.0.0.1:$refused" "silent|http://127.0.0.1:$silent" "unresolved|http://hookfwd-bench.invalid"; do
  name=${case%%|*}
  api=${case#*|}
  IFS='|' read -r seconds code sentence <<<"$(run "$hookfwd" "$api")"
  base_seconds=-
  base_code=-
  if [ -n "${BASELINE:-}" ]; then
    IFS='|' read -r base_seconds base_code _ <<<"$(run "$BASELINE" "$api")"
  fi
  echo "| $name | $seconds | $code | \`$sentence\` | $base_seconds | $base_code |"
done
