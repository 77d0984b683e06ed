/*
 * kernels_bench.c — times every kernel of the kernels room at the shapes of the reference
 * training config (dim 256, 6 layers, 8 heads / 4 kv heads of 32, ffn 704, vocab 2048,
 * T 256, B 16: N = 4096 rows), prints GFLOP/s or GB/s per kernel, then runs the kernel
 * sequence of one whole training step (forward + backward, 6 layers, per-layer activations
 * kept as a trainer keeps them) and reports its time and the share of each kernel.
 *
 * What this is not: the model. The model glue (parameter slicing, optimizer, data loading)
 * is excluded; the trainer's own benchmark compares a full step with PyTorch.
 *
 * Build and run: bench/kernels_bench.sh [threads]   (after `make`)
 * Options: -t THREADS, -B batch, -q (quick: fewer repetitions).
 */
#include "base/base.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

static size_t L = 6, C = 256, NH = 8, NKV = 4, HD = 32, F = 704, V = 2048, T = 256, B = 16;
static double min_time = 0.4;

static float *falloc(size_t n, rt_rng *r) {
    float *p = rt_alloc_aligned(n * sizeof(float), "bench buffer");
    if (!p) {
        fprintf(stderr, "%s\n", rt_errmsg());
        exit(1);
    }
    if (r)
        for (size_t i = 0; i < n; i++) p[i] = (rt_rng_float(r) * 2.0f - 1.0f) * 0.5f;
    return p;
}

/* CPU seconds of the whole process (all threads): on a loaded machine, at 1 thread, close to
 * what the wall time would be on an idle one. */
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Runs `code` until min_time has passed (at least 3, at most 200 times); prints the median
 * and best wall times and the best CPU time of one run, with GFLOP/s (flops > 0) or GB/s
 * (bytes) from the best wall time. On a machine shared with other work, the CPU time at one
 * thread is the better guide to what an idle machine would do. */
#define BENCH(name, flops, bytes, code)                                                       \
    do {                                                                                      \
        double ts_[200], cbest_ = 1e9;                                                        \
        int n_ = 0;                                                                           \
        double t0_ = rt_now();                                                                \
        do {                                                                                  \
            double a_ = rt_now(), c_ = cpu_now();                                             \
            code;                                                                             \
            ts_[n_++] = rt_now() - a_;                                                        \
            c_ = cpu_now() - c_;                                                              \
            if (c_ < cbest_) cbest_ = c_;                                                     \
        } while (n_ < 200 && (n_ < 3 || rt_now() - t0_ < min_time));                          \
        qsort(ts_, (size_t)n_, sizeof(double), cmp_double);                                   \
        report(name, ts_[n_ / 2], ts_[0], cbest_, flops, bytes);                              \
    } while (0)

static void report(const char *name, double med, double best, double cpu, double flops,
                   double bytes) {
    if (flops > 0)
        printf("  %-34s %9.3f ms  best %8.3f  cpu %8.3f  %7.1f GFLOP/s\n", name, med * 1e3,
               best * 1e3, cpu * 1e3, flops / best / 1e9);
    else
        printf("  %-34s %9.3f ms  best %8.3f  cpu %8.3f  %7.1f GB/s\n", name, med * 1e3,
               best * 1e3, cpu * 1e3, bytes / best / 1e9);
}

/* The 1-minute load average, to print beside timings taken on a shared machine. */
static const char *load_avg(void) {
    static char buf[32] = "?";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%31s", buf) != 1) snprintf(buf, sizeof buf, "?");
        fclose(f);
    }
    return buf;
}

/* ---------------------------------------------------------------- one training step */

typedef struct {
    float *ln1, *rstd1, *qkv, *att, *atty, *res1, *ln2, *rstd2, *gu, *sw, *res2;
} layer_acts;

enum { K_RMS_F, K_MM_F, K_ROPE_F, K_ATT_F, K_ADD, K_SWI_F, K_EMB_F, K_CE, K_MM_B, K_SWI_B,
       K_RMS_B, K_ATT_B, K_ROPE_B, K_EMB_B, K_COUNT };
