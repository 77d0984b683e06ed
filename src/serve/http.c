/*
 * http.c — the server: libmicrohttpd (epoll, a small pool of threads), routing, the gateway
 * checks in their order (size, key, account status, fields, guard, limits, queue), waiting
 * for the engine without holding a thread, Server-Sent Events, the ledger row of every /v1
 * request, and serve_start / serve_stop.
 *
 * Idle and waiting connections cost no thread: a request whose job is in the engine is
 * suspended (MHD_suspend_connection) and the engine resumes it through job->on_signal when
 * the job changes (a stream: every step; a plain response: when done). Handlers still make
 * short blocking calls (database, ledger commit, the guard's hooks) on the pool threads.
 * A watcher thread looks at the sockets of suspended connections every 50 ms (MHD does not
 * while they are suspended): a reset or error there is a disconnect, which cancels the job;
 * MHD sees the others when a write fails. A request whose connection ended before its job
 * did is handed to the watcher, which writes its ledger row (499) once the engine let go.
 *
 * Not the JSON shapes (api.c), the batching (engine.c), the admin handlers (admin.c) or the
 * dashboard's files (web.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "../client/client.h"
#include "serve_internal.h"

#define SERVE_HTTP_THREADS 4 /* MHD's pool: handlers make only short blocking calls */

struct serve_server {
    serve_options o;
    serve_hooks hooks;
    serve_admin_routes admin_routes; /* handle == NULL: none */
    model *m;
    int own_model;
    char *model_name;
    gw_db *db;
    gw_ledger *ledger;
    gw_limiter *lim;
    serve_engine *eng;      /* NULL in gateway mode without a model */
    serve_proxy *proxy;     /* gateway mode: the upstreams */
    serve_metrics *metrics;
    serve_peers *peers;
    struct MHD_Daemon *d;
    int port;
    double t_start_wall;
    int32_t eos_id, end_id;
    serve_chat_format chat_fmt;
    /* the watcher: connections with a job in flight (suspended ones are checked for a
     * disconnect) and those whose request ended before their job */
    pthread_mutex_t watch_mu;
    pthread_cond_t watch_cv;
    struct conn *watch_head;
    pthread_t watcher;
    int watcher_started, watch_stop;
    atomic_int stopping; /* serve_stop: no more suspending */
    atomic_int n_parked;
};

enum { ROUTE_NONE = 0, ROUTE_GEN, ROUTE_MODELS, ROUTE_HEALTH, ROUTE_METRICS, ROUTE_ADMIN, ROUTE_V1_OTHER, ROUTE_WEB, ROUTE_EMBED };

typedef struct conn conn;
struct conn {
    serve_server *s;
    atomic_int refs;           /* the MHD request + a stream response */
    int route;
    int chat;
    rt_buf body;
    int too_large;
    int fd;
    double t_checked;          /* last look at the socket for a disconnect */
    char client[48];
    uint64_t fingerprint;      /* serve_client_fingerprint of the request's headers */
    double t0;                 /* rt_now() at arrival */
    double t_clock;            /* clock time at arrival (simulated under --sim-clock) */
    int clock_bad;
    char endpoint[40];
    gw_principal who;
    int authed;
    serve_gen_request req;
    int have_req;
    serve_job *job;
    serve_job *ejob;           /* gateway mode: the prompt's embedding for the guard (engine) */
    int up_kind;               /* gateway mode: SERVE_UP_* of this route */
    char id[48];
    int limited;               /* admitted by the limiter: settle once */
    int64_t reserve;
    gw_ledger_row row;
    int ledger_done;
    int ledger_failed;         /* a commit failed: answered 500, never recorded again */
    int64_t row_id;
    int http11;                /* may get an interim 1xx response */
    int probed;                /* sent the one "102 Processing" probe */
    int no_ledger;             /* an over-budget keyless request: counted, not recorded */
    struct MHD_Connection *mc; /* for resuming (valid while the request lives) */
    int parked;                /* suspended, waiting for the job (job->mu) */
    int gone;                  /* the watcher saw the client leave (job->mu) */
    int done_only;             /* resume only when the job is done (a plain response) */
    int watched, finishing;    /* on the watcher's list; handed over to it (watch_mu) */
    struct conn *wprev, *wnext;
    gw_limit_verdict rl;       /* the limiter's verdict, for x-ratelimit-* headers */
    int have_rl;
    /* streaming */
    int stream;
    rt_buf out;
    size_t out_pos;
    int role_sent, finals_sent, ended;
    size_t sent_text[SERVE_MAX_N], sent_tok[SERVE_MAX_N];
    int fin_sent[SERVE_MAX_N];
};

/* ---------------------------------------------------------------- small helpers */

static void conn_unref(conn *c) {
    if (atomic_fetch_sub(&c->refs, 1) != 1) return;
    if (c->job) {
        pthread_mutex_lock(&c->job->mu); /* the engine may outlive us: no more calls into c */
        c->job->on_signal = NULL;
        pthread_mutex_unlock(&c->job->mu);
        serve_job_unref(c->job);
    }
    serve_job_unref(c->ejob);
    serve_gen_request_free(&c->req);
    rt_buf_free(&c->body);
    rt_buf_free(&c->out);
    free(c);
}

/* Has the client gone? A FIN alone (POLLRDHUP) proves nothing: a client may half-close
 * after its request (shutdown(SHUT_WR)) and still read the answer. Only a reset or an error
 * does. To tell a closed socket from a half-closed one before there is anything to send, an
 * HTTP/1.1 client that sent a FIN gets one interim "102 Processing" response (RFC 9110
 * 15.2: a client must accept 1xx responses before the final one); a closed socket answers
 * it with a reset, which the next look sees. may_probe: 0 once the final headers are out. */
static int conn_gone(conn *c, int may_probe) {
    if (c->fd < 0) return 0;
    struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) return 1;
    if ((p.revents & POLLRDHUP) && may_probe && c->http11 && !c->probed) {
        static const char interim[] = "HTTP/1.1 102 Processing\r\n\r\n";
        c->probed = 1;
        if (send(c->fd, interim, sizeof interim - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN &&
            errno != EWOULDBLOCK)
            return 1;
    }
    return 0;
}

static void new_id(char *out, size_t cap, const char *prefix) {
    unsigned char r[12];
    char hex[25];
    randombytes_buf(r, sizeof r);
    sodium_bin2hex(hex, sizeof hex, r, sizeof r);
    snprintf(out, cap, "%s%s", prefix, hex);
}

static void add_common_headers(const conn *c, struct MHD_Response *r);

