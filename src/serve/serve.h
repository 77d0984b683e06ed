/*
 * serve.h — the serving room: an OpenAI-compatible HTTP server (libmicrohttpd + jansson)
 * in front of a continuous-batching engine, metered by the gateway (src/gateway). (The
 * harvester, the client that drains such an API into JSONL, is src/client's.)
 *
 * Request path (epoll and a pool of 4 HTTP threads; a waiting request holds no thread; one
 * engine thread owns the model):
 *   read body (413 over --max-body) → key → account (401, or 429 past the per-address budget
 *   for keyless requests; suspended: 403 with a neutral message and a reference)
 *   → JSON and fields (400 naming the field; unknown model 404) → chat template + tokenize
 *   → hooks.before (the guard: may answer 403, or 429 for a population hold) → limits (429 + Retry-After) → engine queue
 *   (503 when full) → generation, shared decode steps across requests → ledger row
 *   committed → response (or the SSE stream's last event, "data: [DONE]") → hooks.after.
 * A client that disconnects cancels its generation; no client ever blocks the engine. Every
 * response carries X-Request-Id (= the ledger's request_id).
 *
 * Endpoints: GET /v1/models, POST /v1/completions, POST /v1/chat/completions, GET /health,
 * GET /metrics (Prometheus text), and the admin API under /admin/api/ (see docs/api.md):
 *   GET  /admin/api/accounts                 accounts with keys and usage
 *   GET  /admin/api/accounts/{name|id}       one account
 *   POST /admin/api/accounts/{name|id}/suspend  {"reason": "..."}
 *   POST /admin/api/accounts/{name|id}/release
 *   GET  /admin/api/usage?account=A&limit=N  recent ledger rows
 *   GET  /admin/api/config                   the server_config table
 *   ...  /admin/api/<other>                  routes another room adds (serve_admin_routes:
 *                                            the guard's views for the dashboard)
 * authenticated by a key of an account created with `retort keys create --admin`; and
 * GET /admin, the admin dashboard (web/, compiled in): a page that asks for the admin key
 * and shows everything through the admin API.
 *
 * Chat template: the model's format (retort's own <|user|>…<|end|>, ChatML, Qwen3, Llama 3,
 *   DeepSeek-V3/R1, Llama 2, Gemma), recognised from the template the model file carries, or
 *   named with serve_options.chat_template, is rendered natively (src/tokenizer/chat.c) with
 *   the generation prompt. Special tokens are parsed only in the template's own text; message
 *   text is tokenized with special-token parsing OFF (a user cannot forge a turn). Generation
 *   stops at the format's end of turn (<|end|>, <|im_end|>, <|eot_id|>, …) or the eos.
 *   /v1/completions tokenizes the prompt without special-token parsing and stops at the eos.
 *
 * Log-probs are the model's own: log-softmax of the raw logits, before temperature, top-p or
 * the watermark, so they equal what `retort forward` computes for the same tokens.
 *
 * Time: with sim_clock set (`retort serve --sim-clock`, a TESTING AID), a request header
 * "X-Retort-Sim-Time: <Unix seconds>" replaces the wall clock for limits, the ledger and
 * "created"; the guard's traffic simulator replays a day in minutes with it. Without the
 * flag the header is ignored. Since any client could then set its own time and walk past
 * the limits, serve_start refuses sim_clock on a non-loopback address unless
 * sim_clock_public says so explicitly.
 *
 * Gateway mode (serve_options.upstreams, `retort gateway`): the same server with the engine
 * swapped for a pool of upstream OpenAI-compatible servers (proxy.c, over the client room's
 * pool): same checks in the same order, the body forwarded as the client sent it, the answer
 * relayed (streams chunk by chunk), usage from the upstream (or counted), the ledger row
 * committed before the last event; /v1/models and /v1/embeddings are passed through too.
 *
 * What this is not: a tokenizer or model (src/model), the accounts and ledger store
 * (src/gateway), or the guard (src/guard, src/defend) — it plugs in through serve_hooks.
 */
