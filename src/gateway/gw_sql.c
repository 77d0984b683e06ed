/*
 * gw_sql.c — the one SQL layer for every room that keeps tables in the gateway database (the
 * gateway itself, src/defend's guard tables, src/report's readers): a connection to either
 * SQLite (a file path, the embedded default) or PostgreSQL through libpq (a postgres:// or
 * postgresql:// URL), and statements in SQLite's shape (prepare, bind, step, column,
 * finalize) that run on both. Callers write their SQL once, in the common dialect:
 *   - parameters as ?N or ? (translated to $N for PostgreSQL, outside quotes);
 *   - upserts with ON CONFLICT, new ids with RETURNING id, sums of conditions as
 *     sum(CASE WHEN ... THEN 1 ELSE 0 END), two-argument max/min as CASE;
 *   - DDL through gw_sql_schema, which maps SQLite's column types to PostgreSQL's (INTEGER
 *     PRIMARY KEY -> BIGINT identity, INTEGER -> BIGINT, REAL -> DOUBLE PRECISION, BLOB ->
 *     BYTEA); transactions through gw_sql_begin (BEGIN IMMEDIATE on SQLite, BEGIN on
 *     PostgreSQL; gw_sql_exec maps the literal "BEGIN IMMEDIATE" too); a trailing " FOR UPDATE"
 *     is dropped on SQLite (its writers already hold the whole file).
 * On PostgreSQL a statement is run with PQexecParams the first time and prepared on the
 * server the second time it is stepped (statements kept and reset, like the key lookup), with
 * int8/float8/bytea parameter types; results come as text and are converted on read
 * (booleans read as 1/0, bytea's hex decoded).
 * Errors: "<database>: <what>: <message>" with kind BUSY (locked database, serialization
 * failure, deadlock), NOMEM, or IO. Not a query builder, not a pool: one connection is used
 * by one thread at a time (the caller's lock).
 */
#include <libpq-fe.h>
#include <math.h>
#include <poll.h>
#include <time.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_FLOAT8 701

struct gw_conn {
    sqlite3 *lite;
    PGconn *pg;
    char *name;          /* the file, or "postgresql database X on H" (never the password) */
    char err[512];       /* PostgreSQL's last message */
    rt_err_kind err_kind;
    int64_t changes;     /* rows changed by the last statement (PostgreSQL) */
    unsigned long n_prepared; /* names of server-side prepared statements */
    unsigned gen;        /* bumped when the connection was re-established (prepared ones are gone) */
};

/* A connection the server dropped (restart, failover) is re-established once before the next
 * statement; what failed meanwhile has failed (and a transaction in progress is lost). */
static void pg_revive(gw_conn *c) {
    if (PQstatus(c->pg) != CONNECTION_BAD) return;
    PQreset(c->pg);
    if (PQstatus(c->pg) == CONNECTION_OK) {
        c->gen++;
        rt_warn("%s: reconnected", c->name);
    }
}

struct gw_stmt {
    gw_conn *c;
    sqlite3_stmt *lite;
    char what[120];
    /* PostgreSQL */
    char *sql; /* translated to $N */
    int np;    /* parameters ($1..$np) */
    char **val;
    int *len, *fmt;
    unsigned *type;
    unsigned *prep_type; /* the types it was prepared with */
    char prep_name[32];  /* "" until prepared */
    unsigned prep_gen;   /* the connection's gen when prepared */
    int runs;
    PGresult *res;
    int row, nrows;
    unsigned char **blob; /* decoded bytea per column of the current row */
    size_t *blob_len;
    int nblob;
};

int gw_db_is_url(const char *db) {
    return db && (!strncmp(db, "postgres://", 11) || !strncmp(db, "postgresql://", 13));
}

int gw_conn_is_pg(const gw_conn *c) { return c && c->pg; }
const char *gw_conn_name(const gw_conn *c) { return c ? c->name : "database"; }
sqlite3 *gw_conn_sqlite(gw_conn *c) { return c ? c->lite : NULL; }

/* ---------------------------------------------------------------- errors */

