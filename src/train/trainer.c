/*
 * trainer.c — the training loop shared by train, distill and sft: batches, loss, backward,
 * clipping, AdamW, evaluation, progress bar, JSONL log, and checkpoints.
 *
 * Checkpoint = one GGUF file (temp + fsync + rename) holding the model tensors and keys,
 * the AdamW moments (tensors opt.m and opt.v over the flat parameter buffer), and
 * retort.train.* keys: step, RNG state, tokens, FLOPs, the data hash and every option that
 * shapes the result. --resume refuses a checkpoint whose options differ, and then
 * continues to the bit-identical result of an uninterrupted run (same thread count):
 * evaluation and logging never touch the training RNG, parameters or moments.
 *
 * Data parallelism under mpirun (train.h, "data parallelism"): the dp_* functions below;
 * with one process and --grad-accum 1 they reduce to the single-process loop exactly.
 *
 * Not the model math (src/model) nor any particular loss (hooks in train_task).
 */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "dist.h"

void train_options_defaults(train_options *o) {
    memset(o, 0, sizeof *o);
    o->batch = 16;
    o->seq_len = 256;
    o->steps = 1000;
    o->lr = 1e-3f;
    o->min_lr_frac = 0.1f;
    o->warmup = 100;
    o->beta1 = 0.9f;
    o->beta2 = 0.95f;
    o->eps = 1e-8f;
    o->weight_decay = 0.1f;
    o->clip = 1.0f;
    o->eval_every = 100;
    o->eval_batches = 8;
    o->save_every = 500;
    o->seed = 1337;
    o->grad_accum = 1;
}

/* An interrupt (SIGINT/SIGTERM caught by the CLI) asked to stop after this step. */
static int interrupt_requested(const train_options *o) {
    return o->interrupt && *o->interrupt;
}

/* ---- evaluation ---- */

/* The held-out fields of a log row: "val_loss" is null when there was no held-out window
 * (NaN is not JSON); `extra` (the task's own fields) follows as given. */
static void log_eval_fields(FILE *logf, float val_loss, const char *extra) {
    if (isfinite(val_loss)) fprintf(logf, ",\"val_loss\":%.6f", (double)val_loss);
    else fputs(",\"val_loss\":null", logf);
    if (extra[0]) fprintf(logf, ",%s", extra);
}

/* Mean cross-entropy over `total` evenly spaced held-out windows, B per forward; under
 * mpirun each rank scores a contiguous share and the sums are added (in double). */
static int eval_default(const dataset *ds, model *m, size_t B, size_t T, size_t total,
                        int32_t *inputs, int32_t *targets, float *val_loss) {
    double acc[2] = {0, 0}; /* sum of nats, positions */
    if (!ds || ds->n_val < T + 1) {
        *val_loss = NAN;
        return 0;
    }
    size_t lo, hi;
    dist_split(total, dist_size(), dist_rank(), &lo, &hi);
    for (size_t w = lo; w < hi; w += B) {
        size_t nb = RT_MIN(B, hi - w);
        if (dataset_val_windows(ds, w, nb, total, T, inputs, targets)) return -1;
        if (!model_forward(m, inputs, nb, T)) return -1;
        size_t nv;
        float l = model_loss_ce(m, targets, 0, &nv);
        acc[0] += (double)l * (double)nv;
        acc[1] += (double)nv;
    }
    if (dist_allreduce_f64(acc, 2)) return -1;
    *val_loss = acc[1] > 0 ? (float)(acc[0] / acc[1]) : NAN;
    return 0;
}

/* ---- checkpoint ---- */

typedef struct {
    const char *key;
    double value;
    int is_float; /* compare as float32 bits */
} opt_field;

/* "retort.train.batch" is the global batch G = ranks * batch * grad_accum (= batch for one
 * process), so a checkpoint resumes under any split of the same G. */
static size_t options_fields(const train_options *o, const model *m, size_t global_batch, opt_field *f) {
    size_t n = 0;
#define F(k, v, fl) f[n++] = (opt_field){k, (double)(v), fl}
    F("retort.train.batch", global_batch, 0);
    F("retort.train.seq_len", o->seq_len, 0);
    F("retort.train.steps", o->steps, 0);
    F("retort.train.warmup", o->warmup, 0);
    F("retort.train.seed", (double)(o->seed & 0xffffffffu), 0);
    F("retort.train.lr", o->lr, 1);
    F("retort.train.min_lr_frac", o->min_lr_frac, 1);
    F("retort.train.beta1", o->beta1, 1);
    F("retort.train.beta2", o->beta2, 1);
    F("retort.train.eps", o->eps, 1);
    F("retort.train.weight_decay", o->weight_decay, 1);
    F("retort.train.clip", o->clip, 1);
    F("retort.train.n_params", m->n_params, 0);
#undef F
    return n;
}

