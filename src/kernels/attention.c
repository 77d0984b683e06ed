/*
 * attention.c — causal grouped-query attention: training forward and backward over a fused
 * qkv buffer, and single-query decode against a KV cache.
 *
 * Work is split over (batch, head) for the forward and over (batch, kv head) for the backward
 * (the kv head owns dK and dV, summed over the query heads of its group, so no two threads
 * write the same gradient). Each task runs serially on one thread with its own small
 * workspace; nothing is reduced across tasks, so results are bit-identical for any thread
 * count.
 *
 * With AVX-512 and hd <= 64 the products run in register-blocked micro-kernels that skip the
 * masked upper triangle in blocks (S = Q·K^T on 4x64 tiles against a packed K^T; P·V,
 * dS·K as 8-row tiles; P^T·dO and dS^T·Q as 8-column tiles). Otherwise plain C loops do the
 * same sums. Every score is a fused multiply-add chain over d in order and every output an
 * FMA chain over key positions in order, in both paths and in attention_decode, so decode
 * reproduces the last row of attention_forward bit for bit.
 *
 * What this is not: flash attention. The (B, NH, T, T) probabilities are materialised, as
 * the interface requires; that is fine at training context lengths (T of a few hundred).
 */
#include "kernels.h"

#include "kinternal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- plain C path */

/* out row t of one head: scores, softmax into att_row (T), then out_row (hd). */
static void fwd_row_plain(float *out_row, float *att_row, const float *q, const float *kbase,
                          const float *vbase, size_t R, size_t t, size_t T, size_t hd,
                          float scale) {
    for (size_t s = 0; s <= t; s++) {
        const float *k = kbase + s * R;
        float acc = 0.0f;
        for (size_t d = 0; d < hd; d++) acc = fmaf(q[d], k[d], acc);
        att_row[s] = acc;
    }
    kern_softmax_row_scaled(att_row, t + 1, T, scale);
    for (size_t d = 0; d < hd; d++) out_row[d] = 0.0f;
    for (size_t s = 0; s <= t; s++) {
        const float *v = vbase + s * R;
        float p = att_row[s];
        for (size_t d = 0; d < hd; d++) out_row[d] = fmaf(p, v[d], out_row[d]);
    }
}

/* Backward of one (b, kv head) task in plain C. dK/dV rows (stride R) are accumulated
 * (the caller zeroed them); dQ rows of each head are overwritten. */
static void bwd_task_plain(float *dqkv, float *scratch, const float *dout, const float *att,
                           const float *qkv, size_t b, size_t g, size_t T, size_t NH,
                           size_t NKV, size_t hd, float scale) {
    size_t R = (NH + 2 * NKV) * hd, OC = NH * hd, grp = NH / NKV;
    const float *kb = qkv + b * T * R + (NH + g) * hd, *vb = qkv + b * T * R + (NH + NKV + g) * hd;
    float *dkb = dqkv + b * T * R + (NH + g) * hd, *dvb = dqkv + b * T * R + (NH + NKV + g) * hd;
    for (size_t h = g * grp; h < (g + 1) * grp; h++) {
        const float *P = att + (b * NH + h) * T * T;
        float *dS = scratch + (b * NH + h) * T * T;
        const float *qb = qkv + b * T * R + h * hd, *dob = dout + b * T * OC + h * hd;
        float *dqb = dqkv + b * T * R + h * hd;
        for (size_t t = 0; t < T; t++) {
            const float *dO = dob + t * OC, *p = P + t * T;
            float *ds = dS + t * T, *dq = dqb + t * R;
            float dot = 0.0f;
            for (size_t s = 0; s <= t; s++) {
                const float *v = vb + s * R;
                float acc = 0.0f;
                for (size_t d = 0; d < hd; d++) acc = fmaf(dO[d], v[d], acc);
                ds[s] = acc;
                dot += p[s] * acc;
            }
            for (size_t s = 0; s <= t; s++) ds[s] = p[s] * (ds[s] - dot) * scale;
            for (size_t d = 0; d < hd; d++) dq[d] = 0.0f;
            for (size_t s = 0; s <= t; s++) {
                const float *k = kb + s * R;
                float *dk = dkb + s * R, *dv = dvb + s * R;
                const float *q = qb + t * R;
                for (size_t d = 0; d < hd; d++) {
                    dq[d] = fmaf(ds[s], k[d], dq[d]);
                    dk[d] = fmaf(ds[s], q[d], dk[d]);
                    dv[d] = fmaf(p[s], dO[d], dv[d]);
                }
            }
        }
    }
}

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

/* ---------------------------------------------------------------- AVX-512 path */

#if K_AVX512

/* In-register transpose of the 16x16 block r0..r15 (rows in, columns out). */
#define TR16_DECL __m512 r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15, \
    t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15;
