/*
 * antidistill.c — antidistillation sampling (contract in mark.h): the proxy's task gradient
 * by backprop, two perturbed copies of the proxy (theta +- eps u) with a KV cache each per
 * sequence slot, and the logits processor that adds lambda * b(. | history) to the teacher's
 * raw logits, b being the central difference of the two copies' next-token log-probs.
 * Not the sampler (src/model/sampler.c) and not the watermark (mark_sampler.c); the
 * experiments that measure it live in experiments/antidistill_tradeoff.sh.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mark.h"

typedef struct {
    mark_adist *owner;
    kv_cache kp, km;   /* the sequence's caches under theta + eps u and theta - eps u */
    size_t off;        /* history index of the caches' first position */
    int32_t *fed;      /* (cap) tokens in the caches, to check the history did not change */
    size_t n_fed;
    float *b;          /* (V) the shift mark_adist_prepare computed for the next position */
    size_t b_for;      /* the history length b is for; 0 = none prepared */
    size_t todo_k;     /* mark_adist_prepare's scratch: tokens this slot feeds in the batch */
    int attached;      /* mark_adist_attach gave this slot's sequence the processor */
} adist_slot;

struct mark_adist {
    mark_adist_params p;
    model *plus, *minus; /* bare copies of the proxy, weights moved by +- eps u */
    decoder dp, dm;
    size_t V, cap;       /* vocabulary; cache positions per slot */
    adist_slot *slots;   /* (max_seqs) */
    float *lp, *lm;      /* (V) next-token logits of the two copies */
    size_t rows;         /* the decoders' rows per pass */
    float *rp, *rm;      /* (rows, V) a batched pass's logits, per copy */
    kv_cache **cp, **cm; /* (rows) a batched pass's caches, per copy */
    int32_t *rt;         /* (rows) its tokens */
    uint8_t *rw;         /* (rows) its wanted rows */
    size_t *rs;          /* (rows) the slot of each row */
    double grad_norm;
    mark_adist_stats st;
    int warned;
};

void mark_adist_defaults(mark_adist_params *p) {
    memset(p, 0, sizeof *p);
    p->lambda = 0;
    p->eps = 1e-2;
    p->max_seqs = 1;
    p->gate = 0;
}

/* ---------------------------------------------------------------- the task gradient */

/* Example e as a row of T inputs and targets (-1 outside the completion and after its end). */
static size_t example_row(const mark_adist_example *e, size_t T, int32_t *in, int32_t *tg) {
    size_t n = RT_MIN(e->n, T + 1), valid = 0;
    for (size_t t = 0; t < T; t++) {
        in[t] = t < n ? e->tokens[t] : e->tokens[n - 1];
        int scored = t + 1 < n && t + 1 >= e->n_prompt && (!e->scored || e->scored[t + 1]);
        tg[t] = scored ? e->tokens[t + 1] : -1;
        valid += (size_t)scored;
    }
    return valid;
}

