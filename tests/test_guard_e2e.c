/* test_guard_e2e.c — the guard end to end, in seconds: a tiny random model served in-process
 * on a loopback port with --sim-clock; the simulator drives a benign-only scenario with the
 * guard in shadow mode, the reference is calibrated from it, then a second server runs the
 * guard enforcing with that reference while benign accounts and a bulk harvester share a
 * simulated day. Checked: every benign account stays active; the harvester is suspended
 * within the floor (1,000 queries), gets 403 with the reason code, the action row carries its
 * evidence (signals, window), `explain` and `status` show it, the harvest file holds exactly
 * the answers it was served, eval counts it, and `release` reactivates it. A small scenario
 * and a model of a few thousand parameters: arithmetic, not quality, is what is checked here;
 * docs/guard.md has the full-size numbers. */
#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "defend/defend.h"
#include "sim/sim.h"
#include "model/model.h"
#include "serve/serve.h"
#include "testlib.h"
#include "fixtures.h"

static model *make_model(void) {
    static const char *lines[] = {
        "And Moses went unto the city of Gideon and spake with the people of the land. ",
        "What does Ruth 2:3 mean? Who was Boaz? Explain the story of Hannah. ",
        "Continue the text: in those days there was a great famine in the field. ",
        "Write a psalm about Caleb in the style of Genesis. Thanks! Hello, quick question. ",
    };
    rt_buf text = {0};
    for (int r = 0; r < 20; r++)
        for (size_t i = 0; i < RT_ARRAY_LEN(lines); i++) rt_buf_append(&text, lines[i], strlen(lines[i]));
    tokenizer *tok = NULL;
    if (tokenizer_train(&tok, text.data, text.len, 400)) {
        fprintf(stderr, "tokenizer_train: %s\n", rt_errmsg());
        exit(1);
    }
    rt_buf_free(&text);
    model_config c = {.dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn_dim = 64,
                      .vocab_size = tokenizer_vocab_size(tok), .ctx_len = 512, .norm_eps = 1e-5f,
                      .rope_base = 10000.0f, .tied = 1};
    model *m = NULL;
    if (model_config_validate(&c) || model_create(&m, &c, tok)) {
        fprintf(stderr, "model: %s\n", rt_errmsg());
        exit(1);
    }
    model_init_weights(m, 11);
    return m;
}

static const char *write_corpus(void) {
    static const char *const books[] = {"Genesis", "Ruth", "1 Kings", "Micah"};
    fx_corpus_shape shape = {books, 4, 5, 12, 10, 16, 0};
    return fx_write_corpus(&shape);
}

static const char *write_file(const char *name, const char *text) {
    static char paths[8][512];
    static int k = 0;
    char *p = paths[k++ % 8];
    snprintf(p, 512, "%s/%s", tl_tmpdir(), name);
    rt_write_file_atomic(p, text, strlen(text));
    return p;
}

static model *g_model;

typedef struct {
    guard *g;
    serve_server *s;
    serve_hooks hooks;
    char url[64];
} running;

static int start(running *r, const char *db, int shadow, const char *reference) {
    memset(r, 0, sizeof *r);
    guard_options go;
    guard_options_defaults(&go);
    go.db_path = db;
    go.shadow = shadow;
    go.reference_path = reference;
    if (guard_open(&r->g, &go)) return -1;
    guard_serve_hooks(r->g, &r->hooks);
    serve_options o;
    serve_options_defaults(&o);
    o.model = g_model;
    o.model_name = "tiny";
    o.port = 0;
    o.db_path = db;
    o.threads = 1;
    o.sim_clock = 1;
    o.max_tokens_cap = 8;
    o.max_queue = 256;
    o.hooks = &r->hooks;
    if (serve_start(&r->s, &o)) {
        guard_close(r->g);
        return -1;
    }
    snprintf(r->url, sizeof r->url, "http://127.0.0.1:%d", serve_port(r->s));
    return 0;
}

static void stop(running *r) {
    serve_stop(r->s);
    guard_flush(r->g);
    guard_close(r->g);
}

