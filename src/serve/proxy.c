/*
 * proxy.c — the gateway's backend: a request's job goes to an upstream OpenAI-compatible
 * server through the client room's pool instead of to the engine. The pool's thread calls
 * back here as the answer arrives; this file turns it into what the HTTP layer (http.c)
 * already knows how to wait for: job->up_out grows (events to relay, or the whole body),
 * the job is signalled, and it is done when the pool let go (usage final).
 *
 * Streams: the upstream's events are relayed one by one as they arrive (each complete
 * "data: ..." event, verbatim but for the upstream key, which is scrubbed from everything
 * relayed); the upstream's "data: [DONE]" is held back (http.c commits the ledger row, then
 * sends its own). Usage: a stream is sent upstream with stream_options.include_usage, so the
 * last chunk carries it; that chunk reaches the client only if it asked. An upstream that
 * reports no usage has its tokens counted with the local model's tokenizer (--embed-model),
 * or estimated at 4 bytes a token without one (job->up_counted says so).
 *
 * Key rotation (serve_set_upstream_key): the pool presents the new key from the next
 * transfer on; the scrubber keeps the last PROXY_KEYS keys, so an old key echoed by an
 * upstream that has not rotated yet is still never relayed.
 *
 * Not HTTP (http.c), not the transport (src/client/pool.c), not the request's validation
 * (the upstream does it; api.c's serve_parse_upstream reads what the gateway needs).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../client/client.h"
#include "serve_internal.h"

#define PROXY_MAX_BODY ((size_t)64 << 20) /* a non-streamed answer larger than this is refused */

#define PROXY_KEYS 8 /* keys scrubbed: the current one and the last ones it replaced */

struct serve_proxy {
    client_pool *pool;
    pthread_mutex_t key_mu; /* keys[] (the scrubber reads them on the pool's thread) */
    char *keys[PROXY_KEYS];
    size_t n_keys;
};

static void key_free(char *k) {
    if (!k) return;
    memset(k, 0, strlen(k));
    free(k);
}

typedef struct {
    serve_proxy *p;
    serve_job *j;
    int kind;
    const tokenizer *tok;
    size_t n_prompt;          /* the request's prompt tokens as counted here */
} xfer_ctx;

/* ---------------------------------------------------------------- pool */

int serve_proxy_new(serve_proxy **out, const serve_options *o) {
    *out = NULL;
    serve_proxy *p = rt_calloc(1, sizeof *p, "gateway proxy");
    if (!p) return -1;
    pthread_mutex_init(&p->key_mu, NULL);
    if (o->upstream_key && *o->upstream_key) {
        p->keys[0] = rt_strdup(o->upstream_key);
        if (!p->keys[0]) goto fail;
        p->n_keys = 1;
    }
    client_pool_options po = {.upstreams = o->upstreams,
                              .n_upstreams = o->n_upstreams,
                              .key = p->keys[0],
                              .timeout_s = o->upstream_timeout_s};
    if (client_global_init() || client_pool_new(&p->pool, &po)) goto fail;
    *out = p;
    return 0;
fail:
    serve_proxy_free(p);
    return -1;
}

void serve_proxy_free(serve_proxy *p) {
    if (!p) return;
    client_pool_free(p->pool);
    for (size_t i = 0; i < p->n_keys; i++) key_free(p->keys[i]);
    pthread_mutex_destroy(&p->key_mu);
    free(p);
}

int serve_proxy_set_key(serve_proxy *p, const char *key) {
    char *k = NULL;
    if (key && *key && !(k = rt_strdup(key))) return -1;
    if (client_pool_set_key(p->pool, key)) {
        key_free(k);
        return -1;
    }
    if (!k) return 0; /* no key from now on: the old ones stay scrubbed */
    pthread_mutex_lock(&p->key_mu);
    if (p->n_keys == PROXY_KEYS) { /* the oldest goes */
        key_free(p->keys[0]);
        memmove(p->keys, p->keys + 1, (PROXY_KEYS - 1) * sizeof p->keys[0]);
        p->n_keys--;
    }
    p->keys[p->n_keys++] = k;
    pthread_mutex_unlock(&p->key_mu);
    return 0;
}

/* ---------------------------------------------------------------- relaying */

