/*
 * generate.c — the batched generator (contract in generate.h): slots, one decoder pass per
 * step over every decoding sequence plus prefill chunks, per-sequence samplers, raw
 * log-prob capture, context shift, and generator_run for "continue these n prompts".
 * Not a request scheduler (serve/engine.c) and not a stop-string matcher.
 */
#include "generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* realloc p to count * size bytes, the product checked */
static void *realloc_array(void *p, size_t count, size_t size, const char *what) {
    size_t bytes;
    if (rt_mul_size(count, size, &bytes)) return NULL;
    return rt_realloc(p, bytes, what);
}

typedef enum { GS_FREE = 0, GS_PREFILL, GS_SHARE_WAIT, GS_READY, GS_DECODE } gslot_state;

typedef struct {
    gslot_state state;
    size_t id;
    void *user;
    kv_cache kv;
    sampler smp;
    int smp_live;
    int32_t *hist; /* (cap_hist) prompt then sampled tokens */
    size_t n_hist, cap_hist;
    size_t n_prompt;   /* prompt tokens at the start of hist */
    size_t n_fed;      /* chunked prefill: prompt tokens already in kv */
    size_t n_sampled;
    int32_t next;      /* GS_DECODE: the token to feed */
    uint64_t admitted; /* admission order, for prefill fairness */
    long share;        /* GS_SHARE_WAIT: the slot whose prefill this one copies */
    float *logits;     /* (V) GS_READY: next-token logits */
    float *hidden;     /* (D) when want_hidden */
    int hidden_fresh;  /* hidden holds the prompt's last state, not yet handed over */
    int logprobs;      /* capture raw log-probs; n_top of them */
    size_t n_top;
    int in_pass;       /* has rows in the current decoder pass */
    int failed;        /* this step failed this sequence */
    unsigned epoch;    /* bumped on every release: a hook's removal is visible */
} gslot;

struct generator {
    const model *m;
    generator_opts o;
    size_t V, D, n_ctx;
    decoder dec;
    size_t max_rows;
    gslot *slots;
    size_t n_slots;
    uint64_t admitted;
    float *logits;        /* (max_rows, V) */
    float *scratch;       /* (V) the sampler's working copy */
    int32_t *top_ids;     /* (n_top) */
    float *top_lps;       /* (n_top) */
    kv_cache **row_cache; /* (max_rows) */
    int32_t *row_tok;
    uint8_t *row_want;
    size_t *row_slot;
    size_t *order;        /* (n_slots) prefill order scratch */
    gen_ready *ready;     /* (n_slots) the step hook's list */
    int hook_failed;
    /* generator_run's own: a slot was released (refill it) */
    int (*refill)(void *ctx, size_t slot);
    void *refill_ctx;
};

/* ---------------------------------------------------------------- setup */

