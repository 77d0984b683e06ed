/* test_tokenizer_gguf.c — the tokenizer through GGUF: tokenizer.ggml.* keys as llama.cpp reads
 * them (GPT-2 byte characters checked against the published bytes_to_unicode table), a full
 * round trip (same tokens, types, merges, ids), and a catalogue of missing or malformed keys
 * whose errors must name the key. */
#include "base/base.h"
#include "formats/gguf.h"
#include "testlib.h"
#include "tokenizer/tokenizer.h"

static char *path_in_tmp(const char *name) {
    static char buf[8][512];
    static int k = 0;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", tl_tmpdir(), name);
    return p;
}

static tokenizer *hand_tokenizer(void) {
    const char *text = "hug hug hug pug pun bun hugs";
    tokenizer *t = NULL;
    if (tokenizer_train(&t, text, strlen(text), 256 + 10 + TOKENIZER_N_SPECIAL)) {
        fprintf(stderr, "train: %s\n", rt_errmsg());
        exit(1);
    }
    return t;
}

static int str_is(const char *s, size_t len, const char *want) {
    return len == strlen(want) && memcmp(s, want, len) == 0;
}

static void test_keys_as_llama_reads_them(void) {
    tokenizer *t = hand_tokenizer();
    gguf_writer *w = gguf_writer_new();
    CHECK(w != NULL);
    CHECK_OK(tokenizer_to_gguf(t, w));
    const char *path = path_in_tmp("keys.gguf");
    CHECK_OK(gguf_writer_write(w, path));
    gguf_writer_free(w);
    gguf_ctx *c;
    CHECK_OK(gguf_open(&c, path));
    const char *s;
    size_t len, n;
    CHECK(gguf_get_str(c, "tokenizer.ggml.model", &s, &len) == 0 && str_is(s, len, "gpt2"));
    CHECK(gguf_get_str(c, "tokenizer.ggml.pre", &s, &len) == 0 && str_is(s, len, "gpt-2"));
    CHECK(gguf_get_arr_str_n(c, "tokenizer.ggml.tokens", &n) == 0 && n == 272);
    /* GPT-2's bytes_to_unicode (the published table): printable bytes stand for themselves,
     * the rest map to U+0100 upwards in byte order. */
    struct {
        int id;
        const char *text;
    } want[] = {
        {0x00, "Ā"}, {0x0A, "Ċ"}, {0x20, "Ġ"}, {'!', "!"}, {'a', "a"}, {0x7E, "~"},
        {0x7F, "ġ"}, {0x80, "Ģ"}, {0xA0, "ł"}, {0xA1, "¡"}, {0xAC, "¬"}, {0xAD, "Ń"},
        {0xAE, "®"}, {0xFF, "ÿ"}, {258, "Ġhug"}, {262, "Ġhugs"}, {266, "<|bos|>"}, {271, "<|end|>"},
    };
    for (size_t i = 0; i < RT_ARRAY_LEN(want); i++) {
        CHECK(gguf_get_arr_str(c, "tokenizer.ggml.tokens", (size_t)want[i].id, &s, &len) == 0);
        CHECK_MSG(str_is(s, len, want[i].text), "token %d is \"%.*s\", expected \"%s\"",
                  want[i].id, (int)len, s, want[i].text);
    }
    CHECK(gguf_get_arr_str_n(c, "tokenizer.ggml.merges", &n) == 0 && n == 10);
    const char *want_merges[3] = {"u g", "h ug", "Ġ hug"};
    for (size_t i = 0; i < 3; i++) {
        CHECK(gguf_get_arr_str(c, "tokenizer.ggml.merges", i, &s, &len) == 0);
        CHECK(str_is(s, len, want_merges[i]));
    }
    gguf_type et;
    const void *data;
    CHECK(gguf_get_arr_data(c, "tokenizer.ggml.token_type", &et, &n, &data) == 0);
    CHECK(et == GGUF_TYPE_INT32 && n == 272);
    int types_ok = 1;
    for (size_t i = 0; i < n; i++) {
        int32_t v;
        memcpy(&v, (const char *)data + 4 * i, 4);
        types_ok &= v == (i >= 266 ? TOKENIZER_TYPE_CONTROL : TOKENIZER_TYPE_NORMAL);
    }
    CHECK(types_ok);
    uint32_t u;
    CHECK(gguf_get_u32(c, "tokenizer.ggml.bos_token_id", &u) == 0 && u == 266);
    CHECK(gguf_get_u32(c, "tokenizer.ggml.eos_token_id", &u) == 0 && u == 267);
    CHECK(gguf_get_u32(c, "tokenizer.ggml.padding_token_id", &u) == 0 && u == 267);
    int b = 1;
    CHECK(gguf_get_bool(c, "tokenizer.ggml.add_bos_token", &b) == 0 && b == 0);
    b = 1;
    CHECK(gguf_get_bool(c, "tokenizer.ggml.add_eos_token", &b) == 0 && b == 0);
    gguf_close(c);
    tokenizer_free(t);
}

