/*
 * evidence.c — the report's evidence tables in the gateway database and the code that fills
 * them from real artefacts: harvest files matched completion by completion against the
 * ledger's output hashes, model files (SHA-256, parameter count) with their training logs and
 * eval results, and radioactivity results. Nothing here is estimated: each column is read or
 * computed from a file the caller names.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../gateway/gateway.h"
#include "../model/model.h"
#include "report.h"

static const char *const evidence_schema =
    "CREATE TABLE IF NOT EXISTS report_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS report_harvests(name TEXT PRIMARY KEY, guard TEXT NOT NULL,"
    "  strategy TEXT NOT NULL DEFAULT '', path TEXT NOT NULL, sha256 TEXT NOT NULL, lines INTEGER NOT NULL,"
    "  completion_tokens INTEGER NOT NULL, matched INTEGER NOT NULL, accounts TEXT NOT NULL DEFAULT '',"
    "  ledger_db TEXT NOT NULL DEFAULT '', added_at REAL NOT NULL);"
    "CREATE TABLE IF NOT EXISTS report_models(name TEXT PRIMARY KEY, role TEXT NOT NULL, guard TEXT NOT NULL"
    "  DEFAULT '', path TEXT NOT NULL, sha256 TEXT NOT NULL, params INTEGER, trained_on TEXT NOT NULL DEFAULT '',"
    "  tokens REAL, flops REAL, seconds REAL, loss REAL, kl REAL, top1 REAL, eval_json TEXT,"
    "  command TEXT NOT NULL DEFAULT '', added_at REAL NOT NULL);"
    "CREATE TABLE IF NOT EXISTS report_tests(id INTEGER PRIMARY KEY, model TEXT NOT NULL, mode TEXT,"
    "  key_id TEXT, scheme TEXT, tokens_scored INTEGER, green INTEGER, z REAL, p_value REAL, log10_p REAL,"
    "  detected INTEGER, controls INTEGER, control_min_p REAL, control_ks_p REAL, control_p TEXT,"
    "  result_json TEXT NOT NULL, command TEXT NOT NULL DEFAULT '', added_at REAL NOT NULL);"
    "CREATE TABLE IF NOT EXISTS report_figures(name TEXT PRIMARY KEY, caption TEXT NOT NULL DEFAULT '',"
    "  path TEXT NOT NULL, sha256 TEXT NOT NULL, bytes INTEGER NOT NULL, svg_base64 TEXT NOT NULL,"
    "  command TEXT NOT NULL DEFAULT '', added_at REAL NOT NULL);";


int report_db_open(gw_conn **out, const char *path) {
    *out = NULL;
    gw_conn *db = NULL;
    if (gw_conn_open(&db, path, GW_OPEN_CREATE)) return -1;
    if (gw_sql_schema(db, evidence_schema, "creating the report's tables (is it a retort database?)")) {
        gw_conn_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

void report_db_close(gw_conn *db) { gw_conn_close(db); }

int report_meta_set(gw_conn *db, const char *key, const char *value) {
    gw_stmt *st = NULL;
    if (gw_sql_prepare(db, "INSERT INTO report_meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value", &st, NULL) != 0)
        return gw_sql_fail(db, "report_meta");
    gw_bind_text(st, 1, key);
    gw_bind_text(st, 2, value ? value : "");
    int rc = gw_step(st) == GW_DONE ? 0 : gw_sql_fail(db, "report_meta");
    gw_finalize(st);
    return rc;
}

static int file_sha256(const char *path, char hex[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return RT_FAIL("%s: cannot open: %s", path, strerror(errno));
    crypto_hash_sha256_state s;
    crypto_hash_sha256_init(&s);
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) crypto_hash_sha256_update(&s, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) return RT_FAIL("%s: read error", path);
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&s, h);
    sodium_bin2hex(hex, 65, h, sizeof h);
    return 0;
}

/* ---------------------------------------------------------------- harvests */

static int cmp_out_hash(const void *a, const void *b) {
    return strcmp(((const gw_output_hash *)a)->hash, ((const gw_output_hash *)b)->hash);
}

/* A read-only connection to the ledger (a gateway database); its tables are read through the
 * gateway's typed readers. */
static int ledger_open(const char *ledger_db, gw_conn **out) {
    return gw_conn_open(out, ledger_db, GW_OPEN_READONLY);
}

