/*
 * client.h — the client room: the HTTP client retort uses against an OpenAI-compatible API
 * (its own `retort serve`, or any other), used by the traffic simulator (src/sim); and the
 * harvester (harvest.c) built on it, which drains such an API into harvest-record JSONL for
 * `retort sft`. One libcurl easy handle per client; JSON bodies; a bearer key; the
 * Retry-After header read in one place.
 *
 * Retry-After: only the delta-seconds form is read (what `retort serve` and most APIs send);
 * a missing, negative or unreadable value is -1, and the caller picks its own backoff.
 *
 * Threading: a client is used by one thread at a time (one per worker); client_global_init
 * once per process before any thread starts (it is libcurl's, which is not thread-safe).
 * The pool (client_pool_*, below) is the other half: many concurrent transfers on one thread,
 * for the gateway's upstreams.
 *
 * What this is not: a server (src/serve), or a retry policy — callers decide what to do with
 * a 429 or a transport error (the pool retries connect failures only).
 */
#ifndef RETORT_CLIENT_H
#define RETORT_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

int client_global_init(void); /* 0, or -1 with an error */
void client_global_cleanup(void);

typedef struct client client;
int client_new(client **out);
void client_free(client *c);

typedef struct {
    const char *key;          /* "Authorization: Bearer KEY"; NULL: no header */
    const char *header;       /* one more "Name: value" header line, or NULL */
    const char *const *headers; /* n_headers more, sent in this order after it ("User-Agent: x"
                                   replaces libcurl's; the order is part of a client's shape) */
    size_t n_headers;
    const char *local_addr;   /* send from this local address (e.g. "127.0.0.5"), or NULL */
    long connect_timeout_s;   /* 0: 10 s */
    long timeout_s;           /* whole request; 0: 900 s */
    int fresh_connection;     /* 1: close the connection after the request (no reuse) */
} client_request;

typedef struct {
    rt_buf body;        /* the answer's body, appended to from empty on each call */
    double retry_after; /* seconds, from Retry-After; -1 when absent or unreadable */
} client_response;
void client_response_free(client_response *r);

/* POST body (JSON text) to url, or GET when body is NULL. Returns the HTTP status, or 0 on a
 * transport error (connection refused, timeout; recorded with the URL, kind IO). */
long client_call(client *c, const char *url, const client_request *rq, const char *body, client_response *r);

/* Seconds of a Retry-After header value (the delta-seconds form), -1 when unreadable. */
double client_parse_retry_after(const char *value, size_t len);


/* ---------------------------------------------------------------- the upstream pool
 *
 * What `retort gateway` forwards requests with: one thread drives a libcurl multi handle for
 * every transfer in flight (no thread per request), connections are kept alive and reused,
 * upstreams are taken in turn (round robin) among those believed up. A transfer whose
 * connection could not be made (refused, unresolvable, connect timeout) marks that upstream
 * down and is retried on the next one, at most once per upstream; nothing is retried once a
 * request reached an upstream (it may have been served). A down upstream is probed with
 * GET <base>/models every health_every_s and comes back when it answers. The key presented
 * upstream goes into the Authorization header only: no message, log line or callback ever
 * carries it.
 *
 * Callbacks run on the pool's thread: keep them short (append and signal).
 */
typedef struct client_pool client_pool;

typedef struct {
    const char *const *upstreams; /* base URLs, e.g. "http://10.0.0.5:8000/v1" (copied) */
    size_t n_upstreams;
    const char *key;              /* bearer presented upstream, or NULL (copied) */
    long connect_timeout_ms;      /* 0: 3000 */
    long timeout_s;               /* whole transfer; 0: 600 */
    double health_every_s;        /* probe a down upstream this often; 0: 2 */
} client_pool_options;

typedef enum {
    CLIENT_XFER_OK = 0,       /* the upstream answered (any HTTP status) and the body is complete */
    CLIENT_XFER_CONNECT,      /* no upstream could be connected to */
    CLIENT_XFER_TIMEOUT,      /* the upstream took longer than timeout_s */
    CLIENT_XFER_FAILED,       /* the transfer broke after it began */
    CLIENT_XFER_ABORTED       /* cancelled (the caller's cancelled() or on_* returned -1), or the pool stopped */
} client_xfer_result;

