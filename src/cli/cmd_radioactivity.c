/*
 * cmd_radioactivity.c — `retort radioactivity`: is the suspect model trained on our
 * watermarked text? (Sander et al., NeurIPS 2024.)
 *   closed: generate from the suspect on prompts, re-tokenize its output with the
 *           watermark's tokenizer, score it with dedup, skipping what the prompts contain;
 *   open:   teacher-force the suspect over watermarked text ("reading mode") and score its
 *           top-1 predictions against the text's windows, skipping the text's own tuples.
 * Then the same test under fresh control keys, whose p-values must be uniform.
 * The statistics live in src/mark; this file is flags, files and the report.
 */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mark/mark.h"
#include "../model/model.h"
#include "cli.h"

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

/* T(prompt) ++ T(completion) */
static int encode_pc(const tokenizer *tok, const char *p, size_t pl, const char *c, size_t cl, int32_t **out,
                     size_t *n, size_t *from) {
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    if (p && tokenizer_encode(tok, p, pl, 0, &a, &na)) return -1;
    if (c && tokenizer_encode(tok, c, cl, 0, &b, &nb)) {
        free(a);
        return -1;
    }
    *out = rt_malloc_array(na + nb + 1, sizeof(int32_t), "tokens");
    if (*out) {
        if (na) memcpy(*out, a, na * sizeof(int32_t));
        if (nb) memcpy(*out + na, b, nb * sizeof(int32_t));
    }
    free(a);
    free(b);
    if (!*out) return -1;
    *n = na + nb;
    *from = na;
    return 0;
}

