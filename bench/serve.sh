#!/usr/bin/env bash
# bench/serve.sh — serving throughput and gateway overhead, loopback only. Not part of
# `make test`. Needs `make` and the corpus (`make corpus`).
#
#  1. a model: $MODEL if set, else the default `retort train` shape (dim 256, 6 layers,
#     ffn 704, vocab 2048, ctx 256) trained for a few steps on 1 MB of the corpus — the
#     weights' quality does not matter for speed;
#  2. `retort serve --max-batch 16` on a free port, a key with no limits;
#  3. bench/serve_bench.c: aggregate completion tokens/s with 1, 4 and 16 concurrent
#     streams (max_tokens 64), p50/p99 time to first token; the floor: 16 streams give at
#     least 4x the single-stream aggregate (exit 1 otherwise);
#  4. gateway overhead alone: max_tokens=1, non-streaming, ledger on — requests/s and
#     the p50/p99 latency added outside the engine (client latency minus the engine time the
#     server reports in Server-Timing), next to GET /health (the HTTP floor);
#  5. when tests/node has node-llama-cpp (cd tests/node && npm ci): the same streams through
#     llama.cpp's own batching engine on the same GGUF (bench/serve_llamacpp.mjs).
# Usage: bench/serve.sh [--threads N] [--requests R]   (results: JSON lines + a table)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CC=${CC:-gcc}
THREADS=2
REQS=8
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS=$2; shift 2 ;;
    --requests) REQS=$2; shift 2 ;;
    *) echo "usage: bench/serve.sh [--threads N] [--requests R]" >&2; exit 2 ;;
  esac
done
[ -x "$BUILD/retort" ] || { echo "error: $BUILD/retort missing; run make first" >&2; exit 1; }
mkdir -p "$BUILD/bench"
$CC -std=c17 -D_GNU_SOURCE -O2 -Wall -Wextra -o "$BUILD/bench/serve_bench" bench/serve_bench.c -lcurl -lm -lpthread
R=$BUILD/retort
B=$BUILD/bench/serve_bench
tmp=$(mktemp -d)
srv=""
cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

if [ -n "${MODEL:-}" ]; then
  M=$MODEL
else
  [ -f "$BUILD/data/kjv.txt" ] || { echo "error: run make corpus first" >&2; exit 1; }
  M=$BUILD/bench/serve_model.gguf
  if [ ! -f "$M" ]; then
    head -c 1000000 "$BUILD/data/kjv.txt" > "$tmp/text.txt"
    echo "training a benchmark model (default shape, 5 steps) ..." >&2
    $R train --data "$tmp/text.txt" --steps 5 --eval-every 0 --save-every 0 --out "$M" --quiet --threads "$THREADS" 2> "$tmp/train.log"
  fi
fi
$R info "$M" | sed -n '1,9p' >&2
KEY=$($R keys create --db "$tmp/g.db" --name bench 2>/dev/null)
$R serve --model "$M" --model-name bench --db "$tmp/g.db" --port 0 --port-file "$tmp/port" --threads "$THREADS" \
  --max-batch 16 --max-queue 256 2> "$tmp/serve.log" &
srv=$!
for i in $(seq 1 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
URL="http://127.0.0.1:$(cat "$tmp/port")"
run() { $B --url "$URL" --key "$KEY" --model bench "$@"; }

run --concurrency 2 --requests 2 --max-tokens 8 --label warmup > /dev/null
out=$tmp/results.jsonl
for c in 1 4 16; do
  run --concurrency $c --requests "$REQS" --max-tokens 64 --stream 1 --label "streams_$c" | tee -a "$out"
done
run --concurrency 1 --requests 200 --max-tokens 1 --stream 0 --label overhead_c1 | tee -a "$out"
run --concurrency 8 --requests 100 --max-tokens 1 --stream 0 --label overhead_c8 | tee -a "$out"
# the HTTP floor: GET /health through the same client (no key, no engine, no ledger)
python3 - "$URL" <<'PY' | tee -a "$out"
import json, sys, time, urllib.request
url = sys.argv[1] + "/health"
lat = []
t0 = time.perf_counter()
for _ in range(300):
    t = time.perf_counter(); urllib.request.urlopen(url).read(); lat.append(time.perf_counter() - t)
dt = time.perf_counter() - t0
lat.sort()
print(json.dumps({"label": "health_c1", "requests_per_s": round(300 / dt, 1),
                  "latency_p50_ms": round(lat[149] * 1e3, 3), "latency_p99_ms": round(lat[296] * 1e3, 3)}))
PY
kill -TERM "$srv"; wait "$srv" || true; srv=""
# the peer: llama.cpp's batching engine (node-llama-cpp's prebuilt llama.cpp, no HTTP), same GGUF
if [ -d tests/node/node_modules/node-llama-cpp ] && command -v node >/dev/null; then
  node bench/serve_llamacpp.mjs "$M" --threads "$THREADS" --requests "$REQS" --max-tokens 64 | tee -a "$out" || true
else
  echo "(llama.cpp peer skipped: cd tests/node && npm ci)" >&2
fi
python3 - "$out" <<'PY'
import json, sys
rows = {}
for l in open(sys.argv[1]):
    j = json.loads(l); rows[j["label"]] = j
print()
print("%-20s %9s %9s %9s %9s %10s %10s %11s %11s" % ("run", "tok/s", "req/s", "TTFT p50", "TTFT p99", "added p50",
      "added p99", "server p99", "ledger p99"))
for k in ["streams_1", "streams_4", "streams_16", "llamacpp_streams_1", "llamacpp_streams_4", "llamacpp_streams_16",
          "overhead_c1", "overhead_c8", "health_c1"]:
    if k not in rows: continue
    j = rows.get(k, {})
    f = lambda x: "-" if j.get(x) is None else ("%.1f" % j[x] if isinstance(j[x], float) else str(j[x]))
    print("%-20s %9s %9s %9s %9s %10s %10s %11s %11s" % (k, f("tokens_per_s"), f("requests_per_s"), f("ttft_p50_ms"),
          f("ttft_p99_ms"), f("added_p50_ms"), f("added_p99_ms"), f("added_server_p99_ms"), f("ledger_p99_ms")))
print("(ms; added = latency outside the engine and its queue, as the client sees it; server = the same inside the server)")
if "llamacpp_streams_16" in rows:
    print("retort / llama.cpp aggregate tok/s: 1 stream %.2fx, 16 streams %.2fx" % (
        rows["streams_1"]["tokens_per_s"] / rows["llamacpp_streams_1"]["tokens_per_s"],
        rows["streams_16"]["tokens_per_s"] / rows["llamacpp_streams_16"]["tokens_per_s"]))
r = rows["streams_16"]["tokens_per_s"] / rows["streams_1"]["tokens_per_s"]
print("\n16 streams / 1 stream aggregate: %.2fx (floor 4x): %s" % (r, "PASS" if r >= 4 else "FAIL"))
errs = sum(j.get("errors", 0) for j in rows.values())
print("errors: %d" % errs)
sys.exit(0 if r >= 4 and errs == 0 else 1)
PY