static void test_round_trip(void) {
    /* A bigger vocabulary from text with many scripts, so mapped characters of every kind
     * (and multi-byte tokens) are exercised. */
    rt_buf text = {0};
    rt_rng r;
    rt_rng_seed(&r, 5);
    static const char *const words[] = {
        "the", " of", " and", "\n", "  ", " naïve", " Grüße", " Русский", " 日本語", " 👋🏽",
        " 123", "'s", " don't", "\t", " \xC2\xA0", "!!", " ...", "\r\n", " x²", " e\xCC\x81",
    };
    for (int i = 0; i < 20000; i++) {
        const char *s = words[rt_rng_below(&r, RT_ARRAY_LEN(words))];
        if (rt_buf_append(&text, s, strlen(s))) exit(1);
    }
    /* and some raw bytes, so tokens with unmapped-looking bytes exist */
    for (int i = 0; i < 3000; i++) {
        char c = (char)rt_rng_below(&r, 256);
        if (rt_buf_append(&text, &c, 1)) exit(1);
    }
    tokenizer *a;
    CHECK_OK(tokenizer_train(&a, text.data, text.len, 800));
    gguf_writer *w = gguf_writer_new();
    CHECK_OK(tokenizer_to_gguf(a, w));
    const char *path = path_in_tmp("rt.gguf");
    CHECK_OK(gguf_writer_write(w, path));
    gguf_writer_free(w);
    gguf_ctx *c;
    CHECK_OK(gguf_open(&c, path));
    tokenizer *b = NULL;
    CHECK_OK(tokenizer_from_gguf(&b, c));
    gguf_close(c); /* the tokenizer owns its copies */
    if (!b) {
        tokenizer_free(a);
        rt_buf_free(&text);
        return;
    }
    CHECK(tokenizer_vocab_size(a) == tokenizer_vocab_size(b));
    CHECK(tokenizer_n_merges(a) == tokenizer_n_merges(b));
    CHECK(tokenizer_bos(a) == tokenizer_bos(b) && tokenizer_eos(a) == tokenizer_eos(b) &&
          tokenizer_pad(a) == tokenizer_pad(b));
    int same = 1;
    for (int32_t i = 0; i < (int32_t)tokenizer_vocab_size(a); i++) {
        size_t la, lb;
        const char *sa = tokenizer_token_bytes(a, i, &la), *sb = tokenizer_token_bytes(b, i, &lb);
        same &= la == lb && memcmp(sa, sb, la) == 0 &&
                tokenizer_token_type(a, i) == tokenizer_token_type(b, i);
    }
    for (size_t m = 0; m < tokenizer_n_merges(a); m++) {
        int32_t x[3], y[3];
        tokenizer_merge_at(a, m, &x[0], &x[1], &x[2]);
        tokenizer_merge_at(b, m, &y[0], &y[1], &y[2]);
        same &= memcmp(x, y, sizeof x) == 0;
    }
    CHECK(same);
    for (int ps = 0; ps < 2; ps++) {
        int32_t *ia, *ib;
        size_t na, nb;
        CHECK_OK(tokenizer_encode(a, text.data, text.len, ps, &ia, &na));
        CHECK_OK(tokenizer_encode(b, text.data, text.len, ps, &ib, &nb));
        CHECK(na == nb && memcmp(ia, ib, na * sizeof *ia) == 0);
        free(ia);
        free(ib);
    }
    tokenizer_free(a);
    tokenizer_free(b);
    rt_buf_free(&text);
}

