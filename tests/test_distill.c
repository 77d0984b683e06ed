/* test_distill.c — the distillation room on tiny models, against independent references:
 * the teacher cache vs the live teacher's top-k (and the stated loss tolerance, derived from
 * the quantization step), corruption and wrong-file errors; vocabulary mismatch messages;
 * harvest JSONL parsing and byte alignment against hand-worked expectations, bad lines with
 * their numbers; SFT packing; arithmetic problems re-checked by parsing their working;
 * batched generation vs step-by-step full forwards; evaluation vs a naive loop; distillation
 * reducing KL to the teacher; bit-identical resume (on-policy included); SVG output. */
#include "base/base.h"
#include "distill/distill.h"
#include "plot/plot.h"
#include "model/model.h"
#include "testlib.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- fixtures */

static char *make_text(size_t n_words, uint64_t seed) {
    static const char *const words[] = {"the", "lord", "said", "unto", "moses", "and", "israel", "land",
                                        "of", "egypt", "children", "king", "house", "god", "people", "day",
                                        "behold", "thou", "shalt", "not", "which", "upon", "earth", "heaven"};
    rt_rng r;
    rt_rng_seed(&r, seed);
    rt_buf b = {0};
    for (size_t i = 0; i < n_words; i++) {
        /* a little grammar: "X said unto Y" often, so a model has something to learn */
        size_t w = rt_rng_below(&r, RT_ARRAY_LEN(words));
        rt_buf_printf(&b, "%s%s", words[w], i % 11 == 10 ? ".\n" : " ");
        if (w == 1) rt_buf_printf(&b, "said unto ");
    }
    return b.data;
}

static tokenizer *text_tok(const char *text, size_t vocab) {
    tokenizer *t = NULL;
    if (tokenizer_train(&t, text, strlen(text), vocab)) return NULL;
    return t;
}

static model *tiny_model(tokenizer *tok, size_t dim, size_t layers, size_t ctx, uint64_t seed) {
    model_config c = {.dim = dim, .n_layers = layers, .n_heads = 2, .n_kv_heads = 1, .ffn_dim = 2 * dim,
                      .vocab_size = tokenizer_vocab_size(tok), .ctx_len = ctx, .norm_eps = 1e-5f,
                      .rope_base = 10000.0f, .tied = 1};
    model *m = NULL;
    if (model_create(&m, &c, tok)) return NULL;
    model_init_weights(m, seed);
    return m;
}

