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
 * Not the model math (src/model) nor any particular loss (hooks in train_task).
 */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"

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

static int eval_default(const dataset *ds, model *m, size_t B, size_t T, size_t n_batches,
                        int32_t *inputs, int32_t *targets, float *val_loss) {
    double sum = 0;
    size_t count = 0;
    if (!ds || ds->n_val < T + 1) {
        *val_loss = NAN;
        return 0;
    }
    for (size_t i = 0; i < n_batches; i++) {
        if (dataset_val_batch(ds, i, n_batches, B, T, inputs, targets)) return -1;
        if (!model_forward(m, inputs, B, T)) return -1;
        size_t nv;
        float l = model_loss_ce(m, targets, 0, &nv);
        sum += (double)l * (double)nv;
        count += nv;
    }
    *val_loss = count ? (float)(sum / (double)count) : NAN;
    return 0;
}

/* ---- checkpoint ---- */

typedef struct {
    const char *key;
    double value;
    int is_float; /* compare as float32 bits */
} opt_field;

static size_t options_fields(const train_options *o, const model *m, opt_field *f) {
    size_t n = 0;
#define F(k, v, fl) f[n++] = (opt_field){k, (double)(v), fl}
    F("retort.train.batch", o->batch, 0);
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
                            const float *opt_v) {
    gguf_writer *w = gguf_writer_new();
    if (!w) return -1;
    opt_field f[32];
    size_t nf = options_fields(o, m, f);
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
    if (rc == 0) rc = gguf_set_arr_data(w, "retort.train.rng", GGUF_TYPE_UINT64, rng->s, 4);
    if (rc == 0) rc = gguf_set_arr_data(w, "retort.train.tokens", GGUF_TYPE_FLOAT64, toks, 1);
    if (rc == 0) rc = gguf_set_arr_data(w, "retort.train.seconds", GGUF_TYPE_FLOAT64, secs, 1);
    uint64_t ne[1] = {m->n_params};
    if (rc == 0) rc = gguf_add_tensor(w, "opt.m", GGML_TYPE_F32, 1, ne, opt_m);
    if (rc == 0) rc = gguf_add_tensor(w, "opt.v", GGML_TYPE_F32, 1, ne, opt_v);
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
                           float *opt_m, float *opt_v) {
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
        a->vocab_size != b->vocab_size || a->ctx_len != b->ctx_len || a->tied != b->tied) {
        rc = RT_FAIL("%s: checkpoint model shape (dim %zu, layers %zu, heads %zu/%zu, ffn %zu, "
                     "vocab %zu, ctx %zu) differs from this run's (dim %zu, layers %zu, heads "
                     "%zu/%zu, ffn %zu, vocab %zu, ctx %zu)",
                     path, b->dim, b->n_layers, b->n_heads, b->n_kv_heads, b->ffn_dim, b->vocab_size,
                     b->ctx_len, a->dim, a->n_layers, a->n_heads, a->n_kv_heads, a->ffn_dim,
                     a->vocab_size, a->ctx_len);
        goto done;
    }
    opt_field f[32];
    size_t nf = options_fields(o, m, f);
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
                             "same options",
                             path, f[i].key, (unsigned long long)x, f[i].value);
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

