/*
 * serve_internal.h — what the files of src/serve share and nobody else sees: the job a
 * request hands to the engine, the engine (continuous batching), metrics and the JSON side
 * of the OpenAI endpoints.
 */
#ifndef RETORT_SERVE_INTERNAL_H
#define RETORT_SERVE_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "serve.h"
#include "web_assets.h"

#define SERVE_MAX_N 8        /* choices per request */
#define SERVE_MAX_TOP 20     /* top_logprobs ceiling */
#define SERVE_MAX_STOP 4     /* stop strings */
#define SERVE_MAX_STOP_IDS 4 /* stop token ids */

typedef struct serve_metrics serve_metrics;

/* ---------------------------------------------------------------- jobs */

/* One choice (one sequence) of a job. Written by the engine under job->mu, read by the
 * connection thread under job->mu. */
typedef struct {
    int32_t *tokens;   /* (max_tokens) content tokens generated (stop tokens excluded) */
    float *logprob;    /* (max_tokens) raw model log-prob of each, when job->want_logprobs */
    int32_t *top_ids;  /* (max_tokens, top_k) alternatives, most likely first */
    float *top_lp;     /* (max_tokens, top_k) their log-probs */
    size_t *tok_off;   /* (max_tokens + 1) byte offset of each token's start in text */
    size_t n_tokens;   /* content tokens so far */
    size_t n_generated; /* every sampled token, stop tokens included (usage counts these) */
    rt_buf text;       /* bytes of the content tokens, concatenated */
    size_t safe_len;   /* text bytes that can be shown now (no stop string could start there) */
    size_t text_limit; /* final visible bytes (stop strings cut here); valid when finished */
    int finished;
    const char *finish_reason; /* "stop", "length", "cancelled", "error" */
} serve_choice;

typedef struct serve_job {
    /* inputs: set before submit, read-only afterwards */
    int32_t *prompt;   /* (n_prompt) */
    size_t n_prompt;
    size_t n;          /* choices, 1..SERVE_MAX_N */
    size_t max_tokens;
    sampler_params sp;
    int want_logprobs;
    size_t top_k;      /* alternatives per token, 0..SERVE_MAX_TOP */
    char *stop[SERVE_MAX_STOP];
    size_t stop_len[SERVE_MAX_STOP];
    size_t n_stop;
    int32_t stop_ids[SERVE_MAX_STOP_IDS];
    size_t n_stop_ids;
    int want_hidden;
    int64_t account_id;               /* the request's account (0: none), for serve_seq_attach_fn */
    char account[GW_NAME_MAX];        /* its name ("" if none) */

    /* shared state */
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* broadcast after every engine step that touched this job */
    atomic_int cancelled;
    serve_choice choices[SERVE_MAX_N];
    size_t n_finished;
    int done;            /* all choices finished and the engine let go */
    int failed;          /* engine error: errmsg says why */
    char errmsg[256];
    double t_submit;     /* rt_now() */
    double t_admit;      /* taken into slots (queue wait = t_admit - t_submit); 0 if never */
    double t_first;      /* first token of any choice; 0 if none */
    double t_done;
    float *hidden;       /* (D) final normed hidden state of the prompt's last token */
    size_t hidden_dim;
    uint64_t version;    /* bumped on every update (for waiters) */
    atomic_int refs;
    /* called by the engine after every update, with mu held, right after cv is broadcast:
     * how a suspended HTTP connection is resumed. Must not block. Set before submit;
     * cleared (under mu) by its owner before it lets go of ud. May be NULL. */
    void (*on_signal)(void *ud, struct serve_job *j);
    void *on_signal_ud;

    /* gateway mode (proxy.c writes these under mu; the engine never sees such a job): the
     * upstream's answer. choices[i].text collects each choice's text (for the ledger's
     * output hash and the guard); n_generated stays 0. */
    int upstream;            /* this job goes to an upstream, not the engine */
    int up_sse;              /* the answer is an event stream being relayed */
    long up_status;          /* HTTP status once the headers are in (0 before) */
    int up_result;           /* client_xfer_result, once done */
    char up_ctype[64];       /* the answer's Content-Type */
    rt_buf up_out;           /* bytes for the client not yet taken (events, or the whole body) */
    rt_buf up_pending;       /* a partial SSE event */
    int up_saw_done;         /* the upstream's "data: [DONE]" (held back: the gateway sends its own) */
    int up_want_usage;       /* the client asked for the usage chunk (stream_options.include_usage) */
    int64_t up_prompt_tokens, up_completion_tokens; /* the upstream's usage; -1: none given */
    int up_counted;          /* the usage was counted here (the upstream gave none) */
} serve_job;

