/* test_dashboard.c — the admin dashboard's server side, against a real server on a loopback port
 * (free port chosen at runtime) with a database this test prepares: accounts and keys through
 * the gateway, ledger rows through the gateway's ledger writer, guard scores and actions through
 * the guard's row writers, and a few rows written with raw SQL where no API may write them (an
 * account name with HTML in it, one that is not UTF-8, simulator labels).
 * Checked: GET /admin serves the embedded page byte for byte as it is in web/ (and every asset
 * index.html refers to), with a Content-Security-Policy; the guard views answer only admins;
 * each account's usage, latest risk (by clock time, not insertion order), recent risks, level
 * ("released" after a release), linked group and its members, last action and suspension are
 * what was written; one account's timeline (downsampled to the highest risk per interval, newest
 * last), actions with their evidence and latest signals; release (one account, and a whole
 * group with the throttled rpm restored) through the API, recorded as operator actions; and a
 * clear 4xx for every malformed request. The model is tiny and random: it only has to load. */
#include <curl/curl.h>
#include <jansson.h>
#include <sqlite3.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "gateway/gateway.h"
#include "defend/defend.h"
#include "model/model.h"
#include "serve/serve.h"
#include "testlib.h"

/* ---------------------------------------------------------------- fixtures */

static model *g_model;
static serve_server *g_srv;
static int g_port;
static char g_db[512];
static char g_admin[GW_KEY_MAX], g_user[GW_KEY_MAX];

static const char *const EVIL = "<img src=x onerror=\"window.__xss=1\">&lt;b&gt;</td>";

static model *make_model(void) {
    static const char *text = "And God said, Let there be light: and there was light. Hello, world. ";
    rt_buf b = {0};
    for (int r = 0; r < 40; r++) rt_buf_append(&b, text, strlen(text));
    tokenizer *tok = NULL;
    if (tokenizer_train(&tok, b.data, b.len, 300)) {
        fprintf(stderr, "tokenizer_train: %s\n", rt_errmsg());
        exit(1);
    }
    rt_buf_free(&b);
    model_config c = {.dim = 16, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .ffn_dim = 32,
                      .vocab_size = tokenizer_vocab_size(tok), .ctx_len = 32, .norm_eps = 1e-5f,
                      .rope_base = 10000.0f, .tied = 1};
    model *m = NULL;
    if (model_config_validate(&c) || model_create(&m, &c, tok)) {
        fprintf(stderr, "model: %s\n", rt_errmsg());
        exit(1);
    }
    model_init_weights(m, 3);
    return m;
}

typedef struct {
    long status;
    rt_buf body;
    char ctype[128];
    char csp[512];
} resp;

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
    rt_buf_append(&((resp *)ud)->body, p, sz * n);
    return sz * n;
}

static void header_value(const char *p, size_t len, const char *name, char *out, size_t cap) {
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(p, name, nl)) return;
    p += nl;
    len -= nl;
    while (len && *p == ' ') p++, len--;
    while (len && (p[len - 1] == '\r' || p[len - 1] == '\n')) len--;
    snprintf(out, cap, "%.*s", (int)len, p);
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
    resp *r = ud;
    header_value(p, sz * n, "Content-Type:", r->ctype, sizeof r->ctype);
    header_value(p, sz * n, "Content-Security-Policy:", r->csp, sizeof r->csp);
    return sz * n;
}

static long http(const char *method, const char *path, const char *key, const char *body, resp *r) {
    memset(r, 0, sizeof *r);
    CURL *h = curl_easy_init();
    char url[512], auth[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", g_port, path);
    struct curl_slist *hd = NULL;
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        hd = curl_slist_append(hd, auth);
    }
    hd = curl_slist_append(hd, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    if (!strcmp(method, "HEAD")) curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, body ? "POST" : "GET")) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    else r->status = -1;
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    if (!r->body.data) rt_buf_append(&r->body, "", 0);
    return r->status;
}

static json_t *get_json(const char *path, const char *key, long want) {
    resp r;
    long st = http("GET", path, key, NULL, &r);
    json_error_t e;
    json_t *j = json_loadb(r.body.data, r.body.len, 0, &e);
    if (st != want || !j) fprintf(stderr, "  GET %s: %ld (want %ld): %.400s\n", path, st, want, r.body.data);
    rt_buf_free(&r.body);
    return st == want ? j : (json_decref(j), NULL);
}

/* The OpenAI-shaped error of a request: status, param (NULL: any), a word of the message. */
static int is_error(const char *method, const char *path, const char *key, const char *body, long status,
                    const char *param, const char *needle) {
    resp r;
    http(method, path, key, body, &r);
    json_error_t e;
    json_t *j = json_loadb(r.body.data, r.body.len, 0, &e);
    json_t *err = json_object_get(j, "error");
    const char *msg = json_string_value(json_object_get(err, "message"));
    int ok = r.status == status && msg && json_is_string(json_object_get(err, "type"));
    if (ok && param) ok = json_is_string(json_object_get(err, "param")) && !strcmp(json_string_value(json_object_get(err, "param")), param);
    if (ok && needle) ok = strstr(msg, needle) != NULL;
    if (!ok) fprintf(stderr, "  %s %s: %ld (want %ld, param %s, '%s'): %.300s\n", method, path, r.status, status,
                     param ? param : "-", needle ? needle : "", r.body.data);
    json_decref(j);
    rt_buf_free(&r.body);
    return ok;
}

