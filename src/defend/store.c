/*
 * store.c — the guard's tables in the gateway database and the commands that read them:
 * schema, event rows (write and read back for calibration and eval), the simulator's labels,
 * `retort guard status`, `retort guard explain ACCOUNT` and `retort guard release ACCOUNT`.
 *
 * Everything shown comes from stored rows (actions with their evidence JSON, the risk
 * timeline), so an explanation needs no running server. Not the live guard (runtime.c).
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "defend_internal.h"

#define GUARD_ACTIONS_TABLE                                                                          \
    "CREATE TABLE IF NOT EXISTS guard_actions("                                                      \
    "  id INTEGER PRIMARY KEY, t REAL NOT NULL, account_id INTEGER NOT NULL, group_id INTEGER,"      \
    "  action TEXT NOT NULL CHECK(action IN ('flag','throttle','verify','suspend','release')),"     \
    "  mode TEXT NOT NULL CHECK(mode IN ('enforce','shadow','operator')), code TEXT, risk REAL,"     \
    "  usage_row_id INTEGER, reason TEXT, evidence TEXT, prev_rpm INTEGER);"

const char *const guard_schema_sql =
    "CREATE TABLE IF NOT EXISTS guard_events("
    "  id INTEGER PRIMARY KEY, row_id INTEGER, t REAL NOT NULL, account_id INTEGER NOT NULL,"
    "  created_at REAL, client_hash INTEGER, status INTEGER, prompt_tokens INTEGER,"
    "  completion_tokens INTEGER, max_tokens INTEGER, max_tokens_given INTEGER, logprobs INTEGER,"
    "  top_logprobs INTEGER, concurrent INTEGER, prompt_hash INTEGER, minhash BLOB, emb BLOB,"
    "  emb_scale REAL, prefix_hash INTEGER, n_choices INTEGER, endpoint INTEGER, client_fp INTEGER);"
    "CREATE INDEX IF NOT EXISTS guard_events_account ON guard_events(account_id, id);"
    "CREATE TABLE IF NOT EXISTS guard_scores("
    "  id INTEGER PRIMARY KEY, t REAL NOT NULL, account_id INTEGER NOT NULL, group_id INTEGER,"
    "  group_size INTEGER, n REAL, risk REAL, account_risk REAL, group_risk REAL, level TEXT,"
    "  code TEXT, signals TEXT);"
    "CREATE INDEX IF NOT EXISTS guard_scores_account ON guard_scores(account_id, t);"
    GUARD_ACTIONS_TABLE
    "CREATE INDEX IF NOT EXISTS guard_actions_account ON guard_actions(account_id, id);"
    "CREATE TABLE IF NOT EXISTS guard_sim_accounts("
    "  account_id INTEGER PRIMARY KEY, name TEXT NOT NULL, persona TEXT NOT NULL,"
    "  strategy TEXT NOT NULL, attack INTEGER NOT NULL, grp TEXT NOT NULL, client TEXT,"
    "  created_at REAL, seed INTEGER);"
    "CREATE TABLE IF NOT EXISTS guard_tiers("
    "  id INTEGER PRIMARY KEY, t REAL NOT NULL, account_id INTEGER NOT NULL, tier TEXT NOT NULL,"
    "  note TEXT, set_by TEXT);"
    "CREATE INDEX IF NOT EXISTS guard_tiers_account ON guard_tiers(account_id, id);";

const char *const guard_event_insert_sql =
    "INSERT INTO guard_events(row_id, t, account_id, created_at, client_hash, status, prompt_tokens,"
    " completion_tokens, max_tokens, max_tokens_given, logprobs, top_logprobs, concurrent, prompt_hash,"
    " minhash, emb, emb_scale, prefix_hash, n_choices, endpoint, client_fp)"
    " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21)";

/* add a column to guard_events when a database from before it lacks it */
static int add_column(gw_conn *c, const char *name) {
    gw_stmt *st = NULL;
    int has = 0;
    const char *q = gw_conn_is_pg(c) ? "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                                       "AND table_name = 'guard_events' AND column_name = ?1"
                                     : "SELECT 1 FROM pragma_table_info('guard_events') WHERE name = ?1";
    if (gw_sql_prepare(c, q, &st, "reading guard_events' columns")) return -1;
    gw_bind_text(st, 1, name);
    has = gw_step(st) == GW_ROW;
    gw_finalize(st);
    if (has) return 0;
    char sql[128], what[96];
    snprintf(sql, sizeof sql, "ALTER TABLE guard_events ADD COLUMN %s INTEGER", name);
    snprintf(what, sizeof what, "adding guard_events.%s", name);
    return gw_sql_schema(c, sql, what);
}

/* guard_actions from before the verify action (its CHECK named four actions): SQLite cannot
 * change a CHECK, so the table is rebuilt with its rows; PostgreSQL swaps the constraint. */
static int actions_allow_verify(gw_conn *c) {
    gw_stmt *st = NULL;
    const char *q = gw_conn_is_pg(c) ? "SELECT 1 FROM pg_constraint WHERE conname = 'guard_actions_action_check' AND "
                                       "pg_get_constraintdef(oid) NOT LIKE '%verify%'"
                                     : "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'guard_actions' AND "
                                       "sql NOT LIKE '%''verify''%'";
    if (gw_sql_prepare(c, q, &st, "reading guard_actions' definition")) return -1;
    int old = gw_step(st) == GW_ROW;
    gw_finalize(st);
    if (!old) return 0;
    if (gw_conn_is_pg(c))
        return gw_sql_schema(c,
                             "ALTER TABLE guard_actions DROP CONSTRAINT IF EXISTS guard_actions_action_check;"
                             "ALTER TABLE guard_actions ADD CONSTRAINT guard_actions_action_check CHECK(action IN "
                             "('flag','throttle','verify','suspend','release'));",
                             "allowing the verify action in guard_actions");
    if (gw_sql_begin(c, "allowing the verify action in guard_actions")) return -1;
    if (gw_sql_schema(c,
                      "ALTER TABLE guard_actions RENAME TO guard_actions_before_verify;" GUARD_ACTIONS_TABLE
                      "INSERT INTO guard_actions SELECT * FROM guard_actions_before_verify;"
                      "DROP TABLE guard_actions_before_verify;"
                      "CREATE INDEX IF NOT EXISTS guard_actions_account ON guard_actions(account_id, id);",
                      "allowing the verify action in guard_actions") ||
        gw_sql_commit(c, "allowing the verify action in guard_actions")) {
        gw_sql_rollback(c);
        return -1;
    }
    return 0;
}

static int init_fn(gw_conn *c, void *ud) {
    (void)ud;
    if (gw_sql_schema(c, guard_schema_sql, "creating the guard tables") || actions_allow_verify(c)) return -1;
    return add_column(c, "prefix_hash") || add_column(c, "n_choices") || add_column(c, "endpoint") ||
                   add_column(c, "client_fp")
               ? -1
               : 0;
}

int guard_db_init(gw_db *db) {
    if (gw_db_with(db, init_fn, NULL)) return RT_FAIL("%s: %s", gw_db_path(db), rt_errmsg());
    return 0;
}