int mark_adist_task_grad(model *proxy, const mark_adist_example *ex, size_t n, float *g, double *loss) {
    size_t T = 1, total = 0, ctx = proxy->cfg.ctx_len, V = proxy->cfg.vocab_size;
    for (size_t i = 0; i < n; i++) {
        if (ex[i].n == 0) continue;
        for (size_t t = 0; t < ex[i].n; t++)
            if (ex[i].tokens[t] < 0 || (size_t)ex[i].tokens[t] >= V)
                return RT_FAIL("task example %zu: token %zu has id %d, outside the proxy's vocabulary (%zu)", i + 1,
                               t, ex[i].tokens[t], V);
        size_t m = RT_MIN(ex[i].n, ctx + 1);
        if (m >= 2) T = RT_MAX(T, m - 1);
        for (size_t t = RT_MAX(ex[i].n_prompt, (size_t)1); m >= 2 && t < m; t++)
            total += (size_t)(!ex[i].scored || ex[i].scored[t]);
    }
    if (total == 0) return RT_FAIL("the task has no (scored) completion tokens to take the proxy's gradient on");
    const size_t B = 8;
    int32_t *in = rt_malloc_array(B * T, sizeof(int32_t), "task batch");
    int32_t *tg = rt_malloc_array(B * T, sizeof(int32_t), "task batch");
    int rc = -1;
    double sum = 0;
    if (!in || !tg) goto done;
    model_zero_grad(proxy);
    if (!proxy->grads) goto done;
    for (size_t i = 0; i < n;) {
        size_t b = 0, nv = 0;
        for (; i < n && b < B; i++) {
            if (ex[i].n == 0) continue;
            nv += example_row(&ex[i], T, in + b * T, tg + b * T);
            b++;
        }
        if (b == 0 || nv == 0) continue;
        if (!model_forward(proxy, in, b, T)) goto done;
        size_t nv2;
        float l = model_loss_ce(proxy, tg, 1, &nv2);
        sum += (double)l * (double)nv2;
        /* the batch's mean-loss gradient, weighted by its share of all scored tokens */
        float w = (float)((double)nv2 / (double)total), *dl = model_dlogits(proxy);
        for (size_t k = 0; k < b * T * V; k++) dl[k] *= w;
        if (model_backward(proxy)) goto done;
    }
    memcpy(g, proxy->grads, proxy->n_params * sizeof(float));
    if (loss) *loss = sum / (double)total;
    rc = 0;
done:
    free(in);
    free(tg);
    return rc;
}

static const char *const scope_names[] = {"all", "digits", "answer"};

int mark_adist_scope_parse(const char *s, int *out) {
    for (size_t i = 0; i < RT_ARRAY_LEN(scope_names); i++)
        if (s && !strcmp(s, scope_names[i])) {
            *out = (int)i;
            return 0;
        }
    return RT_FAIL("antidistillation task scope must be all, digits or answer (got '%s')", s ? s : "");
}

const char *mark_adist_scope_name(int scope) {
    return scope >= 0 && (size_t)scope < RT_ARRAY_LEN(scope_names) ? scope_names[scope] : "?";
}

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* The scored mask of one completion's m tokens (text: its bytes) under scope (not ALL):
 * DIGITS, a token with a digit byte; ANSWER, a token overlapping the text's last digit run. */
static void scope_mask(const tokenizer *tok, int scope, const int32_t *ids, size_t m, const char *text, size_t len,
                       uint8_t *mask) {
    size_t a = len, b = len; /* the last digit run [a, b) */
    while (b > 0 && !is_digit(text[b - 1])) b--;
    for (a = b; a > 0 && is_digit(text[a - 1]); a--) {}
    for (size_t k = 0, off = 0; k < m; k++) {
        size_t tl = 0;
        const char *tb = tokenizer_token_bytes(tok, ids[k], &tl);
        int hit = 0;
        if (scope == MARK_ADIST_SCOPE_DIGITS)
            for (size_t j = 0; tb && j < tl; j++) hit |= is_digit(tb[j]);
        else
            hit = a < b && off < b && off + tl > a;
        mask[k] = (uint8_t)hit;
        off += tl;
    }
}

/* Append one part's m mask bytes to mask (scope -1: a prompt, nothing scored), adding the
 * scored ones to *n_scored. */
static int append_mask(rt_buf *mask, const tokenizer *tok, int scope, const int32_t *ids, size_t m, const char *text,
                       size_t len, size_t *n_scored) {
    if (rt_buf_reserve(mask, m)) return -1;
    uint8_t *mk = (uint8_t *)mask->data + mask->len;
    memset(mk, 0, m);
    if (scope >= 0) scope_mask(tok, scope, ids, m, text, len, mk);
    for (size_t j = 0; j < m; j++) *n_scored += mk[j];
    mask->len += m;
    mask->data[mask->len] = '\0'; /* rt_buf's contract: terminated past len */
    return 0;
}