int generator_init(generator **out, const model *m, const generator_opts *o) {
    *out = NULL;
    if (o->max_seqs == 0) return RT_FAIL("generator: max_seqs must be at least 1");
    if (!o->on_token) return RT_FAIL("generator: on_token hook missing");
    if (m->cfg.ctx_len < 2) return RT_FAIL("the model's context (%zu) is too short to generate", m->cfg.ctx_len);
    generator *g = rt_calloc(1, sizeof *g, "generator");
    if (!g) return -1;
    g->m = m;
    g->o = *o;
    g->V = m->cfg.vocab_size;
    g->D = m->cfg.dim;
    g->n_ctx = o->max_ctx && o->max_ctx < m->cfg.ctx_len ? o->max_ctx : m->cfg.ctx_len;
    g->n_slots = o->max_seqs;
    g->max_rows = o->max_rows ? o->max_rows
                              : RT_MAX(o->max_seqs + o->prefill_chunk, RT_MIN(g->n_ctx, (size_t)128));
    if (g->max_rows < o->max_seqs) g->max_rows = o->max_seqs;
    size_t lbytes;
    if (rt_mul_size(g->max_rows, g->V * sizeof(float), &lbytes)) goto fail;
    g->logits = rt_alloc_aligned(lbytes, "generator logits");
    g->scratch = rt_malloc_array(g->V, sizeof(float), "generator scratch");
    g->top_ids = rt_malloc_array(o->max_top + 1, sizeof(int32_t), "generator top log-probs");
    g->top_lps = rt_malloc_array(o->max_top + 1, sizeof(float), "generator top log-probs");
    g->row_cache = rt_malloc_array(g->max_rows, sizeof *g->row_cache, "generator rows");
    g->row_tok = rt_malloc_array(g->max_rows, sizeof *g->row_tok, "generator rows");
    g->row_want = rt_malloc_array(g->max_rows, sizeof *g->row_want, "generator rows");
    g->row_slot = rt_malloc_array(g->max_rows, sizeof *g->row_slot, "generator rows");
    g->order = rt_malloc_array(g->n_slots, sizeof *g->order, "generator rows");
    g->ready = rt_malloc_array(g->n_slots, sizeof *g->ready, "generator step hook");
    g->slots = rt_calloc(g->n_slots, sizeof *g->slots, "generator slots");
    if (!g->logits || !g->scratch || !g->top_ids || !g->top_lps || !g->row_cache || !g->row_tok || !g->row_want ||
        !g->row_slot || !g->order || !g->ready || !g->slots)
        goto fail;
    for (size_t i = 0; i < g->n_slots; i++) {
        gslot *s = &g->slots[i];
        if (kv_cache_init(&s->kv, &m->cfg, g->n_ctx)) goto fail;
        s->cap_hist = g->n_ctx + 1;
        s->hist = rt_malloc_array(s->cap_hist, sizeof(int32_t), "generation history");
        s->logits = rt_malloc_array(g->V, sizeof(float), "generation logits");
        if (!s->hist || !s->logits) goto fail;
        if (o->want_hidden && !(s->hidden = rt_malloc_array(g->D, sizeof(float), "generation hidden state")))
            goto fail;
    }
    if (decoder_init(&g->dec, m, g->max_rows)) goto fail;
    *out = g;
    return 0;
fail:
    generator_free(g);
    return -1;
}

void generator_free(generator *g) {
    if (!g) return;
    if (g->slots)
        for (size_t i = 0; i < g->n_slots; i++) {
            gslot *s = &g->slots[i];
            kv_cache_free(&s->kv);
            if (s->smp_live) sampler_free(&s->smp);
            free(s->hist);
            free(s->logits);
            free(s->hidden);
        }
    decoder_free(&g->dec);
    rt_free_aligned(g->logits);
    free(g->scratch);
    free(g->top_ids);
    free(g->top_lps);
    free(g->row_cache);
    free(g->row_tok);
    free(g->row_want);
    free(g->row_slot);
    free(g->order);
    free(g->ready);
    free(g->slots);
    free(g);
}

size_t generator_n_free(const generator *g) {
    size_t n = 0;
    for (size_t i = 0; i < g->n_slots; i++) n += g->slots[i].state == GS_FREE;
    return n;
}

size_t generator_n_active(const generator *g) { return g->n_slots - generator_n_free(g); }

int generator_failed(const generator *g, size_t slot) { return slot < g->n_slots && g->slots[slot].failed; }

static void release(generator *g, size_t i) {
    gslot *s = &g->slots[i];
    if (s->smp_live) sampler_free(&s->smp);
    s->smp_live = 0;
    s->state = GS_FREE;
    s->user = NULL;
    s->hidden_fresh = 0;
    s->epoch++;
}

/* A slot in prefill goes away: its first waiting sharer takes the prefill over. */
static void hand_over_prefill(generator *g, size_t i) {
    long heir = -1;
    for (size_t k = 0; k < g->n_slots; k++) {
        gslot *t = &g->slots[k];
        if (t->state != GS_SHARE_WAIT || t->share != (long)i) continue;
        if (heir < 0) {
            heir = (long)k;
            t->state = GS_PREFILL;
            t->n_fed = 0;
            kv_cache_clear(&t->kv);
        } else {
            t->share = heir;
        }
    }
}

void generator_remove(generator *g, size_t slot) {
    if (slot >= g->n_slots || g->slots[slot].state == GS_FREE) return;
    if (g->slots[slot].state == GS_PREFILL) hand_over_prefill(g, slot);
    release(g, slot);
}

/* Whole-prompt mode, and the context shift: fill s's cache from hist[from..n_hist). */
static int prefill_now(generator *g, gslot *s, size_t from) {
    kv_cache_clear(&s->kv);
    if (decoder_prefill(&g->dec, &s->kv, s->hist + from, s->n_hist - from, s->logits, NULL)) return -1;
    s->state = GS_READY;
    return 0;
}

