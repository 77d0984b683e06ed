/*
 * gw_ledger.c — the usage ledger writer: one thread with its own SQLite connection takes
 * every row queued since its last commit and inserts them in ONE transaction (group
 * commit), then wakes the submitters. A submitter returns only after its row committed,
 * so the server answers 200 only for requests that are on the ledger.
 * Checkpoints: a second thread with its own connection runs a PASSIVE checkpoint (copying
 * the WAL into the database, with fsyncs) every 250 ms, so commits rarely wait for one. Under
 * sustained load a passive checkpoint never catches up with the writer, and the WAL only
 * restarts from its beginning once it was copied entirely; so when a commit leaves more than
 * GW_WAL_MAX_FRAMES frames in the WAL, the writer itself runs a TRUNCATE checkpoint (readers
 * get 100 ms to finish; a passive pass in progress is interrupted, since commits would go on
 * growing the WAL behind it) and the WAL file starts again from zero. Commits wait for that
 * one; the WAL stays bounded by about GW_WAL_MAX_FRAMES pages.
 * On PostgreSQL the same writer and group commit run on a libpq connection; there is no WAL
 * to bound (the server checkpoints), so the checkpointer thread is not started, and row ids
 * come back by RETURNING id.
 * Not a reader: summaries are in gw_db.c.
 */
#include "gateway.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GW_WAL_MAX_FRAMES 4096 /* ~16 MB of 4 KiB pages */

typedef struct ledger_item {
    gw_ledger_row row;
    uint64_t ticket;
    int64_t row_id;
    int failed;
    char fail_msg[200];
    struct ledger_item *next;
} ledger_item;

struct gw_ledger {
    gw_conn *conn;
    sqlite3 *lite;          /* conn's SQLite handle (NULL on PostgreSQL) */
    char *path;
    gw_stmt *ins;
    size_t max_batch;
    pthread_t thread;
    int thread_started;
    sqlite3 *ck_conn;       /* the checkpointer's connection */
    pthread_t ck_thread;
    int ck_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_work; /* writer waits for rows */
    pthread_cond_t cv_done; /* submitters wait for their ticket */
    pthread_cond_t cv_ck;   /* the checkpointer sleeps here */
    ledger_item *head, *tail;
    uint64_t next_ticket;   /* last ticket handed out */
    uint64_t done_ticket;   /* every ticket <= this has been processed */
    int stop;
    uint64_t commits, rows;
    _Atomic int wal_frames; /* frames in the WAL after the writer's last commit (wal hook) */
    double t_truncate_try;  /* last TRUNCATE attempt that found the WAL busy */
};

static const char *const insert_sql =
    "INSERT INTO usage(request_id, t, account_id, key_id, endpoint, model, status, error, prompt_tokens, "
    "completion_tokens, temperature, top_p, max_tokens, logprobs, top_logprobs, n, stream, seed, latency_ms, "
    "ttft_ms, prompt_hash, output_hash, finish_reason, client) "
    "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24) RETURNING id";

static int insert_row(gw_ledger *l, const gw_ledger_row *r, int64_t *id) {
    gw_stmt *st = l->ins;
    gw_reset(st);
    gw_clear_bindings(st);
    gw_bind_text(st, 1, r->request_id);
    gw_bind_double(st, 2, r->t);
    if (r->account_id > 0) gw_bind_int64(st, 3, r->account_id);
    else gw_bind_null(st, 3);
    gw_bind_text(st, 4, r->key_id);
    gw_bind_text(st, 5, r->endpoint);
    gw_bind_text(st, 6, r->model);
    gw_bind_int(st, 7, r->status);
    gw_bind_text(st, 8, r->error);
    gw_bind_int64(st, 9, r->prompt_tokens);
    gw_bind_int64(st, 10, r->completion_tokens);
    gw_bind_double(st, 11, r->temperature);
    gw_bind_double(st, 12, r->top_p);
    gw_bind_int64(st, 13, r->max_tokens);
    gw_bind_int(st, 14, r->logprobs);
    gw_bind_int(st, 15, r->top_logprobs);
    gw_bind_int(st, 16, r->n);
    gw_bind_int(st, 17, r->stream);
    if (r->has_seed) gw_bind_int64(st, 18, (int64_t)r->seed);
    else gw_bind_null(st, 18);
    gw_bind_double(st, 19, r->latency_ms);
    if (r->ttft_ms >= 0) gw_bind_double(st, 20, r->ttft_ms);
    else gw_bind_null(st, 20);
    gw_bind_text(st, 21, r->prompt_hash);
    gw_bind_text(st, 22, r->output_hash);
    gw_bind_text(st, 23, r->finish_reason);
    gw_bind_text(st, 24, r->client);
    if (gw_step(st) != GW_ROW) return -1;
    *id = gw_column_int64(st, 0);
    return gw_step(st) == GW_DONE ? 0 : -1;
}

