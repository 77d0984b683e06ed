/*
 * gw_limits.c — per-account token buckets (requests per minute, tokens per minute) and the
 * daily token quota, on a caller-supplied clock so simulated time works.
 *
 * A bucket of size S refills at S/60 per second and starts full. A request takes 1 from the
 * rpm bucket and reserves prompt + max_tokens*n from the tpm bucket (capped at its size, so
 * a long request is not refused forever) and from the day's quota; settle() gives back what
 * was not used. Time that runs backwards (concurrent clients of a simulator) refills nothing.
 *
 * Two homes for the buckets, one decision (decide() below):
 *   - memory (gw_limiter_new on SQLite, one process): a restart starts them full; the day's
 *     total is re-read from the ledger the first time an account is seen on a day;
 *   - the database (gw_limiter_new on PostgreSQL, or gw_limiter_new_shared): one row per
 *     account in gw_limit_state, on the limiter's own connections (a pool of LIM_POOL, so
 *     verdicts for different accounts run at once). A verdict (and a settle) is
 *     ONE statement, an UPDATE ... RETURNING whose SET expressions refill the buckets from the
 *     row itself, decide, and take (one round trip: the row lock is held only for it). Under
 *     PostgreSQL's read committed, a second replica's UPDATE of the same row waits for the
 *     lock and then re-evaluates its SET expressions on the row as the first one left it, so
 *     replicas share every bucket exactly. The statement writes last_ok; the verdict's
 *     details (message, retry-after, remaining) come from decide() on the returned state with
 *     the take given back, so the arithmetic of a refusal is written once, here.
 *     The first verdict for an account (no row yet) and the first on a new day with a daily
 *     quota (the day's total is re-read from the ledger) take the old path: one transaction
 *     that locks the row (INSERT ... ON CONFLICT DO UPDATE ... RETURNING), decides and writes.
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
#define LIM_POOL 4 /* shared mode: connections per limiter (verdicts for several accounts at once) */

typedef struct {
    pthread_mutex_t mu;
    gw_conn *conn;                 /* opened on first use (the first at gw_limiter_new) */
    gw_stmt *st_admit, *st_settle; /* the one-statement verdict and settle (kept prepared) */
} lim_conn;

struct gw_limiter {
    pthread_mutex_t mu; /* memory mode: the table */
    gw_db *db;
    lim_state *table[LIM_BUCKETS];
    int shared;                    /* the buckets live in the database, behind pool[] */
    lim_conn pool[LIM_POOL];
    unsigned next_slot;
    int transactions_only;         /* gw_limiter_use_transactions */
};

static int limiter_new(gw_limiter **out, gw_db *db, int shared) {
    *out = NULL;
    gw_limiter *l = rt_calloc(1, sizeof *l, "rate limiter");
    if (!l) return -1;
    pthread_mutex_init(&l->mu, NULL);
    for (int i = 0; i < LIM_POOL; i++) pthread_mutex_init(&l->pool[i].mu, NULL);
    l->db = db;
    l->shared = shared;
    if (shared && gw_conn_open(&l->pool[0].conn, gw_db_path(db), 0)) { /* a bad URL fails here */
        gw_limiter_free(l);
        return -1;
    }
    *out = l;
    return 0;
}

int gw_limiter_new(gw_limiter **out, gw_db *db) { return limiter_new(out, db, db && gw_db_is_pg(db)); }

int gw_limiter_new_shared(gw_limiter **out, gw_db *db) {
    if (!db) return RT_FAIL("a shared rate limiter needs the database");
    return limiter_new(out, db, 1);
}

int gw_limiter_is_shared(const gw_limiter *l) { return l->shared; }

