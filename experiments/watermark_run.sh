#!/usr/bin/env bash
# experiments/watermark_run.sh — the watermark experiments of docs/watermark.md, end to end:
#   teacher   train the teacher (skipped when $OUT/teacher.gguf exists)
#   detect    watermarked / plain generations on held-out prompts (several schemes and deltas),
#             detection at 25..400 tokens, teacher perplexity of each set, human text
#   robust    random token substitution / deletion at 10..40%, then detection
#   radio     harvest (watermarked and plain) -> students at 0..100% watermarked ->
#             closed and open radioactivity tests with control keys; extra clean students
#             (= radio_students, radio_tests [env PCTS, KINDS], radio_controls)
#   report    tables and SVG plots (experiments/watermark_analyze.py)
# Every command is echoed to $OUT/commands.log; results go to $OUT/results/ (JSON, one
# object a line). Stages skip work whose output exists, so a killed run resumes.
# Usage: experiments/watermark_run.sh [stage ...]   (default: all)   env: OUT, R, THREADS, STUDENT_STEPS
set -euo pipefail
cd "$(dirname "$0")/.."
R=${R:-build/retort}
OUT=${OUT:-out/wm}
THREADS=${THREADS:-2}
TEACHER=${TEACHER:-$OUT/teacher.gguf}
KEY=$OUT/k.key
N_TEST=${N_TEST:-200}        # held-out prompts for detection
N_TRAIN=${N_TRAIN:-1500}     # harvest prompts
mkdir -p "$OUT/results" "$OUT/gen" "$OUT/students" "$OUT/logs"
log() { echo "+ $*" >> "$OUT/commands.log"; }
run() { log "$@"; "$@"; }

stage_teacher() {
  [ -f "$TEACHER" ] && return
  run $R train --data build/data/kjv.txt --vocab-size 1024 --dim 128 --layers 4 --heads 4 --kv-heads 2 --ffn 352 \
    --seq-len 128 --batch 16 --steps 800 --eval-every 200 --threads $THREADS --out "$TEACHER" --quiet
}

stage_data() {
  # the prompt sets of docs/watermark.md were cut with the defaults (--train 2000 --test 300)
  # and then their first N_TRAIN / N_TEST lines taken (the split depends on the set sizes)
  [ -f "$OUT/data/prompts_test.txt" ] || run /usr/bin/python3 experiments/watermark_prompts.py build/data/kjv.txt "$OUT/data" \
    --train $((N_TRAIN > 2000 ? N_TRAIN : 2000)) --test $((N_TEST > 300 ? N_TEST : 300)) --human 200
  head -n $N_TEST "$OUT/data/prompts_test.txt" > "$OUT/data/prompts_test_n.txt"
  head -n $N_TRAIN "$OUT/data/prompts_train.txt" > "$OUT/data/prompts_train_n.txt"
  [ -f "$KEY" ] || run $R watermark keygen --out "$KEY" > "$OUT/results/key.json"
}

