/*
 * fuzz_http_request.c — a /v1 request body (the bytes a client POSTs) through serve's parser:
 * JSON, fields, chat template and tokenization (serve_parse_gen). The first byte picks the
 * endpoint (even: /v1/completions, odd: /v1/chat/completions); the rest is the body.
 * Invariants: a refusal has a 4xx status and a message; an accepted request has its prompt
 * tokens inside the vocabulary, 1 <= max_tokens <= the cap, and sane sampling parameters.
 */
#include "fuzz_common.h"

#include "serve/serve_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    model *m = fz_model(128);
    int chat = data[0] & 1;
    serve_gen_request r;
    int status = 0;
    char err[512], param[64];
    static serve_chat_format fmt;
    static int fmt_init;
    if (!fmt_init) {
        serve_chat_format_init(&fmt, m, NULL);
        fmt_init = 1;
    }
    int rc = serve_parse_gen((const char *)data + 1, size - 1, chat, m, &fmt, m->cfg.ctx_len, "tiny", 64, &r, &status, err, sizeof err,
                             param, sizeof param);
    if (rc != 0) {
        FZ_CHECK(status >= 400 && status < 500 && err[0]);
    } else {
        FZ_CHECK(r.chat == chat && r.model && !strcmp(r.model, "tiny"));
        for (size_t i = 0; i < r.n_prompt; i++)
            FZ_CHECK(r.prompt_ids[i] >= 0 && (size_t)r.prompt_ids[i] < m->cfg.vocab_size);
        FZ_CHECK(r.max_tokens >= 1 && r.max_tokens <= 64);
        FZ_CHECK(r.n >= 1 && r.temperature >= 0 && r.top_p > 0 && r.top_p <= 1);
    }
    serve_gen_request_free(&r);
    rt_err_clear();
    return 0;
}
