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

/* ---------------------------------------------------------------- AVX-512 path */

#if K_AVX512
#define K_ALWAYS_INLINE __attribute__((always_inline)) inline

/* yt (hd, Tp) = transpose of rows y[s] (stride ldy) for s < T; columns T..Tp zero. */
static void pack_transposed(float *yt, const float *y, size_t ldy, size_t T, size_t Tp, size_t hd) {
    for (size_t s = 0; s < T; s++)
        for (size_t d = 0; d < hd; d++) yt[d * Tp + s] = y[s * ldy + d];
    for (size_t d = 0; d < hd; d++) memset(yt + d * Tp + T, 0, (Tp - T) * sizeof(float));
}

/* out[i][s0 + j] = sum_d x_i[d] * yt[d][s0 + j] for rows i < nr (<= 4) and the first ncol
 * (<= 64) columns; xr[i] points at row i of X (rows past nr repeat a valid row). */
static void nt_tile_4x64(float *out, size_t ldo, const float *const xr[4], int nr,
                         const float *yt, size_t Tp, size_t s0, size_t ncol, size_t hd) {
    __m512 c[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) c[i][j] = _mm512_setzero_ps();
    const float *b = yt + s0;
    for (size_t d = 0; d < hd; d++, b += Tp) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        __m512 b2 = _mm512_loadu_ps(b + 32), b3 = _mm512_loadu_ps(b + 48);
        for (int i = 0; i < 4; i++) {
            __m512 a = _mm512_set1_ps(xr[i][d]);
            c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
            c[i][2] = _mm512_fmadd_ps(a, b2, c[i][2]);
            c[i][3] = _mm512_fmadd_ps(a, b3, c[i][3]);
        }
    }
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < 4; j++)
            if (ncol > (size_t)j * 16)
                _mm512_mask_storeu_ps(out + (size_t)i * ldo + s0 + (size_t)j * 16,
                                      kv_mask(ncol - (size_t)j * 16), c[i][j]);
}

/* Scores for rows t0 .. t0+nr-1 (nr <= 4) of one head: out rows (stride ldo) columns
 * [0, t0+nr) = X rows · Y^T, Y packed as yt (hd, Tp). */
static void scores_rows(float *out, size_t ldo, const float *x, size_t ldx, size_t t0, int nr,
                        const float *yt, size_t Tp, size_t hd) {
    const float *xr[4];
    for (int i = 0; i < 4; i++) xr[i] = x + (t0 + (size_t)(i < nr ? i : nr - 1)) * ldx;
    size_t need = t0 + (size_t)nr;
    for (size_t s0 = 0; s0 < need; s0 += 64)
        nt_tile_4x64(out + t0 * ldo, ldo, xr, nr, yt, Tp, s0, K_MIN((size_t)64, need - s0), hd);
}

/* out[i] (hd, overwritten) = sum_{s < ns} a_i[s] * x[s] for rows i < nr of A (stride lda);
 * NR rows by NCH 16-wide chunks of hd, the last chunk masked by ml. */
static K_ALWAYS_INLINE void nn_tile(float *out, size_t ldo, const float *a, size_t lda, int nr,
                                    const float *x, size_t ldx, size_t ns, const int NR,
                                    const int NCH, __mmask16 ml) {
    __m512 c[8][4];
    const float *ar[8];
    for (int i = 0; i < NR; i++) {
        ar[i] = a + (size_t)(i < nr ? i : nr - 1) * lda;
        for (int j = 0; j < NCH; j++) c[i][j] = _mm512_setzero_ps();
    }
    for (size_t s = 0; s < ns; s++) {
        __m512 xv[4];
        const float *xs = x + s * ldx;
        for (int j = 0; j < NCH; j++)
            xv[j] = _mm512_maskz_loadu_ps(j == NCH - 1 ? ml : (__mmask16)0xFFFF, xs + 16 * j);
        for (int i = 0; i < NR; i++) {
            __m512 av = _mm512_set1_ps(ar[i][s]);
            for (int j = 0; j < NCH; j++) c[i][j] = _mm512_fmadd_ps(av, xv[j], c[i][j]);
        }
    }
    for (int i = 0; i < NR; i++)
        if (i < nr)
            for (int j = 0; j < NCH; j++)
                _mm512_mask_storeu_ps(out + (size_t)i * ldo + 16 * j,
                                      j == NCH - 1 ? ml : (__mmask16)0xFFFF, c[i][j]);
}

/* Rows t0 .. t0+nr-1 (nr <= 8) of O = A · X with A lower-triangular (zero beyond the
 * diagonal): sums run over s < t0+nr. */
