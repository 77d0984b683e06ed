/*
 * mark_gen.c — the model-side work of the experiments and the radioactivity tests:
 * batched generation of many completions through the one generator (src/model/generate.h),
 * with or without the watermark as each sequence's logits processor, and teacher-forced
 * top-1 predictions with the model's own log-likelihood (reading mode; also the teacher
 * perplexity of the quality experiment).
 * Not a server: no streaming, no scheduling fairness, no stop strings.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mark.h"
#include "../model/generate.h"

/* ---------------------------------------------------------------- generation */

/* The watermark, when there is one, is each sequence's logits processor. */
static int attach_mark(void *ud, size_t slot, size_t id, void *user, sampler *s) {
    (void)slot, (void)id, (void)user;
    return mark_attach(s, ud);
}

int mark_generate(const model *m, const int32_t *const *prompts, const size_t *prompt_lens, size_t n,
                  size_t max_new, const sampler_params *p, const mark_ctx *mark, size_t batch, int32_t **out,
                  size_t *n_out, int show_progress) {
    for (size_t i = 0; i < n; i++) {
        out[i] = NULL;
        n_out[i] = 0;
    }
    if (n == 0) return 0;
    if (!m->tok) return RT_FAIL("generation needs a model with a tokenizer");
    if (m->cfg.ctx_len < 2) return RT_FAIL("the model's context (%zu) is too short to generate", m->cfg.ctx_len);
    for (size_t i = 0; i < n; i++)
        if (prompt_lens[i] == 0) return RT_FAIL("prompt %zu is empty (no tokens); give each prompt some text", i + 1);
    gen_result *res = rt_calloc(n, sizeof *res, "generation results");
    uint64_t *seeds = rt_malloc_array(n, sizeof *seeds, "generation seeds");
    int rc = -1;
    if (!res || !seeds) goto done;
    if (max_new > 0) {
        for (size_t i = 0; i < n; i++) seeds[i] = p->seed + i;
        sampler_params sp = *p;
        sp.mask_filter = 1; /* the order these experiments were run with (see model.h) */
        gen_run_opts ro = {.batch = batch ? batch : 1,
                           .max_new = max_new,
                           .stop = tokenizer_eos(m->tok),
                           .ctx_shift = 1,
                           .progress = show_progress ? "generate" : NULL,
                           .setup = mark ? attach_mark : NULL,
                           .ud = (void *)mark};
        if (generator_run(m, prompts, prompt_lens, n, &sp, seeds, &ro, res)) goto done;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = res[i].tokens ? res[i].tokens : rt_malloc_array(1, sizeof(int32_t), "completion");
        res[i].tokens = NULL;
        n_out[i] = res[i].n;
        if (!out[i]) goto done;
    }
    rc = 0;
done:
    if (res)
        for (size_t i = 0; i < n; i++) gen_result_free(&res[i]);
    free(res);
    free(seeds);
    if (rc)
        for (size_t i = 0; i < n; i++) {
            free(out[i]);
            out[i] = NULL;
            n_out[i] = 0;
        }
    return rc;
}

int mark_predict(const model *m, const int32_t *toks, size_t n, int32_t *pred, float *nll) {
    size_t V = m->cfg.vocab_size, W = m->cfg.ctx_len;
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (toks[i] < 0 || (size_t)toks[i] >= V)
            return RT_FAIL("token %zu has id %d, outside the model's vocabulary (%zu)", i, toks[i], V);
    kv_cache kv = {0};
    decoder dec = {0};
    float *all = NULL;
    int rc = -1;
    if (kv_cache_init(&kv, &m->cfg, W) || decoder_init(&dec, m, RT_MIN(W, (size_t)128))) goto done;
    all = rt_malloc_array(RT_MIN(W, n) * V, sizeof(float), "prediction logits");
    if (!all) goto done;
    for (size_t off = 0; off < n; off += W) {
        size_t len = RT_MIN(W, n - off);
        kv_cache_clear(&kv);
        if (decoder_prefill(&dec, &kv, toks + off, len, NULL, all)) goto done;
        for (size_t j = 0; j < len; j++) {
            const float *lg = all + j * V; /* (V) */
            size_t best = 0;
            for (size_t v = 1; v < V; v++)
                if (lg[v] > lg[best]) best = v;
            pred[off + j] = (int32_t)best;
            if (!nll) continue;
            if (off + j + 1 >= n) {
                nll[off + j] = 0;
                continue;
            }
            double mx = lg[best], z = 0;
            for (size_t v = 0; v < V; v++) z += exp((double)lg[v] - mx);
            nll[off + j] = (float)(mx + log(z) - (double)lg[toks[off + j + 1]]);
        }
    }
    rc = 0;
done:
    free(all);
    decoder_free(&dec);
    kv_cache_free(&kv);
    return rc;
}
