/*
 * quant.c — ggml's weight encodings (contract: quant.h): the type table, half / bfloat16
 * conversion, dequantization (scalar, plus AVX-512 versions that give the same bits), and
 * llama.cpp's reference quantizers for q8_0, q4_0, q4_K, q5_K and q6_K.
 *
 * The quantizers are written from the algorithms of ggml-quants.c (quantize_row_*_ref and
 * their helpers make_qx_quants / make_qkx2_quants): for the same float input they must give
 * the same bytes, so every float operation is done in the same order, with no fused
 * multiply-add (gcc's -std=c17 does not contract; clang is told so below) — tests check
 * the bytes against the libggml-base that node-llama-cpp ships.
 *
 * What this is not: the importance-matrix quantizers, the other ggml types, or a matmul
 * (quant_matmul_rows lives in gemv.c beside the fp32 one).
 */
#include "quant.h"

#include "kinternal.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* ---------------------------------------------------------------- type table */

typedef struct {
    const char *name;
    uint32_t blck;
    uint32_t size;
} qtraits;

static const qtraits qt[] = {
    [QTYPE_F32] = {"f32", 1, 4},       [QTYPE_F16] = {"f16", 1, 2},
    [QTYPE_Q4_0] = {"q4_0", 32, 18},   [QTYPE_Q8_0] = {"q8_0", 32, 34},
    [QTYPE_Q4_K] = {"q4_K", 256, 144}, [QTYPE_Q5_K] = {"q5_K", 256, 176},
    [QTYPE_Q6_K] = {"q6_K", 256, 210}, [QTYPE_BF16] = {"bf16", 1, 2},
};

int qtype_supported(uint32_t t) { return t < sizeof qt / sizeof qt[0] && qt[t].blck != 0; }
size_t qtype_block_elems(uint32_t t) { return qtype_supported(t) ? qt[t].blck : 0; }
size_t qtype_block_bytes(uint32_t t) { return qtype_supported(t) ? qt[t].size : 0; }
const char *qtype_name(uint32_t t) { return qtype_supported(t) ? qt[t].name : "?"; }

size_t qtype_row_bytes(uint32_t t, size_t n) {
    if (!qtype_supported(t) || n % qt[t].blck) return 0;
    return n / qt[t].blck * qt[t].size;
}

int qtype_is_block(uint32_t t) { return qtype_supported(t) && qt[t].blck > 1; }

int qtype_parse(const char *s, qtype *out) {
    if (!s) return -1;
    for (uint32_t t = 0; t < sizeof qt / sizeof qt[0]; t++) {
        if (qt[t].blck && strcasecmp(s, qt[t].name) == 0) {
            *out = (qtype)t;
            return 0;
        }
    }
    return -1;
}

/* ---------------------------------------------------------------- half, bfloat16 */

float quant_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13); /* inf, or NaN keeping its payload */
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (mant << 13); /* rebias 15 -> 127 */
    } else if (mant == 0) {
        bits = sign; /* signed zero */
    } else {
        /* subnormal: mant * 2^-24; normalise so the leading 1 lands on bit 10 */
        uint32_t e = 113; /* biased exponent of 2^-14 */
        while (!(mant & 0x400u)) {
            mant <<= 1;
            e--;
        }
        bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t quant_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {
        if (ax == 0x7f800000u) return sign | 0x7c00u;
        /* NaN: keep it a NaN (quiet bit set) with the top payload bits */
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    }
    if (ax >= 0x477ff000u) return sign | 0x7c00u; /* >= 65520 rounds to infinity */
    if (ax >= 0x38800000u) {
        /* normal half: drop 13 mantissa bits, round to nearest, ties to even; a carry
         * into the exponent is the correct result */
        uint32_t odd = (ax >> 13) & 1u;
        ax += 0xfffu + odd;
        return (uint16_t)(sign | ((ax - (112u << 23)) >> 13));
    }
    if (ax <= 0x33000000u) return sign; /* <= 2^-25 (half of the smallest subnormal) -> 0 */
    /* subnormal half: value / 2^-24 rounded to nearest even */
    uint32_t e = ax >> 23;                     /* 102..112 */
    uint32_t m = (ax & 0x7fffffu) | 0x800000u; /* 24-bit significand */
    uint32_t shift = 126u - e;                 /* 14..24 */
    uint32_t r = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) r++;
    return (uint16_t)(sign | r);
}

float quant_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t quant_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64u); /* quiet NaN */
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

/* ---------------------------------------------------------------- little helpers */

static inline uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline void st16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline float ldh(const uint8_t *p) { return quant_f16_to_f32(ld16(p)); }