static void nn_rows(float *out, size_t ldo, const float *a, size_t lda, size_t t0, int nr,
                    const float *x, size_t ldx, size_t hd) {
    size_t nch = (hd + 15) / 16;
    __mmask16 ml = kv_mask(hd - (nch - 1) * 16);
    float *o = out + t0 * ldo;
    const float *ar = a + t0 * lda;
    size_t ns = t0 + (size_t)nr;
    switch (nch) {
    case 1: nn_tile(o, ldo, ar, lda, nr, x, ldx, ns, 8, 1, ml); break;
    case 2: nn_tile(o, ldo, ar, lda, nr, x, ldx, ns, 8, 2, ml); break;
    case 3:
    case 4:
        for (int i0 = 0; i0 < nr; i0 += 4) {
            int n4 = nr - i0 < 4 ? nr - i0 : 4;
            if (nch == 3)
                nn_tile(o + (size_t)i0 * ldo, ldo, ar + (size_t)i0 * lda, lda, n4, x, ldx,
                        ns, 4, 3, ml);
            else
                nn_tile(o + (size_t)i0 * ldo, ldo, ar + (size_t)i0 * lda, lda, n4, x, ldx,
                        ns, 4, 4, ml);
        }
        break;
    default: break; /* hd > 64 takes the plain path */
    }
}

/* D[s0+i] (hd, accumulated) += sum_{t = s0}^{T-1} A[t][s0+i] * X[t] for i < nr, with A
 * (T, T) zero above the diagonal (so rows t < s0 contribute nothing). */
static K_ALWAYS_INLINE void tn_tile(float *dst, size_t ldd, const float *a, size_t lda,
                                   size_t s0, int nr, size_t T, const float *x, size_t ldx,
                                   const int NR, const int NCH, __mmask16 ml) {
    __m512 c[8][4];
    size_t col[8];
    for (int i = 0; i < NR; i++) {
        col[i] = s0 + (size_t)(i < nr ? i : nr - 1);
        for (int j = 0; j < NCH; j++) c[i][j] = _mm512_setzero_ps();
    }
    for (size_t t = s0; t < T; t++) {
        __m512 xv[4];
        const float *xt = x + t * ldx, *at = a + t * lda;
        for (int j = 0; j < NCH; j++)
            xv[j] = _mm512_maskz_loadu_ps(j == NCH - 1 ? ml : (__mmask16)0xFFFF, xt + 16 * j);
        for (int i = 0; i < NR; i++) {
            __m512 av = _mm512_set1_ps(at[col[i]]);
            for (int j = 0; j < NCH; j++) c[i][j] = _mm512_fmadd_ps(av, xv[j], c[i][j]);
        }
    }
    for (int i = 0; i < NR; i++)
        if (i < nr)
            for (int j = 0; j < NCH; j++) {
                __mmask16 m = j == NCH - 1 ? ml : (__mmask16)0xFFFF;
                float *d = dst + (s0 + (size_t)i) * ldd + 16 * j;
                _mm512_mask_storeu_ps(d, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, d), c[i][j]));
            }
}

/* D (T, hd; stride ldd) += A^T · X for A (T, T) lower-triangular, X (T, hd; stride ldx). */
static void tn_all(float *dst, size_t ldd, const float *a, size_t lda, size_t T, const float *x,
                   size_t ldx, size_t hd) {
    size_t nch = (hd + 15) / 16;
    __mmask16 ml = kv_mask(hd - (nch - 1) * 16);
    size_t step = nch <= 2 ? 8 : 4;
    for (size_t s0 = 0; s0 < T; s0 += step) {
        int nr = (int)K_MIN(step, T - s0);
        switch (nch) {
        case 1: tn_tile(dst, ldd, a, lda, s0, nr, T, x, ldx, 8, 1, ml); break;
        case 2: tn_tile(dst, ldd, a, lda, s0, nr, T, x, ldx, 8, 2, ml); break;
        case 3: tn_tile(dst, ldd, a, lda, s0, nr, T, x, ldx, 4, 3, ml); break;
        case 4: tn_tile(dst, ldd, a, lda, s0, nr, T, x, ldx, 4, 4, ml); break;
        default: break;
        }
    }
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
        for (size_t t = t0; t < t0 + (size_t)nr; t++) kern_softmax_row_scaled(P + t * T, t + 1, T, scale);
        nn_rows(ob, OC, P, T, t0, nr, vb, R, hd);
    }
}

