/*
 * serve_bench.c — a load generator for OpenAI-compatible servers (retort serve, llama.cpp's
 * server, anything that speaks /v1/completions): C client threads each send R requests
 * back to back and the run reports aggregate completion tokens per second, time to first
 * token (streaming: first chunk with text), request latency, and — when the server sends
 * W3C Server-Timing with "queue" and "engine" entries, as retort does — the latency added
 * outside the engine and its queue, seen by the client (latency - queue - engine) and by the
 * server ("total" - queue - engine), and the ledger commit time, for non-streaming requests
 * (a gateway's "upstream" entry counts as the engine: what is left is the gateway's own).
 * One JSON line per run on stdout. Not a test: it asserts nothing.
 *
 * usage: serve_bench --url http://127.0.0.1:PORT --key KEY --model NAME [--concurrency C]
 *        [--requests R] [--max-tokens N] [--stream 0|1] [--path /v1/completions] [--label TEXT]
 */
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    const char *url, *key, *model, *path;
    int conc, reqs, max_tokens, stream;
} cfg;

typedef struct {
    double t0, ttft, engine_ms, queue_ms, total_ms, ledger_ms;
    int got_first;
    long tokens; /* from usage */
    char *buf;
    size_t len, cap;
} req_state;

typedef struct {
    const cfg *c;
    int id;
    double *ttft, *lat, *added, *added_srv, *ledger; /* (reqs) */
    long tokens;
    int errors;
} worker;

static size_t on_data(char *p, size_t sz, size_t n, void *ud) {
    req_state *r = ud;
    size_t k = sz * n;
    if (r->len + k + 1 > r->cap) {
        size_t nc = (r->len + k + 1) * 2;
        char *b = realloc(r->buf, nc);
        if (!b) return 0;
        r->buf = b;
        r->cap = nc;
    }
    memcpy(r->buf + r->len, p, k);
    r->len += k;
    r->buf[r->len] = '\0';
    if (!r->got_first) {
        /* first chunk that carries text: "text":"x" or "content":"x" with x non-empty */
        const char *q = strstr(r->buf, "\"text\":\"");
        if (!q) q = strstr(r->buf, "\"content\":\"");
        if (q) {
            q = strchr(q, ':') + 2;
            if (*q && *q != '"') {
                r->got_first = 1;
                r->ttft = now_s() - r->t0;
            }
        }
    }
    return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
    req_state *r = ud;
    size_t k = sz * n;
    if (k > 14 && !strncasecmp(p, "Server-Timing:", 14)) {
        const char *e = strstr(p, "engine;dur="), *q = strstr(p, "queue;dur="), *t = strstr(p, "total;dur="),
                   *l = strstr(p, "ledger;dur=");
        /* a gateway (retort gateway) reports the wait for its upstream as "upstream": the
         * engine's place */
        const char *u = strstr(p, "upstream;dur=");
        if (e && e < p + k) r->engine_ms = atof(e + 11);
        if (u && u < p + k) r->engine_ms = atof(u + 13);
        if (q && q < p + k) r->queue_ms = atof(q + 10);
        if (t && t < p + k) r->total_ms = atof(t + 10);
        if (l && l < p + k) r->ledger_ms = atof(l + 11);
    }
    return k;
}

static long last_usage(const char *buf) {
    const char *q = NULL, *p = buf;
    while ((p = strstr(p, "\"completion_tokens\":"))) q = p++;
    return q ? atol(q + 20) : 0;
}

