/*
 * recipe.c — distillation recipes as train_task hooks, so they run inside the shared
 * trainer loop (progress bar, JSONL log, held-out eval, atomic checkpoints, bit-identical
 * resume):
 *
 *  white-box   batches are random windows of the training text (live teacher) or random
 *              cached windows (teacher cache); the teacher's distribution at every position
 *              — full vocabulary, or top-k + rest — is the target of the chosen divergence.
 *              On-policy (GKD): with probability λ a batch keeps only the first P tokens of
 *              each window and the student samples the rest; the teacher scores the
 *              student's tokens and the loss is on the generated positions only.
 *  black-box   prompt/completion examples packed into rows (each row starts with an example;
 *              the next follows its end token); the loss is on completion tokens only, with
 *              the API's top log-probs as soft targets where the file had them.
 *
 * Every random choice draws from the trainer's RNG (the on-policy sampler is seeded from
 * it), so --resume reproduces an uninterrupted run.
 *
 * What this is not: the losses (kd_loss.c), the cache format (kd_cache.c) or the CLI.
 */
#include "distill.h"

#include "../train/dist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ white-box */

void distill_opts_defaults(distill_opts *o) {
    memset(o, 0, sizeof *o);
    o->loss = kd_params_defaults();
    o->on_policy_temperature = 1.0f;
}

int distill_run_init(distill_run *r, const distill_opts *o, model *student, model *teacher, kd_cache *cache,
                     const dataset *ds, size_t B, size_t T, size_t eval_batches) {
    memset(r, 0, sizeof *r);
    r->o = *o;
    r->student = student;
    r->teacher = teacher;
    r->cache = cache;
    r->ds = ds;
    r->B = B;
    r->T = T;
    r->eval_batches = eval_batches;
    size_t V = student->cfg.vocab_size, N = B * T;
    if (kd_params_validate(&o->loss)) return -1;
    if (!(o->on_policy >= 0 && o->on_policy <= 1))
        return RT_FAIL("--on-policy must be in [0, 1] (the share of batches the student generates); got %g",
                       (double)o->on_policy);
    if (teacher && cache) return RT_FAIL("give --teacher or --teacher-cache, not both");
    if (!teacher && !cache && o->loss.kind != KD_CE)
        return RT_FAIL("--loss %s needs a teacher (--teacher T.gguf or --teacher-cache CACHE)",
                       kd_kind_name(o->loss.kind));
    if (o->on_policy > 0 && !teacher)
        return RT_FAIL("--on-policy needs a live --teacher: a cache only covers the windows it was built on");
    if (o->on_policy > 0 && o->loss.kind == KD_CE)
        return RT_FAIL("--on-policy with --loss ce would train the student on its own samples; choose fkl, rkl or jsd");
    if (teacher) {
        if (teacher->cfg.vocab_size != V)
            return RT_FAIL("the teacher's vocabulary has %zu tokens, the student's %zu", teacher->cfg.vocab_size, V);
        if (T > teacher->cfg.ctx_len)
            return RT_FAIL("--seq-len %zu exceeds the teacher's context length %zu", T, teacher->cfg.ctx_len);
    }
    r->k = teacher ? o->top_k : 0;
    if (r->k >= V) r->k = 0; /* top-V is the full vocabulary */
    if (cache) {
        const kd_cache_info *ci = kd_cache_get_info(cache);
        if (ci->vocab_size != V)
            return RT_FAIL("the teacher cache's vocabulary has %zu tokens, the student's %zu", ci->vocab_size, V);
        if (ci->seq_len != T)
            return RT_FAIL("the teacher cache holds windows of %zu tokens; distill from it with --seq-len %zu", ci->seq_len,
                           ci->seq_len);
        if (fabsf(ci->temperature - o->loss.temperature) > 1e-6f * ci->temperature)
            return RT_FAIL("the teacher cache was built at temperature %g but --temperature is %g; rebuild the cache "
                           "with retort cache-teacher --temperature %g",
                           (double)ci->temperature, (double)o->loss.temperature, (double)o->loss.temperature);
        if (ci->n_windows == 0) return RT_FAIL("the teacher cache has no windows");
        r->k = ci->top_k;
        r->tokens = rt_malloc_array(T + 1, sizeof(int32_t), "cache window");
        if (!r->tokens) return -1;
    }
    if (kd_workspace_init(&r->ws, V, r->k ? r->k : 1)) return -1;
    if (r->k) {
        r->ids = rt_malloc_array(N * r->k, sizeof(int32_t), "teacher top-k");
        r->lps = rt_malloc_array(N * r->k, sizeof(float), "teacher top-k");
        r->rest = rt_malloc_array(N, sizeof(float), "teacher top-k");
        r->rows = rt_calloc(N, sizeof(kd_topk_row), "teacher top-k");
        if (!r->ids || !r->lps || !r->rest || !r->rows) return -1;
        for (size_t i = 0; i < N; i++) {
            r->rows[i].k = r->k;
            r->rows[i].ids = r->ids + i * r->k;
            r->rows[i].logprobs = r->lps + i * r->k;
        }
    }
    if (o->on_policy > 0) {
        r->prompts = rt_calloc(B, sizeof *r->prompts, "on-policy prompts");
        r->plens = rt_calloc(B, sizeof(size_t), "on-policy prompts");
        r->gen = rt_calloc(B, sizeof *r->gen, "on-policy samples");
        if (!r->prompts || !r->plens || !r->gen) return -1;
    }
    r->eval_in = rt_malloc_array(N, sizeof(int32_t), "eval batch");
    r->eval_tg = rt_malloc_array(N, sizeof(int32_t), "eval batch");
    if (!r->eval_in || !r->eval_tg) return -1;
    r->last.kd = r->last.ce = NAN;
    return 0;
}

