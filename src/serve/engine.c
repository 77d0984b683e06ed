/*
 * engine.c — the server's side of the batched generator (src/model/generate.h): one thread
 * owns the model and a generator. Every step it admits queued jobs into free slots (one
 * sequence per choice), then runs one generator step (ONE decoder pass over one new token
 * of every decoding sequence plus a chunk of prompt tokens of sequences still in prefill)
 * and puts each sequence's next token (with raw log-probs when asked) into its job, where
 * stop tokens and stop strings end it. Requests join and leave between steps, so a long
 * generation never holds a short one back, and concurrent requests share each weight read.
 *
 * A job with n > 1 choices prefills its prompt once (choice 0); the generator copies the
 * KV cache to the other choices' slots. The engine never waits on a client: results go into the job
 * under its mutex, and the connection thread reads them at its own pace.
 *
 * Not the HTTP side (http.c) or the JSON (api.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "../model/generate.h"
#include "serve_internal.h"

/* ---------------------------------------------------------------- jobs */

/* a zeroed job with its lock and one reference (the caller's) */
static serve_job *job_alloc(void) {
    serve_job *j = rt_calloc(1, sizeof *j, "job");
    if (!j) return NULL;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    atomic_init(&j->cancelled, 0);
    atomic_init(&j->refs, 1);
    return j;
}

