/*
 * elementwise.c — the row-wise kernels: embedding, RMSNorm, RoPE, SwiGLU, add, softmax,
 * log-softmax, fused softmax cross-entropy, and the vector exp they share.
 *
 * Each kernel is an OpenMP loop over chunks of rows (dynamic schedule, so a preempted thread's
 * rows are picked up by the others) around a per-row routine written twice: with AVX-512
 * intrinsics when the compiler targets AVX-512 (K_AVX512), and in plain C otherwise. Row
 * results never depend on which thread computes them. The reductions across rows (dw of
 * RMSNorm, the embedding scatter) are split across threads by COLUMNS, each column summed over
 * rows in row order; the cross-entropy loss total is summed over fixed blocks of rows, then
 * over blocks in order. So every result here is bit-identical for ANY thread count.
 *
 * What this is not: GEMM or attention (gemm.c, attention.c); no allocation happens here.
 */
#include "kernels.h"

#include "kinternal.h"

#include <math.h>
#include <string.h>

/* Column tile (floats) for the column-split reductions: four AVX-512 vectors. */
#define COL_TILE 64

/* ---------------------------------------------------------------- vector exp */

void kernels_exp(float *out, const float *x, size_t n) {
#if K_AVX512
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = kv_mask(n - i);
        _mm512_mask_storeu_ps(out + i, m, kv_exp(_mm512_maskz_loadu_ps(m, x + i)));
    }
#else
    for (size_t i = 0; i < n; i++) out[i] = expf(x[i]);
#endif
}

/* ---------------------------------------------------------------- softmax rows */

#if K_AVX512
static float row_max(const float *x, size_t n) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (size_t i = 0; i < n; i += 16)
        mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), kv_mask(n - i), x + i));
    return _mm512_reduce_max_ps(mx);
}
/* out[i] = exp((x[i] - m) * scale); returns the sum (out may alias x). */
static float row_exp_sum(float *out, const float *x, size_t n, float m, float scale) {
    __m512 vm = _mm512_set1_ps(m), vs = _mm512_set1_ps(scale), sum = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = kv_mask(n - i);
        __m512 e = kv_exp(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm), vs));
        _mm512_mask_storeu_ps(out + i, k, e);
        sum = _mm512_mask_add_ps(sum, k, sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}
static void row_scale(float *x, size_t n, float s) {
    __m512 vs = _mm512_set1_ps(s);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = kv_mask(n - i);
        _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vs));
    }
}
#else
static float row_max(const float *x, size_t n) {
    float m = -INFINITY;
    for (size_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}
static float row_exp_sum(float *out, const float *x, size_t n, float m, float scale) {
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) {
        out[i] = expf((x[i] - m) * scale);
        sum += out[i];
    }
    return sum;
}
static void row_scale(float *x, size_t n, float s) {
    for (size_t i = 0; i < n; i++) x[i] *= s;
}
#endif

void kern_softmax_row_scaled(float *row, size_t n, size_t n_total, float scale) {
    float m = row_max(row, n);
    float sum = row_exp_sum(row, row, n, m, scale);
    row_scale(row, n, 1.0f / sum);
    if (n_total > n) memset(row + n, 0, (n_total - n) * sizeof(float));
}

void softmax_forward(float *probs, const float *logits, size_t N, size_t V) {
    if (V == 0) return;
    int nt = kern_threads_for(N * V);
    (void)nt;
    K_OMP(parallel for schedule(dynamic, kern_chunk(V)) num_threads(nt))
    for (size_t n = 0; n < N; n++) {
        const float *x = logits + n * V;
        float *p = probs + n * V;
        float m = row_max(x, V);
        float sum = row_exp_sum(p, x, V, m, 1.0f);
        row_scale(p, V, 1.0f / sum);
    }
}

