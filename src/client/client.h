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
 * What this is not: a server (src/serve), or a retry policy — callers decide what to do with
 * a 429 or a transport error.
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
