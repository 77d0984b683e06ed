#!/usr/bin/env bash
# tests/ref_tokenizer_llamacpp.sh — retort's tokenizer against llama.cpp's, id for id.
#
# Builds a small helper (from the C below, linked with libretort) that
#   train  — trains a retort tokenizer (KJV slice + multilingual text) and writes it as a GGUF;
#   probe  — writes a "boundary probe" vocabulary: every adjacent byte pair of the test texts is
#            a merge, in a seeded random order, so that any difference in pre-token boundaries
#            changes the ids (a vocabulary trained with retort's own splitter could hide some);
#   encode — loads a GGUF with tokenizer_from_gguf and prints the ids as a JSON array;
#   rand   — writes random valid UTF-8 (code points from every plane, assigned or not).
# Each GGUF holds general.architecture = "llama" and the tokenizer.ggml.* keys only; llama.cpp
# loads it with vocab_only. llama.cpp runs through tests/node/llama_ref.mjs (node-llama-cpp
# 3.21.1's prebuilt CPU llama.cpp): `tokenize MODEL FILE [--special]`.
#
# Texts: a corpus slice; letters, numbers and punctuation of many scripts; emoji (ZWJ, flags,
# skin tones, VS16); CJK incl. Extension B and I; combining marks; every kind of whitespace
# (tabs, CR LF, runs, trailing, NBSP and the other White_Space characters, plus look-alikes that
# are not White_Space); contractions in every case; digit runs in several scripts; special-token
# text with and without --special; random valid UTF-8. Invalid UTF-8 is not compared: the
# harness reads files as UTF-8 in JavaScript, which replaces bad bytes before llama.cpp sees
# them (and llama.cpp itself would replace them by U+FFFD, which retort does not; see
# tokenizer.h).
#
# Prints SKIP (and exits 0) when node or node-llama-cpp is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
NODE_DIR=${RETORT_NODE_DIR:-tests/node}
if ! command -v node >/dev/null; then echo "SKIP llama.cpp tokenizer parity: node not found"; exit 0; fi
if [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 20 ]; then
  echo "SKIP llama.cpp tokenizer parity: node $(node --version) is too old (node-llama-cpp needs >= 20)"; exit 0
fi
if [ ! -f "$NODE_DIR/llama_ref.mjs" ] || [ ! -d "$NODE_DIR/node_modules/node-llama-cpp" ]; then
  echo "SKIP llama.cpp tokenizer parity: node-llama-cpp not installed (cd $NODE_DIR && npm ci)"; exit 0
fi
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_GPU=false
if [ ! -f "$BUILD/libretort.a" ]; then echo "error: $BUILD/libretort.a missing (run make)"; exit 1; fi

W=$(mktemp -d "${TMPDIR:-/tmp}/retort-ref-tok-XXXXXX")
trap 'rm -rf "$W"' EXIT
CC=${CC:-cc}

cat > "$W/tool.c" <<'EOF'
#include "base/base.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what) { fprintf(stderr, "tool: %s: %s\n", what, rt_errmsg()); exit(1); }

static void cat_files(rt_buf *b, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        char *d; size_t n;
        if (rt_read_file(argv[i], &d, &n)) die("read");
        if (rt_buf_append(b, d, n)) die("append");
        free(d);
    }
}

/* GPT-2 bytes_to_unicode, written out again here so the probe does not rely on the library. */
static void put_mapped(rt_buf *b, const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i], cp = c;
        if (c <= 0x20) cp = 256 + c;
        else if (c >= 0x7F && c <= 0xA0) cp = 256 + 33 + (c - 0x7F);
        else if (c == 0xAD) cp = 256 + 67;
        char u[2] = {(char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F))};
        if (cp < 0x80) { char a = (char)cp; rt_buf_append(b, &a, 1); }
        else rt_buf_append(b, u, 2);
    }
}

