#!/usr/bin/env bash
# bench/busy_machine.sh — retort's OpenMP threads on a busy machine (issue 17 #19): the same
# short training job (d128 L4 T128 B8, vocab 512, on shards of the default corpus) run on the
# machine as it is, then while a competing process keeps one more core busy (a shell busy loop), with
#   - 2 threads and libgomp's own default (spin ~300k iterations, then sleep): what retort
#     did before; selected here with OMP_WAIT_POLICY= (empty: libgomp's default, with a warning),
#   - 2 threads and retort's default now, OMP_WAIT_POLICY=passive (retort sets it when unset),
#   - 2 threads spinning briefly (GOMP_SPINCOUNT=10000, a few microseconds) before sleeping,
#   - 1 thread (what the issue's workaround was).
# Prints seconds per variant and the ratio to the old 2-thread default under load. Note the load
# average it prints: on a shared machine the other processes are part of the result.
# Usage: bench/busy_machine.sh [steps]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
R=$BUILD/retort
STEPS=${1:-20}
tmp=$(mktemp -d)
busy=""
cleanup() { [ -n "$busy" ] && kill "$busy" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
[ -f "$BUILD/data/kjv.txt" ] || make -s corpus
head -c 2000000 "$BUILD/data/kjv.txt" > "$tmp/c.txt"
CFG=(--dim 128 --layers 4 --heads 4 --kv-heads 2 --ffn 352 --seq-len 128 --batch 8 --eval-every 0 --eval-batches 1
     --save-every 0 --quiet)
"$R" train --data "$tmp/c.txt" --vocab-size 512 "${CFG[@]}" --steps 1 --threads 2 --shards "$tmp/shards" \
  --out "$tmp/tok.gguf" 2>/dev/null
run() { # label threads [env...]
  local label=$1 th=$2; shift 2
  local t0=$(date +%s.%N)
  env "$@" "$R" train --data "$tmp/shards" --tokenizer "$tmp/tok.gguf" "${CFG[@]}" --steps "$STEPS" \
    --threads "$th" --out "$tmp/m.gguf" 2>/dev/null
  echo "$label $(echo "$(date +%s.%N) - $t0" | bc)"
}
echo "load before: $(cat /proc/loadavg)"
{
  run "as-is/2-threads-libgomp-default" 2 OMP_WAIT_POLICY=
  run "as-is/2-threads-passive" 2
  run "as-is/2-threads-spin10k" 2 OMP_WAIT_POLICY= GOMP_SPINCOUNT=10000
  ( while :; do :; done ) & busy=$!
  run "busy/2-threads-libgomp-default" 2 OMP_WAIT_POLICY=
  run "busy/2-threads-passive" 2
  run "busy/2-threads-spin10k" 2 OMP_WAIT_POLICY= GOMP_SPINCOUNT=10000
  run "busy/1-thread" 1
  kill "$busy"; busy=""
} > "$tmp/times"
base=$(awk '$1=="busy/2-threads-libgomp-default"{print $2}' "$tmp/times")
awk -v b="$base" '{printf "%-28s %7.2f s   x%.3f of busy/2-threads-libgomp-default\n", $1, $2, $2 / b}' "$tmp/times"
echo "load after: $(cat /proc/loadavg)"
