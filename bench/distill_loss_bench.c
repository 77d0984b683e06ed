/* distill_loss_bench.c — time of the distillation loss (value + gradient w.r.t. the student
 * logits) for one batch: forward KL / reverse KL / JSD(0.5) on the full vocabulary and
 * forward KL on a top-64 + rest teacher. Prints one JSON line per case (ms per batch).
 * Built and run by bench/distill_bench.sh, which runs the PyTorch (TRL formula) peer too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "distill/distill.h"
#include "kernels/kernels.h"

int main(int argc, char **argv) {
    size_t N = argc > 1 ? (size_t)atol(argv[1]) : 2048, V = argc > 2 ? (size_t)atol(argv[2]) : 2048;
    int threads = argc > 3 ? atoi(argv[3]) : 2, reps = argc > 4 ? atoi(argv[4]) : 10;
    kernels_set_threads(threads);
    rt_rng r;
    rt_rng_seed(&r, 1);
    float *s = malloc(N * V * sizeof(float)), *t = malloc(N * V * sizeof(float)), *g = malloc(N * V * sizeof(float));
    int32_t *tg = malloc(N * sizeof(int32_t)), *ids = malloc(N * 64 * sizeof(int32_t));
    float *lps = malloc(N * 64 * sizeof(float));
    kd_topk_row *rows = malloc(N * sizeof *rows);
    if (!s || !t || !g || !tg || !ids || !lps || !rows) return 1;
    for (size_t i = 0; i < N * V; i++) {
        s[i] = (float)(2 * rt_rng_normal(&r));
        t[i] = (float)(3 * rt_rng_normal(&r));
    }
    for (size_t i = 0; i < N; i++) {
        tg[i] = (int32_t)rt_rng_below(&r, V);
        float rest;
        kd_topk_from_logits(t + i * V, V, 1.0f, 64, ids + i * 64, lps + i * 64, &rest);
        rows[i] = (kd_topk_row){64, ids + i * 64, lps + i * 64, rest};
    }
    kd_workspace ws;
    if (kd_workspace_init(&ws, V, 64)) return 1;
    struct {
        const char *name;
        kd_kind k;
        int topk;
    } cases[] = {{"fkl", KD_FKL, 0}, {"rkl", KD_RKL, 0}, {"jsd", KD_JSD, 0}, {"fkl_top64", KD_FKL, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        kd_params p = kd_params_defaults();
        p.kind = cases[c].k;
        double best = 1e30;
        kd_stats st;
        for (int rep = 0; rep < reps; rep++) {
            memcpy(g, s, N * V * sizeof(float));
            double t0 = rt_now();
            kd_loss_batch(&p, &ws, g, cases[c].topk ? NULL : t, cases[c].topk ? rows : NULL, tg, 1, N, V, 1, &st);
            double dt = rt_now() - t0;
            if (dt < best) best = dt;
        }
        printf("{\"impl\":\"retort\",\"case\":\"%s\",\"rows\":%zu,\"vocab\":%zu,\"threads\":%d,\"ms\":%.3f,\"loss\":%.6f}\n",
               cases[c].name, N, V, threads, best * 1e3, st.loss);
    }
    kd_workspace_free(&ws);
    return 0;
}
