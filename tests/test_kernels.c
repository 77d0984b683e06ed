/* test_kernels.c — the kernels room against independent double-precision references written
 * here (plain loops, no code shared with src/kernels): every forward against its reference,
 * every backward against central finite differences of L = sum(dout ∘ out) computed on the
 * double reference (and, for attention, against an analytic double backward too), GEMM in all
 * transpose combinations with padded leading dimensions, gemm_serial inside a parallel
 * region, decode against the forward's last row, and bitwise determinism.
 * Set KERNELS_TEST_VERBOSE=1 to print the error magnitudes of every comparison. */
#include "base/base.h"
#include "kernels/kernels.h"
#include "testlib.h"

#include <pthread.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---------------------------------------------------------------- helpers */

static rt_rng g_rng;
static int g_verbose = -1;

/* Each case reseeds, so that any case runs alone (tests/test_kernels NAME) with its own data. */
static void reseed(unsigned seed) { rt_rng_seed(&g_rng, 1234 + seed); }

static int verbose(void) {
    if (g_verbose < 0) {
        const char *v = getenv("KERNELS_TEST_VERBOSE");
        g_verbose = v && *v && *v != '0';
    }
    return g_verbose;
}

static float *fbuf(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) {
        perror("malloc");
        exit(2);
    }
    return p;
}
static double *dbuf(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    if (!p) {
        perror("calloc");
        exit(2);
    }
    return p;
}
static void fill(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * rt_rng_float(&g_rng);
}
static double *to_d(const float *x, size_t n) {
    double *d = dbuf(n);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static int same(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

/* Compare got (float) with ref (double): |got - ref| <= atol + rtol*max|ref| for every element
 * (the tolerance scales with the array's magnitude). Records one CHECK; prints the worst. */
static double compare(const char *what, const float *got, const double *ref, size_t n, double atol,
                      double rtol) {
    double scale = 0, worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]);
        if (!(e <= worst)) {
            worst = e;
            wi = i;
        }
    }
    double tol = atol + rtol * scale;
    CHECK_MSG(worst <= tol, "%s: max error %.3g at [%zu] (got %.9g, want %.9g), tolerance %.3g", what,
              worst, wi, n ? got[wi] : 0.0, n ? ref[wi] : 0.0, tol);
    if (verbose()) fprintf(stderr, "    %-40s max|err| %.2e  max|ref| %.2e\n", what, worst, scale);
    return worst;
}

/* Central finite differences: grad[i] = dL/dx[i] for the listed indices (all when idx NULL). */
typedef double (*loss_fn)(const double *x, void *ctx);
static void fd_grad(double *grad, double *x, size_t n, const size_t *idx, size_t nidx, loss_fn f,
                    void *ctx, double h) {
    size_t m = idx ? nidx : n;
    for (size_t j = 0; j < m; j++) {
        size_t i = idx ? idx[j] : j;
        double x0 = x[i];
        x[i] = x0 + h;
        double lp = f(x, ctx);
        x[i] = x0 - h;
        double lm = f(x, ctx);
        x[i] = x0;
        grad[i] = (lp - lm) / (2 * h);
    }
}

/* Compare a float gradient with the FD gradient on the listed indices only. */
static void compare_idx(const char *what, const float *got, const double *ref, const size_t *idx,
                        size_t nidx, size_t n, double atol, double rtol) {
    float *g = fbuf(nidx ? nidx : n);
    double *r = dbuf(nidx ? nidx : n);
    size_t m = idx ? nidx : n;
    for (size_t j = 0; j < m; j++) {
        size_t i = idx ? idx[j] : j;
        g[j] = got[i];
        r[j] = ref[i];
    }
    compare(what, g, r, m, atol, rtol);
    free(g);
    free(r);
}

/* ---------------------------------------------------------------- GEMM */

static void ref_gemm(int ta, int tb, size_t M, size_t N, size_t K, double alpha, const float *A,
                     size_t lda, const float *B, size_t ldb, double beta, const float *C0,
                     size_t ldc, double *out /* (M, N) dense */) {
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            double s = 0;
            for (size_t k = 0; k < K; k++) {
                double a = ta ? A[k * lda + i] : A[i * lda + k];
                double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
            }
            out[i * N + j] = alpha * s + (beta == 0 ? 0 : beta * C0[i * ldc + j]);
        }
}

static void test_gemm(void) {
    reseed(0);
    size_t shapes[][3] = {{37, 29, 53}, {1, 1, 1}, {1, 17, 5}, {16, 1, 33}, {130, 70, 260}};
    for (size_t si = 0; si < RT_ARRAY_LEN(shapes); si++) {
        size_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int bi = 0; bi < 2; bi++) {
                    size_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 7;
                    size_t arows = ta ? K : M, brows = tb ? N : K;
                    float *A = fbuf(arows * lda), *B = fbuf(brows * ldb), *C = fbuf(M * ldc);
                    fill(A, arows * lda, -1, 1);
                    fill(B, brows * ldb, -1, 1);
                    fill(C, M * ldc, -1, 1);
                    float beta = bi ? 0.3f : 0.0f;
                    if (!bi)
                        for (size_t i = 0; i < M * ldc; i++) C[i] = NAN; /* beta 0 overwrites */
                    double *ref = dbuf(M * N);
                    ref_gemm(ta, tb, M, N, K, 0.7, A, lda, B, ldb, beta, C, ldc, ref);
                    float *pad = fbuf(M * ldc);
                    memcpy(pad, C, M * ldc * sizeof(float));
                    gemm(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, beta, C, ldc);
                    float *got = fbuf(M * N);
                    int pad_ok = 1;
                    for (size_t i = 0; i < M; i++) {
                        memcpy(got + i * N, C + i * ldc, N * sizeof(float));
                        for (size_t j = N; j < ldc; j++)
                            if (memcmp(&C[i * ldc + j], &pad[i * ldc + j], sizeof(float))) pad_ok = 0;
                    }
                    char what[96];
                    snprintf(what, sizeof what, "gemm %zux%zux%zu ta=%d tb=%d beta=%g", M, N, K, ta,
                             tb, beta);
                    compare(what, got, ref, M * N, 1e-6, 2e-6 * sqrt((double)K));
                    CHECK_MSG(pad_ok, "%s wrote outside its columns", what);
                    free(A), free(B), free(C), free(ref), free(pad), free(got);
                }
    }
    /* K = 0: C = beta*C */
    float c[4] = {1, 2, 3, 4}, a[1] = {0};
    gemm(0, 0, 2, 2, 0, 1.0f, a, 1, a, 2, 0.5f, c, 2);
    CHECK(c[0] == 0.5f && c[3] == 2.0f);
}

