#!/usr/bin/env bash
# ref_cli.sh — the command-line paper cuts of issue 17 (#13, #23), each checked from outside:
#  - every command's --help (and each subcommand's) names a value once: no "--db TEXT  FILE: ...",
#    no "(required) (required)";
#  - `retort info` on a FIFO with no writer answers at once (exit 1, "FIFO"), not never;
#  - `generate --max-tokens 99999999999` clamps to the context with a message and succeeds;
#  - `eval` and `data generate` have the --skip-bad their error advises, and it works;
#  - `train` refuses a bad shape before it trains a tokenizer;
#  - OpenMP's waiting threads sleep instead of spinning unless the user set OMP_WAIT_POLICY.
set -u
cd "$(dirname "$0")/.."
R=${BUILD:-build}/retort
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# help
cmds=$("$R" --help 2>&1 | sed -n 's/^  \([a-z-]*\)  .*/\1/p')
[ "$(echo "$cmds" | wc -w)" -ge 20 ] || bad "could not list the commands: $cmds"
helps() {
  for c in $cmds; do
    "$R" "$c" --help 2>&1
    for s in $("$R" "$c" --help 2>&1 | sed -n 's/^  \([a-z][a-z-]*\)  .*/\1/p'); do
      "$R" "$c" "$s" --help 2>&1
    done
  done
}
helps > "$tmp/help.txt"
[ "$(wc -l < "$tmp/help.txt")" -gt 300 ] || bad "too little help text ($(wc -l < "$tmp/help.txt") lines)"
grep -E '^  --[a-z0-9-]+ (TEXT|N|X) +[A-Z][A-Za-z0-9._]*: ' "$tmp/help.txt" | head -5 > "$tmp/dup"
[ -s "$tmp/dup" ] && bad "help names a value twice: $(cat "$tmp/dup")"
grep -F '(required) (required)' "$tmp/help.txt" | head -3 > "$tmp/req"
[ -s "$tmp/req" ] && bad "help says (required) twice: $(cat "$tmp/req")"
grep -qE '^  --db FILE +the gateway database' "$tmp/help.txt" || bad "report's --db is not shown as FILE"

# the man page covers every command, action and option (regenerated here and compared by
# headings and flags), renders without groff warnings, and `make install` puts it in place
/usr/bin/python3 scripts/gen_man.py "$R" > "$tmp/now.1" || bad "scripts/gen_man.py failed"
grep '^\.SS ' "$tmp/now.1" | sort -u > "$tmp/want"; grep '^\.SS ' docs/retort.1 | sort -u > "$tmp/have"
comm -23 "$tmp/want" "$tmp/have" | head -5 > "$tmp/miss"
[ -s "$tmp/miss" ] && bad "docs/retort.1 lacks commands (run make man): $(tr '\n' ' ' < "$tmp/miss")"
cmds_in_help=$(echo "$cmds" | wc -w); cmds_in_man=$(grep -c '^\.SS [a-z\\-]*$' docs/retort.1)
[ "$cmds_in_man" = "$cmds_in_help" ] || bad "docs/retort.1 has $cmds_in_man commands, retort --help lists $cmds_in_help"
flags() { grep -A1 '^\.TP' "$1" | grep '^\.B \\-\\-' | sed 's/^\.B //;s/ .*//' | sort -u; }
comm -23 <(flags "$tmp/now.1") <(flags docs/retort.1) | head -5 > "$tmp/miss"
[ -s "$tmp/miss" ] && bad "docs/retort.1 lacks options (run make man): $(tr '\n' ' ' < "$tmp/miss")"
groff -man -ww -z docs/retort.1 > "$tmp/groff" 2>&1 || bad "groff failed on docs/retort.1"
[ -s "$tmp/groff" ] && bad "groff warns about docs/retort.1: $(head -3 "$tmp/groff")"
make -s install BUILD="${BUILD:-build}" PREFIX=/usr DESTDIR="$tmp/root" > "$tmp/install.log" 2>&1 || bad "make install failed: $(tail -3 "$tmp/install.log")"
[ -x "$tmp/root/usr/bin/retort" ] && [ -f "$tmp/root/usr/share/man/man1/retort.1" ] || bad "make install did not install bin and man page"
"$tmp/root/usr/bin/retort" --help > /dev/null 2>&1 || bad "the installed retort does not run"
MANPATH="$tmp/root/usr/share/man" man -w retort 2>/dev/null | grep -q "$tmp/root" || bad "man does not find the installed page"

# a tiny model
for i in $(seq 1 400); do echo "In the beginning God created the heaven and the earth. And God said, Let there be light $i."; done > "$tmp/c.txt"
"$R" train --data "$tmp/c.txt" --vocab-size 300 --dim 16 --layers 1 --heads 2 --kv-heads 1 --ffn 32 --seq-len 32 \
  --batch 2 --steps 2 --threads 1 --quiet --out "$tmp/m.gguf" 2> "$tmp/train.err" || bad "tiny train failed: $(tail -2 "$tmp/train.err")"

