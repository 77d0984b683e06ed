/* test_train.c — the train room: LR schedule and AdamW against hand-computed values, the
 * deterministic gradient norm, data split and batches, a tiny model learning a pattern,
 * and resume: a run killed after its checkpoint and resumed writes a model file
 * byte-identical to an uninterrupted run's; mismatched options are refused. */
#include "base/base.h"
#include "model/model.h"
#include "testlib.h"
#include "train/dist.h"
#include "train/train.h"

#include <jansson.h>

#include <unistd.h>

static void test_lr_schedule(void) {
    /* warmup 10 to lr 1.0, cosine to 0.1 at step 110 */
    CHECK_NEAR(lr_schedule(0, 10, 110, 1.0f, 0.1f), 0.1, 1e-7, 0);
    CHECK_NEAR(lr_schedule(9, 10, 110, 1.0f, 0.1f), 1.0, 1e-7, 0);
    CHECK_NEAR(lr_schedule(10, 10, 110, 1.0f, 0.1f), 1.0, 1e-7, 0);
    CHECK_NEAR(lr_schedule(60, 10, 110, 1.0f, 0.1f), 0.55, 1e-6, 0);   /* half way: (1+0.1)/2 */
    CHECK_NEAR(lr_schedule(35, 10, 110, 1.0f, 0.1f), 0.1 + 0.45 * (1 + cos(M_PI / 4)), 1e-6, 0);
    CHECK_NEAR(lr_schedule(110, 10, 110, 1.0f, 0.1f), 0.1, 1e-7, 0);
    CHECK_NEAR(lr_schedule(500, 10, 110, 1.0f, 0.1f), 0.1, 1e-7, 0);
}

static void test_adamw(void) {
    /* two steps by hand: beta1 .9, beta2 .99, eps 1e-8, lr .1, wd .5 */
    float p[2] = {1.0f, -2.0f}, m[2] = {0}, v[2] = {0};
    float g1[2] = {0.5f, -1.0f}, g2[2] = {-0.25f, 2.0f};
    double P[2] = {1.0, -2.0}, M[2] = {0}, Vv[2] = {0};
    double G[2][2] = {{0.5, -1.0}, {-0.25, 2.0}};
    for (int t = 1; t <= 2; t++) {
        adamw_update(p, t == 1 ? g1 : g2, m, v, 2, 0.1f, 0.9f, 0.99f, 1e-8f, 0.5f, (size_t)t, 1.0f);
        for (int i = 0; i < 2; i++) {
            M[i] = 0.9 * M[i] + 0.1 * G[t - 1][i];
            Vv[i] = 0.99 * Vv[i] + 0.01 * G[t - 1][i] * G[t - 1][i];
            double mh = M[i] / (1 - pow(0.9, t)), vh = Vv[i] / (1 - pow(0.99, t));
            P[i] -= 0.1 * (mh / (sqrt(vh) + 1e-8) + 0.5 * P[i]);
        }
    }
    /* step 1 alone: p -= lr*(sign(g) + wd*p) — e.g. 1 - 0.1*(1 + 0.5) = 0.85 */
    for (int i = 0; i < 2; i++) CHECK_NEAR(p[i], P[i], 1e-6, 1e-6);
    float q[1] = {1.0f}, mq[1] = {0}, vq[1] = {0}, gq[1] = {0.5f};
    adamw_update(q, gq, mq, vq, 1, 0.1f, 0.9f, 0.99f, 1e-8f, 0.5f, 1, 1.0f);
    CHECK_NEAR(q[0], 0.85, 1e-6, 0);
    /* grad_scale multiplies the gradient before the moments */
    float a[1] = {0}, ma[1] = {0}, va[1] = {0}, ga[1] = {4.0f};
    adamw_update(a, ga, ma, va, 1, 1.0f, 0.9f, 0.99f, 0, 0, 1, 0.25f);
    CHECK_NEAR(ma[0], 0.1, 1e-7, 0);
}

static void test_grad_norm(void) {
    size_t n = 300001;
    float *g = malloc(n * sizeof(float));
    double want = 0;
    for (size_t i = 0; i < n; i++) {
        g[i] = (float)((int)(i % 7) - 3) * 0.01f;
        want += (double)g[i] * g[i];
    }
    CHECK_NEAR(grad_global_norm(g, n), sqrt(want), 0, 1e-12);
    free(g);
}