void distill_run_free(distill_run *r) {
    kd_workspace_free(&r->ws);
    free(r->ids);
    free(r->lps);
    free(r->rest);
    free(r->rows);
    free(r->tokens);
    free(r->prompts);
    free(r->plens);
    if (r->gen)
        for (size_t b = 0; b < r->B; b++) kd_gen_seq_free(&r->gen[b]);
    free(r->gen);
    free(r->eval_in);
    free(r->eval_tg);
    memset(r, 0, sizeof *r);
}

static int wb_next_batch(void *ud, rt_rng *rng, size_t B, size_t T, int32_t *inputs, int32_t *targets) {
    distill_run *r = ud;
    r->on_policy_now = 0;
    if (r->cache) {
        size_t k = r->k, nw = kd_cache_get_info(r->cache)->n_windows;
        for (size_t b = 0; b < B; b++) {
            size_t w = (size_t)rt_rng_below(rng, nw);
            if (kd_cache_read_window(r->cache, w, r->tokens, r->ids + b * T * k, r->lps + b * T * k, r->rest + b * T))
                return -1;
            for (size_t t = 0; t < T; t++) {
                inputs[b * T + t] = r->tokens[t];
                targets[b * T + t] = r->tokens[t + 1];
                r->rows[b * T + t].lp_rest = r->rest[b * T + t];
            }
        }
        return 0;
    }
    int on = 0;
    if (r->o.on_policy > 0) on = rt_rng_double(rng) < (double)r->o.on_policy;
    if (dataset_sample_batch(r->ds, rng, B, T, inputs, targets)) return -1;
    if (!on) return 0;
    /* GKD: keep a prompt of P tokens, let the student write the remaining T + 1 - P */
    size_t P = r->o.on_policy_prompt ? r->o.on_policy_prompt : T / 2;
    if (P < 1) P = 1;
    if (P > T) P = T;
    kd_gen_opts go;
    kd_gen_defaults(&go);
    go.max_new = T + 1 - P;
    go.temperature = r->o.on_policy_temperature;
    go.top_k = 0;
    go.top_p = 1.0f;
    go.stop = -1;
    go.batch = B;
    go.seed = rt_rng_u64(rng);
    for (size_t b = 0; b < B; b++) {
        kd_gen_seq_free(&r->gen[b]);
        r->prompts[b] = inputs + b * T;
        r->plens[b] = P;
    }
    if (kd_generate(r->student, r->prompts, r->plens, B, &go, r->gen, 0)) return -1;
    for (size_t b = 0; b < B; b++) {
        const kd_gen_seq *g = &r->gen[b];
        /* inputs keep the prompt; positions P-1 .. T-1 predict generated tokens */
        for (size_t t = 0; t < T; t++) {
            if (t >= P) inputs[b * T + t] = t - P < g->n ? g->tokens[t - P] : inputs[b * T + t];
            int32_t next = t + 1 < P ? -1 : (t + 1 - P < g->n ? g->tokens[t + 1 - P] : -1);
            targets[b * T + t] = next;
        }
    }
    r->on_policy_now = 1;
    r->n_on_policy++;
    return 0;
}