int guard_event_insert(gw_conn *c, gw_stmt *st, const guard_event *ev) {
    gw_reset(st);
    gw_bind_int64(st, 1, ev->row_id);
    gw_bind_double(st, 2, ev->t);
    gw_bind_int64(st, 3, ev->account_id);
    gw_bind_double(st, 4, ev->account_created_at);
    gw_bind_int64(st, 5, (int64_t)ev->client_hash);
    gw_bind_int(st, 6, ev->status);
    gw_bind_int64(st, 7, ev->prompt_tokens);
    gw_bind_int64(st, 8, ev->completion_tokens);
    gw_bind_int64(st, 9, ev->max_tokens);
    gw_bind_int(st, 10, ev->max_tokens_given);
    gw_bind_int(st, 11, ev->logprobs);
    gw_bind_int(st, 12, ev->top_logprobs);
    gw_bind_int(st, 13, ev->concurrent);
    gw_bind_int64(st, 14, (int64_t)ev->prompt_hash);
    if (ev->has_minhash) {
        uint8_t mh[GUARD_MINHASH_K * 4];
        for (size_t k = 0; k < GUARD_MINHASH_K; k++)
            for (int b = 0; b < 4; b++) mh[k * 4 + (size_t)b] = (uint8_t)(ev->minhash[k] >> (8 * b));
        gw_bind_blob(st, 15, mh, (size_t)(sizeof mh));
    } else {
        gw_bind_null(st, 15);
    }
    if (ev->emb && ev->emb_dim) gw_bind_blob(st, 16, ev->emb, (size_t)((int)ev->emb_dim));
    else gw_bind_null(st, 16);
    gw_bind_double(st, 17, ev->emb_scale);
    gw_bind_int64(st, 18, (int64_t)ev->prefix_hash);
    gw_bind_int(st, 19, ev->n_choices > 1 ? ev->n_choices : 1);
    gw_bind_int(st, 20, ev->endpoint);
    gw_bind_int64(st, 21, (int64_t)ev->client_fp);
    if (gw_step(st) != GW_DONE) return gw_sql_fail(c, "guard_events");
    return 0;
}

/* ---------------------------------------------------------------- reading events */

typedef struct {
    guard_event_list *out;
} read_ctx;

/* ---------------------------------------------------------------- guard_scores: the one writer */

const char *const guard_score_insert_sql =
    "INSERT INTO guard_scores(t, account_id, group_id, group_size, n, risk, account_risk, group_risk, level, code, "
    "signals) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)";

int guard_score_write(gw_conn *c, gw_stmt *st, const guard_score_row *r) {
    gw_reset(st);
    gw_bind_double(st, 1, r->t);
    gw_bind_int64(st, 2, r->account_id);
    gw_bind_int64(st, 3, r->group_id ? r->group_id : r->account_id);
    gw_bind_int64(st, 4, r->group_size ? (int64_t)r->group_size : 1);
    gw_bind_double(st, 5, r->n);
    gw_bind_double(st, 6, r->risk);
    gw_bind_double(st, 7, r->account_risk);
    gw_bind_double(st, 8, r->group_risk);
    gw_bind_text(st, 9, r->level ? r->level : "none");
    gw_bind_text(st, 10, r->code ? r->code : "");
    if (r->signals) gw_bind_text(st, 11, r->signals);
    else gw_bind_null(st, 11);
    return gw_sql_step_done(c, st, "guard_scores");
}

/* ---------------------------------------------------------------- guard_actions: the one writer */

int guard_action_write(gw_conn *c, const guard_action_row *r, int64_t *id_out) {
    gw_stmt *st = NULL;
    if (gw_sql_prepare(c,
                       "INSERT INTO guard_actions(t, account_id, group_id, action, mode, code, risk, usage_row_id, "
                       "reason, evidence, prev_rpm) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11) RETURNING id",
                       &st, "guard_actions"))
        return -1;
    gw_bind_double(st, 1, r->t);
    gw_bind_int64(st, 2, r->account_id);
    gw_bind_int64(st, 3, r->group_id ? r->group_id : r->account_id);
    gw_bind_text(st, 4, r->action);
    gw_bind_text(st, 5, r->mode ? r->mode : "enforce");
    gw_bind_text(st, 6, r->code ? r->code : "");
    gw_bind_double(st, 7, r->risk);
    if (r->usage_row_id > 0) gw_bind_int64(st, 8, r->usage_row_id);
    else gw_bind_null(st, 8);
    gw_bind_text(st, 9, r->reason ? r->reason : "");
    gw_bind_text(st, 10, r->evidence ? r->evidence : "{}");
    if (r->prev_rpm >= 0) gw_bind_int64(st, 11, r->prev_rpm);
    else gw_bind_null(st, 11);
    int rc = gw_step(st) == GW_ROW ? 0 : gw_sql_fail(c, "guard_actions");
    if (!rc && id_out) *id_out = gw_column_int64(st, 0);
    if (!rc) rc = gw_sql_step_done(c, st, "guard_actions");
    gw_finalize(st);
    return rc;
}

typedef struct {
    const guard_action_row *r;
    int64_t id;
} action_ins;
static int action_write_fn(gw_conn *c, void *ud) {
    action_ins *x = ud;
    return guard_action_write(c, x->r, &x->id);
}

int guard_action_write_db(gw_db *db, const guard_action_row *r, int64_t *id_out) {
    action_ins x = {r, 0};
    if (gw_db_with(db, action_write_fn, &x)) return RT_FAIL("%s: %s", gw_db_path(db), rt_errmsg());
    if (id_out) *id_out = x.id;
    return 0;
}

typedef struct {
    guard_event_list *l;
    int recent;        /* 0: every event */
    double span_s;     /* recent: t within this of the latest */
    int64_t max_events; /* recent: at most the last this many; after: at most this many */
    int64_t after_id;   /* after: events with id > this */
    int64_t last_id;    /* the largest id read */
    int after;
    int64_t upto_id;    /* recent: only events with id <= this */
} read_req;