static void write_arch(gguf_writer *w) {
    if (gguf_set_str(w, "general.architecture", "llama") ||
        gguf_set_str(w, "general.name", "retort tokenizer check")) die("gguf keys");
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "train") && argc >= 5) { /* train OUT.gguf NVOCAB FILES... */
        rt_buf b = {0};
        cat_files(&b, argc - 4, argv + 4);
        tokenizer *t;
        double t0 = rt_now();
        if (tokenizer_train(&t, b.data, b.len, strtoul(argv[3], 0, 10))) die("train");
        fprintf(stderr, "trained %zu tokens on %zu bytes in %.2fs\n", tokenizer_vocab_size(t), b.len, rt_now() - t0);
        gguf_writer *w = gguf_writer_new();
        write_arch(w);
        if (tokenizer_to_gguf(t, w) || gguf_writer_write(w, argv[2])) die("write");
        gguf_writer_free(w);
        tokenizer_free(t);
        rt_buf_free(&b);
        return 0;
    }
    if (!strcmp(argv[1], "probe") && argc >= 5) { /* probe OUT.gguf SEED FILES... */
        rt_buf b = {0};
        cat_files(&b, argc - 4, argv + 4);
        static unsigned char seen[256][256];
        uint32_t *pairs = malloc(65536 * sizeof *pairs);
        size_t np = 0;
        for (size_t i = 0; i + 1 < b.len; i++) {
            unsigned x = (unsigned char)b.data[i], y = (unsigned char)b.data[i + 1];
            if (!seen[x][y]) { seen[x][y] = 1; pairs[np++] = x << 8 | y; }
        }
        rt_rng r;
        rt_rng_seed(&r, strtoull(argv[3], 0, 10));
        for (size_t i = np; i > 1; i--) { /* Fisher-Yates */
            size_t j = rt_rng_below(&r, i);
            uint32_t tmp = pairs[i - 1]; pairs[i - 1] = pairs[j]; pairs[j] = tmp;
        }
        size_t nv = 256 + np + 2;
        rt_buf text = {0};
        size_t *off = malloc((nv + np + 1) * sizeof *off);
        int32_t *types = malloc(nv * sizeof *types);
        for (size_t i = 0; i < 256; i++) {
            unsigned char c = (unsigned char)i;
            off[i] = text.len; put_mapped(&text, &c, 1); types[i] = 1;
        }
        for (size_t k = 0; k < np; k++) {
            unsigned char c[2] = {(unsigned char)(pairs[k] >> 8), (unsigned char)pairs[k]};
            off[256 + k] = text.len; put_mapped(&text, c, 2); types[256 + k] = 1;
        }
        off[256 + np] = text.len; rt_buf_append(&text, "<|bos|>", 7); types[256 + np] = 3;
        off[257 + np] = text.len; rt_buf_append(&text, "<|eos|>", 7); types[257 + np] = 3;
        for (size_t k = 0; k < np; k++) {
            unsigned char c[2] = {(unsigned char)(pairs[k] >> 8), (unsigned char)pairs[k]};
            off[nv + k] = text.len;
            put_mapped(&text, c, 1); rt_buf_append(&text, " ", 1); put_mapped(&text, c + 1, 1);
        }
        off[nv + np] = text.len;
        const char **strs = malloc((nv + np) * sizeof *strs);
        size_t *lens = malloc((nv + np) * sizeof *lens);
        for (size_t i = 0; i < nv + np; i++) { strs[i] = text.data + off[i]; lens[i] = off[i + 1] - off[i]; }
        gguf_writer *w = gguf_writer_new();
        write_arch(w);
        if (gguf_set_str(w, "tokenizer.ggml.model", "gpt2") || gguf_set_str(w, "tokenizer.ggml.pre", "gpt-2") ||
            gguf_set_arr_str(w, "tokenizer.ggml.tokens", strs, lens, nv) ||
            gguf_set_arr_data(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, nv) ||
            gguf_set_arr_str(w, "tokenizer.ggml.merges", strs + nv, lens + nv, np) ||
            gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)(256 + np)) ||
            gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(257 + np)) ||
            gguf_set_bool(w, "tokenizer.ggml.add_bos_token", 0) ||
            gguf_set_bool(w, "tokenizer.ggml.add_eos_token", 0) || gguf_writer_write(w, argv[2]))
            die("write probe");
        fprintf(stderr, "probe vocabulary: %zu byte-pair merges\n", np);
        gguf_writer_free(w);
        return 0;
    }
    if (!strcmp(argv[1], "encode") && argc >= 4) { /* encode MODEL.gguf FILE [--special] */
        gguf_ctx *c;
        tokenizer *t;
        if (gguf_open(&c, argv[2]) || tokenizer_from_gguf(&t, c)) die("load");
        gguf_close(c);
        char *d; size_t n;
        if (rt_read_file(argv[3], &d, &n)) die("read");
        int32_t *ids; size_t ni;
        if (tokenizer_encode(t, d, n, argc > 4 && !strcmp(argv[4], "--special"), &ids, &ni)) die("encode");
        char *back; size_t bl;
        if (tokenizer_decode(t, ids, ni, &back, &bl) || bl != n || memcmp(back, d, n)) {
            fprintf(stderr, "tool: round trip failed on %s\n", argv[3]);
            return 1;
        }
        putchar('[');
        for (size_t i = 0; i < ni; i++) printf(i ? ",%d" : "%d", ids[i]);
        puts("]");
        free(back); free(ids); free(d); tokenizer_free(t);
        return 0;
    }
    if (!strcmp(argv[1], "rand") && argc >= 5) { /* rand SEED NCHARS OUT */
        rt_rng r;
        rt_rng_seed(&r, strtoull(argv[2], 0, 10));
        size_t n = strtoul(argv[3], 0, 10);
        rt_buf b = {0};
        for (size_t i = 0; i < n; i++) {
            uint32_t cp;
            switch (rt_rng_below(&r, 6)) {
            case 0: cp = 0x20 + (uint32_t)rt_rng_below(&r, 0x5F); break;       /* ASCII */
            case 1: cp = " \t\n\r\v\f"[rt_rng_below(&r, 6)]; break;            /* whitespace */
            case 2: cp = 0x80 + (uint32_t)rt_rng_below(&r, 0x780); break;      /* 2-byte */
            case 3: cp = 0x800 + (uint32_t)rt_rng_below(&r, 0xF800); break;    /* BMP */
            case 4: cp = 0x10000 + (uint32_t)rt_rng_below(&r, 0x20000); break; /* planes 1-2 */
            default: cp = (uint32_t)rt_rng_below(&r, 0x110000); break;         /* anything */
            }
            if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD - 1; /* no surrogates */
            if (cp == 0) cp = 1; /* keep NULs for the dedicated file */
            char u[4]; size_t k;
            if (cp < 0x80) { u[0] = (char)cp; k = 1; }
            else if (cp < 0x800) { u[0] = (char)(0xC0 | cp >> 6); u[1] = (char)(0x80 | (cp & 63)); k = 2; }
            else if (cp < 0x10000) { u[0] = (char)(0xE0 | cp >> 12); u[1] = (char)(0x80 | (cp >> 6 & 63)); u[2] = (char)(0x80 | (cp & 63)); k = 3; }
            else { u[0] = (char)(0xF0 | cp >> 18); u[1] = (char)(0x80 | (cp >> 12 & 63)); u[2] = (char)(0x80 | (cp >> 6 & 63)); u[3] = (char)(0x80 | (cp & 63)); k = 4; }
            rt_buf_append(&b, u, k);
        }
        if (rt_write_file_atomic(argv[4], b.data, b.len)) die("write");
        return 0;
    }
    fprintf(stderr, "tool: bad arguments\n");
    return 2;
}
EOF
# Only the base, formats and tokenizer objects are pulled from the archive.
$CC -std=c17 -D_GNU_SOURCE -O2 -Isrc -o "$W/tool" "$W/tool.c" "$BUILD/libretort.a" -lm -lpthread -fopenmp
T="$W/tool"