static void test_batches(void) {
    dataset ds = {0};
    ds.n_train = 100;
    ds.train = malloc(100 * sizeof(int32_t));
    for (int i = 0; i < 100; i++) ds.train[i] = i;
    ds.n_val = 30;
    ds.val = malloc(30 * sizeof(int32_t));
    for (int i = 0; i < 30; i++) ds.val[i] = 1000 + i;
    rt_rng r;
    rt_rng_seed(&r, 1);
    int32_t in[4 * 10], tg[4 * 10];
    CHECK_OK(dataset_sample_batch(&ds, &r, 4, 10, in, tg));
    for (int b = 0; b < 4; b++)
        for (int t = 0; t < 10; t++) {
            CHECK(tg[b * 10 + t] == in[b * 10 + t] + 1);          /* next-token targets */
            if (t) CHECK(in[b * 10 + t] == in[b * 10 + t - 1] + 1); /* contiguous window */
            CHECK(in[b * 10 + t] >= 0 && tg[b * 10 + t] < 100);
        }
    CHECK_OK(dataset_val_batch(&ds, 0, 2, 4, 10, in, tg));
    CHECK(in[0] == 1000 && tg[9] == 1010);
    CHECK_OK(dataset_val_batch(&ds, 1, 2, 4, 10, in, tg));
    CHECK(in[3 * 10] + 10 + 1 <= 1030); /* last window stays in range */
    CHECK(dataset_sample_batch(&ds, &r, 1, 100, in, tg) == -1);
    /* unigram entropy of {0,0,1,1} = ln 2 */
    int32_t u[4] = {0, 0, 1, 1};
    CHECK_NEAR(dataset_unigram_entropy(u, 4, 5), log(2.0), 1e-12, 0);
    /* shards round-trip and reject corruption */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/shards", tl_tmpdir());
    CHECK_OK(dataset_save(&ds, dir, 2000));
    dataset back;
    CHECK_OK(dataset_load(&back, dir, 2000));
    CHECK(back.n_train == 100 && back.n_val == 30 && back.hash != 0);
    CHECK(memcmp(back.train, ds.train, 100 * sizeof(int32_t)) == 0);
    CHECK(memcmp(back.val, ds.val, 30 * sizeof(int32_t)) == 0);
    uint64_t h1 = back.hash;
    dataset_free(&back);
    CHECK_OK(dataset_load(&back, dir, 2000));
    CHECK(back.hash == h1);
    dataset_free(&back);
    CHECK(dataset_load(&back, dir, 4000) == -1 && strstr(rt_errmsg(), "vocabulary"));
    char p[600];
    snprintf(p, sizeof p, "%s/val.bin", dir);
    FILE *f = fopen(p, "r+b");
    fseek(f, 40, SEEK_SET);
    fputc(0x7f, f);
    fclose(f);
    CHECK(dataset_load(&back, dir, 2000) == -1 && strstr(rt_errmsg(), "checksum"));
    dataset_free(&ds);
}

/* A repeating sequence the model must learn. */
static void make_pattern_data(dataset *ds) {
    memset(ds, 0, sizeof *ds);
    ds->n_train = 4000;
    ds->n_val = 400;
    ds->train = malloc(ds->n_train * sizeof(int32_t));
    ds->val = malloc(ds->n_val * sizeof(int32_t));
    const int pat[] = {1, 5, 2, 7, 7, 3, 9, 4, 0, 6, 8, 2, 5};
    for (size_t i = 0; i < ds->n_train; i++) ds->train[i] = pat[i % 13];
    for (size_t i = 0; i < ds->n_val; i++) ds->val[i] = pat[(i + 5) % 13];
    ds->hash = 42;
}

static model *tiny_model(void) {
    model_config c = {.dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn_dim = 48,
                      .vocab_size = 10, .ctx_len = 16, .norm_eps = 1e-5f, .rope_base = 10000.0f,
                      .tied = 0};
    model *m;
    if (model_create(&m, &c, NULL)) return NULL;
    model_init_weights(m, 7);
    return m;
}

static void tiny_options(train_options *o, const char *out) {
    train_options_defaults(o);
    o->batch = 4;
    o->seq_len = 16;
    o->steps = 60;
    o->lr = 3e-3f;
    o->warmup = 5;
    o->eval_every = 20;
    o->eval_batches = 2;
    o->save_every = 20;
    o->seed = 99;
    o->out_path = out;
    o->quiet = 1;
}

static void test_learns_pattern(void) {
    dataset ds;
    make_pattern_data(&ds);
    model *m = tiny_model();
    char out[512];
    snprintf(out, sizeof out, "%s/pattern.gguf", tl_tmpdir());
    train_options o;
    tiny_options(&o, out);
    o.steps = 150;
    train_result r;
    CHECK_OK(train_run(m, &ds, &o, NULL, &r));
    CHECK_MSG(r.val_loss < 0.2f, "held-out loss %.3f after 150 steps on a period-13 pattern", (double)r.val_loss);
    CHECK(r.steps_done == 150 && r.tokens == 150.0 * 64);
    CHECK_NEAR(r.flops, model_config_train_flops_per_token(&m->cfg, 16) * r.tokens, 0, 1e-12);
    /* the log has one JSON row per step, with held-out loss at evals */
    char logp[600], *log;
    size_t len;
    snprintf(logp, sizeof logp, "%s.log.jsonl", out);
    CHECK_OK(rt_read_file(logp, &log, &len));
    size_t rows = 0, vals = 0;
    for (char *s = log; (s = strstr(s, "{\"step\":")); s++) rows++;
    for (char *s = log; (s = strstr(s, "\"val_loss\":")); s++) vals++;
    CHECK(rows == 150 && vals == 150 / 20 + 1);
    free(log);
    model_free(m);
    dataset_free(&ds);
}