int mark_adist_task_load(const char *path, const tokenizer *tok, int scope, int32_t **toks_out, uint8_t **scored_out,
                         mark_adist_example **ex_out, size_t *n_out) {
    *toks_out = NULL;
    *scored_out = NULL;
    *ex_out = NULL;
    *n_out = 0;
    if (scope < MARK_ADIST_SCOPE_ALL || scope > MARK_ADIST_SCOPE_ANSWER)
        return RT_FAIL("antidistillation task scope %d is not one of all, digits, answer", scope);
    mark_record *recs = NULL;
    size_t nr = 0, n_scored = 0;
    if (mark_records_load(path, 0, &recs, &nr)) return -1;
    rt_buf toks = {0}, mask = {0};
    size_t *starts = rt_calloc(nr ? nr : 1, sizeof *starts, "task examples");
    mark_adist_example *ex = rt_calloc(nr ? nr : 1, sizeof *ex, "task examples");
    int32_t eos = tokenizer_eos(tok);
    int rc = -1, masked = scope != MARK_ADIST_SCOPE_ALL;
    if (!starts || !ex) goto done;
    for (size_t i = 0; i < nr; i++) {
        starts[i] = toks.len / sizeof(int32_t);
        const char *parts[2] = {recs[i].prompt, recs[i].completion};
        size_t lens[2] = {recs[i].prompt_len, recs[i].completion_len};
        for (int k = 0; k < 2; k++) {
            int32_t *ids = NULL;
            size_t m = 0;
            if (parts[k] && lens[k] && tokenizer_encode(tok, parts[k], lens[k], 0, &ids, &m)) {
                RT_FAIL("%s: record %zu: %s", path, i + 1, rt_errmsg());
                goto done;
            }
            int ok = !m || !rt_buf_append(&toks, ids, m * sizeof(int32_t));
            if (ok && masked && m) ok = !append_mask(&mask, tok, k == 1 ? scope : -1, ids, m, parts[k], lens[k], &n_scored);
            free(ids);
            if (!ok) goto done;
            if (k == 0) ex[i].n_prompt = m;
        }
        if (recs[i].completion && eos >= 0) {
            uint8_t zero = 0; /* the eos is scored under ALL only */
            if (rt_buf_append(&toks, &eos, sizeof eos) || (masked && rt_buf_append(&mask, &zero, 1))) goto done;
        }
        ex[i].n = toks.len / sizeof(int32_t) - starts[i];
    }
    if (nr == 0) {
        RT_FAIL("%s: no task examples", path);
        goto done;
    }
    if (masked && n_scored == 0) {
        RT_FAIL("%s: no completion token is in the task scope '%s' (%s)", path, mark_adist_scope_name(scope),
                scope == MARK_ADIST_SCOPE_DIGITS ? "no digits" : "no completion has a number");
        goto done;
    }
    for (size_t i = 0; i < nr; i++) {
        ex[i].tokens = (const int32_t *)(void *)toks.data + starts[i];
        ex[i].scored = masked ? (const uint8_t *)mask.data + starts[i] : NULL;
    }
    *toks_out = (int32_t *)(void *)toks.data;
    *scored_out = masked ? (uint8_t *)mask.data : NULL;
    toks.data = mask.data = NULL;
    *ex_out = ex;
    ex = NULL;
    *n_out = nr;
    rc = 0;
done:
    rt_buf_free(&toks);
    rt_buf_free(&mask);
    free(ex);
    free(starts);
    mark_records_free(recs, nr);
    return rc;
}

/* ---------------------------------------------------------------- the sampler state */

static int copy_moved(model **out, const model *src, const float *g, double step) {
    if (model_create(out, &src->cfg, NULL)) return -1;
    model *m = *out;
    if (src->rope_factors && model_set_rope_factors(m, src->rope_factors)) return -1;
    for (size_t i = 0; i < src->n_params; i++) m->params[i] = (float)((double)src->params[i] + step * (double)g[i]);
    return 0;
}