void log_softmax_forward(float *out, const float *logits, size_t N, size_t V) {
    if (V == 0) return;
    int nt = kern_threads_for(N * V);
    (void)nt;
    K_OMP(parallel for schedule(dynamic, kern_chunk(V)) num_threads(nt))
    for (size_t n = 0; n < N; n++) {
        const float *x = logits + n * V;
        float *o = out + n * V;
        float m = row_max(x, V);
#if K_AVX512
        __m512 vm = _mm512_set1_ps(m), sum = _mm512_setzero_ps();
        for (size_t i = 0; i < V; i += 16) {
            __mmask16 k = kv_mask(V - i);
            __m512 e = kv_exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm));
            sum = _mm512_mask_add_ps(sum, k, sum, e);
        }
        float lse = m + logf(_mm512_reduce_add_ps(sum));
        __m512 vl = _mm512_set1_ps(lse);
        for (size_t i = 0; i < V; i += 16) {
            __mmask16 k = kv_mask(V - i);
            _mm512_mask_storeu_ps(o + i, k, _mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vl));
        }
#else
        float sum = 0.0f;
        for (size_t i = 0; i < V; i++) sum += expf(x[i] - m);
        float lse = m + logf(sum);
        for (size_t i = 0; i < V; i++) o[i] = x[i] - lse;
#endif
    }
}

/* ---------------------------------------------------------------- cross-entropy */

/* The loss total is summed per fixed block of rows (at most CE_BLOCKS blocks), each in row
 * order, then over blocks in order: the same bits whatever the thread count. */
#define CE_BLOCKS 256

double crossentropy_forward_backward(float *dlogits, float *losses, const float *logits,
                                     const int32_t *targets, size_t N, size_t V,
                                     float grad_scale, size_t *n_valid) {
    double part_sum[CE_BLOCKS];
    size_t part_cnt[CE_BLOCKS];
    size_t per = N / CE_BLOCKS + (N % CE_BLOCKS != 0), nblk = per ? (N + per - 1) / per : 0;
    int nt = kern_threads_for(N * V);
    (void)nt;
    K_OMP(parallel for schedule(dynamic, 1) num_threads(nt))
    for (size_t blk = 0; blk < nblk; blk++) {
        double s = 0.0;
        size_t cnt = 0;
        for (size_t n = blk * per; n < K_MIN(N, (blk + 1) * per); n++) {
            const float *x = logits + n * V;
            int32_t tg = targets[n];
            if (tg < 0 || (size_t)tg >= V) { /* -1: ignored (out-of-range ids likewise) */
                if (losses) losses[n] = 0.0f;
                if (dlogits) memset(dlogits + n * V, 0, V * sizeof(float));
                continue;
            }
            float xt = x[tg];
            float m = row_max(x, V);
            float sum;
            if (dlogits) {
                float *d = dlogits + n * V; /* may alias x: x[tg] and m are read already */
                sum = row_exp_sum(d, x, V, m, 1.0f);
                row_scale(d, V, grad_scale / sum);
                d[tg] -= grad_scale;
            } else {
#if K_AVX512
                __m512 vm = _mm512_set1_ps(m), vs = _mm512_setzero_ps();
                for (size_t i = 0; i < V; i += 16) {
                    __mmask16 k = kv_mask(V - i);
                    __m512 e = kv_exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm));
                    vs = _mm512_mask_add_ps(vs, k, vs, e);
                }
                sum = _mm512_reduce_add_ps(vs);
#else
                sum = 0.0f;
                for (size_t i = 0; i < V; i++) sum += expf(x[i] - m);
#endif
            }
            double loss = log((double)sum) - ((double)xt - (double)m);
            if (losses) losses[n] = (float)loss;
            s += loss;
            cnt++;
        }
        part_sum[blk] = s;
        part_cnt[blk] = cnt;
    }
    double total = 0.0;
    size_t count = 0;
    for (size_t b = 0; b < nblk; b++) {
        total += part_sum[b];
        count += part_cnt[b];
    }
    if (n_valid) *n_valid = count;
    return total;
}

