/*
 * test_report.c — the evidence report on a hand-built gateway database: harvest lines matched
 * to ledger rows by output hash (hashes and the file's SHA-256 computed independently, with
 * Python's hashlib, and written here as constants), per-group counts before suspension, the
 * five summary lines, radioactivity results, HTML escaping, figures (base64 and SHA-256 from
 * Python too), and a written report that is self-contained. The full pipeline is tests/ref_demo.sh.
 */
#include <jansson.h>
#include <sqlite3.h>
#include <unistd.h>

#include "../src/gateway/gateway.h"
#include "../src/defend/defend.h"
#include "../src/report/report.h"
#include "testlib.h"

static char dir[] = "/tmp/retort-test-report-XXXXXX";
static char dbp[256], harvest[256], html_out[256];

static void exec_sql(sqlite3 *c, const char *sql) {
    char *err = NULL;
    int rc = sqlite3_exec(c, sql, NULL, NULL, &err);
    CHECK_MSG(rc == SQLITE_OK, "%s: %s", sql, err ? err : "");
    sqlite3_free(err);
}

static void build_db(void) {
    gw_db *g = NULL;
    CHECK(gw_db_open(&g, dbp) == 0);
    CHECK(guard_db_init(g) == 0);
    char key[GW_KEY_MAX];
    const char *names[] = {"alice", "mallory", "syb-k1", "syb-k2"};
    for (int i = 0; i < 4; i++) CHECK(gw_key_create(g, names[i], NULL, 0, 1.0 + i, key, NULL) == 0);
    gw_db_close(g);
    sqlite3 *c = NULL;
    CHECK(sqlite3_open(dbp, &c) == SQLITE_OK);
    /* BLAKE2b-128 of "m1 text" etc. (hashlib.blake2b(s, digest_size=16)) */
    exec_sql(c,
             "INSERT INTO usage(request_id, t, account_id, endpoint, status, completion_tokens, latency_ms, output_hash) "
             "VALUES"
             "('r1', 100, 2, '/v1/completions', 200, 10, 1, '3d29cd155b182e6743cab87087f25e9c'),"
             "('r2', 200, 2, '/v1/completions', 200, 10, 1, '400a21ac4ece8e3c92194928b48ca01e'),"
             "('r3', 300, 2, '/v1/completions', 200, 10, 1, '37e94a06842bf25b17d50d4f76f4c84b'),"
             "('r4', 2000, 2, '/v1/completions', 403, 0, 1, ''),"
             "('r5', 100, 3, '/v1/completions', 200, 5, 1, '3bda28d1659bf1e95ecb73b0198ed246'),"
             "('r6', 150, 4, '/v1/completions', 200, 6, 1, 'ab667b3754709d8485cc9adbc3c57f56'),"
             "('r7', 400, 4, '/v1/completions', 200, 7, 1, '87a97bd0a3a502f70e51be8322453cdb'),"
             "('r8', 120, 1, '/v1/chat/completions', 200, 4, 1, 'c60500b7bd1d207ebc971cf1422d66fc'),"
             "('r9', 3000, 1, '/v1/chat/completions', 200, 4, 1, '0e6df217976b27c88af5fae1ac398334');"
             "INSERT INTO guard_sim_accounts(account_id, name, persona, strategy, attack, grp) VALUES"
             "(1, 'alice', 'user', 'benign', 0, 'alice'), (2, 'mallory', 'bulk', 'bulk', 1, 'mallory'),"
             "(3, 'syb-k1', 'sybil', 'sybil', 1, 'syb'), (4, 'syb-k2', 'sybil', 'sybil', 1, 'syb');"
             "INSERT INTO guard_actions(t, account_id, group_id, action, mode, code, risk, reason, evidence) VALUES"
             "(250, 2, NULL, 'suspend', 'enforce', 'G-BULK', 1.5, 'bulk', '{\"signals\": 1}'),"
             "(300, 3, 7, 'suspend', 'enforce', 'G-SYBIL', 1.2, 'sybil', '{}'),"
             "(310, 4, 7, 'suspend', 'enforce', 'G-SYBIL', 1.2, 'sybil', '{}'),"
             "(260, 2, NULL, 'flag', 'shadow', 'X', 0.5, '', '{}');"
             "INSERT INTO guard_scores(t, account_id, risk) VALUES (100, 2, 0.2), (240, 2, 1.5), (120, 1, 0.01),"
             "(100, 3, 0.3), (300, 3, 1.2);"
             "UPDATE accounts SET status = 'suspended' WHERE id IN (2, 3, 4);");
    sqlite3_close(c);
    FILE *f = fopen(harvest, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("{\"prompt\":\"p\",\"completion\":\"m1 text\",\"usage\":{\"completion_tokens\":10}}\n"
          "{\"prompt\":\"p\",\"completion\":\"m2 text\",\"usage\":{\"completion_tokens\":10}}\n"
          "{\"prompt\":\"p\",\"completion\":\"never served\",\"usage\":{\"completion_tokens\":7}}\n"
          "{\"prompt\":\"p\",\"completion\":\"s1 text\",\"usage\":{\"completion_tokens\":5}}\n",
          f);
    fclose(f);
}

/* Write the report of database db to out and return its text (NULL, with a failed check, if
 * either step fails; the caller frees it). */
static char *written_report(const char *db, const char *out) {
    report_options o;
    report_options_defaults(&o);
    o.db_path = db, o.out_path = out;
    CHECK_MSG(report_write(&o) == 0, "%s", rt_errmsg());
    char *text = NULL;
    size_t len = 0;
    CHECK(rt_read_file(out, &text, &len) == 0);
    return text;
}

static void test_escape(void) {
    rt_buf b = {0};
    CHECK(report_html_escape(&b, "<a href=\"x\">Tom & Jerry's</a>") == 0);
    CHECK(b.data && !strcmp(b.data, "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;"));
    rt_buf_free(&b);
}

static void test_harvest_scan(void) {
    report_harvest_spec h = {.name = "h1", .guard = "on", .strategy = "bulk", .path = harvest, .ledger_db = dbp};
    report_harvest_stats st;
    CHECK(report_harvest_scan(&h, &st) == 0);
    CHECK(st.lines == 4);
    CHECK(st.matched == 3);
    CHECK(st.completion_tokens == 32);
    CHECK_MSG(st.accounts && !strcmp(st.accounts, "mallory,syb-k1"), "accounts %s", st.accounts ? st.accounts : "");
    /* hashlib.sha256 of the file's bytes */
    CHECK(!strcmp(st.sha256, "1eeecd5722ee01cfbce5a0a72b5f788d6dfb250b00d681bc75cc0448be0c6733"));
    report_harvest_stats_free(&st);
    /* a bad line is an error naming the file and line */
    char bad[300];
    snprintf(bad, sizeof bad, "%s/bad.jsonl", dir);
    FILE *f = fopen(bad, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("{\"completion\":\"ok\"}\n{\"prompt\":\"no completion\"}\n", f);
    fclose(f);
    h.path = bad;
    CHECK(report_harvest_scan(&h, &st) != 0);
    CHECK_MSG(strstr(rt_errmsg(), "bad.jsonl:2") != NULL, "%s", rt_errmsg());
}

static void test_summary_and_html(void) {
    gw_conn *db = NULL;
    CHECK(report_db_open(&db, dbp) == 0);
    report_harvest_spec h = {.name = "guard-on/bulk", .guard = "on", .strategy = "bulk", .path = harvest,
                             .ledger_db = dbp};
    CHECK(report_harvest_put(db, &h, NULL) == 0);
    h.name = "guard-off/bulk", h.guard = "off";
    CHECK(report_harvest_put(db, &h, NULL) == 0);
    /* a test of a model the report does not hold is refused, naming it (issue 17: add-test --model nosuch) */
    CHECK(report_test_put(db, "nosuch", "{\"mode\": \"closed\", \"p_value\": 0.5}", NULL) != 0);
    CHECK_MSG(strstr(rt_errmsg(), "no model named 'nosuch'") && rt_errkind() == RT_ERR_NOT_FOUND, "%s", rt_errmsg());
    /* a harvest whose name is longer than 64 bytes, and a model trained on it: the evidence chain
     * must link them (it kept names in 64-byte slots and lost this one) */
    const char *longname = "guard-on/bulk/a-harvest-name-longer-than-sixty-four-bytes-for-the-chain";
    h.name = longname, h.guard = ""; /* neither day: the tokens lines keep their sums */
    CHECK(report_harvest_put(db, &h, NULL) == 0);
    CHECK(gw_sql_exec(db,
                      "INSERT INTO report_models(name, role, path, sha256, params, trained_on, added_at) VALUES('student', "
                      "'student', 's.gguf', '', 1, 'guard-on/bulk/a-harvest-name-longer-than-sixty-four-bytes-for-the-chain', 0)",
                      "report_models") == 0);
    CHECK(report_test_put(db, "student", "{\"mode\": \"closed\", \"p_value\": 2.5e-9, \"tokens_scored\": 100}", NULL) ==
          0);
    CHECK(report_test_put(db, "student", "not json", NULL) != 0);
    CHECK(report_meta_set(db, "step.001", "retort demo --quick") == 0);
    /* the demo's antidistillation step (issue 15): the unguarded student, the student of the same
     * prompts answered with antidistillation and plainly; the gap is against the plain one (by
     * hand: 4.935 - 4.804 = +0.131) */
    CHECK(gw_sql_exec(db,
                      "INSERT INTO report_models(name, role, guard, path, sha256, params, trained_on, loss, added_at) "
                      "VALUES('st-off', 'student', 'off', 'o.gguf', '', 1, '', 4.8, 0),"
                      "('st-ad', 'student', 'off-antidistill', 'a.gguf', '', 1, '', 4.935, 0),"
                      "('st-rg', 'student', 'off-regenerated', 'r.gguf', '', 1, '', 4.804, 0)",
                      "report_models") == 0);
    char *s = NULL;
    CHECK(report_summary(db, &s) == 0);
    if (s) {
        fputs(s, stderr);
        CHECK(strstr(s, "; loss 4.800 without; antidistilled outputs: student loss 4.935 (+0.131 vs plain, loss "
                        "4.804)\n") != NULL);
        /* two operations (mallory; the sybil pair), 3 accounts, both caught; alice not */
        CHECK(strstr(s, "attackers suspended: 2 of 2 harvesting operations (3 accounts") == s);
        CHECK(strstr(s, "benign accounts suspended: 0 of 1 ") != NULL);
        CHECK(strstr(s, "tokens harvested: 32 with the guard, 32 without (100.0% kept)") != NULL);
        size_t nl = 0;
        for (const char *p = s; *p; p++) nl += *p == '\n';
        CHECK(nl == 5);
    }
    free(s);
    report_db_close(db);
    char *text = written_report(dbp, html_out);
    if (text) {
        CHECK(strncmp(text, "<!DOCTYPE html>", 15) == 0);
        CHECK(strstr(text, "<svg") != NULL);
        CHECK(strstr(text, "<script") == NULL);
        /* the sybil group: 2 requests before its first suspension (t=300), 3 in all */
        CHECK(strstr(text, "<td>syb</td><td>sybil</td><td class=n>2</td><td class=n>2</td>") != NULL);
        /* mallory: 2 served before t=250, 20 tokens */
        CHECK(strstr(text, "<td class=n>2</td><td class=n>20</td><td class=n>3</td><td class=n>1</td>") != NULL);
        CHECK(strstr(text, "retort demo --quick") != NULL);
        /* mallory's chain names the model trained on the long-named harvest */
        const char *chain = strstr(text, "<h3>mallory — bulk</h3>");
        const char *next = chain ? strstr(chain + 1, "<h3>") : NULL;
        const char *model = chain ? strstr(chain, "<li><b>Suspect model.</b> <code>s.gguf</code>") : NULL;
        CHECK_MSG(model && (!next || model < next), "mallory's evidence chain does not name s.gguf");
    }
    free(text);
}

/* A real, unlabelled investigation (issue 17 item 21): no simulator labels. mallory suspended by
 * the guard after a throttle, eve throttled only, bob scored over the flag threshold (0.5) only,
 * carol suspended by an operator, alice untouched. By hand: 2 suspended (mallory, carol), 1
 * throttled (eve), 1 flagged (bob) of 5; under the guard's investigation: mallory and eve. */
static void test_unlabelled(void) {
    char p[300], out[300];
    snprintf(p, sizeof p, "%s/real.db", dir);
    snprintf(out, sizeof out, "%s/real.html", dir);
    gw_db *g = NULL;
    CHECK(gw_db_open(&g, p) == 0);
    CHECK(guard_db_init(g) == 0);
    char key[GW_KEY_MAX];
    const char *names[] = {"alice", "mallory", "eve", "bob", "carol"};
    for (int i = 0; i < 5; i++) CHECK(gw_key_create(g, names[i], NULL, 0, 1.0 + i, key, NULL) == 0);
    gw_db_close(g);
    sqlite3 *c = NULL;
    CHECK(sqlite3_open(p, &c) == SQLITE_OK);
    exec_sql(c,
             "INSERT INTO usage(request_id, t, account_id, endpoint, status, completion_tokens, latency_ms, output_hash) "
             "VALUES ('r1', 100, 1, '/v1/completions', 200, 3, 1, ''), ('r2', 110, 2, '/v1/completions', 200, 10, 1, ''),"
             "('r3', 120, 2, '/v1/completions', 200, 10, 1, ''), ('r4', 300, 2, '/v1/completions', 403, 0, 1, ''),"
             "('r5', 130, 3, '/v1/completions', 200, 7, 1, ''), ('r6', 140, 3, '/v1/completions', 429, 0, 1, ''),"
             "('r7', 150, 4, '/v1/completions', 200, 2, 1, ''), ('r8', 160, 5, '/v1/completions', 200, 1, 1, '');"
             "INSERT INTO guard_actions(t, account_id, group_id, action, mode, code, risk, reason, evidence) VALUES"
             "(200, 2, NULL, 'throttle', 'enforce', 'G-BULK', 0.85, 'bulk', '{}'),"
             "(250, 2, NULL, 'suspend', 'enforce', 'G-BULK', 1.4, 'bulk', '{\"risk\": 1.4}'),"
             "(220, 3, NULL, 'throttle', 'enforce', 'G-SHIFT', 0.9, 'drifting toward the teacher', "
             "'{\"signals\": {\"shift\": [0.5, 0.75]}}'),"
             "(230, 3, NULL, 'throttle', 'enforce', 'G-LATER', 0.95, 'a later throttle', '{}');"
             "INSERT INTO guard_scores(t, account_id, risk) VALUES (100, 1, 0.1), (240, 2, 1.4), (200, 3, 0.9),"
             "(150, 4, 0.6), (160, 5, 0.2);"
             "UPDATE accounts SET status = 'suspended' WHERE id IN (2, 5);");
    sqlite3_close(c);
    gw_conn *db = NULL;
    CHECK(report_db_open(&db, p) == 0);
    char *s = NULL;
    CHECK(report_summary(db, &s) == 0);
    report_db_close(db);
    if (s) {
        fputs(s, stderr);
        CHECK(strstr(s, "accounts by action: 2 suspended, 1 throttled, 1 flagged, of 5 accounts\n") == s);
        /* mallory and eve: the guard acted; carol's suspension was an operator's */
        CHECK(strstr(s, "under investigation: 2 accounts in 2 operations") != NULL);
        CHECK(strstr(s, "harvesting operations") == NULL && strstr(s, "false positives") == NULL);
        CHECK(strstr(s, "tokens harvested: no harvest file recorded") != NULL); /* not "0 with the guard, 0 without" */
        size_t nl = 0;
        for (const char *q = s; *q; q++) nl += *q == '\n';
        CHECK(nl == 5);
    }
    free(s);
    char *text = written_report(p, out);
    if (text) {
        /* per-account attribution, strongest action first: mallory served 2 (20 tokens), refused 1 */
        const char *m = strstr(text, "<td>mallory</td><td>throttled, then suspended</td>");
        const char *e = strstr(text, "<td>eve</td><td>throttled</td>");
        const char *b = strstr(text, "<td>bob</td><td>flagged</td>");
        CHECK(m && e && b && m < e && e < b);
        CHECK(m && strstr(m, "<td class=n>1.40</td><td class=n>3</td><td class=n>2</td><td class=n>20</td><td class=n>1</td>") == strstr(m, "<td class=n>"));
        CHECK(strstr(text, "<td>carol</td><td>suspended (by an operator)</td>") != NULL);
        CHECK(strstr(text, "<td>alice</td>") == NULL);
        /* an evidence chain for the throttled account too, and the thresholds on the chart */
        CHECK(strstr(text, "1 throttled by the guard and not suspended: 1 requests served, 7 completion tokens") != NULL);
        /* its first throttle's stored row (t=220, not the later one): code, risk, reason, evidence */
        CHECK(strstr(text, "First throttle: eve at 1970-01-01 00:03:40 (+0.03 h) (reason code <code>G-SHIFT</code>, "
                           "risk 0.90): drifting toward the teacher.") != NULL);
        CHECK(strstr(text, "{\n  &quot;signals&quot;: {\n    &quot;shift&quot;: [\n      0.5,\n      0.75\n") != NULL);
        CHECK(strstr(text, "G-LATER") == NULL);
        CHECK(strstr(text, ">throttle</text>") != NULL && strstr(text, ">flag</text>") != NULL);
        /* eve's small chart marks when her risk (0.9 at t=200) crossed the throttle threshold */
        CHECK(strstr(text, "<title>the risk reached the throttle threshold</title>") != NULL &&
              strstr(text, "&#x2715; throttled</text>") != NULL);
    }
    free(text);
}

/* An account the guard asked to verify (gateway status suspended, an action row 'verify', no
 * suspension): the action column says verify, not "suspended (by an operator)". */
static void test_verify_column(void) {
    char p[300], out[300];
    snprintf(p, sizeof p, "%s/verify.db", dir);
    snprintf(out, sizeof out, "%s/verify.html", dir);
    gw_db *g = NULL;
    CHECK(gw_db_open(&g, p) == 0);
    CHECK(guard_db_init(g) == 0);
    char key[GW_KEY_MAX];
    const char *names[] = {"dave", "carol"};
    for (int i = 0; i < 2; i++) CHECK(gw_key_create(g, names[i], NULL, 0, 1.0 + i, key, NULL) == 0);
    gw_db_close(g);
    sqlite3 *c = NULL;
    CHECK(sqlite3_open(p, &c) == SQLITE_OK);
    exec_sql(c,
             "INSERT INTO usage(request_id, t, account_id, endpoint, status, completion_tokens, latency_ms, output_hash) "
             "VALUES ('r1', 100, 1, '/v1/completions', 200, 3, 1, ''), ('r2', 110, 2, '/v1/completions', 200, 4, 1, '');"
             "INSERT INTO guard_actions(t, account_id, group_id, action, mode, code, risk, reason, evidence) VALUES"
             "(105, 1, NULL, 'verify', 'enforce', 'G-POPULATION', 0.3, 'population', '{}');"
             "UPDATE accounts SET status = 'suspended' WHERE id IN (1, 2);");
    sqlite3_close(c);
    char *text = written_report(p, out);
    if (text) {
        CHECK(strstr(text, "<td>dave</td><td>verify</td>") != NULL);
        CHECK(strstr(text, "<td>carol</td><td>suspended (by an operator)</td>") != NULL);
    }
    free(text);
}

static void test_not_a_gateway_db(void) {
    char p[300];
    snprintf(p, sizeof p, "%s/empty.db", dir);
    report_options o;
    report_options_defaults(&o);
    o.db_path = p, o.out_path = html_out;
    CHECK(report_write(&o) != 0);
    CHECK(strstr(rt_errmsg(), "not a retort gateway database") != NULL);
}

/* Issue 17 item 20: one operation whose detector group was renamed as it merged (f1, f2 linked
 * as group #2, then f2, f3, f4 as group #4 after the root moved; f1 suspended before, so its
 * rows keep the old name). The dashboard's view and the report read the same groups: by hand,
 * one group named #2 of the four accounts (f1 suspended, f3 throttled, f2 and f4 linked to
 * them); alice (scored, never linked) is in none. */
static void test_linked_groups(void) {
    char p[300], out[300];
    snprintf(p, sizeof p, "%s/linked.db", dir);
    snprintf(out, sizeof out, "%s/linked.html", dir);
    gw_db *g = NULL;
    CHECK(gw_db_open(&g, p) == 0);
    if (!g) return;
    CHECK(guard_db_init(g) == 0);
    char key[GW_KEY_MAX];
    const char *names[] = {"alice", "f1", "f2", "f3", "f4"};
    for (int i = 0; i < 5; i++) CHECK(gw_key_create(g, names[i], NULL, 0, 1.0 + i, key, NULL) == 0);
    const struct { double t; int64_t id, grp; size_t size; } sc[] = {
        {100, 1, 0, 1}, {100, 2, 2, 2}, {100, 3, 2, 2}, {200, 3, 4, 4}, {200, 4, 4, 4}, {200, 5, 4, 4}};
    for (size_t i = 0; i < sizeof sc / sizeof *sc; i++) {
        guard_score_row row = {.t = sc[i].t, .account_id = sc[i].id, .group_id = sc[i].grp, .group_size = sc[i].size,
                               .n = 10, .risk = 0.2, .account_risk = 0.2, .group_risk = 0.2};
        CHECK(guard_score_insert(g, &row) == 0);
    }
    guard_action_row su = {.t = 150, .account_id = 2, .group_id = 2, .action = "suspend", .code = "G-SYB",
                           .risk = 1.3, .reason = "sybil", .prev_rpm = -1};
    guard_action_row th = {.t = 210, .account_id = 4, .group_id = 4, .action = "throttle", .code = "G-SYB",
                           .risk = 0.9, .reason = "sybil", .prev_rpm = -1};
    CHECK(guard_action_insert(g, &su, NULL) == 0 && guard_action_insert(g, &th, NULL) == 0);
    CHECK(gw_account_set_status(g, 2, GW_ACCOUNT_SUSPENDED, "guard", 150) == 0);
    char *js = NULL;
    CHECK(guard_view_accounts(g, 1000, &js) == 0);
    gw_db_close(g);
    json_t *j = js ? json_loads(js, 0, NULL) : NULL;
    free(js);
    json_t *groups = json_object_get(j, "groups");
    CHECK_MSG(json_array_size(groups) == 1, "the dashboard shows %zu groups, not 1", json_array_size(groups));
    json_t *g0 = json_array_get(groups, 0);
    CHECK(json_integer_value(json_object_get(g0, "id")) == 2 && json_integer_value(json_object_get(g0, "size")) == 4 &&
          json_integer_value(json_object_get(g0, "suspended")) == 1);
    json_t *accs = json_object_get(j, "accounts");
    for (size_t i = 0; i < json_array_size(accs); i++) {
        json_t *a = json_array_get(accs, i), *grp = json_object_get(json_object_get(a, "guard"), "group");
        const char *nm = json_string_value(json_object_get(a, "name"));
        if (nm && !strcmp(nm, "alice")) CHECK(json_is_null(grp));
        else if (nm && nm[0] == 'f')
            CHECK(json_integer_value(json_object_get(grp, "id")) == 2 &&
                  json_array_size(json_object_get(grp, "members")) == 4);
    }
    json_decref(j);
    gw_conn *db = NULL;
    CHECK(report_db_open(&db, p) == 0);
    char *s = NULL;
    CHECK(report_summary(db, &s) == 0);
    report_db_close(db);
    CHECK(s && strstr(s, "under investigation: 4 accounts in 1 operation (") != NULL);
    if (s) fputs(s, stderr);
    free(s);
    char *text = written_report(p, out);
    CHECK(text && strstr(text, "<tr><td>linked group #2</td><td>linked by the guard</td><td class=n>4</td>"
                               "<td class=n>1</td>") != NULL);
    free(text);
    /* "Release group" from any member releases the whole group the dashboard shows */
    CHECK(gw_db_open(&g, p) == 0);
    if (g) {
        CHECK_MSG(guard_release(g, "f4", 1, "test", 1000, NULL) == 0, "%s", rt_errmsg());
        gw_account f1;
        CHECK(gw_account_get(g, 2, &f1) == 0 && f1.status == GW_ACCOUNT_ACTIVE);
        char *j2 = NULL;
        CHECK(guard_view_accounts(g, 1001, &j2) == 0);
        json_t *v2 = j2 ? json_loads(j2, 0, NULL) : NULL;
        CHECK(v2 && json_array_size(json_object_get(v2, "groups")) == 0);
        json_decref(v2);
        free(j2);
        gw_db_close(g);
    }
}

/* Issue 17 item 21: a labelled report says, for each true operation, how the guard linked its
 * keys, from the link evidence of its action rows. The rows here are written by hand, so the
 * table is known: the pair (s1, s2) shows a shared address, a sign-up burst and overlapping
 * activity in s1's row (template 0.4 is under the detector's 0.5) and a cohort move in s2's;
 * (s1, s3) an address, a template (0.9) and a fingerprint (timing 0.1 is under 0.5); s2's link
 * to alice is outside the operation; an unlinked entry and a release row's do not count. Then
 * the detector's own evidence (a swarm on one address, one burst of sign-ups) is read back. */
static void test_link_evidence(void) {
    char p[300], out[300];
    snprintf(p, sizeof p, "%s/links.db", dir);
    snprintf(out, sizeof out, "%s/links.html", dir);
    gw_db *g = NULL;
    CHECK(gw_db_open(&g, p) == 0);
    if (!g) return;
    CHECK(guard_db_init(g) == 0);
    char key[GW_KEY_MAX];
    const char *names[] = {"alice", "s1", "s2", "s3", "lone"};
    for (int i = 0; i < 5; i++) CHECK(gw_key_create(g, names[i], NULL, 0, 1.0 + i, key, NULL) == 0);
    guard_label lab[5];
    memset(lab, 0, sizeof lab);
    for (int i = 0; i < 5; i++) {
        lab[i].account_id = i + 1;
        snprintf(lab[i].name, sizeof lab[i].name, "%s", names[i]);
        snprintf(lab[i].persona, sizeof lab[i].persona, "%s", i == 0 ? "user" : i < 4 ? "sybil" : "bulk");
        snprintf(lab[i].strategy, sizeof lab[i].strategy, "%s", i == 0 ? "benign" : i < 4 ? "sybil" : "bulk");
        lab[i].attack = i > 0;
        snprintf(lab[i].group, sizeof lab[i].group, "%s", i == 0 ? "alice" : i < 4 ? "syb" : "lone");
    }
    CHECK(guard_labels_write(g, lab, 5) == 0);
    const char *ev_s1 = "{\"account\": 2, \"linked\": ["
                        "{\"account\": 3, \"linked\": true, \"ip\": 1, \"burst\": 1, \"template\": 0.4, \"timing\": 0.6,"
                        " \"fingerprint\": 0, \"cohort\": 0},"
                        "{\"account\": 4, \"linked\": true, \"ip\": 1, \"burst\": 0, \"template\": 0.9, \"timing\": 0.1,"
                        " \"fingerprint\": 1, \"cohort\": 0},"
                        "{\"account\": 1, \"linked\": false, \"ip\": 1, \"burst\": 1, \"template\": 1, \"timing\": 1,"
                        " \"fingerprint\": 1, \"cohort\": 1}]}";
    const char *ev_s2 = "{\"account\": 3, \"linked\": ["
                        "{\"account\": 2, \"linked\": true, \"ip\": 0, \"burst\": 0, \"template\": 0, \"timing\": 0,"
                        " \"fingerprint\": 0, \"cohort\": 1},"
                        "{\"account\": 1, \"linked\": true, \"ip\": 1, \"burst\": 0, \"template\": 0, \"timing\": 0,"
                        " \"fingerprint\": 0, \"cohort\": 0}]}";
    const char *ev_rel = "{\"account\": 4, \"linked\": [{\"account\": 5, \"linked\": true, \"ip\": 1}]}";
    guard_action_row rows[] = {
        {.t = 100, .account_id = 2, .group_id = 2, .action = "suspend", .code = "G-SYB", .risk = 1.3, .reason = "x",
         .evidence = ev_s1, .prev_rpm = -1},
        {.t = 110, .account_id = 3, .group_id = 2, .action = "suspend", .code = "G-SYB", .risk = 1.3, .reason = "x",
         .evidence = ev_s2, .prev_rpm = -1},
        {.t = 120, .account_id = 4, .group_id = 2, .action = "flag", .code = "G-SYB", .risk = 0.6, .reason = "x",
         .evidence = "{}", .prev_rpm = -1},
        {.t = 90, .account_id = 5, .group_id = 0, .action = "suspend", .code = "BULK", .risk = 1.5, .reason = "x",
         .evidence = "{\"account\": 5, \"linked\": []}", .prev_rpm = -1},
        {.t = 80, .account_id = 4, .group_id = 0, .action = "release", .mode = "operator", .reason = "x",
         .evidence = ev_rel, .prev_rpm = -1},
    };
    for (size_t i = 0; i < RT_ARRAY_LEN(rows); i++) CHECK_OK(guard_action_insert(g, &rows[i], NULL));
    gw_db_close(g);
    gw_conn *db = NULL;
    CHECK(report_db_open(&db, p) == 0);
    guard_pair_link *pl = NULL;
    size_t npl = 0;
    CHECK_OK(guard_pair_links_read(db, &pl, &npl));
    CHECK_MSG(npl == 3, "%zu linked pairs, not 3", npl);
    if (npl == 3) {
        CHECK(pl[0].a == 1 && pl[0].b == 3 && pl[0].kinds == GUARD_LINK_IP && pl[0].rows == 1);
        CHECK(pl[1].a == 2 && pl[1].b == 3 && pl[1].rows == 2 &&
              pl[1].kinds == (GUARD_LINK_IP | GUARD_LINK_BURST | GUARD_LINK_TIMING | GUARD_LINK_COHORT));
        CHECK(pl[2].a == 2 && pl[2].b == 4 && pl[2].rows == 1 &&
              pl[2].kinds == (GUARD_LINK_IP | GUARD_LINK_TEMPLATE | GUARD_LINK_FINGERPRINT));
    }
    free(pl);
    report_db_close(db);
    char *text = written_report(p, out);
    CHECK(text && strstr(text, "<h3>How the guard linked each operation</h3>"));
    CHECK_MSG(text && strstr(text, "<tr><td>syb</td><td class=n>3</td><td>3 in linked group #2</td><td class=n>2</td>"
                                   "<td>shared client address (2), same burst of sign-ups (1), shared prompt template "
                                   "(1), shared client fingerprint (1), aligned with a cohort move (1), overlapping "
                                   "activity (1)</td><td class=n>1</td></tr>"),
              "the syb row is not as computed by hand");
    CHECK(text && strstr(text, "<tr><td>lone</td><td class=n>1</td><td>none (each key judged alone)</td>"
                               "<td class=n>0</td><td>—</td><td class=n>0</td></tr>"));
    free(text);
    /* the detector's evidence, read back: five keys on one address, signed up within 15 minutes */
    guard_policy pol;
    guard_policy_defaults(&pol);
    guard_detector *d = NULL;
    CHECK_OK(guard_detector_new(&d, &pol, NULL));
    guard_verdict v;
    for (int i = 0; i < 60; i++)
        for (int k = 0; k < 5; k++) {
            guard_event e;
            memset(&e, 0, sizeof e);
            e.account_id = 20 + k;
            e.t = 1e6 + 60.0 * i + k;
            e.account_created_at = 1e6 - 3600 + 30 * k;
            e.client_hash = 0xfeed;
            e.status = 200;
            e.prompt_tokens = 20;
            e.completion_tokens = 100;
            e.max_tokens = 128;
            e.prompt_hash = rt_mix64((uint64_t)(k * 1000 + i)) | 1;
            CHECK_OK(guard_detector_observe(d, &e, &v));
        }
    char *ev = guard_detector_evidence(d, 20);
    guard_detector_free(d);
    CHECK(ev != NULL);
    CHECK(gw_db_open(&g, p) == 0);
    if (g && ev) {
        guard_action_row r = {.t = 2e6, .account_id = 20, .group_id = 20, .action = "flag", .code = "G",
                              .risk = 0.5, .reason = "x", .evidence = ev, .prev_rpm = -1};
        CHECK_OK(guard_action_insert(g, &r, NULL));
        gw_db_close(g);
        CHECK(report_db_open(&db, p) == 0);
        CHECK_OK(guard_pair_links_read(db, &pl, &npl));
        size_t swarm = 0;
        for (size_t i = 0; i < npl; i++)
            if (pl[i].a == 20 && pl[i].b > 20 && pl[i].b < 25) {
                swarm++;
                /* one address; active in the same five-minute bins all hour (overlap 1); the
                 * burst needs burst_min = 5 sign-ups seen, so only the fifth key's first
                 * request gives it, to its pairs: here (20, 24) */
                unsigned want = GUARD_LINK_IP | GUARD_LINK_TIMING | (pl[i].b == 24 ? GUARD_LINK_BURST : 0);
                CHECK_MSG(pl[i].kinds == want, "pair (20, %lld): kinds %#x, not %#x", (long long)pl[i].b, pl[i].kinds,
                          want);
            }
        CHECK_MSG(swarm == 4, "the detector's evidence gives %zu of account 20's 4 links", swarm);
        free(pl);
        report_db_close(db);
    }
    free(ev);
}

static int count_of(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

static void write_bytes(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(data, 1, len, f) == len);
    if (f) fclose(f);
}

/* `report add-figure`: an SVG (one that carries a script) stored and drawn as an <img> from a
 * data: URL, whose base64 and SHA-256 were computed independently with Python's base64 and
 * hashlib; the caption escaped; the same name replaces; files that are not SVG refused. */
static void test_figures(void) {
    static const char svg[] = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"4\" height=\"4\"><script>alert(1)"
                              "</script><rect width=\"4\" height=\"4\" fill=\"#d62728\"/></svg>\n";
    char fig[300], bad[300];
    snprintf(fig, sizeof fig, "%s/fig.svg", dir);
    snprintf(bad, sizeof bad, "%s/bad.svg", dir);
    write_bytes(fig, svg, sizeof svg - 1);
    gw_conn *db = NULL;
    CHECK(report_db_open(&db, dbp) == 0);
    CHECK(report_figure_put(db, "trade-off", fig, "first caption", NULL) == 0);
    CHECK(report_figure_put(db, "trade-off", fig, "teacher <b>& student</b>", "experiments/x.sh OUT") == 0);
    write_bytes(bad, "hello, not an image\n", 20);
    CHECK(report_figure_put(db, "bad", bad, NULL, NULL) != 0);
    CHECK_MSG(strstr(rt_errmsg(), "bad.svg: expected an SVG image"), "%s", rt_errmsg());
    write_bytes(bad, "", 0);
    CHECK(report_figure_put(db, "bad", bad, NULL, NULL) != 0);
    CHECK_MSG(strstr(rt_errmsg(), "bad.svg: empty file"), "%s", rt_errmsg());
    write_bytes(bad, "<svg>\0</svg>", 12);
    CHECK(report_figure_put(db, "bad", bad, NULL, NULL) != 0);
    CHECK_MSG(strstr(rt_errmsg(), "NUL byte"), "%s", rt_errmsg());
    write_bytes(bad, "\xEF\xBB\xBF\n <?xml version=\"1.0\"?>\n<svg/>", 33);
    CHECK_MSG(report_figure_put(db, "bom", bad, NULL, NULL) == 0, "%s", rt_errmsg()); /* BOM, space, declaration */
    CHECK(report_figure_put(db, "missing", "/nonexistent/fig.svg", NULL, NULL) != 0);
    report_db_close(db);
    char *text = written_report(dbp, html_out);
    if (!text) return;
    CHECK(strstr(text, "<img alt=\"trade-off\" src=\"data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5v"
                       "cmcvMjAwMC9zdmciIHdpZHRoPSI0IiBoZWlnaHQ9IjQiPjxzY3JpcHQ+YWxlcnQoMSk8L3NjcmlwdD48cmVjdCB3aWR0aD"
                       "0iNCIgaGVpZ2h0PSI0IiBmaWxsPSIjZDYyNzI4Ii8+PC9zdmc+Cg==\">") != NULL);
    CHECK(strstr(text, "136 bytes, SHA-256 d0e7ba906041d4cfb98c612b5a3bedba64980a50e25d23e126c6f7d5275d63b1") != NULL);
    CHECK(strstr(text, "<b>trade-off.</b> teacher &lt;b&gt;&amp; student&lt;/b&gt;") != NULL);
    CHECK(strstr(text, "<code>experiments/x.sh OUT</code>") != NULL);
    CHECK(count_of(text, "<figure>") == 2);          /* trade-off (replaced once) and bom */
    CHECK(strstr(text, "first caption") == NULL);
    CHECK(strstr(text, "<script") == NULL);          /* the SVG's script is inside the base64 only */
    CHECK(strstr(text, "<h2 id=figures>") < strstr(text, "<h2 id=method>"));
    free(text);
}

int main(void) {
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(dbp, sizeof dbp, "%s/gateway.db", dir);
    snprintf(harvest, sizeof harvest, "%s/harvest.jsonl", dir);
    snprintf(html_out, sizeof html_out, "%s/report.html", dir);
    build_db();
    test_escape();
    test_harvest_scan();
    test_summary_and_html();
    test_unlabelled();
    test_verify_column();
    test_linked_groups();
    test_link_evidence();
    test_figures();
    test_not_a_gateway_db();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    printf("%d checks, %d failures\n", tl_checks, tl_failures);
    return tl_failures != 0;
}
