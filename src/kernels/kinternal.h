/*
 * kinternal.h — private helpers shared by the kernel files (not part of the interface; only
 * the .c files of src/kernels include it): the OpenMP pragma wrapper that vanishes without OpenMP, the
 * thread count the kernels use, and the AVX-512 vector exp / softmax-row helpers.
 *
 * What this is not: a public header. Model code includes kernels.h only.
 */
#ifndef RETORT_KINTERNAL_H
#define RETORT_KINTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef _OPENMP
#include <omp.h>
#define K_PRAGMA_(x) _Pragma(#x)
#define K_OMP(...) K_PRAGMA_(omp __VA_ARGS__)
#else
#define K_OMP(...)
#endif

#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define K_AVX512 1
#include <immintrin.h>
#else
#define K_AVX512 0
#endif

#define K_MIN(a, b) ((a) < (b) ? (a) : (b))

/* matmul_forward for N <= 8 rows (gemv.c): returns 1 if it handled the call, 0 otherwise. */
int matmul_forward_rows(float *out, const float *inp, const float *w, size_t N, size_t C, size_t OC);

/* Threads for the OpenMP loops of the kernels (1 without OpenMP). */
int kern_threads(void);
/* Threads for a loop that touches about `work` floats: 1 when the job is too small to repay
 * waking the thread team, kern_threads() otherwise. */
int kern_threads_for(size_t work);

/* Rows per dynamically scheduled chunk for rows of `row_floats` floats (about 32 KiB of work per
 * chunk). Dynamic scheduling lets a thread that got the CPU take over the rows of one that was
 * preempted; every row is computed the same way whichever thread runs it. */
static inline int kern_chunk(size_t row_floats) {
    size_t c = 8192 / (row_floats ? row_floats : 1);
    return c == 0 ? 1 : c > 4096 ? 4096 : (int)c;
}

/* Softmax of scale*row[0..n) in place, then zeroes row[n..n_total). Shared by the attention
 * forward and decode so that both produce bit-identical probabilities. n >= 1. */
void kern_softmax_row_scaled(float *row, size_t n, size_t n_total, float scale);

#if K_AVX512
/* exp(x) for 16 lanes: Cody–Waite reduction, Cephes degree-5 polynomial, scalef to rebuild
 * (about 1 ulp over the float range; -inf -> 0, +inf -> inf, NaN -> NaN). */
static inline __m512 kv_exp(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-104.0f), hi = _mm512_set1_ps(88.8f);
    x = _mm512_min_ps(hi, _mm512_max_ps(lo, x)); /* NaN passes through (second operand) */
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 y = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    y = _mm512_add_ps(y, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, n);
}

/* Lane mask for the first k (0..16) lanes. */
static inline __mmask16 kv_mask(size_t k) {
    return k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << k) - 1u);
}
#endif

#endif /* RETORT_KINTERNAL_H */
