#!/usr/bin/env bash
# ref_llamacpp_convert.sh — `retort convert --from hf` writes what llama.cpp's own converter
# writes. The llama.cpp release that node-llama-cpp 3.21.1 ships (as a git bundle) includes
# convert_hf_to_gguf.py; tests/llamacpp_convert.py runs it unchanged except for the stubs
# Debian needs (see there). For random HF folders of llama, llama3 (rope_scaling llama3),
# mistral (rope_scaling linear), qwen2 and qwen3 (scripts/torch_llama.py make-hf), both F32
# GGUFs must have:
#   - the same tensors, byte for byte (names, shapes, types and data: the llama Q/K row
#     permutation included), except Llama 3's rope_freqs.weight, equal within 1e-6 relative
#     (llama.cpp computes the factors in float32 torch ops, retort in double: 1 ulp apart);
#   - the same value for every model key llama.cpp writes ({arch}.*, general.architecture),
#     floats within 1e-6 relative; retort must write every such key that the model needs;
# and retort must load llama.cpp's file to the same logits as its own (bit-identical; within
# 1e-5 relative for llama3, from the 1-ulp factor).
# Prints SKIP and exits 0 when torch/numpy/yaml, git or the bundle is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
R=$BUILD/retort
BUNDLE=tests/node/node_modules/node-llama-cpp/llama/gitRelease.bundle
if ! $PY -c "import torch, numpy, yaml" 2>/dev/null; then
  echo "SKIP ref_llamacpp_convert: /usr/bin/python3 lacks torch, numpy or yaml"; exit 0
fi
if ! command -v git >/dev/null || [ ! -f "$BUNDLE" ]; then
  echo "SKIP ref_llamacpp_convert: git or $BUNDLE missing"; exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/retort-ref-conv-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
git clone -q --bare "$BUNDLE" "$tmp/lcpp.git" 2>/dev/null
mkdir "$tmp/lcpp"
git --git-dir="$tmp/lcpp.git" archive HEAD convert_hf_to_gguf.py conversion gguf-py | tar -x -C "$tmp/lcpp"
ARCHS="llama llama3 mistral qwen2 qwen3"
$PY -c "import sys; sys.path.insert(0, 'scripts'); import torch_llama as tl
for a in sys.argv[2:]: tl.make_hf(sys.argv[1] + '/hf_' + a, a, 300, 3)" "$tmp" $ARCHS
args=()
for a in $ARCHS; do
  $R convert --from hf "$tmp/hf_$a" --no-tokenizer --out "$tmp/retort_$a.gguf" 2> /dev/null
  args+=("$tmp/hf_$a" "$tmp/llama_$a.gguf")
done
$PY tests/llamacpp_convert.py "$tmp/lcpp" tests/llamacpp_stub "${args[@]}" > "$tmp/conv.log" 2>&1 \
  || { tail -20 "$tmp/conv.log"; exit 1; }
fail=0
for a in $ARCHS; do
  $R forward --model "$tmp/retort_$a.gguf" --ids 1,7,42,299,5,6 --out "$tmp/r1.f32" 2> /dev/null
  $R forward --model "$tmp/llama_$a.gguf" --ids 1,7,42,299,5,6 --out "$tmp/r2.f32" 2> "$tmp/fwd.log" \
    || { echo "$a: retort cannot run llama.cpp's conversion:"; cat "$tmp/fwd.log"; fail=1; continue; }
  $PY - "$tmp/retort_$a.gguf" "$tmp/llama_$a.gguf" "$a" "$tmp/r1.f32" "$tmp/r2.f32" <<'PY' || fail=1
import sys
sys.path.insert(0, "scripts")
import numpy as np, torch_llama as tl
(kr, tr), (kl, tll) = tl.read_gguf(sys.argv[1]), tl.read_gguf(sys.argv[2])
arch = kl["general.architecture"]
bad = []
if set(tr) != set(tll):
    bad.append("tensor sets differ: only retort %s, only llama.cpp %s" % (sorted(set(tr) - set(tll)), sorted(set(tll) - set(tr))))
for n in sorted(set(tr) & set(tll)):
    a, b = tr[n], tll[n]
    if a.shape != b.shape or a.dtype != b.dtype:
        bad.append("tensor %s: shape/type differ" % n)
    elif n == "rope_freqs.weight":
        if np.abs(a - b).max() > 1e-6 * np.abs(b).max(): bad.append("rope_freqs.weight differs beyond 1e-6")
    elif a.tobytes() != b.tobytes():
        bad.append("tensor %s differs" % n)
l1, l2 = np.fromfile(sys.argv[4], "<f4"), np.fromfile(sys.argv[5], "<f4")
exact = "rope_freqs.weight" not in tll
if l1.shape != l2.shape or (exact and l1.tobytes() != l2.tobytes()) or (
        not exact and np.abs(l1 - l2).max() > 1e-5 * max(1.0, np.abs(l2).max())):
    bad.append("retort's logits on the two files differ (max %.3g)" % np.abs(l1 - l2).max())
keys = [k for k in kl if k.startswith(arch + ".") or k == "general.architecture"]
for k in keys:
    if k not in kr:
        bad.append("key %s missing in retort's file" % k)
    elif isinstance(kl[k], float):
        if abs(kr[k] - kl[k]) > 1e-6 * abs(kl[k]): bad.append("key %s: retort %r, llama.cpp %r" % (k, kr[k], kl[k]))
    elif kr[k] != kl[k]:
        bad.append("key %s: retort %r, llama.cpp %r" % (k, kr[k], kl[k]))
print("%-8s %d tensors identical, %d llama.cpp model keys equal, logits %s%s" % (
    sys.argv[3], len(tll), len(keys), "identical" if exact else "max diff %.2g" % np.abs(l1 - l2).max(),
    "" if not bad else ": FAIL\n  " + "\n  ".join(bad)))
sys.exit(1 if bad else 0)
PY
done
exit $fail