static void tmp_path(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", tl_tmpdir(), name); }

static int write_text(const char *path, const char *s) { return rt_write_file_atomic(path, s, strlen(s)); }

/* ---------------------------------------------------------------- cache */

static void test_cache(void) {
    char *text = make_text(6000, 1);
    tokenizer *tok = text_tok(text, 300);
    model *t = tiny_model(tok, 32, 1, 16, 3);
    CHECK(t != NULL);
    /* sharpen the teacher so top-k gaps exceed the 255-step delta range (escapes) */
    for (size_t i = 0; i < t->cfg.vocab_size * t->cfg.dim; i++) t->w.token_embd[i] *= 40.0f;
    int32_t *ids;
    size_t n;
    CHECK_OK(tokenizer_encode(t->tok, text, strlen(text), 0, &ids, &n));
    size_t T = 16, K = 8, V = t->cfg.vocab_size;
    kd_cache_build_opts o;
    kd_cache_build_defaults(&o);
    o.top_k = K;
    o.seq_len = T;
    o.batch = 3;
    o.max_windows = 40;
    o.quiet = 1;
    char path[512];
    tmp_path(path, sizeof path, "t.cache");
    kd_cache_build_result res;
    CHECK_OK(kd_cache_build(t, "teacher.gguf", ids, n, &o, path, &res));
    CHECK(res.n_windows == 40 && res.n_positions == 40 * T && res.file_bytes > res.payload_bytes);
    kd_cache *c = NULL;
    CHECK_OK(kd_cache_open(&c, path));
    if (!c) return;
    const kd_cache_info *ci = kd_cache_get_info(c);
    CHECK(ci->n_windows == 40 && ci->top_k == K && ci->seq_len == T && ci->vocab_size == V);
    CHECK(ci->vocab_hash == kd_vocab_hash(t->tok));
    CHECK(ci->data_hash == rt_fnv1a64(ids, (40 * T + 1) * sizeof(int32_t)));
    CHECK(!strcmp(ci->teacher, "teacher.gguf"));
    tokenizer *ct = NULL;
    CHECK_OK(kd_cache_load_tokenizer(c, &ct));
    CHECK_OK(kd_vocab_check(ct, "cache", t->tok, "teacher"));
    tokenizer_free(ct);
    /* every window against the live teacher's top-k */
    int32_t tokens[17], cid[16 * 8], lid[8];
    float clp[16 * 8], crest[16], llp[8], lrest;
    double step = ci->lp_step, worst_lp = 0;
    int ids_ok = 1, escapes_seen = 0;
    for (size_t w = 0; w < 40; w++) {
        CHECK_OK(kd_cache_read_window(c, w, tokens, cid, clp, crest));
        CHECK(memcmp(tokens, ids + w * T, (T + 1) * sizeof(int32_t)) == 0);
        const float *lg = model_forward(t, tokens, 1, T);
        for (size_t p = 0; p < T; p++) {
            kd_topk_from_logits(lg + p * V, V, 1.0f, K, lid, llp, &lrest);
            for (size_t i = 0; i < K; i++) {
                if (cid[p * K + i] != lid[i]) ids_ok = 0;
                worst_lp = fmax(worst_lp, fabs(clp[p * K + i] - llp[i]));
                if (i && llp[i - 1] - llp[i] > 255 * step) escapes_seen = 1;
            }
            worst_lp = fmax(worst_lp, fabs(crest[p] - lrest));
        }
    }
    CHECK_MSG(ids_ok, "cached top-k ids differ from the live teacher's");
    CHECK_MSG(worst_lp <= step / 2 + 1e-5, "cached log-prob off by %.3g (step %.3g)", worst_lp, step);
    CHECK_MSG(escapes_seen, "the sharpened teacher should need escaped deltas");
    /* the loss from the cache vs the live top-k teacher, and the stated bound:
     * |ΔD| <= 2δ + (e^{2δ} - 1) Σ_b p_b |log p_b - log q_b|   (δ = step/2, per row) */
    tokenizer *stok = text_tok(text, 300);
    model *s = tiny_model(stok, 16, 1, 16, 9);
    size_t B = 4, N = B * T;
    int32_t in[64], tg[64], live_ids[64 * 8], cache_ids[64 * 8];
    float live_lp[64 * 8], cache_lp[64 * 8];
    kd_topk_row live_rows[64], cache_rows[64];
    for (size_t b = 0; b < B; b++) {
        size_t w = 5 + 7 * b;
        CHECK_OK(kd_cache_read_window(c, w, tokens, cache_ids + b * T * K, cache_lp + b * T * K, crest));
        for (size_t p = 0; p < T; p++) {
            in[b * T + p] = tokens[p];
            tg[b * T + p] = tokens[p + 1];
            cache_rows[b * T + p] = (kd_topk_row){K, cache_ids + (b * T + p) * K, cache_lp + (b * T + p) * K, crest[p]};
        }
    }
    const float *tl = model_forward(t, in, B, T);
    float *tl_copy = malloc(N * V * sizeof(float));
    memcpy(tl_copy, tl, N * V * sizeof(float));
    for (size_t i = 0; i < N; i++) {
        float r;
        kd_topk_from_logits(tl_copy + i * V, V, 1.0f, K, live_ids + i * K, live_lp + i * K, &r);
        live_rows[i] = (kd_topk_row){K, live_ids + i * K, live_lp + i * K, r};
    }
    const float *sl = model_forward(s, in, B, T);
    float *s1 = malloc(N * V * sizeof(float)), *s2 = malloc(N * V * sizeof(float));
    memcpy(s1, sl, N * V * sizeof(float));
    memcpy(s2, sl, N * V * sizeof(float));
    /* the bound, from the live rows and the student's bucket log-probs (naive double loops) */
    double bound = 0, dl = step / 2;
    for (size_t i = 0; i < N; i++) {
        const float *z = s1 + i * V;
        double mx = -INFINITY, sum = 0;
        for (size_t j = 0; j < V; j++) mx = fmax(mx, z[j]);
        for (size_t j = 0; j < V; j++) sum += exp(z[j] - mx);
        double lse = mx + log(sum), qk = 0, acc = 0;
        for (size_t e = 0; e < K; e++) {
            double lq = z[live_ids[i * K + e]] - lse, lp = live_lp[i * K + e];
            qk += exp(lq);
            acc += exp(lp) * fabs(lp - lq);
        }
        double lpr = live_rows[i].lp_rest, lqr = log(fmax(1e-300, 1 - qk));
        acc += exp(lpr) * fabs(lpr - lqr);
        bound += 2 * dl + (exp(2 * dl) - 1) * acc;
    }
    bound /= (double)N;
    kd_params p = kd_params_defaults();
    kd_workspace ws;
    CHECK_OK(kd_workspace_init(&ws, V, K));
    kd_stats a, b2;
    CHECK_OK(kd_loss_batch(&p, &ws, s1, NULL, live_rows, tg, 1, N, V, 0, &a));
    CHECK_OK(kd_loss_batch(&p, &ws, s2, NULL, cache_rows, tg, 1, N, V, 0, &b2));
    double diff = fabs(a.loss - b2.loss);
    fprintf(stderr, "  cache vs live top-%zu forward KL: %.6f vs %.6f (|diff| %.2e, bound %.2e)\n", K, a.loss,
            b2.loss, diff, bound);
    CHECK_MSG(diff <= bound, "cache loss %.6f vs live %.6f exceeds the bound %.3g", b2.loss, a.loss, bound);
    CHECK(diff > 0); /* quantization is real: the test would not notice a cache that stored nothing */
    kd_workspace_free(&ws);
    free(s1);
    free(s2);
    free(tl_copy);
    model_free(s);
    kd_cache_close(c);
    /* corruption: flip bytes inside the frames; some window must then fail, naming itself */
    char *data;
    size_t len;
    CHECK_OK(rt_read_file(path, &data, &len));
    char bad[512];
    tmp_path(bad, sizeof bad, "bad.cache");
    for (size_t i = len - len / 3; i < len - len / 3 + 8; i++) data[i] ^= 0x5a;
    CHECK_OK(rt_write_file_atomic(bad, data, len));
    CHECK_OK(kd_cache_open(&c, bad));
    int failed = 0;
    for (size_t w = 0; c && w < 40 && !failed; w++)
        failed = kd_cache_read_window(c, w, tokens, cid, clp, crest) != 0;
    CHECK_MSG(failed && strstr(rt_errmsg(), "window"), "corrupt frames went unnoticed (%s)", rt_errmsg());
    kd_cache_close(c);
    /* truncated → refused at open */
    CHECK_OK(rt_write_file_atomic(bad, data, len / 2));
    c = NULL;
    CHECK(kd_cache_open(&c, bad) == -1 && c == NULL);
    free(data);
    /* a model file is not a cache */
    char mpath[512];
    tmp_path(mpath, sizeof mpath, "teacher.gguf");
    CHECK_OK(model_save(t, mpath));
    CHECK(kd_cache_open(&c, mpath) == -1 && strstr(rt_errmsg(), "not a retort teacher cache"));
    free(ids);
    model_free(t);
    free(text);
}

/* ---------------------------------------------------------------- vocabularies */

static void test_vocab_mismatch(void) {
    char *text = make_text(3000, 2), *other = make_text(3000, 77);
    tokenizer *a = text_tok(text, 300), *b = text_tok(text, 290), *c = text_tok(other, 300), *d = text_tok(text, 300);
    CHECK_OK(kd_vocab_check(a, "S.gguf", d, "T.gguf"));
    CHECK(kd_vocab_hash(a) == kd_vocab_hash(d) && kd_vocab_hash(a) != kd_vocab_hash(b));
    /* different sizes: both named, both sizes given */
    CHECK(kd_vocab_check(a, "S.gguf", b, "T.gguf") == -1);
    const char *m = rt_errmsg();
    CHECK_MSG(strstr(m, "S.gguf") && strstr(m, "T.gguf") && strstr(m, "300") && strstr(m, "290") &&
                  strstr(m, "different vocabularies"),
              "%s", m);
    /* same size, different merges: the first differing id is named */
    if (kd_vocab_hash(a) != kd_vocab_hash(c)) {
        CHECK(kd_vocab_check(a, "S.gguf", c, "T.gguf") == -1 && strstr(rt_errmsg(), "token") &&
              strstr(rt_errmsg(), "--tokenizer"));
    }
    tokenizer_free(a);
    tokenizer_free(b);
    tokenizer_free(c);
    tokenizer_free(d);
    free(text);
    free(other);
}

/* ---------------------------------------------------------------- harvest JSONL */

static tokenizer *byte_tok(void) {
    /* 256 bytes + specials, no merges: every byte is its own token */
    return text_tok("abc", 256 + TOKENIZER_N_SPECIAL);
}

static void test_sft_loader(void) {
    tokenizer *tok = byte_tok();
    CHECK(tok != NULL && tokenizer_vocab_size(tok) == 262);
    int32_t eos = tokenizer_eos(tok);
    char path[512];
    tmp_path(path, sizeof path, "h.jsonl");
    const char *good =
        /* 1: plain pair; extra fields ignored */
        "{\"prompt\":\"ab\",\"completion\":\"cd\",\"id\":\"x1\",\"account\":\"acct\",\"model\":\"m\"}\n"
        /* 2: blank */
        "   \n"
        /* 3: one teacher token per byte; alternatives "x"/"q" etc. */
        "{\"prompt\":\"p\",\"completion\":\"xyz\",\"logprobs\":[-0.1,-0.2,-0.3],\"top_logprobs\":["
        "[{\"token\":\"x\",\"logprob\":-0.1,\"bytes\":[120]},{\"token\":\"q\",\"logprob\":-2.5,\"bytes\":[113]}],"
        "[{\"token\":\"y\",\"logprob\":-0.2,\"bytes\":[121]}],"
        "[{\"token\":\"z\",\"logprob\":-0.3},{\"token\":\"zz\",\"logprob\":-1.9}]]}\n"
        /* 4: a two-byte teacher token "yz": no student token has its bytes (→ rest mass), and
         *    there is no teacher boundary at "z" */
        "{\"prompt\":\"p\",\"completion\":\"xyz\",\"logprobs\":[-0.1,-0.05],\"top_logprobs\":["
        "[{\"token\":\"x\",\"logprob\":-0.1,\"bytes\":[120]}],"
        "[{\"token\":\"yz\",\"logprob\":-0.05,\"bytes\":[121,122]},{\"token\":\"y\",\"logprob\":-3.2,\"bytes\":[121]}]]}\n"
        /* 5: OpenAI's object form */
        "{\"prompt\":\"p\",\"completion\":\"xy\",\"logprobs\":{\"content\":["
        "{\"token\":\"x\",\"logprob\":-0.2,\"bytes\":[120],\"top_logprobs\":[{\"token\":\"x\",\"logprob\":-0.2,\"bytes\":[120]}]},"
        "{\"token\":\"y\",\"logprob\":-0.4,\"bytes\":[121],\"top_logprobs\":[{\"token\":\"w\",\"logprob\":-1.2,\"bytes\":[119]},"
        "{\"token\":\"y\",\"logprob\":-0.4,\"bytes\":[121]}]}]}}\n"
        /* 6: the sampled token is not among the alternatives → alignment stops after position 0 */
        "{\"prompt\":\"p\",\"completion\":\"xy\",\"logprobs\":[-4.0,-0.1],\"top_logprobs\":["
        "[{\"token\":\"a\",\"logprob\":-0.1}],[{\"token\":\"y\",\"logprob\":-0.1}]]}\n"
        /* 7: cut by the length limit: no end token */
        "{\"prompt\":\"p\",\"completion\":\"xy\",\"finish_reason\":\"length\"}\n";
    CHECK_OK(write_text(path, good));
    sft_load_opts lo;
    sft_load_defaults(&lo);
    sft_set s;
    CHECK_OK(sft_load_jsonl(&s, path, tok, &lo));
    CHECK(s.n_ex == 6);
    if (s.n_ex != 6) return;
    uint32_t want_lines[6] = {1, 3, 4, 5, 6, 7};
    for (size_t e = 0; e < 6; e++) CHECK(s.line[e] == want_lines[e]);
    /* example 0: "ab" | "cd" <eos> */
    CHECK(s.n_prompt[0] == 2 && s.off[1] - s.off[0] == 5);
    const int32_t *t0 = s.tokens + s.off[0];
    CHECK(t0[0] == 'a' && t0[1] == 'b' && t0[2] == 'c' && t0[3] == 'd' && t0[4] == eos);
    CHECK(s.soft_off[1] - s.soft_off[0] == 0);
    /* example 1: soft targets on all three completion tokens (example tokens 1, 2, 3) */
    CHECK(s.soft_off[2] - s.soft_off[1] == 3);
    size_t q = s.soft_off[1];
    CHECK(s.soft_tok[q] == 1 && s.soft_tok[q + 1] == 2 && s.soft_tok[q + 2] == 3);
    CHECK(s.soft_k_off[q + 1] - s.soft_k_off[q] == 2);
    CHECK(s.soft_ids[s.soft_k_off[q]] == 'x' && s.soft_ids[s.soft_k_off[q] + 1] == 'q');
    CHECK_NEAR(s.soft_lps[s.soft_k_off[q] + 1], -2.5, 1e-6, 0);
    CHECK_NEAR(s.soft_rest[q], log(1 - exp(-0.1) - exp(-2.5)), 1e-6, 0);
    /* position 2: "z" maps, "zz" has no student token → its mass joins the rest */
    CHECK(s.soft_k_off[q + 3] - s.soft_k_off[q + 2] == 1 && s.soft_ids[s.soft_k_off[q + 2]] == 'z');
    CHECK_NEAR(s.soft_rest[q + 2], log(1 - exp(-0.3)), 1e-6, 0);
    /* example 2: teacher tokens "x", "yz": soft targets for student tokens 'x' and 'y' only */
    q = s.soft_off[2];
    CHECK(s.soft_off[3] - q == 2 && s.soft_tok[q] == 1 && s.soft_tok[q + 1] == 2);
    CHECK(s.soft_k_off[q + 2] - s.soft_k_off[q + 1] == 1 && s.soft_ids[s.soft_k_off[q + 1]] == 'y');
    CHECK_NEAR(s.soft_rest[q + 1], log(1 - exp(-3.2)), 1e-6, 0);
    /* example 3 (OpenAI object): two positions; the second lists w then y */
    q = s.soft_off[3];
    CHECK(s.soft_off[4] - q == 2 && s.soft_ids[s.soft_k_off[q + 1]] == 'w' && s.soft_ids[s.soft_k_off[q + 1] + 1] == 'y');
    /* example 4: the chosen token (logprob -4.0) is not listed: position 0 only */
    CHECK(s.soft_off[5] - s.soft_off[4] == 1);
    CHECK(s.n_with_logprobs == 4 && s.n_truncated_alignment == 1);
    /* example 5: no end token */
    CHECK(s.off[6] - s.off[5] == 3 && s.tokens[s.off[6] - 1] == 'y');
    CHECK(s.n_completion_tokens == 3 + 4 + 4 + 3 + 3 + 2);
    sft_set_free(&s);
    /* bad lines: reported with their numbers; the load fails unless skip_bad */
    rt_buf b = {0};
    rt_buf_printf(&b, "%s", good);
    rt_buf_printf(&b, "{\"prompt\": \"a\", \"completion\": \n");                       /* 8: not JSON */
    rt_buf_printf(&b, "{\"prompt\":\"a\"}\n");                                          /* 9: no completion */
    rt_buf_printf(&b, "{\"prompt\":3,\"completion\":\"b\"}\n");                         /* 10 */
    rt_buf_printf(&b, "{\"prompt\":\"a\",\"completion\":\"b\",\"top_logprobs\":[[{\"token\":\"b\",\"logprob\":0.5}]]}\n"); /* 11 */
    rt_buf_printf(&b, "{\"prompt\":\"a\",\"completion\":\"b\",\"top_logprobs\":[[{\"logprob\":-1,\"bytes\":[300]}]]}\n"); /* 12 */
    rt_buf_printf(&b, "[1,2]\n");                                                       /* 13 */
    CHECK_OK(write_text(path, b.data));
    rt_buf_free(&b);
    CHECK(sft_load_jsonl(&s, path, tok, &lo) == -1);
    const char *m = rt_errmsg();
    CHECK_MSG(strstr(m, "6 bad lines") && strstr(m, "h.jsonl:8:") && strstr(m, "h.jsonl:9:") &&
                  strstr(m, "--skip-bad") && strstr(m, "not valid JSON") && strstr(m, "completion"),
              "%s", m);
    lo.skip_bad = 1;
    rt_log_level lv = rt_log_get_level();
    rt_log_set_level(RT_LOG_ERROR);
    CHECK_OK(sft_load_jsonl(&s, path, tok, &lo));
    rt_log_set_level(lv);
    CHECK(s.n_ex == 6 && s.n_bad_lines == 6 && s.n_soft == 3 + 2 + 2 + 1);
    sft_set_free(&s);
    /* chat format wraps the pair in the template tokens */
    lo.skip_bad = 0;
    lo.format = SFT_FORMAT_CHAT;
    CHECK_OK(write_text(path, "{\"prompt\":\"ab\",\"completion\":\"c\"}\n"));
    CHECK_OK(sft_load_jsonl(&s, path, tok, &lo));
    int32_t user = tokenizer_special_id(tok, "<|user|>"), end = tokenizer_special_id(tok, "<|end|>"),
            asst = tokenizer_special_id(tok, "<|assistant|>");
    int32_t want[] = {user, 'a', 'b', end, asst, 'c', end};
    CHECK(s.n_ex == 1 && s.off[1] == 7 && s.n_prompt[0] == 5 && !memcmp(s.tokens, want, sizeof want));
    sft_set_free(&s);
    /* NUL inside strings (\u0000, which harvests can hold) is a byte like any other */
    lo.format = SFT_FORMAT_RAW;
    CHECK_OK(write_text(path, "{\"prompt\":\"a\\u0000b\",\"completion\":\"c\\u0000\"}\n"));
    CHECK_OK(sft_load_jsonl(&s, path, tok, &lo));
    int32_t want_nul[] = {'a', 0, 'b', 'c', 0, eos};
    CHECK(s.n_ex == 1 && s.off[1] == 6 && s.n_prompt[0] == 3 && !memcmp(s.tokens, want_nul, sizeof want_nul));
    sft_set_free(&s);
    /* an empty file is an error, not an empty run */
    CHECK_OK(write_text(path, "\n\n"));
    CHECK(sft_load_jsonl(&s, path, tok, &lo) == -1 && strstr(rt_errmsg(), "no examples"));
    tokenizer_free(tok);
}

static void test_sft_packing(void) {
    tokenizer *tok = byte_tok();
    char path[512];
    tmp_path(path, sizeof path, "p.jsonl");
    CHECK_OK(write_text(path,
                        "{\"prompt\":\"AB\",\"completion\":\"cd\",\"logprobs\":[-0.1,-0.1],\"top_logprobs\":"
                        "[[{\"token\":\"c\",\"logprob\":-0.1}],[{\"token\":\"d\",\"logprob\":-0.1}]]}\n"
                        "{\"prompt\":\"EFG\",\"completion\":\"hij\"}\n"));
    sft_load_opts lo;
    sft_load_defaults(&lo);
    sft_set s;
    CHECK_OK(sft_load_jsonl(&s, path, tok, &lo));
    model *m = tiny_model(tok, 16, 1, 24, 1);
    sft_run r;
    kd_params kp = kd_params_defaults();
    CHECK_OK(sft_run_init(&r, &kp, m, &s, 0.0, 3, 24));
    train_task task;
    sft_run_task(&r, &task);
    rt_rng rng;
    rt_rng_seed(&rng, 5);
    int32_t in[72], tg[72];
    CHECK_OK(task.next_batch(task.ud, &rng, 3, 24, in, tg));
    int32_t eos = tokenizer_eos(tok);
    int ok = 1, saw_soft = 0;
    for (size_t b = 0; b < 3; b++) {
        /* walk the row: each example is prompt (upper case), completion (lower case), eos */
        for (size_t t = 0; t < 24; t++) {
            int32_t next = t + 1 < 24 ? in[b * 24 + t + 1] : -2;
            int32_t want = -1;
            if (next >= 'a' && next <= 'z') want = next;
            if (next == eos) want = eos;
            if (next != -2 && tg[b * 24 + t] != want) ok = 0;
            const kd_topk_row *row = &r.rows[b * 24 + t];
            if (row->k) {
                saw_soft = 1;
                if (row->k != 1 || row->ids[0] != tg[b * 24 + t] || (tg[b * 24 + t] != 'c' && tg[b * 24 + t] != 'd'))
                    ok = 0;
            }
        }
        if (in[b * 24] != 'A' && in[b * 24] != 'E') ok = 0; /* rows start with an example */
    }
    CHECK_MSG(ok, "packed rows: labels only on completion tokens, soft targets on the right ones");
    CHECK(saw_soft);
    sft_run_free(&r);
    model_free(m);
    sft_set_free(&s);
}

/* ---------------------------------------------------------------- arithmetic */

static int check_columns(const char *work, int is_mul) {
    /* every "x+y(+c)=s" or "x*y(+c)=s" segment must be arithmetically right */
    const char *p = work;
    int n = 0;
    while (*p) {
        unsigned x, y, c = 0, s;
        int used = 0;
        if ((is_mul ? sscanf(p, "%u*%u+%u=%u%n", &x, &y, &c, &s, &used) == 4
                    : sscanf(p, "%u+%u+%u=%u%n", &x, &y, &c, &s, &used) == 4) ||
            (c = 0, is_mul ? sscanf(p, "%u*%u=%u%n", &x, &y, &s, &used) == 3 : sscanf(p, "%u+%u=%u%n", &x, &y, &s, &used) == 3)) {
            if (x < 10 && y < 10) {
                if ((is_mul ? x * y + c : x + y + c) != s) return -1;
                n++;
            }
            p += used;
        } else {
            p++;
        }
    }
    return n;
}

static void test_arith(void) {
    rt_rng r;
    rt_rng_seed(&r, 3);
    rt_buf pr = {0}, co = {0};
    char ans[32], got[32];
    int ok = 1;
    for (int cfg = 0; cfg < 3; cfg++) {
        arith_opts o;
        arith_defaults(&o);
        o.digits = cfg == 0 ? 3 : cfg == 1 ? 5 : 2;
        o.mul_digits = cfg == 2 ? 3 : 1;
        for (int i = 0; i < 400; i++) {
            CHECK_OK(arith_make(&r, &o, &pr, &co, ans, sizeof ans));
            unsigned long long a, b;
            char op;
            if (sscanf(pr.data, "%llu%c%llu=", &a, &op, &b) != 3) {
                ok = 0;
                continue;
            }
            /* fixed width prompt */
            size_t wa = strcspn(pr.data, "+*");
            if (wa != o.digits) ok = 0;
            unsigned long long want = op == '+' ? a + b : a * b;
            char ws[32];
            snprintf(ws, sizeof ws, "%llu", want);
            if (strcmp(ans, ws)) ok = 0;
            if (arith_extract_answer(co.data, co.len, got, sizeof got) || strcmp(got, ws)) ok = 0;
            /* working: single-digit column steps are all correct, and there are enough of them */
            if (op == '+') {
                int n = check_columns(co.data, 0);
                if (n < (int)o.digits) ok = 0;
            } else if (o.mul_digits == 1) {
                int n = check_columns(co.data, 1);
                if (n < (int)o.digits) ok = 0;
            }
        }
    }
    CHECK_MSG(ok, "an arithmetic problem's prompt, working or answer is wrong");
    CHECK_OK(arith_extract_answer("x answer 12 then answer 0042.", 29, got, sizeof got));
    CHECK(!strcmp(got, "42"));
    CHECK_OK(arith_extract_answer("answer 0", 8, got, sizeof got));
    CHECK(!strcmp(got, "0"));
    CHECK(arith_extract_answer("the answer is 7", 15, got, sizeof got) == -1);
    CHECK(arith_extract_answer("answer ", 7, got, sizeof got) == -1);
    arith_opts bad;
    arith_defaults(&bad);
    bad.digits = 0;
    CHECK(arith_make(&r, &bad, &pr, &co, ans, sizeof ans) == -1 && strstr(rt_errmsg(), "--digits"));
    /* the JSONL writer is deterministic in the seed */
    char p1[512], p2[512];
    tmp_path(p1, sizeof p1, "a1.jsonl");
    tmp_path(p2, sizeof p2, "a2.jsonl");
    arith_opts o;
    arith_defaults(&o);
    CHECK_OK(arith_write_jsonl(p1, 50, &o, 9));
    CHECK_OK(arith_write_jsonl(p2, 50, &o, 9));
    char *d1, *d2;
    size_t l1, l2;
    CHECK_OK(rt_read_file(p1, &d1, &l1));
    CHECK_OK(rt_read_file(p2, &d2, &l2));
    CHECK(l1 == l2 && !memcmp(d1, d2, l1));
    free(d1);
    free(d2);
    /* answers only: the same problems per seed, completion exactly " answer " + the product
     * or sum recomputed here from the prompt (2-digit multipliers exercise the long path) */
    for (int mode = 0; mode < 2; mode++) {
        arith_opts w, a;
        arith_defaults(&w);
        w.mul_digits = mode ? 2 : 1;
        a = w;
        a.answers_only = 1;
        rt_rng rw, ra;
        rt_rng_seed(&rw, 11);
        rt_rng_seed(&ra, 11);
        rt_buf pw = {0}, cw = {0};
        char aw[32];
        for (int i = 0; i < 200; i++) {
            CHECK_OK(arith_make(&rw, &w, &pw, &cw, aw, sizeof aw));
            CHECK_OK(arith_make(&ra, &a, &pr, &co, ans, sizeof ans));
            unsigned long long x, y;
            char op;
            char want[48];
            if (sscanf(pr.data, "%llu%c%llu=", &x, &op, &y) != 3) ok = 0;
            snprintf(want, sizeof want, " answer %llu", op == '+' ? x + y : x * y);
            if (strcmp(pw.data, pr.data) || strcmp(aw, ans) || strcmp(co.data, want)) ok = 0;
        }
        rt_buf_free(&pw);
        rt_buf_free(&cw);
    }
    CHECK_MSG(ok, "an answers-only problem differs from its worked twin or has a wrong answer");
    rt_buf_free(&pr);
    rt_buf_free(&co);
}

/* ---------------------------------------------------------------- generation */

static size_t argmax2(const float *x, size_t V, double *gap) {
    size_t b = 0, s = 1;
    if (x[1] > x[0]) {
        b = 1;
        s = 0;
    }
    for (size_t j = 2; j < V; j++) {
        if (x[j] > x[b]) {
            s = b;
            b = j;
        } else if (x[j] > x[s]) {
            s = j;
        }
    }
    *gap = (double)x[b] - (double)x[s];
    return b;
}

static void test_generate(void) {
    char *text = make_text(2000, 4);
    tokenizer *tok = text_tok(text, 300);
    model *m = tiny_model(tok, 32, 2, 40, 11);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] *= 6.0f; /* less uniform outputs */
    size_t V = m->cfg.vocab_size;
    int32_t p0[] = {5, 17, 42}, p1[] = {200}, p2[] = {9, 9, 9, 9, 9, 100, 3}, p3[] = {250, 1};
    const int32_t *prompts[] = {p0, p1, p2, p3};
    size_t lens[] = {3, 1, 7, 2};
    kd_gen_opts o;
    kd_gen_defaults(&o);
    o.temperature = 0;
    o.max_new = 12;
    o.n_logprobs = 4;
    o.batch = 3;
    kd_gen_seq out[4], out1[4];
    CHECK_OK(kd_generate(m, prompts, lens, 4, &o, out, 0));
    o.batch = 1;
    CHECK_OK(kd_generate(m, prompts, lens, 4, &o, out1, 0));
    int ok = 1, lp_ok = 1, batch_ok = 1;
    for (size_t i = 0; i < 4; i++) {
        if (out[i].n != 12) ok = 0;
        int32_t seq[64];
        memcpy(seq, prompts[i], lens[i] * sizeof(int32_t));
        size_t n = lens[i];
        for (size_t g = 0; g < out[i].n && ok; g++) {
            /* reference: the training forward over the whole sequence so far */
            const float *lg = model_forward(m, seq, 1, n);
            const float *last = lg + (n - 1) * V;
            double gap;
            size_t best = argmax2(last, V, &gap);
            if ((int32_t)best != out[i].tokens[g] && gap > 1e-3) ok = 0;
            double mx = -INFINITY, sum = 0;
            for (size_t j = 0; j < V; j++) mx = fmax(mx, last[j]);
            for (size_t j = 0; j < V; j++) sum += exp(last[j] - mx);
            double lp = last[out[i].tokens[g]] - mx - log(sum);
            if (fabs(lp - out[i].chosen_lp[g]) > 1e-3) lp_ok = 0;
            if (out[i].top_ids[g * 4] != (int32_t)best && gap > 1e-3) lp_ok = 0;
            if (out1[i].tokens[g] != out[i].tokens[g]) batch_ok = 0;
            seq[n++] = out[i].tokens[g];
        }
    }
    CHECK_MSG(ok, "greedy batched generation differs from step-by-step full forwards");
    CHECK_MSG(lp_ok, "generation log-probs differ from the forward's log-softmax");
    CHECK_MSG(batch_ok, "batch size changed a greedy continuation");
    for (size_t i = 0; i < 4; i++) {
        kd_gen_seq_free(&out[i]);
        kd_gen_seq_free(&out1[i]);
    }
    /* sampling: the same seed gives the same text; the stop token ends a sequence */
    o.temperature = 1;
    o.n_logprobs = 0;
    o.seed = 99;
    o.batch = 4;
    CHECK_OK(kd_generate(m, prompts, lens, 4, &o, out, 0));
    o.batch = 2;
    CHECK_OK(kd_generate(m, prompts, lens, 4, &o, out1, 0));
    int same = 1;
    for (size_t i = 0; i < 4; i++)
        same &= out[i].n == out1[i].n && !memcmp(out[i].tokens, out1[i].tokens, out[i].n * sizeof(int32_t));
    CHECK_MSG(same, "sampled continuations depend on the batch");
    o.stop = out[0].tokens[3];
    kd_gen_seq st[1];
    CHECK_OK(kd_generate(m, prompts, lens, 1, &o, st, 0));
    CHECK(st[0].finished && st[0].n <= 3);
    kd_gen_seq_free(&st[0]);
    for (size_t i = 0; i < 4; i++) {
        kd_gen_seq_free(&out[i]);
        kd_gen_seq_free(&out1[i]);
    }
    /* the context bound is respected; too-long prompts are refused */
    int32_t longp[40] = {0};
    const int32_t *lp1[] = {longp};
    size_t ll = 38;
    o.max_new = 100;
    o.stop = -1;
    CHECK_OK(kd_generate(m, lp1, &ll, 1, &o, st, 0));
    CHECK(st[0].n == 3 && !st[0].finished); /* positions 38, 39 fed; the last prediction sees all 40 */
    kd_gen_seq_free(&st[0]);
    ll = 40;
    CHECK(kd_generate(m, lp1, &ll, 1, &o, st, 0) == -1 && strstr(rt_errmsg(), "context"));
    model_free(m);
    free(text);
}