static void test_gemm_serial_parallel(void) {
    reseed(1);
    enum { NT = 4, M = 33, N = 45, K = 27 };
    float *A = fbuf(NT * M * K), *B = fbuf(K * N), *C = fbuf(NT * M * N);
    fill(A, NT * M * K, -1, 1);
    fill(B, K * N, -1, 1);
    int fails = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(2)
#endif
    for (int t = 0; t < NT; t++)
        gemm_serial(0, 0, M, N, K, 1.0f, A + (size_t)t * M * K, K, B, N, 0.0f, C + (size_t)t * M * N, N);
    for (int t = 0; t < NT; t++) {
        double *ref = dbuf(M * N);
        ref_gemm(0, 0, M, N, K, 1.0, A + (size_t)t * M * K, K, B, N, 0.0, NULL, N, ref);
        for (size_t i = 0; i < (size_t)M * N; i++)
            if (fabs(C[(size_t)t * M * N + i] - ref[i]) > 1e-5) fails++;
        free(ref);
    }
    CHECK_MSG(fails == 0, "%d elements wrong from gemm_serial inside a parallel region", fails);
    free(A), free(B), free(C);
}

/* Multithreaded gemm with many rows (blocks of rows across threads) and with few (BLIS's own
 * threads): correct, and the same bits at 1, 2 and 3 threads. */
static void test_gemm_threads(void) {
    reseed(2);
    int saved = kernels_get_threads();
    size_t shapes[][3] = {{2100, 70, 90}, {70, 2100, 90}, {130, 96, 1500}};
    for (size_t si = 0; si < RT_ARRAY_LEN(shapes); si++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                size_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
                size_t lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 2, ldc = N + 3;
                float *A = fbuf((ta ? K : M) * lda), *B = fbuf((tb ? N : K) * ldb);
                fill(A, (ta ? K : M) * lda, -1, 1), fill(B, (tb ? N : K) * ldb, -1, 1);
                float *Cs[3];
                int th[3] = {1, 2, 3};
                for (int k = 0; k < 3; k++) {
                    kernels_set_threads(th[k]);
                    Cs[k] = fbuf(M * ldc);
                    for (size_t i = 0; i < M * ldc; i++) Cs[k][i] = 1.0f;
                    gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.5f, Cs[k], ldc);
                }
                CHECK_MSG(same(Cs[0], Cs[1], M * ldc) && same(Cs[0], Cs[2], M * ldc),
                          "gemm %zux%zux%zu ta=%d tb=%d differs across thread counts", M, N, K, ta, tb);
                double *ref = dbuf(M * N);
                float *c1 = fbuf(M * ldc), *got = fbuf(M * N);
                for (size_t i = 0; i < M * ldc; i++) c1[i] = 1.0f;
                ref_gemm(ta, tb, M, N, K, 1.0, A, lda, B, ldb, 0.5, c1, ldc, ref);
                for (size_t i = 0; i < M; i++) memcpy(got + i * N, Cs[1] + i * ldc, N * sizeof(float));
                char what[96];
                snprintf(what, sizeof what, "gemm 2 threads %zux%zux%zu ta=%d tb=%d", M, N, K, ta, tb);
                compare(what, got, ref, M * N, 1e-5, 2e-6 * sqrt((double)K));
                for (int k = 0; k < 3; k++) free(Cs[k]);
                free(A), free(B), free(ref), free(c1), free(got);
            }
    kernels_set_threads(saved);
}

/* ---------------------------------------------------------------- matmul */

typedef struct {
    size_t N, C, OC;
    const double *inp, *w, *dout;
    int wrt; /* 0: inp is x, 1: w is x */
} mm_ctx;
static double mm_loss(const double *x, void *vctx) {
    mm_ctx *c = vctx;
    const double *inp = c->wrt == 0 ? x : c->inp, *w = c->wrt == 1 ? x : c->w;
    double L = 0;
    for (size_t n = 0; n < c->N; n++)
        for (size_t o = 0; o < c->OC; o++) {
            double s = 0;
            for (size_t k = 0; k < c->C; k++) s += inp[n * c->C + k] * w[o * c->C + k];
            L += c->dout[n * c->OC + o] * s;
        }
    return L;
}

/* Decode-shaped linear layers (N <= 8 rows take the weight-streaming path): against a double
 * reference for every N up to 9 and widths that are / are not multiples of 16, and bitwise
 * identical across thread counts. */
static void test_matmul_few_rows(void) {
    reseed(31);
    size_t Cs[] = {5, 16, 37, 256}, OCs[] = {3, 64, 129};
    for (size_t ci = 0; ci < 4; ci++)
        for (size_t oi = 0; oi < 3; oi++)
            for (size_t N = 1; N <= 9; N++) {
                size_t C = Cs[ci], OC = OCs[oi];
                float *inp = fbuf(N * C), *w = fbuf(OC * C), *out = fbuf(N * OC), *out1 = fbuf(N * OC);
                fill(inp, N * C, -1, 1), fill(w, OC * C, -1, 1);
                matmul_forward(out, inp, w, N, C, OC);
                double *ref = dbuf(N * OC);
                for (size_t n = 0; n < N; n++)
                    for (size_t o = 0; o < OC; o++) {
                        double acc = 0;
                        for (size_t k = 0; k < C; k++) acc += (double)inp[n * C + k] * w[o * C + k];
                        ref[n * OC + o] = acc;
                    }
                compare("matmul_forward (few rows)", out, ref, N * OC, 1e-5, 1e-5);
                int th = kernels_get_threads();
                kernels_set_threads(1);
                matmul_forward(out1, inp, w, N, C, OC);
                kernels_set_threads(th);
                CHECK(memcmp(out, out1, N * OC * sizeof(float)) == 0);
                free(inp), free(w), free(out), free(out1), free(ref);
            }
}