#ifndef RETORT_SERVE_H
#define RETORT_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"
#include "../gateway/gateway.h"
#include "../model/generate.h"
#include "../model/model.h"

/* ---------------------------------------------------------------- hooks (the guard) */

/* What the server knows about a request when it calls a hook. Pointers are valid only
 * during the call. For a request refused before its body was parsed (403 suspended, 413,
 * a malformed body...), the prompt fields are NULL / 0. */
typedef struct {
    const char *request_id;   /* "chatcmpl-…" / "cmpl-…" */
    const char *endpoint;     /* "/v1/chat/completions" or "/v1/completions" */
    const gw_principal *who;  /* the authenticated account and key */
    double t;                 /* clock time (simulated under --sim-clock) */
    const char *client;       /* peer address */
    uint64_t fingerprint;     /* the client software: hash of the User-Agent and the order of the
                                 request's header names (0: none); serve_client_fingerprint */
    const char *prompt_text;  /* the user-visible prompt: completions' prompt, or the
                                 chat messages' contents joined by "\n" */
    size_t prompt_len;        /* bytes of prompt_text */
    const int32_t *prompt_ids; /* (n_prompt) the tokens fed to the model (template included);
                                  gateway mode: by the local model's tokenizer, or NULL without
                                  one (n_prompt is then an estimate, 4 bytes a token) */
    size_t n_prompt;
    const char *body;         /* the request's JSON text */
    size_t body_len;
    float temperature, top_p;
    size_t max_tokens, n, top_logprobs;
    int logprobs, stream;
} serve_request_info;
/* The fingerprint of a request's client software: FNV-1a over the header names in the order
 * they came (lowercased) and the User-Agent value. Scripts of one author share it; what the
 * headers say beyond the User-Agent (keys, lengths, times) is left out. names: (n) header
 * names in order; user_agent may be NULL. 0 only when there is nothing to hash. */
uint64_t serve_client_fingerprint(const char *const *names, size_t n, const char *user_agent);

/* What finished: the committed ledger row (status, token counts, hashes, latency; row_id
 * is its rowid) and, when hooks.want_hidden was set and the request reached the model,
 * the final-layer hidden state (after the output RMSNorm) of the prompt's last token. */
typedef struct {
    const gw_ledger_row *row;
    int64_t row_id;
    const char *completion;     /* choice 0's text (NULL if none) */
    size_t completion_len;
    const float *hidden;        /* (hidden_dim) or NULL */
    size_t hidden_dim;
} serve_request_result;

/* The one place a guard plugs into the request path. Every member may be NULL.
 *  - before: called after authentication, parsing and tokenization, before limits and the
 *    engine, on the connection's thread. Return 0 to let the request through, 1 to refuse
 *    it with 403 and `reason` (a NUL-terminated message written into reason[reason_cap]),
 *    2 to make it wait: 429 rate_limit_exceeded with Retry-After *retry_after seconds (the
 *    guard's population hold; the ledger records the refusal as "guard_hold" with the
 *    reason in the log), -1 on an internal error (500).
 *  - metrics: see below.
 *  - after: called once per authenticated /v1 request (refused ones included: see
 *    res->row->status), after its ledger row committed and the response was handed to the
 *    client (so it adds no latency), on the connection's thread. Keep it quick (queue heavy
 *    work for your own thread).
 * Both may run on many threads at once. */
typedef struct {
    void *ud;
    int want_hidden;
    int (*before)(void *ud, const serve_request_info *req, char *reason, size_t reason_cap, double *retry_after);
    /* (the reason goes to the server's log and the ledger's refusal; the client gets a
     * neutral 403 request_blocked with a reference, never the reason) */
    void (*after)(void *ud, const serve_request_info *req, const serve_request_result *res);
    /* (after may also run on the server's watcher thread, for a request whose connection
     * ended before its generation did.)
     * GET /metrics: append the guard's own figures (Prometheus text, names prefixed
     * "retort_guard_") to out; 0, or -1 when out of memory. May be NULL. */
    int (*metrics)(void *ud, rt_buf *out);
} serve_hooks;

