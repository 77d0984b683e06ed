/* test_tokenizer.c — tokenizer room: GPT-2 pre-tokenization against hand-worked splits,
 * training against merges worked out by hand, encoding against a deliberately naive second
 * BPE (GPT-2's original "merge every occurrence of the best pair" loop over full scans),
 * byte-exact round trips of random bytes (invalid UTF-8, NULs, special-like text), special
 * tokens, and error messages. GGUF round trips are in test_tokenizer_gguf.c. */
#include "base/base.h"
#include "testlib.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>

/* ---------------------------------------------------------------- helpers */

/* Pieces of text joined with '|' between them, written into a static buffer with bytes
 * outside printable ASCII (and '|', '\\') as \xNN, for readable failure messages. */
static const char *show_pieces(const char *text, const size_t *ends, size_t n) {
    static char buf[4096];
    size_t o = 0, start = 0;
    for (size_t i = 0; i < n && o + 8 < sizeof buf; i++) {
        if (i) buf[o++] = '|';
        for (size_t j = start; j < ends[i] && o + 8 < sizeof buf; j++) {
            unsigned char c = (unsigned char)text[j];
            if (c >= 0x20 && c < 0x7F && c != '|' && c != '\\')
                buf[o++] = (char)c;
            else
                o += (size_t)snprintf(buf + o, sizeof buf - o, "\\x%02X", c);
        }
        start = ends[i];
    }
    buf[o] = 0;
    return buf;
}

/* Check that text splits into exactly the NULL-terminated list of pieces. */
static void check_split(const char *text, const char *const *want) {
    size_t *ends, n;
    size_t len = strlen(text);
    CHECK_OK(tokenizer_pretokenize(text, len, &ends, &n));
    size_t nw = 0, pos = 0;
    int ok = 1;
    for (; want[nw]; nw++) {
        size_t wl = strlen(want[nw]);
        if (nw >= n || ends[nw] != pos + wl || memcmp(text + pos, want[nw], wl) != 0) ok = 0;
        pos += wl;
    }
    ok = ok && nw == n && pos == len;
    char wantbuf[4096];
    snprintf(wantbuf, sizeof wantbuf, "%s", "");
    {
        size_t we[64], k = 0, p = 0;
        char joined[2048] = "";
        size_t jl = 0;
        for (; want[k] && k < 64; k++) {
            size_t l = strlen(want[k]);
            memcpy(joined + jl, want[k], l);
            jl += l;
            p += l;
            we[k] = p;
        }
        snprintf(wantbuf, sizeof wantbuf, "%s", show_pieces(joined, we, k));
    }
    CHECK_MSG(ok, "split of \"%s\": got [%s], expected [%s]", text, show_pieces(text, ends, n),
              wantbuf);
    free(ends);
}

static tokenizer *train_or_die(const char *text, size_t len, size_t vocab) {
    tokenizer *t = NULL;
    if (tokenizer_train(&t, text, len, vocab)) {
        fprintf(stderr, "  tokenizer_train failed: %s\n", rt_errmsg());
        exit(1);
    }
    return t;
}

/* A small training text: English prose, repeated with variations, plus some other scripts,
 * numbers and punctuation so that merges of every kind exist. */
static char *make_corpus(size_t *len) {
    static const char *const lines[] = {
        "In the beginning God created the heaven and the earth. ",
        "And the earth was without form, and void; and darkness was upon the face of the deep.\n",
        "It's the user's turn: they'll say \"hello\" and we've answered, haven't we? ",
        "Numbers: 12345, 3.14159, 2024-01-02, 1,000,000 and 42!\n",
        "Grüße aus Köln — naïve café, façade, déjà vu. ",
        "Русский текст для проверки. Ελληνικά γράμματα. ",
        "日本語のテキストと中文文本。한국어 텍스트. ",
        "Emoji 👋🏽 🎉🎉 ❤️ and tabs\tand\ttabs  double  spaces   triple.\n",
        "  indented line\r\nwindows line\r\n\r\n",
    };
    rt_buf b = {0};
    rt_rng r;
    rt_rng_seed(&r, 1234);
    static const char *const syl[] = {"ka", "ro", "the", "an", "sel", "mi",  "dor", "us",
                                      "é",  "ß",  "ла",  "ть", "語",  "ing", "qu",  "x"};
    for (int i = 0; i < 400; i++) {
        const char *l = lines[rt_rng_below(&r, RT_ARRAY_LEN(lines))];
        if (rt_buf_append(&b, l, strlen(l))) exit(1);
        /* and a sentence of made-up words, so that there are many distinct pieces */
        for (int w = 0, nw = 3 + (int)rt_rng_below(&r, 8); w < nw; w++) {
            if (rt_buf_append(&b, " ", 1)) exit(1);
            for (int k = 0, ns = 1 + (int)rt_rng_below(&r, 4); k < ns; k++) {
                const char *sy = syl[rt_rng_below(&r, RT_ARRAY_LEN(syl))];
                if (rt_buf_append(&b, sy, strlen(sy))) exit(1);
            }
        }
        if (rt_buf_printf(&b, " %u.\n", (unsigned)rt_rng_below(&r, 100000))) exit(1);
    }
    *len = b.len;
    return b.data;
}

