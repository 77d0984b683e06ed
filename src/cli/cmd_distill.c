/*
 * cmd_distill.c — `retort distill`: white-box distillation. A student (fresh, of the given
 * shape, or --init) learns the teacher's next-token distributions on a text corpus, from a
 * live teacher (full vocabulary or --top-k) or a teacher cache, optionally on-policy (GKD).
 * Same trainer as `retort train`: progress bar, held-out eval (with KL to a live teacher and
 * top-1 agreement), JSONL log, atomic checkpoints and --resume.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../distill/distill.h"
#include "../model/model.h"
#include "../train/train.h"
#include "cli.h"

/* The student: --init's model (its context must hold --seq-len), or a new one of the shape
 * flags with the tokenizer of --tokenizer, else the teacher's (its file, or the cache's copy). */
static int distill_student(model **student, const char **student_name, const char *init_path, const char *tok_path,
                           const char *teacher_path, kd_cache *cache, size_t seq_len, uint64_t seed, model_config *c,
                           int untied) {
    tokenizer *stok = NULL;
    if (init_path) {
        if (model_load(student, init_path)) return -1;
        if (!(*student)->tok) {
            RT_FAIL("%s has no tokenizer", init_path);
            return -1;
        }
        *student_name = init_path;
        if (seq_len > (*student)->cfg.ctx_len) {
            RT_FAIL("--seq-len %zu exceeds %s's context length %zu", seq_len, init_path, (*student)->cfg.ctx_len);
            return -1;
        }
    } else {
        if (tok_path) {
            if (tokenizer_load(&stok, tok_path)) return -1;
            *student_name = tok_path;
        } else if (!cache) {
            if (tokenizer_load(&stok, teacher_path)) return -1;
        } else {
            if (kd_cache_load_tokenizer(cache, &stok)) return -1;
        }
        c->tied = !untied;
        c->ctx_len = seq_len;
        if (distill_new_student(student, c, stok, seed)) return -1; /* takes the tokenizer */
    }
    return 0;
}

/* The run in two or three lines: both models' sizes, the loss and where the teacher's
 * distributions come from, the data, on-policy sampling. */
static void describe(const model *student, const model *teacher, kd_cache *cache, const distill_opts *dop,
                     const distill_run *run, const dataset *ds, size_t seq_len) {
    char np_s[16], tp_s[16];
    rt_fmt_si(np_s, sizeof np_s, (double)student->n_params);
    rt_fmt_si(tp_s, sizeof tp_s, (double)(teacher ? teacher->n_params : kd_cache_get_info(cache)->teacher_params));
    rt_info("student: %s parameters (dim %zu, layers %zu, heads %zu/%zu, ffn %zu); teacher: %s parameters (%s)",
            np_s, student->cfg.dim, student->cfg.n_layers, student->cfg.n_heads, student->cfg.n_kv_heads,
            student->cfg.ffn_dim, tp_s, dop->teacher_name);
    char tdesc[64];
    if (dop->loss.kind == KD_CE) snprintf(tdesc, sizeof tdesc, "not used by the loss");
    else snprintf(tdesc, sizeof tdesc, "%s, %s", cache ? "cache" : "live", run->k ? "top-k + rest" : "full vocabulary");
    rt_info("loss %s (beta %g, temperature %g, alpha %g), teacher %s (k = %zu); data: %zu training / %zu held-out "
            "tokens",
            kd_kind_name(dop->loss.kind), (double)dop->loss.beta, (double)dop->loss.temperature, (double)dop->loss.alpha,
            tdesc, run->k, ds->n_train, ds->n_val);
    if (dop->on_policy > 0) rt_info("on-policy: lambda %g, prompt %zu tokens, sampling temperature %g", (double)dop->on_policy,
                                   dop->on_policy_prompt ? dop->on_policy_prompt : seq_len / 2, (double)dop->on_policy_temperature);
}

/* The closing line: where a stopped run's checkpoint is, or the final loss (held-out when the
 * held-out part holds a window; issue 17 #14: never "held-out loss nan"). */
static void say_done(const train_result *r, size_t steps, size_t seq_len, size_t n_val, double t0, const char *out,
                     const char *ckpt) {
    if (r->steps_done < steps) {
        rt_info("stopped at step %zu (checkpoint %s)", r->steps_done, ckpt);
    } else {
        if (isfinite(r->val_loss))
            rt_info("done: %zu steps, held-out loss %.4f nats/token, %.0f tokens/s, %.1fs total", r->steps_done,
                    (double)r->val_loss, r->tokens_per_s, rt_now() - t0);
        else /* issue 17 #14: not "held-out loss nan" */
            rt_info("done: %zu steps, training loss %.4f (no held-out loss: the held-out part has %zu tokens, "
                    "fewer than one --seq-len window of %zu + 1), %.0f tokens/s, %.1fs total",
                    r->steps_done, (double)r->train_loss, n_val, seq_len, r->tokens_per_s, rt_now() - t0);
        rt_info("wrote %s", out);
    }
}

