/*
 * test_generate.c — the batched generator (src/model/generate.h) against an independent
 * single-sequence loop written here from the decoder and sampler alone (prefill, then
 * sample / decoder_run one token at a time, context shift by hand): same tokens for the same
 * seeds whatever the batch, raw log-probs equal to a log-softmax of the training forward,
 * the per-sequence sampler hook sees the whole history, chunked prefill with shared prompts
 * equals separate sequences, and removal hands a prefill over to a sharer.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/generate.h"
#include "testlib.h"

static model *make_model(size_t V, size_t ctx, uint64_t seed) {
    model_config c = {.dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn_dim = 64,
                      .vocab_size = V, .ctx_len = ctx, .norm_eps = 1e-5f, .rope_base = 10000.0f, .tied = 1};
    model *m;
    if (model_create(&m, &c, NULL)) return NULL;
    model_init_weights(m, seed);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] *= 6.0f; /* peaked, varied outputs */
    return m;
}

/* A processor that bans one token and checks it is shown the whole history so far. */
typedef struct {
    int32_t banned;
    const int32_t *prompt; /* the sequence's prompt, to check the history against */
    size_t n_prompt;
    int history_ok;
    size_t calls;
} ban_proc;

static void ban_apply(void *ud, float *logits, size_t V, const int32_t *history, size_t n_history) {
    ban_proc *b = ud;
    b->calls++;
    if (n_history < b->n_prompt || memcmp(history, b->prompt, b->n_prompt * sizeof(int32_t))) b->history_ok = 0;
    if ((size_t)b->banned < V) logits[b->banned] = -INFINITY;
}

/* The reference: one sequence, decoder + sampler by hand. ctx_shift as generate.h says. */
static size_t reference(const model *m, const int32_t *prompt, size_t n, const sampler_params *sp, size_t max_new,
                        int32_t stop, int ctx_shift, ban_proc *ban, int32_t *out) {
    size_t V = m->cfg.vocab_size, ctx = m->cfg.ctx_len;
    kv_cache kv;
    decoder d;
    sampler s;
    float *lg = malloc(V * sizeof(float));
    int32_t *hist = malloc((n + max_new + 1) * sizeof(int32_t));
    if (!lg || !hist || kv_cache_init(&kv, &m->cfg, ctx) || decoder_init(&d, m, RT_MIN(ctx, (size_t)128)) ||
        sampler_init(&s, V, sp))
        abort();
    if (ban) sampler_add_processor(&s, ban_apply, ban);
    memcpy(hist, prompt, n * sizeof(int32_t));
    size_t nh = n, got = 0;
    if (decoder_prefill(&d, &kv, hist, n, lg, NULL)) abort();
    for (;;) {
        int32_t t = sampler_sample(&s, lg, hist, nh);
        hist[nh++] = t;
        if (t == stop) break;
        out[got++] = t;
        if (got >= max_new) break;
        if (kv.len >= ctx) {
            if (!ctx_shift) break;
            kv_cache_clear(&kv);
            if (decoder_prefill(&d, &kv, hist + nh - ctx / 2, ctx / 2, lg, NULL)) abort();
            continue;
        }
        kv_cache *cp = &kv;
        if (decoder_run(&d, &cp, &t, 1, NULL, lg)) abort();
    }
    sampler_free(&s);
    decoder_free(&d);
    kv_cache_free(&kv);
    free(lg);
    free(hist);
    return got;
}

enum { NP = 5, V = 61 };
static int32_t P[NP][12];
static size_t PL[NP] = {3, 1, 9, 5, 12};

static void make_prompts(void) {
    rt_rng r;
    rt_rng_seed(&r, 4);
    for (size_t i = 0; i < NP; i++)
        for (size_t j = 0; j < PL[i]; j++) P[i][j] = (int32_t)rt_rng_below(&r, V);
}

static ban_proc bans[NP];

static int setup_ban(void *ud, size_t slot, size_t id, void *user, sampler *s) {
    (void)ud, (void)slot, (void)user;
    return sampler_add_processor(s, ban_apply, &bans[id]);
}