# ---------------------------------------------------------------- texts
T_DIR="$W/texts"; mkdir -p "$T_DIR"
CORPUS="$BUILD/data/kjv.txt"
if [ -f "$CORPUS" ]; then head -c 300000 "$CORPUS" > "$T_DIR/corpus.txt"
else echo "note: $CORPUS missing (make corpus); using a generated corpus"
  for i in $(seq 1 2000); do echo "And it came to pass, in the ${i}th year, that they'll say: it's done."; done > "$T_DIR/corpus.txt"
fi
printf '%s\n' \
  "Grüße aus Köln — naïve café, façade, déjà vu; ÆØÅ æøå; Łódź, Świętokrzyskie; Ţară, Şcoală." \
  "Русский текст: Съешь же ещё этих мягких французских булок, да выпей чаю." \
  "Ελληνικά: Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Ἀρχὴ ἥμισυ παντός." \
  "עברית: שָׁלוֹם עֲלֵיכֶם; العربية: مَرْحَبًا بِالْعَالَم، ١٢٣٤٥٦٧٨٩٠؛ فارسی: ۱۲۳۴" \
  "हिन्दी: नमस्ते दुनिया १२३; தமிழ்: வணக்கம்; ไทย: สวัสดีชาวโลก ๑๒๓; ລາວ: ສະບາຍດີ" \
  "Georgian ქართული, Armenian Հայերեն, Ethiopic ሰላም ፩፪፫, Cherokee ᏣᎳᎩ, Mongolian ᠮᠣᠩᠭᠣᠯ" \
  "Punctuation: «quotes» „Anführung“ ‘single’ “double” ¿qué? ¡sí! … – — ‰ † ‡ • ‹›" \
  "Symbols: © ® ™ ° ± × ÷ ∑ ∫ √ ∞ ≠ ≤ ≥ € £ ¥ ₹ ₿ ¤ § ¶ µ ℃ ℉ Ω ℮ ⅓ ⅔ ¼ ½ ¾" \
  "Math letters 𝐀𝐁𝐂 𝔄𝔅 𝕬 𝒜 ℌ ℑ ℜ; modifier letters ʰ ʲ ˠ ˤ ᵃ ᵇ; titlecase ǅ ǈ ǋ" \
  "Digits: 0123456789 ０１２３ ¹²³ ₁₂₃ Ⅰ Ⅱ Ⅻ ⅰ ⅻ ① ② ⑳ ⑴ ⒈ 𝟎𝟏𝟐 〇 一二三 𐄇 𑁒" \
  > "$T_DIR/scripts.txt"
