#!/usr/bin/env bash
# antidistill_tradeoff.sh — the trade-off of antidistillation sampling (docs/antidistill.md):
# what a user of the teacher gets (the teacher's accuracy on the prompts it answers) against
# what a harvester gets (the accuracy of a student sft'd on those answers), for a range of
# lambda, with plain sampling, the watermark alone, and answers-only training as controls.
#   1. a teacher learns column arithmetic with working (sft on labelled problems);
#   2. a proxy student (the student's shape, briefly trained on a few labelled problems) and
#      a task file (other problems with working) define the shift;
#   3. for each setting the teacher answers the harvest prompts (greedy), and a fresh student
#      is sft'd on those prompt/answer pairs; answers-only: the same prompts, completion
#      " answer N" (the true answer, no working);
#   4. every student is scored on held-out problems (eval --task arith, greedy); one table
#      (results.tsv), one JSON per run, and a plot (antidistill_tradeoff.svg).
# Usage: experiments/antidistill_tradeoff.sh [OUT_DIR]   (defaults: ~35 min on 2 busy cores;
# results of the runs and their commands in docs/antidistill.md)
# Every size is an environment variable (below); LAMBDAS is a space-separated list of
# LAMBDA, LAMBDA:GATE or LAMBDA:GATE:SCOPE (the gate: --antidistill-gate, shift only where the
# teacher's top-1 logit leads by less than GATE; the scope: --antidistill-task-scope, which
# task tokens the proxy's gradient scores: all (default), digits or answer). FORMAT=free gives
# every trace free choices: a connective word drawn at random from 8 before each step and
# before the answer (" so 7*4=28, then 6*4+2=26; thus answer 268"), the same arithmetic;
# FORMAT=free2 also writes each step's terms and factors in a random order (" so 4*7=28, then
# 2+4*6=26; thus answer 268": more free choices, on digits); FORMAT=terse teaches the teacher
# to answer with its working (a share P_WORK of its labelled problems) or with the answer alone
# (" answer 268"), so whether the working is shown is a free choice at the first token of an
# answer (TEACHER, T_STEPS, T_BATCH and N_LABELLED size the teacher: answering without working
# must be as accurate); TEMP > 0 samples the teacher's answers at that temperature (top-k/top-p
# off) instead of greedily.
set -euo pipefail
cd "$(dirname "$0")/.."
R=${R:-build/retort}
OUT=${1:-build/exp/antidistill}
TH=${THREADS:-2}
NICE=${NICE:-nice -n 10}
N_LABELLED=${N_LABELLED:-3000}
N_HARVEST=${N_HARVEST:-1500}
N_TEST=${N_TEST:-300}
N_TASK=${N_TASK:-64}
N_PROXY=${N_PROXY:-300}
DIGITS=${DIGITS:-2}
T_STEPS=${T_STEPS:-1500}
T_BATCH=${T_BATCH:-16}
P_STEPS=${P_STEPS:-200}
S_STEPS=${S_STEPS:-1000}
LAMBDAS=${LAMBDAS:-"0.01 0.02 0.04 0.06 0.08 0.16"}
EPS=${EPS:-0.01}
FORMAT=${FORMAT:-plain}
P_WORK=${P_WORK:-0.6}  # FORMAT=terse: the share of the teacher's labelled problems that show their working
TEMP=${TEMP:-0}
SEED=${SEED:-1}
STUDENT_SEEDS=${STUDENT_SEEDS:-"3 4 5"}  # each student is trained once per seed; mean and sd reported
TEACHER=${TEACHER:-"--dim 96 --layers 3 --heads 4 --kv-heads 2 --ffn 256"}
source experiments/antidistill_students.sh  # STUDENT, TRAIN, log, run, student
log "load average: $(cut -d' ' -f1-3 /proc/loadavg); seed $SEED; lambdas $LAMBDAS; eps $EPS; format $FORMAT; temperature $TEMP"

run $R data arith --n $N_LABELLED --digits $DIGITS --seed $SEED --out "$OUT/labelled.jsonl"
run $R data arith --n $N_HARVEST --digits $DIGITS --seed $((SEED + 100)) --out "$OUT/harvest_prompts.jsonl"
run $R data arith --n $N_TEST --digits $DIGITS --seed $((SEED + 200)) --out "$OUT/test.jsonl"
run $R data arith --n $N_TASK --digits $DIGITS --seed $((SEED + 300)) --out "$OUT/task.jsonl"
if [ "$FORMAT" = terse ]; then
  # the teacher's own labelled problems show the working with probability P_WORK and only the
  # answer otherwise (" answer 324"), so the teacher learns both ways of answering and the
  # first token of every answer is a free choice that decides whether the working is shown;
  # the task file and the test problems keep the working (deterministic for SEED)
  python3 - "$OUT/labelled.jsonl" "$SEED" "$P_WORK" <<'EOF'
