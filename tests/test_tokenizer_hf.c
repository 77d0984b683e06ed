/* test_tokenizer_hf.c — Hugging Face tokenizers: NFC against the Unicode Consortium's
 * NormalizationTest.txt (Debian unicode-data, when installed) and hand-worked cases; the Split
 * pre-tokenizers of Llama 3, Qwen2 and DeepSeek-V3 against splits worked out by hand from their
 * regexes; a small SentencePiece-style tokenizer.json (merges, U+2581, byte fallback, Strip)
 * against ids worked out by hand, also through GGUF (llama.cpp's score merging); and the
 * loader's refusals. Parity with transformers.js on the real files is tests/ref_tokenizer_hf.sh. */
#include "base/base.h"
#include "formats/gguf.h"
#include "testlib.h"
#include "tokenizer/internal.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode_hf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- NFC */

static int nfc_is(const char *in, const char *want) {
    rt_buf out = {0};
    int ok = tok_nfc(in, strlen(in), &out) == 0 && out.len == strlen(want) &&
             memcmp(out.data, want, out.len) == 0;
    rt_buf_free(&out);
    return ok;
}

/* "0041 0301" -> UTF-8 */
static void hex_to_utf8(const char *field, rt_buf *b) {
    b->len = 0;
    for (const char *p = field; *p;) {
        char *end;
        unsigned long cp = strtoul(p, &end, 16);
        if (end == p) break;
        tok_utf8_put(b, (uint32_t)cp);
        p = end;
    }
    rt_buf_append(b, "", 1);
}

static void test_nfc(void) {
    CHECK(nfc_is("e\xCC\x81", "\xC3\xA9"));                     /* e + U+0301 -> é */
    CHECK(nfc_is("\xC3\xA9", "\xC3\xA9"));                      /* already composed */
    CHECK(nfc_is("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xEA\xB0\x81")); /* jamo -> 각 */
    CHECK(nfc_is("a\xCC\xA3\xCC\x87", "\xE1\xBA\xA1\xCC\x87")); /* a+dot below+dot above */
    CHECK(nfc_is("a\xCC\x87\xCC\xA3", "\xE1\xBA\xA1\xCC\x87")); /* reordered first */
    CHECK(nfc_is("\xE0\xA5\x98", "\xE0\xA4\x95\xE0\xA4\xBC"));  /* U+0958 is excluded */
    CHECK(nfc_is("\xE2\x84\xAB", "\xC3\x85"));                  /* Angstrom sign -> Å */
    CHECK(nfc_is("x\xFF" "e\xCC\x81", "x\xFF\xC3\xA9"));        /* invalid byte kept */
    CHECK(nfc_is("\xCC\x81" "a", "\xCC\x81" "a"));              /* leading mark stays */

    FILE *f = popen("bzcat /usr/share/unicode/NormalizationTest.txt.bz2 2>/dev/null", "r");
    char line[2048];
    size_t n = 0, bad = 0;
    rt_buf c[5] = {{0}}, out = {0};
    while (f && fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '@' || line[0] == '\n') continue;
        char *fields[5], *p = line;
        int k = 0;
        for (; k < 5; k++) {
            char *semi = strchr(p, ';');
            if (!semi) break;
            *semi = 0;
            fields[k] = p;
            p = semi + 1;
        }
        if (k < 5) continue;
        for (int i = 0; i < 5; i++) hex_to_utf8(fields[i], &c[i]);
        /* NFC(c1) = NFC(c2) = NFC(c3) = c2; NFC(c4) = NFC(c5) = c4 */
        static const int want[5] = {1, 1, 1, 3, 3};
        for (int i = 0; i < 5; i++) {
            const rt_buf *w = &c[want[i]];
            if (tok_nfc(c[i].data, c[i].len - 1, &out) || out.len != w->len - 1 ||
                memcmp(out.data, w->data, out.len) != 0) {
                if (bad < 5) fprintf(stderr, "  NFC mismatch: line \"%s;%s\" column %d\n",
                                     fields[0], fields[1], i + 1);
                bad++;
            }
        }
        n++;
    }
    int rc = f ? pclose(f) : -1;
    if (n == 0) {
        fprintf(stderr, "  (NormalizationTest.txt not found: install unicode-data; hand cases only)\n");
    } else {
        fprintf(stderr, "  NormalizationTest.txt: %zu lines, %zu mismatches\n", n, bad);
        CHECK(rc == 0);
        CHECK(n > 15000);
    }
    CHECK(bad == 0);
    for (int i = 0; i < 5; i++) rt_buf_free(&c[i]);
    rt_buf_free(&out);
}

