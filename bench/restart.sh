#!/usr/bin/env bash
# Measures how soon a delivery reaches a handler that comes back after being down (its port refusing
# connections) for DOWN seconds (default 20): `hookfwd dev` against the `fake-github` binary, one delivery
# emitted while the handler is down, then a handler started on its port; the time from that handler
# listening to the delivery's arrival, and the retries the feed reported meanwhile. Target: under 2 s.
# BASELINE=path/to/an/older/hookfwd measures it too, in the same run. Prints a Markdown table for
# docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
require python3 cargo curl

down=${DOWN:-20}
cargo build --quiet --bin hookfwd --bin fake-github
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
hookfwd=$target_dir/debug/hookfwd
token=ghp_benchRestartToken000000000000000001

# measure BIN: writes "seconds|retries|longest wait (ms)" for one handler restart to $work/result (not
# printed: in a command substitution the processes it starts would escape the cleanup).
measure() {
  local bin=$1 run=$work/run-$RANDOM
  mkdir -p "$run"
  "$target_dir/debug/fake-github" --token "$token" --repo bench-org/restart --no-ping-on-create \
    --hook "bench-org/restart=http://127.0.0.1:9/bench" >"$run/fake" 2>"$run/fake.err" &
  pids+=($!)
  until [ -f "$run/fake" ] && [ "$(wc -l <"$run/fake")" -ge 2 ]; do sleep 0.05; done
  local api port
  api=$(head -n1 "$run/fake")
  # A port nothing listens on until the handler comes back.
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  GITHUB_TOKEN=$token HOOKFWD_SECRET=bench "$bin" dev --repo bench-org/restart --to "127.0.0.1:$port/webhook" \
    --hook-url http://127.0.0.1:9/bench --api-url "$api" --interval 1s --no-inspect --json \
    --state-dir "$run/state" >"$run/feed" 2>"$run/err" &
  pids+=($!)
  until grep -qs '"type":"ready"' "$run/feed"; do sleep 0.05; done
  curl -fsS -X POST "${api}_fake/emit" -d '{"owner":"bench-org/restart","event":"issues"}' >/dev/null
  sleep "$down"
  # The handler comes back: the time it listens, then the time the first POST arrives.
  python3 - "$port" >"$run/handler" 2>"$run/handler.err" <<'PY' &
import http.server, sys, time
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        print(f"arrived {time.time()}", flush=True)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print(f"listening {time.time()}", flush=True)
server.handle_request()
PY
  pids+=($!)
  until grep -qs arrived "$run/handler"; do sleep 0.05; done
  python3 - "$run/handler" "$run/feed" >"$work/result" <<'PY'
import json, sys
times = dict(line.split() for line in open(sys.argv[1]))
retries = [json.loads(line) for line in open(sys.argv[2]) if '"type":"retry"' in line]
longest = max((line.get("wait_ms", 0) for line in retries), default=0)
print(f"{float(times['arrived']) - float(times['listening']):.2f}|{len(retries)}|{longest}")
PY
}

echo "| hookfwd | handler down for | back → delivery (s) | retries while down | longest wait (ms) |"
echo "|---|---|---|---|---|"
for bin in "$hookfwd" ${BASELINE:+"$BASELINE"}; do
  measure "$bin"
  IFS='|' read -r seconds retries longest <"$work/result"
  name=this
  [ "$bin" = "$hookfwd" ] || name=baseline
  echo "| $name | ${down} s | $seconds | $retries | $longest |"
done
