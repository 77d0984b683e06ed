/*
 * gemv.c — the linear layer for a handful of rows (decoding: one new token per sequence).
 * out (N, OC) = inp (N, C) · w (OC, C)^T with N small: every weight row is read once and
 * dotted with all N input rows, so the cost is one pass over the weights — the memory-bound
 * regime where a GEMM library's packing of the weight matrix would double the traffic.
 * Threads split the output columns; each output element is one fixed-order dot product
 * (16 lanes, then a fixed tree), so results do not depend on the thread count.
 *
 * What this is not: a general GEMV (no strides, no transposes) or a training kernel.
 */
#include "kernels.h"

#include "kinternal.h"

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
