/*
 * antidistill_bench.c — what antidistillation sampling costs per token (src/mark/antidistill.c):
 * for a few (teacher, proxy) shapes (random weights: the cost depends on the shape only) it
 * times, per generated token of one sequence,
 *   - the teacher's own decode step (plain sampling's model work: the peer),
 *   - the shift: mark_adist_delta (two proxy decode steps under theta +- eps u, two
 *     log-softmaxes over V, the difference),
 *   - the alternative the shift does not use: ONE proxy weight copy perturbed in place, which
 *     costs three passes over the proxy's weights per token (to +eps u, to -eps u, back)
 *     on top of the same two decode steps,
 *   - with 16 sequences decoding together (the generator's continuous batching): the
 *     teacher's batched step, the shift one sequence at a time (16 x mark_adist_delta) and
 *     the shift batched per step (mark_adist_prepare: one decoder pass per proxy copy for
 *     all 16), each per generated token,
 * and prints one JSON line per shape with the ratios. Usage: antidistill_bench [TOKENS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mark/mark.h"

static model *make(size_t dim, size_t layers, size_t ffn, size_t V, uint64_t seed) {
    model_config c = {.dim = dim, .n_layers = layers, .n_heads = 4, .n_kv_heads = 2, .ffn_dim = ffn,
                      .vocab_size = V, .ctx_len = 256, .norm_eps = 1e-5f, .rope_base = 10000.0f, .tied = 1};
    model *m = NULL;
    if (model_config_validate(&c) || model_create(&m, &c, NULL)) return NULL;
    model_init_weights(m, seed);
    return m;
}

/* seconds per token of single-sequence decoding of n tokens */
static double decode_time(const model *m, const int32_t *toks, size_t n) {
    kv_cache kv;
    decoder d;
    float *lg = malloc(m->cfg.vocab_size * sizeof(float));
    if (!lg || kv_cache_init(&kv, &m->cfg, m->cfg.ctx_len) || decoder_init(&d, m, 1)) exit(1);
    double t0 = rt_now();
    for (size_t i = 0; i < n; i++) {
        if (kv.len == kv.n_ctx) kv_cache_clear(&kv);
        kv_cache *c = &kv;
        if (decoder_run(&d, &c, &toks[i], 1, NULL, lg)) exit(1);
    }
    double t = (rt_now() - t0) / (double)n;
    decoder_free(&d);
    kv_cache_free(&kv);
    free(lg);
    return t;
}

#define NB 16
/* seconds per token of NB sequences decoding together, one row each per pass */
static double batch_decode_time(const model *m, const int32_t *toks, size_t n) {
    kv_cache kv[NB], *c[NB];
    decoder d;
    float *lg = malloc(NB * m->cfg.vocab_size * sizeof(float));
    if (!lg || decoder_init(&d, m, NB)) exit(1);
    for (size_t k = 0; k < NB; k++) {
        if (kv_cache_init(&kv[k], &m->cfg, m->cfg.ctx_len)) exit(1);
        c[k] = &kv[k];
    }
    size_t steps = n / NB ? n / NB : 1;
    int32_t row[NB];
    double t0 = rt_now();
    for (size_t i = 0; i < steps; i++) {
        for (size_t k = 0; k < NB; k++) {
            if (kv[k].len == kv[k].n_ctx) kv_cache_clear(&kv[k]);
            row[k] = toks[(i + 31 * k) % n];
        }
        if (decoder_run(&d, c, row, NB, NULL, lg)) exit(1);
    }
    double t = (rt_now() - t0) / (double)(steps * NB);
    decoder_free(&d);
    for (size_t k = 0; k < NB; k++) kv_cache_free(&kv[k]);
    free(lg);
    return t;
}

/* seconds per token of the shift for NB sequences growing together (a fresh start every 128
 * tokens): batched (mark_adist_prepare) or one at a time (mark_adist_delta) */
