/*
 * test_antidistill.c — antidistillation sampling (src/mark/antidistill.c) against things it
 * does not compute itself:
 *   - the task gradient g against a central difference of the task loss along random
 *     directions (loss by plain forward passes, one example at a time);
 *   - the finite-difference shift b(x | h) against the exact directional derivative
 *     grad_theta log p(x | h) . g / |g| by backprop through the proxy, for several tokens
 *     and histories (tolerance: 2e-3 + 2% of |exact|, eps = 1e-2 in parameter space);
 *   - lambda = 0 samples bit-identically to plain sampling (same seeds, the processor runs);
 *   - the shift and the sampled tokens are deterministic for a seed and lambda > 0 changes them;
 *   - the KGW watermark is still detected on antidistilled text at lambda 0.5 (p-values at 200
 *     tokens printed, with lambda 5 for comparison);
 *   - the batched proxy step (mark_adist_prepare: every slot's new rows in one decoder pass
 *     per copy, a slot's rows split over two passes when they exceed the decoders' rows) gives
 *     the b of one-sequence-at-a-time mark_adist_delta on a second state (tolerance 2e-4 +
 *     1e-4 |b|: the batched GEMM and the single-row path round differently, ~5e-7 in a
 *     log-prob, and b divides log-prob differences by 2 eps = 0.02; 10x tighter than the
 *     backprop check; the largest difference printed); generation with the step hook samples
 *     what generation without it samples, at lambda 0 (= plain sampling, exactly) and lambda 5 (at
 *     most one of 4 sequences may differ: a draw within rounding of a boundary; seen: none);
 *   - the gate: a margin no position reaches leaves sampling exactly plain (every position
 *     counted as gated); an open gate is the ungated shift;
 *   - bad parameters fail with a message.
 */
#include "../src/mark/mark.h"
#include "../src/model/generate.h"
#include "testlib.h"

#define V_TINY 48

static model *tiny_proxy(uint64_t seed) {
    model_config c = {.dim = 16, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1, .ffn_dim = 32,
                      .vocab_size = V_TINY, .ctx_len = 64, .norm_eps = 1e-5f, .rope_base = 10000.0f, .tied = 0};
    model *m = NULL;
    if (model_config_validate(&c) || model_create(&m, &c, NULL)) return NULL;
    model_init_weights(m, seed);
    /* larger weights than the init's 0.02: a peaked, non-linear model, not a near-uniform one */
    for (size_t i = 0; i < m->n_params; i++) m->params[i] *= 3.0f;
    return m;
}

/* n examples of random tokens: 3-token prompts, 6..13 completion tokens */
typedef struct {
    int32_t toks[16 * 16];
    mark_adist_example ex[16];
    size_t n;
} task;

static void make_task(task *t, size_t n, uint64_t seed) {
    rt_rng r;
    rt_rng_seed(&r, seed);
    t->n = n;
    for (size_t i = 0; i < n; i++) {
        size_t len = 9 + (size_t)rt_rng_below(&r, 8);
        for (size_t j = 0; j < len; j++) t->toks[i * 16 + j] = (int32_t)rt_rng_below(&r, V_TINY);
        t->ex[i] = (mark_adist_example){.tokens = t->toks + i * 16, .n = len, .n_prompt = 3};
    }
}

/* the task loss: mean CE over completion tokens, one example per forward */
static double task_loss(model *m, const task *t) {
    double sum = 0;
    size_t cnt = 0;
    for (size_t i = 0; i < t->n; i++) {
        const mark_adist_example *e = &t->ex[i];
        int32_t tg[16];
        for (size_t j = 0; j + 1 < e->n; j++) tg[j] = j + 1 >= e->n_prompt ? e->tokens[j + 1] : -1;
        if (!model_forward(m, e->tokens, 1, e->n - 1)) return NAN;
        size_t nv;
        double l = model_loss_ce(m, tg, 0, &nv);
        sum += l * (double)nv;
        cnt += nv;
    }
    return sum / (double)cnt;
}