static int wb_loss(void *ud, model *m, const int32_t *inputs, const int32_t *targets, size_t B, size_t T,
                   float *loss) {
    distill_run *r = ud;
    size_t V = m->cfg.vocab_size, N = B * T;
    float *logits = model_dlogits(m);
    const float *tl = NULL;
    const kd_topk_row *rows = NULL;
    if (r->o.loss.kind != KD_CE) {
        if (r->cache) {
            rows = r->rows;
        } else {
            tl = model_forward(r->teacher, inputs, B, T);
            if (!tl) return -1;
            if (r->k) {
                size_t k = r->k;
                float tau = r->o.loss.temperature;
                long long NN = (long long)N;
RT_OMP(parallel for schedule(static))
                for (long long i = 0; i < NN; i++)
                    kd_topk_from_logits(tl + (size_t)i * V, V, tau, k, r->ids + (size_t)i * k, r->lps + (size_t)i * k,
                                        &r->rest[i]);
                for (size_t i = 0; i < N; i++) r->rows[i].lp_rest = r->rest[i];
                rows = r->rows;
                tl = NULL;
            }
        }
    }
    kd_stats st;
    if (kd_loss_batch(&r->o.loss, &r->ws, logits, tl, rows, targets, !r->on_policy_now, N, V, 1, &st)) return -1;
    r->last = st;
    *loss = (float)st.loss;
    return 0;
}

static int wb_eval(void *ud, model *m, float *val_loss, char *extra, size_t cap) {
    distill_run *r = ud;
    size_t B = r->B, T = r->T, V = m->cfg.vocab_size;
    kd_compare acc = {0};
    *val_loss = NAN;
    extra[0] = 0;
    size_t o = 0;
    if (r->ds && r->ds->n_val >= T + 1) {
        size_t lo, hi; /* under mpirun each rank scores a share of the held-out batches */
        dist_split(r->eval_batches, dist_size(), dist_rank(), &lo, &hi);
        for (size_t i = lo; i < hi; i++) {
            if (dataset_val_batch(r->ds, i, r->eval_batches, B, T, r->eval_in, r->eval_tg)) return -1;
            const float *tl = NULL;
            if (r->teacher && !(tl = model_forward(r->teacher, r->eval_in, B, T))) return -1;
            const float *sl = model_forward(m, r->eval_in, B, T);
            if (!sl) return -1;
            if (kd_compare_rows(&r->ws, sl, tl, r->eval_tg, B * T, V, &acc)) return -1;
        }
        if (kd_compare_reduce(&acc)) return -1;
        if (acc.n) *val_loss = (float)(acc.ce_sum / (double)acc.n);
        if (r->teacher && acc.n)
            o += (size_t)snprintf(extra + o, cap - o, "\"kl\":%.6f,\"top1_agreement\":%.6f", acc.kl_sum / (double)acc.n,
                                  acc.agree / (double)acc.n);
    }
    if (isfinite(r->last.kd) && o < cap)
        o += (size_t)snprintf(extra + o, cap - o, "%s\"train_kd\":%.6f", o ? "," : "", r->last.kd);
    if (isfinite(r->last.ce) && o < cap)
        o += (size_t)snprintf(extra + o, cap - o, "%s\"train_ce\":%.6f", o ? "," : "", r->last.ce);
    if (r->o.on_policy > 0 && o < cap)
        snprintf(extra + o, cap - o, "%s\"on_policy_batches\":%zu", o ? "," : "", r->n_on_policy);
    return 0;
}

