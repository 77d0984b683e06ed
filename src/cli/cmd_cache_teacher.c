/*
 * cmd_cache_teacher.c — `retort cache-teacher`: run a teacher once over the training part of
 * a corpus (the same split distill and train use) and store its top-k log-probs per
 * position, so students can be distilled later without it. Prints one JSON line with the
 * size (bytes/token) to stdout.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../distill/distill.h"
#include "../model/model.h"
#include "../train/dist.h"
#include "cli.h"

int cmd_cache_teacher(int argc, char **argv) {
    const char *teacher_path = NULL, *data = NULL, *out = NULL;
    size_t threads = 0;
    double val_fraction = 0.05;
    kd_cache_build_opts o;
    kd_cache_build_defaults(&o);
    size_t level = (size_t)o.zstd_level;
    int quiet = 0;
    cli_opt opts[] = {
        {"--teacher", CLI_STR, &teacher_path, "T.gguf: the teacher", 1, 0},
        {"--data", CLI_STR, &data, "FILE: the text (or shard directory) students will be distilled on", 1, 0},
        {"--top-k", CLI_SIZE, &o.top_k, "token log-probs kept per position (default 64)", 0, 0},
        {"--out", CLI_STR, &out, "CACHE: the cache file", 1, 0},
        {"--seq-len", CLI_SIZE, &o.seq_len, "window length; distill with the same --seq-len (default 256)", 0, 0},
        {"--batch", CLI_SIZE, &o.batch, "windows per teacher forward (default 8)", 0, 0},
        {"--temperature", CLI_FLOAT, &o.temperature, "teacher softmax temperature (default 1)", 0, 0},
        {"--lp-step", CLI_FLOAT, &o.lp_step, "log-prob quantization step in nats (default 1/64 = 0.015625)", 0, 0},
        {"--zstd-level", CLI_SIZE, &level, "zstd compression level 1..22 (default 9)", 0, 0},
        {"--max-windows", CLI_SIZE, &o.max_windows, "cache at most this many windows, 0 = all (default 0)", 0, 0},
        {"--val-fraction", CLI_DOUBLE, &val_fraction, "held-out share, as in train/distill (default 0.05)", 0, 0},
        {"--threads", CLI_SIZE, &threads, "worker threads (default: all cores)", 0, 0},
        {"--quiet", CLI_FLAG, &quiet, "no progress bar", 0, 0},
    };
    cli_cmd_info info = {
        "cache-teacher",
        "retort cache-teacher --teacher T.gguf --data FILE --top-k K --out CACHE [--seq-len T --temperature X "
        "--lp-step S --zstd-level L]",
        "Runs the teacher over the training part of FILE in windows of --seq-len tokens and stores, for\n"
        "every position, its top-k token ids, their log-probs (quantized to --lp-step nats) and the log of\n"
        "the remaining mass, zstd-compressed, together with the teacher's tokenizer. `retort distill\n"
        "--teacher-cache CACHE --data FILE` then trains students without running the teacher. Prints\n"
        "{\"bytes_per_token\": ...} and the other sizes as one JSON line."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (level < 1 || level > 22) {
        fprintf(stderr, "retort cache-teacher: error: --zstd-level must be in 1..22\n");
        return 2;
    }
    o.zstd_level = (int)level;
    o.quiet = quiet || dist_rank() > 0;
    cli_set_threads(threads);
    model *t = NULL;
    dataset ds = {0};
    int status = 1;
    if (model_load(&t, teacher_path)) goto done;
    if (!t->tok) {
        RT_FAIL("%s has no tokenizer", teacher_path);
        goto done;
    }
    if (!cli_seen(opts, RT_ARRAY_LEN(opts), "--seq-len")) o.seq_len = RT_MIN(o.seq_len, t->cfg.ctx_len);
    if (distill_text_dataset(&ds, t->tok, data, val_fraction)) goto done;
    rt_info("teacher %s: %zu parameters; %zu training tokens in windows of %zu; top-%zu at temperature %g",
            teacher_path, t->n_params, ds.n_train, o.seq_len, o.top_k, (double)o.temperature);
    kd_cache_build_result r;
    if (kd_cache_build(t, teacher_path, ds.train, ds.n_train, &o, out, &r)) goto done;
    if (dist_rank() > 0) { /* under mpirun rank 0 wrote the file and reports it */
        status = 0;
        goto done;
    }
    double pos = (double)r.n_positions;
    rt_info("wrote %s: %zu windows, %zu positions, %.1f bytes/token (payload %.1f), %.1fs", out, r.n_windows,
            r.n_positions, (double)r.file_bytes / pos, (double)r.payload_bytes / pos, r.seconds);
    json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:i, s:f}", "cache", out, "top_k",
                          (json_int_t)RT_MIN(o.top_k, t->cfg.vocab_size), "seq_len", (json_int_t)o.seq_len, "windows",
                          (json_int_t)r.n_windows, "positions", (json_int_t)r.n_positions, "file_bytes",
                          (json_int_t)r.file_bytes, "payload_bytes", (json_int_t)r.payload_bytes, "bytes_per_token",
                          (double)r.file_bytes / pos, "payload_bytes_per_token", (double)r.payload_bytes / pos,
                          "lp_step", (double)o.lp_step, "zstd_level", o.zstd_level, "seconds", r.seconds);
    char *js = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(j);
    if (!js) {
        RT_FAIL("out of memory writing the summary");
        goto done;
    }
    printf("%s\n", js);
    free(js);
    status = 0;
done:
    if (status) cli_fail("cache-teacher");
    dataset_free(&ds);
    model_free(t);
    return status;
}
