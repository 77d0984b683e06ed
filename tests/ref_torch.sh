#!/usr/bin/env bash
# ref_torch.sh — retort's logits against an independent PyTorch implementation
# (scripts/torch_llama.py reads the GGUF with its own parser). Skips when python3-torch is
# absent. Covers GQA and an untied output.
set -euo pipefail
BUILD=${BUILD:-build}
PY=/usr/bin/python3
if ! $PY -c "import torch, numpy" 2>/dev/null; then
  echo "SKIP ref_torch: /usr/bin/python3 has no torch/numpy (apt-get install python3-torch python3-numpy)"
  exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
head -c 60000 "$BUILD/data/kjv.txt" > "$tmp/text.txt"
R=$BUILD/retort
$R train --data "$tmp/text.txt" --vocab-size 300 --dim 48 --layers 2 --heads 6 --kv-heads 2 --ffn 80 \
  --seq-len 96 --batch 4 --steps 30 --lr 3e-3 --eval-every 0 --untied --out "$tmp/m.gguf" --quiet --threads 2 2> "$tmp/train.log"
ids=$($R tokenize --model "$tmp/m.gguf" --input <(head -c 120 "$tmp/text.txt") | tr -d '[]')
$R forward --model "$tmp/m.gguf" --ids "$ids" --out "$tmp/retort.f32" 2>"$tmp/fwd.log" || { cat "$tmp/fwd.log"; exit 1; }
$PY scripts/torch_llama.py logits "$tmp/m.gguf" "$ids" "$tmp/torch.f32"
$PY - "$tmp/retort.f32" "$tmp/torch.f32" <<'PY'
import sys, numpy as np
a = np.fromfile(sys.argv[1], dtype="<f4"); b = np.fromfile(sys.argv[2], dtype="<f4")
assert a.shape == b.shape and a.size > 0, (a.shape, b.shape)
d = np.abs(a - b).max(); scale = np.abs(b).max()
print("ref_torch: %d logits, max |retort - torch| = %.3g (max |logit| %.3g)" % (a.size, d, scale))
sys.exit(0 if d <= 1e-4 * max(1.0, scale) else 1)
PY