/* ---------------------------------------------------------------- embedding */

void embedding_forward(float *out, const int32_t *ids, const float *wte, size_t N, size_t C) {
    int nt = kern_threads_for(N * C);
    (void)nt;
    K_OMP(parallel for schedule(dynamic, kern_chunk(C)) num_threads(nt))
    for (size_t n = 0; n < N; n++) memcpy(out + n * C, wte + (size_t)ids[n] * C, C * sizeof(float));
}

void embedding_backward(float *dwte, const float *dout, const int32_t *ids, size_t N, size_t C) {
    /* Split by column tiles: each thread owns columns of every dwte row and walks the rows of
     * dout in order, so the sum order per element is fixed whatever the thread count. */
    size_t ntile = (C + COL_TILE - 1) / COL_TILE;
    int nt = kern_threads_for(N * C);
    (void)nt;
    K_OMP(parallel for schedule(dynamic, 1) num_threads(nt))
    for (size_t tile = 0; tile < ntile; tile++) {
        size_t c0 = tile * COL_TILE, w = K_MIN(COL_TILE, C - c0);
        for (size_t n = 0; n < N; n++) {
            float *d = dwte + (size_t)ids[n] * C + c0;
            const float *g = dout + n * C + c0;
#if K_AVX512
            for (size_t i = 0; i < w; i += 16) {
                __mmask16 k = kv_mask(w - i);
                _mm512_mask_storeu_ps(d + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, d + i),
                                                              _mm512_maskz_loadu_ps(k, g + i)));
            }
#else
            for (size_t i = 0; i < w; i++) d[i] += g[i];
#endif
        }
    }
}

/* ---------------------------------------------------------------- RMSNorm */

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, size_t N, size_t C,
                     float eps) {
    int nt = kern_threads_for(N * C);
    (void)nt;
    K_OMP(parallel for schedule(dynamic, kern_chunk(C)) num_threads(nt))
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *o = out + n * C;
#if K_AVX512
        __m512 acc = _mm512_setzero_ps();
        for (size_t i = 0; i < C; i += 16) {
            __m512 v = _mm512_maskz_loadu_ps(kv_mask(C - i), x + i);
            acc = _mm512_fmadd_ps(v, v, acc);
        }
        float r = 1.0f / sqrtf(_mm512_reduce_add_ps(acc) / (float)C + eps);
        __m512 vr = _mm512_set1_ps(r);
        for (size_t i = 0; i < C; i += 16) {
            __mmask16 k = kv_mask(C - i);
            __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vr);
            _mm512_mask_storeu_ps(o + i, k, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, w + i)));
        }
#else
        float ss = 0.0f;
        for (size_t i = 0; i < C; i++) ss += x[i] * x[i];
        float r = 1.0f / sqrtf(ss / (float)C + eps);
        for (size_t i = 0; i < C; i++) o[i] = (x[i] * r) * w[i];
#endif
        rstd[n] = r;
    }
}

void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                      const float *rstd, size_t N, size_t C) {
    /* y = x * r * w with r = (mean(x^2) + eps)^(-1/2):
     *   dx = r * (w*dy) - x * r^3 / C * sum(w*dy*x),   dw += sum_n dy * x * r. */
    size_t ntile = (C + COL_TILE - 1) / COL_TILE;
    int nt = kern_threads_for(N * C);
    (void)nt;
    K_OMP(parallel num_threads(nt))
    {
        K_OMP(for schedule(dynamic, kern_chunk(C)))
        for (size_t n = 0; n < (dinp ? N : 0); n++) {
            const float *x = inp + n * C, *g = dout + n * C;
            float *dx = dinp + n * C;
            float r = rstd[n];
#if K_AVX512
            __m512 acc = _mm512_setzero_ps();
            for (size_t i = 0; i < C; i += 16) {
                __mmask16 k = kv_mask(C - i);
                __m512 wg = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, w + i), _mm512_maskz_loadu_ps(k, g + i));
                acc = _mm512_fmadd_ps(wg, _mm512_maskz_loadu_ps(k, x + i), acc);
            }
            float kk = r * r * _mm512_reduce_add_ps(acc) / (float)C;
            __m512 vr = _mm512_set1_ps(r), vk = _mm512_set1_ps(kk);
            for (size_t i = 0; i < C; i += 16) {
                __mmask16 k = kv_mask(C - i);
                __m512 wg = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, w + i), _mm512_maskz_loadu_ps(k, g + i));
                __m512 t = _mm512_fnmadd_ps(_mm512_maskz_loadu_ps(k, x + i), vk, wg);
                _mm512_mask_storeu_ps(dx + i, k, _mm512_fmadd_ps(t, vr, _mm512_maskz_loadu_ps(k, dx + i)));
            }
