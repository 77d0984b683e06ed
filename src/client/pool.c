/*
 * pool.c — the upstream pool (client.h): one thread drives a libcurl multi handle for every
 * transfer in flight; round robin over the upstreams believed up; a connect failure marks
 * the upstream down and retries the transfer on the next one; down upstreams are probed
 * with GET <base>/models until they answer. Keep-alive comes from the multi handle's
 * connection cache; finished transfers' easy handles go back to a spare list (the pool
 * thread's own) and are reset and reused, so a request does not pay curl_easy_init.
 *
 * Not the request's meaning (src/serve/proxy.c decides what to send and what an answer
 * means), and no retry of a request an upstream may have served.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"

#define POOL_SPARE_HANDLES 256

typedef struct {
    char *base;
    int up;
    double next_probe;   /* rt_now() when a down upstream is probed next */
    int probing;
    uint64_t requests, connect_failures;
} upstream;

typedef struct xfer xfer;
struct xfer {
    client_pool *p;
    CURL *h;
    struct curl_slist *hdr;
    client_xfer_cb cb;    /* cb.on_done == NULL: a health probe */
    char *method, *path;
    char *body;
    size_t len;
    size_t up;            /* upstream index of the current try */
    size_t tries;
    int got_head, aborted;
    long status;
    char ctype[128];
    xfer *next;
};

struct client_pool {
    upstream *ups;
    size_t n_ups;
    char *auth;           /* "Authorization: Bearer KEY" or NULL; under mu (client_pool_set_key swaps it) */
    long connect_ms, timeout_s;
    double health_every;
    CURLM *multi;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;   /* the submit queue, stop, upstream state */
    xfer *incoming;
    int stop;
    atomic_size_t rr;
    xfer *active;         /* the pool thread's own list */
    CURL *spare[POOL_SPARE_HANDLES]; /* the pool thread's: handles of finished transfers */
    size_t n_spare;
};

/* ---------------------------------------------------------------- upstream choice */

/* The next upstream believed up after the round-robin counter (any, if none is up). mu held. */
static size_t pick_locked(client_pool *p, size_t skip_from, size_t tries) {
    size_t start = tries ? skip_from + 1 : atomic_fetch_add(&p->rr, 1);
    for (size_t k = 0; k < p->n_ups; k++) {
        size_t i = (start + k) % p->n_ups;
        if (p->ups[i].up) return i;
    }
    return start % p->n_ups;
}

/* ---------------------------------------------------------------- libcurl callbacks */

static void head_done(xfer *x) {
    if (x->got_head) return;
    x->got_head = 1;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
    if (x->cb.on_head && x->cb.on_head(x->cb.ud, x->status, x->ctype) < 0) x->aborted = 1;
}

static size_t on_header(char *ptr, size_t sz, size_t n, void *ud) {
    xfer *x = ud;
    size_t len = sz * n;
    if (len >= 5 && !strncmp(ptr, "HTTP/", 5)) { /* a new status line (after a 1xx, too) */
        x->ctype[0] = '\0';
        return len;
    }
    if (len > 13 && !strncasecmp(ptr, "Content-Type:", 13)) {
        const char *v = ptr + 13;
        size_t vl = len - 13;
        while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ')) vl--;
        vl = RT_MIN(vl, sizeof x->ctype - 1);
        memcpy(x->ctype, v, vl);
        x->ctype[vl] = '\0';
        return len;
    }
    if (len <= 2 && (ptr[0] == '\r' || ptr[0] == '\n')) { /* end of a header block */
        long code = 0;
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200 && x->cb.on_done) head_done(x);
        if (x->aborted) return 0;
    }
    return len;
}

static size_t on_body(char *ptr, size_t sz, size_t n, void *ud) {
    xfer *x = ud;
    size_t len = sz * n;
    if (!x->cb.on_done) return len; /* a probe: the answer is all it needs */
    head_done(x);
    if (x->aborted || (x->cb.on_data && x->cb.on_data(x->cb.ud, ptr, len) < 0)) {
        x->aborted = 1;
        return 0;
    }
    return len;
}

/* ---------------------------------------------------------------- transfers */

