/*
 * fuzz_tokenizer.c — arbitrary bytes through the byte-level BPE tokenizer (encode, with and
 * without special-token parsing; decode; pre-tokenization), and arbitrary ids through
 * decode. Invariants: every id is inside the vocabulary; decode(encode(x)) == x byte for
 * byte (byte-level BPE loses nothing, invalid UTF-8 included); the pre-tokenizer's pieces
 * cover the text in order; decoding an id outside the vocabulary fails with a message.
 * The first byte picks the mode; the rest is the text.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    tokenizer *tok = fz_tokenizer();
    size_t V = tokenizer_vocab_size(tok);
    int mode = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (mode & 2) {
        /* the rest as little-endian int32 ids, through decode */
        size_t n = len / 4;
        int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
        FZ_CHECK(ids);
        int all_valid = 1;
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)(uint8_t)text[4 * i] | (uint32_t)(uint8_t)text[4 * i + 1] << 8 |
                         (uint32_t)(uint8_t)text[4 * i + 2] << 16 | (uint32_t)(uint8_t)text[4 * i + 3] << 24;
            if (mode & 4) u %= (uint32_t)V + 2; /* mostly valid ids */
            ids[i] = (int32_t)u;
            if (ids[i] < 0 || (size_t)ids[i] >= V) all_valid = 0;
        }
        char *out = NULL;
        size_t out_len = 0;
        int rc = tokenizer_decode(tok, ids, n, &out, &out_len);
        FZ_CHECK(all_valid ? rc == 0 : (rc != 0 && rt_errmsg()[0]));
        if (rc == 0) {
            size_t want = 0;
            for (size_t i = 0; i < n; i++) {
                size_t bl = 0;
                FZ_CHECK(tokenizer_token_bytes(tok, ids[i], &bl) != NULL);
                want += bl;
            }
            FZ_CHECK(out_len == want && out[out_len] == '\0');
        }
        free(out);
        free(ids);
    } else {
        int32_t *ids = NULL;
        size_t n = 0;
        FZ_CHECK(tokenizer_encode(tok, text, len, mode & 1, &ids, &n) == 0);
        for (size_t i = 0; i < n; i++) FZ_CHECK(ids[i] >= 0 && (size_t)ids[i] < V);
        char *out = NULL;
        size_t out_len = 0;
        FZ_CHECK(tokenizer_decode(tok, ids, n, &out, &out_len) == 0);
        FZ_CHECK(out_len == len && memcmp(out, text, len) == 0);
        free(out);
        free(ids);
        size_t *ends = NULL, np = 0;
        FZ_CHECK(tokenizer_pretokenize(text, len, &ends, &np) == 0);
        for (size_t i = 0; i < np; i++) FZ_CHECK(ends[i] > (i ? ends[i - 1] : 0) && ends[i] <= len);
        FZ_CHECK(np == 0 ? len == 0 : ends[np - 1] == len);
        free(ends);
    }
    rt_err_clear();
    return 0;
}