static rt_err_kind pg_kind(const PGresult *r) {
    const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!s) return RT_ERR_IO;
    if (!strcmp(s, "40001") || !strcmp(s, "40P01") || !strcmp(s, "55P03") || !strcmp(s, "57014")) return RT_ERR_BUSY;
    if (!strcmp(s, "53200")) return RT_ERR_NOMEM;
    return RT_ERR_IO;
}

static void pg_note(gw_conn *c, const PGresult *r) {
    const char *m = r ? PQresultErrorMessage(r) : NULL;
    if (!m || !*m) m = PQerrorMessage(c->pg);
    snprintf(c->err, sizeof c->err, "%s", m && *m ? m : "unknown PostgreSQL error");
    size_t n = strlen(c->err);
    while (n && (c->err[n - 1] == '\n' || c->err[n - 1] == ' ')) c->err[--n] = '\0';
    c->err_kind = r ? pg_kind(r) : RT_ERR_IO;
}

int gw_sql_fail(gw_conn *c, const char *what) {
    if (!c) return RT_FAIL_KIND(RT_ERR_IO, "database: %s: cannot open", what ? what : "SQL");
    if (c->pg) return RT_FAIL_KIND(c->err_kind, "%s: %s: %s", c->name, what ? what : "SQL", c->err);
    int code = sqlite3_errcode(c->lite) & 0xff;
    rt_err_kind k = code == SQLITE_BUSY || code == SQLITE_LOCKED ? RT_ERR_BUSY
                    : code == SQLITE_NOMEM                       ? RT_ERR_NOMEM
                                                                 : RT_ERR_IO;
    return RT_FAIL_KIND(k, "%s: %s: %s", c->name, what ? what : "SQL", sqlite3_errmsg(c->lite));
}

/* ---------------------------------------------------------------- connections */

static void quiet_notices(void *ud, const char *msg) {
    (void)ud;
    (void)msg; /* "relation already exists, skipping" and the like */
}

int gw_conn_open(gw_conn **out, const char *db, int flags) {
    *out = NULL;
    if (!db || !*db) return RT_FAIL_KIND(RT_ERR_INVALID, "no database given (--db PATH or postgres://...)");
    gw_conn *c = rt_calloc(1, sizeof *c, "database connection");
    if (!c) return -1;
    if (gw_db_is_url(db)) {
        c->pg = PQconnectdb(db);
        if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
            char m[400];
            snprintf(m, sizeof m, "%s", c->pg ? PQerrorMessage(c->pg) : "out of memory");
            size_t n = strlen(m);
            while (n && (m[n - 1] == '\n' || m[n - 1] == ' ')) m[--n] = '\0';
            RT_FAIL_KIND(RT_ERR_IO, "cannot connect to PostgreSQL (%s): %s (check the --db URL and that the server runs)",
                         PQdb(c->pg) ? PQdb(c->pg) : "?", m);
            gw_conn_close(c);
            return -1;
        }
        PQsetNoticeProcessor(c->pg, quiet_notices, NULL);
        char name[300];
        const char *h = PQhost(c->pg);
        snprintf(name, sizeof name, "postgresql database '%s' on %s", PQdb(c->pg), h && *h ? h : "localhost");
        c->name = rt_strdup(name);
        if (!c->name) {
            gw_conn_close(c);
            return -1;
        }
        *out = c;
        return 0;
    }
    c->name = rt_strdup(db);
    if (!c->name) {
        free(c);
        return -1;
    }
    int f = (flags & GW_OPEN_READONLY) ? SQLITE_OPEN_READONLY
                                       : SQLITE_OPEN_READWRITE | ((flags & GW_OPEN_CREATE) ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(db, &c->lite, f | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        RT_FAIL_KIND(RT_ERR_IO, "%s: cannot open the database: %s (check the --db path and its directory)", db,
                     c->lite ? sqlite3_errmsg(c->lite) : sqlite3_errstr(rc));
        gw_conn_close(c);
        return -1;
    }
    sqlite3_busy_timeout(c->lite, 5000);
    *out = c;
    return 0;
}

void gw_conn_close(gw_conn *c) {
    if (!c) return;
    if (c->lite) sqlite3_close(c->lite);
    if (c->pg) PQfinish(c->pg);
    free(c->name);
    free(c);
}

int64_t gw_changes(gw_conn *c) { return c->pg ? c->changes : (int64_t)sqlite3_changes(c->lite); }