/* ---------------------------------------------------------------- evaluation */

static void test_eval(void) {
    char *text = make_text(3000, 5);
    tokenizer *t1 = text_tok(text, 300), *t2 = text_tok(text, 300);
    model *s = tiny_model(t1, 16, 1, 32, 1), *t = tiny_model(t2, 32, 1, 32, 2);
    for (size_t i = 0; i < t->n_params; i++) t->params[i] *= 5.0f;
    int32_t *ids;
    size_t n;
    CHECK_OK(tokenizer_encode(s->tok, text, strlen(text), 0, &ids, &n));
    size_t T = 16, V = s->cfg.vocab_size, nw = 9;
    distill_eval_result r;
    CHECK_OK(distill_eval_text(s, t, ids, n, T, 4, nw, &r));
    /* naive: one window at a time, double loops */
    double ce = 0, kl = 0, ag = 0;
    size_t cnt = 0;
    float *sl = malloc(T * V * sizeof(float));
    for (size_t w = 0; w < nw; w++) {
        memcpy(sl, model_forward(s, ids + w * T, 1, T), T * V * sizeof(float));
        const float *tl = model_forward(t, ids + w * T, 1, T);
        for (size_t p = 0; p < T; p++) {
            const float *a = sl + p * V, *b = tl + p * V;
            double ma = -INFINITY, mb = -INFINITY, sa = 0, sb = 0;
            size_t ia = 0, ib = 0;
            for (size_t j = 0; j < V; j++) {
                ma = fmax(ma, a[j]);
                mb = fmax(mb, b[j]);
                if (a[j] > a[ia]) ia = j;
                if (b[j] > b[ib]) ib = j;
            }
            for (size_t j = 0; j < V; j++) {
                sa += exp(a[j] - ma);
                sb += exp(b[j] - mb);
            }
            ce += ma + log(sa) - a[ids[w * T + p + 1]];
            for (size_t j = 0; j < V; j++) {
                double lpb = b[j] - mb - log(sb), lpa = a[j] - ma - log(sa);
                kl += exp(lpb) * (lpb - lpa);
            }
            ag += ia == ib;
            cnt++;
        }
    }
    CHECK(r.n_tokens == cnt && r.has_teacher);
    CHECK_NEAR(r.loss, ce / (double)cnt, 1e-5, 1e-5);
    CHECK_NEAR(r.ppl, exp(ce / (double)cnt), 1e-4, 1e-5);
    CHECK_NEAR(r.kl, kl / (double)cnt, 1e-5, 1e-5);
    CHECK_NEAR(r.top1_agreement, ag / (double)cnt, 1e-12, 0);
    CHECK(r.kl > 0.01); /* the two models differ, so the comparison is not vacuous */
    /* a model against itself: KL 0, agreement 1 */
    CHECK_OK(distill_eval_text(t, t, ids, n, T, 4, 3, &r));
    CHECK_NEAR(r.kl, 0, 1e-6, 0);
    CHECK_NEAR(r.top1_agreement, 1, 0, 0);
    CHECK(distill_eval_text(s, t, ids, 10, T, 4, 0, &r) == -1 && strstr(rt_errmsg(), "window"));
    free(sl);
    free(ids);
    model_free(s);
    model_free(t);
    free(text);
}

