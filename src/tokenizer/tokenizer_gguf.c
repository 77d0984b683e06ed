/*
 * tokenizer_gguf.c — the tokenizer as GGUF tokenizer.ggml.* keys, the way llama.cpp reads a
 * "gpt2" (byte-level BPE) vocabulary with the "gpt-2" pre-tokenizer:
 *   tokenizer.ggml.model       "gpt2"
 *   tokenizer.ggml.pre         "gpt-2"
 *   tokenizer.ggml.tokens      string[n]: normal tokens in GPT-2's byte characters ("Ġthe"),
 *                              control tokens as their plain text ("<|bos|>")
 *   tokenizer.ggml.token_type  int32[n]: 1 normal, 3 control
 *   tokenizer.ggml.merges      string[m]: "A B" (both parts in byte characters), by rank
 *   tokenizer.ggml.bos_token_id / eos_token_id / padding_token_id   uint32
 *   tokenizer.ggml.add_bos_token / add_eos_token   bool, written false (retort's encode
 *                              never adds them; a true value read from a file is ignored)
 * Reading validates everything and names the key (and index) of whatever is wrong.
 *
 * What this is not: a reader for SentencePiece ("llama") or other tokenizer models, or for
 * other pre-tokenizers; those are refused by name.
 */
#include "../base/base.h"
#include "../formats/gguf.h"
#include "internal.h"
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

#define K_MODEL "tokenizer.ggml.model"
#define K_PRE "tokenizer.ggml.pre"
#define K_TOKENS "tokenizer.ggml.tokens"
#define K_TYPES "tokenizer.ggml.token_type"
#define K_MERGES "tokenizer.ggml.merges"
#define K_BOS "tokenizer.ggml.bos_token_id"
#define K_EOS "tokenizer.ggml.eos_token_id"
#define K_PAD "tokenizer.ggml.padding_token_id"
#define K_ADD_BOS "tokenizer.ggml.add_bos_token"
#define K_ADD_EOS "tokenizer.ggml.add_eos_token"

static int need_str(const gguf_ctx *ctx, const char *key, const char *want) {
    const char *s;
    size_t len;
    int rc = gguf_get_str(ctx, key, &s, &len);
    if (rc < 0) return -1;
    if (rc > 0) return RT_FAIL("%s: %s is missing (expected \"%s\")", gguf_path(ctx), key, want);
    if (len != strlen(want) || memcmp(s, want, len) != 0)
        return RT_FAIL("%s: %s is \"%.*s\"; retort reads only \"%s\" (GPT-2 byte-level BPE)",
                       gguf_path(ctx), key, (int)RT_MIN(len, (size_t)64), s, want);
    return 0;
}

static int get_id(const gguf_ctx *ctx, const char *key, size_t n_vocab, int required,
                  int32_t *out) {
    uint32_t v;
    int rc = gguf_get_u32(ctx, key, &v);
    if (rc < 0) return -1;
    if (rc > 0) {
        if (required) return RT_FAIL("%s: %s is missing", gguf_path(ctx), key);
        *out = -1;
        return 0;
    }
    if (v >= n_vocab)
        return RT_FAIL("%s: %s = %u is outside the vocabulary (0..%zu)", gguf_path(ctx), key, v,
                       n_vocab - 1);
    *out = (int32_t)v;
    return 0;
}

int tokenizer_load(tokenizer **out, const char *path) {
    *out = NULL;
    gguf_ctx *g = NULL;
    if (gguf_open(&g, path)) return -1;
    int rc = tokenizer_from_gguf(out, g);
    gguf_close(g);
    if (rc) return RT_FAIL("%s: no usable tokenizer: %s", path, rt_errmsg());
    return 0;
}

