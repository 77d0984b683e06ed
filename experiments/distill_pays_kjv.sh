#!/usr/bin/env bash
# distill_pays_kjv.sh — issue 15, "distillation that pays" on text (docs/distill.md, experiment 4).
# One teacher (dim 128, 4 layers, 1.00M parameters) trained on the whole training part of the
# KJV; students (dim 64, 2 layers, 224k parameters) trained at equal compute — the same steps,
# batch, context, initialisation seed and learning-rate schedule, so the same number of tokens
# — from scratch (hard labels) and by each white-box recipe, then scored on the corpus's
# held-out text (every 20th 32 KiB chunk, never seen by teacher or students). Each row reports
# the share of the scratch-to-teacher held-out loss gap it closes:
#     closed = (loss_scratch - loss_student) / (loss_scratch - loss_teacher)
# REGIME=full : students train on the same training text the teacher saw.
# REGIME=sliceN: students see only the training chunks whose index is a multiple of N
#               (experiments/kjv_slice.py; N=20 is 5% of the text), the data-limited case;
#               the teacher still saw the whole training text, and both students see the slice.
# Usage: [REGIME=full|slice20] [S_STEPS=500] [SEED=1337] experiments/distill_pays_kjv.sh [OUT_DIR]
#        ROWS="scratch fkl ..." picks rows (default: all below).
set -euo pipefail
cd "$(dirname "$0")/.."
R=${R:-build/retort}
OUT=${1:-build/exp/kd}
DATA=${DATA:-build/data/kjv.txt}
TH=${THREADS:-2}
SEQ=64
T_STEPS=${T_STEPS:-2500}
S_STEPS=${S_STEPS:-500}
SEED=${SEED:-1337}
REGIME=${REGIME:-full}
EVAL_WIN=${EVAL_WIN:-400}
ROWS=${ROWS:-"scratch fkl fkl_t2 fkl_a05 rkl jsd fkl_top64 fkl_cache64 fkl_onpolicy"}
NICE="nice -n 10"
TEACHER="--dim 128 --layers 4 --heads 4 --kv-heads 2 --ffn 352"
STUDENT="--dim 64 --layers 2 --heads 2 --kv-heads 1 --ffn 176"
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log"; }
run() { log "\$ $*"; $NICE "$@" 2>> "$OUT/run.log"; }

[ -f "$OUT/teacher.gguf" ] || run $R train --data "$DATA" --vocab-size 2048 $TEACHER --steps $T_STEPS --eval-every 250 \
  --seq-len $SEQ --batch 16 --lr 2e-3 --save-every 500 --threads $TH --quiet --out "$OUT/teacher.gguf"
T="$OUT/teacher.gguf"
if [ "$REGIME" = full ]; then
  SDATA=$DATA; VF=0.05
else
  SDATA="$OUT/$REGIME.txt"; VF=0   # a slice holds no held-out text of its own
  [ -f "$SDATA" ] || python3 experiments/kjv_slice.py "$DATA" "${REGIME#slice}" "$SDATA" | tee -a "$OUT/run.log"
fi
D="$OUT/$REGIME-s$S_STEPS-seed$SEED"
mkdir -p "$D"
SARGS="$STUDENT --data $SDATA --val-fraction $VF --steps $S_STEPS --seq-len $SEQ --batch 16 --lr 2e-3 --seed $SEED \
  --eval-every $S_STEPS --save-every $S_STEPS --threads $TH --quiet"
for row in $ROWS; do
  [ -f "$D/$row.gguf" ] && continue
  case $row in
    scratch)      run $R distill --teacher $T --loss ce $SARGS --out "$D/$row.gguf" ;;
    fkl)          run $R distill --teacher $T --loss fkl $SARGS --out "$D/$row.gguf" ;;
    fkl_t2)       run $R distill --teacher $T --loss fkl --temperature 2 $SARGS --out "$D/$row.gguf" ;;
    fkl_a05)      run $R distill --teacher $T --loss fkl --alpha 0.5 $SARGS --out "$D/$row.gguf" ;;
    rkl)          run $R distill --teacher $T --loss rkl $SARGS --out "$D/$row.gguf" ;;
    jsd)          run $R distill --teacher $T --loss jsd --beta 0.5 $SARGS --out "$D/$row.gguf" ;;
    fkl_top64)    run $R distill --teacher $T --loss fkl --top-k 64 $SARGS --out "$D/$row.gguf" ;;
    fkl_cache64)
      C="$OUT/$REGIME.k64.cache"
      [ -f "$C" ] || run $R cache-teacher --teacher $T --data $SDATA --val-fraction $VF --top-k 64 --seq-len $SEQ \
        --threads $TH --quiet --out "$C"
      run $R distill --teacher-cache "$C" --loss fkl $SARGS --out "$D/$row.gguf" ;;
    fkl_onpolicy) run $R distill --teacher $T --loss fkl --on-policy 0.5 $SARGS --out "$D/$row.gguf" ;;
    *) echo "unknown row $row" >&2; exit 2 ;;
  esac
done
# score every model on the same held-out windows of the whole corpus
for m in teacher $ROWS; do
  f=$([ $m = teacher ] && echo "$T" || echo "$D/$m.gguf")
  [ -f "$D/$m.eval.json" ] || run $R eval --model "$f" --data "$DATA" --split val --seq-len $SEQ --max-windows $EVAL_WIN \
    --threads $TH --label $m --json-out "$D/$m.eval.json" > /dev/null
done
python3 - "$D" $ROWS <<'PY' | tee "$D/summary.txt" | tee -a "$OUT/run.log"
import json, sys
d, rows = sys.argv[1], sys.argv[2:]
L = lambda m: json.load(open(f"{d}/{m}.eval.json"))["loss"]
t, s = L("teacher"), L("scratch")
print(f"{d}: teacher {t:.4f}, scratch {s:.4f} nats/token (gap {s - t:.4f})")
for m in rows:
    print(f"  {m:14s} {L(m):.4f}  closed {(s - L(m)) / (s - t) * 100:6.1f}%")
PY
log "load: $(cat /proc/loadavg)"
