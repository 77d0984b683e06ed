/*
 * gemv.c — the linear layer for a handful of rows (decoding: one new token per sequence).
 * out (N, OC) = inp (N, C) · w (OC, C)^T with N small: every weight row is read once and
 * dotted with all N input rows, so the cost is one pass over the weights — the memory-bound
 * regime where a GEMM library's packing of the weight matrix would double the traffic.
 * Threads split the output columns; each output element is one fixed-order dot product
 * (16 lanes, then a fixed tree), so results do not depend on the thread count.
 *
 * quant_matmul_rows (quant.h) is the same for weights held in a ggml encoding: each weight row
 * is decoded into a per-thread buffer (C floats, in cache) and dotted with the input rows by the
 * same dot product, so no dequantized copy of the matrix exists.
 *
 * What this is not: a general GEMV (no strides, no transposes) or a training kernel.
 */
#include "kernels.h"

#include "kinternal.h"
#include "quant.h"

#include "../base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GEMV_MAX_ROWS 8

#if K_AVX512
/* dot of x and y over C floats; lanes summed in a fixed order */
static inline float dot_avx512(const float *x, const float *y, size_t C) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    size_t c = 0;
    for (; c + 32 <= C; c += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + c), _mm512_loadu_ps(y + c), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + c + 16), _mm512_loadu_ps(y + c + 16), a1);
    }
    if (c + 16 <= C) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + c), _mm512_loadu_ps(y + c), a0);
        c += 16;
    }
    if (c < C) {
        __mmask16 m = (__mmask16)((1u << (C - c)) - 1);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + c), _mm512_maskz_loadu_ps(m, y + c), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}
#else
static inline float dot_plain(const float *x, const float *y, size_t C) {
    float acc[8] = {0};
    size_t c = 0;
    for (; c + 8 <= C; c += 8)
        for (int l = 0; l < 8; l++) acc[l] += x[c + l] * y[c + l];
    for (; c < C; c++) acc[c % 8] += x[c] * y[c];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}
#endif

int matmul_forward_rows(float *out, const float *inp, const float *w, size_t N, size_t C, size_t OC) {
    if (N == 0 || N > GEMV_MAX_ROWS) return 0;
    int nt = kern_threads_for(OC * C);
    (void)nt;
    K_OMP(parallel for schedule(static) num_threads(nt))
    for (size_t o = 0; o < OC; o++) {
        const float *wr = w + o * C;
        for (size_t n = 0; n < N; n++) {
#if K_AVX512
            out[n * OC + o] = dot_avx512(inp + n * C, wr, C);
#else
            out[n * OC + o] = dot_plain(inp + n * C, wr, C);
#endif
        }
    }
    return 1;
}

static inline float dot_rows(const float *x, const float *y, size_t C) {
#if K_AVX512
    return dot_avx512(x, y, C);
#else
    return dot_plain(x, y, C);
#endif
}


#if K_AVX512
/* Products on the blocks, in registers: each 32-element chunk of a weight row is decoded into
 * two vectors v0 (elements 0..15) and v1 (16..31) with exactly the operations of quant.c's
 * decoders, then accumulated like dot_avx512 (a0 += x[c..c+15]*v0, a1 += x[c+16..]*v1, chunks
 * in order, a0 + a1 reduced at the end) — so the result is bit-identical to decoding the row
 * and calling dot_avx512, without the round trip through memory. */
typedef struct {
    __m512 a0[QUANT_MATMUL_MAX_ROWS], a1[QUANT_MATMUL_MAX_ROWS];
} qacc;

static inline __attribute__((always_inline)) void qacc_add(qacc *A, const float *inp, size_t C, size_t N, size_t c, __m512 v0, __m512 v1) {
    for (size_t n = 0; n < N; n++) {
        A->a0[n] = _mm512_fmadd_ps(_mm512_loadu_ps(inp + n * C + c), v0, A->a0[n]);
        A->a1[n] = _mm512_fmadd_ps(_mm512_loadu_ps(inp + n * C + c + 16), v1, A->a1[n]);
    }
}

