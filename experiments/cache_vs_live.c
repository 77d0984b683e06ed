/*
 * cache_vs_live.c — the teacher-cache tolerance measured on real models (experiment 3 of
 * docs/distill.md): for cached windows, the batch loss of a student against the cached top-k
 * teacher vs against the live teacher's top-k (the same K, computed from its logits now), for
 * each divergence. Prints one JSON object per loss with both losses and their differences.
 * Not a test (tests/test_distill.c checks the bound on a tiny teacher); built and run by
 * experiments/distill_cache.sh.
 * Usage: cache_vs_live TEACHER.gguf CACHE STUDENT.gguf [N_WINDOWS] [BATCH]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/distill.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s TEACHER.gguf CACHE STUDENT.gguf [N_WINDOWS] [BATCH]\n", argv[0]);
        return 2;
    }
    size_t n_win = argc > 4 ? (size_t)atol(argv[4]) : 64, B = argc > 5 ? (size_t)atol(argv[5]) : 8;
    model *t = NULL, *s = NULL;
    kd_cache *c = NULL;
    if (model_load(&t, argv[1]) || model_load(&s, argv[3]) || kd_cache_open(&c, argv[2])) {
        fprintf(stderr, "error: %s\n", rt_errmsg());
        return 1;
    }
    const kd_cache_info *ci = kd_cache_get_info(c);
    size_t T = ci->seq_len, K = ci->top_k, V = ci->vocab_size, N = B * T;
    if (V != t->cfg.vocab_size || V != s->cfg.vocab_size || T > t->cfg.ctx_len || T > s->cfg.ctx_len) {
        fprintf(stderr, "error: cache (vocab %zu, window %zu) does not fit the models\n", V, T);
        return 1;
    }
    if (n_win > ci->n_windows) n_win = ci->n_windows;
    n_win -= n_win % B;
    int32_t *tokens = malloc((T + 1) * sizeof *tokens), *in = malloc(N * sizeof *in), *tg = malloc(N * sizeof *tg);
    int32_t *cid = malloc(N * K * sizeof *cid), *lid = malloc(N * K * sizeof *lid);
    float *clp = malloc(N * K * sizeof *clp), *llp = malloc(N * K * sizeof *llp), *crest = malloc(N * sizeof *crest);
    float *lrest = malloc(N * sizeof *lrest), *sl = malloc(N * V * sizeof *sl), *s2 = malloc(N * V * sizeof *s2);
    kd_topk_row *crow = malloc(N * sizeof *crow), *lrow = malloc(N * sizeof *lrow);
    kd_workspace ws;
    memset(&ws, 0, sizeof ws);
    if (!tokens || !in || !tg || !cid || !lid || !clp || !llp || !crest || !lrest || !sl || !s2 || !crow || !lrow ||
        kd_workspace_init(&ws, V, K)) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    const kd_kind kinds[3] = {KD_FKL, KD_RKL, KD_JSD};
    double sum_live[3] = {0}, sum_cache[3] = {0}, max_abs[3] = {0};
    size_t n_batches = 0;
    for (size_t w0 = 0; w0 < n_win; w0 += B) {
        for (size_t b = 0; b < B; b++) {
            if (kd_cache_read_window(c, w0 + b, tokens, cid + b * T * K, clp + b * T * K, crest + b * T)) {
                fprintf(stderr, "error: %s\n", rt_errmsg());
                return 1;
            }
            for (size_t p = 0; p < T; p++) {
                in[b * T + p] = tokens[p];
                tg[b * T + p] = tokens[p + 1];
            }
        }
        const float *tl = model_forward(t, in, B, T);
        if (!tl) {
            fprintf(stderr, "error: %s\n", rt_errmsg());
            return 1;
        }
        for (size_t i = 0; i < N; i++) {
            kd_topk_from_logits(tl + i * V, V, ci->temperature, K, lid + i * K, llp + i * K, &lrest[i]);
            lrow[i] = (kd_topk_row){K, lid + i * K, llp + i * K, lrest[i]};
            crow[i] = (kd_topk_row){K, cid + i * K, clp + i * K, crest[i]};
        }
        const float *z = model_forward(s, in, B, T);
        if (!z) {
            fprintf(stderr, "error: %s\n", rt_errmsg());
            return 1;
        }
        memcpy(sl, z, N * V * sizeof *sl);
        for (int k = 0; k < 3; k++) {
            kd_params p = kd_params_defaults();
            p.kind = kinds[k];
            p.temperature = ci->temperature;
            kd_stats a, b;
            memcpy(s2, sl, N * V * sizeof *s2);
            if (kd_loss_batch(&p, &ws, s2, NULL, lrow, tg, 0, N, V, 0, &a)) return 1;
            memcpy(s2, sl, N * V * sizeof *s2);
            if (kd_loss_batch(&p, &ws, s2, NULL, crow, tg, 0, N, V, 0, &b)) return 1;
            sum_live[k] += a.loss;
            sum_cache[k] += b.loss;
            max_abs[k] = fmax(max_abs[k], fabs(a.loss - b.loss));
        }
        n_batches++;
    }
    for (int k = 0; k < 3; k++) {
        double l = sum_live[k] / (double)n_batches, cc = sum_cache[k] / (double)n_batches;
        printf("{\"loss\":\"%s\",\"top_k\":%zu,\"lp_step\":%g,\"windows\":%zu,\"positions\":%zu,\"live\":%.7f,"
               "\"cache\":%.7f,\"abs_diff\":%.3g,\"rel_diff\":%.3g,\"max_batch_abs_diff\":%.3g}\n",
               kd_kind_name(kinds[k]), K, ci->lp_step, n_win, n_win * T, l, cc, fabs(l - cc), fabs(l - cc) / l,
               max_abs[k]);
    }
    kd_workspace_free(&ws);
    kd_cache_close(c);
    model_free(t);
    model_free(s);
    free(tokens), free(in), free(tg), free(cid), free(lid), free(clp), free(llp), free(crest), free(lrest);
    free(sl), free(s2), free(crow), free(lrow);
    return 0;
}
