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

/* Kept for the callers outside serve (the guard's views): the rules live in src/base/utf8.c. */
int serve_utf8_sanitize(rt_buf *b, const char *s, size_t len) { return rt_utf8_sanitize(b, s, len); }

size_t serve_utf8_complete_prefix(const char *s, size_t len) { return rt_utf8_complete_prefix(s, len); }
