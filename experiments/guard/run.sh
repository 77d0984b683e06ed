#!/usr/bin/env bash
# experiments/guard/run.sh — the guard's evaluation, end to end, on one machine:
#   1. calibration: serve the model with the guard in shadow mode, simulate a benign-only day
#      (calib.json, its own seed), then `retort guard calibrate` -> reference.json
#   2. protected day: serve with --guard (enforce) and the reference, simulate day.json with
#      attackers, write their harvests; eval + timeline plot
#   3. unprotected day (control): the same day with the guard in shadow mode (nothing is
#      stopped, so the baselines and the guard's would-be decisions see all the traffic; the
#      attackers' harvests are what they get without a defense)
# Usage: experiments/guard/run.sh MODEL.gguf OUTDIR [SPEED]   (SPEED 0 = as fast as served)
#        CALIB_DB=old/calib.db ... reuses an earlier run's benign traffic for step 1
set -euo pipefail
MODEL=${1:?model.gguf}; OUT=${2:?output directory}; SPEED=${3:-0}
BUILD=${BUILD:-build}
mkdir -p "$OUT"; cp "$BUILD/retort" "$OUT/retort"; R=$OUT/retort   # a copy: rebuilding during a run is safe
HERE=$(cd "$(dirname "$0")" && pwd)
CORPUS=${CORPUS:-$BUILD/data/kjv.txt}
MAXTOK=${MAXTOK:-32}
mkdir -p "$OUT"
SERVER_PID=
stop_server() { if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; fi; }
trap stop_server EXIT
start_server() { # db, extra flags...
  local db=$1; shift
  rm -f "$OUT/port"
  "$R" serve --model "$MODEL" --db "$db" --port 0 --port-file "$OUT/port" --sim-clock --max-tokens $MAXTOK \
     --max-queue 256 "$@" > "$db.serve.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do [ -s "$OUT/port" ] && break; sleep 0.1; done
  [ -s "$OUT/port" ] || { echo "server did not start:"; cat "$db.serve.log"; exit 1; }
}
sim() { # db scenario [harvest dir]
  local hd=()
  [ -n "${3:-}" ] && hd=(--harvest-dir "$3")
  "$R" simulate --endpoint "http://127.0.0.1:$(cat "$OUT/port")" --db "$1" --scenario "$2" --corpus "$CORPUS" \
     --speed "$SPEED" --concurrency 16 "${hd[@]}"
}
t0=$(date +%s)
echo "== 1. calibration (benign only)"
if [ -n "${CALIB_DB:-}" ]; then   # reuse the benign traffic of an earlier run (calibrating again)
  [ "$CALIB_DB" -ef "$OUT/calib.db" ] || cp "$CALIB_DB" "$OUT/calib.db"
else
  rm -f "$OUT"/calib.db*
  start_server "$OUT/calib.db" --guard-shadow
  sim "$OUT/calib.db" "$HERE/calib.json"
  stop_server
fi
"$R" guard calibrate --db "$OUT/calib.db" --out "$OUT/reference.json"
echo "== 2. protected day (guard enforcing)"
rm -f "$OUT"/day.db*; rm -rf "$OUT/harvest-guarded"
start_server "$OUT/day.db" --guard --guard-reference "$OUT/reference.json"
sim "$OUT/day.db" "$HERE/day.json" "$OUT/harvest-guarded"
stop_server
"$R" guard eval --db "$OUT/day.db" --reference "$OUT/reference.json" | tee "$OUT/eval-guarded.txt"
"$R" guard eval --db "$OUT/day.db" --reference "$OUT/reference.json" --json > "$OUT/eval-guarded.json"
"$R" guard plot --db "$OUT/day.db" --out "$OUT/timeline.svg" --title "guard risk per account, simulated day (enforcing)"
"$R" guard status --db "$OUT/day.db" > "$OUT/status.txt"
echo "== 3. unprotected day (guard in shadow mode: the control, and all traffic for the baselines)"
rm -f "$OUT"/control.db*; rm -rf "$OUT/harvest-control"
start_server "$OUT/control.db" --guard-shadow --guard-reference "$OUT/reference.json"
sim "$OUT/control.db" "$HERE/day.json" "$OUT/harvest-control"
stop_server
"$R" guard eval --db "$OUT/control.db" --reference "$OUT/reference.json" | tee "$OUT/eval-control.txt"
"$R" guard eval --db "$OUT/control.db" --reference "$OUT/reference.json" --json > "$OUT/eval-control.json"
"$R" guard plot --db "$OUT/control.db" --out "$OUT/timeline-shadow.svg" --title "guard risk per account, simulated day (shadow: nothing stopped)"
echo "done in $(( $(date +%s) - t0 )) s; results in $OUT"