static int wb_meta(void *ud, gguf_writer *w) {
    distill_run *r = ud;
    int rc = gguf_set_str(w, "retort.distill.loss", kd_kind_name(r->o.loss.kind));
    if (!rc) rc = gguf_set_f32(w, "retort.distill.beta", r->o.loss.beta);
    if (!rc) rc = gguf_set_f32(w, "retort.distill.temperature", r->o.loss.temperature);
    if (!rc) rc = gguf_set_f32(w, "retort.distill.alpha", r->o.loss.alpha);
    if (!rc) rc = gguf_set_u64(w, "retort.distill.top_k", r->k);
    if (!rc) rc = gguf_set_f32(w, "retort.distill.on_policy", r->o.on_policy);
    if (!rc) rc = gguf_set_u64(w, "retort.distill.on_policy_prompt", r->o.on_policy_prompt);
    if (!rc) rc = gguf_set_f32(w, "retort.distill.on_policy_temperature", r->o.on_policy_temperature);
    if (!rc && r->o.teacher_name) rc = gguf_set_str(w, "retort.distill.teacher", r->o.teacher_name);
    if (!rc && r->teacher) rc = gguf_set_u64(w, "retort.distill.teacher_params", r->teacher->n_params);
    if (!rc && r->cache) rc = gguf_set_u64(w, "retort.distill.cache_data_hash", kd_cache_get_info(r->cache)->data_hash);
    return rc;
}

/* Data parallelism (train.h): advance the RNG exactly as wb_next_batch does, building nothing
 * (no cache reads, no on-policy generation: only its sampler seed is drawn). */
static int wb_skip_batch(void *ud, rt_rng *rng, size_t B, size_t T) {
    distill_run *r = ud;
    if (r->cache) {
        size_t nw = kd_cache_get_info(r->cache)->n_windows;
        for (size_t b = 0; b < B; b++) (void)rt_rng_below(rng, nw);
        return 0;
    }
    int on = r->o.on_policy > 0 && rt_rng_double(rng) < (double)r->o.on_policy;
    if (dataset_skip_batch(r->ds, rng, B, T)) return -1;
    if (on) (void)rt_rng_u64(rng);
    return 0;
}

static size_t wb_loss_count(void *ud) { return ((distill_run *)ud)->last.n_rows; }

void distill_run_task(distill_run *r, train_task *task) {
    memset(task, 0, sizeof *task);
    task->ud = r;
    task->kind = "distill";
    task->next_batch = wb_next_batch;
    task->loss = wb_loss;
    task->eval = wb_eval;
    task->add_meta = wb_meta;
    task->skip_batch = wb_skip_batch;
    task->loss_count = wb_loss_count;
}

/* ================================================================ black-box SFT */