/* Allocate a job for n choices of up to max_tokens tokens each (logprob arrays when
 * top_k/want_logprobs ask). The prompt array is taken over. refs = 1. */
serve_job *serve_job_new(int32_t *prompt, size_t n_prompt, size_t n, size_t max_tokens, int want_logprobs,
                         size_t top_k, size_t hidden_dim);
/* A job for an upstream (gateway mode): n choices collecting text, nothing for the engine. */
serve_job *serve_job_new_upstream(size_t n);
void serve_job_ref(serve_job *j);
void serve_job_unref(serve_job *j);

/* ---------------------------------------------------------------- engine */

typedef struct serve_engine serve_engine;
typedef struct {
    size_t queued;        /* jobs waiting for slots */
    size_t active;        /* sequences in slots */
    uint64_t steps;       /* decoder passes */
    uint64_t rows;        /* token rows through the decoder */
} serve_engine_stats;

int serve_engine_new(serve_engine **out, const model *m, size_t n_ctx, size_t max_batch, size_t max_queue,
                     size_t prefill_chunk, size_t threads, serve_sampler_attach_fn attach, void *attach_ud,
                      serve_seq_attach_fn seq_attach, serve_step_fn seq_step, void *seq_attach_ud,
                      serve_metrics *metrics);
/* Queue a job (takes a reference). Returns 0, or 1 when the queue is full (nothing taken),
 * or -1 on error. */
int serve_engine_submit(serve_engine *e, serve_job *j);
void serve_engine_stats_get(serve_engine *e, serve_engine_stats *s);
/* Stop the thread; unfinished jobs finish as "cancelled". */
void serve_engine_free(serve_engine *e);

/* ---------------------------------------------------------------- metrics */

int serve_metrics_new(serve_metrics **out);
void serve_metrics_free(serve_metrics *m);
/* One finished /v1 request. ttft < 0: none. */
void serve_metrics_request(serve_metrics *m, const char *endpoint, int status, double latency_s, double ttft_s,
                           int64_t prompt_tokens, int64_t completion_tokens);
/* One refused request (401/403/429) by its error code (a static or short string). */
void serve_metrics_refusal(serve_metrics *m, const char *code);
/* One decoder pass of `rows` token rows over `seqs` sequences. */
void serve_metrics_batch(serve_metrics *m, size_t rows, size_t seqs);
/* Prometheus text exposition; gauges given by the caller. */
int serve_metrics_render(serve_metrics *m, rt_buf *out, size_t queue_depth, size_t active_seqs,
                         uint64_t ledger_commits, uint64_t ledger_rows);

/* ---------------------------------------------------------------- peers (peer.c) */

typedef struct serve_peers serve_peers;
/* keyless_rpm: requests without a valid key per minute per client address (0 = no limit);
 * trusted: comma-separated addresses / CIDR ranges of proxies whose X-Forwarded-For is
 * believed (NULL or "" = none). Errors name the flag. */
