#!/usr/bin/env bash
# bench/gateway.sh — what `retort gateway` adds in front of an upstream, loopback only. Not
# part of `make test`.
#
# The upstream is bench/stub_upstream.mjs (Node, answers at once with a fixed completion and
# usage), so generation time does not hide what a proxy adds. The same load generator
# (bench/serve_bench.c) then calls, in turn:
#   direct   the upstream itself;
#   nginx    nginx, when installed (apt-get install nginx-light; not a test dependency, as
#            installing it starts a system service) as a plain reverse proxy: keep-alive pool,
#            proxy_buffering off (streams pass through) — a proxy that does no accounting;
#   gateway  retort gateway: key, account, limits, the ledger on SQLite (a row committed per
#            request before the answer), guard off;
#   gateway+guard  the same with --guard-shadow (the detector on every request, recording what
#            it would do: enforcing would suspend this one-account flood; no embedding model).
# For each: max_tokens=1 non-streaming and streaming, one connection (latency p50/p99), then 64
# connections (requests/s). "added" = the proxy's percentile minus direct's; the gateway's
# Server-Timing also gives its own time per request (total - upstream wait).
# Usage: bench/gateway.sh [--requests N (latency runs, default 2000)] [--rps-requests N (per
#        connection at 64, default 100)]      Prints JSON lines, then a table.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CC=${CC:-gcc}
N=2000
NR=100
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) N=$2; shift 2 ;;
    --rps-requests) NR=$2; shift 2 ;;
    *) echo "usage: bench/gateway.sh [--requests N] [--rps-requests N]" >&2; exit 2 ;;
  esac
done
[ -x "$BUILD/retort" ] || { echo "error: $BUILD/retort missing; run make first" >&2; exit 1; }
command -v node >/dev/null || { echo "error: node is needed for the stub upstream" >&2; exit 1; }
mkdir -p "$BUILD/bench"
$CC -std=c17 -D_GNU_SOURCE -O2 -Wall -Wextra -o "$BUILD/bench/serve_bench" bench/serve_bench.c -lcurl -lm -lpthread
R=$BUILD/retort
B=$BUILD/bench/serve_bench
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for i in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "no answer from $1" >&2; exit 1; }

UP=$(free_port)
node bench/stub_upstream.mjs --port "$UP" > /dev/null 2> "$tmp/stub.log" &
pids+=($!)
wait_http "http://127.0.0.1:$UP/v1/models"

KEY=$($R keys create --db "$tmp/g.db" --name bench --rpm 100000000 --tpm 1000000000 2>/dev/null)
start_gateway() { # name, extra flags...; sets URL
  local name=$1; shift
  cp "$tmp/g.db" "$tmp/$name.db"
  $R gateway --upstream "http://127.0.0.1:$UP/v1" --db "$tmp/$name.db" --port 0 --port-file "$tmp/$name.port" \
    --max-conn-per-ip 256 --keyless-rpm 0 "$@" > /dev/null 2> "$tmp/$name.log" &
  pids+=($!)
  for i in $(seq 1 200); do [ -s "$tmp/$name.port" ] && break; sleep 0.05; done
  [ -s "$tmp/$name.port" ] || { cat "$tmp/$name.log" >&2; exit 1; }
  URL="http://127.0.0.1:$(cat "$tmp/$name.port")"
}
start_gateway gw
GW=$URL
start_gateway gwg --guard-shadow
GWG=$URL

NGINX_URL=""
if command -v nginx >/dev/null; then
  NP=$(free_port)
  mkdir -p "$tmp/nginx"
  cat > "$tmp/nginx/nginx.conf" <<EOF
worker_processes 2;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  upstream up { server 127.0.0.1:$UP; keepalive 128; }
  server {
    listen 127.0.0.1:$NP;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
  nginx -c "$tmp/nginx/nginx.conf" -g 'daemon off;' > /dev/null 2> "$tmp/nginx.log" &
  pids+=($!)
  NGINX_URL="http://127.0.0.1:$NP"
  wait_http "$NGINX_URL/v1/models"
fi

echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
run() { # label url conc reqs stream
  $B --url "$2" --key "$KEY" --model stub --concurrency "$3" --requests "$4" --max-tokens 1 --stream "$5" --label "$1"
}
out=$tmp/results.jsonl
: > "$out"
targets=("direct http://127.0.0.1:$UP")
[ -n "$NGINX_URL" ] && targets+=("nginx $NGINX_URL")
targets+=("gateway $GW" "gateway+guard $GWG")
for t in "${targets[@]}"; do
  set -- $t
  run "$1 c1" "$2" 1 200 0 > /dev/null # warm the connections
  run "$1 c1" "$2" 1 "$N" 0 | tee -a "$out"
  run "$1 c1 stream" "$2" 1 "$N" 1 | tee -a "$out"
  run "$1 c64" "$2" 64 "$NR" 0 | tee -a "$out"
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
rows=$(/usr/bin/python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from usage").fetchone()[0])' "$tmp/gw.db")
echo "# gateway ledger rows: $rows"

/usr/bin/python3 - "$out" <<'PY'
import json, sys
r = {j["label"]: j for j in map(json.loads, open(sys.argv[1]))}
d = r["direct c1"], r["direct c1 stream"], r["direct c64"]
print("%-15s %9s %9s %9s %9s %11s %11s %9s %8s %12s" % ("target", "p50 ms", "p99 ms", "s.p50", "s.p99",
      "added p50", "added p99", "req/s@64", "x direct", "own p50/p99"))
for name in ["direct", "nginx", "gateway", "gateway+guard"]:
    if name + " c1" not in r: continue
    a, s, c = r[name + " c1"], r[name + " c1 stream"], r[name + " c64"]
    own = "%.3f/%.3f" % (a["added_server_p50_ms"], a["added_server_p99_ms"]) if a.get("added_server_p50_ms") is not None else "-"
    print("%-15s %9.3f %9.3f %9.3f %9.3f %5.3f/%-5.3f %5.3f/%-5.3f %9.0f %8.2f %12s" % (
        name, a["latency_p50_ms"], a["latency_p99_ms"], s["latency_p50_ms"], s["latency_p99_ms"],
        a["latency_p50_ms"] - d[0]["latency_p50_ms"], s["latency_p50_ms"] - d[1]["latency_p50_ms"],
        a["latency_p99_ms"] - d[0]["latency_p99_ms"], s["latency_p99_ms"] - d[1]["latency_p99_ms"],
        c["requests_per_s"], c["requests_per_s"] / d[2]["requests_per_s"], own))
print("(added p50/p99: non-streaming/streaming, ms over direct; own: the gateway's Server-Timing total - upstream)")
if "nginx c64" in r:
    print("gateway / nginx requests/s at 64 connections: %.2f" % (r["gateway c64"]["requests_per_s"] / r["nginx c64"]["requests_per_s"]))
PY