#else
            float dot = 0.0f;
            for (size_t i = 0; i < C; i++) dot += w[i] * g[i] * x[i];
            float kk = r * r * dot / (float)C;
            for (size_t i = 0; i < C; i++) dx[i] += r * (w[i] * g[i] - x[i] * kk);
#endif
        }
        if (dw) {
            K_OMP(for schedule(dynamic, 1))
            for (size_t tile = 0; tile < ntile; tile++) {
                size_t c0 = tile * COL_TILE, wd = K_MIN(COL_TILE, C - c0);
#if K_AVX512
                __m512 a[COL_TILE / 16];
                for (int j = 0; j < COL_TILE / 16; j++) a[j] = _mm512_setzero_ps();
                for (size_t n = 0; n < N; n++) {
                    const float *x = inp + n * C + c0, *g = dout + n * C + c0;
                    __m512 vr = _mm512_set1_ps(rstd[n]);
                    for (int j = 0; j < COL_TILE / 16; j++) {
                        __mmask16 k = kv_mask(wd > (size_t)j * 16 ? wd - (size_t)j * 16 : 0);
                        __m512 gx = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, g + j * 16), vr);
                        a[j] = _mm512_fmadd_ps(gx, _mm512_maskz_loadu_ps(k, x + j * 16), a[j]);
                    }
                }
                for (int j = 0; j < COL_TILE / 16; j++) {
                    __mmask16 k = kv_mask(wd > (size_t)j * 16 ? wd - (size_t)j * 16 : 0);
                    float *d = dw + c0 + j * 16;
                    _mm512_mask_storeu_ps(d, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, d), a[j]));
                }
#else
                float a[COL_TILE] = {0};
                for (size_t n = 0; n < N; n++) {
                    const float *x = inp + n * C + c0, *g = dout + n * C + c0;
                    float r = rstd[n];
                    for (size_t i = 0; i < wd; i++) a[i] += (g[i] * r) * x[i];
                }
                for (size_t i = 0; i < wd; i++) dw[c0 + i] += a[i];
#endif
            }
        }
    }
}

/* ---------------------------------------------------------------- RoPE */

void rope_tables(float *cos_tab, float *sin_tab, size_t max_pos, size_t hd, float base) {
    size_t half = hd / 2;
    for (size_t i = 0; i < half; i++) {
        double freq = pow((double)base, -2.0 * (double)i / (double)hd);
        for (size_t p = 0; p < max_pos; p++) {
            double a = (double)p * freq;
            cos_tab[p * half + i] = (float)cos(a);
            sin_tab[p * half + i] = (float)sin(a);
        }
    }
}

