/*
 * mark_internal.h — the PRF hot path shared by the files of src/mark (inlined SipHash-2-4
 * over token words, score keys, green flags and Gumbel values). Not an interface: other
 * rooms use mark.h.
 */
#ifndef RETORT_MARK_INTERNAL_H
#define RETORT_MARK_INTERNAL_H

#include <string.h>

#include "mark.h"

static inline uint64_t mark_rotl64(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

#define MARK_SIPROUND                                                                              \
    do {                                                                                           \
        v0 += v1; v1 = mark_rotl64(v1, 13); v1 ^= v0; v0 = mark_rotl64(v0, 32);                    \
        v2 += v3; v3 = mark_rotl64(v3, 16); v3 ^= v2;                                              \
        v0 += v3; v3 = mark_rotl64(v3, 21); v3 ^= v0;                                              \
        v2 += v1; v1 = mark_rotl64(v1, 17); v1 ^= v2; v2 = mark_rotl64(v2, 32);                    \
    } while (0)

/* SipHash-2-4's state (v0..v3 from key (k0, k1)), one 8-byte block m, and the finish from the
 * last block b (the message length in the top byte, the tail bytes below): the pieces both
 * hashes below share. */
typedef struct {
    uint64_t v0, v1, v2, v3;
} mark_sip;

static inline mark_sip mark_sip_init(uint64_t k0, uint64_t k1) {
    return (mark_sip){k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull, k0 ^ 0x6c7967656e657261ull,
                      k1 ^ 0x7465646279746573ull};
}

static inline void mark_sip_block(mark_sip *st, uint64_t m) {
    uint64_t v0 = st->v0, v1 = st->v1, v2 = st->v2, v3 = st->v3 ^ m;
    MARK_SIPROUND;
    MARK_SIPROUND;
    *st = (mark_sip){v0 ^ m, v1, v2, v3};
}

static inline uint64_t mark_sip_finish(mark_sip *st, uint64_t b) {
    mark_sip_block(st, b);
    uint64_t v0 = st->v0, v1 = st->v1, v2 = st->v2 ^ 0xff, v3 = st->v3;
    MARK_SIPROUND;
    MARK_SIPROUND;
    MARK_SIPROUND;
    MARK_SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* SipHash-2-4 of a message made of nw 32-bit words (the byte string is the words in order,
 * each little-endian), key (k0, k1). Equals crypto_shorthash on those bytes. */
static inline uint64_t mark_siphash_words(const uint64_t k[2], const uint32_t *w, size_t nw) {
    mark_sip st = mark_sip_init(k[0], k[1]);
    size_t i = 0;
    for (; i + 2 <= nw; i += 2) mark_sip_block(&st, (uint64_t)w[i] | ((uint64_t)w[i + 1] << 32));
    uint64_t b = (uint64_t)(4 * nw) << 56;
    if (i < nw) b |= (uint64_t)w[i];
    return mark_sip_finish(&st, b);
}

/* SelfHash seed: min over u in {window[0..h), token} of PRF_seed(u, token). */
static inline uint64_t mark_selfhash_seed(const mark_ctx *c, const int32_t *window, int32_t token) {
    uint32_t w[2] = {(uint32_t)token, (uint32_t)token};
    uint64_t s = mark_siphash_words(c->k_seed, w, 2);
    for (size_t i = 0; i < c->p.context; i++) {
        w[0] = (uint32_t)window[i];
        uint64_t x = mark_siphash_words(c->k_seed, w, 2);
        if (x < s) s = x;
    }
    return s;
}

/* Fill the score key of (window, token); returns its word count. */
static inline size_t mark_key_fill(const mark_ctx *c, const int32_t *window, int32_t token, mark_score_key *key) {
    if (c->p.scheme == MARK_KGW_SELFHASH) {
        uint64_t s = mark_selfhash_seed(c, window, token);
        key->w[0] = (uint32_t)s;
        key->w[1] = (uint32_t)(s >> 32);
        key->w[2] = (uint32_t)token;
        return 3;
    }
    size_t h = c->p.context;
    for (size_t i = 0; i < h; i++) key->w[i] = (uint32_t)window[i];
    key->w[h] = (uint32_t)token;
    return h + 1;
}

/* Width in words of this context's score keys. */
static inline size_t mark_key_width(const mark_ctx *c) {
    return c->p.scheme == MARK_KGW_SELFHASH ? 3 : c->p.context + 1;
}

static inline int mark_key_is_green(const mark_ctx *c, const mark_score_key *key, size_t nw) {
    return mark_siphash_words(c->k_green, key->w, nw) < c->threshold;
}

/* r in (0, 1): the top 53 bits of the PRF, centred in their cell. */
static inline double mark_key_gumbel(const mark_ctx *c, const mark_score_key *key, size_t nw) {
    uint64_t x = mark_siphash_words(c->k_gumbel, key->w, nw);
    return ((double)(x >> 11) + 0.5) * 0x1.0p-53;
}

/* The window of h tokens ending before position n of toks (MARK_PAD before the start). */
static inline void mark_window_at(const int32_t *toks, size_t n, size_t h, int32_t *window) {
    for (size_t i = 0; i < h; i++) {
        size_t back = h - i; /* window[i] = toks[n - back] */
        window[i] = n >= back ? toks[n - back] : MARK_PAD;
    }
}

#endif /* RETORT_MARK_INTERNAL_H */
