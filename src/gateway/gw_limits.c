/*
 * gw_limits.c — per-account token buckets (requests per minute, tokens per minute) and the
 * daily token quota, on a caller-supplied clock so simulated time works.
 *
 * A bucket of size S refills at S/60 per second and starts full. A request takes 1 from the
 * rpm bucket and reserves prompt + max_tokens*n from the tpm bucket (capped at its size, so
 * a long request is not refused forever) and from the day's quota; settle() gives back what
 * was not used. Time that runs backwards (concurrent clients of a simulator) refills nothing.
 *
 * Not persistent: buckets live in memory (a restart starts them full); the day's total is
 * re-read from the ledger the first time an account is seen on a day.
 */
#include "gateway.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct lim_state {
    int64_t account_id;
    double t_req, req_level; /* rpm bucket: level at t_req */
    double t_tok, tok_level; /* tpm bucket */
    int64_t day;             /* floor(t / 86400) of day_used */
    int64_t day_used;        /* tokens charged (incl. reservations) on that day */
    struct lim_state *next;
} lim_state;

#define LIM_BUCKETS 1024

struct gw_limiter {
    pthread_mutex_t mu;
    gw_db *db;
    lim_state *table[LIM_BUCKETS];
};

int gw_limiter_new(gw_limiter **out, gw_db *db) {
    gw_limiter *l = rt_calloc(1, sizeof *l, "rate limiter");
    if (!l) return -1;
    pthread_mutex_init(&l->mu, NULL);
    l->db = db;
    *out = l;
    return 0;
}