static void test_task_gradient(void) {
    model *m = tiny_proxy(3);
    CHECK(m != NULL);
    if (!m) return;
    task t;
    make_task(&t, 10, 7);
    float *g = malloc(m->n_params * sizeof(float)), *r = malloc(m->n_params * sizeof(float));
    float *theta = malloc(m->n_params * sizeof(float));
    double loss = 0;
    CHECK_OK(mark_adist_task_grad(m, t.ex, t.n, g, &loss));
    CHECK_NEAR(loss, task_loss(m, &t), 1e-5, 1e-5);
    memcpy(theta, m->params, m->n_params * sizeof(float));
    rt_rng rng;
    rt_rng_seed(&rng, 11);
    for (int trial = 0; trial < 3; trial++) {
        double rn = 0, dot = 0;
        for (size_t i = 0; i < m->n_params; i++) {
            r[i] = (float)rt_rng_normal(&rng);
            rn += (double)r[i] * r[i];
        }
        rn = sqrt(rn);
        for (size_t i = 0; i < m->n_params; i++) dot += (double)g[i] * r[i] / rn;
        const double h = 1e-2;
        for (size_t i = 0; i < m->n_params; i++) m->params[i] = theta[i] + (float)(h * r[i] / rn);
        double lp = task_loss(m, &t);
        for (size_t i = 0; i < m->n_params; i++) m->params[i] = theta[i] - (float)(h * r[i] / rn);
        double lm = task_loss(m, &t);
        memcpy(m->params, theta, m->n_params * sizeof(float));
        fprintf(stderr, "  task gradient along a random direction: %.6g by backprop, %.6g by difference\n", dot,
                (lp - lm) / (2 * h));
        CHECK_NEAR((lp - lm) / (2 * h), dot, 2e-3, 2e-2);
    }
    free(g);
    free(r);
    free(theta);
    model_free(m);
}

/* the task loss over the scored tokens only, one example per forward (mask m: n entries) */
static double masked_loss(model *m, const task *t, const uint8_t (*mask)[16]) {
    double sum = 0;
    size_t cnt = 0;
    for (size_t i = 0; i < t->n; i++) {
        const mark_adist_example *e = &t->ex[i];
        int32_t tg[16];
        for (size_t j = 0; j + 1 < e->n; j++) tg[j] = j + 1 >= e->n_prompt && mask[i][j + 1] ? e->tokens[j + 1] : -1;
        if (!model_forward(m, e->tokens, 1, e->n - 1)) return NAN;
        size_t nv;
        double l = model_loss_ce(m, tg, 0, &nv);
        if (nv) sum += l * (double)nv;
        cnt += nv;
    }
    return sum / (double)cnt;
}

/* a scored mask (the task scopes): g against a central difference of the masked loss; an
 * all-ones mask is the unmasked gradient bit for bit; and masked-out tokens contribute
 * nothing: with A and its complement B in the completions, nA g_A + nB g_B = n g_all. */
static void test_task_gradient_masked(void) {
    model *m = tiny_proxy(4);
    CHECK(m != NULL);
    if (!m) return;
    task t;
    make_task(&t, 10, 17);
    static uint8_t ma[16][16], mb[16][16], ones[16][16];
    rt_rng rng;
    rt_rng_seed(&rng, 5);
    size_t na = 0, nb = 0, nall = 0;
    for (size_t i = 0; i < t.n; i++)
        for (size_t j = 0; j < 16; j++) {
            ma[i][j] = (uint8_t)rt_rng_below(&rng, 2);
            mb[i][j] = (uint8_t)!ma[i][j];
            ones[i][j] = 1;
            if (j >= t.ex[i].n_prompt && j < t.ex[i].n) na += ma[i][j], nb += mb[i][j], nall++;
        }
    size_t P = m->n_params;
    float *ga = malloc(P * sizeof(float)), *gb = malloc(P * sizeof(float)), *g1 = malloc(P * sizeof(float));
    float *g0 = malloc(P * sizeof(float)), *r = malloc(P * sizeof(float)), *theta = malloc(P * sizeof(float));
    task ta = t, tb = t, t1 = t;
    for (size_t i = 0; i < t.n; i++) ta.ex[i].scored = ma[i], tb.ex[i].scored = mb[i], t1.ex[i].scored = ones[i];
    double la = 0;
    CHECK_OK(mark_adist_task_grad(m, ta.ex, t.n, ga, &la));
    CHECK_OK(mark_adist_task_grad(m, tb.ex, t.n, gb, NULL));
    CHECK_OK(mark_adist_task_grad(m, t1.ex, t.n, g1, NULL));
    CHECK_OK(mark_adist_task_grad(m, t.ex, t.n, g0, NULL));
    CHECK(!memcmp(g1, g0, P * sizeof(float)));
    CHECK_NEAR(la, masked_loss(m, &t, (const uint8_t(*)[16])ma), 1e-5, 1e-5);
    double worst = 0, gmax = 0;
    for (size_t i = 0; i < P; i++) {
        double sum = (double)na * ga[i] + (double)nb * gb[i], all = (double)nall * g0[i];
        worst = fmax(worst, fabs(sum - all));
        gmax = fmax(gmax, fabs(all));
    }
    fprintf(stderr, "  scored masks: %zu + %zu of %zu tokens; |nA gA + nB gB - n g| <= %.3g (max |n g| %.3g)\n", na,
            nb, nall, worst, gmax);
    CHECK(gmax > 0 && worst <= 1e-4 * gmax);
    memcpy(theta, m->params, P * sizeof(float));
    for (int trial = 0; trial < 2; trial++) {
        double rn = 0, dot = 0;
        for (size_t i = 0; i < P; i++) {
            r[i] = (float)rt_rng_normal(&rng);
            rn += (double)r[i] * r[i];
        }
        rn = sqrt(rn);
        for (size_t i = 0; i < P; i++) dot += (double)ga[i] * r[i] / rn;
        const double h = 1e-2;
        for (size_t i = 0; i < P; i++) m->params[i] = theta[i] + (float)(h * r[i] / rn);
        double lp = masked_loss(m, &t, (const uint8_t(*)[16])ma);
        for (size_t i = 0; i < P; i++) m->params[i] = theta[i] - (float)(h * r[i] / rn);
        double lm = masked_loss(m, &t, (const uint8_t(*)[16])ma);
        memcpy(m->params, theta, P * sizeof(float));
        fprintf(stderr, "  masked task gradient along a random direction: %.6g by backprop, %.6g by difference\n", dot,
                (lp - lm) / (2 * h));
        CHECK_NEAR((lp - lm) / (2 * h), dot, 2e-3, 2e-2);
    }
    free(ga), free(gb), free(g1), free(g0), free(r), free(theta);
    model_free(m);
}