# gen NAME MAXTOK PROMPTS [watermark flags...]
gen() {
  local name=$1 max=$2 prompts=$3; shift 3
  [ -f "$OUT/gen/$name.jsonl" ] && return
  local cfg=()
  [ $# -gt 0 ] && cfg=(--config-out "$OUT/gen/$name.wm.json")
  run $R watermark generate --model "$TEACHER" --prompts "$prompts" --out "$OUT/gen/$name.jsonl" --max-tokens $max \
    --batch 32 --seed 100 --threads $THREADS --quiet "$@" "${cfg[@]}" 2>> "$OUT/logs/gen.log"
}

# detect SETNAME GENNAME DETECT-FLAGS... -> results/detect_SET.jsonl lines {set, length, record results}
detect_lengths() {
  local set=$1 file=$2; shift 2
  local res="$OUT/results/detect_$set.jsonl"
  [ -f "$res" ] && return
  : > "$res.tmp"
  for L in 25 50 100 200 400; do
    log $R watermark detect --tokenizer "$TEACHER" --key-file "$KEY" "$@" --input "$file" --max-tokens $L
    $R watermark detect --tokenizer "$TEACHER" --key-file "$KEY" "$@" --input "$file" --max-tokens $L |
      sed "s/^{/{\"set\": \"$set\", \"length\": $L, /" >> "$res.tmp"
  done
  mv "$res.tmp" "$res"
}

stage_detect() {
  stage_data
  local P="$OUT/data/prompts_test_n.txt"
  gen plain 400 "$P"
  for d in 0.5 1 2 4; do gen kgw_d$d 400 "$P" --key-file "$KEY" --delta $d; done
  gen selfhash_d2 400 "$P" --key-file "$KEY" --scheme kgw-selfhash --delta 2
  gen gumbel 400 "$P" --key-file "$KEY" --scheme gumbel --context 1   # run before h = 4 became the default
  gen gumbel_h4 400 "$P" --key-file "$KEY" --scheme gumbel --context 4
  for d in 0.5 1 2 4; do detect_lengths kgw_d$d "$OUT/gen/kgw_d$d.jsonl" --config "$OUT/gen/kgw_d$d.wm.json"; done
  detect_lengths selfhash_d2 "$OUT/gen/selfhash_d2.jsonl" --config "$OUT/gen/selfhash_d2.wm.json"
  detect_lengths gumbel "$OUT/gen/gumbel.jsonl" --config "$OUT/gen/gumbel.wm.json"
  detect_lengths gumbel_h4 "$OUT/gen/gumbel_h4.jsonl" --config "$OUT/gen/gumbel_h4.wm.json"
  # false positives: plain generations and human text, under each scheme's detector
  detect_lengths plain_kgw "$OUT/gen/plain.jsonl" --scheme kgw
  detect_lengths plain_selfhash "$OUT/gen/plain.jsonl" --scheme kgw-selfhash
  detect_lengths plain_gumbel "$OUT/gen/plain.jsonl" --scheme gumbel --context 1
  detect_lengths plain_gumbel_h4 "$OUT/gen/plain.jsonl" --scheme gumbel --context 4
  detect_lengths human_kgw "$OUT/data/human.jsonl" --scheme kgw
  # plain generations under 20 fresh keys (the null is the same for any key)
  local res="$OUT/results/detect_plain_keys.jsonl"
  if [ ! -f "$res" ]; then
    : > "$res.tmp"
    for i in $(seq 1 20); do
      $R watermark keygen --out "$OUT/logs/null$i.key" > /dev/null
      $R watermark detect --tokenizer "$TEACHER" --key-file "$OUT/logs/null$i.key" --input "$OUT/gen/plain.jsonl" \
        --max-tokens 200 | sed "s/^{/{\"set\": \"plain_keys\", \"length\": 200, \"key\": $i, /" >> "$res.tmp"
      rm -f "$OUT/logs/null$i.key"
    done
    log "(20 fresh keys) $R watermark detect --tokenizer $TEACHER --key-file NULLKEY --input $OUT/gen/plain.jsonl --max-tokens 200"
    mv "$res.tmp" "$res"
  fi
  # quality: the teacher's own perplexity of each set (first 200 tokens of each completion are
  # what the detector needs; ppl is over whole completions)
  local q="$OUT/results/ppl.jsonl"
  if [ ! -f "$q" ]; then
    : > "$q.tmp"
    for s in plain kgw_d0.5 kgw_d1 kgw_d2 kgw_d4 selfhash_d2 gumbel gumbel_h4; do
      log $R watermark ppl --model "$TEACHER" --input "$OUT/gen/$s.jsonl" --threads $THREADS
      $R watermark ppl --model "$TEACHER" --input "$OUT/gen/$s.jsonl" --threads $THREADS | sed "s/^{/{\"set\": \"$s\", /" >> "$q.tmp"
    done
    mv "$q.tmp" "$q"
  fi
}

stage_robust() {
  stage_detect
  local res="$OUT/results/robust.jsonl"
  [ -f "$res" ] && return
  : > "$res.tmp"
  for s in kgw_d2 selfhash_d2 gumbel; do
    for kind in substitute delete; do
      for f in 0.1 0.2 0.3 0.4; do
        local a="$OUT/gen/${s}_${kind}_$f.jsonl"
        [ -f "$a" ] || run $R watermark attack --tokenizer "$TEACHER" --input "$OUT/gen/$s.jsonl" --out "$a" --$kind $f --seed 7
        log $R watermark detect --tokenizer "$TEACHER" --key-file "$KEY" --config "$OUT/gen/$s.wm.json" --input "$a" --max-tokens 200
        $R watermark detect --tokenizer "$TEACHER" --key-file "$KEY" --config "$OUT/gen/$s.wm.json" --input "$a" --max-tokens 200 |
          sed "s/^{/{\"set\": \"$s\", \"attack\": \"$kind\", \"rate\": $f, /" >> "$res.tmp"
      done
    done
  done
  mv "$res.tmp" "$res"
}

# ---------------------------------------------------------------- radioactivity

STUDENT_FLAGS=${STUDENT_FLAGS:---dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 192 --seq-len 128 --batch 16}
STUDENT_STEPS=${STUDENT_STEPS:-300}

have_sft() { $R sft --help > /dev/null 2>&1; }

# train_student NAME DATA.jsonl SEED
train_student() {
  local name=$1 data=$2 seed=$3 s="$OUT/students/$1.gguf"
  [ -f "$s" ] && return
  if [ "$USE_SFT" = 1 ]; then
    run $R sft --data "$data" --tokenizer "$TEACHER" $STUDENT_FLAGS --steps $STUDENT_STEPS --eval-every 200 \
      --seed $seed --threads $THREADS --out "$s" --quiet 2> "$OUT/logs/$name.log"
  else
    # plain next-token training on prompt + completion text (retort sft not available)
    /usr/bin/python3 -c "
import json,sys
with open(sys.argv[2],'w') as f:
    for l in open(sys.argv[1]):
        r=json.loads(l); f.write(r.get('prompt','')+r['completion']+'\n')" "$data" "$data.txt"
    run $R train --data "$data.txt" --tokenizer "$TEACHER" $STUDENT_FLAGS --steps $STUDENT_STEPS --eval-every 200 \
      --seed $seed --threads $THREADS --out "$s" --quiet 2> "$OUT/logs/$name.log"
  fi
}

# radio NAME STUDENT MODE EXTRA... -> one line in results/radio.jsonl
radio() {
  local tag=$1 s=$2 mode=$3; shift 3
  local res="$OUT/results/radio.jsonl"
  if [ -f "$res" ] && grep -q "\"tag\": \"$tag\"" "$res"; then return; fi
  log $R radioactivity --suspect "$s" --tokenizer "$TEACHER" --key-file "$KEY" --mode $mode "$@" --threads $THREADS --quiet
  $R radioactivity --suspect "$s" --tokenizer "$TEACHER" --key-file "$KEY" --mode $mode "$@" --threads $THREADS --quiet |
    sed "s/^{/{\"tag\": \"$tag\", /" >> "$res"
}

# one radioactivity test of student s$p, by kind
radio_kind() {
  local kind=$1 p=$2 s="$OUT/students/s$2.gguf"
  case $kind in
    # closed, the paper's rule: never score a tuple whose window occurs in a prompt (exact
    # even for watermarked prompts; here it excludes most windows: h = 1 and a 1k vocabulary)
    closed) radio "closed_$p" "$s" closed --prompts "$OUT/data/prompts_test_n.txt" --max-tokens 64 --seed 5 ;;
    # closed, excluding only the prompts' own tuples (the prompts are human text: exact)
    closed_tuples) radio "closed_tuples_$p" "$s" closed --prompts "$OUT/data/prompts_test_n.txt" --max-tokens 64 \
      --seed 5 --exclude tuples ;;
    # open over fresh watermarked teacher text, its tuples excluded (conservative)
    open_fresh) radio "open_fresh_$p" "$s" open --text "$OUT/gen/read_wm.jsonl" ;;
    # open over 400 records of the watermarked harvest (the students' own training text)
    open_train) radio "open_train_$p" "$s" open --text "$OUT/gen/harvest_wm_400.jsonl" ;;
    # open over human text (independent of the key: nothing to exclude, exact)
    open_human) radio "open_human_$p" "$s" open --text "$OUT/data/human.jsonl" --exclude none ;;
  esac
}