void gw_limiter_free(gw_limiter *l) {
    if (!l) return;
    for (size_t i = 0; i < LIM_BUCKETS; i++) {
        lim_state *s = l->table[i];
        while (s) {
            lim_state *n = s->next;
            free(s);
            s = n;
        }
    }
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static lim_state *state_for(gw_limiter *l, int64_t id, double now) {
    size_t b = (size_t)(rt_splitmix64((uint64_t)id) % LIM_BUCKETS);
    for (lim_state *s = l->table[b]; s; s = s->next)
        if (s->account_id == id) return s;
    lim_state *s = rt_calloc(1, sizeof *s, "rate limiter state");
    if (!s) return NULL;
    s->account_id = id;
    s->t_req = s->t_tok = now;
    s->req_level = s->tok_level = INFINITY; /* clamped to the bucket size on first refill */
    s->day = INT64_MIN;
    s->next = l->table[b];
    l->table[b] = s;
    return s;
}

static void refill(double *level, double *t, double size, double now) {
    if (*level > size) *level = size; /* also handles a limit lowered while running */
    if (now > *t) {
        *level = fmin(size, *level + (now - *t) * size / 60.0);
        *t = now;
    }
}

/* the day's total from the ledger when the account is first seen on a new day */
static int sync_day(gw_limiter *l, lim_state *s, double now) {
    int64_t day = (int64_t)floor(now / 86400.0);
    if (day <= s->day) return 0; /* same day, or time ran backwards: keep counting */
    int64_t used = 0;
    if (l->db && gw_usage_tokens(l->db, s->account_id, (double)day * 86400.0, (double)(day + 1) * 86400.0, &used))
        return -1;
    s->day = day;
    s->day_used = used;
    return 0;
}

int64_t gw_limiter_tpm_reserved(const gw_limits *lim, int64_t reserve_tokens) {
    if (reserve_tokens < 0) reserve_tokens = 0;
    if (lim->tpm > 0 && reserve_tokens > lim->tpm) return lim->tpm;
    return reserve_tokens;
}

int gw_limiter_admit(gw_limiter *l, int64_t account_id, const gw_limits *lim, double now,
                     int64_t reserve_tokens, gw_limit_verdict *v) {
    memset(v, 0, sizeof *v);
    v->ok = 1;
    v->remaining_requests = v->remaining_tokens = -1;
    if (reserve_tokens < 0) reserve_tokens = 0;
    if (lim->rpm <= 0 && lim->tpm <= 0 && lim->daily_tokens <= 0) return 0;
    pthread_mutex_lock(&l->mu);
    int rc = -1;
    lim_state *s = state_for(l, account_id, now);
    if (!s) goto out;
    if (lim->daily_tokens > 0 && sync_day(l, s, now)) goto out;
    double need_req = 1.0, need_tok = (double)gw_limiter_tpm_reserved(lim, reserve_tokens);
    double wait = 0;
    if (lim->rpm > 0) {
        refill(&s->req_level, &s->t_req, (double)lim->rpm, now);
        if (s->req_level < need_req) {
            double w = (need_req - s->req_level) * 60.0 / (double)lim->rpm;
            if (w > wait) wait = w;
            snprintf(v->message, sizeof v->message, "rate limit: %lld requests per minute",
                     (long long)lim->rpm);
        }
    }
    if (lim->tpm > 0) {
        refill(&s->tok_level, &s->t_tok, (double)lim->tpm, now);
        if (s->tok_level < need_tok) {
            double w = (need_tok - s->tok_level) * 60.0 / (double)lim->tpm;
            if (w > wait) {
                wait = w;
                snprintf(v->message, sizeof v->message,
                         "rate limit: %lld tokens per minute (this request reserves %lld: prompt + max_tokens)",
                         (long long)lim->tpm, (long long)need_tok);
            }
        }
    }
    if (lim->daily_tokens > 0 && s->day_used + reserve_tokens > lim->daily_tokens) {
        double to_midnight = (double)(s->day + 1) * 86400.0 - now;
        if (to_midnight < 1) to_midnight = 1;
        wait = fmax(wait, to_midnight);
        snprintf(v->message, sizeof v->message,
                 "daily token quota: %lld of %lld used today; this request reserves %lld (prompt + max_tokens)",
                 (long long)s->day_used, (long long)lim->daily_tokens, (long long)reserve_tokens);
    }
    if (wait > 0) {
        v->ok = 0;
        v->retry_after = wait;
    } else {
        if (lim->rpm > 0) s->req_level -= need_req;
        if (lim->tpm > 0) s->tok_level -= need_tok;
        if (lim->daily_tokens > 0) s->day_used += reserve_tokens;
    }
    if (lim->rpm > 0) {
        v->remaining_requests = (int64_t)floor(fmax(0, s->req_level));
        v->reset_requests = ((double)lim->rpm - s->req_level) * 60.0 / (double)lim->rpm;
    }
    if (lim->tpm > 0) {
        v->remaining_tokens = (int64_t)floor(fmax(0, s->tok_level));
        v->reset_tokens = ((double)lim->tpm - s->tok_level) * 60.0 / (double)lim->tpm;
    }
    rc = 0;
out:
    pthread_mutex_unlock(&l->mu);
    return rc;
}

void gw_limiter_settle(gw_limiter *l, int64_t account_id, const gw_limits *lim, double now,
                       int64_t reserved_tokens, int64_t used_tokens) {
    if (lim->tpm <= 0 && lim->daily_tokens <= 0) return;
    if (reserved_tokens < 0) reserved_tokens = 0;
    if (used_tokens < 0) used_tokens = 0;
    pthread_mutex_lock(&l->mu);
    lim_state *s = state_for(l, account_id, now);
    if (s) {
        if (lim->tpm > 0) {
            double res = (double)gw_limiter_tpm_reserved(lim, reserved_tokens);
            refill(&s->tok_level, &s->t_tok, (double)lim->tpm, now);
            /* give back the unused reservation; charge overrun (a bucket may go negative) */
            s->tok_level = fmin((double)lim->tpm, s->tok_level + res - (double)used_tokens);
        }
        if (lim->daily_tokens > 0) s->day_used += used_tokens - reserved_tokens;
    }
    pthread_mutex_unlock(&l->mu);
}