/* Random bytes biased towards interesting things: ASCII words, spaces of all kinds, UTF-8
 * sequences (valid and broken), NULs, and pieces of special-token text. */
static size_t random_text(rt_rng *r, char *out, size_t cap) {
    static const char *const frags[] = {
        "the",
        " the",
        "and",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "'s",
        "'ll",
        "'S",
        "'re",
        "don't",
        "123",
        "4567",
        ".",
        "...",
        "!?",
        "<|bos|>",
        "<|eos|>",
        "<|user|>",
        "<|end|>",
        "<|",
        "|>",
        "<|bos|",
        "<|assistant|>",
        "<|system|>",
        "é",
        "ß",
        "日本",
        "語",
        "👋🏽",
        "\xC2\xA0",
        "\xE3\x80\x80",
        "\xC2\x85",
        "\xE2\x80\xAF",
        "\xCC\x81",
        "\xFF",
        "\xC0\x80",
        "\xE4\xB8",
        "\xED\xA0\x80",
        "\xF4\x90\x80\x80",
        "\xF7\xBF\xBF\xBF",
        "\x80",
        "\0",
        "\x1C",
        "²",
        "Ⅻ",
    };
    size_t n = 0, target = rt_rng_below(r, cap);
    while (n < target) {
        size_t k = rt_rng_below(r, 4);
        if (k == 0) { /* a random byte */
            out[n++] = (char)rt_rng_below(r, 256);
        } else {
            size_t f = rt_rng_below(r, RT_ARRAY_LEN(frags));
            size_t l = frags[f][0] ? strlen(frags[f]) : 1; /* "\0" is one NUL byte */
            if (n + l > cap) break;
            memcpy(out + n, frags[f], l);
            n += l;
        }
    }
    return n;
}

/* ---------------------------------------------------------------- reference BPE */

/* GPT-2's original algorithm, deliberately naive: find the lowest-ranked adjacent pair by a
 * full scan (each pair's rank by a linear search of the merge list), merge every occurrence
 * of it left to right, repeat. Specials are cut out first by scanning for each one at every
 * position (longest first); the pre-tokenizer is the library's (checked by hand above). */
static int32_t naive_rank(const tokenizer *t, int32_t a, int32_t b, int32_t *result) {
    size_t m = tokenizer_n_merges(t);
    for (size_t r = 0; r < m; r++) {
        int32_t l, rr, res;
        tokenizer_merge_at(t, r, &l, &rr, &res);
        if (l == a && rr == b) {
            *result = res;
            return (int32_t)r;
        }
    }
    return -1;
}

static int32_t byte_token(const tokenizer *t, unsigned char c) {
    for (int32_t id = 0; id < (int32_t)tokenizer_vocab_size(t); id++) {
        size_t l;
        const char *s = tokenizer_token_bytes(t, id, &l);
        if (l == 1 && (unsigned char)s[0] == c && !tokenizer_is_special(t, id)) return id;
    }
    return -1;
}

static void naive_piece(const tokenizer *t, const char *p, size_t m, int32_t *out, size_t *n) {
    int32_t *sym = malloc(m * sizeof *sym);
    size_t k = m;
    for (size_t i = 0; i < m; i++) sym[i] = byte_token(t, (unsigned char)p[i]);
    for (;;) {
        int32_t best = -1, best_res = -1, ba = -1, bb = -1;
        for (size_t i = 0; i + 1 < k; i++) {
            int32_t res, r = naive_rank(t, sym[i], sym[i + 1], &res);
            if (r >= 0 && (best < 0 || r < best)) {
                best = r;
                best_res = res;
                ba = sym[i];
                bb = sym[i + 1];
            }
        }
        if (best < 0) break;
        size_t w = 0;
        for (size_t i = 0; i < k;) {
            if (i + 1 < k && sym[i] == ba && sym[i + 1] == bb) {
                sym[w++] = best_res;
                i += 2;
            } else {
                sym[w++] = sym[i++];
            }
        }
        k = w;
    }
    memcpy(out + *n, sym, k * sizeof *sym);
    *n += k;
    free(sym);
}

