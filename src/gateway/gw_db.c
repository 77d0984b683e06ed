/*
 * gw_db.c — the gateway database: schema, accounts, API keys (hashed with libsodium,
 * compared in constant time), authentication, server config and usage summaries.
 * Not the ledger writer (gw_ledger.c) or the rate limiter (gw_limits.c).
 */
#include "gateway.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* PostgreSQL: the per-request key lookup runs on a small pool of its own connections, so
 * concurrent requests do not queue behind one round trip each (SQLite answers in-process). */
#define GW_AUTH_POOL 4

typedef struct {
    pthread_mutex_t mu;
    gw_conn *conn; /* opened on first use */
    gw_stmt *st;
} auth_slot;

struct gw_db {
    gw_conn *conn;
    char *path;
    pthread_mutex_t mu;
    gw_stmt *auth_stmt; /* cached: the per-request key lookup */
    auth_slot pool[GW_AUTH_POOL];
    unsigned next_slot;
};

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS gw_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "INSERT INTO gw_meta(key, value) VALUES('schema_version', '1') ON CONFLICT(key) DO NOTHING;"
    "CREATE TABLE IF NOT EXISTS accounts("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  status TEXT NOT NULL DEFAULT 'active' CHECK(status IN ('active','suspended')),"
    "  status_reason TEXT NOT NULL DEFAULT '',"
    "  status_changed_at REAL NOT NULL DEFAULT 0,"
    "  rpm INTEGER NOT NULL DEFAULT 0,"
    "  tpm INTEGER NOT NULL DEFAULT 0,"
    "  daily_tokens INTEGER NOT NULL DEFAULT 0,"
    "  is_admin INTEGER NOT NULL DEFAULT 0,"
    "  created_at REAL NOT NULL);"
    "CREATE TABLE IF NOT EXISTS api_keys("
    "  id INTEGER PRIMARY KEY,"
    "  account_id INTEGER NOT NULL REFERENCES accounts(id),"
    "  key_id TEXT NOT NULL UNIQUE,"
    "  hash BLOB NOT NULL,"
    "  created_at REAL NOT NULL,"
    "  revoked_at REAL);"
    "CREATE TABLE IF NOT EXISTS usage("
    "  id INTEGER PRIMARY KEY,"
    "  request_id TEXT NOT NULL,"
    "  t REAL NOT NULL,"
    "  account_id INTEGER,"
    "  key_id TEXT NOT NULL DEFAULT '',"
    "  endpoint TEXT NOT NULL,"
    "  model TEXT NOT NULL DEFAULT '',"
    "  status INTEGER NOT NULL,"
    "  error TEXT NOT NULL DEFAULT '',"
    "  prompt_tokens INTEGER NOT NULL DEFAULT 0,"
    "  completion_tokens INTEGER NOT NULL DEFAULT 0,"
    "  temperature REAL, top_p REAL, max_tokens INTEGER,"
    "  logprobs INTEGER NOT NULL DEFAULT 0, top_logprobs INTEGER NOT NULL DEFAULT 0,"
    "  n INTEGER NOT NULL DEFAULT 1, stream INTEGER NOT NULL DEFAULT 0, seed INTEGER,"
    "  latency_ms REAL NOT NULL, ttft_ms REAL,"
    "  prompt_hash TEXT NOT NULL DEFAULT '', output_hash TEXT NOT NULL DEFAULT '',"
    "  finish_reason TEXT NOT NULL DEFAULT '', client TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS usage_account_t ON usage(account_id, t);"
    "CREATE INDEX IF NOT EXISTS usage_t ON usage(t);"
    "CREATE TABLE IF NOT EXISTS server_config(key TEXT PRIMARY KEY, value TEXT NOT NULL,"
    "  updated_at REAL NOT NULL);";

/* Migrations: version N's DDL runs once, in a transaction, on a database at version N-1
 * (gw_meta's schema_version), then the version is written. Append; never edit a shipped one.
 * v2: the rate limiter's buckets in the database (gw_limits.c, shared mode): one row per
 *     account, NULL levels = full, NULL day = not yet counted.
 * v3: gw_limit_state.last_ok: the one-statement verdict (UPDATE ... RETURNING) says there
 *     whether it admitted. */
static const char *const migrations[] = {
    NULL, /* v1 is schema_sql */
    "CREATE TABLE IF NOT EXISTS gw_limit_state("
    "  account_id INTEGER NOT NULL PRIMARY KEY REFERENCES accounts(id),"
    "  t_req REAL NOT NULL, req_level REAL, t_tok REAL NOT NULL, tok_level REAL,"
    "  day INTEGER, day_used INTEGER NOT NULL DEFAULT 0);",
    "ALTER TABLE gw_limit_state ADD COLUMN last_ok INTEGER;",
};
#define GW_SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