static enum MHD_Result send_body_timed(conn *c, struct MHD_Connection *mc, int status, char *body, const char *ctype,
                                       double retry_after, const char *server_timing) {
    if (!body) {
        static const char fallback[] = "{\"error\":{\"message\":\"internal error (out of memory)\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
        body = rt_strdup(fallback);
        status = 500;
        if (!body) return MHD_NO;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    if (retry_after > 0) {
        char ra[32];
        snprintf(ra, sizeof ra, "%.0f", ceil(retry_after));
        MHD_add_response_header(r, "Retry-After", ra);
    }
    if (server_timing) MHD_add_response_header(r, "Server-Timing", server_timing);
    add_common_headers(c, r);
    enum MHD_Result ret = MHD_queue_response(mc, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* X-Request-Id on every response (the reference an operator finds in the ledger and the
 * log), and OpenAI's x-ratelimit-* headers once the limiter has judged the request. */
static void add_common_headers(const conn *c, struct MHD_Response *r) {
    if (!c) return;
    if (c->id[0]) MHD_add_response_header(r, "X-Request-Id", c->id);
    if (!c->have_rl) return;
    char v[48];
    const gw_limits *lim = &c->who.account.limits;
    if (c->rl.remaining_requests >= 0) {
        snprintf(v, sizeof v, "%lld", (long long)lim->rpm);
        MHD_add_response_header(r, "x-ratelimit-limit-requests", v);
        snprintf(v, sizeof v, "%lld", (long long)c->rl.remaining_requests);
        MHD_add_response_header(r, "x-ratelimit-remaining-requests", v);
        snprintf(v, sizeof v, "%.3gs", c->rl.reset_requests);
        MHD_add_response_header(r, "x-ratelimit-reset-requests", v);
    }
    if (c->rl.remaining_tokens >= 0) {
        snprintf(v, sizeof v, "%lld", (long long)lim->tpm);
        MHD_add_response_header(r, "x-ratelimit-limit-tokens", v);
        snprintf(v, sizeof v, "%lld", (long long)c->rl.remaining_tokens);
        MHD_add_response_header(r, "x-ratelimit-remaining-tokens", v);
        snprintf(v, sizeof v, "%.3gs", c->rl.reset_tokens);
        MHD_add_response_header(r, "x-ratelimit-reset-tokens", v);
    }
}

static enum MHD_Result send_body(conn *c, struct MHD_Connection *mc, int status, char *body, const char *ctype,
                                 double retry_after) {
    return send_body_timed(c, mc, status, body, ctype, retry_after, NULL);
}

static const char *status_type(int status) {
    switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 405: return "invalid_request_error";
    case 413: return "invalid_request_error";
    case 429: return "rate_limit_error";
    case 499: return "client_disconnected";
    case 503: return "server_overloaded";
    default: return "server_error";
    }
}

/* ---------------------------------------------------------------- ledger + metrics */

static int64_t used_tokens(const conn *c) {
    if (!c->job) return 0; /* refused before the engine: nothing was read or generated */
    if (c->job->upstream) return RT_MAX(c->job->up_prompt_tokens, 0) + RT_MAX(c->job->up_completion_tokens, 0);
    int64_t used = (int64_t)c->req.n_prompt;
    for (size_t i = 0; i < c->job->n; i++) used += (int64_t)c->job->choices[i].n_generated;
    return used;
}

/* Write the request's ledger row (once) and count it in the metrics. 0, or -1 when the commit failed. */
static int record(conn *c, int status, const char *error) {
    if (c->ledger_done) return 0;
    if (c->ledger_failed) return -1;
    serve_server *s = c->s;
    if (c->no_ledger) {
        serve_metrics_request(s->metrics, c->endpoint, status, (rt_now() - c->t0), -1, 0, 0);
        c->ledger_done = 1;
        return 0;
    }
    gw_ledger_row *r = &c->row;
    memset(r, 0, sizeof *r);
    rt_utf8_copy(r->request_id, sizeof r->request_id, c->id[0] ? c->id : "-");
    r->t = c->t_clock;
    if (c->authed) {
        r->account_id = c->who.account.id;
        snprintf(r->key_id, sizeof r->key_id, "%s", c->who.key_id);
    }
    /* text fields are cut on a character boundary: the database holds only valid UTF-8 */
    rt_utf8_copy(r->endpoint, sizeof r->endpoint, c->endpoint);
    rt_utf8_copy(r->model, sizeof r->model, c->have_req ? c->req.model : "");
    r->status = status;
    rt_utf8_copy(r->error, sizeof r->error, error ? error : "");
    r->n = 1;
    r->ttft_ms = -1;
    if (c->have_req) {
        const serve_gen_request *q = &c->req;
        /* tokens are counted only when the model read them (rejected requests cost nothing) */
        r->prompt_tokens = !c->job ? 0 : c->job->upstream ? RT_MAX(c->job->up_prompt_tokens, 0) : (int64_t)q->n_prompt;
        r->temperature = q->temperature;
        r->top_p = q->top_p;
        r->max_tokens = (int64_t)q->max_tokens;
        r->logprobs = q->logprobs;
        r->top_logprobs = (int)q->top_logprobs;
        r->n = (int)q->n;
        r->stream = q->stream;
        r->has_seed = q->has_seed;
        r->seed = q->seed;
        gw_hash_hex(q->prompt_text, q->prompt_text_len, r->prompt_hash);
    }
    serve_job *j = c->job;
    if (j) {
        pthread_mutex_lock(&j->mu);
        rt_buf all = {0};
        int64_t comp = 0;
        for (size_t i = 0; i < j->n; i++) {
            const serve_choice *ch = &j->choices[i];
            comp += (int64_t)ch->n_generated;
            size_t lim = ch->finished ? ch->text_limit : ch->text.len;
            if (i) rt_buf_append(&all, "\x1e", 1);
            /* the text as the client received it: invalid UTF-8 became U+FFFD in the JSON, so
             * a harvested completion hashes to this very value (report: ledger -> harvest) */
            if (lim) rt_utf8_sanitize(&all, ch->text.data, lim);
        }
        r->completion_tokens = j->upstream ? RT_MAX(j->up_completion_tokens, 0) : comp;
        if (j->t_first > 0) r->ttft_ms = (j->t_first - c->t0) * 1e3;
        snprintf(r->finish_reason, sizeof r->finish_reason, "%s",
                 j->choices[0].finish_reason ? j->choices[0].finish_reason : "");
        pthread_mutex_unlock(&j->mu);
        gw_hash_hex(all.data ? all.data : "", all.len, r->output_hash);
        rt_buf_free(&all);
    }
    rt_utf8_copy(r->client, sizeof r->client, c->client);
    r->latency_ms = (rt_now() - c->t0) * 1e3;
    if (c->limited) {
        gw_limits lim = c->who.account.limits;
        gw_limiter_settle(s->lim, c->who.account.id, &lim, c->t_clock, c->reserve, used_tokens(c));
        c->limited = 0;
    }
    int rc = gw_ledger_commit(s->ledger, r, &c->row_id);
    if (rc == 0) {
        c->ledger_done = 1;
    } else {
        c->ledger_failed = 1;
        rt_warn("serve: %s", rt_errmsg());
    }
    /* what the client gets: a failed commit is answered 500 ledger_error */
    serve_metrics_request(s->metrics, c->endpoint, rc ? 500 : status, r->latency_ms / 1e3, r->ttft_ms >= 0 ? r->ttft_ms / 1e3 : -1,
                          r->prompt_tokens, r->completion_tokens);
    return rc;
}

/* An error response in OpenAI's shape, recorded on the ledger for /v1 routes. */
static enum MHD_Result fail_with(conn *c, struct MHD_Connection *mc, int status, const char *param, const char *code,
                                 double retry_after, const char *fmt, ...) RT_PRINTF(7, 8);
static enum MHD_Result fail_with(conn *c, struct MHD_Connection *mc, int status, const char *param, const char *code,
                                 double retry_after, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->route == ROUTE_GEN || c->route == ROUTE_MODELS || c->route == ROUTE_V1_OTHER || c->route == ROUTE_EMBED)
        record(c, status, code && *code ? code : status_type(status));
    if (status == 401 || status == 403 || status == 429)
        serve_metrics_refusal(c->s->metrics, code && *code ? code : status_type(status));
    return send_body(c, mc, status, serve_error_json(msg, status_type(status), param, code), "application/json",
                     retry_after);
}

static double clock_now(conn *c, struct MHD_Connection *mc) {
    if (c->s->o.sim_clock) {
        const char *h = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "X-Retort-Sim-Time");
        if (h) {
            char *end = NULL;
            double t = strtod(h, &end);
            if (end != h && !*end && isfinite(t) && t >= 0) return t;
            c->clock_bad = 1;
        }
    }
    return rt_wall_time();
}

static const char *bearer(struct MHD_Connection *mc) {
    const char *h = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Authorization");
    if (!h) return NULL;
    if (strncasecmp(h, "Bearer ", 7) != 0) return "";
    h += 7;
    while (*h == ' ') h++;
    return h;
}

/* Refusals are logged with their reason for the operator, at most 20 lines a second (a
 * suspended client retrying in a loop must not flood the log; the ledger has every one). */
static int refusal_log_ok(void) {
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static double level = 20, t_last = 0;
    static uint64_t skipped = 0;
    pthread_mutex_lock(&mu);
    double now = rt_now();
    level = RT_MIN(20.0, level + (now - t_last) * 20.0);
    t_last = now;
    int ok = level >= 1;
    if (ok) {
        level -= 1;
        if (skipped) rt_warn("serve: %llu refusals not logged (over 20 a second; the ledger has them)",
                             (unsigned long long)skipped);
        skipped = 0;
    } else {
        skipped++;
    }
    pthread_mutex_unlock(&mu);
    return ok;
}

