/*
 * engine.c — continuous batching: one thread owns the model and a fixed set of sequence
 * slots (each with its KV cache and sampler). Every step it admits queued jobs into free
 * slots, then runs ONE decoder pass over one new token of every decoding sequence plus a
 * chunk of prompt tokens of sequences still in prefill, and hands each sequence its next
 * token (with raw log-probs when asked). Requests join and leave between steps, so a long
 * generation never holds a short one back, and concurrent requests share each weight read.
 *
 * A job with n > 1 choices prefills its prompt once (choice 0) and copies the KV cache to
 * the other choices' slots. The engine never waits on a client: results go into the job
 * under its mutex, and the connection thread reads them at its own pace.
 *
 * Not the HTTP side (http.c) or the JSON (api.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "serve_internal.h"

/* ---------------------------------------------------------------- jobs */

serve_job *serve_job_new(int32_t *prompt, size_t n_prompt, size_t n, size_t max_tokens, int want_logprobs,
                         size_t top_k, size_t hidden_dim) {
    if (n == 0 || n > SERVE_MAX_N || top_k > SERVE_MAX_TOP || max_tokens == 0) {
        RT_FAIL("job: bad shape (n %zu, max_tokens %zu, top_k %zu)", n, max_tokens, top_k);
        return NULL;
    }
    serve_job *j = rt_calloc(1, sizeof *j, "job");
    if (!j) return NULL;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    atomic_init(&j->cancelled, 0);
    atomic_init(&j->refs, 1);
    j->prompt = prompt;
    j->n_prompt = n_prompt;
    j->n = n;
    j->max_tokens = max_tokens;
    j->want_logprobs = want_logprobs || top_k > 0;
    j->top_k = top_k;
    j->t_submit = rt_now();
    for (size_t c = 0; c < n; c++) {
        serve_choice *ch = &j->choices[c];
        ch->tokens = rt_malloc_array(max_tokens, sizeof(int32_t), "job tokens");
        ch->tok_off = rt_malloc_array(max_tokens + 1, sizeof(size_t), "job token offsets");
        if (!ch->tokens || !ch->tok_off) goto fail;
        ch->tok_off[0] = 0;
        if (j->want_logprobs) {
            ch->logprob = rt_malloc_array(max_tokens, sizeof(float), "job logprobs");
            if (!ch->logprob) goto fail;
            if (top_k) {
                size_t cnt;
                if (rt_mul_size(max_tokens, top_k, &cnt)) goto fail;
                ch->top_ids = rt_malloc_array(cnt, sizeof(int32_t), "job top logprobs");
                ch->top_lp = rt_malloc_array(cnt, sizeof(float), "job top logprobs");
                if (!ch->top_ids || !ch->top_lp) goto fail;
            }
        }
    }
    if (hidden_dim) {
        j->hidden = rt_calloc(hidden_dim, sizeof(float), "job hidden state");
        if (!j->hidden) goto fail;
        j->want_hidden = 1;
        j->hidden_dim = hidden_dim;
    }
    return j;
fail:
    j->prompt = NULL; /* the caller still owns it on failure */
    serve_job_unref(j);
    return NULL;
}

void serve_job_ref(serve_job *j) { atomic_fetch_add(&j->refs, 1); }