static void naive_fragment(const tokenizer *t, const char *s, size_t len, int32_t *out, size_t *n) {
    size_t *ends, np;
    if (tokenizer_pretokenize(s, len, &ends, &np)) exit(1);
    for (size_t i = 0, start = 0; i < np; start = ends[i], i++)
        naive_piece(t, s + start, ends[i] - start, out, n);
    free(ends);
}

/* out must have room for len + 1 ids. */
static size_t naive_encode(const tokenizer *t, const char *s, size_t len, int parse_special,
                           int32_t *out) {
    size_t n = 0, frag = 0;
    if (parse_special) {
        for (size_t pos = 0; pos < len;) {
            int32_t hit = -1;
            size_t hl = 0;
            for (int k = 0; k < TOKENIZER_N_SPECIAL; k++) {
                size_t l = strlen(tokenizer_special_tokens[k]);
                if (l <= len - pos && l > hl &&
                    memcmp(s + pos, tokenizer_special_tokens[k], l) == 0) {
                    hit = tokenizer_special_id(t, tokenizer_special_tokens[k]);
                    hl = l;
                }
            }
            if (hit < 0) {
                pos++;
                continue;
            }
            naive_fragment(t, s + frag, pos - frag, out, &n);
            out[n++] = hit;
            pos += hl;
            frag = pos;
        }
    }
    naive_fragment(t, s + frag, len - frag, out, &n);
    return n;
}

/* ---------------------------------------------------------------- tests */

static void test_pretokenize_hand_worked(void) {
    /* Expected pieces worked out from the pattern
     *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
     * (leftmost alternative that matches, each quantifier greedy). */
    check_split("Hello world", (const char *[]){"Hello", " world", NULL});
    check_split("I'm can't we'll they're I've he'd it's",
                (const char *[]){"I", "'m", " can", "'t", " we", "'ll", " they", "'re", " I", "'ve",
                                 " he", "'d", " it", "'s", NULL});
    /* contractions are lower case only: "'T" is punctuation then a letter run */
    check_split("DON'T it'S", (const char *[]){"DON", "'", "T", " it", "'", "S", NULL});
    check_split("''s x's", (const char *[]){"''", "s", " x", "'s", NULL});
    /* a space run gives its last space to the next word; at the end it stays whole */
    check_split("a  b   c    ", (const char *[]){"a", " ", " b", "  ", " c", "    ", NULL});
    check_split("a \tb", (const char *[]){"a", " ", "\t", "b", NULL});
    check_split("x\r\n\r\ny", (const char *[]){"x", "\r\n\r", "\n", "y", NULL});
    check_split("  !!", (const char *[]){" ", " !!", NULL});
    check_split("123abc 456 7.5", (const char *[]){"123", "abc", " 456", " 7", ".", "5", NULL});
    check_split("hello!!! ...world", (const char *[]){"hello", "!!!", " ...", "world", NULL});
    check_split("<|bos|>hi", (const char *[]){"<|", "bos", "|>", "hi", NULL});
    /* Unicode letters, numbers (Nd, No, Nl), marks, symbols */
    check_split("naïve café", (const char *[]){"naïve", " café", NULL});
    check_split("日本語テキスト、中文", (const char *[]){"日本語テキスト", "、", "中文", NULL});
    check_split("x²³ Ⅻ ٣٤", (const char *[]){"x", "²³", " Ⅻ", " ٣٤", NULL});
    check_split(" e\xCC\x81x", (const char *[]){" e", "\xCC\x81", "x", NULL}); /* U+0301 is Mn */
    check_split("hi 👋🏽!", (const char *[]){"hi", " 👋🏽!", NULL});
    /* White_Space beyond ASCII: NBSP, NEL, narrow NBSP, ideographic space; U+001C is not */
    check_split("a\xC2\xA0"
                "b",
                (const char *[]){"a", "\xC2\xA0", "b", NULL});
    check_split("a\xC2\xA0 b", (const char *[]){"a", "\xC2\xA0", " b", NULL});
    check_split("a\xC2\x85"
                "b\xE3\x80\x80\xE2\x80\xAF"
                "c",
                (const char *[]){"a", "\xC2\x85", "b", "\xE3\x80\x80", "\xE2\x80\xAF", "c", NULL});
    check_split("a\x1C"
                "b",
                (const char *[]){"a", "\x1C", "b", NULL});
    /* a space before a space-class character other than ' ' does not join it */
    check_split(" \xC2\xA0x", (const char *[]){" ", "\xC2\xA0", "x", NULL});
    /* CJK Extension I (new in Unicode 15.1) is a letter, as in llama.cpp's tables */
    check_split("a\xF0\xAE\xAF\xB0", (const char *[]){"a\xF0\xAE\xAF\xB0", NULL});
    /* invalid UTF-8: each bad byte is one U+FFFD ("other") unit, bytes kept */
    check_split("a\xFF\xFE"
                "b",
                (const char *[]){"a", "\xFF\xFE", "b", NULL});
    check_split("\xE4\xB8x", (const char *[]){"\xE4\xB8", "x", NULL});
    check_split("x \x80", (const char *[]){"x", " \x80", NULL});
    /* llama.cpp's lenient decoder: overlong C0 A0 is a space, C1 81 is the letter 'A' */
    check_split("\xC0\xA0"
                "a\xC1\x81",
                (const char *[]){"\xC0\xA0"
                                 "a\xC1\x81",
                                 NULL});
    check_split("", (const char *[]){NULL});
}

