#!/usr/bin/env bash
# tests/run.sh — runs every test: the C unit tests (build/tests/test_*), then the
# reference checks against peers (tests/ref_*.sh: PyTorch, llama.cpp), each of which
# prints SKIP with a reason when its peer is not installed.
# Usage: tests/run.sh [--c-only] [name-filter]
set -u
BUILD=${BUILD:-build}
export BUILD
c_only=0
filter=""
for a in "$@"; do
  case "$a" in
    --c-only) c_only=1 ;;
    *) filter="$a" ;;
  esac
done
cd "$(dirname "$0")/.."
fail=0; passed=0; failed_list=()
run_one() {
  local name=$1; shift
  [ -n "$filter" ] && [[ "$name" != *"$filter"* ]] && return
  local t0=$(date +%s%N)
  if "$@" > "$BUILD/tests/$name.log" 2>&1; then
    passed=$((passed+1))
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    printf 'ok    %-28s %4d.%01ds\n' "$name" $((ms/1000)) $(((ms%1000)/100))
    grep -h '^SKIP' "$BUILD/tests/$name.log" | sed 's/^/      /'
  else
    fail=1; failed_list+=("$name")
    printf 'FAIL  %-28s (log: %s)\n' "$name" "$BUILD/tests/$name.log"
    tail -n 40 "$BUILD/tests/$name.log" | sed 's/^/      /'
  fi
}
mkdir -p "$BUILD/tests"
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  case "$t" in *.log|*.d) continue ;; esac
  run_one "$(basename "$t")" "$t"
done
if [ $c_only = 0 ]; then
  for s in tests/ref_*.sh; do
    [ -f "$s" ] || continue
    run_one "$(basename "$s" .sh)" bash "$s"
  done
fi
echo "passed: $passed  failed: ${#failed_list[@]} ${failed_list[*]:-}"
exit $fail