/* Append s[0..n) to out with every occurrence of any of the proxy's keys replaced by "***". */
static int append_scrubbed(rt_buf *out, const char *s, size_t n, serve_proxy *p) {
    pthread_mutex_lock(&p->key_mu);
    int rc = 0;
    for (;;) {
        const char *first = NULL;
        size_t first_len = 0;
        for (size_t i = 0; i < p->n_keys; i++) { /* the earliest hit of any key */
            size_t kl = strlen(p->keys[i]);
            const char *hit = n >= kl ? memmem(s, n, p->keys[i], kl) : NULL;
            if (hit && (!first || hit < first || (hit == first && kl > first_len))) first = hit, first_len = kl;
        }
        if (!first) break;
        if (rt_buf_append(out, s, (size_t)(first - s)) || rt_buf_append(out, "***", 3)) {
            rc = -1;
            break;
        }
        n -= (size_t)(first - s) + first_len;
        s = first + first_len;
    }
    pthread_mutex_unlock(&p->key_mu);
    return rc ? rc : rt_buf_append(out, s, n);
}

static const char *finish_name(const char *s) {
    static const char *const known[] = {"stop", "length", "content_filter", "tool_calls", "function_call"};
    for (size_t i = 0; i < RT_ARRAY_LEN(known); i++)
        if (!strcmp(s, known[i])) return known[i];
    return "other";
}

static void take_usage(serve_job *j, json_t *u) {
    if (!json_is_object(u)) return;
    json_t *pt = json_object_get(u, "prompt_tokens"), *ct = json_object_get(u, "completion_tokens");
    if (json_is_integer(pt)) j->up_prompt_tokens = json_integer_value(pt);
    if (json_is_integer(ct)) j->up_completion_tokens = json_integer_value(ct);
    else if (json_is_integer(pt)) j->up_completion_tokens = 0; /* embeddings: prompt tokens only */
}

/* The text of choices in a chunk or a whole answer into the job's choices (mu held). */
static void take_choices(serve_job *j, json_t *choices) {
    size_t k;
    json_t *c;
    json_array_foreach(choices, k, c) {
        json_t *ix = json_object_get(c, "index");
        size_t i = json_is_integer(ix) ? (size_t)json_integer_value(ix) : k;
        if (i >= j->n) continue;
        json_t *holder = json_object_get(c, "delta");
        if (!holder) holder = json_object_get(c, "message");
        json_t *t = holder ? json_object_get(holder, "content") : json_object_get(c, "text");
        if (json_is_string(t)) rt_buf_append(&j->choices[i].text, json_string_value(t), json_string_length(t));
        json_t *fr = json_object_get(c, "finish_reason");
        if (json_is_string(fr)) {
            j->choices[i].finish_reason = finish_name(json_string_value(fr));
            j->choices[i].finished = 1;
        }
        j->choices[i].text_limit = j->choices[i].text.len;
    }
}

/* One complete SSE event (without its blank line): relay it, or hold it back. mu held. */
static int relay_event(xfer_ctx *x, const char *ev, size_t len) {
    serve_job *j = x->j;
    const char *data = NULL;
    size_t dl = 0;
    if (len >= 5 && !memcmp(ev, "data:", 5)) {
        data = ev + 5;
        dl = len - 5;
        if (dl && *data == ' ') data++, dl--;
        while (dl && (data[dl - 1] == '\r' || data[dl - 1] == '\n')) dl--;
    }
    if (data && dl == 6 && !memcmp(data, "[DONE]", 6)) {
        j->up_saw_done = 1;
        return 0;
    }
    if (data) {
        json_t *o = json_loadb(data, dl, JSON_ALLOW_NUL, NULL);
        if (json_is_object(o)) {
            json_t *u = json_object_get(o, "usage"), *ch = json_object_get(o, "choices");
            take_usage(j, u);
            if (json_is_array(ch)) take_choices(j, ch);
            int usage_only = json_is_object(u) && (!json_is_array(ch) || json_array_size(ch) == 0);
            if (usage_only && !j->up_want_usage) {
                json_decref(o);
                return 0; /* asked for by the gateway, not by the client */
            }
        }
        json_decref(o);
    }
    if (append_scrubbed(&j->up_out, ev, len, x->p) || rt_buf_append(&j->up_out, "\n\n", 2)) return -1;
    return 0;
}