/* ---------------------------------------------------------------- SQL text */

/* ?N -> $N and ? -> $(k) outside '...' and "..."; *np gets the highest parameter number. */
static char *to_dollar(const char *sql, int *np) {
    size_t n = strlen(sql);
    char *o = rt_malloc(n * 4 + 16, "SQL text");
    if (!o) return NULL;
    size_t k = 0;
    int hi = 0;
    char q = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = sql[i];
        if (q) {
            if (ch == q) q = 0;
            o[k++] = ch;
        } else if (ch == '\'' || ch == '"') {
            q = ch;
            o[k++] = ch;
        } else if (ch == '?') {
            int num = 0;
            size_t j = i + 1;
            while (j < n && sql[j] >= '0' && sql[j] <= '9' && num < 100000) num = num * 10 + (sql[j++] - '0');
            if (j == i + 1) num = hi + 1;
            if (num > hi) hi = num;
            k += (size_t)snprintf(o + k, 16, "$%d", num);
            i = j - 1;
        } else {
            o[k++] = ch;
        }
    }
    o[k] = '\0';
    *np = hi;
    return o;
}

/* SQLite's column types to PostgreSQL's, word by word, outside quotes. */
static char *pg_ddl(const char *sql) {
    static const char *const map[][2] = {
        {"INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"},
        {"INTEGER", "BIGINT"},
        {"REAL", "DOUBLE PRECISION"},
        {"BLOB", "BYTEA"},
    };
    size_t n = strlen(sql);
    char *o = rt_malloc(n * 4 + 1, "SQL text");
    if (!o) return NULL;
    size_t k = 0;
    char q = 0;
    for (size_t i = 0; i < n;) {
        char ch = sql[i];
        if (q) {
            if (ch == q) q = 0;
            o[k++] = sql[i++];
            continue;
        }
        if (ch == '\'' || ch == '"') {
            q = ch;
            o[k++] = sql[i++];
            continue;
        }
        int word_start = i == 0 || !(sql[i - 1] == '_' || (sql[i - 1] >= 'A' && sql[i - 1] <= 'Z') ||
                                     (sql[i - 1] >= 'a' && sql[i - 1] <= 'z') || (sql[i - 1] >= '0' && sql[i - 1] <= '9'));
        size_t m = 0;
        for (size_t t = 0; word_start && t < sizeof map / sizeof map[0]; t++) {
            size_t l = strlen(map[t][0]);
            char nx = sql[i + l < n ? i + l : n];
            if (!strncmp(sql + i, map[t][0], l) &&
                !(nx == '_' || (nx >= 'A' && nx <= 'Z') || (nx >= 'a' && nx <= 'z') || (nx >= '0' && nx <= '9'))) {
                size_t r = strlen(map[t][1]);
                memcpy(o + k, map[t][1], r);
                k += r;
                m = l;
                break;
            }
        }
        if (m) i += m;
        else o[k++] = sql[i++];
    }
    o[k] = '\0';
    return o;
}

/* ---------------------------------------------------------------- statements without rows */

static int pg_exec(gw_conn *c, const char *sql, const char *what) {
    pg_revive(c);
    PGresult *r = PQexec(c->pg, sql);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        pg_note(c, r);
        PQclear(r);
        return gw_sql_fail(c, what);
    }
    c->changes = atoll(PQcmdTuples(r));
    PQclear(r);
    return 0;
}

int gw_sql_exec(gw_conn *c, const char *sql, const char *what) {
    if (c->pg) return pg_exec(c, strcmp(sql, "BEGIN IMMEDIATE") ? sql : "BEGIN", what);
    char *err = NULL;
    if (sqlite3_exec(c->lite, sql, NULL, NULL, &err) == SQLITE_OK) return 0;
    int code = sqlite3_errcode(c->lite) & 0xff;
    int rc = RT_FAIL_KIND(code == SQLITE_BUSY || code == SQLITE_LOCKED ? RT_ERR_BUSY : RT_ERR_IO, "%s: %s: %s", c->name,
                          what ? what : "SQL", err ? err : sqlite3_errmsg(c->lite));
    sqlite3_free(err);
    return rc;
}

