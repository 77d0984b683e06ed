/*
 * cmd_train.c — `retort train`: corpus → tokenizer (trained here unless given) → token
 * shards with a held-out split → model → the trainer loop → M.gguf (+ .ckpt, .log.jsonl).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../model/model.h"
#include "../train/dist.h"
#include "../train/train.h"
#include "cli.h"

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The tokenizer (from the checkpoint when resuming: it must be the same; else given, or trained
 * on the text) and the token data (a shard directory, or the text split into training and
 * held-out windows). 0, or -1 with an error; *tok is set whenever it was made. */
static int train_data(const char *data, const char *ckpt, const char *tok_path, int resume, size_t vocab,
                      double val_fraction, tokenizer **tok_out, dataset *ds, size_t *text_len) {
    tokenizer *tok = NULL;
    int rc = -1;
    if (resume) {
        if (!rt_file_exists(ckpt)) {
            RT_FAIL("--resume: no checkpoint at %s", ckpt);
            goto out;
        }
        if (tokenizer_load(&tok, ckpt)) goto out;
    } else if (tok_path) {
        if (tokenizer_load(&tok, tok_path)) goto out;
    }
    if (is_dir(data)) {
        if (!tok) {
            RT_FAIL("--data %s is a shard directory: give --tokenizer M.gguf (the tokenizer that made it)", data);
            goto out;
        }
        rc = dataset_load(ds, data, tokenizer_vocab_size(tok));
        goto out;
    }
    char *text;
    size_t len;
    if (rt_read_file(data, &text, &len)) goto out;
    if (len == 0) {
        free(text);
        RT_FAIL("%s: the training text is empty", data);
        goto out;
    }
    if (!tok) {
        double tt = rt_now();
        rt_info("training a %zu-token byte-level BPE tokenizer on %s (%.1f MB)...", vocab, data, len / 1e6);
        if (tokenizer_train(&tok, text, len, vocab)) {
            free(text);
            goto out;
        }
        rt_info("tokenizer: %zu tokens in %.1fs", tokenizer_vocab_size(tok), rt_now() - tt);
    }
    *text_len = len;
    rc = dataset_from_text(ds, tok, text, len, val_fraction, 32 * 1024);
    free(text);
out:
    *tok_out = tok;
    return rc;
}

/* The closing line: where a stopped run's checkpoint is, or the final loss (held-out when
 * there was a held-out window) and the throughput. */
static void say_done(const train_result *r, size_t steps, double h_uni, double t0, const char *out, const char *ckpt) {
    if (r->steps_done < steps) {
        rt_info("stopped at step %zu (checkpoint %s)", r->steps_done, ckpt);
    } else {
        char fl[16];
        rt_fmt_si(fl, sizeof fl, r->flops);
        if (isfinite(r->val_loss))
            rt_info("done: %zu steps, final held-out loss %.4f nats/token (unigram entropy %.4f; ratio "
                    "%.3f), %.0f tokens/s, %s training FLOPs, %.1fs total",
                    r->steps_done, (double)r->val_loss, h_uni, (double)r->val_loss / h_uni, r->tokens_per_s,
                    fl, rt_now() - t0);
        else
            rt_info("done: %zu steps, final training loss %.4f (no held-out evaluation: the held-out "
                    "text is shorter than one --seq-len window), %.0f tokens/s, %s training FLOPs, "
                    "%.1fs total",
                    r->steps_done, (double)r->train_loss, r->tokens_per_s, fl, rt_now() - t0);
        rt_info("wrote %s", out);
    }
}