/* Relay every complete event in up_pending. mu held. */
static int relay_pending(xfer_ctx *x, int final) {
    serve_job *j = x->j;
    rt_buf *b = &j->up_pending;
    size_t start = 0;
    if (!b->len) return 0; /* nothing pending (b->data may be NULL: no pointer arithmetic on it) */
    for (;;) {
        const char *from = b->data + start;
        size_t left = b->len - start;
        const char *e1 = left ? memmem(from, left, "\n\n", 2) : NULL;
        const char *e2 = left ? memmem(from, left, "\r\n\r\n", 4) : NULL;
        const char *end = e1 && (!e2 || e1 < e2) ? e1 : e2;
        if (!end) break;
        size_t sep = end == e1 ? 2 : 4;
        if (end > from && relay_event(x, from, (size_t)(end - from))) return -1;
        start += (size_t)(end - from) + sep;
    }
    if (final && start < b->len) { /* an event cut short by the end of the answer */
        if (relay_event(x, b->data + start, b->len - start)) return -1;
        start = b->len;
    }
    if (start) {
        memmove(b->data, b->data + start, b->len - start);
        b->len -= start;
    }
    return 0;
}

static void signal_locked(serve_job *j) {
    j->version++;
    pthread_cond_broadcast(&j->cv);
    if (j->on_signal) j->on_signal(j->on_signal_ud, j);
}

/* ---------------------------------------------------------------- pool callbacks */

static int cb_head(void *ud, long status, const char *ctype) {
    xfer_ctx *x = ud;
    serve_job *j = x->j;
    pthread_mutex_lock(&j->mu);
    j->up_status = status;
    snprintf(j->up_ctype, sizeof j->up_ctype, "%s", ctype);
    j->up_sse = status >= 200 && status < 300 && !strncmp(ctype, "text/event-stream", 17);
    if (j->t_first == 0) j->t_first = rt_now();
    signal_locked(j);
    pthread_mutex_unlock(&j->mu);
    return 0;
}

