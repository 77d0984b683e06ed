/*
 * cmd_eval.c — `retort eval`: one JSON object on stdout saying how good a model is on
 * held-out data and how close it is to a teacher:
 *   {"loss": nats/token, "ppl": ..., "kl": KL(teacher‖model), "top1_agreement": ...,
 *    "accuracy": ..., "tokens": ..., ...}
 * ("kl" and "top1_agreement" only with --teacher, "accuracy" only with --task). The demo and
 * the guard parse this object: keep the key names. --json-out also writes it to a file.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../distill/distill.h"
#include "../model/model.h"
#include "../train/dist.h"
#include "../train/train.h"
#include "cli.h"

/* JSONL (prompt/completion) rather than plain text: by extension, or a first '{' */
static int looks_jsonl(const char *path) {
    size_t n = strlen(path);
    if (n >= 6 && !strcmp(path + n - 6, ".jsonl")) return 1;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int c;
    while ((c = fgetc(f)) == ' ' || c == '\n' || c == '\r' || c == '\t') {}
    fclose(f);
    return c == '{';
}

static void set_num(json_t *o, const char *k, double v) {
    json_object_set_new(o, k, isfinite(v) ? json_real(v) : json_null());
}

/* Plain text: the held-out part (split "val", as train holds it out) or the whole file in
 * order, scored in windows of T tokens (default: the context), at most max_tokens of them. */
static int eval_text(const char *data, const char *split, double val_fraction, model *m, model *t, size_t T, size_t B,
                     size_t max_tokens, size_t max_windows, dataset *ds, distill_eval_result *r) {
    const int32_t *tokens = NULL;
    size_t n = 0;
    int32_t *all = NULL;
    if (!strcmp(split, "val")) {
        if (distill_text_dataset(ds, m->tok, data, val_fraction)) return -1;
        tokens = ds->val;
        n = ds->n_val;
    } else {
        /* the whole file as one stream, in order */
        char *text;
        size_t len;
        if (rt_read_file(data, &text, &len)) return -1;
        int rc = tokenizer_encode(m->tok, text, len, 0, &all, &n);
        free(text);
        if (rc) return -1;
        tokens = all;
    }
    size_t TT = T ? T : m->cfg.ctx_len;
    if (t) TT = RT_MIN(TT, t->cfg.ctx_len);
    if (max_tokens && TT) {
        size_t w = (max_tokens + TT - 1) / TT; /* whole windows covering max_tokens */
        if (!max_windows || w < max_windows) max_windows = w;
    }
    int rc = distill_eval_text(m, t, tokens, n, TT, B, max_windows, r);
    free(all);
    return rc;
}

/* The result line: what was measured on what, with the teacher's and the task's numbers when
 * there were any (NULL when out of memory). */
static json_t *result_json(const char *label, const char *model_path, const char *data, const model *m,
                           const model *t, const char *teacher_path, const char *task, const distill_eval_result *r,
                           const distill_eval_result *ra) {
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "label", json_string(label));
    json_object_set_new(o, "model", json_string(model_path));
    json_object_set_new(o, "data", json_string(data));
    json_object_set_new(o, "params", json_integer((json_int_t)m->n_params));
    json_object_set_new(o, "tokens", json_integer((json_int_t)r->n_tokens));
    set_num(o, "loss", r->loss);
    set_num(o, "ppl", r->ppl);
    if (t) {
        json_object_set_new(o, "teacher", json_string(teacher_path));
        json_object_set_new(o, "teacher_params", json_integer((json_int_t)t->n_params));
        set_num(o, "kl", r->kl);
        set_num(o, "top1_agreement", r->top1_agreement);
    }
    if (task) {
        json_object_set_new(o, "task", json_string(task));
        set_num(o, "accuracy", ra->accuracy);
        json_object_set_new(o, "correct", json_integer((json_int_t)ra->n_correct));
        json_object_set_new(o, "examples", json_integer((json_int_t)ra->n_examples));
    }
    return o;
}

