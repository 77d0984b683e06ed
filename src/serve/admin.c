/*
 * admin.c — the admin API under /admin/api/ (JSON in, JSON out), for the dashboard and for
 * operators: accounts with their keys and usage, suspend with a reason, release, recent
 * ledger rows, the server config. http.c authenticates the admin before calling here.
 * Not the dashboard's HTML (issue #7) and not the guard's actions (src/guard).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "serve_internal.h"

static char *err_body(int *status, int code, const char *param, const char *fmt, ...) RT_PRINTF(4, 5);
static char *err_body(int *status, int code, const char *param, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    *status = code;
    return serve_error_json(msg, code == 404 ? "not_found_error" : code >= 500 ? "server_error" : "invalid_request_error",
                            param, NULL);
}

/* The last recorded error, with the status its kind maps to (base.h: rt_err_http_status):
 * an unknown account is 404, a locked database 503, a broken one 500. */
static char *err_last(int *status, const char *param) {
    return err_body(status, rt_err_http_status(rt_errkind()), param, "%s", rt_errmsg());
}

static json_t *account_json(gw_db *db, const gw_account *a, const gw_usage *u) {
    gw_key_info *keys = NULL;
    size_t nk = 0;
    json_t *jk = json_array();
    if (gw_key_list(db, a->id, &keys, &nk) == 0) {
        for (size_t i = 0; i < nk; i++)
            json_array_append_new(jk, json_pack("{s:s, s:f, s:o}", "key_id", keys[i].key_id, "created_at",
                                                keys[i].created_at, "revoked_at",
                                                keys[i].revoked_at > 0 ? json_real(keys[i].revoked_at) : json_null()));
    }
    free(keys);
    gw_usage zero = {0};
    if (!u) u = &zero;
    return json_pack(
        "{s:I, s:s, s:s, s:s, s:f, s:{s:I, s:I, s:I}, s:b, s:f, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:o}}", "id",
        (json_int_t)a->id, "name", a->name, "status", a->status == GW_ACCOUNT_SUSPENDED ? "suspended" : "active",
        "reason", a->reason, "status_changed_at", a->status_changed_at, "limits", "rpm", (json_int_t)a->limits.rpm,
        "tpm", (json_int_t)a->limits.tpm, "daily_tokens", (json_int_t)a->limits.daily_tokens, "admin", a->is_admin,
        "created_at", a->created_at, "keys", jk, "usage", "requests", (json_int_t)u->requests, "ok_requests",
        (json_int_t)u->ok_requests, "prompt_tokens", (json_int_t)u->prompt_tokens, "completion_tokens",
        (json_int_t)u->completion_tokens, "requests_24h", (json_int_t)u->requests_window, "tokens_24h",
        (json_int_t)u->tokens_window, "last_request_at", u->last_t > 0 ? json_real(u->last_t) : json_null());
}

static char *dump(json_t *o, int *status) {
    char *s = o ? rt_json_reals(json_dumps(o, JSON_COMPACT)) : NULL;
    json_decref(o);
    if (!s) return err_body(status, 500, NULL, "out of memory");
    return s;
}

static char *one_account(gw_db *db, int64_t id, double now, int *status) {
    gw_account a;
    if (gw_account_get(db, id, &a)) return err_last(status, NULL);
    gw_usage *u = NULL;
    size_t nu = 0;
    if (gw_usage_by_account(db, now - 86400.0, &u, &nu)) return err_last(status, NULL);
    const gw_usage *mine = NULL;
    for (size_t i = 0; i < nu; i++)
        if (u[i].account_id == id) mine = &u[i];
    json_t *o = account_json(db, &a, mine);
    free(u);
    *status = 200;
    return dump(json_pack("{s:o}", "account", o), status);
}

typedef struct {
    int64_t account_id;
    int64_t limit;
    json_t *rows;
} usage_q;

