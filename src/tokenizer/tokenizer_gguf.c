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
 * Real models' vocabularies (as llama.cpp's convert_hf_to_gguf.py writes them) are read too:
 *   "gpt2" with pre "llama-bpe" (Llama 3: its Split regex, ignore_merges), "qwen2" (Qwen2/3,
 *          R1-Distill-Qwen: single digits) or "deepseek-v3" (its three Splits); types 1..6
 *          (normal and byte tokens in byte characters, the others as plain text);
 *   "llama" SentencePiece: tokens with U+2581, token_type (2 unknown, 3 control, 6 byte
 *          <0xNN>), scores; encoded with llama.cpp's algorithm (tokenizer_spm.c).
 * They follow llama.cpp, not tokenizer.json, where the two differ: no NFC for qwen2 (llama.cpp
 * has none), non-special added tokens only as their types say (USER_DEFINED always matched).
 * tokenizer_to_gguf writes a tokenizer loaded from tokenizer.json the same way, including the
 * converter's promotion of non-special added tokens that look like control tokens
 * (<|fim_prefix|>, <｜User｜>, <unused0>) to CONTROL.
 *
 * What this is not: a reader for other tokenizer models (WordPiece, Unigram "t5") or other
 * pre-tokenizers; those are refused by name.
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

static int from_gguf_hf(tokenizer **out, const gguf_ctx *ctx, int spm, const char *pre);