int generator_add(generator *g, const gen_seq_spec *spec, size_t *slot_out) {
    const int32_t *prompt = spec->prompt;
    size_t n = spec->n_prompt;
    if (n == 0) return RT_FAIL("the prompt is empty; generation needs at least one token");
    if (spec->n_top > g->o.max_top)
        return RT_FAIL("generator: %zu top log-probs asked, at most %zu", spec->n_top, g->o.max_top);
    for (size_t j = 0; j < n; j++)
        if (prompt[j] < 0 || (size_t)prompt[j] >= g->V)
            return RT_FAIL("prompt token %zu has id %d, outside the vocabulary (%zu)", j, prompt[j], g->V);
    if (n >= g->n_ctx) {
        if (!g->o.ctx_shift) return RT_FAIL("the prompt has %zu tokens; the model's context is %zu", n, g->n_ctx);
        size_t keep = g->n_ctx / 2; /* keep the prompt's end: the continuation depends on it */
        prompt += n - keep;
        n = keep;
    }
    size_t i = 0;
    while (i < g->n_slots && g->slots[i].state != GS_FREE) i++;
    if (i == g->n_slots) return RT_FAIL("generator: all %zu slots are busy", g->n_slots);
    long share = spec->share_with;
    if (share >= 0 && ((size_t)share >= g->n_slots || g->slots[share].state != GS_PREFILL))
        share = -1; /* nothing to share: prefill it ourselves */
    gslot *s = &g->slots[i];
    if (sampler_init(&s->smp, g->V, &spec->sp)) return -1;
    s->smp_live = 1;
    if (g->o.setup && g->o.setup(g->o.ud, i, spec->id, spec->user, &s->smp)) {
        release(g, i);
        return -1;
    }
    memcpy(s->hist, prompt, n * sizeof(int32_t));
    s->n_hist = s->n_prompt = n;
    s->n_fed = 0;
    s->n_sampled = 0;
    s->id = spec->id;
    s->user = spec->user;
    s->admitted = g->admitted++;
    s->hidden_fresh = 0;
    s->in_pass = s->failed = 0;
    s->logprobs = spec->logprobs || spec->n_top > 0;
    s->n_top = spec->n_top;
    kv_cache_clear(&s->kv);
    if (share >= 0) {
        s->state = GS_SHARE_WAIT;
        s->share = share;
    } else if (g->o.prefill_chunk > 0) {
        s->state = GS_PREFILL;
    } else {
        if (prefill_now(g, s, 0)) {
            release(g, i);
            return -1;
        }
        if (s->hidden) {
            memcpy(s->hidden, g->dec.xb, g->D * sizeof(float)); /* the prefill's one wanted row */
            s->hidden_fresh = 1;
        }
    }
    if (slot_out) *slot_out = i;
    return 0;
}

/* ---------------------------------------------------------------- one step */

/* top k of logits (V) into ids/vals, descending, ties by lower id; vals minus lse. */
static void top_k_of(const float *logits, size_t V, float lse, size_t k, int32_t *ids, float *vals) {
    size_t have = 0;
    for (size_t v = 0; v < V; v++) {
        float x = logits[v];
        if (have == k && !(x > vals[k - 1])) continue;
        size_t p = have < k ? have++ : k - 1;
        while (p > 0 && x > vals[p - 1]) {
            vals[p] = vals[p - 1];
            ids[p] = ids[p - 1];
            p--;
        }
        vals[p] = x;
        ids[p] = (int32_t)v;
    }
    for (size_t i = 0; i < have; i++) vals[i] -= lse;
    for (size_t i = have; i < k; i++) {
        ids[i] = 0;
        vals[i] = -INFINITY;
    }
}

/* Sample one token for slot i (GS_READY) and hand it to the owner. -1: the sequence
 * cannot go on (marked failed, left in its slot). */
