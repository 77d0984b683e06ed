#!/usr/bin/env bash
# bench/guard.sh — the guard detector's throughput (events/s on one core, synthetic events
# with 256-d embeddings and MinHash signatures over 1,000 accounts) next to the PRADA
# baseline's cost per query as an account's history grows. Not part of `make test`.
# Usage: bench/guard.sh [accounts] [events]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CC=${CC:-gcc}
[ -f "$BUILD/libretort.a" ] || { echo "error: $BUILD/libretort.a missing; run make first" >&2; exit 1; }
mkdir -p "$BUILD/bench"
PKGS="jansson libsodium libzstd libcurl sqlite3 libmicrohttpd"
$CC -std=c17 -D_GNU_SOURCE -O3 -march=native -Isrc -I/usr/include/x86_64-linux-gnu/blis-openmp \
  $(pkg-config --cflags $PKGS) -fopenmp -o "$BUILD/bench/guard_bench" bench/guard_bench.c "$BUILD/libretort.a" \
  -L/usr/lib/x86_64-linux-gnu/blis-openmp -Wl,-rpath,/usr/lib/x86_64-linux-gnu/blis-openmp -lblis \
  $(pkg-config --libs $PKGS) -lm -lpthread -fopenmp
"$BUILD/bench/guard_bench" "${1:-1000}" "${2:-200000}"