void serve_job_unref(serve_job *j) {
    if (!j || atomic_fetch_sub(&j->refs, 1) != 1) return;
    for (size_t c = 0; c < SERVE_MAX_N; c++) {
        serve_choice *ch = &j->choices[c];
        free(ch->tokens);
        free(ch->logprob);
        free(ch->top_ids);
        free(ch->top_lp);
        free(ch->tok_off);
        rt_buf_free(&ch->text);
    }
    for (size_t i = 0; i < j->n_stop; i++) free(j->stop[i]);
    free(j->prompt);
    free(j->hidden);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

/* ---------------------------------------------------------------- engine */

typedef enum { SLOT_FREE = 0, SLOT_PREFILL, SLOT_SHARE_WAIT, SLOT_DECODE } slot_state;

typedef struct {
    slot_state state;
    serve_job *job;
    size_t ci;        /* choice index in job */
    kv_cache kv;      /* (L, ctx_len, kv_dim) */
    sampler smp;
    int smp_live;
    size_t n_fed;     /* prompt tokens already in kv (prefill) */
    int32_t *hist;    /* (ctx_len + 1) prompt + generated tokens, for the sampler's hooks */
    size_t n_hist;
    int32_t next;     /* the token to feed next (decode) */
    uint64_t admitted; /* admission order, for prefill fairness */
    int needs_setup;   /* admitted; sampler not yet set up */
} slot;

struct serve_engine {
    const model *m;
    size_t V, D, n_ctx;
    decoder dec;
    size_t max_rows;
    size_t prefill_chunk;
    slot *slots;        /* (n_slots) */
    size_t n_slots;
    float *logits;      /* (max_rows, V) */
    float *scratch;     /* (V) the sampler's working copy */
    kv_cache **row_cache; /* (max_rows) */
    int32_t *row_tok;     /* (max_rows) */
    uint8_t *row_want;    /* (max_rows) */
    size_t *row_slot;     /* (max_rows) */
    size_t *order;        /* (n_slots) prefill order scratch */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    serve_job **queue;  /* (max_queue) ring */
    size_t q_head, q_len, q_cap;
    int stop;
    size_t threads;
    uint64_t admitted;
    _Atomic size_t active;  /* written by the engine thread only */
    _Atomic uint64_t steps, rows;
    serve_sampler_attach_fn attach;
    void *attach_ud;
    serve_metrics *metrics;
};

static void job_signal(serve_job *j) {
    j->version++;
    pthread_cond_broadcast(&j->cv);
    if (j->on_signal) j->on_signal(j->on_signal_ud, j);
}

/* Finish choice ci of a slot's job (caller holds job->mu). */
static void finish_choice_locked(serve_job *j, size_t ci, const char *reason, size_t text_limit) {
    serve_choice *c = &j->choices[ci];
    if (c->finished) return;
    c->finished = 1;
    c->finish_reason = reason;
    c->text_limit = RT_MIN(text_limit, c->text.len);
    c->safe_len = c->text_limit;
    j->n_finished++;
}

static void release_slot(serve_engine *e, slot *s) {
    serve_job *j = s->job;
    if (s->smp_live) sampler_free(&s->smp);
    s->smp_live = 0;
    s->needs_setup = 0;
    s->state = SLOT_FREE;
    s->job = NULL;
    e->active--;
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    /* the engine's reference is dropped when the last of the job's slots goes */
    int last = 1;
    for (size_t i = 0; i < e->n_slots; i++)
        if (e->slots[i].job == j) last = 0;
    if (last) {
        for (size_t c = 0; c < j->n; c++) finish_choice_locked(j, c, "cancelled", SIZE_MAX);
        j->done = 1;
        j->t_done = rt_now();
    }
    job_signal(j);
    pthread_mutex_unlock(&j->mu);
    if (last) serve_job_unref(j);
}

static void fail_job(serve_engine *e, serve_job *j, const char *msg) {
    pthread_mutex_lock(&j->mu);
    if (!j->failed) {
        j->failed = 1;
        snprintf(j->errmsg, sizeof j->errmsg, "%s", msg);
    }
    for (size_t c = 0; c < j->n; c++) finish_choice_locked(j, c, "error", SIZE_MAX);
    pthread_mutex_unlock(&j->mu);
    for (size_t i = 0; i < e->n_slots; i++)
        if (e->slots[i].job == j) release_slot(e, &e->slots[i]);
}

/* Longest suffix of text[0..len) that is a proper prefix of s. */
static size_t partial_suffix(const char *text, size_t len, const char *s, size_t sl) {
    size_t best = 0;
    if (sl == 0) return 0;
    for (size_t k = RT_MIN(sl - 1, len); k > 0; k--) {
        if (!memcmp(text + len - k, s, k)) {
            best = k;
            break;
        }
    }
    return best;
}

/* top_k largest of lp (V) into ids/vals, descending (ties: lower id first). */
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

/* One new token for slot s from its raw logits row. */
static void take_token(serve_engine *e, slot *s, const float *raw) {
    serve_job *j = s->job;
    size_t V = e->V;
    float lp = 0, lse = 0;
    int32_t tops_id[SERVE_MAX_TOP];
    float tops_lp[SERVE_MAX_TOP];
    if (j->want_logprobs) {
        float mx = -INFINITY;
        for (size_t v = 0; v < V; v++) mx = fmaxf(mx, raw[v]);
        double sum = 0;
        for (size_t v = 0; v < V; v++) sum += exp((double)(raw[v] - mx));
        lse = mx + (float)log(sum);
        if (j->top_k) top_k_of(raw, V, lse, j->top_k, tops_id, tops_lp);
    }
    memcpy(e->scratch, raw, V * sizeof(float));
    int32_t t = sampler_sample(&s->smp, e->scratch, s->hist, s->n_hist);
    if (j->want_logprobs) lp = raw[t] - lse;
    s->hist[s->n_hist++] = t;

    pthread_mutex_lock(&j->mu);
    serve_choice *c = &j->choices[s->ci];
    c->n_generated++;
    if (j->t_first == 0) j->t_first = rt_now();
    int is_stop = 0;
    for (size_t i = 0; i < j->n_stop_ids; i++)
        if (t == j->stop_ids[i]) is_stop = 1;
    int done = 0;
    if (is_stop) {
        finish_choice_locked(j, s->ci, "stop", c->text.len);
        done = 1;
    } else {
        size_t k = c->n_tokens;
        c->tokens[k] = t;
        if (j->want_logprobs) {
            c->logprob[k] = lp;
            if (j->top_k) {
                memcpy(c->top_ids + k * j->top_k, tops_id, j->top_k * sizeof(int32_t));
                memcpy(c->top_lp + k * j->top_k, tops_lp, j->top_k * sizeof(float));
            }
        }
        size_t bl = 0;
        const char *b = tokenizer_token_bytes(e->m->tok, t, &bl);
        size_t before = c->text.len;
        if (b && bl && rt_buf_append(&c->text, b, bl)) {
            pthread_mutex_unlock(&j->mu);
            fail_job(e, j, "out of memory appending generated text");
            return;
        }
        c->n_tokens = k + 1;
        c->tok_off[k + 1] = c->text.len;
        /* stop strings: earliest match that ends in the new bytes */
        size_t hit = SIZE_MAX;
        for (size_t i = 0; i < j->n_stop; i++) {
            size_t sl = j->stop_len[i];
            if (sl == 0) continue;
            size_t from = before >= sl - 1 ? before - (sl - 1) : 0;
            for (size_t p = from; p + sl <= c->text.len && p < hit; p++)
                if (!memcmp(c->text.data + p, j->stop[i], sl)) {
                    hit = p;
                    break;
                }
        }
        if (hit != SIZE_MAX) {
            finish_choice_locked(j, s->ci, "stop", hit);
            done = 1;
        } else if (c->n_generated >= j->max_tokens || s->kv.len >= e->n_ctx) {
            finish_choice_locked(j, s->ci, "length", c->text.len);
            done = 1;
        } else {
            size_t hold = 0;
            for (size_t i = 0; i < j->n_stop; i++)
                hold = RT_MAX(hold, partial_suffix(c->text.data, c->text.len, j->stop[i], j->stop_len[i]));
            c->safe_len = c->text.len - hold;
        }
    }
    job_signal(j);
    pthread_mutex_unlock(&j->mu);
    if (done) {
        release_slot(e, s);
    } else {
        s->next = t;
        s->state = SLOT_DECODE;
    }
}

static int admit_locked(serve_engine *e) {
    while (e->q_len > 0) {
        serve_job *j = e->queue[e->q_head];
        size_t free_n = 0;
        for (size_t i = 0; i < e->n_slots; i++) free_n += e->slots[i].state == SLOT_FREE;
        if (free_n < j->n) break;
        e->q_head = (e->q_head + 1) % e->q_cap;
        e->q_len--;
        if (atomic_load(&j->cancelled)) {
            pthread_mutex_lock(&j->mu);
            for (size_t c = 0; c < j->n; c++) finish_choice_locked(j, c, "cancelled", SIZE_MAX);
            j->done = 1;
            j->t_done = rt_now();
            job_signal(j);
            pthread_mutex_unlock(&j->mu);
            serve_job_unref(j);
            continue;
        }
        size_t c = 0;
        for (size_t i = 0; i < e->n_slots && c < j->n; i++) {
            slot *s = &e->slots[i];
            if (s->state != SLOT_FREE) continue;
            s->job = j;
            s->ci = c;
            s->state = c == 0 ? SLOT_PREFILL : SLOT_SHARE_WAIT;
            s->n_fed = 0;
            s->admitted = e->admitted++;
            s->needs_setup = 1;
            e->active++;
            c++;
        }
    }
    return 0;
}

/* Samplers (and the attach hook, which may be slow) for newly admitted slots, outside the
 * engine lock: only the engine thread touches slots. */
static void setup_new_slots(serve_engine *e) {
    for (size_t i = 0; i < e->n_slots; i++) {
        slot *s = &e->slots[i];
        if (!s->needs_setup) continue;
        s->needs_setup = 0;
        serve_job *j = s->job;
        if (!j) continue;
        if (s->ci == 0) {
            pthread_mutex_lock(&j->mu);
            j->t_admit = rt_now();
            pthread_mutex_unlock(&j->mu);
        }
        kv_cache_clear(&s->kv);
        memcpy(s->hist, j->prompt, j->n_prompt * sizeof(int32_t));
        s->n_hist = j->n_prompt;
        sampler_params sp = j->sp;
        sp.seed = j->sp.seed + s->ci;
        int failed = 0;
        if (sampler_init(&s->smp, e->V, &sp)) failed = 1;
        else s->smp_live = 1;
        if (!failed && e->attach && e->attach(e->attach_ud, &s->smp)) failed = 1;
        if (failed) {
            char msg[256];
            snprintf(msg, sizeof msg, "setting up the sampler: %s", rt_errmsg());
            fail_job(e, j, msg); /* releases every slot of the job */
        }
    }
}

static int cmp_admitted(const void *a, const void *b, void *ctx) {
    const slot *s = ctx;
    uint64_t x = s[*(const size_t *)a].admitted, y = s[*(const size_t *)b].admitted;
    return (x > y) - (x < y);
}

static void engine_step(serve_engine *e) {
    /* cancellations */
    for (size_t i = 0; i < e->n_slots; i++) {
        slot *s = &e->slots[i];
        if (s->state != SLOT_FREE && atomic_load(&s->job->cancelled)) {
            serve_job *j = s->job;
            pthread_mutex_lock(&j->mu);
            finish_choice_locked(j, s->ci, "cancelled", SIZE_MAX);
            pthread_mutex_unlock(&j->mu);
            release_slot(e, s);
        }
    }
    size_t n = 0, seqs = 0;
    for (size_t i = 0; i < e->n_slots; i++) {
        slot *s = &e->slots[i];
        if (s->state != SLOT_DECODE) continue;
        e->row_cache[n] = &s->kv;
        e->row_tok[n] = s->next;
        e->row_want[n] = 1;
        e->row_slot[n] = i;
        n++;
        seqs++;
    }
    /* prefill chunks, oldest admission first */
    size_t n_order = 0;
    for (size_t i = 0; i < e->n_slots; i++)
        if (e->slots[i].state == SLOT_PREFILL) e->order[n_order++] = i;
    if (n_order > 1) qsort_r(e->order, n_order, sizeof(size_t), cmp_admitted, e->slots);
    size_t budget = e->prefill_chunk;
    for (size_t o = 0; o < n_order && budget > 0 && n < e->max_rows; o++) {
        slot *s = &e->slots[e->order[o]];
        serve_job *j = s->job;
        size_t k = RT_MIN(RT_MIN(j->n_prompt - s->n_fed, budget), e->max_rows - n);
        for (size_t r = 0; r < k; r++) {
            e->row_cache[n] = &s->kv;
            e->row_tok[n] = j->prompt[s->n_fed + r];
            e->row_want[n] = s->n_fed + r + 1 == j->n_prompt;
            e->row_slot[n] = e->order[o];
            n++;
        }
        s->n_fed += k;
        budget -= k;
        seqs++;
    }
    if (n == 0) return;
    int rc = decoder_run(&e->dec, e->row_cache, e->row_tok, n, e->row_want, e->logits);
    e->steps++;
    e->rows += n;
    if (e->metrics) serve_metrics_batch(e->metrics, n, seqs);
    if (rc) {
        char msg[256];
        snprintf(msg, sizeof msg, "decoding failed: %s", rt_errmsg());
        rt_warn("serve: %s", msg);
        for (size_t i = 0; i < n; i++) {
            slot *s = &e->slots[e->row_slot[i]];
            if (s->job) fail_job(e, s->job, msg);
        }
        return;
    }
    size_t w = 0; /* index among wanted rows (the decoder's xb holds their hidden states) */
    for (size_t i = 0; i < n; i++) {
        if (!e->row_want[i]) continue;
        slot *s = &e->slots[e->row_slot[i]];
        size_t wi = w++;
        if (s->state == SLOT_FREE) continue;
        const float *raw = e->logits + i * e->V;
        if (s->state == SLOT_PREFILL) {
            serve_job *j = s->job;
            if (j->want_hidden && j->hidden)
                memcpy(j->hidden, e->dec.xb + wi * e->D, e->D * sizeof(float));
            /* siblings take a copy of the prompt's cache and the same logits */
            for (size_t k = 0; k < e->n_slots; k++) {
                slot *t = &e->slots[k];
                if (t->job != j || t->state != SLOT_SHARE_WAIT) continue;
                size_t kvd = s->kv.kv_dim, len = s->kv.len;
                for (size_t l = 0; l < s->kv.n_layers; l++) {
                    size_t off = l * s->kv.n_ctx * kvd;
                    memcpy(t->kv.k + off, s->kv.k + off, len * kvd * sizeof(float));
                    memcpy(t->kv.v + off, s->kv.v + off, len * kvd * sizeof(float));
                }
                t->kv.len = len;
                take_token(e, t, raw);
            }
        }
        take_token(e, s, raw);
    }
}

static void *engine_main(void *arg) {
    serve_engine *e = arg;
    kernels_set_threads((int)e->threads); /* OpenMP's thread count is per thread */
    pthread_mutex_lock(&e->mu);
    for (;;) {
        admit_locked(e);
        if (e->stop) break;
        if (e->active == 0) {
            pthread_cond_wait(&e->cv, &e->mu);
            continue;
        }
        pthread_mutex_unlock(&e->mu);
        setup_new_slots(e);
        engine_step(e);
        pthread_mutex_lock(&e->mu);
    }
    /* cancel what is left */
    while (e->q_len > 0) {
        serve_job *j = e->queue[e->q_head];
        e->q_head = (e->q_head + 1) % e->q_cap;
        e->q_len--;
        pthread_mutex_lock(&j->mu);
        for (size_t c = 0; c < j->n; c++) finish_choice_locked(j, c, "cancelled", SIZE_MAX);
        j->done = 1;
        j->t_done = rt_now();
        job_signal(j);
        pthread_mutex_unlock(&j->mu);
        serve_job_unref(j);
    }
    pthread_mutex_unlock(&e->mu);
    for (size_t i = 0; i < e->n_slots; i++)
        if (e->slots[i].state != SLOT_FREE) release_slot(e, &e->slots[i]);
    return NULL;
}

int serve_engine_init(serve_engine **out, const model *m, size_t max_batch, size_t max_queue,
                      size_t prefill_chunk, size_t threads, serve_sampler_attach_fn attach, void *attach_ud,
                      serve_metrics *metrics) {
    *out = NULL;
    if (!m->tok) return RT_FAIL("the model has no tokenizer; serve needs one to read prompts");
    if (max_batch == 0) return RT_FAIL("--max-batch must be at least 1");
    if (max_queue == 0) return RT_FAIL("--max-queue must be at least 1");
    if (prefill_chunk == 0) prefill_chunk = 128;
    serve_engine *e = rt_calloc(1, sizeof *e, "engine");
    if (!e) return -1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->m = m;
    e->V = m->cfg.vocab_size;
    e->D = m->cfg.dim;
    e->n_ctx = m->cfg.ctx_len;
    e->prefill_chunk = prefill_chunk;
    e->max_rows = max_batch + prefill_chunk;
    e->n_slots = max_batch;
    e->q_cap = max_queue;
    e->threads = threads;
    e->attach = attach;
    e->attach_ud = attach_ud;
    e->metrics = metrics;
    size_t lbytes;
    if (rt_mul_size(e->max_rows, e->V * sizeof(float), &lbytes)) goto fail;
    e->logits = rt_alloc_aligned(lbytes, "engine logits");
    e->scratch = rt_malloc_array(e->V, sizeof(float), "engine scratch");
    e->row_cache = rt_malloc_array(e->max_rows, sizeof *e->row_cache, "engine rows");
    e->row_tok = rt_malloc_array(e->max_rows, sizeof *e->row_tok, "engine rows");
    e->row_want = rt_malloc_array(e->max_rows, sizeof *e->row_want, "engine rows");
    e->row_slot = rt_malloc_array(e->max_rows, sizeof *e->row_slot, "engine rows");
    e->order = rt_malloc_array(max_batch, sizeof *e->order, "engine rows");
    e->queue = rt_malloc_array(max_queue, sizeof *e->queue, "engine queue");
    e->slots = rt_calloc(max_batch, sizeof *e->slots, "engine slots");
    if (!e->logits || !e->scratch || !e->row_cache || !e->row_tok || !e->row_want || !e->row_slot || !e->order ||
        !e->queue || !e->slots)
        goto fail;
    for (size_t i = 0; i < max_batch; i++) {
        if (kv_cache_init(&e->slots[i].kv, &m->cfg, e->n_ctx)) goto fail;
        e->slots[i].hist = rt_malloc_array(e->n_ctx + 1, sizeof(int32_t), "slot history");
        if (!e->slots[i].hist) goto fail;
    }
    /* the decoder sizes its per-thread scratch from the calling thread's OpenMP setting:
     * make it the engine's */
    kernels_set_threads((int)threads);
    if (decoder_init(&e->dec, m, e->max_rows)) goto fail;
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        RT_FAIL("cannot start the engine thread");
        goto fail;
    }
    e->thread_started = 1;
    *out = e;
    return 0;
fail:
    serve_engine_free(e);
    return -1;
}