int cmd_eval(int argc, char **argv) {
    const char *model_path = NULL, *data = NULL, *teacher_path = NULL, *task = NULL, *json_out = NULL;
    const char *split = "val", *samples_path = NULL, *label = NULL, *format = "raw";
    size_t T = 0, B = 8, max_windows = 0, max_examples = 0, max_new = 0, max_tokens = 0, threads = 0;
    double val_fraction = 0.05;
    int skip_bad = 0;
    cli_opt opts[] = {
        {"--model", CLI_STR, &model_path, "S.gguf: the model to evaluate", 1, 0},
        {"--data", CLI_STR, &data, "FILE: text, or JSONL {\"prompt\", \"completion\"} examples", 1, 0},
        {"--teacher", CLI_STR, &teacher_path, "T.gguf: also report KL(teacher||model) and top-1 agreement", 0, 0},
        {"--task", CLI_STR, &task, "arith: also report exact-match accuracy of greedy answers", 0, 0},
        {"--json-out", CLI_STR, &json_out, "FILE: also write the JSON object here", 0, 0},
        {"--label", CLI_STR, &label, "TEXT: a name for this result (default: the model file)", 0, 0},
        {"--split", CLI_STR, &split, "text: val (the held-out part train/distill keep aside) or all (default val)", 0, 0},
        {"--val-fraction", CLI_DOUBLE, &val_fraction, "text: held-out share, as in train (default 0.05)", 0, 0},
        {"--format", CLI_STR, &format, "with JSONL: raw or chat, as the model was trained (default raw)", 0, 0},
        {"--seq-len", CLI_SIZE, &T, "text: window length (default: the model's context)", 0, 0},
        {"--batch", CLI_SIZE, &B, "rows per forward pass / sequences decoded together (default 8)", 0, 0},
        {"--max-windows", CLI_SIZE, &max_windows, "text: score at most this many windows, 0 = all", 0, 0},
        {"--max-examples", CLI_SIZE, &max_examples, "with JSONL: score at most this many examples, 0 = all", 0, 0},
        {"--max-tokens", CLI_SIZE, &max_tokens,
         "score about this many tokens: whole windows (text) or examples (JSONL) until reached, 0 = all", 0, 0},
        {"--max-new", CLI_SIZE, &max_new, "task: tokens generated per answer (default: the context)", 0, 0},
        {"--samples", CLI_STR, &samples_path, "FILE: task: write each prompt, generation and verdict here", 0, 0},
        {"--threads", CLI_SIZE, &threads, "worker threads (default: all cores)", 0, 0},
        {"--skip-bad", CLI_FLAG, &skip_bad, "with JSONL: report bad lines and score the rest (default: stop)", 0, 0},
    };
    cli_cmd_info info = {
        "eval",
        "retort eval --model S.gguf --data FILE [--teacher T.gguf] [--task arith] [--json-out F]",
        "Prints one JSON object: \"loss\" (mean nats/token on the held-out text, or on the completion\n"
        "tokens of JSONL examples) and \"ppl\"; with --teacher, \"kl\" (mean KL(teacher||model) per token,\n"
        "full vocabulary, temperature 1) and \"top1_agreement\"; with --task arith, \"accuracy\" (exact\n"
        "match of the final answer of greedy generations). For a text file, --split val scores the part\n"
        "retort train/distill held out with the same --val-fraction."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (task && strcmp(task, "arith")) {
        fprintf(stderr, "retort eval: error: --task must be arith (got '%s')\n", task);
        return 2;
    }
    if (strcmp(split, "val") && strcmp(split, "all")) {
        fprintf(stderr, "retort eval: error: --split must be val or all\n");
        return 2;
    }
    if (B == 0) {
        fprintf(stderr, "retort eval: error: --batch must be > 0\n");
        return 2;
    }
    cli_set_threads(threads);
    model *m = NULL, *t = NULL;
    dataset ds = {0};
    sft_set set;
    memset(&set, 0, sizeof set);
    FILE *samples = NULL;
    json_t *o = NULL;
    int status = 1;
    distill_eval_result r, ra;
    memset(&r, 0, sizeof r);
    memset(&ra, 0, sizeof ra);
    if (model_load(&m, model_path)) goto done;
    if (!m->tok) {
        RT_FAIL("%s has no tokenizer", model_path);
        goto done;
    }
    if (teacher_path) {
        if (model_load(&t, teacher_path)) goto done;
        if (!t->tok) {
            RT_FAIL("%s has no tokenizer", teacher_path);
            goto done;
        }
        if (kd_vocab_check(m->tok, model_path, t->tok, teacher_path)) goto done;
    }
    int jsonl = looks_jsonl(data);
    if (task && !jsonl) {
        RT_FAIL("--task arith needs JSONL examples (retort data arith writes them); %s looks like plain text", data);
        goto done;
    }
    if (jsonl) {
        sft_load_opts lo;
        sft_load_defaults(&lo);
        lo.soft = 0;
        tokenizer_chat chat;
        if (!strcmp(format, "chat")) {
            lo.format = SFT_FORMAT_CHAT;
            if (tokenizer_chat_detect(&chat, m->tok, m->chat_template, NULL)) goto done;
            lo.chat = &chat;
        } else if (strcmp(format, "raw")) {
            RT_FAIL("--format must be raw or chat");
            goto done;
        }
        lo.max_examples = max_examples;
        lo.skip_bad = skip_bad;
        if (sft_load_jsonl(&set, data, m->tok, &lo)) goto done;
        if (max_tokens) {
            /* the first examples whose completion tokens reach max_tokens (at least one) */
            size_t e = 0, got = 0;
            while (e < set.n_ex && got < max_tokens) {
                got += set.off[e + 1] - set.off[e] - set.n_prompt[e];
                e++;
            }
            if (!max_examples || e < max_examples) max_examples = e;
        }
        if (distill_eval_examples(m, t, &set, max_examples, B, &r)) goto done;
        if (task) {
            if (samples_path && dist_rank() == 0 && !(samples = fopen(samples_path, "w"))) {
                RT_FAIL("%s: cannot open for writing", samples_path);
                goto done;
            }
            size_t mn = max_new ? max_new : m->cfg.ctx_len;
            if (distill_eval_arith(m, &set, max_examples, RT_MAX(B, (size_t)16), mn, samples, &ra)) goto done;
        }
    } else if (eval_text(data, split, val_fraction, m, t, T, B, max_tokens, max_windows, &ds, &r)) {
        goto done;
    }
    o = result_json(label ? label : model_path, model_path, data, m, t, teacher_path, task, &r, &ra);
    if (!o) goto done;
    char *js = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(8));
    if (!js) {
        RT_FAIL("out of memory formatting the result");
        goto done;
    }
    if (dist_rank() == 0) /* under mpirun every rank holds the same result; rank 0 reports it */
        printf("%s\n", js);
    fflush(stdout);
    int wr = 0;
    if (json_out && dist_rank() == 0) {
        rt_buf b = {0};
        wr = rt_buf_printf(&b, "%s\n", js) || rt_write_file_atomic(json_out, b.data, b.len);
        rt_buf_free(&b);
    }
    free(js);
    if (wr) goto done;
    status = 0;
done:
    if (status) cli_fail("eval");
    if (samples) fclose(samples);
    json_decref(o);
    sft_set_free(&set);
    dataset_free(&ds);
    model_free(m);
    model_free(t);
    return status;
}