/* Every served output hash of the ledger, sorted. */
static int ledger_hashes(const char *ledger_db, gw_output_hash **out, size_t *n) {
    gw_conn *db = NULL;
    *out = NULL, *n = 0;
    if (ledger_open(ledger_db, &db)) return -1;
    int rc = gw_usage_output_hashes(db, out, n);
    gw_conn_close(db);
    if (!rc && *n) qsort(*out, *n, sizeof **out, cmp_out_hash);
    return rc;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Names of the accounts ids[0..n) (distinct, sorted), comma-separated. */
static int account_names(const char *ledger_db, int64_t *ids, size_t n, char **out) {
    rt_buf b = {0};
    *out = NULL;
    if (rt_buf_append(&b, "", 0)) return -1;
    if (n) qsort(ids, n, sizeof *ids, cmp_i64);
    gw_conn *db = NULL;
    gw_account *acc = NULL;
    size_t na = 0;
    int rc = -1;
    if (ledger_open(ledger_db, &db) || gw_accounts_read(db, &acc, &na)) goto done;
    size_t written = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && ids[i] == ids[i - 1]) continue;
        while (k < na && acc[k].id < ids[i]) k++; /* both sorted by id */
        const char *name = k < na && acc[k].id == ids[i] ? acc[k].name : "?";
        if (rt_buf_printf(&b, "%s%s", written++ ? "," : "", name)) goto done;
    }
    rc = 0;
done:
    free(acc);
    gw_conn_close(db);
    if (rc)
        rt_buf_free(&b);
    else
        *out = b.data;
    return rc;
}

void report_harvest_stats_free(report_harvest_stats *st) {
    free(st->accounts);
    st->accounts = NULL;
}

int report_harvest_scan(const report_harvest_spec *h, report_harvest_stats *st) {
    memset(st, 0, sizeof *st);
    if (sodium_init() < 0) return RT_FAIL("libsodium failed to initialise");
    if (file_sha256(h->path, st->sha256)) return -1;
    gw_output_hash *hs = NULL;
    size_t nh = 0;
    if (h->ledger_db && *h->ledger_db && ledger_hashes(h->ledger_db, &hs, &nh)) return -1;
    FILE *f = fopen(h->path, "r");
    if (!f) {
        free(hs);
        return RT_FAIL("%s: cannot open: %s", h->path, strerror(errno));
    }
    int64_t *acc = NULL;
    size_t nacc = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int rc = -1;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        st->lines++;
        json_error_t e;
        json_t *j = json_loadb(line, (size_t)len, JSON_ALLOW_NUL, &e);
        json_t *c = j ? json_object_get(j, "completion") : NULL;
        if (!c || !json_is_string(c)) {
            json_decref(j);
            RT_FAIL("%s:%zu: expected a JSON object with a \"completion\" string (a harvest line)%s%s", h->path,
                    st->lines, j ? "" : ": ", j ? "" : e.text);
            goto done;
        }
        json_t *u = json_object_get(json_object_get(j, "usage"), "completion_tokens");
        if (json_is_integer(u)) st->completion_tokens += json_integer_value(u);
        if (nh) {
            gw_output_hash key;
            gw_hash_hex(json_string_value(c), json_string_length(c), key.hash);
            const gw_output_hash *m = bsearch(&key, hs, nh, sizeof *hs, cmp_out_hash);
            if (m) {
                st->matched++;
                if (RT_GROW(acc, cap, nacc + 1, "matched accounts")) {
                    json_decref(j);
                    goto done;
                }
                acc[nacc++] = m->account_id;
            }
        }
        json_decref(j);
    }
    if (ferror(f)) {
        RT_FAIL("%s: read error", h->path);
        goto done;
    }
    if (nh) {
        if (account_names(h->ledger_db, acc, nacc, &st->accounts)) goto done;
    } else if (!(st->accounts = rt_strdup(""))) {
        goto done;
    }
    rc = 0;
done:
    free(line);
    free(acc);
    free(hs);
    fclose(f);
    if (rc) report_harvest_stats_free(st);
    return rc;
}

