#!/usr/bin/env bash
# bench/decode_vs_llamacpp.sh — single-stream greedy decoding speed, retort vs llama.cpp on
# the same GGUF file, same threads. Default model: the engine demo's teacher (build/engine/teacher.gguf,
# from `make engine-demo`); otherwise pass one. Prints both tokens/s and the ratio.
# usage: bench/decode_vs_llamacpp.sh [MODEL.gguf] [tokens] [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MODEL=${1:-$BUILD/engine/teacher.gguf}
N=${2:-200}; TH=${3:-2}
[ -f "$MODEL" ] || { echo "no model at $MODEL (run make engine-demo, or pass a GGUF)"; exit 1; }
[ -d tests/node/node_modules/node-llama-cpp ] || { echo "llama.cpp peer missing: cd tests/node && npm ci"; exit 1; }
PROMPT="And it came to pass"
best_r=0; best_l=0
for rep in 1 2 3; do
  r=$("$BUILD/retort" generate --model "$MODEL" --prompt "$PROMPT" --max-tokens "$N" --temperature 0 \
      --threads "$TH" 2>&1 >/dev/null | sed -n 's/.*generated: [0-9]* tokens, \([0-9.]*\) tok\/s.*/\1/p')
  l=$(node bench/llama_decode.mjs "$MODEL" "$PROMPT" "$N" "$TH" | /usr/bin/python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["decode_tokens_per_s"])')
  best_r=$(/usr/bin/python3 -c "print(max($best_r, $r))"); best_l=$(/usr/bin/python3 -c "print(max($best_l, $l))")
  echo "run $rep: retort $r tok/s, llama.cpp $l tok/s"
done
echo "model: $MODEL ($(stat -c %s "$MODEL") bytes), $N tokens greedy, $TH threads (best of 3)"
echo "retort:    $best_r tok/s"
echo "llama.cpp: $best_l tok/s"
/usr/bin/python3 -c "print('ratio retort/llama.cpp: %.2fx' % ($best_r / $best_l))"