/* ---------------------------------------------------------------- distillation runs */

typedef struct {
    char *text;
    dataset ds;
    model *teacher;
} kd_fixture;

static kd_fixture shared_fixture;
static int shared_ready;

static void fixture_init(kd_fixture *f) {
    f->text = make_text(12000, 6);
    tokenizer *tok = text_tok(f->text, 300);
    dataset_from_text(&f->ds, tok, f->text, strlen(f->text), 0.1, 4096);
    f->teacher = tiny_model(tok, 48, 2, 32, 21);
    /* a teacher that knows something: a short training run */
    train_options o;
    train_options_defaults(&o);
    o.batch = 8;
    o.seq_len = 32;
    o.steps = 80;
    o.lr = 3e-3f;
    o.warmup = 10;
    o.eval_every = 0;
    o.save_every = 0;
    o.quiet = 1;
    char out[512];
    tmp_path(out, sizeof out, "fixture_teacher.gguf");
    o.out_path = out;
    train_result r;
    CHECK_OK(train_run(f->teacher, &f->ds, &o, NULL, &r));
}

static void fixture_free(kd_fixture *f) {
    dataset_free(&f->ds);
    model_free(f->teacher);
    free(f->text);
}

/* one teacher for the distillation cases (training it is the slow part) */
static kd_fixture *fixture(void) {
    if (!shared_ready) {
        fixture_init(&shared_fixture);
        shared_ready = 1;
    }
    return &shared_fixture;
}