static int64_t db_int(const char *sql) {
    sqlite3 *c = NULL;
    int64_t v = -1;
    if (sqlite3_open(g_db, &c) == SQLITE_OK) {
        sqlite3_busy_timeout(c, 5000);
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        else
            fprintf(stderr, "  sql: %s: %s\n", sql, sqlite3_errmsg(c));
        sqlite3_finalize(st);
    }
    sqlite3_close(c);
    return v;
}

/* Raw SQL with one text parameter (what no API may write). */
static int db_exec(const char *sql, const char *text) {
    sqlite3 *c = NULL;
    int rc = -1;
    if (sqlite3_open(g_db, &c) == SQLITE_OK) {
        sqlite3_busy_timeout(c, 5000);
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) == SQLITE_OK) {
            if (text) sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
            rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
        }
        if (rc) fprintf(stderr, "  sql: %s: %s\n", sql, sqlite3_errmsg(c));
        sqlite3_finalize(st);
    }
    sqlite3_close(c);
    return rc;
}

static json_t *find_account(json_t *root, const char *name) {
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(root, "accounts"), i, a) if (!strcmp(json_string_value(json_object_get(a, "name")), name)) return a;
    fprintf(stderr, "  no account %s in the view\n", name);
    return NULL;
}

static double num(json_t *o, const char *path) {
    /* "a.b.c" */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *cur = o;
    for (char *save = NULL, *t = strtok_r(buf, ".", &save); t && cur; t = strtok_r(NULL, ".", &save)) cur = json_object_get(cur, t);
    return json_is_number(cur) ? json_number_value(cur) : NAN;
}

static const char *str(json_t *o, const char *a, const char *b) {
    json_t *x = json_object_get(o, a);
    if (b) x = json_object_get(x, b);
    return json_is_string(x) ? json_string_value(x) : "";
}

static char *read_text(const char *path, size_t *len) {
    char *d = NULL;
    if (rt_read_file(path, &d, len)) {
        fprintf(stderr, "  %s: %s (run the test from the repository root)\n", path, rt_errmsg());
        return NULL;
    }
    return d;
}

/* ---------------------------------------------------------------- the page */

static void check_asset(const char *url, const char *file, const char *ctype_prefix) {
    size_t len = 0;
    char *want = read_text(file, &len);
    resp r;
    CHECK(http("GET", url, NULL, NULL, &r) == 200);
    CHECK_MSG(!strncmp(r.ctype, ctype_prefix, strlen(ctype_prefix)), "%s: Content-Type %s", url, r.ctype);
    CHECK_MSG(strstr(r.csp, "script-src 'self'") && strstr(r.csp, "default-src 'none'") &&
                  strstr(r.csp, "frame-ancestors 'none'") && !strstr(r.csp, "unsafe-inline"),
              "%s: CSP '%s'", url, r.csp);
    CHECK_MSG(want && r.body.len == len && !memcmp(r.body.data, want, len), "%s differs from %s (%zu vs %zu bytes)", url,
              file, r.body.len, len);
    free(want);
    rt_buf_free(&r.body);
}

static void test_page(void) {
    check_asset("/admin", "web/index.html", "text/html");
    check_asset("/admin/", "web/index.html", "text/html");
    check_asset("/admin/app.js", "web/app.js", "text/javascript");
    check_asset("/admin/style.css", "web/style.css", "text/css");
    /* every /admin/ asset the page refers to is served */
    size_t len = 0;
    char *html = read_text("web/index.html", &len);
    size_t refs = 0;
    for (const char *p = html; p && (p = strstr(p, "\"/admin/")) != NULL; p++) {
        char url[128];
        const char *end = strchr(p + 1, '"');
        if (!end || (size_t)(end - p - 1) >= sizeof url) break;
        snprintf(url, sizeof url, "%.*s", (int)(end - p - 1), p + 1);
        resp r;
        CHECK_MSG(http("GET", url, NULL, NULL, &r) == 200, "the page refers to %s, which is not served", url);
        rt_buf_free(&r.body);
        refs++;
    }
    CHECK(refs >= 2);
    free(html);
    /* nothing but the embedded files; no writes; HEAD works */
    CHECK(is_error("GET", "/admin/nothing.js", NULL, NULL, 404, NULL, "/admin"));
    CHECK(is_error("GET", "/admin/../Makefile", NULL, NULL, 404, NULL, NULL));
    CHECK(is_error("GET", "/admin/api", NULL, NULL, 404, NULL, NULL));
    CHECK(is_error("POST", "/admin", NULL, "{}", 405, NULL, "method"));
    resp r;
    CHECK(http("HEAD", "/admin", NULL, NULL, &r) == 200 && r.body.len == 0 && !strncmp(r.ctype, "text/html", 9));
    rt_buf_free(&r.body);
}