int tokenizer_from_gguf(tokenizer **out, const gguf_ctx *ctx) {
    *out = NULL;
    if (need_str(ctx, K_MODEL, "gpt2") || need_str(ctx, K_PRE, "gpt-2")) return -1;

    size_t n;
    int rc = gguf_get_arr_str_n(ctx, K_TOKENS, &n);
    if (rc < 0) return -1;
    if (rc > 0) return RT_FAIL("%s: %s is missing (the vocabulary)", gguf_path(ctx), K_TOKENS);
    if (n < 256 || n > (size_t)INT32_MAX - 1)
        return RT_FAIL("%s: %s has %zu tokens; expected 256 (one per byte) or more", gguf_path(ctx),
                       K_TOKENS, n);

    gguf_type et;
    size_t nt;
    const void *tdata;
    rc = gguf_get_arr_data(ctx, K_TYPES, &et, &nt, &tdata);
    if (rc < 0) return -1;
    if (rc > 0) return RT_FAIL("%s: %s is missing (one int32 per token)", gguf_path(ctx), K_TYPES);
    if (et != GGUF_TYPE_INT32)
        return RT_FAIL("%s: %s holds elements of GGUF type %d; expected int32 (%d)", gguf_path(ctx),
                       K_TYPES, (int)et, (int)GGUF_TYPE_INT32);
    if (nt != n)
        return RT_FAIL("%s: %s has %zu entries but %s has %zu", gguf_path(ctx), K_TYPES, nt,
                       K_TOKENS, n);

    size_t n_merges;
    rc = gguf_get_arr_str_n(ctx, K_MERGES, &n_merges);
    if (rc < 0) return -1;
    if (rc > 0)
        return RT_FAIL("%s: %s is missing (a gpt2 vocabulary needs its merges)", gguf_path(ctx),
                       K_MERGES);

    int32_t bos = -1, eos = -1, pad = -1;
    if (get_id(ctx, K_BOS, n, 1, &bos) || get_id(ctx, K_EOS, n, 1, &eos) ||
        get_id(ctx, K_PAD, n, 0, &pad))
        return -1;
    int flag = 0;
    if (gguf_get_bool(ctx, K_ADD_BOS, &flag) < 0 || gguf_get_bool(ctx, K_ADD_EOS, &flag) < 0)
        return -1;

    uint8_t *types = rt_malloc(n, "token types");
    size_t *off = rt_malloc_array(n + 1, sizeof *off, "token offsets");
    int32_t *pairs = rt_malloc_array(n_merges ? 2 * n_merges : 1, sizeof *pairs, "merges");
    rt_buf blob = {0};
    tok_strmap map = {0};
    char *half = NULL;
    int ret = -1;
    if (!types || !off || !pairs) goto done;
    off[0] = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t ty;
        memcpy(&ty, (const char *)tdata + 4 * i, 4);
        const char *s;
        size_t len;
        if (gguf_get_arr_str(ctx, K_TOKENS, i, &s, &len)) goto done;
        if (len == 0) {
            RT_FAIL("%s: %s[%zu] is an empty string", gguf_path(ctx), K_TOKENS, i);
            goto done;
        }
        if (ty == TOKENIZER_TYPE_NORMAL) {
            if (rt_buf_reserve(&blob, len + 1)) goto done;
            size_t raw_len;
            if (tok_unmap(s, len, blob.data + blob.len, &raw_len)) {
                RT_FAIL(
                    "%s: %s[%zu] (\"%.*s\") is not written in GPT-2's byte characters (a normal "
                    "token of a gpt2 vocabulary must be)",
                    gguf_path(ctx), K_TOKENS, i, (int)RT_MIN(len, (size_t)40), s);
                goto done;
            }
            blob.len += raw_len;
        } else if (ty == TOKENIZER_TYPE_CONTROL) {
            if (rt_buf_append(&blob, s, len)) goto done;
        } else {
            RT_FAIL("%s: %s[%zu] = %d; retort supports 1 (normal) and 3 (control)", gguf_path(ctx),
                    K_TYPES, i, ty);
            goto done;
        }
        char nul = 0;
        if (rt_buf_append(&blob, &nul, 1)) goto done;
        off[i + 1] = blob.len;
        types[i] = (uint8_t)ty;
    }

    /* Merges name tokens by text: look the two halves up among the normal tokens. */
    for (size_t i = 0; i < n; i++)
        if (types[i] == TOKENIZER_TYPE_NORMAL &&
            tok_strmap_get(&map, blob.data, off, blob.data + off[i], off[i + 1] - off[i] - 1) < 0 &&
            tok_strmap_put(&map, blob.data, off, (int32_t)i))
            goto done;
    for (size_t r = 0; r < n_merges; r++) {
        const char *s;
        size_t len;
        if (gguf_get_arr_str(ctx, K_MERGES, r, &s, &len)) goto done;
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp || sp + 1 == s + len || memchr(sp + 1, ' ', (size_t)(s + len - sp - 1))) {
            RT_FAIL("%s: %s[%zu] (\"%.*s\") is not two tokens separated by one space",
                    gguf_path(ctx), K_MERGES, r, (int)RT_MIN(len, (size_t)40), s);
            goto done;
        }
        free(half);
        half = rt_malloc(len, "merge text");
        if (!half) goto done;
        for (int side = 0; side < 2; side++) {
            const char *p = side ? sp + 1 : s;
            size_t pl = side ? (size_t)(s + len - sp - 1) : (size_t)(sp - s), raw_len;
            int32_t id = -1;
            if (tok_unmap(p, pl, half, &raw_len) == 0)
                id = tok_strmap_get(&map, blob.data, off, half, raw_len);
            if (id < 0) {
                RT_FAIL("%s: %s[%zu] (\"%.*s\"): \"%.*s\" is not a normal token of %s",
                        gguf_path(ctx), K_MERGES, r, (int)RT_MIN(len, (size_t)40), s,
                        (int)RT_MIN(pl, (size_t)40), p, K_TOKENS);
                goto done;
            }
            pairs[2 * r + side] = id;
        }
    }
    char wt[600], wm[600];
    snprintf(wt, sizeof wt, "%s: %s", gguf_path(ctx), K_TOKENS);
    snprintf(wm, sizeof wm, "%s: %s", gguf_path(ctx), K_MERGES);
    ret = tok_build(out, n, blob.data, off, types, n_merges, pairs, bos, eos, pad, wt, wm);