/* generator_run, any batch, = the single-sequence loop, token for token */
static void test_run_matches_single(void) {
    model *m = make_model(V, 48, 3);
    CHECK(m != NULL);
    if (!m) return;
    make_prompts();
    const int32_t *pp[NP];
    for (size_t i = 0; i < NP; i++) pp[i] = P[i];
    uint64_t seeds[NP];
    for (size_t i = 0; i < NP; i++) seeds[i] = 1000 + 7 * i;
    sampler_params sp = {.temperature = 0.9f, .top_k = 20, .top_p = 0.9f};
    int32_t ref[NP][64];
    size_t nref[NP];
    for (size_t i = 0; i < NP; i++) {
        sp.seed = seeds[i];
        bans[i] = (ban_proc){.banned = (int32_t)(i + 2), .prompt = P[i], .n_prompt = PL[i], .history_ok = 1};
        nref[i] = reference(m, P[i], PL[i], &sp, 30, 5, 0, &bans[i], ref[i]);
    }
    for (size_t batch = 1; batch <= 4; batch += 3) {
        gen_result res[NP];
        for (size_t i = 0; i < NP; i++)
            bans[i] = (ban_proc){.banned = (int32_t)(i + 2), .prompt = P[i], .n_prompt = PL[i], .history_ok = 1};
        gen_run_opts o = {.batch = batch, .max_new = 30, .stop = 5, .setup = setup_ban};
        CHECK_OK(generator_run(m, pp, PL, NP, &sp, seeds, &o, res));
        int same = 1, banned_seen = 0, hist_ok = 1;
        for (size_t i = 0; i < NP; i++) {
            same &= res[i].n == nref[i] && !memcmp(res[i].tokens, ref[i], nref[i] * sizeof(int32_t));
            for (size_t k = 0; k < res[i].n; k++) banned_seen |= res[i].tokens[k] == bans[i].banned;
            hist_ok &= bans[i].history_ok && bans[i].calls > 0;
            CHECK(res[i].stopped == (res[i].n < 30 && res[i].n + PL[i] < 48));
            gen_result_free(&res[i]);
        }
        CHECK_MSG(same, "batch %zu: generator tokens differ from the single-sequence loop", batch);
        CHECK_MSG(!banned_seen, "a processor's banned token was sampled");
        CHECK_MSG(hist_ok, "a processor did not see the sequence's history");
    }
    model_free(m);
}

/* raw log-probs and top-n = log-softmax of the training forward over the same tokens */
static void test_logprobs(void) {
    model *m = make_model(V, 48, 5);
    if (!m) return;
    make_prompts();
    const int32_t *pp[2] = {P[0], P[2]};
    size_t lens[2] = {PL[0], PL[2]};
    sampler_params sp = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 3};
    gen_result res[2];
    gen_run_opts o = {.batch = 2, .max_new = 10, .stop = -1, .n_top = 4, .logprobs = 1};
    CHECK_OK(generator_run(m, pp, lens, 2, &sp, NULL, &o, res));
    int ok = 1;
    for (size_t i = 0; i < 2; i++) {
        int32_t seq[64];
        memcpy(seq, pp[i], lens[i] * sizeof(int32_t));
        size_t n = lens[i];
        for (size_t g = 0; g < res[i].n; g++) {
            const float *lg = model_forward(m, seq, 1, n) + (n - 1) * V;
            double mx = -INFINITY, z = 0;
            for (size_t v = 0; v < V; v++) mx = fmax(mx, lg[v]);
            for (size_t v = 0; v < V; v++) z += exp(lg[v] - mx);
            double lse = mx + log(z);
            ok &= fabs(res[i].logprob[g] - (lg[res[i].tokens[g]] - lse)) < 1e-3;
            for (size_t k = 0; k < 4; k++) {
                int32_t id = res[i].top_ids[g * 4 + k];
                ok &= fabs(res[i].top_lps[g * 4 + k] - (lg[id] - lse)) < 1e-3;
                if (k) ok &= res[i].top_lps[g * 4 + k] <= res[i].top_lps[g * 4 + k - 1];
            }
            size_t above = 0; /* no token outside the top 4 beats the 4th */
            for (size_t v = 0; v < V; v++) above += lg[v] - lse > res[i].top_lps[g * 4 + 3] + 1e-4;
            ok &= above <= 3;
            seq[n++] = res[i].tokens[g];
        }
        gen_result_free(&res[i]);
    }
    CHECK_MSG(ok, "generator log-probs differ from the forward's log-softmax");
    model_free(m);
}

