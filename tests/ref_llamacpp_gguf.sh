#!/usr/bin/env bash
# ref_llamacpp_gguf.sh — does a GGUF written by retort load in llama.cpp, tokenize the same and
# give the same next-token distributions?
#
# test_gguf (case tiny_llama) writes a small llama GGUF (2 layers, GQA 4/2 heads, gpt2 BPE
# tokenizer of 256 byte tokens + 3 merges + <|endoftext|>) and the intended weights beside it.
# (and the same metadata without tensors). Then llama.cpp (the prebuilt one in node-llama-cpp 3.21.1, via tests/node/llama_ref.mjs)
#   1. tokenizes a text with vocab-only loading: ids must equal the ones worked out by hand
#      from the merges (and special-token parsing only with --special);
#   2. scores a token sequence: its log-softmax at every position must match a float64 numpy
#      forward pass (tests/node/llama_forward.py) over the intended weights to 1e-4; the same
#      pass with GPT-NeoX (half-split) RoPE must NOT match, so the check can tell conventions apart.
# Prints SKIP and exits 0 when node, tests/node/node_modules or numpy is missing.
# Not a benchmark (bench/ compares speed) and not a test of retort's own model code.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
if ! command -v node >/dev/null 2>&1; then
  echo "SKIP llama.cpp GGUF reference: node not found"; exit 0
fi
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "SKIP llama.cpp GGUF reference: node $(node --version 2>/dev/null) is too old (node-llama-cpp 3.21.1 needs >= 20)"; exit 0
fi
if [ ! -d tests/node/node_modules/node-llama-cpp ]; then
  echo "SKIP llama.cpp GGUF reference: tests/node/node_modules missing (cd tests/node && npm ci)"; exit 0
fi
if ! "$PY" -c 'import numpy' >/dev/null 2>&1; then
  echo "SKIP llama.cpp GGUF reference: $PY has no numpy (apt-get install python3-numpy)"; exit 0
fi
if [ ! -x "$BUILD/tests/test_gguf" ]; then
  echo "error: $BUILD/tests/test_gguf is not built (run: make tests)"; exit 1
fi
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_GPU=false
tmp=$(mktemp -d "${TMPDIR:-/tmp}/retort-ref-gguf-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
model=$tmp/tiny.gguf
if ! RETORT_GGUF_TINY_LLAMA=$model "$BUILD/tests/test_gguf" tiny_llama >"$tmp/gen.log" 2>&1; then
  cat "$tmp/gen.log"; echo "FAIL: test_gguf could not write the tiny llama GGUF"; exit 1
fi

fail=0
check_tok() { # text flags expected [model]
  printf '%s' "$1" > "$tmp/text.txt"
  local got m=${4:-$model}
  got=$(node tests/node/llama_ref.mjs tokenize "$m" "$tmp/text.txt" $2)
  if [ "$got" = "$3" ]; then
    echo "ok   tokenize '$1' $2-> $got ($(basename "$m"))"
  else
    echo "FAIL tokenize '$1' $2($(basename "$m")): llama.cpp gave $got, expected $3"; fail=1
  fi
}
# by hand: "the" -> t + he (merge 'h e'); " the" -> Ġthe (Ġ t, then Ġt he); " theme" -> Ġthe m e;
# "é" is the bytes C3 A9, whose GPT-2 byte characters are tokens 195 and 169; Ġ (space) is 32.
check_tok 'the theme, the café' '' '[116,257,258,109,101,44,258,32,99,97,102,195,169]'
check_tok '<|endoftext|>the' '' '[60,124,101,110,100,111,102,116,101,120,116,124,62,116,257]'
check_tok '<|endoftext|>the' '--special ' '[259,116,257]'
# here token id = byte value, so space is 32 (not GPT-2's 220); "  c" splits as " " + " c"
check_tok $'a\nb  c' '' '[97,10,98,32,32,99]'
# a tokenizer-only GGUF (no tensors) loads with vocabOnly; llama.cpp may log a harmless
# "missing tensor 'token_embd.weight'" line on stderr for it
check_tok 'the theme, the café' '' '[116,257,258,109,101,44,258,32,99,97,102,195,169]' "$model.vocab.gguf"

ids=116,257,258,109,101,44,258,32,99,97,102,195,169,259,0,255,256,257,258,10,33,126,200,1,2,3,4,5,6,7,8,9
node tests/node/llama_ref.mjs logits "$model" "$ids" "$tmp/llama.f32"
"$PY" tests/node/llama_forward.py "$model.ref.bin" "$ids" "$tmp/ref.f32"
"$PY" tests/node/llama_forward.py "$model.ref.bin" "$ids" "$tmp/neox.f32" neox
"$PY" - "$tmp" "$ids" <<'PYEOF' || fail=1
import sys
import numpy as np
d, ids = sys.argv[1], sys.argv[2].split(",")
T = len(ids)
a = np.fromfile(d + "/llama.f32", "<f4").astype(np.float64)
b = np.fromfile(d + "/ref.f32", "<f4").astype(np.float64)
c = np.fromfile(d + "/neox.f32", "<f4").astype(np.float64)
V = b.size // T
a, b, c = a.reshape(T, V), b.reshape(T, V), c.reshape(T, V)
err = np.abs(a - b) / (1e-4 + 1e-4 * np.abs(b))
neox = np.abs(c - b).max()
print(f"logits: T={T} V={V}; llama.cpp vs numpy log-softmax: max abs diff {np.abs(a - b).max():.3g}, "
      f"worst/tolerance {err.max():.3g}; argmax agree {int((a.argmax(1) == b.argmax(1)).sum())}/{T}; "
      f"neox-rope control differs by {neox:.3g}")
ok = err.max() <= 1.0 and (a.argmax(1) == b.argmax(1)).all() and neox > 1e-2
print("ok   logits match" if ok else "FAIL logits mismatch")
sys.exit(0 if ok else 1)
PYEOF
exit $fail
