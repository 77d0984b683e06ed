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
 * Threads: gemm() shares pieces of the product out to OpenMP threads, each piece a
 * single-threaded BLIS call (see gemm() for why BLIS does not thread the calls itself).
 * Determinism: every C element is summed in an order that depends on the shape only, never
 * on the thread count (see gemm(); the tests check it).
 *
 * What this is not: a BLAS. No other BLAS is supported; no GEMM is hand-written here.
 */
#include "kernels.h"

#include "kinternal.h"

#include "blis_wrap.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- threads */

#define KERN_MAX_THREADS 1024

/* The thread count is per thread, as OpenMP's is: two servers in one process each run an engine
 * thread with its own count, and one's setting must neither change the other's nor race with
 * its reads (a plain global here was both: TSan saw the engines' kernels_set_threads race
 * with the other engine's GEMMs). t_threads is the calling thread's (0: never set);
 * g_threads the default for threads that never set one: the constructor's, then the last
 * kernels_set_threads of any thread (atomic, so a late reader sees one whole value). */
static _Atomic int g_threads = 1;
static _Thread_local int t_threads;

static int cur_threads(void) {
    int t = t_threads;
    return t ? t : atomic_load_explicit(&g_threads, memory_order_relaxed);
}

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
 * the CPU has them and the user did not choose, and default to all online cores (or to
 * OMP_NUM_THREADS when that is set). */
__attribute__((constructor)) static void kernels_init(void) {
    if (!getenv("BLIS_ARCH_TYPE") && cpu_has_avx512()) setenv("BLIS_ARCH_TYPE", "skx", 0);
    int n = online_cores();
#ifdef _OPENMP
    if (getenv("OMP_NUM_THREADS")) { /* the usual way to ask a program for fewer threads */
        int m = omp_get_max_threads();
        if (m >= 1 && m <= KERN_MAX_THREADS) n = m;
    }
#endif
    atomic_store(&g_threads, n);
}

void kernels_set_threads(int n) {
    if (n <= 0) n = online_cores();
    if (n > KERN_MAX_THREADS) n = KERN_MAX_THREADS;
    t_threads = n;
    atomic_store(&g_threads, n);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    bli_thread_set_num_threads((dim_t)n);
}

int kernels_get_threads(void) { return cur_threads(); }

int kern_threads(void) {
#ifdef _OPENMP
    return cur_threads();
#else
    return 1;
#endif
}

int kern_threads_for(size_t work) { return work < ((size_t)1 << 15) ? 1 : kern_threads(); }

static char g_blas_info[128];
static pthread_once_t g_blas_info_once = PTHREAD_ONCE_INIT;

static void blas_info_init(void) {
    snprintf(g_blas_info, sizeof g_blas_info, "BLIS %s (%s kernels)", bli_info_get_version_str(),
             bli_arch_string(bli_arch_query_id()));
}