static int sample_one(generator *g, size_t i) {
    gslot *s = &g->slots[i];
    size_t V = g->V, K = s->n_top;
    const float *raw = s->logits;
    if (s->n_hist == s->cap_hist) { /* only a context shift outgrows ctx_len + 1 */
        int32_t *h = realloc_array(s->hist, s->cap_hist * 2, sizeof(int32_t), "generation history");
        if (!h) {
            s->failed = 1;
            return -1;
        }
        s->hist = h;
        s->cap_hist *= 2;
    }
    float lse = 0;
    if (s->logprobs) {
        float mx = -INFINITY;
        for (size_t v = 0; v < V; v++) mx = fmaxf(mx, raw[v]);
        double sum = 0;
        for (size_t v = 0; v < V; v++) sum += exp((double)(raw[v] - mx));
        lse = mx + (float)log(sum);
        if (K) top_k_of(raw, V, lse, K, g->top_ids, g->top_lps);
    }
    memcpy(g->scratch, raw, V * sizeof(float));
    int32_t t = sampler_sample(&s->smp, g->scratch, s->hist, s->n_hist);
    s->hist[s->n_hist++] = t;
    s->n_sampled++;
    gen_event ev = {.slot = i,
                    .id = s->id,
                    .user = s->user,
                    .token = t,
                    .n_sampled = s->n_sampled,
                    .ctx_full = s->kv.len >= g->n_ctx,
                    .logprob = s->logprobs ? raw[t] - lse : 0,
                    .top_ids = K ? g->top_ids : NULL,
                    .top_lps = K ? g->top_lps : NULL,
                    .raw_logits = raw,
                    .prompt_hidden = s->hidden_fresh ? s->hidden : NULL};
    s->hidden_fresh = 0;
    unsigned epoch = s->epoch;
    int r = g->o.on_token(g->o.ud, &ev);
    if (s->epoch != epoch) return 0; /* the hook removed it */
    if (r < 0) g->hook_failed = 1;
    if (r == GEN_CONTINUE && ev.ctx_full && g->o.ctx_shift) {
        /* context shift: restart the cache from the last n_ctx/2 tokens (t included) */
        if (prefill_now(g, s, s->n_hist - g->n_ctx / 2) == 0) return 0; /* GS_READY: sample again */
        s->failed = 1;
        return -1;
    }
    if (r != GEN_CONTINUE || ev.ctx_full) {
        release(g, i);
        if (g->refill && g->refill(g->refill_ctx, i)) g->hook_failed = 1;
        return 0;
    }
    s->next = t;
    s->state = GS_DECODE;
    return 0;
}

static int cmp_admitted(const void *a, const void *b, void *ctx) {
    const gslot *s = ctx;
    uint64_t x = s[*(const size_t *)a].admitted, y = s[*(const size_t *)b].admitted;
    return (x > y) - (x < y);
}

/* The rows of this step's pass: one per decoding sequence, then prefill chunks. */
static size_t build_rows(generator *g, size_t *seqs) {
    size_t n = 0;
    *seqs = 0;
    for (size_t i = 0; i < g->n_slots; i++) {
        gslot *s = &g->slots[i];
        s->in_pass = 0;
        if (s->state != GS_DECODE) continue;
        g->row_cache[n] = &s->kv;
        g->row_tok[n] = s->next;
        g->row_want[n] = 1;
        g->row_slot[n] = i;
        s->in_pass = 1;
        n++;
        (*seqs)++;
    }
    size_t n_order = 0;
    for (size_t i = 0; i < g->n_slots; i++)
        if (g->slots[i].state == GS_PREFILL) g->order[n_order++] = i;
    if (n_order > 1) qsort_r(g->order, n_order, sizeof(size_t), cmp_admitted, g->slots);
    size_t budget = g->o.prefill_chunk;
    for (size_t o = 0; o < n_order && budget > 0 && n < g->max_rows; o++) {
        gslot *s = &g->slots[g->order[o]];
        size_t k = RT_MIN(RT_MIN(s->n_prompt - s->n_fed, budget), g->max_rows - n);
        for (size_t r = 0; r < k; r++) {
            g->row_cache[n] = &s->kv;
            g->row_tok[n] = s->hist[s->n_fed + r];
            g->row_want[n] = s->n_fed + r + 1 == s->n_prompt;
            g->row_slot[n] = g->order[o];
            n++;
        }
        s->n_fed += k;
        s->in_pass = 1;
        budget -= k;
        (*seqs)++;
    }
    return n;
}