static void test_matmul(void) {
    reseed(3);
    size_t N = 13, C = 19, OC = 23;
    float *inp = fbuf(N * C), *w = fbuf(OC * C), *out = fbuf(N * OC), *dout = fbuf(N * OC);
    float *dinp = fbuf(N * C), *dw = fbuf(OC * C);
    fill(inp, N * C, -1, 1), fill(w, OC * C, -1, 1), fill(dout, N * OC, -1, 1);
    matmul_forward(out, inp, w, N, C, OC);
    double *ref = dbuf(N * OC);
    for (size_t n = 0; n < N; n++)
        for (size_t o = 0; o < OC; o++) {
            double s = 0;
            for (size_t k = 0; k < C; k++) s += (double)inp[n * C + k] * w[o * C + k];
            ref[n * OC + o] = s;
        }
    compare("matmul_forward", out, ref, N * OC, 1e-6, 1e-6);
    /* backward accumulates: start from 0.25 and subtract it */
    for (size_t i = 0; i < N * C; i++) dinp[i] = 0.25f;
    for (size_t i = 0; i < OC * C; i++) dw[i] = 0.25f;
    matmul_backward(dinp, dw, dout, inp, w, N, C, OC);
    for (size_t i = 0; i < N * C; i++) dinp[i] -= 0.25f;
    for (size_t i = 0; i < OC * C; i++) dw[i] -= 0.25f;
    double *di = to_d(inp, N * C), *dwd = to_d(w, OC * C), *dd = to_d(dout, N * OC);
    double *gi = dbuf(N * C), *gw = dbuf(OC * C);
    mm_ctx ctx = {N, C, OC, di, dwd, dd, 0};
    fd_grad(gi, di, N * C, NULL, 0, mm_loss, &ctx, 1e-4);
    ctx.wrt = 1;
    fd_grad(gw, dwd, OC * C, NULL, 0, mm_loss, &ctx, 1e-4);
    compare("matmul_backward dinp vs FD", dinp, gi, N * C, 1e-5, 1e-5);
    compare("matmul_backward dw vs FD", dw, gw, OC * C, 1e-5, 1e-5);
    /* NULL skips */
    float *dw2 = fbuf(OC * C);
    memcpy(dw2, dw, OC * C * sizeof(float));
    matmul_backward(NULL, dw2, dout, inp, w, N, C, OC);
    int ok = 1;
    for (size_t i = 0; i < OC * C; i++) ok &= fabsf(dw2[i] - 2 * dw[i]) <= 1e-4f;
    CHECK(ok);
    matmul_backward(dinp, NULL, dout, inp, w, N, C, OC);
    free(inp), free(w), free(out), free(dout), free(dinp), free(dw), free(dw2), free(ref);
    free(di), free(dwd), free(dd), free(gi), free(gw);
}

/* ---------------------------------------------------------------- embedding */

typedef struct {
    size_t N, C;
    const int32_t *ids;
    const double *dout;
} emb_ctx;
static double emb_loss(const double *wte, void *vctx) {
    emb_ctx *c = vctx;
    double L = 0;
    for (size_t n = 0; n < c->N; n++)
        for (size_t k = 0; k < c->C; k++) L += c->dout[n * c->C + k] * wte[(size_t)c->ids[n] * c->C + k];
    return L;
}

static void test_embedding(void) {
    reseed(4);
    size_t N = 37, C = 83, V = 11;
    int32_t ids[37];
    for (size_t n = 0; n < N; n++) ids[n] = (int32_t)rt_rng_below(&g_rng, V);
    float *wte = fbuf(V * C), *out = fbuf(N * C), *dout = fbuf(N * C), *dwte = fbuf(V * C);
    fill(wte, V * C, -1, 1), fill(dout, N * C, -1, 1);
    embedding_forward(out, ids, wte, N, C);
    int ok = 1;
    for (size_t n = 0; n < N; n++) ok &= memcmp(out + n * C, wte + (size_t)ids[n] * C, C * 4) == 0;
    CHECK(ok);
    for (size_t i = 0; i < V * C; i++) dwte[i] = 1.0f;
    embedding_backward(dwte, dout, ids, N, C);
    double *ref = dbuf(V * C);
    for (size_t i = 0; i < V * C; i++) ref[i] = 1.0;
    for (size_t n = 0; n < N; n++)
        for (size_t c = 0; c < C; c++) ref[(size_t)ids[n] * C + c] += dout[n * C + c];
    compare("embedding_backward", dwte, ref, V * C, 1e-6, 1e-6);
    /* and by finite differences of L = sum(dout * wte[ids]) w.r.t. wte */
    double *wd = to_d(wte, V * C), *dd = to_d(dout, N * C), *g = dbuf(V * C);
    emb_ctx ctx = {N, C, ids, dd};
    fd_grad(g, wd, V * C, NULL, 0, emb_loss, &ctx, 1e-3);
    for (size_t i = 0; i < V * C; i++) dwte[i] -= 1.0f;
    compare("embedding_backward vs FD", dwte, g, V * C, 1e-6, 1e-6);
    free(wte), free(out), free(dout), free(dwte), free(ref), free(wd), free(dd), free(g);
}

/* ---------------------------------------------------------------- RMSNorm */

typedef struct {
    size_t N, C;
    double eps;
    const double *x, *w, *dout;
    int wrt;
} rms_ctx;
static void ref_rmsnorm(double *out, const double *x, const double *w, size_t N, size_t C, double eps) {
    for (size_t n = 0; n < N; n++) {
        double ss = 0;
        for (size_t c = 0; c < C; c++) ss += x[n * C + c] * x[n * C + c];
        double r = 1.0 / sqrt(ss / (double)C + eps);
        for (size_t c = 0; c < C; c++) out[n * C + c] = x[n * C + c] * r * w[c];
    }
}
static double rms_loss(const double *v, void *vctx) {
    rms_ctx *c = vctx;
    double *out = dbuf(c->N * c->C);
    ref_rmsnorm(out, c->wrt == 0 ? v : c->x, c->wrt == 1 ? v : c->w, c->N, c->C, c->eps);
    double L = 0;
    for (size_t i = 0; i < c->N * c->C; i++) L += c->dout[i] * out[i];
    free(out);
    return L;
}

