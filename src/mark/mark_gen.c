/*
 * mark_gen.c — the model-side work of the experiments and the radioactivity tests:
 * batched generation of many completions (one KV cache and one sampler per slot, all slots
 * advanced together through decoder_run — continuous batching), with or without the
 * watermark, and teacher-forced top-1 predictions with the model's own log-likelihood
 * (reading mode; also the teacher perplexity of the quality experiment).
 * Not a server: no streaming, no scheduling fairness, no stop strings.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mark.h"

/* ---------------------------------------------------------------- top-k / top-p filter */

/* The sampler sorts the whole vocabulary for top-k / top-p on every token, which dominates
 * the cost of batched generation with small models. This processor applies the same filter
 * (candidates ordered by logit descending, ties by id; keep the first k; then the smallest
 * prefix whose softmax(l/T) mass reaches top_p) with a selection instead of a sort, by
 * setting the logits of dropped tokens to -inf; the sampler then runs with top_k = 0 and
 * top_p = 1 and draws from the same distribution. It runs after the watermark's processor,
 * as the sampler's own filter does. */
typedef struct {
    float logit;
    int32_t id;
} gen_cand;

typedef struct {
    size_t k;
    float top_p, temperature;
    gen_cand *c; /* (V) scratch */
} gen_filter;