/* A prefill finished: slot i (and its sharers) have the prompt's logits. */
static void prefill_done(generator *g, size_t i, const float *raw, const float *hidden) {
    gslot *s = &g->slots[i];
    memcpy(s->logits, raw, g->V * sizeof(float));
    if (s->hidden) {
        memcpy(s->hidden, hidden, g->D * sizeof(float));
        s->hidden_fresh = 1;
    }
    s->state = GS_READY;
    for (size_t k = 0; k < g->n_slots; k++) {
        gslot *t = &g->slots[k];
        if (t->state != GS_SHARE_WAIT || t->share != (long)i) continue;
        size_t kvd = s->kv.kv_dim, len = s->kv.len;
        for (size_t l = 0; l < s->kv.n_layers; l++) {
            size_t off = l * s->kv.n_ctx * kvd;
            memcpy(t->kv.k + off, s->kv.k + off, len * kvd * sizeof(float));
            memcpy(t->kv.v + off, s->kv.v + off, len * kvd * sizeof(float));
        }
        t->kv.len = len;
        memcpy(t->logits, raw, g->V * sizeof(float));
        if (t->hidden) {
            memcpy(t->hidden, hidden, g->D * sizeof(float));
            t->hidden_fresh = 1;
        }
        t->state = GS_READY;
    }
}

int generator_step(generator *g, size_t *rows_out, size_t *seqs_out) {
    for (size_t i = 0; i < g->n_slots; i++) g->slots[i].failed = 0;
    size_t seqs = 0, n = build_rows(g, &seqs);
    if (rows_out) *rows_out = n;
    if (seqs_out) *seqs_out = seqs;
    g->hook_failed = 0;
    int failed = 0;
    if (n > 0) {
        if (decoder_run(&g->dec, g->row_cache, g->row_tok, n, g->row_want, g->logits)) {
            for (size_t i = 0; i < g->n_slots; i++) g->slots[i].failed = g->slots[i].in_pass;
            return -1;
        }
        size_t w = 0; /* index among wanted rows (the decoder's xb holds their hidden states) */
        for (size_t r = 0; r < n; r++) {
            if (!g->row_want[r]) continue;
            size_t i = g->row_slot[r], wi = w++;
            const float *raw = g->logits + r * g->V;
            if (g->slots[i].state == GS_DECODE) {
                memcpy(g->slots[i].logits, raw, g->V * sizeof(float));
                g->slots[i].state = GS_READY;
            } else if (g->slots[i].state == GS_PREFILL) {
                prefill_done(g, i, raw, g->dec.xb + wi * g->D);
            }
        }
    }
    if (g->o.before_sample) {
        size_t k = 0;
        for (size_t i = 0; i < g->n_slots; i++) {
            gslot *s = &g->slots[i];
            if (s->state == GS_READY && !s->failed)
                g->ready[k++] = (gen_ready){.slot = i, .hist = s->hist, .n_hist = s->n_hist, .raw_logits = s->logits};
        }
        if (k && g->o.before_sample(g->o.ud, g->ready, k) < 0) g->hook_failed = 1;
    }
    for (size_t i = 0; i < g->n_slots; i++) {
        g->slots[i].in_pass = 0;
        while (g->slots[i].state == GS_READY && !g->slots[i].failed)
            if (sample_one(g, i)) failed = 1;
    }
    return g->hook_failed || failed ? -1 : 0;
}

/* ---------------------------------------------------------------- many prompts */

void gen_result_free(gen_result *r) {
    free(r->tokens);
    free(r->logprob);
    free(r->top_ids);
    free(r->top_lps);
    memset(r, 0, sizeof *r);
}

typedef struct {
    generator *g;
    const gen_run_opts *o;
    const int32_t *const *prompts;
    const size_t *lens;
    size_t n, next, done, tokens;
    const sampler_params *sp;
    const uint64_t *seeds;
    gen_result *out;
    rt_progress bar;
} run_ctx;

