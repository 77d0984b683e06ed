/*
 * gen.c — the distillation room's view of the batched generator (src/model/generate.h):
 * continuations for many prompts, for on-policy distillation (the student samples), for
 * teacher data (the teacher writes completions, optionally with its top-n raw log-probs as
 * an API would return them) and for task evaluation (greedy).
 *
 * Each prompt has its own sampler seeded from (seed, prompt index), so a prompt's
 * continuation does not depend on which other prompts share its batch.
 *
 * What this is not: the generation loop itself (generate.c), a server, or a beam search.
 */
#include "distill.h"

#include <stdlib.h>
#include <string.h>

#include "../model/generate.h"

void kd_gen_defaults(kd_gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_new = 128;
    o->temperature = 1.0f;
    o->top_k = 0;
    o->top_p = 1.0f;
    o->stop = -1;
    o->batch = 16;
}

void kd_gen_seq_free(kd_gen_seq *s) {
    free(s->tokens);
    free(s->chosen_lp);
    free(s->top_ids);
    free(s->top_lps);
    memset(s, 0, sizeof *s);
}

int kd_generate(const model *m, const int32_t *const *prompts, const size_t *lens, size_t n_prompts,
                const kd_gen_opts *o, kd_gen_seq *out, int show_progress) {
    for (size_t i = 0; i < n_prompts; i++) memset(&out[i], 0, sizeof out[i]);
    if (n_prompts == 0) return 0;
    size_t V = m->cfg.vocab_size, ctx = m->cfg.ctx_len;
    for (size_t i = 0; i < n_prompts; i++) {
        if (lens[i] == 0) return RT_FAIL("prompt %zu is empty; generation needs at least one token", i);
        if (lens[i] >= ctx)
            return RT_FAIL("prompt %zu has %zu tokens; the model's context is %zu", i, lens[i], ctx);
        for (size_t j = 0; j < lens[i]; j++)
            if (prompts[i][j] < 0 || (size_t)prompts[i][j] >= V)
                return RT_FAIL("prompt %zu: token id %d is outside the vocabulary (%zu)", i, prompts[i][j], V);
    }
    sampler_params sp = {.temperature = o->temperature, .top_k = o->top_k, .top_p = o->top_p, .seed = o->seed};
    uint64_t *seeds = rt_malloc_array(n_prompts, sizeof *seeds, "generation seeds");
    gen_result *res = rt_calloc(n_prompts, sizeof *res, "generation results");
    int rc = -1;
    if (!seeds || !res) goto done;
    for (size_t i = 0; i < n_prompts; i++) seeds[i] = rt_splitmix64(o->seed ^ rt_splitmix64((uint64_t)i + 1));
    gen_run_opts ro = {.batch = o->batch,
                       .max_new = o->max_new,
                       .stop = o->stop,
                       .n_top = o->n_logprobs,
                       .progress = show_progress ? "generate" : NULL,
                       .setup = o->setup,
                       .before_sample = o->before_sample,
                       .ud = o->setup_ud};
    if (generator_run(m, prompts, lens, n_prompts, &sp, seeds, &ro, res)) goto done;
    for (size_t i = 0; i < n_prompts; i++) {
        out[i] = (kd_gen_seq){.tokens = res[i].tokens,
                              .n = res[i].n,
                              .finished = res[i].stopped,
                              .chosen_lp = res[i].logprob,
                              .top_ids = res[i].top_ids,
                              .top_lps = res[i].top_lps};
    }
    rc = 0;
done:
    free(seeds);
    free(res);
    return rc;
}
