#!/usr/bin/env bash
# bench/limiter.sh — the shared rate limiter on PostgreSQL (a throw-away local cluster from
# tests/pg_cluster.sh: unix socket, fsync off as in the tests, so this measures the round trips
# and the row lock, not a disk): admit + settle per request, the one-statement path against
# the transaction path (bench/limiter_bench.c), interleaved. Prints JSON lines, then the
# median requests/s of each and the ratio. Not part of `make test`.
# Usage: bench/limiter.sh [threads (8)] [requests per thread (500)] [rounds (3)]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CC=${CC:-gcc}
[ -f "$BUILD/libretort.a" ] || { echo "error: $BUILD/libretort.a missing; run make first" >&2; exit 1; }
mkdir -p "$BUILD/bench"
PKGS="jansson libsodium libzstd libcurl sqlite3 libmicrohttpd libpq"
$CC -std=c17 -D_GNU_SOURCE -O2 -Isrc -I/usr/include/x86_64-linux-gnu/blis-openmp \
  $(pkg-config --cflags $PKGS) -fopenmp -o "$BUILD/bench/limiter_bench" bench/limiter_bench.c "$BUILD/libretort.a" \
  -L/usr/lib/x86_64-linux-gnu/blis-openmp -Wl,-rpath,/usr/lib/x86_64-linux-gnu/blis-openmp -lblis \
  $(pkg-config --libs $PKGS) -lm -lpthread -fopenmp
pgdir=$(mktemp -u /tmp/retort-pglim-XXXXXX)
out=$(mktemp)
trap 'tests/pg_cluster.sh stop "$pgdir"; rm -f "$out"' EXIT
url=$(tests/pg_cluster.sh start "$pgdir")
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
"$BUILD/bench/limiter_bench" "$url" "${1:-8}" "${2:-500}" "${3:-3}" | tee "$out"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
for acc in ("own", "one"):
    med = {p: statistics.median(r["requests_per_s"] for r in runs if r["path"] == p and r["accounts"] == acc)
           for p in ("one_statement", "transactions")}
    print("accounts=%-3s one statement %8.0f req/s   transactions %8.0f req/s   ratio %.2fx   errors %d" % (
        acc, med["one_statement"], med["transactions"], med["one_statement"] / med["transactions"],
        sum(r["errors"] for r in runs if r["accounts"] == acc)))
PY
