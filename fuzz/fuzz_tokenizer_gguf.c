/* fuzz_tokenizer_gguf.c — hostile GGUF tokenizer metadata: tokenizer_from_gguf must load it or
 * fail with a message, never crash, for every kind it reads (gpt2 with pre gpt-2 / llama-bpe /
 * qwen2 / deepseek-v3, and llama SentencePiece with scores). A loaded tokenizer encodes the
 * input's bytes (with and without special tokens), decodes the ids, and writes itself back as
 * GGUF metadata. */
#include "base/base.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_ctx *g = NULL;
    if (gguf_open_memory(&g, data, size, "fuzz.gguf")) return 0;
    tokenizer *t = NULL;
    if (tokenizer_from_gguf(&t, g)) {
        if (!rt_errmsg()[0]) abort(); /* a failure must say why */
        gguf_close(g);
        return 0;
    }
    for (int special = 0; special < 2; special++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (tokenizer_encode(t, (const char *)data, size, special, &ids, &n) == 0) {
            char *back = NULL;
            size_t blen = 0;
            if (tokenizer_decode(t, ids, n, &back, &blen)) abort();
            free(back);
        }
        free(ids);
    }
    gguf_writer *w = gguf_writer_new();
    if (w && tokenizer_to_gguf(t, w)) { /* its own vocabulary must be writable */
    }
    gguf_writer_free(w);
    tokenizer_free(t);
    gguf_close(g);
    return 0;
}
