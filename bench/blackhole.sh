#!/usr/bin/env bash
# Benchmarks the blackhole against nginx's `return 200` on loopback, in one run.
#
# Each server is pinned to CPU 0 and wrk to CPU 1; wrk posts a ~7.6 KB GitHub-like
# JSON body with 2 threads and 64 connections for $DURATION, nginx then the blackhole,
# $ROUNDS times in turn: on a shared machine the load drifts over a minute, so one long
# run of each compares two different machines; the median of the pairs' ratios does not.
# Then a fresh blackhole takes 50 sequential 25 MiB POSTs while its peak RSS is read from /proc.
# Prints a Markdown table of the figures, and whether each target is met, for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-5}
NGINX_PORT=${NGINX_PORT:-18480}
BLACKHOLE_PORT=${BLACKHOLE_PORT:-18481}

if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk >/dev/null
fi
# shellcheck source=bench/lib.sh
source bench/lib.sh
require taskset curl python3

bin=$(scripts/build-static blackhole)
chmod 755 "$work"

# A push-event-shaped JSON body of about 7.6 KB.
python3 - "$work/body.json" <<'PY'
import json, sys
commits = [{"id": f"{i:040x}", "message": f"Commit {i}: tidy the relay and its tests",
            "timestamp": "2026-01-01T00:00:00Z",
            "author": {"name": "Alice", "email": "alice@example.com", "username": "alice"},
            "added": [], "removed": [], "modified": [f"crates/relay/src/file{i}.rs"]} for i in range(40)]
body = {"ref": "refs/heads/main", "before": "0" * 40, "after": "f" * 40,
        "repository": {"id": 1, "full_name": "acme/widgets", "private": False}, "commits": commits}
text = json.dumps(body)
while len(text) > 7600:
    commits.pop()
    text = json.dumps(body)
open(sys.argv[1], "w").write(text)
PY

printf '%s\n' \
  "local f = io.open(\"$work/body.json\", \"rb\")" \
  'wrk.method = "POST"' \
  'wrk.body = f:read("*a")' \
  'f:close()' \
  'wrk.headers["Content-Type"] = "application/json"' \
  'wrk.headers["X-GitHub-Event"] = "push"' \
  'wrk.headers["X-GitHub-Delivery"] = "72d3162e-cc78-11e3-81ab-4c9367dc0958"' \
  >"$work/post.lua"

head -c $((25 * 1024 * 1024)) /dev/zero >"$work/big"

printf '%s\n' \
  'worker_processes 1;' \
  'daemon off;' \
  "pid $work/nginx.pid;" \
  "error_log $work/nginx-error.log;" \
  'events { worker_connections 1024; }' \
  'http {' \
  '  access_log off;' \
  '  client_max_body_size 32m;' \
  "  client_body_temp_path $work/nginx-body;" \
  "  server { listen 127.0.0.1:$NGINX_PORT; location / { return 200 \"ok\\n\"; } }" \
  '}' \
  >"$work/nginx.conf"

rss_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
mib() { awk -v kb="$1" 'BEGIN { printf "%.1f MiB", kb / 1024 }'; }
wait_port() {
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
    sleep 0.05
  done
  echo "bench: nothing answers on port $1" >&2
  exit 1
}
warm_up() { taskset -c 1 wrk -t2 -c64 -d2s -s "$work/post.lua" "http://127.0.0.1:$1/alice" >/dev/null; }
# Prints requests per second; wrk's report goes to stderr.
load() {
  taskset -c 1 wrk -t2 -c64 -d"$DURATION" -s "$work/post.lua" "http://127.0.0.1:$1/alice" | tee "$work/wrk.out" >&2
  if grep -q 'Non-2xx' "$work/wrk.out"; then
    echo "bench: non-2xx answers from port $1" >&2
    exit 1
  fi
  awk '/^Requests\/sec:/ { print $2 }' "$work/wrk.out"
}

# Both servers stay up (the idle one costs nothing) and take the load in turn.
taskset -c 0 nginx -p "$work" -c "$work/nginx.conf" -e "$work/nginx-error.log" &
nginx_pid=$!
pids+=("$nginx_pid")
taskset -c 0 "$bin" --listen "127.0.0.1:$BLACKHOLE_PORT" 2>"$work/blackhole.log" &
bh_pid=$!
pids+=("$bh_pid")
wait_port "$NGINX_PORT"
wait_port "$BLACKHOLE_PORT"
sleep 0.5
idle_kb=$(rss_kb "$bh_pid" VmRSS)
warm_up "$NGINX_PORT"
warm_up "$BLACKHOLE_PORT"
: >"$work/rounds"
for round in $(seq "$ROUNDS"); do
  echo "== round $round/$ROUNDS: nginx $(nginx -v 2>&1 | cut -d/ -f2), 1 worker, return 200" >&2
  nginx_round=$(load "$NGINX_PORT")
  echo "== round $round/$ROUNDS: blackhole" >&2
  bh_round=$(load "$BLACKHOLE_PORT")
  echo "$nginx_round $bh_round" >>"$work/rounds"
done
after_load_kb=$(rss_kb "$bh_pid" VmRSS)
kill "$nginx_pid" "$bh_pid"

# median COLUMN: the median of a column of $work/rounds (3: the pair's ratio).
median() {
  awk -v c="$1" '{ print (c == 3 ? $2 / $1 : $c) }' "$work/rounds" | sort -g |
    awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
nginx_rps=$(median 1)
bh_rps=$(median 2)
ratio=$(median 3)
ratios=$(awk '{ printf "%s%.2f", (NR > 1 ? ", " : ""), $2 / $1 }' "$work/rounds")

echo "== 50 sequential 25 MiB POSTs to a fresh blackhole" >&2
taskset -c 0 "$bin" --listen "127.0.0.1:$BLACKHOLE_PORT" 2>"$work/blackhole.log" &
bh_pid=$!
pids+=("$bh_pid")
wait_port "$BLACKHOLE_PORT"
ok=0
for _ in $(seq 50); do
  code=$(taskset -c 1 curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -T "$work/big" "http://127.0.0.1:$BLACKHOLE_PORT/alice")
  if [ "$code" = 200 ]; then ok=$((ok + 1)); fi
done
peak_kb=$(rss_kb "$bh_pid" VmHWM)
kill "$bh_pid"

verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo MISSED; fi; }
echo "| measure | result | target |"
echo "|---|---|---|"
echo "| nginx req/s (median of $ROUNDS) | $nginx_rps | |"
echo "| blackhole req/s (median of $ROUNDS) | $bh_rps | |"
echo "| blackhole / nginx (median of the pairs: $ratios) | ${ratio}× | ≥ 1.10× ($(verdict "$ratio >= 1.10")) |"
echo "| idle RSS | $(mib "$idle_kb") | ≤ 3 MiB ($(verdict "$idle_kb <= 3072")) |"
echo "| RSS after the wrk run | $(mib "$after_load_kb") | |"
echo "| 25 MiB POSTs answered 200 | $ok / 50 | 50 ($(verdict "$ok == 50")) |"
echo "| peak RSS over those POSTs | $(mib "$peak_kb") | ≤ 6 MiB ($(verdict "$peak_kb <= 6144")) |"
echo "| binary size (static, stripped) | $(stat -c %s "$bin") bytes | image ≤ 5 MB ($(verdict "$(stat -c %s "$bin") <= 5000000")) |"
