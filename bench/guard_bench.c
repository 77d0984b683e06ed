/* guard_bench.c — the guard's detector throughput next to the PRADA baseline's, on synthetic
 * events (no server): events with a 256-dimensional embedding and a MinHash signature, spread
 * over A accounts, fed through guard_detector_observe; PRADA run over the same embeddings of
 * one account as its history grows (its cost per query grows with the history; the guard's
 * does not). Prints one JSON line per measurement. Timings are this machine's, not asserted.
 * Usage: guard_bench [accounts] [events] */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "guard/guard.h"

static double cpu_now(void) { /* this process's CPU seconds: the machine is shared, wall time is noisy */
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    size_t A = argc > 1 ? (size_t)atol(argv[1]) : 1000, N = argc > 2 ? (size_t)atol(argv[2]) : 200000;
    const size_t D = 256;
    rt_rng r;
    rt_rng_seed(&r, 1);
    /* a reference over random unit vectors */
    guard_reference ref;
    guard_reference_init(&ref);
    if (guard_rff_init(&ref.rff, D, GUARD_RFF_M, 1.0, 7)) return 1;
    ref.mu = calloc(GUARD_RFF_M, sizeof(float));
    ref.trace = 0.5;
    ref.z_crit = 2;
    ref.has_shift = 1;
    guard_policy p;
    guard_policy_defaults(&p);
    guard_detector *d = NULL;
    if (guard_detector_new(&d, &p, &ref)) return 1;
    /* a pool of 1024 embeddings and signatures, reused */
    const size_t P = 1024;
    int8_t *emb = malloc(P * D);
    float *scale = malloc(P * sizeof(float));
    uint32_t(*sig)[GUARD_MINHASH_K] = malloc(P * sizeof *sig);
    float x[256];
    for (size_t i = 0; i < P; i++) {
        for (size_t k = 0; k < D; k++) x[k] = (float)rt_rng_normal(&r);
        scale[i] = guard_quantize(x, D, emb + i * D);
        char text[64];
        int n = snprintf(text, sizeof text, "what does verse %zu of chapter %zu say", i % 37, i % 11);
        guard_minhash(text, (size_t)n, sig[i]);
    }
    guard_event e;
    memset(&e, 0, sizeof e);
    e.status = 200;
    e.prompt_tokens = 30;
    e.completion_tokens = 32;
    e.max_tokens = 32;
    e.emb_dim = D;
    e.has_minhash = 1;
    guard_verdict v;
    double t0 = rt_now(), c0 = cpu_now();
    for (size_t i = 0; i < N; i++) {
        size_t k = rt_rng_below(&r, P);
        e.account_id = 1 + (int64_t)rt_rng_below(&r, A);
        e.t = 1e6 + (double)i * 0.1;
        e.client_hash = 1000 + (uint64_t)e.account_id;
        e.account_created_at = 1e5 + 3600.0 * (double)e.account_id;
        e.prompt_hash = (uint64_t)i;
        e.emb = emb + k * D;
        e.emb_scale = scale[k];
        memcpy(e.minhash, sig[k], sizeof e.minhash);
        if (guard_detector_observe(d, &e, &v)) {
            fprintf(stderr, "%s\n", rt_errmsg());
            return 1;
        }
    }
    double dt = rt_now() - t0, dc = cpu_now() - c0;
    printf("{\"bench\":\"guard_detector\",\"accounts\":%zu,\"events\":%zu,\"dim\":%zu,\"wall_s\":%.3f,\"cpu_s\":%.3f,"
           "\"events_per_cpu_s\":%.0f,\"cpu_us_per_event\":%.2f,\"state_bytes_per_account\":%zu,\"detector_mib\":%.1f}\n",
           A, N, D, dt, dc, (double)N / dc, 1e6 * dc / (double)N, guard_detector_account_bytes(), (double)guard_detector_bytes(d) / 1048576.0);
    guard_detector_free(d);
    /* PRADA on one account's growing history: cost of the next 200 queries at several sizes */
    guard_prada pr;
    guard_prada_init(&pr, D);
    float *xs = malloc(D * sizeof(float));
    size_t marks[] = {100, 500, 1000, 2000, 4000};
    size_t done = 0;
    for (size_t m = 0; m < RT_ARRAY_LEN(marks); m++) {
        while (done < marks[m]) {
            size_t k = rt_rng_below(&r, P);
            guard_dequantize(emb + k * D, D, scale[k], xs);
            for (size_t j = 0; j < D; j++) xs[j] += 0.05f * (float)rt_rng_normal(&r);
            guard_prada_add(&pr, xs, SIZE_MAX);
            done++;
        }
        double t1 = cpu_now();
        for (int q = 0; q < 200; q++) {
            size_t k = rt_rng_below(&r, P);
            guard_dequantize(emb + k * D, D, scale[k], xs);
            guard_prada_add(&pr, xs, SIZE_MAX);
            done++;
        }
        double w = guard_prada_w(&pr);
        double dt2 = cpu_now() - t1;
        printf("{\"bench\":\"prada\",\"history\":%zu,\"set\":%zu,\"cpu_us_per_query\":%.1f,\"W\":%.4f}\n", marks[m], pr.n_g,
               1e6 * dt2 / 200, w);
    }
    guard_prada_free(&pr);
    free(xs);
    free(emb);
    free(scale);
    free(sig);
    guard_reference_free(&ref);
    return 0;
}
