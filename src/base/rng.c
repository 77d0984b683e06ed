/*
 * rng.c — xoshiro256** (Blackman & Vigna) seeded through splitmix64.
 * Deterministic and serialisable (4 words); not cryptographic — keyed randomness for
 * watermarks and keys comes from libsodium elsewhere.
 */
#include "base.h"

#include <math.h>

uint64_t rt_splitmix64(uint64_t x) { return rt_mix64(x + 0x9E3779B97F4A7C15ull); }

void rt_rng_seed(rt_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        x += 0x9E3779B97F4A7C15ull;
        r->s[i] = rt_splitmix64(x);
    }
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rt_rng_u64(rt_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t rt_rng_u32(rt_rng *r) { return (uint32_t)(rt_rng_u64(r) >> 32); }

double rt_rng_double(rt_rng *r) { return (double)(rt_rng_u64(r) >> 11) * 0x1.0p-53; }

float rt_rng_float(rt_rng *r) { return (float)(rt_rng_u64(r) >> 40) * 0x1.0p-24f; }

uint64_t rt_rng_below(rt_rng *r, uint64_t n) {
    /* Lemire's nearly-divisionless method with rejection: exactly uniform. */
    unsigned __int128 m = (unsigned __int128)rt_rng_u64(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t thresh = (0 - n) % n;
        while (lo < thresh) {
            m = (unsigned __int128)rt_rng_u64(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double rt_rng_normal(rt_rng *r) {
    double u1 = rt_rng_double(r);
    double u2 = rt_rng_double(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