int report_harvest_put(gw_conn *db, const report_harvest_spec *h, report_harvest_stats *st_out) {
    report_harvest_stats st;
    if (report_harvest_scan(h, &st)) return -1;
    gw_stmt *q = NULL;
    int rc;
    if (gw_sql_prepare(db, "INSERT INTO report_harvests(name, guard, strategy, path, sha256, lines, "
                           "completion_tokens, matched, accounts, ledger_db, added_at) "
                           "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11) ON CONFLICT(name) DO UPDATE SET "
                           "guard = excluded.guard, strategy = excluded.strategy, path = excluded.path, "
                           "sha256 = excluded.sha256, lines = excluded.lines, completion_tokens = excluded.completion_tokens, "
                           "matched = excluded.matched, accounts = excluded.accounts, ledger_db = excluded.ledger_db, "
                           "added_at = excluded.added_at", &q, NULL) != 0) {
        rc = gw_sql_fail(db, "report_harvests");
    } else {
        gw_bind_text(q, 1, h->name);
        gw_bind_text(q, 2, h->guard ? h->guard : "");
        gw_bind_text(q, 3, h->strategy ? h->strategy : "");
        gw_bind_text(q, 4, h->path);
        gw_bind_text(q, 5, st.sha256);
        gw_bind_int64(q, 6, (int64_t)st.lines);
        gw_bind_int64(q, 7, st.completion_tokens);
        gw_bind_int64(q, 8, (int64_t)st.matched);
        gw_bind_text(q, 9, st.accounts ? st.accounts : "");
        gw_bind_text(q, 10, h->ledger_db ? h->ledger_db : "");
        gw_bind_double(q, 11, rt_wall_time());
        rc = gw_step(q) == GW_DONE ? 0 : gw_sql_fail(db, "report_harvests");
    }
    gw_finalize(q);
    if (st_out && !rc)
        *st_out = st;
    else
        report_harvest_stats_free(&st);
    return rc;
}

/* ---------------------------------------------------------------- models */

static json_t *load_json_file(const char *path) {
    json_error_t e;
    json_t *j = json_load_file(path, JSON_ALLOW_NUL, &e);
    if (!j) RT_FAIL("%s:%d: %s", path, e.line, e.text);
    return j;
}

/* The last non-empty line of a JSONL file, parsed. */
static json_t *last_jsonl(const char *path) {
    char *data = NULL;
    size_t len = 0;
    if (rt_read_file(path, &data, &len)) return NULL;
    while (len && (data[len - 1] == '\n' || data[len - 1] == '\r')) data[--len] = 0;
    char *start = len ? memrchr(data, '\n', len) : NULL;
    start = start ? start + 1 : data;
    json_error_t e;
    json_t *j = json_loads(start, 0, &e);
    if (!j) RT_FAIL("%s: last line: %s", path, e.text);
    free(data);
    return j;
}

