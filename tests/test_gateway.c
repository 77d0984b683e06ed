/* test_gateway.c — the gateway room without HTTP: keys (format, only hashes stored,
 * constant-time check, revoke), accounts (create, limits, suspend/resume), the token-bucket
 * limiter against arithmetic done by hand on an injected clock, the daily quota read back
 * from the ledger after a "restart", and the group-commit ledger under many threads
 * (every row committed exactly once, counted against what the threads submitted).
 * With RETORT_TEST_PG_URL set (tests/ref_pg.sh starts a throw-away PostgreSQL cluster and
 * sets it), the backend-neutral cases run again on PostgreSQL, each on an emptied schema, and
 * the shared limiter is checked for exactness across two limiters (two replicas) there. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "base/base.h"
#include "gateway/gateway.h"
#include "testlib.h"

static char g_db[512];
static const char *g_pg; /* RETORT_TEST_PG_URL while the PostgreSQL pass runs, else NULL */

/* through the SQL layer, on either backend */
static int64_t scalar(const char *path, const char *sql) {
    gw_conn *c = NULL;
    int64_t v = -1;
    if (gw_conn_open(&c, path, 0) == 0) {
        gw_stmt *st = NULL;
        if (gw_sql_prepare(c, sql, &st, "test") == 0 && gw_step(st) == GW_ROW) v = gw_column_int64(st, 0);
        gw_finalize(st);
    }
    if (v == -1) fprintf(stderr, "  scalar(%s): %s\n", sql, rt_errmsg());
    gw_conn_close(c);
    return v;
}