static void test_rmsnorm_case(size_t N, size_t C) {
    float eps = 1e-5f;
    float *x = fbuf(N * C), *w = fbuf(C), *out = fbuf(N * C), *rstd = fbuf(N), *dout = fbuf(N * C);
    float *dx = fbuf(N * C), *dw = fbuf(C);
    fill(x, N * C, -2, 2), fill(w, C, 0.5f, 1.5f), fill(dout, N * C, -1, 1);
    rmsnorm_forward(out, rstd, x, w, N, C, eps);
    double *xd = to_d(x, N * C), *wd = to_d(w, C), *dd = to_d(dout, N * C), *ref = dbuf(N * C);
    ref_rmsnorm(ref, xd, wd, N, C, eps);
    char what[80];
    snprintf(what, sizeof what, "rmsnorm_forward N=%zu C=%zu", N, C);
    compare(what, out, ref, N * C, 1e-6, 2e-6);
    for (size_t i = 0; i < N * C; i++) dx[i] = -0.5f;
    for (size_t i = 0; i < C; i++) dw[i] = -0.5f;
    rmsnorm_backward(dx, dw, dout, x, w, rstd, N, C);
    for (size_t i = 0; i < N * C; i++) dx[i] += 0.5f;
    for (size_t i = 0; i < C; i++) dw[i] += 0.5f;
    double *gx = dbuf(N * C), *gw = dbuf(C);
    rms_ctx ctx = {N, C, eps, xd, wd, dd, 0};
    fd_grad(gx, xd, N * C, NULL, 0, rms_loss, &ctx, 1e-5);
    ctx.wrt = 1;
    fd_grad(gw, wd, C, NULL, 0, rms_loss, &ctx, 1e-5);
    /* NULL skips: dw alone adds the same dw again; dinp alone the same dinp */
    float *dw2 = fbuf(C), *dx2 = fbuf(N * C);
    memset(dw2, 0, C * sizeof(float));
    memset(dx2, 0, N * C * sizeof(float));
    rmsnorm_backward(NULL, dw2, dout, x, w, rstd, N, C);
    rmsnorm_backward(dx2, NULL, dout, x, w, rstd, N, C);
    int same_dw = 1, same_dx = 1;
    for (size_t i = 0; i < C; i++) same_dw &= fabsf(dw2[i] - dw[i]) <= 1e-6f * (1 + fabsf(dw[i]));
    for (size_t i = 0; i < N * C; i++) same_dx &= fabsf(dx2[i] - dx[i]) <= 1e-6f * (1 + fabsf(dx[i]));
    CHECK(same_dw && same_dx);
    free(dw2), free(dx2);
    snprintf(what, sizeof what, "rmsnorm_backward dinp vs FD C=%zu", C);
    compare(what, dx, gx, N * C, 1e-5, 2e-5);
    snprintf(what, sizeof what, "rmsnorm_backward dw vs FD C=%zu", C);
    compare(what, dw, gw, C, 1e-5, 2e-5);
    free(x), free(w), free(out), free(rstd), free(dout), free(dx), free(dw);
    free(xd), free(wd), free(dd), free(ref), free(gx), free(gw);
}
static void test_rmsnorm(void) {
    reseed(5);
    test_rmsnorm_case(13, 37);
    test_rmsnorm_case(5, 256);
    test_rmsnorm_case(3, 1);
    test_rmsnorm_case(17, 130);
}

/* ---------------------------------------------------------------- RoPE */

typedef struct {
    size_t N, stride, nh, hd;
    const int32_t *pos;
    double base;
    const double *dout;
} rope_ctx;
static void ref_rope(double *x, size_t N, size_t stride, size_t nh, size_t hd, const int32_t *pos,
                     double base) {
    for (size_t n = 0; n < N; n++)
        for (size_t h = 0; h < nh; h++)
            for (size_t i = 0; i < hd / 2; i++) {
                double th = pos[n] * pow(base, -2.0 * (double)i / (double)hd);
                double *v = x + n * stride + h * hd + 2 * i;
                double a = v[0], b = v[1];
                v[0] = a * cos(th) - b * sin(th);
                v[1] = a * sin(th) + b * cos(th);
            }
}
static double rope_loss(const double *x, void *vctx) {
    rope_ctx *c = vctx;
    size_t n = c->N * c->stride;
    double *y = dbuf(n);
    memcpy(y, x, n * sizeof(double));
    ref_rope(y, c->N, c->stride, c->nh, c->hd, c->pos, c->base);
    double L = 0;
    for (size_t i = 0; i < n; i++) L += c->dout[i] * y[i];
    free(y);
    return L;
}

static void test_rope(void) {
    reseed(6);
    float bases[] = {10000.0f, 500000.0f, 100.0f};
    size_t hds[] = {32, 6, 18, 64};
    for (size_t bi = 0; bi < RT_ARRAY_LEN(bases); bi++)
        for (size_t hi = 0; hi < RT_ARRAY_LEN(hds); hi++) {
            size_t hd = hds[hi], nh = 3, N = 9, stride = nh * hd + 5, maxp = 300, half = hd / 2;
            double base = bases[bi];
            float *ct = fbuf(maxp * half), *st = fbuf(maxp * half);
            rope_tables(ct, st, maxp, hd, bases[bi]);
            double terr = 0;
            for (size_t p = 0; p < maxp; p++)
                for (size_t i = 0; i < half; i++) {
                    double th = (double)p * pow(base, -2.0 * (double)i / (double)hd);
                    terr = fmax(terr, fabs(ct[p * half + i] - cos(th)));
                    terr = fmax(terr, fabs(st[p * half + i] - sin(th)));
                }
            CHECK_MSG(terr < 1e-6, "rope_tables error %.3g (base %g hd %zu)", terr, base, hd);
            int32_t pos[9];
            for (size_t n = 0; n < N; n++) pos[n] = (int32_t)rt_rng_below(&g_rng, maxp);
            float *x = fbuf(N * stride), *dx = fbuf(N * stride);
            fill(x, N * stride, -1, 1);
            fill(dx, N * stride, -1, 1);
            double *xd = to_d(x, N * stride), *dd = to_d(dx, N * stride);
            rope_forward(x, N, stride, nh, hd, pos, ct, st);
            double *ref = dbuf(N * stride);
            memcpy(ref, xd, N * stride * sizeof(double));
            ref_rope(ref, N, stride, nh, hd, pos, base);
            char what[96];
            snprintf(what, sizeof what, "rope_forward base=%g hd=%zu", base, hd);
            compare(what, x, ref, N * stride, 1e-6, 2e-6); /* untouched padding compares too */
            /* backward: dx <- R^T dx; FD of L = sum(dout * rope(x)) w.r.t. x */
            rope_backward(dx, N, stride, nh, hd, pos, ct, st);
            double *g = dbuf(N * stride);
            rope_ctx ctx = {N, stride, nh, hd, pos, base, dd};
            /* untouched padding columns: rope leaves them, so their gradient is dout itself */
            fd_grad(g, xd, N * stride, NULL, 0, rope_loss, &ctx, 1e-5);
            snprintf(what, sizeof what, "rope_backward vs FD base=%g hd=%zu", base, hd);
            compare(what, dx, g, N * stride, 1e-6, 2e-6);
            free(ct), free(st), free(x), free(dx), free(xd), free(dd), free(ref), free(g);
        }
}

