/*
 * gemm.c — the thread setting shared by all kernels, GEMM through BLIS's typed API with row
 * and column strides (transposed operands are described by their strides, never copied), and
 * the linear layer (matmul_forward / matmul_backward) on top of it.
 *
 * BLIS sub-configuration: Debian's BLIS 0.9 does not recognise recent AMD cores (Zen 4/5)
 * and falls back to its "generic" reference kernels, about 5x slower than its AVX-512 "skx"
 * kernels on the same machine (measured 50 vs 280 GFLOP/s on 2 cores). A constructor here
 * therefore sets BLIS_ARCH_TYPE=skx before BLIS initialises, when the CPU has AVX-512
 * F/DQ/BW/VL and the user has not set BLIS_ARCH_TYPE (set it to override, e.g. "generic").
 *
 * Determinism: BLIS splits GEMM across threads over the M and N loops only, never over K, so
 * every C element is summed in the same order run to run.
 *
 * What this is not: a BLAS. No other BLAS is supported; no GEMM is hand-written here.
 */
#include "kernels.h"

#include "kinternal.h"

#include "blis_wrap.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- threads */

#define KERN_MAX_THREADS 1024

static int g_threads = 1; /* set by the constructor (all online cores) or kernels_set_threads */

static int online_cores(void) {
#ifdef _OPENMP
    int n = omp_get_num_procs();
#else
    long n = sysconf(_SC_NPROCESSORS_ONLN);
#endif
    if (n < 1) n = 1;
    if (n > KERN_MAX_THREADS) n = KERN_MAX_THREADS;
    return (int)n;
}

static int cpu_has_avx512(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

/* Runs before main (single-threaded, before any BLIS call): pick BLIS's AVX-512 kernels where
 * the CPU has them and the user did not choose, and default to all online cores. */
__attribute__((constructor)) static void kernels_init(void) {
    if (!getenv("BLIS_ARCH_TYPE") && cpu_has_avx512()) setenv("BLIS_ARCH_TYPE", "skx", 0);
    g_threads = online_cores();
}

void kernels_set_threads(int n) {
    if (n <= 0) n = online_cores();
    if (n > KERN_MAX_THREADS) n = KERN_MAX_THREADS;
    g_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    bli_thread_set_num_threads((dim_t)n);
}

int kernels_get_threads(void) { return g_threads; }

int kern_threads(void) {
#ifdef _OPENMP
    return g_threads;
#else
    return 1;
#endif
}

int kern_threads_for(size_t work) { return work < ((size_t)1 << 15) ? 1 : kern_threads(); }

const char *kernels_blas_info(void) {
    static char info[128];
    if (!info[0]) {
        char tmp[128];
        snprintf(tmp, sizeof tmp, "BLIS %s (%s kernels)", bli_info_get_version_str(),
                 bli_arch_string(bli_arch_query_id()));
        memcpy(info, tmp, sizeof info);
    }
    return info;
}

/* ---------------------------------------------------------------- GEMM */

static void gemm_impl(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
                      const float *A, size_t lda, const float *B, size_t ldb, float beta,
                      float *C, size_t ldc, int nthreads) {
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0.0f) {
        /* C = beta*C, with beta == 0 overwriting (NaN in C does not survive), as BLAS does. */
        for (size_t i = 0; i < M; i++) {
            float *c = C + i * ldc;
            if (beta == 0.0f)
                memset(c, 0, N * sizeof(float));
            else if (beta != 1.0f)
                for (size_t j = 0; j < N; j++) c[j] *= beta;
        }
        return;
    }
    /* op(A) (M,K): element (i,k) at A[i*lda + k], or A[k*lda + i] when transposed. */
    inc_t rsa = trans_a ? 1 : (inc_t)lda, csa = trans_a ? (inc_t)lda : 1;
    inc_t rsb = trans_b ? 1 : (inc_t)ldb, csb = trans_b ? (inc_t)ldb : 1;
    rntm_t rntm;
    bli_rntm_init(&rntm);
    bli_rntm_set_num_threads((dim_t)nthreads, &rntm);
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, (dim_t)M, (dim_t)N, (dim_t)K, &alpha,
                 (float *)A, rsa, csa, (float *)B, rsb, csb, &beta, C, (inc_t)ldc, 1, NULL,
                 &rntm);
}

void gemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha, const float *A,
          size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    gemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, g_threads);
}

void gemm_serial(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
                 const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                 size_t ldc) {
    gemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 1);
}

/* ---------------------------------------------------------------- linear layer */

void matmul_forward(float *out, const float *inp, const float *w, size_t N, size_t C, size_t OC) {
    /* out (N, OC) = inp (N, C) · w (OC, C)^T */
    gemm(0, 1, N, OC, C, 1.0f, inp, C, w, C, 0.0f, out, OC);
}

void matmul_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                     size_t N, size_t C, size_t OC) {
    /* dinp (N, C) += dout (N, OC) · w (OC, C) */
    if (dinp) gemm(0, 0, N, C, OC, 1.0f, dout, OC, w, C, 1.0f, dinp, C);
    /* dw (OC, C) += dout^T (OC, N) · inp (N, C) */
    if (dw) gemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
}