/* the task scopes from a file: a byte-level tokenizer (hand-counted masks) and one with merges
 * (each scored token checked against the text's offsets) */
static void test_task_scopes(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/task_scope.jsonl", tl_tmpdir());
    const char *body = "{\"prompt\": \"84*4=\", \"completion\": \" ok 4*4=16, next 8*4+1=33; and answer 336\"}\n"
                       "{\"prompt\": \"5+7=\", \"completion\": \" no digits here\"}\n";
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(body, f);
    fclose(f);
    const char *corpus = "84*4= ok 4*4=16, next 8*4+1=33; and answer 336 answer answer 33 33 16 16 next next ok ok";
    for (int merged = 0; merged < 2; merged++) {
        tokenizer *tok = NULL;
        CHECK_OK(tokenizer_train(&tok, corpus, strlen(corpus), 256 + TOKENIZER_N_SPECIAL + (merged ? 16 : 0)));
        if (!tok) return;
        int32_t *toks = NULL;
        uint8_t *sc = NULL;
        mark_adist_example *ex = NULL;
        size_t n = 0;
        CHECK_OK(mark_adist_task_load(path, tok, MARK_ADIST_SCOPE_ALL, &toks, &sc, &ex, &n));
        CHECK(n == 2 && sc == NULL && ex && ex[0].scored == NULL);
        free(toks), free(sc), free(ex);
        const char *comp = " ok 4*4=16, next 8*4+1=33; and answer 336";
        for (int scope = MARK_ADIST_SCOPE_DIGITS; scope <= MARK_ADIST_SCOPE_ANSWER; scope++) {
            toks = NULL, sc = NULL, ex = NULL;
            CHECK_OK(mark_adist_task_load(path, tok, scope, &toks, &sc, &ex, &n));
            if (!ex) continue;
            size_t cnt = 0, off = 0, bad = 0, cnt2 = 0;
            for (size_t k = 0; k < ex[0].n; k++) {
                size_t tl = 0;
                const char *tb = tokenizer_token_bytes(tok, ex[0].tokens[k], &tl);
                int in_comp = k >= ex[0].n_prompt && k + 1 < ex[0].n; /* the last is the eos */
                int want = 0;
                if (in_comp && scope == MARK_ADIST_SCOPE_DIGITS)
                    for (size_t j = 0; j < tl; j++) want |= tb[j] >= '0' && tb[j] <= '9';
                if (in_comp && scope == MARK_ADIST_SCOPE_ANSWER) want = off + tl > strlen(comp) - 3; /* "336" */
                if (in_comp) off += tl;
                bad += (size_t)(!!ex[0].scored[k] != want);
                cnt += ex[0].scored[k];
            }
            for (size_t k = 0; k < ex[1].n; k++) cnt2 += ex[1].scored[k];
            CHECK(off == strlen(comp) && bad == 0 && cnt2 == 0);
            /* by hand for bytes: 4 4 1 6 8 4 1 3 3 3 3 6 are the digits, 3 3 6 the answer */
            if (!merged) CHECK(cnt == (scope == MARK_ADIST_SCOPE_DIGITS ? 12u : 3u));
            fprintf(stderr, "  scope %s, %s tokenizer: %zu of %zu tokens scored\n", mark_adist_scope_name(scope),
                    merged ? "merged" : "byte", cnt, ex[0].n - ex[0].n_prompt);
            free(toks), free(sc), free(ex);
        }
        tokenizer_free(tok);
    }
    /* a scope that leaves nothing is refused, naming the file */
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("{\"prompt\": \"a\", \"completion\": \" no number\"}\n", f);
    fclose(f);
    tokenizer *tok = NULL;
    CHECK_OK(tokenizer_train(&tok, corpus, strlen(corpus), 256 + TOKENIZER_N_SPECIAL));
    int32_t *toks = NULL;
    uint8_t *sc = NULL;
    mark_adist_example *ex = NULL;
    size_t n = 0;
    CHECK(tok && mark_adist_task_load(path, tok, MARK_ADIST_SCOPE_ANSWER, &toks, &sc, &ex, &n) != 0 &&
          strstr(rt_errmsg(), "task_scope.jsonl") && strstr(rt_errmsg(), "answer"));
    int s = -1;
    CHECK(mark_adist_scope_parse("digits", &s) == 0 && s == MARK_ADIST_SCOPE_DIGITS);
    CHECK(mark_adist_scope_parse("digit", &s) != 0 && strstr(rt_errmsg(), "all, digits or answer"));
    tokenizer_free(tok);
    remove(path);
}

