/*
 * fuzz_chat.c — chat messages (a request's untrusted text) through every chat format
 * (tokenizer_chat_render / tokenizer_chat_encode) and template recognition
 * (tokenizer_chat_detect on arbitrary template text). Input: byte 0 picks the format and the
 * generation prompt; the rest is split at 0x1E into messages, each's first byte its role
 * (including an invalid one). Invariants: render and encode agree on success, ids are inside
 * the vocabulary, the mask is as long as the text, and a refusal leaves a message.
 */
#include "fuzz_common.h"

#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    tokenizer *tok = fz_tokenizer();
    static const char *const roles[5] = {"system", "user", "assistant", "developer", "tool"};
    tokenizer_chat c;
    char *tmpl = rt_malloc(size + 1, "template");
    if (!tmpl) return 0;
    memcpy(tmpl, data, size);
    tmpl[size] = '\0';
    if (tokenizer_chat_detect(&c, tok, tmpl, NULL)) FZ_CHECK(rt_errmsg()[0]);
    free(tmpl);
    memset(&c, 0, sizeof c);
    c.family = (tokenizer_chat_family)((data[0] & 0x7F) % CHAT_N_FAMILIES);
    c.gen_always = (data[0] >> 3) & 1;
    c.no_system = (data[0] >> 4) & 1;
    if (data[0] & 0x20) snprintf(c.default_system, sizeof c.default_system, "default system");
    int gen = data[0] >> 7;
    tokenizer_chat_message m[16];
    size_t n = 0;
    for (size_t pos = 1; pos < size && n < 16;) {
        const uint8_t *e = memchr(data + pos, 0x1E, size - pos);
        size_t len = e ? (size_t)(e - (data + pos)) : size - pos;
        m[n].role = roles[len ? data[pos] % 5 : 1];
        m[n].content = (const char *)data + pos + (len ? 1 : 0);
        m[n].len = len ? len - 1 : 0;
        n++;
        pos += len + 1;
    }
    rt_buf text = {0}, mask = {0};
    int32_t *ids = NULL;
    size_t nid = 0;
    int r1 = tokenizer_chat_render(&c, tok, m, n, gen, &text, &mask);
    int r2 = tokenizer_chat_encode(&c, tok, m, n, gen, &ids, &nid);
    FZ_CHECK(r1 == r2);
    if (r1 == 0) {
        FZ_CHECK(text.len == mask.len);
        for (size_t i = 0; i < nid; i++) FZ_CHECK(ids[i] >= 0 && (size_t)ids[i] < tokenizer_vocab_size(tok));
        char *back = NULL;
        size_t bl = 0;
        FZ_CHECK(tokenizer_decode(tok, ids, nid, &back, &bl) == 0);
        FZ_CHECK(bl == text.len && (bl == 0 || !memcmp(back, text.data, bl))); /* byte-level: lossless */
        free(back);
    } else {
        FZ_CHECK(rt_errmsg()[0]);
    }
    free(ids);
    rt_buf_free(&text);
    rt_buf_free(&mask);
    rt_err_clear();
    return 0;
}