int mark_adist_new(mark_adist **out, const model *proxy, const float *g, const mark_adist_params *p) {
    *out = NULL;
    if (!(p->lambda >= 0) || !isfinite(p->lambda))
        return RT_FAIL("antidistillation lambda must be a finite number >= 0 (got %g)", p->lambda);
    if (!(p->eps > 0) || !isfinite(p->eps))
        return RT_FAIL("antidistillation eps must be a finite number > 0 (got %g)", p->eps);
    if (p->max_seqs == 0) return RT_FAIL("antidistillation: max_seqs must be at least 1");
    if (!(p->gate >= 0) || !isfinite(p->gate))
        return RT_FAIL("antidistillation gate must be a finite margin >= 0 (got %g; 0 = shift every position)", p->gate);
    double nn = 0;
    for (size_t i = 0; i < proxy->n_params; i++) nn += (double)g[i] * (double)g[i];
    if (!(nn > 0) || !isfinite(nn))
        return RT_FAIL("the proxy's task gradient is %s; antidistillation needs a direction",
                       nn > 0 ? "not finite" : "zero");
    mark_adist *a = rt_calloc(1, sizeof *a, "antidistillation");
    if (!a) return -1;
    a->p = *p;
    a->grad_norm = sqrt(nn);
    a->V = proxy->cfg.vocab_size;
    a->cap = p->max_ctx && p->max_ctx < proxy->cfg.ctx_len ? p->max_ctx : proxy->cfg.ctx_len;
    double step = p->eps / a->grad_norm;
    size_t rows = a->rows = RT_MAX(RT_MIN(a->cap, (size_t)64), p->max_seqs);
    a->slots = rt_calloc(p->max_seqs, sizeof *a->slots, "antidistillation slots");
    a->lp = rt_malloc_array(a->V, sizeof(float), "antidistillation logits");
    a->lm = rt_malloc_array(a->V, sizeof(float), "antidistillation logits");
    a->rp = rt_malloc_array(rows * a->V, sizeof(float), "antidistillation batch logits");
    a->rm = rt_malloc_array(rows * a->V, sizeof(float), "antidistillation batch logits");
    a->cp = rt_malloc_array(rows, sizeof *a->cp, "antidistillation batch");
    a->cm = rt_malloc_array(rows, sizeof *a->cm, "antidistillation batch");
    a->rt = rt_malloc_array(rows, sizeof *a->rt, "antidistillation batch");
    a->rw = rt_malloc_array(rows, sizeof *a->rw, "antidistillation batch");
    a->rs = rt_malloc_array(rows, sizeof *a->rs, "antidistillation batch");
    if (!a->slots || !a->lp || !a->lm || !a->rp || !a->rm || !a->cp || !a->cm || !a->rt || !a->rw || !a->rs ||
        copy_moved(&a->plus, proxy, g, step) ||
        copy_moved(&a->minus, proxy, g, -step) || decoder_init(&a->dp, a->plus, rows) ||
        decoder_init(&a->dm, a->minus, rows))
        goto fail;
    for (size_t i = 0; i < p->max_seqs; i++) {
        adist_slot *s = &a->slots[i];
        s->owner = a;
        s->fed = rt_malloc_array(a->cap, sizeof(int32_t), "antidistillation history");
        s->b = rt_malloc_array(a->V, sizeof(float), "antidistillation shift");
        if (!s->fed || !s->b || kv_cache_init(&s->kp, &proxy->cfg, a->cap) || kv_cache_init(&s->km, &proxy->cfg, a->cap))
            goto fail;
    }
    *out = a;
    return 0;
fail:
    mark_adist_free(a);
    return -1;
}

void mark_adist_free(mark_adist *a) {
    if (!a) return;
    if (a->slots)
        for (size_t i = 0; i < a->p.max_seqs; i++) {
            kv_cache_free(&a->slots[i].kp);
            kv_cache_free(&a->slots[i].km);
            free(a->slots[i].fed);
            free(a->slots[i].b);
        }
    free(a->slots);
    decoder_free(&a->dp);
    decoder_free(&a->dm);
    model_free(a->plus);
    model_free(a->minus);
    free(a->lp);
    free(a->lm);
    free(a->rp);
    free(a->rm);
    free(a->cp);
    free(a->cm);
    free(a->rt);
    free(a->rw);
    free(a->rs);
    free(a);
}

