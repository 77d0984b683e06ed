/*
 * gateway.h — the gateway room: accounts and API keys, per-account rate limits and quotas,
 * the usage ledger and the server's config, all in ONE SQLite database (WAL mode), so the
 * server, `retort keys`, the guard and the admin dashboard see the same state.
 *
 * Tables (created by gw_db_open when absent; the guard adds its own beside them):
 *   gw_meta(key PRIMARY KEY, value)                      schema version
 *   accounts(id, name UNIQUE, status 'active'|'suspended', status_reason, status_changed_at,
 *            rpm, tpm, daily_tokens (0 = unlimited), is_admin, created_at)
 *   api_keys(id, account_id, key_id UNIQUE, hash BLOB(32), created_at, revoked_at NULL)
 *   usage(id, request_id, t, account_id NULL, key_id, endpoint, model, status, error,
 *         prompt_tokens, completion_tokens, temperature, top_p, max_tokens, logprobs,
 *         top_logprobs, n, stream, seed NULL, latency_ms, ttft_ms NULL, prompt_hash,
 *         output_hash, finish_reason, client)          one row per request (the ledger)
 *   server_config(key PRIMARY KEY, value, updated_at)   model, watermark scheme, ...
 *
 * Keys look like "rt-<key_id: 12 hex>-<secret: 43 base64url chars = 32 random bytes>". Only
 * BLAKE2b-256(secret) is stored; a presented key is found by its public key_id and its
 * secret's hash compared with sodium_memcmp (constant time). The full key is shown once.
 *
 * Time: every function that records or judges time takes `now` (Unix seconds) from the
 * caller, so the server can run on an injected clock (serve's --sim-clock) and a simulated
 * day replays in minutes. Latencies are measured separately, on the monotonic clock.
 *
 * Thread safety: a gw_db serialises its own use with a mutex (one connection); the ledger
 * writer owns a second connection on its own thread. Several processes may open the same
 * file (WAL; busy timeout 5 s).
 *
 * What this is not: the HTTP layer (src/serve), or the guard's detectors (src/guard).
 */
#ifndef RETORT_GATEWAY_H
#define RETORT_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

typedef struct sqlite3 sqlite3;

/* ---------------------------------------------------------------- database */

typedef struct gw_db gw_db;
/* Open (creating the file and the tables if needed) with WAL journaling. */
int gw_db_open(gw_db **out, const char *path);
void gw_db_close(gw_db *db);
const char *gw_db_path(const gw_db *db);
/* Run fn with the raw connection while holding the db's lock (for rooms that add their own
 * tables, e.g. the guard). fn returns 0 or -1 (after RT_FAIL). */
int gw_db_with(gw_db *db, int (*fn)(sqlite3 *conn, void *ud), void *ud);
/* Does the database behind conn have a table of this name? (0 also when it cannot be asked) */
int gw_sql_has_table(sqlite3 *conn, const char *name);

/* The SQL helper layer (gw_sql.c) for every room with tables in this database; each room's
 * tables keep one owner (docs/architecture.md), this is only how owners talk SQL.
 * gw_sql_fail records "<file>: <what>: <SQLite's message>" with kind BUSY (locked database),
 * NOMEM, or IO, and returns -1. The others return 0 or fail that way. */
typedef struct sqlite3_stmt sqlite3_stmt;
int gw_sql_fail(sqlite3 *conn, const char *what);
int gw_sql_prepare(sqlite3 *conn, const char *sql, sqlite3_stmt **st, const char *what);
int gw_sql_exec(sqlite3 *conn, const char *sql, const char *what);
/* Step a statement that returns no rows (INSERT, UPDATE, DELETE). */
int gw_sql_step_done(sqlite3 *conn, sqlite3_stmt *st, const char *what);

/* ---------------------------------------------------------------- accounts and keys */

#define GW_NAME_MAX 128   /* account names: 1..127 bytes of [A-Za-z0-9._@+-], not all digits */
#define GW_REASON_MAX 256 /* suspension reasons are cut to fit, on a character boundary */
#define GW_KEY_ID_LEN 12  /* hex characters of the public key id */
#define GW_KEY_MAX 64     /* room for a whole key string and its NUL */

typedef enum { GW_ACCOUNT_ACTIVE = 0, GW_ACCOUNT_SUSPENDED = 1 } gw_account_status;

/* Per-account limits; 0 = unlimited. */
typedef struct {
    int64_t rpm;          /* requests per minute (token bucket, burst = rpm) */
    int64_t tpm;          /* prompt + completion tokens per minute (burst = tpm) */
    int64_t daily_tokens; /* prompt + completion tokens per UTC day of the clock */
} gw_limits;

typedef struct {
    int64_t id;
    char name[GW_NAME_MAX];
    gw_account_status status;
    char reason[GW_REASON_MAX]; /* why suspended ("" when active) */
    double status_changed_at;   /* 0 if never */
    gw_limits limits;
    int is_admin;
    double created_at;
} gw_account;

