/*
 * mark_radio.c — the radioactivity test (contract in mark.h: mark_radioactivity): turn a
 * suspect model's behaviour into scored evidence (closed mode: its completions of the
 * prompts; open mode: its top-1 predictions while reading watermarked text), score it with
 * the key, repeat under control keys, and report one JSON object (jansson).
 * Not the command line (cmd_radioactivity.c parses flags and loads files).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mark.h"

static int same_vocab(const tokenizer *a, const tokenizer *b) {
    size_t V = tokenizer_vocab_size(a);
    if (V != tokenizer_vocab_size(b)) return 0;
    for (size_t i = 0; i < V; i++) {
        size_t la, lb;
        const char *pa = tokenizer_token_bytes(a, (int32_t)i, &la), *pb = tokenizer_token_bytes(b, (int32_t)i, &lb);
        if (!pa || !pb || la != lb || memcmp(pa, pb, la)) return 0;
    }
    return 1;
}

/* The evidence: n sequences (watermark tokens), what is scored from where, the references
 * to exclude; all owned. */
typedef struct {
    size_t n, n_ref, tokens;
    int32_t **seq, **pred, **ref;
    size_t *len, *from, *ref_len;
} evidence;

static void evidence_free(evidence *e) {
    for (size_t j = 0; j < e->n; j++) {
        if (e->seq) free(e->seq[j]);
        if (e->pred) free(e->pred[j]);
    }
    free(e->seq);
    free(e->pred);
    free(e->ref);
    free(e->len);
    free(e->from);
    free(e->ref_len);
}

static int evidence_alloc(evidence *e, size_t n, size_t n_ref) {
    e->n = n;
    e->n_ref = n_ref;
    e->seq = rt_calloc(n, sizeof *e->seq, "sequences");
    e->pred = rt_calloc(n, sizeof *e->pred, "predictions");
    e->len = rt_calloc(n, sizeof *e->len, "sequences");
    e->from = rt_calloc(n, sizeof *e->from, "sequences");
    e->ref = rt_calloc(n_ref, sizeof *e->ref, "references");
    e->ref_len = rt_calloc(n_ref, sizeof *e->ref_len, "references");
    return e->seq && e->pred && e->len && e->from && e->ref && e->ref_len ? 0 : -1;
}

/* Closed mode: the suspect continues every prompt `samples` times. */
static int closed_evidence(const mark_radio_opts *o, evidence *e) {
    size_t n = o->n_recs * o->samples;
    int32_t **stok = rt_calloc(n, sizeof *stok, "prompts"), **gen = rt_calloc(n, sizeof *gen, "generations");
    size_t *slen = rt_calloc(n, sizeof *slen, "prompts"), *glen = rt_calloc(n, sizeof *glen, "generations");
    int rc = -1;
    if (!stok || !gen || !slen || !glen || evidence_alloc(e, n, o->n_recs)) goto done;
    const tokenizer *stk = o->suspect->tok;
    for (size_t i = 0; i < o->n_recs; i++) {
        if (!o->recs[i].prompt) {
            RT_FAIL("%s: record %zu has no \"prompt\"", o->recs_name, i + 1);
            goto done;
        }
        for (size_t s = 0; s < o->samples; s++)
            if (tokenizer_encode(stk, o->recs[i].prompt, o->recs[i].prompt_len, 0, &stok[i * o->samples + s],
                                 &slen[i * o->samples + s]))
                goto done;
    }
    if (mark_generate(o->suspect, (const int32_t *const *)stok, slen, n, o->max_tokens, &o->sp, NULL, o->batch, gen,
                      glen, !o->quiet))
        goto done;
    for (size_t j = 0; j < n; j++) {
        const mark_record *r = &o->recs[j / o->samples];
        char *text = NULL;
        size_t tl = 0;
        if (tokenizer_decode(stk, gen[j], glen[j], &text, &tl)) goto done;
        int bad = mark_encode_pc(o->wtok, r->prompt, r->prompt_len, text, tl, &e->seq[j], &e->len[j], &e->from[j]);
        if (!bad && o->save) bad = mark_record_jsonl(o->save, r->prompt, r->prompt_len, text, tl);
        free(text);
        if (bad) goto done;
        e->tokens += e->len[j] - e->from[j];
    }
    for (size_t i = 0; i < o->n_recs; i++) {
        e->ref[i] = e->seq[i * o->samples]; /* the prompt part of the first sample */
        e->ref_len[i] = e->from[i * o->samples];
    }
    free(e->pred); /* scored as text, not as predictions */
    e->pred = NULL;
    rc = 0;
done:
    for (size_t j = 0; j < n; j++) {
        if (stok) free(stok[j]);
        if (gen) free(gen[j]);
    }
    free(stok);
    free(gen);
    free(slen);
    free(glen);
    return rc;
}