/* ---------------------------------------------------------------- the views */

static void test_auth(void) {
    CHECK(is_error("GET", "/admin/api/guard/accounts", NULL, NULL, 401, NULL, "API key"));
    CHECK(is_error("GET", "/admin/api/guard/accounts", "rt-000000000000-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL,
                   401, NULL, NULL));
    CHECK(is_error("GET", "/admin/api/guard/accounts", g_user, NULL, 403, NULL, "admin"));
    CHECK(is_error("POST", "/admin/api/guard/accounts/alice/release", g_user, "{}", 403, NULL, "admin"));
    CHECK(is_error("POST", "/admin/api/guard/accounts/alice/tier", g_user, "{\"tier\":\"allow\"}", 403, NULL, "admin"));
    json_t *j = get_json("/admin/api/guard/accounts", g_admin, 200);
    CHECK(j != NULL);
    json_decref(j);
}

static void test_without_guard_tables(void) {
    json_t *j = get_json("/admin/api/guard/accounts", g_admin, 200);
    CHECK(j && json_is_false(json_object_get(j, "guard_tables")));
    json_t *alice = find_account(j, "alice");
    CHECK(alice && json_is_null(json_object_get(json_object_get(alice, "guard"), "risk")));
    CHECK(!strcmp(str(json_object_get(alice, "guard"), "level", NULL), "none"));
    CHECK(json_array_size(json_object_get(j, "groups")) == 0);
    CHECK(!strcmp(str(j, "policy", "source"), "defaults") && num(j, "policy.suspend_at") == 1.0);
    json_decref(j);
    j = get_json("/admin/api/guard/accounts/alice", g_admin, 200);
    CHECK(j && json_array_size(json_object_get(j, "timeline")) == 0 && json_array_size(json_object_get(j, "actions")) == 0 &&
          json_is_null(json_object_get(j, "signals")));
    json_decref(j);
}

typedef struct {
    gw_account alice, bob, mallory, s1, s2, s3, busy;
    int64_t mallory_suspend_action;
    double now;
} world;

static void ledger_row(gw_ledger *l, int64_t account, double t, int status, int64_t in, int64_t out) {
    gw_ledger_row r = {0};
    static int k = 0;
    snprintf(r.request_id, sizeof r.request_id, "chatcmpl-test%d", k++);
    r.t = t;
    r.account_id = account;
    snprintf(r.endpoint, sizeof r.endpoint, "/v1/chat/completions");
    snprintf(r.model, sizeof r.model, "tiny");
    r.status = status;
    r.prompt_tokens = in;
    r.completion_tokens = out;
    r.n = 1;
    r.ttft_ms = -1;
    CHECK_OK(gw_ledger_commit(l, &r, NULL));
}

static void score(gw_db *db, const gw_account *a, double t, double risk, const char *level, int64_t group, size_t gsize,
                  const char *signals) {
    guard_score_row s = {.t = t, .account_id = a->id, .group_id = group, .group_size = gsize, .n = t, .risk = risk,
                         .account_risk = risk, .group_risk = risk, .level = level, .code = "G-TEST", .signals = signals};
    CHECK_OK(guard_score_insert(db, &s));
}

static int64_t action(gw_db *db, const gw_account *a, double t, const char *what, int64_t group, double risk,
                      const char *evidence, int64_t prev_rpm) {
    guard_action_row r = {.t = t, .account_id = a->id, .group_id = group, .action = what, .mode = "enforce",
                          .code = "G-TEST", .risk = risk, .usage_row_id = 1, .reason = "guard: test", .evidence = evidence,
                          .prev_rpm = prev_rpm};
    int64_t id = 0;
    CHECK_OK(guard_action_insert(db, &r, &id));
    return id;
}