/* ---------------------------------------------------------------- attention */

typedef struct {
    size_t B, T, NH, NKV, hd;
    const double *dout;
} att_ctx;

/* out (B,T,NH*hd), att (B,NH,T,T) from qkv (B,T,(NH+2NKV)*hd), all double. */
static void ref_attention(double *out, double *att, const double *qkv, size_t B, size_t T,
                          size_t NH, size_t NKV, size_t hd) {
    size_t R = (NH + 2 * NKV) * hd;
    double sc = 1.0 / sqrt((double)hd);
    double *srow = dbuf(T);
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < NH; h++) {
            size_t g = h / (NH / NKV);
            for (size_t t = 0; t < T; t++) {
                const double *q = qkv + (b * T + t) * R + h * hd;
                double mx = -INFINITY;
                for (size_t s = 0; s <= t; s++) {
                    const double *k = qkv + (b * T + s) * R + (NH + g) * hd;
                    double d = 0;
                    for (size_t i = 0; i < hd; i++) d += q[i] * k[i];
                    srow[s] = d * sc;
                    mx = fmax(mx, srow[s]);
                }
                double z = 0;
                for (size_t s = 0; s <= t; s++) z += exp(srow[s] - mx);
                double *a = att ? att + ((b * NH + h) * T + t) * T : NULL;
                double *o = out + (b * T + t) * NH * hd + h * hd;
                for (size_t i = 0; i < hd; i++) o[i] = 0;
                for (size_t s = 0; s < T; s++) {
                    double p = s <= t ? exp(srow[s] - mx) / z : 0.0;
                    if (a) a[s] = p;
                    if (s > t) continue;
                    const double *v = qkv + (b * T + s) * R + (NH + NKV + g) * hd;
                    for (size_t i = 0; i < hd; i++) o[i] += p * v[i];
                }
            }
        }
    free(srow);
}

/* Analytic double backward, for the full-gradient comparison (FD checks a subset and this). */
static void ref_attention_backward(double *dqkv, const double *dout, const double *qkv, size_t B,
                                   size_t T, size_t NH, size_t NKV, size_t hd) {
    size_t R = (NH + 2 * NKV) * hd, OC = NH * hd;
    double sc = 1.0 / sqrt((double)hd);
    double *out = dbuf(B * T * OC), *att = dbuf(B * NH * T * T), *dp = dbuf(T);
    ref_attention(out, att, qkv, B, T, NH, NKV, hd);
    memset(dqkv, 0, B * T * R * sizeof(double));
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < NH; h++) {
            size_t g = h / (NH / NKV);
            for (size_t t = 0; t < T; t++) {
                const double *P = att + ((b * NH + h) * T + t) * T, *dO = dout + (b * T + t) * OC + h * hd;
                double rs = 0;
                for (size_t s = 0; s <= t; s++) {
                    const double *v = qkv + (b * T + s) * R + (NH + NKV + g) * hd;
                    double d = 0;
                    for (size_t i = 0; i < hd; i++) d += dO[i] * v[i];
                    dp[s] = d;
                    rs += P[s] * d;
                }
                for (size_t s = 0; s <= t; s++) {
                    double ds = P[s] * (dp[s] - rs) * sc;
                    double *dq = dqkv + (b * T + t) * R + h * hd;
                    double *dk = dqkv + (b * T + s) * R + (NH + g) * hd;
                    double *dv = dqkv + (b * T + s) * R + (NH + NKV + g) * hd;
                    const double *q = qkv + (b * T + t) * R + h * hd;
                    const double *k = qkv + (b * T + s) * R + (NH + g) * hd;
                    for (size_t i = 0; i < hd; i++) {
                        dq[i] += ds * k[i];
                        dk[i] += ds * q[i];
                        dv[i] += P[s] * dO[i];
                    }
                }
            }
        }
    free(out), free(att), free(dp);
}

static double att_loss(const double *qkv, void *vctx) {
    att_ctx *c = vctx;
    size_t n = c->B * c->T * c->NH * c->hd;
    double *out = dbuf(n);
    ref_attention(out, NULL, qkv, c->B, c->T, c->NH, c->NKV, c->hd);
    double L = 0;
    for (size_t i = 0; i < n; i++) L += c->dout[i] * out[i];
    free(out);
    return L;
}

