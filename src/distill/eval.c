/*
 * eval.c — how much of the teacher the student kept: held-out loss (mean nats/token) and
 * perplexity; with a teacher, mean KL(teacher‖student) at τ = 1 over the full vocabulary and
 * top-1 agreement (argmax equal, ties to the lower id); with a task, exact-match accuracy
 * of the final answer from greedy generations.
 *
 * Text is scored in non-overlapping windows of T+1 tokens (each window's first token is
 * context only, as in training); prompt/completion examples one per row, on their
 * completion tokens. Sums are accumulated in double in a fixed order (deterministic).
 *
 * What this is not: the training-time evaluation hook (recipe.c calls kd_compare_rows from
 * here) or the JSON/SVG output (src/cli/cmd_eval.c, svg.c).
 */
#include "distill.h"

#include "../train/dist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t argmax_f(const float *x, size_t V) {
    size_t b = 0;
    for (size_t j = 1; j < V; j++)
        if (x[j] > x[b]) b = j;
    return b;
}

int kd_compare_rows(kd_workspace *ws, const float *s_logits, const float *t_logits, const int32_t *targets,
                    size_t N, size_t V, kd_compare *acc) {
    if (V != ws->V) return RT_FAIL("kd_compare_rows: vocabulary %zu differs from the workspace's %zu", V, ws->V);
    if (N > ws->cap_rows) {
        double *a = rt_realloc(ws->row_loss, N * sizeof(double), "eval rows");
        if (!a) return -1;
        ws->row_loss = a;
        a = rt_realloc(ws->row_kd, N * sizeof(double), "eval rows");
        if (!a) return -1;
        ws->row_kd = a;
        a = rt_realloc(ws->row_ce, N * sizeof(double), "eval rows");
        if (!a) return -1;
        ws->row_ce = a;
        ws->cap_rows = N;
    }
    long long NN = (long long)N;
RT_OMP(parallel for schedule(static))
    for (long long ii = 0; ii < NN; ii++) {
        size_t i = (size_t)ii;
        int th = 0;
        th = rt_omp_thread();
        ws->row_loss[i] = ws->row_kd[i] = ws->row_ce[i] = 0;
        int32_t tg = targets[i];
        if (tg < 0 || (size_t)tg >= V) continue;
        const float *z = s_logits + i * V;
        kd_scratch *sc = &ws->s[th];
        kd_log_softmax_row(z, V, 1.0f, sc->ls, sc->q);
        ws->row_ce[i] = -(double)sc->ls[tg];
        if (!t_logits) continue;
        const float *t = t_logits + i * V;
        kd_log_softmax_row(t, V, 1.0f, sc->lt, sc->p);
        double kl = 0;
        for (size_t j = 0; j < V; j++)
            if (sc->p[j] > 0) kl += (double)(sc->p[j] * (sc->lt[j] - sc->ls[j]));
        ws->row_kd[i] = kl;
        ws->row_loss[i] = argmax_f(z, V) == argmax_f(t, V) ? 1.0 : 0.0;
    }
    for (size_t i = 0; i < N; i++) {
        if (targets[i] < 0 || (size_t)targets[i] >= V) continue;
        acc->n++;
        acc->ce_sum += ws->row_ce[i];
        if (t_logits) {
            acc->kl_sum += ws->row_kd[i];
            acc->agree += ws->row_loss[i];
        }
    }
    return 0;
}

static void finish_result(const kd_compare *a, int has_teacher, distill_eval_result *r) {
    r->n_tokens = a->n;
    r->loss = a->n ? a->ce_sum / (double)a->n : NAN;
    r->ppl = exp(r->loss);
    r->has_teacher = has_teacher;
    r->kl = has_teacher && a->n ? a->kl_sum / (double)a->n : NAN;
    r->top1_agreement = has_teacher && a->n ? a->agree / (double)a->n : NAN;
}

/* Under mpirun (src/train/dist.h) each rank scores a contiguous share of the windows or
 * examples; the sums are added over the ranks (in double: equal to one process's up to the
 * order of the additions). */
int kd_compare_reduce(kd_compare *acc) {
    double v[4] = {(double)acc->n, acc->ce_sum, acc->kl_sum, acc->agree};
    if (dist_allreduce_f64(v, 4)) return -1;
    acc->n = (size_t)v[0];
    acc->ce_sum = v[1];
    acc->kl_sum = v[2];
    acc->agree = v[3];
    return 0;
}

static int check_pair(const model *s, const model *t, size_t T) {
    if (T > s->cfg.ctx_len) return RT_FAIL("window length %zu exceeds the model's context %zu", T, s->cfg.ctx_len);
    if (t && T > t->cfg.ctx_len)
        return RT_FAIL("window length %zu exceeds the teacher's context %zu", T, t->cfg.ctx_len);
    if (t && t->cfg.vocab_size != s->cfg.vocab_size)
        return RT_FAIL("the teacher's vocabulary (%zu tokens) differs from the model's (%zu)", t->cfg.vocab_size,
                       s->cfg.vocab_size);
    return 0;
}