#define TR16 \
    t0 = _mm512_unpacklo_ps(r0, r1); t1 = _mm512_unpackhi_ps(r0, r1); \
    t2 = _mm512_unpacklo_ps(r2, r3); t3 = _mm512_unpackhi_ps(r2, r3); \
    t4 = _mm512_unpacklo_ps(r4, r5); t5 = _mm512_unpackhi_ps(r4, r5); \
    t6 = _mm512_unpacklo_ps(r6, r7); t7 = _mm512_unpackhi_ps(r6, r7); \
    t8 = _mm512_unpacklo_ps(r8, r9); t9 = _mm512_unpackhi_ps(r8, r9); \
    t10 = _mm512_unpacklo_ps(r10, r11); t11 = _mm512_unpackhi_ps(r10, r11); \
    t12 = _mm512_unpacklo_ps(r12, r13); t13 = _mm512_unpackhi_ps(r12, r13); \
    t14 = _mm512_unpacklo_ps(r14, r15); t15 = _mm512_unpackhi_ps(r14, r15); \
    r0 = _mm512_shuffle_ps(t0, t2, 0x44); r1 = _mm512_shuffle_ps(t0, t2, 0xEE); \
    r2 = _mm512_shuffle_ps(t1, t3, 0x44); r3 = _mm512_shuffle_ps(t1, t3, 0xEE); \
    r4 = _mm512_shuffle_ps(t4, t6, 0x44); r5 = _mm512_shuffle_ps(t4, t6, 0xEE); \
    r6 = _mm512_shuffle_ps(t5, t7, 0x44); r7 = _mm512_shuffle_ps(t5, t7, 0xEE); \
    r8 = _mm512_shuffle_ps(t8, t10, 0x44); r9 = _mm512_shuffle_ps(t8, t10, 0xEE); \
    r10 = _mm512_shuffle_ps(t9, t11, 0x44); r11 = _mm512_shuffle_ps(t9, t11, 0xEE); \
    r12 = _mm512_shuffle_ps(t12, t14, 0x44); r13 = _mm512_shuffle_ps(t12, t14, 0xEE); \
    r14 = _mm512_shuffle_ps(t13, t15, 0x44); r15 = _mm512_shuffle_ps(t13, t15, 0xEE); \
    t0 = _mm512_shuffle_f32x4(r0, r4, 0x88); t4 = _mm512_shuffle_f32x4(r0, r4, 0xdd); \
    t1 = _mm512_shuffle_f32x4(r1, r5, 0x88); t5 = _mm512_shuffle_f32x4(r1, r5, 0xdd); \
    t2 = _mm512_shuffle_f32x4(r2, r6, 0x88); t6 = _mm512_shuffle_f32x4(r2, r6, 0xdd); \
    t3 = _mm512_shuffle_f32x4(r3, r7, 0x88); t7 = _mm512_shuffle_f32x4(r3, r7, 0xdd); \
    t8 = _mm512_shuffle_f32x4(r8, r12, 0x88); t12 = _mm512_shuffle_f32x4(r8, r12, 0xdd); \
    t9 = _mm512_shuffle_f32x4(r9, r13, 0x88); t13 = _mm512_shuffle_f32x4(r9, r13, 0xdd); \
    t10 = _mm512_shuffle_f32x4(r10, r14, 0x88); t14 = _mm512_shuffle_f32x4(r10, r14, 0xdd); \
    t11 = _mm512_shuffle_f32x4(r11, r15, 0x88); t15 = _mm512_shuffle_f32x4(r11, r15, 0xdd); \
    r0 = _mm512_shuffle_f32x4(t0, t8, 0x88); r8 = _mm512_shuffle_f32x4(t0, t8, 0xdd); \
    r1 = _mm512_shuffle_f32x4(t1, t9, 0x88); r9 = _mm512_shuffle_f32x4(t1, t9, 0xdd); \
    r2 = _mm512_shuffle_f32x4(t2, t10, 0x88); r10 = _mm512_shuffle_f32x4(t2, t10, 0xdd); \
    r3 = _mm512_shuffle_f32x4(t3, t11, 0x88); r11 = _mm512_shuffle_f32x4(t3, t11, 0xdd); \
    r4 = _mm512_shuffle_f32x4(t4, t12, 0x88); r12 = _mm512_shuffle_f32x4(t4, t12, 0xdd); \
    r5 = _mm512_shuffle_f32x4(t5, t13, 0x88); r13 = _mm512_shuffle_f32x4(t5, t13, 0xdd); \
    r6 = _mm512_shuffle_f32x4(t6, t14, 0x88); r14 = _mm512_shuffle_f32x4(t6, t14, 0xdd); \
    r7 = _mm512_shuffle_f32x4(t7, t15, 0x88); r15 = _mm512_shuffle_f32x4(t7, t15, 0xdd);

#define X16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define TR_LD(i)                                                                              \
    r##i = _mm512_maskz_loadu_ps(s0 + (i) < T ? md : 0,                                       \
                                 y + (s0 + (i) < T ? s0 + (i) : 0) * ldy + d0);