int cmd_radioactivity(int argc, char **argv) {
    const char *suspect_path = NULL, *tok_path = NULL, *mode = NULL, *prompts_path = NULL, *text_path = NULL;
    const char *exclude_s = NULL, *save_path = NULL;
    size_t max_tokens = 128, samples = 1, batch = 16, threads = 0, n_controls = 20;
    uint64_t control_seed = 0;
    double alpha = 1e-3;
    int quiet = 0;
    sampler_params sp = sampler_defaults();
    sp.seed = 1;
    mark_options mo;
    mark_options_init(&mo);
    cli_opt opts[32] = {
        {"--suspect", CLI_STR, &suspect_path, "S.gguf: the model under suspicion", 1, 0},
        {"--tokenizer", CLI_STR, &tok_path, "T.gguf: the watermarking model (its tokenizer defines the tokens)", 1, 0},
        {"--mode", CLI_STR, &mode, "closed (generate from the suspect) | open (read text through it)", 1, 0},
        {"--prompts", CLI_STR, &prompts_path, "FILE: closed mode: one prompt a line, or JSONL with \"prompt\"", 0, 0},
        {"--text", CLI_STR, &text_path, "FILE: open mode: watermarked text, JSONL {prompt, completion} or plain", 0, 0},
        {"--exclude", CLI_STR, &exclude_s,
         "windows | tuples | none: what of the prompts (closed; default windows) or the text (open; "
         "default tuples) is never scored", 0, 0},
        {"--max-tokens", CLI_SIZE, &max_tokens, "closed: tokens per generation (default 128)", 0, 0},
        {"--samples", CLI_SIZE, &samples, "closed: generations per prompt (default 1)", 0, 0},
        {"--seed", CLI_U64, &sp.seed, "closed: sampling seed (default 1)", 0, 0},
        {"--batch", CLI_SIZE, &batch, "closed: sequences decoded together (default 16)", 0, 0},
        {"--controls", CLI_SIZE, &n_controls, "control keys tested on the same evidence (default 20)", 0, 0},
        {"--control-seed", CLI_U64, &control_seed, "seed of the control keys (default: random, printed)", 0, 0},
        {"--alpha", CLI_DOUBLE, &alpha, "significance level for \"detected\" (default 1e-3)", 0, 0},
        {"--save-generations", CLI_STR, &save_path, "OUT.jsonl: closed: keep the suspect's generations", 0, 0},
        {"--threads", CLI_SIZE, &threads, "worker threads (default: all cores)", 0, 0},
        {"--quiet", CLI_FLAG, &quiet, "no progress bar", 0, 0},
    };
    size_t n_opts = cli_count(opts, RT_ARRAY_LEN(opts));
    n_opts += cli_sampler_opts(opts + n_opts, &sp.temperature, &sp.top_k, &sp.top_p, "closed: ");
    size_t key_opt = n_opts;
    n_opts += cli_mark_opts(opts + n_opts, &mo, 0);
    opts[key_opt].required = 1;
    cli_cmd_info info = {
        "radioactivity",
        "retort radioactivity --suspect S.gguf --key-file K --tokenizer T.gguf --mode closed|open "
        "[--prompts FILE] [--text FILE] [--config F | --scheme S ...] [--controls N]",
        "Tests whether the suspect learned from text watermarked with the key. Each distinct\n"
        "(window, token) tuple is scored once; windows (or tuples) of the prompts / the read text\n"
        "are skipped, so a model that merely copies its input is not flagged. Prints one JSON\n"
        "object: tokens_scored, green, z, the exact p_value, detected, and the p-values of the\n"
        "same test under --controls fresh keys (uniform when the test is valid) with a KS test."};
    int prc = cli_parse(argc, argv, opts, n_opts, &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    int closed = 0;
    if (!strcmp(mode, "closed")) closed = 1;
    else if (strcmp(mode, "open")) {
        fprintf(stderr, "retort radioactivity: error: --mode must be closed or open, got '%s'\n", mode);
        return 2;
    }
    if (closed && !prompts_path) {
        fprintf(stderr, "retort radioactivity: error: --mode closed needs --prompts FILE\n");
        return 2;
    }
    if (!closed && !text_path) {
        fprintf(stderr, "retort radioactivity: error: --mode open needs --text FILE (watermarked text)\n");
        return 2;
    }
    mark_exclude excl = closed ? MARK_EXCLUDE_WINDOWS : MARK_EXCLUDE_TUPLES;
    if (exclude_s && mark_exclude_parse(exclude_s, &excl)) return cli_fail("radioactivity");
    if (!closed && excl == MARK_EXCLUDE_WINDOWS) {
        fprintf(stderr, "retort radioactivity: error: --exclude windows would skip every position in open mode "
                        "(all windows come from the text); use tuples or none\n");
        return 2;
    }
    if (!(alpha > 0 && alpha < 1) || samples == 0) {
        fprintf(stderr, "retort radioactivity: error: --alpha must be in (0, 1) and --samples >= 1\n");
        return 2;
    }
    if (!cli_seen(opts, n_opts, "--control-seed")) {
        if (sodium_init() < 0) return cli_fail("radioactivity");
        randombytes_buf(&control_seed, sizeof control_seed);
    }
    cli_set_threads(threads);

    mark_ctx c;
    int enabled = 0, status = 1;
    tokenizer *wtok = NULL;
    model *sus = NULL;
    mark_record *recs = NULL;
    size_t n_recs = 0, n_seq = 0, gen_tokens = 0;
    int32_t **seq = NULL, **pred = NULL, **stok = NULL, **gen = NULL, **ref = NULL;
    size_t *seq_len = NULL, *seq_from = NULL, *slen = NULL, *glen = NULL, *ref_len = NULL;
    double *ctrl = NULL;
    rt_buf save = {0}, out = {0};
    if (cli_mark_setup(opts, n_opts, &mo, 0, &c, NULL, &enabled)) goto done;
    if (tokenizer_load(&wtok, tok_path)) goto done;
    if (model_load(&sus, suspect_path)) goto done;
    if (!sus->tok) {
        RT_FAIL("%s has no tokenizer", suspect_path);
        goto done;
    }
    if (mark_records_load(closed ? prompts_path : text_path, closed, &recs, &n_recs)) goto done;
    n_seq = closed ? n_recs * samples : n_recs;
    seq = rt_calloc(n_seq, sizeof *seq, "sequences");
    pred = rt_calloc(n_seq, sizeof *pred, "predictions");
    seq_len = rt_calloc(n_seq, sizeof *seq_len, "sequences");
    seq_from = rt_calloc(n_seq, sizeof *seq_from, "sequences");
    ref = rt_calloc(n_recs, sizeof *ref, "references");
    ref_len = rt_calloc(n_recs, sizeof *ref_len, "references");
    ctrl = rt_calloc(n_controls + 1, sizeof *ctrl, "control p-values");
    if (!seq || !pred || !seq_len || !seq_from || !ref || !ref_len || !ctrl) goto done;
    double t0 = rt_now();
    if (closed) {
        stok = rt_calloc(n_seq, sizeof *stok, "prompts");
        slen = rt_calloc(n_seq, sizeof *slen, "prompts");
        gen = rt_calloc(n_seq, sizeof *gen, "generations");
        glen = rt_calloc(n_seq, sizeof *glen, "generations");
        if (!stok || !slen || !gen || !glen) goto done;
        for (size_t i = 0; i < n_recs; i++) {
            if (!recs[i].prompt) {
                RT_FAIL("%s: record %zu has no \"prompt\"", prompts_path, i + 1);
                goto done;
            }
            for (size_t s = 0; s < samples; s++)
                if (tokenizer_encode(sus->tok, recs[i].prompt, recs[i].prompt_len, 0, &stok[i * samples + s],
                                     &slen[i * samples + s]))
                    goto done;
        }
        if (mark_generate(sus, (const int32_t *const *)stok, slen, n_seq, max_tokens, &sp, NULL, batch, gen, glen,
                          !quiet))
            goto done;
        for (size_t j = 0; j < n_seq; j++) {
            const mark_record *r = &recs[j / samples];
            char *text = NULL;
            size_t tl = 0;
            if (tokenizer_decode(sus->tok, gen[j], glen[j], &text, &tl)) goto done;
            int rc = encode_pc(wtok, r->prompt, r->prompt_len, text, tl, &seq[j], &seq_len[j], &seq_from[j]);
            if (!rc && save_path) rc = mark_record_jsonl(&save, r->prompt, r->prompt_len, text, tl);
            free(text);
            if (rc) goto done;
            gen_tokens += seq_len[j] - seq_from[j];
        }
        for (size_t i = 0; i < n_recs; i++) {
            ref[i] = seq[i * samples]; /* the prompt part of the first sample */
            ref_len[i] = seq_from[i * samples];
        }
        if (save_path && rt_write_file_atomic(save_path, save.data ? save.data : "", save.len)) goto done;
    } else {
        if (!same_vocab(wtok, sus->tok)) {
            RT_FAIL("open mode reads the text through the suspect token by token, so it needs the suspect to "
                    "share the watermark's tokenizer; %s and %s differ (use --mode closed)",
                    suspect_path, tok_path);
            goto done;
        }
        rt_progress prog;
        if (!quiet) rt_progress_init(&prog, "read", n_recs);
        for (size_t i = 0; i < n_recs; i++) {
            if (encode_pc(wtok, recs[i].prompt, recs[i].prompt_len, recs[i].completion, recs[i].completion_len, &seq[i],
                          &seq_len[i], &seq_from[i]))
                goto done;
            int32_t *p = rt_malloc_array(seq_len[i] + 1, sizeof(int32_t), "predictions");
            pred[i] = rt_malloc_array(seq_len[i] + 1, sizeof(int32_t), "predictions");
            if (!p || !pred[i] || mark_predict(sus, seq[i], seq_len[i], p, NULL)) {
                free(p);
                goto done;
            }
            /* pred[i][j] = the suspect's guess for position j, made after seq[0..j) */
            pred[i][0] = MARK_PAD;
            for (size_t j = 1; j < seq_len[i]; j++) pred[i][j] = p[j - 1];
            free(p);
            if (seq_from[i] == 0) seq_from[i] = 1;
            if (seq_from[i] > seq_len[i]) seq_from[i] = seq_len[i];
            gen_tokens += seq_len[i] - seq_from[i];
            ref[i] = seq[i]; /* the whole text: its own tuples are what it reveals */
            ref_len[i] = seq_len[i];
            if (!quiet) rt_progress_update(&prog, i + 1, NULL);
        }
        if (!quiet) rt_progress_finish(&prog, NULL);
    }
    double t_model = rt_now() - t0;
    mark_evidence ev = {.n = n_seq,
                        .text = (const int32_t *const *)seq,
                        .len = seq_len,
                        .from = seq_from,
                        .pred = closed ? NULL : (const int32_t *const *)pred,
                        .n_ref = excl == MARK_EXCLUDE_NONE ? 0 : n_recs,
                        .ref = (const int32_t *const *)ref,
                        .ref_len = ref_len,
                        .exclude = excl};
    mark_result r;
    double t1 = rt_now();
    if (mark_evidence_score(&c, &ev, &r)) goto done;
    if (mark_evidence_controls(&c.p, &ev, n_controls, control_seed, ctrl)) goto done;
    double t_score = rt_now() - t1;
    size_t below = 0;
    double minp = 1;
    for (size_t i = 0; i < n_controls; i++) {
        below += ctrl[i] < 0.01;
        if (ctrl[i] < minp) minp = ctrl[i];
    }
    char extra[1024];
    snprintf(extra, sizeof extra,
             "\"mode\": \"%s\", \"suspect\": \"%s\", \"records\": %zu, \"sequences\": %zu, \"evaluated_tokens\": %zu, "
             "\"exclude\": \"%s\"",
             closed ? "closed" : "open", suspect_path, n_recs, n_seq, gen_tokens, mark_exclude_name(excl));
    if (mark_result_json(&r, &c, alpha, extra, &out)) goto done;
    out.len--; /* reopen the object for the controls */
    if (rt_buf_printf(&out, ", \"controls\": {\"n\": %zu, \"seed\": \"%llu\", \"p_values\": [", n_controls,
                      (unsigned long long)control_seed))
        goto done;
    for (size_t i = 0; i < n_controls; i++)
        if (rt_buf_printf(&out, "%s%.6g", i ? ", " : "", ctrl[i])) goto done;
    double ks_p = 1, ks_d = mark_ks_uniform(ctrl, n_controls, &ks_p);
    if (rt_buf_printf(&out,
                      "], \"min_p\": %.6g, \"below_0.01\": %zu, \"ks_d\": %.4f, \"ks_p\": %.4g}, \"seconds\": "
                      "{\"model\": %.2f, \"scoring\": %.3f}}",
                      n_controls ? minp : 1.0, below, ks_d, ks_p, t_model, t_score))
        goto done;
    printf("%s\n", out.data);
    status = 0;
done:
    if (status) cli_fail("radioactivity");
    for (size_t j = 0; j < n_seq; j++) {
        if (seq) free(seq[j]);
        if (pred) free(pred[j]);
        if (stok) free(stok[j]);
        if (gen) free(gen[j]);
    }
    free(seq);
    free(pred);
    free(stok);
    free(gen);
    free(seq_len);
    free(seq_from);
    free(slen);
    free(glen);
    free(ref);
    free(ref_len);
    free(ctrl);
    rt_buf_free(&save);
    rt_buf_free(&out);
    mark_records_free(recs, n_recs);
    model_free(sus);
    tokenizer_free(wtok);
    (void)enabled;
    return status;
}