static void test_attention_case(size_t B, size_t T, size_t NH, size_t NKV, size_t hd, size_t nfd) {
    size_t R = (NH + 2 * NKV) * hd, OC = NH * hd, nq = B * T * R;
    float *qkv = fbuf(nq), *out = fbuf(B * T * OC), *att = fbuf(B * NH * T * T);
    float *dout = fbuf(B * T * OC), *dqkv = fbuf(nq), *scratch = fbuf(B * NH * T * T);
    fill(qkv, nq, -1.5f, 1.5f);
    fill(dout, B * T * OC, -1, 1);
    for (size_t i = 0; i < B * NH * T * T; i++) att[i] = NAN, scratch[i] = NAN;
    for (size_t i = 0; i < nq; i++) dqkv[i] = NAN; /* overwritten entirely */
    attention_forward(out, att, qkv, B, T, NH, NKV, hd);
    double *qd = to_d(qkv, nq), *dd = to_d(dout, B * T * OC);
    double *ro = dbuf(B * T * OC), *ra = dbuf(B * NH * T * T);
    ref_attention(ro, ra, qd, B, T, NH, NKV, hd);
    char what[128];
    snprintf(what, sizeof what, "attention_forward out B%zu T%zu NH%zu NKV%zu hd%zu", B, T, NH, NKV, hd);
    compare(what, out, ro, B * T * OC, 1e-6, 2e-6);
    snprintf(what, sizeof what, "attention_forward att B%zu T%zu NH%zu NKV%zu hd%zu", B, T, NH, NKV, hd);
    compare(what, att, ra, B * NH * T * T, 1e-7, 2e-6);
    attention_backward(dqkv, scratch, dout, att, qkv, B, T, NH, NKV, hd);
    double *ga = dbuf(nq), *gf = dbuf(nq);
    ref_attention_backward(ga, dd, qd, B, T, NH, NKV, hd);
    snprintf(what, sizeof what, "attention_backward vs analytic T%zu NKV%zu hd%zu", T, NKV, hd);
    compare(what, dqkv, ga, nq, 1e-6, 1e-5);
    /* finite differences on a random subset of qkv (all of it when small) */
    size_t *idx = NULL, nidx = 0;
    if (nfd < nq) {
        idx = malloc(nfd * sizeof(size_t));
        for (size_t i = 0; i < nfd; i++) idx[i] = (size_t)rt_rng_below(&g_rng, nq);
        nidx = nfd;
    }
    att_ctx ctx = {B, T, NH, NKV, hd, dd};
    fd_grad(gf, qd, nq, idx, nidx, att_loss, &ctx, 1e-5);
    snprintf(what, sizeof what, "attention_backward vs FD T%zu NKV%zu hd%zu", T, NKV, hd);
    compare_idx(what, dqkv, gf, idx, nidx, nq, 1e-6, 1e-5);
    /* decode: last query row of each batch against the cache of that batch; bit-identical */
    float *kc = fbuf(T * NKV * hd), *vc = fbuf(T * NKV * hd), *q = fbuf(OC), *o = fbuf(OC);
    float *sc = fbuf(T);
    int exact = 1;
    for (size_t b = 0; b < B; b++) {
        for (size_t t = 0; t < T; t++) {
            memcpy(kc + t * NKV * hd, qkv + (b * T + t) * R + NH * hd, NKV * hd * 4);
            memcpy(vc + t * NKV * hd, qkv + (b * T + t) * R + (NH + NKV) * hd, NKV * hd * 4);
        }
        memcpy(q, qkv + (b * T + T - 1) * R, OC * 4);
        attention_decode(o, q, kc, vc, T, NH, NKV, hd, sc);
        const float *last = out + (b * T + T - 1) * OC;
        for (size_t i = 0; i < OC; i++) {
            if (o[i] != last[i]) exact = 0;
            CHECK_NEAR(o[i], last[i], 1e-6, 1e-5);
        }
    }
    CHECK_MSG(exact, "attention_decode differs in bits from the forward's last row (hd %zu)", hd);
    free(kc), free(vc), free(q), free(o), free(sc), free(idx);
    free(qkv), free(out), free(att), free(dout), free(dqkv), free(scratch);
    free(qd), free(dd), free(ro), free(ra), free(ga), free(gf);
}

static void test_attention(void) {
    reseed(7);
    test_attention_case(2, 7, 4, 2, 8, (size_t)-1); /* GQA 2:1, hd < 16, full FD */
    test_attention_case(1, 19, 4, 1, 32, 400);      /* MQA, training head size */
    test_attention_case(2, 1, 4, 2, 32, (size_t)-1); /* T = 1 */
    test_attention_case(1, 70, 2, 2, 48, 200);      /* MHA, hd 3 chunks, T past a 64-tile */
    test_attention_case(1, 33, 4, 2, 64, 200);      /* hd 4 chunks */
    test_attention_case(1, 12, 2, 1, 72, 200);      /* hd > 64: plain path */
    test_attention_case(2, 9, 3, 3, 6, (size_t)-1); /* tiny odd head size */
    test_attention_case(1, 133, 2, 1, 32, 100);     /* several 64-column tiles, ragged end */
}

/* ---------------------------------------------------------------- SwiGLU */

typedef struct {
    size_t N, F;
    const double *dout;
} swi_ctx;
static double swi_loss(const double *gu, void *vctx) {
    swi_ctx *c = vctx;
    double L = 0;
    for (size_t n = 0; n < c->N; n++)
        for (size_t f = 0; f < c->F; f++) {
            double g = gu[n * 2 * c->F + f], u = gu[n * 2 * c->F + c->F + f];
            L += c->dout[n * c->F + f] * (g / (1 + exp(-g))) * u;
        }
    return L;
}

static void test_swiglu(void) {
    reseed(8);
    size_t N = 7, F = 45;
    float *gu = fbuf(N * 2 * F), *out = fbuf(N * F), *dout = fbuf(N * F), *dgu = fbuf(N * 2 * F);
    fill(gu, N * 2 * F, -6, 6), fill(dout, N * F, -1, 1);
    gu[0] = -90.0f, gu[1] = 90.0f; /* saturated sigmoid */
    swiglu_forward(out, gu, N, F);
    double *ref = dbuf(N * F);
    for (size_t n = 0; n < N; n++)
        for (size_t f = 0; f < F; f++) {
            double g = gu[n * 2 * F + f], u = gu[n * 2 * F + F + f];
            ref[n * F + f] = g / (1 + exp(-g)) * u;
        }
    compare("swiglu_forward", out, ref, N * F, 1e-6, 2e-6);
    for (size_t i = 0; i < N * 2 * F; i++) dgu[i] = NAN;
    swiglu_backward(dgu, dout, gu, N, F);
    double *gd = to_d(gu, N * 2 * F), *dd = to_d(dout, N * F), *g = dbuf(N * 2 * F);
    swi_ctx ctx = {N, F, dd};
    fd_grad(g, gd, N * 2 * F, NULL, 0, swi_loss, &ctx, 1e-5);
    compare("swiglu_backward vs FD", dgu, g, N * 2 * F, 1e-6, 1e-5);
    free(gu), free(out), free(dout), free(dgu), free(ref), free(gd), free(dd), free(g);
}

/* ---------------------------------------------------------------- add, exp, softmax */

static void test_add_exp(void) {
    reseed(9);
    size_t n = 100003;
    float *a = fbuf(n), *b = fbuf(n), *a0 = fbuf(n);
    fill(a, n, -1, 1), fill(b, n, -1, 1);
    memcpy(a0, a, n * 4);
    add_inplace(a, b, n);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= a[i] == a0[i] + b[i];
    CHECK(ok);
    /* exp: ulp error over [-87, 88] against double exp */
    size_t m = 200001;
    float *x = fbuf(m), *y = fbuf(m);
    for (size_t i = 0; i < m; i++) x[i] = -87.0f + 175.0f * (float)i / (float)(m - 1);
    kernels_exp(y, x, m);
    double worst = 0;
    for (size_t i = 0; i < m; i++) {
        double r = exp((double)x[i]);
        double ulp = nextafterf((float)r, INFINITY) - (float)r;
        worst = fmax(worst, fabs(y[i] - r) / ulp);
    }
    CHECK_MSG(worst <= 2.0, "kernels_exp max error %.2f ulp", worst);
    if (verbose()) fprintf(stderr, "    kernels_exp max error %.2f ulp\n", worst);
    float sp[5] = {-INFINITY, INFINITY, 0.0f, -200.0f, 200.0f}, so[5];
    kernels_exp(so, sp, 5);
    CHECK(so[0] == 0.0f && isinf(so[1]) && so[2] == 1.0f && so[3] == 0.0f && isinf(so[4]));
    float nanin = NAN, nanout = 0;
    kernels_exp(&nanout, &nanin, 1);
    CHECK(isnan(nanout));
    free(a), free(b), free(a0), free(x), free(y);
}