/* dir = +1 rotates by +theta (forward), -1 by -theta (backward). */
static void rope_apply(float *x, size_t N, size_t row_stride, size_t n_heads, size_t hd,
                       const int32_t *pos, const float *cos_tab, const float *sin_tab, int dir) {
    size_t half = hd / 2;
    int nt = kern_threads_for(N * n_heads * hd);
    (void)nt;
    K_OMP(parallel for schedule(dynamic, kern_chunk(n_heads * hd)) num_threads(nt))
    for (size_t n = 0; n < N; n++) {
        const float *c = cos_tab + (size_t)pos[n] * half, *s = sin_tab + (size_t)pos[n] * half;
        for (size_t h = 0; h < n_heads; h++) {
            float *v = x + n * row_stride + h * hd;
#if K_AVX512
            const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
            /* lanes whose sin term is negated: even lanes forward (x0' = x0 c - x1 s),
             * odd lanes backward (x1' = x1 c - x0 s) */
            const __mmask16 neg = dir > 0 ? (__mmask16)0x5555 : (__mmask16)0xAAAA;
            for (size_t i = 0; i < half; i += 8) {
                size_t np = K_MIN((size_t)8, half - i);
                __mmask8 k8 = (__mmask8)((1u << np) - 1u);
                __mmask16 k = kv_mask(2 * np);
                __m512 cc = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(k8, c + i)));
                __m512 ss = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(k8, s + i)));
                ss = _mm512_mask_sub_ps(ss, neg, _mm512_setzero_ps(), ss);
                __m512 xv = _mm512_maskz_loadu_ps(k, v + 2 * i);
                __m512 xs = _mm512_permute_ps(xv, 0xB1); /* swap within pairs */
                _mm512_mask_storeu_ps(v + 2 * i, k, _mm512_fmadd_ps(xv, cc, _mm512_mul_ps(xs, ss)));
            }
#else
            float sg = dir > 0 ? 1.0f : -1.0f;
            for (size_t i = 0; i < half; i++) {
                float x0 = v[2 * i], x1 = v[2 * i + 1], ci = c[i], si = sg * s[i];
                v[2 * i] = x0 * ci - x1 * si;
                v[2 * i + 1] = x0 * si + x1 * ci;
            }
#endif
        }
    }
}

void rope_forward(float *x, size_t N, size_t row_stride, size_t n_heads, size_t hd,
                  const int32_t *pos, const float *cos_tab, const float *sin_tab) {
    rope_apply(x, N, row_stride, n_heads, hd, pos, cos_tab, sin_tab, +1);
}

void rope_backward(float *dx, size_t N, size_t row_stride, size_t n_heads, size_t hd,
                   const int32_t *pos, const float *cos_tab, const float *sin_tab) {
    rope_apply(dx, N, row_stride, n_heads, hd, pos, cos_tab, sin_tab, -1);
}

/* NEOX pairs (i, i + hd/2): both halves are contiguous, so the plain loop vectorises. */
static void rope_neox_apply(float *x, size_t N, size_t row_stride, size_t n_heads, size_t hd,
                            const int32_t *pos, const float *cos_tab, const float *sin_tab,
                            float sg) {
    size_t half = hd / 2;
    int nt = kern_threads_for(N * n_heads * hd);
    (void)nt;
    K_OMP(parallel for schedule(dynamic, kern_chunk(n_heads * hd)) num_threads(nt))
    for (size_t n = 0; n < N; n++) {
        const float *c = cos_tab + (size_t)pos[n] * half, *s = sin_tab + (size_t)pos[n] * half;
        for (size_t h = 0; h < n_heads; h++) {
            float *a = x + n * row_stride + h * hd, *b = a + half;
            for (size_t i = 0; i < half; i++) {
                float x0 = a[i], x1 = b[i], si = sg * s[i];
                a[i] = x0 * c[i] - x1 * si;
                b[i] = x0 * si + x1 * c[i];
            }
        }
    }
}

void rope_neox_forward(float *x, size_t N, size_t row_stride, size_t n_heads, size_t hd,
                       const int32_t *pos, const float *cos_tab, const float *sin_tab) {
    rope_neox_apply(x, N, row_stride, n_heads, hd, pos, cos_tab, sin_tab, 1.0f);
}

