#!/usr/bin/env bash
# bench/watermark_bench.sh — watermark detection throughput (bench/watermark_bench.c, one
# thread, against build/libretort.a; run `make` first), then the same KGW h=1 scoring
# (SipHash-2-4 PRF, dedup, exact binomial tail) written with numpy (vectorised over tokens)
# as the peer, and the ratio. Usage: bench/watermark_bench.sh [N tokens, default 8000000]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CC=${CC:-gcc}
N=${1:-8000000}
[ -f "$BUILD/libretort.a" ] || { echo "error: $BUILD/libretort.a missing; run make first" >&2; exit 1; }
BLIS_DIR=/usr/lib/x86_64-linux-gnu/blis-openmp
mkdir -p "$BUILD/bench"
$CC -std=c17 -D_GNU_SOURCE -O3 -march=native -fopenmp -Wall -Wextra -Isrc \
    -o "$BUILD/bench/watermark_bench" bench/watermark_bench.c "$BUILD/libretort.a" \
    -L$BLIS_DIR -Wl,-rpath,$BLIS_DIR -lblis $(pkg-config --libs jansson libsodium) -lm -lpthread
OMP_NUM_THREADS=1 "$BUILD/bench/watermark_bench" "$N" | tee "$BUILD/bench/watermark_bench.jsonl"
/usr/bin/python3 bench/watermark_numpy.py "$N" | tee -a "$BUILD/bench/watermark_bench.jsonl"
/usr/bin/python3 - "$BUILD/bench/watermark_bench.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
c = [r for r in rows if r.get("bench") == "detect" and r["scheme"] == "kgw" and r["context"] == 1 and r["stream"] == "uniform" and r["mode"] == "pooled"][0]
p = [r for r in rows if r.get("bench") == "numpy_detect"][0]
print("kgw h=1 pooled uniform: retort %.3g tok/cpu-s, numpy %.3g tok/cpu-s, ratio %.1fx" % (c["tokens_per_cpu_s"], p["tokens_per_cpu_s"], c["tokens_per_cpu_s"] / p["tokens_per_cpu_s"]))
PY