static int usage_rows(gw_conn *conn, void *ud) {
    usage_q *q = ud;
    gw_stmt *st = NULL;
    if (gw_sql_prepare(conn, "SELECT id, request_id, t, account_id, key_id, endpoint, model, status, error, "
                           "prompt_tokens, completion_tokens, temperature, top_p, max_tokens, logprobs, "
                           "top_logprobs, n, stream, latency_ms, ttft_ms, prompt_hash, output_hash, finish_reason, "
                           "client FROM usage WHERE ?1 = 0 OR account_id = ?1 ORDER BY id DESC LIMIT ?2", &st, NULL) != 0)
        return gw_sql_fail(conn, "reading the ledger");
    gw_bind_int64(st, 1, q->account_id);
    gw_bind_int64(st, 2, q->limit);
    int s;
    while ((s = gw_step(st)) == GW_ROW) {
        json_t *r = json_object();
        int nc = gw_column_count(st);
        for (int i = 0; i < nc; i++) {
            const char *name = gw_column_name(st, i);
            switch (gw_column_type(st, i)) {
            case GW_INTEGER: json_object_set_new(r, name, json_integer(gw_column_int64(st, i))); break;
            case GW_FLOAT: json_object_set_new(r, name, json_real(gw_column_double(st, i))); break;
            case GW_TEXT: /* whatever bytes are stored, the JSON is valid UTF-8 */
                json_object_set_new(r, name, serve_json_bytes_string(gw_column_text(st, i),
                                                                     (size_t)gw_column_bytes(st, i)));
                break;
            default: json_object_set_new(r, name, json_null());
            }
        }
        json_array_append_new(q->rows, r);
    }
    gw_finalize(st);
    if (s != GW_DONE) return gw_sql_fail(conn, "reading the ledger");
    return 0;
}

static int config_rows(gw_conn *conn, void *ud) {
    json_t *o = ud;
    gw_stmt *st = NULL;
    if (gw_sql_prepare(conn, "SELECT key, value FROM server_config ORDER BY key", &st, NULL) != 0)
        return gw_sql_fail(conn, "reading server config");
    while (gw_step(st) == GW_ROW) {
        rt_buf k = {0};
        if (rt_utf8_sanitize(&k, gw_column_text(st, 0), (size_t)gw_column_bytes(st, 0)) == 0)
            json_object_set_new(o, k.data, serve_json_bytes_string(gw_column_text(st, 1),
                                                                   (size_t)gw_column_bytes(st, 1)));
        rt_buf_free(&k);
    }
    gw_finalize(st);
    return 0;
}

