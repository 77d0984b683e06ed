/*
 * fuzz_gateway.c — what `retort gateway` reads from the network, without one: a client's /v1
 * body through serve_parse_upstream, or an upstream's answer through the relay
 * (serve_proxy_feed). The first byte picks: bit 0 = relay, bits 1-2 = the endpoint kind (parse)
 * or bit 1 = an event stream (relay); the second byte is where the answer is cut in two
 * deliveries. Invariants: a refused body has a 4xx status and a message; an accepted one has
 * a model, 1 <= n <= SERVE_MAX_N and tokens inside the vocabulary; a relayed answer never
 * holds the upstream key, and its usage is never negative once finished.
 */
#include "fuzz_common.h"

#include "serve/serve_internal.h"

#define FZ_KEY "sk-upstream-SECRET"

static void fuzz_parse(const uint8_t *data, size_t size) {
    model *m = fz_model(128);
    int kind = SERVE_UP_CHAT + (data[0] >> 1) % 3;
    serve_gen_request r;
    int status = 0;
    char err[512], param[64];
    static serve_chat_format fmt;
    static int fmt_ready;
    if (!fmt_ready) serve_chat_format_init(&fmt, m, NULL), fmt_ready = 1;
    int rc = serve_parse_upstream((const char *)data + 2, size - 2, kind, (data[0] & 8) ? m->tok : NULL,
                                  fmt.ok ? &fmt.chat : NULL, 64, &r,
                                  &status, err, sizeof err, param, sizeof param);
    if (rc != 0) {
        FZ_CHECK(status >= 400 && status < 500 && err[0]);
    } else {
        FZ_CHECK(r.model && r.prompt_text && r.n >= 1 && r.n <= SERVE_MAX_N);
        for (size_t i = 0; r.prompt_ids && i < r.n_prompt; i++)
            FZ_CHECK(r.prompt_ids[i] >= 0 && (size_t)r.prompt_ids[i] < m->cfg.vocab_size);
    }
    serve_gen_request_free(&r);
}

static void fuzz_relay(const uint8_t *data, size_t size) {
    serve_job *j = serve_job_new_upstream(2);
    if (!j) return;
    const char *body = (const char *)data + 2;
    size_t len = size - 2, cut = RT_MIN((size_t)data[1], len);
    int sse = (data[0] >> 1) & 1;
    const char *ct = sse ? "text/event-stream" : "application/json";
    if (serve_proxy_feed(j, FZ_KEY, 200, ct, body, cut, 0) == 0)
        serve_proxy_feed(j, FZ_KEY, 200, ct, body + cut, len - cut, 1);
    pthread_mutex_lock(&j->mu);
    if (j->up_out.len) FZ_CHECK(!memmem(j->up_out.data, j->up_out.len, FZ_KEY, strlen(FZ_KEY)));
    if (j->done) FZ_CHECK(j->up_prompt_tokens >= 0 && j->up_completion_tokens >= 0);
    pthread_mutex_unlock(&j->mu);
    serve_job_unref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    if (data[0] & 1) fuzz_relay(data, size);
    else fuzz_parse(data, size);
    rt_err_clear();
    return 0;
}
