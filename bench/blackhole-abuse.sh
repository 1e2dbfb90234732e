#!/usr/bin/env bash
# The blackhole under abuse, with its defaults, on loopback. Each scenario starts a fresh blackhole, runs one
# flood (the clients are bench/blackhole-abuse.py), reads the blackhole's RSS from /proc, and prints a Markdown
# table for docs/benchmarks.md. Arguments pick scenarios; with none, all run (about six minutes).
#
#   bench/blackhole-abuse.sh                      # slow-body long-paths stuck declared many-addresses
#   bench/blackhole-abuse.sh long-paths stuck     # some of them
#
# slow-body       issue 11: an attacker on 127.0.0.2 holds $FLOOD connections (a third each: Content-Length
#                 2 GB, 20 MB, chunked), trickles a byte or a chunk every 5 s on each and reconnects whenever
#                 one is cut, while curl POSTs {} from 127.0.0.1 every 250 ms for $DURATION s. Three runs: the
#                 defaults; --max-connections-per-ip 0 (behind a proxy); and that with every body 20 MB.
# long-paths      issue 24 H1: 4,096 and 16,384 empty POSTs, each to its own 31,000-byte path, over 16 connections; then
#                 16,384 to 1,000-byte paths (short enough to stream, so their names are buffered and counted).
# stuck           issue 24 M2: 100 subscribers that never read, each on its own path (from 127.0.0.2 and .3,
#                 within the per-address cap), then 100 POSTs of 31 MiB,
#                 the Nth to the Nth subscriber's path; and the same POSTs with no subscriber.
# declared        issue 24 M1: four POSTs declaring 32 MiB that send a byte a second (reconnecting when cut),
#                 and meanwhile 20 push-shaped deliveries POSTed to a subscribed path, one every 500 ms, each
#                 timed from its POST to its arrival on the stream.
# many-addresses  issue 24: $SPREAD slow-body connections (all 20 MB, as in slow-body) from 20 addresses,
#                 127.0.0.10 to .29, within the per-address cap, while curl probes from 127.0.0.1 as above.
#
# BLACKHOLE=path runs another binary (an older build, to compare); by default the static release build.
set -euo pipefail
cd "$(dirname "$0")/.."

FLOOD=${FLOOD:-1100}
SPREAD=${SPREAD:-1200}
DURATION=${DURATION:-30}
PORT=${PORT:-18483}
TOKEN=bench-token

# shellcheck source=bench/lib.sh
source bench/lib.sh
require curl python3
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"