printf '%s\n' \
  "Emoji 👋 👋🏽 👍🏿 🎉🎉🎉 ❤️ ❤ ☺️ ✌🏻 🇯🇵 🇺🇸🇬🇧 🏳️‍🌈 👨‍👩‍👧‍👦 🧑🏽‍💻 👩‍❤️‍💋‍👨 #️⃣ 1️⃣ ©️" \
  "text👋text 🙂,🙃. 🤔? 💯% 🔥🔥 a🅰b 🆗 🀄 🃏 🂡 ⌚ ⌛ ⏰" \
  > "$T_DIR/emoji.txt"
printf '%s\n' \
  "中文：我能吞下玻璃而不伤身体。繁體中文：我能吞下玻璃而不傷身體。" \
  "日本語：私はガラスを食べられます。それは私を傷つけません。カタカナ ｶﾀｶﾅ ひらがな ー〜・「」『』" \
  "한국어: 나는 유리를 먹을 수 있어요. 그래도 아프지 않아요. ㄱㄴㄷ ᄀᄁ" \
  "Ext-A 㐀㐁 Ext-B 𠀀𠀁𪚥 Ext-C 𪜀 Ext-G 𰀀 Ext-H 𱍐𲎯 Ext-I 𮯰𮯱𮹝 compat 豈 北 CJK punct 、。〃〄々〆" \
  > "$T_DIR/cjk.txt"
printf '%s\n' \
  "combining: e\xCC\x81 a\xCC\x80 o\xCC\x88 n\xCC\x83 c\xCC\xA7 i\xCC\x82\xCC\x81 Z\xCC\xB5\xCD\x96\xCC\xAB\xCD\x9Aa\xCC\xB4l\xCD\x9Dg\xCC\xA8o\xCD\x9C" \
  " \xCC\x81start, x\xE2\x83\x9D y\xE2\x83\x97 क्ष त्र ज्ञ ि ु ँ् ಕ್ಷ ກ່ ກ້ ห์ ั ็" \
  "hebrew points בְּרֵאשִׁית; arabic harakat كَتَبَ; vietnamese Tiếng Việt có dấu" \
  > "$T_DIR/marks.txt"