/* exact grad log p(x | h) . u by backprop on the unperturbed proxy */
static double exact_directional(model *m, const int32_t *h, size_t n, int32_t x, const float *g, double gnorm) {
    int32_t tg[64];
    for (size_t j = 0; j < n; j++) tg[j] = -1;
    tg[n - 1] = x;
    if (!model_forward(m, h, 1, n)) return NAN;
    model_loss_ce(m, tg, 1, NULL); /* dlogits of -log p(x | h) */
    model_zero_grad(m);
    if (model_backward(m)) return NAN;
    double dot = 0;
    for (size_t i = 0; i < m->n_params; i++) dot -= (double)m->grads[i] * g[i];
    return dot / gnorm;
}

static void test_fd_matches_backprop(void) {
    model *m = tiny_proxy(5);
    CHECK(m != NULL);
    if (!m) return;
    task t;
    make_task(&t, 12, 9);
    float *g = malloc(m->n_params * sizeof(float));
    CHECK_OK(mark_adist_task_grad(m, t.ex, t.n, g, NULL));
    mark_adist_params p;
    mark_adist_defaults(&p);
    p.lambda = 1;
    CHECK(p.eps == 1e-2);
    mark_adist *a = NULL;
    CHECK_OK(mark_adist_new(&a, m, g, &p));
    if (!a) goto done;
    double gnorm = mark_adist_grad_norm(a);
    rt_rng rng;
    rt_rng_seed(&rng, 21);
    int32_t h[40];
    for (size_t j = 0; j < 40; j++) h[j] = (int32_t)rt_rng_below(&rng, V_TINY);
    float b[V_TINY];
    double worst = 0, bmax = 0;
    size_t lens[] = {1, 5, 17, 40};
    for (size_t li = 0; li < 4; li++) {
        /* lengths grow: the slot's caches are reused and extended, as in generation */
        CHECK_OK(mark_adist_delta(a, 0, h, lens[li], b));
        int32_t xs[] = {0, 7, 19, 33, 47};
        for (size_t k = 0; k < 5; k++) {
            double ex = exact_directional(m, h, lens[li], xs[k], g, gnorm);
            CHECK_NEAR(b[xs[k]], ex, 2e-3, 2e-2);
            worst = fmax(worst, fabs(b[xs[k]] - ex) / (2e-3 + 2e-2 * fabs(ex)));
            bmax = fmax(bmax, fabs(ex));
        }
    }
    fprintf(stderr, "  finite difference vs backprop: largest |b| %.4g, worst error %.2f of the tolerance\n", bmax,
            worst);
    CHECK(bmax > 0.05); /* the test means something: the shifts are not all ~0 */
    /* a history that does not extend the cached one is fed afresh: same values as a fresh state */
    float b2[V_TINY], b3[V_TINY];
    CHECK_OK(mark_adist_delta(a, 0, h + 3, 10, b2));
    mark_adist *a2 = NULL;
    CHECK_OK(mark_adist_new(&a2, m, g, &p));
    if (a2) CHECK_OK(mark_adist_delta(a2, 0, h + 3, 10, b3));
    CHECK(a2 && !memcmp(b2, b3, sizeof b2));
    mark_adist_free(a2);
done:
    mark_adist_free(a);
    free(g);
    model_free(m);
}

