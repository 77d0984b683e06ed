#!/usr/bin/env bash
# distill_traces.sh — issue 15, the R1 recipe on arithmetic (docs/distill.md, experiment 5):
# a student that has only a few labelled problems cannot learn the answers from them alone,
# but can from the teacher's worked traces for the same prompts.
#   1. the teacher (dim 96, 3 layers, 330k parameters) learns 3-digit addition and
#      multiplication by one digit, with column working, from N_T labelled problems (seed 5);
#   2. the student's data: N_S problems (seed 1). Answers only: `data arith --answers-only`
#      (" answer 936"). Traces: the teacher's own greedy completions for the same prompts
#      (`data generate`; the prompts file it reads has no working in it), kept as written,
#      mistakes included;
#   3. students (dim 64, 2 layers, 109k parameters) are trained by black-box `sft` on each,
#      with the same steps, batch and schedule, for each seed in SEEDS;
#   4. all are scored by exact match of the final answer on N_TEST held-out problems (seed 2).
# Usage: [SEEDS="1 2 3 4 5"] [S_STEPS=2000] [N_S=500] experiments/distill_traces.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
R=${R:-build/retort}
OUT=${1:-build/exp/traces}
TH=${THREADS:-1}
N_T=${N_T:-4000}
N_S=${N_S:-500}
N_TEST=${N_TEST:-300}
T_STEPS=${T_STEPS:-2500}
S_STEPS=${S_STEPS:-2000}
SEEDS=${SEEDS:-"1 2 3 4 5"}
NICE="nice -n 10"
TEACHER="--dim 96 --layers 3 --heads 4 --kv-heads 2 --ffn 256"
STUDENT="--dim 64 --layers 2 --heads 2 --kv-heads 1 --ffn 176"
TRAIN="--seq-len 128 --batch 16 --lr 2e-3 --threads $TH --quiet"
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log"; }
run() { log "\$ $*"; $NICE "$@" 2>> "$OUT/run.log"; }

run $R data arith --n $N_T --seed 5 --out "$OUT/teacher_labelled.jsonl"
run $R data arith --n $N_S --seed 1 --answers-only --out "$OUT/answers.jsonl"
run $R data arith --n $N_TEST --seed 2 --out "$OUT/test.jsonl"
[ -f "$OUT/teacher.gguf" ] || run $R sft --data "$OUT/teacher_labelled.jsonl" --vocab-size 262 $TEACHER --steps $T_STEPS \
  --eval-every 500 --save-every 500 $TRAIN --out "$OUT/teacher.gguf"
# the teacher writes its working for the student's prompts (greedy); answers.jsonl carries the
# prompt and the "answer" field only (its completion " answer N" is ignored by data generate)
[ -f "$OUT/traces.jsonl" ] || run $R data generate --model "$OUT/teacher.gguf" --prompts "$OUT/answers.jsonl" --max-tokens 96 \
  --temperature 0 --batch 64 --threads $TH --quiet --out "$OUT/traces.jsonl"
for m in teacher; do
  [ -f "$OUT/$m.eval.json" ] || run $R eval --model "$OUT/$m.gguf" --data "$OUT/test.jsonl" --task arith --max-new 96 --batch 32 \
    --threads $TH --label $m --json-out "$OUT/$m.eval.json" > /dev/null
done
# how often the teacher's traces for the student's prompts end in the right answer
[ -f "$OUT/traces_on_prompts.eval.json" ] || run $R eval --model "$OUT/teacher.gguf" --data "$OUT/answers.jsonl" --task arith \
  --max-new 96 --batch 32 --threads $TH --label traces_on_prompts --json-out "$OUT/traces_on_prompts.eval.json" > /dev/null
for seed in $SEEDS; do
  for arm in answers traces; do
    m="${arm}_seed$seed"
    [ -f "$OUT/$m.gguf" ] || run $R sft --data "$OUT/$arm.jsonl" --tokenizer "$OUT/teacher.gguf" $STUDENT --steps $S_STEPS \
      --eval-every $S_STEPS --save-every $S_STEPS --seed $seed $TRAIN --out "$OUT/$m.gguf"
    [ -f "$OUT/$m.eval.json" ] || run $R eval --model "$OUT/$m.gguf" --data "$OUT/test.jsonl" --task arith --max-new 96 --batch 32 \
      --threads $TH --label $m --samples "$OUT/$m.samples.txt" --json-out "$OUT/$m.eval.json" > /dev/null
  done
done
python3 - "$OUT" $SEEDS <<'PY' | tee "$OUT/summary.txt" | tee -a "$OUT/run.log"
import json, math, statistics as st, sys
d, seeds = sys.argv[1], sys.argv[2:]
acc = lambda m: json.load(open(f"{d}/{m}.eval.json"))["accuracy"] * 100
print(f"teacher {acc('teacher'):.1f}% on the test set; its traces for the student's prompts end right "
      f"{acc('traces_on_prompts'):.1f}% of the time")
# two-sided 95% t critical values for n-1 degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
res = {}
for arm in ("answers", "traces"):
    v = [acc(f"{arm}_seed{s}") for s in seeds]
    res[arm] = v
    m = st.mean(v)
    sd = st.stdev(v) if len(v) > 1 else float("nan")
    ci = T95.get(len(v) - 1, 1.96) * sd / math.sqrt(len(v)) if len(v) > 1 else float("nan")
    print(f"  {arm:8s} " + " ".join(f"{x:5.1f}" for x in v) + f"   mean {m:.1f} ± {sd:.1f} (sd), 95% CI ± {ci:.1f}")
diff = [t - a for t, a in zip(res["traces"], res["answers"])]
print(f"  traces - answers, paired by seed: " + " ".join(f"{x:+.1f}" for x in diff) + f"   mean {st.mean(diff):+.1f} points")
PY
log "load: $(cat /proc/loadavg)"