static int64_t db_int(const char *db, const char *sql) {
    sqlite3 *c = NULL;
    int64_t v = -1;
    if (sqlite3_open(db, &c) == SQLITE_OK) {
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

static size_t count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = 0;
    int ch;
    while ((ch = fgetc(f)) != EOF) n += ch == '\n';
    fclose(f);
    return n;
}

static void test_e2e(void) {
    g_model = make_model();
    const char *corpus = write_corpus();
    char db1[512], db2[512], ref[512], hdir[512];
    snprintf(db1, sizeof db1, "%s/calib.db", tl_tmpdir());
    snprintf(db2, sizeof db2, "%s/day.db", tl_tmpdir());
    snprintf(ref, sizeof ref, "%s/reference.json", tl_tmpdir());
    snprintf(hdir, sizeof hdir, "%s/harvest", tl_tmpdir());
    double t0 = rt_now();

    /* 1. benign traffic, guard in shadow mode; calibrate */
    const char *calib = write_file("calib.json",
                                   "{\"name\":\"cal\",\"seed\":5,\"hours\":8,\"max_tokens\":8,\"personas\":["
                                   "{\"kind\":\"benign\",\"count\":30,\"requests_per_day\":[20,60]},"
                                   "{\"kind\":\"power\",\"count\":3,\"requests_per_day\":[150,300]},"
                                   "{\"kind\":\"app\",\"count\":2,\"requests_per_day\":[200,400]}]}");
    running r;
    if (start(&r, db1, 1, NULL)) {
        CHECK_MSG(0, "start: %s", rt_errmsg());
        return;
    }
    guard_sim_options so;
    guard_sim_options_defaults(&so);
    so.endpoint = r.url;
    so.db_path = db1;
    so.scenario_path = calib;
    so.corpus_path = corpus;
    so.speed = 0;
    so.concurrency = 8;
    so.quiet = 1;
    guard_sim_stats st;
    CHECK_OK(guard_simulate(&so, &st));
    stop(&r);
    fprintf(stderr, "  calibration day: %zu requests, %zu served (%.1fs)\n", st.requests, st.ok, rt_now() - t0);
    CHECK(st.ok > 300 && st.refused_403 == 0 && st.errors == 0);
    CHECK(db_int(db1, "SELECT count(*) FROM guard_actions WHERE action = 'suspend'") == 0);
    guard_calib_options co = {.db_path = db1, .quantile = 0.99, .seed = 1, .only_labelled_benign = 1};
    guard_reference reference;
    CHECK_OK(guard_calibrate(&co, &reference, NULL));
    CHECK(reference.has_shift && reference.rff.dim == 32 && reference.has_levels && reference.n_stop_bands > 0);
    CHECK_OK(guard_reference_save(&reference, ref));
    guard_reference_free(&reference);

    /* 2. a day with a bulk harvester, the guard enforcing */
    const char *day = write_file("day.json",
                                 "{\"name\":\"day\",\"seed\":6,\"hours\":8,\"max_tokens\":8,\"personas\":["
                                 "{\"kind\":\"benign\",\"count\":16,\"requests_per_day\":[20,60]},"
                                 "{\"kind\":\"power\",\"count\":2,\"requests_per_day\":[150,300]},"
                                 "{\"kind\":\"bulk\",\"count\":1,\"requests\":1500,\"rate_per_hour\":6000,"
                                 "\"start_hour\":1}]}");
    if (start(&r, db2, 0, ref)) {
        CHECK_MSG(0, "start: %s", rt_errmsg());
        return;
    }
    so.endpoint = r.url;
    so.db_path = db2;
    so.scenario_path = day;
    so.harvest_dir = hdir;
    CHECK_OK(guard_simulate(&so, &st));
    {
        /* the guard's figures for the server's /metrics agree with guard_stats */
        rt_buf mb = {0};
        uint64_t ev = 0, act = 0;
        guard_flush(r.g);
        guard_stats(r.g, &ev, &act);
        char want[96];
        snprintf(want, sizeof want, "retort_guard_events_total %llu\n", (unsigned long long)ev);
        CHECK(r.hooks.metrics && r.hooks.metrics(r.hooks.ud, &mb) == 0 && mb.data && strstr(mb.data, want) && ev > 0 &&
              act > 0 && strstr(mb.data, "retort_guard_actions_total "));
        rt_buf_free(&mb);
    }
    stop(&r);
    fprintf(stderr, "  attack day: %zu requests, %zu served, %zu refused (403) (%.1fs so far)\n", st.requests, st.ok,
            st.refused_403, rt_now() - t0);
    gw_db *db = NULL;
    CHECK_OK(gw_db_open(&db, db2));
    if (!db) return;
    gw_account *acc = NULL;
    size_t n_acc = 0;
    CHECK_OK(gw_account_list(db, &acc, &n_acc));
    int64_t bulk_id = -1;
    size_t benign = 0, benign_active = 0;
    for (size_t i = 0; i < n_acc; i++) {
        if (strstr(acc[i].name, "-bulk-")) {
            bulk_id = acc[i].id;
            CHECK_MSG(acc[i].status == GW_ACCOUNT_SUSPENDED, "the harvester %s is %s", acc[i].name,
                      acc[i].status ? "suspended" : "active");
            CHECK(strstr(acc[i].reason, "guard: suspected model extraction [G-") != NULL);
        } else {
            benign++;
            benign_active += acc[i].status == GW_ACCOUNT_ACTIVE;
        }
    }
    free(acc);
    CHECK(benign == 18 && benign_active == benign);
    CHECK(bulk_id > 0);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM usage WHERE account_id = %lld AND status = 200", (long long)bulk_id);
    int64_t served = db_int(db2, sql);
    fprintf(stderr, "  the harvester was served %lld requests before its suspension\n", (long long)served);
    CHECK(served >= 20 && served <= 1000);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM usage WHERE account_id = %lld AND status = 403", (long long)bulk_id);
    CHECK(db_int(db2, sql) >= 1);
    /* the action row and its evidence */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM guard_actions WHERE account_id = %lld AND action = 'suspend' AND mode = 'enforce' "
             "AND evidence LIKE '%%\"signals\"%%' AND evidence LIKE '%%\"window\"%%' AND usage_row_id > 0",
             (long long)bulk_id);
    CHECK(db_int(db2, sql) == 1);
    CHECK(db_int(db2, "SELECT count(*) FROM guard_actions WHERE action = 'suspend' AND account_id IN "
                      "(SELECT account_id FROM guard_sim_accounts WHERE attack = 0)") == 0);
    /* every request that reached the hooks (served, or refused by the limits) is a stored event */
    /* every event carries the client's fingerprint (its headers, from the server) */
    CHECK(db_int(db2, "SELECT count(*) FROM guard_events WHERE coalesce(client_fp, 0) = 0") == 0);
    CHECK(db_int(db2, "SELECT count(DISTINCT client_fp) FROM guard_events") >= 1);
    CHECK(db_int(db2, "SELECT count(*) FROM guard_events") ==
          db_int(db2, "SELECT count(*) FROM usage WHERE status IN (200, 429) AND endpoint != '/v1/models'"));
    CHECK(st.errors == 0);
    /* explain and status read it back */
    char *buf = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&buf, &len);
    char who[32];
    snprintf(who, sizeof who, "#%lld", (long long)bulk_id);
    CHECK_OK(guard_explain_print(db, who, mf, 0));
    CHECK_OK(guard_status_print(db, mf, 0));
    fclose(mf);
    CHECK(buf && strstr(buf, "suspend (enforce)") && strstr(buf, "saturation") && strstr(buf, "latest score"));
    free(buf);
    /* the harvest holds what it was served */
    char hpath[600];
    snprintf(hpath, sizeof hpath, "%s/day-bulk-0.jsonl", hdir);
    CHECK((int64_t)count_lines(hpath) == served);
    /* eval counts it */
    guard_eval_options eo = {.db_path = db2, .reference_path = ref, .as_json = 1};
    buf = NULL;
    mf = open_memstream(&buf, &len);
    CHECK_OK(guard_eval(&eo, mf));
    fclose(mf);
    json_error_t je;
    json_t *ej = buf ? json_loads(buf, 0, &je) : NULL;
    CHECK(ej != NULL);
    json_t *bg = json_object_get(json_object_get(json_object_get(ej, "strategies"), "bulk"), "guard");
    CHECK(json_number_value(json_object_get(bg, "tpr")) == 1.0);
    CHECK(json_number_value(json_object_get(json_object_get(ej, "benign"), "fpr")) == 0.0);
    json_decref(ej);
    free(buf);
    /* the timeline plot */
    char svg[512];
    snprintf(svg, sizeof svg, "%s/timeline.svg", tl_tmpdir());
    CHECK_OK(guard_plot_timeline(db, svg, "e2e"));
    CHECK(rt_file_size(svg) > 1000);
    /* release */
    CHECK_OK(guard_release(db, who, 0, "test", rt_wall_time(), NULL));
    gw_account a;
    CHECK_OK(gw_account_get(db, bulk_id, &a));
    CHECK(a.status == GW_ACCOUNT_ACTIVE);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM guard_actions WHERE account_id = %lld AND action = 'release'",
             (long long)bulk_id);
    CHECK(db_int(db2, sql) == 1);
    gw_db_close(db);
    model_free(g_model);
    fprintf(stderr, "  e2e total %.1fs\n", rt_now() - t0);
}

TEST_MAIN("guard_e2e", TEST_CASE(test_e2e))