static void prepare(world *w) {
    gw_db *db = serve_db(g_srv);
    char key[GW_KEY_MAX];
    gw_limits none = {0, 0, 0};
    w->now = rt_wall_time();
    CHECK_OK(gw_account_find(db, "alice", &w->alice));
    CHECK_OK(gw_key_create(db, "bob", &none, 0, w->now, key, &w->bob));
    CHECK_OK(gw_key_create(db, "mallory", &none, 0, w->now, key, &w->mallory));
    gw_limits five = {5, 0, 0};
    CHECK_OK(gw_key_create(db, "s1", &five, 0, w->now, key, &w->s1));
    CHECK_OK(gw_key_create(db, "s2", &five, 0, w->now, key, &w->s2));
    CHECK_OK(gw_key_create(db, "s3", &five, 0, w->now, key, &w->s3));
    CHECK_OK(gw_key_create(db, "busy", &none, 0, w->now, key, &w->busy));
    /* names no key command accepts */
    CHECK_OK(db_exec("INSERT INTO accounts(name, created_at) VALUES(?1, 1)", EVIL));
    CHECK_OK(db_exec("INSERT INTO accounts(name, created_at) VALUES(CAST(X'62616466ff6e616d65' AS TEXT), 1)", NULL));
    /* the ledger */
    gw_ledger *l = NULL;
    CHECK_OK(gw_ledger_open(&l, g_db, 16));
    if (l) {
        ledger_row(l, w->alice.id, w->now - 100, 200, 10, 5);
        ledger_row(l, w->alice.id, w->now - 50, 429, 20, 6);
        ledger_row(l, w->alice.id, w->now - 10, 200, 30, 7);
        ledger_row(l, w->bob.id, w->now - 2 * 86400.0, 200, 40, 8);
        ledger_row(l, w->mallory.id, w->now - 5, 200, 100, 50);
        gw_ledger_close(l);
    }
    /* alice: scores written out of time order; the latest by time is 0.15 */
    score(db, &w->alice, 1000, 0.10, "none", 0, 0, NULL);
    score(db, &w->alice, 3000, 0.15, "none", 0, 0, NULL);
    score(db, &w->alice, 2000, 0.20, "none", 0, 0, NULL);
    /* mallory: escalates to a suspension with evidence */
    const double mr[] = {0.3, 0.6, 0.9, 1.2, 1.25};
    const char *ml[] = {"none", "flag", "throttle", "suspend", "suspend"};
    for (int i = 0; i < 5; i++)
        score(db, &w->mallory, 5000 + 100 * i, mr[i], ml[i], 0, 0,
              i == 4 ? "{\"logprobs\":[1,1],\"saturation\":[0.9,1]}" : NULL);
    action(db, &w->mallory, 5100, "flag", 0, 0.6, "{\"account\":0}", -1);
    char ev[512];
    snprintf(ev, sizeof ev,
             "{\"account\":%lld,\"risk\":1.2,\"account_assessment\":{\"risk\":1.2,\"requests\":40,\"signals\":"
             "{\"logprobs\":{\"value\":1,\"score\":1,\"family\":\"api\"}}},\"group\":{\"id\":%lld,\"size\":1,"
             "\"members\":[%lld]},\"note\":\"%s\"}",
             (long long)w->mallory.id, (long long)w->mallory.id, (long long)w->mallory.id, "<script>x</script>");
    w->mallory_suspend_action = action(db, &w->mallory, 5300, "suspend", 0, 1.2, ev, -1);
    CHECK_OK(gw_account_set_status(db, w->mallory.id, GW_ACCOUNT_SUSPENDED, "guard: suspected model extraction [G-TEST]",
                                   5300));
    /* s1..s3: a linked group of three, throttled (their rpm was 100 before) */
    const gw_account *s[3] = {&w->s1, &w->s2, &w->s3};
    for (int i = 0; i < 3; i++) {
        score(db, s[i], 7000 + i, 0.5 + 0.1 * i, "throttle", w->s1.id, 3, NULL);
        action(db, s[i], 7010, "throttle", w->s1.id, 0.85, "{}", 100);
    }
    /* bob: was in a group, flagged, then released by an operator: no group, level "released" */
    score(db, &w->bob, 6000, 0.7, "flag", w->s1.id, 4, NULL);
    action(db, &w->bob, 6000, "flag", w->s1.id, 0.7, "{}", -1);
    CHECK_OK(guard_release(db, "bob", 0, "test", 6100, NULL));
    /* busy: 1000 scores with one spike */
    for (int i = 0; i < 1000; i++) score(db, &w->busy, 10000 + i, i == 537 ? 5.0 : 0.01 * (i % 7), "none", 0, 0, NULL);
    /* a simulator label */
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO guard_sim_accounts(account_id, name, persona, strategy, attack, grp) VALUES(%lld, 's1', "
             "'ring', 'sybil', 1, 'ring-0')",
             (long long)w->s1.id);
    CHECK_OK(db_exec(sql, NULL));
}

