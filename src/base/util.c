/*
 * util.c — parsing of numeric option values with clear errors, and FNV-1a hashing.
 */
#include "base.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

int rt_parse_i64(const char *s, const char *what, int64_t *out) {
    if (!s || !*s) return RT_FAIL("%s: expected an integer, got an empty value", what);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return RT_FAIL("%s: expected an integer, got '%s'", what, s);
    *out = (int64_t)v;
    return 0;
}

int rt_parse_u64(const char *s, const char *what, uint64_t *out) {
    if (!s || !*s) return RT_FAIL("%s: expected a non-negative integer, got an empty value", what);
    if (*s == '-') return RT_FAIL("%s: expected a non-negative integer, got '%s'", what, s);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end) return RT_FAIL("%s: expected a non-negative integer, got '%s'", what, s);
    *out = (uint64_t)v;
    return 0;
}

int rt_parse_size(const char *s, const char *what, size_t *out) {
    uint64_t v = 0;
    if (rt_parse_u64(s, what, &v)) return -1;
    if (v > SIZE_MAX) return RT_FAIL("%s: value %s is too large", what, s);
    *out = (size_t)v;
    return 0;
}

int rt_parse_double(const char *s, const char *what, double *out) {
    if (!s || !*s) return RT_FAIL("%s: expected a number, got an empty value", what);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return RT_FAIL("%s: expected a finite number, got '%s'", what, s);
    *out = v;
    return 0;
}

int rt_parse_float(const char *s, const char *what, float *out) {
    double d = 0;
    if (rt_parse_double(s, what, &d)) return -1;
    *out = (float)d;
    return 0;
}

uint64_t rt_fnv1a64(const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