static void test_softmax(void) {
    reseed(10);
    size_t N = 6, V = 37;
    float *x = fbuf(N * V), *p = fbuf(N * V), *lp = fbuf(N * V);
    fill(x, N * V, -8, 8);
    x[3] = -INFINITY; /* a banned token */
    softmax_forward(p, x, N, V);
    log_softmax_forward(lp, x, N, V);
    double *rp = dbuf(N * V), *rl = dbuf(N * V);
    for (size_t n = 0; n < N; n++) {
        double mx = -INFINITY, z = 0;
        for (size_t v = 0; v < V; v++) mx = fmax(mx, x[n * V + v]);
        for (size_t v = 0; v < V; v++) z += exp(x[n * V + v] - mx);
        for (size_t v = 0; v < V; v++) {
            rp[n * V + v] = exp(x[n * V + v] - mx) / z;
            rl[n * V + v] = x[n * V + v] - mx - log(z);
        }
    }
    compare("softmax_forward", p, rp, N * V, 1e-7, 2e-6);
    CHECK(p[3] == 0.0f);
    CHECK(isinf(lp[3]) && lp[3] < 0);
    rl[3] = 0, lp[3] = 0;
    compare("log_softmax_forward", lp, rl, N * V, 1e-5, 1e-6);
    /* in place */
    float *y = fbuf(N * V);
    memcpy(y, x, N * V * 4);
    softmax_forward(y, y, N, V);
    CHECK(memcmp(y, p, N * V * 4) == 0);
    memcpy(y, x, N * V * 4);
    log_softmax_forward(y, y, N, V);
    y[3] = 0;
    CHECK(memcmp(y, lp, N * V * 4) == 0);
    free(x), free(p), free(lp), free(rp), free(rl), free(y);
}

/* ---------------------------------------------------------------- cross-entropy */

typedef struct {
    size_t N, V;
    const int32_t *tg;
    double scale;
} ce_ctx;
static double ce_loss(const double *x, void *vctx) {
    ce_ctx *c = vctx;
    double L = 0;
    for (size_t n = 0; n < c->N; n++) {
        if (c->tg[n] < 0) continue;
        const double *r = x + n * c->V;
        double mx = -INFINITY, z = 0;
        for (size_t v = 0; v < c->V; v++) mx = fmax(mx, r[v]);
        for (size_t v = 0; v < c->V; v++) z += exp(r[v] - mx);
        L += (mx + log(z) - r[c->tg[n]]) * c->scale;
    }
    return L;
}

static void test_crossentropy(void) {
    reseed(11);
    size_t N = 11, V = 53;
    int32_t tg[11];
    for (size_t n = 0; n < N; n++) tg[n] = (int32_t)rt_rng_below(&g_rng, V);
    tg[2] = -1, tg[7] = -1;
    float *x = fbuf(N * V), *d = fbuf(N * V), *loss = fbuf(N);
    fill(x, N * V, -5, 5);
    size_t nv = 0;
    float gs = 1.0f / 9.0f;
    double total = crossentropy_forward_backward(d, loss, x, tg, N, V, gs, &nv);
    CHECK(nv == 9);
    double *xd = to_d(x, N * V), *g = dbuf(N * V), *rl = dbuf(N);
    ce_ctx ctx = {N, V, tg, 1.0};
    double rt = ce_loss(xd, &ctx);
    CHECK_NEAR(total, rt, 1e-5, 1e-6);
    for (size_t n = 0; n < N; n++) {
        ce_ctx one = {1, V, tg + n, 1.0};
        rl[n] = ce_loss(xd + n * V, &one);
    }
    compare("crossentropy losses", loss, rl, N, 1e-6, 1e-6);
    ctx.scale = gs;
    fd_grad(g, xd, N * V, NULL, 0, ce_loss, &ctx, 1e-5);
    compare("crossentropy dlogits vs FD", d, g, N * V, 1e-7, 1e-5);
    int zero = 1;
    for (size_t v = 0; v < V; v++) zero &= d[2 * V + v] == 0.0f && d[7 * V + v] == 0.0f;
    CHECK(zero && loss[2] == 0.0f && loss[7] == 0.0f);
    /* aliasing dlogits = logits, no losses, no dlogits */
    float *y = fbuf(N * V);
    memcpy(y, x, N * V * 4);
    size_t nv2 = 0;
    double t2 = crossentropy_forward_backward(y, NULL, y, tg, N, V, gs, &nv2);
    CHECK(t2 == total && nv2 == 9 && memcmp(y, d, N * V * 4) == 0);
    double t3 = crossentropy_forward_backward(NULL, NULL, x, tg, N, V, gs, NULL);
    CHECK_NEAR(t3, total, 1e-6, 1e-7);
    free(x), free(d), free(loss), free(xd), free(g), free(rl), free(y);
}

/* ---------------------------------------------------------------- determinism */

/* Every kernel twice on the same inputs at 2 threads (bitwise), and the ones documented as
 * thread-count independent at 1 and 3 threads too. Sizes are large enough to engage the threads. */
