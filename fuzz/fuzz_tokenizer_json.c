/* fuzz_tokenizer_json.c — hostile tokenizer.json: tokenizer_from_hf_json must load it or fail
 * with a message, never crash. The input is split at the first NUL byte: before it the
 * tokenizer.json, after it an optional tokenizer_config.json. When a tokenizer loads, the
 * input's bytes are also encoded (with and without special tokens) and decoded, and a
 * byte-level tokenizer must give the bytes back. */
#include "base/base.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *json = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t jlen = nul ? (size_t)(nul - data) : size;
    const char *cfg = nul ? (const char *)nul + 1 : NULL;
    size_t clen = nul ? size - jlen - 1 : 0;
    tokenizer *t = NULL;
    if (tokenizer_from_hf_json(&t, json, jlen, cfg, clen, "fuzz.json")) {
        if (!rt_errmsg()[0]) abort(); /* a failure must say why */
        return 0;
    }
    for (int special = 0; special < 2; special++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (tokenizer_encode(t, json, size, special, &ids, &n) == 0) {
            char *back = NULL;
            size_t blen = 0;
            if (tokenizer_decode(t, ids, n, &back, &blen)) abort(); /* its own ids */
            free(back);
        }
        free(ids);
    }
    tokenizer_free(t);
    return 0;
}
