/*
 * mark_score.c — counting evidence: a hash set of exact score keys (no 64-bit shortcuts:
 * two different keys never merge), the scorer that skips positions without a full window,
 * excluded keys or windows, and repeats, then the result with its exact p-value and the JSON
 * the CLI prints. Not the PRF (mark_core.c) or the distributions (mark_stats.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "mark.h"
#include "mark_internal.h"

/* ---------------------------------------------------------------- set of word tuples */

struct mark_set {
    size_t width;   /* words per entry */
    size_t stride;  /* words per slot: 2 (the 64-bit hash) + width */
    size_t cap;     /* slots, a power of two */
    size_t n;       /* entries */
    uint32_t *slot; /* (cap, stride): hash lo, hash hi, words; hash 0 = empty (stored hashes are odd) */
};

static uint64_t words_hash(const uint32_t *w, size_t n) {
    uint64_t h = 0x243f6a8885a308d3ull ^ (uint64_t)n;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ w[i]) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 32;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h | 1;
}

/* Zeroed slot memory. Big tables are probed at random: with 4 KiB pages nearly every probe
 * misses the TLB (measured ~400 ns per insert on a virtual machine), so tables of 4 MiB and
 * more are 2 MiB-aligned and advised to use transparent huge pages (~20 ns). */
#define SET_HUGE_BYTES ((size_t)4 << 20)
static void *slots_alloc(size_t count, size_t size) {
    size_t bytes;
    if (rt_mul_size(count, size, &bytes)) return NULL;
    if (bytes < SET_HUGE_BYTES) return rt_calloc(count, size, "watermark key set");
    void *p = NULL;
    size_t len = (bytes + ((size_t)2 << 20) - 1) & ~(((size_t)2 << 20) - 1);
    if (posix_memalign(&p, (size_t)2 << 20, len) != 0) {
        RT_FAIL("out of memory (%zu bytes for the watermark key set)", len);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    (void)madvise(p, len, MADV_HUGEPAGE); /* advice only: fine if refused */
#endif
    memset(p, 0, bytes);
    return p;
}

static inline uint64_t slot_hash(const uint32_t *sl) { return (uint64_t)sl[0] | ((uint64_t)sl[1] << 32); }

static mark_set *set_new(size_t width) {
    mark_set *s = rt_calloc(1, sizeof *s, "watermark key set");
    if (!s) return NULL;
    s->width = width;
    s->stride = 2 + width;
    s->cap = 1024;
    s->slot = slots_alloc(s->cap * s->stride, sizeof(uint32_t));
    if (!s->slot) {
        free(s);
        return NULL;
    }
    return s;
}

static void set_free(mark_set *s) {
    if (!s) return;
    free(s->slot);
    free(s);
}

static void set_clear(mark_set *s) {
    memset(s->slot, 0, s->cap * s->stride * sizeof(uint32_t));
    s->n = 0;
}

static int set_grow(mark_set *s) {
    size_t ncap = s->cap * 2, st = s->stride;
    uint32_t *ns = slots_alloc(ncap, st * sizeof(uint32_t));
    if (!ns) return -1;
    for (size_t i = 0; i < s->cap; i++) {
        const uint32_t *old = s->slot + i * st;
        uint64_t h = slot_hash(old);
        if (!h) continue;
        size_t j = (size_t)(h >> 7) & (ncap - 1);
        while (slot_hash(ns + j * st)) j = (j + 1) & (ncap - 1);
        memcpy(ns + j * st, old, st * sizeof(uint32_t));
    }
    free(s->slot);
    s->slot = ns;
    s->cap = ncap;
    return 0;
}

/* 1 if present, 0 if not. */
static inline int words_eq(const uint32_t *a, const uint32_t *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static int set_has(const mark_set *s, const uint32_t *w) {
    uint64_t h = words_hash(w, s->width);
    size_t st = s->stride, j = (size_t)(h >> 7) & (s->cap - 1);
    for (;;) {
        const uint32_t *sl = s->slot + j * st;
        uint64_t x = slot_hash(sl);
        if (!x) return 0;
        if (x == h && words_eq(sl + 2, w, s->width)) return 1;
        j = (j + 1) & (s->cap - 1);
    }
}

/* 1 if inserted (new), 0 if already present, -1 on allocation failure; h = words_hash(w). */
static int set_add_hashed(mark_set *s, const uint32_t *w, uint64_t h) {
    if (2 * (s->n + 1) > s->cap && set_grow(s)) return -1;
    size_t st = s->stride, j = (size_t)(h >> 7) & (s->cap - 1);
    for (;;) {
        uint32_t *sl = s->slot + j * st;
        uint64_t x = slot_hash(sl);
        if (!x) {
            sl[0] = (uint32_t)h;
            sl[1] = (uint32_t)(h >> 32);
            memcpy(sl + 2, w, s->width * sizeof(uint32_t));
            s->n++;
            return 1;
        }
        if (x == h && words_eq(sl + 2, w, s->width)) return 0;
        j = (j + 1) & (s->cap - 1);
    }
}

static int set_add(mark_set *s, const uint32_t *w) { return set_add_hashed(s, w, words_hash(w, s->width)); }

/* Start fetching the slot a hash probes first (big tables miss the cache on every probe;
 * issuing the loads of a block of keys together overlaps their latencies). */
static inline void set_prefetch(const mark_set *s, uint64_t h) {
    __builtin_prefetch(s->slot + ((size_t)(h >> 7) & (s->cap - 1)) * s->stride, 1);
}

/* ---------------------------------------------------------------- scorer */

const char *mark_exclude_name(mark_exclude e) {
    switch (e) {
    case MARK_EXCLUDE_NONE: return "none";
    case MARK_EXCLUDE_TUPLES: return "tuples";
    case MARK_EXCLUDE_WINDOWS: return "windows";
    }
    return "unknown";
}

int mark_exclude_parse(const char *s, mark_exclude *out) {
    if (!strcmp(s, "none")) *out = MARK_EXCLUDE_NONE;
    else if (!strcmp(s, "tuples")) *out = MARK_EXCLUDE_TUPLES;
    else if (!strcmp(s, "windows")) *out = MARK_EXCLUDE_WINDOWS;
    else return RT_FAIL("--exclude: expected none, tuples or windows, got '%s'", s);
    return 0;
}

int mark_scorer_init(mark_scorer *s, const mark_ctx *c) {
    memset(s, 0, sizeof *s);
    s->ctx = *c;
    s->seen = set_new(mark_key_width(c));
    return s->seen ? 0 : -1;
}

void mark_scorer_free(mark_scorer *s) {
    set_free(s->seen);
    set_free(s->excl);
    memset(s, 0, sizeof *s);
}

void mark_scorer_reset(mark_scorer *s) {
    set_clear(s->seen);
    s->positions = s->no_window = s->duplicates = s->excluded = s->scored = s->green = 0;
    s->score = 0;
}

static int has_pad(const int32_t *w, size_t h) {
    for (size_t i = 0; i < h; i++)
        if (w[i] == MARK_PAD) return 1;
    return 0;
}

int mark_scorer_exclude(mark_scorer *s, const int32_t *toks, size_t n, mark_exclude mode) {
    if (mode == MARK_EXCLUDE_NONE) return 0;
    if (s->excl && s->excl_mode != mode)
        return RT_FAIL("watermark scorer: exclusions by %s and by %s cannot be mixed", mark_exclude_name(s->excl_mode),
                       mark_exclude_name(mode));
    size_t h = s->ctx.p.context;
    if (!s->excl) {
        s->excl = set_new(mode == MARK_EXCLUDE_WINDOWS ? h : mark_key_width(&s->ctx));
        if (!s->excl) return -1;
        s->excl_mode = mode;
    }
    int32_t window[MARK_MAX_CONTEXT];
    for (size_t i = h; i < n; i++) {
        mark_window_at(toks, i, h, window);
        int rc;
        if (mode == MARK_EXCLUDE_WINDOWS) {
            rc = set_add(s->excl, (const uint32_t *)window);
        } else {
            mark_score_key k;
            memset(&k, 0, sizeof k);
            mark_key_fill(&s->ctx, window, toks[i], &k);
            rc = set_add(s->excl, k.w);
        }
        if (rc < 0) return -1;
    }
    return 0;
}

/* Score the position whose score key is key (nw words) and whose window is window (h
 * words); hash = words_hash(key, nw) (the dedup set's hash). */
static inline int score_key_hashed(mark_scorer *s, const uint32_t *key, size_t nw, const uint32_t *window,
                                   uint64_t hash) {
    if (s->excl && set_has(s->excl, s->excl_mode == MARK_EXCLUDE_WINDOWS ? window : key)) {
        s->excluded++;
        return 0;
    }
    int rc = set_add_hashed(s->seen, key, hash);
    if (rc <= 0) {
        if (rc < 0) return -1;
        s->duplicates++;
        return 0;
    }
    s->scored++;
    if (s->ctx.p.scheme == MARK_GUMBEL) {
        uint64_t x = mark_siphash_words(s->ctx.k_gumbel, key, nw);
        s->score += -log1p(-(((double)(x >> 11) + 0.5) * 0x1.0p-53));
    } else {
        s->green += mark_siphash_words(s->ctx.k_green, key, nw) < s->ctx.threshold;
    }
    return 0;
}

static inline int score_key(mark_scorer *s, const uint32_t *key, size_t nw, const uint32_t *window) {
    return score_key_hashed(s, key, nw, window, words_hash(key, nw));
}

/* Score one (window, token). */
static int score_one(mark_scorer *s, const int32_t *window, int32_t token) {
    size_t h = s->ctx.p.context;
    s->positions++;
    if (has_pad(window, h)) {
        s->no_window++;
        return 0;
    }
    mark_score_key k;
    memset(&k, 0, sizeof k);
    size_t nw = mark_key_fill(&s->ctx, window, token, &k);
    return score_key(s, k.w, nw, (const uint32_t *)window);
}

int mark_scorer_add(mark_scorer *s, const int32_t *toks, size_t n, size_t from) {
    size_t h = s->ctx.p.context;
    int32_t window[MARK_MAX_CONTEXT];
    size_t i = from;
    for (; i < n && i < h; i++) { /* windows reaching before the start */
        mark_window_at(toks, i, h, window);
        if (score_one(s, window, toks[i])) return -1;
    }
    if (s->ctx.p.scheme == MARK_KGW_SELFHASH) {
        for (; i < n; i++)
            if (score_one(s, toks + i - h, toks[i])) return -1;
        return 0;
    }
    /* KGW and Gumbel: the score key is the h+1 consecutive tokens ending at i. Blocks of 16:
     * hash and prefetch all, then insert. */
    enum { BLOCK = 16 };
    uint64_t hs[BLOCK];
    while (i < n) {
        size_t m = RT_MIN((size_t)BLOCK, n - i);
        for (size_t j = 0; j < m; j++) {
            hs[j] = words_hash((const uint32_t *)(toks + i + j - h), h + 1);
            set_prefetch(s->seen, hs[j]);
        }
        for (size_t j = 0; j < m; j++) {
            const uint32_t *key = (const uint32_t *)(toks + i + j - h);
            s->positions++;
            if (score_key_hashed(s, key, h + 1, key, hs[j])) return -1;
        }
        i += m;
    }
    return 0;
}

int mark_scorer_add_predictions(mark_scorer *s, const int32_t *text, const int32_t *pred, size_t n, size_t from) {
    size_t h = s->ctx.p.context;
    int32_t window[MARK_MAX_CONTEXT];
    for (size_t i = from; i < n; i++) {
        mark_window_at(text, i, h, window);
        if (score_one(s, window, pred[i])) return -1;
    }
    return 0;
}

void mark_scorer_result(const mark_scorer *s, mark_result *r) {
    memset(r, 0, sizeof *r);
    r->scheme = s->ctx.p.scheme;
    r->positions = s->positions;
    r->scored = s->scored;
    r->green = s->green;
    r->duplicates = s->duplicates;
    r->excluded = s->excluded;
    r->no_window = s->no_window;
    double n = (double)s->scored;
    if (s->ctx.p.scheme == MARK_GUMBEL) {
        r->score = s->score;
        r->z = n > 0 ? (s->score - n) / sqrt(n) : 0;
        r->log_p = mark_gamma_log_sf(s->scored, s->score);
    } else {
        double g = mark_ctx_gamma(&s->ctx);
        r->score = (double)s->green;
        r->z = n > 0 ? ((double)s->green - g * n) / sqrt(n * g * (1 - g)) : 0;
        r->log_p = mark_binom_log_sf(s->green, s->scored, g);
    }
    if (s->scored == 0) r->log_p = 0;
    r->p_value = exp(r->log_p);
    r->log10_p = r->log_p / M_LN10;
}

int mark_result_json(const mark_result *r, const mark_ctx *c, double alpha, json_t *o) {
    int bad = json_object_set_new(o, "scheme", json_string(mark_scheme_name(c->p.scheme)));
    if (c->p.scheme != MARK_GUMBEL)
        bad |= json_object_set_new(o, "gamma", json_real(c->p.gamma)) |
               json_object_set_new(o, "delta", json_real(c->p.delta));
    bad |= json_object_set_new(o, "context", json_integer((json_int_t)c->p.context)) |
           json_object_set_new(o, "key_id", json_string(c->key_id)) |
           json_object_set_new(o, "tokens", json_integer((json_int_t)r->positions)) |
           json_object_set_new(o, "tokens_scored", json_integer((json_int_t)r->scored));
    if (c->p.scheme == MARK_GUMBEL)
        bad |= json_object_set_new(o, "green", json_null()) | json_object_set_new(o, "score", json_real(r->score));
    else
        bad |= json_object_set_new(o, "green", json_integer((json_int_t)r->green)) |
               json_object_set_new(o, "green_fraction",
                                   json_real(r->scored ? (double)r->green / (double)r->scored : 0.0));
    int detected = r->scored > 0 && r->log_p < log(alpha);
    bad |= json_object_set_new(o, "z", json_real(r->z)) | json_object_set_new(o, "p_value", json_real(r->p_value)) |
           json_object_set_new(o, "log10_p_value", json_real(r->log10_p)) |
           json_object_set_new(o, "alpha", json_real(alpha)) |
           json_object_set_new(o, "detected", json_boolean(detected)) |
           json_object_set_new(o, "skipped", json_pack("{s:I, s:I, s:I}", "duplicate", (json_int_t)r->duplicates,
                                                       "excluded", (json_int_t)r->excluded, "no_window",
                                                       (json_int_t)r->no_window));
    return bad ? RT_FAIL("out of memory (JSON result)") : 0;
}

/* ---------------------------------------------------------------- evidence */

int mark_evidence_score(const mark_ctx *c, const mark_evidence *e, mark_result *r) {
    mark_scorer s;
    if (mark_scorer_init(&s, c)) return -1;
    int rc = 0;
    for (size_t i = 0; !rc && i < e->n_ref; i++) rc = mark_scorer_exclude(&s, e->ref[i], e->ref_len[i], e->exclude);
    for (size_t i = 0; !rc && i < e->n; i++) {
        size_t from = e->from ? e->from[i] : 0;
        if (e->pred)
            rc = mark_scorer_add_predictions(&s, e->text[i], e->pred[i], e->len[i], from);
        else
            rc = mark_scorer_add(&s, e->text[i], e->len[i], from);
    }
    if (!rc) mark_scorer_result(&s, r);
    mark_scorer_free(&s);
    return rc;
}

int mark_evidence_controls(const mark_params *p, const mark_evidence *e, size_t n_keys, uint64_t seed,
                           double *p_values) {
    for (size_t i = 0; i < n_keys; i++) {
        mark_key k;
        mark_ctx c;
        mark_result r;
        mark_key_from_seed(&k, seed + i);
        if (mark_ctx_init(&c, p, &k) || mark_evidence_score(&c, e, &r)) return -1;
        p_values[i] = r.p_value;
    }
    return 0;
}