static int write_checkpoint(model *m, const train_options *o, const train_task *task,
                            const char *path, size_t step, const rt_rng *rng, double tokens,
                            double seconds, uint64_t data_hash, const float *opt_m,
                            const float *opt_v, size_t global_batch) {
    gguf_writer *w = gguf_writer_new();
    if (!w) return -1;
    opt_field f[32];
    size_t nf = options_fields(o, m, global_batch, f);
    int rc = model_to_gguf(m, w, 0);
    for (size_t i = 0; i < nf && rc == 0; i++)
        rc = f[i].is_float ? gguf_set_f32(w, f[i].key, (float)f[i].value)
                           : gguf_set_u64(w, f[i].key, (uint64_t)f[i].value);
    uint64_t seed_full = o->seed;
    double secs[1] = {seconds}, toks[1] = {tokens};
    if (rc == 0) rc = gguf_set_u32(w, "retort.ckpt.version", 1);
    if (rc == 0) rc = gguf_set_str(w, "retort.train.kind", task && task->kind ? task->kind : "train");
    if (rc == 0) rc = gguf_set_u64(w, "retort.train.step", step);
    if (rc == 0) rc = gguf_set_u64(w, "retort.train.seed_full", seed_full);
    if (rc == 0) rc = gguf_set_u64(w, "retort.train.data_hash", data_hash);
    if (rc == 0) rc = gguf_set_u64(w, "retort.train.ranks", (uint64_t)dist_size()); /* informational */
    if (rc == 0) rc = gguf_set_u64(w, "retort.train.grad_accum", o->grad_accum ? o->grad_accum : 1);
    if (rc == 0) rc = gguf_set_arr_data(w, "retort.train.rng", GGUF_TYPE_UINT64, rng->s, 4);
    if (rc == 0) rc = gguf_set_arr_data(w, "retort.train.tokens", GGUF_TYPE_FLOAT64, toks, 1);
    if (rc == 0) rc = gguf_set_arr_data(w, "retort.train.seconds", GGUF_TYPE_FLOAT64, secs, 1);
    uint64_t ne[1] = {m->n_params};
    if (rc == 0) rc = gguf_add_tensor(w, "opt.m", GGUF_DTYPE_F32, 1, ne, opt_m);
    if (rc == 0) rc = gguf_add_tensor(w, "opt.v", GGUF_DTYPE_F32, 1, ne, opt_v);
    if (rc == 0 && task && task->add_meta) rc = task->add_meta(task->ud, w);
    if (rc == 0) rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    return rc;
}

static int get_f64_1(const gguf_ctx *g, const char *key, double *out) {
    gguf_type t;
    size_t n;
    const void *d;
    int rc = gguf_get_arr_data(g, key, &t, &n, &d);
    if (rc) return rc == 1 ? RT_FAIL("%s: missing key %s", gguf_path(g), key) : -1;
    if (t != GGUF_TYPE_FLOAT64 || n != 1) return RT_FAIL("%s: key %s is malformed", gguf_path(g), key);
    memcpy(out, d, sizeof(double));
    return 0;
}