/* generation with plain sampling, the shift, the watermark, or both */
typedef struct {
    mark_adist *a;
    const mark_ctx *wm;
    int batched; /* wire the step hook (mark_adist_prepare) */
} both;

static int prepare_both(void *ud, const gen_ready *r, size_t n) {
    both *b = ud;
    return mark_adist_prepare(b->a, r, n);
}

static int setup_both(void *ud, size_t slot, size_t id, void *user, sampler *s) {
    (void)id, (void)user;
    both *b = ud;
    if (b->a && mark_adist_attach(b->a, slot, s)) return -1;
    if (b->wm && mark_attach(s, b->wm)) return -1;
    return 0;
}

#define NP 4
static int gen(const model *m, both *b, size_t max_new, uint64_t seed, gen_result *out) {
    static int32_t prompts[NP][3];
    const int32_t *pp[NP];
    size_t lens[NP];
    for (size_t i = 0; i < NP; i++) {
        for (size_t j = 0; j < 3; j++) prompts[i][j] = (int32_t)((i * 7 + j * 3) % V_TINY);
        pp[i] = prompts[i];
        lens[i] = 3;
    }
    uint64_t seeds[NP];
    for (size_t i = 0; i < NP; i++) seeds[i] = seed + i;
    sampler_params sp = sampler_defaults();
    sp.temperature = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    gen_run_opts o = {.batch = 2,
                      .max_new = max_new,
                      .stop = -1,
                      .ctx_shift = 1,
                      .setup = b ? setup_both : NULL,
                      .before_sample = b && b->a && b->batched ? prepare_both : NULL,
                      .ud = b};
    return generator_run(m, pp, lens, NP, &sp, seeds, &o, out);
}

static int same_results(const gen_result *x, const gen_result *y) {
    for (size_t i = 0; i < NP; i++)
        if (x[i].n != y[i].n || memcmp(x[i].tokens, y[i].tokens, x[i].n * sizeof(int32_t))) return 0;
    return 1;
}

static void free_results(gen_result *r) {
    for (size_t i = 0; i < NP; i++) gen_result_free(&r[i]);
}

static mark_adist *make_state_p(model *proxy, const mark_adist_params *pp) {
    task t;
    make_task(&t, 8, 13);
    float *g = malloc(proxy->n_params * sizeof(float));
    mark_adist *a = NULL;
    if (g && !mark_adist_task_grad(proxy, t.ex, t.n, g, NULL)) mark_adist_new(&a, proxy, g, pp);
    free(g);
    return a;
}

static mark_adist *make_state(model *proxy, double lambda) {
    task t;
    make_task(&t, 8, 13);
    float *g = malloc(proxy->n_params * sizeof(float));
    mark_adist *a = NULL;
    mark_adist_params p;
    mark_adist_defaults(&p);
    p.lambda = lambda;
    p.max_seqs = 2;
    if (g && !mark_adist_task_grad(proxy, t.ex, t.n, g, NULL)) mark_adist_new(&a, proxy, g, &p);
    free(g);
    return a;
}

static void test_lambda_zero_and_determinism(void) {
    model *teacher = tiny_proxy(17), *proxy = tiny_proxy(19);
    CHECK(teacher && proxy);
    if (!teacher || !proxy) goto out;
    mark_adist *a0 = make_state(proxy, 0.0), *a5 = make_state(proxy, 5.0), *a5b = make_state(proxy, 5.0);
    CHECK(a0 && a5 && a5b);
    gen_result plain[NP] = {0}, zero[NP] = {0}, s1[NP] = {0}, s2[NP] = {0};
    both b0 = {.a = a0}, b5 = {.a = a5}, b5b = {.a = a5b};
    if (!a0 || !a5 || !a5b) goto free_states;
    CHECK_OK(gen(teacher, NULL, 40, 100, plain));
    CHECK_OK(gen(teacher, &b0, 40, 100, zero));
    CHECK_MSG(same_results(plain, zero), "lambda = 0 must sample exactly what plain sampling samples");
    mark_adist_stats st;
    mark_adist_get_stats(a0, &st);
    CHECK(st.positions == NP * 40 && st.failures == 0); /* the processor did run */
    CHECK_OK(gen(teacher, &b5, 40, 100, s1));
    CHECK_OK(gen(teacher, &b5b, 40, 100, s2));
    CHECK_MSG(same_results(s1, s2), "the same seed and lambda must give the same tokens");
    CHECK_MSG(!same_results(plain, s1), "lambda = 5 should change what is sampled");
    /* the shift itself, bit for bit, from two states */
    float x[V_TINY], y[V_TINY];
    CHECK_OK(mark_adist_delta(a5, 1, s1[2].tokens, 30, x));
    CHECK_OK(mark_adist_delta(a5b, 0, s1[2].tokens, 30, y));
    CHECK(!memcmp(x, y, sizeof x));
    mark_adist_get_stats(a5, &st);
    fprintf(stderr, "  %zu shifted positions, %zu proxy tokens, %.3f ms per position\n", st.positions,
            st.proxy_tokens, 1e3 * st.seconds / (double)(st.positions ? st.positions : 1));
    free_results(plain);
    free_results(zero);
    free_results(s1);
    free_results(s2);
free_states:
    mark_adist_free(a0);
    mark_adist_free(a5);
    mark_adist_free(a5b);
out:
    model_free(teacher);
    model_free(proxy);
}