printf 'tabs\tand\t\ttabs\t\n  two spaces  \n   three   spaces   \ntrailing   \n\nCRLF\r\nlines\r\n\r\n\r\nend\r' > "$T_DIR/space.txt"
printf ' leading\n\n\n\nblank lines\n \n \t \n\v\f vertical\x0btab form\x0cfeed\x1c\x1d\x1e\x1f seps\n' >> "$T_DIR/space.txt"
printf 'nbsp\xC2\xA0here \xC2\xA0 and\xC2\xA0\xC2\xA0two; nel\xC2\x85x; ogham\xE1\x9A\x80x; en\xE2\x80\x80em\xE2\x80\x81' >> "$T_DIR/space.txt"
printf '\xE2\x80\x82\xE2\x80\x83\xE2\x80\x84\xE2\x80\x85\xE2\x80\x86\xE2\x80\x87\xE2\x80\x88\xE2\x80\x89\xE2\x80\x8A hair; ' >> "$T_DIR/space.txt"
printf 'ls\xE2\x80\xA8ps\xE2\x80\xA9 nnbsp\xE2\x80\xAFx mmsp\xE2\x81\x9Fx ideo\xE3\x80\x80x ideo\xE3\x80\x80\xE3\x80\x80 y\n' >> "$T_DIR/space.txt"
printf 'not space: zwsp\xE2\x80\x8Bx zwnj\xE2\x80\x8Cx bom\xEF\xBB\xBFx mvs\xE1\xA0\x8Ex wj\xE2\x81\xA0x \xE2\x80\x8B \xEF\xBB\xBF end  \t ' >> "$T_DIR/space.txt"
# every White_Space character and some look-alikes that are not, in many contexts
for ws in '\x09' '\x0a' '\x0b' '\x0c' '\x0d' '\x20' '\xc2\x85' '\xc2\xa0' '\xe1\x9a\x80' \
          '\xe2\x80\x80' '\xe2\x80\x85' '\xe2\x80\x8a' '\xe2\x80\xa8' '\xe2\x80\xa9' \
          '\xe2\x80\xaf' '\xe2\x81\x9f' '\xe3\x80\x80' '\x1c' '\x1f' '\xe2\x80\x8b' \
          '\xef\xbb\xbf' '\xe1\xa0\x8e' '\xc2\xad'; do
  printf "x${ws}!${ws}1${ws}${ws}y${ws} ${ws}z ${ws}${ws}.${ws}\xc3\xa9${ws}\xe4\xb8\xad${ws}'s${ws}" >> "$T_DIR/space.txt"
  printf "\n" >> "$T_DIR/space.txt"
done
printf "%s\n" \
  "I'm, you're, he's, she'd, we've, they'll, it's, can't, won't, don't, isn't" \
  "I'M YOU'RE HE'S SHE'D WE'VE THEY'LL IT'S CAN'T WON'T; Mixed: I'M i'M We'Ve they'Ll" \
  "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'VE 'M 'LL 'D ''s '''ll x'y o'clock rock'n'roll" \
  "curly: I’m it’s don’t; ʼs ′s ' s 'x 'r 'l 'v" "ends with apostrophe '" > "$T_DIR/contractions.txt"
printf "%s\n" \
  "1 12 123 1234 12345 1234567890123456789 3.14159 -42 +7 1e10 0x1F 1,000,000 10:30 2024-01-02" \
  "x1 x12y 123abc abc123 1st 2nd 3rd 4th 007 v1.2.3 \$100 100% #1 a1b2c3 9️⃣" \
  "١٢٣ ۱۲۳ १२३ ১২৩ ௧௨௩ ๑๒๓ ０１２ ¹²³ ½¼ Ⅻ 一二三" > "$T_DIR/digits.txt"
printf '<|bos|>Hello<|eos|>\n<|system|>Be brief.<|end|><|user|>Hi there!<|end|>\n<|assistant|>Hello.<|end|>' > "$T_DIR/specials.txt"
printf ' <|bos|> <|user|>  x <|end|>\n\n<|assistant|> <|bos| |bos|> <||> <|eos|><|eos|>' >> "$T_DIR/specials.txt"
printf 'nul\0inside\0\0text \0 end' > "$T_DIR/nul.txt"
"$T" rand 1 3000 "$T_DIR/rand1.txt"
"$T" rand 2 3000 "$T_DIR/rand2.txt"
"$T" rand 3 20000 "$T_DIR/rand3.txt"

TEXTS="corpus scripts emoji cjk marks space contractions digits specials nul rand1 rand2 rand3"
ALL=(); for t in $TEXTS; do ALL+=("$T_DIR/$t.txt"); done

