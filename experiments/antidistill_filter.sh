#!/usr/bin/env bash
# antidistill_filter.sh — the harvester's answer to a teacher that hides its working: keep only
# the harvested answers that show working and train on those (docs/antidistill.md, "Working
# shown or not"). For each setting named, in a folder written by antidistill_tradeoff.sh with
# FORMAT=terse: the setting's answers whose completion does not start with " answer" are kept
# (gen_NAME_worked.jsonl), a student of the same shape and steps is sft'd on them for each seed
# and scored on the same test problems; one line per setting is appended to filtered.tsv.
# Usage: experiments/antidistill_filter.sh DIR SETTING...   (e.g. plain lambda0.5_gate0.5)
set -euo pipefail
cd "$(dirname "$0")/.."
R=${R:-build/retort}
DIR=$1; shift
TH=${THREADS:-2}
NICE=${NICE:-nice -n 10}
S_STEPS=${S_STEPS:-2000}
STUDENT_SEEDS=${STUDENT_SEEDS:-"3 4 5 6 7 8 9 10"}
OUT=$DIR
source experiments/antidistill_students.sh  # STUDENT, TRAIN, log, run, student
[ -f "$DIR/filtered.tsv" ] || printf "setting\tkept\tof\tstudent_acc\tstudent_sd\tstudent_accs\n" > "$DIR/filtered.tsv"
for name in "$@"; do
  src="$DIR/gen_$name.jsonl"
  [ -f "$src" ] || { echo "antidistill_filter: $src: no such file (run antidistill_tradeoff.sh first)" >&2; exit 1; }
  counts=$(python3 - "$src" "$DIR/gen_${name}_worked.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
kept = [r for r in rows if not r["completion"].startswith(" answer")]
with open(sys.argv[2], "w") as o:
    for r in kept:
        o.write(json.dumps(r) + "\n")
print("%d\t%d" % (len(kept), len(rows)))
EOF
)
  if [ "${counts%%$'\t'*}" = 0 ]; then # every answer hides its working: nothing to train on
    printf "%s\t%s\t-\t-\t-\n" "$name" "$counts" | tee -a "$DIR/filtered.tsv"
    continue
  fi
  line=$(student "${name}_worked" "$DIR/gen_${name}_worked.jsonl")
  printf "%s\t%s\t%s\n" "$name" "$counts" "$line" | tee -a "$DIR/filtered.tsv"
done