static model *student_for(const kd_fixture *f, uint64_t seed) {
    tokenizer *tok = text_tok(f->text, 300);
    return tiny_model(tok, 16, 1, 32, seed);
}

static void run_distill(const kd_fixture *f, model *s, const distill_opts *dop, size_t steps, size_t stop_after,
                        int resume, const char *out, train_result *res, distill_run *keep) {
    train_options o;
    train_options_defaults(&o);
    o.batch = 4;
    o.seq_len = 32;
    o.steps = steps;
    o.lr = 3e-3f;
    o.warmup = 5;
    o.eval_every = steps / 2;
    o.eval_batches = 2;
    o.save_every = 4;
    o.quiet = 1;
    o.out_path = out;
    o.stop_after = stop_after;
    o.resume = resume;
    distill_run r;
    CHECK_OK(distill_run_init(&r, dop, s, f->teacher, NULL, &f->ds, 4, 32, 2));
    train_task task;
    distill_run_task(&r, &task);
    CHECK_OK(train_run(s, &f->ds, &o, &task, res));
    if (keep) *keep = r;
    else distill_run_free(&r);
}

static void test_distill_learns(void) {
    kd_fixture *fp = fixture(), f = *fp;
    distill_eval_result before, after;
    model *s = student_for(&f, 3);
    CHECK_OK(distill_eval_text(s, f.teacher, f.ds.val, f.ds.n_val, 32, 4, 8, &before));
    distill_opts dop;
    distill_opts_defaults(&dop);
    dop.loss.kind = KD_FKL;
    char out[512];
    tmp_path(out, sizeof out, "kd.gguf");
    train_result res;
    run_distill(&f, s, &dop, 50, 0, 0, out, &res, NULL);
    CHECK_OK(distill_eval_text(s, f.teacher, f.ds.val, f.ds.n_val, 32, 4, 8, &after));
    fprintf(stderr, "  KL to teacher: %.3f before, %.3f after 50 steps of forward KL\n", before.kl, after.kl);
    CHECK_MSG(after.kl < 0.5 * before.kl, "distillation did not bring the student closer: KL %.3f -> %.3f", before.kl,
              after.kl);
    /* the model file records the recipe */
    gguf_ctx *g;
    CHECK_OK(gguf_open(&g, out));
    const char *ls;
    size_t ll;
    CHECK(gguf_get_str(g, "retort.distill.loss", &ls, &ll) == 0 && ll == 3 && !memcmp(ls, "fkl", 3));
    gguf_close(g);
    /* reverse KL, JSD and top-k also train (finite, decreasing KL) */
    const kd_kind kinds[] = {KD_RKL, KD_JSD};
    for (int i = 0; i < 2; i++) {
        model *s3 = student_for(&f, 3);
        dop.loss.kind = kinds[i];
        dop.top_k = i == 1 ? 8 : 0;
        dop.loss.temperature = i == 1 ? 2.0f : 1.0f;
        tmp_path(out, sizeof out, "k.gguf");
        run_distill(&f, s3, &dop, 30, 0, 0, out, &res, NULL);
        distill_eval_result e;
        CHECK_OK(distill_eval_text(s3, f.teacher, f.ds.val, f.ds.n_val, 32, 4, 8, &e));
        CHECK_MSG(e.kl < before.kl, "%s: KL %.3f not below the start %.3f", kd_kind_name(kinds[i]), e.kl, before.kl);
        model_free(s3);
    }
    /* refusals */
    distill_run r;
    dop.on_policy = 0.5f;
    dop.loss.kind = KD_CE;
    CHECK(distill_run_init(&r, &dop, s, f.teacher, NULL, &f.ds, 4, 32, 2) == -1 && strstr(rt_errmsg(), "--on-policy"));
    distill_run_free(&r);
    dop.loss.kind = KD_FKL;
    CHECK(distill_run_init(&r, &dop, s, f.teacher, NULL, &f.ds, 4, 64, 2) == -1 && strstr(rt_errmsg(), "context"));
    distill_run_free(&r);
    model_free(s);
}

