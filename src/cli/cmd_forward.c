/*
 * cmd_forward.c — `retort forward`: token ids → logits of every position as raw
 * little-endian float32, T rows × V columns, row-major (for checks against other engines).
 * Loads with model_load_decode_only: the decoder computes the logits, on a quantized file
 * directly on the blocks (as llama.cpp does).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/model.h"
#include "cli.h"

static int parse_ids(const char *s, size_t V, int32_t **ids, size_t *n) {
    size_t cap = 16, k = 0;
    int32_t *a = rt_malloc_array(cap, sizeof(int32_t), "ids");
    if (!a) return -1;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || (size_t)v >= V) {
            free(a);
            return RT_FAIL("--ids: expected comma-separated token ids in [0, %zu), bad item at '%.20s'", V, p);
        }
        if (k == cap) {
            int32_t *b = rt_realloc(a, (cap *= 2) * sizeof(int32_t), "ids");
            if (!b) {
                free(a);
                return -1;
            }
            a = b;
        }
        a[k++] = (int32_t)v;
        p = end;
        if (*p == ',') p++;
        else if (*p) {
            free(a);
            return RT_FAIL("--ids: unexpected character '%c' (use commas: 1,2,3)", *p);
        }
    }
    if (k == 0) {
        free(a);
        return RT_FAIL("--ids: no token ids given");
    }
    *ids = a;
    *n = k;
    return 0;
}

int cmd_forward(int argc, char **argv) {
    const char *model_path = NULL, *ids_s = NULL, *out = NULL;
    size_t threads = 0, chunk = 256;
    cli_opt opts[] = {
        {"--model", CLI_STR, &model_path, "M.gguf: the model", 1, 0},
        {"--ids", CLI_STR, &ids_s, "1,2,3: token ids (retort tokenize prints them)", 1, 0},
        {"--out", CLI_STR, &out, "LOGITS.f32: output file (T x V float32, row-major)", 1, 0},
        {"--threads", CLI_SIZE, &threads, "worker threads (default: all cores)", 0, 0},
        {"--chunk", CLI_SIZE, &chunk,
         "N: tokens per decoder pass (default 256; 1 runs token by token, the generation path, "
         "which for a quantized file computes on its blocks)", 0, 0},
    };
    cli_cmd_info info = {"forward", "retort forward --model M.gguf --ids 1,2,3 --out LOGITS.f32",
                         "Runs the tokens through the model in one sequence and writes the logits of every\n"
                         "position as raw little-endian float32, T rows x V columns, row-major."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    cli_set_threads(threads);
    if (chunk == 0) {
        fprintf(stderr, "retort forward: error: --chunk must be at least 1\n");
        return 2;
    }
    model *m = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    float *logits = NULL;
    kv_cache kv = {0};
    decoder dec = {0};
    int status = 1;
    if (model_load_decode_only(&m, model_path)) goto done;
    size_t V = m->cfg.vocab_size;
    if (parse_ids(ids_s, V, &ids, &n)) goto done;
    if (n > m->cfg.ctx_len) {
        RT_FAIL("--ids: %zu tokens exceed the model's context length %zu", n, m->cfg.ctx_len);
        goto done;
    }
    logits = rt_malloc_array(n, V * sizeof(float), "logits");
    if (!logits || kv_cache_init(&kv, &m->cfg, n) || decoder_init(&dec, m, RT_MIN(n, chunk)) ||
        decoder_prefill(&dec, &kv, ids, n, NULL, logits))
        goto done;
    if (rt_write_file_atomic(out, logits, n * V * sizeof(float))) goto done;
    fprintf(stderr, "wrote %zu x %zu logits to %s\n", n, V, out);
    status = 0;
done:
    if (status) cli_fail("forward");
    free(ids);
    free(logits);
    decoder_free(&dec);
    kv_cache_free(&kv);
    model_free(m);
    return status;
}