PCTS=${PCTS:-0 1 5 10 50 100}
KINDS=${KINDS:-closed closed_tuples open_fresh open_train open_human}

# harvest, mixes, students (s0..s100 on 0..100% watermarked records; s0_b, s0_c: clean, other seeds)
stage_radio_students() {
  stage_data
  gen harvest_plain 128 "$OUT/data/prompts_train_n.txt"
  gen harvest_wm 128 "$OUT/data/prompts_train_n.txt" --key-file "$KEY"
  if [ -z "${USE_SFT:-}" ]; then USE_SFT=0; have_sft && USE_SFT=1; fi
  echo "students trained with $([ $USE_SFT = 1 ] && echo 'retort sft' || echo 'retort train (sft unavailable)')" | tee -a "$OUT/commands.log"
  # fresh watermarked text for open mode (not in any student's data)
  gen read_wm 128 "$OUT/data/prompts_test_n.txt" --key-file "$KEY"
  head -n 400 "$OUT/gen/harvest_wm.jsonl" > "$OUT/gen/harvest_wm_400.jsonl"
  for p in 0 1 5 10 50 100; do
    [ -f "$OUT/students/mix_$p.jsonl" ] || run /usr/bin/python3 experiments/watermark_mix.py "$OUT/gen/harvest_wm.jsonl" \
      "$OUT/gen/harvest_plain.jsonl" $p "$OUT/students/mix_$p.jsonl"
    train_student s$p "$OUT/students/mix_$p.jsonl" 11
  done
  train_student s0_b "$OUT/students/mix_0.jsonl" 12
  train_student s0_c "$OUT/students/mix_0.jsonl" 13
}

