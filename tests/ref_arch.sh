#!/usr/bin/env bash
# ref_arch.sh — every architecture retort loads, against two independent peers.
#
# For each of llama, llama3 (rope_scaling llama3), mistral (rope_scaling linear), qwen2 (Q/K/V
# biases, tied) and
# qwen3 (per-head Q/K norms, head_dim 24 != hidden/heads), scripts/torch_llama.py writes a
# random-weight Hugging Face folder (safetensors bytes written by hand; sharded, F32/BF16/F16
# varied by family), then:
#   1. `retort convert --from hf` imports it (tokenizer borrowed from a retort-trained GGUF:
#      the folder has no tokenizer.json) and `retort forward`'s logits must equal a PyTorch
#      forward that follows transformers' conventions on the HF folder (rotate_half RoPE on
#      unpermuted rows, HF's llama3 inv_freq): max |diff| <= 1e-4 * max(1, max |logit|), same
#      top-1 everywhere;
#   2. llama.cpp (node-llama-cpp 3.21.1's prebuilt CPU build, F32 KV cache) on the same GGUF:
#      next-token log-probs within 2e-4 (F32 file) / 5e-2 (F16 file, 3 of the families: llama.cpp
#      also rounds activations to F16 in its F16 matmuls, retort keeps them F32; measured
#      0.006-0.037 on these random models) of retort's on the same file, same top-1;
#   3. `retort convert --to hf` of the F32 GGUF (with the source dtype) gives back every
#      tensor bit-exactly and the same config values.
# Prints SKIP and exits 0 when /usr/bin/python3 lacks torch/numpy; the llama.cpp part prints
# SKIP when node >= 20 or tests/node/node_modules is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
R=$BUILD/retort
if ! $PY -c "import torch, numpy" 2>/dev/null; then
  echo "SKIP ref_arch: /usr/bin/python3 has no torch/numpy (apt-get install python3-torch python3-numpy)"
  exit 0
fi
have_llama=1
if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "SKIP ref_arch llama.cpp part: node >= 20 not found"; have_llama=0
elif [ ! -d tests/node/node_modules/node-llama-cpp ]; then
  echo "SKIP ref_arch llama.cpp part: tests/node/node_modules missing"; have_llama=0