/* dS row t in place: dS = P * (dP - sum_s P dP) * scale for s <= t, zero up to `zero_to`. */
static void ds_row(float *ds, const float *p, size_t t, size_t zero_to, float scale) {
    size_t n = t + 1;
    __m512 acc = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = kv_mask(n - i);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, p + i), _mm512_maskz_loadu_ps(k, ds + i), acc);
    }
    __m512 dot = _mm512_set1_ps(_mm512_reduce_add_ps(acc)), vs = _mm512_set1_ps(scale);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = kv_mask(n - i);
        __m512 v = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, ds + i), dot);
        v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + i), v), vs);
        _mm512_mask_storeu_ps(ds + i, k, v);
    }
    if (zero_to > n) memset(ds + n, 0, (zero_to - n) * sizeof(float));
}

static void bwd_task_avx512(float *dqkv, float *scratch, const float *dout, const float *att,
                            const float *qkv, size_t b, size_t g, size_t T, size_t NH,
                            size_t NKV, size_t hd, float scale, float *ws, size_t Tp) {
    size_t R = (NH + 2 * NKV) * hd, OC = NH * hd, grp = NH / NKV;
    const float *kb = qkv + b * T * R + (NH + g) * hd, *vb = qkv + b * T * R + (NH + NKV + g) * hd;
    float *dkb = dqkv + b * T * R + (NH + g) * hd, *dvb = dqkv + b * T * R + (NH + NKV + g) * hd;
    pack_transposed(ws, vb, R, T, Tp, hd);
    for (size_t h = g * grp; h < (g + 1) * grp; h++) {
        const float *P = att + (b * NH + h) * T * T;
        float *dS = scratch + (b * NH + h) * T * T;
        const float *qb = qkv + b * T * R + h * hd, *dob = dout + b * T * OC + h * hd;
        float *dqb = dqkv + b * T * R + h * hd;
        for (size_t t0 = 0; t0 < T; t0 += 8) {
            int nr = (int)K_MIN((size_t)8, T - t0);
            for (int i0 = 0; i0 < nr; i0 += 4) /* dP = dO · V^T */
                scores_rows(dS, T, dob, OC, t0 + (size_t)i0, nr - i0 < 4 ? nr - i0 : 4, ws, Tp, hd);
            /* Zero each row up to the next multiple of 8 columns: the tiles read no further. */
            size_t zero_to = K_MIN(T, t0 + 8);
            for (size_t t = t0; t < t0 + (size_t)nr; t++) ds_row(dS + t * T, P + t * T, t, zero_to, scale);
            nn_rows(dqb, R, dS, T, t0, nr, kb, R, hd); /* dQ = dS · K */
        }
        tn_all(dkb, R, dS, T, T, qb, R, hd);  /* dK += dS^T · Q */
        tn_all(dvb, R, P, T, T, dob, OC, hd); /* dV += P^T · dO */
    }
}
#endif /* K_AVX512 */

/* ---------------------------------------------------------------- interface */

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

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
        float *ws = NULL;
#if K_AVX512
        if (hd <= 64) ws = aligned_alloc(64, round_up(Tp * hd * sizeof(float), 64));
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
                bwd_task_avx512(dqkv, scratch, dout, att, qkv, b, g, T, NH, NKV, hd, scale, ws, Tp);
                continue;
            }
#endif
            bwd_task_plain(dqkv, scratch, dout, att, qkv, b, g, T, NH, NKV, hd, scale);
        }
        free(ws);
    }
}

void attention_decode(float *out, const float *q, const float *kcache, const float *vcache,
                      size_t len, size_t NH, size_t NKV, size_t hd, float *scratch) {
    if (len == 0 || NH == 0 || hd == 0) return;
    size_t ldk = NKV * hd, grp = NH / NKV;
    float scale = 1.0f / sqrtf((float)hd);
    for (size_t h = 0; h < NH; h++) {
        size_t g = h / grp;
        const float *qh = q + h * hd, *kb = kcache + g * hd, *vb = vcache + g * hd;
        float *o = out + h * hd;
        /* Scores: an FMA chain over d per position, as the forward's tiles compute them. */
        size_t j = 0;
#if K_AVX512
        if (ldk * 16 < (size_t)INT32_MAX) {
            __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                             _mm512_set1_epi32((int)ldk));
            for (; j < len; j += 16) {
                __mmask16 m = kv_mask(len - j);
                __m512 acc = _mm512_setzero_ps();
                const float *kj = kb + j * ldk;
                for (size_t d = 0; d < hd; d++) {
                    __m512 kv = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, kj + d, 4);
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(qh[d]), kv, acc);
                }
                _mm512_mask_storeu_ps(scratch + j, m, acc);
            }
        }
#endif
        for (; j < len; j++) {
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
    }
}