/* ---------------------------------------------------------------- malformed files */

/* The keys of the hand tokenizer, written by hand here so that each can be left out or
 * replaced: byte tokens, "ug", "hug", then <|bos|> <|eos|>. */
enum { SKIP_NONE = 0 };
typedef void (*mutate_fn)(gguf_writer *w);

static void write_base(gguf_writer *w, const char *skip) {
    static char bytes_text[256][4];
    const char *toks[261];
    int32_t types[261];
    for (int b = 0; b < 256; b++) {
        uint32_t cp = b;
        if (b <= 0x20) cp = 256 + b;
        else if (b >= 0x7F && b <= 0xA0) cp = 256 + 33 + (b - 0x7F);
        else if (b == 0xAD) cp = 256 + 67;
        if (cp < 0x80) {
            bytes_text[b][0] = (char)cp;
            bytes_text[b][1] = 0;
        } else {
            bytes_text[b][0] = (char)(0xC0 | (cp >> 6));
            bytes_text[b][1] = (char)(0x80 | (cp & 0x3F));
            bytes_text[b][2] = 0;
        }
        toks[b] = bytes_text[b];
        types[b] = 1;
    }
    toks[256] = "ug";
    toks[257] = "hug";
    toks[258] = "Ġhug";
    toks[259] = "<|bos|>";
    toks[260] = "<|eos|>";
    types[256] = types[257] = types[258] = 1;
    types[259] = types[260] = 3;
    const char *merges[3] = {"u g", "h ug", "Ġ hug"};
#define KEY(k) (!skip || strcmp(skip, k) != 0)
    if (KEY("tokenizer.ggml.model")) gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    if (KEY("tokenizer.ggml.pre")) gguf_set_str(w, "tokenizer.ggml.pre", "gpt-2");
    if (KEY("tokenizer.ggml.tokens")) gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 261);
    if (KEY("tokenizer.ggml.token_type"))
        gguf_set_arr_data(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 261);
    if (KEY("tokenizer.ggml.merges")) gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 3);
    if (KEY("tokenizer.ggml.bos_token_id")) gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 259);
    if (KEY("tokenizer.ggml.eos_token_id")) gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 260);
#undef KEY
}

/* Write the base keys (less `skip`), apply mutate, and try to load. Returns 0 if it loaded.
 * On success *out_tok holds the tokenizer (else NULL). */
static int try_load(const char *skip, mutate_fn mutate, tokenizer **out_tok) {
    gguf_writer *w = gguf_writer_new();
    write_base(w, skip);
    if (mutate) mutate(w);
    const char *path = path_in_tmp("bad.gguf");
    if (gguf_writer_write(w, path)) {
        fprintf(stderr, "  write failed: %s\n", rt_errmsg());
        exit(1);
    }
    gguf_writer_free(w);
    gguf_ctx *c;
    if (gguf_open(&c, path)) {
        fprintf(stderr, "  open failed: %s\n", rt_errmsg());
        exit(1);
    }
    tokenizer *t = (tokenizer *)1;
    int rc = tokenizer_from_gguf(&t, c);
    gguf_close(c);
    if (rc == 0) {
        if (out_tok) *out_tok = t;
        else tokenizer_free(t);
    } else {
        CHECK(t == NULL);
        if (out_tok) *out_tok = NULL;
    }
    return rc;
}