#define TR_ST(i) if ((i) < nd) _mm512_storeu_ps(yt + (d0 + (i)) * Tp + s0, r##i);

/* yt (hd, Tp) = transpose of rows y[s] (stride ldy) for s < T; columns T..Tp zero. Works in
 * 16x16 blocks transposed in registers (a gather per vector is several times slower). */
static void pack_transposed(float *yt, const float *y, size_t ldy, size_t T, size_t Tp, size_t hd) {
    for (size_t d0 = 0; d0 < hd; d0 += 16) {
        size_t nd = K_MIN((size_t)16, hd - d0);
        __mmask16 md = kv_mask(nd);
        for (size_t s0 = 0; s0 < Tp; s0 += 16) {
            TR16_DECL
            X16(TR_LD)
            TR16
            X16(TR_ST)
        }
    }
}

/* The micro-kernels below are spelled out with named accumulators (generated by the CHn /
 * ROWSn macros) rather than arrays and loops, so that gcc and clang alike keep every
 * accumulator in a register. */
#define CH1(X) X(0)
#define CH2(X) X(0) X(1)
#define CH3(X) X(0) X(1) X(2)
#define CH4(X) X(0) X(1) X(2) X(3)
#define ROWS4(X) X(0) X(1) X(2) X(3)
#define ROWS8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/* ---- S = X · Y^T on a tile of 4 rows by 16*NV columns, Y packed as yt (hd, Tp).
 * out[i][j] (row stride ldo) = sum_d x_i[d] * b[d*Tp + j] for rows i < nr, columns j < ncol;
 * x1..x3 repeat a valid row when nr < 4. */
#define NT_Z(j) __m512 c0##j = _mm512_setzero_ps(), c1##j = c0##j, c2##j = c0##j, c3##j = c0##j;
/* the empty asm keeps the loaded vector in a register: otherwise the compiler folds the load
 * into each of the four FMAs that use it (four times the load traffic) */