fi
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_GPU=false
tmp=$(mktemp -d "${TMPDIR:-/tmp}/retort-ref-arch-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
V=512
# a tokenizer of exactly V tokens, from a one-step retort training run
head -c 100000 "$BUILD/data/kjv.txt" > "$tmp/train.txt"
$R train --data "$tmp/train.txt" --vocab-size $V --dim 16 --layers 1 --heads 2 --kv-heads 2 --ffn 16 --seq-len 16 \
  --batch 1 --steps 1 --eval-every 0 --out "$tmp/tok.gguf" --quiet --threads 2 2> "$tmp/train.log" \
  || { cat "$tmp/train.log"; exit 1; }
ids=$($PY -c "import random; r=random.Random(5); print(','.join(str(r.randrange($V)) for _ in range(40)))")

SPECS="llama:1:f32 llama3:2:f32 mistral:1:bf16 qwen2:3:f32 qwen3:2:f16"
F16_LLAMA="llama qwen2 qwen3"  # the F16-file llama.cpp check, on a subset to keep the test short
# 1. the HF folders and their PyTorch (HF-convention) logits, in one Python process
$PY - "$tmp" "$ids" $SPECS <<'PY'
import sys
sys.path.insert(0, "scripts")
import torch, torch_llama as tl
tmp, ids = sys.argv[1], [int(x) for x in sys.argv[2].split(",")]
for spec in sys.argv[3:]:
    arch, shards, dtype = spec.split(":")
    d = "%s/hf_%s" % (tmp, arch)
    tl.make_hf(d, arch, 512, 11, int(shards), dtype)
    m, _ = tl.from_hf(d)
    with torch.no_grad():
        m(torch.tensor([ids]))[0].numpy().astype("<f4").tofile("%s/torch_%s.f32" % (tmp, arch))
PY
# 2. retort: import, forward, export; llama.cpp on the same GGUF files
for spec in $SPECS; do
  IFS=: read -r arch shards dtype <<< "$spec"
  for f16 in "" --f16; do
    $R convert --from hf "$tmp/hf_$arch" --tokenizer "$tmp/tok.gguf" $f16 --out "$tmp/$arch$f16.gguf" \
      2> "$tmp/conv.log" || { cat "$tmp/conv.log"; exit 1; }
    $R forward --model "$tmp/$arch$f16.gguf" --ids "$ids" --out "$tmp/retort_$arch$f16.f32" 2> /dev/null
  done
  $R convert --to hf "$tmp/$arch.gguf" --dtype "$dtype" --out "$tmp/back_$arch" 2> /dev/null
  [ $have_llama = 1 ] || continue
  for f16 in "" --f16; do
    [ -z "$f16" ] || [[ " $F16_LLAMA " == *" $arch "* ]] || continue
    node tests/node/llama_ref.mjs logits "$tmp/$arch$f16.gguf" "$ids" "$tmp/llama_$arch$f16.f32" \
      2> "$tmp/node.log" || { cat "$tmp/node.log"; exit 1; }
  done
done
# 3. every comparison, in one Python process
fail=0
$PY - "$tmp" $SPECS <<'PY' || fail=1
import json, os, sys
sys.path.insert(0, "scripts")
import numpy as np, torch_llama as tl
tmp, ok = sys.argv[1], True

def load(name):
    return np.fromfile(os.path.join(tmp, name), "<f4").astype(np.float64).reshape(-1, 512)

def check(what, a, b, tol, logprobs):
    global ok
    if logprobs:  # a: raw logits -> log-softmax; b: llama.cpp's log-probs
        m = a.max(1, keepdims=True)
        a = a - (m + np.log(np.exp(a - m).sum(1, keepdims=True)))
    lim = tol if logprobs else tol * max(1.0, np.abs(b).max())
    d, top = np.abs(a - b).max(), (a.argmax(1) == b.argmax(1)).mean()
    print("%-36s %d positions, max |diff| %.3g (limit %.3g), top-1 agreement %.3f" % (what, a.shape[0], d, lim, top))
    ok &= bool(d <= lim and top == 1.0)

for spec in sys.argv[2:]:
    arch, shards, dtype = spec.split(":")
    r = load("retort_%s.f32" % arch)
    check("%s (%s shard(s), %s) vs torch-HF" % (arch, shards, dtype), r, load("torch_%s.f32" % arch), 1e-4, False)
    for f16, tol in (("", 2e-4), ("--f16", 5e-2)):
        if os.path.exists(os.path.join(tmp, "llama_%s%s.f32" % (arch, f16))):
            check("%s %s GGUF vs llama.cpp" % (arch, "F16" if f16 else "F32"), load("retort_%s%s.f32" % (arch, f16)),
                  load("llama_%s%s.f32" % (arch, f16)), tol, True)
    src, back = os.path.join(tmp, "hf_" + arch), os.path.join(tmp, "back_" + arch)
    a, b = tl.read_hf_tensors(src), tl.read_hf_tensors(back)
    ca, cb = (json.load(open(os.path.join(d, "config.json"))) for d in (src, back))
    bad = sorted(set(a) ^ set(b)) + [n for n in a if n in b and (a[n].shape != b[n].shape or a[n].tobytes() != b[n].tobytes())]
    keys = ["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
            "vocab_size", "max_position_embeddings", "rms_norm_eps", "rope_theta", "tie_word_embeddings", "rope_scaling"]
    cfg_bad = [k for k in keys if ca.get(k) != cb.get(k) and not (
        isinstance(ca.get(k), float) and abs(ca[k] - cb[k]) <= 1e-6 * abs(ca[k]))]
    if ca.get("head_dim") and ca["head_dim"] != cb.get("head_dim"):
        cfg_bad.append("head_dim")
    print("%-36s %d tensors bit-exact: %s; config differs in: %s" % (arch + " HF->GGUF->HF", len(a), not bad, cfg_bad or "nothing"))
    ok &= not bad and not cfg_bad
sys.exit(0 if ok else 1)
PY
# refusals: an unknown model_type and a tensor the model would not use are named
hf=$tmp/hf_qwen2
sed -i 's/"model_type": "qwen2"/"model_type": "gemma3"/' "$hf/config.json"
if $R convert --from hf "$hf" --no-tokenizer --out "$tmp/x.gguf" 2> "$tmp/err.log"; then fail=1; fi
grep -q "model_type 'gemma3' is not supported" "$tmp/err.log" || { echo "unknown model_type not named:"; cat "$tmp/err.log"; fail=1; }
[ ! -e "$tmp/x.gguf" ] || { echo "a refused conversion left a file"; fail=1; }
exit $fail