static void test_determinism(void) {
    reseed(12);
    int saved = kernels_get_threads();
    size_t N = 512, C = 256, OC = 384, F = 352, V = 512, B = 2, T = 64, NH = 8, NKV = 4, hd = 32;
    size_t R = (NH + 2 * NKV) * hd;
    float *x = fbuf(N * C), *w = fbuf(OC * C), *dout = fbuf(N * OC), *gu = fbuf(N * 2 * F);
    float *qkv = fbuf(B * T * R), *ao = fbuf(B * T * NH * hd), *logits = fbuf(N * V);
    fill(x, N * C, -1, 1), fill(w, OC * C, -1, 1), fill(dout, N * OC, -1, 1);
    fill(gu, N * 2 * F, -3, 3), fill(qkv, B * T * R, -1, 1), fill(ao, B * T * NH * hd, -1, 1);
    fill(logits, N * V, -4, 4);
    int32_t *ids = malloc(N * sizeof(int32_t)), *tg = malloc(N * sizeof(int32_t));
    for (size_t n = 0; n < N; n++) ids[n] = (int32_t)rt_rng_below(&g_rng, 50), tg[n] = (int32_t)rt_rng_below(&g_rng, V);
    tg[5] = -1;
    float *ct = fbuf(T * hd / 2), *st = fbuf(T * hd / 2);
    rope_tables(ct, st, T, hd, 10000.0f);
    int32_t pos[64 * 2];
    for (size_t i = 0; i < B * T; i++) pos[i] = (int32_t)(i % T);
    size_t big = N * OC + OC * C + N * C + (N * C + N + N * C + C) + (N * F + N * 2 * F) +
                 (N * C + 50 * C) + (B * T * R + B * NH * T * T + B * T * NH * hd + B * T * R) +
                 (B * NH * T * T + N * V + N * V + N);
    float *r[4];
    for (int k = 0; k < 4; k++) r[k] = fbuf(big);
    double loss[4];
    int threads[4] = {2, 2, 1, 3};
    for (int k = 0; k < 4; k++) {
        kernels_set_threads(threads[k]);
        float *o = r[k];
        memset(o, 0, big * sizeof(float));
        float *mo = o, *dwm = mo + N * OC, *dim = dwm + OC * C;
        matmul_forward(mo, x, w, N, C, OC);
        matmul_backward(dim, dwm, dout, x, w, N, C, OC);
        float *rn = dim + N * C, *rs = rn + N * C, *dx = rs + N, *dw = dx + N * C;
        rmsnorm_forward(rn, rs, x, w, N, C, 1e-5f);
        rmsnorm_backward(dx, dw, x, x, w, rs, N, C);
        float *sw = dw + C, *dsw = sw + N * F;
        swiglu_forward(sw, gu, N, F);
        swiglu_backward(dsw, sw, gu, N, F);
        float *e = dsw + N * 2 * F, *de = e + N * C;
        embedding_forward(e, ids, x, N, C);
        embedding_backward(de, x, ids, N, C);
        float *q = de + 50 * C;
        memcpy(q, qkv, B * T * R * 4);
        rope_forward(q, B * T, R, NH + NKV, hd, pos, ct, st);
        rope_backward(q, B * T, R, NH, hd, pos, ct, st);
        float *at = q + B * T * R, *out = at + B * NH * T * T, *dq = out + B * T * NH * hd;
        attention_forward(out, at, qkv, B, T, NH, NKV, hd);
        float *scr = dq + B * T * R;
        attention_backward(dq, scr, ao, at, qkv, B, T, NH, NKV, hd);
        float *sm = scr + B * NH * T * T, *dl = sm + N * V, *ls = dl + N * V;
        softmax_forward(sm, logits, N, V);
        loss[k] = crossentropy_forward_backward(dl, ls, logits, tg, N, V, 0.01f, NULL);
        CHECK(ls + N == o + big);
    }
    CHECK_MSG(same(r[0], r[1], big) && loss[0] == loss[1], "two runs at 2 threads differ");
    /* 1, 2 and 3 threads: every kernel is documented thread-count independent */
    CHECK_MSG(same(r[0], r[2], big) && loss[0] == loss[2], "1 and 2 threads differ");
    CHECK_MSG(same(r[0], r[3], big) && loss[0] == loss[3], "3 and 2 threads differ");
    for (int k = 0; k < 4; k++) free(r[k]);
    free(x), free(w), free(dout), free(gu), free(qkv), free(ao), free(logits), free(ids), free(tg);
    free(ct), free(st);
    kernels_set_threads(saved);
}

static void test_threads(void) {
    reseed(13);
    int saved = kernels_get_threads();
    kernels_set_threads(3);
    CHECK(kernels_get_threads() == 3);
    kernels_set_threads(0);
    CHECK(kernels_get_threads() >= 1);
    kernels_set_threads(saved);
    const char *info = kernels_blas_info();
    CHECK(info && strstr(info, "BLIS"));
    if (verbose()) fprintf(stderr, "    %s, %d threads\n", info, kernels_get_threads());
}

/* Two engines in one process (two servers in a test): each sets its own count on its own
 * thread; the second's setting must not change what the first reads (a plain global did, and
 * TSan saw the race). Steps run in turn (a barrier between them), so the check is exact. */
typedef struct {
    pthread_barrier_t *bar;
    int mine, seen_before, seen_after;
} thr_arg;

static void *two_engines_thread(void *p) {
    thr_arg *a = p;
    pthread_barrier_wait(a->bar); /* step 1: the first thread sets its count */
    if (a->mine == 3) kernels_set_threads(3);
    pthread_barrier_wait(a->bar); /* step 2: the second sets its own */
    if (a->mine == 1) kernels_set_threads(1);
    pthread_barrier_wait(a->bar); /* step 3: each reads */
    a->seen_after = kernels_get_threads();
    return NULL;
}

static void test_threads_per_thread(void) {
    pthread_barrier_t bar;
    CHECK(pthread_barrier_init(&bar, NULL, 2) == 0);
    thr_arg a = {&bar, 3, 0, 0}, b = {&bar, 1, 0, 0};
    pthread_t ta, tb;
    CHECK(pthread_create(&ta, NULL, two_engines_thread, &a) == 0);
    CHECK(pthread_create(&tb, NULL, two_engines_thread, &b) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&bar);
    CHECK(a.seen_after == 3); /* was 1: the second engine's setting */
    CHECK(b.seen_after == 1);
}

TEST_MAIN("kernels", TEST_CASE(test_threads), TEST_CASE(test_threads_per_thread), TEST_CASE(test_gemm),
          TEST_CASE(test_gemm_serial_parallel), TEST_CASE(test_gemm_threads), TEST_CASE(test_matmul),
          TEST_CASE(test_matmul_few_rows), TEST_CASE(test_embedding),
          TEST_CASE(test_rmsnorm), TEST_CASE(test_rope), TEST_CASE(test_attention),
          TEST_CASE(test_swiglu), TEST_CASE(test_add_exp), TEST_CASE(test_softmax),
          TEST_CASE(test_crossentropy), TEST_CASE(test_determinism))