static int read_checkpoint(model *m, const train_options *o, const char *path, size_t *step,
                           rt_rng *rng, double *tokens, double *seconds, uint64_t data_hash,
                           float *opt_m, float *opt_v, size_t global_batch) {
    gguf_ctx *g;
    if (gguf_open(&g, path)) return -1;
    int rc = 0;
    model *ck = NULL;
    uint32_t ver;
    if (gguf_get_u32(g, "retort.ckpt.version", &ver) != 0 || ver != 1) {
        rc = RT_FAIL("%s: not a retort training checkpoint (no retort.ckpt.version 1)", path);
        goto done;
    }
    if ((rc = model_from_gguf(&ck, g))) goto done;
    const model_config *a = &m->cfg, *b = &ck->cfg;
    if (a->dim != b->dim || a->n_layers != b->n_layers || a->n_heads != b->n_heads ||
        a->n_kv_heads != b->n_kv_heads || a->ffn_dim != b->ffn_dim ||
        a->vocab_size != b->vocab_size || a->ctx_len != b->ctx_len || a->tied != b->tied ||
        a->arch != b->arch || a->head_dim != b->head_dim || a->qkv_bias != b->qkv_bias) {
        rc = RT_FAIL("%s: checkpoint model shape (%s, dim %zu, layers %zu, heads %zu/%zu x %zu, ffn "
                     "%zu, vocab %zu, ctx %zu) differs from this run's (%s, dim %zu, layers %zu, heads "
                     "%zu/%zu x %zu, ffn %zu, vocab %zu, ctx %zu)",
                     path, model_arch_name(b->arch), b->dim, b->n_layers, b->n_heads, b->n_kv_heads,
                     b->head_dim, b->ffn_dim, b->vocab_size, b->ctx_len, model_arch_name(a->arch),
                     a->dim, a->n_layers, a->n_heads, a->n_kv_heads, a->head_dim, a->ffn_dim,
                     a->vocab_size, a->ctx_len);
        goto done;
    }
    opt_field f[32];
    size_t nf = options_fields(o, m, global_batch, f);
    for (size_t i = 0; i < nf; i++) {
        double have;
        if (f[i].is_float) {
            float x;
            if (gguf_get_f32(g, f[i].key, &x) != 0) {
                rc = RT_FAIL("%s: missing or malformed %s", path, f[i].key);
                goto done;
            }
            have = x;
            if ((float)have != (float)f[i].value) {
                rc = RT_FAIL("%s: checkpoint has %s = %g but this run asks %g; resume with the "
                             "same options",
                             path, f[i].key, have, f[i].value);
                goto done;
            }
        } else {
            uint64_t x;
            if (gguf_get_u64(g, f[i].key, &x) != 0) {
                rc = RT_FAIL("%s: missing or malformed %s", path, f[i].key);
                goto done;
            }
            if ((double)x != f[i].value) {
                rc = RT_FAIL("%s: checkpoint has %s = %llu but this run asks %.0f; resume with the "
                             "same options%s",
                             path, f[i].key, (unsigned long long)x, f[i].value,
                             !strcmp(f[i].key, "retort.train.batch")
                                 ? " (the global batch: ranks x --batch x --grad-accum)"
                                 : "");
                goto done;
            }
        }
    }
    uint64_t u, seed_full;
    if (gguf_get_u64(g, "retort.train.seed_full", &seed_full) || seed_full != o->seed) {
        rc = RT_FAIL("%s: checkpoint was trained with a different --seed", path);
        goto done;
    }
    if (gguf_get_u64(g, "retort.train.data_hash", &u) || u != data_hash) {
        rc = RT_FAIL("%s: checkpoint was trained on different data (token hash differs)", path);
        goto done;
    }
    if (gguf_get_u64(g, "retort.train.step", &u)) {
        rc = RT_FAIL("%s: missing retort.train.step", path);
        goto done;
    }
    *step = (size_t)u;
    gguf_type t;
    size_t n;
    const void *d;
    if (gguf_get_arr_data(g, "retort.train.rng", &t, &n, &d) || t != GGUF_TYPE_UINT64 || n != 4) {
        rc = RT_FAIL("%s: missing or malformed retort.train.rng", path);
        goto done;
    }
    memcpy(rng->s, d, sizeof rng->s);
    if ((rc = get_f64_1(g, "retort.train.tokens", tokens)) || (rc = get_f64_1(g, "retort.train.seconds", seconds)))
        goto done;
    uint64_t ne[1] = {m->n_params};
    if ((rc = gguf_read_tensor_f32(g, "opt.m", opt_m, m->n_params, ne, 1)) ||
        (rc = gguf_read_tensor_f32(g, "opt.v", opt_v, m->n_params, ne, 1)))
        goto done;
    memcpy(m->params, ck->params, m->n_params * sizeof(float));
done:
    model_free(ck);
    gguf_close(g);
    return rc ? -1 : 0;
}

/* Keep only log rows with "step" <= step (a killed run may have logged past its last
 * checkpoint); rewritten atomically. A missing log is fine. */
static int log_truncate(const char *path, size_t step) {
    if (!rt_file_exists(path)) return 0;
    char *data;
    size_t len;
    if (rt_read_file(path, &data, &len)) return -1;
    rt_buf out = {0};
    int rc = 0;
    for (char *line = data; *line && rc == 0;) {
        char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line + 1) : strlen(line);
        const char *s = strstr(line, "\"step\":");
        if (s && s < line + ll && nl) { /* a last line without its newline was cut by a kill: dropped */
            unsigned long long k = strtoull(s + 7, NULL, 10);
            if (k <= step) rc = rt_buf_append(&out, line, ll);
        }
        line += ll;
    }
    if (rc == 0) rc = rt_write_file_atomic(path, out.data ? out.data : "", out.len);
    rt_buf_free(&out);
    free(data);
    return rc;
}

/* ---- data parallelism ---- */

typedef struct {
    int n, r;                /* ranks, this rank */
    size_t K;                /* micro-batches per rank per step (--grad-accum) */
    int multi;               /* n * K > 1: micro-batch gradients are count-weighted sums */
    int zero;                /* ZeRO-1 */
    size_t lo, hi;           /* this rank's slice of the flat parameters; moments cover it */
    size_t *counts, *displs; /* (n) every rank's slice */
    int32_t *scr_in, *scr_tg; /* (B*T) scratch for tasks without skip_batch */
    size_t bucket;           /* allreduce bucket, floats (0 = dist's default) */
    dist_sum sum;            /* the step's gradient allreduce, started from the backward pass */
    size_t early;            /* buckets started before the backward pass reached the embedding */
    size_t early_total, buckets_total; /* over the run */
    double comm_step;        /* seconds of the last step's gradient allreduce (+ ZeRO-1 allgather) */
    double wait_step;        /* seconds of the last step spent waiting for the slowest rank */
} dp_state;

static void dp_free(dp_state *dp) {
    free(dp->sum.req); /* only after an error, which stops the job */
    free(dp->counts);
    free(dp->displs);
    free(dp->scr_in);
    free(dp->scr_tg);
}