bin=${BLACKHOLE:-$(scripts/build-static blackhole)}
py=bench/blackhole-abuse.py
scenarios=("$@")
((${#scenarios[@]})) || scenarios=(slow-body long-paths stuck declared many-addresses)

rss_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
mib() { awk -v kb="$1" 'BEGIN { printf "%.1f MiB", kb / 1024 }'; }

# Starts the blackhole with FLAGS and waits until it answers; sets $bh.
start() {
  "$bin" --listen "127.0.0.1:$PORT" "$@" 2>"$work/blackhole.log" &
  bh=$!
  pids+=("$bh")
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.05; done
  sleep 0.5
}

stop() {
  kill "$bh"
  wait "$bh" 2>/dev/null || true
}

# Starts `blackhole-abuse.py ARGS...` in the background with its output in FILE, and waits for its "ready" line.
start_ready() {
  local file=$1
  shift
  python3 "$py" "$@" >"$file" &
  pids+=("$!")
  last=$!
  for _ in $(seq 600); do grep -qs ready "$file" && return; sleep 0.1; done
  echo "bench: $* never got ready" >&2
  exit 1
}

# Probes with curl from 127.0.0.1 every 250 ms for $DURATION s, sampling RSS; prints
# "probes ok within_1s p50_ms max_ms max_rss_kb".
probe() {
  : >"$work/probes"
  local max_rss=0 end=$((SECONDS + DURATION)) rss
  while ((SECONDS < end)); do
    curl -s -o /dev/null -m 60 -w '%{http_code} %{time_total}\n' -X POST -d '{}' \
      "http://127.0.0.1:$PORT/alice" >>"$work/probes" || echo "000 60" >>"$work/probes"
    rss=$(rss_kb "$bh" VmRSS)
    ((rss > max_rss)) && max_rss=$rss
    sleep 0.25
  done
  sort -k2 -n "$work/probes" | awk -v rss="$max_rss" '{ t[NR] = $2 * 1000; ok += ($1 == 200); fast += ($1 == 200 && $2 <= 1) }
    END { printf "%d %d %d %.1f %.1f %d", NR, ok, fast, t[int((NR + 1) / 2)], t[NR], rss }'
}

# One slow-body flood of KINDS (3: mixed, 1: all 20 MB) from SOURCES (comma-separated) of COUNT connections,
# with FLAGS; prints "probes ok within_1s p50_ms max_ms idle_kb max_rss_kb cuts".
flood_run() {
  local kinds=$1 sources=$2 count=$3
  shift 3
  start "$@"
  local idle
  idle=$(rss_kb "$bh" VmRSS)
  python3 "$py" flood "$PORT" "$count" "$kinds" "$sources" >"$work/cuts" &
  local flood=$!
  pids+=("$flood")
  sleep 2
  local stats
  stats=$(probe)
  kill "$flood"
  wait "$flood" 2>/dev/null || true
  stop
  read -r n ok fast p50 max rss <<<"$stats"
  echo "$n $ok $fast $p50 $max $idle $rss $(cat "$work/cuts")"
}

slow_body() {
  echo "== slow-body: mixed flood with the defaults" >&2
  read -r n1 ok1 _ p50_1 max1 idle1 rss1 cuts1 < <(flood_run 3 127.0.0.2 "$FLOOD")
  echo "== slow-body: mixed flood with --max-connections-per-ip 0" >&2
  read -r n2 ok2 _ p50_2 max2 idle2 rss2 cuts2 < <(flood_run 3 127.0.0.2 "$FLOOD" --max-connections-per-ip 0)
  echo "== slow-body: 20 MB flood with --max-connections-per-ip 0" >&2
  read -r n3 ok3 _ p50_3 max3 idle3 rss3 cuts3 < <(flood_run 1 127.0.0.2 "$FLOOD" --max-connections-per-ip 0)
  echo
  echo "| $FLOOD slow-body connections for ${DURATION} s | mixed, defaults (64 per address) | mixed, \`--max-connections-per-ip 0\` | all 20 MB, \`--max-connections-per-ip 0\` |"
  echo "|---|---|---|---|"
  echo "| probes answered 200 | $ok1 of $n1 | $ok2 of $n2 | $ok3 of $n3 |"
  echo "| probe latency p50 | $p50_1 ms | $p50_2 ms | $p50_3 ms |"
  echo "| probe latency max | $max1 ms | $max2 ms | $max3 ms |"
  echo "| flood connections the server closed | $cuts1 | $cuts2 | $cuts3 |"
  echo "| RSS idle → max under flood | $(mib "$idle1") → $(mib "$rss1") | $(mib "$idle2") → $(mib "$rss2") | $(mib "$idle3") → $(mib "$rss3") |"
}

# The peak against --stream-buffer-total (64 MiB by default) plus 8 MiB.
within() { awk -v kb="$1" 'BEGIN { printf (kb <= 72 * 1024 ? "yes" : "NO") }'; }

long_paths() {
  local rows=()
  for run in "4096 31000" "16384 31000" "16384 1000"; do
    read -r count length <<<"$run"
    echo "== long-paths: $count POSTs to $length-byte paths" >&2
    start --stream-token "$TOKEN"
    local idle
    idle=$(rss_kb "$bh" VmRSS)
    read -r ok secs < <(python3 "$py" long-paths "$PORT" "$count" "$length" 16)
    local peak after
    peak=$(rss_kb "$bh" VmHWM)
    after=$(rss_kb "$bh" VmRSS)
    stop
    rows+=("| $count POSTs, each to its own $length-byte path | $ok of $count | $secs s | $(mib "$idle") → $(mib "$peak") | $(mib "$after") | $(within "$peak") |")
  done
  echo
  echo "| long paths, one address, 16 connections | answered 200 | took | RSS idle → peak | RSS after | peak ≤ total + 8 MiB |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
}

stuck() {
  local rows=()
  for subscribers in 100 0; do
    echo "== stuck: $subscribers subscribers that never read, 100 POSTs of 31 MiB" >&2
    start --stream-token "$TOKEN"
    local idle holder=
    idle=$(rss_kb "$bh" VmRSS)
    if ((subscribers)); then
      # From two addresses: 100 are more than one address's 64 connections.
      start_ready "$work/stuck" stuck "$PORT" "$subscribers" "$TOKEN" 127.0.0.2,127.0.0.3
      holder=$last
    fi
    read -r ok secs < <(python3 "$py" big-posts "$PORT" 100 $((31 * 1024 * 1024)))
    local peak
    peak=$(rss_kb "$bh" VmHWM)
    [ -n "$holder" ] && kill "$holder"
    stop
    rows+=("| $subscribers | $ok of 100 | $secs s | $(mib "$idle") → $(mib "$peak") | $(within "$peak") |")
  done
  echo
  echo "| subscribers that never read, then 100 POSTs of 31 MiB | answered 200 | took | RSS idle → peak | peak ≤ total + 8 MiB |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
}

declared() {
  echo "== declared: four slow POSTs declaring 32 MiB, 20 deliveries to a subscribed path" >&2
  start --stream-token "$TOKEN"
  start_ready "$work/declared" declared "$PORT" 4
  local holder=$last
  read -r ok arrived p50 max < <(python3 "$py" stream-probe "$PORT" "$TOKEN" 20 0.5)
  kill "$holder"
  wait "$holder" 2>/dev/null || true
  local peak
  peak=$(rss_kb "$bh" VmHWM)
  stop
  echo
  echo "| four POSTs declaring 32 MiB held open, 20 deliveries | result |"
  echo "|---|---|"
  echo "| deliveries answered 200 | $ok of 20 |"
  echo "| deliveries that arrived via the stream | $arrived of 20 |"
  echo "| POST to stream arrival, p50 | $p50 ms |"
  echo "| POST to stream arrival, max | $max ms |"
  echo "| slow POSTs the server closed (each reconnected) | $(tail -1 "$work/declared") |"
  echo "| peak RSS | $(mib "$peak") |"
}

many_addresses() {
  echo "== many-addresses: $SPREAD slow-body connections from 20 addresses" >&2
  local sources
  sources=$(seq -s, -f '127.0.0.%g' 10 29)
  read -r n ok fast p50 max idle rss cuts < <(flood_run 1 "$sources" "$SPREAD")
  echo
  echo "| $SPREAD slow-body connections from 20 addresses for ${DURATION} s, defaults | result |"
  echo "|---|---|"
  echo "| probes from another address answered 200 | $ok of $n |"
  echo "| answered 200 within 1 s | $fast of $n |"
  echo "| probe latency p50 | $p50 ms |"
  echo "| probe latency max | $max ms |"
  echo "| flood connections the server closed | $cuts |"
  echo "| RSS idle → max under flood | $(mib "$idle") → $(mib "$rss") |"
}

for scenario in "${scenarios[@]}"; do
  case "$scenario" in
    slow-body) slow_body ;;
    long-paths) long_paths ;;
    stuck) stuck ;;
    declared) declared ;;
    many-addresses) many_addresses ;;
    *) echo "bench: no scenario $scenario; use slow-body long-paths stuck declared many-addresses" >&2; exit 2 ;;
  esac
done
