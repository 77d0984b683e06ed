/*
 * gen.c — continuations for many prompts at once: each prompt is prefilled into its own KV
 * cache, then every active sequence advances one token per decoder pass (one GEMM row
 * each), and a finished sequence's slot is refilled with the next prompt (continuous
 * batching). Used for on-policy distillation (the student samples), for teacher data (the
 * teacher writes completions, optionally with its top-n log-probs as an API would return
 * them) and for task evaluation (greedy).
 *
 * Each prompt has its own sampler seeded from (seed, prompt index), so a prompt's
 * continuation does not depend on which other prompts share its batch (up to float
 * rounding of the batched GEMM).
 *
 * What this is not: a server (src/serve) or a beam search.
 */
#include "distill.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

typedef struct {
    int active;
    size_t prompt; /* index */
    kv_cache kv;
    sampler smp;
    float *logits; /* (V) next-token logits */
    int32_t *hist; /* (ctx) prompt + generated */
    size_t n_hist;
} gen_slot;

/* record one generated token (and its log-probs) into out */
static int seq_push(kd_gen_seq *s, const kd_gen_opts *o, int32_t tok, const float *raw_logits, size_t V) {
    size_t n = s->n;
    int32_t *t = rt_realloc(s->tokens, (n + 1) * sizeof(int32_t), "generated tokens");
    if (!t) return -1;
    s->tokens = t;
    s->tokens[n] = tok;
    if (o->n_logprobs) {
        size_t K = o->n_logprobs;
        float *c = rt_realloc(s->chosen_lp, (n + 1) * sizeof(float), "generated log-probs");
        if (!c) return -1;
        s->chosen_lp = c;
        int32_t *ti = rt_realloc(s->top_ids, (n + 1) * K * sizeof(int32_t), "generated log-probs");
        if (!ti) return -1;
        s->top_ids = ti;
        float *tl = rt_realloc(s->top_lps, (n + 1) * K * sizeof(float), "generated log-probs");
        if (!tl) return -1;
        s->top_lps = tl;
        float rest;
        kd_topk_from_logits(raw_logits, V, 1.0f, K, s->top_ids + n * K, s->top_lps + n * K, &rest);
        /* chosen token's log-prob under the raw (untempered, unfiltered) distribution */
        double mx = -INFINITY, sum = 0;
        for (size_t j = 0; j < V; j++) mx = fmax(mx, (double)raw_logits[j]);
        for (size_t j = 0; j < V; j++) sum += exp((double)raw_logits[j] - mx);
        s->chosen_lp[n] = (float)((double)raw_logits[tok] - mx - log(sum));
    }
    s->n = n + 1;
    return 0;
}

