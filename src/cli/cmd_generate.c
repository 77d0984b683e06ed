/*
 * cmd_generate.c — `retort generate`: prompt → tokens → the generator (one sequence),
 * streaming text to stdout as it is produced; speed to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../mark/mark.h"
#include "../model/generate.h"
#include "cli.h"

/* Each token goes to stdout as it comes; <|eos|> ends without being printed. */
typedef struct {
    const tokenizer *tok;
    int32_t eos;
    size_t n, max;
    const mark_ctx *wm;
    mark_adist *ad;
} stream;

static int stream_token(void *ud, const gen_event *ev) {
    stream *st = ud;
    st->n++;
    if (ev->token == st->eos) return GEN_FINISH;
    size_t bl;
    const char *b = tokenizer_token_bytes(st->tok, ev->token, &bl);
    fwrite(b, 1, bl, stdout);
    fflush(stdout);
    return st->n >= st->max ? GEN_FINISH : GEN_CONTINUE; /* a full context ends it too */
}

/* The antidistillation shift first, then the watermark's bias on the shifted logits. */
static int attach_both(void *ud, size_t slot, size_t id, void *user, sampler *s) {
    (void)id, (void)user;
    stream *st = ud;
    if (st->ad && mark_adist_attach(st->ad, slot, s)) return -1;
    return st->wm ? mark_attach(s, st->wm) : 0;
}