int serve_peers_init(serve_peers **out, double keyless_rpm, const char *trusted);
void serve_peers_free(serve_peers *p);
int serve_peers_has_proxies(const serve_peers *p);
/* The client's address into out[cap]: peer (text), or when peer is a trusted proxy, the
 * right-most X-Forwarded-For entry that is not itself a trusted proxy. Thread-safe. */
void serve_peers_client(const serve_peers *p, const char *peer, const char *xff, char *out, size_t cap);
/* A request without a valid key from addr at clock time now: 1 to answer it (and record
 * it), 0 when the address is over its budget (*retry_after seconds). Counts both. */
int serve_peers_keyless_admit(serve_peers *p, const char *addr, double now, double *retry_after);
void serve_peers_counts(serve_peers *p, uint64_t *keyless, uint64_t *keyless_limited);

/* ---------------------------------------------------------------- OpenAI JSON */

/* A parsed /v1 generation request. */
typedef struct {
    int chat;
    char *model;                  /* as asked */
    char *prompt_text;            /* completions prompt, or the messages' contents joined by "\n" */
    size_t prompt_text_len;
    int32_t *prompt_ids;          /* (n_prompt): tokens, template included */
    size_t n_prompt;
    size_t max_tokens;
    int max_tokens_given;
    float temperature, top_p;
    size_t top_k;
    size_t n;
    int stream, include_usage;
    int logprobs;                 /* asked for */
    size_t top_logprobs;          /* alternatives */
    int has_seed;
    uint64_t seed;
    char *stop[SERVE_MAX_STOP];
    size_t n_stop;
    const char *error_code;       /* after a failed parse: OpenAI's code for it, or NULL
                                     ("context_length_exceeded"); a static string */
} serve_gen_request;
void serve_gen_request_free(serve_gen_request *r);

/* The chat format serve renders: recognised at start (or named); when it could not be, ok is
 * 0 and err says why (chat requests then get 400 with it). */
typedef struct {
    tokenizer_chat chat;
    int ok;
    char err[512];
} serve_chat_format;
/* Recognise m's format (name: --chat-template, may be NULL). Never fails: see ok/err. */
void serve_chat_format_init(serve_chat_format *f, const model *m, const char *name);

/* Parse and validate a body (fmt: the chat format, for chat requests). On a client error returns -1 with *status (400, 404) and the
 * message (naming the field) in err; *param gets the offending field name ("" if none). */
int serve_parse_gen(const char *body, size_t len, int chat, const model *m, const serve_chat_format *fmt,
                    size_t n_ctx, const char *served_name,
                    size_t max_tokens_cap, serve_gen_request *r, int *status, char *err, size_t err_cap,
                    char *param, size_t param_cap);

/* What a gateway forwards (the path upstream: /chat/completions, /completions, /embeddings). */
enum { SERVE_UP_CHAT = 1, SERVE_UP_COMPLETION, SERVE_UP_EMBED, SERVE_UP_MODELS };
/* Read a gateway request: lenient (the upstream validates; unknown fields pass through), it
 * takes what the ledger, the limits and the guard need: model, prompt text (chat: the
 * messages' text contents joined by "\n", as serve_parse_gen), sampling fields, stream and
 * include_usage. Tokens with tok when given (chat: rendered in chat, the local model's format,
 * when given; else the text alone), else n_prompt is an estimate (4 bytes a token) and
 * prompt_ids NULL. max_tokens_default: chat's reserve when the request names none. Errors as
 * serve_parse_gen. */
int serve_parse_upstream(const char *body, size_t len, int kind, const tokenizer *tok, const tokenizer_chat *chat,
                         size_t max_tokens_default,
                         serve_gen_request *r, int *status, char *err, size_t err_cap, char *param,
                         size_t param_cap);

/* ---------------------------------------------------------------- upstreams (proxy.c) */