static int read_events_fn(gw_conn *c, void *ud) {
    read_req *rq = ud;
    guard_event_list *l = rq->l;
    if (!gw_sql_has_table(c, "guard_events"))
        return RT_FAIL("no guard_events table: was the server run with --guard or --guard-shadow?");
    gw_stmt *st = NULL;
    /* recent: a rowid range from the end (no scan of the table), then the time window measured
     * from the latest event's t */
    static const char *const cols =
        "SELECT row_id, t, account_id, created_at, client_hash, status, prompt_tokens, completion_tokens, "
        "max_tokens, max_tokens_given, logprobs, top_logprobs, concurrent, prompt_hash, minhash, emb, emb_scale, "
        "coalesce(prefix_hash, 0), coalesce(n_choices, 1), coalesce(endpoint, 0), coalesce(client_fp, 0), id "
        "FROM guard_events ";
    char sql[1024];
    snprintf(sql, sizeof sql, "%s%s", cols,
             rq->after    ? "WHERE id > ?1 ORDER BY id LIMIT ?2"
             : rq->recent ? "WHERE id > (SELECT coalesce(max(id), 0) FROM guard_events WHERE id <= ?3) - ?2 AND "
                            "id <= ?3 AND t >= (SELECT t FROM guard_events WHERE id <= ?3 ORDER BY id DESC LIMIT 1) - ?1 "
                            "ORDER BY id"
                          : "ORDER BY id");
    if (gw_sql_prepare(c, sql, &st, "reading guard_events")) return -1;
    if (rq->after) {
        gw_bind_int64(st, 1, rq->after_id);
        gw_bind_int64(st, 2, rq->max_events);
    } else if (rq->recent) {
        gw_bind_double(st, 1, rq->span_s);
        gw_bind_int64(st, 2, rq->max_events);
        gw_bind_int64(st, 3, rq->upto_id);
    }
    rq->last_id = rq->after_id;
    size_t cap = 0, ecap = 0, eused = 0;
    size_t *emb_off = NULL;
    int rc = 0;
    while (gw_step(st) == GW_ROW) {
        if (l->n == cap) {
            cap = cap ? cap * 2 : 4096;
            guard_event *ne = rt_realloc(l->ev, cap * sizeof *ne, "guard events");
            size_t *no = rt_realloc(emb_off, cap * sizeof *no, "guard events");
            if (!ne || !no) {
                if (ne) l->ev = ne;
                if (no) emb_off = no;
                rc = -1;
                break;
            }
            l->ev = ne;
            emb_off = no;
        }
        guard_event *ev = &l->ev[l->n];
        memset(ev, 0, sizeof *ev);
        ev->row_id = gw_column_int64(st, 0);
        ev->t = gw_column_double(st, 1);
        ev->account_id = gw_column_int64(st, 2);
        ev->account_created_at = gw_column_double(st, 3);
        ev->client_hash = (uint64_t)gw_column_int64(st, 4);
        ev->status = gw_column_int(st, 5);
        ev->prompt_tokens = gw_column_int64(st, 6);
        ev->completion_tokens = gw_column_int64(st, 7);
        ev->max_tokens = gw_column_int64(st, 8);
        ev->max_tokens_given = gw_column_int(st, 9);
        ev->logprobs = gw_column_int(st, 10);
        ev->top_logprobs = gw_column_int(st, 11);
        ev->concurrent = gw_column_int(st, 12);
        ev->prompt_hash = (uint64_t)gw_column_int64(st, 13);
        const uint8_t *mh = gw_column_blob(st, 14);
        if (mh && gw_column_bytes(st, 14) == GUARD_MINHASH_K * 4) {
            ev->has_minhash = 1;
            for (size_t k = 0; k < GUARD_MINHASH_K; k++)
                ev->minhash[k] = (uint32_t)mh[k * 4] | (uint32_t)mh[k * 4 + 1] << 8 | (uint32_t)mh[k * 4 + 2] << 16 |
                                 (uint32_t)mh[k * 4 + 3] << 24;
        }
        const void *eb = gw_column_blob(st, 15);
        size_t el = (size_t)gw_column_bytes(st, 15);
        ev->emb_scale = (float)gw_column_double(st, 16);
        ev->prefix_hash = (uint64_t)gw_column_int64(st, 17);
        ev->n_choices = gw_column_int(st, 18);
        ev->endpoint = gw_column_int(st, 19);
        ev->client_fp = (uint64_t)gw_column_int64(st, 20);
        int64_t id = gw_column_int64(st, 21);
        if (id > rq->last_id) rq->last_id = id;
        emb_off[l->n] = SIZE_MAX;
        if (eb && el) {
            if (RT_GROW(l->emb_store, ecap, eused + el, "guard embeddings")) {
                rc = -1;
                break;
            }
            memcpy(l->emb_store + eused, eb, el);
            emb_off[l->n] = eused;
            ev->emb_dim = el;
            eused += el;
        }
        l->n++;
    }
    gw_finalize(st);
    if (rc == 0)
        for (size_t i = 0; i < l->n; i++)
            l->ev[i].emb = emb_off[i] == SIZE_MAX ? NULL : l->emb_store + emb_off[i];
    free(emb_off);
    return rc;
}

int guard_events_read(gw_db *db, guard_event_list *out) {
    memset(out, 0, sizeof *out);
    read_req rq = {out, 0, 0, 0, 0, 0, 0, INT64_MAX};
    if (gw_db_with(db, read_events_fn, &rq)) {
        int rc = RT_FAIL("%s: %s", gw_db_path(db), rt_errmsg());
        guard_events_free(out);
        return rc;
    }
    return 0;
}

static int read_recent_upto(gw_db *db, double span_s, size_t max_events, int64_t upto_id, guard_event_list *out) {
    memset(out, 0, sizeof *out);
    read_req rq = {out, 1, span_s, (int64_t)RT_MIN(max_events, (size_t)INT64_MAX), 0, 0, 0, upto_id};
    if (gw_db_with(db, read_events_fn, &rq)) {
        int rc = RT_FAIL("%s: %s", gw_db_path(db), rt_errmsg());
        guard_events_free(out);
        return rc;
    }
    return 0;
}

/* the latest action row of each account: its level, or a release */
typedef struct {
    guard_detector *d;
} levels_req;

static int restore_levels_fn(gw_conn *c, void *ud) {
    levels_req *rq = ud;
    gw_stmt *st = NULL;
    if (gw_sql_prepare(c,
                       "SELECT account_id, action FROM guard_actions WHERE id IN "
                       "(SELECT max(id) FROM guard_actions GROUP BY account_id)",
                       &st, "reading guard_actions"))
        return -1;
    int rc = 0;
    while (rc == 0 && gw_step(st) == GW_ROW) {
        int64_t acc = gw_column_int64(st, 0);
        const char *a = gw_column_text(st, 1);
        guard_action lv = GUARD_ACT_NONE;
        if (a && !strcmp(a, "release")) {
            guard_detector_release(rq->d, acc); /* vouched for: starts afresh, as live */
            continue;
        }
        if (a && !strcmp(a, "flag")) lv = GUARD_ACT_FLAG;
        else if (a && !strcmp(a, "throttle")) lv = GUARD_ACT_THROTTLE;
        else if (a && !strcmp(a, "verify")) lv = GUARD_ACT_VERIFY;
        else if (a && !strcmp(a, "suspend")) lv = GUARD_ACT_SUSPEND;
        rc = guard_detector_set_level(rq->d, acc, lv);
    }
    gw_finalize(st);
    return rc;
}

int guard_events_read_recent(gw_db *db, double span_s, size_t max_events, guard_event_list *out) {
    return read_recent_upto(db, span_s, max_events, INT64_MAX, out);
}

int guard_events_read_after(gw_db *db, int64_t after_id, size_t max, guard_event_list *out, int64_t *last_id) {
    memset(out, 0, sizeof *out);
    read_req rq = {out, 0, 0, (int64_t)RT_MIN(max, (size_t)INT64_MAX), after_id, after_id, 1, INT64_MAX};
    *last_id = after_id;
    if (gw_db_with(db, read_events_fn, &rq)) {
        int rc = RT_FAIL("%s: %s", gw_db_name(db), rt_errmsg());
        guard_events_free(out);
        return rc;
    }
    *last_id = rq.last_id;
    return 0;
}

int guard_detector_restore(gw_db *db, guard_detector *d, double span_s, size_t max_events, size_t *n_events) {
    return guard_detector_restore_upto(db, d, span_s, max_events, INT64_MAX, n_events);
}

int guard_detector_restore_upto(gw_db *db, guard_detector *d, double span_s, size_t max_events, int64_t upto_id,
                                size_t *n_events) {
    *n_events = 0;
    guard_event_list l;
    if (read_recent_upto(db, span_s, max_events, upto_id, &l)) return -1;
    int rc = 0;
    for (size_t i = 0; i < l.n && rc == 0; i++) {
        guard_verdict v;
        rc = guard_detector_observe(d, &l.ev[i], &v);
    }
    *n_events = l.n;
    guard_events_free(&l);
    if (rc) return -1;
    /* every account the replay saw goes back to what was acted on (none unless a row says) */
    levels_req rq = {d};
    guard_detector_reset_levels(d);
    if (gw_db_with(db, restore_levels_fn, &rq))
        return RT_FAIL("%s: %s", gw_db_path(db), rt_errmsg());
    return 0;
}