static void xfer_free(xfer *x) {
    if (!x) return;
    if (x->h) {
        client_pool *p = x->p;
        if (p && p->n_spare < POOL_SPARE_HANDLES) {
            curl_easy_reset(x->h); /* nothing of this transfer (URL, headers, callbacks) stays */
            p->spare[p->n_spare++] = x->h;
        } else {
            curl_easy_cleanup(x->h);
        }
    }
    curl_slist_free_all(x->hdr);
    free(x->method);
    free(x->path);
    free(x->body);
    free(x);
}

/* Set the easy handle up for the current upstream and add it to the multi. 0 or -1. */
static int xfer_start(client_pool *p, xfer *x) {
    char *url = NULL;
    const char *base = p->ups[x->up].base;
    size_t bl = strlen(base), pl = strlen(x->path);
    url = rt_malloc(bl + pl + 1, "upstream URL");
    if (!url) return -1;
    memcpy(url, base, bl);
    memcpy(url + bl, x->path, pl + 1);
    if (x->h) curl_easy_reset(x->h); /* a retry on the next upstream */
    else if (p->n_spare) x->h = p->spare[--p->n_spare];
    else x->h = curl_easy_init();
    if (!x->h) {
        free(url);
        return RT_FAIL("libcurl: cannot create a handle");
    }
    CURL *h = x->h;
    curl_easy_setopt(h, CURLOPT_URL, url);
    free(url); /* libcurl copies it */
    curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, x->cb.on_done ? p->connect_ms : RT_MIN(p->connect_ms, 2000L));
    curl_easy_setopt(h, CURLOPT_TIMEOUT, x->cb.on_done ? p->timeout_s : 3L);
    if (!strcmp(x->method, "POST")) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->body ? x->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->len);
    }
    x->got_head = 0;
    x->ctype[0] = '\0';
    if (curl_multi_add_handle(p->multi, h) != CURLM_OK) return RT_FAIL("libcurl: cannot add a transfer");
    return 0;
}

static void xfer_finish(client_pool *p, xfer *x, client_xfer_result res, const char *msg) {
    (void)p;
    if (x->cb.on_done) x->cb.on_done(x->cb.ud, res, msg);
    xfer_free(x);
}

static void active_remove(client_pool *p, xfer *x) {
    for (xfer **pp = &p->active; *pp; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            return;
        }
}

static int is_connect_failure(CURLcode cc, const xfer *x) {
    if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST) return 1;
    if (cc == CURLE_OPERATION_TIMEDOUT && !x->got_head) {
        curl_off_t t = 0;
        curl_easy_getinfo(x->h, CURLINFO_CONNECT_TIME_T, &t);
        return t == 0;
    }
    return 0;
}

/* A transfer ended (CURLMSG_DONE): deliver, or retry a connect failure on the next upstream. */
static void xfer_ended(client_pool *p, xfer *x, CURLcode cc) {
    curl_multi_remove_handle(p->multi, x->h);
    active_remove(p, x);
    if (!x->cb.on_done) { /* a probe */
        pthread_mutex_lock(&p->mu);
        upstream *u = &p->ups[x->up];
        u->probing = 0;
        long code = 0;
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
        if (cc == CURLE_OK && code > 0 && code < 500) {
            if (!u->up) rt_info("gateway: upstream %s is up again", u->base);
            u->up = 1;
        } else {
            u->next_probe = rt_now() + p->health_every;
        }
        pthread_mutex_unlock(&p->mu);
        xfer_free(x);
        return;
    }
    if (x->aborted) {
        xfer_finish(p, x, CLIENT_XFER_ABORTED, "cancelled");
        return;
    }
    if (cc == CURLE_OK) {
        head_done(x);
        xfer_finish(p, x, CLIENT_XFER_OK, "");
        return;
    }
    char msg[256];
    snprintf(msg, sizeof msg, "upstream %s: %s", p->ups[x->up].base, curl_easy_strerror(cc));
    if (is_connect_failure(cc, x)) {
        pthread_mutex_lock(&p->mu);
        upstream *u = &p->ups[x->up];
        u->connect_failures++;
        if (u->up) rt_warn("gateway: %s; marked down (probed every %.0f s)", msg, p->health_every);
        u->up = 0;
        u->next_probe = rt_now() + p->health_every;
        x->tries++;
        int retry = x->tries < p->n_ups && !p->stop;
        if (retry) {
            x->up = pick_locked(p, x->up, x->tries);
            p->ups[x->up].requests++;
        }
        pthread_mutex_unlock(&p->mu);
        if (retry && xfer_start(p, x) == 0) {
            x->next = p->active;
            p->active = x;
            return;
        }
        xfer_finish(p, x, CLIENT_XFER_CONNECT, msg);
        return;
    }
    xfer_finish(p, x, cc == CURLE_OPERATION_TIMEDOUT ? CLIENT_XFER_TIMEOUT : CLIENT_XFER_FAILED, msg);
}