/* A teacher cache holds windows of the training tokens it was built from: refuse other data. */
static int cache_matches(const kd_cache *cache, const char *cache_path, const dataset *ds, const char *data) {
    const kd_cache_info *ci = kd_cache_get_info(cache);
    size_t need = ci->n_windows * ci->seq_len + 1;
    if (ds->n_train < need || rt_fnv1a64(ds->train, need * sizeof(int32_t)) != ci->data_hash) {
        RT_FAIL("%s was built from other data than --data %s (or with another --val-fraction): the cached "
                "windows do not match its training tokens. Rebuild it: retort cache-teacher --data %s ...",
                cache_path, data, data);
        return -1;
    }
    return 0;
}

/* Resuming: the checkpoint's recipe (loss, its parameters, the teacher) must be this run's. */
static int same_recipe(const char *ckpt, const distill_opts *dop) {
    distill_meta_check mc[] = {
        {"retort.distill.loss", "--loss", kd_kind_name(dop->loss.kind), 0, 0, 0},
        {"retort.distill.beta", "--beta", NULL, 0, 0, dop->loss.beta},
        {"retort.distill.temperature", "--temperature", NULL, 0, 0, dop->loss.temperature},
        {"retort.distill.alpha", "--alpha", NULL, 0, 0, dop->loss.alpha},
        {"retort.distill.on_policy", "--on-policy", NULL, 0, 0, dop->on_policy},
        {"retort.distill.teacher", "--teacher/--teacher-cache", dop->teacher_name, 0, 0, 0},
    };
    return distill_check_resume_meta(ckpt, mc, RT_ARRAY_LEN(mc));
}