int serve_admin_handle(gw_db *db, const char *method, const char *path, const char *arg_account,
                       const char *arg_limit, const char *body, size_t len, double now, int64_t admin_id, int *status,
                       char **out) {
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    *status = 200;
    /* split path: accounts[/X[/action]] */
    char p[256];
    snprintf(p, sizeof p, "%s", path);
    char *parts[4] = {0};
    size_t np = 0;
    for (char *save = NULL, *t = strtok_r(p, "/", &save); t && np < 4; t = strtok_r(NULL, "/", &save)) parts[np++] = t;
    if (np >= 1 && !strcmp(parts[0], "accounts")) {
        if (np == 1) {
            if (!get) goto method;
            gw_account *acc = NULL;
            gw_usage *u = NULL;
            size_t na = 0, nu = 0;
            if (gw_account_list(db, &acc, &na) || gw_usage_by_account(db, now - 86400.0, &u, &nu)) {
                free(acc);
                *out = err_last(status, NULL);
                return *out ? 0 : -1;
            }
            json_t *arr = json_array();
            for (size_t i = 0; i < na; i++) {
                const gw_usage *mine = NULL;
                for (size_t k = 0; k < nu; k++)
                    if (u[k].account_id == acc[i].id) mine = &u[k];
                json_array_append_new(arr, account_json(db, &acc[i], mine));
            }
            free(acc);
            free(u);
            *out = dump(json_pack("{s:o, s:f, s:f}", "accounts", arr, "now", now, "window_s", 86400.0), status);
            return *out ? 0 : -1;
        }
        gw_account a;
        if (gw_account_find(db, parts[1], &a)) {
            *out = err_last(status, NULL);
            return *out ? 0 : -1;
        }
        if (np == 2) {
            if (!get) goto method;
            *out = one_account(db, a.id, now, status);
            return *out ? 0 : -1;
        }
        if (np == 3 && (!strcmp(parts[2], "suspend") || !strcmp(parts[2], "release"))) {
            if (!post) goto method;
            int suspend = !strcmp(parts[2], "suspend");
            if (suspend && a.id == admin_id) { /* the API would lock its only caller out (docs/api.md) */
                *out = err_body(status, 400, NULL,
                                "an admin cannot suspend its own account through the API (it would lock itself out); "
                                "use another admin's key, or `retort keys suspend` on the server");
                return *out ? 0 : -1;
            }
            char reason[GW_REASON_MAX] = "suspended by an admin";
            if (suspend && len > 0) {
                json_error_t je;
                json_t *b = json_loadb(body, len, 0, &je);
                if (!b || !json_is_object(b)) {
                    json_decref(b);
                    *out = err_body(status, 400, NULL, "body: expected a JSON object such as {\"reason\": \"...\"}");
                    return *out ? 0 : -1;
                }
                json_t *r = json_object_get(b, "reason");
                if (r && !json_is_string(r)) {
                    json_decref(b);
                    *out = err_body(status, 400, "reason", "reason: expected a string");
                    return *out ? 0 : -1;
                }
                if (r && json_string_length(r) > 0) rt_utf8_copy(reason, sizeof reason, json_string_value(r));
                json_decref(b);
            }
            if (gw_account_set_status(db, a.id, suspend ? GW_ACCOUNT_SUSPENDED : GW_ACCOUNT_ACTIVE, reason, now)) {
                *out = err_last(status, NULL);
                return *out ? 0 : -1;
            }
            char pname[160], preason[600];
            rt_info("admin: account %s (#%lld) %s%s", rt_utf8_printable(pname, sizeof pname, a.name), (long long)a.id,
                    suspend ? "suspended: " : "released", suspend ? rt_utf8_printable(preason, sizeof preason, reason) : "");
            *out = one_account(db, a.id, now, status);
            return *out ? 0 : -1;
        }
        *out = err_body(status, 404, NULL, "unknown admin path /admin/api/%s", path);
        return *out ? 0 : -1;
    }
    if (np == 1 && !strcmp(parts[0], "usage")) {
        if (!get) goto method;
        usage_q q = {0, 100, json_array()};
        if (arg_account && *arg_account) {
            gw_account a;
            if (gw_account_find(db, arg_account, &a)) {
                json_decref(q.rows);
                *out = err_last(status, "account");
                return *out ? 0 : -1;
            }
            q.account_id = a.id;
        }
        if (arg_limit) {
            char *end = NULL;
            long long v = strtoll(arg_limit, &end, 10);
            if (!*arg_limit || *end || v < 1 || v > 10000) {
                json_decref(q.rows);
                *out = err_body(status, 400, "limit", "limit: expected an integer in [1, 10000]");
                return *out ? 0 : -1;
            }
            q.limit = v;
        }
        if (gw_db_with(db, usage_rows, &q)) {
            json_decref(q.rows);
            *out = err_last(status, NULL);
            return *out ? 0 : -1;
        }
        *out = dump(json_pack("{s:o}", "rows", q.rows), status);
        return *out ? 0 : -1;
    }
    if (np == 1 && !strcmp(parts[0], "config")) {
        if (!get) goto method;
        json_t *o = json_object();
        if (gw_db_with(db, config_rows, o)) {
            json_decref(o);
            *out = err_last(status, NULL);
            return *out ? 0 : -1;
        }
        *out = dump(json_pack("{s:o}", "config", o), status);
        return *out ? 0 : -1;
    }
    *out = err_body(status, 404, NULL, "unknown admin path /admin/api/%s", path);
    return *out ? 0 : -1;
method:
    *out = err_body(status, 405, NULL, "%s /admin/api/%s: method not allowed", method, path);
    return *out ? 0 : -1;
}