/* A fresh SQLite file, or the PostgreSQL database with its schema emptied. */
static const char *fresh_db(const char *name) {
    if (!g_pg) {
        snprintf(g_db, sizeof g_db, "%s/%s.db", tl_tmpdir(), name);
        return g_db;
    }
    gw_conn *c = NULL;
    CHECK_OK(gw_conn_open(&c, g_pg, 0));
    if (c) CHECK_OK(gw_sql_exec(c, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;", "emptying the test database"));
    gw_conn_close(c);
    snprintf(g_db, sizeof g_db, "%s", g_pg);
    return g_db;
}

static void test_keys(void) {
    gw_db *db = NULL;
    const char *path = fresh_db("keys");
    CHECK_OK(gw_db_open(&db, path));
    if (!db) return;
    CHECK(gw_db_is_pg(db) == (g_pg != NULL));
    char key[GW_KEY_MAX], key2[GW_KEY_MAX];
    gw_account a;
    gw_limits lim = {10, 1000, 5000};
    CHECK_OK(gw_key_create(db, "alice", &lim, 0, 1000.0, key, &a));
    CHECK(strlen(key) == 3 + 12 + 1 + 43 && !strncmp(key, "rt-", 3));
    CHECK(a.limits.rpm == 10 && a.limits.tpm == 1000 && a.limits.daily_tokens == 5000 && !a.is_admin);
    /* a second key for the same account keeps limits that are not given (-1) */
    gw_limits keep = {-1, 77, -1};
    CHECK_OK(gw_key_create(db, "alice", &keep, 0, 1001.0, key2, &a));
    CHECK(a.limits.rpm == 10 && a.limits.tpm == 77 && a.limits.daily_tokens == 5000);
    CHECK(strcmp(key, key2) != 0);
    /* the database holds no key text: neither secret appears anywhere in the file */
    char *data = NULL;
    size_t len = 0;
    gw_db_close(db);
    if (!g_pg) CHECK_OK(rt_read_file(path, &data, &len));
    for (int k = 0; k < 2 && data; k++) {
        const char *secret = (k ? key2 : key) + 16;
        CHECK(memmem(data, len, secret, strlen(secret)) == NULL);
    }
    free(data);
    CHECK(scalar(path, "SELECT count(*) FROM api_keys WHERE length(hash) = 32") == 2);
    CHECK(scalar(path, "SELECT value FROM gw_meta WHERE key = 'schema_version'") == 3);
    CHECK_OK(gw_db_open(&db, path));
    gw_principal p;
    gw_auth_result ar;
    CHECK_OK(gw_auth(db, key, &p, &ar));
    CHECK(ar == GW_AUTH_OK && p.account.id == a.id && !strncmp(p.key_id, key + 3, 12));
    CHECK_OK(gw_auth(db, NULL, &p, &ar));
    CHECK(ar == GW_AUTH_MISSING);
    /* right id, wrong secret (one character changed) */
    char bad[GW_KEY_MAX];
    memcpy(bad, key, sizeof bad);
    bad[40] = bad[40] == 'A' ? 'B' : 'A';
    CHECK_OK(gw_auth(db, bad, &p, &ar));
    CHECK(ar == GW_AUTH_INVALID);
    CHECK_OK(gw_auth(db, "rt-garbage", &p, &ar));
    CHECK(ar == GW_AUTH_INVALID);
    /* revoke by id: the other key still works */
    char kid[13];
    CHECK_OK(gw_key_parse(key, kid));
    CHECK_OK(gw_key_revoke(db, kid, 1002.0));
    CHECK(gw_key_revoke(db, kid, 1003.0) == -1 && strstr(rt_errmsg(), "no live key"));
    CHECK_OK(gw_auth(db, key, &p, &ar));
    CHECK(ar == GW_AUTH_INVALID);
    CHECK_OK(gw_auth(db, key2, &p, &ar));
    CHECK(ar == GW_AUTH_OK);
    /* suspension is reported, not hidden */
    CHECK_OK(gw_account_set_status(db, a.id, GW_ACCOUNT_SUSPENDED, "extraction pattern", 1004.0));
    CHECK_OK(gw_auth(db, key2, &p, &ar));
    CHECK(ar == GW_AUTH_OK && p.account.status == GW_ACCOUNT_SUSPENDED && !strcmp(p.account.reason, "extraction pattern"));
    CHECK_OK(gw_account_set_status(db, a.id, GW_ACCOUNT_ACTIVE, NULL, 1005.0));
    CHECK_OK(gw_auth(db, key2, &p, &ar));
    CHECK(p.account.status == GW_ACCOUNT_ACTIVE && p.account.reason[0] == '\0');
    /* an account that is not there: both updates refuse, naming the id */
    gw_limits nolim = {5, -1, -1};
    CHECK(gw_account_set_status(db, 987654, GW_ACCOUNT_SUSPENDED, "x", 1006.0) == -1 &&
          strstr(rt_errmsg(), "no account with id 987654"));
    CHECK(gw_account_set_limits(db, 987654, &nolim) == -1 && strstr(rt_errmsg(), "no account with id 987654"));
    /* names */
    CHECK(gw_key_create(db, "bad name", NULL, 0, 1.0, key, NULL) == -1 && strstr(rt_errmsg(), "account name"));
    gw_account f;
    CHECK_OK(gw_account_find(db, "alice", &f));
    CHECK_OK(gw_account_find(db, "#1", &f));
    CHECK(f.id == 1);
    CHECK(gw_account_find(db, "nobody", &f) == -1 && strstr(rt_errmsg(), "no account named"));
    /* config */
    char *v = NULL;
    CHECK_OK(gw_config_get(db, "absent", &v));
    CHECK(v == NULL);
    CHECK_OK(gw_config_set(db, "watermark", "{\"scheme\":\"kgw\"}", 5.0));
    CHECK_OK(gw_config_set(db, "watermark", "{\"scheme\":\"gumbel\"}", 6.0));
    CHECK_OK(gw_config_get(db, "watermark", &v));
    CHECK(v && !strcmp(v, "{\"scheme\":\"gumbel\"}"));
    free(v);
    gw_db_close(db);
}

/* The same hand-computed expectations for the buckets in memory and in the database (the
 * shared limiter's one-statement UPDATE, whose SQL redoes refill()). */
static void limiter_buckets_on(gw_limiter *l) {
    gw_limits lim = {6, 0, 0}; /* 6 per minute: one every 10 s, burst 6 */
    gw_limit_verdict v;
    double t = 1000.0;
    for (int i = 0; i < 6; i++) {
        CHECK_OK(gw_limiter_admit(l, 1, &lim, t, 0, &v));
        CHECK(v.ok);
    }
    CHECK_OK(gw_limiter_admit(l, 1, &lim, t, 0, &v));
    CHECK(!v.ok);
    CHECK_NEAR(v.retry_after, 10.0, 1e-9, 0);
    CHECK(strstr(v.message, "6 requests per minute") != NULL);
    /* another account is independent */
    CHECK_OK(gw_limiter_admit(l, 2, &lim, t, 0, &v));
    CHECK(v.ok);
    /* 4 s later: 0.4 of a request refilled, 6 s still to wait */
    CHECK_OK(gw_limiter_admit(l, 1, &lim, t + 4, 0, &v));
    CHECK(!v.ok);
    CHECK_NEAR(v.retry_after, 6.0, 1e-9, 0);
    CHECK_OK(gw_limiter_admit(l, 1, &lim, t + 10, 0, &v));
    CHECK(v.ok);
    /* time running backwards refills nothing and breaks nothing */
    CHECK_OK(gw_limiter_admit(l, 1, &lim, t - 100, 0, &v));
    CHECK(!v.ok);
    /* tokens per minute: reserve, then settle to the real use */
    gw_limits tl = {0, 600, 0}; /* 10 tokens per second */
    CHECK_OK(gw_limiter_admit(l, 3, &tl, t, 500, &v));
    CHECK(v.ok);
    CHECK_OK(gw_limiter_admit(l, 3, &tl, t, 200, &v)); /* 100 left < 200 */
    CHECK(!v.ok);
    CHECK_NEAR(v.retry_after, 10.0, 1e-9, 0);
    gw_limiter_settle(l, 3, &tl, t, 500, 50); /* used 50 of 500: 450 come back -> 550 left */
    CHECK_OK(gw_limiter_admit(l, 3, &tl, t, 550, &v));
    CHECK(v.ok);
    CHECK_OK(gw_limiter_admit(l, 3, &tl, t, 1, &v));
    CHECK(!v.ok);
    /* a reservation bigger than the bucket is capped at the bucket */
    CHECK(gw_limiter_tpm_reserved(&tl, 5000) == 600);
    CHECK_OK(gw_limiter_admit(l, 4, &tl, t, 5000, &v));
    CHECK(v.ok);
    /* both buckets at once: the refusal by one takes nothing from the other */
    gw_limits both = {2, 100, 0};
    CHECK_OK(gw_limiter_admit(l, 5, &both, t, 60, &v));
    CHECK(v.ok && v.remaining_requests == 1 && v.remaining_tokens == 40);
    CHECK_OK(gw_limiter_admit(l, 5, &both, t, 60, &v)); /* tokens refuse: 40 < 60 */
    CHECK(!v.ok && v.remaining_requests == 1);
    CHECK_NEAR(v.retry_after, 12.0, 1e-9, 0); /* 20 tokens at 100/60 per second */
    CHECK_OK(gw_limiter_admit(l, 5, &both, t, 40, &v));
    CHECK(v.ok && v.remaining_requests == 0 && v.remaining_tokens == 0);
}

static void test_limiter_buckets(void) {
    gw_limiter *l = NULL;
    CHECK_OK(gw_limiter_new(&l, NULL));
    if (l) limiter_buckets_on(l);
    gw_limiter_free(l);
}

static void test_limiter_buckets_shared(void) {
    const char *path = fresh_db("buckets");
    gw_db *db = NULL;
    CHECK_OK(gw_db_open(&db, path));
    if (!db) return;
    char key[GW_KEY_MAX];
    gw_account a;
    for (int i = 1; i <= 5; i++) { /* accounts 1..5, as limiter_buckets_on uses them */
        char name[16];
        snprintf(name, sizeof name, "acct%d", i);
        CHECK_OK(gw_key_create(db, name, NULL, 0, 0, key, &a));
        CHECK(a.id == i);
    }
    gw_limiter *l = NULL;
    CHECK_OK(gw_limiter_new_shared(&l, db));
    if (l) limiter_buckets_on(l);
    gw_limiter_free(l);
    gw_db_close(db);
}

/* The one-statement verdict (SQL) against the transaction path (decide() in C) on the same
 * traffic: two accounts, one per path, the same 600 admits and settles on a clock that jumps
 * forward by up to 3 s (once back by 1 s) and crosses midnight (the daily quota re-read):
 * every verdict must agree. */
static void test_limiter_paths_agree(void) {
    const char *path = fresh_db("paths");
    gw_db *db = NULL;
    CHECK_OK(gw_db_open(&db, path));
    if (!db) return;
    char key[GW_KEY_MAX];
    gw_account a, b;
    gw_limits lim = {20, 2000, 40000};
    CHECK_OK(gw_key_create(db, "one-statement", &lim, 0, 0, key, &a));
    CHECK_OK(gw_key_create(db, "transactions", &lim, 0, 0, key, &b));
    gw_limiter *lf = NULL, *lt = NULL;
    CHECK_OK(gw_limiter_new_shared(&lf, db));
    CHECK_OK(gw_limiter_new_shared(&lt, db));
    if (!lf || !lt) return;
    gw_limiter_use_transactions(lt, 1);
    uint64_t rng = 12345;
    double t = 20000.0 * 86400.0 + 86400.0 - 300.0; /* 5 minutes before midnight */
    int agree = 0, admitted = 0, compared = 0, n = 600;
    for (int i = 0; i < n; i++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t r = rng >> 33;
        t += (double)(r % 3000) / 1000.0;
        if (i == 300) t -= 1.0;
        int64_t reserve = (int64_t)(r % 257);
        if (r % 3 == 0) {
            int64_t used = (int64_t)((r >> 9) % 300);
            gw_limiter_settle(lf, a.id, &lim, t, reserve, used);
            gw_limiter_settle(lt, b.id, &lim, t, reserve, used);
            continue;
        }
        gw_limit_verdict vf, vt;
        CHECK_OK(gw_limiter_admit(lf, a.id, &lim, t, reserve, &vf));
        CHECK_OK(gw_limiter_admit(lt, b.id, &lim, t, reserve, &vt));
        int same = vf.ok == vt.ok && fabs(vf.retry_after - vt.retry_after) < 1e-6 &&
                   vf.remaining_requests == vt.remaining_requests && vf.remaining_tokens == vt.remaining_tokens &&
                   !strcmp(vf.message, vt.message);
        compared++;
        if (!same)
            fprintf(stderr, "  verdict %d differs: ok %d/%d retry %.9f/%.9f remaining %lld/%lld %lld/%lld\n", i, vf.ok,
                    vt.ok, vf.retry_after, vt.retry_after, (long long)vf.remaining_requests,
                    (long long)vt.remaining_requests, (long long)vf.remaining_tokens, (long long)vt.remaining_tokens);
        agree += same;
        admitted += vf.ok;
    }
    fprintf(stderr, "  one statement vs transactions: %d of %d verdicts agree, %d admitted\n", agree, compared, admitted);
    CHECK(agree == compared);
    CHECK(admitted > compared / 10 && admitted < compared - compared / 10); /* both kinds of verdict were tested */
    gw_limiter_free(lf);
    gw_limiter_free(lt);
    gw_db_close(db);
}

static void test_limiter_daily_and_restart(void) {
    const char *path = fresh_db("daily");
    gw_db *db = NULL;
    gw_ledger *led = NULL;
    CHECK_OK(gw_db_open(&db, path));
    CHECK_OK(gw_ledger_open(&led, path, 16));
    if (!db || !led) return;
    char key[GW_KEY_MAX];
    gw_account a;
    gw_limits lim = {0, 0, 1000};
    CHECK_OK(gw_key_create(db, "bob", &lim, 0, 0, key, &a));
    double day = 20000.0 * 86400.0, t = day + 3600.0;
    /* 700 tokens already on today's ledger, 500 yesterday */
    gw_ledger_row r;
    memset(&r, 0, sizeof r);
    r.account_id = a.id;
    r.status = 200;
    r.n = 1;
    r.ttft_ms = -1;
    snprintf(r.endpoint, sizeof r.endpoint, "/v1/completions");
    r.t = day + 10;
    r.prompt_tokens = 300;
    r.completion_tokens = 400;
    CHECK_OK(gw_ledger_commit(led, &r, NULL));
    r.t = day - 10;
    r.prompt_tokens = 500;
    r.completion_tokens = 0;
    CHECK_OK(gw_ledger_commit(led, &r, NULL));
    gw_limiter *l = NULL;
    CHECK_OK(gw_limiter_new(&l, db)); /* a fresh limiter = a restarted server */
    gw_limit_verdict v;
    CHECK_OK(gw_limiter_admit(l, a.id, &lim, t, 301, &v));
    CHECK(!v.ok);
    CHECK_NEAR(v.retry_after, 86400.0 - 3600.0, 1e-6, 0);
    CHECK(strstr(v.message, "700 of 1000") != NULL);
    CHECK_OK(gw_limiter_admit(l, a.id, &lim, t, 300, &v));
    CHECK(v.ok);
    gw_limiter_settle(l, a.id, &lim, t, 300, 100); /* 800 used */
    CHECK_OK(gw_limiter_admit(l, a.id, &lim, t, 201, &v));
    CHECK(!v.ok);
    CHECK_OK(gw_limiter_admit(l, a.id, &lim, t, 200, &v));
    CHECK(v.ok);
    /* the next day starts from that day's ledger (empty) */
    CHECK_OK(gw_limiter_admit(l, a.id, &lim, day + 86400.0 + 5, 1000, &v));
    CHECK(v.ok);
    gw_limiter_free(l);
    gw_ledger_close(led);
    gw_db_close(db);
}

typedef struct {
    gw_ledger *led;
    int id;
    int n;
    int fails;
} ledger_worker;

static void *ledger_thread(void *arg) {
    ledger_worker *w = arg;
    for (int i = 0; i < w->n; i++) {
        gw_ledger_row r;
        memset(&r, 0, sizeof r);
        snprintf(r.request_id, sizeof r.request_id, "w%d-%d", w->id, i);
        r.account_id = w->id + 1;
        r.status = 200;
        r.n = 1;
        r.prompt_tokens = i;
        r.completion_tokens = w->id;
        r.ttft_ms = -1;
        snprintf(r.endpoint, sizeof r.endpoint, "/v1/completions");
        int64_t id = 0;
        if (gw_ledger_commit(w->led, &r, &id) || id <= 0) w->fails++;
    }
    return NULL;
}

static void test_ledger_group_commit(void) {
    const char *path = fresh_db("ledger");
    gw_db *db = NULL;
    gw_ledger *led = NULL;
    CHECK_OK(gw_db_open(&db, path));
    CHECK_OK(gw_ledger_open(&led, path, 64));
    if (!db || !led) return;
    enum { NT = 8, PER = 200 };
    ledger_worker w[NT];
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) {
        w[i] = (ledger_worker){led, i, PER, 0};
        pthread_create(&th[i], NULL, ledger_thread, &w[i]);
    }
    int fails = 0;
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        fails += w[i].fails;
    }
    CHECK(fails == 0);
    uint64_t commits = 0, rows = 0;
    gw_ledger_stats(led, &commits, &rows);
    CHECK(rows == NT * PER);
    CHECK(commits >= 1 && commits <= rows);
    fprintf(stderr, "  %llu rows in %llu commits\n", (unsigned long long)rows, (unsigned long long)commits);
    gw_ledger_close(led);
    /* every row exactly once, with its fields */
    CHECK(scalar(path, "SELECT count(*) FROM usage") == NT * PER);
    CHECK(scalar(path, "SELECT count(DISTINCT request_id) FROM usage") == NT * PER);
    CHECK(scalar(path, "SELECT sum(prompt_tokens) FROM usage") == (int64_t)NT * (PER - 1) * PER / 2);
    CHECK(scalar(path, "SELECT sum(completion_tokens) FROM usage") == (int64_t)PER * (NT - 1) * NT / 2);
    if (!g_pg) CHECK(scalar(path, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'") == 1);
    gw_usage *u = NULL;
    size_t nu = 0;
    CHECK_OK(gw_usage_by_account(db, 0, &u, &nu));
    CHECK(nu == NT);
    for (size_t i = 0; i < nu; i++) CHECK(u[i].requests == PER && u[i].ok_requests == PER);
    free(u);
    gw_db_close(db);
}

/* Sustained load: rows committed a few per transaction by 4 threads until 12000 commits. The WAL must be
 * checkpointed while the ledger is open (a checkpoint on a connection that never read the
 * database does nothing), so its size stays bounded instead of growing with every commit. */
static atomic_int g_wal_stop;

typedef struct {
    gw_ledger *led;
    int id;
    long n, fails;
} wal_worker;

static void *wal_thread(void *arg) {
    wal_worker *w = arg;
    while (!atomic_load(&g_wal_stop)) {
        gw_ledger_row r;
        memset(&r, 0, sizeof r);
        snprintf(r.request_id, sizeof r.request_id, "wal%d-%ld", w->id, w->n);
        snprintf(r.endpoint, sizeof r.endpoint, "/v1/completions");
        snprintf(r.client, sizeof r.client, "127.0.0.%d", w->id);
        r.status = 200;
        r.n = 1;
        r.ttft_ms = -1;
        if (gw_ledger_commit(w->led, &r, NULL)) w->fails++;
        w->n++;
    }
    return NULL;
}

static int64_t file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static void test_ledger_wal_bounded(void) {
    const char *path = fresh_db("walbound");
    char wal[600];
    snprintf(wal, sizeof wal, "%s-wal", path);
    gw_db *db = NULL;
    gw_ledger *led = NULL;
    CHECK_OK(gw_db_open(&db, path));
    CHECK_OK(gw_ledger_open(&led, path, 4));
    if (!db || !led) return;
    enum { NT = 4, COMMITS = 12000 }; /* unchecked, >= 12000 * 4 KiB = 49 MB of WAL */
    wal_worker w[NT];
    pthread_t th[NT];
    atomic_store(&g_wal_stop, 0);
    double t0 = rt_now();
    for (int i = 0; i < NT; i++) {
        w[i] = (wal_worker){led, i, 0, 0};
        pthread_create(&th[i], NULL, wal_thread, &w[i]);
    }
    int64_t max_wal = 0;
    uint64_t commits = 0, rows = 0;
    while (commits < COMMITS && rt_now() - t0 < 8.0) {
        max_wal = RT_MAX(max_wal, file_size(wal));
        usleep(20000);
        gw_ledger_stats(led, &commits, &rows);
    }
    atomic_store(&g_wal_stop, 1);
    long n = 0, fails = 0;
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        n += w[i].n;
        fails += w[i].fails;
    }
    gw_ledger_stats(led, &commits, &rows);
    /* every commit appends at least one 4 KiB page to the WAL: without checkpoints it would
     * hold more than commits * 4 KiB (hundreds of MB here: 365 MB in 2.5 s before the fix);
     * the ledger restarts it past 4096 frames (16 MiB) and commits wait for that, so it holds
     * about 16 MiB plus one commit (sampled every 20 ms) */
    double unbounded = (double)commits * 4096;
    fprintf(stderr, "  %ld rows in %llu commits over %.1f s: WAL at most %.2f MB (over %.2f MB if never checkpointed)\n",
            n, (unsigned long long)commits, rt_now() - t0, max_wal / 1e6, unbounded / 1e6);
    CHECK(fails == 0);
    CHECK(max_wal <= 24 * 1024 * 1024);
    gw_ledger_close(led);
    CHECK(scalar(path, "SELECT count(*) FROM usage") == n);
    gw_db_close(db);
}

static void test_bad_db(void) {
    gw_db *db = NULL;
    CHECK(gw_db_open(&db, "/nonexistent-dir/x/y.db") == -1);
    CHECK(strstr(rt_errmsg(), "/nonexistent-dir/x/y.db") != NULL);
    /* a file that is not SQLite */
    char p[512];
    snprintf(p, sizeof p, "%s/notdb.db", tl_tmpdir());
    CHECK_OK(rt_write_file_atomic(p, "this is not a database, just text................................", 64));
    CHECK(gw_db_open(&db, p) == -1 && db == NULL);
    CHECK(strstr(rt_errmsg(), "notdb.db") != NULL);
}

/* Limits exact across replicas: two limiters (each with its own connection, as two
 * processes would have) admit one account's requests from 8 threads at one instant. The
 * bucket holds RPM requests, so exactly RPM are admitted in all; two in-memory limiters (what
 * replicas had before) admit 2 * RPM, which the same count shows. */
typedef struct {
    gw_limiter *l;
    int64_t account;
    gw_limits lim;
    int tries, admitted, errors;
} shared_worker;

static void *shared_thread(void *arg) {
    shared_worker *w = arg;
    for (int i = 0; i < w->tries; i++) {
        gw_limit_verdict v;
        if (gw_limiter_admit(w->l, w->account, &w->lim, 5000.0, 10, &v)) w->errors++;
        else w->admitted += v.ok;
    }
    return NULL;
}

static int run_limiters(gw_limiter *a, gw_limiter *b, int64_t account, gw_limits lim, int *errors) {
    enum { NT = 8, TRIES = 40 };
    shared_worker w[NT];
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) {
        w[i] = (shared_worker){i % 2 ? b : a, account, lim, TRIES, 0, 0};
        pthread_create(&th[i], NULL, shared_thread, &w[i]);
    }
    int admitted = 0;
    *errors = 0;
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        admitted += w[i].admitted;
        *errors += w[i].errors;
    }
    return admitted;
}

