#!/usr/bin/env bash
# bench/antidistill_bench.sh — the per-token cost of antidistillation sampling
# (bench/antidistill_bench.c, against build/libretort.a; run `make` first). The peer is plain
# sampling's own work, the teacher's decode step: shift_over_teacher is the extra time per
# token as a fraction of it. Usage: bench/antidistill_bench.sh [TOKENS, default 400]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CC=${CC:-gcc}
[ -f "$BUILD/libretort.a" ] || { echo "error: $BUILD/libretort.a missing; run make first" >&2; exit 1; }
BLIS_DIR=/usr/lib/x86_64-linux-gnu/blis-openmp
mkdir -p "$BUILD/bench"
$CC -std=c17 -D_GNU_SOURCE -O3 -march=native -fopenmp -Wall -Wextra -Isrc \
    -o "$BUILD/bench/antidistill_bench" bench/antidistill_bench.c "$BUILD/libretort.a" \
    -L$BLIS_DIR -Wl,-rpath,$BLIS_DIR -lblis $(pkg-config --libs jansson libsodium) -lzstd -lm -lpthread
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$BUILD/bench/antidistill_bench" "${1:-400}" | tee "$BUILD/bench/antidistill_bench.jsonl"
