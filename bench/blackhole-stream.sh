#!/usr/bin/env bash
# Measures what push streaming costs the blackhole, against the same binary without streaming, in one run.
#
# - CPU per delivery: utime+stime from /proc/<pid>/stat before and after $POSTS sequential
#   keep-alive POSTs of a ~7.6 KB GitHub-like body, without --stream-token, then with it and one
#   subscriber reading the stream (which must receive every delivery).
# - RSS: idle without streaming, idle with streaming, and with 100 idle subscribers.
# The blackhole is pinned to CPU 0 and the clients to CPU 1. Prints a Markdown table for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

POSTS=${POSTS:-20000}
PORT=${PORT:-18482}
TOKEN=bench-stream-token

# shellcheck source=bench/lib.sh
source bench/lib.sh
require taskset curl python3

bin=$(scripts/build-static blackhole)

# The clients: `post N` sends N POSTs on one keep-alive connection; `subscribe K PATH` holds K
# streams open and, on SIGTERM, prints how many deliveries and gaps the first one received.
cat >"$work/client.py" <<'PY'
import json, signal, socket, sys, threading
port = int(sys.argv[1])
def connect():
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s
if sys.argv[2] == "post":
    n = int(sys.argv[3])
    commits = [{"id": f"{i:040x}", "message": f"Commit {i}: tidy the relay and its tests",
                "timestamp": "2026-01-01T00:00:00Z",
                "author": {"name": "Alice", "email": "alice@example.com", "username": "alice"},
                "added": [], "removed": [], "modified": [f"crates/relay/src/file{i}.rs"]} for i in range(40)]
    body = {"ref": "refs/heads/main", "repository": {"id": 1, "full_name": "acme/widgets"}, "commits": commits}
    while len(json.dumps(body)) > 7600:
        commits.pop()
    body = json.dumps(body).encode()
    head = (f"POST /alice HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n"
            f"X-GitHub-Delivery: 72d3162e-cc78-11e3-81ab-4c9367dc0958\r\nUser-Agent: GitHub-Hookshot/bench\r\n"
            f"X-Hub-Signature-256: sha256={'0' * 64}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    s = connect()
    f = s.makefile("rb")
    ok = 0
    for _ in range(n):
        s.sendall(head + body)
        status = f.readline()
        length = 0
        while (line := f.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        f.read(length)
        ok += status.startswith(b"HTTP/1.1 200")
    print(ok)
else:
    k, path = int(sys.argv[3]), sys.argv[4]
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])  # so that sigwait, not death, takes it
    counts = {"delivery": 0, "gap": 0}
    socks = []
    for _ in range(k):
        s = connect()
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nAccept: text/event-stream\r\n"
                  f"Authorization: Bearer {sys.argv[5]}\r\n\r\n".encode())
        socks.append(s)
    def read_first():
        for line in socks[0].makefile("rb"):
            if line.startswith(b"event: "):
                kind = line[7:].strip().decode()
                counts[kind] = counts.get(kind, 0) + 1
    threading.Thread(target=read_first, daemon=True).start()
    print("ready", flush=True)
    signal.sigwait([signal.SIGTERM])
    print(counts["delivery"], counts["gap"], flush=True)
PY

rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
mib() { awk -v kb="$1" 'BEGIN { printf "%.2f MiB", kb / 1024 }'; }
start() {
  taskset -c 0 "$bin" --listen "127.0.0.1:$PORT" "$@" 2>"$work/blackhole.log" &
  bh_pid=$!
  pids+=("$bh_pid")
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/" && { sleep 0.5; return 0; }
    sleep 0.05
  done
  echo "bench: the blackhole did not start" >&2
  exit 1
}
# Prints "ticks ok" for $POSTS POSTs.
load() {
  local before after ok
  before=$(cpu_ticks "$bh_pid")
  ok=$(taskset -c 1 python3 "$work/client.py" "$PORT" post "$POSTS")
  after=$(cpu_ticks "$bh_pid")
  echo "$((after - before)) $ok"
}
# Starts K subscribers on PATH; sets sub_pid once they are connected.
subscribe() {
  : >"$work/sub.out"
  taskset -c 1 python3 "$work/client.py" "$PORT" subscribe "$1" "$2" "$TOKEN" >"$work/sub.out" &
  sub_pid=$!
  pids+=("$sub_pid")
  until grep -q ready "$work/sub.out"; do sleep 0.05; done
  sleep 1
}
# Stops the subscribers; then the last line of sub.out is what the first one received: "deliveries gaps".
unsubscribe() {
  kill "$sub_pid"
  wait "$sub_pid" 2>/dev/null || true
}

hz=$(getconf CLK_TCK)

echo "== without streaming" >&2
start
idle_plain_kb=$(rss_kb "$bh_pid")
read -r plain_ticks plain_ok < <(load)
kill "$bh_pid"; wait "$bh_pid" 2>/dev/null || true

echo "== with streaming" >&2
start --stream-token "$TOKEN"
idle_stream_kb=$(rss_kb "$bh_pid")
subscribe 100 /idle
subs_kb=$(rss_kb "$bh_pid")
unsubscribe
subscribe 1 /alice
read -r stream_ticks stream_ok < <(load)
sleep 1
unsubscribe
read -r received gaps < <(tail -n 1 "$work/sub.out")
hwm_kb=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$bh_pid/status")
kill "$bh_pid"

us() { awk -v t="$1" -v n="$POSTS" -v hz="$hz" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }'; }
plain_us=$(us "$plain_ticks")
stream_us=$(us "$stream_ticks")
ratio=$(awk -v a="$stream_ticks" -v b="$plain_ticks" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo MISSED; fi; }
echo "| measure | result | target |"
echo "|---|---|---|"
echo "| POSTs answered 200, without / with streaming | $plain_ok / $stream_ok of $POSTS | all |"
echo "| deliveries the subscriber received (gaps) | $received of $POSTS ($gaps) | all |"
echo "| CPU per POST without streaming | $plain_us µs | |"
echo "| CPU per pushed delivery (1 subscriber) | $stream_us µs | |"
echo "| pushed / plain | ${ratio}× | |"
echo "| idle RSS without streaming | $(mib "$idle_plain_kb") | ≤ 3 MiB ($(verdict "$idle_plain_kb <= 3072")) |"
echo "| idle RSS with streaming on | $(mib "$idle_stream_kb") | ≤ 3 MiB ($(verdict "$idle_stream_kb <= 3072")) |"
echo "| RSS with 100 idle subscribers | $(mib "$subs_kb") | ≤ 8 MiB ($(verdict "$subs_kb <= 8192")) |"
echo "| peak RSS over the streaming run | $(mib "$hwm_kb") | |"