/* ---------------------------------------------------------------- pre-tokenizers */

/* The Isolated splits of a sequence of stages, joined with '|'. */
static void split_rec(const tok_stage *st, int n, const char *s, size_t len, rt_buf *out) {
    if (n == 0) {
        if (out->len) rt_buf_append(out, "|", 1);
        rt_buf_append(out, s, len);
        return;
    }
    size_t pos = 0, prev = 0, ms, me;
    while (tok_stage_find(st, (const uint8_t *)s, len, pos, &ms, &me)) {
        if (ms > prev) split_rec(st + 1, n - 1, s + prev, ms - prev, out);
        split_rec(st + 1, n - 1, s + ms, me - ms, out);
        prev = pos = me;
    }
    if (prev < len) split_rec(st + 1, n - 1, s + prev, len - prev, out);
}

static int splits_as(const int *kinds, int n, const char *text, const char *want) {
    tok_stage st[4] = {{0}};
    for (int i = 0; i < n; i++) st[i].kind = kinds[i];
    rt_buf out = {0};
    split_rec(st, n, text, strlen(text), &out);
    rt_buf_append(&out, "", 1);
    int ok = strcmp(out.data, want) == 0;
    if (!ok) fprintf(stderr, "  split of \"%s\": got \"%s\", expected \"%s\"\n", text, out.data, want);
    rt_buf_free(&out);
    return ok;
}

static void test_pretokenizers(void) {
    int l3[] = {TOK_PRE_LLAMA3}, qw[] = {TOK_PRE_QWEN2};
    int ds[] = {TOK_PRE_DS3_DIGITS, TOK_PRE_DS3_CJK, TOK_PRE_DS3_MAIN};
    /* worked out from the regexes by hand (see pretok_hf.c) */
    CHECK(splits_as(l3, 1, "Hello world's 12345 ab\n\n  x", "Hello| world|'s| |123|45| ab|\n\n| | x"));
    CHECK(splits_as(l3, 1, "I'M here'LL", "I|'M| here|'LL"));
    CHECK(splits_as(l3, 1, "a  \n b", "a|  \n| b"));
    CHECK(splits_as(l3, 1, "x...\r\ny", "x|...\r\n|y"));
    CHECK(splits_as(l3, 1, "(foo) end   ", "(foo|)| end|   "));
    CHECK(splits_as(qw, 1, "ab 12345", "ab| |1|2|3|4|5"));
    CHECK(splits_as(ds, 3, "abc123def \xE6\x88\x91\xE4\xBB\xAC x,y",
                    "abc|123|def| |\xE6\x88\x91\xE4\xBB\xAC| x|,y"));
    CHECK(splits_as(ds, 3, "1234567", "123|456|7"));
    CHECK(splits_as(ds, 3, "e\xCC\x81t\xC3\xA9 .", "e\xCC\x81t\xC3\xA9| ."));
}

/* ---------------------------------------------------------------- SentencePiece-style */

/* A Llama-2-like tokenizer.json: <unk> <s> </s>, the 256 byte tokens, and a few pieces. */
static char *spm_json(void) {
    rt_buf b = {0};
    rt_buf_printf(&b, "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":["
                      "{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"},"
                      "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}]},"
                      "\"pre_tokenizer\":null,"
                      "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]},"
                      "\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
                      "{\"id\":1,\"content\":\"<s>\",\"special\":true},{\"id\":2,\"content\":\"</s>\",\"special\":true}],"
                      "\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"fuse_unk\":true,\"unk_token\":\"<unk>\","
                      "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2");
    for (int i = 0; i < 256; i++) rt_buf_printf(&b, ",\"<0x%02X>\":%d", i, 3 + i);
    rt_buf_printf(&b, ",\"\xE2\x96\x81\":259,\"a\":260,\"b\":261,\"\xE2\x96\x81" "a\":262,\"ab\":263,"
                      "\"\xE2\x96\x81" "ab\":264},"
                      "\"merges\":[\"\xE2\x96\x81 a\",\"a b\",\"\xE2\x96\x81" "a b\"]}}");
    return b.data;
}

