/*
 * cmd_data.c — `retort data`: datasets for distillation experiments.
 *   retort data arith --n N --digits D --seed S --out FILE     problems with column working
 *   retort data generate --model T.gguf (--prompts FILE.jsonl | --text FILE --n N) --out F
 *       the model writes completions for prompts, in the harvest format (with --logprobs K
 *       its top-K alternatives per token, as an OpenAI-style API returns them) — the
 *       teacher-generated data of R1-Distill-style SFT, without a server in between.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../distill/distill.h"
#include "../mark/mark.h"
#include "../model/model.h"
#include "../train/train.h"
#include "cli.h"

static int data_arith(int argc, char **argv) {
    size_t n = 1000;
    uint64_t seed = 1;
    const char *out = NULL, *ops = "add,mul";
    arith_opts ao;
    arith_defaults(&ao);
    cli_opt opts[] = {
        {"--n", CLI_SIZE, &n, "problems to write (default 1000)", 0, 0},
        {"--digits", CLI_SIZE, &ao.digits, "operands uniform below 10^D (default 3)", 0, 0},
        {"--mul-digits", CLI_SIZE, &ao.mul_digits, "digits of the multiplier; 1 = by one digit (default 1)", 0, 0},
        {"--ops", CLI_STR, &ops, "add, mul or add,mul (default add,mul)", 0, 0},
        {"--answers-only", CLI_FLAG, &ao.answers_only, "completion \" answer N\" without the working (same problems per seed)", 0, 0},
        {"--seed", CLI_U64, &seed, "RNG seed (default 1)", 0, 0},
        {"--out", CLI_STR, &out, "FILE.jsonl", 1, 0},
    };
    cli_cmd_info info = {"data arith", "retort data arith --n N --digits D --seed S --out FILE.jsonl [--ops add,mul --mul-digits M --answers-only]",
                         "Writes arithmetic problems as JSONL {\"prompt\", \"completion\", \"answer\"}: the completion\n"
                         "works the sum or product column by column, then says \"answer N\". Example:\n"
                         "  347+589=  ->   7+9=16, 4+8+1=13, 3+5+1=9; answer 936"};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    ao.add = strstr(ops, "add") != NULL;
    ao.mul = strstr(ops, "mul") != NULL;
    for (const char *p = ops; *p;) {
        size_t l = strcspn(p, ",");
        if (!((l == 3 && !strncmp(p, "add", 3)) || (l == 3 && !strncmp(p, "mul", 3)))) {
            fprintf(stderr, "retort data arith: error: --ops takes add, mul or add,mul (got '%s')\n", ops);
            return 2;
        }
        p += l + (p[l] == ',');
    }
    if (arith_write_jsonl(out, n, &ao, seed)) return cli_fail("data arith");
    rt_info("wrote %zu problems to %s", n, out);
    return 0;
}

/* The teacher's own sampler decorations: the antidistillation shift, then the watermark. */
typedef struct {
    mark_adist *ad;
    const mark_ctx *wm;
} data_attach;

static int attach_data(void *ud, size_t slot, size_t id, void *user, sampler *s) {
    (void)id, (void)user;
    data_attach *d = ud;
    if (d->ad && mark_adist_attach(d->ad, slot, s)) return -1;
    return d->wm ? mark_attach(s, d->wm) : 0;
}

/* Each step, the proxy's rows of every sequence about to be sampled in one batch. */
static int prepare_data(void *ud, const gen_ready *ready, size_t n) {
    data_attach *d = ud;
    if (d->ad && mark_adist_prepare(d->ad, ready, n))
        rt_warn("antidistillation: a batched proxy step failed (%s); its positions are computed one by one",
                rt_errmsg());
    return 0;
}

/* With an "answer" per prompt: how many completions end in that answer (arith_extract_answer),
 * the accuracy a user of this teacher gets. */
static void report_answers(const tokenizer *tok, const kd_gen_seq *gen, char *const *answers, size_t n) {
    size_t have = 0, ok = 0;
    for (size_t i = 0; i < n; i++) {
        if (!answers[i] || !answers[i][0]) continue;
        have++;
        char *txt = NULL, got[64];
        size_t len = 0;
        if (tokenizer_decode(tok, gen[i].tokens, gen[i].n, &txt, &len) == 0 &&
            arith_extract_answer(txt, len, got, sizeof got) == 0 && !strcmp(got, answers[i]))
            ok++;
        free(txt);
    }
    if (have) rt_info("answers: %zu of %zu correct (%.2f%%)", ok, have, 100.0 * (double)ok / (double)have);
}