static void test_views(world *w) {
    json_t *j = get_json("/admin/api/guard/accounts", g_admin, 200);
    if (!j) return;
    CHECK(json_is_true(json_object_get(j, "guard_tables")));
    CHECK(json_array_size(json_object_get(j, "accounts")) == 10);
    json_t *a = find_account(j, "alice");
    CHECK(num(a, "usage.requests") == 3 && num(a, "usage.ok_requests") == 2 && num(a, "usage.prompt_tokens") == 60 &&
          num(a, "usage.completion_tokens") == 18 && num(a, "usage.requests_24h") == 3);
    CHECK_NEAR(num(a, "guard.risk"), 0.15, 1e-12, 0);
    CHECK(num(a, "guard.risk_t") == 3000);
    json_t *rec = json_object_get(json_object_get(a, "guard"), "recent");
    CHECK(json_array_size(rec) == 3 && json_real_value(json_array_get(rec, 0)) == 0.10 &&
          json_real_value(json_array_get(rec, 1)) == 0.20 && json_real_value(json_array_get(rec, 2)) == 0.15);
    CHECK(!strcmp(str(json_object_get(a, "guard"), "level", NULL), "none"));
    CHECK(json_is_null(json_object_get(json_object_get(a, "guard"), "group")));
    CHECK(json_is_null(json_object_get(json_object_get(a, "guard"), "last_action")));
    json_t *b = find_account(j, "bob");
    CHECK(num(b, "usage.requests") == 1 && num(b, "usage.requests_24h") == 0);
    CHECK(!strcmp(str(json_object_get(b, "guard"), "level", NULL), "released"));
    CHECK(json_is_null(json_object_get(json_object_get(b, "guard"), "group")));
    json_t *m = find_account(j, "mallory");
    CHECK(!strcmp(str(m, "status", NULL), "suspended") && !strcmp(str(m, "reason", NULL), "guard: suspected model extraction [G-TEST]"));
    CHECK(num(m, "status_changed_at") == 5300);
    CHECK(!strcmp(str(json_object_get(m, "guard"), "level", NULL), "suspend"));
    CHECK_NEAR(num(m, "guard.risk"), 1.25, 1e-12, 0);
    CHECK(num(m, "guard.last_action.id") == (double)w->mallory_suspend_action);
    CHECK(!strcmp(str(json_object_get(json_object_get(m, "guard"), "last_action"), "action", NULL), "suspend"));
    const char *names[3] = {"s1", "s2", "s3"};
    for (int i = 0; i < 3; i++) {
        json_t *s = find_account(j, names[i]);
        json_t *g = json_object_get(json_object_get(s, "guard"), "group");
        CHECK(json_integer_value(json_object_get(g, "id")) == w->s1.id && json_integer_value(json_object_get(g, "size")) == 3);
        json_t *mem = json_object_get(g, "members");
        CHECK(json_array_size(mem) == 3 && json_integer_value(json_array_get(mem, 0)) == w->s1.id &&
              json_integer_value(json_array_get(mem, 2)) == w->s3.id);
        CHECK(!strcmp(str(json_object_get(s, "guard"), "level", NULL), "throttle"));
    }
    json_t *s1 = find_account(j, "s1");
    CHECK(!strcmp(str(s1, "label", "strategy"), "sybil") && json_is_true(json_object_get(json_object_get(s1, "label"), "attack")));
    json_t *groups = json_object_get(j, "groups");
    CHECK(json_array_size(groups) == 1);
    json_t *g0 = json_array_get(groups, 0);
    CHECK(json_integer_value(json_object_get(g0, "id")) == w->s1.id && json_integer_value(json_object_get(g0, "size")) == 3 &&
          json_integer_value(json_object_get(g0, "suspended")) == 0);
    CHECK_NEAR(num(g0, "risk"), 0.7, 1e-12, 0);
    CHECK(!strcmp(str(json_array_get(json_object_get(g0, "members"), 1), "name", NULL), "s2"));
    /* hostile names come back exactly (or, when not UTF-8, with U+FFFD instead of vanishing) */
    CHECK(find_account(j, EVIL) != NULL);
    CHECK(find_account(j, "badf\xef\xbf\xbdname") != NULL);
    json_decref(j);

    /* one account */
    char path[256];
    j = get_json("/admin/api/guard/accounts/mallory", g_admin, 200);
    if (j) {
        json_t *tl = json_object_get(j, "timeline");
        CHECK(json_array_size(tl) == 5 && json_integer_value(json_object_get(j, "timeline_rows")) == 5);
        const double mr[] = {0.3, 0.6, 0.9, 1.2, 1.25};
        for (size_t i = 0; i < json_array_size(tl) && i < 5; i++) {
            CHECK(num(json_array_get(tl, i), "t") == 5000 + 100.0 * (double)i);
            CHECK_NEAR(num(json_array_get(tl, i), "risk"), mr[i], 1e-12, 0);
        }
        json_t *acts = json_object_get(j, "actions");
        CHECK(json_array_size(acts) == 2);
        json_t *sus = json_array_get(acts, 1);
        CHECK(!strcmp(str(sus, "action", NULL), "suspend") && !strcmp(str(sus, "mode", NULL), "enforce"));
        CHECK(num(sus, "evidence.account_assessment.requests") == 40);
        CHECK(!strcmp(str(json_object_get(sus, "evidence"), "note", NULL), "<script>x</script>"));
        CHECK(json_is_array(json_object_get(json_object_get(j, "signals"), "logprobs")));
        CHECK(json_real_value(json_array_get(json_object_get(json_object_get(j, "signals"), "saturation"), 0)) == 0.9);
        CHECK(!strcmp(str(json_object_get(j, "account"), "name", NULL), "mallory"));
        json_decref(j);
    }
    /* one account's usage is summed as the gateway sums it (serve's own /admin/api/accounts/X) */
    const char *who[] = {"alice", "bob", "mallory", "s1"};
    for (size_t k = 0; k < 4; k++) {
        snprintf(path, sizeof path, "/admin/api/guard/accounts/%s", who[k]);
        json_t *mine = get_json(path, g_admin, 200);
        snprintf(path, sizeof path, "/admin/api/accounts/%s", who[k]);
        json_t *theirs = get_json(path, g_admin, 200);
        json_t *um = json_object_get(json_object_get(mine, "account"), "usage");
        json_t *ut = json_object_get(json_object_get(theirs, "account"), "usage");
        const char *keys[] = {"requests", "ok_requests", "prompt_tokens", "completion_tokens", "requests_24h", "tokens_24h"};
        for (size_t q = 0; q < 6; q++)
            CHECK_MSG(um && ut && json_integer_value(json_object_get(um, keys[q])) == json_integer_value(json_object_get(ut, keys[q])),
                      "%s: usage.%s differs from /admin/api/accounts", who[k], keys[q]);
        CHECK(json_equal(json_object_get(um, "last_request_at"), json_object_get(ut, "last_request_at")));
        json_decref(mine);
        json_decref(theirs);
    }
    j = get_json("/admin/api/guard/accounts/alice", g_admin, 200);
    CHECK(j && num(j, "account.usage.prompt_tokens") == 60 && num(j, "account.usage.requests") == 3);
    json_decref(j);
    snprintf(path, sizeof path, "/admin/api/guard/accounts/%%23%lld", (long long)w->s2.id);
    j = get_json(path, g_admin, 200);
    if (j) {
        json_t *mem = json_object_get(j, "group_members");
        CHECK(json_array_size(mem) == 3 && !strcmp(str(json_array_get(mem, 0), "name", NULL), "s1") &&
              !strcmp(str(json_array_get(mem, 2), "level", NULL), "throttle"));
        json_decref(j);
    }
    /* downsampling keeps the spike and the newest row, in time order */
    j = get_json("/admin/api/guard/accounts/busy?points=50", g_admin, 200);
    if (j) {
        json_t *tl = json_object_get(j, "timeline");
        size_t n = json_array_size(tl);
        CHECK_MSG(n >= 40 && n <= 50, "%zu points", n);
        CHECK(json_integer_value(json_object_get(j, "timeline_rows")) == 1000);
        double maxr = 0, prev = -1;
        int ordered = 1;
        for (size_t i = 0; i < n; i++) {
            double t = num(json_array_get(tl, i), "t"), r = num(json_array_get(tl, i), "risk");
            if (t <= prev) ordered = 0;
            prev = t;
            if (r > maxr) maxr = r;
        }
        CHECK(ordered && maxr == 5.0 && prev == 10999);
        json_decref(j);
    }
    j = get_json("/admin/api/guard/accounts/busy", g_admin, 200);
    CHECK(j && json_array_size(json_object_get(j, "timeline")) <= 240);
    json_decref(j);

    /* the server's policy replaces the defaults */
    guard_policy p;
    guard_policy_defaults(&p);
    p.flag_at = 0.42;
    p.enforce = 0;
    char *pj = guard_policy_to_json(&p);
    CHECK_OK(gw_config_set(serve_db(g_srv), "guard.policy", pj, w->now));
    free(pj);
    j = get_json("/admin/api/guard/accounts", g_admin, 200);
    CHECK(j && !strcmp(str(j, "policy", "source"), "server") && num(j, "policy.flag_at") == 0.42 &&
          json_is_false(json_object_get(json_object_get(j, "policy"), "enforce")));
    json_decref(j);
}