int cmd_train(int argc, char **argv) {
    const char *data = NULL, *tok_path = NULL, *out = NULL, *shards = NULL, *log_path = NULL;
    size_t vocab = 2048, threads = 0, eval_batches = 8;
    model_config c = {.dim = 256, .n_layers = 6, .n_heads = 8, .n_kv_heads = 4, .ffn_dim = 704,
                      .norm_eps = 1e-5f, .rope_base = 10000.0f};
    train_options o;
    train_options_defaults(&o);
    double val_fraction = 0.05;
    int untied = 0, resume = 0, quiet = 0;
    const char *arch_s = NULL;
    cli_opt opts[CLI_MAX_OPTS] = {
        {"--data", CLI_STR, &data, "FILE: training text (or a directory of token shards)", 1, 0},
        {"--tokenizer", CLI_STR, &tok_path, "M.gguf: reuse this model file's tokenizer", 0, 0},
        {"--vocab-size", CLI_SIZE, &vocab, "train a byte-level BPE of this size first (default 2048)", 0, 0},
        {"--arch", CLI_STR, &arch_s, "llama | qwen2 (Q/K/V biases) | qwen3 (Q/K norms) (default llama)", 0, 0},
        {"--eval-batches", CLI_SIZE, &eval_batches, "held-out batches per eval (default 8)", 0, 0},
        {"--val-fraction", CLI_DOUBLE, &val_fraction, "share of the text held out (default 0.05)", 0, 0},
        {"--threads", CLI_SIZE, &threads, "worker threads (default: all cores)", 0, 0},
        {"--out", CLI_STR, &out, "M.gguf: the trained model (checkpoint M.gguf.ckpt, log M.gguf.log.jsonl)", 1, 0},
        {"--log", CLI_STR, &log_path, "FILE: JSONL step log (default M.gguf.log.jsonl)", 0, 0},
        {"--shards", CLI_STR, &shards, "DIR: also write the token shards (train.bin, val.bin) here", 0, 0},
        {"--resume", CLI_FLAG, &resume, "continue from M.gguf.ckpt (same options required)", 0, 0},
        {"--quiet", CLI_FLAG, &quiet, "no progress bar", 0, 0},
    };
    size_t n_opts = cli_count(opts, CLI_MAX_OPTS);
    n_opts += cli_shape_opts(opts + n_opts, &c, &untied);
    n_opts += cli_train_opts(opts + n_opts, &o);
    cli_cmd_info info = {
        "train",
        "retort train --data FILE [--tokenizer M.gguf | --vocab-size N] [--dim D --layers L --heads H "
        "--kv-heads K --ffn F --seq-len T --batch B --steps S ...] --out M.gguf [--resume]",
        "Trains a Llama-architecture model on a text corpus. Without --tokenizer, a byte-level BPE\n"
        "tokenizer is trained on the text first and stored in the model file. The text is split into\n"
        "training and held-out parts; held-out loss is evaluated every --eval-every steps. A checkpoint\n"
        "(weights, AdamW state, step, RNG) is written atomically every --save-every steps and at the end;\n"
        "--resume continues from it to the bit-identical result of an uninterrupted run."};
    int prc = cli_parse(argc, argv, opts, n_opts, &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (arch_s && (c.arch = model_arch_from_name(arch_s, strlen(arch_s))) < 0) {
        fprintf(stderr, "retort train: error: --arch '%s': expected llama, qwen2 or qwen3\n", arch_s);
        return 2;
    }
    if (tok_path && cli_seen(opts, n_opts, "--vocab-size")) {
        fprintf(stderr, "retort train: error: give --tokenizer or --vocab-size, not both\n");
        return 2;
    }
    cli_set_threads(threads);
    o.eval_batches = eval_batches;
    o.out_path = out;
    o.log_path = log_path;
    o.resume = resume;
    o.quiet = quiet;
    c.tied = !untied;
    c.ctx_len = o.seq_len;
    if (o.warmup >= o.steps) o.warmup = o.steps / 10;
    o.interrupt = cli_catch_interrupt(); /* SIGINT/SIGTERM: finish the step, save, say so */
    /* the model's shape is checked before the (slow) tokenizer training, not after it
     * (issue 17 #23); the vocabulary size is checked again once the tokenizer is known */
    {
        model_config early = c;
        early.vocab_size = vocab ? vocab : 256;
        if (!tok_path && !resume && vocab < 256 + TOKENIZER_N_SPECIAL) {
            fprintf(stderr, "retort train: error: --vocab-size %zu is too small (at least %d: 256 bytes + %d special "
                            "tokens)\n", vocab, 256 + TOKENIZER_N_SPECIAL, TOKENIZER_N_SPECIAL);
            return 2;
        }
        if (model_config_validate(&early) || train_options_check(&o)) {
            cli_fail("train");
            return 2;
        }
    }

    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", out);
    tokenizer *tok = NULL;
    dataset ds = {0};
    model *m = NULL;
    int status = 1;
    double t0 = rt_now();
    size_t text_len = 0;
    if (train_data(data, ckpt, tok_path, resume, vocab, val_fraction, &tok, &ds, &text_len)) goto fail;
    if (shards && dist_rank() == 0 && dataset_save(&ds, shards, tokenizer_vocab_size(tok))) goto fail;
    c.vocab_size = tokenizer_vocab_size(tok);
    if (model_create(&m, &c, tok)) goto fail;
    tok = NULL; /* owned by the model */
    model_init_weights(m, o.seed);
    double h_uni = dataset_unigram_entropy(ds.val, ds.n_val, m->cfg.vocab_size);
    double fpt = model_config_train_flops_per_token(&m->cfg, o.seq_len);
    char np_s[16], fl_s[16];
    rt_fmt_si(np_s, sizeof np_s, (double)m->n_params);
    rt_fmt_si(fl_s, sizeof fl_s, fpt * (double)o.steps * (double)(o.batch * o.seq_len) * (double)dist_size() *
                                     (double)(o.grad_accum ? o.grad_accum : 1));
    rt_info("data: %zu training tokens, %zu held-out tokens (%.2f bytes/token); held-out unigram "
            "entropy %.4f nats",
            ds.n_train, ds.n_val, text_len ? (double)text_len / (double)(ds.n_train + ds.n_val) : 0.0,
            h_uni);
    rt_info("model: %s parameters (dim %zu, layers %zu, heads %zu/%zu, ffn %zu, vocab %zu, %s); "
            "%s training FLOPs planned",
            np_s, m->cfg.dim, m->cfg.n_layers, m->cfg.n_heads, m->cfg.n_kv_heads, m->cfg.ffn_dim,
            m->cfg.vocab_size, m->cfg.tied ? "tied" : "untied", fl_s);
    train_result r;
    if (train_run(m, &ds, &o, NULL, &r)) goto fail;
    if (r.interrupted) {
        char logp[4096];
        snprintf(logp, sizeof logp, "%s%s", log_path ? log_path : out, log_path ? "" : ".log.jsonl");
        status = cli_report_interrupt("train", r.steps_done, o.steps, ckpt, logp);
        goto done;
    }
    say_done(&r, o.steps, h_uni, t0, out, ckpt);
    status = 0;
fail:
    if (status) cli_fail("train");
done:
    tokenizer_free(tok);
    model_free(m);
    dataset_free(&ds);
    return status;
}