static void test_limiter_shared(void) {
    const char *path = fresh_db("shared");
    gw_db *db = NULL;
    CHECK_OK(gw_db_open(&db, path));
    if (!db) return;
    char key[GW_KEY_MAX];
    gw_account a;
    gw_limits lim = {50, 1000, 0}; /* 50 requests and 1000 tokens a minute: rpm binds (50 * 10 < 1000) */
    CHECK_OK(gw_key_create(db, "replicated", &lim, 0, 0, key, &a));
    gw_limiter *l1 = NULL, *l2 = NULL;
    CHECK_OK(gw_limiter_new_shared(&l1, db));
    CHECK_OK(gw_limiter_new_shared(&l2, db));
    if (!l1 || !l2) return;
    CHECK(gw_limiter_is_shared(l1));
    int errors = 0;
    int admitted = run_limiters(l1, l2, a.id, lim, &errors);
    fprintf(stderr, "  shared buckets: %d of 320 admitted (bucket 50), %d errors\n", admitted, errors);
    CHECK(errors == 0);
    CHECK(admitted == 50);
    /* the tpm bucket: 50 * 10 tokens reserved, settle gives 9 of each back on one replica,
     * the other sees it: 1000 - 50 = 950 left, so a 950-token request passes and 1 more does not */
    gw_limits tl = {0, 1000, 0};
    for (int i = 0; i < 50; i++) gw_limiter_settle(i % 2 ? l1 : l2, a.id, &tl, 5000.0, 10, 1);
    gw_limit_verdict v;
    CHECK_OK(gw_limiter_admit(l2, a.id, &tl, 5000.0, 950, &v));
    CHECK(v.ok);
    CHECK_OK(gw_limiter_admit(l1, a.id, &tl, 5000.0, 1, &v));
    CHECK(!v.ok);
    gw_limiter_free(l1);
    gw_limiter_free(l2);
    /* on PostgreSQL gw_limiter_new picks the shared buckets by itself */
    CHECK_OK(gw_limiter_new(&l1, db));
    if (l1) CHECK(gw_limiter_is_shared(l1) == (g_pg != NULL));
    gw_limiter_free(l1);
    /* the control: memory limiters, one per replica, each admit a whole bucket */
    CHECK_OK(gw_limiter_new(&l1, NULL));
    CHECK_OK(gw_limiter_new(&l2, NULL));
    if (l1 && l2) CHECK(run_limiters(l1, l2, a.id, lim, &errors) == 100);
    gw_limiter_free(l1);
    gw_limiter_free(l2);
    gw_db_close(db);
}