const char *kernels_blas_info(void) {
    pthread_once(&g_blas_info_once, blas_info_init);
    return g_blas_info;
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

#ifdef _OPENMP
/* C = beta*C + alpha*op(A)op(B) with K cut into P fixed pieces (the cut depends on K only):
 * piece 0 goes straight into C (with beta), pieces 1.. into private (M, N) buffers that are
 * then added to C in piece order. For weight gradients (long K = batch*time, small M and N):
 * no operand is packed twice, unlike cutting M or N. Returns -1 (nothing done) if the
 * buffers cannot be allocated. */
static int gemm_split_k(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
                        const float *A, size_t lda, const float *B, size_t ldb, float beta,
                        float *C, size_t ldc, int nt) {
    size_t P = K / 1024;
    if (P < 2) P = 2;
    if (P > 16) P = 16;
    size_t ks = (K + P - 1) / P;
    ks = (ks + 15) / 16 * 16;
    P = (K + ks - 1) / ks;
    float *buf = malloc((P - 1) * M * N * sizeof(float)); /* (P-1, M, N) */
    if (!buf) return -1;
    K_OMP(parallel num_threads(nt))
    {
        K_OMP(for schedule(dynamic, 1))
        for (size_t p = 0; p < P; p++) {
            size_t k0 = p * ks, kn = K_MIN(ks, K - k0);
            const float *Ap = trans_a ? A + k0 * lda : A + k0;
            const float *Bp = trans_b ? B + k0 : B + k0 * ldb;
            if (p == 0)
                gemm_impl(trans_a, trans_b, M, N, kn, alpha, Ap, lda, Bp, ldb, beta, C, ldc, 1);
            else
                gemm_impl(trans_a, trans_b, M, N, kn, alpha, Ap, lda, Bp, ldb, 0.0f,
                          buf + (p - 1) * M * N, N, 1);
        }
        K_OMP(for schedule(dynamic, kern_chunk(N * P)))
        for (size_t i = 0; i < M; i++) {
            float *c = C + i * ldc;
            for (size_t p = 1; p < P; p++) {
                const float *b = buf + ((p - 1) * M + i) * N;
                for (size_t j = 0; j < N; j++) c[j] += b[j];
            }
        }
    }
    free(buf);
    return 0;
}
#endif

/* Multithreaded GEMM: the OpenMP threads share out pieces of the product and each piece is a
 * single-threaded BLIS call. We do not let BLIS thread a call itself: its threads meet at
 * spinning barriers inside every cache block, and when another process takes one of the
 * cores the spinning thread burns the time slice its partner needs (measured: GEMMs 10-50x
 * slower on a loaded 2-core machine). Here there are one or two barriers per GEMM and the
 * pieces are dynamic, so a thread that got the CPU takes over the pieces of one that did not.
 *
 * The pieces: with long K (weight gradients, K = batch*time) K is cut (gemm_split_k); with
 * many rows (the linear layers' forward and input gradient, M = batch*time) blocks of ~1024
 * rows, at least two per thread; otherwise one block of the larger of M and N per thread.
 * Cutting M or N repacks the other operand once per block (a few percent when K is short).
 *
 * Determinism: BLIS never splits K, so cutting M or N changes no result bit; the K cut
 * depends on K alone. So results are the same for any thread count (the tests check it). */
void gemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha, const float *A,
          size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc) {
#ifdef _OPENMP
    int nt = cur_threads();
    if (K == 0 || alpha == 0.0f || (double)M * (double)N * (double)K < 4e6) {
        gemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 1);
        return;
    }
    /* The K cut is taken at every thread count (1 included) so that results do not depend on
     * it; only a failed allocation falls back to one call (documented in kernels.h). */
    if (K >= 1024 && K >= 2 * M && K >= 2 * N &&
        gemm_split_k(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nt) == 0)
        return;
    if (nt <= 1) {
        gemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 1);
        return;
    }
    int split_m = M >= N;
    size_t dim = split_m ? M : N, align = split_m ? 32 : 48; /* skx micro-tile: 32 x 12 */
    size_t nblk = split_m && M >= 2048 ? (M + 1023) / 1024 : (size_t)nt;
    if (split_m && M >= 2048 && nblk < 2 * (size_t)nt) nblk = 2 * (size_t)nt;
    size_t bs = (dim + nblk - 1) / nblk;
    bs = (bs + align - 1) / align * align;
    nblk = (dim + bs - 1) / bs;
    if (nblk < 2) {
        gemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 1);
        return;
    }
    if ((size_t)nt > nblk) nt = (int)nblk;
    K_OMP(parallel for schedule(dynamic, 1) num_threads(nt))
    for (size_t b = 0; b < nblk; b++) {
        size_t i0 = b * bs, n = K_MIN(bs, dim - i0);
        if (split_m) {
            const float *Ab = trans_a ? A + i0 : A + i0 * lda;
            gemm_impl(trans_a, trans_b, n, N, K, alpha, Ab, lda, B, ldb, beta, C + i0 * ldc, ldc, 1);
        } else {
            const float *Bb = trans_b ? B + i0 * ldb : B + i0;
            gemm_impl(trans_a, trans_b, M, n, K, alpha, A, lda, Bb, ldb, beta, C + i0, ldc, 1);
        }
    }
#else
    /* Without OpenMP in this build, BLIS (an OpenMP build itself) threads the call. */
    gemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, cur_threads());
#endif
}

void gemm_serial(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
                 const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                 size_t ldc) {
    gemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 1);
}

/* ---------------------------------------------------------------- linear layer */

void matmul_forward(float *out, const float *inp, const float *w, size_t N, size_t C, size_t OC) {
    /* out (N, OC) = inp (N, C) · w (OC, C)^T; a few rows (decoding) stream the weights once */
    if (matmul_forward_rows(out, inp, w, N, C, OC)) return;
    gemm(0, 1, N, OC, C, 1.0f, inp, C, w, C, 0.0f, out, OC);
}

void matmul_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                     size_t N, size_t C, size_t OC) {
    /* dinp (N, C) += dout (N, OC) · w (OC, C) */
    if (dinp) gemm(0, 0, N, C, OC, 1.0f, dout, OC, w, C, 1.0f, dinp, C);
    /* dw (OC, C) += dout^T (OC, N) · inp (N, C) */
    if (dw) gemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
}
