#!/usr/bin/env bash
# distill_kjv.sh — experiment 1 of docs/distill.md: on the King James Bible, a student of
# <= 1/4 of the teacher's parameters trained (a) from scratch, (b) by white-box distillation
# with each loss (live teacher, full vocabulary), (c) from a top-64 teacher cache, and (d) by
# SFT on text the teacher generated — all at the same number of student steps — then scored
# on the held-out text: loss, KL to the teacher, top-1 agreement.
# Usage: experiments/distill_kjv.sh [OUT_DIR]   (sizes below; a few hours on 2 busy cores)
set -euo pipefail
cd "$(dirname "$0")/.."
R=${R:-build/retort}
OUT=${1:-build/exp/kjv}
DATA=${DATA:-build/data/kjv.txt}
TH=${THREADS:-2}
SEQ=${SEQ:-64}
T_STEPS=${T_STEPS:-1200}
S_STEPS=${S_STEPS:-400}
N_GEN=${N_GEN:-3000}
CACHE_WIN=${CACHE_WIN:-0}     # windows cached for (c); 0 = the whole training text
EVAL_WIN=${EVAL_WIN:-600}     # held-out windows scored per model
EVERY=${EVERY:-100}           # student held-out eval period
TEACHER="--dim 128 --layers 4 --heads 4 --kv-heads 2 --ffn 352"
STUDENT="--dim 64 --layers 2 --heads 2 --kv-heads 1 --ffn 176"
TRAIN="--seq-len $SEQ --batch 16 --lr 2e-3 --save-every 500 --threads $TH --quiet"
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log"; }
run() { log "\$ $*"; "$@" 2>> "$OUT/run.log"; }

[ -f "$OUT/teacher.gguf" ] || run $R train --data "$DATA" --vocab-size 2048 $TEACHER --steps $T_STEPS --eval-every 250 $TRAIN --out "$OUT/teacher.gguf"
# (a) from scratch: hard labels only (the teacher is only used by the evaluations)
[ -f "$OUT/scratch.gguf" ] || run $R distill --teacher "$OUT/teacher.gguf" --data "$DATA" --loss ce $STUDENT --steps $S_STEPS --eval-every $EVERY $TRAIN --out "$OUT/scratch.gguf"
# (b) white-box, live teacher, full vocabulary
for loss in fkl rkl jsd; do
  [ -f "$OUT/kd_$loss.gguf" ] || run $R distill --teacher "$OUT/teacher.gguf" --data "$DATA" --loss $loss --beta 0.5 $STUDENT --steps $S_STEPS --eval-every $EVERY $TRAIN --out "$OUT/kd_$loss.gguf"
done
# (b') on-policy (GKD): half the batches are the student's own continuations, scored by the teacher
[ -f "$OUT/kd_fkl_onpolicy.gguf" ] || run $R distill --teacher "$OUT/teacher.gguf" --data "$DATA" --loss fkl --on-policy 0.5 $STUDENT --steps $S_STEPS --eval-every $EVERY $TRAIN --out "$OUT/kd_fkl_onpolicy.gguf"
# (c) from a top-64 cache of the same teacher
[ -f "$OUT/teacher.cache" ] || { log "\$ $R cache-teacher --top-k 64 ..."; $R cache-teacher --teacher "$OUT/teacher.gguf" --data "$DATA" --top-k 64 --seq-len $SEQ --max-windows $CACHE_WIN --threads $TH --quiet --out "$OUT/teacher.cache" 2>> "$OUT/run.log" | tee "$OUT/cache.json"; }
[ -f "$OUT/kd_fkl_cache64.gguf" ] || run $R distill --teacher-cache "$OUT/teacher.cache" --data "$DATA" --loss fkl $STUDENT --steps $S_STEPS --eval-every $EVERY $TRAIN --out "$OUT/kd_fkl_cache64.gguf"
# (d) black-box: SFT on teacher-written continuations of training-text prompts
[ -f "$OUT/teacher_gen.jsonl" ] || run $R data generate --model "$OUT/teacher.gguf" --text "$DATA" --n $N_GEN --prompt-tokens 16 --max-tokens $((SEQ - 16)) --temperature 1 --batch 32 --seed 7 --threads $TH --quiet --out "$OUT/teacher_gen.jsonl"
[ -f "$OUT/sft_gen.gguf" ] || run $R sft --data "$OUT/teacher_gen.jsonl" --tokenizer "$OUT/teacher.gguf" --loss ce $STUDENT --steps $S_STEPS --eval-every $EVERY $TRAIN --out "$OUT/sft_gen.gguf"
for m in teacher scratch kd_fkl kd_rkl kd_jsd kd_fkl_onpolicy kd_fkl_cache64 sft_gen; do
  run $R eval --model "$OUT/$m.gguf" --data "$DATA" --teacher "$OUT/teacher.gguf" --split val --seq-len $SEQ --max-windows $EVAL_WIN \
    --threads $TH --label $m --json-out "$OUT/$m.eval.json"
  cat "$OUT/$m.eval.json" | tee -a "$OUT/run.log"
done
S="scratch kd_fkl kd_rkl kd_jsd kd_fkl_onpolicy kd_fkl_cache64 sft_gen"
run $R eval-plot --out "$OUT/kjv.svg" --title "KJV held-out: student ($STUDENT) after $S_STEPS steps" --metrics loss,kl,top1_agreement \
  $(for m in $S; do echo "$OUT/$m.eval.json"; done)
run $R eval-plot --curves --key val_loss --title "KJV held-out loss during training" --out "$OUT/kjv_curves.svg" \
  --labels $(echo $S | tr ' ' ,) $(for m in $S; do echo "$OUT/$m.gguf.log.jsonl"; done)
run $R eval-plot --curves --key kl --title "KL(teacher||student) on held-out text during training" --out "$OUT/kjv_kl.svg" \
  --labels $(echo $S | tr ' ' ,) $(for m in $S; do echo "$OUT/$m.gguf.log.jsonl"; done)
log "done"