static void test_errors(void) {
    CHECK(is_error("GET", "/admin/api/guard/accounts/nobody", g_admin, NULL, 404, NULL, "nobody"));
    CHECK(is_error("GET", "/admin/api/guard/accounts/alice?points=1", g_admin, NULL, 400, "points", "points"));
    CHECK(is_error("GET", "/admin/api/guard/accounts/alice?points=abc", g_admin, NULL, 400, "points", "abc"));
    CHECK(is_error("GET", "/admin/api/guard/accounts/alice?points=99999", g_admin, NULL, 400, "points", NULL));
    CHECK(is_error("POST", "/admin/api/guard/accounts", g_admin, "{}", 405, NULL, "method"));
    CHECK(is_error("DELETE", "/admin/api/guard/accounts/alice", g_admin, NULL, 405, NULL, "method"));
    CHECK(is_error("GET", "/admin/api/guard/accounts/alice/release", g_admin, NULL, 405, NULL, "method"));
    CHECK(is_error("GET", "/admin/api/guard", g_admin, NULL, 404, NULL, "guard/accounts"));
    CHECK(is_error("GET", "/admin/api/guard/frobs", g_admin, NULL, 404, NULL, "guard/accounts"));
    CHECK(is_error("POST", "/admin/api/guard/accounts/alice/frobnicate", g_admin, "{}", 404, NULL, "release"));
    CHECK(is_error("POST", "/admin/api/guard/accounts/nobody/release", g_admin, "{}", 404, NULL, "nobody"));
    CHECK(is_error("POST", "/admin/api/guard/accounts/alice/release", g_admin, "not json", 400, NULL, "JSON object"));
    CHECK(is_error("POST", "/admin/api/guard/accounts/alice/release", g_admin, "[1]", 400, NULL, "JSON object"));
    CHECK(is_error("POST", "/admin/api/guard/accounts/alice/release", g_admin, "{\"group\":3}", 400, "group", "true or false"));
    CHECK(is_error("POST", "/admin/api/guard/accounts/alice/release", g_admin, "{\"note\":5}", 400, "note", "string"));
    /* serve's own admin routes are still there */
    json_t *j = get_json("/admin/api/accounts", g_admin, 200);
    CHECK(j && json_array_size(json_object_get(j, "accounts")) >= 9);
    json_decref(j);
    /* the row writers refuse what the tables would not mean */
    gw_db *db = serve_db(g_srv);
    guard_action_row bad = {.t = 1, .account_id = 1, .action = "ban", .prev_rpm = -1};
    CHECK(guard_action_insert(db, &bad, NULL) == -1 && strstr(rt_errmsg(), "'ban'"));
    bad.action = "flag";
    bad.mode = "sometimes";
    CHECK(guard_action_insert(db, &bad, NULL) == -1 && strstr(rt_errmsg(), "sometimes"));
    bad.mode = NULL;
    bad.evidence = "{not json";
    CHECK(guard_action_insert(db, &bad, NULL) == -1 && strstr(rt_errmsg(), "evidence"));
    guard_score_row sb = {.t = 1, .account_id = 1, .risk = 0.5, .level = "doom"};
    CHECK(guard_score_insert(db, &sb) == -1 && strstr(rt_errmsg(), "doom"));
    sb.level = NULL;
    sb.signals = "[1,2]";
    CHECK(guard_score_insert(db, &sb) == -1 && strstr(rt_errmsg(), "signals"));
    sb.signals = NULL;
    sb.risk = NAN;
    CHECK(guard_score_insert(db, &sb) == -1);
}

