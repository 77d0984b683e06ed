/*
 * mark_files.c — the watermark experiments on record files (contract in mark.h, "experiments
 * on text records"): detect over records, generate records, the model's perplexity of
 * completions, and random token edits. Each takes loaded records (mark_io.c) and gives results
 * or JSONL bytes; the command line (cmd_watermark.c) parses flags, reads and writes the files
 * and prints. Not the scoring or the sampler (mark_score.c, mark_gen.c).
 */
#include <stdlib.h>
#include <string.h>

#include "mark.h"

int mark_encode_pc(const tokenizer *tok, const char *prompt, size_t plen, const char *completion, size_t clen,
                   int32_t **out, size_t *n, size_t *from) {
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    *out = NULL;
    if (prompt && tokenizer_encode(tok, prompt, plen, 0, &a, &na)) return -1;
    if (completion && tokenizer_encode(tok, completion, clen, 0, &b, &nb)) {
        free(a);
        return -1;
    }
    int32_t *all = rt_malloc_array(na + nb + 1, sizeof(int32_t), "tokens");
    if (all) {
        if (na) memcpy(all, a, na * sizeof(int32_t));
        if (nb) memcpy(all + na, b, nb * sizeof(int32_t));
    }
    free(a);
    free(b);
    if (!all) return -1;
    *out = all;
    *n = na + nb;
    *from = na;
    return 0;
}

int mark_detect_records(const mark_ctx *c, const tokenizer *tok, const mark_record *recs, size_t n,
                        const char *what, size_t max_tokens, int per_record, mark_result *res) {
    mark_scorer sc = {0};
    if (mark_scorer_init(&sc, c)) return -1;
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        int32_t *toks = NULL;
        size_t len = 0, from = 0;
        if (mark_encode_pc(tok, recs[i].prompt, recs[i].prompt_len, recs[i].completion, recs[i].completion_len,
                           &toks, &len, &from)) {
            RT_FAIL("%s: record %zu: %s", what, i + 1, rt_errmsg());
            goto out;
        }
        if (max_tokens && len - from > max_tokens) len = from + max_tokens;
        int arc = mark_scorer_add(&sc, toks, len, from);
        free(toks);
        if (arc) goto out;
        if (per_record) {
            mark_scorer_result(&sc, &res[i]);
            mark_scorer_reset(&sc);
        }
    }
    if (!per_record) mark_scorer_result(&sc, &res[0]);
    rc = 0;
out:
    mark_scorer_free(&sc);
    return rc;
}

int mark_generate_records(const model *m, const mark_record *recs, size_t n, const char *what, size_t max_tokens,
                          const sampler_params *sp, const mark_ctx *mark, size_t batch, int show_progress,
                          rt_buf *jsonl, size_t *total_tokens) {
    if (!m->tok) return RT_FAIL("the model has no tokenizer");
    int32_t **ptok = rt_calloc(n, sizeof *ptok, "prompts"), **gen = rt_calloc(n, sizeof *gen, "completions");
    size_t *plen = rt_calloc(n, sizeof *plen, "prompts"), *glen = rt_calloc(n, sizeof *glen, "completions");
    int rc = -1;
    if (!ptok || !gen || !plen || !glen) goto out;
    for (size_t i = 0; i < n; i++) {
        if (!recs[i].prompt) {
            RT_FAIL("%s: record %zu has no \"prompt\"", what, i + 1);
            goto out;
        }
        if (tokenizer_encode(m->tok, recs[i].prompt, recs[i].prompt_len, 0, &ptok[i], &plen[i])) goto out;
    }
    if (mark_generate(m, (const int32_t *const *)ptok, plen, n, max_tokens, sp, mark, batch, gen, glen,
                      show_progress))
        goto out;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        char *text = NULL;
        size_t tl = 0;
        if (tokenizer_decode(m->tok, gen[i], glen[i], &text, &tl)) goto out;
        int jrc = mark_record_jsonl(jsonl, recs[i].prompt, recs[i].prompt_len, text, tl);
        free(text);
        if (jrc) goto out;
        total += glen[i];
    }
    *total_tokens = total;
    rc = 0;
out:
    for (size_t i = 0; ptok && i < n; i++) free(ptok[i]);
    for (size_t i = 0; gen && i < n; i++) free(gen[i]);
    free(ptok);
    free(gen);
    free(plen);
    free(glen);
    return rc;
}

int mark_records_nll(const model *m, const mark_record *recs, size_t n, double *nll, size_t *count) {
    if (!m->tok) return RT_FAIL("the model has no tokenizer");
    *nll = 0;
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t *toks = NULL, *pred = NULL;
        float *nl = NULL;
        size_t len = 0, from = 0;
        if (mark_encode_pc(m->tok, recs[i].prompt, recs[i].prompt_len, recs[i].completion, recs[i].completion_len,
                           &toks, &len, &from))
            return -1;
        pred = rt_malloc_array(len + 1, sizeof(int32_t), "predictions");
        nl = rt_malloc_array(len + 1, sizeof(float), "nll");
        int rc = !pred || !nl || mark_predict(m, toks, len, pred, nl);
        if (!rc) /* nl[j] scores toks[j+1]: completion tokens are j+1 >= max(from, 1) */
            for (size_t j = from ? from - 1 : 0; j + 1 < len; j++) {
                *nll += nl[j];
                (*count)++;
            }
        free(toks);
        free(pred);
        free(nl);
        if (rc) return -1;
    }
    return 0;
}

int mark_attack_records(const tokenizer *tok, const mark_record *recs, size_t n, double sub, double del,
                        uint64_t seed, rt_buf *jsonl) {
    if (!(sub >= 0 && sub <= 1 && del >= 0 && del <= 1))
        return RT_FAIL("the substitution and deletion shares must be in [0, 1]");
    rt_rng rng;
    rt_rng_seed(&rng, seed);
    size_t V = tokenizer_vocab_size(tok);
    for (size_t i = 0; i < n; i++) {
        int32_t *t = NULL;
        size_t nt = 0, k = 0;
        if (recs[i].completion && tokenizer_encode(tok, recs[i].completion, recs[i].completion_len, 0, &t, &nt))
            return -1;
        for (size_t j = 0; j < nt; j++) {
            if (rt_rng_double(&rng) < del) continue;
            int32_t x = t[j];
            if (rt_rng_double(&rng) < sub) {
                do x = (int32_t)rt_rng_below(&rng, V);
                while (tokenizer_is_special(tok, x));
            }
            t[k++] = x;
        }
        char *text = NULL;
        size_t tl = 0;
        int rc = tokenizer_decode(tok, t, k, &text, &tl);
        free(t);
        if (!rc) rc = mark_record_jsonl(jsonl, recs[i].prompt, recs[i].prompt_len, text, tl);
        free(text);
        if (rc) return -1;
    }
    return 0;
}