/* Admin API routes from another room (the guard's views for the dashboard), consulted for
 * every authenticated admin request under /admin/api/ before serve's own routes. */
typedef struct serve_admin_call {
    const char *method;        /* "GET", "POST", ... */
    const char *path;          /* after "/admin/api/", URL-decoded ("guard/accounts/12") */
    const char *body;          /* the request body ("" when none; not NUL-terminated JSON) */
    size_t body_len;
    double now;                /* clock time (simulated under --sim-clock) */
    const gw_principal *admin; /* the admin calling */
    /* A query argument ("?points=200" -> arg(call, "points") = "200"), or NULL. */
    const char *(*arg)(const struct serve_admin_call *call, const char *name);
    void *impl;                /* serve's, for arg */
} serve_admin_call;
typedef struct {
    void *ud;
    /* Return 1 when the path is yours (*status set, *out = malloc'ed JSON body), 0 when it is
     * not (serve's routes, then 404), -1 when out of memory (500). May run on many threads. */
    int (*handle)(void *ud, gw_db *db, const serve_admin_call *call, int *status, char **out);
} serve_admin_routes;

/* The attach point for per-sequence sampler decorations (the watermark): called on the
 * engine thread for each sequence's sampler right after sampler_init, before its first
 * token. Return 0, or -1 (after RT_FAIL) to fail that request with 500. */
typedef int (*serve_sampler_attach_fn)(void *ud, sampler *s);
/* Per-sequence decorations that depend on the generator slot or the request's account
 * (antidistillation sampling keeps a proxy state per slot, and trusted accounts get plain
 * sampling): called on the engine thread right after sampler_attach, with the same contract.
 * slot < max_batch; account_id 0 and account "" for a request without an account. */
typedef int (*serve_seq_attach_fn)(void *ud, size_t slot, int64_t account_id, const char *account, sampler *s);
/* Once per engine step, before its sequences are sampled (generate.h's before_sample: the
 * slots, histories and raw logits of every sequence about to be sampled), on the engine
 * thread: per-step batched work of the seq_attach owner (the antidistillation proxy's rows of
 * every slot in one pass). 0, or -1 (an error: the step's sequences fail). */
typedef int (*serve_step_fn)(void *ud, const gen_ready *ready, size_t n);

/* ---------------------------------------------------------------- server */

