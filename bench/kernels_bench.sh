#!/usr/bin/env bash
# bench/kernels_bench.sh — builds and runs bench/kernels_bench.c against build/libretort.a
# (run `make` first). Not part of `make test`. Usage: bench/kernels_bench.sh [-t N] [-B B] [-q]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CC=${CC:-gcc}
[ -f "$BUILD/libretort.a" ] || { echo "error: $BUILD/libretort.a missing; run make first" >&2; exit 1; }
BLIS_DIR=/usr/lib/x86_64-linux-gnu/blis-openmp
mkdir -p "$BUILD/bench"
$CC -std=c17 -D_GNU_SOURCE -O3 -march=native -fopenmp -Wall -Wextra -Isrc \
    -o "$BUILD/bench/kernels_bench" bench/kernels_bench.c "$BUILD/libretort.a" \
    -L$BLIS_DIR -Wl,-rpath,$BLIS_DIR -lblis -lm -lpthread
exec "$BUILD/bench/kernels_bench" "$@"