int sft_run_init(sft_run *r, const kd_params *loss, model *student, const sft_set *set, double val_fraction,
                 size_t B, size_t T) {
    memset(r, 0, sizeof *r);
    r->loss = *loss;
    r->student = student;
    r->set = set;
    r->B = B;
    r->T = T;
    if (kd_params_validate(loss)) return -1;
    if (!(val_fraction >= 0 && val_fraction < 1)) return RT_FAIL("--val-fraction must be in [0, 1)");
    size_t n = set->n_ex, every = val_fraction > 0 ? (size_t)llround(1.0 / val_fraction) : 0;
    if (every == 1) every = 2;
    r->train_idx = rt_malloc_array(n, sizeof(size_t), "example index");
    r->val_idx = rt_malloc_array(n, sizeof(size_t), "example index");
    if (!r->train_idx || !r->val_idx) return -1;
    for (size_t e = 0; e < n; e++) {
        if (every && n >= 2 && e % every == every - 1) r->val_idx[r->n_val++] = e;
        else r->train_idx[r->n_train++] = e;
    }
    if (r->n_train == 0) return RT_FAIL("no training examples left after the held-out split");
    size_t V = student->cfg.vocab_size, N = B * T;
    for (size_t i = 0; i < set->off[n]; i++)
        if (set->tokens[i] < 0 || (size_t)set->tokens[i] >= V)
            return RT_FAIL("token id %d is outside the student's vocabulary (%zu)", set->tokens[i], V);
    size_t kmax = 1;
    for (size_t s = 0; s < set->n_soft; s++) kmax = RT_MAX(kmax, set->soft_k_off[s + 1] - set->soft_k_off[s]);
    if (kd_workspace_init(&r->ws, V, kmax)) return -1;
    r->rows = rt_calloc(N, sizeof(kd_topk_row), "soft targets");
    r->row_tok = rt_malloc_array(T + 1, sizeof(int32_t), "packed row");
    r->row_lab = rt_malloc_array(T + 1, sizeof(int32_t), "packed row");
    r->row_soft = rt_malloc_array(T + 1, sizeof(int64_t), "packed row");
    r->eval_in = rt_malloc_array(N, sizeof(int32_t), "eval batch");
    r->eval_tg = rt_malloc_array(N, sizeof(int32_t), "eval batch");
    if (!r->rows || !r->row_tok || !r->row_lab || !r->row_soft || !r->eval_in || !r->eval_tg) return -1;
    r->last.kd = r->last.ce = NAN;
    return 0;
}

void sft_run_free(sft_run *r) {
    kd_workspace_free(&r->ws);
    free(r->train_idx);
    free(r->val_idx);
    free(r->rows);
    free(r->row_tok);
    free(r->row_lab);
    free(r->row_soft);
    free(r->eval_in);
    free(r->eval_tg);
    memset(r, 0, sizeof *r);
}

static int sft_next_batch(void *ud, rt_rng *rng, size_t B, size_t T, int32_t *inputs, int32_t *targets) {
    sft_run *r = ud;
    const sft_set *s = r->set;
    for (size_t b = 0; b < B; b++) {
        size_t pos = 0;
        while (pos < T + 1) {
            size_t e = r->train_idx[rt_rng_below(rng, r->n_train)];
            const int32_t *tok = s->tokens + s->off[e];
            size_t len = s->off[e + 1] - s->off[e], np = s->n_prompt[e];
            size_t cnt = RT_MIN(len, T + 1 - pos);
            for (size_t i = 0; i < cnt; i++) {
                r->row_tok[pos + i] = tok[i];
                r->row_lab[pos + i] = i >= np ? tok[i] : -1;
                r->row_soft[pos + i] = -1;
            }
            for (size_t q = s->soft_off[e]; q < s->soft_off[e + 1]; q++)
                if (s->soft_tok[q] < cnt) r->row_soft[pos + s->soft_tok[q]] = (int64_t)q;
            pos += cnt;
        }
        for (size_t t = 0; t < T; t++) {
            inputs[b * T + t] = r->row_tok[t];
            targets[b * T + t] = r->row_lab[t + 1];
            kd_topk_row *row = &r->rows[b * T + t];
            int64_t q = r->row_soft[t + 1];
            if (q >= 0) {
                size_t k0 = s->soft_k_off[q], k1 = s->soft_k_off[q + 1];
                row->k = k1 - k0;
                row->ids = s->soft_ids + k0;
                row->logprobs = s->soft_lps + k0;
                row->lp_rest = s->soft_rest[q];
            } else {
                row->k = 0;
            }
        }
    }
    return 0;
}