static inline float half_to_f32(const uint8_t *p) {
    return _cvtsh_ss((unsigned short)(p[0] | (p[1] << 8)));
}

static inline __m512i u8x16(const uint8_t *p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)); }

static inline __attribute__((always_inline)) void qrow_q8_0(qacc *A, const uint8_t *b, const float *inp, size_t C, size_t N) {
    for (size_t c = 0; c < C; c += 32, b += 34) {
        __m512 d = _mm512_set1_ps(half_to_f32(b));
        __m512 v0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)))), d);
        __m512 v1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18)))), d);
        qacc_add(A, inp, C, N, c, v0, v1);
    }
}

static inline __attribute__((always_inline)) void qrow_q4_0(qacc *A, const uint8_t *b, const float *inp, size_t C, size_t N) {
    const __m512i m4 = _mm512_set1_epi32(0xF), k8 = _mm512_set1_epi32(8);
    for (size_t c = 0; c < C; c += 32, b += 18) {
        __m512 d = _mm512_set1_ps(half_to_f32(b));
        __m512i q = u8x16(b + 2);
        __m512 v0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(q, m4), k8)), d);
        __m512 v1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(q, 4), k8)), d);
        qacc_add(A, inp, C, N, c, v0, v1);
    }
}

/* the 6-bit scale and min of sub-block j (q4_K / q5_K) */
static inline void k4_scale_min(int j, const uint8_t *q, float *sc, float *m) {
    if (j < 4) {
        *sc = (float)(q[j] & 63);
        *m = (float)(q[j + 4] & 63);
    } else {
        *sc = (float)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (float)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* q4_K / q5_K: per 32-element sub-block the 16 (q4_K) or 32 (q5_K) possible values d*sc*q - dmin*m
 * form a small table (computed with the decoder's operations, so its entries are the decoder's
 * floats); each element is then one permute by its 4- or 5-bit code. */
static inline __attribute__((always_inline)) void qrow_k45(qacc *A, const uint8_t *b, const float *inp, size_t C,
                                                           size_t N, int five) {
    const __m512i m4 = _mm512_set1_epi32(0xF), one = _mm512_set1_epi32(1);
    const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 iota16 = _mm512_add_ps(iota, _mm512_set1_ps(16.0f));
    const size_t bs = five ? 176 : 144, qs_off = five ? 48 : 16;
    for (size_t c = 0; c < C; c += 256, b += bs) {
        float d = half_to_f32(b), dmin = half_to_f32(b + 2);
        const uint8_t *q = b + qs_off, *qh = b + 16;
        for (int g = 0; g < 4; g++, q += 32) {
            float sc, m;
            k4_scale_min(2 * g, b + 4, &sc, &m);
            __m512 d1 = _mm512_set1_ps(d * sc), m1 = _mm512_set1_ps(dmin * m);
            k4_scale_min(2 * g + 1, b + 4, &sc, &m);
            __m512 d2 = _mm512_set1_ps(d * sc), m2 = _mm512_set1_ps(dmin * m);
            __m512 t1 = _mm512_sub_ps(_mm512_mul_ps(d1, iota), m1), t2 = _mm512_sub_ps(_mm512_mul_ps(d2, iota), m2);
            __m512i w0 = u8x16(q), w1 = u8x16(q + 16);
            __m512i lo0 = _mm512_and_si512(w0, m4), lo1 = _mm512_and_si512(w1, m4);
            __m512i hi0 = _mm512_srli_epi32(w0, 4), hi1 = _mm512_srli_epi32(w1, 4);
            size_t e = c + 64 * (size_t)g;
            if (!five) {
                qacc_add(A, inp, C, N, e, _mm512_permutexvar_ps(lo0, t1), _mm512_permutexvar_ps(lo1, t1));
                qacc_add(A, inp, C, N, e + 32, _mm512_permutexvar_ps(hi0, t2), _mm512_permutexvar_ps(hi1, t2));
                continue;
            }
            __m512 u1 = _mm512_sub_ps(_mm512_mul_ps(d1, iota16), m1), u2 = _mm512_sub_ps(_mm512_mul_ps(d2, iota16), m2);
            __m512i h0 = u8x16(qh), h1 = u8x16(qh + 16);
            unsigned s1 = (unsigned)(2 * g), s2 = s1 + 1;
            lo0 = _mm512_add_epi32(lo0, _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h0, s1), one), 4));
            lo1 = _mm512_add_epi32(lo1, _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h1, s1), one), 4));
            hi0 = _mm512_add_epi32(hi0, _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h0, s2), one), 4));
            hi1 = _mm512_add_epi32(hi1, _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h1, s2), one), 4));
            qacc_add(A, inp, C, N, e, _mm512_permutex2var_ps(t1, lo0, u1), _mm512_permutex2var_ps(t1, lo1, u1));
            qacc_add(A, inp, C, N, e + 32, _mm512_permutex2var_ps(t2, hi0, u2), _mm512_permutex2var_ps(t2, hi1, u2));
        }
    }
}