serve_job *serve_job_new(int32_t *prompt, size_t n_prompt, size_t n, size_t max_tokens, int want_logprobs,
                         size_t top_k, size_t hidden_dim) {
    if (n == 0 || n > SERVE_MAX_N || top_k > SERVE_MAX_TOP || max_tokens == 0) {
        RT_FAIL("job: bad shape (n %zu, max_tokens %zu, top_k %zu)", n, max_tokens, top_k);
        return NULL;
    }
    serve_job *j = job_alloc();
    if (!j) return NULL;
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

serve_job *serve_job_new_upstream(size_t n) {
    if (n == 0 || n > SERVE_MAX_N) {
        RT_FAIL("job: bad shape (n %zu)", n);
        return NULL;
    }
    serve_job *j = job_alloc();
    if (!j) return NULL;
    j->n = n;
    j->upstream = 1;
    j->up_prompt_tokens = j->up_completion_tokens = -1;
    j->t_submit = rt_now();
    return j;
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
    rt_buf_free(&j->up_out);
    rt_buf_free(&j->up_pending);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

/* ---------------------------------------------------------------- engine */

struct serve_engine {
    const model *m;
    size_t n_ctx;
    generator *gen;
    size_t n_slots;
    serve_job **slot_job; /* (n_slots) the job of each generator slot; engine thread only */
    serve_job **pending;  /* (n_slots) admitted under the lock, started outside it */
    size_t n_pending;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    serve_job **queue;  /* (max_queue) ring */
    size_t q_head, q_len, q_cap;
    int stop;
    size_t threads;
    _Atomic size_t active;  /* sequences admitted and not yet released; written by the engine thread only */
    _Atomic uint64_t steps, rows;
    serve_sampler_attach_fn attach;
    void *attach_ud;
    serve_seq_attach_fn seq_attach;
    serve_step_fn seq_step;
    void *seq_attach_ud;
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

/* The engine lets go of j: whatever is unfinished is cancelled; the engine's reference goes. */
static void job_release(serve_job *j) {
    pthread_mutex_lock(&j->mu);
    for (size_t c = 0; c < j->n; c++) finish_choice_locked(j, c, "cancelled", SIZE_MAX);
    j->done = 1;
    j->t_done = rt_now();
    job_signal(j);
    pthread_mutex_unlock(&j->mu);
    serve_job_unref(j);
}

static int job_has_slot(const serve_engine *e, const serve_job *j) {
    for (size_t i = 0; i < e->n_slots; i++)
        if (e->slot_job[i] == j) return 1;
    return 0;
}

/* End the sequence in slot i; the job is released with its last sequence. */
static void release_slot(serve_engine *e, size_t i) {
    serve_job *j = e->slot_job[i];
    generator_remove(e->gen, i);
    e->slot_job[i] = NULL;
    e->active--;
    if (!j) return;
    if (!job_has_slot(e, j)) {
        job_release(j);
        return;
    }
    pthread_mutex_lock(&j->mu);
    job_signal(j);
    pthread_mutex_unlock(&j->mu);
}

static void fail_job(serve_engine *e, serve_job *j, const char *msg) {
    pthread_mutex_lock(&j->mu);
    if (!j->failed) {
        j->failed = 1;
        snprintf(j->errmsg, sizeof j->errmsg, "%s", msg);
    }
    for (size_t c = 0; c < j->n; c++) finish_choice_locked(j, c, "error", SIZE_MAX);
    pthread_mutex_unlock(&j->mu);
    if (!job_has_slot(e, j)) {
        job_release(j);
        return;
    }
    for (size_t i = 0; i < e->n_slots; i++)
        if (e->slot_job[i] == j) release_slot(e, i);
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

/* The generator's on_token hook: the new token of one choice goes into its job (text,
 * log-probs, stop strings), under the job's mutex. */
static int take_token(void *ud, const gen_event *ev) {
    serve_engine *e = ud;
    serve_job *j = ev->user;
    size_t ci = ev->id;
    int32_t t = ev->token;
    if (ev->prompt_hidden && j->want_hidden && j->hidden)
        memcpy(j->hidden, ev->prompt_hidden, j->hidden_dim * sizeof(float));
    pthread_mutex_lock(&j->mu);
    serve_choice *c = &j->choices[ci];
    c->n_generated++;
    if (j->t_first == 0) j->t_first = rt_now();
    int is_stop = 0;
    for (size_t i = 0; i < j->n_stop_ids; i++)
        if (t == j->stop_ids[i]) is_stop = 1;
    int done = 0;
    if (is_stop) {
        finish_choice_locked(j, ci, "stop", c->text.len);
        done = 1;
    } else {
        size_t k = c->n_tokens;
        c->tokens[k] = t;
        if (j->want_logprobs) {
            c->logprob[k] = ev->logprob;
            if (j->top_k) {
                memcpy(c->top_ids + k * j->top_k, ev->top_ids, j->top_k * sizeof(int32_t));
                memcpy(c->top_lp + k * j->top_k, ev->top_lps, j->top_k * sizeof(float));
            }
        }
        size_t bl = 0;
        const char *b = tokenizer_token_bytes(e->m->tok, t, &bl);
        size_t before = c->text.len;
        if (b && bl && rt_buf_append(&c->text, b, bl)) {
            pthread_mutex_unlock(&j->mu);
            fail_job(e, j, "out of memory appending generated text");
            return GEN_FINISH;
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
            finish_choice_locked(j, ci, "stop", hit);
            done = 1;
        } else if (c->n_generated >= j->max_tokens || ev->ctx_full) {
            finish_choice_locked(j, ci, "length", c->text.len);
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
    if (done) release_slot(e, ev->slot);
    return done ? GEN_FINISH : GEN_CONTINUE;
}

/* The generator's setup hook: the server's sampler attachment (the watermark), then the
 * per-slot, per-account one (antidistillation). */
/* The generator's step hook: the seq_attach owner's batched per-step work. */
static int engine_step_hook(void *ud, const gen_ready *ready, size_t n) {
    serve_engine *e = ud;
    return e->seq_step(e->seq_attach_ud, ready, n);
}

static int setup_sampler(void *ud, size_t slot, size_t id, void *user, sampler *s) {
    (void)id;
    serve_engine *e = ud;
    const serve_job *j = user;
    if (e->attach && e->attach(e->attach_ud, s)) return -1;
    return e->seq_attach ? e->seq_attach(e->seq_attach_ud, slot, j->account_id, j->account, s) : 0;
}

/* Move queued jobs that fit into the free slots to the pending list (engine lock held). */
static void admit_locked(serve_engine *e) {
    size_t free_n = generator_n_free(e->gen);
    for (size_t p = 0; p < e->n_pending; p++) free_n -= e->pending[p]->n;
    while (e->q_len > 0) {
        serve_job *j = e->queue[e->q_head];
        if (free_n < j->n) break;
        e->q_head = (e->q_head + 1) % e->q_cap;
        e->q_len--;
        if (atomic_load(&j->cancelled)) {
            job_release(j);
            continue;
        }
        e->pending[e->n_pending++] = j;
        free_n -= j->n;
        e->active += j->n;
    }
}

/* Start the pending jobs' sequences (samplers and the attach hook, which may be slow, run
 * outside the engine lock: only the engine thread touches the generator). Choice 0
 * prefills the prompt; the other choices share it. */
static void start_pending(serve_engine *e) {
    for (size_t p = 0; p < e->n_pending; p++) {
        serve_job *j = e->pending[p];
        pthread_mutex_lock(&j->mu);
        j->t_admit = rt_now();
        pthread_mutex_unlock(&j->mu);
        long first = -1;
        for (size_t c = 0; c < j->n; c++) {
            gen_seq_spec spec = {.prompt = j->prompt,
                                 .n_prompt = j->n_prompt,
                                 .sp = j->sp,
                                 .logprobs = j->want_logprobs,
                                 .n_top = j->top_k,
                                 .id = c,
                                 .user = j,
                                 .share_with = first};
            spec.sp.seed = j->sp.seed + c;
            size_t slot;
            if (generator_add(e->gen, &spec, &slot)) {
                char msg[256];
                snprintf(msg, sizeof msg, "setting up the sampler: %s", rt_errmsg());
                e->active -= j->n - c; /* the choices never started */
                fail_job(e, j, msg);   /* releases those that did */
                break;
            }
            e->slot_job[slot] = j;
            if (c == 0) first = (long)slot;
        }
    }
    e->n_pending = 0;
}

static void engine_step(serve_engine *e) {
    /* cancellations */
    for (size_t i = 0; i < e->n_slots; i++) {
        serve_job *j = e->slot_job[i];
        if (!j || !atomic_load(&j->cancelled)) continue;
        pthread_mutex_lock(&j->mu);
        for (size_t c = 0; c < j->n; c++) finish_choice_locked(j, c, "cancelled", SIZE_MAX);
        pthread_mutex_unlock(&j->mu);
        release_slot(e, i);
    }
    size_t n = 0, seqs = 0;
    int rc = generator_step(e->gen, &n, &seqs);
    if (n > 0) {
        e->steps++;
        e->rows += n;
        if (e->metrics) serve_metrics_batch(e->metrics, n, seqs);
    }
    if (rc) {
        char msg[256];
        snprintf(msg, sizeof msg, "decoding failed: %s", rt_errmsg());
        rt_warn("serve: %s", msg);
        for (size_t i = 0; i < e->n_slots; i++)
            if (e->slot_job[i] && generator_failed(e->gen, i)) fail_job(e, e->slot_job[i], msg);
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
        start_pending(e);
        engine_step(e);
        pthread_mutex_lock(&e->mu);
    }
    /* cancel what is left */
    while (e->q_len > 0) {
        serve_job *j = e->queue[e->q_head];
        e->q_head = (e->q_head + 1) % e->q_cap;
        e->q_len--;
        job_release(j);
    }
    pthread_mutex_unlock(&e->mu);
    for (size_t p = 0; p < e->n_pending; p++) {
        e->active -= e->pending[p]->n;
        job_release(e->pending[p]);
    }
    e->n_pending = 0;
    for (size_t i = 0; i < e->n_slots; i++)
        if (e->slot_job[i]) release_slot(e, i);
    return NULL;
}

int serve_engine_new(serve_engine **out, const model *m, size_t n_ctx, size_t max_batch, size_t max_queue,
                     size_t prefill_chunk, size_t threads, serve_sampler_attach_fn attach, void *attach_ud,
                      serve_seq_attach_fn seq_attach, serve_step_fn seq_step, void *seq_attach_ud,
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
    e->n_ctx = n_ctx && n_ctx < m->cfg.ctx_len ? n_ctx : m->cfg.ctx_len;
    e->n_slots = max_batch;
    e->q_cap = max_queue;
    e->threads = threads;
    e->attach = attach;
    e->attach_ud = attach_ud;
    e->seq_attach = seq_attach;
    e->seq_attach_ud = seq_attach_ud;
    e->seq_step = seq_step;
    e->metrics = metrics;
    e->slot_job = rt_calloc(max_batch, sizeof *e->slot_job, "engine slots");
    e->pending = rt_calloc(max_batch, sizeof *e->pending, "engine slots");
    e->queue = rt_malloc_array(max_queue, sizeof *e->queue, "engine queue");
    if (!e->slot_job || !e->pending || !e->queue) goto fail;
    generator_opts go = {.max_seqs = max_batch,
                         .max_ctx = e->n_ctx, /* each slot's KV cache */
                         .max_rows = max_batch + prefill_chunk,
                         .prefill_chunk = prefill_chunk,
                         .max_top = SERVE_MAX_TOP,
                         .want_hidden = 1,
                         .setup = setup_sampler,
                         .on_token = take_token,
                         .before_sample = seq_step ? engine_step_hook : NULL,
                         .ud = e};
    /* the decoder sizes its per-thread scratch from the calling thread's OpenMP setting:
     * make it the engine's */
    kernels_set_threads((int)threads);
    if (generator_init(&e->gen, m, &go)) goto fail;
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
    generator_free(e->gen);
    free(e->slot_job);
    free(e->pending);
    free(e->queue);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}
