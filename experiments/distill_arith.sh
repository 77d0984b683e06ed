#!/usr/bin/env bash
# distill_arith.sh — experiment 2 of docs/distill.md, the R1-Distill shape on arithmetic:
#   1. a teacher learns column addition / multiplication (with working) from a labelled set;
#   2. a student of <= 1/4 of its parameters learns from scratch on the same labelled set;
#   3. the teacher writes its own working (greedy) for the labelled prompts plus fresh ones,
#      and a student of the same shape is trained on that text only (plain SFT);
#   4. all three are scored by exact match of the final answer on held-out problems.
# Usage: experiments/distill_arith.sh [OUT_DIR]   (sizes below; ~30-60 min on 2 busy cores)
set -euo pipefail
cd "$(dirname "$0")/.."
R=${R:-build/retort}
OUT=${1:-build/exp/arith}
TH=${THREADS:-2}
N_LABELLED=${N_LABELLED:-4000}
N_FRESH=${N_FRESH:-16000}
N_TEST=${N_TEST:-300}
DIGITS=${DIGITS:-3}
T_STEPS=${T_STEPS:-2000}
S_STEPS=${S_STEPS:-2000}
TEACHER="--dim 128 --layers 4 --heads 4 --kv-heads 2 --ffn 352"
STUDENT="--dim 64 --layers 2 --heads 2 --kv-heads 1 --ffn 176"
TRAIN="--seq-len 128 --batch 16 --lr 2e-3 --eval-every 250 --save-every 1000 --threads $TH --quiet"
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log"; }
run() { log "\$ $*"; "$@" 2>> "$OUT/run.log"; }

run $R data arith --n $N_LABELLED --digits $DIGITS --seed 1 --out "$OUT/labelled.jsonl"
run $R data arith --n $N_FRESH --digits $DIGITS --seed 3 --out "$OUT/fresh.jsonl"
run $R data arith --n $N_TEST --digits $DIGITS --seed 2 --out "$OUT/test.jsonl"
# teacher: byte-level tokenizer (every character a token), trained on the labelled set
[ -f "$OUT/teacher.gguf" ] || run $R sft --data "$OUT/labelled.jsonl" --vocab-size 262 $TEACHER --steps $T_STEPS $TRAIN --out "$OUT/teacher.gguf"
# student from scratch on the same labelled set
[ -f "$OUT/scratch.gguf" ] || run $R sft --data "$OUT/labelled.jsonl" --tokenizer "$OUT/teacher.gguf" $STUDENT --steps $S_STEPS $TRAIN --out "$OUT/scratch.gguf"
# the teacher writes its working for the labelled prompts and the fresh ones (greedy)
cat "$OUT/labelled.jsonl" "$OUT/fresh.jsonl" > "$OUT/prompts.jsonl"
[ -f "$OUT/teacher_gen.jsonl" ] || run $R data generate --model "$OUT/teacher.gguf" --prompts "$OUT/prompts.jsonl" --max-tokens 96 --temperature 0 --batch 64 --threads $TH --quiet --out "$OUT/teacher_gen.jsonl"
head -n $N_LABELLED "$OUT/teacher_gen.jsonl" > "$OUT/teacher_gen_same.jsonl"
# students on the teacher's text only: the same prompts, and the same plus fresh ones
[ -f "$OUT/distilled_same.gguf" ] || run $R sft --data "$OUT/teacher_gen_same.jsonl" --tokenizer "$OUT/teacher.gguf" $STUDENT --steps $S_STEPS $TRAIN --out "$OUT/distilled_same.gguf"
[ -f "$OUT/distilled.gguf" ] || run $R sft --data "$OUT/teacher_gen.jsonl" --tokenizer "$OUT/teacher.gguf" $STUDENT --steps $S_STEPS $TRAIN --out "$OUT/distilled.gguf"
for m in teacher scratch distilled_same distilled; do
  run $R eval --model "$OUT/$m.gguf" --data "$OUT/test.jsonl" --task arith --max-new 96 --batch 32 --threads $TH \
    --label $m --samples "$OUT/$m.samples.txt" --json-out "$OUT/$m.eval.json"
  cat "$OUT/$m.eval.json" | tee -a "$OUT/run.log"
done
run $R eval-plot --out "$OUT/arith.svg" --title "arithmetic: exact-match accuracy and completion loss" --metrics accuracy,loss,params \
  "$OUT/teacher.eval.json" "$OUT/scratch.eval.json" "$OUT/distilled_same.eval.json" "$OUT/distilled.eval.json"
run $R eval-plot --curves --key val_loss --title "held-out completion loss" --out "$OUT/arith_curves.svg" \
  --labels teacher,scratch,distilled_same,distilled \
  "$OUT/teacher.gguf.log.jsonl" "$OUT/scratch.gguf.log.jsonl" "$OUT/distilled_same.gguf.log.jsonl" "$OUT/distilled.gguf.log.jsonl"
log "done"