static int schema_version(gw_conn *c, int *v) {
    *v = 0;
    gw_stmt *st = NULL;
    if (gw_sql_prepare(c, "SELECT value FROM gw_meta WHERE key = 'schema_version'", &st, "reading the schema version"))
        return -1;
    int s = gw_step(st);
    if (s == GW_ROW) *v = atoi(gw_column_text(st, 0) ? gw_column_text(st, 0) : "0");
    gw_finalize(st);
    return s == GW_ROW || s == GW_DONE ? 0 : -1;
}

/* v1 (idempotent), then every later migration the database has not had. */
static int migrate(gw_conn *c) {
    if (gw_sql_schema(c, schema_sql, "creating the gateway tables (is it a retort gateway database?)")) return -1;
    int v = 0;
    if (schema_version(c, &v)) return -1;
    if (v > GW_SCHEMA_VERSION)
        return RT_FAIL_KIND(RT_ERR_INVALID, "%s: database schema version %d is newer than this retort's (%d): upgrade retort",
                            gw_conn_name(c), v, GW_SCHEMA_VERSION);
    for (int k = v + 1; k <= GW_SCHEMA_VERSION; k++) {
        char what[64], sql[128];
        snprintf(what, sizeof what, "migrating the gateway tables to version %d", k);
        snprintf(sql, sizeof sql, "UPDATE gw_meta SET value = '%d' WHERE key = 'schema_version'", k);
        if (gw_sql_begin(c, what)) return -1;
        if ((migrations[k - 1] && gw_sql_schema(c, migrations[k - 1], what)) || gw_sql_exec(c, sql, what) ||
            gw_sql_commit(c, what)) {
            gw_sql_rollback(c);
            return -1;
        }
    }
    return 0;
}

static int db_fail(gw_db *db, const char *what) { return gw_sql_fail(db->conn, what); }