static inline __attribute__((always_inline)) void qrow_q6_K(qacc *A, const uint8_t *b, const float *inp, size_t C, size_t N) {
    const __m512i m4 = _mm512_set1_epi32(0xF), m2 = _mm512_set1_epi32(3), k32 = _mm512_set1_epi32(32);
    for (size_t c = 0; c < C; c += 256, b += 210) {
        float d = half_to_f32(b + 208);
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8) {
            __m512i hb[2] = {u8x16(qh), u8x16(qh + 16)};
            __m512i l0[2] = {u8x16(ql), u8x16(ql + 16)}, l1[2] = {u8x16(ql + 32), u8x16(ql + 48)};
            for (int k = 0; k < 4; k++) {
                __m512 v[2];
                for (int s = 0; s < 2; s++) {
                    __m512i lo = (k & 1) ? l1[s] : l0[s];
                    lo = k >= 2 ? _mm512_srli_epi32(lo, 4) : _mm512_and_si512(lo, m4);
                    __m512i hi = _mm512_and_si512(_mm512_srli_epi32(hb[s], (unsigned)(2 * k)), m2);
                    __m512i qv = _mm512_sub_epi32(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 4)), k32);
                    v[s] = _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[s + 2 * k]), _mm512_cvtepi32_ps(qv));
                }
                qacc_add(A, inp, C, N, c + 128 * (size_t)h + 32 * (size_t)k, v[0], v[1]);
            }
        }
    }
}

/* One copy per row count, so that the accumulators (N is a constant there) live in registers
 * instead of memory: 1 if the row was done (res[n] for n < N), 0 if the type has no kernel. */
#define QROW_N(NN)                                                                              \
    static int qrow_n##NN(uint32_t type, const uint8_t *row, const float *inp, size_t C, float *res) { \
        qacc A;                                                                                 \
        for (size_t n = 0; n < NN; n++) A.a0[n] = A.a1[n] = _mm512_setzero_ps();                \
        switch (type) {                                                                         \
        case QTYPE_Q8_0: qrow_q8_0(&A, row, inp, C, NN); break;                                 \
        case QTYPE_Q4_0: qrow_q4_0(&A, row, inp, C, NN); break;                                 \
        case QTYPE_Q4_K: qrow_k45(&A, row, inp, C, NN, 0); break;                               \
        case QTYPE_Q5_K: qrow_k45(&A, row, inp, C, NN, 1); break;                               \
        case QTYPE_Q6_K: qrow_q6_K(&A, row, inp, C, NN); break;                                 \
        default: return 0;                                                                      \
        }                                                                                       \
        for (size_t n = 0; n < NN; n++) res[n] = _mm512_reduce_add_ps(_mm512_add_ps(A.a0[n], A.a1[n])); \
        return 1;                                                                               \
    }
QROW_N(1)
QROW_N(2)
QROW_N(3)
QROW_N(4)
QROW_N(5)
QROW_N(6)
QROW_N(7)
QROW_N(8)