/* PostgreSQL: replicas starting together would race on CREATE ... IF NOT EXISTS (a unique
 * violation in the catalog), so DDL runs under a session advisory lock (reentrant). */
#define GW_SCHEMA_LOCK "7240617"

int gw_sql_schema(gw_conn *c, const char *ddl, const char *what) {
    if (!c->pg) return gw_sql_exec(c, ddl, what);
    char *t = pg_ddl(ddl);
    if (!t) return -1;
    int rc = pg_exec(c, "SELECT pg_advisory_lock(" GW_SCHEMA_LOCK ")", "locking the schema");
    if (!rc) {
        rc = pg_exec(c, t, what);
        PQclear(PQexec(c->pg, "SELECT pg_advisory_unlock(" GW_SCHEMA_LOCK ")"));
    }
    free(t);
    return rc;
}

int gw_sql_begin(gw_conn *c, const char *what) { return gw_sql_exec(c, c->pg ? "BEGIN" : "BEGIN IMMEDIATE", what); }
int gw_sql_commit(gw_conn *c, const char *what) { return gw_sql_exec(c, "COMMIT", what); }
void gw_sql_rollback(gw_conn *c) {
    if (c->pg) {
        PQclear(PQexec(c->pg, "ROLLBACK"));
    } else {
        sqlite3_exec(c->lite, "ROLLBACK", NULL, NULL, NULL);
    }
}

int gw_sql_has_table(gw_conn *c, const char *name) {
    gw_stmt *st = NULL;
    const char *sql = c->pg ? "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() "
                              "AND table_name = ?1"
                            : "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1";
    if (gw_sql_prepare(c, sql, &st, "looking for a table")) {
        rt_err_clear();
        return 0;
    }
    gw_bind_text(st, 1, name);
    int found = gw_step(st) == GW_ROW;
    gw_finalize(st);
    rt_err_clear();
    return found;
}

/* ---------------------------------------------------------------- statements */

int gw_sql_prepare(gw_conn *c, const char *sql, gw_stmt **out, const char *what) {
    *out = NULL;
    gw_stmt *st = rt_calloc(1, sizeof *st, "SQL statement");
    if (!st) return -1;
    st->c = c;
    snprintf(st->what, sizeof st->what, "%s", what ? what : "SQL");
    if (!c->pg) {
        /* SQLite has no row locks: a writer's BEGIN IMMEDIATE already holds the whole file */
        size_t n = strlen(sql), fu = strlen(" FOR UPDATE");
        int nbytes = n >= fu && !strcmp(sql + n - fu, " FOR UPDATE") ? (int)(n - fu) : -1;
        if (sqlite3_prepare_v2(c->lite, sql, nbytes, &st->lite, NULL) != SQLITE_OK) {
            free(st);
            return gw_sql_fail(c, what);
        }
        *out = st;
        return 0;
    }
    st->sql = to_dollar(sql, &st->np);
    if (!st->sql) goto fail;
    if (st->np > 0) {
        size_t np = (size_t)st->np;
        st->val = rt_calloc(np, sizeof *st->val, "SQL parameters");
        st->len = rt_calloc(np, sizeof *st->len, "SQL parameters");
        st->fmt = rt_calloc(np, sizeof *st->fmt, "SQL parameters");
        st->type = rt_calloc(np, sizeof *st->type, "SQL parameters");
        st->prep_type = rt_calloc(np, sizeof *st->prep_type, "SQL parameters");
        if (!st->val || !st->len || !st->fmt || !st->type || !st->prep_type) goto fail;
    }
    st->row = -1;
    *out = st;
    return 0;
fail:
    gw_finalize(st);
    return -1;
}

static void pg_clear_result(gw_stmt *st) {
    for (int i = 0; i < st->nblob; i++) free(st->blob[i]);
    free(st->blob);
    free(st->blob_len);
    st->blob = NULL;
    st->blob_len = NULL;
    st->nblob = 0;
    PQclear(st->res);
    st->res = NULL;
    st->row = -1;
    st->nrows = 0;
}