static double jnum(const json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void bind_num(gw_stmt *q, int i, double v) {
    if (isfinite(v))
        gw_bind_double(q, i, v);
    else
        gw_bind_null(q, i);
}

int report_model_put(gw_conn *db, const report_model_spec *m) {
    char sha[65];
    if (sodium_init() < 0) return RT_FAIL("libsodium failed to initialise");
    if (file_sha256(m->path, sha)) return -1;
    model *mo = NULL;
    if (model_load(&mo, m->path)) return -1;
    int64_t params = (int64_t)mo->n_params;
    model_free(mo);
    double tokens = NAN, flops = NAN, seconds = NAN, loss = NAN, kl = NAN, top1 = NAN;
    char *eval_text = NULL;
    if (m->train_log) {
        json_t *j = last_jsonl(m->train_log);
        if (!j) return -1;
        tokens = jnum(j, "tokens"), flops = jnum(j, "flops"), seconds = jnum(j, "elapsed");
        json_decref(j);
    }
    if (m->eval_json) {
        json_t *j = load_json_file(m->eval_json);
        if (!j) return -1;
        loss = jnum(j, "loss"), kl = jnum(j, "kl"), top1 = jnum(j, "top1_agreement");
        eval_text = rt_json_reals(json_dumps(j, JSON_COMPACT));
        json_decref(j);
    }
    gw_stmt *q = NULL;
    int rc;
    if (gw_sql_prepare(db, "INSERT INTO report_models(name, role, guard, path, sha256, params, trained_on, "
                           "tokens, flops, seconds, loss, kl, top1, eval_json, command, added_at) "
                           "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16) ON CONFLICT(name) DO UPDATE SET "
                           "role = excluded.role, guard = excluded.guard, path = excluded.path, sha256 = excluded.sha256, "
                           "params = excluded.params, trained_on = excluded.trained_on, tokens = excluded.tokens, "
                           "flops = excluded.flops, seconds = excluded.seconds, loss = excluded.loss, kl = excluded.kl, "
                           "top1 = excluded.top1, eval_json = excluded.eval_json, command = excluded.command, "
                           "added_at = excluded.added_at", &q, NULL) != 0) {
        rc = gw_sql_fail(db, "report_models");
    } else {
        gw_bind_text(q, 1, m->name);
        gw_bind_text(q, 2, m->role ? m->role : "");
        gw_bind_text(q, 3, m->guard ? m->guard : "");
        gw_bind_text(q, 4, m->path);
        gw_bind_text(q, 5, sha);
        gw_bind_int64(q, 6, params);
        gw_bind_text(q, 7, m->trained_on ? m->trained_on : "");
        bind_num(q, 8, tokens);
        bind_num(q, 9, flops);
        bind_num(q, 10, seconds);
        bind_num(q, 11, loss);
        bind_num(q, 12, kl);
        bind_num(q, 13, top1);
        if (eval_text)
            gw_bind_text(q, 14, eval_text);
        else
            gw_bind_null(q, 14);
        gw_bind_text(q, 15, m->command ? m->command : "");
        gw_bind_double(q, 16, rt_wall_time());
        rc = gw_step(q) == GW_DONE ? 0 : gw_sql_fail(db, "report_models");
    }
    gw_finalize(q);
    free(eval_text);
    return rc;
}

/* ---------------------------------------------------------------- tests */

/* 0 when report_models has model_name; else -1 naming the models that are recorded. */
static int model_known(gw_conn *db, const char *model_name) {
    gw_stmt *q = NULL;
    if (gw_sql_prepare(db, "SELECT name FROM report_models ORDER BY added_at, name", &q, "report_models")) return -1;
    rt_buf names = {0};
    int found = 0, s, bad = 0;
    while (!found && (s = gw_step(q)) == GW_ROW) {
        const char *n = gw_column_text(q, 0);
        found = n && !strcmp(n, model_name);
        bad |= rt_buf_printf(&names, "%s'%s'", names.len ? ", " : "", n ? n : "");
    }
    int rc = found ? 0 : s != GW_DONE ? gw_sql_fail(db, "report_models")
             : bad ? -1
                   : RT_FAIL_KIND(RT_ERR_NOT_FOUND,
                                  "no model named '%s' in the report (recorded: %s); add it first with "
                                  "`retort report add-model --name '%s' ...`",
                                  model_name, names.len ? names.data : "none", model_name);
    rt_buf_free(&names);
    gw_finalize(q);
    return rc;
}

int report_test_put(gw_conn *db, const char *model_name, const char *result_json, const char *command) {
    if (model_known(db, model_name)) return -1;
    json_error_t e;
    json_t *j = json_loads(result_json, 0, &e);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return RT_FAIL("radioactivity result for %s: expected the JSON object `retort radioactivity` prints (%s)",
                       model_name, j ? "not an object" : e.text);
    }
    json_t *ctl = json_object_get(j, "controls");
    double p = jnum(j, "p_value");
    if (!isfinite(p)) {
        json_decref(j);
        return RT_FAIL("radioactivity result for %s: no \"p_value\"", model_name);
    }
    char *cp = ctl ? rt_json_reals(json_dumps(json_object_get(ctl, "p_values"), JSON_COMPACT | JSON_ENCODE_ANY)) : NULL;
    gw_stmt *q = NULL;
    int rc;
    if (gw_sql_prepare(db, "INSERT INTO report_tests(model, mode, key_id, scheme, tokens_scored, green, z, p_value, "
                           "log10_p, detected, controls, control_min_p, control_ks_p, control_p, result_json, command, "
                           "added_at) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17)", &q, NULL) != 0) {
        rc = gw_sql_fail(db, "report_tests");
    } else {
        gw_bind_text(q, 1, model_name);
        gw_bind_text(q, 2, json_string_value(json_object_get(j, "mode")));
        gw_bind_text(q, 3, json_string_value(json_object_get(j, "key_id")));
        gw_bind_text(q, 4, json_string_value(json_object_get(j, "scheme")));
        bind_num(q, 5, jnum(j, "tokens_scored"));
        bind_num(q, 6, jnum(j, "green"));
        bind_num(q, 7, jnum(j, "z"));
        gw_bind_double(q, 8, p);
        double l10 = jnum(j, "log10_p_value");
        bind_num(q, 9, isfinite(l10) ? l10 : (p > 0 ? log10(p) : NAN));
        gw_bind_int(q, 10, json_is_true(json_object_get(j, "detected")));
        bind_num(q, 11, jnum(ctl, "n"));
        bind_num(q, 12, jnum(ctl, "min_p"));
        bind_num(q, 13, jnum(ctl, "ks_p"));
        if (cp)
            gw_bind_text(q, 14, cp);
        else
            gw_bind_null(q, 14);
        gw_bind_text(q, 15, result_json);
        gw_bind_text(q, 16, command ? command : "");
        gw_bind_double(q, 17, rt_wall_time());
        rc = gw_step(q) == GW_DONE ? 0 : gw_sql_fail(db, "report_tests");
    }
    gw_finalize(q);
    free(cp);
    json_decref(j);
    return rc;
}

