#!/usr/bin/env bash
# Benchmarks the blackhole's CPU per request against a bare hyper server and nginx, side by side in one run.
#
# Each server is pinned to CPU 0 and wrk to CPU 1; wrk posts a ~7.6 KB GitHub-like JSON body with 2
# threads and 64 keep-alive connections for $DURATION to each server in turn, $ROUNDS rounds, the
# order reversed every other round: on a shared machine the load drifts over a minute, so one long
# run of each compares two different machines; the median of each round's ratios does not. A
# server's CPU is its utime+stime from /proc around its run, over the requests wrk completed.
# - bare hyper: blackhole/examples/bare_hyper.rs, the same runtime and hyper with none of the guards;
#   the target is the blackhole within 1.05× of it.
# - nginx: `return 200`, one worker.
# - BASELINE=path adds another blackhole binary (an older build) to every round, to compare.
# Then a fresh blackhole takes 50 sequential 25 MiB POSTs while its peak RSS is read from /proc, and
# one with --stream-token takes $BIG_POSTS POSTs of 31 MiB (collected to publish) with glibc's
# defaults and with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (as Dockerfile.blackhole sets it): CPU and
# peak RSS. Prints Markdown tables of the figures, and whether each target is met, for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-6}
BIG_POSTS=${BIG_POSTS:-100}
PORT=${PORT:-18480}

if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk >/dev/null
fi
# shellcheck source=bench/lib.sh
source bench/lib.sh
require taskset curl python3

bin=$(scripts/build-static blackhole)
# The yardstick with the same target and flags as scripts/build-static, so that the two binaries
# differ only in their code (and share the dependencies' build).
target=$(basename "$(dirname "$(dirname "$bin")")")
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"" \
  cargo build --release --locked -p hookfwd-blackhole --example bare_hyper --target "$target" >&2
bare="$(dirname "$bin")/examples/bare_hyper"
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
  "  server { listen 127.0.0.1:$PORT; location / { return 200 \"ok\\n\"; } }" \
  '}' \
  >"$work/nginx.conf"

rss_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
mib() { awk -v kb="$1" 'BEGIN { printf "%.1f MiB", kb / 1024 }'; }
# utime+stime of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)
wait_port() {
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/" && return 0
    sleep 0.05
  done
  echo "bench: nothing answers on port $PORT" >&2
  exit 1
}

# Servers take turns on one port, each started for its run: an idle one would cost little, but its
# timers would still wake it on the same CPU. `start NAME` sets $server (the pid that does the work)
# and $leader (the one to stop). Their output goes nowhere: they run inside command substitutions.
start() {
  case "$1" in
    nginx)
      taskset -c 0 nginx -p "$work" -c "$work/nginx.conf" -e "$work/nginx-error.log" >/dev/null &
      pids+=("$!")
      wait_port
      server=$(pgrep -P "$!" -n)
      ;;
    hyper) taskset -c 0 "$bare" "127.0.0.1:$PORT" >/dev/null & ;;
    blackhole) taskset -c 0 "$bin" --listen "127.0.0.1:$PORT" >/dev/null 2>"$work/blackhole.log" & ;;
    baseline) taskset -c 0 "$BASELINE" --listen "127.0.0.1:$PORT" >/dev/null 2>"$work/baseline.log" & ;;
  esac
  if [ "$1" != nginx ]; then
    server=$!
    pids+=("$server")
    wait_port
  fi
  leader=$!
}
stop() {
  kill "$leader"
  wait "$leader" 2>/dev/null || true
}

# `load NAME`: prints the server's CPU per request in µs; wrk's report goes to stderr.
load() {
  start "$1"
  taskset -c 1 wrk -t2 -c64 -d1s -s "$work/post.lua" "http://127.0.0.1:$PORT/alice" >/dev/null
  local before after
  before=$(cpu_ticks "$server")
  taskset -c 1 wrk -t2 -c64 -d"$DURATION" -s "$work/post.lua" "http://127.0.0.1:$PORT/alice" >"$work/wrk.out"
  after=$(cpu_ticks "$server")
  stop
  if grep -q 'Non-2xx' "$work/wrk.out"; then
    cat "$work/wrk.out" >&2
    echo "bench: non-2xx answers from $1" >&2
    exit 1
  fi
  awk -v cpu=$((after - before)) -v tck="$tck" -v name="$1" '
    / requests in / { n = $1 }
    /^Requests\/sec:/ { rps = $2 }
    END {
      printf "%s: %.0f req/s, %.2f µs of CPU per request\n", name, rps, cpu / tck * 1e6 / n > "/dev/stderr"
      printf "%.3f\n", cpu / tck * 1e6 / n
    }' "$work/wrk.out"
}