size_t mark_adist_vocab(const mark_adist *a) { return a->V; }
double mark_adist_grad_norm(const mark_adist *a) { return a->grad_norm; }
void mark_adist_get_stats(const mark_adist *a, mark_adist_stats *st) { *st = a->st; }

/* Check h[0..n) and reset slot s's caches unless they hold a prefix of it that leaves room;
 * the tokens still to feed are then h + s->off + s->n_fed, n - s->off - s->n_fed of them (a
 * history longer than the cache keeps its last cap/2 tokens). */
static int plan_feed(mark_adist *a, adist_slot *s, const int32_t *h, size_t n) {
    if (n == 0) return RT_FAIL("antidistillation: empty history");
    for (size_t t = 0; t < n; t++)
        if (h[t] < 0 || (size_t)h[t] >= a->V)
            return RT_FAIL("antidistillation: token %d outside the proxy's vocabulary (%zu)", h[t], a->V);
    int same = n > s->off + s->n_fed && s->n_fed > 0 && !memcmp(s->fed, h + s->off, s->n_fed * sizeof(int32_t));
    if (!same || n - s->off > a->cap) {
        s->off = n > a->cap ? n - a->cap / 2 : 0;
        s->n_fed = 0;
        kv_cache_clear(&s->kp);
        kv_cache_clear(&s->km);
    }
    return 0;
}

static void forget(adist_slot *s) {
    s->off = s->n_fed = s->b_for = 0;
    kv_cache_clear(&s->kp);
    kv_cache_clear(&s->km);
}

/* Bring slot s's caches to history[0..n) and leave both copies' next-token logits in lp, lm. */
static int feed(mark_adist *a, adist_slot *s, const int32_t *h, size_t n) {
    if (plan_feed(a, s, h, n)) return -1;
    const int32_t *todo = h + s->off + s->n_fed;
    size_t k = n - s->off - s->n_fed;
    if (decoder_prefill(&a->dp, &s->kp, todo, k, a->lp, NULL) || decoder_prefill(&a->dm, &s->km, todo, k, a->lm, NULL)) {
        forget(s);
        return -1;
    }
    memcpy(s->fed + s->n_fed, todo, k * sizeof(int32_t));
    s->n_fed += k;
    a->st.proxy_tokens += k;
    return 0;
}

/* log-softmax in place, in double accumulation */
static void log_softmax(float *x, size_t V) {
    float mx = x[0];
    for (size_t v = 1; v < V; v++) mx = x[v] > mx ? x[v] : mx;
    double z = 0;
    for (size_t v = 0; v < V; v++) z += exp((double)x[v] - (double)mx);
    float lz = (float)((double)mx + log(z));
    for (size_t v = 0; v < V; v++) x[v] -= lz;
}

/* b = (lp - lm) / (2 eps) after both log-softmaxes (in place on lp, lm). */
static void central_difference(const mark_adist *a, float *lp, float *lm, float *b) {
    log_softmax(lp, a->V);
    log_softmax(lm, a->V);
    double inv = 1.0 / (2.0 * a->p.eps);
    for (size_t v = 0; v < a->V; v++) b[v] = (float)(((double)lp[v] - (double)lm[v]) * inv);
}

int mark_adist_delta(mark_adist *a, size_t slot, const int32_t *history, size_t n_history, float *b) {
    if (slot >= a->p.max_seqs)
        return RT_FAIL("antidistillation: slot %zu of %zu", slot, a->p.max_seqs);
    adist_slot *s = &a->slots[slot];
    s->b_for = 0;
    if (feed(a, s, history, n_history)) return -1;
    central_difference(a, a->lp, a->lm, b);
    return 0;
}

/* The teacher's top-1 minus top-2 raw logit. */
static float top_margin(const float *x, size_t V) {
    float m1 = -INFINITY, m2 = -INFINITY;
    for (size_t v = 0; v < V; v++) {
        if (x[v] > m1) {
            m2 = m1;
            m1 = x[v];
        } else if (x[v] > m2) {
            m2 = x[v];
        }
    }
    return m1 - m2;
}

