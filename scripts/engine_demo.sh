#!/usr/bin/env bash
# scripts/engine_demo.sh — the engine demo (make engine-demo): train a 2,048-token tokenizer and a ~5M-parameter teacher
# (d256 L6 H8 KV4 F704, T256) on the King James Bible, print its held-out loss against the
# unigram entropy of the same tokens, and sample from it.
# Environment: DEMO_STEPS (default 600), DEMO_BATCH (16), DEMO_OUT (build/engine).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
R=$BUILD/retort
OUT=${DEMO_OUT:-$BUILD/engine}
STEPS=${DEMO_STEPS:-600}
BATCH=${DEMO_BATCH:-16}
mkdir -p "$OUT"
echo "== retort demo: teacher on the King James Bible ($STEPS steps x $BATCH x 256 tokens)"
$R train --data "$BUILD/data/kjv.txt" --vocab-size 2048 --dim 256 --layers 6 --heads 8 --kv-heads 4 \
  --ffn 704 --seq-len 256 --batch "$BATCH" --steps "$STEPS" --lr 2e-3 --warmup 40 --eval-every 100 \
  --save-every 200 --out "$OUT/teacher.gguf"
for p in "In the beginning" "And Jesus said unto them," "The LORD is my shepherd"; do
  echo "--- sample: $p"
  $R generate --model "$OUT/teacher.gguf" --prompt "$p" --max-tokens 60 --temperature 0.8 --seed 1 --quiet
done