static void test_resume_bit_identical(void) {
    dataset ds;
    make_pattern_data(&ds);
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/straight.gguf", tl_tmpdir());
    snprintf(b, sizeof b, "%s/resumed.gguf", tl_tmpdir());
    train_options o;
    train_result r;
    /* uninterrupted */
    model *m = tiny_model();
    tiny_options(&o, a);
    CHECK_OK(train_run(m, &ds, &o, NULL, &r));
    model_free(m);
    /* killed after step 27 (last checkpoint at 20), then resumed */
    m = tiny_model();
    tiny_options(&o, b);
    o.stop_after = 27;
    CHECK_OK(train_run(m, &ds, &o, NULL, &r));
    CHECK(r.steps_done == 27 && !rt_file_exists(b));
    model_free(m);
    m = tiny_model();
    model_init_weights(m, 12345); /* resume must not depend on the fresh init */
    tiny_options(&o, b);
    o.resume = 1;
    CHECK_OK(train_run(m, &ds, &o, NULL, &r));
    CHECK(r.steps_done == 60);
    model_free(m);
    char *da, *db;
    size_t la, lb;
    CHECK_OK(rt_read_file(a, &da, &la));
    CHECK_OK(rt_read_file(b, &db, &lb));
    CHECK_MSG(la == lb && memcmp(da, db, la) == 0, "resumed model differs from the uninterrupted one");
    free(da), free(db);
    /* the log of the resumed run has each step exactly once */
    char logp[600], *log;
    size_t len;
    snprintf(logp, sizeof logp, "%s.log.jsonl", b);
    CHECK_OK(rt_read_file(logp, &log, &len));
    size_t rows = 0;
    for (char *s = log; (s = strstr(s, "{\"step\":")); s++) rows++;
    CHECK_MSG(rows == 60, "%zu log rows", rows);
    free(log);
    /* a different option is refused, naming it */
    m = tiny_model();
    tiny_options(&o, b);
    o.resume = 1;
    o.lr = 1e-3f;
    CHECK(train_run(m, &ds, &o, NULL, &r) == -1);
    CHECK_MSG(strstr(rt_errmsg(), "retort.train.lr") != NULL, "%s", rt_errmsg());
    model_free(m);
    dataset_free(&ds);
}

/* --grad-accum K x --batch B draws the same windows as --batch K*B and averages the K
 * micro-batch gradients: the same run up to fp32 summation order (the GEMMs sum B rows at a
 * time instead of K*B). The checkpoint records the global batch, so either can resume it. */
static void test_grad_accum(void) {
    dataset ds;
    make_pattern_data(&ds);
    rt_rng r1, r2;
    rt_rng_seed(&r1, 5);
    rt_rng_seed(&r2, 5);
    int32_t in[4 * 16], tg[4 * 16];
    CHECK_OK(dataset_sample_batch(&ds, &r1, 3, 16, in, tg));
    CHECK_OK(dataset_skip_batch(&ds, &r2, 3, 16));
    CHECK(memcmp(&r1, &r2, sizeof r1) == 0);
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/ga_big.gguf", tl_tmpdir());
    snprintf(b, sizeof b, "%s/ga_accum.gguf", tl_tmpdir());
    train_options o;
    train_result ra, rb;
    model *ma = tiny_model(), *mb = tiny_model();
    tiny_options(&o, a);
    o.batch = 4;
    CHECK_OK(train_run(ma, &ds, &o, NULL, &ra));
    tiny_options(&o, b);
    o.batch = 2;
    o.grad_accum = 2;
    CHECK_OK(train_run(mb, &ds, &o, NULL, &rb));
    CHECK(rb.tokens == ra.tokens && rb.steps_done == 60);
    double dmax = 0;
    for (size_t i = 0; i < ma->n_params; i++) dmax = fmax(dmax, fabs((double)ma->params[i] - (double)mb->params[i]));
    CHECK_MSG(dmax < 1e-4 && fabs((double)ra.train_loss - (double)rb.train_loss) < 1e-4,
              "max |dw| %.3g, losses %.6f vs %.6f", dmax, (double)ra.train_loss, (double)rb.train_loss);
    CHECK_MSG(dmax > 0, "expected fp32 summation-order differences, got bit-identical weights");
    /* the accumulated run's checkpoint resumes as --batch 4 (same global batch), not as --batch 2 */
    char ck[600];
    snprintf(ck, sizeof ck, "%s.ckpt", b);
    tiny_options(&o, b);
    o.batch = 2;
    o.resume = 1;
    CHECK(train_run(mb, &ds, &o, NULL, &rb) == -1);
    CHECK_MSG(strstr(rt_errmsg(), "global batch") != NULL, "%s", rt_errmsg());
    tiny_options(&o, b);
    o.batch = 4;
    o.resume = 1;
    CHECK_OK(train_run(mb, &ds, &o, NULL, &rb));
    model_free(ma);
    model_free(mb);
    dataset_free(&ds);
}