static int qrow_registers(uint32_t type, const uint8_t *row, const float *inp, size_t C, size_t N, float *res) {
    switch (N) {
    case 1: return qrow_n1(type, row, inp, C, res);
    case 2: return qrow_n2(type, row, inp, C, res);
    case 3: return qrow_n3(type, row, inp, C, res);
    case 4: return qrow_n4(type, row, inp, C, res);
    case 5: return qrow_n5(type, row, inp, C, res);
    case 6: return qrow_n6(type, row, inp, C, res);
    case 7: return qrow_n7(type, row, inp, C, res);
    case 8: return qrow_n8(type, row, inp, C, res);
    default: return 0;
    }
}
#endif


#if K_AVX512 && defined(__AVX512VNNI__)
#define QUANT_VNNI 1
/* q4_K with 8-bit activations, as llama.cpp computes it: each input row is rounded once per
 * call to int8 in blocks of 32 (xq = round(x / dx), dx = max|x| / 127; xs = the exact float sum
 * of the block), then every pair of 32-element sub-blocks is one VNNI dot product of the
 * unsigned 4-bit codes with xq:  sum_j d*sc_j*dx_j*isum_j - dmin*m_j*xs_j.  The error against
 * the fp32 product is bounded by sum_j (dx_j / 2) * sum_{i in j} |w_i| (checked in test_quant). */
typedef struct {
    int8_t *xq; /* (N, C) */
    float *dx2; /* (N, C/64, 16): lanes 0-7 the scale of block 2p, lanes 8-15 that of block 2p+1 */
    float *xs;  /* (N, C/32) */
} qact;

static void qact_fill(qact *a, const float *inp, size_t N, size_t C) {
    size_t nb = C / 32;
    for (size_t n = 0; n < N; n++) {
        for (size_t j = 0; j < nb; j++) {
            const float *x = inp + n * C + 32 * j;
            float amax = 0, sum = 0;
            for (int i = 0; i < 32; i++) {
                amax = fmaxf(amax, fabsf(x[i]));
                sum += x[i];
            }
            float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
            for (int i = 0; i < 32; i++) a->xq[n * C + 32 * j + (size_t)i] = (int8_t)lrintf(x[i] * id);
            for (int l = 0; l < 8; l++) a->dx2[n * nb * 8 + (j / 2) * 16 + (j % 2) * 8 + (size_t)l] = d;
            a->xs[n * nb + j] = sum;
        }
    }
}

/* The eight 6-bit scales (bytes 0-7) and mins (bytes 8-15) of a q4_K block, unpacked with
 * four 32-bit operations (scales[j] for j < 4 are the low 6 bits of bytes 0-3, mins of bytes
 * 4-7; for j >= 4 the low / high nibbles of bytes 8-11 with the top 2 bits of bytes 0-3 / 4-7). */
static inline __m128i k4_unpack(const uint8_t *sc12) {
    uint32_t u[4];
    memcpy(u, sc12, 12);
    const uint32_t k6 = 0x3f3f3f3fu, k4 = 0x0f0f0f0fu, k2 = 0x03030303u;
    uint32_t m_lo = u[1] & k6;
    u[3] = ((u[2] >> 4) & k4) | (((u[1] >> 6) & k2) << 4);
    u[1] = (u[2] & k4) | (((u[0] >> 6) & k2) << 4);
    u[2] = m_lo;
    u[0] &= k6;
    return _mm_loadu_si128((const __m128i *)u);
}