static int dp_init(dp_state *dp, const train_options *o, size_t n_params, size_t N) {
    memset(dp, 0, sizeof *dp);
    dp->n = dist_size();
    dp->r = dist_rank();
    dp->K = o->grad_accum ? o->grad_accum : 1;
    dp->multi = dp->n > 1 || dp->K > 1;
    dp->zero = o->zero && dp->n > 1;
    dp->bucket = o->bucket;
    dp->counts = rt_calloc((size_t)dp->n, sizeof(size_t), "rank slices");
    dp->displs = rt_calloc((size_t)dp->n, sizeof(size_t), "rank slices");
    if (!dp->counts || !dp->displs) return -1;
    for (int q = 0; q < dp->n; q++) {
        size_t lo, hi;
        dist_split(n_params, dp->zero ? dp->n : 1, dp->zero ? q : 0, &lo, &hi);
        dp->displs[q] = lo;
        dp->counts[q] = hi - lo;
    }
    dp->lo = dp->displs[dp->r];
    dp->hi = dp->lo + dp->counts[dp->r];
    if (dp->n > 1) {
        dp->scr_in = rt_malloc_array(N, sizeof(int32_t), "batch");
        dp->scr_tg = rt_malloc_array(N, sizeof(int32_t), "batch");
        if (!dp->scr_in || !dp->scr_tg) return -1;
    }
    return 0;
}

/* Advance rng past one micro-batch that another rank builds. */
static int dp_skip(dp_state *dp, const dataset *ds, const train_task *task, rt_rng *rng, size_t B, size_t T) {
    if (!(task && task->next_batch)) return dataset_skip_batch(ds, rng, B, T);
    if (task->skip_batch) return task->skip_batch(task->ud, rng, B, T);
    return task->next_batch(task->ud, rng, B, T, dp->scr_in, dp->scr_tg);
}

/* This rank's next micro-batch: with N ranks, micro-batch q of the N drawn now is rank q's.
 * The task builds ours last, so state it keeps for its loss hook is ours. */
static int dp_next_batch(dp_state *dp, const dataset *ds, const train_task *task, rt_rng *rng, size_t B,
                         size_t T, int32_t *inputs, int32_t *targets) {
    rt_rng own = *rng;
    for (int q = 0; q < dp->n && dp->n > 1; q++) {
        if (q == dp->r) own = *rng;
        if (dp_skip(dp, ds, task, rng, B, T)) return -1;
    }
    rt_rng *use = dp->n > 1 ? &own : rng;
    return task && task->next_batch ? task->next_batch(task->ud, use, B, T, inputs, targets)
                                    : dataset_sample_batch(ds, use, B, T, inputs, targets);
}

/* model_backward's hook: the gradients from `from` on are final, start the buckets inside them. */
static int dp_backward_hook(void *ud, size_t from) {
    dp_state *dp = ud;
    if (dist_sum_ready(&dp->sum, from)) return -1;
    if (from > 0) dp->early = dp->sum.started;
    return 0;
}

/* Forward, loss and backward of this rank's K micro-batches into m->grads. One micro-batch in
 * all (one process, no accumulation): exactly the single-process step. Several: each one's
 * dLoss/dlogits is multiplied by its count c_j before the backward, so grads = sum_j c_j *
 * grad(mean_j) = grad(sum of losses); dp_update divides by the global count. *acc receives
 * (sum_j c_j * loss_j, sum_j c_j); *loss the last micro-batch's mean. With several ranks the
 * LAST micro-batch's backward starts the gradient allreduce (dp->sum) bucket by bucket as
 * its layers finish (earlier micro-batches still add to every gradient); dp_reduce waits. */
static int dp_local_grads(dp_state *dp, model *m, const dataset *ds, const train_task *task, rt_rng *rng,
                          size_t B, size_t T, int32_t *inputs, int32_t *targets, size_t step, double acc[2],
                          float *loss) {
    acc[0] = acc[1] = 0;
    dp->comm_step = 0;
    model_zero_grad(m);
    for (size_t k = 0; k < dp->K; k++) {
        if (dp_next_batch(dp, ds, task, rng, B, T, inputs, targets)) return -1;
        if (!m->grads || !model_forward(m, inputs, B, T)) return -1;
        size_t cnt = B * T;
        if (task && task->loss) {
            if (task->loss(task->ud, m, inputs, targets, B, T, loss)) return -1;
            if (task->loss_count) cnt = task->loss_count(task->ud);
        } else {
            *loss = model_loss_ce(m, targets, 1, &cnt);
        }
        if (cnt > 0 && !isfinite(*loss))
            return RT_FAIL("loss became %g at step %zu; try a lower --lr or a smaller --clip", (double)*loss,
                           step + 1);
        if (dp->multi) {
            float *dl = model_dlogits(m), c = (float)cnt;
            long long n = (long long)(B * T * m->cfg.vocab_size);
            if (cnt == 0) memset(dl, 0, (size_t)n * sizeof(float));
            else {
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
                for (long long i = 0; i < n; i++) dl[i] *= c;
            }
            if (cnt > 0) acc[0] += (double)*loss * (double)cnt;
            acc[1] += (double)cnt;
        }
        if (dp->n > 1 && k + 1 == dp->K) {
            double t0 = dist_comm_seconds();
            model_backward_hook hook = {dp_backward_hook, dp};
            dp->early = 0;
            if (dist_sum_begin(&dp->sum, m->grads, m->n_params, dp->bucket) || model_backward_hooked(m, &hook))
                return -1;
            dp->comm_step += dist_comm_seconds() - t0; /* starting buckets and progressing them */
            dp->early_total += dp->early;
            dp->buckets_total += dp->sum.nb;
        } else if (model_backward(m))
            return -1;
    }
    return 0;
}