# info on a FIFO
mkfifo "$tmp/fifo"
timeout 10 "$R" info "$tmp/fifo" > /dev/null 2> "$tmp/fifo.err"; rc=$?
[ $rc = 124 ] && bad "retort info on a FIFO still blocks"
[ $rc != 0 ] && [ $rc != 124 ] && grep -q "FIFO" "$tmp/fifo.err" || bad "info on a FIFO: rc $rc, $(cat "$tmp/fifo.err")"
timeout 10 "$R" info "$tmp" > /dev/null 2> "$tmp/dir.err" && bad "info on a directory succeeded"
grep -q "directory" "$tmp/dir.err" || bad "info on a directory: $(cat "$tmp/dir.err")"

# --max-tokens clamp
"$R" generate --model "$tmp/m.gguf" --prompt "In the" --max-tokens 99999999999 --temperature 0 --threads 1 \
  > "$tmp/gen.out" 2> "$tmp/gen.err" || bad "generate --max-tokens 99999999999 failed: $(tail -2 "$tmp/gen.err")"
grep -q "generating at most 3[0-9]" "$tmp/gen.err" || bad "no clamp message: $(cat "$tmp/gen.err")"

# --skip-bad where it is advised
printf '{"prompt":"In the","completion":" beginning"}\nnot json\n{"prompt":"And God","completion":" said"}\n' > "$tmp/bad.jsonl"
"$R" eval --model "$tmp/m.gguf" --data "$tmp/bad.jsonl" --threads 1 > /dev/null 2> "$tmp/eval.err" && bad "eval accepted a bad line"
grep -q -- "--skip-bad" "$tmp/eval.err" || bad "eval's error does not mention --skip-bad: $(cat "$tmp/eval.err")"
"$R" eval --model "$tmp/m.gguf" --data "$tmp/bad.jsonl" --threads 1 --skip-bad > "$tmp/eval.json" 2> "$tmp/eval2.err" ||
  bad "eval --skip-bad failed: $(tail -3 "$tmp/eval2.err")"
grep -q "skipped 1 bad line" "$tmp/eval2.err" || bad "eval --skip-bad did not report the skipped line"
"$R" data generate --model "$tmp/m.gguf" --prompts "$tmp/bad.jsonl" --max-tokens 2 --threads 1 --quiet \
  --out "$tmp/gen.jsonl" 2> "$tmp/data.err" && bad "data generate accepted a bad line"
"$R" data generate --model "$tmp/m.gguf" --prompts "$tmp/bad.jsonl" --max-tokens 2 --threads 1 --quiet --skip-bad \
  --out "$tmp/gen.jsonl" 2> "$tmp/data2.err" || bad "data generate --skip-bad failed: $(tail -3 "$tmp/data2.err")"
[ "$(wc -l < "$tmp/gen.jsonl" 2>/dev/null)" = 2 ] || bad "data generate --skip-bad did not write the 2 good prompts"

# train: shape errors before the tokenizer
"$R" train --data "$tmp/c.txt" --vocab-size 300 --dim 30 --heads 4 --steps 2 --out "$tmp/x.gguf" 2> "$tmp/shape.err"; rc=$?
[ $rc = 2 ] || bad "bad --dim/--heads: exit $rc, expected 2"
grep -q "multiple of --heads" "$tmp/shape.err" || bad "no shape message: $(cat "$tmp/shape.err")"
grep -q "tokenizer" "$tmp/shape.err" && bad "the tokenizer was trained before the shape was checked"
"$R" train --data "$tmp/c.txt" --vocab-size 300 --dim 16 --heads 2 --kv-heads 1 --lr -1 --steps 2 --out "$tmp/x.gguf" 2> "$tmp/lr.err"
grep -q -- "--lr must be" "$tmp/lr.err" && ! grep -q "tokenizer" "$tmp/lr.err" || bad "--lr -1: $(cat "$tmp/lr.err")"

# OpenMP: waiting threads sleep (OMP_WAIT_POLICY=passive) unless the user chose (issue 17 #19)
if ldd "$R" | grep -q libgomp; then
  spin=$(OMP_DISPLAY_ENV=verbose "$R" --help 2>&1 | sed -n "s/.*GOMP_SPINCOUNT = '\([0-9]*\)'.*/\1/p" | tail -n 1)
  [ "$spin" = 0 ] || bad "retort's OpenMP threads still spin by default (GOMP_SPINCOUNT $spin)"
  spin=$(OMP_WAIT_POLICY=active OMP_DISPLAY_ENV=verbose "$R" --help 2>&1 | sed -n "s/.*GOMP_SPINCOUNT = '\([0-9]*\)'.*/\1/p" | tail -n 1)
  [ "${spin:-0}" -gt 1000000 ] || bad "OMP_WAIT_POLICY=active from the user was overridden (GOMP_SPINCOUNT $spin)"
fi

"$R" train --data "$tmp/c.txt" --vocab-size 260 --dim 16 --heads 2 --kv-heads 1 --steps 2 --out "$tmp/x.gguf" 2> "$tmp/voc.err"
grep -q "at least 262" "$tmp/voc.err" && ! grep -q "training a" "$tmp/voc.err" || bad "--vocab-size 260: $(cat "$tmp/voc.err")"

[ $fail = 0 ] && echo "ok: cli"
exit $fail