void guard_events_free(guard_event_list *l) {
    free(l->ev);
    free(l->emb_store);
    memset(l, 0, sizeof *l);
}

/* Whether guard_sim_accounts has the prompt-source column (labels written before it have not). */
static int labels_have_source(gw_conn *c) {
    gw_stmt *st = NULL;
    int has = 0;
    const char *q = gw_conn_is_pg(c) ? "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                                       "AND table_name = 'guard_sim_accounts' AND column_name = 'source'"
                                     : "SELECT 1 FROM pragma_table_info('guard_sim_accounts') WHERE name = 'source'";
    if (gw_sql_prepare(c, q, &st, "reading guard_sim_accounts' columns") == 0) has = gw_step(st) == GW_ROW;
    gw_finalize(st);
    return has;
}

int guard_labels_read(gw_conn *c, guard_label **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!gw_sql_has_table(c, "guard_sim_accounts")) return 0;
    gw_stmt *st = NULL;
    if (gw_sql_prepare(c,
                       labels_have_source(c)
                           ? "SELECT account_id, name, persona, strategy, attack, grp, seed, source FROM guard_sim_accounts "
                             "ORDER BY account_id"
                           : "SELECT account_id, name, persona, strategy, attack, grp, seed, NULL FROM guard_sim_accounts "
                             "ORDER BY account_id",
                       &st, "reading guard_sim_accounts"))
        return -1;
    size_t cap = 0;
    guard_label *l = NULL;
    while (gw_step(st) == GW_ROW) {
        if (RT_GROW(l, cap, *n + 1, "labels")) {
            free(l);
            gw_finalize(st);
            return -1;
        }
        guard_label *x = &l[(*n)++];
        memset(x, 0, sizeof *x);
        x->account_id = gw_column_int64(st, 0);
        snprintf(x->name, sizeof x->name, "%s", gw_column_text(st, 1));
        snprintf(x->persona, sizeof x->persona, "%s", gw_column_text(st, 2));
        snprintf(x->strategy, sizeof x->strategy, "%s", gw_column_text(st, 3));
        x->attack = gw_column_int(st, 4);
        snprintf(x->group, sizeof x->group, "%s", gw_column_text(st, 5));
        x->seed = (uint64_t)gw_column_int64(st, 6);
        const char *src = gw_column_text(st, 7);
        snprintf(x->source, sizeof x->source, "%s", src && *src ? src : "corpus");
    }
    gw_finalize(st);
    *out = l;
    return 0;
}

typedef struct {
    const guard_label *l;
    size_t n;
} labels_w;
static int labels_write_fn(gw_conn *c, void *ud) {
    const labels_w *x = ud;
    gw_stmt *st = NULL;
    if (!labels_have_source(c) &&
        gw_sql_schema(c, "ALTER TABLE guard_sim_accounts ADD COLUMN source TEXT", "adding guard_sim_accounts.source"))
        return -1;
    if (gw_sql_prepare(c,
                       "INSERT INTO guard_sim_accounts(account_id, name, persona, strategy, attack, grp, "
                       "client, created_at, seed, source) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10) ON CONFLICT(account_id) "
                       "DO UPDATE SET name = excluded.name, persona = excluded.persona, strategy = excluded.strategy, "
                       "attack = excluded.attack, grp = excluded.grp, client = excluded.client, "
                       "created_at = excluded.created_at, seed = excluded.seed, source = excluded.source",
                       &st, "guard_sim_accounts"))
        return -1;
    int rc = gw_sql_exec(c, "BEGIN", "guard_sim_accounts");
    for (size_t i = 0; i < x->n && !rc; i++) {
        const guard_label *l = &x->l[i];
        gw_reset(st);
        gw_bind_int64(st, 1, l->account_id);
        gw_bind_text(st, 2, l->name);
        gw_bind_text(st, 3, l->persona);
        gw_bind_text(st, 4, l->strategy);
        gw_bind_int(st, 5, l->attack);
        gw_bind_text(st, 6, l->group);
        gw_bind_text(st, 7, l->client);
        gw_bind_double(st, 8, l->created_at);
        gw_bind_int64(st, 9, (int64_t)l->seed);
        gw_bind_text(st, 10, l->source[0] ? l->source : "corpus");
        rc = gw_sql_step_done(c, st, "guard_sim_accounts");
    }
    gw_finalize(st);
    if (rc) {
        gw_sql_rollback(c);
        return rc;
    }
    return gw_sql_exec(c, "COMMIT", "guard_sim_accounts");
}

int guard_labels_write(gw_db *db, const guard_label *l, size_t n) {
    if (guard_db_init(db)) return -1;
    labels_w x = {l, n};
    return gw_db_with(db, labels_write_fn, &x);
}

typedef struct {
    guard_label *l;
    size_t n;
} labels_r;
static int labels_load_fn(gw_conn *c, void *ud) {
    labels_r *x = ud;
    return guard_labels_read(c, &x->l, &x->n);
}

int guard_labels_load(gw_db *db, guard_label **out, size_t *n) {
    labels_r x = {0};
    if (gw_db_with(db, labels_load_fn, &x)) return -1;
    *out = x.l;
    *n = x.n;
    return 0;
}

/* ---------------------------------------------------------------- readers for the report */

void guard_enforcement_free(guard_enforcement *e, size_t n) {
    for (size_t i = 0; e && i < n; i++) {
        free(e[i].code);
        free(e[i].reason);
        free(e[i].evidence);
        free(e[i].throttle_code);
        free(e[i].throttle_reason);
        free(e[i].throttle_evidence);
    }
    free(e);
}

static char *dup_col(gw_stmt *st, int i) {
    const char *s = gw_column_text(st, i);
    return rt_strdup(s ? s : "");
}

/* the entry of account id, added when new (a linear search: a report has hundreds of accounts) */
static guard_enforcement *enf_get(guard_enforcement **e, size_t *n, size_t *cap, int64_t id) {
    for (size_t i = 0; i < *n; i++)
        if ((*e)[i].account_id == id) return &(*e)[i];
    if (RT_GROW(*e, *cap, *n + 1, "guard enforcement")) return NULL;
    guard_enforcement *x = &(*e)[(*n)++];
    memset(x, 0, sizeof *x);
    x->account_id = id;
    x->t_suspend = x->risk = x->t_throttle = x->throttle_risk = x->t_verify = NAN;
    return x;
}

static int cmp_enf(const void *a, const void *b) {
    int64_t x = ((const guard_enforcement *)a)->account_id, y = ((const guard_enforcement *)b)->account_id;
    return (x > y) - (x < y);
}

/* Each account's first enforced action of one kind (earliest t, then lowest id). */
#define ENF_FIRST_SQL(kind)                                                                                     \
    "SELECT a.account_id, a.t, a.code, a.risk, a.reason, a.evidence FROM guard_actions a "                      \
    "WHERE a.id = (SELECT b.id FROM guard_actions b WHERE b.account_id = a.account_id AND b.action = '" kind     \
    "' AND b.mode = 'enforce' ORDER BY b.t, b.id LIMIT 1) ORDER BY a.account_id"

/* Fill the suspension (throttle 0), throttle (throttle 1) or verification (throttle 2: only
 * verify and t_verify) fields of every account with one. */