static inline __attribute__((always_inline)) void qrow_q4_K_vnni(const uint8_t *b, const qact *a, size_t C,
                                                                 size_t N, float *res) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m512i pick[4] = {
        _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
        _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3),
        _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5),
        _mm512_setr_epi32(6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7)};
    __m512 acc[QUANT_MATMUL_MAX_ROWS];
    __m256 macc[QUANT_MATMUL_MAX_ROWS];
    size_t nb = C / 32;
    for (size_t n = 0; n < N; n++) {
        acc[n] = _mm512_setzero_ps();
        macc[n] = _mm256_setzero_ps();
    }
    for (size_t c = 0; c < C; c += 256, b += 144) {
        __m128i sm = k4_unpack(b + 4);
        __m512 scf = _mm512_mul_ps(_mm512_set1_ps(half_to_f32(b)), _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(sm)));
        __m256 mf = _mm256_mul_ps(_mm256_set1_ps(half_to_f32(b + 2)),
                                  _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8))));
        for (size_t n = 0; n < N; n++)
            macc[n] = _mm256_fmadd_ps(mf, _mm256_loadu_ps(a->xs + n * nb + c / 32), macc[n]);
        for (int g = 0; g < 4; g++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * g));
            __m512i wq = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(v, m4)),
                                            _mm256_and_si256(_mm256_srli_epi16(v, 4), m4), 1);
            __m512 sg = _mm512_permutexvar_ps(pick[g], scf);
            size_t e = c + 64 * (size_t)g;
            for (size_t n = 0; n < N; n++) {
                __m512i xv = _mm512_loadu_si512((const void *)(a->xq + n * C + e));
                __m512i is = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, xv);
                __m512 sv = _mm512_mul_ps(sg, _mm512_loadu_ps(a->dx2 + n * nb * 8 + e / 64 * 16));
                acc[n] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), sv, acc[n]);
            }
        }
    }
    for (size_t n = 0; n < N; n++) {
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(macc[n]), _mm256_extractf128_ps(macc[n], 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_movehdup_ps(h));
        res[n] = _mm512_reduce_add_ps(acc[n]) - _mm_cvtss_f32(h);
    }
}

/* q8_0 with int8 activations: VNNI multiplies unsigned by signed bytes, so the activations go
 * in offset by 128 (x + 128 as u8) and 128 * sum(w) comes off again: exact integer sums. Two
 * 34-byte blocks per step (C a multiple of 64). */
static inline __attribute__((always_inline)) void qrow_q8_0_vnni(const uint8_t *b, const qact *a, size_t C,
                                                                 size_t N, float *res) {
    const __m512i flip = _mm512_set1_epi8((char)0x80), ones = _mm512_set1_epi8(1);
    __m512 acc[QUANT_MATMUL_MAX_ROWS];
    size_t nb = C / 32;
    for (size_t n = 0; n < N; n++) acc[n] = _mm512_setzero_ps();
    for (size_t c = 0; c < C; c += 64, b += 68) {
        __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(b + 2))),
                                       _mm256_loadu_si256((const __m256i *)(b + 36)), 1);
        __m512i wsum = _mm512_slli_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, w), 7);
        __m512 dw = _mm512_insertf32x8(_mm512_set1_ps(half_to_f32(b)), _mm256_set1_ps(half_to_f32(b + 34)), 1);
        for (size_t n = 0; n < N; n++) {
            __m512i xu = _mm512_xor_si512(_mm512_loadu_si512((const void *)(a->xq + n * C + c)), flip);
            __m512i is = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), xu, w), wsum);
            __m512 sv = _mm512_mul_ps(dw, _mm512_loadu_ps(a->dx2 + n * nb * 8 + c / 64 * 16));
            acc[n] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), sv, acc[n]);
        }
    }
    for (size_t n = 0; n < N; n++) res[n] = _mm512_reduce_add_ps(acc[n]);
}

#define QV_N(NN)                                                                                     \
    static void qrow_q4_K_vnni_n##NN(const uint8_t *b, const qact *a, size_t C, float *res) {        \
        qrow_q4_K_vnni(b, a, C, NN, res);                                                           \
    }                                                                                               \
    static void qrow_q8_0_vnni_n##NN(const uint8_t *b, const qact *a, size_t C, float *res) {        \
        qrow_q8_0_vnni(b, a, C, NN, res);                                                           \
    }
