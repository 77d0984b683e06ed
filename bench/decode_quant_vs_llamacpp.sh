#!/usr/bin/env bash
# bench/decode_quant_vs_llamacpp.sh — single-stream greedy decoding of a quantized model, retort
# vs llama.cpp (node-llama-cpp 3.21.1's prebuilt CPU build) on the SAME GGUF file and threads,
# for Q8_0 and Q4_K. The model is a ~103M-parameter random-weight `llama` model (dim 768,
# 15 layers, 12 heads / 4 KV heads, ffn 2048, vocab 4096 untied: every matrix's rows are a
# multiple of 256, so Q4_K applies everywhere), made once with `retort train --steps 1` (random
# init plus one step; its tokenizer is trained on the corpus) and cached in $BUILD/bench/quant.
# retort's decode steps run their matrix-vector products on the blocks (quant_matmul_rows).
# ARCH=qwen2 makes the same shape as a `qwen2` model (Q/K/V biases, NEOX RoPE: the
# R1-Distill-Qwen family), cached separately.
# Prints tokens/s for both engines (best of 3) and the ratio per type.
# usage: [ARCH=llama|qwen2|qwen3] bench/decode_quant_vs_llamacpp.sh [tokens] [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
N=${1:-128}; TH=${2:-2}
ARCH=${ARCH:-llama}
DIR=$BUILD/bench/quant
[ "$ARCH" = llama ] || DIR=$BUILD/bench/quant_$ARCH
[ -d tests/node/node_modules/node-llama-cpp ] || { echo "llama.cpp peer missing: tests/node/node_modules"; exit 1; }
[ -f "$BUILD/data/kjv.txt" ] || make -s "$BUILD/data/kjv.txt"
mkdir -p "$DIR"
if [ ! -f "$DIR/f32.gguf" ]; then
  head -c 1000000 "$BUILD/data/kjv.txt" > "$DIR/corpus.txt"
  "$BUILD/retort" train --arch "$ARCH" --data "$DIR/corpus.txt" --vocab-size 4096 --dim 768 --layers 15 --heads 12 --kv-heads 4 \
    --ffn 2048 --untied --seq-len 256 --batch 1 --steps 1 --warmup 0 --eval-every 0 --save-every 0 \
    --out "$DIR/f32.gguf" --quiet --threads "$TH"
  rm -f "$DIR/f32.gguf.ckpt" # the optimizer state: 3x the model, not needed
fi
PROMPT="And it came to pass"
for t in q8_0 q4_k; do
  [ -f "$DIR/$t.gguf" ] || "$BUILD/retort" quantize --quiet --type $t "$DIR/f32.gguf" "$DIR/$t.gguf"
  best_r=0; best_l=0
  for rep in 1 2 3; do
    r=$("$BUILD/retort" generate --model "$DIR/$t.gguf" --prompt "$PROMPT" --max-tokens "$N" --temperature 0 \
        --threads "$TH" 2>&1 >/dev/null | sed -n 's/.*generated: [0-9]* tokens, \([0-9.]*\) tok\/s.*/\1/p')
    l=$(node bench/llama_decode.mjs "$DIR/$t.gguf" "$PROMPT" "$N" "$TH" | /usr/bin/python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["decode_tokens_per_s"])')
    best_r=$(/usr/bin/python3 -c "print(max($best_r, $r))"); best_l=$(/usr/bin/python3 -c "print(max($best_l, $l))")
    echo "$t run $rep: retort $r tok/s, llama.cpp $l tok/s"
  done
  echo "$t ($ARCH): $DIR/$t.gguf ($(stat -c %s "$DIR/$t.gguf") bytes), $N tokens greedy, $TH threads (best of 3)"
  /usr/bin/python3 -c "print('$t: retort %.1f tok/s, llama.cpp %.1f tok/s, ratio retort/llama.cpp %.2fx' % ($best_r, $best_l, $best_r / $best_l))"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
