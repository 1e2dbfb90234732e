#!/usr/bin/env bash
# The slow-body flood of issue 11 against the blackhole, with its defaults, on loopback.
#
# An attacker on 127.0.0.2 holds $FLOOD connections (a third each: Content-Length 2 GB, Content-Length
# 20 MB, chunked), trickles one byte or one chunk every 5 s on each, and reconnects at once whenever
# the server cuts one. Meanwhile a client on 127.0.0.1 POSTs a small body every 250 ms on a fresh
# connection (curl), and the blackhole's RSS is sampled. Run three times: with the default per-address
# cap; with --max-connections-per-ip 0 (a host behind a proxy, where only the body deadline helps);
# and so again with every flood connection declaring 20 MB, within the limit, the worst case there.
# Prints a Markdown table for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

FLOOD=${FLOOD:-1100}
DURATION=${DURATION:-30}
PORT=${PORT:-18483}

# shellcheck source=bench/lib.sh
source bench/lib.sh
require curl python3
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"

bin=$(scripts/build-static blackhole)

cat >"$work/flood.py" <<'PY'
import asyncio, os, signal, sys
port, count, kinds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
heads = [b"POST /flood HTTP/1.1\r\nHost: b\r\nContent-Length: 20000000\r\n\r\n",
         b"POST /flood HTTP/1.1\r\nHost: b\r\nContent-Length: 2000000000\r\n\r\n",
         b"POST /flood HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n"][:kinds]
trickles = [b"x", b"x", b"1\r\nx\r\n"][:kinds]
cut = 0
async def attacker(i):
    global cut
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
            writer.write(heads[i % kinds])
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(512), 5)
                    if not data:
                        break
                except asyncio.TimeoutError:
                    writer.write(trickles[i % kinds])
                    await writer.drain()
            writer.close()
        except OSError:
            pass
        cut += 1
        await asyncio.sleep(0.1)
async def main():
    for i in range(count):
        asyncio.get_running_loop().create_task(attacker(i))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    print(cut, flush=True)
    os._exit(0)  # cancelling a thousand tasks mid-wait_for can hang asyncio's shutdown
asyncio.run(main())
PY

rss_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
mib() { awk -v kb="$1" 'BEGIN { printf "%.1f MiB", kb / 1024 }'; }

# Runs one flood of KINDS (3: mixed, 1: all within the limit) with FLAGS; prints
# "probes ok p50_ms max_ms idle_kb max_rss_kb cuts".
run() {
  local kinds=$1
  shift
  "$bin" --listen "127.0.0.1:$PORT" "$@" 2>"$work/blackhole.log" &
  local bh=$!
  pids+=("$bh")
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.05; done
  sleep 0.5
  local idle
  idle=$(rss_kb "$bh" VmRSS)
  python3 "$work/flood.py" "$PORT" "$FLOOD" "$kinds" >"$work/cuts" &
  local flood=$!
  pids+=("$flood")
  sleep 2
  : >"$work/probes"
  local max_rss=0 end=$((SECONDS + DURATION))
  while ((SECONDS < end)); do
    curl -s -o /dev/null -m 60 -w '%{http_code} %{time_total}\n' -X POST -d '{}' \
      "http://127.0.0.1:$PORT/alice" >>"$work/probes" || echo "000 60" >>"$work/probes"
    local rss
    rss=$(rss_kb "$bh" VmRSS)
    ((rss > max_rss)) && max_rss=$rss
    sleep 0.25
  done
  kill "$flood"
  wait "$flood" 2>/dev/null || true
  kill "$bh"
  wait "$bh" 2>/dev/null || true
  local stats
  stats=$(sort -k2 -n "$work/probes" | awk '{ t[NR] = $2 * 1000; ok += ($1 == 200) }
    END { printf "%d %d %.1f %.1f", NR, ok, t[int((NR + 1) / 2)], t[NR] }')
  echo "$stats $idle $max_rss $(cat "$work/cuts")"
}

echo "== mixed flood with the defaults" >&2
read -r n1 ok1 p50_1 max1 idle1 rss1 cuts1 < <(run 3)
echo "== mixed flood with --max-connections-per-ip 0" >&2
read -r n2 ok2 p50_2 max2 idle2 rss2 cuts2 < <(run 3 --max-connections-per-ip 0)
echo "== 20 MB flood with --max-connections-per-ip 0" >&2
read -r n3 ok3 p50_3 max3 idle3 rss3 cuts3 < <(run 1 --max-connections-per-ip 0)

echo "| $FLOOD slow-body connections for ${DURATION} s | mixed, defaults (64 per address) | mixed, \`--max-connections-per-ip 0\` | all 20 MB, \`--max-connections-per-ip 0\` |"
echo "|---|---|---|---|"
echo "| probes answered 200 | $ok1 of $n1 | $ok2 of $n2 | $ok3 of $n3 |"
echo "| probe latency p50 | $p50_1 ms | $p50_2 ms | $p50_3 ms |"
echo "| probe latency max | $max1 ms | $max2 ms | $max3 ms |"
echo "| flood connections the server closed | $cuts1 | $cuts2 | $cuts3 |"
echo "| RSS idle → max under flood | $(mib "$idle1") → $(mib "$rss1") | $(mib "$idle2") → $(mib "$rss2") | $(mib "$idle3") → $(mib "$rss3") |"