static int data_generate(int argc, char **argv) {
    const char *model_path = NULL, *prompts_path = NULL, *text_path = NULL, *out = NULL, *split = "train";
    size_t n = 1000, prompt_tokens = 32, threads = 0, n_logprobs = 0;
    double val_fraction = 0.05;
    kd_gen_opts go;
    kd_gen_defaults(&go);
    go.seed = 1;
    int quiet = 0, skip_bad = 0;
    cli_opt opts[CLI_MAX_OPTS] = {
        {"--model", CLI_STR, &model_path, "T.gguf: the model that writes the completions", 1, 0},
        {"--prompts", CLI_STR, &prompts_path, "FILE.jsonl: lines with a \"prompt\" (other fields are ignored)", 0, 0},
        {"--text", CLI_STR, &text_path, "FILE: take prompts from random windows of this text instead", 0, 0},
        {"--split", CLI_STR, &split, "with --text: train or val part of the text (default train)", 0, 0},
        {"--val-fraction", CLI_DOUBLE, &val_fraction, "with --text: held-out share, as train (default 0.05)", 0, 0},
        {"--n", CLI_SIZE, &n, "with --text: prompts to draw (default 1000); with --prompts: at most this many", 0, 0},
        {"--prompt-tokens", CLI_SIZE, &prompt_tokens, "with --text: tokens per prompt (default 32)", 0, 0},
        {"--max-tokens", CLI_SIZE, &go.max_new, "tokens to generate per prompt (default 128)", 0, 0},
        {"--logprobs", CLI_SIZE, &n_logprobs, "record the top-K alternatives of every token (default 0)", 0, 0},
        {"--batch", CLI_SIZE, &go.batch, "sequences decoded together (default 16)", 0, 0},
        {"--seed", CLI_U64, &go.seed, "RNG seed (default 1)", 0, 0},
        {"--threads", CLI_SIZE, &threads, "worker threads (default: all cores)", 0, 0},
        {"--out", CLI_STR, &out, "FILE.jsonl: harvest-format lines", 1, 0},
        {"--quiet", CLI_FLAG, &quiet, "no progress bar", 0, 0},
        {"--skip-bad", CLI_FLAG, &skip_bad, "with --prompts: report bad lines and use the rest (default: stop)", 0, 0},
    };
    size_t n_opts = cli_count(opts, CLI_MAX_OPTS);
    n_opts += cli_sampler_opts(opts + n_opts, &go.temperature, &go.top_k, &go.top_p, "");
    mark_options mo;
    mark_options_init(&mo);
    n_opts += cli_mark_opts(opts + n_opts, &mo, 1);
    cli_adist_options ado;
    n_opts += cli_adist_opts(opts + n_opts, &ado);
    cli_cmd_info info = {
        "data generate",
        "retort data generate --model T.gguf (--prompts FILE.jsonl | --text FILE --n N --prompt-tokens P) "
        "--max-tokens M [--temperature X --logprobs K] [--watermark-key-file K ...] [--antidistill-proxy P.gguf "
        "--antidistill-task FILE --antidistill-lambda X] --out FILE.jsonl",
        "The model continues each prompt (until <|eos|> or --max-tokens) and every pair is written as\n"
        "{\"prompt\", \"completion\", \"finish_reason\"[, \"answer\"], \"logprobs\", \"top_logprobs\"} — the format\n"
        "retort harvest writes and retort sft reads. Prompts from --prompts keep their \"answer\" field,\n"
        "and the share of completions that end in it is printed. The teacher's sampler may carry the\n"
        "watermark and antidistillation sampling (docs/antidistill.md)."};
    int prc = cli_parse(argc, argv, opts, n_opts, &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (!!prompts_path == !!text_path) {
        fprintf(stderr, "retort data generate: error: give exactly one of --prompts FILE.jsonl or --text FILE\n");
        return 2;
    }
    if (strcmp(split, "train") && strcmp(split, "val")) {
        fprintf(stderr, "retort data generate: error: --split must be train or val\n");
        return 2;
    }
    cli_set_threads(threads);
    go.n_logprobs = n_logprobs;
    model *m = NULL;
    dataset ds = {0};
    sft_set set;
    memset(&set, 0, sizeof set);
    int32_t *ptoks = NULL;
    const int32_t **prompts = NULL;
    size_t *lens = NULL;
    kd_gen_seq *gen = NULL;
    mark_adist *ad = NULL;
    mark_ctx wm;
    int status = 1, wm_on = 0;
    size_t np = 0;
    if (cli_mark_setup(opts, n_opts, &mo, 1, &wm, NULL, &wm_on)) goto done;
    if (model_load_decode_only(&m, model_path)) goto done;
    if (!m->tok) {
        RT_FAIL("%s has no tokenizer", model_path);
        goto done;
    }
    go.stop = tokenizer_eos(m->tok);
    if (prompts_path) {
        sft_load_opts lo;
        sft_load_defaults(&lo);
        lo.soft = 0;
        lo.max_examples = cli_seen(opts, n_opts, "--n") ? n : 0;
        lo.prompts_only = 1; /* a prompts file may have no "completion" */
        lo.skip_bad = skip_bad;
        if (sft_load_jsonl(&set, prompts_path, m->tok, &lo)) goto done;
        np = set.n_ex;
        prompts = rt_calloc(np, sizeof *prompts, "prompts");
        lens = rt_calloc(np, sizeof(size_t), "prompts");
        if (!prompts || !lens) goto done;
        for (size_t i = 0; i < np; i++) {
            prompts[i] = set.tokens + set.off[i];
            lens[i] = set.n_prompt[i];
        }
    } else {
        if (distill_text_dataset(&ds, m->tok, text_path, val_fraction)) goto done;
        const int32_t *src = !strcmp(split, "train") ? ds.train : ds.val;
        size_t ns = !strcmp(split, "train") ? ds.n_train : ds.n_val;
        if (prompt_tokens == 0 || ns < prompt_tokens) {
            RT_FAIL("the %s text has %zu tokens; --prompt-tokens %zu does not fit", split, ns, prompt_tokens);
            goto done;
        }
        np = n;
        ptoks = rt_malloc_array(np * prompt_tokens, sizeof(int32_t), "prompts");
        prompts = rt_calloc(np, sizeof *prompts, "prompts");
        lens = rt_calloc(np, sizeof(size_t), "prompts");
        if (!ptoks || !prompts || !lens) goto done;
        rt_rng rng;
        rt_rng_seed(&rng, go.seed ^ 0x70726f6d7074ull);
        for (size_t i = 0; i < np; i++) {
            size_t at = (size_t)rt_rng_below(&rng, ns - prompt_tokens + 1);
            memcpy(ptoks + i * prompt_tokens, src + at, prompt_tokens * sizeof(int32_t));
            prompts[i] = ptoks + i * prompt_tokens;
            lens[i] = prompt_tokens;
        }
    }
    gen = rt_calloc(np, sizeof *gen, "generations");
    if (!gen) goto done;
    if (go.batch == 0) go.batch = 1;
    if (cli_adist_setup(opts, n_opts, &ado, m->tok, go.batch, 0, &ad)) goto done;
    data_attach da = {.ad = ad, .wm = wm_on ? &wm : NULL};
    if (ad || wm_on) {
        go.setup = attach_data;
        go.before_sample = ad && !ado.unbatched ? prepare_data : NULL;
        go.setup_ud = &da;
    }
    rt_info("generating up to %zu tokens for %zu prompts with %s (temperature %g%s)", go.max_new, np, model_path,
            (double)go.temperature, n_logprobs ? ", with log-probs" : "");
    double t0 = rt_now();
    if (kd_generate(m, prompts, lens, np, &go, gen, !quiet)) goto done;
    double secs = rt_now() - t0;
    cli_adist_report("data generate", ad, secs);
    if (prompts_path && set.answers) report_answers(m->tok, gen, set.answers, np);
    size_t total = 0;
    if (kd_write_generations(out, m->tok, prompts, lens, gen, np, n_logprobs, prompts_path ? set.answers : NULL,
                             &total))
        goto done;
    rt_info("wrote %s: %zu completions, %zu tokens (%.0f tokens/s)", out, np, total, (double)total / (secs + 1e-9));
    status = 0;
done:
    if (status) cli_fail("data generate");
    if (gen)
        for (size_t i = 0; i < np; i++) kd_gen_seq_free(&gen[i]);
    free(gen);
    free(prompts);
    free(lens);
    free(ptoks);
    sft_set_free(&set);
    dataset_free(&ds);
    mark_adist_free(ad);
    model_free(m);
    return status;
}

int cmd_data(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "arith")) return data_arith(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "generate")) return data_generate(argc - 1, argv + 1);
    FILE *f = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? stdout : stderr;
    fprintf(f, "usage: retort data arith --n N --digits D --seed S --out FILE.jsonl\n"
               "       retort data generate --model T.gguf (--prompts FILE.jsonl | --text FILE --n N) --out FILE.jsonl\n"
               "(retort data <kind> --help for the options)\n");
    return f == stdout ? 0 : 2;
}