/* 0: authenticated and active; otherwise a response was queued (*ret). */
static int authenticate(conn *c, struct MHD_Connection *mc, enum MHD_Result *ret) {
    gw_auth_result ar;
    if (gw_auth(c->s->db, bearer(mc), &c->who, &ar)) {
        *ret = fail_with(c, mc, 500, NULL, "database_error", 0, "internal error: %s", rt_errmsg());
        return -1;
    }
    if (ar != GW_AUTH_OK) {
        /* anonymous traffic: answered and recorded up to a budget per address, then refused
         * with 429 and only counted, so it cannot fill the ledger (see peer.c) */
        double retry = 0;
        if (!serve_peers_keyless_admit(c->s->peers, c->client, rt_now(), &retry)) {
            c->no_ledger = 1;
            *ret = fail_with(c, mc, 429, NULL, "keyless_rate_limited", retry,
                             "Too many requests without a valid API key from this address; retry later.");
            return -1;
        }
    }
    if (ar == GW_AUTH_MISSING) {
        *ret = fail_with(c, mc, 401, NULL, "missing_api_key", 0,
                         "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.");
        return -1;
    }
    if (ar != GW_AUTH_OK) {
        *ret = fail_with(c, mc, 401, NULL, "invalid_api_key", 0, "Incorrect API key provided (unknown or revoked).");
        return -1;
    }
    c->authed = 1;
    if (c->who.account.status == GW_ACCOUNT_SUSPENDED) {
        /* the reason is for operators (log, admin API): told to the client, a detector's
         * reason is a manual for evading it */
        char name[160], why[600];
        if (refusal_log_ok())
            rt_warn("serve: %s refused (403 account_suspended) from %s: account %s (#%lld) is suspended: %s", c->id,
                    c->client, rt_utf8_printable(name, sizeof name, c->who.account.name),
                    (long long)c->who.account.id, rt_utf8_printable(why, sizeof why, c->who.account.reason));
        /* the guard's verification step (defend/runtime.c holds the account at suspended with
         * this prefix): the client is told what it takes, not why */
        if (!strncmp(c->who.account.reason, GW_REASON_VERIFY, strlen(GW_REASON_VERIFY))) {
            *ret = fail_with(c, mc, 403, NULL, "verification_required", 0,
                             "This account must be verified before it can be used. Contact the API operator and "
                             "quote reference %s.", c->id);
            return -1;
        }
        *ret = fail_with(c, mc, 403, NULL, "account_suspended", 0,
                         "This account is suspended. Contact the API operator and quote reference %s.", c->id);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- client fingerprint */

#define FP_MAX_HEADERS 32

uint64_t serve_client_fingerprint(const char *const *names, size_t n, const char *user_agent) {
    if (n == 0 && !user_agent) return 0;
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, names lowercased, each ended by '\n' */
    for (size_t i = 0; i < n; i++) {
        for (const char *p = names[i]; *p; p++) {
            unsigned char ch = (unsigned char)*p;
            if (ch >= 'A' && ch <= 'Z') ch = (unsigned char)(ch - 'A' + 'a');
            h = (h ^ ch) * 0x100000001b3ULL;
        }
        h = (h ^ '\n') * 0x100000001b3ULL;
    }
    h = (h ^ 0) * 0x100000001b3ULL; /* names end; the User-Agent follows */
    for (const char *p = user_agent ? user_agent : ""; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    return h ? h : 1;
}

typedef struct {
    const char *names[FP_MAX_HEADERS];
    size_t n;
} fp_names;

static enum MHD_Result fp_collect(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    (void)value;
    fp_names *f = cls;
    if (key && f->n < FP_MAX_HEADERS) f->names[f->n++] = key;
    return MHD_YES;
}

/* the headers as libmicrohttpd keeps them: in the order they came */
static uint64_t request_fingerprint(struct MHD_Connection *mc) {
    fp_names f = {.n = 0};
    MHD_get_connection_values(mc, MHD_HEADER_KIND, fp_collect, &f);
    return serve_client_fingerprint(f.names, f.n, MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "User-Agent"));
}

/* ---------------------------------------------------------------- hooks */

static void fill_info(const conn *c, serve_request_info *ri) {
    memset(ri, 0, sizeof *ri);
    ri->request_id = c->id;
    ri->endpoint = c->endpoint;
    ri->who = &c->who;
    ri->t = c->t_clock;
    ri->client = c->client;
    ri->fingerprint = c->fingerprint;
    ri->prompt_text = c->req.prompt_text;
    ri->prompt_len = c->req.prompt_text_len;
    ri->prompt_ids = c->req.prompt_ids;
    ri->n_prompt = c->req.n_prompt;
    ri->body = c->body.data;
    ri->body_len = c->body.len;
    ri->temperature = c->req.temperature;
    ri->top_p = c->req.top_p;
    ri->max_tokens = c->req.max_tokens;
    ri->n = c->req.n;
    ri->top_logprobs = c->req.top_logprobs;
    ri->logprobs = c->req.logprobs;
    ri->stream = c->req.stream;
}

static void call_after(conn *c) {
    const serve_hooks *h = &c->s->hooks;
    if (!h->after || !c->ledger_done || !c->authed) return;
    serve_request_info ri;
    fill_info(c, &ri);
    serve_request_result rr = {.row = &c->row, .row_id = c->row_id};
    serve_job *j = c->job;
    if (j) pthread_mutex_lock(&j->mu);
    serve_job *hj = c->ejob ? c->ejob : j; /* gateway mode: the embedding job holds the hidden state */
    if (hj && hj != j) pthread_mutex_lock(&hj->mu);
    if (j && j->done) {
        rr.completion = j->choices[0].text.data ? j->choices[0].text.data : "";
        rr.completion_len = j->choices[0].text_limit;
    }
    if (hj && hj->done && hj->hidden && hj->t_first > 0) {
        rr.hidden = hj->hidden;
        rr.hidden_dim = hj->hidden_dim;
    }
    h->after(h->ud, &ri, &rr);
    if (hj && hj != j) pthread_mutex_unlock(&hj->mu);
    if (j) pthread_mutex_unlock(&j->mu);
}

/* Is the embedding job (gateway mode) done, or is there none? */
static int ejob_done(conn *c) {
    if (!c->ejob) return 1;
    pthread_mutex_lock(&c->ejob->mu);
    int d = c->ejob->done;
    pthread_mutex_unlock(&c->ejob->mu);
    return d;
}

/* ---------------------------------------------------------------- waiting */

/* The engine changed the job (engine thread, job->mu held): resume the connection if it
 * waits for this. */
static void on_job_signal(void *ud, serve_job *j) {
    conn *c = ud;
    if (c->parked && (!c->done_only || j->done)) {
        c->parked = 0;
        atomic_fetch_sub(&c->s->n_parked, 1);
        MHD_resume_connection(c->mc);
    }
}

/* Suspend the connection until the job changes (job->mu held; call only from an MHD
 * callback of this connection). 0 when it must not wait (the client left, or stopping). */
static int park_locked(conn *c) {
    if (c->gone || atomic_load(&c->s->stopping)) return 0;
    c->parked = 1;
    atomic_fetch_add(&c->s->n_parked, 1);
    MHD_suspend_connection(c->mc);
    return 1;
}

static void watch_add(conn *c, int finishing) {
    serve_server *s = c->s;
    pthread_mutex_lock(&s->watch_mu);
    if (!c->watched) {
        atomic_fetch_add(&c->refs, 1);
        c->watched = 1;
        c->wprev = NULL;
        c->wnext = s->watch_head;
        if (s->watch_head) s->watch_head->wprev = c;
        s->watch_head = c;
    }
    if (finishing) {
        c->finishing = 1;
        pthread_cond_signal(&s->watch_cv);
    }
    pthread_mutex_unlock(&s->watch_mu);
}

/* Take c off the watcher's list (watch_mu held); drops the list's reference later. */
static int watch_remove_locked(conn *c) {
    serve_server *s = c->s;
    if (!c->watched) return 0;
    if (c->wprev) c->wprev->wnext = c->wnext;
    else s->watch_head = c->wnext;
    if (c->wnext) c->wnext->wprev = c->wprev;
    c->watched = 0;
    return 1;
}

static void watch_remove(conn *c) {
    pthread_mutex_lock(&c->s->watch_mu);
    int had = watch_remove_locked(c);
    pthread_mutex_unlock(&c->s->watch_mu);
    if (had) conn_unref(c);
}

/* Cancel and wait for the engine to let go (so token counts are final). */
static void cancel_job(conn *c) {
    serve_job *j = c->job;
    if (!j) return;
    atomic_store(&j->cancelled, 1);
    double t_end = rt_now() + 10.0;
    pthread_mutex_lock(&j->mu);
    while (!j->done && rt_now() < t_end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    }
    pthread_mutex_unlock(&j->mu);
}

/* ---------------------------------------------------------------- streaming */

static int sse_append(conn *c, json_t *obj) {
    if (!obj) return RT_FAIL("out of memory building a stream chunk");
    if (c->req.include_usage && !json_object_get(obj, "usage")) json_object_set_new(obj, "usage", json_null());
    char *s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(obj);
    if (!s) return RT_FAIL("out of memory building a stream chunk");
    int rc = rt_buf_printf(&c->out, "data: %s\n\n", s);
    free(s);
    return rc;
}

static json_t *chunk_base(conn *c, json_t *choices) {
    return json_pack("{s:s, s:s, s:I, s:s, s:o, s:n}", "id", c->id, "object",
                     c->chat ? "chat.completion.chunk" : "text_completion", "created", (json_int_t)c->t_clock,
                     "model", c->s->model_name, "choices", choices, "system_fingerprint");
}

/* Append the events the job's progress allows (job->mu held). Returns 1 when every
 * choice's last chunk is out and the job is done, -1 on error. */
static int stream_produce(conn *c) {
    serve_job *j = c->job;
    const tokenizer *tok = c->s->m->tok;
    if (!c->role_sent) {
        c->role_sent = 1;
        if (c->chat)
            for (size_t ci = 0; ci < j->n; ci++) {
                json_t *ch = json_pack("[{s:I, s:{s:s, s:s}, s:n, s:n}]", "index", (json_int_t)ci, "delta", "role",
                                       "assistant", "content", "", "logprobs", "finish_reason");
                if (sse_append(c, chunk_base(c, ch))) return -1;
            }
    }
    int all = 1;
    for (size_t ci = 0; ci < j->n; ci++) {
        const serve_choice *ch = &j->choices[ci];
        size_t limit = ch->finished ? ch->text_limit : rt_utf8_complete_prefix(ch->text.data, ch->safe_len);
        if (limit < c->sent_text[ci]) limit = c->sent_text[ci];
        size_t tok_to;
        if (ch->finished) {
            tok_to = serve_choice_visible_tokens(ch, limit);
        } else {
            tok_to = c->sent_tok[ci];
            while (tok_to < ch->n_tokens && ch->tok_off[tok_to + 1] <= limit) tok_to++;
        }
        if (tok_to < c->sent_tok[ci]) tok_to = c->sent_tok[ci];
        if (limit > c->sent_text[ci] || tok_to > c->sent_tok[ci]) {
            json_t *text = serve_json_bytes_string(ch->text.data + c->sent_text[ci], limit - c->sent_text[ci]);
            json_t *lp = c->req.logprobs ? serve_logprobs_json(c->chat, tok, ch, c->sent_tok[ci], tok_to, j->top_k)
                                         : json_null();
            json_t *one = c->chat ? json_pack("{s:I, s:{s:o}, s:o, s:n}", "index", (json_int_t)ci, "delta", "content",
                                              text, "logprobs", lp, "finish_reason")
                                  : json_pack("{s:I, s:o, s:o, s:n}", "index", (json_int_t)ci, "text", text,
                                              "logprobs", lp, "finish_reason");
            if (sse_append(c, chunk_base(c, json_pack("[o]", one)))) return -1;
            c->sent_text[ci] = limit;
            c->sent_tok[ci] = tok_to;
        }
        if (ch->finished && !c->fin_sent[ci]) {
            const char *fr = ch->finish_reason ? ch->finish_reason : "stop";
            json_t *one = c->chat ? json_pack("{s:I, s:{}, s:n, s:s}", "index", (json_int_t)ci, "delta", "logprobs",
                                              "finish_reason", fr)
                                  : json_pack("{s:I, s:s, s:n, s:s}", "index", (json_int_t)ci, "text", "", "logprobs",
                                              "finish_reason", fr);
            if (sse_append(c, chunk_base(c, json_pack("[o]", one)))) return -1;
            c->fin_sent[ci] = 1;
        }
        if (!c->fin_sent[ci]) all = 0;
    }
    return all && j->done;
}

/* Copies what is buffered in c->out (and not yet sent) into buf, at most max bytes; the buffer is
 * emptied for reuse once all of it has gone. Call only while c->out_pos < c->out.len. */
static ssize_t drain_out(conn *c, char *buf, size_t max) {
    size_t n = RT_MIN(max, c->out.len - c->out_pos);
    memcpy(buf, c->out.data + c->out_pos, n);
    c->out_pos += n;
    if (c->out_pos == c->out.len) c->out.len = c->out_pos = 0;
    return (ssize_t)n;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    conn *c = cls;
    serve_job *j = c->job;
    for (;;) {
        if (c->out_pos < c->out.len) return drain_out(c, buf, max);
        if (c->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        pthread_mutex_lock(&j->mu);
        uint64_t version = j->version;
        int failed = j->failed;
        char errmsg[256];
        snprintf(errmsg, sizeof errmsg, "%s", j->errmsg);
        int fin = failed ? 1 : stream_produce(c);
        pthread_mutex_unlock(&j->mu);
        if (fin < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (fin == 1) {
            if (failed) {
                record(c, 500, "server_error");
                char *e = serve_error_json(errmsg, "server_error", NULL, NULL);
                if (e) rt_buf_printf(&c->out, "data: %s\n\n", e);
                free(e);
                c->ended = 1;
                continue;
            }
            if (c->req.include_usage) {
                pthread_mutex_lock(&j->mu);
                json_t *u = chunk_base(c, json_array());
                if (u) json_object_set_new(u, "usage", serve_usage_json(j));
                pthread_mutex_unlock(&j->mu);
                if (sse_append(c, u)) return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            /* the ledger row commits before the stream's last event */
            if (record(c, 200, NULL)) {
                char *e = serve_error_json("internal error: the usage ledger could not be written", "server_error",
                                           NULL, "ledger_error");
                if (e) rt_buf_printf(&c->out, "data: %s\n\n", e);
                free(e);
            } else {
                rt_buf_printf(&c->out, "data: [DONE]\n\n");
            }
            c->ended = 1;
            continue;
        }
        if (c->out.len > 0) continue;
        /* nothing new: suspend until the engine moves (returning 0 with the connection
         * suspended is how MHD's reader waits) */
        pthread_mutex_lock(&j->mu);
        if (j->version != version || j->done) {
            pthread_mutex_unlock(&j->mu);
            continue;
        }
        if (c->gone) {
            pthread_mutex_unlock(&j->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR; /* on_completed cancels and records */
        }
        if (park_locked(c)) {
            pthread_mutex_unlock(&j->mu);
            return 0;
        }
        pthread_mutex_unlock(&j->mu);
        cancel_job(c); /* stopping: finish here */
    }
}

static void stream_free(void *cls) { conn_unref(cls); }

/* Answer with a server-sent event stream that reader fills (the engine's or the upstream's);
 * the response holds a reference to c until stream_free. */
static enum MHD_Result queue_sse(conn *c, struct MHD_Connection *mc, MHD_ContentReaderCallback reader) {
    atomic_fetch_add(&c->refs, 1);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, c, stream_free);
    if (!r) {
        conn_unref(c);
        cancel_job(c);
        return fail_with(c, mc, 500, NULL, NULL, 0, "internal error: cannot create the stream");
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    add_common_headers(c, r);
    enum MHD_Result ret = MHD_queue_response(mc, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}


/* ---------------------------------------------------------------- generation */

static enum MHD_Result gen_respond(conn *c, struct MHD_Connection *mc);
static enum MHD_Result gen_upstream(conn *c, struct MHD_Connection *mc);
static enum MHD_Result upstream_respond(conn *c, struct MHD_Connection *mc);

static enum MHD_Result handle_gen(conn *c, struct MHD_Connection *mc) {
    serve_server *s = c->s;
    enum MHD_Result ret;
    if (c->job) return c->job->upstream ? upstream_respond(c, mc) : gen_respond(c, mc); /* resumed: the job moved */
    if (authenticate(c, mc, &ret)) return ret;
    if (c->clock_bad) return fail_with(c, mc, 400, "X-Retort-Sim-Time", NULL, 0, "X-Retort-Sim-Time: expected Unix seconds");
    if (c->too_large)
        return fail_with(c, mc, 413, NULL, "request_too_large", 0, "request body exceeds %zu bytes", s->o.max_body);
    int status = 0;
    char err[512], param[64];
    int prc = s->proxy ? serve_parse_upstream(c->body.data ? c->body.data : "", c->body.len, c->up_kind,
                                              s->m ? s->m->tok : NULL, s->m && s->chat_fmt.ok ? &s->chat_fmt.chat : NULL,
                                              s->o.max_tokens_cap, &c->req, &status, err,
                                              sizeof err, param, sizeof param)
                       : serve_parse_gen(c->body.data ? c->body.data : "", c->body.len, c->chat, s->m, &s->chat_fmt,
                                         s->o.n_ctx, s->model_name, s->o.max_tokens_cap, &c->req, &status, err, sizeof err, param, sizeof param);
    if (prc) return fail_with(c, mc, status, param, status == 404 ? "model_not_found" : c->req.error_code, 0, "%s", err);
    c->have_req = 1;
    c->stream = c->req.stream;
    if (!s->proxy && c->req.n > s->o.max_batch)
        return fail_with(c, mc, 400, "n", NULL, 0, "n: at most %zu on this server (--max-batch)", s->o.max_batch);
    if (s->hooks.before) {
        serve_request_info ri;
        fill_info(c, &ri);
        char reason[256] = "";
        double retry = 0;
        int h = s->hooks.before(s->hooks.ud, &ri, reason, sizeof reason, &retry);
        if (h == 2) {
            /* the guard's population hold: the client sees a rate limit (as the limiter's 429);
             * the ledger and the log say it was the guard's */
            char name[160], why[600], msg[160];
            if (refusal_log_ok())
                rt_warn("serve: %s held (429 guard_hold) from %s: account %s (#%lld): %s", c->id, c->client,
                        rt_utf8_printable(name, sizeof name, c->who.account.name), (long long)c->who.account.id,
                        rt_utf8_printable(why, sizeof why, reason[0] ? reason : "(no reason given)"));
            if (!(retry >= 1) || !isfinite(retry)) retry = 1;
            record(c, 429, "guard_hold");
            serve_metrics_refusal(s->metrics, "guard_hold");
            snprintf(msg, sizeof msg, "Too many requests; retry after %.0f s.", ceil(retry));
            return send_body(c, mc, 429, serve_error_json(msg, status_type(429), NULL, "rate_limit_exceeded"),
                             "application/json", retry);
        }
        if (h == 1) {
            char name[160], why[600];
            if (refusal_log_ok())
                rt_warn("serve: %s refused (403 request_blocked) from %s: account %s (#%lld): %s", c->id, c->client,
                        rt_utf8_printable(name, sizeof name, c->who.account.name), (long long)c->who.account.id,
                        rt_utf8_printable(why, sizeof why, reason[0] ? reason : "(no reason given)"));
            return fail_with(c, mc, 403, NULL, "request_blocked", 0,
                             "This request was refused. Contact the API operator and quote reference %s.", c->id);
        }
        if (h != 0) return fail_with(c, mc, 500, NULL, NULL, 0, "internal error in the request hook: %s", rt_errmsg());
    }
    /* limits */
    c->reserve = (int64_t)(c->req.n_prompt + c->req.max_tokens * c->req.n);
    gw_limit_verdict v;
    if (gw_limiter_admit(s->lim, c->who.account.id, &c->who.account.limits, c->t_clock, c->reserve, &v))
        return fail_with(c, mc, 500, NULL, NULL, 0, "internal error: %s", rt_errmsg());
    c->rl = v;
    c->have_rl = 1;
    if (!v.ok) return fail_with(c, mc, 429, NULL, "rate_limit_exceeded", v.retry_after, "%s", v.message);
    c->limited = 1;
    if (s->proxy) return gen_upstream(c, mc);
    /* the job */
    /* the job gets its own copy of the prompt; ours stays for the hooks */
    int32_t *pcopy = rt_malloc_array(c->req.n_prompt, sizeof(int32_t), "prompt");
    if (!pcopy) return fail_with(c, mc, 500, NULL, NULL, 0, "internal error: %s", rt_errmsg());
    memcpy(pcopy, c->req.prompt_ids, c->req.n_prompt * sizeof(int32_t));
    serve_job *j = serve_job_new(pcopy, c->req.n_prompt, c->req.n, c->req.max_tokens, c->req.logprobs,
                                 c->req.top_logprobs, s->hooks.want_hidden ? s->m->cfg.dim : 0);
    if (!j) {
        free(pcopy);
        return fail_with(c, mc, 500, NULL, NULL, 0, "internal error: %s", rt_errmsg());
    }
    c->job = j;
    j->account_id = c->who.account.id;
    snprintf(j->account, sizeof j->account, "%s", c->who.account.name);
    j->sp.temperature = c->req.temperature;
    j->sp.top_p = c->req.top_p;
    j->sp.top_k = c->req.top_k;
    if (c->req.has_seed) j->sp.seed = c->req.seed;
    else randombytes_buf(&j->sp.seed, sizeof j->sp.seed);
    for (size_t i = 0; i < c->req.n_stop; i++) {
        j->stop[i] = rt_strdup(c->req.stop[i]);
        if (!j->stop[i]) return fail_with(c, mc, 500, NULL, NULL, 0, "internal error: %s", rt_errmsg());
        j->stop_len[i] = strlen(j->stop[i]);
        j->n_stop = i + 1;
    }
    if (s->eos_id >= 0) j->stop_ids[j->n_stop_ids++] = s->eos_id;
    if (c->chat && s->end_id >= 0) j->stop_ids[j->n_stop_ids++] = s->end_id;
    c->mc = mc;
    c->done_only = !c->stream;
    j->on_signal = on_job_signal;
    j->on_signal_ud = c;
    int sr = serve_engine_submit(s->eng, j);
    if (sr == 1) {
        serve_job_unref(j);
        c->job = NULL;
        return fail_with(c, mc, 503, NULL, "queue_full", 1, "the server is busy (request queue full); retry shortly");
    }
    if (sr < 0) {
        serve_job_unref(j);
        c->job = NULL;
        return fail_with(c, mc, 400, NULL, NULL, 0, "%s", rt_errmsg());
    }
    watch_add(c, 0);
    if (c->stream) {
        return queue_sse(c, mc, stream_reader);
    }
    return gen_respond(c, mc);
}

/* A plain (non-streaming) response: suspend until the job is done, then answer. A client
 * that left meanwhile (the watcher saw it) has its job cancelled and gets a 499 row. */
static enum MHD_Result gen_respond(conn *c, struct MHD_Connection *mc) {
    serve_server *s = c->s;
    serve_job *j = c->job;
    pthread_mutex_lock(&j->mu);
    if (!j->done) {
        if (c->gone) atomic_store(&j->cancelled, 1);
        if (park_locked(c)) {
            pthread_mutex_unlock(&j->mu);
            return MHD_YES;
        }
        pthread_mutex_unlock(&j->mu);
        cancel_job(c); /* stopping: wait here */
        pthread_mutex_lock(&j->mu);
    }
    int gone = c->gone;
    pthread_mutex_unlock(&j->mu);
    if (gone) {
        record(c, 499, "client_disconnected");
        return MHD_NO;
    }
    if (j->failed) return fail_with(c, mc, 500, NULL, NULL, 0, "generation failed: %s", j->errmsg);
    pthread_mutex_lock(&j->mu);
    json_t *resp = serve_response_json(&c->req, j, s->m->tok, c->id, s->model_name, (int64_t)c->t_clock);
    pthread_mutex_unlock(&j->mu);
    char *body = resp ? json_dumps(resp, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(resp);
    if (!body) return fail_with(c, mc, 500, NULL, NULL, 0, "internal error: out of memory building the response");
    double t_ledger = rt_now();
    if (record(c, 200, NULL)) {
        free(body);
        c->ledger_done = 1; /* nothing more can be recorded */
        return send_body(c, mc, 500,
                         serve_error_json("internal error: the usage ledger could not be written", "server_error", NULL,
                                          "ledger_error"),
                         "application/json", 0);
    }
    /* Server-Timing (W3C): where the time went, in ms — queue wait, the engine (admission to
     * last token), the ledger commit, and the whole request as seen by the server */
    double now = rt_now();
    char timing[160];
    double t_admit = j->t_admit > 0 ? j->t_admit : j->t_done;
    snprintf(timing, sizeof timing, "queue;dur=%.3f, engine;dur=%.3f, ledger;dur=%.3f, total;dur=%.3f",
             (t_admit - j->t_submit) * 1e3, (j->t_done - t_admit) * 1e3, (now - t_ledger) * 1e3, (now - c->t0) * 1e3);
    return send_body_timed(c, mc, 200, body, "application/json", 0, timing);
}

/* ---------------------------------------------------------------- gateway mode */

/* The prompt's hidden state for the guard, from the local model (--embed-model): an engine
 * job of one greedy token, running while the upstream answers; after() waits for it on the
 * watcher, never on the request's path. Skipped (no embedding) when the queue is full. */
/* The engine moved an embedding job (engine thread, its mu held): once it is done, wake the
 * watcher, which calls after() for a request waiting on it (else within 50 ms). */
static void ejob_signal(void *ud, serve_job *j) {
    if (j->done) pthread_cond_signal(&((serve_server *)ud)->watch_cv);
}

static void embed_submit(conn *c) {
    serve_server *s = c->s;
    if (!s->eng || !s->hooks.want_hidden || !c->req.prompt_ids || c->req.n_prompt == 0) return;
    size_t n = RT_MIN(c->req.n_prompt, s->m->cfg.ctx_len - 1); /* the last tokens of a long prompt */
    int32_t *ids = rt_malloc_array(n, sizeof(int32_t), "prompt");
    if (!ids) return;
    memcpy(ids, c->req.prompt_ids + (c->req.n_prompt - n), n * sizeof(int32_t));
    serve_job *e = serve_job_new(ids, n, 1, 1, 0, 0, s->m->cfg.dim);
    if (!e) {
        free(ids);
        return;
    }
    e->sp.temperature = 0;
    e->sp.top_p = 1;
    e->on_signal = ejob_signal;
    e->on_signal_ud = s;
    if (serve_engine_submit(s->eng, e) != 0) {
        serve_job_unref(e);
        return;
    }
    c->ejob = e;
}

static enum MHD_Result gen_upstream(conn *c, struct MHD_Connection *mc) {
    serve_server *s = c->s;
    serve_job *j = serve_job_new_upstream(c->req.n ? c->req.n : 1);
    if (!j) return fail_with(c, mc, 500, NULL, NULL, 0, "internal error: %s", rt_errmsg());
    c->job = j;
    c->mc = mc;
    c->done_only = !c->stream;
    j->on_signal = on_job_signal;
    j->on_signal_ud = c;
    if (serve_proxy_send(s->proxy, j, c->up_kind, c->up_kind == SERVE_UP_MODELS ? NULL : &c->req,
                         c->body.data ? c->body.data : "", c->body.len, s->m ? s->m->tok : NULL)) {
        c->job = NULL;
        serve_job_unref(j);
        return fail_with(c, mc, 503, NULL, "gateway_stopping", 1, "the gateway cannot forward now: %s", rt_errmsg());
    }
    if (c->up_kind != SERVE_UP_MODELS) embed_submit(c);
    watch_add(c, 0);
    return upstream_respond(c, mc);
}

/* The upstream's events as they arrive; the ledger row commits before "data: [DONE]". */
static ssize_t upstream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    conn *c = cls;
    serve_job *j = c->job;
    for (;;) {
        if (c->out_pos < c->out.len) return drain_out(c, buf, max);
        if (c->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        pthread_mutex_lock(&j->mu);
        if (j->up_out.len) { /* take the relayed bytes (ours is empty) */
            rt_buf t = c->out;
            c->out = j->up_out;
            j->up_out = t;
            j->up_out.len = 0;
            pthread_mutex_unlock(&j->mu);
            continue;
        }
        int done = j->done;
        if (!done && c->gone) {
            pthread_mutex_unlock(&j->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR; /* on_completed cancels and records */
        }
        if (!done) {
            if (park_locked(c)) {
                pthread_mutex_unlock(&j->mu);
                return 0;
            }
            pthread_mutex_unlock(&j->mu);
            cancel_job(c); /* stopping: finish here */
            continue;
        }
        pthread_mutex_unlock(&j->mu);
        if (j->up_result != CLIENT_XFER_OK) {
            int st;
            const char *code;
            char *e = serve_proxy_error_body(j, &st, &code);
            record(c, st, code);
            if (e) rt_buf_printf(&c->out, "data: %s\n\n", e);
            free(e);
            c->ended = 1;
            continue;
        }
        if (c->req.include_usage && j->up_counted) { /* the upstream gave none: ours */
            json_t *u = json_pack("{s:s, s:s, s:I, s:s, s:[], s:{s:I, s:I, s:I}}", "id", c->id, "object",
                                  c->chat ? "chat.completion.chunk" : "text_completion", "created",
                                  (json_int_t)c->t_clock, "model", c->req.model ? c->req.model : "", "choices",
                                  "usage", "prompt_tokens", (json_int_t)j->up_prompt_tokens, "completion_tokens",
                                  (json_int_t)j->up_completion_tokens, "total_tokens",
                                  (json_int_t)(j->up_prompt_tokens + j->up_completion_tokens));
            char *t = u ? json_dumps(u, JSON_COMPACT) : NULL;
            json_decref(u);
            if (t) rt_buf_printf(&c->out, "data: %s\n\n", t);
            free(t);
        }
        if (record(c, 200, NULL)) {
            char *e = serve_error_json("internal error: the usage ledger could not be written", "server_error", NULL,
                                       "ledger_error");
            if (e) rt_buf_printf(&c->out, "data: %s\n\n", e);
            free(e);
        } else {
            rt_buf_printf(&c->out, "data: [DONE]\n\n");
        }
        c->ended = 1;
    }
}

/* Wait (suspended) for the upstream's answer: a stream's headers, or the whole body. */
static enum MHD_Result upstream_respond(conn *c, struct MHD_Connection *mc) {
    serve_job *j = c->job;
    pthread_mutex_lock(&j->mu);
    if (!j->done && !(c->stream && j->up_sse)) {
        if (c->gone) atomic_store(&j->cancelled, 1);
        if (park_locked(c)) {
            pthread_mutex_unlock(&j->mu);
            return MHD_YES;
        }
        pthread_mutex_unlock(&j->mu);
        cancel_job(c); /* stopping: wait here */
        pthread_mutex_lock(&j->mu);
    }
    int gone = c->gone, sse = c->stream && j->up_sse;
    pthread_mutex_unlock(&j->mu);
    if (gone) {
        record(c, 499, "client_disconnected");
        return MHD_NO;
    }
    if (sse) {
        return queue_sse(c, mc, upstream_reader);
    }
    if (j->up_result != CLIENT_XFER_OK || j->up_status < 200 || j->up_status > 299) {
        int st;
        const char *code;
        char *e = serve_proxy_error_body(j, &st, &code);
        record(c, st, code);
        return send_body(c, mc, st, e, "application/json", 0);
    }
    char *body = j->up_out.data; /* the answer as the upstream sent it (the key scrubbed) */
    size_t len = j->up_out.len;
    j->up_out.data = NULL;
    j->up_out.len = j->up_out.cap = 0;
    if (!body) body = rt_strdup("");
    if (body && j->up_counted && c->up_kind != SERVE_UP_MODELS) { /* no usage upstream: the counted one */
        json_t *o = json_loadb(body, len, 0, NULL);
        if (json_is_object(o) && !json_is_object(json_object_get(o, "usage"))) {
            json_object_set_new(o, "usage",
                                json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)j->up_prompt_tokens,
                                          "completion_tokens", (json_int_t)j->up_completion_tokens, "total_tokens",
                                          (json_int_t)(j->up_prompt_tokens + j->up_completion_tokens)));
            char *nb = json_dumps(o, JSON_COMPACT);
            if (nb) {
                free(body);
                body = nb;
                len = strlen(nb);
            }
        }
        json_decref(o);
    }
    double t_ledger = rt_now();
    if (record(c, 200, NULL)) {
        free(body);
        c->ledger_done = 1;
        return send_body(c, mc, 500,
                         serve_error_json("internal error: the usage ledger could not be written", "server_error", NULL,
                                          "ledger_error"),
                         "application/json", 0);
    }
    if (!body) return send_body(c, mc, 500, NULL, "application/json", 0);
    double now = rt_now();
    char timing[160];
    snprintf(timing, sizeof timing, "upstream;dur=%.3f, ledger;dur=%.3f, total;dur=%.3f",
             (j->t_done - j->t_submit) * 1e3, (now - t_ledger) * 1e3, (now - c->t0) * 1e3);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", j->up_ctype[0] ? j->up_ctype : "application/json");
    MHD_add_response_header(r, "Server-Timing", timing);
    add_common_headers(c, r);
    enum MHD_Result ret = MHD_queue_response(mc, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---------------------------------------------------------------- other routes */

static enum MHD_Result handle_models(conn *c, struct MHD_Connection *mc) {
    serve_server *s = c->s;
    enum MHD_Result ret;
    if (c->job) return upstream_respond(c, mc); /* resumed */
    if (authenticate(c, mc, &ret)) return ret;
    if (s->proxy) return gen_upstream(c, mc); /* the upstream's list */
    json_t *o = json_pack("{s:s, s:[{s:s, s:s, s:I, s:s, s:I, s:{s:I, s:I, s:I, s:I}}]}", "object", "list", "data",
                          "id", s->model_name, "object", "model", "created", (json_int_t)s->t_start_wall, "owned_by",
                          "retort", "context_length", (json_int_t)s->o.n_ctx, "meta", "n_ctx", (json_int_t)s->o.n_ctx,
                          "n_ctx_train", (json_int_t)s->m->cfg.ctx_len, "n_vocab",
                          (json_int_t)s->m->cfg.vocab_size, "n_params", (json_int_t)s->m->n_params);
    char *body = o ? rt_json_reals(json_dumps(o, JSON_COMPACT)) : NULL;
    json_decref(o);
    if (record(c, 200, NULL)) {
        free(body);
        return send_body(c, mc, 500, serve_error_json("internal error: ledger", "server_error", NULL, "ledger_error"),
                         "application/json", 0);
    }
    return send_body(c, mc, 200, body, "application/json", 0);
}

static enum MHD_Result handle_health(conn *c, struct MHD_Connection *mc) {
    serve_engine_stats st = {0};
    if (c->s->eng) serve_engine_stats_get(c->s->eng, &st);
    json_t *o = json_pack("{s:s, s:s, s:I, s:I}", "status", "ok", "model", c->s->model_name, "queued",
                          (json_int_t)st.queued, "active", (json_int_t)st.active);
    if (o && c->s->proxy) { /* a gateway is up while one upstream is */
        size_t total = 0, up = serve_proxy_up_count(c->s->proxy, &total);
        json_object_set_new(o, "upstreams_up", json_integer((json_int_t)up));
        json_object_set_new(o, "upstreams", json_integer((json_int_t)total));
        if (!up) json_object_set_new(o, "status", json_string("no upstream"));
    }
    char *body = o ? rt_json_reals(json_dumps(o, JSON_COMPACT)) : NULL;
    json_decref(o);
    return send_body(c, mc, 200, body, "application/json", 0);
}

static enum MHD_Result handle_metrics(conn *c, struct MHD_Connection *mc) {
    serve_engine_stats st = {0};
    if (c->s->eng) serve_engine_stats_get(c->s->eng, &st);
    uint64_t commits = 0, rows = 0;
    gw_ledger_stats(c->s->ledger, &commits, &rows);
    rt_buf b = {0};
    uint64_t keyless = 0, keyless_limited = 0;
    serve_peers_counts(c->s->peers, &keyless, &keyless_limited);
    gw_account *acc = NULL;
    size_t na = 0, n_susp = 0;
    int acc_ok = gw_account_list(c->s->db, &acc, &na) == 0;
    for (size_t i = 0; i < na; i++) {
        n_susp += acc[i].status == GW_ACCOUNT_SUSPENDED;
    }
    free(acc);
    const serve_hooks *h = &c->s->hooks;
    if (serve_metrics_render(c->s->metrics, &b, st.queued, st.active, commits, rows) ||
        rt_buf_printf(&b,
                      "# HELP retort_keyless_requests_total Requests without a valid API key, and those of them "
                      "refused for the per-address budget (not on the ledger).\n"
                      "# TYPE retort_keyless_requests_total counter\n"
                      "retort_keyless_requests_total{outcome=\"answered\"} %llu\n"
                      "retort_keyless_requests_total{outcome=\"limited\"} %llu\n",
                      (unsigned long long)(keyless - keyless_limited), (unsigned long long)keyless_limited) ||
        (acc_ok && rt_buf_printf(&b,
                                 "# HELP retort_accounts Accounts by status (suspended by the guard or an admin).\n"
                                 "# TYPE retort_accounts gauge\nretort_accounts{status=\"active\"} %zu\n"
                                 "retort_accounts{status=\"suspended\"} %zu\n",
                                 na - n_susp, n_susp)) ||
        (c->s->proxy && serve_proxy_metrics(c->s->proxy, &b)) || (h->metrics && h->metrics(h->ud, &b))) {
        rt_buf_free(&b);
        return send_body(c, mc, 500, rt_strdup("out of memory\n"), "text/plain", 0);
    }
    return send_body(c, mc, 200, b.data, "text/plain; version=0.0.4; charset=utf-8", 0);
}

static const char *admin_arg(const serve_admin_call *call, const char *name) {
    return MHD_lookup_connection_value(call->impl, MHD_GET_ARGUMENT_KIND, name);
}

/* The dashboard's files (no key needed: the page asks for the admin key and sends it to the
 * admin API). Strict headers: scripts only from this server, no framing, no sniffing. */
static enum MHD_Result handle_web(conn *c, struct MHD_Connection *mc, const char *url) {
    const serve_web_asset *a = serve_web_find(url);
    if (!a) return fail_with(c, mc, 404, NULL, "unknown_url", 0, "no such page: %s (the dashboard is /admin)", url);
    struct MHD_Response *r = MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", serve_web_content_type(a->name));
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                            "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ret = MHD_queue_response(mc, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle_admin(conn *c, struct MHD_Connection *mc, const char *url, const char *method) {
    enum MHD_Result ret;
    if (authenticate(c, mc, &ret)) return ret;
    if (!c->who.account.is_admin)
        return fail_with(c, mc, 403, NULL, "not_admin", 0,
                         "this key's account is not an admin (retort keys create --admin makes one)");
    if (c->too_large) return fail_with(c, mc, 413, NULL, NULL, 0, "request body too large");
    int status = 500;
    char *out = NULL;
    const char *path = url + strlen("/admin/api/");
    if (c->s->admin_routes.handle) {
        serve_admin_call call = {method, path, c->body.data ? c->body.data : "", c->body.len, c->t_clock,
                                 &c->who, admin_arg, mc};
        int h = c->s->admin_routes.handle(c->s->admin_routes.ud, c->s->db, &call, &status, &out);
        if (h < 0) return send_body(c, mc, 500, NULL, "application/json", 0);
        if (h > 0) return send_body(c, mc, status, out, "application/json", 0);
    }
    if (serve_admin_handle(c->s->db, method, path, MHD_lookup_connection_value(mc, MHD_GET_ARGUMENT_KIND, "account"),
                           MHD_lookup_connection_value(mc, MHD_GET_ARGUMENT_KIND, "limit"),
                           c->body.data ? c->body.data : "", c->body.len, c->t_clock, c->who.account.id, &status,
                           &out))
        return send_body(c, mc, 500, NULL, "application/json", 0);
    return send_body(c, mc, status, out, "application/json", 0);
}

/* ---------------------------------------------------------------- MHD callbacks */

static int route_of(const char *url, const char *method, int *chat, int *method_ok) {
    *chat = 0;
    *method_ok = 1;
    if (!strcmp(url, "/v1/completions") || !strcmp(url, "/v1/chat/completions")) {
        *chat = url[4] == 'c' && url[5] == 'h';
        *method_ok = !strcmp(method, "POST");
        return ROUTE_GEN;
    }
    if (!strcmp(url, "/v1/embeddings")) {
        *method_ok = !strcmp(method, "POST");
        return ROUTE_EMBED; /* a gateway's (serve answers 404) */
    }
    if (!strcmp(url, "/v1/models")) {
        *method_ok = !strcmp(method, "GET");
        return ROUTE_MODELS;
    }
    if (!strcmp(url, "/health")) {
        *method_ok = !strcmp(method, "GET");
        return ROUTE_HEALTH;
    }
    if (!strcmp(url, "/metrics")) {
        *method_ok = !strcmp(method, "GET");
        return ROUTE_METRICS;
    }
    if (!strncmp(url, "/admin/api/", 11)) return ROUTE_ADMIN;
    if (!strcmp(url, "/admin") || !strncmp(url, "/admin/", 7)) {
        *method_ok = !strcmp(method, "GET") || !strcmp(method, "HEAD");
        return ROUTE_WEB;
    }
    if (!strncmp(url, "/v1/", 4)) return ROUTE_V1_OTHER;
    return ROUTE_NONE;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls) {
    serve_server *s = cls;
    conn *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        atomic_init(&c->refs, 1);
        c->s = s;
        c->t0 = rt_now();
        c->fd = -1;
        const union MHD_ConnectionInfo *fi = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (fi) c->fd = fi->connect_fd;
        const union MHD_ConnectionInfo *ai = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        char peer[48] = "";
        if (ai && ai->client_addr) {
            const struct sockaddr *sa = ai->client_addr;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, peer, sizeof peer);
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, peer, sizeof peer);
        }
        /* behind a trusted proxy the client is the address the proxy saw (X-Forwarded-For) */
        serve_peers_client(s->peers, peer, MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "X-Forwarded-For"),
                           c->client, sizeof c->client);
        c->fingerprint = request_fingerprint(mc);
        c->t_clock = clock_now(c, mc);
        c->http11 = version && !strcmp(version, MHD_HTTP_VERSION_1_1);
        int method_ok;
        c->route = route_of(url, method, &c->chat, &method_ok);
        if (c->route == ROUTE_EMBED && !s->proxy) c->route = ROUTE_V1_OTHER, method_ok = 1;
        c->up_kind = c->route == ROUTE_EMBED    ? SERVE_UP_EMBED
                     : c->route == ROUTE_MODELS ? SERVE_UP_MODELS
                     : c->chat                  ? SERVE_UP_CHAT
                                                : SERVE_UP_COMPLETION;
        snprintf(c->endpoint, sizeof c->endpoint, "%.39s", c->route == ROUTE_V1_OTHER ? "/v1/other" : url);
        new_id(c->id, sizeof c->id, c->route != ROUTE_GEN ? "req-" : c->chat ? "chatcmpl-" : "cmpl-");
        *con_cls = c;
        if (!method_ok) return fail_with(c, mc, 405, NULL, "method_not_allowed", 0, "%s %s: method not allowed", method, url);
        const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end = NULL;
            unsigned long long n = strtoull(cl, &end, 10);
            if (end != cl && n > s->o.max_body) {
                c->too_large = 1;
                /* answer now; MHD closes the connection instead of reading the body */
                return fail_with(c, mc, 413, NULL, "request_too_large", 0,
                                 "request body of %llu bytes exceeds the limit of %zu bytes", n, s->o.max_body);
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!c->too_large) {
            if (c->body.len + *upload_data_size > s->o.max_body) {
                c->too_large = 1;
                rt_buf_free(&c->body);
            } else if (rt_buf_append(&c->body, upload_data, *upload_data_size)) {
                return MHD_NO;
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    switch (c->route) {
    case ROUTE_GEN:
    case ROUTE_EMBED: return handle_gen(c, mc);
    case ROUTE_MODELS: return handle_models(c, mc);
    case ROUTE_HEALTH: return handle_health(c, mc);
    case ROUTE_METRICS: return handle_metrics(c, mc);
    case ROUTE_ADMIN: return handle_admin(c, mc, url, method);
    case ROUTE_WEB: return handle_web(c, mc, url);
    case ROUTE_V1_OTHER: {
        enum MHD_Result ret;
        if (authenticate(c, mc, &ret)) return ret;
        return fail_with(c, mc, 404, NULL, "unknown_url", 0, "Unknown request URL: %s %s", method, url);
    }
    default: return fail_with(c, mc, 404, NULL, "unknown_url", 0, "Unknown request URL: %s %s", method, url);
    }
}

/* The row of a request whose connection ended without one (its job done): a stream that had
 * sent every choice's last chunk delivered all its tokens, which is a 200; else a 499. */
static void record_ended(conn *c) {
    if (!c->job) return; /* (gateway mode: a request handed over only for its embedding) */
    int delivered = c->stream && !c->job->failed && !c->job->upstream;
    for (size_t i = 0; delivered && i < c->job->n; i++) delivered = c->fin_sent[i];
    record(c, delivered ? 200 : 499, delivered ? NULL : "client_disconnected");
}

/* The watcher thread: every 50 ms (or when handed a request), look at the sockets of
 * suspended connections, and finish the requests handed over once their job is done. */
static void *watch_main(void *arg) {
    serve_server *s = arg;
    pthread_mutex_lock(&s->watch_mu);
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (s->watch_stop && !s->watch_head) break;
        pthread_cond_timedwait(&s->watch_cv, &s->watch_mu, &ts);
        /* a snapshot with references, so the list's lock is not held while we work */
        size_t n = 0;
        for (conn *c = s->watch_head; c; c = c->wnext) n++;
        conn **snap = n ? malloc(n * sizeof *snap) : NULL;
        size_t k = 0;
        for (conn *c = s->watch_head; snap && c; c = c->wnext) {
            atomic_fetch_add(&c->refs, 1);
            snap[k++] = c;
        }
        pthread_mutex_unlock(&s->watch_mu);
        for (size_t i = 0; i < k; i++) {
            conn *c = snap[i];
            serve_job *j = c->job;
            pthread_mutex_lock(&s->watch_mu);
            int finishing = c->finishing;
            pthread_mutex_unlock(&s->watch_mu);
            pthread_mutex_lock(&j->mu);
            int done = j->done;
            if (!finishing && c->parked && !c->gone && conn_gone(c, !c->stream)) {
                c->gone = 1;
                atomic_store(&j->cancelled, 1);
                c->parked = 0;
                atomic_fetch_sub(&s->n_parked, 1);
                MHD_resume_connection(c->mc);
            }
            pthread_mutex_unlock(&j->mu);
            if (finishing && done && ejob_done(c)) {
                record_ended(c);
                call_after(c);
                watch_remove(c);
                conn_unref(c); /* the reference MHD's request handed over */
            }
            conn_unref(c);
        }
        free(snap);
        pthread_mutex_lock(&s->watch_mu);
    }
    pthread_mutex_unlock(&s->watch_mu);
    return NULL;
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)mc;
    (void)toe;
    conn *c = *con_cls;
    if (!c) return;
    *con_cls = NULL;
    if (c->job && !c->ledger_done && !c->ledger_failed) {
        /* a stream whose client left, or any request that ended without its row */
        pthread_mutex_lock(&c->job->mu);
        int done = c->job->done;
        pthread_mutex_unlock(&c->job->mu);
        if (!done) {
            /* the row waits for the engine to let go (final token counts); no pool thread
             * waits for that: the watcher records it, then calls after() and lets go */
            atomic_store(&c->job->cancelled, 1);
            watch_add(c, 1);
            return;
        }
        record_ended(c);
    }
    if (!ejob_done(c)) { /* the guard's embedding is still computing: the watcher calls after() */
        watch_add(c, 1);
        return;
    }
    call_after(c);
    watch_remove(c);
    conn_unref(c);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = '\0';
    char shown[600]; /* its messages may quote what a client sent */
    rt_debug("microhttpd: %s", rt_utf8_printable(shown, sizeof shown, msg));
}

/* ---------------------------------------------------------------- start / stop */

void serve_options_defaults(serve_options *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->max_batch = 16;
    o->max_queue = 64;
    o->max_body = 1 << 20;
    o->prefill_chunk = 128;
    o->max_conn_per_ip = 32;
    o->conn_timeout = 20;
    o->keyless_rpm = 60;
}

static char *default_name(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 5 && !strcmp(b + n - 5, ".gguf")) n -= 5;
    char *s = rt_malloc(n + 1, "model name");
    if (s) {
        memcpy(s, b, n);
        s[n] = '\0';
    }
    return s;
}

/* Is host (an address, or "localhost") a loopback address? */
static int host_is_loopback(const char *host) {
    struct in_addr a4;
    struct in6_addr a6;
    if (!strcmp(host, "localhost")) return 1;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return 0;
}

/* A served name clients can read back: valid UTF-8 (bad bytes become U+FFFD), no NUL. */
static char *clean_name(const char *name) {
    rt_buf b = {0};
    if (rt_utf8_sanitize(&b, name, strlen(name))) {
        rt_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* each slot's context: --ctx within the model's (default capped at SERVE_DEFAULT_CTX), and
 * max_tokens capped by it; the gateway's embedding model gets its whole context */
static int size_context(serve_server *s, int gateway) {
    if (s->m && !gateway) {
        if (s->o.n_ctx > s->m->cfg.ctx_len) {
            RT_FAIL("--ctx %zu exceeds the model's context (%zu positions)", s->o.n_ctx, s->m->cfg.ctx_len);
            return -1;
        }
        if (s->o.n_ctx == 0) s->o.n_ctx = RT_MIN(s->m->cfg.ctx_len, (size_t)SERVE_DEFAULT_CTX);
        if (s->o.n_ctx < 2) {
            RT_FAIL("--ctx must be at least 2 (a prompt token and a new one)");
            return -1;
        }
        if (s->o.max_tokens_cap == 0 || s->o.max_tokens_cap > s->o.n_ctx) s->o.max_tokens_cap = s->o.n_ctx;
    } else if (s->m && (s->o.n_ctx == 0 || s->o.n_ctx > s->m->cfg.ctx_len)) {
        s->o.n_ctx = s->m->cfg.ctx_len; /* the gateway's embedding model: its whole context */
    }
    return 0;
}

/* what this server is, into gw_config (the report and /admin read it): the model or the
 * upstreams it fronts (never their key), and --config pairs */
static int record_config(serve_server *s, const serve_options *o, int gateway) {
    char v[64];
    double now = rt_wall_time();
    snprintf(v, sizeof v, "%zu", s->m ? s->o.n_ctx : 0);
    if (gateway) { /* what the gateway fronts (never the key) */
        rt_buf ups = {0};
        for (size_t i = 0; i < o->n_upstreams; i++)
            if (rt_buf_printf(&ups, "%s%s", i ? "," : "", o->upstreams[i])) {
                rt_buf_free(&ups);
                return -1;
            }
        int crc = gw_config_set(s->db, "gateway_upstreams", ups.data, now) ||
                  gw_config_set(s->db, "gateway_embed_model", o->model_path ? o->model_path : "none", now);
        rt_buf_free(&ups);
        if (crc) return -1;
    } else if (gw_config_set(s->db, "model_name", s->model_name, now) ||
               gw_config_set(s->db, "model_path", o->model_path ? o->model_path : "(in-process)", now) ||
               gw_config_set(s->db, "model_ctx_len", v, now)) {
        return -1;
    }
    for (size_t i = 0; o->config && o->config[i]; i += 2) {
        if (!o->config[i + 1]) {
            RT_FAIL("server config '%s' has no value", o->config[i]);
            return -1;
        }
        if (gw_config_set(s->db, o->config[i], o->config[i + 1], now)) return -1;
    }
    return 0;
}

int serve_start(serve_server **out, const serve_options *o) {
    *out = NULL;
    if (o->sim_clock && !o->sim_clock_public && !host_is_loopback(o->host ? o->host : "127.0.0.1"))
        return RT_FAIL("--sim-clock lets every client set its own clock (X-Retort-Sim-Time) and so walk past the "
                       "rate limits: it is refused on a non-loopback address (--host %s). Bind to 127.0.0.1, or "
                       "if you truly mean it add --unsafe-sim-clock-on-public-interface",
                       o->host);
    if (!o->db_path) return RT_FAIL("--db: the gateway database path is required");
    int gateway = o->n_upstreams > 0;
    if (!o->model && !o->model_path && !gateway) return RT_FAIL("--model: a model file is required");
    if (o->port < 0 || o->port > 65535) return RT_FAIL("--port: %d is not a TCP port (0..65535)", o->port);
    if (o->max_batch == 0 || o->max_batch > 4096) return RT_FAIL("--max-batch: expected 1..4096, got %zu", o->max_batch);
    if (o->max_queue == 0) return RT_FAIL("--max-queue: expected at least 1");
    serve_server *s = rt_calloc(1, sizeof *s, "server");
    if (!s) return -1;
    pthread_mutex_init(&s->watch_mu, NULL);
    pthread_cond_init(&s->watch_cv, NULL);
    s->o = *o;
    if (o->hooks) s->hooks = *o->hooks;
    if (o->admin_routes) s->admin_routes = *o->admin_routes;
    if (!s->o.host) s->o.host = "127.0.0.1";
    if (!s->o.max_body) s->o.max_body = 1 << 20;
    if (!s->o.prefill_chunk) s->o.prefill_chunk = 128;
    if (!s->o.max_conn_per_ip) s->o.max_conn_per_ip = 32;
    if (!s->o.conn_timeout) s->o.conn_timeout = 20;
    s->t_start_wall = rt_wall_time();
    if (o->model) {
        s->m = o->model;
    } else if (o->model_path) {
        if (model_load_decode_only(&s->m, o->model_path)) goto fail; /* serve only decodes */
        s->own_model = 1;
    }
    if (gateway && serve_proxy_new(&s->proxy, o)) goto fail;
    if (s->m && !s->m->tok) {
        RT_FAIL("%s: the model has no tokenizer; serve needs one", o->model_path ? o->model_path : "model");
        goto fail;
    }
    if (gateway && s->o.max_tokens_cap == 0) s->o.max_tokens_cap = 1024; /* chat's reserve when none is named */
    if (size_context(s, gateway)) goto fail;
    {
        char *raw = o->model_name ? rt_strdup(o->model_name)
                    : gateway     ? rt_strdup("gateway")
                                  : default_name(o->model_path ? o->model_path : "model");
        s->model_name = raw ? clean_name(raw) : NULL;
        free(raw);
    }
    if (!s->model_name) goto fail;
    if (!s->model_name[0]) {
        RT_FAIL("--model-name: the served model name is empty");
        goto fail;
    }
    if (s->m) {
        s->eos_id = tokenizer_eos(s->m->tok);
        serve_chat_format_init(&s->chat_fmt, s->m, o->chat_template);
        if (s->chat_fmt.ok) {
            s->end_id = tokenizer_chat_end_token(&s->chat_fmt.chat, s->m->tok);
            if (!gateway) rt_log(RT_LOG_INFO, "serve: chat format %s", tokenizer_chat_family_name(s->chat_fmt.chat.family));
        } else {
            if (o->chat_template) goto fail; /* a bad --chat-template name is the user's error */
            s->end_id = -1;
            if (!gateway) rt_log(RT_LOG_WARN, "serve: /v1/chat/completions is off: %s", s->chat_fmt.err);
        }
    }
    if (gw_db_open(&s->db, o->db_path)) goto fail;
    if (record_config(s, o, gateway)) goto fail;
    if (gw_ledger_open(&s->ledger, o->db_path, 512)) goto fail;
    if (gw_limiter_new(&s->lim, s->db)) goto fail;
    if (serve_metrics_new(&s->metrics)) goto fail;
    if (serve_peers_init(&s->peers, s->o.keyless_rpm < 0 ? 0 : s->o.keyless_rpm, o->trusted_proxy)) goto fail;
    if (s->m && serve_engine_new(&s->eng, s->m, s->o.n_ctx, s->o.max_batch, s->o.max_queue, s->o.prefill_chunk,
                                 s->o.threads, o->sampler_attach, o->sampler_attach_ud, o->seq_attach, o->seq_step, o->seq_attach_ud,
                                 s->metrics))
        goto fail;
    /* the listening address */
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    const struct sockaddr *sa;
    /* epoll and a small pool: idle and waiting connections cost no thread */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    const char *host = !strcmp(s->o.host, "localhost") ? "127.0.0.1" : s->o.host;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)o->port);
        sa = (const struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)o->port);
        sa = (const struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        RT_FAIL("--host: '%s' is not an IPv4 or IPv6 address", s->o.host);
        goto fail;
    }
    unsigned conn_limit = (unsigned)RT_MIN((size_t)4096, RT_MAX((size_t)1024, 2 * (s->o.max_queue + s->o.max_batch)));
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY && nofile.rlim_cur < conn_limit + 64u)
        conn_limit = nofile.rlim_cur > 128 ? (unsigned)nofile.rlim_cur - 64 : 64;
    if (pthread_create(&s->watcher, NULL, watch_main, s) != 0) {
        RT_FAIL("cannot start the connection watcher thread");
        goto fail;
    }
    s->watcher_started = 1;
    /* one address may hold only a few connections (behind a trusted proxy every client has
     * the proxy's address, so the proxy does that job); idle or trickling ones are closed
     * after conn_timeout seconds */
    unsigned per_ip = serve_peers_has_proxies(s->peers) ? 0 : (unsigned)RT_MIN(s->o.max_conn_per_ip, (size_t)conn_limit);
    s->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_access, s, MHD_OPTION_SOCK_ADDR, sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_LIMIT, conn_limit,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, MHD_OPTION_THREAD_POOL_SIZE,
                            (unsigned)SERVE_HTTP_THREADS, MHD_OPTION_CONNECTION_TIMEOUT,
                            s->o.conn_timeout, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_END);
    if (!s->d) {
        RT_FAIL("cannot listen on %s:%d (%s); is the port in use? (--port 0 picks a free one)", s->o.host, o->port,
                strerror(errno));
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    *out = s;
    return 0;
fail:
    serve_stop(s);
    return -1;
}

int serve_port(const serve_server *s) { return s->port; }

int serve_set_upstream_key(serve_server *s, const char *key) {
    if (!s->proxy) return RT_FAIL("an upstream key is for the gateway (retort serve has no upstream)");
    return serve_proxy_set_key(s->proxy, key);
}
const char *serve_model_name(const serve_server *s) { return s->model_name; }
gw_db *serve_db(serve_server *s) { return s->db; }

/* Wake every suspended connection and cancel every job in flight, so that MHD can stop:
 * suspended connections must be resumed first. */
static void unpark_all(serve_server *s) {
    atomic_store(&s->stopping, 1);
    for (int round = 0; round < 1000; round++) {
        pthread_mutex_lock(&s->watch_mu);
        for (conn *c = s->watch_head; c; c = c->wnext) {
            pthread_mutex_lock(&c->job->mu);
            atomic_store(&c->job->cancelled, 1);
            if (c->parked) {
                c->parked = 0;
                atomic_fetch_sub(&s->n_parked, 1);
                MHD_resume_connection(c->mc);
            }
            pthread_mutex_unlock(&c->job->mu);
        }
        pthread_mutex_unlock(&s->watch_mu);
        if (atomic_load(&s->n_parked) == 0) return;
        usleep(10000);
    }
}

void serve_stop(serve_server *s) {
    if (!s) return;
    if (s->d) {
        MHD_quiesce_daemon(s->d); /* no new connections */
        unpark_all(s);
        MHD_stop_daemon(s->d); /* closes what is left; requests end (their rows: on_completed) */
    }
    if (s->watcher_started) { /* finishes the requests handed over (the engine still runs) */
        pthread_mutex_lock(&s->watch_mu);
        s->watch_stop = 1;
        pthread_cond_signal(&s->watch_cv);
        pthread_mutex_unlock(&s->watch_mu);
        pthread_join(s->watcher, NULL);
    }
    serve_proxy_free(s->proxy); /* (after the watcher: it waits for upstream jobs to let go) */
    serve_engine_free(s->eng);
    gw_ledger_close(s->ledger);
    gw_limiter_free(s->lim);
    serve_metrics_free(s->metrics);
    serve_peers_free(s->peers);
    gw_db_close(s->db);
    if (s->own_model) model_free(s->m);
    free(s->model_name);
    pthread_mutex_destroy(&s->watch_mu);
    pthread_cond_destroy(&s->watch_cv);
    free(s);
}
