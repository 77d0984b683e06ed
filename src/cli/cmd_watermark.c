/*
 * cmd_watermark.c — `retort watermark <keygen|detect|generate|ppl|attack|pvalue>`: make a
 * key, detect the watermark in text (re-tokenized with the model's tokenizer, as API text
 * must be), generate many (watermarked) completions at once for experiments, measure the
 * teacher's perplexity of completions, attack texts with random token edits, and compute a
 * p-value from counts. (The watermark flags shared with generate/serve: cli_mark.c.)
 * The schemes, scoring, statistics and the experiments on records (mark_files.c) live in
 * src/mark; this file is flags, files and printing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mark/mark.h"
#include "../model/model.h"
#include "cli.h"

/* ---------------------------------------------------------------- keygen */

static int wm_keygen(int argc, char **argv) {
    const char *out = NULL;
    cli_opt opts[] = {{"--out", CLI_STR, &out, "K: where to write the key (hex, mode 0600)", 1, 0}};
    cli_cmd_info info = {"watermark keygen", "retort watermark keygen --out K",
                         "Writes a fresh 32-byte watermark key from the OS random source, as 64 hex\n"
                         "characters, readable only by you. Keep it secret: whoever has it can detect,\n"
                         "forge or strip the watermark. Its public fingerprint (key_id) is printed."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (rt_file_exists(out)) {
        fprintf(stderr, "retort watermark keygen: error: %s exists; refusing to overwrite a key\n", out);
        return 1;
    }
    mark_key k;
    if (mark_key_generate(&k) || mark_key_save(&k, out)) return cli_fail("watermark keygen");
    char id[17];
    mark_key_id(&k, id);
    printf("{\"key_file\": \"%s\", \"key_id\": \"%s\"}\n", out, id);
    return 0;
}

/* ---------------------------------------------------------------- detect */

/* One result line: {"<key>": n, ...the result...} */
static int print_result(const mark_result *r, const mark_ctx *c, double alpha, const char *key, size_t n) {
    json_t *o = json_pack("{s:I}", key, (json_int_t)n);
    char *txt = NULL;
    int rc = !o || mark_result_json(r, c, alpha, o) || !(txt = json_dumps(o, JSON_REAL_PRECISION(12)));
    if (!rc) printf("%s\n", txt);
    free(txt);
    json_decref(o);
    return rc ? -1 : 0;
}

static int wm_detect(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *input = "-", *prompt_file = NULL;
    double alpha = 1e-3;
    size_t max_tokens = 0;
    int aggregate = 0;
    mark_options mo;
    mark_options_init(&mo);
    cli_opt opts[16] = {
        {"--model", CLI_STR, &model_path, "M.gguf: take the tokenizer from this model", 0, 0},
        {"--tokenizer", CLI_STR, &tok_path, "T.gguf: or from this file (same thing; no weights read)", 0, 0},
        {"--input", CLI_STR, &input, "FILE: text, or JSONL of {prompt, completion} (default - = stdin)", 0, 0},
        {"--prompt-file", CLI_STR, &prompt_file, "FILE: the prompt of a plain-text input: context, not scored", 0, 0},
        {"--alpha", CLI_DOUBLE, &alpha, "significance level for \"detected\" (default 1e-3)", 0, 0},
        {"--max-tokens", CLI_SIZE, &max_tokens, "score only the first N tokens of each completion (0 = all)", 0, 0},
        {"--aggregate", CLI_FLAG, &aggregate, "JSONL: one test over all records (global dedup)", 0, 0},
    };
    size_t n_opts = 7;
    n_opts += cli_mark_opts(opts + n_opts, &mo, 0);
    opts[7].required = 1; /* --key-file */
    cli_cmd_info info = {
        "watermark detect",
        "retort watermark detect (--model M.gguf | --tokenizer T.gguf) --key-file K [--config F | --scheme S "
        "--gamma G --delta D --context H] [--input FILE|-] [--prompt-file FILE] [--alpha A]",
        "Re-tokenizes the text with the model's tokenizer and tests it for the watermark. Each\n"
        "distinct (window, token) pair is scored once; prompt tokens are context only. Prints one\n"
        "JSON object: tokens_scored, green, z, p_value (exact one-sided binomial tail; for Gumbel\n"
        "the exact Gamma tail), log10_p_value and detected (p < alpha). A JSONL input (records\n"
        "{\"prompt\", \"completion\"}) gives one object per record, or one with --aggregate."};
    int prc = cli_parse(argc, argv, opts, n_opts, &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (!!model_path == !!tok_path) {
        fprintf(stderr, "retort watermark detect: error: give exactly one of --model or --tokenizer\n");
        return 2;
    }
    if (!(alpha > 0 && alpha < 1)) {
        fprintf(stderr, "retort watermark detect: error: --alpha must be in (0, 1), got %g\n", alpha);
        return 2;
    }
    tokenizer *tok = NULL;
    mark_record *recs = NULL, prompt_rec = {0};
    mark_result *res = NULL;
    size_t n_recs = 0;
    mark_ctx c;
    int status = 1, enabled = 0;
    if (cli_mark_setup(opts, n_opts, &mo, 0, &c, NULL, &enabled)) goto done;
    if (tokenizer_load(&tok, model_path ? model_path : tok_path)) goto done;
    if (mark_records_load(input, 0, &recs, &n_recs)) goto done;
    if (prompt_file) {
        if (n_recs != 1 || recs[0].prompt) {
            RT_FAIL("--prompt-file goes with a plain-text --input; JSONL records carry their own \"prompt\"");
            goto done;
        }
        if (rt_read_file(prompt_file, &prompt_rec.prompt, &prompt_rec.prompt_len)) goto done;
        recs[0].prompt = prompt_rec.prompt;
        recs[0].prompt_len = prompt_rec.prompt_len;
        prompt_rec.prompt = NULL;
    }
    int per_record = (n_recs > 1 || (recs[0].prompt && !prompt_file)) && !aggregate;
    size_t n_res = per_record ? n_recs : 1;
    res = rt_calloc(n_res, sizeof *res, "results");
    if (!res || mark_detect_records(&c, tok, recs, n_recs, input, max_tokens, per_record, res)) goto done;
    for (size_t i = 0; i < n_res; i++)
        if (print_result(&res[i], &c, alpha, per_record ? "record" : "records", per_record ? i + 1 : n_recs))
            goto done;
    status = 0;
done:
    if (status) cli_fail("watermark detect");
    free(res);
    mark_records_free(recs, n_recs);
    free(prompt_rec.prompt);
    tokenizer_free(tok);
    return status;
}

/* ---------------------------------------------------------------- generate (bulk) */

static int wm_generate(int argc, char **argv) {
    const char *model_path = NULL, *prompts_path = NULL, *out_path = NULL, *config_out = NULL;
    size_t max_tokens = 128, batch = 16, threads = 0;
    sampler_params sp = sampler_defaults();
    sp.seed = 1;
    int quiet = 0;
    mark_options mo;
    mark_options_init(&mo);
    cli_opt opts[20] = {
        {"--model", CLI_STR, &model_path, "M.gguf: the model (the teacher)", 1, 0},
        {"--prompts", CLI_STR, &prompts_path, "FILE: one prompt a line, or JSONL with \"prompt\"", 1, 0},
        {"--out", CLI_STR, &out_path, "OUT.jsonl: {\"prompt\", \"completion\"} a line", 1, 0},
        {"--max-tokens", CLI_SIZE, &max_tokens, "tokens per completion (default 128)", 0, 0},
        {"--seed", CLI_U64, &sp.seed, "prompt i uses seed S + i (default 1)", 0, 0},
        {"--batch", CLI_SIZE, &batch, "sequences decoded together (default 16)", 0, 0},
        {"--threads", CLI_SIZE, &threads, "worker threads (default: all cores)", 0, 0},
        {"--config-out", CLI_STR, &config_out, "FILE: record the watermark parameters (JSON) here", 0, 0},
        {"--quiet", CLI_FLAG, &quiet, "no progress bar", 0, 0},
    };
    size_t n_opts = cli_count(opts, RT_ARRAY_LEN(opts));
    n_opts += cli_sampler_opts(opts + n_opts, &sp.temperature, &sp.top_k, &sp.top_p, "");
    n_opts += cli_mark_opts(opts + n_opts, &mo, 0);
    cli_cmd_info info = {"watermark generate",
                         "retort watermark generate --model M.gguf --prompts FILE --out OUT.jsonl [--key-file K "
                         "--scheme S ...] [--max-tokens N --temperature X --top-k K --top-p P --seed S --batch B]",
                         "Generates one completion per prompt, several sequences at a time, watermarked when a\n"
                         "key is given (without one: the unwatermarked baseline). Writes JSONL records, the\n"
                         "format of harvested API data and of `retort sft --data`."};
    int prc = cli_parse(argc, argv, opts, n_opts, &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    cli_set_threads(threads);
    model *m = NULL;
    mark_record *recs = NULL;
    size_t n = 0, total = 0;
    rt_buf out = {0};
    mark_ctx c;
    mark_key key;
    int status = 1, enabled = 0;
    if (cli_mark_setup(opts, n_opts, &mo, 0, &c, &key, &enabled)) goto done;
    if (config_out && !enabled) {
        RT_FAIL("--config-out records watermark parameters; give --key-file too");
        goto done;
    }
    if (model_load(&m, model_path)) goto done;
    if (!m->tok) {
        RT_FAIL("%s has no tokenizer", model_path);
        goto done;
    }
    if (mark_records_load(prompts_path, 1, &recs, &n)) goto done;
    double t0 = rt_now();
    if (mark_generate_records(m, recs, n, prompts_path, max_tokens, &sp, enabled ? &c : NULL, batch, !quiet, &out,
                              &total))
        goto done;
    double dt = rt_now() - t0;
    if (rt_write_file_atomic(out_path, out.data ? out.data : "", out.len)) goto done;
    if (config_out && mark_config_save(config_out, &c.p, &key)) goto done;
    if (!quiet)
        fprintf(stderr, "%zu completions, %zu tokens in %.1fs (%.0f tok/s)%s%s\n", n, total, dt, total / (dt + 1e-9),
                enabled ? ", watermark " : "", enabled ? mark_scheme_name(c.p.scheme) : "");
    status = 0;
done:
    if (status) cli_fail("watermark generate");
    rt_buf_free(&out);
    mark_records_free(recs, n);
    model_free(m);
    return status;
}

/* ---------------------------------------------------------------- ppl */

static int wm_ppl(int argc, char **argv) {
    const char *model_path = NULL, *input = NULL;
    size_t threads = 0;
    cli_opt opts[] = {
        {"--model", CLI_STR, &model_path, "M.gguf: the model whose perplexity is measured (the teacher)", 1, 0},
        {"--input", CLI_STR, &input, "FILE: JSONL {prompt, completion} (or plain text)", 1, 0},
        {"--threads", CLI_SIZE, &threads, "worker threads (default: all cores)", 0, 0},
    };
    cli_cmd_info info = {"watermark ppl", "retort watermark ppl --model M.gguf --input FILE",
                         "The model's perplexity of the completions given their prompts (the quality cost of a\n"
                         "watermark: the teacher's own perplexity of its watermarked vs plain generations).\n"
                         "Prints {records, tokens, nll_per_token, ppl}; tokens beyond the context are scored\n"
                         "in consecutive windows."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    cli_set_threads(threads);
    model *m = NULL;
    mark_record *recs = NULL;
    size_t n = 0;
    int status = 1;
    double nll = 0;
    size_t count = 0;
    if (model_load(&m, model_path)) goto done;
    if (!m->tok) {
        RT_FAIL("%s has no tokenizer", model_path);
        goto done;
    }
    if (mark_records_load(input, 0, &recs, &n)) goto done;
    if (mark_records_nll(m, recs, n, &nll, &count)) goto done;
    printf("{\"records\": %zu, \"tokens\": %zu, \"nll_per_token\": %.6f, \"ppl\": %.4f}\n", n, count,
           count ? nll / count : 0.0, count ? exp(nll / count) : 0.0);
    status = 0;
done:
    if (status) cli_fail("watermark ppl");
    mark_records_free(recs, n);
    model_free(m);
    return status;
}

/* ---------------------------------------------------------------- attack */

static int wm_attack(int argc, char **argv) {
    const char *tok_path = NULL, *input = NULL, *out_path = NULL;
    double sub = 0, del = 0;
    uint64_t seed = 1;
    cli_opt opts[] = {
        {"--tokenizer", CLI_STR, &tok_path, "M.gguf: the tokenizer the edits act on", 1, 0},
        {"--input", CLI_STR, &input, "FILE: JSONL {prompt, completion}", 1, 0},
        {"--out", CLI_STR, &out_path, "OUT.jsonl: the attacked records", 1, 0},
        {"--substitute", CLI_DOUBLE, &sub, "share of completion tokens replaced by a random token (default 0)", 0, 0},
        {"--delete", CLI_DOUBLE, &del, "share of completion tokens deleted (default 0)", 0, 0},
        {"--seed", CLI_U64, &seed, "RNG seed (default 1)", 0, 0},
    };
    cli_cmd_info info = {"watermark attack",
                         "retort watermark attack --tokenizer T.gguf --input IN.jsonl --out OUT.jsonl "
                         "[--substitute F] [--delete F] [--seed S]",
                         "Edits each completion at the token level: every token is independently deleted with\n"
                         "probability --delete, else replaced with probability --substitute by a uniformly\n"
                         "random non-special token; then decodes back to text. Prompts are kept."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (!(sub >= 0 && sub <= 1 && del >= 0 && del <= 1)) {
        fprintf(stderr, "retort watermark attack: error: --substitute and --delete must be in [0, 1]\n");
        return 2;
    }
    tokenizer *tok = NULL;
    mark_record *recs = NULL;
    size_t n = 0;
    rt_buf out = {0};
    int status = 1;
    if (tokenizer_load(&tok, tok_path) || mark_records_load(input, 0, &recs, &n)) goto done;
    if (mark_attack_records(tok, recs, n, sub, del, seed, &out)) goto done;
    if (rt_write_file_atomic(out_path, out.data ? out.data : "", out.len)) goto done;
    status = 0;
done:
    if (status) cli_fail("watermark attack");
    rt_buf_free(&out);
    mark_records_free(recs, n);
    tokenizer_free(tok);
    return status;
}

/* ---------------------------------------------------------------- pvalue */

static int wm_pvalue(int argc, char **argv) {
    const char *scheme = "kgw";
    size_t scored = 0, green = 0;
    double gamma = 0.25, score = 0;
    cli_opt opts[] = {
        {"--scheme", CLI_STR, &scheme, "kgw | kgw-selfhash | gumbel (default kgw)", 0, 0},
        {"--scored", CLI_SIZE, &scored, "number of distinct scored tokens n", 1, 0},
        {"--green", CLI_SIZE, &green, "for KGW: green among them", 0, 0},
        {"--gamma", CLI_DOUBLE, &gamma, "for KGW: green fraction (default 0.25)", 0, 0},
        {"--score", CLI_DOUBLE, &score, "for Gumbel: sum of -ln(1 - r)", 0, 0},
    };
    cli_cmd_info info = {"watermark pvalue", "retort watermark pvalue --scored N (--green K [--gamma G] | --scheme gumbel --score S)",
                         "The exact p-value of reported counts: P(Binomial(N, G) >= K), or for Gumbel\n"
                         "P(Gamma(N, 1) >= S). For checking a detector's output by hand."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    mark_scheme s;
    if (mark_scheme_parse(scheme, &s)) return cli_fail("watermark pvalue");
    double lp;
    if (s == MARK_GUMBEL) {
        if (!(score >= 0)) {
            fprintf(stderr, "retort watermark pvalue: error: --score must be >= 0\n");
            return 2;
        }
        lp = mark_gamma_log_sf(scored, score);
    } else {
        if (green > scored || !(gamma > 0 && gamma < 1)) {
            fprintf(stderr, "retort watermark pvalue: error: need --green <= --scored and --gamma in (0, 1)\n");
            return 2;
        }
        lp = mark_binom_log_sf(green, scored, gamma);
    }
    if (scored == 0) lp = 0;
    char a[RT_FMT_DOUBLE_CAP], b[RT_FMT_DOUBLE_CAP], c[RT_FMT_DOUBLE_CAP];
    rt_fmt_double(a, sizeof a, lp);
    rt_fmt_double(b, sizeof b, lp / M_LN10);
    rt_fmt_double(c, sizeof c, exp(lp));
    printf("{\"log_p\": %s, \"log10_p_value\": %s, \"p_value\": %s}\n", a, b, c);
    return 0;
}

/* ---------------------------------------------------------------- dispatch */

int cmd_watermark(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*fn)(int, char **);
        const char *summary;
    } subs[] = {
        {"keygen", wm_keygen, "write a fresh secret key"},
        {"detect", wm_detect, "test text for the watermark (JSON with z, exact p-value, detected)"},
        {"generate", wm_generate, "many completions at once, watermarked or not (JSONL)"},
        {"ppl", wm_ppl, "a model's perplexity of completions (quality cost)"},
        {"attack", wm_attack, "random token substitutions / deletions on completions"},
        {"pvalue", wm_pvalue, "exact p-value from counts"},
    };
    if (argc >= 2)
        for (size_t i = 0; i < RT_ARRAY_LEN(subs); i++)
            if (!strcmp(argv[1], subs[i].name)) return subs[i].fn(argc - 1, argv + 1);
    int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    FILE *f = help ? stdout : stderr;
    if (argc >= 2 && !help) fprintf(f, "retort watermark: unknown subcommand '%s'\n\n", argv[1]);
    fprintf(f, "usage: retort watermark <subcommand> [options]   (--help on each)\n\nsubcommands:\n");
    for (size_t i = 0; i < RT_ARRAY_LEN(subs); i++) fprintf(f, "  %-10s %s\n", subs[i].name, subs[i].summary);
    return help ? 0 : 2;
}