typedef struct {
    const char *model_path;  /* GGUF to load, unless `model` is given */
    model *model;            /* borrowed, already loaded (tests); overrides model_path */
    const char *model_name;  /* served name (default: the file name without .gguf) */
    const char *host;        /* bind address (default 127.0.0.1) */
    int port;                /* 0 = any free port (see serve_port) */
    const char *db_path;     /* gateway database (created if needed) */
    size_t threads;          /* kernel threads for the engine (0 = all cores) */
    size_t max_batch;        /* sequences decoded together (default 16) */
    size_t max_queue;        /* requests waiting for a slot before 503 (default 64) */
    size_t max_body;         /* request body bytes before 413 (default 1 MiB) */
    size_t max_tokens_cap;   /* default and ceiling of max_tokens (default: context size) */
    size_t prefill_chunk;    /* prompt tokens per decode step (default 128) */
    size_t max_conn_per_ip;  /* open connections per client address (default 32; 0 = default);
                                not applied when trusted_proxy is set (every client then
                                shares the proxy's address) */
    unsigned conn_timeout;   /* seconds a connection may sit idle or trickle its request
                                (default 20) */
    double keyless_rpm;      /* requests without a valid key per minute per address; over it:
                                429 keyless_rate_limited, counted but not on the ledger
                                (default 60; < 0 = unlimited) */
    const char *trusted_proxy; /* comma-separated addresses / CIDR ranges whose
                                  X-Forwarded-For names the client (NULL: none) */
    int sim_clock;           /* honour X-Retort-Sim-Time (testing aid); refused unless host is loopback */
    int sim_clock_public;    /* ...or this is set (--unsafe-sim-clock-on-public-interface) */
    const serve_hooks *hooks;            /* may be NULL */
    const serve_admin_routes *admin_routes; /* may be NULL */
    serve_sampler_attach_fn sampler_attach; /* may be NULL */
    void *sampler_attach_ud;
    serve_seq_attach_fn seq_attach;         /* may be NULL */
    void *seq_attach_ud;
    serve_step_fn seq_step;                 /* may be NULL; called with seq_attach_ud */
    /* Extra rows for the server_config table, written before the server listens: key, value,
     * key, value, ..., NULL (e.g. "watermark" and the scheme's JSON, so detection uses the
     * same parameters). May be NULL. */
    const char *const *config;
    /* Gateway mode (`retort gateway`): the /v1 endpoints are forwarded to these
     * OpenAI-compatible upstreams (base URLs ending in /v1) instead of the engine; the
     * accounts, limits, ledger, hooks, admin API and metrics stay as they are. The model
     * (model_path / model) is then optional: when given it only embeds prompts for the guard
     * (an engine job of one token, off the request path) and counts tokens when an upstream
     * reports no usage. n_upstreams == 0: serve the model. */
    const char *const *upstreams;
    size_t n_upstreams;
    const char *upstream_key;   /* bearer presented upstream (never shown, never logged), or NULL */
    long upstream_timeout_s;    /* whole upstream request (default 600) */
    /* Chat format by name (tokenizer_chat_names: --chat-template), instead of the one recognised
     * from the model's template; NULL: recognise. A model whose template is of no known family
     * still serves /v1/completions; its chat requests get 400 saying so. */
    const char *chat_template;
    /* Context served (tokens a sequence may hold: each slot's KV cache is sized from it): 0 =
     * the model's context capped at SERVE_DEFAULT_CTX; more than the model's is refused. A
     * prompt that leaves no room for a token gets 400 context_length_exceeded. */
    size_t n_ctx;
} serve_options;
#define SERVE_DEFAULT_CTX 4096
void serve_options_defaults(serve_options *o);

typedef struct serve_server serve_server;
/* Load the model (unless given), open the database and the ledger, start the engine and
 * the HTTP daemon. Errors name the flag or file at fault. */
int serve_start(serve_server **out, const serve_options *o);
int serve_port(const serve_server *s);
const char *serve_model_name(const serve_server *s);
gw_db *serve_db(serve_server *s);
/* Gateway mode: present `key` upstream from the next request on (key rotation without a
 * restart; NULL or "": none). Requests in flight finish with the key they were sent with;
 * the replaced key stays scrubbed from what is relayed. Thread-safe. 0, or -1 (not a
 * gateway, or out of memory: the key is unchanged). */
int serve_set_upstream_key(serve_server *s, const char *key);
/* Stop accepting, cancel what runs, drain the ledger, free. */
void serve_stop(serve_server *s);

/* ---------------------------------------------------------------- chat template */

/* The messages of a chat request (tokenizer_chat_message: role, content, len). */
typedef tokenizer_chat_message serve_message;
/* Tokens of the rendered template (chat: the format, src/tokenizer/chat.c) for these messages,
 * ending with the generation prompt. *ids malloc'ed. */
int serve_chat_tokens(const tokenizer_chat *chat, const tokenizer *tok, const serve_message *msgs, size_t n_msgs,
                      int32_t **ids, size_t *n_ids);

/* ---------------------------------------------------------------- UTF-8 helpers */

/* rt_utf8_sanitize and rt_utf8_complete_prefix (src/base/utf8.c), under their old names. */
int serve_utf8_sanitize(rt_buf *b, const char *s, size_t len);
size_t serve_utf8_complete_prefix(const char *s, size_t len);

#endif /* RETORT_SERVE_H */