QV_N(1)
QV_N(2)
QV_N(4)
QV_N(8)
static void qrow_q8_0_vnni_any(const uint8_t *b, const qact *a, size_t C, size_t N, float *res) {
    switch (N) {
    case 1: qrow_q8_0_vnni_n1(b, a, C, res); break;
    case 2: qrow_q8_0_vnni_n2(b, a, C, res); break;
    case 4: qrow_q8_0_vnni_n4(b, a, C, res); break;
    case 8: qrow_q8_0_vnni_n8(b, a, C, res); break;
    default: qrow_q8_0_vnni(b, a, C, N, res); break;
    }
}
static void qrow_q4_K_vnni_any(const uint8_t *b, const qact *a, size_t C, size_t N, float *res) {
    switch (N) {
    case 1: qrow_q4_K_vnni_n1(b, a, C, res); break;
    case 2: qrow_q4_K_vnni_n2(b, a, C, res); break;
    case 4: qrow_q4_K_vnni_n4(b, a, C, res); break;
    case 8: qrow_q4_K_vnni_n8(b, a, C, res); break;
    default: qrow_q4_K_vnni(b, a, C, N, res); break;
    }
}
#else
#define QUANT_VNNI 0
#endif

/* the types (and shapes) that take the int8-activation path */
static inline int use_int8(uint32_t t, size_t C) { return QUANT_VNNI && (t == QTYPE_Q4_K || (t == QTYPE_Q8_0 && C % 64 == 0)); }

int quant_matmul_exact(uint32_t t) { return !(QUANT_VNNI && (t == QTYPE_Q4_K || t == QTYPE_Q8_0)); }

int quant_matmul_rows(float *out, size_t ldo, const float *inp, const qmatrix *w, size_t N) {
    size_t C = w->cols, OC = w->rows;
    if (N == 0) return 0;
    if (N > QUANT_MATMUL_MAX_ROWS || ldo < OC || !qtype_supported(w->type) ||
        qtype_row_bytes(w->type, C) != w->row_bytes || w->row_bytes == 0)
        return RT_FAIL("quant_matmul_rows: bad call (N %zu, type %s, %zu x %zu, row bytes %zu)", N,
                       qtype_name(w->type), OC, C, w->row_bytes);
    size_t bytes = (C * sizeof(float) + 63) / 64 * 64;
    int nt = kern_threads_for(OC * C / 4), failed = 0;
    (void)nt;
#if QUANT_VNNI
    qact act = {0};
    int use_vnni = use_int8(w->type, C);
    if (use_vnni) {
        size_t nb = C / 32;
        act.xq = rt_malloc_array(N, C, "quantized activations");
        act.dx2 = rt_malloc_array(N * nb * 8, sizeof(float), "activation scales");
        act.xs = rt_malloc_array(N * nb, sizeof(float), "activation sums");
        if (!act.xq || !act.dx2 || !act.xs) {
            free(act.xq);
            free(act.dx2);
            free(act.xs);
            return -1;
        }
        qact_fill(&act, inp, N, C);
    }
#endif
    K_OMP(parallel num_threads(nt) reduction(| : failed))
    {
        float *buf = aligned_alloc(64, bytes);
        if (!buf) failed = 1;
        K_OMP(for schedule(static))
        for (size_t o = 0; o < OC; o++) {
            const uint8_t *row = (const uint8_t *)w->data + o * w->row_bytes;
#if K_AVX512
            float res[QUANT_MATMUL_MAX_ROWS];
#if QUANT_VNNI
            if (use_vnni) {
                if (w->type == QTYPE_Q4_K) qrow_q4_K_vnni_any(row, &act, C, N, res);
                else qrow_q8_0_vnni_any(row, &act, C, N, res);
                for (size_t n = 0; n < N; n++) out[n * ldo + o] = res[n];
                continue;
            }
#endif
            if (qrow_registers(w->type, row, inp, C, N, res)) {
                for (size_t n = 0; n < N; n++) out[n * ldo + o] = res[n];
                continue;
            }
#endif
            if (!buf) continue;
            quant_dequantize_row(w->type, row, buf, C);
            for (size_t n = 0; n < N; n++) out[n * ldo + o] = dot_rows(inp + n * C, buf, C);
        }
        free(buf);
    }
#if QUANT_VNNI
    free(act.xq);
    free(act.dx2);
    free(act.xs);
#endif
    if (failed) return RT_FAIL("quant_matmul_rows: out of memory for a %zu-float row buffer", C);
    return 0;
}