static void test_distill_resume(void) {
    kd_fixture *fp = fixture(), f = *fp;
    distill_opts dop;
    distill_opts_defaults(&dop);
    dop.loss.kind = KD_JSD;
    dop.loss.beta = 0.25f;
    dop.top_k = 16;
    dop.on_policy = 0.5f;
    char a[512], b[512];
    tmp_path(a, sizeof a, "straight.gguf");
    tmp_path(b, sizeof b, "resumed.gguf");
    train_result res;
    distill_run keep;
    model *s = student_for(&f, 4);
    run_distill(&f, s, &dop, 14, 0, 0, a, &res, &keep);
    CHECK(keep.n_on_policy > 0 && keep.n_on_policy < 14); /* both kinds of batches happened */
    distill_run_free(&keep);
    model_free(s);
    s = student_for(&f, 4);
    run_distill(&f, s, &dop, 14, 10, 0, b, &res, NULL); /* killed after step 10 (checkpoint at 8) */
    CHECK(res.steps_done == 10 && !rt_file_exists(b));
    model_free(s);
    s = student_for(&f, 777); /* resume must not depend on the fresh init */
    run_distill(&f, s, &dop, 14, 0, 1, b, &res, NULL);
    model_free(s);
    char *da, *db;
    size_t la, lb;
    CHECK_OK(rt_read_file(a, &da, &la));
    CHECK_OK(rt_read_file(b, &db, &lb));
    CHECK_MSG(la == lb && !memcmp(da, db, la), "a resumed on-policy distillation differs from the uninterrupted one");
    free(da);
    free(db);
    fixture_free(fp);
    shared_ready = 0;
}