/* mark_adist_prepare's b against mark_adist_delta's on a second state; returns the largest
 * |difference| (or INFINITY when a slot got nothing prepared). */
static double compare_prepared(mark_adist *batched, mark_adist *single, const gen_ready *r, size_t n) {
    if (mark_adist_prepare(batched, r, n)) return INFINITY;
    double worst = 0;
    float ref[V_TINY];
    for (size_t j = 0; j < n; j++) {
        const float *b = mark_adist_prepared(batched, r[j].slot, r[j].n_hist);
        if (!b) fprintf(stderr, "  slot %zu: nothing prepared\n", r[j].slot);
        if (!b || mark_adist_delta(single, r[j].slot, r[j].hist, r[j].n_hist, ref)) return INFINITY;
        for (size_t v = 0; v < V_TINY; v++) {
            double d = fabs((double)b[v] - (double)ref[v]);
            if (d > 2e-4 + 1e-4 * fabs((double)ref[v])) {
                fprintf(stderr, "  slot %zu token %zu: batched %.7g, one at a time %.7g\n", r[j].slot, v, b[v], ref[v]);
                return INFINITY;
            }
            worst = fmax(worst, d);
        }
    }
    return worst;
}

static void test_batched_matches_single(void) {
    model *teacher = tiny_proxy(17), *proxy = tiny_proxy(23);
    CHECK(teacher && proxy);
    if (!teacher || !proxy) goto out;
    mark_adist_params p;
    mark_adist_defaults(&p);
    p.lambda = 5;
    p.max_seqs = 3;
    mark_adist *bat = make_state_p(proxy, &p), *one = make_state_p(proxy, &p);
    CHECK(bat && one);
    if (!bat || !one) goto free_states;
    sampler smp[3];
    sampler_params sp = sampler_defaults();
    for (size_t i = 0; i < 3; i++) {
        CHECK_OK(sampler_init(&smp[i], V_TINY, &sp));
        CHECK_OK(mark_adist_attach(bat, i, &smp[i]));
    }
    int32_t h[3][64];
    rt_rng r;
    rt_rng_seed(&r, 77);
    for (size_t i = 0; i < 3; i++)
        for (size_t t = 0; t < 64; t++) h[i][t] = (int32_t)rt_rng_below(&r, V_TINY);
    /* first: whole prompts of 50, 30 and 1 tokens (81 rows: two passes of at most 64 rows) */
    size_t len[3] = {50, 30, 1};
    gen_ready rd[3];
    for (size_t i = 0; i < 3; i++) rd[i] = (gen_ready){.slot = 2 - i, .hist = h[i], .n_hist = len[i]};
    double w1 = compare_prepared(bat, one, rd, 3);
    /* then one new token each, then one slot whose history changed (fed afresh) */
    for (size_t i = 0; i < 3; i++) rd[i].n_hist = ++len[i];
    double w2 = compare_prepared(bat, one, rd, 3);
    h[1][3] = (h[1][3] + 1) % V_TINY;
    for (size_t i = 0; i < 3; i++) rd[i].n_hist = ++len[i];
    double w3 = compare_prepared(bat, one, rd, 3);
    fprintf(stderr, "  batched vs one at a time: largest |b difference| %.3g, %.3g, %.3g\n", w1, w2, w3);
    CHECK(isfinite(w1) && isfinite(w2) && isfinite(w3));
    /* a history length the state was not prepared for gets nothing */
    CHECK(mark_adist_prepared(bat, 0, len[2] + 1) == NULL);
    for (size_t i = 0; i < 3; i++) sampler_free(&smp[i]);
    /* generation: the step hook changes nothing sampled, at lambda 0 and 5 */
    mark_adist *z1 = make_state(proxy, 0.0), *f1 = make_state(proxy, 5.0), *f2 = make_state(proxy, 5.0);
    CHECK(z1 && f1 && f2);
    gen_result plain[NP] = {0}, zero[NP] = {0}, s1[NP] = {0}, s2[NP] = {0};
    if (z1 && f1 && f2) {
        both bz = {.a = z1, .batched = 1}, b1 = {.a = f1, .batched = 1}, b2 = {.a = f2};
        CHECK_OK(gen(teacher, NULL, 40, 300, plain));
        CHECK_OK(gen(teacher, &bz, 40, 300, zero));
        CHECK_MSG(same_results(plain, zero), "lambda = 0 with the batched step must sample what plain sampling does");
        CHECK_OK(gen(teacher, &b1, 40, 300, s1));
        CHECK_OK(gen(teacher, &b2, 40, 300, s2));
        /* b agrees to float rounding (above), so the tokens agree unless a draw falls within
         * rounding of a boundary: seen identical here; one sequence of NP may differ elsewhere */
        size_t nd = 0;
        for (size_t i = 0; i < NP; i++)
            nd += s1[i].n != s2[i].n || memcmp(s1[i].tokens, s2[i].tokens, s1[i].n * sizeof(int32_t));
        fprintf(stderr, "  batched vs one at a time at lambda 5: %zu of %d sequences differ\n", nd, NP);
        CHECK_MSG(nd <= 1, "the batched step must sample what one-at-a-time shifting samples");
        CHECK_MSG(!same_results(plain, s1), "lambda = 5 should change what is sampled");
        mark_adist_stats st;
        mark_adist_get_stats(f1, &st);
        fprintf(stderr, "  generation with the step hook: %zu positions, %zu from batched steps (%zu passes)\n",
                st.positions, st.batched, st.batched_passes);
        /* a sequence that takes a finished one's slot is sampled in the same step, after the
         * hook ran: its first position is shifted one by one (NP - 2 refills here) */
        CHECK(st.positions == NP * 40 && st.batched + (NP - 2) == st.positions && st.failures == 0);
    }
    free_results(plain);
    free_results(zero);
    free_results(s1);
    free_results(s2);
    mark_adist_free(z1);
    mark_adist_free(f1);
    mark_adist_free(f2);
free_states:
    mark_adist_free(bat);
    mark_adist_free(one);
out:
    model_free(teacher);
    model_free(proxy);
}

