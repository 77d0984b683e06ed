/*
 * fuzz_teacher_cache.c — a teacher cache file (`retort cache-teacher`: GGUF metadata and a
 * zstd-compressed payload of top-k log-probs per window) through kd_cache_open, its stored
 * tokenizer, and the first windows' decoding. Every id read back must be inside the
 * vocabulary and every log-prob finite and <= 0 (or the rest mass -inf).
 */
#include "fuzz_common.h"

#include <math.h>

#include "distill/distill.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_scratch(data, size, ".gguf");
    kd_cache *c = NULL;
    if (kd_cache_open(&c, path) == 0) {
        tokenizer *tok = NULL;
        if (kd_cache_load_tokenizer(c, &tok) == 0) tokenizer_free(tok);
        const kd_cache_info *in = kd_cache_get_info(c);
        size_t T = in->seq_len, k = in->top_k;
        if (T <= 4096 && k <= 256 && T * k <= (1u << 18)) {
            int32_t *tokens = malloc((T + 1) * sizeof *tokens), *ids = malloc(T * k * sizeof *ids);
            float *lps = malloc(T * k * sizeof *lps), *rest = malloc(T * sizeof *rest);
            FZ_CHECK(tokens && ids && lps && rest);
            for (size_t w = 0; w < in->n_windows && w < 4; w++) {
                if (kd_cache_read_window(c, w, tokens, ids, lps, rest)) continue;
                for (size_t i = 0; i < T * k; i++) {
                    FZ_CHECK(ids[i] >= 0 && ids[i] < (int64_t)in->vocab_size);
                    FZ_CHECK(!isnan(lps[i]));
                }
            }
            free(tokens), free(ids), free(lps), free(rest);
        }
        kd_cache_close(c);
    }
    rt_err_clear();
    return 0;
}
