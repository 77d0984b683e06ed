/*
 * cmd_sft.c — `retort sft`: black-box distillation (the attacker's tool, and R1-Distill's
 * recipe): a student learns from prompt/completion pairs a teacher wrote — a harvest file
 * from an API, or `retort data` output. Loss on completion tokens only; where the file has
 * the API's top log-probs they are soft targets. Same trainer as `retort train`.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../distill/distill.h"
#include "../model/model.h"
#include "../train/train.h"
#include "cli.h"

/* The student: --init's model (its context bounds --seq-len), or a new one of the shape flags
 * with a tokenizer from the checkpoint (resuming), --tokenizer, or trained on the data's text. */
static int sft_student(model **m, const char *init_path, int seq_len_given, train_options *o, int resume,
                       const char *ckpt, const char *tok_path, const char *data, size_t vocab, model_config *c,
                       int untied) {
    tokenizer *tok = NULL;
    char *tmpl = NULL; /* the tokenizer's chat template: the student speaks its format */
    if (init_path) {
        if (model_load(m, init_path)) return -1;
        if (!(*m)->tok) {
            RT_FAIL("%s has no tokenizer", init_path);
            return -1;
        }
        if (!seq_len_given) o->seq_len = RT_MIN(o->seq_len, (*m)->cfg.ctx_len);
        if (o->seq_len > (*m)->cfg.ctx_len) {
            RT_FAIL("--seq-len %zu exceeds %s's context length %zu", o->seq_len, init_path, (*m)->cfg.ctx_len);
            return -1;
        }
    } else {
        if (resume) {
            if (tokenizer_load(&tok, ckpt) || tokenizer_chat_template_load(ckpt, &tmpl)) goto fail;
        } else if (tok_path) {
            if (tokenizer_load(&tok, tok_path) || tokenizer_chat_template_load(tok_path, &tmpl)) goto fail;
        } else {
            rt_buf text = {0};
            if (sft_collect_text(data, &text)) return -1;
            rt_info("training a %zu-token byte-level BPE tokenizer on the prompts and completions of %s", vocab, data);
            int rc = tokenizer_train(&tok, text.data, text.len, vocab);
            rt_buf_free(&text);
            if (rc) return -1;
        }
        c->tied = !untied;
        c->ctx_len = o->seq_len;
        tokenizer *tk = tok;
        tok = NULL;
        if (distill_new_student(m, c, tk, o->seed)) goto fail; /* takes the tokenizer */
        (*m)->chat_template = tmpl;
    }
    return 0;
fail:
    tokenizer_free(tok);
    free(tmpl);
    return -1;
}

/* what the data gave: examples, completion tokens and how many carry soft targets */
static void log_data(const sft_set *set) {
    rt_info("data: %zu examples, %zu completion tokens; %zu with top_logprobs, soft targets on %zu tokens (%.1f%%)%s",
            set->n_ex, set->n_completion_tokens, set->n_with_logprobs, set->n_soft,
            set->n_completion_tokens ? 100.0 * (double)set->n_soft / (double)set->n_completion_tokens : 0.0,
            set->n_truncated_alignment ? "" : "");
    if (set->n_truncated_alignment)
        rt_info("  %zu of those examples could not be aligned to the end (a sampled token was not among the "
                "listed alternatives); their later tokens train on hard labels",
                set->n_truncated_alignment);
}

