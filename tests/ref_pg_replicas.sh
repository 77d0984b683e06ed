#!/usr/bin/env bash
# ref_pg_replicas.sh — two `retort serve` replicas (a tiny model) and `retort guard worker` on one
# real PostgreSQL (tests/pg_cluster.sh): concurrent load across both (ledger rows = responses
# served), one rate limit exact across replicas, a suspension made through one replica refused
# by the other on its next request, kill -9 of one replica mid-stream (the other keeps serving,
# no completed response missing from the ledger). tests/py/replicas_drive.py drives the traffic
# and reads the ledger with psql. SKIP when PostgreSQL or the corpus is absent.
set -euo pipefail
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
R=$BUILD/retort
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "SKIP ref_pg_replicas: PostgreSQL not installed"; exit 0; }
[ -f "$BUILD/data/kjv.txt" ] || { echo "SKIP ref_pg_replicas: $BUILD/data/kjv.txt missing (make corpus)"; exit 0; }
tmp=$(mktemp -d)
dir=$(mktemp -u /tmp/retort-pgr-XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    tests/pg_cluster.sh stop "$dir"
    rm -rf "$tmp"
}
trap cleanup EXIT
url=$(tests/pg_cluster.sh start "$dir")
head -c 60000 "$BUILD/data/kjv.txt" > "$tmp/text.txt"
$R train --data "$tmp/text.txt" --vocab-size 300 --dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 64 \
  --seq-len 64 --batch 4 --steps 5 --lr 3e-3 --eval-every 0 --out "$tmp/m.gguf" --quiet --threads 2 2> "$tmp/train.log"
$R keys create --db "$url" --name load 2>/dev/null > "$tmp/load.key"
$R keys create --db "$url" --name lim --rpm 30 2>/dev/null > "$tmp/lim.key"
$R keys create --db "$url" --name victim 2>/dev/null > "$tmp/victim.key"
$R keys create --db "$url" --name ops --admin 2>/dev/null > "$tmp/ops.key"
# the load generator is the operator's own load test (one address, three accounts made in the same
# second, 120 saturated requests, then a change of pace): the guard would link and stop it as it
# should a harvester, so it is allow-listed as an operator would; this test is about replicas
$R guard tier --db "$url" load allow --note "replica test load generator" > /dev/null
$R guard worker --db "$url" 2> "$tmp/worker.log" &
pids+=($!)
for r in A B; do
    $R serve --model "$tmp/m.gguf" --model-name teacher --db "$url" --port 0 --port-file "$tmp/port$r" \
      --threads 1 --max-batch 4 --guard-events-only --sim-clock 2> "$tmp/serve$r.log" &
    pids+=($!)
    eval "pid$r=$!"
    disown $!  # its kill -9 is part of the test, not news
done
for i in $(seq 1 200); do [ -s "$tmp/portA" ] && [ -s "$tmp/portB" ] && break; sleep 0.05; done
[ -s "$tmp/portA" ] && [ -s "$tmp/portB" ] || { echo "replicas did not start"; cat "$tmp"/serve*.log; exit 1; }
/usr/bin/python3 tests/py/replicas_drive.py "$tmp" "$url" "$pidA" || { tail -n 5 "$tmp"/serve*.log "$tmp/worker.log"; exit 1; }
# the worker judged what the replicas stored: every served request became one guard event
sleep 1
ev=$(psql "$url" -At -c "SELECT count(*) FROM guard_events")
served=$(psql "$url" -At -c "SELECT count(*) FROM usage WHERE status = 200")
rows=$(psql "$url" -At -c "SELECT count(*) FROM usage")
scores=$(psql "$url" -At -c "SELECT count(*) FROM guard_scores")
echo "guard: replicas stored $ev events ($served served of $rows ledger rows); the worker wrote $scores timeline rows"
[ "$ev" -ge "$served" ] && [ "$ev" -le "$rows" ] && [ "$scores" -ge 1 ] || { echo "guard events/scores wrong"; exit 1; }
# the operator's views read the same shared tables: guard status, the admin's ledger, the report
$R guard status --db "$url" > "$tmp/status.txt" || { echo "guard status on PostgreSQL failed"; exit 1; }
$R report --db "$url" --out "$tmp/report.html" 2> "$tmp/report.log" || { cat "$tmp/report.log"; exit 1; }
grep -q "<html" "$tmp/report.html" || { echo "report: no HTML"; exit 1; }
echo "operator views on PostgreSQL: guard status ($(wc -l < "$tmp/status.txt") lines), report ($(wc -c < "$tmp/report.html") bytes)"
kill "$pidB"; wait "$pidB" 2>/dev/null || true
echo "ref_pg_replicas: ok"