static int gated_off(const mark_adist *a, const float *raw, size_t V) {
    return a->p.gate > 0 && raw && V > 1 && !(top_margin(raw, V) < (float)a->p.gate);
}

/* One batched pass of both copies over rows [0, n); the wanted rows' b go to their slots. */
static int run_rows(mark_adist *a, size_t n, const size_t *hist_len) {
    if (decoder_run(&a->dp, a->cp, a->rt, n, a->rw, a->rp) || decoder_run(&a->dm, a->cm, a->rt, n, a->rw, a->rm))
        return -1;
    for (size_t r = 0; r < n; r++) {
        adist_slot *s = &a->slots[a->rs[r]];
        s->fed[s->n_fed++] = a->rt[r];
        if (!a->rw[r]) continue;
        central_difference(a, a->rp + r * a->V, a->rm + r * a->V, s->b);
        s->b_for = hist_len[a->rs[r]];
    }
    return 0;
}

int mark_adist_prepare(mark_adist *a, const mark_adist_ready *ready, size_t n) {
    double t0 = rt_now();
    size_t nr = 0, *hist_len = rt_calloc(a->p.max_seqs, sizeof *hist_len, "antidistillation batch");
    int rc = -1;
    if (!hist_len) return -1;
    for (size_t j = 0; j < n; j++) {
        size_t i = ready[j].slot;
        if (i >= a->p.max_seqs) {
            RT_FAIL("antidistillation: slot %zu of %zu", i, a->p.max_seqs);
            goto done;
        }
        adist_slot *s = &a->slots[i];
        s->b_for = 0;
        s->todo_k = 0;
        if (!s->attached || hist_len[i] || gated_off(a, ready[j].raw_logits, a->V)) continue;
        if (plan_feed(a, s, ready[j].hist, ready[j].n_hist)) goto done;
        hist_len[i] = ready[j].n_hist;
        s->todo_k = ready[j].n_hist - s->off - s->n_fed;
        const int32_t *todo = ready[j].hist + s->off + s->n_fed;
        for (size_t t = 0; t < s->todo_k; t++) {
            if (nr == a->rows) { /* a full pass: run it (a slot's rows may span two passes, in order) */
                if (run_rows(a, nr, hist_len)) goto done;
                nr = 0;
            }
            a->cp[nr] = &s->kp;
            a->cm[nr] = &s->km;
            a->rt[nr] = todo[t];
            a->rw[nr] = t + 1 == s->todo_k;
            a->rs[nr] = i;
            nr++;
        }
        a->st.proxy_tokens += s->todo_k;
    }
    if (nr && run_rows(a, nr, hist_len)) goto done;
    a->st.batched_passes++;
    rc = 0;
done:
    if (rc) /* caches of a failed pass are in an unknown state: those slots start afresh */
        for (size_t j = 0; j < n; j++)
            if (ready[j].slot < a->p.max_seqs && hist_len[ready[j].slot]) forget(&a->slots[ready[j].slot]);
    free(hist_len);
    a->st.seconds += rt_now() - t0;
    return rc;
}

const float *mark_adist_prepared(const mark_adist *a, size_t slot, size_t n_history) {
    if (slot >= a->p.max_seqs) return NULL;
    const adist_slot *s = &a->slots[slot];
    return s->b_for && s->b_for == n_history && s->off + s->n_fed == n_history ? s->b : NULL;
}

static void adist_process(void *ud, float *logits, size_t V, const int32_t *history, size_t n_history) {
    adist_slot *s = ud;
    mark_adist *a = s->owner;
    double t0 = rt_now();
    if (V == a->V && gated_off(a, logits, V)) {
        a->st.gated++;
        return;
    }
    const float *b = mark_adist_prepared(a, (size_t)(s - a->slots), n_history);
    if (b) {
        a->st.batched++;
    } else if (V != a->V || mark_adist_delta(a, (size_t)(s - a->slots), history, n_history, a->lp)) {
        /* b goes to lp (the buffer is free once both log-softmaxes are taken) */
        a->st.failures++;
        if (!a->warned++) rt_warn("antidistillation: a position was left unshifted: %s", rt_errmsg());
        return;
    } else {
        b = a->lp;
    }
    s->b_for = 0;
    float lam = (float)a->p.lambda;
    for (size_t v = 0; v < V; v++) logits[v] += lam * b[v];
    a->st.positions++;
    a->st.seconds += rt_now() - t0;
}