static int encodes_as(const tokenizer *t, const char *text, const int32_t *want, size_t nw) {
    int32_t *ids;
    size_t n;
    if (tokenizer_encode(t, text, strlen(text), 1, &ids, &n)) return 0;
    int ok = n == nw && memcmp(ids, want, n * sizeof *ids) == 0;
    if (!ok) {
        fprintf(stderr, "  \"%s\" ->", text);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
    return ok;
}

static void check_spm(const tokenizer *t) {
    /* "ab ab" -> ▁ab▁ab: (▁,a) rank 0 twice, then (▁a,b) rank 2 -> ▁ab ▁ab */
    static const int32_t w1[] = {264, 264};
    CHECK(encodes_as(t, "ab ab", w1, 2));
    /* "ba" -> ▁ba: (▁,b), (b,a) are no merges -> ▁ b a */
    static const int32_t w2[] = {259, 261, 260};
    CHECK(encodes_as(t, "ba", w2, 3));
    /* "é" is no token: its bytes C3 A9 fall back to <0xC3> <0xA9> */
    static const int32_t w3[] = {259, 3 + 0xC3, 3 + 0xA9};
    CHECK(encodes_as(t, "\xC3\xA9", w3, 3));
    /* the special <s> splits; the text after it gets its own U+2581 */
    static const int32_t w4[] = {262, 1, 262};
    CHECK(encodes_as(t, "a<s>a", w4, 3));
    const char *text = "ab  \xC3\xA9\xFF b";
    int32_t *ids;
    size_t n, len;
    char *back;
    CHECK_OK(tokenizer_encode(t, text, strlen(text), 0, &ids, &n));
    CHECK_OK(tokenizer_decode(t, ids, n, &back, &len));
    CHECK(len == strlen(text) && memcmp(back, text, len) == 0);
    free(ids);
    free(back);
}

static void test_spm(void) {
    char *json = spm_json();
    tokenizer *t = NULL;
    CHECK_OK(tokenizer_from_hf_json(&t, json, strlen(json), NULL, 0, "spm.json"));
    free(json);
    if (!t) return;
    CHECK(tokenizer_vocab_size(t) == 265);
    CHECK(tokenizer_bos(t) == -1 && tokenizer_add_bos(t) == 0); /* no config, no template */
    {
        json = spm_json();
        const char *cfg = "{\"add_bos_token\": true, \"bos_token\": \"<s>\", "
                          "\"eos_token\": {\"content\": \"</s>\"}, \"model_max_length\": "
                          "1000000000000000019884624838656}";
        tokenizer *tc = NULL;
        CHECK_OK(tokenizer_from_hf_json(&tc, json, strlen(json), cfg, strlen(cfg), "spm.json"));
        free(json);
        CHECK(tc && tokenizer_bos(tc) == 1 && tokenizer_eos(tc) == 2 && tokenizer_add_bos(tc) == 1 &&
              tokenizer_add_eos(tc) == 0);
        tokenizer_free(tc);
    }
    CHECK(tokenizer_unk(t) == 0);
    CHECK(tokenizer_token_type(t, 1) == TOKENIZER_TYPE_CONTROL);
    CHECK(tokenizer_token_type(t, 0) == TOKENIZER_TYPE_UNKNOWN);
    CHECK(tokenizer_token_type(t, 3 + 0x41) == TOKENIZER_TYPE_BYTE);
    check_spm(t);

    /* The same through GGUF ("llama": scores = minus the rank of the merge making the token). */
    char path[512];
    snprintf(path, sizeof path, "%s/spm.gguf", tl_tmpdir());
    gguf_writer *w = gguf_writer_new();
    CHECK_OK(tokenizer_to_gguf(t, w));
    CHECK_OK(gguf_writer_write(w, path));
    gguf_writer_free(w);
    gguf_ctx *g = NULL;
    tokenizer *t2 = NULL;
    CHECK_OK(gguf_open(&g, path));
    if (g) CHECK_OK(tokenizer_from_gguf(&t2, g));
    if (t2) check_spm(t2);
    tokenizer_free(t2);
    gguf_close(g);
    tokenizer_free(t);
}

/* tokenizer_pad_vocab: [PAD<id>] UNUSED tokens up to a model's vocab_size (as llama.cpp's
 * converter pads), encoding unchanged, decodable, kept through GGUF; never shrinks. */
static void test_pad(void) {
    char *json = spm_json();
    tokenizer *t = NULL;
    CHECK_OK(tokenizer_from_hf_json(&t, json, strlen(json), NULL, 0, "spm.json"));
    free(json);
    if (!t) return;
    CHECK_OK(tokenizer_pad_vocab(t, 265)); /* already that size: nothing to do */
    CHECK_OK(tokenizer_pad_vocab(t, 270));
    CHECK(tokenizer_vocab_size(t) == 270);
    for (int32_t id = 265; id < 270; id++) CHECK(tokenizer_token_type(t, id) == TOKENIZER_TYPE_UNUSED);
    CHECK(tokenizer_token_type(t, 264) != TOKENIZER_TYPE_UNUSED);
    CHECK(tokenizer_pad_vocab(t, 269) != 0 && strstr(rt_errmsg(), "cannot pad 270 tokens down to 269"));
    CHECK(tokenizer_vocab_size(t) == 270);
    check_spm(t); /* the same ids and round trip as before padding */
    int32_t ids[2] = {267, 269};
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(tokenizer_decode(t, ids, 2, &text, &len));
    CHECK(text && len == 16 && memcmp(text, "[PAD267][PAD269]", 16) == 0);
    free(text);

    char path[512];
    snprintf(path, sizeof path, "%s/pad.gguf", tl_tmpdir());
    gguf_writer *w = gguf_writer_new();
    CHECK_OK(tokenizer_to_gguf(t, w));
    CHECK_OK(gguf_writer_write(w, path));
    gguf_writer_free(w);
    gguf_ctx *g = NULL;
    tokenizer *t2 = NULL;
    CHECK_OK(gguf_open(&g, path));
    if (g) CHECK_OK(tokenizer_from_gguf(&t2, g));
    if (t2) {
        CHECK(tokenizer_vocab_size(t2) == 270 && tokenizer_token_type(t2, 268) == TOKENIZER_TYPE_UNUSED);
        check_spm(t2);
    }
    tokenizer_free(t2);
    gguf_close(g);
    tokenizer_free(t);
}

/* ---------------------------------------------------------------- refusals */

static void fails_with(const char *json, const char *want) {
    tokenizer *t = NULL;
    int rc = tokenizer_from_hf_json(&t, json, strlen(json), NULL, 0, "bad.json");
    CHECK_MSG(rc != 0 && t == NULL && strstr(rt_errmsg(), want) && strstr(rt_errmsg(), "bad.json"),
              "expected an error with \"%s\", got rc %d: %s", want, rc, rt_errmsg());
    tokenizer_free(t);
}

static void test_refusals(void) {
    fails_with("{\"model\": ", "line 1");
    fails_with("[1,2]", "expected a JSON object");
    fails_with("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}}", "only BPE");
    fails_with("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":2},\"merges\":[]},"
               "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
               "no token has id 1");
    fails_with("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a c\"]},"
               "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
               "model.merges[0]");
    fails_with("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
               "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\w+\"},"
               "\"behavior\":\"Isolated\"}}",
               "not one of the pre-tokenizer patterns");
    fails_with("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
               "\"normalizer\":{\"type\":\"NFKC\"},\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
               "normalizer \"NFKC\"");
    fails_with("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
               "\"added_tokens\":[{\"id\":1,\"content\":\"<x>\",\"lstrip\":true}],"
               "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
               "lstrip");
    /* byte-level needs all 256 single bytes */
    fails_with("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
               "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"use_regex\":true}}",
               "single byte 0x00");
    fails_with("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"a\":1},\"merges\":[]}}",
               "duplicate");
}

TEST_MAIN("tokenizer_hf", TEST_CASE(test_nfc), TEST_CASE(test_pretokenizers), TEST_CASE(test_spm), TEST_CASE(test_pad),
          TEST_CASE(test_refusals))
