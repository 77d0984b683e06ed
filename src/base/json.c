/*
 * json.c — the one format for doubles in JSON text: shortest round-trip (rt_fmt_double) and the
 * in-place rewrite of jansson's 17-digit reals (rt_json_reals). Text only: no JSON parser here
 * (jansson is that), libc only.
 */
#include "base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void rt_fmt_double(char *out, size_t cap, double v) {
    if (!out || cap == 0) return;
    if (!isfinite(v)) {
        snprintf(out, cap, "null");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v) break;
    }
    if (!strpbrk(out, ".eEn")) { /* keep it a real: "1" -> "1.0" ('n': inf/nan cannot occur) */
        size_t len = strlen(out);
        if (len + 3 <= cap) memcpy(out + len, ".0", 3);
    }
}

/* Length of the number token at s (JSON grammar's characters; validated by strtod later). */
static size_t number_len(const char *s) {
    size_t n = 0;
    while (s[n] && strchr("+-0123456789.eE", s[n])) n++;
    return n;
}

char *rt_json_reals(char *s) {
    if (!s) return NULL;
    char *r = s, *w = s; /* read and write positions; w <= r always */
    int in_str = 0;
    while (*r) {
        char c = *r;
        if (in_str) {
            *w++ = *r++;
            if (c == '\\' && *r) *w++ = *r++;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
            *w++ = *r++;
            continue;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            size_t n = number_len(r);
            char tok[64], best[RT_FMT_DOUBLE_CAP];
            int real = memchr(r, '.', n) || memchr(r, 'e', n) || memchr(r, 'E', n);
            if (real && n < sizeof tok) {
                memcpy(tok, r, n);
                tok[n] = 0;
                char *end;
                double v = strtod(tok, &end);
                rt_fmt_double(best, sizeof best, v);
                size_t m = strlen(best);
                if (*end == 0 && isfinite(v) && m < n && strtod(best, NULL) == v) {
                    memmove(w, best, m);
                    w += m;
                    r += n;
                    continue;
                }
            }
            memmove(w, r, n);
            w += n;
            r += n;
            continue;
        }
        *w++ = *r++;
    }
    *w = 0;
    return s;
}