static void test_release(world *w) {
    char path[256], sql[512];
    /* one account */
    snprintf(path, sizeof path, "/admin/api/guard/accounts/%%23%lld/release", (long long)w->mallory.id);
    resp r;
    CHECK(http("POST", path, g_admin, "{\"note\":\"false positive\"}", &r) == 200);
    json_error_t e;
    json_t *j = json_loadb(r.body.data, r.body.len, 0, &e);
    rt_buf_free(&r.body);
    CHECK(j && !strcmp(str(json_object_get(j, "account"), "status", NULL), "active"));
    CHECK(j && !strcmp(str(json_object_get(json_object_get(j, "account"), "guard"), "level", NULL), "released"));
    json_decref(j);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM guard_actions WHERE account_id = %lld AND action = 'release' AND mode = 'operator' "
             "AND reason = 'admin root: false positive'",
             (long long)w->mallory.id);
    CHECK(db_int(sql) == 1);
    j = get_json("/admin/api/accounts/mallory", g_admin, 200); /* serve's own view agrees */
    CHECK(j && !strcmp(str(json_object_get(j, "account"), "status", NULL), "active"));
    json_decref(j);
    /* a whole group, from one member: every member released, the throttled rpm restored */
    CHECK(http("POST", "/admin/api/guard/accounts/s2/release", g_admin, "{\"group\":true}", &r) == 200);
    rt_buf_free(&r.body);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM guard_actions WHERE action = 'release' AND reason = 'released by admin root' AND "
             "account_id IN (%lld, %lld, %lld)",
             (long long)w->s1.id, (long long)w->s2.id, (long long)w->s3.id);
    CHECK(db_int(sql) == 3);
    gw_account a;
    CHECK_OK(gw_account_get(serve_db(g_srv), w->s3.id, &a));
    CHECK(a.limits.rpm == 100);
    j = get_json("/admin/api/guard/accounts", g_admin, 200);
    CHECK(j && json_array_size(json_object_get(j, "groups")) == 0);
    json_t *s3 = j ? find_account(j, "s3") : NULL;
    CHECK(s3 && !strcmp(str(json_object_get(s3, "guard"), "level", NULL), "released"));
    json_decref(j);
    /* a reason with markup, through serve's suspend route, comes back byte for byte */
    CHECK(http("POST", "/admin/api/accounts/alice/suspend", g_admin, "{\"reason\":\"<b onclick=x>abuse</b>\"}", &r) == 200);
    rt_buf_free(&r.body);
    j = get_json("/admin/api/guard/accounts", g_admin, 200);
    json_t *al = j ? find_account(j, "alice") : NULL;
    CHECK(al && !strcmp(str(al, "reason", NULL), "<b onclick=x>abuse</b>") && !strcmp(str(al, "status", NULL), "suspended"));
    json_decref(j);
}

/* tiers: why an account is trusted, set through the admin API (and guard_tier_set), shown in
 * both views; unknown tiers, bad bodies and non-admins refused */