static double batch_shift_time(mark_adist *a, const int32_t *toks, size_t n, int batched, float *b) {
    static int32_t hist[NB][128];
    for (size_t k = 0; k < NB; k++)
        for (size_t t = 0; t < 128; t++) hist[k][t] = toks[(t + 31 * k) % n];
    size_t steps = n / NB ? n / NB : 1;
    gen_ready r[NB];
    double t0 = rt_now();
    for (size_t i = 0; i < steps; i++) {
        size_t len = i % 128 + 1;
        for (size_t k = 0; k < NB; k++) r[k] = (gen_ready){.slot = k, .hist = hist[k], .n_hist = len};
        if (batched) {
            if (mark_adist_prepare(a, r, NB)) exit(1);
        } else {
            for (size_t k = 0; k < NB; k++)
                if (mark_adist_delta(a, k, hist[k], len, b)) exit(1);
        }
    }
    return (rt_now() - t0) / (double)(steps * NB);
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 400;
    struct { size_t td, tl, tf, pd, pl, pf, V; } shapes[] = {
        {96, 3, 256, 48, 2, 128, 262},     /* the trade-off experiment's teacher, a 48-wide proxy */
        {256, 6, 704, 128, 2, 352, 4096},  /* a larger teacher, a quarter-width proxy */
        {512, 8, 1408, 256, 4, 704, 8192},
    };
    int32_t *toks = malloc(n * sizeof(int32_t));
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t V = shapes[s].V;
        for (size_t i = 0; i < n; i++) toks[i] = (int32_t)((i * 2654435761u) % V);
        model *t = make(shapes[s].td, shapes[s].tl, shapes[s].tf, V, 1), *p = make(shapes[s].pd, shapes[s].pl, shapes[s].pf, V, 2);
        if (!t || !p) return 1;
        float *g = malloc(p->n_params * sizeof(float)), *b = malloc(V * sizeof(float));
        for (size_t i = 0; i < p->n_params; i++) g[i] = (float)((i % 7) + 1) * 1e-3f;
        mark_adist_params ap;
        mark_adist_defaults(&ap);
        ap.lambda = 1;
        mark_adist *a = NULL;
        if (mark_adist_new(&a, p, g, &ap)) {
            fprintf(stderr, "%s\n", rt_errmsg());
            return 1;
        }
        double t_teacher = decode_time(t, toks, n), t_proxy = decode_time(p, toks, n);
        /* the shift through one slot: histories of growing length (one new token each call) */
        double t0 = rt_now();
        for (size_t i = 0; i < n; i++) {
            size_t start = (i / 128) * 128; /* a fresh sequence every 128 tokens */
            if (mark_adist_delta(a, 0, toks + start, i - start + 1, b)) return 1;
        }
        double t_shift = (rt_now() - t0) / (double)n;
        /* in place: three passes over the weights per token */
        t0 = rt_now();
        for (size_t i = 0; i < n; i++)
            for (int k = 0; k < 3; k++) {
                float c = k == 1 ? -2e-3f : 1e-3f;
                for (size_t j = 0; j < p->n_params; j++) p->params[j] += c * g[j];
            }
        double t_flip = (rt_now() - t0) / (double)n;
        /* NB sequences together: a state with NB slots, each slot's processor attached */
        ap.max_seqs = NB;
        mark_adist *ab = NULL;
        sampler smp[NB];
        sampler_params sp = sampler_defaults();
        if (mark_adist_new(&ab, p, g, &ap)) return 1;
        for (size_t k = 0; k < NB; k++)
            if (sampler_init(&smp[k], V, &sp) || mark_adist_attach(ab, k, &smp[k])) return 1;
        double t_tb = batch_decode_time(t, toks, n);
        double t_one = batch_shift_time(ab, toks, n, 0, b), t_bat = batch_shift_time(ab, toks, n, 1, b);
        for (size_t k = 0; k < NB; k++) sampler_free(&smp[k]);
        mark_adist_free(ab);
        printf("{\"teacher_params\":%zu,\"proxy_params\":%zu,\"vocab\":%zu,\"tokens\":%zu,"
               "\"teacher_ms\":%.4f,\"proxy_decode_ms\":%.4f,\"shift_ms\":%.4f,\"inplace_extra_ms\":%.4f,"
               "\"shift_over_teacher\":%.3f,\"shift_over_2_proxy_decodes\":%.3f,\"inplace_over_two_copies\":%.3f,"
               "\"memory_two_copies_mb\":%.2f,\"batch16_teacher_ms\":%.4f,\"batch16_shift_one_by_one_ms\":%.4f,"
               "\"batch16_shift_batched_ms\":%.4f,\"batch16_one_by_one_over_teacher\":%.3f,"
               "\"batch16_batched_over_teacher\":%.3f,\"batch16_speedup\":%.2f}\n",
               t->n_params, p->n_params, V, n, 1e3 * t_teacher, 1e3 * t_proxy, 1e3 * t_shift, 1e3 * t_flip,
               t_shift / t_teacher, t_shift / (2 * t_proxy), (t_shift + t_flip) / t_shift,
               2.0 * (double)p->n_params * 4 / 1e6, 1e3 * t_tb, 1e3 * t_one, 1e3 * t_bat, t_one / t_tb, t_bat / t_tb,
               t_one / t_bat);
        fflush(stdout);
        mark_adist_free(a);
        free(g);
        free(b);
        model_free(t);
        model_free(p);
    }
    free(toks);
    return 0;
}
