#!/usr/bin/env bash
# experiments/guard/distill.sh — what the guard is worth to the API owner: students trained
# (black-box SFT) on what each attacker harvested WITH the guard enforcing, against students
# trained on what the same attacker harvested WITHOUT it (the shadow-mode control day), all
# with the same recipe and steps, scored against the teacher on held-out teacher text in the
# format the student was trained on.
# Needs the output directory of experiments/guard/run.sh and a `retort` with the sft and
# eval commands (issue #4's distillation; set RETORT_SFT if it is another binary).
# Usage: experiments/guard/distill.sh TEACHER.gguf RUNDIR [STEPS] [ATTACKERS...]
# A student already trained in RUNDIR/distill (its .gguf exists) is scored again, not retrained.
set -euo pipefail
TEACHER=${1:?teacher.gguf}; RUN=${2:?run directory}; STEPS=${3:-200}; shift 3 || true
# not bulk-1 or walk-0: they supply the held-out evaluation text
ATTACKERS=("$@"); [ ${#ATTACKERS[@]} -gt 0 ] || ATTACKERS=(bulk-0 logprob-0 sybil-0 template-0)
SEQ=128
R=${RETORT_SFT:-build/retort}
"$R" sft --help >/dev/null 2>&1 || { echo "error: $R has no sft command (set RETORT_SFT)"; exit 1; }
OUT=$RUN/distill; mkdir -p "$OUT"
# held-out evaluation text, the teacher's answers on the control day to prompts no student
# trains on: raw format (prompt, then the completion) from the second bulk harvester's
# /v1/completions answers; chat format from the corpus walk's chat answers. Completion tokens
# scored. Lines with a NUL byte in the text are left out (sft and eval refuse them).
for a in bulk-1 walk-0; do
  for a2 in "${ATTACKERS[@]}"; do [ "$a2" != "$a" ] || { echo "error: $a supplies the evaluation text"; exit 1; }; done
done
awk '!/\\u0000/ && n < 400 { print; n++ }' "$RUN/harvest-control/day-bulk-1.jsonl" > "$OUT/eval-raw.jsonl"
awk '!/\\u0000/ && n < 400 { print; n++ }' "$RUN/harvest-control/day-walk-0.jsonl" > "$OUT/eval-chat.jsonl"
# the floor: a student that saw nothing (one step at lr 0 = its initialisation), same context
if [ ! -f "$OUT/untrained.gguf" ]; then
  head -n 8 "$RUN/harvest-control/day-bulk-0.jsonl" > "$OUT/tiny.jsonl"
  "$R" sft --data "$OUT/tiny.jsonl" --tokenizer "$TEACHER" --steps 1 --lr 0 --warmup 0 --seq-len $SEQ --quiet \
    --out "$OUT/untrained.gguf" >/dev/null
fi
for fmt in raw chat; do
  "$R" eval --model "$OUT/untrained.gguf" --data "$OUT/eval-$fmt.jsonl" --format $fmt --teacher "$TEACHER" \
    --label "untrained-$fmt" > "$OUT/untrained-$fmt.json"
done
for a in "${ATTACKERS[@]}"; do
  for set in guarded control; do
    data=$RUN/harvest-$set/day-$a.jsonl
    n=$(wc -l < "$data" 2>/dev/null || echo 0)
    if [ "$n" -eq 0 ]; then echo "{\"label\":\"$a-$set\",\"examples\":0}" > "$OUT/$a-$set.json"; continue; fi
    soft=(); [ "$a" = "logprob-0" ] || soft=(--no-soft)
    fmt=chat; [[ "$a" == bulk-* ]] && fmt=raw
    if [ ! -f "$OUT/$a-$set.gguf" ]; then
      # --skip-bad: a line whose top_logprobs hold a NUL-byte token is refused by sft's parser
      "$R" sft --data "$data" --tokenizer "$TEACHER" --format "$fmt" "${soft[@]}" --steps "$STEPS" --batch 8 \
        --seq-len $SEQ --skip-bad --quiet --out "$OUT/$a-$set.gguf" > "$OUT/$a-$set.log" 2>&1
    fi
    "$R" eval --model "$OUT/$a-$set.gguf" --data "$OUT/eval-$fmt.jsonl" --format $fmt --teacher "$TEACHER" \
      --label "$a-$set" > "$OUT/$a-$set.json"
    python3 - "$OUT/$a-$set.json" "$n" "$fmt" <<'PY'
import json, sys
p, n, fmt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
d = json.load(open(p)); d["examples"] = n; d["format"] = fmt; json.dump(d, open(p, "w"))
PY
    echo "$a $set: $n examples -> $(cat "$OUT/$a-$set.json")"
  done
done
