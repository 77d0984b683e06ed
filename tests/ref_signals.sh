#!/usr/bin/env bash
# ref_signals.sh — what an operator's Ctrl-C or kill does (issue 17 #18):
#  1. `retort train` on SIGINT finishes the step in progress, saves a checkpoint, says so (step,
#     checkpoint, --resume) and exits 130; every line of its log is complete JSON (checked by
#     Python's json module) and ends at the step it names; --resume then finishes the run.
#  2. `retort demo` on SIGTERM passes it on: the step it was running (here the teacher's
#     training) stops, no process of the demo is left, and the demo exits 143 saying so.
set -u
cd "$(dirname "$0")/.."
R=${BUILD:-build}/retort
PY=/usr/bin/python3
tmp=$(mktemp -d)
if [ -n "${KEEP:-}" ]; then echo "keeping $tmp"; else trap 'rm -rf "$tmp"' EXIT; fi
fail=0
bad() { echo "FAIL: $*"; fail=1; }
[ -f "${BUILD:-build}/data/kjv.txt" ] && head -c 300000 "${BUILD:-build}/data/kjv.txt" > "$tmp/c.txt" ||
  for i in $(seq 1 3000); do echo "In the beginning God created the heaven and the earth. $i"; done > "$tmp/c.txt"

# 1. train + SIGINT
args=(--data "$tmp/c.txt" --vocab-size 300 --dim 32 --layers 1 --heads 2 --kv-heads 1 --ffn 64 --seq-len 32
      --batch 4 --steps 100000 --save-every 0 --threads 1 --quiet --out "$tmp/m.gguf")
"$R" train "${args[@]}" > "$tmp/train.out" 2> "$tmp/train.err" &
pid=$!
for i in $(seq 1 600); do
  [ -f "$tmp/m.gguf.log.jsonl" ] && [ "$(wc -l < "$tmp/m.gguf.log.jsonl")" -ge 3 ] && break
  sleep 0.1
done
kill -INT $pid
wait $pid; rc=$?
[ $rc = 130 ] || bad "train exited $rc after SIGINT, expected 130: $(tail -3 "$tmp/train.err")"
msg=$(grep "interrupted" "$tmp/train.err")
step=$(echo "$msg" | sed -n 's/.*after step \([0-9]*\) of.*/\1/p')
[ -n "$step" ] || bad "no 'interrupted after step N' message: $(tail -3 "$tmp/train.err")"
echo "$msg" | grep -q "m.gguf.ckpt" && echo "$msg" | grep -q -- "--resume" || bad "message lacks checkpoint or --resume: $msg"
[ -f "$tmp/m.gguf.ckpt" ] || bad "no checkpoint after SIGINT"
[ -f "$tmp/m.gguf" ] && bad "a final model was written after SIGINT"
"$PY" - "$tmp/m.gguf.log.jsonl" "${step:-0}" <<'PYEOF' || bad "log check failed"
import json, sys
raw = open(sys.argv[1], "rb").read()
assert raw.endswith(b"\n"), "log ends inside a line"
rows = [json.loads(l) for l in raw.decode().splitlines()]
assert [r["step"] for r in rows] == list(range(1, len(rows) + 1)), "steps not 1..n"
assert rows[-1]["step"] == int(sys.argv[2]), (rows[-1]["step"], sys.argv[2])
PYEOF
# --resume continues from that checkpoint; interrupted again, the log still counts 1..n once
if [ -n "$step" ]; then
  "$R" train "${args[@]}" --resume > /dev/null 2> "$tmp/resume.err" &
  pid=$!
  for i in $(seq 1 600); do
    [ "$(wc -l < "$tmp/m.gguf.log.jsonl")" -ge $((step + 3)) ] && break
    sleep 0.1
  done
  kill -INT $pid
  wait $pid; rc=$?
  [ $rc = 130 ] || bad "resumed train exited $rc after SIGINT: $(tail -3 "$tmp/resume.err")"
  step2=$(sed -n 's/.*after step \([0-9]*\) of.*/\1/p' "$tmp/resume.err")
  [ -n "$step2" ] && [ "$step2" -gt "$step" ] || bad "resume did not continue past step $step: $(tail -3 "$tmp/resume.err")"
  "$PY" - "$tmp/m.gguf.log.jsonl" "${step2:-0}" <<'PYEOF' || bad "log check after resume failed"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
assert [r["step"] for r in rows] == list(range(1, len(rows) + 1)), "steps not 1..n once each"
assert rows[-1]["step"] == int(sys.argv[2])
PYEOF
fi

# 2. demo + SIGTERM: every child goes
"$R" demo --quick --dir "$tmp/demo" --corpus "$tmp/c.txt" --threads 1 > "$tmp/demo.out" 2> "$tmp/demo.err" &
dpid=$!
kids=""
for i in $(seq 1 300); do
  kids=$(ps -o pid= --ppid $dpid | tr -d ' ')
  [ -n "$kids" ] && break
  sleep 0.1
done
[ -n "$kids" ] || bad "the demo started no step within 30 s"
sleep 1
kill -TERM $dpid
wait $dpid; rc=$?
[ $rc = 143 ] || bad "demo exited $rc after SIGTERM, expected 143: $(tail -3 "$tmp/demo.err")"
grep -q "interrupted by signal 15" "$tmp/demo.err" || bad "the demo did not say it was interrupted: $(tail -3 "$tmp/demo.err")"
for k in $kids; do
  kill -0 "$k" 2>/dev/null && { bad "the demo's step $k ($(ps -o args= -p "$k")) still runs"; kill "$k"; }
done
[ $fail = 0 ] && echo "ok: signals"
exit $fail