import json, random, sys
path, seed, p_work = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rng = random.Random(seed * 15485863)
rows = [json.loads(l) for l in open(path)]
with open(path + ".tmp", "w") as o:
    for r in rows:
        if rng.random() >= p_work:
            r["completion"] = " answer " + r["answer"]
        o.write(json.dumps(r) + "\n")
EOF
  mv "$OUT/labelled.jsonl.tmp" "$OUT/labelled.jsonl"
fi
if [ "$FORMAT" = free ] || [ "$FORMAT" = free2 ]; then
  # the same problems and working, a connective drawn from 8 before each step and the answer
  # (deterministic: a rerun in the same folder rewrites the same files); free2 also writes each
  # step's terms and factors in a random order (" so 4*7=28, then 2+4*6=26; thus answer 268")
  for f in labelled task test; do
    python3 - "$OUT/$f.jsonl" "$SEED" "$FORMAT" <<'EOF'
import json, random, sys
path, seed, fmt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(seed * 7919 + len(path))
order = random.Random(seed * 104729 + len(path))  # free2's orders: free's connectives stay as they were
words = ["so", "then", "next", "now", "ok", "and", "thus", "hence"]
def shuffled(step):
    if fmt != "free2":
        return step
    lhs, rhs = step.split("=")
    terms = [t.split("*") for t in lhs.split("+")]
    for t in terms:
        order.shuffle(t)
    order.shuffle(terms)
    return "+".join("*".join(t) for t in terms) + "=" + rhs
rows = [json.loads(l) for l in open(path)]
with open(path + ".tmp", "w") as o:
    for r in rows:
        steps, ans = r["completion"].strip().split("; answer ")
        parts = [shuffled(p) for p in steps.split(", ")]
        r["completion"] = " " + ", ".join(rng.choice(words) + " " + p for p in parts) + "; " + rng.choice(words) + " answer " + ans
        o.write(json.dumps(r) + "\n")
EOF
    mv "$OUT/$f.jsonl.tmp" "$OUT/$f.jsonl"
  done
fi
head -n $N_PROXY "$OUT/labelled.jsonl" > "$OUT/proxy_data.jsonl"
[ -f "$OUT/teacher.gguf" ] || run $R sft --data "$OUT/labelled.jsonl" --vocab-size 262 $TEACHER --steps $T_STEPS $TRAIN --batch $T_BATCH --seed $SEED --out "$OUT/teacher.gguf"
[ -f "$OUT/proxy.gguf" ] || run $R sft --data "$OUT/proxy_data.jsonl" --tokenizer "$OUT/teacher.gguf" $STUDENT --steps $P_STEPS $TRAIN --seed $((SEED + 1)) --out "$OUT/proxy.gguf"
[ -f "$OUT/watermark.key" ] || run $R watermark keygen --out "$OUT/watermark.key"
# answers only: the harvest prompts with the true answer and no working
python3 - "$OUT/harvest_prompts.jsonl" "$OUT/answers_only.jsonl" <<'EOF'
import json, sys
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as o:
    for line in f:
        r = json.loads(line)
        o.write(json.dumps({"prompt": r["prompt"], "completion": " answer " + r["answer"], "answer": r["answer"]}) + "\n")
EOF

SAMPLE="--temperature 0"
[ "$TEMP" != 0 ] && SAMPLE="--temperature $TEMP --top-k 0 --top-p 1 --seed $SEED"
GEN="--model $OUT/teacher.gguf --prompts $OUT/harvest_prompts.jsonl --max-tokens 64 $SAMPLE --batch 16 --threads $TH --quiet"
# name, then the teacher's extra flags
settings=("plain|" "watermark|--watermark-key-file $OUT/watermark.key")
for lg in $LAMBDAS; do
  IFS=: read -r l g sc <<< "$lg"; g=${g:-0}; sc=${sc:-all}
  name="lambda$l"; [ "$g" != 0 ] && name="lambda${l}_gate$g"; [ "$sc" != all ] && name="${name}_$sc"
  settings+=("$name|--antidistill-proxy $OUT/proxy.gguf --antidistill-task $OUT/task.jsonl --antidistill-lambda $l --antidistill-eps $EPS --antidistill-gate $g --antidistill-task-scope $sc")