void gw_limiter_use_transactions(gw_limiter *l, int on) { l->transactions_only = on; }

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
    for (int i = 0; i < LIM_POOL; i++) {
        gw_finalize(l->pool[i].st_admit);
        gw_finalize(l->pool[i].st_settle);
        gw_conn_close(l->pool[i].conn);
        pthread_mutex_destroy(&l->pool[i].mu);
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
static int sync_day(gw_limiter *l, gw_conn *conn, lim_state *s, double now) {
    int64_t day = (int64_t)floor(now / 86400.0);
    if (day <= s->day) return 0; /* same day, or time ran backwards: keep counting */
    int64_t used = 0;
    double t0 = (double)day * 86400.0, t1 = (double)(day + 1) * 86400.0;
    if (conn ? gw_usage_tokens_read(conn, s->account_id, t0, t1, &used)
                : l->db && gw_usage_tokens(l->db, s->account_id, t0, t1, &used))
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

/* The verdict on one state (wherever it lives): takes from it when admitted. */
static void decide(lim_state *s, const gw_limits *lim, double now, int64_t reserve_tokens, gw_limit_verdict *v) {
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
}

static void settle_state(lim_state *s, const gw_limits *lim, double now, int64_t reserved_tokens, int64_t used_tokens) {
    if (lim->tpm > 0) {
        double res = (double)gw_limiter_tpm_reserved(lim, reserved_tokens);
        refill(&s->tok_level, &s->t_tok, (double)lim->tpm, now);
        /* give back the unused reservation; charge overrun (a bucket may go negative) */
        s->tok_level = fmin((double)lim->tpm, s->tok_level + res - (double)used_tokens);
    }
    if (lim->daily_tokens > 0) s->day_used += used_tokens - reserved_tokens;
}

/* ---------------------------------------------------------------- shared mode: the database */

/* Lock and read the account's row (created full when absent). In a transaction. */
static int row_load(gw_conn *c, int64_t id, double now, lim_state *s) {
    gw_stmt *st = NULL;
    if (gw_sql_prepare(c,
                       "INSERT INTO gw_limit_state(account_id, t_req, t_tok) VALUES(?1, ?2, ?2) "
                       "ON CONFLICT(account_id) DO UPDATE SET account_id = excluded.account_id "
                       "RETURNING t_req, req_level, t_tok, tok_level, day, day_used",
                       &st, "reading the rate limiter's buckets"))
        return -1;
    gw_bind_int64(st, 1, id);
    gw_bind_double(st, 2, now);
    int rc = gw_step(st) == GW_ROW ? 0 : -1;
    if (!rc) {
        memset(s, 0, sizeof *s);
        s->account_id = id;
        s->t_req = gw_column_double(st, 0);
        s->req_level = gw_column_is_null(st, 1) ? INFINITY : gw_column_double(st, 1);
        s->t_tok = gw_column_double(st, 2);
        s->tok_level = gw_column_is_null(st, 3) ? INFINITY : gw_column_double(st, 3);
        s->day = gw_column_is_null(st, 4) ? INT64_MIN : gw_column_int64(st, 4);
        s->day_used = gw_column_int64(st, 5);
    }
    gw_finalize(st);
    return rc;
}

static int bind_level(gw_stmt *st, int i, double v) { return isfinite(v) ? gw_bind_double(st, i, v) : gw_bind_null(st, i); }

static int row_store(gw_conn *c, const lim_state *s) {
    gw_stmt *st = NULL;
    if (gw_sql_prepare(c,
                       "UPDATE gw_limit_state SET t_req = ?2, req_level = ?3, t_tok = ?4, tok_level = ?5, day = ?6, "
                       "day_used = ?7 WHERE account_id = ?1",
                       &st, "writing the rate limiter's buckets"))
        return -1;
    gw_bind_int64(st, 1, s->account_id);
    gw_bind_double(st, 2, s->t_req);
    bind_level(st, 3, s->req_level);
    gw_bind_double(st, 4, s->t_tok);
    bind_level(st, 5, s->tok_level);
    if (s->day == INT64_MIN) gw_bind_null(st, 6);
    else gw_bind_int64(st, 6, s->day);
    gw_bind_int64(st, 7, s->day_used);
    int rc = gw_sql_step_done(c, st, "writing the rate limiter's buckets");
    gw_finalize(st);
    return rc;
}

/* One transaction: lock the row, decide (admit) or settle, write it back. Retried when
 * PostgreSQL reports a deadlock or serialization failure (kind BUSY). */
static int shared_apply(gw_limiter *l, gw_conn *conn, int64_t id, const gw_limits *lim, double now, int64_t a, int64_t b,
                        gw_limit_verdict *v) {
    int rc = -1;
    for (int attempt = 0; attempt < 5; attempt++) {
        lim_state s;
        gw_limit_verdict keep = v ? *v : (gw_limit_verdict){0};
        if (gw_sql_begin(conn, "starting a rate limiter transaction")) break;
        if (row_load(conn, id, now, &s) || (lim->daily_tokens > 0 && sync_day(l, conn, &s, now))) goto undo;
        if (v) decide(&s, lim, now, a, v);
        else settle_state(&s, lim, now, a, b);
        if (row_store(conn, &s) || gw_sql_commit(conn, "committing the rate limiter's buckets")) goto undo;
        return 0;
    undo:
        gw_sql_rollback(conn);
        if (v) *v = keep;
        if (rt_errkind() != RT_ERR_BUSY) break;
    }
    return rc;
}

/* The one-statement forms. ?2 is the clock; S the bucket's size, lv and t its columns. The
 * expressions are refill() written in SQL: clamp to the size (NULL = full), then, if the
 * clock moved on, add (now - t) * size / 60 and clamp again. */
#define LIM_BASE(lv, S) "(CASE WHEN " lv " IS NULL OR " lv " > " S " THEN " S " ELSE " lv " END)"
#define LIM_FILL(lv, t, S) "(CASE WHEN ?2 > " t " THEN " LIM_BASE(lv, S) " + (?2 - " t ") * " S " / 60.0 ELSE " LIM_BASE(lv, S) " END)"
#define LIM_LEVEL(lv, t, S) "(CASE WHEN " LIM_FILL(lv, t, S) " > " S " THEN " S " ELSE " LIM_FILL(lv, t, S) " END)"
#define LIM_T(t, S) "CASE WHEN " S " > 0 AND ?2 > " t " THEN ?2 ELSE " t " END"
/* a row whose day is behind the clock's (daily quota set) is not touched: the caller re-reads the day */
#define LIM_CURRENT(D, day) " WHERE account_id = ?1 AND NOT (" D " > 0 AND (day IS NULL OR day < " day "))"

/* admit: ?1 account, ?2 now, ?3 rpm, ?4 tpm, ?5 tokens reserved in the tpm bucket, ?6 daily
 * quota, ?7 tokens reserved in the day's quota, ?8 today (floor(now / 86400)) */
#define LIM_OK "((?3 <= 0 OR " LIM_LEVEL("req_level", "t_req", "?3") " >= 1) AND (?4 <= 0 OR " \
    LIM_LEVEL("tok_level", "t_tok", "?4") " >= ?5) AND (?6 <= 0 OR day_used + ?7 <= ?6))"
static const char *const LIM_ADMIT_SQL =
    "UPDATE gw_limit_state SET t_req = " LIM_T("t_req", "?3") ", "
    "req_level = CASE WHEN ?3 > 0 THEN " LIM_LEVEL("req_level", "t_req", "?3") " - CASE WHEN " LIM_OK " THEN 1 ELSE 0 END ELSE req_level END, "
    "t_tok = " LIM_T("t_tok", "?4") ", "
    "tok_level = CASE WHEN ?4 > 0 THEN " LIM_LEVEL("tok_level", "t_tok", "?4") " - CASE WHEN " LIM_OK " THEN ?5 ELSE 0 END ELSE tok_level END, "
    "day_used = CASE WHEN ?6 > 0 AND " LIM_OK " THEN day_used + ?7 ELSE day_used END, "
    "last_ok = CASE WHEN " LIM_OK " THEN 1 ELSE 0 END"
    LIM_CURRENT("?6", "?8")
    " RETURNING t_req, req_level, t_tok, tok_level, day, day_used, last_ok";

/* settle: ?1 account, ?2 now, ?3 tpm, ?4 tokens reserved in the tpm bucket, ?5 tokens used,
 * ?6 daily quota, ?7 used - reserved (all of it, for the day), ?8 today */
#define LIM_BACK "(" LIM_LEVEL("tok_level", "t_tok", "?3") " + ?4 - ?5)"
static const char *const LIM_SETTLE_SQL =
    "UPDATE gw_limit_state SET t_tok = " LIM_T("t_tok", "?3") ", "
    "tok_level = CASE WHEN ?3 > 0 THEN (CASE WHEN " LIM_BACK " > ?3 THEN ?3 ELSE " LIM_BACK " END) ELSE tok_level END, "
    "day_used = CASE WHEN ?6 > 0 THEN day_used + ?7 ELSE day_used END"
    LIM_CURRENT("?6", "?8")
    " RETURNING account_id";

static int64_t today_of(double now) { return (int64_t)floor(now / 86400.0); }

/* The kept statement (prepared on its first use), reset for another run. */
static gw_stmt *kept(lim_conn *c, gw_stmt **st, const char *sql, const char *what) {
    if (!*st && gw_sql_prepare(c->conn, sql, st, what)) {
        *st = NULL;
        return NULL;
    }
    gw_reset(*st);
    return *st;
}

/* One statement. 1 = decided (v filled), 0 = no current row (the caller takes the
 * transaction), -1 = error. */
static int shared_admit_fast(lim_conn *c, int64_t id, const gw_limits *lim, double now, int64_t reserve,
                             gw_limit_verdict *v) {
    gw_stmt *st = kept(c, &c->st_admit, LIM_ADMIT_SQL, "deciding on the rate limits");
    if (!st) return -1;
    double need_tok = (double)gw_limiter_tpm_reserved(lim, reserve);
    gw_bind_int64(st, 1, id);
    gw_bind_double(st, 2, now);
    gw_bind_double(st, 3, (double)(lim->rpm > 0 ? lim->rpm : 0));
    gw_bind_double(st, 4, (double)(lim->tpm > 0 ? lim->tpm : 0));
    gw_bind_double(st, 5, need_tok);
    gw_bind_int64(st, 6, lim->daily_tokens > 0 ? lim->daily_tokens : 0);
    gw_bind_int64(st, 7, reserve);
    gw_bind_int64(st, 8, today_of(now));
    int r = gw_step(st);
    if (r == GW_DONE) return 0;
    if (r != GW_ROW) return gw_sql_fail(c->conn, "deciding on the rate limits");
    lim_state s = {.account_id = id};
    s.t_req = gw_column_double(st, 0);
    s.req_level = gw_column_is_null(st, 1) ? INFINITY : gw_column_double(st, 1);
    s.t_tok = gw_column_double(st, 2);
    s.tok_level = gw_column_is_null(st, 3) ? INFINITY : gw_column_double(st, 3);
    s.day = gw_column_is_null(st, 4) ? INT64_MIN : gw_column_int64(st, 4);
    s.day_used = gw_column_int64(st, 5);
    int ok = gw_column_int(st, 6) != 0;
    while (gw_step(st) == GW_ROW) {} /* one row: the primary key */
    if (ok) { /* give the take back: decide() on the state as the statement found it, refilled */
        if (lim->rpm > 0) s.req_level += 1.0;
        if (lim->tpm > 0) s.tok_level += need_tok;
        if (lim->daily_tokens > 0) s.day_used -= reserve;
    }
    decide(&s, lim, now, reserve, v);
    if (v->ok != ok) { /* rounding at a bucket's edge: the database's decision stands */
        v->ok = ok;
        if (!ok && v->retry_after <= 0) v->retry_after = 1e-3;
        if (!ok && !v->message[0]) snprintf(v->message, sizeof v->message, "rate limit");
    }
    return 1;
}

static int shared_settle_fast(lim_conn *c, int64_t id, const gw_limits *lim, double now, int64_t reserved,
                              int64_t used) {
    gw_stmt *st = kept(c, &c->st_settle, LIM_SETTLE_SQL, "settling the rate limits");
    if (!st) return -1;
    gw_bind_int64(st, 1, id);
    gw_bind_double(st, 2, now);
    gw_bind_double(st, 3, (double)(lim->tpm > 0 ? lim->tpm : 0));
    gw_bind_double(st, 4, (double)gw_limiter_tpm_reserved(lim, reserved));
    gw_bind_double(st, 5, (double)used);
    gw_bind_int64(st, 6, lim->daily_tokens > 0 ? lim->daily_tokens : 0);
    gw_bind_int64(st, 7, used - reserved);
    gw_bind_int64(st, 8, today_of(now));
    int r = gw_step(st);
    if (r == GW_DONE) return 0;
    if (r != GW_ROW) return gw_sql_fail(c->conn, "settling the rate limits");
    while (gw_step(st) == GW_ROW) {}
    return 1;
}

/* Shared mode: a free connection of the pool (locked), or wait for one; NULL when it cannot
 * be opened. */
static lim_conn *slot_take(gw_limiter *l) {
    unsigned first = __atomic_fetch_add(&l->next_slot, 1, __ATOMIC_RELAXED) % LIM_POOL, k = 0;
    while (k < LIM_POOL && pthread_mutex_trylock(&l->pool[(first + k) % LIM_POOL].mu) != 0) k++;
    lim_conn *c = &l->pool[(first + (k < LIM_POOL ? k : 0)) % LIM_POOL];
    if (k == LIM_POOL) pthread_mutex_lock(&c->mu); /* all busy: queue on one */
    if (!c->conn && gw_conn_open(&c->conn, gw_db_path(l->db), 0)) {
        pthread_mutex_unlock(&c->mu);
        return NULL;
    }
    return c;
}

int gw_limiter_admit(gw_limiter *l, int64_t account_id, const gw_limits *lim, double now,
                     int64_t reserve_tokens, gw_limit_verdict *v) {
    memset(v, 0, sizeof *v);
    v->ok = 1;
    v->remaining_requests = v->remaining_tokens = -1;
    if (reserve_tokens < 0) reserve_tokens = 0;
    if (lim->rpm <= 0 && lim->tpm <= 0 && lim->daily_tokens <= 0) return 0;
    int rc = -1;
    if (l->shared) {
        lim_conn *c = slot_take(l);
        if (!c) return -1;
        rc = l->transactions_only ? 0 : shared_admit_fast(c, account_id, lim, now, reserve_tokens, v);
        if (rc == 0) rc = shared_apply(l, c->conn, account_id, lim, now, reserve_tokens, 0, v);
        else if (rc == 1) rc = 0;
        pthread_mutex_unlock(&c->mu);
        return rc;
    }
    pthread_mutex_lock(&l->mu);
    lim_state *s = state_for(l, account_id, now);
    if (!s) goto out;
    if (lim->daily_tokens > 0 && sync_day(l, NULL, s, now)) goto out;
    decide(s, lim, now, reserve_tokens, v);
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
    if (l->shared) {
        lim_conn *c = slot_take(l);
        int fast = !c ? -1 : l->transactions_only ? 0 : shared_settle_fast(c, account_id, lim, now, reserved_tokens, used_tokens);
        if (fast < 0 || (fast == 0 && shared_apply(l, c->conn, account_id, lim, now, reserved_tokens, used_tokens, NULL)))
            rt_warn("rate limiter: settling account %lld failed: %s", (long long)account_id, rt_errmsg());
        if (c) pthread_mutex_unlock(&c->mu);
        return;
    }
    pthread_mutex_lock(&l->mu);
    lim_state *s = state_for(l, account_id, now);
    if (s) settle_state(s, lim, now, reserved_tokens, used_tokens);
    pthread_mutex_unlock(&l->mu);
}