static void m_model_t5(gguf_writer *w) { gguf_set_str(w, "tokenizer.ggml.model", "t5"); } /* Unigram: not read */
static void m_pre_falcon(gguf_writer *w) { gguf_set_str(w, "tokenizer.ggml.pre", "falcon"); } /* not implemented */
static void m_model_int(gguf_writer *w) { gguf_set_u32(w, "tokenizer.ggml.model", 2); }
static void m_types_u32(gguf_writer *w) {
    uint32_t v[261];
    for (int i = 0; i < 261; i++) v[i] = 1;
    gguf_set_arr_data(w, "tokenizer.ggml.token_type", GGUF_TYPE_UINT32, v, 261);
}
static void m_types_short(gguf_writer *w) {
    int32_t v[260];
    for (int i = 0; i < 260; i++) v[i] = 1;
    gguf_set_arr_data(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v, 260);
}
static void m_types_value(gguf_writer *w) {
    int32_t v[261];
    for (int i = 0; i < 261; i++) v[i] = i >= 259 ? 3 : 1;
    v[100] = 6; /* BYTE: not supported */
    gguf_set_arr_data(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v, 261);
}
static void m_tokens_strings_as_ints(gguf_writer *w) {
    int32_t v[261] = {0};
    gguf_set_arr_data(w, "tokenizer.ggml.tokens", GGUF_TYPE_INT32, v, 261);
}
static void set_tokens_with(gguf_writer *w, int idx, const char *text) {
    /* rewrite tokens with one entry replaced */
    static char bytes_text[256][4];
    const char *toks[261];
    for (int b = 0; b < 256; b++) {
        uint32_t cp = b;
        if (b <= 0x20) cp = 256 + b;
        else if (b >= 0x7F && b <= 0xA0) cp = 256 + 33 + (b - 0x7F);
        else if (b == 0xAD) cp = 256 + 67;
        if (cp < 0x80) {
            bytes_text[b][0] = (char)cp;
            bytes_text[b][1] = 0;
        } else {
            bytes_text[b][0] = (char)(0xC0 | (cp >> 6));
            bytes_text[b][1] = (char)(0x80 | (cp & 0x3F));
            bytes_text[b][2] = 0;
        }
        toks[b] = bytes_text[b];
    }
    toks[256] = "ug";
    toks[257] = "hug";
    toks[258] = "Ġhug";
    toks[259] = "<|bos|>";
    toks[260] = "<|eos|>";
    toks[idx] = text;
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 261);
}
static void m_token_space(gguf_writer *w) { set_tokens_with(w, 257, "h ug"); }
static void m_token_dup(gguf_writer *w) { set_tokens_with(w, 258, "hug"); }
static void m_token_empty(gguf_writer *w) { set_tokens_with(w, 258, ""); }
static void m_token_no_byte(gguf_writer *w) { set_tokens_with(w, 'q', "qq"); }
static void m_special_clash(gguf_writer *w) { set_tokens_with(w, 258, "<|eos|>"); }
static void set_merges(gguf_writer *w, const char *m2) {
    const char *merges[3] = {"u g", "h ug", m2};
    gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 3);
}
static void m_merge_nospace(gguf_writer *w) { set_merges(w, "Ġhug"); }
static void m_merge_twospaces(gguf_writer *w) { set_merges(w, "Ġ  hug"); }
static void m_merge_unknown(gguf_writer *w) { set_merges(w, "Ġ zzz"); }
static void m_merge_noresult(gguf_writer *w) { set_merges(w, "g u"); }
static void m_merge_dup(gguf_writer *w) { set_merges(w, "u g"); }
static void m_merge_special(gguf_writer *w) { set_merges(w, "<|bos|> h"); }
static void m_bos_range(gguf_writer *w) { gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 261); }
static void m_eos_type(gguf_writer *w) { gguf_set_str(w, "tokenizer.ggml.eos_token_id", "1"); }
static void m_pad_range(gguf_writer *w) { gguf_set_u32(w, "tokenizer.ggml.padding_token_id", 999); }
static void m_add_bos_type(gguf_writer *w) { gguf_set_u32(w, "tokenizer.ggml.add_bos_token", 7); }

static void expect_error(const char *what, const char *skip, mutate_fn m, const char *k1,
                         const char *k2) {
    int rc = try_load(skip, m, NULL);
    CHECK_MSG(rc == -1, "%s: loaded although it should not", what);
    if (rc == -1) {
        CHECK_MSG(strstr(rt_errmsg(), k1) != NULL && (!k2 || strstr(rt_errmsg(), k2) != NULL),
                  "%s: message \"%s\" should name \"%s\"%s%s", what, rt_errmsg(), k1,
                  k2 ? " and " : "", k2 ? k2 : "");
        CHECK_MSG(strstr(rt_errmsg(), "bad.gguf") != NULL, "%s: message \"%s\" should name the file",
                  what, rt_errmsg());
    }
}