#define NT_L(j)                                                                               \
    __m512 b##j = _mm512_loadu_ps(b + 16 * (j));                                              \
    __asm__("" : "+v"(b##j));
#define NT_F(j)                                                                               \
    c0##j = _mm512_fmadd_ps(a0, b##j, c0##j);                                                 \
    c1##j = _mm512_fmadd_ps(a1, b##j, c1##j);                                                 \
    c2##j = _mm512_fmadd_ps(a2, b##j, c2##j);                                                 \
    c3##j = _mm512_fmadd_ps(a3, b##j, c3##j);
#define NT_S(j)                                                                               \
    if (ncol > 16 * (size_t)(j)) {                                                            \
        __mmask16 m = kv_mask(ncol - 16 * (size_t)(j));                                       \
        _mm512_mask_storeu_ps(out + 16 * (j), m, c0##j);                                      \
        if (nr > 1) _mm512_mask_storeu_ps(out + ldo + 16 * (j), m, c1##j);                    \
        if (nr > 2) _mm512_mask_storeu_ps(out + 2 * ldo + 16 * (j), m, c2##j);                \
        if (nr > 3) _mm512_mask_storeu_ps(out + 3 * ldo + 16 * (j), m, c3##j);                \
    }
#define NT_DEF(NAME, CH)                                                                      \
    static void NAME(float *out, size_t ldo, const float *x0, const float *x1,                \
                     const float *x2, const float *x3, int nr, const float *b, size_t Tp,     \
                     size_t ncol, size_t hd) {                                                \
        CH(NT_Z)                                                                              \
        for (size_t d = 0; d < hd; d++, b += Tp) {                                            \
            CH(NT_L)                                                                          \
            __m512 a0 = _mm512_set1_ps(x0[d]), a1 = _mm512_set1_ps(x1[d]);                    \
            __m512 a2 = _mm512_set1_ps(x2[d]), a3 = _mm512_set1_ps(x3[d]);                    \
            CH(NT_F)                                                                          \
        }                                                                                     \
        CH(NT_S)                                                                              \
    }
NT_DEF(nt_4x16, CH1)
NT_DEF(nt_4x32, CH2)
NT_DEF(nt_4x48, CH3)
NT_DEF(nt_4x64, CH4)

/* Scores for rows t0 .. t0+nr-1 (nr <= 4) of one head: out rows (stride ldo) columns
 * [0, t0+nr) = X rows · Y^T, Y packed as yt (hd, Tp). The last column tile is only as wide
 * (in 16s) as the diagonal needs. */
static void scores_rows(float *out, size_t ldo, const float *x, size_t ldx, size_t t0, int nr,
                        const float *yt, size_t Tp, size_t hd) {
    const float *x0 = x + t0 * ldx;
    const float *x1 = x0 + (nr > 1 ? ldx : 0), *x2 = x0 + (size_t)(nr > 2 ? 2 : nr - 1) * ldx;
    const float *x3 = x0 + (size_t)(nr > 3 ? 3 : nr - 1) * ldx;
    size_t need = t0 + (size_t)nr;
    float *o = out + t0 * ldo;
    size_t s0 = 0;
    for (; s0 + 64 <= need; s0 += 64) nt_4x64(o + s0, ldo, x0, x1, x2, x3, nr, yt + s0, Tp, 64, hd);
    if (s0 < need) {
        size_t rem = need - s0;
        switch ((rem + 15) / 16) {
        case 1: nt_4x16(o + s0, ldo, x0, x1, x2, x3, nr, yt + s0, Tp, rem, hd); break;
        case 2: nt_4x32(o + s0, ldo, x0, x1, x2, x3, nr, yt + s0, Tp, rem, hd); break;
        case 3: nt_4x48(o + s0, ldo, x0, x1, x2, x3, nr, yt + s0, Tp, rem, hd); break;
        default: nt_4x64(o + s0, ldo, x0, x1, x2, x3, nr, yt + s0, Tp, rem, hd); break;
        }
    }
}

/* ---- O = A · X: out[i] (hd floats, overwritten) = sum_{s < ns} a_i[s] * x[s] for rows
 * i < nr of A (stride lda); hd in chunks of 16 lanes masked by m0..m3 (a zero mask
 * disables a chunk). Rows past nr repeat the last valid row and are not stored. */
#define NN_Z2(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = c##i##0;
#define NN_Z4(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = c##i##0, c##i##2 = c##i##0, c##i##3 = c##i##0;
#define NN_P(i) const float *a##i = a + (size_t)((i) < nr ? (i) : nr - 1) * lda;
#define NN_F2(i)                                                                              \
    {                                                                                         \
        __m512 av = _mm512_set1_ps(a##i[s]);                                                  \
        c##i##0 = _mm512_fmadd_ps(av, x0, c##i##0);                                           \
        c##i##1 = _mm512_fmadd_ps(av, x1, c##i##1);                                           \
    }
#define NN_F4(i)                                                                              \
    {                                                                                         \
        __m512 av = _mm512_set1_ps(a##i[s]);                                                  \
        c##i##0 = _mm512_fmadd_ps(av, x0, c##i##0);                                           \
        c##i##1 = _mm512_fmadd_ps(av, x1, c##i##1);                                           \
        c##i##2 = _mm512_fmadd_ps(av, x2, c##i##2);                                           \
        c##i##3 = _mm512_fmadd_ps(av, x3, c##i##3);                                           \
    }
#define NN_S2(i)                                                                              \
    if ((i) < nr) {                                                                           \
        _mm512_mask_storeu_ps(out + (i) * ldo, m0, c##i##0);                                  \
        _mm512_mask_storeu_ps(out + (i) * ldo + 16, m1, c##i##1);                             \
    }
#define NN_S4(i)                                                                              \
    if ((i) < nr) {                                                                           \
        _mm512_mask_storeu_ps(out + (i) * ldo, m0, c##i##0);                                  \
        _mm512_mask_storeu_ps(out + (i) * ldo + 16, m1, c##i##1);                             \
        _mm512_mask_storeu_ps(out + (i) * ldo + 32, m2, c##i##2);                             \
        _mm512_mask_storeu_ps(out + (i) * ldo + 48, m3, c##i##3);                             \
    }

static void nn_8x32(float *out, size_t ldo, const float *a, size_t lda, int nr, const float *x,
                    size_t ldx, size_t ns, __mmask16 m0, __mmask16 m1) {
    ROWS8(NN_Z2)
    ROWS8(NN_P)
    for (size_t s = 0; s < ns; s++) {
        const float *xs = x + s * ldx;
        __m512 x0 = _mm512_maskz_loadu_ps(m0, xs), x1 = _mm512_maskz_loadu_ps(m1, xs + 16);
        ROWS8(NN_F2)
    }
    ROWS8(NN_S2)
}

static void nn_4x64(float *out, size_t ldo, const float *a, size_t lda, int nr, const float *x,
                    size_t ldx, size_t ns, __mmask16 m0, __mmask16 m1, __mmask16 m2,
                    __mmask16 m3) {
    ROWS4(NN_Z4)
    ROWS4(NN_P)
    for (size_t s = 0; s < ns; s++) {
        const float *xs = x + s * ldx;
        __m512 x0 = _mm512_maskz_loadu_ps(m0, xs), x1 = _mm512_maskz_loadu_ps(m1, xs + 16);
        __m512 x2 = _mm512_maskz_loadu_ps(m2, xs + 32), x3 = _mm512_maskz_loadu_ps(m3, xs + 48);
        ROWS4(NN_F4)
    }
    ROWS4(NN_S4)
}

/* Lane masks of the four 16-wide chunks of a row of hd (<= 64) floats. */
static void chunk_masks(size_t hd, __mmask16 m[4]) {
    for (size_t j = 0; j < 4; j++) m[j] = kv_mask(hd > 16 * j ? hd - 16 * j : 0);
}

/* Rows t0 .. t0+nr-1 (nr <= 8) of O = A · X with A lower-triangular (zero beyond the
 * diagonal): sums run over s < t0+nr. */
static void nn_rows(float *out, size_t ldo, const float *a, size_t lda, size_t t0, int nr,
                    const float *x, size_t ldx, size_t hd) {
    __mmask16 m[4];
    chunk_masks(hd, m);
    float *o = out + t0 * ldo;
    const float *ar = a + t0 * lda;
    size_t ns = t0 + (size_t)nr;
    if (hd <= 32) {
        nn_8x32(o, ldo, ar, lda, nr, x, ldx, ns, m[0], m[1]);
        return;
    }
    for (int i0 = 0; i0 < nr; i0 += 4)
        nn_4x64(o + (size_t)i0 * ldo, ldo, ar + (size_t)i0 * lda, lda, nr - i0 < 4 ? nr - i0 : 4,
                x, ldx, ns, m[0], m[1], m[2], m[3]);
}

/* ---- D += A^T · X: dst[s0+i] (hd floats, accumulated) += sum_{t = s0}^{T-1} A[t][s0+i] * X[t]
 * for i < nr, A (T, T) zero above the diagonal (rows t < s0 add nothing). Columns past nr
 * repeat the last valid column and are not stored. */
#define TN_P(i) const float *a##i = a + s0 + (size_t)((i) < nr ? (i) : nr - 1);
#define TN_F2(i)                                                                              \
    {                                                                                         \
        __m512 av = _mm512_set1_ps(a##i[t * lda]);                                            \
        c##i##0 = _mm512_fmadd_ps(av, x0, c##i##0);                                           \
        c##i##1 = _mm512_fmadd_ps(av, x1, c##i##1);                                           \
    }
#define TN_F4(i)                                                                              \
    {                                                                                         \
        __m512 av = _mm512_set1_ps(a##i[t * lda]);                                            \
        c##i##0 = _mm512_fmadd_ps(av, x0, c##i##0);                                           \
        c##i##1 = _mm512_fmadd_ps(av, x1, c##i##1);                                           \
        c##i##2 = _mm512_fmadd_ps(av, x2, c##i##2);                                           \
        c##i##3 = _mm512_fmadd_ps(av, x3, c##i##3);                                           \
    }
#define TN_ACC(i, j, m)                                                                       \
    _mm512_mask_storeu_ps(d##i + 16 * (j), m,                                                 \
                          _mm512_add_ps(_mm512_maskz_loadu_ps(m, d##i + 16 * (j)), c##i##j));
#define TN_S2(i)                                                                              \
    if ((i) < nr) {                                                                           \
        float *d##i = dst + (s0 + (i)) * ldd;                                                 \
        TN_ACC(i, 0, m0) TN_ACC(i, 1, m1)                                                     \
    }
#define TN_S4(i)                                                                              \
    if ((i) < nr) {                                                                           \
        float *d##i = dst + (s0 + (i)) * ldd;                                                 \
        TN_ACC(i, 0, m0) TN_ACC(i, 1, m1) TN_ACC(i, 2, m2) TN_ACC(i, 3, m3)                   \
    }

static void tn_8x32(float *dst, size_t ldd, const float *a, size_t lda, size_t s0, int nr,
                    size_t T, const float *x, size_t ldx, __mmask16 m0, __mmask16 m1) {
    ROWS8(NN_Z2)
    ROWS8(TN_P)
    for (size_t t = s0; t < T; t++) {
        const float *xt = x + t * ldx;
        __m512 x0 = _mm512_maskz_loadu_ps(m0, xt), x1 = _mm512_maskz_loadu_ps(m1, xt + 16);
        ROWS8(TN_F2)
    }
    ROWS8(TN_S2)
}

static void tn_4x64(float *dst, size_t ldd, const float *a, size_t lda, size_t s0, int nr,
                    size_t T, const float *x, size_t ldx, __mmask16 m0, __mmask16 m1,
                    __mmask16 m2, __mmask16 m3) {
    ROWS4(NN_Z4)
    ROWS4(TN_P)
    for (size_t t = s0; t < T; t++) {
        const float *xt = x + t * ldx;
        __m512 x0 = _mm512_maskz_loadu_ps(m0, xt), x1 = _mm512_maskz_loadu_ps(m1, xt + 16);
        __m512 x2 = _mm512_maskz_loadu_ps(m2, xt + 32), x3 = _mm512_maskz_loadu_ps(m3, xt + 48);
        ROWS4(TN_F4)
    }
    ROWS4(TN_S4)
}

/* D (T, hd; stride ldd) += A^T · X for A (T, T) lower-triangular, X (T, hd; stride ldx). */
static void tn_all(float *dst, size_t ldd, const float *a, size_t lda, size_t T, const float *x,
                   size_t ldx, size_t hd) {
    __mmask16 m[4];
    chunk_masks(hd, m);
    size_t step = hd <= 32 ? 8 : 4;
    for (size_t s0 = 0; s0 < T; s0 += step) {
        int nr = (int)K_MIN(step, T - s0);
        if (hd <= 32)
            tn_8x32(dst, ldd, a, lda, s0, nr, T, x, ldx, m[0], m[1]);
        else
            tn_4x64(dst, ldd, a, lda, s0, nr, T, x, ldx, m[0], m[1], m[2], m[3]);
    }
}

/* p[0..n) = 0 with non-temporal stores where aligned: the zeros above the diagonal of att
 * are never read back in the forward, so they need not displace cache lines (nor be read for
 * ownership first). The caller issues _mm_sfence() before the data is shared. */
static void zero_stream(float *p, size_t n) {
    size_t head = ((64 - ((uintptr_t)p & 63)) & 63) / sizeof(float);
    if (((uintptr_t)p & 3) != 0 || head >= n) {
        memset(p, 0, n * sizeof(float));
        return;
    }
    if (head) _mm512_mask_storeu_ps(p, kv_mask(head), _mm512_setzero_ps());
    size_t i = head;
    for (; i + 16 <= n; i += 16) _mm512_stream_ps(p + i, _mm512_setzero_ps());
    if (i < n) _mm512_mask_storeu_ps(p + i, kv_mask(n - i), _mm512_setzero_ps());
}

static void fwd_head_avx512(float *out, float *att, const float *qkv, size_t b, size_t h,
                            size_t T, size_t NH, size_t NKV, size_t hd, float scale, float *ws,
                            size_t Tp) {
    size_t R = (NH + 2 * NKV) * hd, OC = NH * hd, g = h / (NH / NKV);
    const float *qb = qkv + b * T * R + h * hd;
    const float *kb = qkv + b * T * R + (NH + g) * hd, *vb = qkv + b * T * R + (NH + NKV + g) * hd;
    float *P = att + (b * NH + h) * T * T, *ob = out + b * T * OC + h * hd;
    pack_transposed(ws, kb, R, T, Tp, hd);
    for (size_t t0 = 0; t0 < T; t0 += 8) {
        int nr = (int)K_MIN((size_t)8, T - t0);
        for (int i0 = 0; i0 < nr; i0 += 4)
            scores_rows(P, T, qb, R, t0 + (size_t)i0, nr - i0 < 4 ? nr - i0 : 4, ws, Tp, hd);
        /* The P·V tile reads columns < t0+8: zero those with ordinary stores, stream the rest. */
        size_t near = K_MIN(T, round_up(t0 + 8, 16));
        for (size_t t = t0; t < t0 + (size_t)nr; t++) {
            float *row = P + t * T;
            kern_softmax_row_scaled(row, t + 1, t + 1, scale);
            if (near > t + 1) memset(row + t + 1, 0, (near - t - 1) * sizeof(float));
            if (T > near) zero_stream(row + near, T - near);
        }
        nn_rows(ob, OC, P, T, t0, nr, vb, R, hd);
    }
    _mm_sfence();
}

/* dS row t in place: dS = P * (dP - sum_s P dP) * scale for s <= t, zero up to `zero_to`. */
static void ds_row(float *ds, const float *p, size_t t, size_t zero_to, float scale) {
    size_t n = t + 1, i = 0;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(p + i), _mm512_loadu_ps(ds + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(p + i + 16), _mm512_loadu_ps(ds + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(p + i + 32), _mm512_loadu_ps(ds + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(p + i + 48), _mm512_loadu_ps(ds + i + 48), a3);
    }
    for (; i < n; i += 16) {
        __mmask16 k = kv_mask(n - i);
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, p + i), _mm512_maskz_loadu_ps(k, ds + i), a0);
    }
    __m512 acc = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
    __m512 dot = _mm512_set1_ps(_mm512_reduce_add_ps(acc)), vs = _mm512_set1_ps(scale);
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 k = kv_mask(n - j);
        __m512 v = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, ds + j), dot);
        v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + j), v), vs);
        _mm512_mask_storeu_ps(ds + j, k, v);
    }
    if (zero_to > n) memset(ds + n, 0, (zero_to - n) * sizeof(float));
}

/* ds_buf: a (T, T) slab for dS private to the thread (stays in L2 for training T), or NULL
 * to use the caller's scratch. */
static void bwd_task_avx512(float *dqkv, float *scratch, const float *dout, const float *att,
                            const float *qkv, size_t b, size_t g, size_t T, size_t NH,
                            size_t NKV, size_t hd, float scale, float *ws, size_t Tp,
                            float *ds_buf) {
    size_t R = (NH + 2 * NKV) * hd, OC = NH * hd, grp = NH / NKV;
    const float *kb = qkv + b * T * R + (NH + g) * hd, *vb = qkv + b * T * R + (NH + NKV + g) * hd;
    float *dkb = dqkv + b * T * R + (NH + g) * hd, *dvb = dqkv + b * T * R + (NH + NKV + g) * hd;
    pack_transposed(ws, vb, R, T, Tp, hd);
    for (size_t h = g * grp; h < (g + 1) * grp; h++) {
        const float *P = att + (b * NH + h) * T * T;
        float *dS = ds_buf ? ds_buf : scratch + (b * NH + h) * T * T;
        const float *qb = qkv + b * T * R + h * hd, *dob = dout + b * T * OC + h * hd;
        float *dqb = dqkv + b * T * R + h * hd;
        for (size_t t0 = 0; t0 < T; t0 += 8) {
            int nr = (int)K_MIN((size_t)8, T - t0);
            for (int i0 = 0; i0 < nr; i0 += 4) /* dP = dO · V^T */
                scores_rows(dS, T, dob, OC, t0 + (size_t)i0, nr - i0 < 4 ? nr - i0 : 4, ws, Tp, hd);
            /* Zero each row up to the next multiple of 8 columns: the tiles read no further. */
            size_t zero_to = K_MIN(T, t0 + 8);
            for (size_t t = t0; t < t0 + (size_t)nr; t++) ds_row(dS + t * T, P + t * T, t, zero_to, scale);
            /* P comes from memory (the forward wrote it long ago): prefetch the next rows. */
            for (size_t t = t0 + 8; t < K_MIN(T, t0 + 16); t++)
                for (size_t c = 0; c <= t; c += 16) _mm_prefetch((const char *)(P + t * T + c), _MM_HINT_T0);
            nn_rows(dqb, R, dS, T, t0, nr, kb, R, hd); /* dQ = dS · K */
        }
        tn_all(dkb, R, dS, T, T, qb, R, hd);  /* dK += dS^T · Q */
        tn_all(dvb, R, P, T, T, dob, OC, hd); /* dV += P^T · dO */
    }
}
#endif /* K_AVX512 */

/* ---------------------------------------------------------------- interface */

void attention_forward(float *out, float *att, const float *qkv, size_t B, size_t T, size_t NH,
                       size_t NKV, size_t hd) {
    if (B == 0 || T == 0 || NH == 0 || hd == 0) return;
    size_t R = (NH + 2 * NKV) * hd, OC = NH * hd, grp = NH / NKV, ntask = B * NH;
    float scale = 1.0f / sqrtf((float)hd);
    size_t Tp = round_up(T, 64);
    int nt = kern_threads_for(B * NH * T * T * hd / 4);
    (void)nt;
    (void)Tp;
    K_OMP(parallel num_threads(nt))
    {
        float *ws = NULL;
#if K_AVX512
        if (hd <= 64) ws = aligned_alloc(64, round_up(Tp * hd * sizeof(float), 64));
#endif
        K_OMP(for schedule(dynamic, 1))
        for (size_t task = 0; task < ntask; task++) {
            size_t b = task / NH, h = task % NH;
#if K_AVX512
            if (ws) {
                fwd_head_avx512(out, att, qkv, b, h, T, NH, NKV, hd, scale, ws, Tp);
                continue;
            }
#endif
            size_t g = h / grp;
            const float *kb = qkv + b * T * R + (NH + g) * hd, *vb = qkv + b * T * R + (NH + NKV + g) * hd;
            for (size_t t = 0; t < T; t++)
                fwd_row_plain(out + (b * T + t) * OC + h * hd, att + ((b * NH + h) * T + t) * T,
                              qkv + (b * T + t) * R + h * hd, kb, vb, R, t, T, hd, scale);
        }
        free(ws);
    }
}

void attention_backward(float *dqkv, float *scratch, const float *dout, const float *att,
                        const float *qkv, size_t B, size_t T, size_t NH, size_t NKV, size_t hd) {
    if (B == 0 || T == 0 || NH == 0 || hd == 0) return;
    size_t R = (NH + 2 * NKV) * hd, ntask = B * NKV;
    float scale = 1.0f / sqrtf((float)hd);
    size_t Tp = round_up(T, 64);
    int nt = kern_threads_for(B * NH * T * T * hd / 4);
    (void)nt;
    (void)Tp;
    K_OMP(parallel num_threads(nt))
    {
        float *ws = NULL, *ds_buf = NULL;
#if K_AVX512
        if (hd <= 64) {
            ws = aligned_alloc(64, round_up(Tp * hd * sizeof(float), 64));
            ds_buf = aligned_alloc(64, round_up(T * T * sizeof(float), 64));
        }
#endif
        K_OMP(for schedule(dynamic, 1))
        for (size_t task = 0; task < ntask; task++) {
            size_t b = task / NKV, g = task % NKV;
            /* this task owns dK and dV of kv head g in batch b: zero, then accumulate */
            for (size_t t = 0; t < T; t++) {
                float *row = dqkv + (b * T + t) * R;
                memset(row + (NH + g) * hd, 0, hd * sizeof(float));
                memset(row + (NH + NKV + g) * hd, 0, hd * sizeof(float));
            }
#if K_AVX512
            if (ws) {
                bwd_task_avx512(dqkv, scratch, dout, att, qkv, b, g, T, NH, NKV, hd, scale, ws, Tp,
                                ds_buf);
                continue;
            }
#endif
            bwd_task_plain(dqkv, scratch, dout, att, qkv, b, g, T, NH, NKV, hd, scale);
        }
        free(ws);
        free(ds_buf);
    }
}

#if K_AVX512
/* Decode scores of one head: scratch[j] = q · k_j for j < len, 16 positions at a time, their
 * keys transposed in registers; each score is the FMA chain over d in order. */
static void decode_scores_avx512(float *scratch, const float *q, const float *kb, size_t ldk,
                                 size_t len, size_t hd) {
    const float *y = kb;
    size_t ldy = ldk, T = len;
    for (size_t s0 = 0; s0 < len; s0 += 16) {
        __m512 acc = _mm512_setzero_ps();
        for (size_t d0 = 0; d0 < hd; d0 += 16) {
            size_t nd = K_MIN((size_t)16, hd - d0);
            __mmask16 md = kv_mask(nd);
            TR16_DECL
            X16(TR_LD)
            TR16
#define ACC(i) if ((i) < nd) acc = _mm512_fmadd_ps(_mm512_set1_ps(q[d0 + (i)]), r##i, acc);
            X16(ACC)
#undef ACC
        }
        _mm512_mask_storeu_ps(scratch + s0, kv_mask(len - s0), acc);
    }
}

/* o (hd) = sum_s p[s] * v_s for s < len, the FMA chain over s in order, 64 lanes at a time. */
static void decode_pv_avx512(float *o, const float *p, const float *vb, size_t ldv, size_t len,
                             size_t hd) {
    for (size_t d0 = 0; d0 < hd; d0 += 64) {
        __mmask16 m[4];
        chunk_masks(hd - d0, m);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        const float *v = vb + d0;
        for (size_t s = 0; s < len; s++, v += ldv) {
            __m512 ps = _mm512_set1_ps(p[s]);
            a0 = _mm512_fmadd_ps(ps, _mm512_maskz_loadu_ps(m[0], v), a0);
            a1 = _mm512_fmadd_ps(ps, _mm512_maskz_loadu_ps(m[1], v + 16), a1);
            a2 = _mm512_fmadd_ps(ps, _mm512_maskz_loadu_ps(m[2], v + 32), a2);
            a3 = _mm512_fmadd_ps(ps, _mm512_maskz_loadu_ps(m[3], v + 48), a3);
        }
        _mm512_mask_storeu_ps(o + d0, m[0], a0);
        _mm512_mask_storeu_ps(o + d0 + 16, m[1], a1);
        _mm512_mask_storeu_ps(o + d0 + 32, m[2], a2);
        _mm512_mask_storeu_ps(o + d0 + 48, m[3], a3);
    }
}
#endif

void attention_decode(float *out, const float *q, const float *kcache, const float *vcache,
                      size_t len, size_t NH, size_t NKV, size_t hd, float *scratch) {
    if (len == 0 || NH == 0 || hd == 0) return;
    size_t ldk = NKV * hd, grp = NH / NKV;
    float scale = 1.0f / sqrtf((float)hd);
    for (size_t h = 0; h < NH; h++) {
        size_t g = h / grp;
        const float *qh = q + h * hd, *kb = kcache + g * hd, *vb = vcache + g * hd;
        float *o = out + h * hd;
        /* The same sums in the same order as the forward: scores are FMA chains over d, the
         * output an FMA chain over positions, the softmax the shared row routine. */
#if K_AVX512
        decode_scores_avx512(scratch, qh, kb, ldk, len, hd);
        kern_softmax_row_scaled(scratch, len, len, scale);
        decode_pv_avx512(o, scratch, vb, ldk, len, hd);
#else
        for (size_t j = 0; j < len; j++) {
            const float *k = kb + j * ldk;
            float acc = 0.0f;
            for (size_t d = 0; d < hd; d++) acc = fmaf(qh[d], k[d], acc);
            scratch[j] = acc;
        }
        kern_softmax_row_scaled(scratch, len, len, scale);
        for (size_t d = 0; d < hd; d++) o[d] = 0.0f;
        for (size_t s = 0; s < len; s++) {
            const float *v = vb + s * ldk;
            float p = scratch[s];
            for (size_t d = 0; d < hd; d++) o[d] = fmaf(p, v[d], o[d]);
        }
#endif
    }
}