static void test_pretokenize_covers_random(void) {
    rt_rng r;
    rt_rng_seed(&r, 99);
    char buf[512];
    for (int it = 0; it < 2000; it++) {
        size_t n = random_text(&r, buf, sizeof buf), *ends, np;
        CHECK_OK(tokenizer_pretokenize(buf, n, &ends, &np));
        size_t prev = 0;
        int ok = 1;
        for (size_t i = 0; i < np; i++) {
            ok &= ends[i] > prev;
            prev = ends[i];
        }
        CHECK(ok && prev == n);
        free(ends);
    }
}

static void test_train_hand_worked(void) {
    /* Pieces: "hug" x1, " hug" x2, " pug", " pun", " bun", " hugs". Pair counts worked out by
     * hand (see the report in the commit): (u,g)=5 first; then (h,ug)=4; ( ,hug)=3; then
     * ( ,p)=2 and (u,n)=2 tie and the smaller left id (' ' = 32) wins; then every pair has
     * count 1 and the order is by left id, then right id. */
    const char *text = "hug hug hug pug pun bun hugs";
    tokenizer *t = train_or_die(text, strlen(text), 256 + 10 + TOKENIZER_N_SPECIAL);
    const int32_t want[10][3] = {
        {'u', 'g', 256}, {'h', 256, 257}, {' ', 257, 258}, {' ', 'p', 259}, {'u', 'n', 260},
        {' ', 'b', 261}, {258, 's', 262}, {259, 256, 263}, {259, 260, 264}, {261, 260, 265},
    };
    const char *want_text[10] = {"ug", "hug",   " hug", " p",   "un",
                                 " b", " hugs", " pug", " pun", " bun"};
    CHECK(tokenizer_n_merges(t) == 10);
    CHECK(tokenizer_vocab_size(t) == 272);
    for (size_t r = 0; r < 10 && r < tokenizer_n_merges(t); r++) {
        int32_t a, b, res;
        CHECK_OK(tokenizer_merge_at(t, r, &a, &b, &res));
        CHECK_MSG(a == want[r][0] && b == want[r][1] && res == want[r][2],
                  "merge %zu: got (%d, %d) -> %d, expected (%d, %d) -> %d", r, a, b, res,
                  want[r][0], want[r][1], want[r][2]);
        size_t l;
        const char *s = tokenizer_token_bytes(t, 256 + (int32_t)r, &l);
        CHECK(l == strlen(want_text[r]) && memcmp(s, want_text[r], l) == 0);
    }
    /* ids 0..255 are the bytes */
    for (int b = 0; b < 256; b++) {
        size_t l;
        const char *s = tokenizer_token_bytes(t, b, &l);
        CHECK(l == 1 && (unsigned char)s[0] == b &&
              tokenizer_token_type(t, b) == TOKENIZER_TYPE_NORMAL);
    }
    /* The training text encodes to whole words. */
    int32_t *ids;
    size_t n;
    CHECK_OK(tokenizer_encode(t, text, strlen(text), 0, &ids, &n));
    const int32_t want_ids[] = {257, 258, 258, 263, 264, 265, 262};
    CHECK(n == RT_ARRAY_LEN(want_ids) && memcmp(ids, want_ids, sizeof want_ids) == 0);
    free(ids);
    tokenizer_free(t);

    /* Asking for more than the text has: stops when no pair is left (with a warning). */
    rt_log_level lv = rt_log_get_level();
    rt_log_set_level(RT_LOG_ERROR);
    t = train_or_die(text, strlen(text), 300);
    rt_log_set_level(lv);
    CHECK(tokenizer_n_merges(t) == 10 && tokenizer_vocab_size(t) == 272);
    tokenizer_free(t);
    /* Fewer: the first merges only. */
    t = train_or_die(text, strlen(text), 256 + 3 + TOKENIZER_N_SPECIAL);
    CHECK(tokenizer_n_merges(t) == 3 && tokenizer_vocab_size(t) == 265);
    tokenizer_free(t);
    /* Empty text: bytes and specials only. */
    lv = rt_log_get_level();
    rt_log_set_level(RT_LOG_ERROR);
    t = train_or_die("", 0, 1000);
    rt_log_set_level(lv);
    CHECK(tokenizer_vocab_size(t) == 256 + TOKENIZER_N_SPECIAL && tokenizer_n_merges(t) == 0);
    tokenizer_free(t);
    /* Too small a vocabulary is an error that says why. */
    CHECK(tokenizer_train(&t, text, strlen(text), 100) == -1 && t == NULL);
    CHECK(strstr(rt_errmsg(), "vocab_size 100") != NULL);
}

