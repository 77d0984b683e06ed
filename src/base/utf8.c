/*
 * utf8.c — UTF-8 for untrusted bytes: validate, sanitize (U+FFFD), cut on a character
 * boundary, and escape for logs and terminals. The one owner of these rules: the server's
 * JSON, the ledger's fixed-size fields, the watermark's records, `data generate` and the
 * logs all come here. Not a Unicode library (no normalisation, no classes: the tokenizer
 * has its own lenient decoder, which must match llama.cpp's and is not this one).
 */
#include <string.h>

#include "base.h"

/* The sequence at s (len bytes available): its length (> 0) when valid; otherwise 0, with
 * *bad the length of the maximal subpart to replace by one U+FFFD (>= 1) and *incomplete
 * = 1 when the bytes ran out before the sequence was proven invalid. */
static size_t seq(const unsigned char *s, size_t len, size_t *bad, int *incomplete) {
    unsigned char c = s[0];
    *bad = 1;
    *incomplete = 0;
    if (c < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0; /* overlong */
        if (c == 0xED) hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90; /* overlong */
        if (c == 0xF4) hi = 0x8F; /* > U+10FFFF */
    } else {
        return 0;
    }
    for (size_t k = 1; k < need; k++) {
        if (k >= len) {
            *bad = k;
            *incomplete = 1;
            return 0;
        }
        unsigned char b = s[k];
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) {
            *bad = k;
            return 0;
        }
    }
    return need;
}

int rt_utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t bad;
    int inc;
    for (size_t i = 0; i < len;) {
        size_t k = seq(p + i, len - i, &bad, &inc);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

int rt_utf8_sanitize(rt_buf *b, const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0; /* run: start of the pending valid span */
    while (i < len) {
        size_t bad;
        int inc;
        size_t k = seq(p + i, len - i, &bad, &inc);
        if (k > 0) {
            i += k;
            continue;
        }
        if (i > run && rt_buf_append(b, s + run, i - run)) return -1;
        if (rt_buf_append(b, "\xEF\xBF\xBD", 3)) return -1;
        i += bad;
        run = i;
    }
    if (i > run && rt_buf_append(b, s + run, i - run)) return -1;
    if (!b->data && rt_buf_append(b, "", 0)) return -1;
    return 0;
}

size_t rt_utf8_truncate(const char *s, size_t len, size_t max) {
    if (max >= len) return len;
    const unsigned char *p = (const unsigned char *)s;
    /* walk back over continuation bytes to the lead of the character containing s[max] */
    size_t i = max, back = 0;
    while (i > 0 && back < 3 && (p[i] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (back == 0) return max; /* s[max] starts a character (or is a stray byte) */
    size_t bad;
    int inc;
    size_t k = seq(p + i, len - i, &bad, &inc);
    return k > 0 && i + k > max ? i : max; /* a valid character straddles max: cut before it */
}

size_t rt_utf8_copy(char *dst, size_t cap, const char *src) {
    if (!cap) return 0;
    size_t len = strlen(src);
    size_t n = 0;
    if (rt_utf8_valid(src, len)) {
        n = rt_utf8_truncate(src, len, cap - 1);
        memcpy(dst, src, n);
    } else {
        rt_buf b = {0};
        if (rt_utf8_sanitize(&b, src, len) == 0) {
            n = rt_utf8_truncate(b.data, b.len, cap - 1);
            memcpy(dst, b.data, n);
        }
        rt_buf_free(&b);
    }
    dst[n] = '\0';
    return n;
}

size_t rt_utf8_complete_prefix(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t start = len > 3 ? len - 3 : 0;
    for (size_t i = len; i > start; i--) {
        unsigned char c = p[i - 1];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte: keep looking for the lead */
        if (c < 0x80) return len;
        size_t bad;
        int inc;
        size_t k = seq(p + i - 1, len - (i - 1), &bad, &inc);
        return k == 0 && inc ? i - 1 : len;
    }
    return len;
}

int rt_utf8_escape(rt_buf *b, const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < len) {
        size_t bad;
        int inc;
        size_t k = seq(p + i, len - i, &bad, &inc);
        unsigned char c = p[i];
        /* printable: valid, not C0/DEL, not C1 (U+0080..U+009F = C2 80..C2 9F), not a backslash */
        int ctrl = k == 1 ? (c < 0x20 || c == 0x7F || c == '\\') : k == 2 && c == 0xC2 && p[i + 1] < 0xA0;
        if (k > 0 && !ctrl) {
            i += k;
            continue;
        }
        if (i > run && rt_buf_append(b, s + run, i - run)) return -1;
        int rc;
        if (k == 0) { /* invalid bytes: each as \xNN, so the original can be read back */
            rc = 0;
            for (size_t q = 0; q < bad && !rc; q++) rc = rt_buf_printf(b, "\\x%02X", p[i + q]);
            k = bad;
        } else if (k == 2) {
            rc = rt_buf_printf(b, "\\u{%02X}", p[i + 1]);
        } else {
            const char *e = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : c == '\\' ? "\\\\" : NULL;
            rc = e ? rt_buf_append(b, e, 2) : rt_buf_printf(b, "\\x%02X", c);
        }
        if (rc) return -1;
        i += k;
        run = i;
    }
    if (i > run && rt_buf_append(b, s + run, i - run)) return -1;
    if (!b->data && rt_buf_append(b, "", 0)) return -1;
    return 0;
}

const char *rt_utf8_printable(char *out, size_t cap, const char *s) {
    if (!cap) return out;
    rt_buf b = {0};
    size_t n = 0;
    if (s && rt_utf8_escape(&b, s, strlen(s)) == 0) {
        /* cut before the first escape or character that does not fit whole */
        const unsigned char *p = (const unsigned char *)b.data;
        while (n < b.len) {
            size_t k = 1;
            if (p[n] == '\\') k = p[n + 1] == 'x' ? 4 : p[n + 1] == 'u' ? 6 : 2;
            else if (p[n] >= 0xF0) k = 4;
            else if (p[n] >= 0xE0) k = 3;
            else if (p[n] >= 0xC0) k = 2;
            if (n + k > cap - 1) break;
            n += k;
        }
        memcpy(out, b.data, n);
    }
    out[n] = '\0';
    rt_buf_free(&b);
    return out;
}