static int enf_read_first(gw_conn *c, int throttle, guard_enforcement **e, size_t *ne, size_t *cap) {
    gw_stmt *st = NULL;
    if (gw_sql_prepare(c,
                       throttle == 2   ? ENF_FIRST_SQL("verify")
                       : throttle == 1 ? ENF_FIRST_SQL("throttle")
                                       : ENF_FIRST_SQL("suspend"),
                       &st, "reading guard_actions"))
        return -1;
    int s = GW_DONE, rc = 0;
    while (!rc && (s = gw_step(st)) == GW_ROW) {
        guard_enforcement *x = enf_get(e, ne, cap, gw_column_int64(st, 0));
        if (!x) {
            rc = -1;
            break;
        }
        double t = gw_column_is_null(st, 1) ? NAN : gw_column_double(st, 1);
        if (throttle == 2) {
            x->verify = 1, x->t_verify = t;
            continue;
        }
        double risk = gw_column_is_null(st, 3) ? NAN : gw_column_double(st, 3);
        char *code = dup_col(st, 2), *reason = dup_col(st, 4), *evidence = dup_col(st, 5);
        if (throttle)
            x->throttled = 1, x->t_throttle = t, x->throttle_risk = risk, x->throttle_code = code,
            x->throttle_reason = reason, x->throttle_evidence = evidence;
        else
            x->t_suspend = t, x->risk = risk, x->code = code, x->reason = reason, x->evidence = evidence;
        if (!code || !reason || !evidence) rc = -1;
    }
    if (!rc && s != GW_DONE) rc = gw_sql_fail(c, "reading guard_actions");
    gw_finalize(st);
    return rc;
}

static int enf_fill(char **p) {
    if (!*p) *p = rt_strdup("");
    return *p ? 0 : -1;
}

int guard_enforcement_read(gw_conn *c, guard_enforcement **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!gw_sql_has_table(c, "guard_actions")) return 0;
    guard_enforcement *e = NULL;
    size_t ne = 0, cap = 0;
    if (enf_read_first(c, 0, &e, &ne, &cap) || enf_read_first(c, 1, &e, &ne, &cap) ||
        enf_read_first(c, 2, &e, &ne, &cap))
        goto fail;
    for (size_t i = 0; i < ne; i++)
        if (enf_fill(&e[i].code) || enf_fill(&e[i].reason) || enf_fill(&e[i].evidence) ||
            enf_fill(&e[i].throttle_code) || enf_fill(&e[i].throttle_reason) || enf_fill(&e[i].throttle_evidence))
            goto fail;
    if (ne) qsort(e, ne, sizeof *e, cmp_enf);
    *out = e;
    *n = ne;
    return 0;
fail:
    guard_enforcement_free(e, ne);
    return -1;
}

/* ---------------------------------------------------------------- linked groups */

typedef struct {
    int64_t account_id, name; /* name: a group_id the account's rows carried */
    double t;                 /* the latest such row */
} group_row;

typedef struct {
    int64_t account_id;
    double t;
} release_row;

/* union-find over node indices (accounts first, then names) */
static size_t uf_root(size_t *up, size_t i) {
    while (up[i] != i) i = up[i] = up[up[i]];
    return i;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_link(const void *a, const void *b) {
    const guard_group_link *x = a, *y = b;
    return (x->account_id > y->account_id) - (x->account_id < y->account_id);
}

/* index of v in the sorted, distinct array a[n] (present by construction) */
static size_t i64_index(const int64_t *a, size_t n, int64_t v) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t m = lo + (hi - lo) / 2;
        if (a[m] < v) lo = m + 1;
        else hi = m;
    }
    return lo;
}

static size_t uniq_i64(int64_t *a, size_t n) {
    if (!n) return 0;
    qsort(a, n, sizeof *a, cmp_i64);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (a[i] != a[k - 1]) a[k++] = a[i];
    return k;
}

/* The (account, name, latest t) rows and each account's latest release. */
static int group_rows_read(gw_conn *c, group_row **rows, size_t *nr, release_row **rel, size_t *nrel) {
    gw_stmt *st = NULL;
    size_t cap = 0;
    if (gw_sql_prepare(c,
                       "SELECT account_id, group_id, MAX(t) FROM guard_scores WHERE group_size > 1 AND group_id > 0 "
                       "GROUP BY account_id, group_id UNION ALL SELECT account_id, group_id, MAX(t) FROM guard_actions "
                       "WHERE action != 'release' AND group_id > 0 GROUP BY account_id, group_id",
                       &st, "reading the guard's groups"))
        return -1;
    int s;
    while ((s = gw_step(st)) == GW_ROW) {
        if (RT_GROW(*rows, cap, *nr + 1, "guard groups")) goto fail;
        (*rows)[(*nr)++] = (group_row){gw_column_int64(st, 0), gw_column_int64(st, 1), gw_column_double(st, 2)};
    }
    if (s != GW_DONE) goto fail_sql;
    gw_finalize(st);
    cap = 0;
    if (gw_sql_prepare(c, "SELECT account_id, MAX(t) FROM guard_actions WHERE action = 'release' GROUP BY account_id "
                          "ORDER BY account_id",
                       &st, "reading the guard's releases"))
        return -1;
    while ((s = gw_step(st)) == GW_ROW) {
        if (RT_GROW(*rel, cap, *nrel + 1, "guard groups")) goto fail;
        (*rel)[(*nrel)++] = (release_row){gw_column_int64(st, 0), gw_column_double(st, 1)};
    }
    if (s != GW_DONE) goto fail_sql;
    gw_finalize(st);
    return 0;
fail_sql:
    gw_sql_fail(c, "reading the guard's groups");
fail:
    gw_finalize(st);
    return -1;
}

/* The account's latest release (-inf: none); rel is ordered by account id. */
static double released_at(const release_row *rel, size_t n, int64_t id) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t m = lo + (hi - lo) / 2;
        if (rel[m].account_id < id) lo = m + 1;
        else hi = m;
    }
    return lo < n && rel[lo].account_id == id ? rel[lo].t : -INFINITY;
}

int guard_groups_read(gw_conn *c, guard_group_link **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!gw_sql_has_table(c, "guard_scores") || !gw_sql_has_table(c, "guard_actions")) return 0;
    group_row *rows = NULL;
    release_row *rel = NULL;
    size_t nr = 0, nrel = 0, nkeep = 0;
    int64_t *acc = NULL, *names = NULL, *best = NULL;
    size_t *up = NULL, *members = NULL;
    guard_group_link *links = NULL;
    int rc = -1;
    if (group_rows_read(c, &rows, &nr, &rel, &nrel)) goto out;
    for (size_t i = 0; i < nr; i++) /* rows from before the account's latest release do not link */
        if (rows[i].t > released_at(rel, nrel, rows[i].account_id)) rows[nkeep++] = rows[i];
    acc = rt_malloc_array(nkeep ? nkeep : 1, sizeof *acc, "guard groups");
    names = rt_malloc_array(nkeep ? nkeep : 1, sizeof *names, "guard groups");
    if (!acc || !names) goto out;
    for (size_t i = 0; i < nkeep; i++) acc[i] = rows[i].account_id, names[i] = rows[i].name;
    size_t na = uniq_i64(acc, nkeep), nn = uniq_i64(names, nkeep);
    up = rt_malloc_array(na + nn + 1, sizeof *up, "guard groups");
    members = rt_calloc(na + nn + 1, sizeof *members, "guard groups");
    best = rt_malloc_array(na + nn + 1, sizeof *best, "guard groups");
    links = rt_malloc_array(na ? na : 1, sizeof *links, "guard groups");
    if (!up || !members || !best || !links) goto out;
    for (size_t i = 0; i < na + nn; i++) up[i] = i, best[i] = INT64_MAX;
    for (size_t i = 0; i < nkeep; i++) {
        size_t a = uf_root(up, i64_index(acc, na, rows[i].account_id));
        size_t b = uf_root(up, na + i64_index(names, nn, rows[i].name));
        if (a != b) up[b] = a;
    }
    for (size_t i = 0; i < na; i++) members[uf_root(up, i)]++;
    for (size_t i = 0; i < nn; i++) {
        size_t r = uf_root(up, na + i);
        if (names[i] < best[r]) best[r] = names[i];
    }
    size_t nl = 0;
    for (size_t i = 0; i < na; i++) {
        size_t r = uf_root(up, i);
        if (members[r] > 1) links[nl++] = (guard_group_link){acc[i], best[r]};
    }
    qsort(links, nl, sizeof *links, cmp_link);
    *out = links, *n = nl;
    links = NULL;
    rc = 0;
