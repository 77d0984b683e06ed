/*
 * mem.c — checked allocation and the growable byte buffer.
 * Allocation failures are reported as errors (never abort/exit); callers must check.
 */
#include "base.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int rt_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return RT_FAIL_KIND(RT_ERR_NOMEM, "size overflow: %zu x %zu does not fit in size_t", a, b);
    *out = a * b;
    return 0;
}

void *rt_malloc(size_t n, const char *what) {
    void *p = malloc(n ? n : 1);
    if (!p) RT_FAIL_KIND(RT_ERR_NOMEM, "out of memory: %zu bytes for %s", n, what ? what : "a buffer");
    return p;
}

void *rt_calloc(size_t count, size_t size, const char *what) {
    size_t n = 0;
    if (rt_mul_size(count, size, &n)) return NULL;
    void *p = calloc(n ? n : 1, 1);
    if (!p) RT_FAIL_KIND(RT_ERR_NOMEM, "out of memory: %zu bytes for %s", n, what ? what : "a buffer");
    return p;
}

void *rt_malloc_array(size_t count, size_t size, const char *what) {
    size_t n = 0;
    if (rt_mul_size(count, size, &n)) return NULL;
    return rt_malloc(n, what);
}

void *rt_realloc(void *p, size_t n, const char *what) {
    void *q = realloc(p, n ? n : 1);
    if (!q) RT_FAIL_KIND(RT_ERR_NOMEM, "out of memory: %zu bytes for %s", n, what ? what : "a buffer");
    return q;
}

void *rt_alloc_aligned(size_t n, const char *what) {
    size_t rounded = (n + 63) & ~(size_t)63;
    if (rounded < n) {
        RT_FAIL_KIND(RT_ERR_NOMEM, "size overflow allocating %s", what ? what : "a buffer");
        return NULL;
    }
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) {
        RT_FAIL_KIND(RT_ERR_NOMEM, "out of memory: %zu bytes for %s", n, what ? what : "a buffer");
        return NULL;
    }
    memset(p, 0, rounded ? rounded : 64);
    return p;
}

void rt_free_aligned(void *p) { free(p); }

char *rt_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = rt_malloc(n, "a string");
    if (d) memcpy(d, s, n);
    return d;
}

int rt_buf_reserve(rt_buf *b, size_t extra) {
    if (extra > SIZE_MAX - b->len - 1) return RT_FAIL_KIND(RT_ERR_NOMEM, "buffer size overflow");
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *d = rt_realloc(b->data, cap, "a growable buffer");
    if (!d) return -1;
    d[b->len] = '\0'; /* the contract: terminated past len, an empty buffer too (fuzz_mark_records) */
    b->data = d;
    b->cap = cap;
    return 0;
}

int rt_buf_append(rt_buf *b, const void *p, size_t n) {
    if (rt_buf_reserve(b, n)) return -1;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int rt_buf_printf(rt_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return RT_FAIL("formatting error");
    }
    if (rt_buf_reserve(b, (size_t)n)) {
        va_end(ap2);
        return -1;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
    return 0;
}

void rt_buf_free(rt_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static size_t meminfo_kb(const char *text, const char *key) {
    const char *p = strstr(text, key);
    if (!p) return 0;
    return (size_t)strtoull(p + strlen(key), NULL, 10);
}

size_t rt_mem_available(void) {
    size_t avail = SIZE_MAX;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char text[4096];
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = '\0';
        size_t kb = meminfo_kb(text, "MemAvailable:") + meminfo_kb(text, "SwapFree:");
        if (kb && kb < SIZE_MAX / 1024) avail = kb * 1024;
    }
    const char *lim = getenv("RETORT_MEM_LIMIT");
    if (lim && *lim) {
        char *end = NULL;
        double v = strtod(lim, &end);
        double mult = 1;
        if (end && (*end == 'k' || *end == 'K')) mult = 1024.0;
        else if (end && (*end == 'm' || *end == 'M')) mult = 1024.0 * 1024;
        else if (end && (*end == 'g' || *end == 'G')) mult = 1024.0 * 1024 * 1024;
        double b = v * mult;
        if (v > 0 && b < (double)avail) avail = (size_t)b;
    }
    return avail;
}