typedef struct {
    char key_id[GW_KEY_ID_LEN + 1];
    int64_t account_id;
    double created_at;
    double revoked_at; /* 0 = live */
} gw_key_info;

/* Create a key for account `name`, creating the account if it does not exist. `limits`
 * (may be NULL) sets the account's limits: on a new account NULL means unlimited; on an
 * existing one, fields < 0 keep their value. admin: 1 makes the account an admin (admins
 * may call /admin/api/), 0 leaves it as it is. The key is written to key_out once. */
int gw_key_create(gw_db *db, const char *name, const gw_limits *limits, int admin, double now,
                  char key_out[GW_KEY_MAX], gw_account *acct_out);
/* Look up an account by name or by decimal id ("#12" or "12" when no account has that
 * name). Fails with "no account named ..." when absent. */
int gw_account_find(gw_db *db, const char *name_or_id, gw_account *out);
int gw_account_get(gw_db *db, int64_t id, gw_account *out);
/* All accounts, by id. *out malloc'ed. */
int gw_account_list(gw_db *db, gw_account **out, size_t *n);
/* Keys of one account (account_id > 0) or of all (0). *out malloc'ed. */
int gw_key_list(gw_db *db, int64_t account_id, gw_key_info **out, size_t *n);
/* Suspend (with a reason) or resume an account. Takes effect on the account's next request. */
int gw_account_set_status(gw_db *db, int64_t account_id, gw_account_status status, const char *reason,
                          double now);
/* Replace an account's limits; fields < 0 keep their value (the guard's throttle lowers rpm
 * and restores it on release). Takes effect on the account's next request. */
int gw_account_set_limits(gw_db *db, int64_t account_id, const gw_limits *limits);
/* Revoke one key by its key id (or a whole key string); fails if unknown or already revoked. */
int gw_key_revoke(gw_db *db, const char *key_id, double now);

/* Authentication of a presented key (the Bearer token). */
typedef enum {
    GW_AUTH_OK = 0,
    GW_AUTH_MISSING = 1, /* no key given */
    GW_AUTH_INVALID = 2, /* malformed, unknown, wrong secret, or revoked */
} gw_auth_result;
typedef struct {
    gw_account account;
    char key_id[GW_KEY_ID_LEN + 1];
} gw_principal;
/* *res says the outcome; returns -1 only on a database error. A suspended account
 * authenticates (GW_AUTH_OK): the caller checks account.status and answers 403. */
int gw_auth(gw_db *db, const char *key, gw_principal *out, gw_auth_result *res);

/* Parse "rt-<key_id>-<secret>" without the database: key_id_out gets the id. 0 / -1. */
int gw_key_parse(const char *key, char key_id_out[GW_KEY_ID_LEN + 1]);

/* ---------------------------------------------------------------- limits */

typedef struct gw_limiter gw_limiter;

typedef struct {
    int ok;             /* 1: admitted (something was taken); 0: refused (nothing taken) */
    double retry_after; /* seconds until the request could pass (refused only) */
    char message[200];  /* which limit, for the 429 body */
    /* the buckets after this verdict, for x-ratelimit-* headers; -1 where there is no limit */
    int64_t remaining_requests, remaining_tokens;
    double reset_requests, reset_tokens; /* seconds until that bucket is full again */
} gw_limit_verdict;

/* db is used to read the day's token total from the ledger the first time an account is
 * seen on a day (so a restart does not forget spent quota); may be NULL (start from 0). */
int gw_limiter_new(gw_limiter **out, gw_db *db);
void gw_limiter_free(gw_limiter *l);
/* Admit one request of an account at time `now`: it needs one request from the rpm bucket,
 * `reserve_tokens` (prompt tokens + max_tokens*n) from the tpm bucket (capped at the
 * bucket's size) and from the day's quota. Either all is taken or nothing. */
int gw_limiter_admit(gw_limiter *l, int64_t account_id, const gw_limits *lim, double now,
                     int64_t reserve_tokens, gw_limit_verdict *v);
/* After the request: replace the reservation by the tokens really used (refunds the rest). */
void gw_limiter_settle(gw_limiter *l, int64_t account_id, const gw_limits *lim, double now,
                       int64_t reserved_tokens, int64_t used_tokens);
/* Reservation that gw_limiter_admit took for tpm, given the request's reserve (for settle). */
int64_t gw_limiter_tpm_reserved(const gw_limits *lim, int64_t reserve_tokens);

/* ---------------------------------------------------------------- ledger */

#define GW_HASH_HEX 33 /* 16-byte BLAKE2b as hex + NUL */

