#!/usr/bin/env bash
# bench/db.sh — ledgered requests per second at 64 connections with the gateway database on
# SQLite (a file, the default) and on PostgreSQL (a throw-away local cluster from
# tests/pg_cluster.sh: unix socket, fsync off as in the tests, so this measures retort's side
# and the round trips, not a disk). A tiny model (dim 32) and max_tokens=1 keep the engine out
# of the way: what is measured is auth + limiter + ledger commit per request. Two accounts:
# "open" (no limits: auth + ledger) and "limited" (rpm and tpm set high enough never to refuse,
# so the limiter does its work: in memory on SQLite, one locking transaction per verdict and
# one per settle in the database on PostgreSQL). Prints JSON lines and the PostgreSQL/SQLite
# ratios. Not part of `make test`. Needs `make` and the corpus (`make corpus`).
# Usage: bench/db.sh [--requests R]   (R per connection, default 100: 6,400 requests per run)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CC=${CC:-gcc}
REQS=100
[ "${1:-}" = --requests ] && REQS=$2
[ -x "$BUILD/retort" ] || { echo "error: $BUILD/retort missing; run make first" >&2; exit 1; }
[ -f "$BUILD/data/kjv.txt" ] || { echo "error: run make corpus first" >&2; exit 1; }
mkdir -p "$BUILD/bench"
$CC -std=c17 -D_GNU_SOURCE -O2 -Wall -Wextra -o "$BUILD/bench/serve_bench" bench/serve_bench.c -lcurl -lm -lpthread
R=$BUILD/retort
B=$BUILD/bench/serve_bench
tmp=$(mktemp -d)
pgdir=$(mktemp -u /tmp/retort-pgbench-XXXXXX)
srv=""
cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null; tests/pg_cluster.sh stop "$pgdir"; rm -rf "$tmp"; }
trap cleanup EXIT
head -c 60000 "$BUILD/data/kjv.txt" > "$tmp/text.txt"
$R train --data "$tmp/text.txt" --vocab-size 300 --dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 64 \
  --seq-len 64 --batch 4 --steps 3 --lr 3e-3 --eval-every 0 --out "$tmp/m.gguf" --quiet --threads 2 2> "$tmp/train.log"
pg=$(tests/pg_cluster.sh start "$pgdir")
out=$tmp/results.jsonl
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for backend in sqlite postgresql; do
  db=$tmp/g.db; [ $backend = postgresql ] && db=$pg
  OPEN=$($R keys create --db "$db" --name open 2>/dev/null)
  LIM=$($R keys create --db "$db" --name limited --rpm 100000000 --tpm 100000000000 2>/dev/null)
  $R serve --model "$tmp/m.gguf" --model-name bench --db "$db" --port 0 --port-file "$tmp/port.$backend" --threads 2 \
    --max-batch 64 --max-queue 1024 --max-conn-per-ip 256 2> "$tmp/serve.$backend.log" &
  srv=$!
  for i in $(seq 1 200); do [ -s "$tmp/port.$backend" ] && break; sleep 0.05; done
  URL="http://127.0.0.1:$(cat "$tmp/port.$backend")"
  $B --url "$URL" --key "$OPEN" --model bench --concurrency 8 --requests 200 --max-tokens 1 --stream 0 --label warmup > /dev/null
  for acct in open limited; do
    key=$OPEN; [ $acct = limited ] && key=$LIM
    $B --url "$URL" --key "$key" --model bench --concurrency 64 --requests "$REQS" --max-tokens 1 --stream 0 \
      --label "${backend}_${acct}_c64" | tee -a "$out"
  done
  kill -TERM "$srv"; wait "$srv" || true; srv=""
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$out" <<'PY'
import json, sys
rows = {}
for l in open(sys.argv[1]):
    j = json.loads(l); rows[j["label"]] = j
print("\n%-28s %10s %10s %10s %7s" % ("run (64 connections)", "req/s", "p50 ms", "p99 ms", "errors"))
for k, j in rows.items():
    print("%-28s %10.0f %10.2f %10.2f %7d" % (k, j["requests_per_s"], j.get("latency_p50_ms", float("nan")),
          j.get("latency_p99_ms", float("nan")), j.get("errors", 0)))
for a in ("open", "limited"):
    s, p = rows["sqlite_%s_c64" % a], rows["postgresql_%s_c64" % a]
    print("PostgreSQL / SQLite requests/s, %s account: %.2fx" % (a, p["requests_per_s"] / s["requests_per_s"]))
sys.exit(1 if any(j.get("errors", 0) for j in rows.values()) else 0)
PY