/* The scoring loop both evaluations share: items [0, n_items) split over the MPI ranks, B rows of
 * T at a time, row(ud, item, T, in, tg) filling one item's inputs and targets (-1: not scored);
 * the student's and (when t) the teacher's logits compared row by row and reduced over ranks. */
typedef void (*eval_row_fn)(const void *ud, size_t item, size_t T, int32_t *in, int32_t *tg);

static int eval_rows(model *s, model *t, size_t T, size_t B, size_t n_items, eval_row_fn row, const void *ud,
                     distill_eval_result *r) {
    size_t V = s->cfg.vocab_size;
    int32_t *in = rt_malloc_array(B * T, sizeof(int32_t), "eval batch");
    int32_t *tg = rt_malloc_array(B * T, sizeof(int32_t), "eval batch");
    kd_workspace ws;
    memset(&ws, 0, sizeof ws);
    kd_compare acc = {0};
    int rc = -1;
    size_t lo, hi;
    dist_split(n_items, dist_size(), dist_rank(), &lo, &hi);
    if (!in || !tg || kd_workspace_init(&ws, V, 1)) goto done;
    for (size_t i0 = lo; i0 < hi; i0 += B) {
        size_t nb = RT_MIN(B, hi - i0);
        for (size_t b = 0; b < nb; b++) row(ud, i0 + b, T, in + b * T, tg + b * T);
        const float *tl = NULL;
        if (t && !(tl = model_forward(t, in, nb, T))) goto done;
        const float *sl = model_forward(s, in, nb, T);
        if (!sl) goto done;
        if (kd_compare_rows(&ws, sl, tl, tg, nb * T, V, &acc)) goto done;
    }
    if (kd_compare_reduce(&acc)) goto done;
    finish_result(&acc, t != NULL, r);
    rc = 0;
done:
    free(in);
    free(tg);
    kd_workspace_free(&ws);
    return rc;
}

/* window w of the text: T tokens and the T that follow each */
static void window_row(const void *ud, size_t w, size_t T, int32_t *in, int32_t *tg) {
    const int32_t *tokens = ud;
    for (size_t i = 0; i < T; i++) {
        in[i] = tokens[w * T + i];
        tg[i] = tokens[w * T + i + 1];
    }
}

int distill_eval_text(model *s, model *t, const int32_t *tokens, size_t n, size_t T, size_t B,
                      size_t max_windows, distill_eval_result *r) {
    memset(r, 0, sizeof *r);
    if (check_pair(s, t, T)) return -1;
    if (n == 0)
        return RT_FAIL("there is no held-out text to score (the file is too small for --val-fraction to hold "
                       "any out: raise --val-fraction, or use --split all)");
    if (n < T + 1)
        return RT_FAIL("the held-out text has %zu tokens; one window needs %zu (lower --seq-len)", n, T + 1);
    size_t nw = (n - 1) / T;
    if (max_windows && nw > max_windows) nw = max_windows;
    return eval_rows(s, t, T, B, nw, window_row, tokens, r);
}

void sft_example_row(const sft_set *set, size_t e, size_t T, int32_t *in, int32_t *tg) {
    const int32_t *tok = set->tokens + set->off[e];
    size_t len = set->off[e + 1] - set->off[e], np = set->n_prompt[e];
    int32_t pad = tok[len - 1];
    for (size_t i = 0; i < T; i++) {
        in[i] = i < len ? tok[i] : pad;
        tg[i] = (i + 1 < len && i + 1 >= np) ? tok[i + 1] : -1;
    }
}

static void example_row(const void *ud, size_t e, size_t T, int32_t *in, int32_t *tg) {
    sft_example_row(ud, e, T, in, tg);
}

int distill_eval_examples(model *s, model *t, const sft_set *set, size_t max_examples, size_t B,
                          distill_eval_result *r) {
    memset(r, 0, sizeof *r);
    size_t n = set->n_ex;
    if (max_examples && n > max_examples) n = max_examples;
    size_t T = 1;
    for (size_t e = 0; e < n; e++) T = RT_MAX(T, set->off[e + 1] - set->off[e] - 1);
    size_t ctx = s->cfg.ctx_len;
    if (t) ctx = RT_MIN(ctx, t->cfg.ctx_len);
    T = RT_MIN(T, ctx);
    if (check_pair(s, t, T)) return -1;
    return eval_rows(s, t, T, B, n, example_row, set, r);
}