static int cb_data(void *ud, const char *p, size_t n) {
    xfer_ctx *x = ud;
    serve_job *j = x->j;
    int rc = 0;
    pthread_mutex_lock(&j->mu);
    if (j->up_pending.len + n > PROXY_MAX_BODY) {
        snprintf(j->errmsg, sizeof j->errmsg, "the upstream's answer exceeds %zu bytes", PROXY_MAX_BODY);
        rc = -1;
    } else if (rt_buf_append(&j->up_pending, p, n)) {
        rc = -1;
    } else if (j->up_sse) {
        size_t before = j->up_out.len;
        rc = relay_pending(x, 0);
        if (j->up_out.len != before) signal_locked(j);
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

static int cb_cancelled(void *ud) {
    xfer_ctx *x = ud;
    return atomic_load(&x->j->cancelled);
}

static int64_t count_tokens(const tokenizer *tok, const char *s, size_t len) {
    if (!len) return 0;
    if (tok) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (tokenizer_encode(tok, s, len, 0, &ids, &n) == 0) {
            free(ids);
            return (int64_t)n;
        }
        rt_err_clear();
    }
    return (int64_t)((len + 3) / 4);
}

/* The answer is complete (mu held): the body's usage and text, usage counted when missing. */
static void finish_answer(xfer_ctx *x) {
    serve_job *j = x->j;
    if (j->up_sse) {
        relay_pending(x, 1);
    } else {
        int ok = j->up_status >= 200 && j->up_status < 300;
        if (ok && x->kind != SERVE_UP_MODELS) {
            json_t *o = json_loadb(j->up_pending.data ? j->up_pending.data : "", j->up_pending.len, JSON_ALLOW_NUL, NULL);
            if (json_is_object(o)) {
                take_usage(j, json_object_get(o, "usage"));
                json_t *ch = json_object_get(o, "choices");
                if (json_is_array(ch)) take_choices(j, ch);
            }
            json_decref(o);
        }
        append_scrubbed(&j->up_out, j->up_pending.data ? j->up_pending.data : "", j->up_pending.len, x->p);
        j->up_pending.len = 0;
    }
    if (x->kind == SERVE_UP_MODELS) {
        j->up_prompt_tokens = j->up_completion_tokens = 0;
        return;
    }
    if (j->up_prompt_tokens < 0 || j->up_completion_tokens < 0) {
        int64_t comp = 0;
        for (size_t i = 0; i < j->n; i++) comp += count_tokens(x->tok, j->choices[i].text.data, j->choices[i].text.len);
        if (j->up_prompt_tokens < 0) j->up_prompt_tokens = (int64_t)x->n_prompt;
        if (j->up_completion_tokens < 0) j->up_completion_tokens = comp;
        j->up_counted = 1;
    }
}

static void cb_done(void *ud, client_xfer_result res, const char *msg) {
    xfer_ctx *x = ud;
    serve_job *j = x->j;
    pthread_mutex_lock(&j->mu);
    j->up_result = (int)res;
    if (res != CLIENT_XFER_OK && !j->errmsg[0]) snprintf(j->errmsg, sizeof j->errmsg, "%s", msg);
    finish_answer(x);
    for (size_t i = 0; i < j->n; i++) {
        serve_choice *c = &j->choices[i];
        if (!c->finish_reason) c->finish_reason = res == CLIENT_XFER_ABORTED ? "cancelled" : res ? "error" : "stop";
        c->finished = 1;
        c->text_limit = c->text.len;
    }
    j->failed = 0;
    j->done = 1;
    j->t_done = rt_now();
    signal_locked(j);
    pthread_mutex_unlock(&j->mu);
    serve_job_unref(j);
    free(x);
}

int serve_proxy_feed(serve_job *j, const char *key, long status, const char *ctype, const char *p, size_t n,
                     int final) {
    serve_proxy fake = {.key_mu = PTHREAD_MUTEX_INITIALIZER, .keys = {(char *)key}, .n_keys = key && *key};
    xfer_ctx x = {.p = &fake, .j = j, .kind = SERVE_UP_CHAT};
    if (!j->up_status) cb_head(&x, status, ctype);
    if (n && cb_data(&x, p, n)) return -1;
    if (final) {
        pthread_mutex_lock(&j->mu);
        finish_answer(&x);
        j->done = 1;
        pthread_mutex_unlock(&j->mu);
    }
    return 0;
}

/* ---------------------------------------------------------------- sending */

/* The body a stream is sent upstream with: the client's, with stream_options.include_usage. */
static char *with_usage(const char *body, size_t len) {
    json_t *o = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    json_t *so = json_object_get(o, "stream_options");
    if (!json_is_object(so)) {
        so = json_object();
        json_object_set_new(o, "stream_options", so);
    }
    json_object_set_new(so, "include_usage", json_true());
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

int serve_proxy_send(serve_proxy *p, serve_job *j, int kind, const serve_gen_request *r, const char *body,
                     size_t len, const tokenizer *tok) {
    static const char *const paths[] = {"", "/chat/completions", "/completions", "/embeddings", "/models"};
    xfer_ctx *x = rt_calloc(1, sizeof *x, "upstream request");
    if (!x) return -1;
    x->p = p;
    x->j = j;
    x->kind = kind;
    x->tok = tok;
    x->n_prompt = r ? r->n_prompt : 0;
    j->up_want_usage = r && r->include_usage;
    char *rewritten = NULL;
    if (r && r->stream && !r->include_usage) {
        rewritten = with_usage(body, len);
        if (rewritten) {
            body = rewritten;
            len = strlen(rewritten);
        }
    }
    client_xfer_cb cb = {x, cb_head, cb_data, cb_cancelled, cb_done};
    serve_job_ref(j); /* the pool's, dropped in cb_done */
    int rc = client_pool_send(p->pool, kind == SERVE_UP_MODELS ? "GET" : "POST", paths[kind],
                              kind == SERVE_UP_MODELS ? NULL : body, len, &cb);
    free(rewritten);
    if (rc) {
        serve_job_unref(j);
        free(x);
    }
    return rc;
}

/* ---------------------------------------------------------------- errors and figures */

char *serve_proxy_error_body(const serve_job *j, int *status, const char **code) {
    char msg[400];
    switch (j->up_result) {
    case CLIENT_XFER_CONNECT:
        *status = 502;
        *code = "upstream_unavailable";
        return serve_error_json("The model server is unavailable; retry shortly.", "server_error", NULL, *code);
    case CLIENT_XFER_TIMEOUT:
        *status = 504;
        *code = "upstream_timeout";
        return serve_error_json("The model server did not answer in time.", "server_error", NULL, *code);
    case CLIENT_XFER_FAILED:
        *status = 502;
        *code = "upstream_error";
        return serve_error_json("The model server's answer broke off.", "server_error", NULL, *code);
    case CLIENT_XFER_ABORTED:
        if (!atomic_load(&((serve_job *)j)->cancelled)) { /* refused here: the answer was too large */
            *status = 502;
            *code = "upstream_error";
            snprintf(msg, sizeof msg, "The model server's answer was refused: %s", j->errmsg);
            return serve_error_json(msg, "server_error", NULL, *code);
        }
        *status = 499;
        *code = "client_disconnected";
        return serve_error_json("cancelled", "client_disconnected", NULL, *code);
    default: break;
    }
    *status = (int)j->up_status;
    *code = "upstream_error";
    if (j->up_status == 401 || j->up_status == 403) {
        /* the gateway's own key was refused: the client's key is not at fault, and the
         * upstream's words about its key stay here */
        *status = 502;
        rt_warn("gateway: the upstream refused the gateway's key (HTTP %ld): check --upstream-key-file", j->up_status);
        return serve_error_json("The model server refused the gateway's credentials; the operator has been told.",
                                "server_error", NULL, *code);
    }
    if (*status < 400 || *status > 599) *status = 502;
    const char *b = j->up_out.data ? j->up_out.data : "";
    json_t *o = json_loadb(b, j->up_out.len, JSON_ALLOW_NUL, NULL);
    json_t *e = json_is_object(o) ? json_object_get(o, "error") : NULL;
    char *out = NULL;
    if (json_is_object(e) && json_is_string(json_object_get(e, "message"))) {
        out = rt_strdup(b); /* already OpenAI's shape (and scrubbed) */
    } else {
        char shown[240];
        if (json_is_string(e)) rt_utf8_printable(shown, sizeof shown, json_string_value(e));
        else rt_utf8_printable(shown, sizeof shown, b);
        snprintf(msg, sizeof msg, "The model server answered HTTP %ld: %s", j->up_status, shown);
        out = serve_error_json(msg, *status >= 500 ? "server_error" : "invalid_request_error", NULL, *code);
    }
    json_decref(o);
    return out;
}

size_t serve_proxy_up_count(serve_proxy *p, size_t *total) {
    size_t n = client_pool_size(p->pool), up_n = 0;
    for (size_t i = 0; i < n; i++) {
        const char *url;
        int up;
        uint64_t rq, cf;
        client_pool_upstream(p->pool, i, &url, &up, &rq, &cf);
        up_n += up != 0;
    }
    *total = n;
    return up_n;
}

int serve_proxy_metrics(serve_proxy *p, rt_buf *out) {
    if (rt_buf_printf(out, "# HELP retort_upstream_up Whether the gateway believes the upstream is up.\n"
                           "# TYPE retort_upstream_up gauge\n"
                           "# HELP retort_upstream_requests_total Requests sent to the upstream (retries included).\n"
                           "# TYPE retort_upstream_requests_total counter\n"
                           "# HELP retort_upstream_connect_failures_total Connections to the upstream that failed.\n"
                           "# TYPE retort_upstream_connect_failures_total counter\n"))
        return -1;
    for (size_t i = 0; i < client_pool_size(p->pool); i++) {
        const char *url;
        int up;
        uint64_t rq, cf;
        client_pool_upstream(p->pool, i, &url, &up, &rq, &cf);
        if (rt_buf_printf(out,
                          "retort_upstream_up{upstream=\"%s\"} %d\n"
                          "retort_upstream_requests_total{upstream=\"%s\"} %llu\n"
                          "retort_upstream_connect_failures_total{upstream=\"%s\"} %llu\n",
                          url, up, url, (unsigned long long)rq, url, (unsigned long long)cf))
            return -1;
    }
    return 0;
}