static void test_malformed(void) {
    /* The base file itself loads and encodes as expected. */
    tokenizer *t = NULL;
    CHECK(try_load(NULL, NULL, &t) == 0);
    if (t) {
        int32_t *ids;
        size_t n;
        CHECK_OK(tokenizer_encode(t, "hug hugs<|bos|>", 15, 1, &ids, &n));
        CHECK(n == 4 && ids[0] == 257 && ids[1] == 258 && ids[2] == 's' && ids[3] == 259);
        free(ids);
        CHECK(tokenizer_pad(t) == -1 && tokenizer_bos(t) == 259 && tokenizer_eos(t) == 260);
        tokenizer_free(t);
    }
    const char *K_MODEL = "tokenizer.ggml.model", *K_PRE = "tokenizer.ggml.pre",
               *K_TOKENS = "tokenizer.ggml.tokens", *K_TYPES = "tokenizer.ggml.token_type",
               *K_MERGES = "tokenizer.ggml.merges", *K_BOS = "tokenizer.ggml.bos_token_id",
               *K_EOS = "tokenizer.ggml.eos_token_id";
    expect_error("no model", K_MODEL, NULL, K_MODEL, "missing");
    expect_error("model t5", NULL, m_model_t5, K_MODEL, "t5");
    expect_error("model not a string", NULL, m_model_int, K_MODEL, NULL);
    expect_error("no pre", K_PRE, NULL, K_PRE, "missing");
    expect_error("pre falcon", NULL, m_pre_falcon, K_PRE, "falcon");
    expect_error("no tokens", K_TOKENS, NULL, K_TOKENS, "missing");
    expect_error("tokens not strings", NULL, m_tokens_strings_as_ints, K_TOKENS, NULL);
    expect_error("no token_type", K_TYPES, NULL, K_TYPES, "missing");
    expect_error("token_type u32", NULL, m_types_u32, K_TYPES, "int32");
    expect_error("token_type count", NULL, m_types_short, K_TYPES, "260");
    expect_error("token_type value", NULL, m_types_value, "tokenizer.ggml.token_type[100]", NULL);
    expect_error("token with a space", NULL, m_token_space, "tokenizer.ggml.tokens[257]", NULL);
    expect_error("duplicate token", NULL, m_token_dup, K_TOKENS, "twice");
    expect_error("empty token", NULL, m_token_empty, "tokenizer.ggml.tokens[258]", "empty");
    expect_error("missing byte", NULL, m_token_no_byte, K_TOKENS, "0x71");
    expect_error("normal token spells a special", NULL, m_special_clash, K_TOKENS, "<|eos|>");
    expect_error("no merges", K_MERGES, NULL, K_MERGES, "missing");
    expect_error("merge without space", NULL, m_merge_nospace, "tokenizer.ggml.merges[2]", NULL);
    expect_error("merge with two spaces", NULL, m_merge_twospaces, "tokenizer.ggml.merges[2]", NULL);
    expect_error("merge of unknown token", NULL, m_merge_unknown, "tokenizer.ggml.merges[2]", "zzz");
    expect_error("merge result missing", NULL, m_merge_noresult, "tokenizer.ggml.merges[2]",
                 "not in the vocabulary");
    expect_error("merge repeated", NULL, m_merge_dup, "tokenizer.ggml.merges[2]", "repeats");
    expect_error("merge of a special", NULL, m_merge_special, "tokenizer.ggml.merges[2]", NULL);
    expect_error("no bos", K_BOS, NULL, K_BOS, "missing");
    expect_error("bos out of range", NULL, m_bos_range, K_BOS, "261");
    expect_error("eos not a number", NULL, m_eos_type, K_EOS, NULL);
    expect_error("padding out of range", NULL, m_pad_range, "tokenizer.ggml.padding_token_id",
                 "999");
    expect_error("add_bos not a bool", NULL, m_add_bos_type, "tokenizer.ggml.add_bos_token", NULL);
}

TEST_MAIN("tokenizer_gguf", TEST_CASE(test_keys_as_llama_reads_them), TEST_CASE(test_round_trip),
          TEST_CASE(test_malformed))
