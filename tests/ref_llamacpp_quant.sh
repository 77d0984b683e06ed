#!/usr/bin/env bash
# ref_llamacpp_quant.sh — every type `retort quantize` writes loads in llama.cpp (node-llama-cpp
# 3.21.1's prebuilt CPU build) and predicts like retort on the same file. A model trained
# briefly by `retort train` (dims multiples of 256 so the K types apply to every matrix) is
# quantized to q8_0, q4_0, q4_K, q5_K, q6_K, bf16 and f16; on 64 held-out tokens:
#   - retort's prefill (fp32 weights decoded from the blocks) and retort's token-by-token
#     decode (products on the blocks: forward --chunk 1) vs llama.cpp's log-softmax;
#   - same top-1 at every position where llama.cpp's top-2 margin exceeds 2x the type's
#     tolerance (closer calls may flip on rounding), and max |log p diff| below the tolerance.
# Tolerances per type, max over all positions and all 512 log-probs (nats), about twice what was
# measured (docs/quantize.md). The weights themselves are not the difference: retort decodes
# them bit-identically to ggml (ref_quant_ggml.sh). llama.cpp rounds the ACTIVATIONS before its
# dot products — to f16 / bf16 for those types, to 8-bit q8_0 / q8_K blocks for the quantized
# ones — while retort keeps activations fp32:
#   f16: 2e-3   bf16: 1e-2   q8_0, q6_K: 4e-2   q5_K, q4_K, q4_0: 8e-2
# Prints SKIP and exits 0 when node >= 20, tests/node/node_modules or numpy is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "SKIP llama.cpp quantized parity: node >= 20 not found"; exit 0
fi
if [ ! -d tests/node/node_modules/node-llama-cpp ]; then
  echo "SKIP llama.cpp quantized parity: tests/node/node_modules missing"; exit 0
fi
if ! "$PY" -c 'import numpy' >/dev/null 2>&1; then echo "SKIP llama.cpp quantized parity: $PY has no numpy"; exit 0; fi
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_GPU=false
tmp=$(mktemp -d "${TMPDIR:-/tmp}/retort-ref-quant-llama-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
R=$BUILD/retort
head -c 200000 "$BUILD/data/kjv.txt" > "$tmp/train.txt"
tail -c 2000 "$BUILD/data/kjv.txt" > "$tmp/held.txt"
$R train --data "$tmp/train.txt" --vocab-size 512 --dim 256 --layers 2 --heads 4 --kv-heads 2 --ffn 512 \
  --seq-len 64 --batch 4 --steps 30 --lr 3e-3 --eval-every 0 --untied --out "$tmp/f32.gguf" \
  --quiet --threads 2 2> "$tmp/train.log" || { cat "$tmp/train.log"; exit 1; }
$R tokenize --model "$tmp/f32.gguf" --input "$tmp/held.txt" > "$tmp/ids.json"
ids=$("$PY" -c "import json; print(','.join(map(str, json.load(open('$tmp/ids.json'))[:64])))")
fail=0
for t in f16 bf16 q8_0 q6_k q5_k q4_k q4_0; do
  case $t in f16) tol=2e-3;; bf16) tol=1e-2;; q8_0|q6_k) tol=4e-2;; *) tol=8e-2;; esac
  $R quantize --quiet --type $t "$tmp/f32.gguf" "$tmp/$t.gguf"
  $R forward --model "$tmp/$t.gguf" --ids "$ids" --out "$tmp/prefill.f32" --threads 2 2>/dev/null
  $R forward --model "$tmp/$t.gguf" --ids "$ids" --out "$tmp/decode.f32" --threads 2 --chunk 1 2>/dev/null
  node tests/node/llama_ref.mjs logits "$tmp/$t.gguf" "$ids" "$tmp/llama.f32" 2>/dev/null
  "$PY" - "$tmp" "$t" "$tol" <<'PY' || fail=1
import sys, numpy as np
tmp, t, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
V = 512
def lsm(a):
    a = a.astype(np.float64).reshape(-1, V)
    m = a.max(1, keepdims=True)
    return a - (m + np.log(np.exp(a - m).sum(1, keepdims=True)))
ref = np.fromfile(tmp + "/llama.f32", "<f4").astype(np.float64).reshape(-1, V)
s = np.sort(ref, 1)
clear = (s[:, -1] - s[:, -2]) > 2 * tol
ok = True
for name in ("prefill", "decode"):
    a = lsm(np.fromfile("%s/%s.f32" % (tmp, name), "<f4"))
    d = np.abs(a - ref).max()
    agree = (a.argmax(1) == ref.argmax(1))
    good = d < tol and agree[clear].all()
    ok &= good
    print("%-5s %-7s: max |log p retort - log p llama.cpp| = %.3g (tol %g), top-1 agreement %d/%d (%d/%d clear)%s"
          % (t, name, d, tol, agree.sum(), agree.size, agree[clear].sum(), clear.sum(), "" if good else "  FAIL"))
sys.exit(0 if ok else 1)
PY
done
exit $fail