/* ---- the loop ---- */

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
    int32_t *inputs = rt_malloc_array(N, sizeof(int32_t), "batch");
    int32_t *targets = rt_malloc_array(N, sizeof(int32_t), "batch");
    float *opt_m = rt_alloc_aligned(m->n_params * sizeof(float), "AdamW moments");
    float *opt_v = rt_alloc_aligned(m->n_params * sizeof(float), "AdamW moments");
    model_param_info *tab = NULL;
    size_t n_tab = 0;
    FILE *logf = NULL;
    int rc = -1;
    if (!inputs || !targets || !opt_m || !opt_v || model_param_table(&m->cfg, &tab, &n_tab)) goto done;
    rt_rng rng;
    rt_rng_seed(&rng, o->seed);
    size_t step0 = 0;
    double tokens = 0, seconds_before = 0;
    if (o->resume) {
        if (!rt_file_exists(ckpt)) {
            RT_FAIL("--resume: no checkpoint at %s", ckpt);
            goto done;
        }
        if (read_checkpoint(m, o, ckpt, &step0, &rng, &tokens, &seconds_before, data_hash, opt_m, opt_v))
            goto done;
        if (log_truncate(logp, step0)) goto done;
        rt_info("resuming from %s at step %zu/%zu", ckpt, step0, o->steps);
    }
    logf = fopen(logp, o->resume ? "a" : "w");
    if (!logf) {
        RT_FAIL("%s: cannot open the training log: %s", logp, strerror(errno));
        goto done;
    }
    setvbuf(logf, NULL, _IOFBF, 1 << 16); /* a row (flushed whole after each step) leaves in one write */
    double flops_per_token = model_config_train_flops_per_token(&m->cfg, T);
    rt_progress bar;
    rt_progress_init(&bar, task && task->kind ? task->kind : "train", o->steps);
    bar.done = step0;
    double t0 = rt_now(), tok_run = 0;
    float val_loss = NAN, loss = NAN;
    char extra[512] = "";
    for (size_t step = step0; step < o->steps; step++) {
        int rc_b = task && task->next_batch ? task->next_batch(task->ud, &rng, B, T, inputs, targets)
                                            : dataset_sample_batch(ds, &rng, B, T, inputs, targets);
        if (rc_b) goto done;
        model_zero_grad(m);
        if (!m->grads || !model_forward(m, inputs, B, T)) goto done;
        if (task && task->loss) {
            if (task->loss(task->ud, m, inputs, targets, B, T, &loss)) goto done;
        } else {
            loss = model_loss_ce(m, targets, 1, NULL);
        }
        if (!isfinite(loss)) {
            RT_FAIL("loss became %g at step %zu; try a lower --lr or a smaller --clip", (double)loss,
                    step + 1);
            goto done;
        }
        if (model_backward(m)) goto done;
        double norm = grad_global_norm(m->grads, m->n_params);
        float scale = (o->clip > 0 && norm > o->clip) ? (float)(o->clip / norm) : 1.0f;
        float lr = lr_schedule(step, o->warmup, o->steps, o->lr, o->min_lr_frac);
        for (size_t i = 0; i < n_tab; i++) {
            size_t off = tab[i].offset, cnt = tab[i].rows * tab[i].cols;
            adamw_update(m->params + off, m->grads + off, opt_m + off, opt_v + off, cnt, lr, o->beta1,
                         o->beta2, o->eps, tab[i].is_matrix ? o->weight_decay : 0.0f, step + 1, scale);
        }
        tokens += (double)N;
        tok_run += (double)N;
        size_t done_steps = step + 1;
        int last = done_steps == o->steps;
        int do_eval = last || (o->eval_every && done_steps % o->eval_every == 0);
        extra[0] = '\0';
        if (do_eval) {
            int rc_e = task && task->eval
                           ? task->eval(task->ud, m, &val_loss, extra, sizeof extra)
                           : eval_default(ds, m, B, T, o->eval_batches, inputs, targets, &val_loss);
            if (rc_e) goto done;
        }
        double el = rt_now() - t0;
        double tps = el > 0 ? tok_run / el : 0;
        fprintf(logf,
                "{\"step\":%zu,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6g,\"tokens\":%.0f,"
                "\"flops\":%.6g,\"tok_per_s\":%.1f,\"elapsed\":%.3f",
                done_steps, (double)loss, (double)lr, norm, tokens, tokens * flops_per_token, tps,
                seconds_before + el);
        if (do_eval) log_eval_fields(logf, val_loss, extra);
        fputs("}\n", logf);
        fflush(logf);
        char status[160], tps_s[16];
        rt_fmt_si(tps_s, sizeof tps_s, tps);
        if (isfinite(val_loss))
            snprintf(status, sizeof status, "loss %.3f | val %.3f | %s tok/s | lr %.1e", (double)loss,
                     (double)val_loss, tps_s, (double)lr);
        else
            snprintf(status, sizeof status, "loss %.3f | %s tok/s | lr %.1e", (double)loss, tps_s, (double)lr);
        if (!o->quiet) rt_progress_update(&bar, done_steps, status);
        if (last || (o->save_every && done_steps % o->save_every == 0)) {
            if (write_checkpoint(m, o, task, ckpt, done_steps, &rng, tokens, seconds_before + el,
                                 data_hash, opt_m, opt_v))
                goto done;
        }
        res->steps_done = done_steps;
        res->train_loss = loss;
        res->val_loss = val_loss;
        res->tokens = tokens;
        res->seconds = seconds_before + el;
        res->tokens_per_s = tps;
        if (last && !o->quiet) rt_progress_finish(&bar, status);
        if (!last && interrupt_requested(o)) {
            if (!(o->save_every && done_steps % o->save_every == 0) &&
                write_checkpoint(m, o, task, ckpt, done_steps, &rng, tokens, seconds_before + el, data_hash, opt_m,
                                 opt_v))
                goto done;
            res->interrupted = 1;
            if (!o->quiet) rt_progress_stop(&bar, "interrupted");
            rc = 0;
            goto done;
        }
        if (o->stop_after && done_steps - step0 >= o->stop_after && !last) {
            rc = 0; /* simulated kill: no final model */
            goto done;
        }
    }
    res->flops = res->tokens * flops_per_token;
    /* the final model: weights + deterministic training metadata (no timings, so resumed and
     * uninterrupted runs write identical files) */
    {
        gguf_writer *w = gguf_writer_new();
        if (!w) goto done;
        int r = model_to_gguf(m, w, 0);
        if (r == 0) r = gguf_set_str(w, "retort.train.kind", task && task->kind ? task->kind : "train");
        if (r == 0) r = gguf_set_u64(w, "retort.train.steps", o->steps);
        if (r == 0) r = gguf_set_u64(w, "retort.train.batch", B);
        if (r == 0) r = gguf_set_u64(w, "retort.train.seq_len", T);
        if (r == 0) r = gguf_set_u64(w, "retort.train.tokens", (uint64_t)res->tokens);
        if (r == 0) r = gguf_set_u64(w, "retort.train.flops", (uint64_t)res->flops);
        if (r == 0) r = gguf_set_u64(w, "retort.train.seed", o->seed);
        if (r == 0 && task && task->add_meta) r = task->add_meta(task->ud, w);
        if (r == 0) r = gguf_writer_write(w, o->out_path);
        gguf_writer_free(w);
        if (r) goto done;
    }
    rc = 0;
done:
    if (logf) fclose(logf);
    free(inputs);
    free(targets);
    rt_free_aligned(opt_m);
    rt_free_aligned(opt_v);
    free(tab);
    return rc;
}