static void test_train_deterministic_and_unique(void) {
    size_t len;
    char *corpus = make_corpus(&len);
    tokenizer *a = train_or_die(corpus, len, 700), *b = train_or_die(corpus, len, 700);
    CHECK(tokenizer_vocab_size(a) == 700 && tokenizer_vocab_size(b) == 700);
    int same = tokenizer_n_merges(a) == tokenizer_n_merges(b);
    for (size_t r = 0; same && r < tokenizer_n_merges(a); r++) {
        int32_t x[3], y[3];
        tokenizer_merge_at(a, r, &x[0], &x[1], &x[2]);
        tokenizer_merge_at(b, r, &y[0], &y[1], &y[2]);
        same = memcmp(x, y, sizeof x) == 0;
    }
    CHECK(same);
    /* Every merge makes id 256 + rank; all token strings are distinct. */
    int layout = 1, unique = 1;
    for (size_t r = 0; r < tokenizer_n_merges(a); r++) {
        int32_t l, rr, res;
        tokenizer_merge_at(a, r, &l, &rr, &res);
        layout &= res == 256 + (int32_t)r && l < res && rr < res;
    }
    size_t nv = tokenizer_vocab_size(a);
    for (int32_t i = 0; i < (int32_t)nv && unique; i++)
        for (int32_t j = i + 1; j < (int32_t)nv; j++) {
            size_t li, lj;
            const char *si = tokenizer_token_bytes(a, i, &li),
                       *sj = tokenizer_token_bytes(a, j, &lj);
            if (li == lj && memcmp(si, sj, li) == 0) {
                unique = 0;
                break;
            }
        }
    CHECK(layout);
    CHECK(unique);
    /* Training segmentation is reproduced: the whole corpus encodes to fewer tokens than
     * bytes, and decodes back. */
    int32_t *ids;
    size_t n;
    CHECK_OK(tokenizer_encode(a, corpus, len, 0, &ids, &n));
    CHECK(n < len / 2);
    char *back;
    size_t bl;
    CHECK_OK(tokenizer_decode(a, ids, n, &back, &bl));
    CHECK(bl == len && memcmp(back, corpus, len) == 0);
    free(back);
    free(ids);
    tokenizer_free(a);
    tokenizer_free(b);
    free(corpus);
}

