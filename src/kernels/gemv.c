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

#include <stdlib.h>

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
    K_OMP(parallel num_threads(nt) reduction(| : failed))
    {
        float *buf = aligned_alloc(64, bytes);
        if (!buf) failed = 1;
        K_OMP(for schedule(static))
        for (size_t o = 0; o < OC; o++) {
            if (!buf) continue;
            quant_dequantize_row(w->type, (const uint8_t *)w->data + o * w->row_bytes, buf, C);
            for (size_t n = 0; n < N; n++) out[n * ldo + o] = dot_rows(inp + n * C, buf, C);
        }
        free(buf);
    }
    if (failed) return RT_FAIL("quant_matmul_rows: out of memory for a %zu-float row buffer", C);
    return 0;
}
