/*
 * metrics.c — counters and histograms for GET /metrics in Prometheus' text format
 * (version 0.0.4): requests by endpoint and status, tokens in and out, request latency and
 * time-to-first-token histograms, decoder batch sizes, and gauges the caller passes in
 * (queue depth, active sequences, ledger commits). Not a general metrics library.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "serve_internal.h"

static const double lat_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define N_LAT (sizeof lat_bounds / sizeof lat_bounds[0])
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
#define N_BATCH (sizeof batch_bounds / sizeof batch_bounds[0])

typedef struct {
    uint64_t counts[16]; /* per bucket (not cumulative), last = +Inf */
    double sum;
    uint64_t n;
} histo;

static void histo_add(histo *h, const double *bounds, size_t nb, double v) {
    size_t i = 0;
    while (i < nb && v > bounds[i]) i++;
    h->counts[i]++;
    h->sum += v;
    h->n++;
}

#define MAX_SERIES 64
typedef struct {
    char endpoint[40];
    int status;
    uint64_t count;
} req_series;

#define MAX_CODES 16
typedef struct {
    char code[32];
    uint64_t count;
} code_series;

struct serve_metrics {
    pthread_mutex_t mu;
    req_series req[MAX_SERIES];
    size_t n_req;
    code_series refusals[MAX_CODES]; /* 401/403/429 by error code */
    size_t n_refusals;
    uint64_t prompt_tokens, completion_tokens;
    histo latency, ttft, batch_rows, batch_seqs;
    uint64_t steps;
};

int serve_metrics_new(serve_metrics **out) {
    serve_metrics *m = rt_calloc(1, sizeof *m, "metrics");
    if (!m) return -1;
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return 0;
}

void serve_metrics_free(serve_metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void serve_metrics_request(serve_metrics *m, const char *endpoint, int status, double latency_s, double ttft_s,
                           int64_t prompt_tokens, int64_t completion_tokens) {
    pthread_mutex_lock(&m->mu);
    size_t i = 0;
    while (i < m->n_req && !(m->req[i].status == status && !strcmp(m->req[i].endpoint, endpoint))) i++;
    if (i == m->n_req && m->n_req < MAX_SERIES) {
        snprintf(m->req[i].endpoint, sizeof m->req[i].endpoint, "%s", endpoint);
        m->req[i].status = status;
        m->n_req++;
    }
    if (i < m->n_req) m->req[i].count++;
    if (prompt_tokens > 0) m->prompt_tokens += (uint64_t)prompt_tokens;
    if (completion_tokens > 0) m->completion_tokens += (uint64_t)completion_tokens;
    histo_add(&m->latency, lat_bounds, N_LAT, latency_s);
    if (ttft_s >= 0) histo_add(&m->ttft, lat_bounds, N_LAT, ttft_s);
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_refusal(serve_metrics *m, const char *code) {
    pthread_mutex_lock(&m->mu);
    size_t i = 0;
    while (i < m->n_refusals && strcmp(m->refusals[i].code, code)) i++;
    if (i == m->n_refusals && m->n_refusals < MAX_CODES) {
        snprintf(m->refusals[i].code, sizeof m->refusals[i].code, "%s", code);
        m->n_refusals++;
    }
    if (i < m->n_refusals) m->refusals[i].count++;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_batch(serve_metrics *m, size_t rows, size_t seqs) {
    pthread_mutex_lock(&m->mu);
    histo_add(&m->batch_rows, batch_bounds, N_BATCH, (double)rows);
    histo_add(&m->batch_seqs, batch_bounds, N_BATCH, (double)seqs);
    m->steps++;
    pthread_mutex_unlock(&m->mu);
}

static int render_histo(rt_buf *o, const char *name, const char *help, const histo *h, const double *bounds,
                        size_t nb) {
    if (rt_buf_printf(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)) return -1;
    uint64_t cum = 0;
    for (size_t i = 0; i < nb; i++) {
        cum += h->counts[i];
        if (rt_buf_printf(o, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum)) return -1;
    }
    cum += h->counts[nb];
    return rt_buf_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
                         (unsigned long long)cum, name, h->sum, name, (unsigned long long)h->n);
}

int serve_metrics_render(serve_metrics *m, rt_buf *o, size_t queue_depth, size_t active_seqs,
                         uint64_t ledger_commits, uint64_t ledger_rows) {
    pthread_mutex_lock(&m->mu);
    int rc = -1;
    if (rt_buf_printf(o, "# HELP retort_requests_total API requests answered, by endpoint and HTTP status.\n"
                         "# TYPE retort_requests_total counter\n"))
        goto out;
    for (size_t i = 0; i < m->n_req; i++)
        if (rt_buf_printf(o, "retort_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n", m->req[i].endpoint,
                          m->req[i].status, (unsigned long long)m->req[i].count))
            goto out;
    if (rt_buf_printf(o, "# HELP retort_refusals_total Requests refused (401, 403, 429), by error code: the guard's "
                         "blocks (request_blocked), suspended accounts, limits, missing or bad keys.\n"
                         "# TYPE retort_refusals_total counter\n"))
        goto out;
    for (size_t i = 0; i < m->n_refusals; i++)
        if (rt_buf_printf(o, "retort_refusals_total{code=\"%s\"} %llu\n", m->refusals[i].code,
                          (unsigned long long)m->refusals[i].count))
            goto out;
    if (rt_buf_printf(o,
                      "# HELP retort_prompt_tokens_total Prompt tokens of answered requests.\n"
                      "# TYPE retort_prompt_tokens_total counter\nretort_prompt_tokens_total %llu\n"
                      "# HELP retort_completion_tokens_total Generated tokens.\n"
                      "# TYPE retort_completion_tokens_total counter\nretort_completion_tokens_total %llu\n",
                      (unsigned long long)m->prompt_tokens, (unsigned long long)m->completion_tokens))
        goto out;
    if (render_histo(o, "retort_request_duration_seconds", "Arrival to last byte handed to HTTP, /v1 requests.",
                     &m->latency, lat_bounds, N_LAT) ||
        render_histo(o, "retort_time_to_first_token_seconds", "Arrival to first generated token.", &m->ttft,
                     lat_bounds, N_LAT) ||
        render_histo(o, "retort_batch_rows", "Token rows per decoder pass (decode + prefill).", &m->batch_rows,
                     batch_bounds, N_BATCH) ||
        render_histo(o, "retort_batch_sequences", "Sequences per decoder pass.", &m->batch_seqs, batch_bounds,
                     N_BATCH))
        goto out;
    if (rt_buf_printf(o,
                      "# HELP retort_decode_steps_total Decoder passes.\n"
                      "# TYPE retort_decode_steps_total counter\nretort_decode_steps_total %llu\n"
                      "# HELP retort_queue_depth Requests waiting for a slot.\n"
                      "# TYPE retort_queue_depth gauge\nretort_queue_depth %zu\n"
                      "# HELP retort_active_sequences Sequences in the engine's slots.\n"
                      "# TYPE retort_active_sequences gauge\nretort_active_sequences %zu\n"
                      "# HELP retort_ledger_commits_total Ledger transactions committed.\n"
                      "# TYPE retort_ledger_commits_total counter\nretort_ledger_commits_total %llu\n"
                      "# HELP retort_ledger_rows_total Ledger rows committed.\n"
                      "# TYPE retort_ledger_rows_total counter\nretort_ledger_rows_total %llu\n",
                      (unsigned long long)m->steps, queue_depth, active_seqs, (unsigned long long)ledger_commits,
                      (unsigned long long)ledger_rows))
        goto out;
    rc = 0;
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}