int kd_generate(const model *m, const int32_t *const *prompts, const size_t *lens, size_t n_prompts,
                const kd_gen_opts *o, kd_gen_seq *out, int show_progress) {
    for (size_t i = 0; i < n_prompts; i++) memset(&out[i], 0, sizeof out[i]);
    if (n_prompts == 0) return 0;
    const model_config *c = &m->cfg;
    size_t V = c->vocab_size, ctx = c->ctx_len;
    size_t nslot = RT_MAX((size_t)1, RT_MIN(o->batch, n_prompts));
    for (size_t i = 0; i < n_prompts; i++) {
        if (lens[i] == 0) return RT_FAIL("prompt %zu is empty; generation needs at least one token", i);
        if (lens[i] >= ctx)
            return RT_FAIL("prompt %zu has %zu tokens; the model's context is %zu", i, lens[i], ctx);
        for (size_t j = 0; j < lens[i]; j++)
            if (prompts[i][j] < 0 || (size_t)prompts[i][j] >= V)
                return RT_FAIL("prompt %zu: token id %d is outside the vocabulary (%zu)", i, prompts[i][j], V);
    }
    sampler_params sp = {.temperature = o->temperature, .top_k = o->top_k, .top_p = o->top_p, .seed = o->seed};
    gen_slot *slots = rt_calloc(nslot, sizeof *slots, "generation slots");
    kv_cache **rows = rt_calloc(nslot, sizeof *rows, "generation rows");
    int32_t *toks = rt_calloc(nslot, sizeof(int32_t), "generation rows");
    size_t *slot_of = rt_calloc(nslot, sizeof(size_t), "generation rows");
    float *logits = rt_malloc_array(nslot, V * sizeof(float), "generation logits");
    float *raw = rt_malloc_array(V, sizeof(float), "generation logits");
    decoder dec;
    memset(&dec, 0, sizeof dec);
    int rc = -1;
    if (!slots || !rows || !toks || !slot_of || !logits || !raw) goto done;
    if (decoder_init(&dec, m, RT_MAX(nslot, RT_MIN(ctx, (size_t)128)))) goto done;
    for (size_t s = 0; s < nslot; s++) {
        if (kv_cache_init(&slots[s].kv, c, ctx) || sampler_init(&slots[s].smp, V, &sp)) goto done;
        slots[s].logits = rt_malloc_array(V, sizeof(float), "generation logits");
        slots[s].hist = rt_malloc_array(ctx + 1, sizeof(int32_t), "generation history");
        if (!slots[s].logits || !slots[s].hist) goto done;
    }
    rt_progress bar;
    if (show_progress) rt_progress_init(&bar, "generate", n_prompts);
    size_t next = 0, n_done = 0, gen_tokens = 0;
    for (;;) {
        /* refill free slots */
        for (size_t s = 0; s < nslot && next < n_prompts; s++) {
            gen_slot *g = &slots[s];
            if (g->active) continue;
            g->active = 1;
            g->prompt = next++;
            kv_cache_clear(&g->kv);
            rt_rng_seed(&g->smp.rng, rt_splitmix64(o->seed ^ rt_splitmix64((uint64_t)g->prompt + 1)));
            memcpy(g->hist, prompts[g->prompt], lens[g->prompt] * sizeof(int32_t));
            g->n_hist = lens[g->prompt];
            if (decoder_prefill(&dec, &g->kv, g->hist, g->n_hist, g->logits, NULL)) goto done;
        }
        /* sample one token for every active slot */
        size_t nr = 0;
        for (size_t s = 0; s < nslot; s++) {
            gen_slot *g = &slots[s];
            if (!g->active) continue;
            kd_gen_seq *sq = &out[g->prompt];
            memcpy(raw, g->logits, V * sizeof(float));
            int32_t t = sampler_sample(&g->smp, g->logits, g->hist, g->n_hist);
            int stop = o->stop >= 0 && t == o->stop;
            if (stop) {
                sq->finished = 1;
            } else {
                if (seq_push(sq, o, t, raw, V)) goto done;
                g->hist[g->n_hist++] = t;
                gen_tokens++;
            }
            if (stop || sq->n >= o->max_new || g->kv.len >= ctx) {
                g->active = 0;
                n_done++;
                if (show_progress) {
                    char extra[64];
                    snprintf(extra, sizeof extra, "%zu tokens", gen_tokens);
                    rt_progress_update(&bar, n_done, extra);
                }
                continue;
            }
            rows[nr] = &g->kv;
            toks[nr] = t;
            slot_of[nr] = s;
            nr++;
        }
        if (nr == 0 && next >= n_prompts) break;
        if (nr > 0) {
            if (decoder_run(&dec, rows, toks, nr, NULL, logits)) goto done;
            for (size_t r = 0; r < nr; r++) memcpy(slots[slot_of[r]].logits, logits + r * V, V * sizeof(float));
        }
    }
    if (show_progress) rt_progress_finish(&bar, NULL);
    rc = 0;
done:
    if (slots)
        for (size_t s = 0; s < nslot; s++) {
            kv_cache_free(&slots[s].kv);
            sampler_free(&slots[s].smp);
            free(slots[s].logits);
            free(slots[s].hist);
        }
    decoder_free(&dec);
    free(slots);
    free(rows);
    free(toks);
    free(slot_of);
    free(logits);
    free(raw);
    if (rc)
        for (size_t i = 0; i < n_prompts; i++) kd_gen_seq_free(&out[i]);
    return rc;
}