# the tests of $KINDS on students s$PCTS (env), in that order
stage_radio_tests() {
  for p in $PCTS; do for k in $KINDS; do radio_kind $k $p; done; done
}

# clean-student control runs with the real key: clean students ($CONTROL_STUDENTS) x 5 sampling
# seeds (closed, prompt tuples excluded) and open mode over human text (for s0 that run is
# open_human_0 of radio_tests: the same evidence, not run twice)
CONTROL_STUDENTS=${CONTROL_STUDENTS:-s0 s0_b s0_c}
stage_radio_controls() {
  for s in $CONTROL_STUDENTS; do
    for seed in 21 22 23 24 25; do
      radio "control_closed_${s}_$seed" "$OUT/students/$s.gguf" closed --prompts "$OUT/data/prompts_test_n.txt" \
        --max-tokens 64 --seed $seed --exclude tuples
    done
    [ $s = s0 ] || radio "control_open_human_$s" "$OUT/students/$s.gguf" open --text "$OUT/data/human.jsonl" --exclude none
  done
}

stage_radio() {
  stage_radio_students
  stage_radio_tests
  stage_radio_controls
}

stage_report() {
  run /usr/bin/python3 experiments/watermark_analyze.py "$OUT" docs
}

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(teacher detect robust radio report)
for s in "${stages[@]}"; do
  echo "== $s ($(date +%H:%M:%S))"
  stage_$s
done