typedef struct {
    void *ud;
    /* The status and Content-Type ("" if none) once the answer's headers are in. -1 aborts. */
    int (*on_head)(void *ud, long status, const char *content_type);
    /* Body bytes as they arrive. -1 aborts. */
    int (*on_data)(void *ud, const char *p, size_t n);
    /* Polled every few ms while the transfer runs; nonzero aborts it. May be NULL. */
    int (*cancelled)(void *ud);
    /* Exactly once, last; msg says what failed (for the log; never holds the key). After it
     * returns the pool no longer touches ud. */
    void (*on_done)(void *ud, client_xfer_result res, const char *msg);
} client_xfer_cb;

int client_pool_new(client_pool **out, const client_pool_options *o);
/* Abort what runs (each on_done gets ABORTED), stop the thread, free. */
void client_pool_free(client_pool *p);
/* The key presented upstream from the next transfer on (NULL or "": none); transfers already
 * sent keep the one they were sent with. Thread-safe. 0, or -1 (out of memory: key unchanged). */
int client_pool_set_key(client_pool *p, const char *key);
/* Send method ("GET", "POST") to <upstream base><path> with body (copied; NULL for none).
 * Returns 0 (cb->on_done will be called exactly once), or -1 (out of memory or stopping;
 * no callback is called). */
int client_pool_send(client_pool *p, const char *method, const char *path, const char *body, size_t len,
                     const client_xfer_cb *cb);
/* Per upstream: its base URL, whether it is believed up, requests sent and connect failures. */
size_t client_pool_size(const client_pool *p);
void client_pool_upstream(client_pool *p, size_t i, const char **url, int *up, uint64_t *requests,
                          uint64_t *connect_failures);

/* ---------------------------------------------------------------- harvester */

typedef struct {
    const char *endpoint;   /* base URL, e.g. http://127.0.0.1:8080 (with or without /v1) */
    const char *api_key;
    const char *prompts_path; /* one prompt per line, or JSONL objects with "prompt" */
    const char *out_path;     /* JSONL, appended to; prompts already there are skipped */
    const char *model;        /* NULL: the first of GET /v1/models */
    int chat;                 /* /v1/chat/completions (prompt = the user message) */
    size_t concurrency;       /* parallel requests (default 4) */
    size_t max_tokens;        /* default 128 */
    size_t top_logprobs;      /* 0: no log-probs; K: chosen + K alternatives per token */
    double temperature;       /* default 1 */
    int64_t seed;             /* >= 0: each request sends "seed", this plus a hash of its prompt
                                 (the same prompt, the same seed: a reproducible harvest); -1: none */
    double rate;              /* requests per second overall, 0 = unlimited */
    size_t max_retries;       /* per prompt, for 429/5xx/network errors (default 8) */
    size_t limit;             /* harvest at most this many new prompts (0 = all) */
    int quiet;                /* no progress bar */
} harvest_options;
void harvest_options_defaults(harvest_options *o);

typedef struct {
    size_t prompts_total;   /* distinct prompts in the file */
    size_t skipped;         /* already in the output */
    size_t written;         /* new lines written */
    size_t failed;          /* gave up after retries (or a 4xx) */
    size_t retries;         /* 429 / 5xx / network retries */
    uint64_t prompt_tokens, completion_tokens;
    int stopped;            /* 1: stopped early on 401/403 */
    int stop_status;        /* that HTTP status */
    char stop_reason[256];  /* the server's message */
    double seconds;
} harvest_stats;
/* Run the harvest. Returns 0 when the run completed, even if it stopped on 401/403 (see
 * stats->stopped; the reason is also appended to "<out>.errors.jsonl" with every failed
 * prompt), -1 on a local error (files, arguments). */
int harvest_run(const harvest_options *o, harvest_stats *stats);

#endif /* RETORT_CLIENT_H */
