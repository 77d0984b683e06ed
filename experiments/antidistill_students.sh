# shellcheck shell=bash
# antidistill_students.sh — sourced by antidistill_tradeoff.sh and antidistill_filter.sh: the
# student's shape and training flags, the run log ($OUT/run.log), and `student NAME DATA`, which
# sft's one student per seed of STUDENT_SEEDS on DATA (kept as $OUT/student_NAME_sSEED.gguf and
# reused), scores each on $OUT/test.jsonl and prints "mean<TAB>sd<TAB>acc,acc,...".
# Needs R, OUT, TH, NICE, S_STEPS and STUDENT_SEEDS set, and $OUT/teacher.gguf for the tokenizer.
STUDENT="--dim 64 --layers 2 --heads 2 --kv-heads 1 --ffn 176"
TRAIN="--seq-len 64 --batch 16 --lr 3e-3 --eval-every 200 --save-every 100000 --threads $TH --quiet"
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log" >&2; }
run() { log "\$ $*"; $NICE "$@" >> "$OUT/run.log" 2>&1; }

student() { # name data -> "mean<TAB>sd<TAB>acc,acc,..." over STUDENT_SEEDS
  local accs=""
  for ss in $STUDENT_SEEDS; do
    local m="$OUT/student_$1_s$ss"
    [ -f "$m.gguf" ] || run $R sft --data "$2" --tokenizer "$OUT/teacher.gguf" $STUDENT --steps $S_STEPS $TRAIN --seed $ss --out "$m.gguf"
    [ -f "$m.eval.json" ] || run $R eval --model "$m.gguf" --data "$OUT/test.jsonl" --task arith --max-new 64 --batch 32 \
      --threads $TH --label "$1 seed $ss" --json-out "$m.eval.json"
    accs="$accs $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["accuracy"])' "$m.eval.json")"
  done
  python3 -c 'import statistics as s, sys; a = [float(x) for x in sys.argv[1:]]; print("%.4f\t%.4f\t%s" % (s.mean(a), s.stdev(a) if len(a) > 1 else 0, ",".join("%.4f" % x for x in a)))' $accs
}