/* ---------------------------------------------------------------- figures */

/* 0 when text (len bytes, read from path) looks like an SVG image a browser will draw: not
 * empty, at most REPORT_FIGURE_MAX bytes, no NUL byte, and after an optional UTF-8 BOM and
 * white space it opens with <svg or an XML declaration followed, somewhere, by <svg. */
static int svg_check(const char *path, const char *text, size_t len) {
    if (len == 0) return RT_FAIL("%s: empty file: expected an SVG image", path);
    if (len > REPORT_FIGURE_MAX)
        return RT_FAIL("%s: %zu bytes: a figure may hold at most %u bytes", path, len, (unsigned)REPORT_FIGURE_MAX);
    if (memchr(text, 0, len)) return RT_FAIL("%s: holds a NUL byte: expected an SVG image (text)", path);
    size_t i = len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3) ? 3 : 0;
    while (i < len && strchr(" \t\r\n", text[i])) i++;
    int opens = (len - i >= 4 && !memcmp(text + i, "<svg", 4)) || (len - i >= 5 && !memcmp(text + i, "<?xml", 5));
    if (!opens || !memmem(text + i, len - i, "<svg", 4))
        return RT_FAIL("%s: expected an SVG image (a file that opens with <svg ...>, or <?xml ...> and then <svg ...>)",
                       path);
    return 0;
}

int report_figure_put(gw_conn *db, const char *name, const char *path, const char *caption, const char *command) {
    if (sodium_init() < 0) return RT_FAIL("libsodium failed to initialise");
    if (!name || !*name) return RT_FAIL("a figure needs a name");
    char *text = NULL;
    size_t len = 0;
    if (rt_read_file(path, &text, &len)) return -1;
    int rc = -1;
    char *b64 = NULL;
    gw_stmt *q = NULL;
    if (svg_check(path, text, len)) goto done;
    unsigned char h[crypto_hash_sha256_BYTES];
    char sha[65];
    crypto_hash_sha256(h, (const unsigned char *)text, len);
    sodium_bin2hex(sha, sizeof sha, h, sizeof h);
    size_t b64_len = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    if (!(b64 = rt_malloc(b64_len, "figure"))) goto done;
    sodium_bin2base64(b64, b64_len, (const unsigned char *)text, len, sodium_base64_VARIANT_ORIGINAL);
    if (gw_sql_prepare(db, "INSERT INTO report_figures(name, caption, path, sha256, bytes, svg_base64, command, added_at) "
                           "VALUES(?1,?2,?3,?4,?5,?6,?7,?8) ON CONFLICT(name) DO UPDATE SET caption = excluded.caption, "
                           "path = excluded.path, sha256 = excluded.sha256, bytes = excluded.bytes, "
                           "svg_base64 = excluded.svg_base64, command = excluded.command, added_at = excluded.added_at",
                       &q, NULL) != 0) {
        rc = gw_sql_fail(db, "report_figures");
        goto done;
    }
    gw_bind_text(q, 1, name);
    gw_bind_text(q, 2, caption ? caption : "");
    gw_bind_text(q, 3, path);
    gw_bind_text(q, 4, sha);
    gw_bind_int64(q, 5, (int64_t)len);
    gw_bind_text(q, 6, b64);
    gw_bind_text(q, 7, command ? command : "");
    gw_bind_double(q, 8, rt_wall_time());
    rc = gw_step(q) == GW_DONE ? 0 : gw_sql_fail(db, "report_figures");
done:
    gw_finalize(q);
    free(b64);
    free(text);
    return rc;
}