/* Open mode: the suspect reads every text; pred[i][j] is its guess for position j. */
static int open_evidence(const mark_radio_opts *o, evidence *e) {
    if (!same_vocab(o->wtok, o->suspect->tok))
        return RT_FAIL("open mode reads the text through the suspect token by token, so it needs the suspect to "
                       "share the watermark's tokenizer; %s does not (use --mode closed)",
                       o->suspect_name);
    if (evidence_alloc(e, o->n_recs, o->n_recs)) return -1;
    rt_progress prog;
    if (!o->quiet) rt_progress_init(&prog, "read", o->n_recs);
    for (size_t i = 0; i < o->n_recs; i++) {
        const mark_record *r = &o->recs[i];
        if (mark_encode_pc(o->wtok, r->prompt, r->prompt_len, r->completion, r->completion_len, &e->seq[i], &e->len[i],
                      &e->from[i]))
            return -1;
        int32_t *p = rt_malloc_array(e->len[i] + 1, sizeof(int32_t), "predictions");
        e->pred[i] = rt_malloc_array(e->len[i] + 1, sizeof(int32_t), "predictions");
        if (!p || !e->pred[i] || mark_predict(o->suspect, e->seq[i], e->len[i], p, NULL)) {
            free(p);
            return -1;
        }
        e->pred[i][0] = MARK_PAD;
        for (size_t j = 1; j < e->len[i]; j++) e->pred[i][j] = p[j - 1];
        free(p);
        if (e->from[i] == 0) e->from[i] = 1;
        if (e->from[i] > e->len[i]) e->from[i] = e->len[i];
        e->tokens += e->len[i] - e->from[i];
        e->ref[i] = e->seq[i]; /* the whole text: its own tuples are what it reveals */
        e->ref_len[i] = e->len[i];
        if (!o->quiet) rt_progress_update(&prog, i + 1, NULL);
    }
    if (!o->quiet) rt_progress_finish(&prog, NULL);
    return 0;
}

/* "controls": the same test under fresh keys */
static json_t *controls_json(const mark_radio_opts *o, const double *ctrl) {
    size_t below = 0;
    double minp = 1;
    json_t *ps = json_array();
    for (size_t i = 0; i < o->n_controls; i++) {
        below += ctrl[i] < 0.01;
        minp = fmin(minp, ctrl[i]);
        json_array_append_new(ps, json_real(ctrl[i]));
    }
    double ks_p = 1, ks_d = mark_ks_uniform((double *)ctrl, o->n_controls, &ks_p);
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->control_seed);
    return json_pack("{s:I, s:s, s:o, s:f, s:I, s:f, s:f}", "n", (json_int_t)o->n_controls, "seed", seed,
                     "p_values", ps, "min_p", minp, "below_0.01", (json_int_t)below, "ks_d", ks_d, "ks_p", ks_p);
}

int mark_radioactivity(const mark_radio_opts *o, json_t **out) {
    *out = NULL;
    if (!o->suspect->tok) return RT_FAIL("%s has no tokenizer", o->suspect_name);
    evidence e = {0};
    double *ctrl = rt_calloc(o->n_controls + 1, sizeof *ctrl, "control p-values");
    json_t *j = NULL;
    int rc = -1;
    if (!ctrl) goto done;
    double t0 = rt_now();
    if (o->closed ? closed_evidence(o, &e) : open_evidence(o, &e)) goto done;
    double t_model = rt_now() - t0;
    mark_evidence ev = {.n = e.n,
                        .text = (const int32_t *const *)e.seq,
                        .len = e.len,
                        .from = e.from,
                        .pred = (const int32_t *const *)e.pred,
                        .n_ref = o->exclude == MARK_EXCLUDE_NONE ? 0 : e.n_ref,
                        .ref = (const int32_t *const *)e.ref,
                        .ref_len = e.ref_len,
                        .exclude = o->exclude};
    mark_result r;
    double t1 = rt_now();
    if (mark_evidence_score(o->mark, &ev, &r) ||
        mark_evidence_controls(&o->mark->p, &ev, o->n_controls, o->control_seed, ctrl))
        goto done;
    double t_score = rt_now() - t1;
    j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s}", "mode", o->closed ? "closed" : "open", "suspect", o->suspect_name,
                  "records", (json_int_t)o->n_recs, "sequences", (json_int_t)e.n, "evaluated_tokens",
                  (json_int_t)e.tokens, "exclude", mark_exclude_name(o->exclude));
    if (!j || mark_result_json(&r, o->mark, o->alpha, j) ||
        json_object_set_new(j, "controls", controls_json(o, ctrl)) ||
        json_object_set_new(j, "seconds", json_pack("{s:f, s:f}", "model", t_model, "scoring", t_score))) {
        RT_FAIL("out of memory (radioactivity JSON)");
        goto done;
    }
    *out = j;
    j = NULL;
    rc = 0;
done:
    json_decref(j);
    evidence_free(&e);
    free(ctrl);
    return rc;
}