int cmd_distill(int argc, char **argv) {
    const char *teacher_path = NULL, *cache_path = NULL, *data = NULL, *out = NULL, *log_path = NULL;
    const char *init_path = NULL, *tok_path = NULL, *loss_name = "fkl";
    size_t threads = 0, eval_batches = 8, top_k = 0, on_policy_prompt = 0;
    float on_policy = 0, on_policy_temp = 1.0f;
    model_config c = {.dim = 128, .n_layers = 4, .n_heads = 4, .n_kv_heads = 2, .ffn_dim = 352,
                      .norm_eps = 1e-5f, .rope_base = 10000.0f};
    train_options o;
    train_options_defaults(&o);
    kd_params kp = kd_params_defaults();
    double val_fraction = 0.05;
    int untied = 0, resume = 0, quiet = 0;
    const char *arch_s = NULL;
    cli_opt opts[CLI_MAX_OPTS] = {
        {"--teacher", CLI_STR, &teacher_path, "T.gguf: the live teacher", 0, 0},
        {"--teacher-cache", CLI_STR, &cache_path, "CACHE: a teacher cache from retort cache-teacher", 0, 0},
        {"--data", CLI_STR, &data, "FILE: training text (or a shard directory); its held-out part is used for eval", 1, 0},
        {"--loss", CLI_STR, &loss_name, "ce | fkl | rkl | jsd (default fkl)", 0, 0},
        {"--beta", CLI_FLOAT, &kp.beta, "JSD interpolation: 0 = forward KL, 1 = reverse KL (default 0.5)", 0, 0},
        {"--temperature", CLI_FLOAT, &kp.temperature, "softmax temperature of both sides; loss x tau^2 (default 1)", 0, 0},
        {"--alpha", CLI_FLOAT, &kp.alpha, "weight of the distillation term; 1-alpha on hard-label CE (default 1)", 0, 0},
        {"--top-k", CLI_SIZE, &top_k, "live teacher: keep its top-k and one rest bucket, 0 = full vocabulary (default 0)", 0, 0},
        {"--on-policy", CLI_FLOAT, &on_policy, "lambda: share of batches the student samples and the teacher scores (default 0)", 0, 0},
        {"--on-policy-prompt", CLI_SIZE, &on_policy_prompt, "prompt tokens kept from each window (default seq-len/2)", 0, 0},
        {"--on-policy-temperature", CLI_FLOAT, &on_policy_temp, "student sampling temperature (default 1)", 0, 0},
        {"--init", CLI_STR, &init_path, "S.gguf: start from this student (its shape and tokenizer)", 0, 0},
        {"--tokenizer", CLI_STR, &tok_path, "M.gguf: the student's tokenizer (default: the teacher's)", 0, 0},
        {"--arch", CLI_STR, &arch_s, "llama | qwen2 (Q/K/V biases) | qwen3 (Q/K norms) (default llama)", 0, 0},
        {"--eval-batches", CLI_SIZE, &eval_batches, "held-out batches per eval (default 8)", 0, 0},
        {"--val-fraction", CLI_DOUBLE, &val_fraction, "share of the text held out (default 0.05, as train)", 0, 0},
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
        "distill",
        "retort distill (--teacher T.gguf | --teacher-cache CACHE) --data FILE [--loss ce|fkl|rkl|jsd --beta B "
        "--temperature X --alpha A --top-k K --on-policy L] [--init S.gguf | --dim D --layers L ...] --steps N "
        "--out S.gguf",
        "White-box distillation: the student matches the teacher's next-token distribution at every\n"
        "position of the training text. Losses: ce (hard labels only, the from-scratch baseline), fkl =\n"
        "KL(teacher||student), rkl = KL(student||teacher) (MiniLLM), jsd = TRL's generalized JSD(beta).\n"
        "--top-k keeps the teacher's k most likely tokens and the rest of its mass as one bucket (what a\n"
        "teacher cache stores). --on-policy L: that share of batches keeps the first half of each window\n"
        "and lets the student write the rest, which the teacher then scores (GKD). Student and teacher\n"
        "must share the tokenizer; the student gets the teacher's unless --init/--tokenizer say otherwise."};
    int prc = cli_parse(argc, argv, opts, n_opts, &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (arch_s && (c.arch = model_arch_from_name(arch_s, strlen(arch_s))) < 0) {
        fprintf(stderr, "retort distill: error: --arch '%s': expected llama, qwen2 or qwen3\n", arch_s);
        return 2;
    }
    if (!!teacher_path == !!cache_path) {
        fprintf(stderr, "retort distill: error: give exactly one of --teacher T.gguf or --teacher-cache CACHE\n");
        return 2;
    }
    if (init_path && tok_path) {
        fprintf(stderr, "retort distill: error: --init brings its own tokenizer; drop --tokenizer\n");
        return 2;
    }
    if (kd_kind_parse(loss_name, &kp.kind)) {
        cli_fail("distill");
        return 2;
    }
    cli_set_threads(threads);
    o.eval_batches = eval_batches;
    o.out_path = out;
    o.log_path = log_path;
    o.resume = resume;
    o.quiet = quiet;
    if (o.warmup >= o.steps) o.warmup = o.steps / 10;
    distill_opts dop;
    distill_opts_defaults(&dop);
    dop.loss = kp;
    dop.top_k = top_k;
    dop.on_policy = on_policy;
    dop.on_policy_prompt = on_policy_prompt;
    dop.on_policy_temperature = on_policy_temp;
    dop.teacher_name = teacher_path ? teacher_path : cache_path;

    model *teacher = NULL, *student = NULL;
    kd_cache *cache = NULL;
    tokenizer *ttok = NULL;
    dataset ds = {0};
    distill_run run;
    memset(&run, 0, sizeof run);
    int status = 1;
    train_result r = {0};
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", out);
    double t0 = rt_now();
    /* teacher side */
    if (teacher_path) {
        if (model_load(&teacher, teacher_path)) goto done;
        if (!teacher->tok) {
            RT_FAIL("%s has no tokenizer", teacher_path);
            goto done;
        }
    } else {
        if (kd_cache_open(&cache, cache_path) || kd_cache_load_tokenizer(cache, &ttok)) goto done;
        /* the cache fixes the window length and the temperature unless the user says otherwise
         * (a different value is then refused with the reason) */
        const kd_cache_info *ci = kd_cache_get_info(cache);
        if (!cli_seen(opts, n_opts, "--seq-len")) o.seq_len = ci->seq_len;
        if (!cli_seen(opts, n_opts, "--temperature")) dop.loss.temperature = ci->temperature;
    }
    const tokenizer *teacher_tok = teacher ? teacher->tok : ttok;
    const char *student_name = "the new student";
    if (distill_student(&student, &student_name, init_path, tok_path, teacher_path, cache, o.seq_len, o.seed, &c,
                        untied))
        goto done;
    if (kd_vocab_check(student->tok, student_name, teacher_tok, dop.teacher_name)) goto done;
    /* data: the same split as train */
    if (distill_text_dataset(&ds, student->tok, data, val_fraction)) goto done;
    if (cache && cache_matches(cache, cache_path, &ds, data)) goto done;
    if (resume && same_recipe(ckpt, &dop)) goto done;
    if (distill_run_init(&run, &dop, student, teacher, cache, &ds, o.batch, o.seq_len, eval_batches)) goto done;
    train_task task;
    distill_run_task(&run, &task);
    describe(student, teacher, cache, &dop, &run, &ds, o.seq_len);
    o.interrupt = cli_catch_interrupt(); /* SIGINT/SIGTERM: finish the step, save, say so */
    if (train_run(student, &ds, &o, &task, &r)) goto done;
    if (r.interrupted) {
        char logp[4096];
        snprintf(logp, sizeof logp, "%s%s", o.log_path ? o.log_path : o.out_path, o.log_path ? "" : ".log.jsonl");
        status = cli_report_interrupt("distill", r.steps_done, o.steps, ckpt, logp);
        goto done;
    }
    say_done(&r, o.steps, o.seq_len, ds.n_val, t0, out, ckpt);
    status = 0;
done:
    if (status && !r.interrupted) cli_fail("distill");
    distill_run_free(&run);
    dataset_free(&ds);
    model_free(student);
    model_free(teacher);
    kd_cache_close(cache);
    tokenizer_free(ttok);
    return status;
}