/* ---------------------------------------------------------------- SVG */

static void test_svg(void) {
    char p[512];
    tmp_path(p, sizeof p, "bars.svg");
    const char *runs[] = {"scratch", "kd <fkl>"};
    const char *metrics[] = {"loss", "kl"};
    double v[] = {4.5, 4.1, 0.9, NAN};
    rt_buf svg = {0};
    CHECK_OK(plot_bar_panels(&svg, "a & b", 2, runs, 2, metrics, v));
    CHECK_OK(plot_write(p, &svg));
    rt_buf_free(&svg);
    char *d;
    size_t n;
    CHECK_OK(rt_read_file(p, &d, &n));
    CHECK(!strncmp(d, "<svg", 4) && strstr(d, "kd &lt;fkl&gt;") && strstr(d, "a &amp; b") && strstr(d, "</svg>"));
    size_t rects = 0;
    for (char *q = d; (q = strstr(q, "<rect x=")); q++) rects++;
    CHECK(rects == 3); /* NAN draws no bar */
    free(d);
    double x0[] = {1, 2, 3}, y0[] = {5, 4, 3.5}, x1[] = {1, 3}, y1[] = {6, 3};
    plot_series s[2] = {{.name = runs[0], .x = x0, .y = y0, .n = 3, .mark_x = NAN},
                        {.name = runs[1], .x = x1, .y = y1, .n = 2, .mark_x = NAN}};
    plot_chart c = plot_chart_defaults();
    c.title = "curves", c.xlabel = "step", c.ylabel = "val_loss";
    CHECK_OK(plot_lines(&svg, &c, s, 2));
    size_t lines = 0;
    for (char *q = svg.data; (q = strstr(q, "<polyline")); q++) lines++;
    CHECK(lines == 2 && strstr(svg.data, "val_loss"));
    rt_buf_free(&svg);
    /* axis labels are readable numbers */
    char num[32];
    plot_number(num, sizeof num, 22490);
    CHECK(!strcmp(num, "22.5k"));
    plot_number(num, sizeof num, 1.5e6);
    CHECK(!strcmp(num, "1.5M"));
    plot_number(num, sizeof num, 0.25);
    CHECK(!strcmp(num, "0.25"));
    plot_number(num, sizeof num, 1234);
    CHECK(!strcmp(num, "1234"));
    double big[] = {0, 45000}, bx[] = {0, 1};
    plot_series sb = {.name = "tokens", .x = bx, .y = big, .n = 2, .mark_x = NAN};
    CHECK_OK(plot_lines(&svg, &c, &sb, 1));
    CHECK(!strstr(svg.data, "e+0") && strstr(svg.data, "40k"));
    rt_buf_free(&svg);
}

TEST_MAIN("distill", TEST_CASE(test_cache), TEST_CASE(test_vocab_mismatch), TEST_CASE(test_sft_loader),
          TEST_CASE(test_sft_packing), TEST_CASE(test_arith), TEST_CASE(test_generate), TEST_CASE(test_eval),
          TEST_CASE(test_distill_learns), TEST_CASE(test_distill_resume), TEST_CASE(test_svg))