int cmd_generate(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL, *prompt_file = NULL;
    size_t max_tokens = 128, threads = 0;
    sampler_params sp = sampler_defaults();
    int no_special = 0, quiet = 0;
    const char *wm_config_out = NULL;
    mark_options mo;
    mark_options_init(&mo);
    cli_adist_options ao;
    cli_opt opts[32] = {
        {"--model", CLI_STR, &model_path, "M.gguf: the model", 1, 0},
        {"--prompt", CLI_STR, &prompt, "TEXT: the prompt (special tokens like <|user|> are recognised)", 0, 0},
        {"--prompt-file", CLI_STR, &prompt_file, "FILE: read the prompt from a file (- for stdin)", 0, 0},
        {"--max-tokens", CLI_SIZE, &max_tokens, "tokens to generate (default 128)", 0, 0},
        {"--seed", CLI_U64, &sp.seed, "sampling seed (default: from the clock, printed)", 0, 0},
        {"--no-special", CLI_FLAG, &no_special, "treat special-token text in the prompt as plain text", 0, 0},
        {"--threads", CLI_SIZE, &threads, "worker threads (default: all cores)", 0, 0},
        {"--quiet", CLI_FLAG, &quiet, "print only the generated text", 0, 0},
        {"--watermark-config-out", CLI_STR, &wm_config_out, "FILE: record the watermark parameters (JSON) for detection", 0, 0},
    };
    size_t n_opts = cli_count(opts, RT_ARRAY_LEN(opts));
    n_opts += cli_sampler_opts(opts + n_opts, &sp.temperature, &sp.top_k, &sp.top_p, "");
    n_opts += cli_mark_opts(opts + n_opts, &mo, 1);
    n_opts += cli_adist_opts(opts + n_opts, &ao);
    cli_cmd_info info = {"generate",
                         "retort generate --model M.gguf --prompt TEXT [--max-tokens N --temperature X "
                         "--top-k K --top-p P --seed S] [--watermark-key-file K ...] [--antidistill-proxy P.gguf "
                         "--antidistill-task FILE --antidistill-lambda X]",
                         "Generates a continuation of the prompt and streams it to stdout. Generation stops at\n"
                         "--max-tokens, at <|eos|>, or when the context is full. With --watermark-key-file the\n"
                         "sampler carries the watermark (retort watermark detect finds it; see docs/watermark.md).\n"
                         "With --antidistill-proxy the logits are shifted to make the text worth less to a student\n"
                         "trained on it (antidistillation sampling, docs/antidistill.md); both combine."};
    int prc = cli_parse(argc, argv, opts, n_opts, &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (!!prompt == !!prompt_file) {
        fprintf(stderr, "retort generate: error: give exactly one of --prompt or --prompt-file\n");
        return 2;
    }
    if (!cli_seen(opts, n_opts, "--seed")) sp.seed = (uint64_t)time(NULL) ^ (uint64_t)clock();
    cli_set_threads(threads);
    model *m = NULL;
    char *ptext = NULL;
    size_t plen = 0;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    generator *g = NULL;
    mark_adist *ad = NULL;
    int status = 1, wm_on = 0;
    mark_ctx wm;
    mark_key wm_key;
    if (cli_mark_setup(opts, n_opts, &mo, 1, &wm, &wm_key, &wm_on)) goto done;
    if (wm_config_out && !wm_on) {
        RT_FAIL("--watermark-config-out records watermark parameters; give --watermark-key-file too");
        goto done;
    }
    if (wm_config_out && mark_config_save(wm_config_out, &wm.p, &wm_key)) goto done;
    if (model_load_decode_only(&m, model_path)) goto done;
    if (!m->tok) {
        RT_FAIL("%s has no tokenizer", model_path);
        goto done;
    }
    if (prompt_file) {
        if (rt_read_file(prompt_file, &ptext, &plen)) goto done;
    } else {
        plen = strlen(prompt);
    }
    if (tokenizer_encode(m->tok, ptext ? ptext : prompt, plen, !no_special, &ids, &n_ids)) goto done;
    if (n_ids == 0) {
        RT_FAIL("the prompt is empty; give at least one token of text");
        goto done;
    }
    size_t n_ctx = m->cfg.ctx_len;
    if (n_ids >= n_ctx) {
        RT_FAIL("the prompt has %zu tokens; the model's context is %zu", n_ids, n_ctx);
        goto done;
    }
    if (max_tokens > n_ctx - n_ids) { /* issue 17 #23: a clamp with a message, not "out of memory" */
        if (cli_seen(opts, n_opts, "--max-tokens"))
            rt_info("--max-tokens %zu: the model's context holds %zu tokens after the %zu-token prompt; "
                    "generating at most %zu", max_tokens, n_ctx - n_ids, n_ids, n_ctx - n_ids);
        max_tokens = n_ctx - n_ids;
    }
    if (cli_adist_setup(opts, n_opts, &ao, m->tok, 1, n_ids + max_tokens + 1, &ad)) goto done;
    stream st = {.tok = m->tok, .eos = tokenizer_eos(m->tok), .max = max_tokens, .ad = ad};
    generator_opts go = {.max_seqs = 1,
                         .max_rows = RT_MIN(m->cfg.ctx_len, (size_t)256),
                         .max_ctx = n_ids + max_tokens + 1, /* issue 17 #9: the KV cache holds what is used */
                         .setup = wm_on || ad ? attach_both : NULL,
                         .on_token = stream_token,
                         .ud = &st};
    st.wm = wm_on ? &wm : NULL;
    if (generator_init(&g, m, &go)) goto done;
    if (!quiet) fprintf(stderr, "seed %llu\n", (unsigned long long)sp.seed);
    double t0 = rt_now();
    gen_seq_spec spec = {.prompt = ids, .n_prompt = n_ids, .sp = sp, .share_with = -1};
    if (generator_add(g, &spec, NULL)) goto done;
    double t1 = rt_now();
    if (!quiet) fwrite(ptext ? ptext : prompt, 1, plen, stdout);
    while (max_tokens > 0 && generator_n_active(g) > 0)
        if (generator_step(g, NULL, NULL)) goto done;
    double t2 = rt_now();
    fputc('\n', stdout);
    size_t n_gen = st.n;
    if (!quiet)
        fprintf(stderr, "prompt: %zu tokens, %.1f tok/s | generated: %zu tokens, %.1f tok/s\n", n_ids,
                n_ids / (t1 - t0 + 1e-12), n_gen, n_gen > 1 ? (n_gen - 1) / (t2 - t1 + 1e-12) : 0.0);
    if (!quiet) cli_adist_report("generate", ad, t2 - t0);
    status = 0;
done:
    if (status) cli_fail("generate");
    free(ptext);
    free(ids);
    generator_free(g);
    mark_adist_free(ad);
    model_free(m);
    return status;
}
