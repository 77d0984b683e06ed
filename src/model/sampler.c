/*
 * sampler.c — next-token choice: logits processors (the watermark hook), temperature,
 * top-k, top-p (one filter, filter_candidates, used both for the draw and for the masking
 * mode), then a seeded categorical draw or a custom selector.
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

/* The one top-k / top-p filter. c[0..V) holds every candidate; afterwards c[0..keep) are the
 * kept ones: the k best (by logit, ties by id), then the shortest prefix of them whose
 * softmax(logit * inv_t) mass reaches top_p. c[0..k) is sorted whenever k < V or top_p < 1;
 * with neither, nothing moves and keep = V. Returns keep. */
static size_t filter_candidates(struct sampler_cand *c, size_t V, size_t k, float top_p, float inv_t) {
    if (k < V) { /* top-k: select, then sort only the k kept */
        cand_select(c, V, k);
        qsort(c, k, sizeof *c, cand_cmp);
    } else if (top_p < 1.0f) {
        qsort(c, V, sizeof *c, cand_cmp);
    }
    if (!(top_p < 1.0f)) return k;
    double sum = 0, cum = 0;
    for (size_t j = 0; j < k; j++) sum += expf((c[j].logit - c[0].logit) * inv_t);
    size_t keep = 0;
    while (keep < k) {
        cum += expf((c[keep].logit - c[0].logit) * inv_t) / sum;
        keep++;
        if (cum >= top_p) break;
    }
    return keep;
}

/* mask_filter mode: logits outside the filtered set become -inf. */
static void filter_mask(struct sampler_cand *c, float *logits, size_t V, size_t top_k, float top_p, float temperature) {
    size_t k = (top_k > 0 && top_k < V) ? top_k : V;
    if (k == V && !(top_p < 1.0f)) return;
    for (size_t i = 0; i < V; i++) {
        c[i].logit = logits[i];
        c[i].id = (int32_t)i;
    }
    float inv_t = temperature > 0 ? 1.0f / temperature : 1.0f;
    size_t keep = filter_candidates(c, V, k, top_p, inv_t);
    for (size_t j = keep; j < V; j++) logits[c[j].id] = -INFINITY;
}

int sampler_filter_logits(float *logits, size_t V, size_t top_k, float top_p, float temperature) {
    struct sampler_cand *c = rt_malloc_array(V, sizeof *c, "top-k filter");
    if (!c) return -1;
    filter_mask(c, logits, V, top_k, top_p, temperature);
    free(c);
    return 0;
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
    size_t top_k = s->p.top_k;
    float top_p = s->p.top_p;
    if (s->p.mask_filter && s->p.temperature > 0) { /* filter by masking; draw over the vocabulary */
        filter_mask(s->cand, logits, V, top_k, top_p, s->p.temperature);
        top_k = 0;
        top_p = 1.0f;
    }
    /* candidates: all ids, or the top-k / top-p set, sorted by logit */
    size_t k = (top_k > 0 && top_k < V) ? top_k : V;
    if (s->p.temperature == 0) k = 1; /* greedy under a selector: it sees a one-hot */
    for (size_t i = 0; i < V; i++) {
        s->cand[i].logit = logits[i];
        s->cand[i].id = (int32_t)i;
    }
    k = filter_candidates(s->cand, V, k, top_p, inv_t);
    float maxl = -INFINITY;
    for (size_t j = 0; j < k; j++) maxl = fmaxf(maxl, s->cand[j].logit);
    double sum = 0;
    memset(s->probs, 0, V * sizeof(float));
    for (size_t j = 0; j < k; j++) {
        float e = expf((s->cand[j].logit - maxl) * inv_t);
        s->probs[s->cand[j].id] = e;
        sum += e;
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