/* The backend-neutral cases again on PostgreSQL (tests/ref_pg.sh sets the URL). */
static void test_postgres(void) {
    const char *url = getenv("RETORT_TEST_PG_URL");
    if (!url || !*url) {
        printf("SKIP postgres: RETORT_TEST_PG_URL not set (tests/ref_pg.sh runs this pass)\n");
        return;
    }
    CHECK(gw_db_is_url(url));
    g_pg = url;
    void (*cases[])(void) = {test_keys, test_limiter_buckets_shared, test_limiter_paths_agree, test_limiter_daily_and_restart, test_ledger_group_commit,
                             test_limiter_shared};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) cases[i]();
    g_pg = NULL;
    /* the server drops the connection (restart, failover): the request in flight fails, the
     * next one reconnects, and the key lookup (a server-side prepared statement by then, gone
     * with the session) is prepared again */
    gw_db *pdb = NULL;
    CHECK_OK(gw_db_open(&pdb, url));
    if (pdb) {
        char key[GW_KEY_MAX];
        gw_account a;
        CHECK_OK(gw_key_create(pdb, "reconnect", NULL, 0, 1.0, key, &a));
        gw_principal p;
        gw_auth_result ar;
        for (int i = 0; i < 3; i++) CHECK_OK(gw_auth(pdb, key, &p, &ar));
        gw_conn *c = NULL;
        CHECK_OK(gw_conn_open(&c, url, 0));
        if (c) CHECK_OK(gw_sql_exec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid != "
                                       "pg_backend_pid() AND datname = current_database()",
                                    "dropping the other sessions"));
        gw_conn_close(c);
        int failed = 0, ok = 0;
        for (int i = 0; i < 3 && !ok; i++) {
            if (gw_auth(pdb, key, &p, &ar)) failed++;
            else ok = ar == GW_AUTH_OK && p.account.id == a.id;
        }
        fprintf(stderr, "  after the server dropped the session: %d request(s) failed, then %s\n", failed,
                ok ? "reconnected" : "still failing");
        CHECK(ok && failed <= 1);
        gw_db_close(pdb);
    }
    /* a URL that reaches no server: a clear error naming PostgreSQL, no crash */
    gw_db *db = NULL;
    CHECK(gw_db_open(&db, "postgresql://retort@/nosuchdb?host=/nonexistent-socket-dir&connect_timeout=2") == -1);
    CHECK(strstr(rt_errmsg(), "PostgreSQL") != NULL);
}

TEST_MAIN("gateway", TEST_CASE(test_keys), TEST_CASE(test_limiter_buckets), TEST_CASE(test_limiter_buckets_shared),
          TEST_CASE(test_limiter_paths_agree), TEST_CASE(test_limiter_daily_and_restart),
          TEST_CASE(test_ledger_group_commit), TEST_CASE(test_ledger_wal_bounded), TEST_CASE(test_bad_db),
          TEST_CASE(test_limiter_shared), TEST_CASE(test_postgres))