static int run_push(gen_result *r, const gen_run_opts *o, const gen_event *ev) {
    size_t n = r->n, K = o->n_top;
    int32_t *t = realloc_array(r->tokens, n + 1, sizeof(int32_t), "generated tokens");
    if (!t) return -1;
    r->tokens = t;
    t[n] = ev->token;
    if (o->logprobs || K) {
        float *lp = realloc_array(r->logprob, n + 1, sizeof(float), "generated log-probs");
        if (!lp) return -1;
        r->logprob = lp;
        lp[n] = ev->logprob;
    }
    if (K) {
        int32_t *ti = realloc_array(r->top_ids, (n + 1) * K, sizeof(int32_t), "generated log-probs");
        if (!ti) return -1;
        r->top_ids = ti;
        float *tl = realloc_array(r->top_lps, (n + 1) * K, sizeof(float), "generated log-probs");
        if (!tl) return -1;
        r->top_lps = tl;
        memcpy(ti + n * K, ev->top_ids, K * sizeof(int32_t));
        memcpy(tl + n * K, ev->top_lps, K * sizeof(float));
    }
    r->n = n + 1;
    return 0;
}

static int run_on_token(void *ud, const gen_event *ev) {
    run_ctx *c = ud;
    gen_result *r = &c->out[ev->id];
    if (c->o->stop >= 0 && ev->token == c->o->stop) {
        r->stopped = 1;
        return GEN_FINISH;
    }
    if (run_push(r, c->o, ev)) return -1;
    c->tokens++;
    return r->n >= c->o->max_new ? GEN_FINISH : GEN_CONTINUE;
}

static int run_setup(void *ud, size_t slot, size_t id, void *user, sampler *s) {
    run_ctx *c = ud;
    return c->o->setup(c->o->ud, slot, id, user, s);
}

static int run_before_sample(void *ud, const gen_ready *ready, size_t n) {
    run_ctx *c = ud;
    return c->o->before_sample(c->o->ud, ready, n);
}

static int run_start(run_ctx *c) {
    size_t i = c->next++;
    gen_seq_spec spec = {.prompt = c->prompts[i],
                         .n_prompt = c->lens[i],
                         .sp = *c->sp,
                         .logprobs = c->o->logprobs,
                         .n_top = c->o->n_top,
                         .id = i,
                         .share_with = -1};
    if (c->seeds) spec.sp.seed = c->seeds[i];
    if (generator_add(c->g, &spec, NULL)) return RT_FAIL("prompt %zu: %s", i + 1, rt_errmsg());
    return 0;
}

static int run_refill(void *ud, size_t slot) {
    (void)slot;
    run_ctx *c = ud;
    c->done++;
    if (c->o->progress) {
        char extra[64];
        snprintf(extra, sizeof extra, "%zu tokens", c->tokens);
        rt_progress_update(&c->bar, c->done, extra);
    }
    return c->next < c->n ? run_start(c) : 0;
}

int generator_run(const model *m, const int32_t *const *prompts, const size_t *lens, size_t n,
                  const sampler_params *sp, const uint64_t *seeds, const gen_run_opts *o, gen_result *out) {
    for (size_t i = 0; i < n; i++) memset(&out[i], 0, sizeof out[i]);
    if (n == 0) return 0;
    run_ctx c = {.o = o, .prompts = prompts, .lens = lens, .n = n, .sp = sp, .seeds = seeds, .out = out};
    /* the KV cache holds what is used: the longest prompt and max_new tokens (a context
     * shift keeps the model's window, so then the whole context) */
    size_t longest = 0;
    for (size_t i = 0; i < n; i++) longest = RT_MAX(longest, lens[i]);
    size_t use = longest + o->max_new + 1;
    generator_opts go = {.max_seqs = RT_MAX((size_t)1, RT_MIN(o->batch, n)),
                         .max_ctx = o->ctx_shift || use < longest ? 0 : use,
                         .max_top = o->n_top,
                         .ctx_shift = o->ctx_shift,
                         .setup = o->setup ? run_setup : NULL,
                         .on_token = run_on_token,
                         .before_sample = o->before_sample ? run_before_sample : NULL,
                         .ud = &c};
    int rc = -1;
    if (generator_init(&c.g, m, &go)) return -1;
    c.g->refill = run_refill;
    c.g->refill_ctx = &c;
    if (o->progress) rt_progress_init(&c.bar, o->progress, n);
    while (c.next < n && generator_n_free(c.g) > 0)
        if (run_start(&c)) goto done;
    while (c.done < n)
        if (generator_step(c.g, NULL, NULL)) goto done;
    if (o->progress) rt_progress_finish(&c.bar, NULL);
    rc = 0;
done:
    generator_free(c.g);
    if (rc)
        for (size_t i = 0; i < n; i++) gen_result_free(&out[i]);
    return rc;
}
