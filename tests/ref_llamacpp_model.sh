#!/usr/bin/env bash
# ref_llamacpp_model.sh — a model trained and written by `retort train` (its own tokenizer,
# GQA; once tied, once untied) loads in llama.cpp (node-llama-cpp 3.21.1's prebuilt build),
# llama.cpp tokenizes held-out text to the same ids as `retort tokenize`, and its next-token
# distribution at every position equals `retort forward`'s (log-softmax, 1e-4).
# Prints SKIP and exits 0 when node >= 20, tests/node/node_modules or numpy is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "SKIP llama.cpp model parity: node >= 20 not found"; exit 0
fi
if [ ! -d tests/node/node_modules/node-llama-cpp ]; then
  echo "SKIP llama.cpp model parity: tests/node/node_modules missing (cd tests/node && npm ci)"; exit 0
fi
if ! "$PY" -c 'import numpy' >/dev/null 2>&1; then
  echo "SKIP llama.cpp model parity: $PY has no numpy"; exit 0
fi
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_GPU=false
tmp=$(mktemp -d "${TMPDIR:-/tmp}/retort-ref-model-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
R=$BUILD/retort
head -c 200000 "$BUILD/data/kjv.txt" > "$tmp/train.txt"
# held-out text from later in the corpus, with a few non-ASCII and special-looking strings
{ tail -c 3000 "$BUILD/data/kjv.txt"; printf 'Ünïcödé — “quotes” 123,456 <|eos|> tabs\there  \n'; } > "$tmp/held.txt"
for variant in tied untied; do
  flag=""; [ $variant = untied ] && flag="--untied"
  $R train --data "$tmp/train.txt" --vocab-size 512 --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 96 \
    --seq-len 128 --batch 4 --steps 40 --lr 3e-3 --eval-every 0 $flag --out "$tmp/$variant.gguf" \
    --quiet --threads 2 2> "$tmp/train.log" || { cat "$tmp/train.log"; exit 1; }
  # tokenization: the whole held-out text
  $R tokenize --model "$tmp/$variant.gguf" --input "$tmp/held.txt" > "$tmp/ids_retort.json"
  node tests/node/llama_ref.mjs tokenize "$tmp/$variant.gguf" "$tmp/held.txt" > "$tmp/ids_llama.json"
  "$PY" - "$tmp/ids_retort.json" "$tmp/ids_llama.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
if a != b:
    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
    print("tokenization differs at %d: retort %s llama.cpp %s" % (i, a[i:i+5], b[i:i+5])); sys.exit(1)
print("tokenize: %d ids identical" % len(a))
PY
  # distributions: the first 120 tokens
  ids=$("$PY" -c "import json,sys; print(','.join(map(str, json.load(open('$tmp/ids_retort.json'))[:120])))")
  $R forward --model "$tmp/$variant.gguf" --ids "$ids" --out "$tmp/retort.f32" --threads 2 2>/dev/null
  node tests/node/llama_ref.mjs logits "$tmp/$variant.gguf" "$ids" "$tmp/llama.f32"
  "$PY" - "$tmp/retort.f32" "$tmp/llama.f32" "$variant" <<'PY'
import sys, numpy as np
a = np.fromfile(sys.argv[1], dtype="<f4").astype(np.float64); b = np.fromfile(sys.argv[2], dtype="<f4").astype(np.float64)
assert a.size == b.size and a.size % 512 == 0, (a.size, b.size)
a = a.reshape(-1, 512); b = b.reshape(-1, 512)
la = a - (a.max(1, keepdims=True) + np.log(np.exp(a - a.max(1, keepdims=True)).sum(1, keepdims=True)))
d = np.abs(la - b).max()
agree = (la.argmax(1) == b.argmax(1)).mean()
print("%s: %d positions, max |log p retort - log p llama.cpp| = %.3g, top-1 agreement %.3f" % (sys.argv[3], a.shape[0], d, agree))
sys.exit(0 if d < 1e-4 and agree == 1.0 else 1)
PY
done