/* round to nearest, ties to even, for |f| <= 2^22 (ggml's nearest_int trick) */
static inline int nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* (int)v truncated toward zero, saturated to [-128, 127] and 0 for NaN: the C conversion for
 * every in-range value, and no undefined behaviour for a NaN or infinite input */
static inline int trunc_i8(float v) {
    if (v != v) return 0;
    if (v <= -128.0f) return -128;
    if (v >= 127.0f) return 127;
    return (int)v;
}

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* the 6-bit scale and min of sub-block j of a q4_K / q5_K super-block */
static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* byte offsets inside the K-quant blocks */
enum {
    K4_D = 0, K4_DMIN = 2, K4_SC = 4, K4_QS = 16,            /* q4_K: 144 bytes */
    K5_D = 0, K5_DMIN = 2, K5_SC = 4, K5_QH = 16, K5_QS = 48, /* q5_K: 176 bytes */
    K6_QL = 0, K6_QH = 128, K6_SC = 192, K6_D = 208,          /* q6_K: 210 bytes */
};

/* ---------------------------------------------------------------- dequantize, scalar */

static void deq_q8_0(const uint8_t *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, b += 34, y += 32) {
        float d = ldh(b);
        for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
    }
}

static void deq_q4_0(const uint8_t *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, b += 18, y += 32) {
        float d = ldh(b);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((b[2 + j] & 0x0F) - 8) * d;
            y[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
        }
    }
}

static void deq_q4_K(const uint8_t *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, b += 144) {
        float d = ldh(b + K4_D), dmin = ldh(b + K4_DMIN);
        const uint8_t *q = b + K4_QS;
        for (int g = 0; g < 4; g++, q += 32, y += 64) {
            uint8_t sc, m;
            scale_min_k4(2 * g, b + K4_SC, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            scale_min_k4(2 * g + 1, b + K4_SC, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) y[l] = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) y[32 + l] = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

static void deq_q5_K(const uint8_t *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, b += 176) {
        float d = ldh(b + K5_D), dmin = ldh(b + K5_DMIN);
        const uint8_t *ql = b + K5_QS, *qh = b + K5_QH;
        for (int g = 0; g < 4; g++, ql += 32, y += 64) {
            uint8_t sc, m, u1 = (uint8_t)(1u << (2 * g)), u2 = (uint8_t)(2u << (2 * g));
            scale_min_k4(2 * g, b + K5_SC, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            scale_min_k4(2 * g + 1, b + K5_SC, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) y[l] = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) y[32 + l] = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

static void deq_q6_K(const uint8_t *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, b += 210) {
        float d = ldh(b + K6_D);
        const uint8_t *ql = b + K6_QL, *qh = b + K6_QH;
        const int8_t *sc = (const int8_t *)(b + K6_SC);
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, y += 128) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

/* ---------------------------------------------------------------- dequantize, AVX-512 */
#if K_AVX512
/* 16 bytes -> 16 int32 lanes (zero-extended) */
static inline __m512i ld_u8x16(const uint8_t *p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)); }

static void deq_q8_0_v(const uint8_t *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, b += 34, y += 32) {
        __m512 d = _mm512_set1_ps(ldh(b));
        __m512i q0 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)));
        __m512i q1 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18)));
        _mm512_storeu_ps(y, _mm512_mul_ps(_mm512_cvtepi32_ps(q0), d));
        _mm512_storeu_ps(y + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(q1), d));
    }
}

static void deq_q4_0_v(const uint8_t *b, float *y, size_t nb) {
    const __m512i m4 = _mm512_set1_epi32(0xF), k8 = _mm512_set1_epi32(8);
    for (size_t i = 0; i < nb; i++, b += 18, y += 32) {
        __m512 d = _mm512_set1_ps(ldh(b));
        __m512i q = ld_u8x16(b + 2);
        __m512i lo = _mm512_sub_epi32(_mm512_and_si512(q, m4), k8);
        __m512i hi = _mm512_sub_epi32(_mm512_srli_epi32(q, 4), k8);
        _mm512_storeu_ps(y, _mm512_mul_ps(_mm512_cvtepi32_ps(lo), d));
        _mm512_storeu_ps(y + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(hi), d));
    }
}