int serve_engine_submit(serve_engine *e, serve_job *j) {
    if (j->n > e->n_slots) return RT_FAIL("n = %zu exceeds the server's --max-batch %zu", j->n, e->n_slots);
    if (j->n_prompt == 0 || j->n_prompt >= e->n_ctx)
        return RT_FAIL("prompt of %zu tokens does not fit the context of %zu", j->n_prompt, e->n_ctx);
    pthread_mutex_lock(&e->mu);
    if (e->stop || e->q_len >= e->q_cap) {
        pthread_mutex_unlock(&e->mu);
        return 1;
    }
    serve_job_ref(j);
    e->queue[(e->q_head + e->q_len) % e->q_cap] = j;
    e->q_len++;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

void serve_engine_stats_get(serve_engine *e, serve_engine_stats *s) {
    pthread_mutex_lock(&e->mu);
    s->queued = e->q_len;
    s->active = e->active;
    s->steps = e->steps;
    s->rows = e->rows;
    pthread_mutex_unlock(&e->mu);
}

void serve_engine_free(serve_engine *e) {
    if (!e) return;
    if (e->thread_started) {
        pthread_mutex_lock(&e->mu);
        e->stop = 1;
        pthread_cond_signal(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
    }
    if (e->slots)
        for (size_t i = 0; i < e->n_slots; i++) {
            kv_cache_free(&e->slots[i].kv);
            free(e->slots[i].hist);
            if (e->slots[i].smp_live) sampler_free(&e->slots[i].smp);
        }
    decoder_free(&e->dec);
    rt_free_aligned(e->logits);
    free(e->scratch);
    free(e->row_cache);
    free(e->row_tok);
    free(e->row_want);
    free(e->row_slot);
    free(e->order);
    free(e->queue);
    free(e->slots);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}