static inline int cand_before(const gen_cand *a, const gen_cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

/* Reorder c[0..n) so that c[0..k) are the k first in cand_before order (unordered). */
static void cand_select(gen_cand *c, size_t n, size_t k) {
    size_t lo = 0, hi = n; /* the k-th boundary lies in [lo, hi) */
    while (hi - lo > 1) {
        gen_cand pv = c[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        /* three-way partition: [lo, i) before pv, [i, j) equal (only pv itself: the order is
         * total), [j, hi) after */
        size_t m = lo;
        while (m < j) {
            if (cand_before(&c[m], &pv)) {
                gen_cand t = c[i]; c[i] = c[m]; c[m] = t;
                i++, m++;
            } else if (cand_before(&pv, &c[m])) {
                j--;
                gen_cand t = c[j]; c[j] = c[m]; c[m] = t;
            } else {
                m++;
            }
        }
        if (k < i) hi = i;
        else if (k > j) lo = j;
        else return;
    }
}

static int cand_cmp(const void *a, const void *b) {
    const gen_cand *x = a, *y = b;
    return cand_before(x, y) ? -1 : cand_before(y, x) ? 1 : 0;
}

static void filter_apply(gen_filter *f, float *logits, size_t V) {
    size_t k = (f->k > 0 && f->k < V) ? f->k : V;
    if (k == V && f->top_p >= 1.0f) return;
    gen_cand *c = f->c;
    for (size_t i = 0; i < V; i++) c[i] = (gen_cand){logits[i], (int32_t)i};
    if (k < V) cand_select(c, V, k);
    qsort(c, k, sizeof *c, cand_cmp); /* k is small (top-k); a full sort only without top-k */
    size_t keep = k;
    if (f->top_p < 1.0f) {
        float inv_t = f->temperature > 0 ? 1.0f / f->temperature : 1.0f;
        double sum = 0, cum = 0;
        for (size_t j = 0; j < k; j++) sum += expf((c[j].logit - c[0].logit) * inv_t);
        for (keep = 0; keep < k;) {
            cum += expf((c[keep].logit - c[0].logit) * inv_t) / sum;
            keep++;
            if (cum >= f->top_p) break;
        }
    }
    for (size_t j = keep; j < V; j++) logits[c[j].id] = -INFINITY;
}

int mark_filter_logits(float *logits, size_t V, size_t top_k, float top_p, float temperature, void *scratch) {
    gen_cand *own = NULL, *c = scratch;
    if (!c) {
        own = c = rt_malloc_array(V, sizeof(gen_cand), "top-k filter");
        if (!c) return -1;
    }
    gen_filter f = {.k = top_k, .top_p = top_p, .temperature = temperature, .c = c};
    filter_apply(&f, logits, V);
    free(own);
    return 0;
}

static void filter_process(void *ud, float *logits, size_t V, const int32_t *history, size_t n_history) {
    (void)history, (void)n_history;
    filter_apply(ud, logits, V);
}

/* ---------------------------------------------------------------- generation */

typedef struct {
    kv_cache kv;
    sampler smp;
    gen_filter filt;
    int32_t *hist;   /* (ctx_len + max_new) prompt then completion */
    size_t n_prompt; /* prompt tokens in hist */
    size_t n_gen;    /* completion tokens in hist */
    size_t idx;      /* prompt index; SIZE_MAX = idle */
    float *logits;   /* (V) next-token logits */
} gen_slot;

static int slot_start(gen_slot *sl, decoder *d, const model *m, const int32_t *prompt, size_t plen, size_t idx,
                      const sampler_params *p) {
    size_t n_ctx = m->cfg.ctx_len;
    if (plen == 0) return RT_FAIL("prompt %zu is empty (no tokens); give each prompt some text", idx + 1);
    if (plen > n_ctx - 1) { /* keep the prompt's end: the continuation depends on it */
        size_t keep = n_ctx / 2;
        prompt += plen - keep;
        plen = keep;
    }
    memcpy(sl->hist, prompt, plen * sizeof(int32_t));
    sl->n_prompt = plen;
    sl->n_gen = 0;
    sl->idx = idx;
    kv_cache_clear(&sl->kv);
    rt_rng_seed(&sl->smp.rng, p->seed + idx);
    return decoder_prefill(d, &sl->kv, sl->hist, plen, sl->logits, NULL);
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
    size_t V = m->cfg.vocab_size, n_ctx = m->cfg.ctx_len;
    if (n_ctx < 2) return RT_FAIL("the model's context (%zu) is too short to generate", n_ctx);
    if (batch == 0) batch = 1;
    if (batch > n) batch = n;
    int32_t eos = tokenizer_eos(m->tok);
    gen_slot *slots = rt_calloc(batch, sizeof *slots, "generation slots");
    kv_cache **rows_kv = rt_malloc_array(batch, sizeof *rows_kv, "generation rows");
    int32_t *rows_tok = rt_malloc_array(batch, sizeof *rows_tok, "generation rows");
    size_t *rows_slot = rt_malloc_array(batch, sizeof *rows_slot, "generation rows");
    float *rows_logits = rt_malloc_array(batch * V, sizeof(float), "generation logits");
    decoder dec = {0};
    int rc = -1;
    size_t next = 0, done = 0;
    rt_progress prog;
    if (!slots || !rows_kv || !rows_tok || !rows_slot || !rows_logits) goto fail;
    if (decoder_init(&dec, m, RT_MIN(n_ctx, (size_t)128) > batch ? RT_MIN(n_ctx, (size_t)128) : batch)) goto fail;
    for (size_t b = 0; b < batch; b++) {
        gen_slot *sl = &slots[b];
        sl->idx = SIZE_MAX;
        sampler_params sp = *p;
        int filter = p->temperature > 0 && ((p->top_k > 0 && p->top_k < V) || p->top_p < 1.0f);
        if (filter) { /* the filter below does top-k / top-p; the sampler only draws */
            sp.top_k = 0;
            sp.top_p = 1.0f;
        }
        if (kv_cache_init(&sl->kv, &m->cfg, n_ctx) || sampler_init(&sl->smp, V, &sp)) goto fail;
        if (mark && mark_attach(&sl->smp, mark)) goto fail;
        if (filter) {
            sl->filt = (gen_filter){.k = p->top_k, .top_p = p->top_p, .temperature = p->temperature};
            sl->filt.c = rt_malloc_array(V, sizeof(gen_cand), "top-k filter");
            if (!sl->filt.c || sampler_add_processor(&sl->smp, filter_process, &sl->filt)) goto fail;
        }
        sl->hist = rt_malloc_array(n_ctx + max_new + 1, sizeof(int32_t), "generation history");
        sl->logits = rt_malloc_array(V, sizeof(float), "generation logits");
        if (!sl->hist || !sl->logits) goto fail;
    }
    if (show_progress) rt_progress_init(&prog, "generate", n);
    for (size_t b = 0; b < batch && next < n; b++, next++)
        if (slot_start(&slots[b], &dec, m, prompts[next], prompt_lens[next], next, p)) goto fail;
    while (done < n) {
        size_t nrows = 0;
        for (size_t b = 0; b < batch; b++) {
            gen_slot *sl = &slots[b];
            while (sl->idx != SIZE_MAX) {
                int32_t t = max_new > 0 ? sampler_sample(&sl->smp, sl->logits, sl->hist, sl->n_prompt + sl->n_gen)
                                        : eos;
                int finished = t == eos;
                if (!finished) sl->hist[sl->n_prompt + sl->n_gen++] = t;
                if (sl->n_gen >= max_new) finished = 1;
                if (!finished && sl->kv.len >= n_ctx) {
                    /* context shift: restart the cache from the last n_ctx/2 tokens (t included) */
                    size_t total = sl->n_prompt + sl->n_gen, keep = n_ctx / 2;
                    kv_cache_clear(&sl->kv);
                    if (decoder_prefill(&dec, &sl->kv, sl->hist + total - keep, keep, sl->logits, NULL)) goto fail;
                    continue;
                }
                if (!finished) {
                    rows_kv[nrows] = &sl->kv;
                    rows_tok[nrows] = t;
                    rows_slot[nrows] = b;
                    nrows++;
                    break;
                }
                /* completion done: hand it over, start the next prompt in this slot */
                size_t i = sl->idx;
                out[i] = rt_malloc_array(sl->n_gen ? sl->n_gen : 1, sizeof(int32_t), "completion");
                if (!out[i]) goto fail;
                memcpy(out[i], sl->hist + sl->n_prompt, sl->n_gen * sizeof(int32_t));
                n_out[i] = sl->n_gen;
                done++;
                if (show_progress) rt_progress_update(&prog, done, NULL);
                sl->idx = SIZE_MAX;
                if (next < n) {
                    if (slot_start(sl, &dec, m, prompts[next], prompt_lens[next], next, p)) goto fail;
                    next++;
                }
            }
        }
        if (nrows == 0) continue;
        if (decoder_run(&dec, rows_kv, rows_tok, nrows, NULL, rows_logits)) goto fail;
        for (size_t r = 0; r < nrows; r++) memcpy(slots[rows_slot[r]].logits, rows_logits + r * V, V * sizeof(float));
    }
    if (show_progress) rt_progress_finish(&prog, NULL);
    rc = 0;
fail:
    if (rc)
        for (size_t i = 0; i < n; i++) {
            free(out[i]);
            out[i] = NULL;
            n_out[i] = 0;
        }
    if (slots)
        for (size_t b = 0; b < batch; b++) {
            kv_cache_free(&slots[b].kv);
            sampler_free(&slots[b].smp);
            free(slots[b].filt.c);
            free(slots[b].hist);
            free(slots[b].logits);
        }
    free(slots);
    free(rows_kv);
    free(rows_tok);
    free(rows_slot);
    free(rows_logits);
    decoder_free(&dec);
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