done:
    free(types);
    free(off);
    free(pairs);
    free(half);
    rt_buf_free(&blob);
    tok_strmap_free(&map);
    return ret;
}

int tokenizer_to_gguf(const tokenizer *tok, gguf_writer *w) {
    size_t n = tok->n_vocab, m = tok->n_merges;
    int ret = -1;
    rt_buf text = {0}, one = {0};
    size_t *toff = rt_malloc_array(n + m + 1, sizeof *toff, "GGUF token strings");
    const char **strs = rt_malloc_array(n + m + 1, sizeof *strs, "GGUF token strings");
    size_t *lens = rt_malloc_array(n + m + 1, sizeof *lens, "GGUF token strings");
    int32_t *types = rt_malloc_array(n, sizeof *types, "GGUF token types");
    if (!toff || !strs || !lens || !types) goto done;

    /* Tokens then merges, all in one buffer (pointers are taken once it stops growing). */
    for (size_t i = 0; i < n; i++) {
        toff[i] = text.len;
        types[i] = tok->type[i];
        if (tok->type[i] == TOKENIZER_TYPE_NORMAL) {
            if (tok_map_bytes(tok_bytes(tok, (int32_t)i), tok_len(tok, (int32_t)i), &one) ||
                rt_buf_append(&text, one.data, one.len))
                goto done;
        } else if (rt_buf_append(&text, tok_bytes(tok, (int32_t)i), tok_len(tok, (int32_t)i))) {
            goto done;
        }
    }
    for (size_t r = 0; r < m; r++) {
        toff[n + r] = text.len;
        for (int side = 0; side < 2; side++) {
            int32_t id = tok->merges[3 * r + side];
            if (side && rt_buf_append(&text, " ", 1)) goto done;
            if (tok_map_bytes(tok_bytes(tok, id), tok_len(tok, id), &one) ||
                rt_buf_append(&text, one.data, one.len))
                goto done;
        }
    }
    toff[n + m] = text.len;
    for (size_t i = 0; i < n + m; i++) {
        strs[i] = text.data + toff[i];
        lens[i] = toff[i + 1] - toff[i];
    }
    if (gguf_set_str(w, K_MODEL, "gpt2") || gguf_set_str(w, K_PRE, "gpt-2") ||
        gguf_set_arr_str(w, K_TOKENS, strs, lens, n) ||
        gguf_set_arr_data(w, K_TYPES, GGUF_TYPE_INT32, types, n) ||
        gguf_set_arr_str(w, K_MERGES, strs + n, lens + n, m) ||
        gguf_set_u32(w, K_BOS, (uint32_t)tok->bos) || gguf_set_u32(w, K_EOS, (uint32_t)tok->eos) ||
        (tok->pad >= 0 && gguf_set_u32(w, K_PAD, (uint32_t)tok->pad)) ||
        gguf_set_bool(w, K_ADD_BOS, 0) || gguf_set_bool(w, K_ADD_EOS, 0))
        goto done;
    ret = 0;
done:
    rt_buf_free(&text);
    rt_buf_free(&one);
    free(toff);
    free(strs);
    free(lens);
    free(types);
    return ret;
}