/* ---------------------------------------------------------------- the thread */

static void start_probes(client_pool *p, double now) {
    for (size_t i = 0; i < p->n_ups; i++) {
        pthread_mutex_lock(&p->mu);
        upstream *u = &p->ups[i];
        int due = !u->up && !u->probing && now >= u->next_probe;
        if (due) u->probing = 1;
        pthread_mutex_unlock(&p->mu);
        if (!due) continue;
        xfer *x = rt_calloc(1, sizeof *x, "health probe");
        if (x) {
            x->p = p;
            x->up = i;
            x->method = rt_strdup("GET");
            x->path = rt_strdup("/models");
            pthread_mutex_lock(&p->mu);
            if (p->auth) x->hdr = curl_slist_append(NULL, p->auth);
            pthread_mutex_unlock(&p->mu);
        }
        if (!x || !x->method || !x->path || xfer_start(p, x)) {
            xfer_free(x);
            pthread_mutex_lock(&p->mu);
            u->probing = 0;
            u->next_probe = now + p->health_every;
            pthread_mutex_unlock(&p->mu);
            continue;
        }
        x->next = p->active;
        p->active = x;
    }
}

static void *pool_main(void *arg) {
    client_pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        xfer *in = p->incoming;
        p->incoming = NULL;
        int stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        while (in) {
            xfer *x = in;
            in = in->next;
            if (stop || xfer_start(p, x)) {
                xfer_finish(p, x, stop ? CLIENT_XFER_ABORTED : CLIENT_XFER_FAILED,
                            stop ? "the gateway is stopping" : "cannot start the transfer");
                continue;
            }
            x->next = p->active;
            p->active = x;
        }
        if (stop) break;
        /* cancelled by their owner (the client left) */
        for (xfer *x = p->active, *nx; x; x = nx) {
            nx = x->next;
            if (x->cb.on_done && x->cb.cancelled && x->cb.cancelled(x->cb.ud)) {
                curl_multi_remove_handle(p->multi, x->h);
                active_remove(p, x);
                xfer_finish(p, x, CLIENT_XFER_ABORTED, "cancelled");
            }
        }
        start_probes(p, rt_now());
        int running = 0;
        curl_multi_perform(p->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(p->multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            xfer *x = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            if (x) xfer_ended(p, x, m->data.result);
        }
        curl_multi_poll(p->multi, NULL, 0, p->active ? 20 : 500, NULL);
    }
    /* stopping: abort what runs */
    while (p->active) {
        xfer *x = p->active;
        p->active = x->next;
        curl_multi_remove_handle(p->multi, x->h);
        xfer_finish(p, x, CLIENT_XFER_ABORTED, "the gateway is stopping");
    }
    return NULL;
}

/* ---------------------------------------------------------------- public */

static char *auth_header(const char *key) {
    size_t n = strlen(key) + 32;
    char *a = rt_malloc(n, "upstream key header");
    if (a) snprintf(a, n, "Authorization: Bearer %s", key);
    return a;
}

static void auth_free(char *a) {
    if (!a) return;
    memset(a, 0, strlen(a));
    free(a);
}

