/*
 * teacher_data.c — a model's continuations as harvest records (src/record): what `retort
 * data generate` writes, so teacher data and API harvests are one format for `sft`.
 * Not the generation (gen.c) and not the reader (sft_data.c).
 */
#include "distill.h"

#include <stdlib.h>
#include <string.h>

#include "../record/record.h"

/* The generated tokens with their log-probs as record positions (chosen token + top-k). */
static record_pos *teacher_positions(const tokenizer *tok, const kd_gen_seq *g, size_t stride, size_t k) {
    record_pos *pos = rt_calloc(g->n ? g->n : 1, sizeof *pos, "log-prob records");
    if (!pos) return NULL;
    for (size_t t = 0; t < g->n; t++) {
        record_pos *p = &pos[t];
        p->has_token = p->has_logprob = 1;
        p->n_top = k;
        p->top = rt_calloc(k, sizeof *p->top, "log-prob records");
        if (!p->top) {
            for (size_t u = 0; u <= t; u++) free(pos[u].top);
            free(pos);
            return NULL;
        }
        for (size_t a = 0; a <= k; a++) {
            record_token *rt = a < k ? &p->top[a] : &p->token;
            int32_t id = a < k ? g->top_ids[t * stride + a] : g->tokens[t];
            size_t len;
            const char *b = tokenizer_token_bytes(tok, id, &len);
            rt->len = RT_MIN(len, (size_t)RECORD_TOKEN_MAX);
            memcpy(rt->bytes, b, rt->len);
            rt->logprob = a < k ? g->top_lps[t * stride + a] : g->chosen_lp[t];
        }
    }
    return pos;
}

int kd_write_generations(const char *path, const tokenizer *tok, const int32_t *const *prompts, const size_t *lens,
                         const kd_gen_seq *gen, size_t n, size_t n_logprobs, char *const *answers, size_t *total) {
    rt_atomic_file af;
    if (rt_atomic_open(&af, path)) return -1;
    size_t k = RT_MIN(n_logprobs, tokenizer_vocab_size(tok)), sum = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        char *ptxt = NULL, *ctxt = NULL;
        size_t pl = 0, cl = 0;
        record_pos *pos = NULL;
        json_t *o = NULL;
        rt_buf line = {0};
        rc = tokenizer_decode(tok, prompts[i], lens[i], &ptxt, &pl) || tokenizer_decode(tok, gen[i].tokens, gen[i].n, &ctxt, &cl);
        if (!rc && n_logprobs && !(pos = teacher_positions(tok, &gen[i], n_logprobs, k))) rc = -1;
        if (!rc) {
            record rec = {.prompt = ptxt,
                          .prompt_len = pl,
                          .completion = ctxt,
                          .completion_len = cl,
                          .finish_reason = gen[i].finished ? "stop" : "length",
                          .answer = answers ? answers[i] : NULL,
                          .pos = pos,
                          .n_pos = pos ? gen[i].n : 0};
            rc = !(o = record_to_json(&rec)) || record_append_line(&line, o) ||
                 rt_fwrite(line.data, 1, line.len, af.f, path);
        }
        sum += gen[i].n;
        if (pos)
            for (size_t t = 0; t < gen[i].n; t++) free(pos[t].top);
        free(pos);
        free(ptxt);
        free(ctxt);
        json_decref(o);
        rt_buf_free(&line);
    }
    if (rc) {
        rt_atomic_abort(&af);
        return -1;
    }
    if (total) *total = sum;
    return rt_atomic_commit(&af);
}
