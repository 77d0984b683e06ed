/*
 * fuzz_common.h — helpers shared by the fuzz targets (fuzz/fuzz_*.c): a per-process scratch
 * file for readers that take a path, and a tiny tokenizer and model built once per process
 * (deterministic, milliseconds) for readers that need one.
 *
 * Not a fuzz target itself (the Makefile builds fuzz/fuzz_*.c only). Targets call these from
 * LLVMFuzzerTestOneInput; anything built once is kept for the process's lifetime.
 */
#ifndef RETORT_FUZZ_COMMON_H
#define RETORT_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

/* A fuzz harness may stop the process on a broken invariant: that is the crash it reports. */
#define FZ_CHECK(cond)                                                                         \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);       \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

/* Quiet: warnings about skipped lines and the like would dominate the fuzzer's time. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    rt_log_set_level(RT_LOG_ERROR);
    /* the library refuses declared shapes beyond this (rt_mem_available) before allocating:
     * below libFuzzer's -malloc_limit_mb, so an honest refusal is not reported as a leak of memory */
    setenv("RETORT_MEM_LIMIT", "1G", 1);
    return 0;
}

/* Write the input to this process's scratch file (under $TMPDIR or /tmp) and return its path.
 * The same path is reused for every input. */
static inline const char *fz_scratch(const uint8_t *data, size_t size, const char *ext) {
    static char path[512];
    if (!path[0]) {
        const char *d = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/retort-fuzz-%ld%s", d && *d ? d : "/tmp", (long)getpid(), ext);
    }
    FILE *f = fopen(path, "wb");
    FZ_CHECK(f != NULL);
    FZ_CHECK(size == 0 || fwrite(data, 1, size, f) == size);
    FZ_CHECK(fclose(f) == 0);
    return path;
}

/* Write bytes to path (no fsync: scratch files only). */
static inline void fz_write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    FZ_CHECK(f != NULL);
    FZ_CHECK(size == 0 || fwrite(data, 1, size, f) == size);
    FZ_CHECK(fclose(f) == 0);
}

/* Remove the scratch file at exit (registered on first use of fz_scratch_cleanup). */
static inline void fz_scratch_remove(void) {
    char path[512];
    const char *d = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/retort-fuzz-%ld", d && *d ? d : "/tmp", (long)getpid());
    const char *exts[] = {"", ".gguf", ".jsonl", ".json", ".key", ".svg", ".db", ".db-wal", ".db-shm"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s%s", path, exts[i]);
        unlink(p);
    }
}

/* A byte-level BPE tokenizer with a few hundred merges over a fixed English text (the
 * special tokens included): a new one per call (fz_tokenizer keeps one for the process). */
static inline tokenizer *fz_train_tokenizer(void) {
    static const char *lines[] = {
        "In the beginning God created the heaven and the earth. ",
        "And the earth was without form, and void; and darkness was upon the face of the deep. ",
        "The quick brown fox jumps over the lazy dog 12345 times! ",
        "Hello, world. \"prompt\": \"completion\" {} [] 0.5 -1e3 \n\t caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 ",
    };
    rt_buf text = {0};
    for (int r = 0; r < 20; r++)
        for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
            FZ_CHECK(rt_buf_append(&text, lines[i], strlen(lines[i])) == 0);
    tokenizer *tok = NULL;
    FZ_CHECK(tokenizer_train(&tok, text.data, text.len, 400) == 0);
    rt_buf_free(&text);
    return tok;
}

static inline tokenizer *fz_tokenizer(void) {
    static tokenizer *tok;
    if (!tok) {
        tok = fz_train_tokenizer();
        atexit(fz_scratch_remove);
    }
    return tok;
}

/* A random 2-layer model (dim 32, context ctx) with its own fz_train_tokenizer(), built once. */
static inline model *fz_model(size_t ctx) {
    static model *m;
    if (m) return m;
    tokenizer *tok = fz_train_tokenizer();
    model_config c = {.dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn_dim = 64,
                      .vocab_size = tokenizer_vocab_size(tok), .ctx_len = ctx, .norm_eps = 1e-5f,
                      .rope_base = 10000.0f, .tied = 1};
    FZ_CHECK(model_config_validate(&c) == 0 && model_create(&m, &c, tok) == 0);
    model_init_weights(m, 7);
    atexit(fz_scratch_remove);
    return m;
}

#endif