void gw_finalize(gw_stmt *st) {
    if (!st) return;
    if (st->lite) sqlite3_finalize(st->lite);
    if (st->c && st->c->pg) {
        pg_clear_result(st);
        if (st->prep_name[0]) {
            char sql[64];
            snprintf(sql, sizeof sql, "DEALLOCATE %s", st->prep_name);
            PQclear(PQexec(st->c->pg, sql));
        }
        for (int i = 0; i < st->np; i++) free(st->val[i]);
    }
    free(st->val);
    free(st->len);
    free(st->fmt);
    free(st->type);
    free(st->prep_type);
    free(st->sql);
    free(st);
}

int gw_reset(gw_stmt *st) {
    if (st->lite) return sqlite3_reset(st->lite) == SQLITE_OK ? 0 : -1;
    pg_clear_result(st);
    return 0;
}

void gw_clear_bindings(gw_stmt *st) {
    if (st->lite) {
        sqlite3_clear_bindings(st->lite);
        return;
    }
    for (int i = 0; i < st->np; i++) {
        free(st->val[i]);
        st->val[i] = NULL;
        st->type[i] = 0;
        st->fmt[i] = 0;
        st->len[i] = 0;
    }
}

/* PostgreSQL: keep a copy of the value's text (or bytes) for parameter i (1-based). */
static int pg_bind(gw_stmt *st, int i, const void *v, size_t n, unsigned type, int binary) {
    if (i < 1 || i > st->np) return RT_FAIL("%s: %s: parameter %d out of range (1..%d)", st->c->name, st->what, i, st->np);
    i--;
    free(st->val[i]);
    st->val[i] = NULL;
    st->type[i] = type;
    st->fmt[i] = binary;
    st->len[i] = (int)n;
    if (!v) return 0;
    st->val[i] = rt_malloc(n + 1, "SQL parameter");
    if (!st->val[i]) return -1;
    if (n) memcpy(st->val[i], v, n);
    st->val[i][n] = '\0';
    return 0;
}

int gw_bind_int64(gw_stmt *st, int i, int64_t v) {
    if (st->lite) return sqlite3_bind_int64(st->lite, i, v) == SQLITE_OK ? 0 : gw_sql_fail(st->c, st->what);
    char b[24];
    int n = snprintf(b, sizeof b, "%lld", (long long)v);
    return pg_bind(st, i, b, (size_t)n, OID_INT8, 0);
}

int gw_bind_int(gw_stmt *st, int i, int v) { return gw_bind_int64(st, i, v); }

int gw_bind_double(gw_stmt *st, int i, double v) {
    if (st->lite) return sqlite3_bind_double(st->lite, i, v) == SQLITE_OK ? 0 : gw_sql_fail(st->c, st->what);
    char b[40];
    int n = isnan(v) ? snprintf(b, sizeof b, "NaN")
            : isinf(v) ? snprintf(b, sizeof b, "%sInfinity", v < 0 ? "-" : "")
                       : snprintf(b, sizeof b, "%.17g", v);
    return pg_bind(st, i, b, (size_t)n, OID_FLOAT8, 0);
}

int gw_bind_text(gw_stmt *st, int i, const char *s) {
    if (st->lite)
        return sqlite3_bind_text(st->lite, i, s, -1, SQLITE_TRANSIENT) == SQLITE_OK ? 0 : gw_sql_fail(st->c, st->what);
    return pg_bind(st, i, s, s ? strlen(s) : 0, 0, 0);
}

int gw_bind_blob(gw_stmt *st, int i, const void *p, size_t n) {
    if (st->lite)
        return sqlite3_bind_blob(st->lite, i, p ? p : "", (int)n, SQLITE_TRANSIENT) == SQLITE_OK
                   ? 0
                   : gw_sql_fail(st->c, st->what);
    return pg_bind(st, i, p ? p : "", n, OID_BYTEA, 1);
}

int gw_bind_null(gw_stmt *st, int i) {
    if (st->lite) return sqlite3_bind_null(st->lite, i) == SQLITE_OK ? 0 : gw_sql_fail(st->c, st->what);
    return pg_bind(st, i, NULL, 0, 0, 0);
}