static int sft_loss(void *ud, model *m, const int32_t *inputs, const int32_t *targets, size_t B, size_t T,
                    float *loss) {
    sft_run *r = ud;
    kd_stats st;
    if (kd_loss_batch(&r->loss, &r->ws, model_dlogits(m), NULL, r->set->n_soft ? r->rows : NULL, targets, 1, B * T,
                      m->cfg.vocab_size, 1, &st))
        return -1;
    r->last = st;
    *loss = (float)st.loss;
    return 0;
}

static int sft_eval(void *ud, model *m, float *val_loss, char *extra, size_t cap) {
    sft_run *r = ud;
    size_t B = r->B, T = r->T, V = m->cfg.vocab_size;
    kd_compare acc = {0};
    *val_loss = NAN;
    extra[0] = 0;
    /* held-out examples, one per row; at most eval_max of them */
    size_t n = r->n_val;
    if (r->eval_max && n > r->eval_max) n = r->eval_max;
    size_t lo, hi; /* under mpirun each rank scores a share of the examples */
    dist_split(n, dist_size(), dist_rank(), &lo, &hi);
    for (size_t i0 = lo; i0 < hi; i0 += B) {
        size_t nb = RT_MIN(B, hi - i0);
        for (size_t b = 0; b < nb; b++)
            sft_example_row(r->set, r->val_idx[i0 + b], T, r->eval_in + b * T, r->eval_tg + b * T);
        const float *sl = model_forward(m, r->eval_in, nb, T);
        if (!sl) return -1;
        if (kd_compare_rows(&r->ws, sl, NULL, r->eval_tg, nb * T, V, &acc)) return -1;
    }
    if (kd_compare_reduce(&acc)) return -1;
    if (acc.n) *val_loss = (float)(acc.ce_sum / (double)acc.n);
    size_t o = 0;
    if (isfinite(r->last.kd)) o += (size_t)snprintf(extra + o, cap - o, "\"train_kd\":%.6f", r->last.kd);
    if (isfinite(r->last.ce) && o < cap)
        snprintf(extra + o, cap - o, "%s\"train_ce\":%.6f", o ? "," : "", r->last.ce);
    return 0;
}

static int sft_meta(void *ud, gguf_writer *w) {
    sft_run *r = ud;
    int rc = gguf_set_str(w, "retort.sft.loss", kd_kind_name(r->loss.kind));
    if (!rc) rc = gguf_set_f32(w, "retort.sft.alpha", r->loss.alpha);
    if (!rc) rc = gguf_set_f32(w, "retort.sft.beta", r->loss.beta);
    if (!rc) rc = gguf_set_f32(w, "retort.sft.temperature", r->loss.temperature);
    if (!rc) rc = gguf_set_u64(w, "retort.sft.examples", r->set->n_ex);
    if (!rc) rc = gguf_set_u64(w, "retort.sft.soft_positions", r->set->n_soft);
    if (!rc && r->data_name) rc = gguf_set_str(w, "retort.sft.data", r->data_name);
    return rc;
}

/* Data parallelism: the examples sft_next_batch would pack, drawn and passed over. */
static int sft_skip_batch(void *ud, rt_rng *rng, size_t B, size_t T) {
    sft_run *r = ud;
    const sft_set *s = r->set;
    for (size_t b = 0; b < B; b++)
        for (size_t pos = 0; pos < T + 1;) {
            size_t e = r->train_idx[rt_rng_below(rng, r->n_train)];
            pos += RT_MIN(s->off[e + 1] - s->off[e], T + 1 - pos);
        }
    return 0;
}

static size_t sft_loss_count(void *ud) { return ((sft_run *)ud)->last.n_rows; }

void sft_run_task(sft_run *r, train_task *task) {
    memset(task, 0, sizeof *task);
    task->ud = r;
    task->kind = "sft";
    task->next_batch = sft_next_batch;
    task->loss = sft_loss;
    task->eval = sft_eval;
    task->add_meta = sft_meta;
    task->skip_batch = sft_skip_batch;
    task->loss_count = sft_loss_count;
}
