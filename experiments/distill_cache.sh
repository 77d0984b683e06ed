#!/usr/bin/env bash
# distill_cache.sh — experiment 3 of docs/distill.md: (a) teacher-cache size against k (and
# the quantization step and zstd level), (b) the speed of a distillation step relative to a
# plain training step of the same student (live teacher full / top-k, cache, on-policy).
# Needs the teacher of distill_kjv.sh. Usage: experiments/distill_cache.sh [KJV_DIR] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
R=${R:-build/retort}
KJV=${1:-build/exp/kjv}
OUT=${2:-build/exp/cache}
DATA=${DATA:-build/data/kjv.txt}
TH=${THREADS:-2}
WIN=${WIN:-1000}
STEPS=${STEPS:-22}
T="$KJV/teacher.gguf"
SEQ=${SEQ:-64}
PARTS=${PARTS:-"sizes speed tolerance"}   # which parts to run (sizes must have run once for the others)
has() { [[ " $PARTS " == *" $1 "* ]]; }
STUDENT="--dim 64 --layers 2 --heads 2 --kv-heads 1 --ffn 176 --seq-len $SEQ --batch 16"
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log"; }
if has sizes; then
: > "$OUT/sizes.jsonl"
for k in 8 16 32 64 128; do
  log "cache-teacher --top-k $k --max-windows $WIN"
  $R cache-teacher --teacher "$T" --data "$DATA" --top-k $k --seq-len $SEQ --max-windows $WIN --threads $TH --quiet \
    --out "$OUT/k$k.cache" 2>> "$OUT/run.log" | tee -a "$OUT/sizes.jsonl"
done
log "cache-teacher --top-k 64 --zstd-level 19"
$R cache-teacher --teacher "$T" --data "$DATA" --top-k 64 --seq-len $SEQ --max-windows $WIN --zstd-level 19 --threads $TH --quiet \
  --out "$OUT/k64_z19.cache" 2>> "$OUT/run.log" | tee -a "$OUT/sizes.jsonl"
log "cache-teacher --top-k 64 --lp-step 0.03125"
$R cache-teacher --teacher "$T" --data "$DATA" --top-k 64 --seq-len $SEQ --max-windows $WIN --lp-step 0.03125 --threads $TH --quiet \
  --out "$OUT/k64_s32.cache" 2>> "$OUT/run.log" | tee -a "$OUT/sizes.jsonl"
fi
# step speed: the same student, STEPS steps each, per-step times from the JSONL log (steps 3..N-1):
# the best (least disturbed by other jobs on a shared machine) and the median
common="--data $DATA $STUDENT --steps $STEPS --warmup 2 --eval-every 0 --eval-batches 1 --save-every 0 --threads $TH --quiet"
run_speed() {
  local name=$1; shift
  log "\$ $*"
  "$@" 2>> "$OUT/run.log"
  /usr/bin/python3 - "$name" "$OUT/$name.gguf.log.jsonl" <<'PY' | tee -a "$OUT/speed.jsonl"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[2])]
rows = rows[1:-1]                 # skip the first two steps (allocation) and the last (final eval)
dt = [b["elapsed"] - a["elapsed"] for a, b in zip(rows, rows[1:])]
tok = rows[1]["tokens"] - rows[0]["tokens"]
print(json.dumps({"run": sys.argv[1], "steps": len(dt), "best_ms_per_step": round(1e3 * min(dt), 1),
                  "median_ms_per_step": round(1e3 * statistics.median(dt), 1), "best_tok_per_s": round(tok / min(dt), 1)}))
PY
}
if has speed; then
: > "$OUT/speed.jsonl"
run_speed train        $R train --tokenizer "$T" $common --out "$OUT/train.gguf"
run_speed kd_fkl_full  $R distill --teacher "$T" --loss fkl $common --out "$OUT/kd_fkl_full.gguf"
run_speed kd_jsd_full  $R distill --teacher "$T" --loss jsd $common --out "$OUT/kd_jsd_full.gguf"
run_speed kd_fkl_top64 $R distill --teacher "$T" --loss fkl --top-k 64 $common --out "$OUT/kd_fkl_top64.gguf"
run_speed kd_fkl_cache $R distill --teacher-cache "$OUT/k64.cache" --loss fkl $common --out "$OUT/kd_fkl_cache.gguf"
run_speed kd_onpolicy  $R distill --teacher "$T" --loss fkl --on-policy 1 $common --out "$OUT/kd_onpolicy.gguf"
fi
# cache vs live tolerance: a student's loss against the cached top-64 and the live teacher's top-64
if has tolerance; then
BLIS_DIR=/usr/lib/x86_64-linux-gnu/blis-openmp
mkdir -p "$OUT/bin"
${CC:-gcc} -std=c17 -D_GNU_SOURCE -O2 -march=native -fopenmp -Wall -Wextra -Isrc -o "$OUT/bin/cache_vs_live" \
  experiments/cache_vs_live.c build/libretort.a -L$BLIS_DIR -Wl,-rpath,$BLIS_DIR -lblis $(pkg-config --libs libzstd jansson) -lm -lpthread
S_TOL=${S_TOL:-$KJV/scratch.gguf}
[ -f "$S_TOL" ] || S_TOL="$OUT/train.gguf"
: > "$OUT/tolerance.jsonl"
for c in k64 k64_s32; do
  log "cache_vs_live $T $OUT/$c.cache $S_TOL ${TOL_WIN:-64}"
  OMP_NUM_THREADS=$TH "$OUT/bin/cache_vs_live" "$T" "$OUT/$c.cache" "$S_TOL" ${TOL_WIN:-64} 8 | tee -a "$OUT/tolerance.jsonl"
done
fi
log "done"
