#!/usr/bin/env bash
# ref_dashboard.sh — the admin dashboard (GET /admin) in a real browser: a tiny model is trained,
# `retort serve --guard --sim-clock` runs on a free loopback port, `retort simulate` drives a few
# minutes of simulated traffic (benign users, a log-prob harvester, a small sybil ring) so the
# guard itself suspends an account and stores its evidence; an account whose name is HTML is
# written straight into the database (no command accepts such a name); then
# tests/node/dashboard.mjs drives Debian's headless Chromium through playwright-core: wrong key
# refused, sign-in, the suspended account with its reason and risk, hostile strings inert, the
# account's detail, release (verified through the API), suspend, sign-out. Screenshots go to
# $BUILD/tests/dashboard.png and dashboard-account.png.
# Prints SKIP when chromium, node, python3 or tests/node/node_modules (npm ci) is missing.
set -euo pipefail
BUILD=${BUILD:-build}
R=$BUILD/retort
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export CHROMIUM
[ -x "$CHROMIUM" ] || { echo "SKIP ref_dashboard: $CHROMIUM not found (apt-get install chromium)"; exit 0; }
command -v node >/dev/null || { echo "SKIP ref_dashboard: node not installed"; exit 0; }
command -v python3 >/dev/null || { echo "SKIP ref_dashboard: python3 not installed"; exit 0; }
[ -d tests/node/node_modules/playwright-core ] ||
  { echo "SKIP ref_dashboard: tests/node/node_modules/playwright-core missing (cd tests/node && npm ci)"; exit 0; }
[ -f "$BUILD/data/kjv.txt" ] || { echo "ref_dashboard: $BUILD/data/kjv.txt missing (make corpus)"; exit 1; }

tmp=$(mktemp -d)
srv_pid=""
cleanup() {
  if [ -n "$srv_pid" ]; then kill "$srv_pid" 2>/dev/null || true; wait "$srv_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
t0=$(date +%s)

head -c 60000 "$BUILD/data/kjv.txt" > "$tmp/text.txt"
$R train --data "$tmp/text.txt" --vocab-size 300 --dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 64 \
  --seq-len 128 --batch 4 --steps 10 --lr 3e-3 --eval-every 0 --out "$tmp/m.gguf" --quiet --threads 2 2> "$tmp/train.log"

ADMIN=$($R keys create --db "$tmp/g.db" --name ops --admin 2> "$tmp/keys.log")
$R serve --model "$tmp/m.gguf" --model-name tiny --db "$tmp/g.db" --port 0 --port-file "$tmp/port" \
  --threads 1 --max-batch 8 --max-tokens 8 --sim-clock --guard 2> "$tmp/serve.log" &
srv_pid=$!
for _ in $(seq 1 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
[ -s "$tmp/port" ] || { echo "serve did not start"; cat "$tmp/serve.log"; exit 1; }
URL="http://127.0.0.1:$(cat "$tmp/port")"

# a short simulated morning: the guard suspends the harvester on its own
cat > "$tmp/scenario.json" <<'EOF'
{"name": "dash", "seed": 3, "hours": 4, "max_tokens": 8, "personas": [
  {"name": "user", "kind": "benign", "count": 4, "requests_per_day": [20, 60]},
  {"name": "lp", "kind": "logprob", "count": 1, "requests": 300, "rate_per_hour": 6000},
  {"name": "ring", "kind": "sybil", "count": 1, "keys": 4, "addresses": 2, "requests": 240}
]}
EOF
$R simulate --endpoint "$URL" --db "$tmp/g.db" --scenario "$tmp/scenario.json" --corpus "$BUILD/data/kjv.txt" \
  --speed 0 --concurrency 8 --quiet 2> "$tmp/sim.log"
$R guard status --db "$tmp/g.db" > "$tmp/status.txt"
grep -Eq " suspend +enforce " "$tmp/status.txt" ||
  { echo "the guard suspended nobody"; cat "$tmp/status.txt" "$tmp/sim.log"; tail -20 "$tmp/serve.log"; exit 1; }

# a name no command accepts: only a database written by something else could hold it
EVIL='<img src=x onerror="window.__xss=1">Robert&apos;); <b>DROP</b>'
python3 - "$tmp/g.db" "$EVIL" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=10)
db.execute("INSERT INTO accounts(name, created_at) VALUES(?, ?)", (sys.argv[2], time.time()))
db.commit()
PY

mkdir -p "$BUILD/tests"
RETORT_URL="$URL" RETORT_ADMIN_KEY="$ADMIN" RETORT_EVIL_NAME="$EVIL" \
  RETORT_SCREENSHOT="$(cd "$BUILD/tests" && pwd)/dashboard.png" \
  timeout 120 node tests/node/dashboard.mjs
echo "ref_dashboard: $(( $(date +%s) - t0 ))s in all; screenshots in $BUILD/tests/dashboard*.png"