static void *run_worker(void *arg) {
    worker *w = arg;
    const cfg *c = w->c;
    CURL *h = curl_easy_init();
    char url[512], auth[256], body[512];
    snprintf(url, sizeof url, "%s%s", c->url, c->path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->key);
    struct curl_slist *hd = curl_slist_append(NULL, auth);
    hd = curl_slist_append(hd, "Content-Type: application/json");
    hd = curl_slist_append(hd, "Expect:");
    for (int i = 0; i < c->reqs; i++) {
        snprintf(body, sizeof body,
                 "{\"model\":\"%s\",\"prompt\":\"Request %d of client %d: And it came to pass in those days, that\","
                 "\"max_tokens\":%d,\"temperature\":1,\"seed\":%d,\"stream\":%s%s}",
                 c->model, i, w->id, c->max_tokens, w->id * 1000 + i, c->stream ? "true" : "false",
                 c->stream ? ",\"stream_options\":{\"include_usage\":true}" : "");
        req_state r = {0};
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        r.t0 = now_s();
        CURLcode cc = curl_easy_perform(h);
        double lat = now_s() - r.t0;
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (cc != CURLE_OK || status != 200) {
            w->errors++;
            if (w->errors <= 3)
                fprintf(stderr, "serve_bench: HTTP %ld (%s): %.200s\n", status, curl_easy_strerror(cc), r.buf ? r.buf : "");
            w->ttft[i] = w->lat[i] = w->added[i] = w->added_srv[i] = w->ledger[i] = NAN;
        } else {
            w->tokens += last_usage(r.buf);
            w->lat[i] = lat;
            w->ttft[i] = r.got_first ? r.ttft : lat;
            /* outside the engine and outside the wait for it: HTTP, JSON, key, limits, ledger */
            int timed = r.engine_ms > 0;
            w->added[i] = timed ? lat - (r.engine_ms + r.queue_ms) / 1e3 : NAN;
            w->added_srv[i] = timed ? (r.total_ms - r.engine_ms - r.queue_ms) / 1e3 : NAN;
            w->ledger[i] = timed ? r.ledger_ms / 1e3 : NAN;
        }
        free(r.buf);
    }
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    return NULL;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* percentile of the finite values */
static double pct(const double *in, size_t n, double p) {
    double *v = malloc((n ? n : 1) * sizeof *v);
    size_t k = 0;
    for (size_t i = 0; v && i < n; i++)
        if (isfinite(in[i])) v[k++] = in[i];
    if (!k) {
        free(v);
        return NAN;
    }
    qsort(v, k, sizeof *v, cmp_d);
    size_t idx = (size_t)ceil(p * (double)k);
    idx = idx ? idx - 1 : 0;
    if (idx >= k) idx = k - 1;
    double r = v[idx];
    free(v);
    return r;
}

int main(int argc, char **argv) {
    cfg c = {NULL, NULL, NULL, "/v1/completions", 1, 8, 64, 1};
    const char *label = "";
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--url")) c.url = v;
        else if (!strcmp(a, "--key")) c.key = v;
        else if (!strcmp(a, "--model")) c.model = v;
        else if (!strcmp(a, "--path")) c.path = v;
        else if (!strcmp(a, "--concurrency")) c.conc = atoi(v);
        else if (!strcmp(a, "--requests")) c.reqs = atoi(v);
        else if (!strcmp(a, "--max-tokens")) c.max_tokens = atoi(v);
        else if (!strcmp(a, "--stream")) c.stream = atoi(v);
        else if (!strcmp(a, "--label")) label = v;
        else {
            fprintf(stderr, "serve_bench: unknown option %s\n", a);
            return 2;
        }
    }
    if (!c.url || !c.key || !c.model || c.conc < 1 || c.reqs < 1) {
        fprintf(stderr, "usage: serve_bench --url URL --key KEY --model NAME [--concurrency C --requests R "
                        "--max-tokens N --stream 0|1]\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    worker *ws = calloc((size_t)c.conc, sizeof *ws);
    pthread_t *th = calloc((size_t)c.conc, sizeof *th);
    size_t total = (size_t)c.conc * (size_t)c.reqs;
    double *ttft = calloc(total, sizeof(double)), *lat = calloc(total, sizeof(double)),
           *added = calloc(total, sizeof(double)), *added_srv = calloc(total, sizeof(double)),
           *ledger = calloc(total, sizeof(double));
    double t0 = now_s();
    for (int i = 0; i < c.conc; i++) {
        size_t o = (size_t)i * (size_t)c.reqs;
        ws[i] = (worker){&c, i, ttft + o, lat + o, added + o, added_srv + o, ledger + o, 0, 0};
        pthread_create(&th[i], NULL, run_worker, &ws[i]);
    }
    long tokens = 0;
    int errors = 0;
    for (int i = 0; i < c.conc; i++) {
        pthread_join(th[i], NULL);
        tokens += ws[i].tokens;
        errors += ws[i].errors;
    }
    double dt = now_s() - t0;
    char f[10][32];
    double vals[10] = {pct(ttft, total, 0.5) * 1e3,      pct(ttft, total, 0.99) * 1e3,
                       pct(lat, total, 0.5) * 1e3,       pct(lat, total, 0.99) * 1e3,
                       pct(added, total, 0.5) * 1e3,     pct(added, total, 0.99) * 1e3,
                       pct(added_srv, total, 0.5) * 1e3, pct(added_srv, total, 0.99) * 1e3,
                       pct(ledger, total, 0.5) * 1e3,    pct(ledger, total, 0.99) * 1e3};
    for (int i = 0; i < 10; i++) {
        if (isfinite(vals[i])) snprintf(f[i], sizeof f[i], "%.3f", vals[i]);
        else snprintf(f[i], sizeof f[i], "null");
    }
    printf("{\"label\":\"%s\",\"concurrency\":%d,\"requests\":%zu,\"errors\":%d,\"stream\":%d,\"max_tokens\":%d,"
           "\"seconds\":%.3f,\"completion_tokens\":%ld,\"tokens_per_s\":%.1f,\"requests_per_s\":%.1f,"
           "\"ttft_p50_ms\":%s,\"ttft_p99_ms\":%s,\"latency_p50_ms\":%s,\"latency_p99_ms\":%s,"
           "\"added_p50_ms\":%s,\"added_p99_ms\":%s,\"added_server_p50_ms\":%s,\"added_server_p99_ms\":%s,"
           "\"ledger_p50_ms\":%s,\"ledger_p99_ms\":%s}\n",
           label, c.conc, total, errors, c.stream, c.max_tokens, dt, tokens, (double)tokens / dt, (double)total / dt,
           f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9]);
    free(ws);
    free(th);
    free(ttft);
    free(lat);
    free(added);
    free(added_srv);
    free(ledger);
    curl_global_cleanup();
    return errors ? 1 : 0;
}
