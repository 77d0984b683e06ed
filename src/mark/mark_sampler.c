/*
 * mark_sampler.c — the watermark inside the sampler: the KGW logits processor (adds delta to
 * the logits of the window's green tokens, before temperature / top-k / top-p) and the
 * Gumbel-max token selector (argmax of ln(r_v) / p_v over the filtered distribution).
 * Both read only the shared mark_ctx and the token history, so one context can serve any
 * number of samplers and threads. Not the sampler (src/model/sampler.c).
 */
#include <math.h>

#include "mark.h"
#include "mark_internal.h"

void mark_green_mask(const mark_ctx *c, const int32_t *history, size_t n_history, size_t V, uint8_t *green) {
    size_t h = c->p.context;
    int32_t window[MARK_MAX_CONTEXT];
    mark_window_at(history, n_history, h, window);
    mark_score_key k;
    memset(&k, 0, sizeof k);
    if (c->p.scheme == MARK_KGW) {
        /* the window words are the same for every candidate: fill once */
        for (size_t i = 0; i < h; i++) k.w[i] = (uint32_t)window[i];
        for (size_t v = 0; v < V; v++) {
            k.w[h] = (uint32_t)v;
            green[v] = (uint8_t)mark_key_is_green(c, &k, h + 1);
        }
        return;
    }
    for (size_t v = 0; v < V; v++) {
        size_t nw = mark_key_fill(c, window, (int32_t)v, &k);
        green[v] = (uint8_t)mark_key_is_green(c, &k, nw);
    }
}

static void kgw_process(void *ud, float *logits, size_t V, const int32_t *history, size_t n_history) {
    const mark_ctx *c = ud;
    size_t h = c->p.context;
    float delta = (float)c->p.delta;
    int32_t window[MARK_MAX_CONTEXT];
    mark_window_at(history, n_history, h, window);
    mark_score_key k;
    memset(&k, 0, sizeof k);
    if (c->p.scheme == MARK_KGW) {
        for (size_t i = 0; i < h; i++) k.w[i] = (uint32_t)window[i];
        for (size_t v = 0; v < V; v++) {
            k.w[h] = (uint32_t)v;
            if (mark_key_is_green(c, &k, h + 1)) logits[v] += delta;
        }
        return;
    }
    for (size_t v = 0; v < V; v++) {
        size_t nw = mark_key_fill(c, window, (int32_t)v, &k);
        if (mark_key_is_green(c, &k, nw)) logits[v] += delta;
    }
}

static int32_t gumbel_select(void *ud, const float *probs, size_t V, const int32_t *history, size_t n_history) {
    const mark_ctx *c = ud;
    size_t h = c->p.context;
    int32_t window[MARK_MAX_CONTEXT];
    mark_window_at(history, n_history, h, window);
    mark_score_key k;
    memset(&k, 0, sizeof k);
    for (size_t i = 0; i < h; i++) k.w[i] = (uint32_t)window[i];
    int32_t best = -1;
    double best_key = -INFINITY;
    for (size_t v = 0; v < V; v++) {
        if (!(probs[v] > 0)) continue;
        k.w[h] = (uint32_t)v;
        double r = mark_key_gumbel(c, &k, h + 1);
        double key = log(r) / (double)probs[v]; /* argmax r^(1/p) */
        if (best < 0 || key > best_key) {
            best_key = key;
            best = (int32_t)v;
        }
    }
    if (best < 0) { /* no mass anywhere (cannot happen after the sampler's filtering) */
        best = 0;
        for (size_t v = 1; v < V; v++)
            if (probs[v] > probs[best]) best = (int32_t)v;
    }
    return best;
}

int mark_attach(sampler *s, const mark_ctx *c) {
    if (mark_params_validate(&c->p)) return -1;
    if (c->p.scheme == MARK_GUMBEL) {
        if (s->select)
            return RT_FAIL("watermark: this sampler already has a token selector; Gumbel needs the final draw");
        sampler_set_selector(s, gumbel_select, (void *)c);
        return 0;
    }
    return sampler_add_processor(s, kgw_process, (void *)c);
}

int mark_attach_cb(void *ud, sampler *s) { return mark_attach(s, (const mark_ctx *)ud); }