static void test_gate(void) {
    model *teacher = tiny_proxy(17), *proxy = tiny_proxy(19);
    CHECK(teacher && proxy);
    if (!teacher || !proxy) goto out;
    mark_adist_params p;
    mark_adist_defaults(&p);
    p.lambda = 5;
    p.max_seqs = 2;
    p.gate = 1e-30; /* no position has a smaller margin: all gated off */
    mark_adist *shut = make_state_p(proxy, &p);
    p.gate = 1e30; /* every position passes: the ungated shift */
    mark_adist *open = make_state_p(proxy, &p);
    mark_adist *ungated = make_state(proxy, 5.0);
    CHECK(shut && open && ungated);
    gen_result plain[NP] = {0}, s0[NP] = {0}, s1[NP] = {0}, s2[NP] = {0};
    if (shut && open && ungated) {
        both b0 = {.a = shut, .batched = 1}, b1 = {.a = open, .batched = 1}, b2 = {.a = ungated};
        CHECK_OK(gen(teacher, NULL, 30, 500, plain));
        CHECK_OK(gen(teacher, &b0, 30, 500, s0));
        CHECK_OK(gen(teacher, &b1, 30, 500, s1));
        CHECK_OK(gen(teacher, &b2, 30, 500, s2));
        CHECK_MSG(same_results(plain, s0), "a shut gate must leave sampling plain");
        CHECK_MSG(same_results(s1, s2), "an open gate must be the ungated shift");
        mark_adist_stats st;
        mark_adist_get_stats(shut, &st);
        CHECK(st.positions == 0 && st.gated == NP * 30 && st.proxy_tokens == 0);
    }
    p.gate = -1;
    mark_adist *bad = make_state_p(proxy, &p);
    CHECK(bad == NULL && strstr(rt_errmsg(), "gate"));
    free_results(plain);
    free_results(s0);
    free_results(s1);
    free_results(s2);
    mark_adist_free(shut);
    mark_adist_free(open);
    mark_adist_free(ungated);
out:
    model_free(teacher);
    model_free(proxy);
}

static double detect(const mark_ctx *c, const gen_result *r, size_t n_tok, double *log10p) {
    mark_scorer s;
    if (mark_scorer_init(&s, c)) return NAN;
    for (size_t i = 0; i < NP; i++) mark_scorer_add(&s, r[i].tokens, RT_MIN(r[i].n, n_tok), 0);
    mark_result res;
    mark_scorer_result(&s, &res);
    mark_scorer_free(&s);
    *log10p = res.log10_p;
    return res.p_value;
}