# ---------------------------------------------------------------- vocabularies
# trained: the corpus slice and the non-random texts, so merges exist in every script
"$T" train "$W/trained.gguf" 2048 "$T_DIR/corpus.txt" "$T_DIR/scripts.txt" "$T_DIR/emoji.txt" \
  "$T_DIR/cjk.txt" "$T_DIR/marks.txt" "$T_DIR/space.txt" "$T_DIR/contractions.txt" "$T_DIR/digits.txt"
"$T" train "$W/small.gguf" 512 "$T_DIR/corpus.txt"
# probes: every adjacent byte pair of the test texts (the corpus slice left out: ASCII pairs
# are covered by the other texts), in two random orders
PROBE_TEXTS=(); for t in scripts emoji cjk marks space contractions digits specials nul rand1 rand2; do PROBE_TEXTS+=("$T_DIR/$t.txt"); done
"$T" probe "$W/probe1.gguf" 1 "${PROBE_TEXTS[@]}"
"$T" probe "$W/probe2.gguf" 2 "${PROBE_TEXTS[@]}"

# ---------------------------------------------------------------- compare
# One node process per vocabulary tokenizes every text (loading llama.cpp once), the same way
# tests/node/llama_ref.mjs does: vocab-only model, model.tokenize(text, parseSpecial), no BOS.
cat > "$W/many.mjs" <<'EOF'
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
const [nodeDir, modelPath, outDir, ...files] = process.argv.slice(2);
const { getLlama, LlamaLogLevel } = await import(
    pathToFileURL(path.resolve(nodeDir, "node_modules/node-llama-cpp/dist/index.js")).href);
const llama = await getLlama({ gpu: false, build: "never", skipDownload: true,
    usePrebuiltBinaries: true, progressLogs: false, logLevel: LlamaLogLevel.error, maxThreads: 2 });
const model = await llama.loadModel({ modelPath, vocabOnly: true, gpuLayers: 0 });
for (const spec of files) {
    const special = spec.endsWith(":special");
    const file = special ? spec.slice(0, -8) : spec;
    const ids = model.tokenize(fs.readFileSync(file, "utf8"), special);
    fs.writeFileSync(path.join(outDir, path.basename(file, ".txt") + (special ? ".special" : "") + ".json"),
                     JSON.stringify(Array.from(ids)) + "\n");
}
await model.dispose();
await llama.dispose();
EOF
fail=0; n=0
for m in trained small probe1 probe2; do
  mkdir -p "$W/out/$m"
  specs=("${ALL[@]}" "$T_DIR/specials.txt:special")
  if ! node "$W/many.mjs" "$NODE_DIR" "$W/$m.gguf" "$W/out/$m" "${specs[@]}" 2> "$W/node.err"; then
    echo "FAIL $m: llama.cpp could not tokenize:"; sed 's/^/    /' "$W/node.err" | tail -20; fail=1; continue
  fi
  for spec in "${specs[@]}"; do
    sp=""; file=$spec
    if [[ $spec == *:special ]]; then sp=--special; file=${spec%:special}; fi
    base=$(basename "$file" .txt)${sp:+.special}
    "$T" encode "$W/$m.gguf" "$file" $sp > "$W/out/$m/$base.ours"
    n=$((n+1))
    if cmp -s "$W/out/$m/$base.ours" "$W/out/$m/$base.json"; then
      echo "ok   $m/$base ($(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).length)' "$W/out/$m/$base.ours") ids)"
    else
      fail=1
      node -e '
        const fs = require("fs");
        const a = JSON.parse(fs.readFileSync(process.argv[1])), b = JSON.parse(fs.readFileSync(process.argv[2]));
        let i = 0; while (i < a.length && i < b.length && a[i] === b[i]) i++;
        console.log(`FAIL ${process.argv[3]}: retort ${a.length} ids, llama.cpp ${b.length}; first difference at ${i}`);
        console.log(`     retort:    ${JSON.stringify(a.slice(Math.max(0, i - 3), i + 8))}`);
        console.log(`     llama.cpp: ${JSON.stringify(b.slice(Math.max(0, i - 3), i + 8))}`);
      ' "$W/out/$m/$base.ours" "$W/out/$m/$base.json" "$m/$base"
    fi
  done
done
if [ $fail = 0 ]; then echo "llama.cpp parity: $n comparisons, all identical"; fi
exit $fail