int distill_eval_arith(model *s, const sft_set *set, size_t max_examples, size_t batch, size_t max_new,
                       FILE *samples, distill_eval_result *r) {
    size_t n = set->n_ex;
    if (max_examples && n > max_examples) n = max_examples;
    if (n == 0) return RT_FAIL("no examples to score");
    if (!s->tok) return RT_FAIL("the model has no tokenizer to read its answers with");
    /* expected answers: the "answer" field, else the reference completion's */
    char (*want)[32] = rt_calloc(n, sizeof *want, "expected answers");
    const int32_t **prompts = rt_calloc(n, sizeof *prompts, "prompts");
    size_t *lens = rt_calloc(n, sizeof(size_t), "prompts");
    kd_gen_seq *out = rt_calloc(n, sizeof *out, "generations");
    FILE *mem = NULL; /* this rank's sample lines under mpirun */
    char *mem_buf = NULL;
    size_t mem_len = 0;
    int rc = -1;
    if (!want || !prompts || !lens || !out) goto done;
    for (size_t e = 0; e < n; e++) {
        if (set->answers && set->answers[e]) {
            char tmp[64];
            snprintf(tmp, sizeof tmp, "answer %s", set->answers[e]);
            if (arith_extract_answer(tmp, strlen(tmp), want[e], sizeof want[e])) {
                RT_FAIL("line %u: \"answer\" %s is not a number", set->line[e], set->answers[e]);
                goto done;
            }
        } else {
            const int32_t *tok = set->tokens + set->off[e] + set->n_prompt[e];
            size_t len = set->off[e + 1] - set->off[e] - set->n_prompt[e];
            char *txt;
            size_t tl;
            if (tokenizer_decode(s->tok, tok, len, &txt, &tl)) goto done;
            int bad = arith_extract_answer(txt, tl, want[e], sizeof want[e]);
            free(txt);
            if (bad) {
                RT_FAIL("line %u: no answer to score against (need an \"answer\" field or a completion "
                        "ending in \"answer N\")",
                        set->line[e]);
                goto done;
            }
        }
        prompts[e] = set->tokens + set->off[e];
        lens[e] = set->n_prompt[e];
    }
    kd_gen_opts go;
    kd_gen_defaults(&go);
    go.temperature = 0;
    go.max_new = max_new;
    go.stop = tokenizer_eos(s->tok);
    int32_t end_id = tokenizer_special_id(s->tok, "<|end|>");
    go.batch = batch;
    /* under mpirun each rank generates a contiguous share; its sample lines are gathered on
     * rank 0 in example order (a rank > 0 writes them to memory first) */
    size_t lo, hi;
    dist_split(n, dist_size(), dist_rank(), &lo, &hi);
    int want_samples = samples != NULL;
    if (dist_bcast(&want_samples, sizeof want_samples, 0)) goto done;
    if (want_samples && dist_size() > 1 && !(mem = open_memstream(&mem_buf, &mem_len))) {
        RT_FAIL("cannot buffer the sample lines: out of memory");
        goto done;
    }
    FILE *sf = mem ? mem : samples;
    if (hi > lo && kd_generate(s, prompts + lo, lens + lo, hi - lo, &go, out + lo, 0)) goto done;
    double correct = 0;
    for (size_t e = lo; e < hi; e++) {
        /* a chat-format model ends with <|end|>: cut there */
        size_t len = out[e].n;
        for (size_t i = 0; i < len; i++)
            if (out[e].tokens[i] == end_id) len = i;
        char *txt;
        size_t tl;
        if (tokenizer_decode(s->tok, out[e].tokens, len, &txt, &tl)) goto done;
        char got[32] = "";
        int ok = arith_extract_answer(txt, tl, got, sizeof got) == 0 && !strcmp(got, want[e]);
        correct += ok;
        if (sf) {
            char *ptxt;
            size_t pl;
            if (tokenizer_decode(s->tok, prompts[e], lens[e], &ptxt, &pl)) {
                free(txt);
                goto done;
            }
            fprintf(sf, "%s %s%s  [want %s]\n", ok ? "OK  " : "MISS", ptxt, txt, want[e]);
            free(ptxt);
        }
        free(txt);
    }
    if (dist_allreduce_f64(&correct, 1)) goto done;
    if (mem) {
        rt_buf all = {0};
        int g = fflush(mem) != 0 || dist_gather_bytes(mem_buf, mem_len, &all, 0);
        if (!g && dist_rank() == 0 && all.len && fwrite(all.data, 1, all.len, samples) != all.len)
            g = RT_FAIL("writing the sample lines failed");
        rt_buf_free(&all);
        if (g) goto done;
    }
    r->has_task = 1;
    r->n_examples = n;
    r->n_correct = (size_t)correct;
    r->accuracy = correct / (double)n;
    rc = 0;
done:
    if (mem) fclose(mem);
    free(mem_buf);
    if (out)
        for (size_t e = 0; e < n; e++) kd_gen_seq_free(&out[e]);
    free(out);
    free(want);
    free(prompts);
    free(lens);
    return rc;
}