typedef struct serve_proxy serve_proxy;
/* The upstream pool of o->upstreams (client room), with the key read by the caller. */
int serve_proxy_new(serve_proxy **out, const serve_options *o);
void serve_proxy_free(serve_proxy *p);
/* serve_set_upstream_key's work (serve.h). */
int serve_proxy_set_key(serve_proxy *p, const char *key);
/* Forward a job's request: kind's path, the client's body (streams get
 * stream_options.include_usage so usage comes back; the chunk is dropped unless the client
 * asked for it). tok: counts tokens when the upstream reports no usage (NULL: estimate).
 * The job is done (cv, on_signal) when the pool let go; until then the pool holds a
 * reference. 0, or -1 (nothing sent). */
int serve_proxy_send(serve_proxy *p, serve_job *j, int kind, const serve_gen_request *r, const char *body,
                     size_t len, const tokenizer *tok);
/* The relay's reading of upstream bytes, without a network (fuzz target, tests): the answer's
 * headers (status, Content-Type) on the first call, then n bytes as the pool would deliver
 * them; final finishes it as a completed transfer does. key is scrubbed. 0, or -1 when the
 * answer was refused (too large, out of memory). */
int serve_proxy_feed(serve_job *j, const char *key, long status, const char *ctype, const char *p, size_t n,
                     int final);
/* Upstream figures for GET /metrics and /health. */
int serve_proxy_metrics(serve_proxy *p, rt_buf *out);
size_t serve_proxy_up_count(serve_proxy *p, size_t *total);
/* An OpenAI-shaped error body for a failed job (j->done): the upstream's own error (scrubbed
 * of the key) when it sent one in that shape, else a wrapper naming the upstream's status;
 * 502/504 for transport failures. *status gets the HTTP status for the client. */
char *serve_proxy_error_body(const serve_job *j, int *status, const char **code);

/* OpenAI error body {"error": {"message", "type", "param", "code"}}. */
char *serve_error_json(const char *message, const char *type, const char *param, const char *code);

/* Logprob entries of one token for chat ({"token","logprob","bytes","top_logprobs"}). */
json_t *serve_chat_logprob_entry(const tokenizer *tok, const serve_choice *c, size_t i, size_t top_k);
/* The whole non-streaming response for a finished job. */
json_t *serve_response_json(const serve_gen_request *r, const serve_job *j, const tokenizer *tok,
                            const char *id, const char *model_name, int64_t created);
/* The "logprobs" object of a choice for tokens [from, to): chat {"content": [...]}, or the
 * completions form (tokens, token_logprobs, top_logprobs, text_offset, content). */
json_t *serve_logprobs_json(int chat, const tokenizer *tok, const serve_choice *c, size_t from, size_t to,
                            size_t top_k);
json_t *serve_usage_json(const serve_job *j);
/* Visible text of a finished choice and its visible token count. */
size_t serve_choice_visible_tokens(const serve_choice *c, size_t text_len);
/* JSON string of token bytes, lossy UTF-8. */
json_t *serve_json_bytes_string(const char *s, size_t len);

/* ---------------------------------------------------------------- admin API */

/* One /admin/api/ request from an authenticated admin. path: what follows "/admin/api/"
 * ("accounts", "accounts/NAME/suspend", ...). arg_account / arg_limit: query arguments
 * (may be NULL). admin_id: the calling admin's account (it may not suspend itself). Fills
 * *status and *out (malloc'ed JSON text). Returns -1 only when out of memory. */
int serve_admin_handle(gw_db *db, const char *method, const char *path, const char *arg_account,
                       const char *arg_limit, const char *body, size_t len, double now, int64_t admin_id, int *status,
                       char **out);

/* ---------------------------------------------------------------- dashboard (web.c) */

/* The embedded asset a GET of url serves: "/admin" and "/admin/" give index.html,
 * "/admin/NAME" gives NAME; NULL when there is none. */
const serve_web_asset *serve_web_find(const char *url);
/* Content-Type of an asset, from its extension. */
const char *serve_web_content_type(const char *name);

#endif