void rope_neox_backward(float *dx, size_t N, size_t row_stride, size_t n_heads, size_t hd,
                        const int32_t *pos, const float *cos_tab, const float *sin_tab) {
    rope_neox_apply(dx, N, row_stride, n_heads, hd, pos, cos_tab, sin_tab, -1.0f);
}

/* ---------------------------------------------------------------- SwiGLU */

void swiglu_forward(float *out, const float *gu, size_t N, size_t F) {
    int nt = kern_threads_for(N * F * 3);
    (void)nt;
    K_OMP(parallel for schedule(dynamic, kern_chunk(3 * F)) num_threads(nt))
    for (size_t n = 0; n < N; n++) {
        const float *g = gu + n * 2 * F, *u = g + F;
        float *o = out + n * F;
#if K_AVX512
        const __m512 one = _mm512_set1_ps(1.0f);
        for (size_t i = 0; i < F; i += 16) {
            __mmask16 k = kv_mask(F - i);
            __m512 gv = _mm512_maskz_loadu_ps(k, g + i);
            __m512 sig = _mm512_div_ps(one, _mm512_add_ps(one, kv_exp(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
            _mm512_mask_storeu_ps(o + i, k, _mm512_mul_ps(_mm512_mul_ps(gv, sig), _mm512_maskz_loadu_ps(k, u + i)));
        }
#else
        for (size_t i = 0; i < F; i++) {
            float sig = 1.0f / (1.0f + expf(-g[i]));
            o[i] = (g[i] * sig) * u[i];
        }
#endif
    }
}

void swiglu_backward(float *dgu, const float *dout, const float *gu, size_t N, size_t F) {
    /* out = g*sig(g)*u:  dg = dout*u*sig*(1 + g*(1-sig)),  du = dout*g*sig */
    int nt = kern_threads_for(N * F * 5);
    (void)nt;
    K_OMP(parallel for schedule(dynamic, kern_chunk(3 * F)) num_threads(nt))
    for (size_t n = 0; n < N; n++) {
        const float *g = gu + n * 2 * F, *u = g + F, *d = dout + n * F;
        float *dg = dgu + n * 2 * F, *du = dg + F;
#if K_AVX512
        const __m512 one = _mm512_set1_ps(1.0f);
        for (size_t i = 0; i < F; i += 16) {
            __mmask16 k = kv_mask(F - i);
            __m512 gv = _mm512_maskz_loadu_ps(k, g + i), uv = _mm512_maskz_loadu_ps(k, u + i);
            __m512 dv = _mm512_maskz_loadu_ps(k, d + i);
            __m512 sig = _mm512_div_ps(one, _mm512_add_ps(one, kv_exp(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
            __m512 silu = _mm512_mul_ps(gv, sig);
            __m512 t = _mm512_fmadd_ps(gv, _mm512_sub_ps(one, sig), one); /* 1 + g(1-sig) */
            _mm512_mask_storeu_ps(dg + i, k, _mm512_mul_ps(_mm512_mul_ps(dv, uv), _mm512_mul_ps(sig, t)));
            _mm512_mask_storeu_ps(du + i, k, _mm512_mul_ps(dv, silu));
        }
#else
        for (size_t i = 0; i < F; i++) {
            float sig = 1.0f / (1.0f + expf(-g[i]));
            dg[i] = (d[i] * u[i]) * (sig * (1.0f + g[i] * (1.0f - sig)));
            du[i] = d[i] * (g[i] * sig);
        }
#endif
    }
}

/* ---------------------------------------------------------------- add */

void add_inplace(float *a, const float *b, size_t n) {
    int nt = kern_threads_for(n);
    (void)nt;
    const size_t blk = 4096;
    size_t nb = (n + blk - 1) / blk;
    K_OMP(parallel for schedule(dynamic, 4) num_threads(nt))
    for (size_t j = 0; j < nb; j++) {
        size_t i0 = j * blk, i1 = K_MIN(n, i0 + blk);
        for (size_t i = i0; i < i1; i++) a[i] += b[i];
    }
}