out:
    free(rows), free(rel), free(acc), free(names), free(best), free(up), free(members), free(links);
    return rc;
}

int guard_scores_each(gw_conn *c, int (*fn)(void *ud, double t, int64_t account_id, double risk), void *ud) {
    gw_stmt *st = NULL;
    if (gw_sql_prepare(c, "SELECT t, account_id, risk FROM guard_scores ORDER BY t", &st, "reading guard_scores"))
        return -1;
    int rc = 0, s;
    while (!rc && (s = gw_step(st)) == GW_ROW) {
        double risk = gw_column_is_null(st, 2) ? NAN : gw_column_double(st, 2);
        rc = fn(ud, gw_column_double(st, 0), gw_column_int64(st, 1), risk);
    }
    if (!rc && s != GW_DONE) rc = gw_sql_fail(c, "reading guard_scores");
    gw_finalize(st);
    return rc;
}

/* ---------------------------------------------------------------- status */

static void fmt_t(double t, char *out, size_t cap) {
    if (!(t > 0)) {
        snprintf(out, cap, "-");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm);
}

typedef struct {
    FILE *out;
    int as_json;
    int rc;
} status_ctx;

/* accounts are read ordered by id */
static const gw_account *account_by_id(const gw_account *a, size_t n, int64_t id) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && a[lo].id == id ? &a[lo] : NULL;
}

static int status_fn(gw_conn *c, void *ud) {
    status_ctx *x = ud;
    if (!gw_sql_has_table(c, "guard_actions"))
        return RT_FAIL("no guard tables: was the server run with --guard or --guard-shadow?");
    gw_stmt *st = NULL;
    /* the latest action per account, its latest risk, its name and status */
    if (gw_sql_prepare(
            c,
            "SELECT a.account_id, NULL, NULL, a.action, a.mode,"
            " a.code, a.risk, a.t, a.group_id, a.id,"
            " (SELECT risk FROM guard_scores s WHERE s.account_id = a.account_id ORDER BY s.id DESC LIMIT 1),"
            " (SELECT count(*) FROM guard_actions b WHERE b.group_id = a.group_id AND b.id <= a.id"
            "   AND b.action = a.action AND a.group_id != a.account_id)"
            " FROM guard_actions a"
            " WHERE a.id = (SELECT max(id) FROM guard_actions b WHERE b.account_id = a.account_id)"
            " ORDER BY a.id",
            &st, "reading guard_actions"))
        return -1;
    /* names and statuses from the gateway (its table, its reader) */
    gw_account *acc = NULL;
    size_t na = 0;
    if (gw_accounts_read(c, &acc, &na)) {
        gw_finalize(st);
        return -1;
    }
    size_t n = 0, by[6] = {0};
    if (!x->as_json)
        fprintf(x->out, "%-24s %-9s %-8s %-7s %-30s %6s %6s %-19s %s\n", "ACCOUNT", "STATUS", "ACTION", "MODE", "CODE",
                "RISK", "NOW", "WHEN", "GROUP");
    while (gw_step(st) == GW_ROW) {
        int64_t aid = gw_column_int64(st, 0);
        const gw_account *ac = account_by_id(acc, na, aid);
        char name[GW_NAME_MAX];
        if (ac) snprintf(name, sizeof name, "%s", ac->name);
        else snprintf(name, sizeof name, "#%lld", (long long)aid);
        const char *status = !ac ? "?" : ac->status == GW_ACCOUNT_SUSPENDED ? "suspended" : "active";
        const char *action = gw_column_text(st, 3);
        const char *mode = gw_column_text(st, 4);
        const char *code = gw_column_text(st, 5);
        double risk = gw_column_double(st, 6), t = gw_column_double(st, 7);
        int64_t gid = gw_column_int64(st, 8);
        double now = gw_column_is_null(st, 10) ? NAN : gw_column_double(st, 10);
        char when[32];
        fmt_t(t, when, sizeof when);
        if (!strcmp(action, "flag")) by[1]++;
        else if (!strcmp(action, "throttle")) by[2]++;
        else if (!strcmp(action, "suspend")) by[3]++;
        else if (!strcmp(action, "verify")) by[5]++;
        else by[4]++;
        if (x->as_json) {
            json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:f, s:o, s:f, s:I, s:I}", "account_id",
                                  (json_int_t)aid, "account", name, "status", status, "action", action, "mode", mode,
                                  "code", code ? code : "", "risk", risk, "risk_now", isfinite(now) ? json_real(now) : json_null(),
                                  "t", t, "group", (json_int_t)gid, "action_id", (json_int_t)gw_column_int64(st, 9));
            char *s = o ? rt_json_reals(json_dumps(o, JSON_COMPACT)) : NULL;
            if (s) fprintf(x->out, "%s\n", s);
            free(s);
            json_decref(o);
        } else {
            char grp[32] = "-";
            if (gid && gid != aid) snprintf(grp, sizeof grp, "with #%lld", (long long)gid);
            fprintf(x->out, "%-24s %-9s %-8s %-7s %-30s %6.2f %6.2f %-19s %s\n", name, status, action, mode,
                    code ? code : "", risk, isfinite(now) ? now : 0.0, when, grp);
        }
        n++;
    }
    gw_finalize(st);
    free(acc);
    if (!x->as_json)
        fprintf(x->out, "%zu account(s) with guard actions: %zu flagged, %zu throttled, %zu asked to verify, %zu suspended, "
                "%zu released\n",
                n, by[1], by[2], by[5], by[3], by[4]);
    return 0;
}

int guard_status_print(gw_db *db, FILE *out, int as_json) {
    status_ctx x = {out, as_json, 0};
    if (gw_db_with(db, status_fn, &x)) return RT_FAIL("%s: %s", gw_db_path(db), rt_errmsg());
    return 0;
}

/* ---------------------------------------------------------------- explain */

typedef struct {
    int64_t account_id;
    FILE *out;
    int as_json;
} explain_ctx;

static void print_signals_table(FILE *out, json_t *signals) {
    fprintf(out, "    %-15s %-9s %12s %8s %8s %6s %7s\n", "signal", "family", "value", "benign", "attack", "score",
            "contrib");
    const char *k;
    json_t *v;
    json_object_foreach(signals, k, v) {
        json_t *val = json_object_get(v, "value");
        char vb[32];
        if (json_is_number(val)) snprintf(vb, sizeof vb, "%.4g", json_number_value(val));
        else snprintf(vb, sizeof vb, "-");
        json_t *z = json_object_get(v, "z");
        char zb[32] = "";
        if (json_is_number(z)) snprintf(zb, sizeof zb, "  (z %.1f)", json_number_value(z));
        fprintf(out, "    %-15s %-9s %12s %8.4g %8.4g %6.2f %7.3f%s\n", k,
                json_string_value(json_object_get(v, "family")) ? json_string_value(json_object_get(v, "family")) : "",
                vb, json_number_value(json_object_get(v, "benign")), json_number_value(json_object_get(v, "attack")),
                json_number_value(json_object_get(v, "score")), json_number_value(json_object_get(v, "contribution")),
                zb);
    }
}

