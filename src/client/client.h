/*
 * client.h — the client room: the HTTP client retort uses against an OpenAI-compatible API
 * (its own `retort serve`, or any other): the traffic simulator (src/sim) and, once it moves
 * here, the harvester. One libcurl easy handle per client; JSON bodies; a bearer key; the
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

#endif /* RETORT_CLIENT_H */