done
printf "setting\tlambda\tteacher_acc\tstudent_acc\tstudent_sd\tstudent_accs\tgen_seconds\tgate\tscope\n" > "$OUT/results.tsv"
for s in "${settings[@]}"; do
  name=${s%%|*}; flags=${s#*|}
  if [ ! -f "$OUT/gen_$name.jsonl" ]; then
    t0=$(date +%s.%N)
    run $R data generate $GEN $flags --out "$OUT/gen_$name.jsonl.tmp"
    python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$t0" "$(date +%s.%N)" > "$OUT/gen_$name.seconds"
    mv "$OUT/gen_$name.jsonl.tmp" "$OUT/gen_$name.jsonl"
  fi
  # the teacher's accuracy on the harvest prompts: completions that end in the true answer
  tacc=$(python3 - "$OUT/gen_$name.jsonl" <<'EOF'
import json, re, sys
ok = n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    m = re.findall(r"answer (\d+)", r["completion"])
    n += 1
    ok += bool(m) and m[-1].lstrip("0") == r["answer"].lstrip("0")
print(ok / n)
EOF
)
  sacc=$(student "$name" "$OUT/gen_$name.jsonl")
  lam=0; gate=0; scope=-
  if [[ $name == lambda* ]]; then
    IFS=_ read -r lam a b <<< "${name#lambda}"; scope=all
    for part in $a $b; do [[ $part == gate* ]] && gate=${part#gate} || scope=$part; done
  fi
  printf "%s\t%s\t%.4f\t%s\t%s\t%s\t%s\n" "$name" "$lam" "$tacc" "$sacc" "$(cat "$OUT/gen_$name.seconds")" "$gate" "$scope" | tee -a "$OUT/results.tsv"
done
aacc=$(student answers_only "$OUT/answers_only.jsonl")
printf "answers_only\t-\t-\t%s\t0\t-\t-\n" "$aacc" | tee -a "$OUT/results.tsv"
run $R eval --model "$OUT/teacher.gguf" --data "$OUT/test.jsonl" --task arith --max-new 64 --batch 32 --threads $TH --label teacher --json-out "$OUT/teacher.eval.json"
# the plot: teacher and student accuracy against lambda (plain sampling at lambda 0), the
# controls' students as reference lines
python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
rows = [l.rstrip("\n").split("\t") for l in open(out + "/results.tsv")][1:]
by = {r[0]: r for r in rows}
# one teacher and one student curve per gate value and task scope (plain sampling is lambda 0 of each)
scope = lambda r: r[8] if len(r) > 8 else "all"
gates = sorted({(r[7], scope(r)) for r in rows if r[0].startswith("lambda")}, key=lambda k: (float(k[0]), k[1])) or [("0", "all")]
files, labels = [], []
for g, sc in gates:
    sub = [r for r in rows if r[0] == "plain" or (r[0].startswith("lambda") and (r[7], scope(r)) == (g, sc))]
    tag = ", ".join(([] if g == "0" else ["gate %s" % g]) + ([] if sc == "all" else ["scope %s" % sc]))
    tag = " (%s)" % tag if tag else ""
    for who, col, lab in (("teacher", 2, "teacher%s: what users get" % tag), ("student", 3, "student%s: what a harvester gets" % tag)):
        f = "%s/curve_%s_gate%s%s.jsonl" % (out, who, g, "" if sc == "all" else "_" + sc)
        with open(f, "w") as o:
            for r in sub:
                o.write(json.dumps({"lambda": float(r[1]), "accuracy": float(r[col]), "sd": float(r[4]) if who == "student" else 0}) + "\n")
        files.append(f)
        labels.append(lab)
open(out + "/curve_files.txt", "w").write(" ".join(files))
open(out + "/curve_labels.txt", "w").write(",".join(labels))
print("goal check (docs/antidistill.md): answers-only %s, plain student %s" % (by["answers_only"][3], by["plain"][3]), file=sys.stderr)
gain0 = float(by["plain"][3]) - float(by["answers_only"][3])
for r in rows:
    if r[0].startswith("lambda"):
        lost = 100 * (float(r[2]) - float(by["plain"][2]))
        gain = float(r[3]) - float(by["answers_only"][3])
        print("  lambda %s gate %s scope %s: teacher %+.1f points, student gain over answers-only %.1f -> %.1f points (%.0f%% of it kept)"
              % (r[1], r[7], r[8] if len(r) > 8 else "all", lost, 100 * gain0, 100 * gain, 100 * gain / gain0 if gain0 else float("nan")), file=sys.stderr)
with open(out + "/hlines.txt", "w") as h:
    h.write("student on watermarked text=%s,student on answers only=%s" % (by["watermark"][3], by["answers_only"][3]))
EOF
run $R eval-plot --curves --x lambda --key accuracy --err-key sd --title "antidistillation on arithmetic: users vs harvester" \
  --labels "$(cat "$OUT/curve_labels.txt")" \
  --hlines "$(cat "$OUT/hlines.txt")" --out "$OUT/antidistill_tradeoff.svg" $(cat "$OUT/curve_files.txt")
log "results: $OUT/results.tsv"
cat "$OUT/results.tsv" | tee -a "$OUT/run.log" >&2
log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