/* Run the statement on the server: by PQexecParams the first time, prepared afterwards. */
static PGresult *pg_run(gw_stmt *st) {
    PGconn *pg = st->c->pg;
    pg_revive(st->c);
    if (st->prep_gen != st->c->gen) st->prep_name[0] = '\0'; /* the server forgot it */
    const char *const *vals = (const char *const *)st->val;
    int same = st->prep_name[0] != '\0';
    for (int i = 0; same && i < st->np; i++) same = st->type[i] == st->prep_type[i] || st->type[i] == 0;
    if (!same && st->runs >= 1) {
        if (st->prep_name[0]) {
            char sql[64];
            snprintf(sql, sizeof sql, "DEALLOCATE %s", st->prep_name);
            PQclear(PQexec(pg, sql));
            st->prep_name[0] = '\0';
        }
        char name[32];
        snprintf(name, sizeof name, "gw%lu", ++st->c->n_prepared);
        PGresult *p = PQprepare(pg, name, st->sql, st->np, st->type);
        if (PQresultStatus(p) != PGRES_COMMAND_OK) return p;
        PQclear(p);
        memcpy(st->prep_name, name, sizeof name);
        st->prep_gen = st->c->gen;
        if (st->np) memcpy(st->prep_type, st->type, (size_t)st->np * sizeof *st->type);
        same = 1;
    }
    st->runs++;
    if (same) return PQexecPrepared(pg, st->prep_name, st->np, vals, st->len, st->fmt, 0);
    return PQexecParams(pg, st->sql, st->np, st->type, vals, st->len, st->fmt, 0);
}

int gw_step(gw_stmt *st) {
    if (st->lite) {
        int s = sqlite3_step(st->lite);
        if (s == SQLITE_ROW) return GW_ROW;
        if (s == SQLITE_DONE) return GW_DONE;
        gw_sql_fail(st->c, st->what);
        return -1;
    }
    if (!st->res) {
        PGresult *r = pg_run(st);
        ExecStatusType s = PQresultStatus(r);
        if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
            pg_note(st->c, r);
            PQclear(r);
            gw_sql_fail(st->c, st->what);
            return -1;
        }
        st->res = r;
        st->nrows = s == PGRES_TUPLES_OK ? PQntuples(r) : 0;
        st->row = -1;
        st->c->changes = atoll(PQcmdTuples(r));
        int nf = PQnfields(r);
        if (nf > 0) {
            st->blob = rt_calloc((size_t)nf, sizeof *st->blob, "SQL row");
            st->blob_len = rt_calloc((size_t)nf, sizeof *st->blob_len, "SQL row");
            if (!st->blob || !st->blob_len) return -1;
            st->nblob = nf;
        }
    }
    for (int i = 0; i < st->nblob; i++) {
        free(st->blob[i]);
        st->blob[i] = NULL;
    }
    if (st->row + 1 < st->nrows) {
        st->row++;
        return GW_ROW;
    }
    st->row = st->nrows;
    return GW_DONE;
}

int gw_sql_step_done(gw_conn *c, gw_stmt *st, const char *what) {
    return gw_step(st) == GW_DONE ? 0 : gw_sql_fail(c, what);
}

/* ---------------------------------------------------------------- columns */

static const char *pg_cell(gw_stmt *st, int i) {
    if (!st->res || st->row < 0 || st->row >= st->nrows || i < 0 || i >= PQnfields(st->res)) return NULL;
    if (PQgetisnull(st->res, st->row, i)) return NULL;
    return PQgetvalue(st->res, st->row, i);
}

int gw_column_count(gw_stmt *st) { return st->lite ? sqlite3_column_count(st->lite) : st->res ? PQnfields(st->res) : 0; }

const char *gw_column_name(gw_stmt *st, int i) {
    if (st->lite) return sqlite3_column_name(st->lite, i);
    return st->res && i >= 0 && i < PQnfields(st->res) ? PQfname(st->res, i) : NULL;
}

int gw_column_type(gw_stmt *st, int i) {
    if (st->lite) return sqlite3_column_type(st->lite, i); /* the same numbers */
    if (!pg_cell(st, i)) return GW_NULL;
    switch (PQftype(st->res, i)) {
    case OID_BOOL: case 21: case 23: case OID_INT8: return GW_INTEGER;
    case 700: case OID_FLOAT8: case 1700: return GW_FLOAT;
    case OID_BYTEA: return GW_BLOB;
    default: return GW_TEXT;
    }
}