static void print_assessment(FILE *out, const char *title, json_t *as) {
    char a[32], b[32];
    fmt_t(json_number_value(json_object_get(as, "from")), a, sizeof a);
    fmt_t(json_number_value(json_object_get(as, "to")), b, sizeof b);
    fprintf(out, "  %s: risk %.3f over %.0f requests (%.0f served), window %s .. %s\n", title,
            json_number_value(json_object_get(as, "risk")), json_number_value(json_object_get(as, "requests")),
            json_number_value(json_object_get(as, "served")), a, b);
    print_signals_table(out, json_object_get(as, "signals"));
}

static int explain_fn(gw_conn *c, void *ud) {
    explain_ctx *x = ud;
    if (!gw_sql_has_table(c, "guard_actions"))
        return RT_FAIL("no guard tables: was the server run with --guard or --guard-shadow?");
    gw_stmt *st = NULL;
    int rc = 0;
    json_t *all = json_pack("{s:I, s:[], s:o}", "account_id", (json_int_t)x->account_id, "actions", "latest",
                            json_null());
    json_t *actions = json_object_get(all, "actions");
    if (gw_sql_prepare(c,
                          "SELECT id, t, action, mode, code, risk, group_id, usage_row_id, reason, evidence, prev_rpm "
                          "FROM guard_actions WHERE account_id = ?1 ORDER BY id",
                          &st, "reading guard_actions"))
        return -1;
    gw_bind_int64(st, 1, x->account_id);
    size_t n = 0;
    while (gw_step(st) == GW_ROW) {
        n++;
        const char *ev_text = gw_column_text(st, 9);
        json_error_t je;
        json_t *ev = ev_text ? json_loads(ev_text, 0, &je) : NULL;
        json_t *a = json_pack("{s:I, s:f, s:s, s:s, s:s, s:f, s:I, s:I, s:s, s:o}", "id",
                              (json_int_t)gw_column_int64(st, 0), "t", gw_column_double(st, 1), "action",
                              gw_column_text(st, 2), "mode", gw_column_text(st, 3),
                              "code", gw_column_text(st, 4) ? gw_column_text(st, 4) : "",
                              "risk", gw_column_double(st, 5), "group", (json_int_t)gw_column_int64(st, 6),
                              "usage_row", (json_int_t)gw_column_int64(st, 7), "reason",
                              gw_column_text(st, 8) ? gw_column_text(st, 8) : "", "evidence",
                              ev ? ev : json_null());
        if (!gw_column_is_null(st, 10))
            json_object_set_new(a, "previous_rpm", json_integer(gw_column_int64(st, 10)));
        if (!x->as_json) {
            char when[32];
            fmt_t(gw_column_double(st, 1), when, sizeof when);
            fprintf(x->out, "action #%lld: %s (%s) at %s, code %s, risk %.3f\n  reason: %s\n",
                    (long long)gw_column_int64(st, 0), gw_column_text(st, 2), gw_column_text(st, 3),
                    when, gw_column_text(st, 4) ? gw_column_text(st, 4) : "",
                    gw_column_double(st, 5),
                    gw_column_text(st, 8) ? gw_column_text(st, 8) : "");
            if (json_is_object(ev)) {
                if (json_integer_value(json_object_get(ev, "account")) != x->account_id)
                    fprintf(x->out, "  decided on the evidence of linked account #%lld:\n",
                            (long long)json_integer_value(json_object_get(ev, "account")));
                print_assessment(x->out, "account alone", json_object_get(ev, "account_assessment"));
                json_t *g = json_object_get(ev, "group");
                if (json_integer_value(json_object_get(g, "size")) > 1) {
                    rt_buf mb = {0};
                    size_t i;
                    json_t *m;
                    json_array_foreach(json_object_get(g, "members"), i, m) rt_buf_printf(&mb, "%s#%lld", i ? " " : "",
                                                                                          (long long)json_integer_value(m));
                    fprintf(x->out, "  linked group of %lld: %s\n", (long long)json_integer_value(json_object_get(g, "size")),
                            mb.data ? mb.data : "");
                    rt_buf_free(&mb);
                    print_assessment(x->out, "group (pooled)", json_object_get(g, "assessment"));
                }
                json_t *links = json_object_get(ev, "linked");
                if (json_array_size(links)) {
                    fprintf(x->out, "  pair evidence with other accounts:\n");
                    size_t i;
                    json_t *l;
                    json_array_foreach(links, i, l) {
                        fprintf(x->out,
                                "    #%-6lld %s score %.2f (%lld kinds): ip %.0f, sign-up burst %.0f, template %.2f, "
                                "timing %.2f\n",
                                (long long)json_integer_value(json_object_get(l, "account")),
                                json_is_true(json_object_get(l, "linked")) ? "linked    " : "not linked",
                                json_number_value(json_object_get(l, "score")),
                                (long long)json_integer_value(json_object_get(l, "kinds")),
                                json_number_value(json_object_get(l, "ip")), json_number_value(json_object_get(l, "burst")),
                                json_number_value(json_object_get(l, "template")),
                                json_number_value(json_object_get(l, "timing")));
                    }
                }
                json_t *w = json_object_get(ev, "window");
                fprintf(x->out, "  windows: %g requests for the means, %g prompts for the shift, rate tau %gs, volume tau %gs\n",
                        json_number_value(json_object_get(w, "requests")), json_number_value(json_object_get(w, "shift")),
                        json_number_value(json_object_get(w, "rate_tau_s")),
                        json_number_value(json_object_get(w, "volume_tau_s")));
            }
        }
        json_array_append_new(actions, a);
    }
    gw_finalize(st);
    /* the latest timeline row */
    if (gw_sql_prepare(c,
                          "SELECT t, n, risk, account_risk, group_risk, group_id, group_size, level, code, signals "
                          "FROM guard_scores WHERE account_id = ?1 ORDER BY id DESC LIMIT 1",
                          &st, "reading guard_scores"))
        rc = -1;
    if (!rc) {
        gw_bind_int64(st, 1, x->account_id);
        if (gw_step(st) == GW_ROW) {
            const char *sig = gw_column_text(st, 9);
            json_error_t je;
            json_t *sj = sig ? json_loads(sig, 0, &je) : NULL;
            json_t *latest = json_pack("{s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:s, s:s, s:o}", "t", gw_column_double(st, 0),
                                       "requests", gw_column_double(st, 1), "risk", gw_column_double(st, 2),
                                       "account_risk", gw_column_double(st, 3), "group_risk",
                                       gw_column_double(st, 4), "group", (json_int_t)gw_column_int64(st, 5),
                                       "group_size", (json_int_t)gw_column_int64(st, 6), "level",
                                       gw_column_text(st, 7), "code",
                                       gw_column_text(st, 8) ? gw_column_text(st, 8) : "",
                                       "signals", sj ? sj : json_object());
            if (!x->as_json) {
                char when[32];
                fmt_t(gw_column_double(st, 0), when, sizeof when);
                fprintf(x->out, "latest score (%s, after %.0f requests): risk %.3f (alone %.3f, group %.3f of %lld), level %s, code %s\n",
                        when, gw_column_double(st, 1), gw_column_double(st, 2), gw_column_double(st, 3),
                        gw_column_double(st, 4), (long long)gw_column_int64(st, 6), gw_column_text(st, 7),
                        gw_column_text(st, 8) ? gw_column_text(st, 8) : "");
                if (json_is_object(sj)) {
                    fprintf(x->out, "  signal values [value, score]: ");
                    const char *k;
                    json_t *v;
                    int first = 1;
                    json_object_foreach(sj, k, v) {
                        fprintf(x->out, "%s%s %.4g/%.2f", first ? "" : ", ", k, json_number_value(json_array_get(v, 0)),
                                json_number_value(json_array_get(v, 1)));
                        first = 0;
                    }
                    fprintf(x->out, "\n");
                }
            }
            json_object_set_new(all, "latest", latest);
            n++;
        }
        gw_finalize(st);
    }
    if (!rc && n == 0 && !x->as_json) fprintf(x->out, "the guard has no record of this account\n");
    if (!rc && x->as_json) {
        char *s = rt_json_reals(json_dumps(all, JSON_INDENT(2) | JSON_PRESERVE_ORDER));
        if (s) fprintf(x->out, "%s\n", s);
        free(s);
    }
    json_decref(all);
    return rc;
}

