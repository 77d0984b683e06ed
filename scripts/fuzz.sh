#!/usr/bin/env bash
# scripts/fuzz.sh — runs the fuzz targets `make fuzz-build` made in $FUZZ_BUILD/fuzz/, one at a
# time: libFuzzer first executes every input of $FUZZ_BUILD/corpus/<name>/ and of the seed corpus
# fuzz/corpus/<name>/ (seeds and the inputs of crashes once found and fixed — a regression
# check), then fuzzes for SECONDS, growing $FUZZ_BUILD/corpus/<name>/. Crashes, leaks, timeouts
# (> 10 s an input) and out-of-memory (> 2 GB) fail the run; the input is saved as
# $FUZZ_BUILD/crashes/<name>-crash-*.
# Prints one line per target — name, executions, exec/s, corpus size, result — and appends it
# to $FUZZ_BUILD/fuzz-stats.tsv (for docs/security.md).
# Usage: scripts/fuzz.sh SECONDS [name ...]   (name: tokenizer, gguf, ... ; default all)
set -uo pipefail
cd "$(dirname "$0")/.."
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
secs=${1:?usage: scripts/fuzz.sh SECONDS [name ...]}
shift
names=("$@")
if [ ${#names[@]} = 0 ]; then
  for s in fuzz/fuzz_*.c; do n=$(basename "$s" .c); names+=("${n#fuzz_}"); done
fi
mkdir -p "$FUZZ_BUILD/crashes" "$FUZZ_BUILD/logs"
fail=0
for n in "${names[@]}"; do
  bin=$FUZZ_BUILD/fuzz/fuzz_$n
  [ -x "$bin" ] || { echo "fuzz: $bin is not built (make fuzz-build)"; fail=1; continue; }
  seeds=fuzz/corpus/$n
  work=$FUZZ_BUILD/corpus/$n
  mkdir -p "$work"
  log=$FUZZ_BUILD/logs/$n.log
  opts=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$FUZZ_BUILD/crashes/$n-")
  # libFuzzer first runs every input of the corpus directories (the work corpus, then the seeds
  # and regression inputs), then mutates for $secs seconds
  dirs=("$work"); [ -d "$seeds" ] && dirs+=("$seeds")
  t0=$(date +%s)
  "$bin" "${opts[@]}" -max_total_time="$secs" "${dirs[@]}" > "$log" 2>&1
  rc=$?
  execs=$(grep -h 'stat::number_of_executed_units' "$log" | tail -n 1 | awk '{print $2}')
  rate=$(grep -h 'stat::average_exec_per_sec' "$log" | tail -n 1 | awk '{print $2}')
  ncorp=$(find "$work" -type f | wc -l)
  result=ok
  if [ $rc != 0 ]; then
    result="CRASH rc=$rc"; fail=1
  fi
  printf '%-16s %10s execs %8s/s  corpus %5d  %4ds  %s\n' "$n" "${execs:-?}" "${rate:-?}" "$ncorp" \
    $(( $(date +%s) - t0 )) "$result"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$n" "${execs:-0}" "$secs" "$ncorp" "$result" \
    >> "$FUZZ_BUILD/fuzz-stats.tsv"
  if [ $rc != 0 ]; then
    grep -h -A 25 'ERROR: \|==ERROR\|invariant failed\|runtime error' "$log" | head -n 40 | sed 's/^/      /'
    ls -t "$FUZZ_BUILD"/crashes/"$n"-* 2>/dev/null | head -n 1 | sed 's/^/      input: /'
  fi
done
exit $fail