int gw_column_is_null(gw_stmt *st, int i) {
    if (st->lite) return sqlite3_column_type(st->lite, i) == SQLITE_NULL;
    return pg_cell(st, i) == NULL;
}

int64_t gw_column_int64(gw_stmt *st, int i) {
    if (st->lite) return sqlite3_column_int64(st->lite, i);
    const char *v = pg_cell(st, i);
    if (!v) return 0;
    if (PQftype(st->res, i) == OID_BOOL) return v[0] == 't';
    if (strpbrk(v, ".eEnN")) return (int64_t)strtod(v, NULL); /* a float column read as an integer */
    return strtoll(v, NULL, 10);
}

int gw_column_int(gw_stmt *st, int i) { return (int)gw_column_int64(st, i); }

double gw_column_double(gw_stmt *st, int i) {
    if (st->lite) return sqlite3_column_double(st->lite, i);
    const char *v = pg_cell(st, i);
    if (!v) return 0;
    if (PQftype(st->res, i) == OID_BOOL) return v[0] == 't';
    return strtod(v, NULL);
}

const char *gw_column_text(gw_stmt *st, int i) {
    if (st->lite) return (const char *)sqlite3_column_text(st->lite, i);
    return pg_cell(st, i);
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

const void *gw_column_blob(gw_stmt *st, int i) {
    if (st->lite) return sqlite3_column_blob(st->lite, i);
    const char *v = pg_cell(st, i);
    if (!v || i >= st->nblob) return NULL;
    if (st->blob[i]) return st->blob[i];
    if (PQftype(st->res, i) != OID_BYTEA || v[0] != '\\' || v[1] != 'x') {
        size_t n = strlen(v); /* text read as bytes */
        st->blob[i] = rt_malloc(n + 1, "SQL value");
        if (!st->blob[i]) return NULL;
        memcpy(st->blob[i], v, n + 1);
        st->blob_len[i] = n;
        return st->blob[i];
    }
    size_t n = (strlen(v) - 2) / 2;
    unsigned char *b = rt_malloc(n + 1, "SQL value");
    if (!b) return NULL;
    for (size_t k = 0; k < n; k++) {
        int hi = hexval(v[2 + 2 * k]), lo = hexval(v[3 + 2 * k]);
        b[k] = (unsigned char)((hi < 0 ? 0 : hi) << 4 | (lo < 0 ? 0 : lo));
    }
    st->blob[i] = b;
    st->blob_len[i] = n;
    return b;
}

size_t gw_column_bytes(gw_stmt *st, int i) {
    if (st->lite) return (size_t)sqlite3_column_bytes(st->lite, i);
    if (!gw_column_blob(st, i)) return 0;
    return st->blob_len[i];
}

/* ---------------------------------------------------------------- notifications */

int gw_conn_listen(gw_conn *c, const char *channel) {
    if (!c->pg) return 0;
    char sql[160];
    snprintf(sql, sizeof sql, "LISTEN %s", channel);
    return pg_exec(c, sql, "listening for notifications");
}

static int pg_drain_notifies(gw_conn *c) {
    int got = 0;
    PGnotify *n;
    while ((n = PQnotifies(c->pg)) != NULL) {
        got = 1;
        PQfreemem(n);
    }
    return got;
}

int gw_conn_wait(gw_conn *c, double timeout_s) {
    if (timeout_s < 0) timeout_s = 0;
    if (!c->pg) {
        struct timespec ts = {(time_t)timeout_s, (long)((timeout_s - (double)(time_t)timeout_s) * 1e9)};
        nanosleep(&ts, NULL);
        return 0;
    }
    if (!PQconsumeInput(c->pg)) {
        pg_note(c, NULL);
        return gw_sql_fail(c, "waiting for notifications");
    }
    if (pg_drain_notifies(c)) return 1;
    struct pollfd p = {.fd = PQsocket(c->pg), .events = POLLIN};
    int r = poll(&p, 1, (int)(timeout_s * 1000));
    if (r > 0 && !PQconsumeInput(c->pg)) {
        pg_note(c, NULL);
        return gw_sql_fail(c, "waiting for notifications");
    }
    return pg_drain_notifies(c);
}