/* q4_K and q5_K share the shape: qh == NULL for q4_K */
static void deq_k45_v(const uint8_t *b, float *y, size_t nb, int five) {
    const __m512i m4 = _mm512_set1_epi32(0xF), one = _mm512_set1_epi32(1);
    const size_t bs = five ? 176 : 144, qs_off = five ? K5_QS : K4_QS;
    for (size_t i = 0; i < nb; i++, b += bs) {
        float d = ldh(b), dmin = ldh(b + 2);
        const uint8_t *q = b + qs_off, *qh = b + K5_QH;
        for (int g = 0; g < 4; g++, q += 32, y += 64) {
            uint8_t sc, m;
            scale_min_k4(2 * g, b + K4_SC, &sc, &m);
            __m512 d1 = _mm512_set1_ps(d * sc), m1 = _mm512_set1_ps(dmin * m);
            scale_min_k4(2 * g + 1, b + K4_SC, &sc, &m);
            __m512 d2 = _mm512_set1_ps(d * sc), m2 = _mm512_set1_ps(dmin * m);
            for (int h = 0; h < 2; h++) {
                __m512i v = ld_u8x16(q + 16 * h);
                __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_srli_epi32(v, 4);
                if (five) {
                    __m512i hb = ld_u8x16(qh + 16 * h);
                    __m512i b1 = _mm512_and_si512(_mm512_srli_epi32(hb, (unsigned)(2 * g)), one);
                    __m512i b2 = _mm512_and_si512(_mm512_srli_epi32(hb, (unsigned)(2 * g + 1)), one);
                    lo = _mm512_add_epi32(lo, _mm512_slli_epi32(b1, 4));
                    hi = _mm512_add_epi32(hi, _mm512_slli_epi32(b2, 4));
                }
                _mm512_storeu_ps(y + 16 * h, _mm512_sub_ps(_mm512_mul_ps(d1, _mm512_cvtepi32_ps(lo)), m1));
                _mm512_storeu_ps(y + 32 + 16 * h, _mm512_sub_ps(_mm512_mul_ps(d2, _mm512_cvtepi32_ps(hi)), m2));
            }
        }
    }
}

static void deq_q6_K_v(const uint8_t *b, float *y, size_t nb) {
    const __m512i m4 = _mm512_set1_epi32(0xF), m2 = _mm512_set1_epi32(3), k32 = _mm512_set1_epi32(32);
    for (size_t i = 0; i < nb; i++, b += 210) {
        float d = ldh(b + K6_D);
        const uint8_t *ql = b + K6_QL, *qh = b + K6_QH;
        const int8_t *sc = (const int8_t *)(b + K6_SC);
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, y += 128) {
            for (int s = 0; s < 2; s++) { /* lanes l = 16s .. 16s+15 */
                __m512i hb = ld_u8x16(qh + 16 * s), l0 = ld_u8x16(ql + 16 * s), l1 = ld_u8x16(ql + 32 + 16 * s);
                __m512i q[4] = {
                    _mm512_or_si512(_mm512_and_si512(l0, m4), _mm512_slli_epi32(_mm512_and_si512(hb, m2), 4)),
                    _mm512_or_si512(_mm512_and_si512(l1, m4),
                                    _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 2), m2), 4)),
                    _mm512_or_si512(_mm512_srli_epi32(l0, 4),
                                    _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 4), m2), 4)),
                    _mm512_or_si512(_mm512_srli_epi32(l1, 4),
                                    _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 6), m2), 4)),
                };
                for (int k = 0; k < 4; k++) {
                    __m512 ds = _mm512_set1_ps(d * (float)sc[s + 2 * k]);
                    __m512 qf = _mm512_cvtepi32_ps(_mm512_sub_epi32(q[k], k32));
                    _mm512_storeu_ps(y + 32 * k + 16 * s, _mm512_mul_ps(ds, qf));
                }
            }
        }
    }
}
#endif

void quant_dequantize_row(uint32_t t, const void *src, float *dst, size_t n) {
    const uint8_t *b = src;
    size_t nb = qtype_supported(t) ? n / qt[t].blck : 0;
    switch (t) {
    case QTYPE_F32: memcpy(dst, src, n * sizeof(float)); break;
    case QTYPE_F16: {
        size_t i = 0;
#if K_AVX512
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + 2 * i))));
#endif
        for (; i < n; i++) dst[i] = quant_f16_to_f32(ld16(b + 2 * i));
        break;
    }
    case QTYPE_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = quant_bf16_to_f32(ld16(b + 2 * i));
        break;
#if K_AVX512
    case QTYPE_Q8_0: deq_q8_0_v(b, dst, nb); break;
    case QTYPE_Q4_0: deq_q4_0_v(b, dst, nb); break;
    case QTYPE_Q4_K: deq_k45_v(b, dst, nb, 0); break;
    case QTYPE_Q5_K: deq_k45_v(b, dst, nb, 1); break;
    case QTYPE_Q6_K: deq_q6_K_v(b, dst, nb); break;