static void test_encode_matches_naive_reference(void) {
    size_t len;
    char *corpus = make_corpus(&len);
    tokenizer *t = train_or_die(corpus, len, 512);
    rt_rng r;
    rt_rng_seed(&r, 7);
    char buf[600];
    int32_t ref[700];
    int mismatches = 0;
    for (int it = 0; it < 400; it++) {
        size_t n;
        if (it % 2) {
            n = random_text(&r, buf, sizeof buf);
        } else { /* a slice of the training text */
            n = rt_rng_below(&r, sizeof buf);
            size_t start = rt_rng_below(&r, len - n);
            memcpy(buf, corpus + start, n);
        }
        for (int ps = 0; ps < 2; ps++) {
            int32_t *ids;
            size_t ni;
            CHECK_OK(tokenizer_encode(t, buf, n, ps, &ids, &ni));
            size_t nr = naive_encode(t, buf, n, ps, ref);
            if (ni != nr || memcmp(ids, ref, ni * sizeof *ids) != 0) mismatches++;
            free(ids);
        }
    }
    CHECK_MSG(mismatches == 0, "%d of 800 encodings differ from the naive reference", mismatches);
    /* One long piece (a single letter run): heap merging vs full scans. */
    char longw[3000];
    for (size_t i = 0; i < sizeof longw; i++) longw[i] = "thandearsio"[rt_rng_below(&r, 11)];
    int32_t *ids, *ref2 = malloc((sizeof longw + 1) * sizeof *ref2);
    size_t ni;
    CHECK_OK(tokenizer_encode(t, longw, sizeof longw, 0, &ids, &ni));
    size_t nr = naive_encode(t, longw, sizeof longw, 0, ref2);
    CHECK(ni == nr && memcmp(ids, ref2, ni * sizeof *ids) == 0);
    free(ids);
    free(ref2);
    tokenizer_free(t);
    free(corpus);
}

static void test_round_trip_random_bytes(void) {
    size_t len;
    char *corpus = make_corpus(&len);
    tokenizer *t = train_or_die(corpus, len, 600);
    rt_rng r;
    rt_rng_seed(&r, 2024);
    char buf[2048];
    int bad = 0;
    for (int it = 0; it < 3000; it++) {
        size_t n = random_text(&r, buf, sizeof buf);
        if (it % 3 == 0) /* pure random bytes */
            for (size_t i = 0; i < n; i++) buf[i] = (char)rt_rng_below(&r, 256);
        for (int ps = 0; ps < 2; ps++) {
            int32_t *ids;
            size_t ni;
            char *back;
            size_t bl;
            if (tokenizer_encode(t, buf, n, ps, &ids, &ni) ||
                tokenizer_decode(t, ids, ni, &back, &bl)) {
                bad++;
                continue;
            }
            if (bl != n || memcmp(back, buf, n) != 0 || back[bl] != 0) bad++;
            /* Without parse_special no special id may appear. */
            for (size_t i = 0; !ps && i < ni; i++)
                if (tokenizer_is_special(t, ids[i])) bad++;
            free(ids);
            free(back);
        }
    }
    CHECK_MSG(bad == 0, "%d failed round trips", bad);
    /* A large single call (cache reuse, big output). */
    int32_t *ids;
    size_t ni;
    char *back;
    size_t bl;
    CHECK_OK(tokenizer_encode(t, corpus, len, 1, &ids, &ni));
    CHECK_OK(tokenizer_decode(t, ids, ni, &back, &bl));
    CHECK(bl == len && memcmp(back, corpus, len) == 0);
    free(ids);
    free(back);
    /* Empty input. */
    CHECK_OK(tokenizer_encode(t, "", 0, 1, &ids, &ni));
    CHECK(ni == 0 && ids != NULL);
    CHECK_OK(tokenizer_decode(t, ids, 0, &back, &bl));
    CHECK(bl == 0 && back[0] == 0);
    free(ids);
    free(back);
    tokenizer_free(t);
    free(corpus);
}