int guard_explain_print(gw_db *db, const char *account, FILE *out, int as_json) {
    gw_account a;
    if (gw_account_find(db, account, &a)) return -1;
    if (!as_json) {
        char when[32];
        fmt_t(a.created_at, when, sizeof when);
        fprintf(out, "account %s (#%lld), created %s, status %s%s%s, limits rpm %lld tpm %lld\n", a.name,
                (long long)a.id, when, a.status == GW_ACCOUNT_SUSPENDED ? "suspended" : "active",
                a.reason[0] ? ": " : "", a.reason, (long long)a.limits.rpm, (long long)a.limits.tpm);
    }
    explain_ctx x = {a.id, out, as_json};
    if (gw_db_with(db, explain_fn, &x)) return RT_FAIL("%s: %s", gw_db_path(db), rt_errmsg());
    return 0;
}

/* ---------------------------------------------------------------- release */

typedef struct {
    int64_t account_id;
    int64_t group_id;
    int64_t prev_rpm; /* -1: none recorded */
    int was_throttled;
    int awaiting_verify; /* the last enforcing action since the last release is verify */
    int64_t *members;
    size_t n_members;
} release_info;

static int release_info_fn(gw_conn *c, void *ud) {
    release_info *r = ud;
    if (!gw_sql_has_table(c, "guard_actions"))
        return RT_FAIL("no guard tables: was the server run with --guard or --guard-shadow?");
    gw_stmt *st = NULL;
    r->prev_rpm = -1;
    r->group_id = r->account_id;
    /* the first throttle since the last release holds the limits to restore */
    if (gw_sql_prepare(c,
                          "SELECT action, group_id, prev_rpm FROM guard_actions WHERE account_id = ?1 AND id > "
                          "coalesce((SELECT max(id) FROM guard_actions WHERE account_id = ?1 AND action = 'release'), 0) "
                          "ORDER BY id",
                          &st, "reading guard_actions"))
        return -1;
    gw_bind_int64(st, 1, r->account_id);
    while (gw_step(st) == GW_ROW) {
        const char *act = gw_column_text(st, 0);
        r->group_id = gw_column_int64(st, 1);
        if (!strcmp(act, "throttle") && !r->was_throttled) {
            r->was_throttled = 1;
            if (!gw_column_is_null(st, 2)) r->prev_rpm = gw_column_int64(st, 2);
        }
        if (!strcmp(act, "verify")) r->awaiting_verify = 1;
        else if (!strcmp(act, "suspend")) r->awaiting_verify = 0;
    }
    gw_finalize(st);
    return 0;
}

/* The members of the account's linked group (guard_groups_read, as the dashboard shows it);
 * none when it is in no group. */
static int group_members_fn(gw_conn *c, void *ud) {
    release_info *r = ud;
    guard_group_link *l = NULL;
    size_t nl = 0, cap = 0;
    if (guard_groups_read(c, &l, &nl)) return -1;
    int64_t grp = 0;
    for (size_t i = 0; i < nl; i++)
        if (l[i].account_id == r->account_id) grp = l[i].group_id;
    for (size_t i = 0; grp && i < nl; i++) {
        if (l[i].group_id != grp) continue;
        if (RT_GROW(r->members, cap, r->n_members + 1, "group")) {
            free(l);
            return -1;
        }
        r->members[r->n_members++] = l[i].account_id;
    }
    free(l);
    return 0;
}

static int release_one(gw_db *db, int64_t id, int64_t group_id, const char *note, double now, FILE *out) {
    release_info r = {.account_id = id};
    if (gw_db_with(db, release_info_fn, &r)) return RT_FAIL("%s: %s", gw_db_path(db), rt_errmsg());
    gw_account a;
    if (gw_account_get(db, id, &a)) return -1;
    if (gw_account_set_status(db, id, GW_ACCOUNT_ACTIVE, NULL, now)) return -1;
    if (r.was_throttled) {
        gw_limits lim = {r.prev_rpm >= 0 ? r.prev_rpm : 0, -1, -1};
        if (gw_account_set_limits(db, id, &lim)) return -1;
    }
    guard_action_row row = {.t = now,
                            .account_id = id,
                            .group_id = group_id,
                            .action = "release",
                            .mode = "operator",
                            .code = "RELEASE",
                            .reason = note ? note : "released by an operator",
                            .prev_rpm = -1};
    if (guard_action_write_db(db, &row, NULL)) return -1;
    if (out)
        fprintf(out, "released %s (#%lld)%s%s\n", a.name, (long long)id,
                a.status == GW_ACCOUNT_SUSPENDED ? ": active again" : ": was not suspended",
                r.was_throttled ? ", rpm limit restored" : "");
    return 0;
}

int guard_verify_lift(gw_db *db, const char *account, const char *note, double now, FILE *out) {
    if (guard_db_init(db)) return -1;
    gw_account a;
    if (gw_account_find(db, account, &a)) return -1;
    release_info r = {.account_id = a.id};
    if (gw_db_with(db, release_info_fn, &r)) return RT_FAIL("%s: %s", gw_db_path(db), rt_errmsg());
    if (!r.awaiting_verify || a.status != GW_ACCOUNT_SUSPENDED) return 0;
    return release_one(db, a.id, r.group_id, note, now, out);
}

int guard_release(gw_db *db, const char *account, int group, const char *note, double now, FILE *out) {
    if (guard_db_init(db)) return -1;
    gw_account a;
    if (gw_account_find(db, account, &a)) return -1;
    release_info r = {.account_id = a.id};
    if (gw_db_with(db, release_info_fn, &r)) return RT_FAIL("%s: %s", gw_db_path(db), rt_errmsg());
    if (!group) return release_one(db, a.id, r.group_id, note, now, out);
    if (gw_db_with(db, group_members_fn, &r)) {
        free(r.members);
        return RT_FAIL("%s: %s", gw_db_path(db), rt_errmsg());
    }
    int rc = 0;
    int self = 0;
    for (size_t i = 0; i < r.n_members && rc == 0; i++) {
        if (r.members[i] == a.id) self = 1;
        rc = release_one(db, r.members[i], r.group_id, note, now, out);
    }
    if (rc == 0 && !self) rc = release_one(db, a.id, r.group_id, note, now, out);
    free(r.members);
    return rc;
}