int gw_db_open(gw_db **out, const char *path) {
    *out = NULL;
    if (sodium_init() < 0) return RT_FAIL("libsodium failed to initialise");
    gw_db *db = rt_calloc(1, sizeof *db, "gateway db");
    if (!db) return -1;
    db->path = rt_strdup(path);
    if (!db->path) {
        free(db);
        return -1;
    }
    pthread_mutex_init(&db->mu, NULL);
    for (int i = 0; i < GW_AUTH_POOL; i++) pthread_mutex_init(&db->pool[i].mu, NULL);
    if (gw_conn_open(&db->conn, path, GW_OPEN_CREATE)) {
        gw_db_close(db);
        return -1;
    }
    if (!gw_conn_is_pg(db->conn) &&
        gw_sql_exec(db->conn, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
                    "setting up the gateway database")) {
        gw_db_close(db);
        return -1;
    }
    /* PostgreSQL: replicas may start together; the schema is created under an advisory lock */
    if (gw_conn_is_pg(db->conn) && gw_sql_exec(db->conn, "SELECT pg_advisory_lock(7240617)", "locking the schema")) {
        gw_db_close(db);
        return -1;
    }
    int rc = migrate(db->conn);
    if (gw_conn_is_pg(db->conn)) gw_sql_exec(db->conn, "SELECT pg_advisory_unlock(7240617)", "unlocking the schema");
    if (rc) {
        gw_db_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

void gw_db_close(gw_db *db) {
    if (!db) return;
    gw_finalize(db->auth_stmt);
    gw_conn_close(db->conn);
    for (int i = 0; i < GW_AUTH_POOL; i++) {
        gw_finalize(db->pool[i].st);
        gw_conn_close(db->pool[i].conn);
        pthread_mutex_destroy(&db->pool[i].mu);
    }
    pthread_mutex_destroy(&db->mu);
    free(db->path);
    free(db);
}

const char *gw_db_path(const gw_db *db) { return db->path; }
const char *gw_db_name(const gw_db *db) { return gw_conn_name(db->conn); }
int gw_db_is_pg(const gw_db *db) { return gw_conn_is_pg(db->conn); }

int gw_db_with(gw_db *db, int (*fn)(gw_conn *conn, void *ud), void *ud) {
    pthread_mutex_lock(&db->mu);
    int rc = fn(db->conn, ud);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

/* ---------------------------------------------------------------- helpers */

/* Read back as valid UTF-8 cut on a character boundary, whatever bytes an older version or
 * another writer left in the column: every JSON builder and log line can take it. */
static void copy_text(char *dst, size_t cap, const char *src) {
    rt_utf8_copy(dst, cap, src ? src : "");
}

static const char *const account_cols =
    "id, name, status, status_reason, status_changed_at, rpm, tpm, daily_tokens, is_admin, created_at";

static void read_account(gw_stmt *st, int c0, gw_account *a) {
    memset(a, 0, sizeof *a);
    a->id = gw_column_int64(st, c0 + 0);
    copy_text(a->name, sizeof a->name, gw_column_text(st, c0 + 1));
    const char *s = gw_column_text(st, c0 + 2);
    a->status = (s && !strcmp(s, "suspended")) ? GW_ACCOUNT_SUSPENDED : GW_ACCOUNT_ACTIVE;
    copy_text(a->reason, sizeof a->reason, gw_column_text(st, c0 + 3));
    a->status_changed_at = gw_column_double(st, c0 + 4);
    a->limits.rpm = gw_column_int64(st, c0 + 5);
    a->limits.tpm = gw_column_int64(st, c0 + 6);
    a->limits.daily_tokens = gw_column_int64(st, c0 + 7);
    a->is_admin = gw_column_int(st, c0 + 8);
    a->created_at = gw_column_double(st, c0 + 9);
}

/* [A-Za-z0-9._@+-], and not all digits: a bare number is an account id ("12" = "#12"), so
 * a name "12" would make that id unreachable by number. */
static int valid_name(const char *name) {
    size_t n = strlen(name), digits = 0;
    if (n == 0 || n >= GW_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && !strchr("._@+-", c)) return 0;
        digits += isdigit(c) != 0;
    }
    return digits < n;
}

/* base64url without padding of 32 bytes = 43 chars */
#define SECRET_BYTES 32
#define SECRET_CHARS 43

int gw_key_parse(const char *key, char key_id_out[GW_KEY_ID_LEN + 1]) {
    if (!key) return RT_FAIL("no API key given");
    size_t n = strlen(key);
    if (n != 3 + GW_KEY_ID_LEN + 1 + SECRET_CHARS || strncmp(key, "rt-", 3) != 0 || key[3 + GW_KEY_ID_LEN] != '-')
        return RT_FAIL("malformed API key (expected rt-<12 hex>-<43 characters>)");
    for (size_t i = 0; i < GW_KEY_ID_LEN; i++)
        if (!isxdigit((unsigned char)key[3 + i]) || isupper((unsigned char)key[3 + i]))
            return RT_FAIL("malformed API key id (expected 12 lower-case hex digits)");
    memcpy(key_id_out, key + 3, GW_KEY_ID_LEN);
    key_id_out[GW_KEY_ID_LEN] = '\0';
    return 0;
}

static void secret_hash(const char *secret, size_t len, unsigned char out[32]) {
    crypto_generichash(out, 32, (const unsigned char *)secret, len, NULL, 0);
}

/* ---------------------------------------------------------------- accounts and keys */

/* One account by name (name != NULL) or by id: *found 0 when there is none. */
static int account_locked(gw_db *db, const char *name, int64_t id, gw_account *out, int *found) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT %s FROM accounts WHERE %s = ?1", account_cols, name ? "name" : "id");
    gw_stmt *st = NULL;
    if (gw_sql_prepare(db->conn, sql, &st, NULL) != 0) return db_fail(db, "looking up an account");
    if (name) gw_bind_text(st, 1, name);
    else gw_bind_int64(st, 1, id);
    int rc = gw_step(st);
    *found = 0;
    if (rc == GW_ROW) {
        read_account(st, 0, out);
        *found = 1;
    } else if (rc != GW_DONE) {
        gw_finalize(st);
        return db_fail(db, "looking up an account");
    }
    gw_finalize(st);
    return 0;
}

static int find_account_locked(gw_db *db, const char *name, gw_account *out, int *found) {
    return account_locked(db, name, 0, out, found);
}

static int get_account_locked(gw_db *db, int64_t id, gw_account *out, int *found) {
    return account_locked(db, NULL, id, out, found);
}

static int exec_locked(gw_db *db, const char *sql, const char *what) { return gw_sql_exec(db->conn, sql, what); }

int gw_key_create(gw_db *db, const char *name, const gw_limits *limits, int admin, double now,
                  char key_out[GW_KEY_MAX], gw_account *acct_out) {
    if (!name || !valid_name(name))
        return RT_FAIL("account name '%s': expected 1..%d characters of letters, digits and ._@+-, not only digits (a bare number means an account id)", name ? name : "",
                       GW_NAME_MAX - 1);
    if (limits && (limits->rpm > INT64_MAX / 2 || limits->tpm > INT64_MAX / 2 || limits->daily_tokens > INT64_MAX / 2))
        return RT_FAIL("account %s: limit too large", name);
    /* the key: random id and secret */
    unsigned char idb[GW_KEY_ID_LEN / 2], secret[SECRET_BYTES];
    randombytes_buf(idb, sizeof idb);
    randombytes_buf(secret, sizeof secret);
    char key_id[GW_KEY_ID_LEN + 1];
    sodium_bin2hex(key_id, sizeof key_id, idb, sizeof idb);
    char sec_txt[SECRET_CHARS + 1];
    sodium_bin2base64(sec_txt, sizeof sec_txt, secret, sizeof secret, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(secret, sizeof secret);
    char key[GW_KEY_MAX];
    snprintf(key, sizeof key, "rt-%s-%s", key_id, sec_txt);
    unsigned char h[32];
    secret_hash(sec_txt, SECRET_CHARS, h);
    sodium_memzero(sec_txt, sizeof sec_txt);

    pthread_mutex_lock(&db->mu);
    int rc = -1, found = 0;
    gw_account a;
    gw_stmt *st = NULL;
    if (exec_locked(db, "BEGIN IMMEDIATE", "starting a transaction")) goto out;
    if (find_account_locked(db, name, &a, &found)) goto rollback;
    if (!found) {
        if (gw_sql_prepare(db->conn, "INSERT INTO accounts(name, rpm, tpm, daily_tokens, is_admin, created_at) "
                               "VALUES(?1, ?2, ?3, ?4, ?5, ?6)", &st, NULL) != 0) {
            db_fail(db, "creating an account");
            goto rollback;
        }
        gw_bind_text(st, 1, name);
        gw_bind_int64(st, 2, limits && limits->rpm > 0 ? limits->rpm : 0);
        gw_bind_int64(st, 3, limits && limits->tpm > 0 ? limits->tpm : 0);
        gw_bind_int64(st, 4, limits && limits->daily_tokens > 0 ? limits->daily_tokens : 0);
        gw_bind_int(st, 5, admin ? 1 : 0);
        gw_bind_double(st, 6, now);
    } else {
        if (gw_sql_prepare(db->conn, "UPDATE accounts SET rpm = coalesce(?2, rpm), tpm = coalesce(?3, tpm), "
                               "daily_tokens = coalesce(?4, daily_tokens), is_admin = CASE WHEN ?5 > is_admin THEN ?5 ELSE is_admin END WHERE id = ?1", &st, NULL) != 0) {
            db_fail(db, "updating an account");
            goto rollback;
        }
        gw_bind_int64(st, 1, a.id);
        const int64_t *f[3] = {limits ? &limits->rpm : NULL, limits ? &limits->tpm : NULL,
                               limits ? &limits->daily_tokens : NULL};
        for (int i = 0; i < 3; i++) {
            if (f[i] && *f[i] >= 0) gw_bind_int64(st, 2 + i, *f[i]);
            else gw_bind_null(st, 2 + i);
        }
        gw_bind_int(st, 5, admin ? 1 : 0);
    }
    if (gw_step(st) != GW_DONE) {
        db_fail(db, "writing the account");
        goto rollback;
    }
    gw_finalize(st);
    st = NULL;
    if (find_account_locked(db, name, &a, &found) || !found) goto rollback;
    if (gw_sql_prepare(db->conn, "INSERT INTO api_keys(account_id, key_id, hash, created_at) VALUES(?1, ?2, ?3, ?4)", &st, NULL) != 0) {
        db_fail(db, "storing the key");
        goto rollback;
    }
    gw_bind_int64(st, 1, a.id);
    gw_bind_text(st, 2, key_id);
    gw_bind_blob(st, 3, h, (size_t)(sizeof h));
    gw_bind_double(st, 4, now);
    if (gw_step(st) != GW_DONE) {
        db_fail(db, "storing the key");
        goto rollback;
    }
    gw_finalize(st);
    st = NULL;
    if (exec_locked(db, "COMMIT", "committing the new key")) goto rollback;
    memcpy(key_out, key, strlen(key) + 1);
    if (acct_out) *acct_out = a;
    rc = 0;
    goto out;
rollback:
    gw_finalize(st);
    st = NULL;
    gw_sql_rollback(db->conn);
out:
    sodium_memzero(key, sizeof key);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int gw_account_get(gw_db *db, int64_t id, gw_account *out) {
    pthread_mutex_lock(&db->mu);
    int found = 0;
    int rc = get_account_locked(db, id, out, &found);
    pthread_mutex_unlock(&db->mu);
    if (rc) return -1;
    if (!found) return RT_FAIL_KIND(RT_ERR_NOT_FOUND, "no account with id %lld", (long long)id);
    return 0;
}

int gw_account_find(gw_db *db, const char *name_or_id, gw_account *out) {
    if (!name_or_id || !*name_or_id) return RT_FAIL_KIND(RT_ERR_INVALID, "no account name given");
    pthread_mutex_lock(&db->mu);
    int found = 0;
    int rc = find_account_locked(db, name_or_id, out, &found);
    if (rc == 0 && !found) {
        const char *p = name_or_id[0] == '#' ? name_or_id + 1 : name_or_id;
        char *end = NULL;
        long long id = strtoll(p, &end, 10);
        if (*p && end && !*end && id > 0) rc = get_account_locked(db, id, out, &found);
    }
    pthread_mutex_unlock(&db->mu);
    if (rc) return -1;
    if (!found) return RT_FAIL_KIND(RT_ERR_NOT_FOUND, "no account named '%s' (retort keys list shows them)", name_or_id);
    return 0;
}

int gw_accounts_read(gw_conn *conn, gw_account **out, size_t *n) {
    *out = NULL;
    *n = 0;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT %s FROM accounts ORDER BY id", account_cols);
    gw_stmt *st = NULL;
    size_t cap = 0, k = 0;
    gw_account *a = NULL;
    if (gw_sql_prepare(conn, sql, &st, "listing accounts")) return -1;
    int s;
    while ((s = gw_step(st)) == GW_ROW) {
        if (RT_GROW(a, cap, k + 1, "account list")) goto fail;
        read_account(st, 0, &a[k++]);
    }
    if (s != GW_DONE) {
        gw_sql_fail(conn, "listing accounts");
        goto fail;
    }
    gw_finalize(st);
    *out = a;
    *n = k;
    return 0;
fail:
    gw_finalize(st);
    free(a);
    return -1;
}

int gw_account_list(gw_db *db, gw_account **out, size_t *n) {
    pthread_mutex_lock(&db->mu);
    int rc = gw_accounts_read(db->conn, out, n);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int gw_key_list(gw_db *db, int64_t account_id, gw_key_info **out, size_t *n) {
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&db->mu);
    gw_stmt *st = NULL;
    int rc = -1;
    size_t cap = 0, k = 0;
    gw_key_info *a = NULL;
    if (gw_sql_prepare(db->conn, "SELECT key_id, account_id, created_at, coalesce(revoked_at, 0) FROM api_keys "
                           "WHERE ?1 = 0 OR account_id = ?1 ORDER BY id", &st, NULL) != 0) {
        db_fail(db, "listing keys");
        goto out;
    }
    gw_bind_int64(st, 1, account_id);
    int s;
    while ((s = gw_step(st)) == GW_ROW) {
        if (RT_GROW(a, cap, k + 1, "key list")) goto out;
        memset(&a[k], 0, sizeof a[k]);
        copy_text(a[k].key_id, sizeof a[k].key_id, gw_column_text(st, 0));
        a[k].account_id = gw_column_int64(st, 1);
        a[k].created_at = gw_column_double(st, 2);
        a[k].revoked_at = gw_column_double(st, 3);
        k++;
    }
    if (s != GW_DONE) {
        db_fail(db, "listing keys");
        goto out;
    }
    *out = a;
    *n = k;
    a = NULL;
    rc = 0;
out:
    gw_finalize(st);
    pthread_mutex_unlock(&db->mu);
    free(a);
    return rc;
}

/* Runs a prepared UPDATE of account account_id: -1 (recorded) when it fails or no account has
 * that id. */
static int update_one_account(gw_db *db, gw_stmt *st, int64_t account_id, const char *what) {
    if (gw_step(st) != GW_DONE) return db_fail(db, what);
    if (gw_changes(db->conn) == 0) return RT_FAIL("no account with id %lld", (long long)account_id);
    return 0;
}

int gw_account_set_status(gw_db *db, int64_t account_id, gw_account_status status, const char *reason,
                          double now) {
    char r[GW_REASON_MAX]; /* sanitized and cut on a character boundary, never inside one */
    rt_utf8_copy(r, sizeof r, status == GW_ACCOUNT_SUSPENDED ? (reason && *reason ? reason : "suspended") : "");
    pthread_mutex_lock(&db->mu);
    gw_stmt *st = NULL;
    int rc = -1;
    if (gw_sql_prepare(db->conn, "UPDATE accounts SET status = ?2, status_reason = ?3, status_changed_at = ?4 WHERE id = ?1", &st, NULL) != 0) {
        db_fail(db, "changing an account's status");
        goto out;
    }
    gw_bind_int64(st, 1, account_id);
    gw_bind_text(st, 2, status == GW_ACCOUNT_SUSPENDED ? "suspended" : "active");
    gw_bind_text(st, 3, r);
    gw_bind_double(st, 4, now);
    rc = update_one_account(db, st, account_id, "changing an account's status");
out:
    gw_finalize(st);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int gw_account_set_limits(gw_db *db, int64_t account_id, const gw_limits *limits) {
    pthread_mutex_lock(&db->mu);
    gw_stmt *st = NULL;
    int rc = -1;
    if (gw_sql_prepare(db->conn, "UPDATE accounts SET rpm = coalesce(?2, rpm), tpm = coalesce(?3, tpm), "
                           "daily_tokens = coalesce(?4, daily_tokens) WHERE id = ?1", &st, NULL) != 0) {
        db_fail(db, "changing an account's limits");
        goto out;
    }
    gw_bind_int64(st, 1, account_id);
    const int64_t f[3] = {limits->rpm, limits->tpm, limits->daily_tokens};
    for (int i = 0; i < 3; i++) {
        if (f[i] >= 0) gw_bind_int64(st, 2 + i, f[i]);
        else gw_bind_null(st, 2 + i);
    }
    rc = update_one_account(db, st, account_id, "changing an account's limits");
out:
    gw_finalize(st);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int gw_key_revoke(gw_db *db, const char *key_id, double now) {
    char id[GW_KEY_ID_LEN + 1];
    if (key_id && !strncmp(key_id, "rt-", 3)) {
        if (gw_key_parse(key_id, id)) return -1;
    } else {
        if (!key_id || strlen(key_id) != GW_KEY_ID_LEN)
            return RT_FAIL("key id '%s': expected the 12 hex digits shown by retort keys list", key_id ? key_id : "");
        memcpy(id, key_id, GW_KEY_ID_LEN + 1);
    }
    pthread_mutex_lock(&db->mu);
    gw_stmt *st = NULL;
    int rc = -1;
    if (gw_sql_prepare(db->conn, "UPDATE api_keys SET revoked_at = ?2 WHERE key_id = ?1 AND revoked_at IS NULL", &st, NULL) != 0) {
        db_fail(db, "revoking a key");
        goto out;
    }
    gw_bind_text(st, 1, id);
    gw_bind_double(st, 2, now);
    if (gw_step(st) != GW_DONE) {
        db_fail(db, "revoking a key");
        goto out;
    }
    if (gw_changes(db->conn) == 0) {
        RT_FAIL("no live key with id %s (retort keys list shows them)", id);
        goto out;
    }
    rc = 0;
out:
    gw_finalize(st);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int gw_auth(gw_db *db, const char *key, gw_principal *out, gw_auth_result *res) {
    memset(out, 0, sizeof *out);
    if (!key || !*key) {
        *res = GW_AUTH_MISSING;
        return 0;
    }
    char key_id[GW_KEY_ID_LEN + 1];
    if (gw_key_parse(key, key_id)) {
        rt_err_clear();
        *res = GW_AUTH_INVALID;
        return 0;
    }
    unsigned char h[32];
    secret_hash(key + 3 + GW_KEY_ID_LEN + 1, SECRET_CHARS, h);
    *res = GW_AUTH_INVALID;
    /* the lookup's connection and statement: the db's own (SQLite), or a free pool slot */
    pthread_mutex_t *mu = &db->mu;
    gw_conn *conn = db->conn;
    gw_stmt **stp = &db->auth_stmt;
    if (gw_conn_is_pg(db->conn)) {
        unsigned first = __atomic_fetch_add(&db->next_slot, 1, __ATOMIC_RELAXED) % GW_AUTH_POOL, k = 0;
        while (k < GW_AUTH_POOL && pthread_mutex_trylock(&db->pool[(first + k) % GW_AUTH_POOL].mu) != 0) k++;
        auth_slot *slot = &db->pool[(first + (k < GW_AUTH_POOL ? k : 0)) % GW_AUTH_POOL];
        if (k == GW_AUTH_POOL) pthread_mutex_lock(&slot->mu); /* all busy: queue on one */
        mu = &slot->mu;
        if (!slot->conn && gw_conn_open(&slot->conn, db->path, 0)) {
            pthread_mutex_unlock(mu);
            return -1;
        }
        conn = slot->conn;
        stp = &slot->st;
    } else {
        pthread_mutex_lock(mu);
    }
    int rc = -1;
    if (!*stp) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "SELECT k.hash, k.revoked_at IS NOT NULL, a.id, a.name, a.status, a.status_reason, "
                 "a.status_changed_at, a.rpm, a.tpm, a.daily_tokens, a.is_admin, a.created_at "
                 "FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.key_id = ?1");
        if (gw_sql_prepare(conn, sql, stp, "preparing the key lookup") != 0) {
            *stp = NULL;
            goto out;
        }
    }
    gw_stmt *st = *stp;
    gw_reset(st);
    gw_bind_text(st, 1, key_id);
    int s = gw_step(st);
    if (s < 0 && gw_conn_is_pg(conn)) { /* a dropped connection is re-established: a read, so once more */
        gw_reset(st);
        s = gw_step(st);
    }
    if (s == GW_ROW) {
        const void *stored = gw_column_blob(st, 0);
        size_t stored_len = gw_column_bytes(st, 0);
        int revoked = gw_column_int(st, 1);
        int match = stored && stored_len == 32 && sodium_memcmp(stored, h, 32) == 0;
        if (match && !revoked) {
            read_account(st, 2, &out->account);
            memcpy(out->key_id, key_id, sizeof key_id);
            *res = GW_AUTH_OK;
        }
    } else if (s != GW_DONE) {
        gw_sql_fail(conn, "looking up a key");
        gw_reset(st);
        goto out;
    }
    gw_reset(st);
    rc = 0;
out:
    pthread_mutex_unlock(mu);
    return rc;
}

/* ---------------------------------------------------------------- usage */

/* The per-account usage summary (gw_usage's fields from account_id on, ?1 = since). */
#define USAGE_SUMS                                                                                                    \
    "count(*), sum(CASE WHEN status = 200 THEN 1 ELSE 0 END), sum(prompt_tokens), sum(completion_tokens), "   \
    "sum(CASE WHEN t >= ?1 THEN 1 ELSE 0 END), "                         \
    "sum(CASE WHEN t >= ?1 THEN prompt_tokens + completion_tokens ELSE 0 END), max(t), "                              \
    "sum(CASE WHEN status = 200 THEN completion_tokens ELSE 0 END), sum(CASE WHEN status = 403 THEN 1 ELSE 0 END)"

static void read_usage(gw_stmt *st, int c0, int64_t account_id, gw_usage *u) {
    u->account_id = account_id;
    u->requests = gw_column_int64(st, c0 + 0);
    u->ok_requests = gw_column_int64(st, c0 + 1);
    u->prompt_tokens = gw_column_int64(st, c0 + 2);
    u->completion_tokens = gw_column_int64(st, c0 + 3);
    u->requests_window = gw_column_int64(st, c0 + 4);
    u->tokens_window = gw_column_int64(st, c0 + 5);
    u->last_t = gw_column_double(st, c0 + 6);
    u->ok_completion_tokens = gw_column_int64(st, c0 + 7);
    u->refused_403 = gw_column_int64(st, c0 + 8);
}

int gw_usage_read(gw_conn *conn, double since, gw_usage **out, size_t *n) {
    *out = NULL;
    *n = 0;
    gw_stmt *st = NULL;
    size_t cap = 0, k = 0;
    gw_usage *a = NULL;
    if (gw_sql_prepare(conn,
                       "SELECT account_id, " USAGE_SUMS
                       " FROM usage WHERE account_id IS NOT NULL GROUP BY account_id ORDER BY account_id",
                       &st, "summarising usage"))
        return -1;
    gw_bind_double(st, 1, since);
    int s;
    while ((s = gw_step(st)) == GW_ROW) {
        if (RT_GROW(a, cap, k + 1, "usage list")) goto fail;
        read_usage(st, 1, gw_column_int64(st, 0), &a[k++]);
    }
    if (s != GW_DONE) {
        gw_sql_fail(conn, "summarising usage");
        goto fail;
    }
    gw_finalize(st);
    *out = a;
    *n = k;
    return 0;
fail:
    gw_finalize(st);
    free(a);
    return -1;
}

int gw_usage_by_account(gw_db *db, double since, gw_usage **out, size_t *n) {
    pthread_mutex_lock(&db->mu);
    int rc = gw_usage_read(db->conn, since, out, n);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int gw_usage_of(gw_conn *conn, int64_t account_id, double since, gw_usage *out) {
    memset(out, 0, sizeof *out);
    out->account_id = account_id;
    gw_stmt *st = NULL;
    if (gw_sql_prepare(conn, "SELECT " USAGE_SUMS " FROM usage WHERE account_id = ?2", &st, "reading the usage ledger"))
        return -1;
    gw_bind_double(st, 1, since);
    gw_bind_int64(st, 2, account_id);
    int rc = 0;
    if (gw_step(st) == GW_ROW) read_usage(st, 0, account_id, out);
    else rc = gw_sql_fail(conn, "reading the usage ledger");
    gw_finalize(st);
    return rc;
}

int gw_usage_span(gw_conn *conn, double *t0, double *t1, int64_t *rows) {
    *t0 = *t1 = NAN;
    *rows = 0;
    gw_stmt *st = NULL;
    if (gw_sql_prepare(conn,
                       "SELECT MIN(CASE WHEN endpoint LIKE '%completions' THEN t END), "
                       "MAX(CASE WHEN endpoint LIKE '%completions' THEN t END), COUNT(*) FROM usage",
                       &st, "reading the usage ledger"))
        return -1;
    int s = gw_step(st);
    if (s == GW_ROW) {
        if (!gw_column_is_null(st, 0)) *t0 = gw_column_double(st, 0);
        if (!gw_column_is_null(st, 1)) *t1 = gw_column_double(st, 1);
        *rows = gw_column_int64(st, 2);
    }
    gw_finalize(st);
    return s == GW_ROW || s == GW_DONE ? 0 : gw_sql_fail(conn, "reading the usage ledger");
}

int gw_usage_served_until(gw_conn *conn, int64_t account_id, double t, int64_t *served, int64_t *completion_tokens) {
    *served = *completion_tokens = 0;
    gw_stmt *st = NULL;
    if (gw_sql_prepare(conn,
                       "SELECT COUNT(*), COALESCE(SUM(completion_tokens), 0) FROM usage "
                       "WHERE account_id = ?1 AND status = 200 AND t <= ?2",
                       &st, "reading the usage ledger"))
        return -1;
    gw_bind_int64(st, 1, account_id);
    gw_bind_double(st, 2, t);
    int s = gw_step(st);
    if (s == GW_ROW) {
        *served = gw_column_int64(st, 0);
        *completion_tokens = gw_column_int64(st, 1);
    }
    gw_finalize(st);
    return s == GW_ROW ? 0 : gw_sql_fail(conn, "reading the usage ledger");
}

int gw_usage_scan(gw_conn *conn, int (*fn)(void *ud, const gw_usage_brief *r), void *ud) {
    gw_stmt *st = NULL;
    if (gw_sql_prepare(conn, "SELECT id, account_id, status, prompt_tokens, completion_tokens FROM usage ORDER BY id", &st,
                       "reading the usage ledger"))
        return -1;
    int rc = 0, s = GW_DONE;
    while (!rc && (s = gw_step(st)) == GW_ROW) {
        gw_usage_brief r = {.id = gw_column_int64(st, 0),
                            .account_id = gw_column_int64(st, 1),
                            .status = gw_column_int(st, 2),
                            .prompt_tokens = gw_column_int64(st, 3),
                            .completion_tokens = gw_column_int64(st, 4)};
        rc = fn(ud, &r);
    }
    if (!rc && s != GW_DONE) rc = gw_sql_fail(conn, "reading the usage ledger");
    gw_finalize(st);
    return rc;
}

int gw_usage_output_hashes(gw_conn *conn, gw_output_hash **out, size_t *n) {
    *out = NULL;
    *n = 0;
    gw_stmt *st = NULL;
    size_t cap = 0;
    if (gw_sql_prepare(conn, "SELECT output_hash, account_id FROM usage WHERE status = 200 AND output_hash != ''", &st,
                       "reading the usage ledger (is it a retort gateway database?)"))
        return -1;
    int s;
    while ((s = gw_step(st)) == GW_ROW) {
        if (RT_GROW(*out, cap, *n + 1, "ledger hashes")) goto fail;
        copy_text((*out)[*n].hash, GW_HASH_HEX, gw_column_text(st, 0));
        (*out)[*n].account_id = gw_column_int64(st, 1);
        (*n)++;
    }
    if (s != GW_DONE) {
        gw_sql_fail(conn, "reading the usage ledger");
        goto fail;
    }
    gw_finalize(st);
    return 0;
fail:
    gw_finalize(st);
    free(*out);
    *out = NULL;
    *n = 0;
    return -1;
}

int gw_usage_tokens_read(gw_conn *conn, int64_t account_id, double t0, double t1, int64_t *out) {
    *out = 0;
    gw_stmt *st = NULL;
    if (gw_sql_prepare(conn, "SELECT coalesce(sum(prompt_tokens + completion_tokens), 0) FROM usage "
                             "WHERE account_id = ?1 AND t >= ?2 AND t < ?3",
                       &st, "summing usage"))
        return -1;
    gw_bind_int64(st, 1, account_id);
    gw_bind_double(st, 2, t0);
    gw_bind_double(st, 3, t1);
    int rc = gw_step(st) == GW_ROW ? 0 : gw_sql_fail(conn, "summing usage");
    if (!rc) *out = gw_column_int64(st, 0);
    gw_finalize(st);
    return rc;
}

int gw_usage_tokens(gw_db *db, int64_t account_id, double t0, double t1, int64_t *out) {
    pthread_mutex_lock(&db->mu);
    int rc = gw_usage_tokens_read(db->conn, account_id, t0, t1, out);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

/* ---------------------------------------------------------------- config */

int gw_config_set(gw_db *db, const char *key, const char *value, double now) {
    pthread_mutex_lock(&db->mu);
    gw_stmt *st = NULL;
    int rc = -1;
    if (gw_sql_prepare(db->conn, "INSERT INTO server_config(key, value, updated_at) VALUES(?1, ?2, ?3) "
                           "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at", &st, NULL) != 0) {
        db_fail(db, "writing server config");
        goto out;
    }
    gw_bind_text(st, 1, key);
    gw_bind_text(st, 2, value);
    gw_bind_double(st, 3, now);
    if (gw_step(st) != GW_DONE) {
        db_fail(db, "writing server config");
        goto out;
    }
    rc = 0;
out:
    gw_finalize(st);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int gw_config_read(gw_conn *conn, const char *key, char **value) {
    *value = NULL;
    gw_stmt *st = NULL;
    if (gw_sql_prepare(conn, "SELECT value FROM server_config WHERE key = ?1", &st, "reading server config")) return -1;
    gw_bind_text(st, 1, key);
    int s = gw_step(st), rc = 0;
    if (s == GW_ROW) {
        *value = rt_strdup(gw_column_text(st, 0));
        if (!*value) rc = -1;
    } else if (s != GW_DONE) {
        rc = gw_sql_fail(conn, "reading server config");
    }
    gw_finalize(st);
    return rc;
}

int gw_config_get(gw_db *db, const char *key, char **value) {
    pthread_mutex_lock(&db->mu);
    int rc = gw_config_read(db->conn, key, value);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

void gw_hash_hex(const void *data, size_t len, char out[GW_HASH_HEX]) {
    unsigned char h[16];
    crypto_generichash(h, sizeof h, data, len, NULL, 0);
    sodium_bin2hex(out, GW_HASH_HEX, h, sizeof h);
}