#else
    case QTYPE_Q8_0: deq_q8_0(b, dst, nb); break;
    case QTYPE_Q4_0: deq_q4_0(b, dst, nb); break;
    case QTYPE_Q4_K: deq_q4_K(b, dst, nb); break;
    case QTYPE_Q5_K: deq_q5_K(b, dst, nb); break;
    case QTYPE_Q6_K: deq_q6_K(b, dst, nb); break;
#endif
    default: memset(dst, 0, n * sizeof(float)); break;
    }
}

/* The scalar decoders, exposed for tests that compare the vector path with them. */
void quant_dequantize_row_scalar(uint32_t t, const void *src, float *dst, size_t n);
void quant_dequantize_row_scalar(uint32_t t, const void *src, float *dst, size_t n) {
    const uint8_t *b = src;
    size_t nb = qtype_supported(t) ? n / qt[t].blck : 0;
    switch (t) {
    case QTYPE_Q8_0: deq_q8_0(b, dst, nb); break;
    case QTYPE_Q4_0: deq_q4_0(b, dst, nb); break;
    case QTYPE_Q4_K: deq_q4_K(b, dst, nb); break;
    case QTYPE_Q5_K: deq_q5_K(b, dst, nb); break;
    case QTYPE_Q6_K: deq_q6_K(b, dst, nb); break;
    case QTYPE_F16:
        for (size_t i = 0; i < n; i++) dst[i] = quant_f16_to_f32(ld16(b + 2 * i));
        break;
    default: quant_dequantize_row(t, src, dst, n); break;
    }
}

/* ---------------------------------------------------------------- reference quantizers */

static void q_q8_0(const float *x, uint8_t *b, size_t nb) {
    for (size_t i = 0; i < nb; i++, x += 32, b += 34) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        st16(b, quant_f32_to_f16(d));
        for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)trunc_i8(roundf(x[j] * id));
    }
}

