#!/usr/bin/env bash
# Fan-out with one target down for DOWN seconds (default 20): `hookfwd dev --to A --to B` against the
# `fake-github` binary; A's port refuses connections while N deliveries (default 5) are emitted, one every
# DOWN/N seconds; then a handler starts on A's port. Measures, per run: the slowest delivery at B (emit →
# arrival) while A was down, how long after A listens it has them all, and whether A got them in B's order.
# Prints a Markdown table for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
require python3 cargo curl

down=${DOWN:-20}
count=${N:-5}
runs=${RUNS:-3}
cargo build --quiet --bin hookfwd --bin fake-github
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
hookfwd=$target_dir/debug/hookfwd
token=ghp_benchFanoutToken0000000000000000001

# handler PORT: a handler that prints "listening T" once, then "GUID T" for each POST.
handler() {
  python3 - "$1" <<'PY'
import http.server, sys, time
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        print(f"{self.headers['x-github-delivery']} {time.time()}", flush=True)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print(f"listening {time.time()}", flush=True)
server.serve_forever()
PY
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# measure: writes "slowest at B (s)|A back → all (s)|A in order" to $work/result.
measure() {
  local run=$work/run-$RANDOM
  mkdir -p "$run"
  "$target_dir/debug/fake-github" --token "$token" --repo bench-org/fanout --no-ping-on-create \
    --hook "bench-org/fanout=http://127.0.0.1:9/bench" >"$run/fake" 2>"$run/fake.err" &
  pids+=($!)
  until [ -f "$run/fake" ] && [ "$(wc -l <"$run/fake")" -ge 2 ]; do sleep 0.05; done
  local api port_a port_b
  api=$(head -n1 "$run/fake")
  port_a=$(free_port)
  port_b=$(free_port)
  handler "$port_b" >"$run/b" 2>"$run/b.err" &
  pids+=($!)
  GITHUB_TOKEN=$token HOOKFWD_SECRET=bench "$hookfwd" dev --repo bench-org/fanout \
    --to "127.0.0.1:$port_a/webhook" --to "127.0.0.1:$port_b/webhook" \
    --hook-url http://127.0.0.1:9/bench --api-url "$api" --interval 1s --no-inspect --json \
    --state-dir "$run/state" >"$run/feed" 2>"$run/err" &
  pids+=($!)
  until grep -qs '"type":"ready"' "$run/feed"; do sleep 0.05; done
  local gap
  gap=$(python3 -c "print($down / $count)")
  for _ in $(seq "$count"); do
    python3 -c 'import time; print(f"emitted {time.time()}")' >>"$run/emitted"
    curl -fsS -X POST "${api}_fake/emit" -d '{"owner":"bench-org/fanout","event":"issues"}' >/dev/null
    sleep "$gap"
  done
  handler "$port_a" >"$run/a" 2>"$run/a.err" &
  pids+=($!)
  until [ "$(grep -vc listening "$run/a" 2>/dev/null)" -ge "$count" ]; do sleep 0.05; done
  python3 - "$run/emitted" "$run/b" "$run/a" >"$work/result" <<'PY'
import sys
emitted = [float(line.split()[1]) for line in open(sys.argv[1])]
def arrivals(path):
    lines = [line.split() for line in open(path)]
    listening = next(float(t) for name, t in lines if name == "listening")
    return listening, [(guid, float(t)) for guid, t in lines if guid != "listening"]
_, b = arrivals(sys.argv[2])
listening_a, a = arrivals(sys.argv[3])
slowest_b = max(t - e for (_, t), e in zip(b, emitted))
print(f"{slowest_b:.2f}|{a[-1][1] - listening_a:.2f}|{'yes' if [g for g, _ in a] == [g for g, _ in b] else 'no'}")
PY
}

echo "| target A down for | deliveries | slowest at B while A down (s) | A back → all of them (s) | A in order |"
echo "|---|---|---|---|---|"
for _ in $(seq "$runs"); do
  measure
  IFS='|' read -r slowest back ordered <"$work/result"
  echo "| ${down} s | $count | $slowest | $back | $ordered |"
done
