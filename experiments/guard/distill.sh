#!/usr/bin/env bash
# experiments/guard/distill.sh — what the guard is worth to the API owner: students trained
# (black-box SFT) on what each attacker harvested WITH the guard enforcing, against students
# trained on what the same attacker harvested WITHOUT it (the shadow-mode control day), all
# with the same recipe and steps, scored against the teacher on held-out teacher text.
# Needs the output directory of experiments/guard/run.sh and a `retort` with the sft and
# eval commands (issue #4's distillation; set RETORT_SFT if it is another binary).
# Usage: experiments/guard/distill.sh TEACHER.gguf RUNDIR [STEPS] [ATTACKERS...]
set -euo pipefail
TEACHER=${1:?teacher.gguf}; RUN=${2:?run directory}; STEPS=${3:-200}; shift 3 || true
ATTACKERS=("$@"); [ ${#ATTACKERS[@]} -gt 0 ] || ATTACKERS=(bulk-0 logprob-0 sybil-0 template-0)   # not walk-0: it supplies the evaluation text
R=${RETORT_SFT:-build/retort}
"$R" sft --help >/dev/null 2>&1 || { echo "error: $R has no sft command (set RETORT_SFT)"; exit 1; }
OUT=$RUN/distill; mkdir -p "$OUT"
# held-out evaluation text: the teacher's answers to the corpus walk's prompts on the control
# day (no student trains on those prompts; they were asked on the chat endpoint, so they are
# scored in the chat format), completion tokens scored
EVAL=$OUT/eval.jsonl
# (lines with a NUL byte in the text are left out: sft and eval refuse them)
awk '!/\\u0000/ && n < 400 { print; n++ }' "$RUN/harvest-control/day-walk-0.jsonl" > "$EVAL"
# the floor: a student that saw nothing (one step at lr 0 = its initialisation)
if [ ! -f "$OUT/untrained.gguf" ]; then
  head -n 8 "$RUN/harvest-control/day-bulk-0.jsonl" > "$OUT/tiny.jsonl"
  "$R" sft --data "$OUT/tiny.jsonl" --tokenizer "$TEACHER" --steps 1 --lr 0 --warmup 0 --quiet --out "$OUT/untrained.gguf" >/dev/null
fi
"$R" eval --model "$OUT/untrained.gguf" --data "$EVAL" --format chat --teacher "$TEACHER" --label untrained > "$OUT/untrained.json"
for a in "${ATTACKERS[@]}"; do
  for set in guarded control; do
    data=$RUN/harvest-$set/day-$a.jsonl
    n=$(wc -l < "$data")
    if [ "$n" -eq 0 ]; then echo "{\"label\":\"$a-$set\",\"examples\":0}" > "$OUT/$a-$set.json"; continue; fi
    soft=(); [ "$a" = "logprob-0" ] || soft=(--no-soft)
    fmt=chat; [[ "$a" == bulk-* ]] && fmt=raw
    # --skip-bad: a line whose top_logprobs hold a NUL-byte token is refused by sft's parser
    "$R" sft --data "$data" --tokenizer "$TEACHER" --format "$fmt" "${soft[@]}" --steps "$STEPS" --batch 8 \
      --seq-len 128 --skip-bad --quiet --out "$OUT/$a-$set.gguf" > "$OUT/$a-$set.log" 2>&1
    "$R" eval --model "$OUT/$a-$set.gguf" --data "$EVAL" --format chat --teacher "$TEACHER" --label "$a-$set" \
      > "$OUT/$a-$set.json"
    python3 - "$OUT/$a-$set.json" "$n" <<'PY'
import json, sys
p, n = sys.argv[1], int(sys.argv[2])
d = json.load(open(p)); d["examples"] = n; json.dump(d, open(p, "w"))
PY
    echo "$a $set: $n examples -> $(cat "$OUT/$a-$set.json")"
  done
done
