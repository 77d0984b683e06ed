/*
 * chat.c — a chat request's messages to the prompt tokens, through the model's chat format
 * (src/tokenizer/chat.c renders and encodes it), and the UTF-8 helpers that keep JSON strings
 * valid when tokens split characters. Not a Jinja engine.
 */
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include "serve_internal.h"

void serve_chat_format_init(serve_chat_format *f, const model *m, const char *name) {
    memset(f, 0, sizeof *f);
    f->ok = tokenizer_chat_detect(&f->chat, m->tok, m->chat_template, name) == 0;
    if (!f->ok) snprintf(f->err, sizeof f->err, "%s", rt_errmsg());
}

int serve_chat_tokens(const tokenizer_chat *chat, const tokenizer *tok, const serve_message *msgs, size_t n_msgs,
                      int32_t **ids, size_t *n_ids) {
    return tokenizer_chat_encode(chat, tok, msgs, n_msgs, 1, ids, n_ids);
}

/* Kept for the callers outside serve (the guard's views): the rules live in src/base/utf8.c. */
int serve_utf8_sanitize(rt_buf *b, const char *s, size_t len) { return rt_utf8_sanitize(b, s, len); }

size_t serve_utf8_complete_prefix(const char *s, size_t len) { return rt_utf8_complete_prefix(s, len); }