int cmd_sft(int argc, char **argv) {
    const char *data = NULL, *out = NULL, *log_path = NULL, *init_path = NULL, *tok_path = NULL;
    const char *loss_name = "fkl", *format = "raw", *chat_name = NULL;
    size_t threads = 0, vocab = 0, eval_max = 512;
    model_config c = {.dim = 128, .n_layers = 4, .n_heads = 4, .n_kv_heads = 2, .ffn_dim = 352,
                      .norm_eps = 1e-5f, .rope_base = 10000.0f};
    train_options o;
    train_options_defaults(&o);
    kd_params kp = kd_params_defaults();
    kp.alpha = 0.5f;
    double val_fraction = 0.05;
    int untied = 0, resume = 0, quiet = 0, no_soft = 0, skip_bad = 0;
    cli_opt opts[CLI_MAX_OPTS] = {
        {"--data", CLI_STR, &data, "FILE.jsonl: {\"prompt\", \"completion\"[, \"logprobs\"]} or {\"messages\": [...]} per line", 1, 0},
        {"--init", CLI_STR, &init_path, "S.gguf: continue training this model (its shape and tokenizer)", 0, 0},
        {"--tokenizer", CLI_STR, &tok_path, "M.gguf: a fresh student with this model file's tokenizer", 0, 0},
        {"--vocab-size", CLI_SIZE, &vocab, "a fresh student with a BPE of this size trained on the data", 0, 0},
        {"--format", CLI_STR, &format, "raw (prompt then completion) | chat (the student's chat template) (default raw)", 0, 0},
        {"--chat-template", CLI_STR, &chat_name,
         "NAME: with --format chat, this format (retort chatml qwen3 llama3 deepseek-v3 deepseek-r1 llama2 gemma) "
         "instead of the one recognised from the student's template",
         0, 0},
        {"--loss", CLI_STR, &loss_name, "divergence on soft targets: fkl | rkl | jsd, or ce to ignore them (default fkl)", 0, 0},
        {"--alpha", CLI_FLOAT, &kp.alpha, "weight of the soft-target term where present; 1-alpha on the token (default 0.5)", 0, 0},
        {"--beta", CLI_FLOAT, &kp.beta, "JSD interpolation (default 0.5)", 0, 0},
        {"--no-soft", CLI_FLAG, &no_soft, "ignore top_logprobs (hard labels only)", 0, 0},
        {"--skip-bad", CLI_FLAG, &skip_bad, "report bad lines and train on the rest (default: stop)", 0, 0},
        {"--eval-max", CLI_SIZE, &eval_max, "held-out examples per eval, 0 = all (default 512)", 0, 0},
        {"--val-fraction", CLI_DOUBLE, &val_fraction, "share of examples held out (default 0.05)", 0, 0},
        {"--threads", CLI_SIZE, &threads, "worker threads (default: all cores)", 0, 0},
        {"--out", CLI_STR, &out, "S.gguf: the student (checkpoint S.gguf.ckpt, log S.gguf.log.jsonl)", 1, 0},
        {"--log", CLI_STR, &log_path, "FILE: JSONL step log", 0, 0},
        {"--resume", CLI_FLAG, &resume, "continue from S.gguf.ckpt (same options required)", 0, 0},
        {"--quiet", CLI_FLAG, &quiet, "no progress bar", 0, 0},
    };
    size_t n_opts = cli_count(opts, CLI_MAX_OPTS);
    n_opts += cli_shape_opts(opts + n_opts, &c, &untied);
    n_opts += cli_train_opts(opts + n_opts, &o);
    cli_cmd_info info = {
        "sft",
        "retort sft --data FILE.jsonl (--init S.gguf | --tokenizer T.gguf | --vocab-size N) [--dim D --layers L ...] "
        "--steps N --out S.gguf",
        "Black-box distillation: learns from prompt/completion pairs (one JSON object per line: a\n"
        "harvest of an API, `retort data` output, or OpenAI's chat fine-tuning {\"messages\": [...]}).\n"
        "The loss is on completion tokens only (and the end token unless \"finish_reason\" is\n"
        "\"length\"). Where a line has log-probs (the API's alternatives per completion token)\n"
        "they are soft targets: --alpha of the loss is the divergence\n"
        "(--loss) to them, the rest cross-entropy on the token written. Examples are packed into rows of\n"
        "--seq-len tokens. A bad line stops the run with its line number (or --skip-bad)."};
    int prc = cli_parse(argc, argv, opts, n_opts, &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    int n_src = !!init_path + !!tok_path + !!vocab;
    if (n_src != 1 && !resume) {
        fprintf(stderr, "retort sft: error: give exactly one of --init S.gguf, --tokenizer T.gguf or --vocab-size N\n");
        return 2;
    }
    sft_load_opts lo;
    sft_load_defaults(&lo);
    if (!strcmp(format, "raw")) lo.format = SFT_FORMAT_RAW;
    else if (!strcmp(format, "chat")) lo.format = SFT_FORMAT_CHAT;
    else {
        fprintf(stderr, "retort sft: error: --format must be raw or chat (got '%s')\n", format);
        return 2;
    }
    if (kd_kind_parse(loss_name, &kp.kind)) {
        cli_fail("sft");
        return 2;
    }
    lo.soft = !no_soft && kp.kind != KD_CE;
    lo.skip_bad = skip_bad;
    cli_set_threads(threads);
    o.out_path = out;
    o.log_path = log_path;
    o.resume = resume;
    o.quiet = quiet;
    if (o.warmup >= o.steps) o.warmup = o.steps / 10;
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", out);

    model *m = NULL;
    sft_set set;
    memset(&set, 0, sizeof set);
    sft_run run;
    memset(&run, 0, sizeof run);
    int status = 1;
    train_result r = {0};
    double t0 = rt_now();
    if (sft_student(&m, init_path, cli_seen(opts, n_opts, "--seq-len"), &o, resume, ckpt, tok_path, data, vocab, &c,
                    untied))
        goto done;
    tokenizer_chat chat;
    if (lo.format == SFT_FORMAT_CHAT) {
        if (tokenizer_chat_detect(&chat, m->tok, m->chat_template, chat_name)) goto done;
        lo.chat = &chat;
        rt_info("chat format: %s", tokenizer_chat_family_name(chat.family));
    }
    if (sft_load_jsonl(&set, data, m->tok, &lo)) goto done;
    log_data(&set);
    if (resume) {
        distill_meta_check mc[] = {
            {"retort.sft.loss", "--loss", kd_kind_name(kp.kind), 0, 0, 0},
            {"retort.sft.alpha", "--alpha", NULL, 0, 0, kp.alpha},
            {"retort.sft.beta", "--beta", NULL, 0, 0, kp.beta},
        };
        if (distill_check_resume_meta(ckpt, mc, RT_ARRAY_LEN(mc))) goto done;
    }
    if (sft_run_init(&run, &kp, m, &set, val_fraction, o.batch, o.seq_len)) goto done;
    run.data_name = data;
    run.eval_max = eval_max;
    train_task task;
    sft_run_task(&run, &task);
    dataset hash_only = {0}; /* the trainer keys resume on ds->hash */
    hash_only.hash = set.hash;
    char np_s[16];
    rt_fmt_si(np_s, sizeof np_s, (double)m->n_params);
    rt_info("student: %s parameters (dim %zu, layers %zu, heads %zu/%zu, ffn %zu, vocab %zu); %zu training / %zu "
            "held-out examples",
            np_s, m->cfg.dim, m->cfg.n_layers, m->cfg.n_heads, m->cfg.n_kv_heads, m->cfg.ffn_dim, m->cfg.vocab_size,
            run.n_train, run.n_val);
    o.interrupt = cli_catch_interrupt(); /* SIGINT/SIGTERM: finish the step, save, say so */
    if (train_run(m, &hash_only, &o, &task, &r)) goto done;
    if (r.interrupted) {
        char logp[4096];
        snprintf(logp, sizeof logp, "%s%s", o.log_path ? o.log_path : o.out_path, o.log_path ? "" : ".log.jsonl");
        status = cli_report_interrupt("sft", r.steps_done, o.steps, ckpt, logp);
        goto done;
    }
    if (r.steps_done < o.steps) {
        rt_info("stopped at step %zu (checkpoint %s)", r.steps_done, ckpt);
    } else {
        if (isfinite(r.val_loss))
            rt_info("done: %zu steps, held-out loss %.4f nats/token on completions, %.0f tokens/s, %.1fs total",
                    r.steps_done, (double)r.val_loss, r.tokens_per_s, rt_now() - t0);
        else /* issue 17 #14 */
            rt_info("done: %zu steps, training loss %.4f (no held-out loss: %zu held-out examples), %.0f tokens/s, "
                    "%.1fs total",
                    r.steps_done, (double)r.train_loss, run.n_val, r.tokens_per_s, rt_now() - t0);
        rt_info("wrote %s", out);
    }
    status = 0;
done:
    if (status && !r.interrupted) cli_fail("sft");
    sft_run_free(&run);
    sft_set_free(&set);
    model_free(m);
    return status;
}
