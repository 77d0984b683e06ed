/*
 * normalize.c — Unicode NFC for the Hugging Face "NFC" normalizer: canonical decomposition
 * (recursive, Hangul by formula), canonical ordering by combining class, then canonical
 * composition with the primary composites (UAX #15). Data from unicode_hf.c.
 *
 * Bytes that are not valid UTF-8 are kept as they are; each one is treated as a starter that
 * composes with nothing, so text around it normalizes as if it were a separator.
 *
 * What this is not: NFKC/NFD entry points or a quick-check table (pure-ASCII text is the only
 * shortcut).
 */
#include "unicode_hf.h"

#include <stdlib.h>
#include <string.h>

#define INVALID_MARK 0x80000000u /* | byte: an invalid input byte in the code point buffer */

enum { SBASE = 0xAC00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11A7 };
enum { LCOUNT = 19, VCOUNT = 21, TCOUNT = 28, NCOUNT = VCOUNT * TCOUNT, SCOUNT = LCOUNT * NCOUNT };

int tok_utf8_put(rt_buf *out, uint32_t cp) {
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6)), b[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12)), b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18)), b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    }
    return rt_buf_append(out, b, n);
}

static int ccc_of(uint32_t cp) {
    if (cp < 0x300 || (cp & INVALID_MARK)) return 0;
    size_t lo = 0, hi = tok_ccc_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < tok_ccc_runs[mid][0])
            hi = mid;
        else if (cp >= tok_ccc_runs[mid][1])
            lo = mid + 1;
        else
            return (int)tok_ccc_runs[mid][2];
    }
    return 0;
}

static const uint32_t *decomp_of(uint32_t cp) {
    size_t lo = 0, hi = tok_decomp_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < tok_decomp[mid][0])
            hi = mid;
        else if (cp > tok_decomp[mid][0])
            lo = mid + 1;
        else
            return tok_decomp[mid];
    }
    return NULL;
}

static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE &&
        b < TBASE + TCOUNT)
        return a + (b - TBASE);
    size_t lo = 0, hi = tok_comp_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const uint32_t *e = tok_comp[mid];
        if (a < e[0] || (a == e[0] && b < e[1]))
            hi = mid;
        else if (a > e[0] || b > e[1])
            lo = mid + 1;
        else
            return e[2];
    }
    return 0;
}

typedef struct {
    uint32_t *v;
    size_t n, cap;
} cpbuf;

static int cp_push(cpbuf *b, uint32_t cp) {
    if (b->n == b->cap) {
        size_t nc = b->cap ? 2 * b->cap : 256;
        uint32_t *nv = rt_realloc(b->v, nc * sizeof *nv, "NFC buffer");
        if (!nv) return -1;
        b->v = nv;
        b->cap = nc;
    }
    b->v[b->n++] = cp;
    return 0;
}

/* Full canonical decomposition of cp (the depth is bounded by the data: at most 4). */
static int decompose(cpbuf *b, uint32_t cp, int depth) {
    if (cp >= SBASE && cp < SBASE + SCOUNT) {
        uint32_t s = cp - SBASE, t = s % TCOUNT;
        if (cp_push(b, LBASE + s / NCOUNT) || cp_push(b, VBASE + (s % NCOUNT) / TCOUNT)) return -1;
        return t ? cp_push(b, TBASE + t) : 0;
    }
    const uint32_t *d = cp >= 0xC0 && depth < 8 ? decomp_of(cp) : NULL;
    if (!d) return cp_push(b, cp);
    if (decompose(b, d[1], depth + 1)) return -1;
    return d[2] ? decompose(b, d[2], depth + 1) : 0;
}

int tok_nfc(const char *text, size_t len, rt_buf *out) {
    out->len = 0;
    const uint8_t *s = (const uint8_t *)text;
    size_t i = 0;
    while (i < len && s[i] < 0x80) i++;
    if (i == len) { /* ASCII is NFC */
        if (rt_buf_append(out, text, len) || rt_buf_reserve(out, 1)) return -1;
        out->data[out->len] = 0;
        return 0;
    }
    cpbuf b = {0};
    for (size_t pos = 0; pos < len;) {
        size_t nb;
        int32_t cp = tok_utf8_strict(s, len, pos, &nb);
        int rc = cp < 0 ? cp_push(&b, INVALID_MARK | s[pos]) : decompose(&b, (uint32_t)cp, 0);
        if (rc) goto fail;
        pos += nb;
    }
    /* Canonical ordering: a stable sort of each run of non-starters by class. */
    for (size_t k = 1; k < b.n; k++) {
        int c = ccc_of(b.v[k]);
        if (!c) continue;
        uint32_t x = b.v[k];
        size_t j = k;
        while (j > 0 && ccc_of(b.v[j - 1]) > c) {
            b.v[j] = b.v[j - 1];
            j--;
        }
        b.v[j] = x;
    }
    /* Composition (UAX #15): each character joins the last starter unless blocked. */
    if (b.n) {
        size_t starter = 0, w = 1;
        int last = ccc_of(b.v[0]) ? 256 : 0;
        for (size_t k = 1; k < b.n; k++) {
            uint32_t ch = b.v[k];
            int c = ccc_of(ch);
            uint32_t comp = 0;
            if ((last < c || last == 0) && !(ch & INVALID_MARK) && !(b.v[starter] & INVALID_MARK))
                comp = compose(b.v[starter], ch);
            if (comp && (last < c || (last == 0 && w == starter + 1))) {
                b.v[starter] = comp;
                continue;
            }
            if (c == 0) starter = w;
            last = c;
            b.v[w++] = ch;
        }
        b.n = w;
    }
    for (size_t k = 0; k < b.n; k++) {
        int rc;
        if (b.v[k] & INVALID_MARK) {
            char c = (char)(b.v[k] & 0xFF);
            rc = rt_buf_append(out, &c, 1);
        } else {
            rc = tok_utf8_put(out, b.v[k]);
        }
        if (rc) goto fail;
    }
    if (rt_buf_reserve(out, 1)) goto fail;
    out->data[out->len] = 0;
    free(b.v);
    return 0;
fail:
    free(b.v);
    return -1;
}
