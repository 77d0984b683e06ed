/*
 * chat.c — the chat template rendered natively (special tokens by id, message text without
 * special-token parsing) and the UTF-8 helpers that keep JSON strings valid when tokens
 * split characters. Not a Jinja engine: serve supports retort's template only
 * (model_default_chat_template); http.c refuses chat requests for a model whose stored
 * template differs.
 */
#include <stdlib.h>
#include <string.h>

#include "serve.h"

int serve_chat_tokens(const tokenizer *tok, const serve_message *msgs, size_t n_msgs, int32_t **ids,
                      size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    int32_t t_sys = tokenizer_special_id(tok, "<|system|>"), t_user = tokenizer_special_id(tok, "<|user|>");
    int32_t t_asst = tokenizer_special_id(tok, "<|assistant|>"), t_end = tokenizer_special_id(tok, "<|end|>");
    if (t_sys < 0 || t_user < 0 || t_asst < 0 || t_end < 0)
        return RT_FAIL("the model's tokenizer lacks the chat tokens <|system|> <|user|> <|assistant|> <|end|>");
    size_t cap = 64, n = 0;
    int32_t *out = rt_malloc_array(cap, sizeof(int32_t), "chat tokens");
    if (!out) return -1;
    for (size_t i = 0; i <= n_msgs; i++) {
        int32_t role;
        int32_t *piece = NULL;
        size_t np = 0;
        if (i == n_msgs) {
            role = t_asst;
        } else {
            const char *r = msgs[i].role;
            if (!strcmp(r, "system") || !strcmp(r, "developer")) role = t_sys;
            else if (!strcmp(r, "user")) role = t_user;
            else if (!strcmp(r, "assistant")) role = t_asst;
            else {
                free(out);
                return RT_FAIL("messages[%zu].role: expected system, user or assistant, got '%s'", i, r);
            }
            if (tokenizer_encode(tok, msgs[i].content, msgs[i].len, 0, &piece, &np)) {
                free(out);
                return -1;
            }
        }
        size_t need = n + np + 2;
        if (need > cap) {
            while (cap < need) cap *= 2;
            int32_t *b = rt_realloc(out, cap * sizeof(int32_t), "chat tokens");
            if (!b) {
                free(piece);
                free(out);
                return -1;
            }
            out = b;
        }
        out[n++] = role;
        if (i < n_msgs) {
            if (np) memcpy(out + n, piece, np * sizeof(int32_t));
            n += np;
            out[n++] = t_end;
        }
        free(piece);
    }
    *ids = out;
    *n_ids = n;
    return 0;
}

/* The UTF-8 sequence at s (len bytes available): returns its length (> 0) when valid;
 * otherwise returns 0 and sets *bad to the length of the maximal subpart to replace by one
 * U+FFFD (>= 1) and *incomplete to 1 when the bytes ran out before the sequence was invalid. */
static size_t utf8_seq(const unsigned char *s, size_t len, size_t *bad, int *incomplete) {
    unsigned char c = s[0];
    *bad = 1;
    *incomplete = 0;
    if (c < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    for (size_t k = 1; k < need; k++) {
        if (k >= len) {
            *bad = k;
            *incomplete = 1;
            return 0;
        }
        unsigned char b = s[k];
        unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (b < l || b > h) {
            *bad = k;
            return 0;
        }
    }
    return need;
}

int serve_utf8_sanitize(rt_buf *b, const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0; /* run: start of the pending valid span */
    while (i < len) {
        size_t bad;
        int inc;
        size_t k = utf8_seq(p + i, len - i, &bad, &inc);
        if (k > 0) {
            i += k;
            continue;
        }
        if (i > run && rt_buf_append(b, s + run, i - run)) return -1;
        if (rt_buf_append(b, "\xEF\xBF\xBD", 3)) return -1;
        i += bad;
        run = i;
    }
    if (i > run && rt_buf_append(b, s + run, i - run)) return -1;
    if (!b->data && rt_buf_append(b, "", 0)) return -1;
    return 0;
}

size_t serve_utf8_complete_prefix(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t start = len > 3 ? len - 3 : 0;
    for (size_t i = len; i > start; i--) {
        unsigned char c = p[i - 1];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte: keep looking for the lead */
        if (c < 0x80) return len;
        size_t bad;
        int inc;
        size_t k = utf8_seq(p + i - 1, len - (i - 1), &bad, &inc);
        return k == 0 && inc ? i - 1 : len;
    }
    return len;
}
