#!/usr/bin/env bash
# bench/train_vs_torch.sh — training throughput, retort vs PyTorch on CPU: the demo's
# teacher config (d256 L6 H8 KV4 F704, vocab 2048, T256), same batch, same threads, AdamW +
# clipping in both. PyTorch is Debian's python3-torch with BLIS as its BLAS, given the same
# BLIS_ARCH_TYPE=skx retort sets (Debian's BLIS 0.9 does not recognise this Zen CPU and would
# otherwise fall back to its generic kernels — a 5x handicap that is not PyTorch's fault).
# Prints both tokens/s and the ratio. Usage: bench/train_vs_torch.sh [threads] [batch] [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
THREADS=${1:-2}; BATCH=${2:-16}; STEPS=${3:-12}
CFG=(--dim 256 --layers 6 --heads 8 --kv-heads 4 --ffn 704 --seq-len 256)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
[ -f "$BUILD/data/kjv.txt" ] || make -s corpus
# retort: time steps 3.. from its own JSONL log (the first two include allocation)
"$BUILD/retort" train --data "$BUILD/data/kjv.txt" --vocab-size 2048 "${CFG[@]}" --batch "$BATCH" \
  --steps $((STEPS + 2)) --warmup 2 --eval-every 0 --eval-batches 1 --save-every 0 --threads "$THREADS" \
  --out "$tmp/m.gguf" --quiet 2> "$tmp/retort.err" || { cat "$tmp/retort.err"; exit 1; }
retort_tps=$(/usr/bin/python3 - "$tmp/m.gguf.log.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
# elapsed is cumulative; use steps after the first two (they include allocation)
t = rows[-1]["elapsed"] - rows[1]["elapsed"]; tok = rows[-1]["tokens"] - rows[1]["tokens"]
print("%.1f" % (tok / t))
PY
)
BLIS=/usr/lib/x86_64-linux-gnu/blis-openmp
torch_json=$(LD_LIBRARY_PATH=$BLIS BLIS_ARCH_TYPE=skx OMP_NUM_THREADS=$THREADS /usr/bin/python3 bench/torch_train_step.py \
  --threads "$THREADS" --batch "$BATCH" --steps "$STEPS" --dim 256 --layers 6 --heads 8 --kv-heads 4 \
  --ffn 704 --vocab 2048 --seq-len 256)
torch_tps=$(echo "$torch_json" | /usr/bin/python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["tokens_per_s"])')
echo "config: d256 L6 H8 KV4 F704 V2048 T256, batch $BATCH, threads $THREADS, $STEPS timed steps"
echo "retort:  $retort_tps tokens/s"
echo "pytorch: $torch_tps tokens/s  ($torch_json)"
/usr/bin/python3 -c "print('ratio retort/pytorch: %.2fx' % ($retort_tps / $torch_tps))"
