/*
 * sampler.c — next-token choice: logits processors (the watermark hook), temperature,
 * top-k, top-p, then a seeded categorical draw or a custom selector.
 * Not a beam search; not where log-probs for the API are computed (serve does that from
 * the raw logits, before any processor).
 */
#include "model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sampler_cand {
    float logit;
    int32_t id;
};

sampler_params sampler_defaults(void) {
    sampler_params p = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .seed = 0};
    return p;
}

int sampler_init(sampler *s, size_t V, const sampler_params *p) {
    memset(s, 0, sizeof *s);
    if (V == 0) return RT_FAIL("sampler: empty vocabulary");
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return RT_FAIL("temperature must be >= 0 (got %g)", (double)p->temperature);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return RT_FAIL("top_p must be in (0, 1] (got %g)", (double)p->top_p);
    s->p = *p;
    s->V = V;
    rt_rng_seed(&s->rng, p->seed);
    s->probs = rt_malloc_array(V, sizeof(float), "sampler");
    s->cand = rt_malloc_array(V, sizeof(struct sampler_cand), "sampler");
    if (!s->probs || !s->cand) {
        sampler_free(s);
        return -1;
    }
    return 0;
}

void sampler_free(sampler *s) {
    free(s->probs);
    free(s->cand);
    memset(s, 0, sizeof *s);
}

int sampler_add_processor(sampler *s, logits_processor_fn fn, void *ud) {
    if (s->n_procs >= SAMPLER_MAX_PROCESSORS)
        return RT_FAIL("sampler: at most %d logits processors", SAMPLER_MAX_PROCESSORS);
    s->procs[s->n_procs].fn = fn;
    s->procs[s->n_procs].ud = ud;
    s->n_procs++;
    return 0;
}

void sampler_set_selector(sampler *s, token_selector_fn fn, void *ud) {
    s->select = fn;
    s->select_ud = ud;
}

const float *sampler_last_probs(const sampler *s) { return s->probs; }

/* Descending logit; ties by ascending id, so the order never depends on qsort. */
static int cand_cmp(const void *a, const void *b) {
    const struct sampler_cand *x = a, *y = b;
    if (x->logit > y->logit) return -1;
    if (x->logit < y->logit) return 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Reorder c[0..n) so that its first k entries are the k best under cand_cmp (in any
 * order): iterative quickselect with a median-of-three pivot, O(n) on average. */
static void cand_select(struct sampler_cand *c, size_t n, size_t k) {
    size_t lo = 0, hi = n; /* the k-th boundary lies in [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2, last = hi - 1;
        /* median of three to position last */
        if (cand_cmp(&c[mid], &c[lo]) < 0) { struct sampler_cand t = c[mid]; c[mid] = c[lo]; c[lo] = t; }
        if (cand_cmp(&c[last], &c[lo]) < 0) { struct sampler_cand t = c[last]; c[last] = c[lo]; c[lo] = t; }
        if (cand_cmp(&c[mid], &c[last]) < 0) { struct sampler_cand t = c[mid]; c[mid] = c[last]; c[last] = t; }
        struct sampler_cand pivot = c[last];
        size_t store = lo;
        for (size_t i = lo; i < last; i++) {
            if (cand_cmp(&c[i], &pivot) < 0) {
                struct sampler_cand t = c[i];
                c[i] = c[store];
                c[store] = t;
                store++;
            }
        }
        c[last] = c[store];
        c[store] = pivot;
        if (store == k || store + 1 == k) return;
        if (store > k) hi = store;
        else lo = store + 1;
    }
}

int32_t sampler_sample(sampler *s, float *logits, const int32_t *history, size_t n_history) {
    size_t V = s->V;
    for (size_t i = 0; i < s->n_procs; i++) s->procs[i].fn(s->procs[i].ud, logits, V, history, n_history);
    if (s->p.temperature == 0 && !s->select) {
        size_t best = 0;
        for (size_t i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        memset(s->probs, 0, V * sizeof(float));
        s->probs[best] = 1.0f;
        return (int32_t)best;
    }
    float inv_t = s->p.temperature > 0 ? 1.0f / s->p.temperature : 1.0f;
    /* candidates: all ids, or the top-k / top-p set, sorted by logit */
    size_t k = (s->p.top_k > 0 && s->p.top_k < V) ? s->p.top_k : V;
    if (s->p.temperature == 0) k = 1; /* greedy under a selector: it sees a one-hot */
    int need_sort = k < V || s->p.top_p < 1.0f;
    for (size_t i = 0; i < V; i++) {
        s->cand[i].logit = logits[i];
        s->cand[i].id = (int32_t)i;
    }
    if (k < V) { /* top-k: select, then sort only the k kept */
        cand_select(s->cand, V, k);
        qsort(s->cand, k, sizeof *s->cand, cand_cmp);
    } else if (need_sort) {
        qsort(s->cand, V, sizeof *s->cand, cand_cmp);
    }
    float maxl = -INFINITY;
    for (size_t j = 0; j < k; j++) maxl = fmaxf(maxl, s->cand[j].logit);
    double sum = 0;
    memset(s->probs, 0, V * sizeof(float));
    for (size_t j = 0; j < k; j++) {
        float e = expf((s->cand[j].logit - maxl) * inv_t);
        s->probs[s->cand[j].id] = e;
        sum += e;
    }
    if (s->p.top_p < 1.0f) {
        double cum = 0;
        size_t keep = 0;
        while (keep < k) {
            cum += s->probs[s->cand[keep].id] / sum;
            keep++;
            if (cum >= s->p.top_p) break;
        }
        for (size_t j = keep; j < k; j++) s->probs[s->cand[j].id] = 0;
        k = keep;
        sum = 0;
        for (size_t j = 0; j < k; j++) sum += s->probs[s->cand[j].id];
    }
    float inv = (float)(1.0 / sum);
    for (size_t j = 0; j < k; j++) s->probs[s->cand[j].id] *= inv;
    if (s->select) return s->select(s->select_ud, s->probs, V, history, n_history);
    double u = rt_rng_double(&s->rng), cum = 0;
    int32_t last = s->cand[0].id;
    for (size_t j = 0; j < k; j++) {
        int32_t id = s->cand[j].id;
        if (s->probs[id] <= 0) continue;
        cum += s->probs[id];
        last = id;
        if (u < cum) return id;
    }
    return last; /* rounding: fall back to the last candidate with mass */
}