int client_pool_new(client_pool **out, const client_pool_options *o) {
    *out = NULL;
    if (!o->n_upstreams) return RT_FAIL("--upstream: at least one upstream URL is needed");
    client_pool *p = rt_calloc(1, sizeof *p, "upstream pool");
    if (!p) return -1;
    pthread_mutex_init(&p->mu, NULL);
    atomic_init(&p->rr, 0);
    p->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 3000;
    p->timeout_s = o->timeout_s > 0 ? o->timeout_s : 600;
    p->health_every = o->health_every_s > 0 ? o->health_every_s : 2.0;
    p->ups = rt_calloc(o->n_upstreams, sizeof *p->ups, "upstreams");
    if (!p->ups) goto fail;
    p->n_ups = o->n_upstreams;
    for (size_t i = 0; i < o->n_upstreams; i++) {
        const char *u = o->upstreams[i];
        if (strncmp(u, "http://", 7) && strncmp(u, "https://", 8)) {
            RT_FAIL_KIND(RT_ERR_INVALID, "--upstream %s: expected an http:// or https:// base URL (e.g. http://10.0.0.5:8000/v1)", u);
            goto fail;
        }
        size_t l = strlen(u);
        while (l && u[l - 1] == '/') l--; /* "/v1/" and "/v1" are the same base */
        p->ups[i].base = rt_malloc(l + 1, "upstream URL");
        if (!p->ups[i].base) goto fail;
        memcpy(p->ups[i].base, u, l);
        p->ups[i].base[l] = '\0';
        p->ups[i].up = 1;
    }
    if (o->key && *o->key && !(p->auth = auth_header(o->key))) goto fail;
    p->multi = curl_multi_init();
    if (!p->multi) {
        RT_FAIL("libcurl: cannot create a multi handle");
        goto fail;
    }
    curl_multi_setopt(p->multi, CURLMOPT_MAXCONNECTS, 512L);
    if (pthread_create(&p->thread, NULL, pool_main, p) != 0) {
        RT_FAIL("cannot start the upstream pool thread");
        goto fail;
    }
    p->started = 1;
    *out = p;
    return 0;
fail:
    client_pool_free(p);
    return -1;
}

void client_pool_free(client_pool *p) {
    if (!p) return;
    if (p->started) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_mutex_unlock(&p->mu);
        curl_multi_wakeup(p->multi);
        pthread_join(p->thread, NULL);
    }
    while (p->incoming) { /* sent after the thread's last look */
        xfer *x = p->incoming;
        p->incoming = x->next;
        xfer_finish(p, x, CLIENT_XFER_ABORTED, "the gateway is stopping");
    }
    if (p->multi) curl_multi_cleanup(p->multi);
    for (size_t i = 0; i < p->n_spare; i++) curl_easy_cleanup(p->spare[i]);
    for (size_t i = 0; i < p->n_ups; i++) free(p->ups[i].base);
    free(p->ups);
    auth_free(p->auth);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int client_pool_send(client_pool *p, const char *method, const char *path, const char *body, size_t len,
                     const client_xfer_cb *cb) {
    xfer *x = rt_calloc(1, sizeof *x, "upstream transfer");
    if (!x) return -1;
    x->p = p;
    x->cb = *cb;
    x->method = rt_strdup(method);
    x->path = rt_strdup(path);
    if (!x->method || !x->path) goto fail;
    if (body) {
        x->body = rt_malloc(len + 1, "upstream request body");
        if (!x->body) goto fail;
        memcpy(x->body, body, len);
        x->body[len] = '\0';
        x->len = len;
        x->hdr = curl_slist_append(x->hdr, "Content-Type: application/json");
        x->hdr = curl_slist_append(x->hdr, "Expect:");
    }
    pthread_mutex_lock(&p->mu);
    if (p->auth) x->hdr = curl_slist_append(x->hdr, p->auth); /* copied: a later key swap leaves it */
    if (p->stop) {
        pthread_mutex_unlock(&p->mu);
        RT_FAIL("the gateway is stopping");
        goto fail;
    }
    x->up = pick_locked(p, 0, 0);
    p->ups[x->up].requests++;
    x->next = p->incoming;
    p->incoming = x;
    pthread_mutex_unlock(&p->mu);
    curl_multi_wakeup(p->multi);
    return 0;
fail:
    xfer_free(x);
    return -1;
}

int client_pool_set_key(client_pool *p, const char *key) {
    char *a = NULL;
    if (key && *key && !(a = auth_header(key))) return -1;
    pthread_mutex_lock(&p->mu);
    char *old = p->auth;
    p->auth = a;
    pthread_mutex_unlock(&p->mu);
    auth_free(old); /* transfers already queued keep the copy in their own header list */
    return 0;
}

size_t client_pool_size(const client_pool *p) { return p->n_ups; }

void client_pool_upstream(client_pool *p, size_t i, const char **url, int *up, uint64_t *requests,
                          uint64_t *connect_failures) {
    pthread_mutex_lock(&p->mu);
    *url = p->ups[i].base;
    *up = p->ups[i].up;
    *requests = p->ups[i].requests;
    *connect_failures = p->ups[i].connect_failures;
    pthread_mutex_unlock(&p->mu);
}