int tokenizer_from_gguf(tokenizer **out, const gguf_ctx *ctx) {
    *out = NULL;
    const char *model = NULL, *pre = NULL;
    size_t ml = 0, pl = 0;
    if (gguf_get_str(ctx, K_MODEL, &model, &ml) < 0 || gguf_get_str(ctx, K_PRE, &pre, &pl) < 0)
        return -1;
    char pbuf[32] = "";
    if (pre) snprintf(pbuf, sizeof pbuf, "%.*s", (int)RT_MIN(pl, sizeof pbuf - 1), pre);
    if (model && ml == 5 && !memcmp(model, "llama", 5)) return from_gguf_hf(out, ctx, 1, "");
    if (model && ml == 4 && !memcmp(model, "gpt2", 4) &&
        (!strcmp(pbuf, "llama-bpe") || !strcmp(pbuf, "qwen2") || !strcmp(pbuf, "deepseek-v3")))
        return from_gguf_hf(out, ctx, 0, pbuf);
    if (model && ml == 4 && !memcmp(model, "gpt2", 4) && pre && strcmp(pbuf, "gpt-2"))
        return RT_FAIL("%s: %s is \"%s\"; retort reads the gpt2 pre-tokenizers gpt-2, "
                       "llama-bpe, qwen2 and deepseek-v3",
                       gguf_path(ctx), K_PRE, pbuf);
    if (model && !(ml == 4 && !memcmp(model, "gpt2", 4)))
        return RT_FAIL("%s: %s is \"%.*s\"; retort reads \"gpt2\" (byte-level BPE) and "
                       "\"llama\" (SentencePiece)",
                       gguf_path(ctx), K_MODEL, (int)RT_MIN(ml, (size_t)64), model);
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

#define K_SCORES "tokenizer.ggml.scores"
#define K_UNK "tokenizer.ggml.unknown_token_id"
#define K_ASP "tokenizer.ggml.add_space_prefix"

/* Token texts llama.cpp (llama_vocab::impl::load, the copy node-llama-cpp 3.21.1 ships) makes
 * CONTROL whatever type the file gives them (end-of-generation and fill-in-the-middle markers
 * it detects by text), so that with parse_special they are cut out as whole tokens. */
static const char *const llama_control_texts[] = {
    "</s>", "<EOT>", "<MID>", "<PAD>", "<PRE>", "<REPO>", "<SUF>", "<end_of_turn>",
    "<end_of_utterance>", "<eos>", "<fim-middle>", "<fim-pad>", "<fim-prefix>", "<fim-repo>",
    "<fim-suffix>", "<fim_middle>", "<fim_pad>", "<fim_prefix>", "<fim_suffix>", "<reponame>",
    "<turn|>", "<|calls|>", "<|call|>", "<|code_middle|>", "<|code_prefix|>",
    "<|code_suffix|>", "<|end_of_text|>", "<|endoftext|>", "<|end|>", "<|eom_id|>",
    "<|eot_id|>", "<|file_sep|>", "<|fim_middle|>", "<|fim_pad|>", "<|fim_prefix|>",
    "<|fim_repo|>", "<|fim_suffix|>", "<|flush|>", "<|im_end|>", "<|middle|>", "<|prefix|>",
    "<|repo_name|>", "<|return|>", "<|suffix|>", "<|tool_response>", "<｜end▁of▁sentence｜>",
    "<｜fim▁begin｜>", "<｜fim▁end｜>", "<｜fim▁hole｜>", "[EOS]", "[EOT]", "[PAD]", "[e~[",
    "_<EOT>", "▁<MID>", "▁<PRE>", "▁<SUF>",
};

static int llama_control_looking(const char *s, size_t len) {
    for (size_t i = 0; i < sizeof llama_control_texts / sizeof *llama_control_texts; i++)
        if (strlen(llama_control_texts[i]) == len && !memcmp(llama_control_texts[i], s, len))
            return 1;
    return 0;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* "<0xNN>" (s is not NUL-terminated) -> NN, else -1. */
static int byte_piece(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int h = hexval(s[3]), l = hexval(s[4]);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
}

/* The bytes token i (GGUF text s, type ty) decodes to, appended to blob with room for the
 * NUL (reserved by the caller): SentencePiece U+2581 -> ' ' and <0xNN> -> the byte; byte-level
 * normal/byte tokens from GPT-2's byte characters; other types as plain text. */
static int raw_token(const gguf_ctx *ctx, size_t i, int ty, int spm, const char *s, size_t len,
                     rt_buf *blob) {
    size_t raw_len;
    if (spm) {
        int b = ty == TOKENIZER_TYPE_BYTE ? byte_piece(s, len) : -1;
        if (b >= 0) {
            blob->data[blob->len++] = (char)b;
            return 0;
        }
        for (size_t k = 0; k < len; k++) {
            if (k + 2 < len && !memcmp(s + k, "\xE2\x96\x81", 3)) {
                blob->data[blob->len++] = ' ';
                k += 2;
            } else {
                blob->data[blob->len++] = s[k];
            }
        }
        return 0;
    }
    if ((ty == TOKENIZER_TYPE_NORMAL || ty == TOKENIZER_TYPE_BYTE) &&
        tok_unmap(s, len, blob->data + blob->len, &raw_len) == 0) {
        blob->len += raw_len;
        return 0;
    }
    if (ty == TOKENIZER_TYPE_NORMAL)
        return RT_FAIL("%s: %s[%zu] (\"%.*s\") is not written in GPT-2's byte characters",
                       gguf_path(ctx), K_TOKENS, i, (int)RT_MIN(len, (size_t)40), s);
    memcpy(blob->data + blob->len, s, len);
    blob->len += len;
    return 0;
}

/* tokenizer.ggml.merges ("A B", by GGUF text) as id pairs. */
static int read_merges(const gguf_ctx *ctx, size_t n_merges, const tok_strmap *map,
                       const char *keys, const size_t *koff, int32_t *pairs) {
    for (size_t r = 0; r < n_merges; r++) {
        const char *s;
        size_t len;
        if (gguf_get_arr_str(ctx, K_MERGES, r, &s, &len)) return -1;
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        int32_t a = sp ? tok_strmap_get(map, keys, koff, s, (size_t)(sp - s)) : -1;
        int32_t b = sp ? tok_strmap_get(map, keys, koff, sp + 1, (size_t)(s + len - sp - 1)) : -1;
        if (a < 0 || b < 0)
            return RT_FAIL("%s: %s[%zu] (\"%.*s\") is not two tokens of %s separated by a space",
                           gguf_path(ctx), K_MERGES, r, (int)RT_MIN(len, (size_t)40), s,
                           K_TOKENS);
        pairs[2 * r] = a;
        pairs[2 * r + 1] = b;
    }
    return 0;
}

/* Byte-level vocabularies other than gpt-2, and SentencePiece ones. */
static int from_gguf_hf(tokenizer **out, const gguf_ctx *ctx, int spm, const char *pre) {
    size_t n;
    int rc = gguf_get_arr_str_n(ctx, K_TOKENS, &n);
    if (rc < 0) return -1;
    if (rc > 0) return RT_FAIL("%s: %s is missing (the vocabulary)", gguf_path(ctx), K_TOKENS);
    if (n < 1 || n > (size_t)INT32_MAX - 1)
        return RT_FAIL("%s: %s has %zu tokens", gguf_path(ctx), K_TOKENS, n);
    gguf_type et;
    size_t nt, ns = 0;
    const void *tdata, *sdata = NULL;
    rc = gguf_get_arr_data(ctx, K_TYPES, &et, &nt, &tdata);
    if (rc < 0) return -1;
    if (rc > 0 || et != GGUF_TYPE_INT32 || nt != n)
        return RT_FAIL("%s: %s must be int32[%zu] (one type per token)", gguf_path(ctx), K_TYPES,
                       n);
    if (spm) {
        rc = gguf_get_arr_data(ctx, K_SCORES, &et, &ns, &sdata);
        if (rc < 0) return -1;
        if (rc > 0 || et != GGUF_TYPE_FLOAT32 || ns != n)
            return RT_FAIL("%s: %s must be float32[%zu] (a SentencePiece vocabulary is merged "
                           "by score)",
                           gguf_path(ctx), K_SCORES, n);
    }
    size_t n_merges = 0;
    if (!spm) {
        rc = gguf_get_arr_str_n(ctx, K_MERGES, &n_merges);
        if (rc < 0) return -1;
        if (rc > 0) return RT_FAIL("%s: %s is missing", gguf_path(ctx), K_MERGES);
    }
    int32_t bos = -1, eos = -1, pad = -1, unk = -1;
    if (get_id(ctx, K_BOS, n, 0, &bos) || get_id(ctx, K_EOS, n, 0, &eos) ||
        get_id(ctx, K_PAD, n, 0, &pad) || get_id(ctx, K_UNK, n, 0, &unk))
        return -1;
    int add_bos = 0, add_eos = 0;
    if (gguf_get_bool(ctx, K_ADD_BOS, &add_bos) < 0 || gguf_get_bool(ctx, K_ADD_EOS, &add_eos) < 0)
        return -1;
    uint8_t *types = rt_malloc(n, "token types");
    size_t *off = rt_malloc_array(n + 1, sizeof *off, "token offsets");
    size_t *koff = rt_malloc_array(n + 1, sizeof *koff, "token offsets");
    int32_t *pairs = rt_malloc_array(n_merges ? 2 * n_merges : 1, sizeof *pairs, "merges");
    float *scores = spm ? rt_malloc_array(n, sizeof *scores, "scores") : NULL;
    rt_buf blob = {0}, keys = {0};
    tok_strmap map = {0};
    int ret = -1;
    if (!types || !off || !koff || !pairs || (spm && !scores)) goto done;
    if (spm) memcpy(scores, sdata, n * sizeof *scores);
    for (size_t i = 0; i < n; i++) {
        int32_t ty;
        memcpy(&ty, (const char *)tdata + 4 * i, 4);
        const char *s;
        size_t len;
        if (gguf_get_arr_str(ctx, K_TOKENS, i, &s, &len)) goto done;
        if (len == 0 || ty < 1 || ty > 6) {
            RT_FAIL("%s: %s[%zu] is empty or has type %d (expected 1..6)", gguf_path(ctx),
                    K_TOKENS, i, ty);
            goto done;
        }
        if (ty != TOKENIZER_TYPE_CONTROL && ty != TOKENIZER_TYPE_BYTE &&
            llama_control_looking(s, len))
            ty = TOKENIZER_TYPE_CONTROL;
        off[i] = blob.len;
        koff[i] = keys.len;
        if (rt_buf_append(&keys, s, len) || rt_buf_append(&keys, "", 1) ||
            rt_buf_reserve(&blob, len + 1))
            goto done;
        if (raw_token(ctx, i, ty, spm, s, len, &blob)) goto done;
        blob.data[blob.len++] = 0;
        types[i] = (uint8_t)ty;
    }
    off[n] = blob.len;
    koff[n] = keys.len;
    /* Merges name tokens by their GGUF text. */
    for (size_t i = 0; i < n; i++)
        if (tok_strmap_get(&map, keys.data, koff, keys.data + koff[i], koff[i + 1] - koff[i] - 1) <
                0 &&
            tok_strmap_put(&map, keys.data, koff, (int32_t)i))
            goto done;
    if (read_merges(ctx, n_merges, &map, keys.data, koff, pairs)) goto done;
    tok_stage st[3] = {{0}};
    tok_hf_opts o = {.model = spm ? TOK_MODEL_SPM : TOK_MODEL_BYTELEVEL,
                     .stages = st,
                     .unk = unk,
                     .pre_name = pre,
                     .scores = scores,
                     .add_bos = add_bos,
                     .add_eos = add_eos};
    if (spm) {
        o.kblob = keys.data;
        o.koff = koff;
        int asp = 1; /* llama.cpp's add_space_prefix (default true) */
        if (gguf_get_bool(ctx, K_ASP, &asp) < 0) goto done;
        o.spm_escape = 1;
        o.spm_prepend = o.strip_lead = asp;
    } else if (!strcmp(pre, "llama-bpe")) {
        st[0].kind = TOK_PRE_LLAMA3, o.n_stages = 1, o.ignore_merges = 1;
    } else if (!strcmp(pre, "qwen2")) {
        st[0].kind = TOK_PRE_QWEN2, o.n_stages = 1;
    } else {
        st[0].kind = TOK_PRE_DS3_DIGITS, st[1].kind = TOK_PRE_DS3_CJK;
        st[2].kind = TOK_PRE_DS3_MAIN, o.n_stages = 3;
    }
    char wt[600], wm[600];
    snprintf(wt, sizeof wt, "%s: %s", gguf_path(ctx), K_TOKENS);
    snprintf(wm, sizeof wm, "%s: %s", gguf_path(ctx), K_MERGES);
    ret = tok_build_hf(out, n, blob.data, off, types, n_merges, pairs, bos, eos, pad, &o, wt, wm);
done:
    free(types);
    free(off);
    free(koff);
    free(pairs);
    free(scores);
    rt_buf_free(&blob);
    rt_buf_free(&keys);
    tok_strmap_free(&map);
    return ret;
}

/* The GGUF text of token id: SentencePiece vocabulary text, byte characters for byte-level
 * normal tokens, plain text otherwise. */
static int gguf_token_text(const tokenizer *tok, int32_t id, rt_buf *one, rt_buf *text) {
    if (tok->kblob)
        return rt_buf_append(text, tok->kblob + tok->koff[id],
                             tok->koff[id + 1] - tok->koff[id] - 1);
    if (tok->type[id] == TOKENIZER_TYPE_NORMAL || tok->type[id] == TOKENIZER_TYPE_BYTE) {
        if (tok_map_bytes(tok_bytes(tok, id), tok_len(tok, id), one)) return -1;
        return rt_buf_append(text, one->data, one->len);
    }
    return rt_buf_append(text, tok_bytes(tok, id), tok_len(tok, id));
}

/* llama.cpp's converter (does_token_look_special) writes a non-special added token as
 * CONTROL when its text looks like a control token: <|...|>, <｜...｜>, <unused...>, <pad>,
 * <mask>, <2mass>, [@BOS@]. Such a token is then matched only with parse_special. */
static int looks_special(const char *s, size_t len) {
    static const char *const exact[] = {"<pad>", "<mask>", "<2mass>", "[@BOS@]"};
    for (size_t i = 0; i < RT_ARRAY_LEN(exact); i++)
        if (len == strlen(exact[i]) && !memcmp(s, exact[i], len)) return 1;
    const char *pairs[3][2] = {{"<|", "|>"}, {"<\xEF\xBD\x9C", "\xEF\xBD\x9C>"}, {"<unused", ">"}};
    for (int i = 0; i < 3; i++) {
        size_t a = strlen(pairs[i][0]), b = strlen(pairs[i][1]);
        if (len >= a + b && !memcmp(s, pairs[i][0], a) && !memcmp(s + len - b, pairs[i][1], b))
            return 1;
    }
    return 0;
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
        if (types[i] == TOKENIZER_TYPE_USER_DEFINED &&
            looks_special(tok_bytes(tok, (int32_t)i), tok_len(tok, (int32_t)i)))
            types[i] = TOKENIZER_TYPE_CONTROL;
        if (gguf_token_text(tok, (int32_t)i, &one, &text)) goto done;
    }
    for (size_t r = 0; r < m; r++) {
        toff[n + r] = text.len;
        for (int side = 0; side < 2; side++) {
            int32_t id = tok->merges[3 * r + side];
            if (side && rt_buf_append(&text, " ", 1)) goto done;
            if (gguf_token_text(tok, id, &one, &text)) goto done;
        }
    }
    toff[n + m] = text.len;
    for (size_t i = 0; i < n + m; i++) {
        strs[i] = text.data + toff[i];
        lens[i] = toff[i + 1] - toff[i];
    }
    if (tok->model == TOK_MODEL_SPM) {
        /* llama.cpp merges SentencePiece pieces by score: the score of a merge's result is
         * minus its rank (so the lowest rank wins), other tokens get a score below all. */
        float *sc = rt_malloc_array(n, sizeof *sc, "scores");
        if (!sc) goto done;
        for (size_t i = 0; i < n; i++) sc[i] = tok->scores ? tok->scores[i] : -1e9f;
        if (!tok->scores)
            for (size_t r = m; r-- > 0;)
                if (tok->merges[3 * r + 2] >= 0) sc[tok->merges[3 * r + 2]] = -(float)r;
        int bad = gguf_set_str(w, K_MODEL, "llama") ||
                  gguf_set_arr_str(w, K_TOKENS, strs, lens, n) ||
                  gguf_set_arr_data(w, K_TYPES, GGUF_TYPE_INT32, types, n) ||
                  gguf_set_arr_data(w, K_SCORES, GGUF_TYPE_FLOAT32, sc, n) ||
                  gguf_set_bool(w, K_ASP, tok->spm_prepend != 0) ||
                  (tok->unk >= 0 && gguf_set_u32(w, K_UNK, (uint32_t)tok->unk));
        free(sc);
        if (bad) goto done;
    } else if (!tok->pre_name[0]) {
        RT_FAIL("tokenizer_to_gguf: this tokenizer's pre-tokenizer steps match none of "
                "llama.cpp's (gpt-2, llama-bpe, qwen2, deepseek-v3), so no GGUF reader would "
                "split text as it does");
        goto done;
    } else if (gguf_set_str(w, K_MODEL, "gpt2") || gguf_set_str(w, K_PRE, tok->pre_name) ||
               gguf_set_arr_str(w, K_TOKENS, strs, lens, n) ||
               gguf_set_arr_data(w, K_TYPES, GGUF_TYPE_INT32, types, n) ||
               gguf_set_arr_str(w, K_MERGES, strs + n, lens + n, m)) {
        goto done;
    }
    if ((tok->bos >= 0 && gguf_set_u32(w, K_BOS, (uint32_t)tok->bos)) ||
        (tok->eos >= 0 && gguf_set_u32(w, K_EOS, (uint32_t)tok->eos)) ||
        (tok->pad >= 0 && gguf_set_u32(w, K_PAD, (uint32_t)tok->pad)) ||
        gguf_set_bool(w, K_ADD_BOS, tok->add_bos) || gguf_set_bool(w, K_ADD_EOS, tok->add_eos))
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