/* Sum the loss counts over the ranks and finish the gradient sum dp_local_grads started;
 * returns the factor that turns the summed gradient into the gradient of the global mean
 * (1 for a single micro-batch). */
static int dp_reduce(dp_state *dp, double acc[2], float *loss, double *inv_count) {
    /* the barrier separates waiting for the slowest rank (wait_step) from the transfer; the
     * buckets already started keep moving during it */
    double t0 = dist_comm_seconds();
    if (dp->n > 1 && dist_barrier()) return -1;
    dp->wait_step = dist_comm_seconds() - t0;
    t0 = dist_comm_seconds();
    *inv_count = 1.0;
    if (dp->multi) {
        if (dist_allreduce_f64(acc, 2) || dist_sum_finish(&dp->sum)) return -1;
        if (!(acc[1] > 0)) return RT_FAIL("no position of this step's global batch carries a loss target");
        *inv_count = 1.0 / acc[1];
        *loss = (float)(acc[0] / acc[1]);
        if (!isfinite(*loss)) return RT_FAIL("the loss over all ranks became %g", (double)*loss);
    }
    dp->comm_step += dist_comm_seconds() - t0;
    return 0;
}

/* AdamW on this rank's slice of every tensor (all of it without ZeRO-1), then, with ZeRO-1,
 * every rank's updated slice to every rank. */
static int dp_update(dp_state *dp, model *m, const train_options *o, const model_param_info *tab, size_t n_tab,
                     float lr, size_t step, float scale, float *opt_m, float *opt_v) {
    for (size_t i = 0; i < n_tab; i++) {
        size_t a = RT_MAX(tab[i].offset, dp->lo), b = RT_MIN(tab[i].offset + tab[i].rows * tab[i].cols, dp->hi);
        if (a >= b) continue;
        adamw_update(m->params + a, m->grads + a, opt_m + (a - dp->lo), opt_v + (a - dp->lo), b - a, lr, o->beta1,
                     o->beta2, o->eps, tab[i].is_matrix ? o->weight_decay : 0.0f, step + 1, scale);
    }
    if (!dp->zero) return 0;
    double t0 = dist_comm_seconds();
    int rc = dist_allgatherv_f32(m->params, dp->counts, dp->displs);
    dp->comm_step += dist_comm_seconds() - t0;
    return rc;
}