/* a context shift: the reference shifts by hand; completions outgrow the context */
static void test_context_shift(void) {
    model *m = make_model(V, 16, 9);
    if (!m) return;
    make_prompts();
    sampler_params sp = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 21};
    int32_t ref[64];
    size_t nref = reference(m, P[2], PL[2], &sp, 40, -1, 1, NULL, ref);
    CHECK(nref == 40);
    const int32_t *pp[1] = {P[2]};
    gen_result res[1];
    gen_run_opts o = {.batch = 1, .max_new = 40, .stop = -1, .ctx_shift = 1};
    CHECK_OK(generator_run(m, pp, &PL[2], 1, &sp, NULL, &o, res));
    CHECK(res[0].n == 40 && !memcmp(res[0].tokens, ref, 40 * sizeof(int32_t)));
    gen_result_free(&res[0]);
    /* without the shift, the sequence ends when the cache is full: 16 - 9 + 1 tokens */
    o.ctx_shift = 0;
    CHECK_OK(generator_run(m, pp, &PL[2], 1, &sp, NULL, &o, res));
    CHECK(res[0].n == 8 && !res[0].stopped && !memcmp(res[0].tokens, ref, 8 * sizeof(int32_t)));
    gen_result_free(&res[0]);
    size_t too_long = 16;
    int32_t lp[16] = {0};
    const int32_t *pl[1] = {lp};
    CHECK(generator_run(m, pl, &too_long, 1, &sp, NULL, &o, res) == -1 && strstr(rt_errmsg(), "context"));
    model_free(m);
}

/* chunked prefill, n choices sharing one prompt, removal mid-prefill */
typedef struct {
    int32_t tok[4][32];
    size_t n[4];
} collect;

static int collect_token(void *ud, const gen_event *ev) {
    collect *c = ud;
    c->tok[ev->id][c->n[ev->id]++] = ev->token;
    return c->n[ev->id] >= 12 ? GEN_FINISH : GEN_CONTINUE;
}

static void test_chunked_shared(void) {
    model *m = make_model(V, 48, 13);
    if (!m) return;
    make_prompts();
    sampler_params sp = {.temperature = 1.0f, .top_k = 10, .top_p = 1.0f};
    int32_t ref[3][64];
    for (size_t c = 0; c < 3; c++) {
        sp.seed = 50 + c;
        CHECK(reference(m, P[4], PL[4], &sp, 12, -1, 0, NULL, ref[c]) == 12);
    }
    for (int remove_first = 0; remove_first <= 1; remove_first++) {
        collect col = {0};
        generator_opts go = {.max_seqs = 4, .prefill_chunk = 5, .on_token = collect_token, .ud = &col};
        generator *g;
        CHECK_OK(generator_init(&g, m, &go));
        size_t first = 0, slot;
        for (size_t c = 0; c < 3; c++) {
            gen_seq_spec spec = {.prompt = P[4], .n_prompt = PL[4], .sp = sp, .id = c, .share_with = c ? (long)first : -1};
            spec.sp.seed = 50 + c;
            CHECK_OK(generator_add(g, &spec, &slot));
            if (c == 0) first = slot;
        }
        if (remove_first) {
            CHECK_OK(generator_step(g, NULL, NULL)); /* 5 of 12 prompt tokens in */
            generator_remove(g, first);           /* a sharer takes the prefill over */
        }
        size_t steps = 0;
        while (generator_n_active(g) > 0 && steps++ < 100) CHECK_OK(generator_step(g, NULL, NULL));
        for (size_t c = remove_first; c < 3; c++)
            CHECK_MSG(col.n[c] == 12 && !memcmp(col.tok[c], ref[c], 12 * sizeof(int32_t)),
                      "choice %zu (remove_first %d) differs from its own sequence", c, remove_first);
        if (remove_first) CHECK(col.n[0] == 0);
        generator_free(g);
    }
    model_free(m);
}

TEST_MAIN("generate", TEST_CASE(test_run_matches_single), TEST_CASE(test_logprobs), TEST_CASE(test_context_shift),
          TEST_CASE(test_chunked_shared))
