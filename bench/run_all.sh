#!/usr/bin/env bash
# bench/run_all.sh — every benchmark, each against its peer where there is one (`make bench`).
# Needs an idle machine for meaningful numbers; results go in docs/performance.md by hand,
# with the command. Not part of `make test`.
set -uo pipefail
cd "$(dirname "$0")/.."
echo "== kernels (per-kernel GFLOP/s at the demo teacher's shapes)"; bench/kernels_bench.sh -q
echo "== training step: retort vs PyTorch";                        bench/train_vs_torch.sh
echo "== decoding: retort vs llama.cpp";                            bench/decode_vs_llamacpp.sh
echo "== serving: 1/4/16 streams";                                  bench/serve.sh
for b in bench/distill_bench.sh bench/watermark_bench.sh bench/guard.sh bench/mpi_scaling.sh; do
  [ -x "$b" ] && { echo "== $b"; "$b"; }
done