static uint64_t params_hash(const model *m) {
    const unsigned char *p = (const unsigned char *)m->params;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < m->n_params * sizeof(float); i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* Every rank must hold the same weights (a cheap guard against a diverged replica). */
static int dp_check_replicas(const dp_state *dp, const model *m, size_t step) {
    if (dp->n == 1) return 0;
    uint64_t lo, hi;
    if (dist_minmax_u64(params_hash(m), &lo, &hi)) return -1;
    if (lo != hi) return RT_FAIL("after step %zu the ranks hold different weights (replicas diverged)", step);
    return 0;
}

/* Checkpoint on rank 0 (collective with ZeRO-1: the moment slices are gathered first). */
static int dp_checkpoint(dp_state *dp, model *m, const train_options *o, const train_task *task,
                         const char *path, size_t step, const rt_rng *rng, double tokens, double seconds,
                         uint64_t data_hash, float *opt_m, float *opt_v, size_t G) {
    if (dp_check_replicas(dp, m, step)) return -1;
    float *fm = opt_m, *fv = opt_v;
    int rc = 0;
    if (dp->zero) {
        fm = fv = NULL;
        if (dp->r == 0) {
            fm = rt_alloc_aligned(m->n_params * sizeof(float), "AdamW moments (checkpoint)");
            fv = rt_alloc_aligned(m->n_params * sizeof(float), "AdamW moments (checkpoint)");
            if (!fm || !fv) rc = -1; /* the other ranks are stopped by this rank's abort */
        }
        if (rc == 0) rc = dist_gatherv_f32(opt_m, fm, dp->counts, dp->displs, 0);
        if (rc == 0) rc = dist_gatherv_f32(opt_v, fv, dp->counts, dp->displs, 0);
    }
    if (rc == 0 && dp->r == 0)
        rc = write_checkpoint(m, o, task, path, step, rng, tokens, seconds, data_hash, fm, fv, G);
    if (dp->zero) {
        rt_free_aligned(fm);
        rt_free_aligned(fv);
    }
    return rc;
}

/* --resume: rank 0 reads and checks the checkpoint; the state goes to every rank (moments:
 * each rank its slice). */
typedef struct {
    uint64_t step;
    uint64_t rng[4];
    double tokens, seconds;
} dp_resume_state;

static int dp_resume(dp_state *dp, model *m, const train_options *o, const char *ckpt, size_t *step,
                     rt_rng *rng, double *tokens, double *seconds, uint64_t data_hash, float *opt_m,
                     float *opt_v, size_t G) {
    float *fm = opt_m, *fv = opt_v;
    int rc = 0;
    dp_resume_state st = {0};
    if (dp->zero && dp->r == 0) {
        fm = rt_alloc_aligned(m->n_params * sizeof(float), "AdamW moments (resume)");
        fv = rt_alloc_aligned(m->n_params * sizeof(float), "AdamW moments (resume)");
        if (!fm || !fv) rc = -1;
    }
    if (rc == 0 && dp->r == 0) {
        size_t s0 = 0;
        rc = read_checkpoint(m, o, ckpt, &s0, rng, tokens, seconds, data_hash, fm, fv, G);
        st.step = s0;
        memcpy(st.rng, rng->s, sizeof st.rng);
        st.tokens = *tokens;
        st.seconds = *seconds;
    }
    if (rc == 0 && dp->n > 1) {
        rc = dist_bcast(&st, sizeof st, 0);
        if (rc == 0) rc = dist_bcast(m->params, m->n_params * sizeof(float), 0);
        if (rc == 0 && dp->zero) {
            rc = dist_scatterv_f32(fm, opt_m, dp->counts, dp->displs, 0);
            if (rc == 0) rc = dist_scatterv_f32(fv, opt_v, dp->counts, dp->displs, 0);
        } else if (rc == 0) {
            rc = dist_bcast(opt_m, m->n_params * sizeof(float), 0);
            if (rc == 0) rc = dist_bcast(opt_v, m->n_params * sizeof(float), 0);
        }
    }
    if (dp->zero && dp->r == 0) {
        rt_free_aligned(fm);
        rt_free_aligned(fv);
    }
    if (rc) return -1;
    *step = (size_t)st.step;
    memcpy(rng->s, st.rng, sizeof st.rng);
    *tokens = st.tokens;
    *seconds = st.seconds;
    return 0;
}

/* An interrupt on any rank stops every rank after the same step (the checkpoint that follows
 * is collective): the ranks agree on the flag once per step. */
static int dp_interrupted(const dp_state *dp, const train_options *o, int *stop) {
    uint64_t mine = interrupt_requested(o) ? 1 : 0, lo = mine, hi = mine;
    if (dp->n > 1 && dist_minmax_u64(mine, &lo, &hi)) return -1;
    *stop = hi != 0;
    return 0;
}

/* Same start everywhere: rank 0's initial weights, and the same data on every rank. */
static int dp_start(dp_state *dp, model *m, uint64_t data_hash) {
    if (dp->n == 1) return 0;
    uint64_t lo, hi;
    if (dist_minmax_u64(data_hash, &lo, &hi)) return -1;
    if (lo != hi)
        return RT_FAIL("the ranks read different training data (token hashes differ): every rank must see the "
                       "same --data and tokenizer");
    return dist_bcast(m->params, m->n_params * sizeof(float), 0);
}

/* ---- the loop ---- */

static void progress_status(char *status, size_t cap, float loss, float val_loss, double tps, float lr) {
    char tps_s[16];
    rt_fmt_si(tps_s, sizeof tps_s, tps);
    if (isfinite(val_loss))
        snprintf(status, cap, "loss %.3f | val %.3f | %s tok/s | lr %.1e", (double)loss, (double)val_loss, tps_s,
                 (double)lr);
    else
        snprintf(status, cap, "loss %.3f | %s tok/s | lr %.1e", (double)loss, tps_s, (double)lr);
}

static int write_final_model(model *m, const train_options *o, const train_task *task, const train_result *res,
                             size_t G) {
    /* weights + deterministic training metadata (no timings, so resumed and uninterrupted runs
     * write identical files) */
    gguf_writer *w = gguf_writer_new();
    if (!w) return -1;
    int r = model_to_gguf(m, w, 0);
    if (r == 0) r = gguf_set_str(w, "retort.train.kind", task && task->kind ? task->kind : "train");
    if (r == 0) r = gguf_set_u64(w, "retort.train.steps", o->steps);
    if (r == 0) r = gguf_set_u64(w, "retort.train.batch", G);
    if (r == 0) r = gguf_set_u64(w, "retort.train.seq_len", o->seq_len);
    if (r == 0) r = gguf_set_u64(w, "retort.train.tokens", (uint64_t)res->tokens);
    if (r == 0) r = gguf_set_u64(w, "retort.train.flops", (uint64_t)res->flops);
    if (r == 0) r = gguf_set_u64(w, "retort.train.seed", o->seed);
    if (r == 0 && task && task->add_meta) r = task->add_meta(task->ud, w);
    if (r == 0) r = gguf_writer_write(w, o->out_path);
    gguf_writer_free(w);
    return r;
}

int train_options_check(const train_options *o) {
    if (o->batch == 0 || o->seq_len == 0 || o->steps == 0) return RT_FAIL("--batch, --seq-len and --steps must be > 0");
    if (!(o->lr > 0) || !isfinite(o->lr)) return RT_FAIL("--lr must be a positive number (got %g)", (double)o->lr);
    if (!(o->min_lr_frac >= 0 && o->min_lr_frac <= 1))
        return RT_FAIL("--min-lr-frac must be in [0, 1] (got %g)", (double)o->min_lr_frac);
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) || !(o->eps > 0))
        return RT_FAIL("AdamW needs beta1, beta2 in [0, 1) and eps > 0 (got %g, %g, %g)", (double)o->beta1,
                       (double)o->beta2, (double)o->eps);
    if (!(o->weight_decay >= 0) || !(o->clip >= 0))
        return RT_FAIL("--weight-decay and --clip must be >= 0 (got %g, %g)", (double)o->weight_decay, (double)o->clip);
    return 0;
}

