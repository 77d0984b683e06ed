#!/usr/bin/env bash
# experiments/guard/demo_day.sh — the guard stages of `retort demo` alone, on a given teacher:
# the demo's benign calibration day (shadow) -> guard calibrate -> the demo's day with the
# guard enforcing -> guard eval. Checks the demo days' benign suspensions without the
# students and radioactivity stages.
# Usage: experiments/guard/demo_day.sh MODEL.gguf OUTDIR [full|quick]
set -euo pipefail
M=${1:?model.gguf}; O=${2:?output directory}; P=${3:-full}
BUILD=${BUILD:-build}; HERE=$(cd "$(dirname "$0")" && pwd); S=$HERE/../../scenarios/demo
C=${CORPUS:-$BUILD/data/kjv.txt}
mkdir -p "$O"; cp "$BUILD/retort" "$O/retort"; R=$O/retort; rm -f "$O"/*.db*
SP=
stop() { if [ -n "$SP" ]; then kill "$SP" 2>/dev/null || true; wait "$SP" 2>/dev/null || true; SP=; fi; }
trap stop EXIT
serve() {
  rm -f "$O/port"
  "$R" serve --model "$M" --db "$1" --port 0 --port-file "$O/port" --sim-clock --max-tokens 32 --max-queue 256 \
    "${@:2}" > "$1.log" 2>&1 &
  SP=$!
  for _ in $(seq 300); do [ -s "$O/port" ] && break; sleep 0.1; done
  [ -s "$O/port" ] || { echo "server did not start:"; cat "$1.log"; exit 1; }
}
sim() { "$R" simulate --endpoint "http://127.0.0.1:$(cat "$O/port")" --db "$1" --scenario "$2" --corpus "$C" --speed 0 --quiet; }
echo "== load: $(cut -d' ' -f1-3 /proc/loadavg)"
serve "$O/calib.db" --guard-shadow; sim "$O/calib.db" "$S/$P-calib.json"; stop
"$R" guard calibrate --db "$O/calib.db" --out "$O/reference.json" > "$O/calibrate.txt"
serve "$O/day.db" --guard --guard-reference "$O/reference.json"; sim "$O/day.db" "$S/$P-day.json"; stop
"$R" guard eval --db "$O/day.db" --reference "$O/reference.json" --calibration-db "$O/calib.db" | tee "$O/eval.txt"
echo "== load: $(cut -d' ' -f1-3 /proc/loadavg)"