servers=(hyper blackhole nginx)
[ -n "${BASELINE:-}" ] && servers=(hyper blackhole baseline nginx)
# One line per round: µs per request of each server, in the order of $servers.
: >"$work/rounds"
for round in $(seq "$ROUNDS"); do
  order=("${servers[@]}")
  if ((round % 2 == 0)); then
    order=()
    for ((i = ${#servers[@]} - 1; i >= 0; i--)); do order+=("${servers[i]}"); done
  fi
  echo "== round $round/$ROUNDS: ${order[*]}" >&2
  declare -A us=()
  for name in "${order[@]}"; do us[$name]=$(load "$name"); done
  line=""
  for name in "${servers[@]}"; do line+="${us[$name]} "; done
  echo "$line" >>"$work/rounds"
done

# `values A [B]`: column A of every round (1 hyper, 2 blackhole, 3 baseline if any, then nginx), or A / B.
values() { awk -v a="$1" -v b="${2:-0}" '{ print (b ? $a / $b : $a) }' "$work/rounds"; }
median() {
  values "$@" | sort -g |
    awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
each() { values "$@" | awk '{ printf "%s%.2f", (NR > 1 ? ", " : ""), $1 }'; }
nginx_col=${#servers[@]}
vs_hyper=$(median 2 1)

echo "== 50 sequential 25 MiB POSTs to a fresh blackhole" >&2
start blackhole
sleep 0.5
idle_kb=$(rss_kb "$server" VmRSS)
ok=0
for _ in $(seq 50); do
  code=$(taskset -c 1 curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -T "$work/big" "http://127.0.0.1:$PORT/alice")
  if [ "$code" = 200 ]; then ok=$((ok + 1)); fi
done
peak_kb=$(rss_kb "$server" VmHWM)
stop

# `big_posts [TUNABLES]`: prints "answered cpu_seconds peak_kb" for $BIG_POSTS POSTs of 31 MiB, streaming on.
big_posts() {
  GLIBC_TUNABLES=${1:-} taskset -c 0 "$bin" --listen "127.0.0.1:$PORT" --stream-token bench-token >/dev/null 2>"$work/big.log" &
  server=$!
  leader=$!
  pids+=("$server")
  wait_port
  local before after answered
  before=$(cpu_ticks "$server")
  read -r answered _ < <(taskset -c 1 python3 bench/blackhole-abuse.py big-posts "$PORT" "$BIG_POSTS" $((31 * 1024 * 1024)))
  after=$(cpu_ticks "$server")
  echo "$answered $(awk -v t=$((after - before)) -v tck="$tck" 'BEGIN { printf "%.2f", t / tck }') $(rss_kb "$server" VmHWM)"
  stop
}
echo "== $BIG_POSTS POSTs of 31 MiB, streaming on: glibc's defaults, then hugetlb=1, twice" >&2
read -r plain_ok plain_cpu plain_kb < <(big_posts)
read -r huge_ok huge_cpu huge_kb < <(big_posts glibc.malloc.hugetlb=1)
read -r plain_ok2 plain_cpu2 plain_kb2 < <(big_posts)
read -r huge_ok2 huge_cpu2 huge_kb2 < <(big_posts glibc.malloc.hugetlb=1)

verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo MISSED; fi; }
echo "| measure (median of $ROUNDS rounds, wrk -t2 -c64 -d$DURATION, 7.6 KB POSTs) | result | target |"
echo "|---|---|---|"
echo "| bare hyper: CPU per request | $(median 1) µs | |"
echo "| blackhole: CPU per request | $(median 2) µs | |"
[ -n "${BASELINE:-}" ] && echo "| baseline blackhole: CPU per request | $(median 3) µs | |"
echo "| nginx: CPU per request | $(median "$nginx_col") µs | |"
echo "| blackhole / bare hyper (rounds: $(each 2 1)) | ${vs_hyper}× | ≤ 1.05× ($(verdict "$vs_hyper <= 1.05")) |"
[ -n "${BASELINE:-}" ] && echo "| baseline / bare hyper (rounds: $(each 3 1)) | $(median 3 1)× | |"
echo "| blackhole / nginx (rounds: $(each 2 "$nginx_col")) | $(median 2 "$nginx_col")× | |"
echo "| idle RSS | $(mib "$idle_kb") | ≤ 3 MiB ($(verdict "$idle_kb <= 3072")) |"
echo "| 25 MiB POSTs answered 200 | $ok / 50 | 50 ($(verdict "$ok == 50")) |"
echo "| peak RSS over those POSTs | $(mib "$peak_kb") | ≤ 6 MiB ($(verdict "$peak_kb <= 6144")) |"
echo "| binary size (static, stripped) | $(stat -c %s "$bin") bytes | image ≤ 5 MB ($(verdict "$(stat -c %s "$bin") <= 5000000")) |"
echo
echo "| $BIG_POSTS POSTs of 31 MiB, --stream-token, two runs each | answered 200 | server CPU | peak RSS |"
echo "|---|---|---|---|"
echo "| glibc's defaults | $plain_ok, $plain_ok2 | $plain_cpu s, $plain_cpu2 s | $(mib "$plain_kb"), $(mib "$plain_kb2") |"
echo "| GLIBC_TUNABLES=glibc.malloc.hugetlb=1 | $huge_ok, $huge_ok2 | $huge_cpu s, $huge_cpu2 s | $(mib "$huge_kb"), $(mib "$huge_kb2") |"