static const char *k_names[K_COUNT] = {"rmsnorm fwd", "matmul fwd", "rope fwd", "attention fwd",
                                       "add", "swiglu fwd", "embedding fwd", "cross-entropy",
                                       "matmul bwd", "swiglu bwd", "rmsnorm bwd",
                                       "attention bwd", "rope bwd", "embedding bwd"};
static double k_time[K_COUNT];
#define TIMED(k, code)                     \
    do {                                   \
        double a_ = rt_now();              \
        code;                              \
        k_time[k] += rt_now() - a_;        \
    } while (0)

int main(int argc, char **argv) {
    int threads = 0, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-B") && i + 1 < argc) B = (size_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "-q")) quick = 1;
        else {
            fprintf(stderr, "usage: %s [-t threads] [-B batch] [-q]\n", argv[0]);
            return 2;
        }
    }
    if (quick) min_time = 0.1;
    kernels_set_threads(threads);
    size_t N = B * T, R = (NH + 2 * NKV) * HD, OC = NH * HD;
    printf("kernels_bench: %s, %d threads; N=%zu (B=%zu T=%zu) C=%zu L=%zu NH=%zu NKV=%zu hd=%zu "
           "F=%zu V=%zu; load average %s\n",
           kernels_blas_info(), kernels_get_threads(), N, B, T, C, L, NH, NKV, HD, F, V, load_avg());

    rt_rng rng;
    rt_rng_seed(&rng, 42);
    /* parameters of one layer are enough for per-kernel timing; the step uses 6 sets */
    float *x = falloc(N * C, &rng), *w_rms = falloc(C, &rng), *rstd = falloc(N, NULL);
    float *out = falloc(N * C, NULL), *dx = falloc(N * C, &rng), *dw_rms = falloc(C, NULL);
    float *wqkv = falloc(R * C, &rng), *qkv = falloc(N * R, &rng), *dqkv = falloc(N * R, NULL);
    float *wo = falloc(C * OC, &rng), *wgu = falloc(2 * F * C, &rng), *wd = falloc(C * F, &rng);
    float *gu = falloc(N * 2 * F, &rng), *dgu = falloc(N * 2 * F, NULL), *sw = falloc(N * F, &rng);
    float *dsw = falloc(N * F, &rng), *dwqkv = falloc(R * C, NULL), *dwgu = falloc(2 * F * C, NULL);
    float *dwd = falloc(C * F, NULL), *wte = falloc(V * C, &rng), *dwte = falloc(V * C, NULL);
    float *logits = falloc(N * V, &rng), *dlogits = falloc(N * V, NULL), *losses = falloc(N, NULL);
    float *att = falloc(B * NH * T * T, NULL), *scratch = falloc(B * NH * T * T, NULL);
    float *atty = falloc(N * OC, NULL), *datty = falloc(N * OC, &rng), *tmp_sw = falloc(N * F, NULL);
    float *cos_tab = falloc(T * HD / 2, NULL), *sin_tab = falloc(T * HD / 2, NULL);
    int32_t *ids = malloc(N * sizeof(int32_t)), *tg = malloc(N * sizeof(int32_t)), *pos = malloc(N * sizeof(int32_t));
    for (size_t n = 0; n < N; n++) {
        ids[n] = (int32_t)rt_rng_below(&rng, V);
        tg[n] = (int32_t)rt_rng_below(&rng, V);
        pos[n] = (int32_t)(n % T);
    }
    rope_tables(cos_tab, sin_tab, T, HD, 10000.0f);
    double f4 = sizeof(float);
    double att_pairs = (double)B * NH * (double)T * (T + 1) / 2; /* causal (q, k) pairs */

    printf("per kernel: median wall, best wall, best CPU time (all threads) of repeated runs\n");
    BENCH("matmul fwd qkv   4096x256 -> 512", 2.0 * N * C * R, 0, matmul_forward(qkv, x, wqkv, N, C, R));
    BENCH("matmul fwd attn  4096x256 -> 256", 2.0 * N * OC * C, 0, matmul_forward(out, atty, wo, N, OC, C));
    BENCH("matmul fwd ffn   4096x256 -> 1408", 2.0 * N * C * 2 * F, 0, matmul_forward(gu, x, wgu, N, C, 2 * F));
    BENCH("matmul fwd down  4096x704 -> 256", 2.0 * N * F * C, 0, matmul_forward(out, sw, wd, N, F, C));
    BENCH("matmul fwd head  4096x256 -> 2048", 2.0 * N * C * V, 0, matmul_forward(logits, x, wte, N, C, V));
    BENCH("matmul bwd qkv", 4.0 * N * C * R, 0, matmul_backward(dx, dwqkv, dqkv, x, wqkv, N, C, R));
    BENCH("matmul bwd ffn", 4.0 * N * C * 2 * F, 0, matmul_backward(dx, dwgu, dgu, x, wgu, N, C, 2 * F));
    BENCH("matmul bwd down", 4.0 * N * F * C, 0, matmul_backward(dsw, dwd, dx, sw, wd, N, F, C));
    BENCH("matmul bwd head", 4.0 * N * C * V, 0, matmul_backward(dx, dwte, dlogits, x, wte, N, C, V));
    BENCH("attention fwd (causal flops)", 4.0 * att_pairs * HD, 0,
          attention_forward(atty, att, qkv, B, T, NH, NKV, HD));
    BENCH("attention bwd (causal flops)", 8.0 * att_pairs * HD, 0,
          attention_backward(dqkv, scratch, datty, att, qkv, B, T, NH, NKV, HD));
    BENCH("rmsnorm fwd", 0, 2.0 * N * C * f4, rmsnorm_forward(out, rstd, x, w_rms, N, C, 1e-5f));
    BENCH("rmsnorm bwd", 0, 5.0 * N * C * f4, rmsnorm_backward(dx, dw_rms, out, x, w_rms, rstd, N, C));
    BENCH("rope fwd (q and k)", 0, 2.0 * N * (NH + NKV) * HD * f4,
          rope_forward(qkv, N, R, NH + NKV, HD, pos, cos_tab, sin_tab));
    BENCH("rope bwd (q and k)", 0, 2.0 * N * (NH + NKV) * HD * f4,
          rope_backward(dqkv, N, R, NH + NKV, HD, pos, cos_tab, sin_tab));
    BENCH("swiglu fwd", 0, 3.0 * N * F * f4, swiglu_forward(sw, gu, N, F));
    BENCH("swiglu bwd", 0, 5.0 * N * F * f4, swiglu_backward(dgu, dsw, gu, N, F));
    BENCH("add_inplace (N*C)", 0, 3.0 * N * C * f4, add_inplace(out, x, N * C));
    BENCH("embedding fwd", 0, 2.0 * N * C * f4, embedding_forward(out, ids, wte, N, C));
    BENCH("embedding bwd", 0, 3.0 * N * C * f4, embedding_backward(dwte, dx, ids, N, C));
    BENCH("softmax fwd (N x V)", 0, 2.0 * N * V * f4, softmax_forward(dlogits, logits, N, V));
    BENCH("cross-entropy fwd+bwd (N x V)", 0, 2.0 * N * V * f4,
          crossentropy_forward_backward(dlogits, losses, logits, tg, N, V, 1.0f / (float)N, NULL));
    {
        float *kc = falloc(T * NKV * HD, &rng), *vc = falloc(T * NKV * HD, &rng);
        float *q = falloc(OC, &rng), *o = falloc(OC, NULL), *sc = falloc(T, NULL);
        BENCH("attention decode (len 256, 1 layer)", 4.0 * NH * T * HD, 0,
              attention_decode(o, q, kc, vc, T, NH, NKV, HD, sc));
        rt_free_aligned(kc), rt_free_aligned(vc), rt_free_aligned(q), rt_free_aligned(o), rt_free_aligned(sc);
    }

    /* ------------------------------------------------ one whole step, kernels only */
    layer_acts *la = calloc(L, sizeof(layer_acts));
    float **wl = calloc(L * 4, sizeof(float *)), **dwl = calloc(L * 4, sizeof(float *));
    for (size_t l = 0; l < L; l++) {
        la[l].ln1 = falloc(N * C, NULL), la[l].rstd1 = falloc(N, NULL), la[l].qkv = falloc(N * R, NULL);
        la[l].att = falloc(B * NH * T * T, NULL), la[l].atty = falloc(N * OC, NULL);
        la[l].res1 = falloc(N * C, NULL), la[l].ln2 = falloc(N * C, NULL), la[l].rstd2 = falloc(N, NULL);
        la[l].gu = falloc(N * 2 * F, NULL), la[l].sw = falloc(N * F, NULL), la[l].res2 = falloc(N * C, NULL);
        wl[4 * l] = falloc(R * C, &rng), wl[4 * l + 1] = falloc(C * OC, &rng);
        wl[4 * l + 2] = falloc(2 * F * C, &rng), wl[4 * l + 3] = falloc(C * F, &rng);
        for (int j = 0; j < 4; j++) dwl[4 * l + j] = falloc(j == 0 ? R * C : j == 1 ? C * OC : j == 2 ? 2 * F * C : C * F, NULL);
        for (size_t i = 0; i < R * C; i++) wl[4 * l][i] *= 0.1f;
        for (size_t i = 0; i < 2 * F * C; i++) wl[4 * l + 2][i] *= 0.1f;
    }
    float *resid0 = falloc(N * C, NULL), *lnf = falloc(N * C, NULL), *rstdf = falloc(N, NULL);
    float *dres = falloc(N * C, NULL), *dln = falloc(N * C, NULL), *tmp = falloc(N * C, NULL);
    int steps = quick ? 2 : 4;
    double best_step = 1e9, best_cpu = 1e9;
    for (int s = 0; s <= steps; s++) {
        memset(k_time, 0, sizeof k_time);
        double t0 = rt_now(), c0 = cpu_now();
        TIMED(K_EMB_F, embedding_forward(resid0, ids, wte, N, C));
        const float *res = resid0;
        for (size_t l = 0; l < L; l++) {
            layer_acts *a = &la[l];
            TIMED(K_RMS_F, rmsnorm_forward(a->ln1, a->rstd1, res, w_rms, N, C, 1e-5f));
            TIMED(K_MM_F, matmul_forward(a->qkv, a->ln1, wl[4 * l], N, C, R));
            TIMED(K_ROPE_F, rope_forward(a->qkv, N, R, NH + NKV, HD, pos, cos_tab, sin_tab));
            TIMED(K_ATT_F, attention_forward(a->atty, a->att, a->qkv, B, T, NH, NKV, HD));
            TIMED(K_MM_F, matmul_forward(a->res1, a->atty, wl[4 * l + 1], N, OC, C));
            TIMED(K_ADD, add_inplace(a->res1, res, N * C));
            TIMED(K_RMS_F, rmsnorm_forward(a->ln2, a->rstd2, a->res1, w_rms, N, C, 1e-5f));
            TIMED(K_MM_F, matmul_forward(a->gu, a->ln2, wl[4 * l + 2], N, C, 2 * F));
            TIMED(K_SWI_F, swiglu_forward(a->sw, a->gu, N, F));
            TIMED(K_MM_F, matmul_forward(a->res2, a->sw, wl[4 * l + 3], N, F, C));
            TIMED(K_ADD, add_inplace(a->res2, a->res1, N * C));
            res = a->res2;
        }
        TIMED(K_RMS_F, rmsnorm_forward(lnf, rstdf, res, w_rms, N, C, 1e-5f));
        TIMED(K_MM_F, matmul_forward(logits, lnf, wte, N, C, V));
        TIMED(K_CE, crossentropy_forward_backward(logits, losses, logits, tg, N, V, 1.0f / (float)N, NULL));
        /* backward */
        memset(dln, 0, N * C * sizeof(float));
        TIMED(K_MM_B, matmul_backward(dln, dwte, logits, lnf, wte, N, C, V));
        memset(dres, 0, N * C * sizeof(float));
        TIMED(K_RMS_B, rmsnorm_backward(dres, dw_rms, dln, res, w_rms, rstdf, N, C));
        for (size_t l = L; l-- > 0;) {
            layer_acts *a = &la[l];
            const float *res_in = l ? la[l - 1].res2 : resid0;
            /* res2 = res1 + down(swiglu(ffn(rms(res1)))): dres flows to both */
            TIMED(K_MM_B, matmul_backward(NULL, dwl[4 * l + 3], dres, a->sw, wl[4 * l + 3], N, F, C));
            memset(dsw, 0, N * F * sizeof(float));
            TIMED(K_MM_B, matmul_backward(dsw, NULL, dres, a->sw, wl[4 * l + 3], N, F, C));
            TIMED(K_SWI_B, swiglu_backward(dgu, dsw, a->gu, N, F));
            memset(dln, 0, N * C * sizeof(float));
            TIMED(K_MM_B, matmul_backward(dln, dwl[4 * l + 2], dgu, a->ln2, wl[4 * l + 2], N, C, 2 * F));
            TIMED(K_RMS_B, rmsnorm_backward(dres, dw_rms, dln, a->res1, w_rms, a->rstd2, N, C));
            /* res1 = res_in + o(attn(...)) */
            memset(datty, 0, N * OC * sizeof(float));
            TIMED(K_MM_B, matmul_backward(datty, dwl[4 * l + 1], dres, a->atty, wl[4 * l + 1], N, OC, C));
            TIMED(K_ATT_B, attention_backward(dqkv, scratch, datty, a->att, a->qkv, B, T, NH, NKV, HD));
            TIMED(K_ROPE_B, rope_backward(dqkv, N, R, NH + NKV, HD, pos, cos_tab, sin_tab));
            memset(dln, 0, N * C * sizeof(float));
            TIMED(K_MM_B, matmul_backward(dln, dwl[4 * l], dqkv, a->ln1, wl[4 * l], N, C, R));
            TIMED(K_RMS_B, rmsnorm_backward(dres, dw_rms, dln, res_in, w_rms, a->rstd1, N, C));
        }
        TIMED(K_EMB_B, embedding_backward(dwte, dres, ids, N, C));
        double dt = rt_now() - t0, dc = cpu_now() - c0;
        if (s > 0 && dt < best_step) best_step = dt; /* step 0 warms up (page faults) */
        if (s > 0 && dc < best_cpu) best_cpu = dc;
        if (s == steps) {
            double sum = 0;
            for (int k = 0; k < K_COUNT; k++) sum += k_time[k];
            printf("one training step, kernels only (6 layers, fwd+bwd), last of %d: %.1f ms "
                   "(best %.1f ms; %.0f tokens/s; best CPU time %.1f ms, load %s)\n",
                   steps, dt * 1e3, best_step * 1e3, (double)N / best_step, best_cpu * 1e3,
                   load_avg());
            for (int k = 0; k < K_COUNT; k++)
                printf("  %-16s %8.1f ms  %5.1f%%\n", k_names[k], k_time[k] * 1e3, 100.0 * k_time[k] / sum);
            printf("  (glue memsets   %8.1f ms)\n", (dt - sum) * 1e3);
            double mm = 6.0 * (double)N * (double)L * (double)(C * R + OC * C + C * 2 * F + F * C) +
                        6.0 * (double)N * C * V;
            double at = 12.0 * att_pairs * HD * (double)L;
            printf("  work per step: GEMM %.1f GFLOP (%.0f GFLOP/s in matmul), attention %.1f GFLOP "
                   "causal (%.0f GFLOP/s)\n",
                   mm / 1e9, mm / (k_time[K_MM_F] + k_time[K_MM_B]) / 1e9, at / 1e9,
                   at / (k_time[K_ATT_F] + k_time[K_ATT_B]) / 1e9);
        }
    }
    (void)tmp, (void)tmp_sw;
    return 0;
}