static void test_watermark_survives(void) {
    model *teacher = tiny_proxy(23), *proxy = tiny_proxy(29);
    CHECK(teacher && proxy);
    /* lambda 0.5: the shift (|b| up to ~4 on these models) is about the watermark's delta;
     * lambda 5 drowns it (reported, not checked) */
    mark_adist *a = proxy ? make_state(proxy, 0.5) : NULL, *a5 = proxy ? make_state(proxy, 5.0) : NULL;
    CHECK(a && a5);
    if (!teacher || !a || !a5) goto out;
    mark_key key;
    mark_key_from_seed(&key, 77);
    mark_params mp = mark_params_defaults(MARK_KGW);
    mark_ctx c;
    CHECK_OK(mark_ctx_init(&c, &mp, &key));
    gen_result wm[NP] = {0}, wa[NP] = {0}, w5[NP] = {0}, ad[NP] = {0};
    both bw = {.wm = &c}, bwa = {.a = a, .wm = &c}, bw5 = {.a = a5, .wm = &c}, ba = {.a = a};
    CHECK_OK(gen(teacher, &bw, 50, 300, wm));
    CHECK_OK(gen(teacher, &bwa, 50, 300, wa));
    CHECK_OK(gen(teacher, &bw5, 50, 300, w5));
    CHECK_OK(gen(teacher, &ba, 50, 300, ad));
    /* 4 sequences x 50 tokens = 200 tokens each */
    double lw = 0, lwa = 0, lw5 = 0, lad = 0;
    detect(&c, wm, 50, &lw);
    detect(&c, wa, 50, &lwa);
    detect(&c, w5, 50, &lw5);
    detect(&c, ad, 50, &lad);
    fprintf(stderr, "  KGW (gamma 0.25, delta 2) at 200 tokens: log10 p = %.2f watermark alone, %.2f with "
                    "antidistillation lambda 0.5, %.2f with lambda 5, %.2f antidistillation alone\n", lw, lwa, lw5, lad);
    CHECK(lw < -4);
    CHECK(lwa < -4);
    CHECK(lad > -3); /* no watermark, no detection */
    CHECK(!same_results(wm, wa));
    free_results(wm);
    free_results(wa);
    free_results(w5);
    free_results(ad);
out:
    mark_adist_free(a);
    mark_adist_free(a5);
    model_free(teacher);
    model_free(proxy);
}

static void test_bad_input(void) {
    model *m = tiny_proxy(31);
    CHECK(m != NULL);
    if (!m) return;
    float *g = calloc(m->n_params, sizeof(float));
    mark_adist_params p;
    mark_adist_defaults(&p);
    mark_adist *a = NULL;
    CHECK(mark_adist_new(&a, m, g, &p) != 0 && strstr(rt_errmsg(), "zero")); /* no direction */
    g[5] = 1;
    p.lambda = -1;
    CHECK(mark_adist_new(&a, m, g, &p) != 0 && strstr(rt_errmsg(), "lambda"));
    p.lambda = 1;
    p.eps = 0;
    CHECK(mark_adist_new(&a, m, g, &p) != 0 && strstr(rt_errmsg(), "eps"));
    p.eps = 1e-2;
    CHECK_OK(mark_adist_new(&a, m, g, &p));
    sampler s;
    sampler_params sp = sampler_defaults();
    CHECK_OK(sampler_init(&s, V_TINY + 1, &sp));
    CHECK(a && mark_adist_attach(a, 0, &s) != 0 && strstr(rt_errmsg(), "vocabulary"));
    CHECK(a && mark_adist_attach(a, 1, &s) != 0 && strstr(rt_errmsg(), "slot"));
    sampler_free(&s);
    int32_t bad[2] = {1, V_TINY};
    float b[V_TINY];
    CHECK(a && mark_adist_delta(a, 0, bad, 2, b) != 0 && strstr(rt_errmsg(), "vocabulary"));
    mark_adist_example none = {.tokens = bad, .n = 1, .n_prompt = 0};
    CHECK(mark_adist_task_grad(m, &none, 1, g, NULL) != 0 && strstr(rt_errmsg(), "completion"));
    mark_adist_free(a);
    free(g);
    model_free(m);
}

TEST_MAIN("antidistill", TEST_CASE(test_task_gradient), TEST_CASE(test_task_gradient_masked),
          TEST_CASE(test_task_scopes), TEST_CASE(test_fd_matches_backprop),
          TEST_CASE(test_lambda_zero_and_determinism), TEST_CASE(test_watermark_survives), TEST_CASE(test_batched_matches_single),
          TEST_CASE(test_gate), TEST_CASE(test_bad_input))
