#!/usr/bin/env bash
# Benchmarks push mode with high availability on both sides: two release `hookfwd forward` replicas
# sharing one ledger in a real redis-server, both subscribed to the blackhole, against the in-process
# fake GitHub with 20 ms of added API latency, on 127.0.0.1 only. With HA_BLACKHOLES=2 (the default)
# the hook URL is nginx alternating two `blackhole --redis` instances (round robin) that share the
# stream through a second redis-server (so that an outage can kill it alone); HA_BLACKHOLES=1 uses
# one blackhole. Single events (latency from the fake's POST to the handler), a burst of 2,000,
# then one safety poll (API calls and GETs per delivery). About a minute and a half.
# HA_PHASES=outages instead kills, under steady traffic, one blackhole (-9, started again), one
# replica (-9), then the blackholes' Redis (started again on its port); about two minutes.
# HA_PHASES=steady,outages runs both.
# Prints a Markdown table, and whether each target is met, for docs/benchmarks.md.
# Knobs: HA_EVENTS, HA_BURST, HA_BLACKHOLES, HA_PHASES (see tests/benches/ha.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

require redis-server
export HA_BLACKHOLES=${HA_BLACKHOLES:-2}
if [ "$HA_BLACKHOLES" = 2 ]; then
  require nginx python3
  # Free ports for nginx and the two blackholes: bound to port 0, then let go.
  read -r front one two < <(python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  upstream blackholes { server 127.0.0.1:$one; server 127.0.0.1:$two; keepalive 64; }
  server {
    listen 127.0.0.1:$front;
    location / {
      proxy_pass http://blackholes;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 1h;
    }
  }
}
CONF
  nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' &
  pids+=($!)
  export HA_FRONT="http://127.0.0.1:$front" HA_BACKENDS="127.0.0.1:$one,127.0.0.1:$two"
fi
cargo build --release --bin hookfwd
cargo build --release -p hookfwd-blackhole --features redis
target=${CARGO_TARGET_DIR:-$PWD/target}
HOOKFWD_BIN=$target/release/hookfwd BLACKHOLE_BIN=$target/release/blackhole \
  cargo bench -p hookfwd-e2e --bench ha
if [ "$HA_BLACKHOLES" = 2 ]; then
  # What nginx did with POSTs aimed at a blackhole that was down (HA_PHASES=outages).
  echo
  echo "nginx: $(grep -c 'connect() failed' "$work/nginx/error.log" || true) refused connections," \
    "$(grep -c 'upstream prematurely closed\|reset by peer' "$work/nginx/error.log" || true) upstream connections cut," \
    "$(grep -c 'no live upstreams' "$work/nginx/error.log" || true) requests with no live upstream"
fi