typedef struct {
    char request_id[48];
    double t;           /* clock time of arrival (Unix seconds; simulated under --sim-clock) */
    int64_t account_id; /* 0: not authenticated */
    char key_id[GW_KEY_ID_LEN + 1];
    char endpoint[40];  /* "/v1/chat/completions" */
    char model[64];
    int status;         /* HTTP status of the response */
    char error[96];     /* OpenAI error type or code ("" on success) */
    int64_t prompt_tokens;
    int64_t completion_tokens;
    double temperature; /* as asked (defaults filled in) */
    double top_p;
    int64_t max_tokens;
    int logprobs;       /* 1 if log-probs were asked for */
    int top_logprobs;   /* how many alternatives per token */
    int n;              /* choices */
    int stream;
    int has_seed;
    uint64_t seed;
    double latency_ms;  /* arrival to the last byte handed to the HTTP layer */
    double ttft_ms;     /* arrival to first token; < 0 when none */
    char prompt_hash[GW_HASH_HEX];
    char output_hash[GW_HASH_HEX];
    char finish_reason[16]; /* of choice 0: "stop", "length", "cancelled", "" */
    char client[48];        /* peer address */
} gw_ledger_row;

/* Hex of the 16-byte BLAKE2b of data (for prompt_hash / output_hash). */
void gw_hash_hex(const void *data, size_t len, char out[GW_HASH_HEX]);

typedef struct gw_ledger gw_ledger;
/* A writer thread with its own connection to the database at path. Rows submitted by many
 * threads are inserted in one transaction per batch (group commit, up to max_batch rows). */
int gw_ledger_open(gw_ledger **out, const char *path, size_t max_batch);
/* Queue a row and wait until its transaction has committed; *row_id (may be NULL) gets its
 * rowid. Fails (and the caller must not answer 200) if the commit fails. Thread-safe. */
int gw_ledger_commit(gw_ledger *l, const gw_ledger_row *row, int64_t *row_id);
/* Commits so far and rows per commit, for metrics. */
void gw_ledger_stats(gw_ledger *l, uint64_t *commits, uint64_t *rows);
/* Drain what is queued, stop the thread, close. */
void gw_ledger_close(gw_ledger *l);

/* ---------------------------------------------------------------- usage */

typedef struct {
    int64_t account_id;
    int64_t requests;          /* all rows */
    int64_t ok_requests;       /* status 200 */
    int64_t prompt_tokens;
    int64_t completion_tokens;
    int64_t requests_window;   /* rows with t >= since */
    int64_t tokens_window;     /* prompt + completion tokens with t >= since */
    double last_t;             /* 0 if none */
    int64_t ok_completion_tokens; /* completion tokens of status-200 rows */
    int64_t refused_403;       /* rows answered 403 (suspended) */
} gw_usage;
/* Usage per account that has any ledger rows; *out malloc'ed, ordered by account id. */
int gw_usage_by_account(gw_db *db, double since, gw_usage **out, size_t *n);
/* Sum of prompt + completion tokens of an account with t in [t0, t1). */
int gw_usage_tokens(gw_db *db, int64_t account_id, double t0, double t1, int64_t *out);

/* ---------------------------------------------------------------- server config */

int gw_config_set(gw_db *db, const char *key, const char *value, double now);
/* *value malloc'ed, or NULL when the key is absent (still returns 0). */
int gw_config_get(gw_db *db, const char *key, char **value);

/* ---------------------------------------------------------------- readers on a connection */

/* The gateway's typed readers for a room that holds its own connection to a gateway database
 * (report's, or a read-only one): the same queries as the gw_db functions above, no lock.
 * Ordered by id; *out malloc'ed. */
int gw_accounts_read(sqlite3 *conn, gw_account **out, size_t *n);
int gw_usage_read(sqlite3 *conn, double since, gw_usage **out, size_t *n);
/* One account's usage, summed the same way (all zero when it has no rows). */
int gw_usage_of(sqlite3 *conn, int64_t account_id, double since, gw_usage *out);
int gw_config_read(sqlite3 *conn, const char *key, char **value);
/* Time of the first and last completion requests (NaN when none) and the number of rows. */
int gw_usage_span(sqlite3 *conn, double *t0, double *t1, int64_t *rows);
/* Served (status 200) requests of an account with t <= t, and their completion tokens. */
int gw_usage_served_until(sqlite3 *conn, int64_t account_id, double t, int64_t *served, int64_t *completion_tokens);
/* Every ledger row in id order, briefly: fn returns 0 to go on, -1 to stop with its error. */
typedef struct {
    int64_t id, account_id; /* account_id 0: a request without a valid key */
    int status;
    int64_t prompt_tokens, completion_tokens;
} gw_usage_brief;
int gw_usage_scan(sqlite3 *conn, int (*fn)(void *ud, const gw_usage_brief *r), void *ud);
/* Every served output's hash with its account (ledger order). */
typedef struct {
    char hash[GW_HASH_HEX];
    int64_t account_id;
} gw_output_hash;
int gw_usage_output_hashes(sqlite3 *conn, gw_output_hash **out, size_t *n);

#endif /* RETORT_GATEWAY_H */