static void test_tier(world *w) {
    (void)w;
    json_t *j = get_json("/admin/api/guard/accounts/alice", g_admin, 200);
    CHECK(j && json_is_null(json_object_get(json_object_get(json_object_get(j, "account"), "guard"), "trust")));
    json_decref(j);
    resp r;
    CHECK(http("POST", "/admin/api/guard/accounts/alice/tier", g_admin,
               "{\"tier\":\"eval\",\"note\":\"nightly benchmark <b>job</b>\"}", &r) == 200);
    json_error_t e;
    j = json_loadb(r.body.data, r.body.len, 0, &e);
    rt_buf_free(&r.body);
    json_t *t = j ? json_object_get(json_object_get(json_object_get(j, "account"), "guard"), "trust") : NULL;
    CHECK(t && !strcmp(str(t, "tier", NULL), "eval") && !strcmp(str(t, "note", NULL), "nightly benchmark <b>job</b>") &&
          !strcmp(str(t, "by", NULL), "admin root"));
    CHECK(t && num(t, "budget_x") == 8 && num(t, "risk_x") == 2 && json_is_false(json_object_get(t, "exempt")));
    json_decref(j);
    CHECK(db_int("SELECT count(*) FROM guard_tiers WHERE tier = 'eval' AND set_by = 'admin root'") == 1);
    j = get_json("/admin/api/guard/accounts", g_admin, 200);
    json_t *al = j ? find_account(j, "alice") : NULL;
    CHECK(al && !strcmp(str(json_object_get(json_object_get(al, "guard"), "trust"), "tier", NULL), "eval"));
    json_decref(j);
    /* the CLI's writer: back to standard, and the view shows no trust */
    CHECK_OK(guard_tier_set(serve_db(g_srv), NULL, "alice", "standard", "done", "cli", 7000, NULL));
    j = get_json("/admin/api/guard/accounts/alice", g_admin, 200);
    CHECK(j && json_is_null(json_object_get(json_object_get(json_object_get(j, "account"), "guard"), "trust")));
    json_decref(j);
    CHECK(guard_tier_set(serve_db(g_srv), NULL, "alice", "platinum", NULL, "cli", 7000, NULL) != 0);
    CHECK(strstr(rt_errmsg(), "platinum") && strstr(rt_errmsg(), "allow"));
    CHECK(is_error("POST", "/admin/api/guard/accounts/alice/tier", g_admin, "{\"tier\":\"platinum\"}", 400, "tier",
                   "platinum"));
    CHECK(is_error("POST", "/admin/api/guard/accounts/alice/tier", g_admin, "{\"note\":\"x\"}", 400, "tier", "tier"));
    CHECK(is_error("POST", "/admin/api/guard/accounts/alice/tier", g_admin, "nope", 400, NULL, "JSON object"));
    CHECK(is_error("POST", "/admin/api/guard/accounts/nobody/tier", g_admin, "{\"tier\":\"eval\"}", 404, NULL, "nobody"));
    CHECK(is_error("POST", "/admin/api/guard/accounts/alice/tier", g_user, "{\"tier\":\"allow\"}", 403, NULL, NULL)); /* alice is suspended by now: refused either way */
    CHECK(is_error("GET", "/admin/api/guard/accounts/alice/tier", g_admin, NULL, 405, NULL, "method"));
}

static void test_all(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    g_model = make_model();
    snprintf(g_db, sizeof g_db, "%s/dash.db", tl_tmpdir());
    serve_options o;
    serve_options_defaults(&o);
    serve_admin_routes routes;
    guard_admin_routes(&routes);
    o.model = g_model;
    o.model_name = "tiny";
    o.port = 0;
    o.db_path = g_db;
    o.threads = 1;
    o.admin_routes = &routes;
    if (serve_start(&g_srv, &o)) {
        fprintf(stderr, "serve_start: %s\n", rt_errmsg());
        exit(1);
    }
    g_port = serve_port(g_srv);
    gw_account acct;
    gw_limits none = {0, 0, 0};
    if (gw_key_create(serve_db(g_srv), "root", &none, 1, rt_wall_time(), g_admin, &acct) ||
        gw_key_create(serve_db(g_srv), "alice", &none, 0, rt_wall_time(), g_user, &acct)) {
        fprintf(stderr, "keys: %s\n", rt_errmsg());
        exit(1);
    }
    fprintf(stderr, "dashboard: page\n");
    test_page();
    fprintf(stderr, "dashboard: auth\n");
    test_auth();
    fprintf(stderr, "dashboard: without guard tables\n");
    test_without_guard_tables();
    world w;
    memset(&w, 0, sizeof w);
    prepare(&w);
    fprintf(stderr, "dashboard: views\n");
    test_views(&w);
    fprintf(stderr, "dashboard: errors\n");
    test_errors();
    fprintf(stderr, "dashboard: release\n");
    test_release(&w);
    fprintf(stderr, "dashboard: tier\n");
    test_tier(&w);
    serve_stop(g_srv);
    model_free(g_model);
    curl_global_cleanup();
}

TEST_MAIN("dashboard", TEST_CASE(test_all))