static void test_specials(void) {
    size_t len;
    char *corpus = make_corpus(&len);
    tokenizer *t = train_or_die(corpus, len, 400);
    size_t nv = tokenizer_vocab_size(t);
    CHECK(nv == 400);
    for (int k = 0; k < TOKENIZER_N_SPECIAL; k++) {
        int32_t id = tokenizer_special_id(t, tokenizer_special_tokens[k]);
        CHECK(id == (int32_t)(nv - TOKENIZER_N_SPECIAL) + k);
        CHECK(tokenizer_is_special(t, id) && tokenizer_token_type(t, id) == TOKENIZER_TYPE_CONTROL);
        size_t l;
        const char *s = tokenizer_token_bytes(t, id, &l);
        CHECK(l == strlen(tokenizer_special_tokens[k]) &&
              memcmp(s, tokenizer_special_tokens[k], l) == 0);
    }
    CHECK(tokenizer_bos(t) == tokenizer_special_id(t, "<|bos|>"));
    CHECK(tokenizer_eos(t) == tokenizer_special_id(t, "<|eos|>"));
    CHECK(tokenizer_pad(t) == tokenizer_eos(t));
    CHECK(tokenizer_special_id(t, "<|nope|>") == -1 && tokenizer_special_id(t, "the") == -1);
    CHECK(!tokenizer_is_special(t, 'a') && !tokenizer_is_special(t, -1) &&
          !tokenizer_is_special(t, (int32_t)nv));

    const char *chat = "<|system|>Be brief.<|end|><|user|>Hi<|bos||><|end|><|assistant|>";
    int32_t *ids;
    size_t n;
    CHECK_OK(tokenizer_encode(t, chat, strlen(chat), 1, &ids, &n));
    int32_t sys = tokenizer_special_id(t, "<|system|>"), end = tokenizer_special_id(t, "<|end|>"),
            user = tokenizer_special_id(t, "<|user|>"),
            asst = tokenizer_special_id(t, "<|assistant|>");
    CHECK(n >= 6 && ids[0] == sys && ids[n - 1] == asst && ids[n - 2] == end);
    int n_special = 0, saw_user = 0;
    for (size_t i = 0; i < n; i++) {
        n_special += tokenizer_is_special(t, ids[i]);
        saw_user |= ids[i] == user;
    }
    CHECK(n_special == 5 && saw_user); /* "<|bos||>" is not a special */
    char *back;
    size_t bl;
    CHECK_OK(tokenizer_decode(t, ids, n, &back, &bl));
    CHECK(bl == strlen(chat) && memcmp(back, chat, bl) == 0);
    free(back);
    free(ids);
    /* Text between specials is encoded as its own fragment, like llama.cpp: "x <|end|>"
     * gives "x", " " and the special, the space not joining anything across it. */
    CHECK_OK(tokenizer_encode(t, "x <|end|>", 9, 1, &ids, &n));
    CHECK(n == 3 && ids[0] == 'x' && ids[1] == ' ' && ids[2] == end);
    free(ids);
    /* Without parse_special the same text is plain text. */
    CHECK_OK(tokenizer_encode(t, chat, strlen(chat), 0, &ids, &n));
    int any = 0;
    for (size_t i = 0; i < n; i++) any |= tokenizer_is_special(t, ids[i]);
    CHECK(!any);
    CHECK_OK(tokenizer_decode(t, ids, n, &back, &bl));
    CHECK(bl == strlen(chat) && memcmp(back, chat, bl) == 0);
    free(back);
    free(ids);
    /* Decoding a special gives its text. */
    int32_t two[2] = {tokenizer_bos(t), tokenizer_eos(t)};
    CHECK_OK(tokenizer_decode(t, two, 2, &back, &bl));
    CHECK(strcmp(back, "<|bos|><|eos|>") == 0 && bl == 14);
    free(back);
    tokenizer_free(t);
    free(corpus);
}

static void test_errors(void) {
    const char *text = "hug hug hug pug pun bun hugs";
    tokenizer *t = train_or_die(text, strlen(text), 272);
    int32_t bad[3] = {'h', 272, 'g'};
    char *out = (char *)1;
    size_t len = 99;
    CHECK(tokenizer_decode(t, bad, 3, &out, &len) == -1 && out == NULL && len == 0);
    CHECK_MSG(strstr(rt_errmsg(), "272") && strstr(rt_errmsg(), "position 1") &&
                  strstr(rt_errmsg(), "outside the vocabulary"),
              "message was: %s", rt_errmsg());
    bad[1] = -5;
    CHECK(tokenizer_decode(t, bad, 3, &out, &len) == -1);
    CHECK(strstr(rt_errmsg(), "-5") != NULL);
    size_t l = 7;
    CHECK(tokenizer_token_bytes(t, 272, &l) == NULL && l == 0);
    CHECK(tokenizer_token_bytes(t, -1, &l) == NULL);
    CHECK(tokenizer_token_type(t, 272) == -1);
    CHECK(tokenizer_merge_at(t, 1000, NULL, NULL, NULL) == -1);
    int32_t *ids;
    size_t n;
    CHECK(tokenizer_encode(t, NULL, 5, 0, &ids, &n) == -1);
    tokenizer_free(t);
    tokenizer_free(NULL);
}

