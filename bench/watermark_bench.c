/* watermark_bench.c — detection throughput of the watermark scorer on one thread, in tokens
 * scored per CPU-second of the thread (the machines are shared; wall time is printed too): random token streams (the worst case for dedup: nearly every tuple is
 * new) and a Zipf-like stream (repeats, like real text). Two uses:
 *   docs:   400-token documents, the dedup set cleared between documents (API detection);
 *   pooled: one stream of N tokens with global dedup (radioactivity evidence).
 * Also the sampler-side cost: the KGW green mask over a vocabulary, per generated token.
 * Prints one JSON line per case. Not a test: nothing is asserted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "mark/mark.h"

/* CPU seconds of this thread: the machine is shared, so wall time overstates the cost */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double run(const mark_ctx *c, const int32_t *toks, size_t n, size_t doc, size_t *scored, double *wall) {
    mark_scorer s;
    if (mark_scorer_init(&s, c)) return -1;
    double t0 = cpu_now(), w0 = rt_now();
    size_t sc = 0;
    if (doc) {
        for (size_t off = 0; off < n; off += doc) {
            mark_scorer_reset(&s);
            mark_scorer_add(&s, toks + off, RT_MIN(doc, n - off), 0);
            sc += s.scored;
        }
    } else {
        mark_scorer_add(&s, toks, n, 0);
        sc = s.scored;
    }
    mark_result r;
    mark_scorer_result(&s, &r); /* the p-value is part of detection */
    double dt = cpu_now() - t0;
    *wall = rt_now() - w0;
    mark_scorer_free(&s);
    *scored = sc;
    return dt;
}

int main(int argc, char **argv) {
    size_t N = argc > 1 ? (size_t)atol(argv[1]) : 8000000;
    size_t V = 32000;
    int32_t *uni = malloc(N * sizeof *uni), *zipf = malloc(N * sizeof *zipf);
    double *cdf = malloc(V * sizeof *cdf);
    if (!uni || !zipf || !cdf) return 1;
    rt_rng r;
    rt_rng_seed(&r, 1);
    double z = 0;
    for (size_t v = 0; v < V; v++) z += 1.0 / (double)(v + 1);
    double acc = 0;
    for (size_t v = 0; v < V; v++) cdf[v] = (acc += 1.0 / (double)(v + 1) / z);
    for (size_t i = 0; i < N; i++) {
        uni[i] = (int32_t)rt_rng_below(&r, V);
        double u = rt_rng_double(&r);
        size_t lo = 0, hi = V - 1;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cdf[mid] < u) lo = mid + 1;
            else hi = mid;
        }
        zipf[i] = (int32_t)lo;
    }
    mark_key k;
    mark_key_from_seed(&k, 7);
    struct {
        mark_scheme s;
        size_t h;
    } cases[] = {{MARK_KGW, 1}, {MARK_KGW, 4}, {MARK_KGW_SELFHASH, 4}, {MARK_GUMBEL, 1}};
    for (size_t ci = 0; ci < RT_ARRAY_LEN(cases); ci++) {
        mark_params p = mark_params_defaults(cases[ci].s);
        p.context = cases[ci].h;
        mark_ctx c;
        if (mark_ctx_init(&c, &p, &k)) return 1;
        const char *names[2] = {"uniform", "zipf"};
        int32_t *streams[2] = {uni, zipf};
        for (int si = 0; si < 2; si++)
            for (int mode = 0; mode < 2; mode++) {
                size_t scored = 0;
                double wall = 0, dt = run(&c, streams[si], N, mode ? 0 : 400, &scored, &wall);
                printf("{\"bench\": \"detect\", \"scheme\": \"%s\", \"context\": %zu, \"stream\": \"%s\", \"mode\": \"%s\", "
                       "\"tokens\": %zu, \"scored\": %zu, \"cpu_seconds\": %.3f, \"wall_seconds\": %.3f, "
                       "\"tokens_per_cpu_s\": %.3g}\n",
                       mark_scheme_name(p.scheme), p.context, names[si], mode ? "pooled" : "docs400", N, scored, dt,
                       wall, (double)N / dt);
                fflush(stdout);
            }
        /* sampler side: green mask over V per generated token */
        uint8_t *mask = malloc(V);
        if (!mask) return 1;
        size_t reps = 300;
        double t0 = cpu_now();
        for (size_t i = 0; i < reps; i++) mark_green_mask(&c, uni + i, 4, V, mask);
        double dt = cpu_now() - t0;
        if (p.scheme != MARK_GUMBEL)
            printf("{\"bench\": \"green_mask\", \"scheme\": \"%s\", \"context\": %zu, \"vocab\": %zu, \"us_per_token\": %.1f}\n",
                   mark_scheme_name(p.scheme), p.context, V, dt / reps * 1e6);
        free(mask);
    }
    free(uni);
    free(zipf);
    free(cdf);
    return 0;
}
