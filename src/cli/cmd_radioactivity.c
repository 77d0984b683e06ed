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
    size_t n_recs = 0;
    rt_buf save = {0};
    json_t *res = NULL;
    char *txt = NULL;
    if (cli_mark_setup(opts, n_opts, &mo, 0, &c, NULL, &enabled)) goto done;
    if (tokenizer_load(&wtok, tok_path)) goto done;
    if (model_load(&sus, suspect_path)) goto done;
    if (mark_records_load(closed ? prompts_path : text_path, closed, &recs, &n_recs)) goto done;
    mark_radio_opts ro = {.suspect = sus,
                          .suspect_name = suspect_path,
                          .wtok = wtok,
                          .mark = &c,
                          .closed = closed,
                          .recs = recs,
                          .n_recs = n_recs,
                          .recs_name = closed ? prompts_path : text_path,
                          .samples = samples,
                          .max_tokens = max_tokens,
                          .batch = batch,
                          .sp = sp,
                          .exclude = excl,
                          .alpha = alpha,
                          .n_controls = n_controls,
                          .control_seed = control_seed,
                          .save = closed && save_path ? &save : NULL,
                          .quiet = quiet};
    if (mark_radioactivity(&ro, &res)) goto done;
    if (ro.save && rt_write_file_atomic(save_path, save.data ? save.data : "", save.len)) goto done;
    if (!(txt = json_dumps(res, JSON_REAL_PRECISION(12)))) {
        RT_FAIL("out of memory");
        goto done;
    }
    printf("%s\n", txt);
    status = 0;
done:
    if (status) cli_fail("radioactivity");
    free(txt);
    json_decref(res);
    rt_buf_free(&save);
    mark_records_free(recs, n_recs);
    model_free(sus);
    tokenizer_free(wtok);
    return status;
}