/* Chat templates: recognition by markers and names, and special tokens parsed only in the
 * template's text: a message holding "<|end|>" stays text (its ids are those of encoding the
 * message alone without special parsing), the turn markers are the special ids. */
static void test_chat(void) {
    size_t len;
    char *corpus = make_corpus(&len);
    tokenizer *t = train_or_die(corpus, len, 400);
    tokenizer_chat c;
    CHECK_OK(tokenizer_chat_detect(&c, t, NULL, NULL));
    CHECK(c.family == CHAT_RETORT);
    CHECK_OK(tokenizer_chat_detect(&c, NULL, "{{ '<|im_start|>system\nYou are \\'X\\'.<|im_end|>\n' }}", NULL));
    CHECK(c.family == CHAT_CHATML && !strcmp(c.default_system, "You are 'X'."));
    CHECK_OK(tokenizer_chat_detect(&c, NULL, "{{'<|im_start|>' + m.role}}{% if '</think>' in c %}", NULL));
    CHECK(c.family == CHAT_QWEN3);
    CHECK_OK(tokenizer_chat_detect(&c, NULL, "<|start_header_id|>{% if add_generation_prompt %}", NULL));
    CHECK(c.family == CHAT_LLAMA3 && !c.gen_always);
    CHECK(tokenizer_chat_detect(&c, NULL, "<|start_header_id|>Cutting Knowledge Date: x", NULL) == -1);
    CHECK(strstr(rt_errmsg(), "--chat-template llama3") != NULL);
    CHECK(tokenizer_chat_detect(&c, NULL, "{{ m.role }}: {{ m.content }}", NULL) == -1);
    CHECK(strstr(rt_errmsg(), "--chat-template") != NULL);
    CHECK(tokenizer_chat_detect(&c, NULL, NULL, NULL) == -1); /* no template, no retort tokens */
    CHECK_OK(tokenizer_chat_detect(&c, NULL, "anything", "gemma"));
    CHECK(c.family == CHAT_GEMMA);
    CHECK(tokenizer_chat_detect(&c, NULL, NULL, "jinja") == -1 && strstr(rt_errmsg(), "llama2") != NULL);

    CHECK_OK(tokenizer_chat_detect(&c, t, NULL, NULL));
    const char *msg = "a <|end|><|assistant|> b";
    tokenizer_chat_message m[2] = {{"system", "Be brief.", 9}, {"user", msg, strlen(msg)}};
    int32_t *ids, *body, *sys;
    size_t n, nb, ns;
    CHECK_OK(tokenizer_chat_encode(&c, t, m, 2, 1, &ids, &n));
    CHECK_OK(tokenizer_encode(t, msg, strlen(msg), 0, &body, &nb));
    CHECK_OK(tokenizer_encode(t, "Be brief.", 9, 0, &sys, &ns));
    int32_t S = tokenizer_special_id(t, "<|system|>"), U = tokenizer_special_id(t, "<|user|>"),
            A = tokenizer_special_id(t, "<|assistant|>"), E = tokenizer_special_id(t, "<|end|>");
    CHECK(tokenizer_chat_end_token(&c, t) == E);
    CHECK(n == ns + nb + 5);
    if (n == ns + nb + 5) {
        CHECK(ids[0] == S && !memcmp(ids + 1, sys, ns * sizeof *ids) && ids[1 + ns] == E && ids[2 + ns] == U);
        CHECK(!memcmp(ids + 3 + ns, body, nb * sizeof *ids) && ids[3 + ns + nb] == E && ids[4 + ns + nb] == A);
    }
    free(ids);
    free(body);
    free(sys);
    /* a role the formats do not know */
    tokenizer_chat_message bad = {"tool", "x", 1};
    CHECK(tokenizer_chat_encode(&c, t, &bad, 1, 1, &ids, &n) == -1 && strstr(rt_errmsg(), "messages[0].role"));
    tokenizer_free(t);
    free(corpus);
}

TEST_MAIN("tokenizer", TEST_CASE(test_pretokenize_hand_worked),
          TEST_CASE(test_pretokenize_covers_random), TEST_CASE(test_train_hand_worked),
          TEST_CASE(test_train_deterministic_and_unique),
          TEST_CASE(test_encode_matches_naive_reference), TEST_CASE(test_round_trip_random_bytes),
          TEST_CASE(test_specials), TEST_CASE(test_errors), TEST_CASE(test_chat))