/* sqlite3_wal_hook on the writer's connection: the WAL's size after each commit. */
static int wal_hook(void *ud, sqlite3 *conn, const char *name, int frames) {
    (void)conn;
    (void)name;
    atomic_store(&((gw_ledger *)ud)->wal_frames, frames);
    return SQLITE_OK;
}

/* After a commit (writer thread, no transaction open): restart the WAL when it grew too long. */
static void bound_wal(gw_ledger *l) {
    if (atomic_load(&l->wal_frames) <= GW_WAL_MAX_FRAMES) return;
    double now = rt_now();
    if (now - l->t_truncate_try < 0.1) return; /* readers held it a moment ago: not on every commit */
    sqlite3_busy_timeout(l->lite, 100);
    int log = 0, done = 0, rc = SQLITE_BUSY;
    for (int attempt = 0; attempt < 50; attempt++) {
        double t0 = rt_now();
        rc = sqlite3_wal_checkpoint_v2(l->lite, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
        if (rc != SQLITE_BUSY || rt_now() - t0 > 0.05) break; /* done, or readers held it */
        /* refused at once: the checkpointer's passive pass holds the checkpoint lock, and while
         * it copies, commits go on growing the WAL. Stop it; ours blocks commits until done. */
        sqlite3_interrupt(l->ck_conn);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    sqlite3_busy_timeout(l->lite, 5000);
    if (rc == SQLITE_OK) atomic_store(&l->wal_frames, 0);
    else l->t_truncate_try = now; /* readers: back off */
}

static void *writer_main(void *arg) {
    gw_ledger *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->head && !l->stop) pthread_cond_wait(&l->cv_work, &l->mu);
        if (!l->head && l->stop) break;
        /* take up to max_batch rows */
        ledger_item *batch = l->head, *last = l->head;
        size_t k = 1;
        while (last->next && k < l->max_batch) {
            last = last->next;
            k++;
        }
        l->head = last->next;
        if (!l->head) l->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&l->mu);

        int ok = gw_sql_begin(l->conn, "starting a ledger commit") == 0;
        for (ledger_item *it = batch; ok && it; it = it->next) ok = insert_row(l, &it->row, &it->row_id) == 0;
        if (ok) ok = gw_sql_commit(l->conn, "committing ledger rows") == 0;
        char msg[200] = "";
        if (!ok) {
            snprintf(msg, sizeof msg, "%s", rt_errmsg());
            gw_sql_rollback(l->conn);
        }

        pthread_mutex_lock(&l->mu);
        uint64_t final = last->ticket;
        if (!ok) {
            for (ledger_item *it = batch; it; it = it->next) {
                it->failed = 1;
                snprintf(it->fail_msg, sizeof it->fail_msg, "%s", msg);
            }
            rt_warn("ledger: a commit of %zu rows failed: %s", k, msg);
        } else {
            l->commits++;
            l->rows += k;
        }
        pthread_mutex_unlock(&l->mu);
        if (ok && l->lite) bound_wal(l);
        pthread_mutex_lock(&l->mu);
        /* hand back row ids: items are owned by their submitters, who wait for done_ticket */
        l->done_ticket = final;
        pthread_cond_broadcast(&l->cv_done);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* PASSIVE checkpoints every 250 ms: never blocks the writer, copies the WAL while it is short. */
static void *checkpoint_main(void *arg) {
    gw_ledger *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&l->cv_ck, &l->mu, &ts);
        if (l->stop) break;
        if (atomic_load(&l->wal_frames) > GW_WAL_MAX_FRAMES / 2) continue; /* the writer restarts it soon */
        pthread_mutex_unlock(&l->mu);
        int log_frames = 0, done = 0;
        sqlite3_wal_checkpoint_v2(l->ck_conn, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &done);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int gw_ledger_open(gw_ledger **out, const char *path, size_t max_batch) {
    *out = NULL;
    gw_ledger *l = rt_calloc(1, sizeof *l, "ledger");
    if (!l) return -1;
    l->max_batch = max_batch ? max_batch : 256;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv_work, NULL);
    pthread_cond_init(&l->cv_done, NULL);
    pthread_cond_init(&l->cv_ck, NULL);
    l->path = rt_strdup(path);
    if (!l->path) goto fail;
    if (gw_conn_open(&l->conn, path, 0)) goto fail;
    l->lite = gw_conn_sqlite(l->conn);
    if ((l->lite && gw_sql_exec(l->conn, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", "opening the ledger")) ||
        gw_sql_prepare(l->conn, insert_sql, &l->ins,
                       "preparing the ledger (open it with gw_db_open first to create the tables)"))
        goto fail;
    if (l->lite) {
        sqlite3_wal_autocheckpoint(l->lite, 0); /* the checkpointer thread and bound_wal do it */
        sqlite3_wal_hook(l->lite, wal_hook, l);
        if (sqlite3_open_v2(path, &l->ck_conn, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
            RT_FAIL("%s: cannot open the ledger: %s", path, l->ck_conn ? sqlite3_errmsg(l->ck_conn) : "out of memory");
            goto fail;
        }
        sqlite3_busy_timeout(l->ck_conn, 100);
        /* A connection only opens the WAL when it first reads: until then a checkpoint on it
         * returns SQLITE_OK and does nothing. */
        if (sqlite3_exec(l->ck_conn, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) != SQLITE_OK) {
            RT_FAIL("%s: cannot read the ledger: %s", path, sqlite3_errmsg(l->ck_conn));
            goto fail;
        }
    }
    if (pthread_create(&l->thread, NULL, writer_main, l) != 0) {
        RT_FAIL("cannot start the ledger writer thread");
        goto fail;
    }
    l->thread_started = 1;
    if (l->lite && pthread_create(&l->ck_thread, NULL, checkpoint_main, l) != 0) {
        RT_FAIL("cannot start the ledger checkpoint thread");
        goto fail;
    }
    l->ck_started = l->lite != NULL;
    *out = l;
    return 0;
fail:
    gw_ledger_close(l);
    return -1;
}

int gw_ledger_commit(gw_ledger *l, const gw_ledger_row *row, int64_t *row_id) {
    ledger_item item;
    memset(&item, 0, sizeof item);
    item.row = *row;
    pthread_mutex_lock(&l->mu);
    if (l->stop) {
        pthread_mutex_unlock(&l->mu);
        return RT_FAIL("ledger: closed");
    }
    item.ticket = ++l->next_ticket;
    if (l->tail) l->tail->next = &item;
    else l->head = &item;
    l->tail = &item;
    pthread_cond_signal(&l->cv_work);
    while (l->done_ticket < item.ticket) pthread_cond_wait(&l->cv_done, &l->mu);
    pthread_mutex_unlock(&l->mu);
    if (item.failed) return RT_FAIL("the ledger commit failed: %s", item.fail_msg);
    if (row_id) *row_id = item.row_id;
    return 0;
}

void gw_ledger_stats(gw_ledger *l, uint64_t *commits, uint64_t *rows) {
    pthread_mutex_lock(&l->mu);
    *commits = l->commits;
    *rows = l->rows;
    pthread_mutex_unlock(&l->mu);
}

void gw_ledger_close(gw_ledger *l) {
    if (!l) return;
    if (l->thread_started) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->cv_work);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
    }
    if (l->ck_started) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->cv_ck);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->ck_thread, NULL);
    }
    if (l->ck_conn) {
        sqlite3_wal_checkpoint_v2(l->ck_conn, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        sqlite3_close(l->ck_conn);
    }
    gw_finalize(l->ins);
    gw_conn_close(l->conn);
    pthread_cond_destroy(&l->cv_work);
    pthread_cond_destroy(&l->cv_done);
    pthread_cond_destroy(&l->cv_ck);
    pthread_mutex_destroy(&l->mu);
    free(l->path);
    free(l);
}