int train_run(model *m, const dataset *ds, const train_options *o, const train_task *task,
              train_result *res) {
    memset(res, 0, sizeof *res);
    res->val_loss = NAN;
    size_t B = o->batch, T = o->seq_len;
    if (train_options_check(o)) return -1;
    if (T > m->cfg.ctx_len)
        return RT_FAIL("--seq-len %zu exceeds the model's context length %zu", T, m->cfg.ctx_len);
    if (!ds && !(task && task->next_batch)) return RT_FAIL("train_run: no data");
    char ckpt_buf[4096], log_buf[4096];
    const char *ckpt = o->ckpt_path, *logp = o->log_path;
    if (!ckpt) {
        snprintf(ckpt_buf, sizeof ckpt_buf, "%s.ckpt", o->out_path);
        ckpt = ckpt_buf;
    }
    if (!logp) {
        snprintf(log_buf, sizeof log_buf, "%s.log.jsonl", o->out_path);
        logp = log_buf;
    }
    uint64_t data_hash = ds ? ds->hash : 0;
    size_t N = B * T;
    dp_state dp;
    int32_t *inputs = rt_malloc_array(N, sizeof(int32_t), "batch");
    int32_t *targets = rt_malloc_array(N, sizeof(int32_t), "batch");
    float *opt_m = NULL, *opt_v = NULL;
    model_param_info *tab = NULL;
    size_t n_tab = 0;
    FILE *logf = NULL;
    int rc = -1;
    if (dp_init(&dp, o, m->n_params, N)) goto done;
    size_t G = (size_t)dp.n * dp.K * B, slice = dp.hi - dp.lo; /* global batch; moments held here */
    opt_m = rt_alloc_aligned((slice ? slice : 1) * sizeof(float), "AdamW moments");
    opt_v = rt_alloc_aligned((slice ? slice : 1) * sizeof(float), "AdamW moments");
    if (!inputs || !targets || !opt_m || !opt_v || model_param_table(&m->cfg, &tab, &n_tab)) goto done;
    res->ranks = dp.n;
    res->opt_bytes = 2 * slice * sizeof(float);
    int quiet = o->quiet || dp.r != 0;
    rt_rng rng;
    rt_rng_seed(&rng, o->seed);
    size_t step0 = 0;
    double tokens = 0, seconds_before = 0;
    if (dp_start(&dp, m, data_hash)) goto done;
    if (o->resume) {
        if (!rt_file_exists(ckpt)) {
            RT_FAIL("--resume: no checkpoint at %s", ckpt);
            goto done;
        }
        if (dp_resume(&dp, m, o, ckpt, &step0, &rng, &tokens, &seconds_before, data_hash, opt_m, opt_v, G))
            goto done;
        if (dp.r == 0 && log_truncate(logp, step0)) goto done;
        rt_info("resuming from %s at step %zu/%zu", ckpt, step0, o->steps);
    }
    if (dp.n > 1 || dp.K > 1) {
        char mb[16], full[16];
        rt_fmt_si(mb, sizeof mb, (double)res->opt_bytes);
        rt_fmt_si(full, sizeof full, (double)(2 * m->n_params * sizeof(float)));
        rt_info("data parallel: %d rank%s x batch %zu x grad-accum %zu = global batch %zu; AdamW moments per rank "
                "%sB%s",
                dp.n, dp.n > 1 ? "s" : "", B, dp.K, G, mb, dp.zero ? " (ZeRO-1 slice)" : "");
        if (dp.zero) rt_info("ZeRO-1: each rank keeps 1/%d of the %sB of AdamW moments", dp.n, full);
    }
    if (dp.r == 0) {
        logf = fopen(logp, o->resume ? "a" : "w");
        if (!logf) {
            RT_FAIL("%s: cannot open the training log: %s", logp, strerror(errno));
            goto done;
        }
    }
    if (logf) setvbuf(logf, NULL, _IOFBF, 1 << 16); /* a row (flushed whole after each step) leaves in one write */
    double flops_per_token = model_config_train_flops_per_token(&m->cfg, T);
    rt_progress bar;
    rt_progress_init(&bar, task && task->kind ? task->kind : "train", o->steps);
    bar.done = step0;
    double t0 = rt_now(), tok_run = 0;
    float val_loss = NAN, loss = NAN;
    char extra[512] = "";
    for (size_t step = step0; step < o->steps; step++) {
        double acc[2], inv_count;
        if (dp_local_grads(&dp, m, ds, task, &rng, B, T, inputs, targets, step, acc, &loss) ||
            dp_reduce(&dp, acc, &loss, &inv_count))
            goto done;
        double norm = grad_global_norm(m->grads, m->n_params) * inv_count;
        double clip_s = (o->clip > 0 && norm > o->clip) ? o->clip / norm : 1.0;
        float scale = (float)(clip_s * inv_count);
        float lr = lr_schedule(step, o->warmup, o->steps, o->lr, o->min_lr_frac);
        if (dp_update(&dp, m, o, tab, n_tab, lr, step, scale, opt_m, opt_v)) goto done;
        tokens += (double)(G * T);
        tok_run += (double)(G * T);
        size_t done_steps = step + 1;
        int last = done_steps == o->steps;
        int do_eval = last || (o->eval_every && done_steps % o->eval_every == 0);
        extra[0] = '\0';
        if (do_eval) {
            int rc_e = task && task->eval
                           ? task->eval(task->ud, m, &val_loss, extra, sizeof extra)
                           : eval_default(ds, m, B, T, o->eval_batches * G, inputs, targets, &val_loss);
            if (rc_e) goto done;
        }
        double el = rt_now() - t0;
        double tps = el > 0 ? tok_run / el : 0;
        if (logf) {
            fprintf(logf,
                    "{\"step\":%zu,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6g,\"tokens\":%.0f,"
                    "\"flops\":%.6g,\"tok_per_s\":%.1f,\"elapsed\":%.3f",
                    done_steps, (double)loss, (double)lr, norm, tokens, tokens * flops_per_token, tps,
                    seconds_before + el);
            if (dp.n > 1) fprintf(logf, ",\"comm_s\":%.6f,\"wait_s\":%.6f", dp.comm_step, dp.wait_step);
            if (do_eval) log_eval_fields(logf, val_loss, extra);
            fputs("}\n", logf);
            fflush(logf);
        }
        char status[160];
        progress_status(status, sizeof status, loss, val_loss, tps, lr);
        if (!quiet) rt_progress_update(&bar, done_steps, status);
        if (last || (o->save_every && done_steps % o->save_every == 0)) {
            if (dp_checkpoint(&dp, m, o, task, ckpt, done_steps, &rng, tokens, seconds_before + el, data_hash,
                              opt_m, opt_v, G))
                goto done;
        }
        res->steps_done = done_steps;
        res->train_loss = loss;
        res->val_loss = val_loss;
        res->tokens = tokens;
        res->seconds = seconds_before + el;
        res->tokens_per_s = tps;
        if (last && !quiet) rt_progress_finish(&bar, status);
        if (!last) {
            int stop;
            if (dp_interrupted(&dp, o, &stop)) goto done;
            if (stop) {
                if (!(o->save_every && done_steps % o->save_every == 0) &&
                    dp_checkpoint(&dp, m, o, task, ckpt, done_steps, &rng, tokens, seconds_before + el, data_hash,
                                  opt_m, opt_v, G))
                    goto done;
                res->interrupted = 1;
                if (!quiet) rt_progress_stop(&bar, "interrupted");
                rc = 0;
                goto done;
            }
        }
        if (o->stop_after && done_steps - step0 >= o->stop_after && !last) {
            rc = 0; /* simulated kill: no final model */
            goto done;
        }
    }
    res->flops = res->tokens * flops_per_token;
    if (dp.r == 0 && write_final_model(m, o, task, res, G)) goto done;
    rc = 0;
done:
    res->comm_seconds = dist_comm_seconds();
    if (rc == 0) { /* every rank gets here together (errors abort the job instead) */
        uint64_t lo, hi;
        if (dist_minmax_u64(dist_peak_rss(), &lo, &hi) == 0) res->peak_rss = hi;
        if (dp.n > 1) {
            char rss[16];
            rt_fmt_si(rss, sizeof rss, (double)res->peak_rss);
            rt_info("data parallel: %d ranks, %.2fs of %.2fs in collectives on rank 0; peak resident memory %sB per "
                    "rank (max)",
                    dp.n, res->comm_seconds, res->seconds, rss);
            rt_info("gradient allreduce: %zu buckets, %zu of them started during the backward pass (before the "
                    "embedding's gradient)",
                    dp.buckets_total, dp.early_total);
        }
    }
    if (logf) fclose(logf);
    free(inputs);
    free(targets);
    rt_free_aligned(opt_m);
    rt_free_aligned(opt_v);
    free(tab);
    dp_free(&dp);
    return rc;
}
