#!/usr/bin/env bash
# experiments/guard/heldout.sh — issue 16's check, one command: the guard on a day with every
# row of the issue's table (heldout-day.json: nightly evaluation jobs, users, power users, an
# app relaying many users, a log-prob prober, a careful sybil swarm, a naive sybil, a warm-up
# mimic, careful and paraphrasing bulk harvesters), calibrated two ways on traffic with a
# different seed, population and prompt source than the day's:
#   demo        as `retort demo` ships it: the demo's benign calibration scenario (corpus
#               prompts, simulator labels) -> guard calibrate
#   production  the owner's own benign traffic in a shadow period (heldout-calib.json: the
#               a-halves of the everyday grammar and of Debian's fortunes), then
#               guard calibrate --all-accounts
#   tiers       the production calibration, and the operator puts the accounts it knows in
#               tiers before the day: the evaluation jobs in "eval", the app in "trusted"
#               (the same day, "tier" added to those personas)
# then `guard eval --calibration-db` on each protected day, and the table of the three.
# Usage: experiments/guard/heldout.sh MODEL.gguf OUTDIR [SPEED]   (SPEED 0 = as fast as served)
# CALS="production" runs only those calibrations (tiers needs production before it); the table
# then has those columns. GUARD_POLICY=FILE: the day's server runs that guard policy (`retort
# guard policy` prints the default). After the table: the population hold's 429s by persona.
set -euo pipefail
MODEL=${1:?model.gguf}; OUT=${2:?output directory}; SPEED=${3:-0}
BUILD=${BUILD:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
mkdir -p "$OUT"; cp "$BUILD/retort" "$OUT/retort"; R=$OUT/retort   # a copy: rebuilding during a run is safe
CORPUS=${CORPUS:-$BUILD/data/kjv.txt}
DAY=${DAY:-$HERE/heldout-day.json}   # the day (DAY=FILE: another scenario, e.g. its benign personas only)
DEMO_CALIB=${DEMO_CALIB:-$ROOT/scenarios/demo/quick-calib.json}
MAXTOK=${MAXTOK:-32}
SERVER_PID=
stop_server() { if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; fi; }
trap stop_server EXIT
# the simulator names each key's public address in X-Forwarded-For and sends from 127.x.y.z:
# trust the loopback as the proxy, so the guard sees the public addresses
XFF=(--trusted-proxy 127.0.0.0/8)
"$R" serve --help 2>&1 | grep -q -- --trust-forwarded-for && XFF=(--trust-forwarded-for)
start_server() { # db, extra flags...
  local db=$1; shift
  rm -f "$OUT/port"
  "$R" serve --model "$MODEL" --db "$db" --port 0 --port-file "$OUT/port" --sim-clock --max-tokens $MAXTOK \
     --max-queue 256 "${XFF[@]}" "$@" > "$db.serve.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 300); do [ -s "$OUT/port" ] && break; sleep 0.1; done
  [ -s "$OUT/port" ] || { echo "server did not start:"; cat "$db.serve.log"; exit 1; }
}
sim() { # db scenario
  "$R" simulate --endpoint "http://127.0.0.1:$(cat "$OUT/port")" --db "$1" --scenario "$2" --corpus "$CORPUS" \
     --speed "$SPEED" --concurrency 16 --quiet --summary "$1.summary.json"
}
t0=$(date +%s)
echo "== load: $(cut -d' ' -f1-3 /proc/loadavg); serve flags: ${XFF[*]}"
/usr/bin/python3 - "$DAY" "$OUT/heldout-day-tiers.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
for p in s["personas"]:
    if p["kind"] in ("evaljob", "app"):
        p["tier"] = "eval" if p["kind"] == "evaljob" else "trusted"
json.dump(s, open(sys.argv[2], "w"), indent=1)
EOF
CALS=${CALS:-demo production tiers}
for cal in $CALS; do
  echo "== calibration: $cal"
  if [ $cal = tiers ]; then   # the production calibration's reference
    cp "$OUT/reference-production.json" "$OUT/reference-$cal.json"; cp "$OUT/calib-production.db" "$OUT/calib-$cal.db"
  else
    rm -f "$OUT/calib-$cal.db"*
    start_server "$OUT/calib-$cal.db" --guard-shadow
    if [ $cal = demo ]; then
      sim "$OUT/calib-$cal.db" "$DEMO_CALIB"; stop_server
      "$R" guard calibrate --db "$OUT/calib-$cal.db" --out "$OUT/reference-$cal.json"
    else
      sim "$OUT/calib-$cal.db" "$HERE/heldout-calib.json"; stop_server
      "$R" guard calibrate --db "$OUT/calib-$cal.db" --out "$OUT/reference-$cal.json" --all-accounts
    fi
  fi
  echo "== the day, guard enforcing, $cal calibration"
  rm -f "$OUT/day-$cal.db"*
  day=$DAY; [ $cal = tiers ] && day=$OUT/heldout-day-tiers.json
  start_server "$OUT/day-$cal.db" --guard --guard-reference "$OUT/reference-$cal.json" ${GUARD_POLICY:+--guard-policy "$GUARD_POLICY"}
  sim "$OUT/day-$cal.db" "$day"; stop_server
  "$R" guard eval --db "$OUT/day-$cal.db" --reference "$OUT/reference-$cal.json" --calibration-db "$OUT/calib-$cal.db" \
     > "$OUT/eval-$cal.txt"
  "$R" guard eval --db "$OUT/day-$cal.db" --reference "$OUT/reference-$cal.json" --calibration-db "$OUT/calib-$cal.db" \
     --json > "$OUT/eval-$cal.json"
done
echo "== load: $(cut -d' ' -f1-3 /proc/loadavg); $(( $(date +%s) - t0 )) s"
evals=(); for cal in $CALS; do evals+=("$OUT/eval-$cal.json"); done
/usr/bin/python3 "$HERE/heldout_table.py" "${evals[@]}" \
  | tee "$OUT/table.md"
# the population hold's 429s (no action row: the ledger's guard_hold refusals) by persona
for cal in $CALS; do
  /usr/bin/python3 - "$OUT/day-$cal.db" "$cal" <<'EOF' | tee -a "$OUT/table.md"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
rows = c.execute("""SELECT s.persona, s.attack, count(DISTINCT s.account_id),
    count(DISTINCT CASE WHEN u.error = 'guard_hold' THEN s.account_id END),
    sum(u.error = 'guard_hold'), sum(u.status = 200)
  FROM guard_sim_accounts s LEFT JOIN usage u ON u.account_id = s.account_id
  GROUP BY s.persona, s.attack ORDER BY s.attack, s.persona""").fetchall()
parts = [f"{p}{' (attack)' if a else ''} {h}/{n} accounts, {r or 0} requests held ({ok or 0} served)"
         for p, a, n, h, r, ok in rows if r]
print(f"\npopulation hold (429), {sys.argv[2]}: " + ("; ".join(parts) if parts else "none"))
EOF
done