static void q_q4_0(const float *x, uint8_t *b, size_t nb) {
    for (size_t i = 0; i < nb; i++, x += 32, b += 18) {
        float amax = 0.0f, max = 0.0f; /* the value of largest magnitude, with its sign */
        for (int j = 0; j < 32; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        float d = max / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        st16(b, quant_f32_to_f16(d));
        for (int j = 0; j < 16; j++) {
            int q0 = imin(15, trunc_i8(x[j] * id + 8.5f));
            int q1 = imin(15, trunc_i8(x[j + 16] * id + 8.5f));
            b[2 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* Fit x (n values) as scale*L + min with L in 0..nmax, min <= 0, minimising the weighted
 * squared error over a grid of nstep+1 trial scales (ggml's make_qkx2_quants, rmse). Returns
 * the scale; *neg_min receives -min. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min,
                           uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *neg_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * L[i] + min - x[i];
        best += w[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                err += w[i] * (diff * diff);
            }
            if (err < best) {
                memcpy(L, Laux, (size_t)n);
                best = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *neg_min = -min;
    return scale;
}

/* q4_K / q5_K (nmax 15 / 31): scales and mins of the 8 sub-blocks, packed to 6 bits, then
 * the values requantized against the packed scales. qh == NULL for q4_K. */
static void q_k45(const float *x, uint8_t *b, size_t nb, int five) {
    const int nmax = five ? 31 : 15;
    const float rmin = five ? -0.5f : -1.f;
    const int nstep = five ? 15 : 20;
    const size_t bs = five ? 176 : 144;
    uint8_t L[QK_K], Laux[32];
    float w[32], mins[8], scales[8];
    for (size_t i = 0; i < nb; i++, x += QK_K, b += bs) {
        memset(b, 0, bs);
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 8; j++) {
            const float *xj = x + 32 * j;
            float sum_x2 = 0;
            for (int l = 0; l < 32; l++) sum_x2 += xj[l] * xj[l];
            float av_x = sqrtf(sum_x2 / 32);
            for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xj[l]);
            scales[j] = fit_scale_min(32, nmax, xj, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        uint8_t *sc = b + K4_SC;
        for (int j = 0; j < 8; j++) {
            uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
            uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
            ls = ls < 63 ? ls : 63;
            lm = lm < 63 ? lm : 63;
            if (j < 4) {
                sc[j] = ls;
                sc[j + 4] = lm;
            } else {
                sc[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
                sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
                sc[j] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        st16(b, quant_f32_to_f16(max_scale / 63.f));
        st16(b + 2, quant_f32_to_f16(max_min / 63.f));
        float d = ldh(b), dmin = ldh(b + 2);
        for (int j = 0; j < 8; j++) {
            uint8_t s, m;
            scale_min_k4(j, sc, &s, &m);
            float dj = d * s;
            if (dj == 0.0f) continue;
            float dm = dmin * m;
            for (int l = 0; l < 32; l++)
                L[32 * j + l] = (uint8_t)imax(0, imin(nmax, nearest_int((x[32 * j + l] + dm) / dj)));
        }
        if (!five) {
            uint8_t *q = b + K4_QS;
            for (int j = 0; j < QK_K; j += 64, q += 32)
                for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        } else {
            uint8_t *qh = b + K5_QH, *ql = b + K5_QS;
            uint8_t m1 = 1, m2 = 2;
            for (int n = 0; n < QK_K; n += 64, ql += 32, m1 = (uint8_t)(m1 << 2), m2 = (uint8_t)(m2 << 2)) {
                for (int j = 0; j < 32; j++) {
                    int l1 = L[n + j], l2 = L[n + j + 32];
                    if (l1 > 15) {
                        l1 -= 16;
                        qh[j] |= m1;
                    }
                    if (l2 > 15) {
                        l2 -= 16;
                        qh[j] |= m2;
                    }
                    ql[j] = (uint8_t)(l1 | (l2 << 4));
                }
            }
        }
    }
}

#define GROUP_MAX_EPS 1e-15f

/* Symmetric fit of 16 values to L in -32..31 (stored +32), weights x^2, searching 19 trial
 * scales (ggml's make_qx_quants with nmax 32, rmse_type 1, no importance weights). */
static float fit_scale_sym32(const float *x, int8_t *L) {
    const int nmax = 32, n = 16;
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

static void q_q6_K(const float *x, uint8_t *b, size_t nb) {
    int8_t L[QK_K];
    float scales[16];
    for (size_t i = 0; i < nb; i++, x += QK_K, b += 210) {
        memset(b, 0, 210);
        float max_scale = 0, max_abs = 0;
        for (int ib = 0; ib < 16; ib++) {
            scales[ib] = fit_scale_sym32(x + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs) {
                max_abs = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        if (max_abs < GROUP_MAX_EPS) continue; /* all zero: the block stays zero */
        float iscale = -128.f / max_scale;
        st16(b + K6_D, quant_f32_to_f16(1 / iscale));
        int8_t *sc = (int8_t *)(b + K6_SC);
        for (int ib = 0; ib < 16; ib++) sc[ib] = (int8_t)imin(127, nearest_int(iscale * scales[ib]));
        float d0 = ldh(b + K6_D);
        for (int j = 0; j < 16; j++) {
            float d = d0 * sc[j];
            if (d == 0.0f) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(imax(-32, imin(31, nearest_int(x[16 * j + l] / d))) + 32);
        }
        uint8_t *ql = b + K6_QL, *qh = b + K6_QH;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                const int8_t *Lj = L + j + l;
                ql[l] = (uint8_t)((Lj[0] & 0xF) | ((Lj[64] & 0xF) << 4));
                ql[l + 32] = (uint8_t)((Lj[32] & 0xF) | ((Lj[96] & 0xF) << 4));
                qh[l] = (uint8_t)((Lj[0] >> 4) | ((Lj[32] >> 4) << 2) | ((Lj[64] >> 4) << 4) | ((Lj[96] >> 4) << 6));
            }
        }
    }
}

void quant_quantize_row(uint32_t t, const float *src, void *dst, size_t n) {
    uint8_t *b = dst;
    size_t nb = qtype_supported(t) ? n / qt[t].blck : 0;
    switch (t) {
    case QTYPE_F32: memcpy(dst, src, n * sizeof(float)); break;
    case QTYPE_F16:
        for (size_t i = 0; i < n; i++) st16(b + 2 * i, quant_f32_to_f16(src[i]));
        break;
    case QTYPE_BF16:
        for (size_t i = 0; i < n; i++) st16(b + 2 * i, quant_f32_to_bf16(src[i]));
        break;
    case QTYPE_Q8_0: q_q8_0(src, b, nb); break;
    case QTYPE_Q4_0: q_q4_0(src, b, nb); break;
    case QTYPE_Q4_K: q_k45(src, b, nb, 0); break;
    case QTYPE_Q5_K: q_k45(src, b, nb, 1); break;
    case QTYPE_Q6_K: q_q6_K(src, b, nb); break;
    default: break;
    }
}