void mark_adist_detach(mark_adist *a, size_t slot) {
    if (slot < a->p.max_seqs) {
        forget(&a->slots[slot]);
        a->slots[slot].attached = 0;
    }
}

int mark_adist_attach(mark_adist *a, size_t slot, sampler *s) {
    if (slot >= a->p.max_seqs)
        return RT_FAIL("antidistillation: slot %zu, but the state was made for %zu sequences", slot, a->p.max_seqs);
    if (s->V != a->V)
        return RT_FAIL("antidistillation: the teacher's vocabulary has %zu tokens, the proxy's %zu", s->V, a->V);
    adist_slot *st = &a->slots[slot];
    forget(st);
    st->attached = 0;
    if (sampler_add_processor(s, adist_process, st)) return -1;
    st->attached = 1;
    return 0;
}

/* ---------------------------------------------------------------- from files */

/* Same size and the same bytes for every id. */
static int same_vocab(const tokenizer *t, const tokenizer *p, const char *proxy_path) {
    size_t V = tokenizer_vocab_size(t), VP = tokenizer_vocab_size(p);
    if (V != VP)
        return RT_FAIL("%s: the proxy's vocabulary has %zu tokens, the teacher's %zu; antidistillation needs a proxy "
                       "with the teacher's tokenizer",
                       proxy_path, VP, V);
    for (size_t i = 0; i < V; i++) {
        size_t la, lb;
        const char *x = tokenizer_token_bytes(t, (int32_t)i, &la), *y = tokenizer_token_bytes(p, (int32_t)i, &lb);
        if (la != lb || (la && memcmp(x, y, la)))
            return RT_FAIL("%s: token %zu differs between the proxy's and the teacher's vocabularies; "
                           "antidistillation needs a proxy with the teacher's tokenizer",
                           proxy_path, i);
    }
    return 0;
}

int mark_adist_load(mark_adist **out, const char *proxy_path, const char *task_path, const tokenizer *teacher_tok,
                    const mark_adist_params *p) {
    *out = NULL;
    model *proxy = NULL;
    int32_t *toks = NULL;
    uint8_t *scored = NULL;
    mark_adist_example *ex = NULL;
    size_t n = 0;
    float *g = NULL;
    double loss = 0;
    int rc = -1;
    if (model_load(&proxy, proxy_path)) goto done;
    if (!proxy->tok) {
        RT_FAIL("%s: the proxy has no tokenizer (antidistillation reads the task file with it)", proxy_path);
        goto done;
    }
    if (teacher_tok && same_vocab(teacher_tok, proxy->tok, proxy_path)) goto done;
    if (mark_adist_task_load(task_path, proxy->tok, p->task_scope, &toks, &scored, &ex, &n)) goto done;
    g = rt_malloc_array(proxy->n_params, sizeof(float), "task gradient");
    if (!g) goto done;
    double t0 = rt_now();
    if (mark_adist_task_grad(proxy, ex, n, g, &loss)) {
        RT_FAIL("%s: %s", task_path, rt_errmsg());
        goto done;
    }
    if (mark_adist_new(out, proxy, g, p)) goto done;
    rt_info("antidistillation: proxy %s (%zu parameters), task %s (%zu examples, scope %s, loss %.4f, |g| %.4g, "
            "%.2f s), lambda %g, eps %g",
            proxy_path, proxy->n_params, task_path, n, mark_adist_scope_name(p->task_scope), loss, (*out)->grad_norm,
            rt_now() - t0, p->lambda, p->eps);
    rc = 0;
done:
    free(g);
    free(toks);
    free(scored);
    free(ex);
    model_free(proxy);
    return rc;
}