/* The process group outside mpirun: one rank, collectives that leave data as it is, and the
 * contiguous split every sharded loop uses (covers [0, n) once, sizes differ by at most 1). */
static void test_dist_single(void) {
    CHECK(dist_size() == 1 && dist_rank() == 0 && !dist_active());
    for (size_t n = 0; n < 20; n++)
        for (int size = 1; size <= 5; size++) {
            size_t next = 0, mn = n, mx = 0;
            for (int r = 0; r < size; r++) {
                size_t lo, hi;
                dist_split(n, size, r, &lo, &hi);
                CHECK(lo == next && hi >= lo);
                next = hi;
                mn = RT_MIN(mn, hi - lo);
                mx = RT_MAX(mx, hi - lo);
            }
            CHECK(next == n && mx - mn <= 1);
        }
    float g[5] = {1, 2, 3, 4, 5};
    double d[2] = {0.5, 7};
    CHECK_OK(dist_allreduce_f32(g, 5, 2));
    CHECK_OK(dist_allreduce_f64(d, 2));
    CHECK(g[0] == 1 && g[4] == 5 && d[1] == 7);
    dist_sum ds;
    CHECK_OK(dist_sum_begin(&ds, g, 5, 2));
    CHECK(ds.nb == 0 && ds.req == NULL); /* one process: nothing to start */
    CHECK_OK(dist_sum_ready(&ds, 3));
    CHECK_OK(dist_sum_finish(&ds));
    CHECK(g[0] == 1 && g[4] == 5);
    rt_buf all = {0};
    CHECK_OK(dist_gather_bytes("abc", 3, &all, 0));
    CHECK(all.len == 3 && !memcmp(all.data, "abc", 3));
    rt_buf_free(&all);
    size_t cnt[1] = {5}, dis[1] = {0};
    float full[5];
    CHECK_OK(dist_gatherv_f32(g, full, cnt, dis, 0));
    CHECK(full[2] == 3);
    uint64_t lo, hi;
    CHECK_OK(dist_minmax_u64(42, &lo, &hi));
    CHECK(lo == 42 && hi == 42);
}

/* Issue 17 #14: with a held-out part shorter than one window the log said "val_loss":nan,
 * which is not JSON. Every row must parse, with val_loss null at evaluations. */
static void test_log_is_json_without_heldout(void) {
    dataset ds;
    make_pattern_data(&ds);
    ds.n_val = 10; /* < seq_len + 1: nothing to evaluate */
    model *m = tiny_model();
    char out[512], logp[600];
    snprintf(out, sizeof out, "%s/noval.gguf", tl_tmpdir());
    snprintf(logp, sizeof logp, "%s.log.jsonl", out);
    train_options o;
    tiny_options(&o, out);
    o.steps = 20;
    o.eval_every = 10;
    train_result r;
    CHECK_OK(train_run(m, &ds, &o, NULL, &r));
    CHECK(isnan(r.val_loss));
    FILE *f = fopen(logp, "r");
    CHECK(f != NULL);
    char line[1024];
    size_t rows = 0, nulls = 0;
    while (f && fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        CHECK_MSG(j != NULL, "log row %zu is not JSON (%s): %s", rows + 1, je.text, line);
        json_t *v = j ? json_object_get(j, "val_loss") : NULL;
        if (v) {
            CHECK(json_is_null(v));
            nulls++;
        }
        json_decref(j);
        rows++;
    }
    if (f) fclose(f);
    CHECK_MSG(rows == 20 && nulls == 2, "%zu rows, %zu val_loss fields", rows, nulls);
    model_free(m);
    dataset_free(&ds);
}

TEST_MAIN("train", TEST_CASE(test_lr_schedule), TEST_CASE(test_adamw), TEST_CASE(test_grad_norm),
          TEST_CASE(test_batches), TEST_CASE(test_learns_pattern), TEST_CASE(test_resume_bit_identical),
          TEST_CASE(test_grad_accum), TEST_CASE(test_dist_single),
          TEST_CASE(test_log_is_json_without_heldout))
