/*
 * views.c — the guard's tables as JSON for the admin API and the dashboard (`retort serve`,
 * GET /admin): every account with its usage, its latest risk and level, its linked group and
 * its last action; one account's risk timeline, actions with their evidence and latest
 * signals; release through guard_release from the dashboard. Also the writers of single score
 * and action rows, for tools and tests that prepare a database.
 *
 * What an account's guard state means here, from stored rows only (no running guard needed):
 *   risk, code     its latest guard_scores row (by clock time, then id)
 *   level          its latest guard_actions row: flag / throttle / verify / suspend, or "released"
 *                  after an operator release; "none" without actions
 *   group          its linked group as guard_groups_read defines it (store.c; the report
 *                  reads the same): a connected component of the detector's group names,
 *                  named by the smallest; none from rows before a release (the detector
 *                  forgets the account's links then)
 *   group members  the accounts of the same group
 * Accounts and usage come from the gateway (gw_account_list, gw_usage_by_account), as for
 * /admin/api/accounts; one account's view sums only its own ledger rows, the same way, and
 * reads only its group's candidates. The admin routes read through a connection of their own.
 * Every string is emitted as valid UTF-8 JSON (invalid bytes become U+FFFD); the page inserts
 * strings as text.
 *
 * Not the detector (detector.c), not the live writer (runtime.c), not the HTML (web/).
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "defend_internal.h"

#define VIEW_RECENT 24          /* risk values per account in the list (for its sparkline) */
#define VIEW_RECENT_SQL "24"
#define VIEW_POINTS_DEFAULT 240 /* timeline points of one account */
#define VIEW_POINTS_MAX 5000

/* ---------------------------------------------------------------- row writers */

static int valid_json_object(const char *text, const char *what) {
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    int ok = json_is_object(j);
    json_decref(j);
    if (!ok) return RT_FAIL("%s: expected a JSON object (%s)", what, je.text[0] ? je.text : "not an object");
    return 0;
}


static int insert_score_fn(gw_conn *c, void *ud) {
    gw_stmt *st = NULL;
    if (gw_sql_prepare(c, guard_score_insert_sql, &st, "guard_scores")) return -1;
    int rc = guard_score_write(c, st, ud);
    gw_finalize(st);
    return rc;
}

int guard_score_insert(gw_db *db, const guard_score_row *r) {
    if (r->account_id <= 0) return RT_FAIL("guard score: account_id must be > 0");
    if (!isfinite(r->t) || !isfinite(r->risk)) return RT_FAIL("guard score: t and risk must be finite numbers");
    if (r->level && strcmp(r->level, "none") && strcmp(r->level, "flag") && strcmp(r->level, "throttle") &&
        strcmp(r->level, "verify") && strcmp(r->level, "suspend"))
        return RT_FAIL("guard score: level '%s' is not none, flag, throttle, verify or suspend", r->level);
    if (r->signals && valid_json_object(r->signals, "guard score signals")) return -1;
    if (guard_db_init(db)) return -1;
    if (gw_db_with(db, insert_score_fn, (void *)r)) return RT_FAIL("%s: %s", gw_db_path(db), rt_errmsg());
    return 0;
}

int guard_action_insert(gw_db *db, const guard_action_row *r, int64_t *id_out) {
    if (r->account_id <= 0) return RT_FAIL("guard action: account_id must be > 0");
    if (!r->action || (strcmp(r->action, "flag") && strcmp(r->action, "throttle") && strcmp(r->action, "suspend") &&
                       strcmp(r->action, "release")))
        return RT_FAIL("guard action: '%s' is not flag, throttle, suspend or release", r->action ? r->action : "(null)");
    if (r->mode && strcmp(r->mode, "enforce") && strcmp(r->mode, "shadow") && strcmp(r->mode, "operator"))
        return RT_FAIL("guard action: mode '%s' is not enforce, shadow or operator", r->mode);
    if (!isfinite(r->t)) return RT_FAIL("guard action: t must be a finite number");
    if (r->evidence && valid_json_object(r->evidence, "guard action evidence")) return -1;
    if (guard_db_init(db)) return -1;
    return guard_action_write_db(db, r, id_out);
}

/* ---------------------------------------------------------------- JSON helpers */

/* A JSON string of any bytes: invalid UTF-8 becomes U+FFFD instead of dropping the value. */
static json_t *jstr(const char *s) {
    if (!s) return json_string("");
    json_t *j = json_string(s);
    if (j) return j;
    rt_buf b = {0};
    if (serve_utf8_sanitize(&b, s, strlen(s))) {
        rt_buf_free(&b);
        return NULL;
    }
    j = json_stringn(b.data ? b.data : "", b.len);
    rt_buf_free(&b);
    return j;
}

static json_t *jnum(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static const char *col_text(gw_stmt *st, int i) {
    const char *t = gw_column_text(st, i);
    return t ? t : "";
}

/* ---------------------------------------------------------------- per-account guard state */

typedef struct {
    int has_score;
    double s_t, s_risk, s_account_risk, s_group_risk, s_n;
    char s_level[16];
    char s_code[96];
    int64_t s_group, s_group_size;
    double recent[VIEW_RECENT]; /* newest first as read; reversed when written */
    size_t n_recent;
    int has_action;
    int64_t a_id, a_group;
    double a_t, a_risk;
    char a_action[16], a_mode[16], a_code[96];
    char a_reason[GW_REASON_MAX];
    int64_t group;      /* current group id (0: none) */
    int64_t group_size; /* as the latest score reports it */
    const guard_label *label;
    guard_tier_info trust; /* its tier (guard_tiers) */
} acct_state;

typedef struct {
    const gw_account *acc;
    size_t n;
    acct_state *st;
    const unsigned char *want; /* (n) which accounts to read; NULL: all */
    int has_tables;
} state_ctx;

static int state_fn(gw_conn *c, void *ud) {
    state_ctx *x = ud;
    x->has_tables = gw_sql_has_table(c, "guard_scores") && gw_sql_has_table(c, "guard_actions");
    if (!x->has_tables) return 0;
    gw_stmt *sc = NULL, *ac = NULL;
    if (gw_sql_prepare(c,
                          "SELECT t, risk, account_risk, group_risk, n, level, code, group_id, group_size "
                          "FROM guard_scores WHERE account_id = ?1 ORDER BY t DESC, id DESC LIMIT " VIEW_RECENT_SQL,
                          &sc, "reading guard_scores") ||
        gw_sql_prepare(c,
                          "SELECT id, t, action, mode, code, risk, group_id, reason FROM guard_actions "
                          "WHERE account_id = ?1 ORDER BY id DESC LIMIT 1",
                          &ac, "reading guard_actions")) {
        gw_finalize(sc);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < x->n && rc == 0; i++) {
        if (x->want && !x->want[i]) continue;
        acct_state *s = &x->st[i];
        memset(s, 0, sizeof *s);
        gw_reset(sc);
        gw_bind_int64(sc, 1, x->acc[i].id);
        int r;
        while ((r = gw_step(sc)) == GW_ROW) {
            if (!s->has_score) {
                s->has_score = 1;
                s->s_t = gw_column_double(sc, 0);
                s->s_risk = gw_column_double(sc, 1);
                s->s_account_risk = gw_column_double(sc, 2);
                s->s_group_risk = gw_column_double(sc, 3);
                s->s_n = gw_column_double(sc, 4);
                snprintf(s->s_level, sizeof s->s_level, "%s", col_text(sc, 5));
                snprintf(s->s_code, sizeof s->s_code, "%s", col_text(sc, 6));
                s->s_group = gw_column_int64(sc, 7);
                s->s_group_size = gw_column_int64(sc, 8);
            }
            if (s->n_recent < VIEW_RECENT) s->recent[s->n_recent++] = gw_column_double(sc, 1);
        }
        if (r != GW_DONE) rc = gw_sql_fail(c, "reading guard_scores");
        if (rc == 0) rc = guard_tier_get(c, x->acc[i].id, &s->trust);
        gw_reset(ac);
        gw_bind_int64(ac, 1, x->acc[i].id);
        r = gw_step(ac);
        if (r == GW_ROW) {
            s->has_action = 1;
            s->a_id = gw_column_int64(ac, 0);
            s->a_t = gw_column_double(ac, 1);
            snprintf(s->a_action, sizeof s->a_action, "%s", col_text(ac, 2));
            snprintf(s->a_mode, sizeof s->a_mode, "%s", col_text(ac, 3));
            snprintf(s->a_code, sizeof s->a_code, "%s", col_text(ac, 4));
            s->a_risk = gw_column_double(ac, 5);
            s->a_group = gw_column_int64(ac, 6);
            snprintf(s->a_reason, sizeof s->a_reason, "%s", col_text(ac, 7));
        } else if (r != GW_DONE) {
            rc = gw_sql_fail(c, "reading guard_actions");
        }
    }
    gw_finalize(sc);
    gw_finalize(ac);
    return rc;
}

static const char *level_of(const acct_state *s) {
    if (s->has_action) return !strcmp(s->a_action, "release") ? "released" : s->a_action;
    if (s->has_score && s->s_level[0]) return s->s_level;
    return "none";
}

/* Everything the views need, read once. */
typedef struct {
    gw_account *acc;
    size_t n;
    gw_usage *usage;
    size_t n_usage;
    acct_state *st;
    int has_tables;
    guard_label *labels;
    size_t n_labels;
    guard_policy policy;
    int policy_from_server;
    size_t *by_group; /* (n) account indices sorted by (group, id); grouped ones first */
    size_t n_grouped;
    guard_group_link *links; /* guard_groups_read: the linked groups (ordered by account id) */
    size_t n_links;
} snapshot;

static void snapshot_free(snapshot *s) {
    free(s->acc);
    free(s->usage);
    free(s->st);
    free(s->labels);
    free(s->by_group);
    free(s->links);
    memset(s, 0, sizeof *s);
}

/* qsort has no user pointer; views run on many threads at once, so each passes its own here */
static _Thread_local const snapshot *tl_sort_snap;

static int cmp_group(const void *a, const void *b) {
    const snapshot *s = tl_sort_snap;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int64_t gi = s->st[i].group, gj = s->st[j].group;
    if (gi != gj) return gi < gj ? -1 : 1;
    return (s->acc[i].id > s->acc[j].id) - (s->acc[i].id < s->acc[j].id);
}

/* Usage rows and labels come ordered by account id (gw_usage_by_account, guard_labels_read):
 * binary searches keep a view of many accounts linear-logarithmic. */
static const gw_usage *usage_of(const snapshot *s, int64_t id) {
    size_t a = 0, b = s->n_usage;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (s->usage[m].account_id < id) a = m + 1;
        else b = m;
    }
    return a < s->n_usage && s->usage[a].account_id == id ? &s->usage[a] : NULL;
}

static const guard_label *label_of(const snapshot *s, int64_t id) {
    size_t a = 0, b = s->n_labels;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (s->labels[m].account_id < id) a = m + 1;
        else b = m;
    }
    return a < s->n_labels && s->labels[a].account_id == id ? &s->labels[a] : NULL;
}

static size_t acc_index(const snapshot *s, int64_t id) {
    size_t a = 0, b = s->n;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (s->acc[m].id < id) a = m + 1;
        else b = m;
    }
    return a < s->n && s->acc[a].id == id ? a : SIZE_MAX;
}

static int labels_fn(gw_conn *c, void *ud) {
    snapshot *s = ud;
    return guard_labels_read(c, &s->labels, &s->n_labels);
}

/* The usage of one account, as gw_usage_by_account sums it (without scanning every account). */
typedef struct {
    int64_t id;
    double since;
    gw_usage *u;
} usage_one_ctx;

static int usage_one_fn(gw_conn *c, void *ud) {
    usage_one_ctx *x = ud;
    return gw_usage_of(c, x->id, x->since, x->u);
}

static int links_fn(gw_conn *c, void *ud) {
    snapshot *s = ud;
    return guard_groups_read(c, &s->links, &s->n_links);
}

/* The account's linked group (guard_groups_read, the one definition the report shares; 0: none). */
static int64_t group_of(const snapshot *s, int64_t id) {
    size_t a = 0, b = s->n_links;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (s->links[m].account_id < id) a = m + 1;
        else b = m;
    }
    return a < s->n_links && s->links[a].account_id == id ? s->links[a].group_id : 0;
}

/* The account's current group; group_size: as its latest score reported it. */
static void settle_group(const snapshot *s, acct_state *a, int64_t account_id) {
    a->group = group_of(s, account_id);
    a->group_size = a->group && a->has_score && a->s_group_size > 1 ? a->s_group_size : 0;
}

/* Read the accounts, their usage and guard state. only_id > 0: the guard state and usage of
 * that account and of the accounts of its group only (one account's view); the others keep an
 * empty state and are not grouped. */
/* The policy the last guard server ran with (server_config), else the defaults. */
static int server_policy(gw_db *db, guard_policy *out, int *from_server) {
    guard_policy_defaults(out);
    *from_server = 0;
    char *pj = NULL;
    if (gw_config_get(db, "guard.policy", &pj)) return -1;
    if (pj) {
        guard_policy p;
        guard_policy_defaults(&p);
        if (guard_policy_parse(&p, pj, strlen(pj), "server_config guard.policy") == 0) {
            *out = p;
            *from_server = 1;
        } else {
            rt_warn("guard views: %s (showing the default thresholds)", rt_errmsg());
        }
        free(pj);
    }
    return 0;
}

static int snapshot_read(gw_db *db, double now, int64_t only_id, snapshot *s) {
    memset(s, 0, sizeof *s);
    unsigned char *want = NULL;
    if (server_policy(db, &s->policy, &s->policy_from_server)) return -1;
    if (gw_account_list(db, &s->acc, &s->n)) goto fail;
    s->st = rt_calloc(s->n ? s->n : 1, sizeof *s->st, "guard view accounts");
    s->by_group = rt_malloc_array(s->n ? s->n : 1, sizeof *s->by_group, "guard view groups");
    if (!s->st || !s->by_group) goto fail;
    if (gw_db_with(db, labels_fn, s) || gw_db_with(db, links_fn, s)) goto fail_db;
    state_ctx x = {s->acc, s->n, s->st, NULL, 0};
    if (only_id <= 0) {
        if (gw_usage_by_account(db, now - 86400.0, &s->usage, &s->n_usage)) goto fail;
        if (gw_db_with(db, state_fn, &x)) goto fail_db;
    } else {
        size_t idx = acc_index(s, only_id);
        if (idx == SIZE_MAX) {
            RT_FAIL("no account #%lld (deleted while it was read?)", (long long)only_id);
            goto fail;
        }
        s->usage = rt_calloc(1, sizeof *s->usage, "usage");
        want = rt_calloc(s->n, 1, "guard view accounts");
        if (!s->usage || !want) goto fail;
        s->n_usage = 1;
        usage_one_ctx ux = {only_id, now - 86400.0, s->usage};
        if (gw_db_with(db, usage_one_fn, &ux)) goto fail_db;
        want[idx] = 1;
        x.want = want;
        if (gw_db_with(db, state_fn, &x)) goto fail_db;
        int64_t grp = group_of(s, only_id);
        if (grp) { /* the other members of its group */
            memset(want, 0, s->n);
            for (size_t k = 0; k < s->n; k++) want[k] = k != idx && group_of(s, s->acc[k].id) == grp;
            if (gw_db_with(db, state_fn, &x)) goto fail_db;
        }
    }
    s->has_tables = x.has_tables;
    for (size_t i = 0; i < s->n; i++) {
        acct_state *a = &s->st[i];
        settle_group(s, a, s->acc[i].id);
        a->label = label_of(s, s->acc[i].id);
        if (a->group) s->by_group[s->n_grouped++] = i;
    }
    tl_sort_snap = s;
    qsort(s->by_group, s->n_grouped, sizeof *s->by_group, cmp_group);
    tl_sort_snap = NULL;
    free(want);
    return 0;
fail_db:
    RT_FAIL("%s: %s", gw_db_path(db), rt_errmsg());
fail:
    free(want);
    snapshot_free(s);
    return -1;
}

/* Range [*lo, *hi) of by_group holding group g. */
static void group_range(const snapshot *s, int64_t g, size_t *lo, size_t *hi) {
    size_t a = 0, b = s->n_grouped;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (s->st[s->by_group[m]].group < g) a = m + 1;
        else b = m;
    }
    *lo = a;
    while (a < s->n_grouped && s->st[s->by_group[a]].group == g) a++;
    *hi = a;
}

static json_t *account_entry(const snapshot *s, size_t i) {
    const gw_account *a = &s->acc[i];
    const acct_state *g = &s->st[i];
    const gw_usage *u = usage_of(s, a->id);
    gw_usage zero = {0};
    if (!u) u = &zero;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(a->id));
    json_object_set_new(o, "name", jstr(a->name));
    json_object_set_new(o, "status", json_string(a->status == GW_ACCOUNT_SUSPENDED ? "suspended" : "active"));
    json_object_set_new(o, "reason", jstr(a->reason));
    json_object_set_new(o, "status_changed_at", a->status_changed_at > 0 ? json_real(a->status_changed_at) : json_null());
    json_object_set_new(o, "admin", json_boolean(a->is_admin));
    json_object_set_new(o, "created_at", json_real(a->created_at));
    json_object_set_new(o, "limits", json_pack("{s:I, s:I, s:I}", "rpm", (json_int_t)a->limits.rpm, "tpm",
                                               (json_int_t)a->limits.tpm, "daily_tokens",
                                               (json_int_t)a->limits.daily_tokens));
    json_object_set_new(o, "usage",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "requests", (json_int_t)u->requests,
                                  "ok_requests", (json_int_t)u->ok_requests, "prompt_tokens",
                                  (json_int_t)u->prompt_tokens, "completion_tokens", (json_int_t)u->completion_tokens,
                                  "requests_24h", (json_int_t)u->requests_window, "tokens_24h",
                                  (json_int_t)u->tokens_window, "last_request_at",
                                  u->last_t > 0 ? json_real(u->last_t) : json_null()));
    json_t *gd = json_object();
    json_object_set_new(gd, "level", json_string(level_of(g)));
    json_object_set_new(gd, "risk", g->has_score ? jnum(g->s_risk) : json_null());
    json_object_set_new(gd, "risk_t", g->has_score ? jnum(g->s_t) : json_null());
    json_object_set_new(gd, "account_risk", g->has_score ? jnum(g->s_account_risk) : json_null());
    json_object_set_new(gd, "group_risk", g->has_score ? jnum(g->s_group_risk) : json_null());
    json_object_set_new(gd, "requests_seen", g->has_score ? jnum(g->s_n) : json_null());
    json_object_set_new(gd, "code", g->has_score ? jstr(g->s_code) : json_null());
    json_t *rec = json_array();
    for (size_t k = g->n_recent; k-- > 0;) json_array_append_new(rec, jnum(g->recent[k]));
    json_object_set_new(gd, "recent", rec);
    if (g->group) {
        size_t lo, hi;
        group_range(s, g->group, &lo, &hi);
        json_t *mem = json_array();
        for (size_t k = lo; k < hi; k++) json_array_append_new(mem, json_integer(s->acc[s->by_group[k]].id));
        int64_t size = g->group_size > (int64_t)(hi - lo) ? g->group_size : (int64_t)(hi - lo);
        json_object_set_new(gd, "group", json_pack("{s:I, s:I, s:o}", "id", (json_int_t)g->group, "size",
                                                   (json_int_t)size, "members", mem));
    } else {
        json_object_set_new(gd, "group", json_null());
    }
    if (g->has_action)
        json_object_set_new(gd, "last_action",
                            json_pack("{s:I, s:f, s:o, s:o, s:o, s:f, s:I, s:o}", "id", (json_int_t)g->a_id, "t",
                                      g->a_t, "action", jstr(g->a_action), "mode", jstr(g->a_mode), "code",
                                      jstr(g->a_code), "risk", g->a_risk, "group", (json_int_t)g->a_group, "reason",
                                      jstr(g->a_reason)));
    else
        json_object_set_new(gd, "last_action", json_null());
    /* why the account is trusted: its tier, what the tier means, who put it there and why */
    if (g->trust.has_row && strcmp(g->trust.tier, "standard")) {
        int k = guard_policy_tier(&s->policy, g->trust.tier);
        const guard_tier *t = k >= 0 ? &s->policy.tiers[k] : NULL;
        json_object_set_new(gd, "trust",
                            json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "tier", jstr(g->trust.tier), "note",
                                      jstr(g->trust.note), "by", jstr(g->trust.by), "t", jnum(g->trust.t), "risk_x",
                                      t ? json_real(t->risk_x) : json_null(), "budget_x",
                                      t ? json_real(t->budget_x) : json_null(), "exempt",
                                      t ? json_boolean(t->exempt) : json_null()));
    } else {
        json_object_set_new(gd, "trust", json_null());
    }
    json_object_set_new(o, "guard", gd);
    if (g->label)
        json_object_set_new(o, "label", json_pack("{s:o, s:o, s:b, s:o}", "persona", jstr(g->label->persona),
                                                  "strategy", jstr(g->label->strategy), "attack", g->label->attack,
                                                  "group", jstr(g->label->group)));
    else
        json_object_set_new(o, "label", json_null());
    return o;
}

static json_t *groups_json(const snapshot *s) {
    json_t *arr = json_array();
    for (size_t lo = 0; lo < s->n_grouped;) {
        int64_t gid = s->st[s->by_group[lo]].group;
        size_t a, hi;
        group_range(s, gid, &a, &hi);
        json_t *mem = json_array();
        double max_risk = NAN;
        int64_t reported = 0, suspended = 0;
        const char *code = "";
        for (size_t k = lo; k < hi; k++) {
            size_t i = s->by_group[k];
            const acct_state *g = &s->st[i];
            if (g->has_score && (!isfinite(max_risk) || g->s_risk > max_risk)) {
                max_risk = g->s_risk;
                code = g->s_code;
            }
            if (g->group_size > reported) reported = g->group_size;
            suspended += s->acc[i].status == GW_ACCOUNT_SUSPENDED;
            json_array_append_new(mem, json_pack("{s:I, s:o, s:s, s:o, s:s}", "id", (json_int_t)s->acc[i].id, "name",
                                                 jstr(s->acc[i].name), "status",
                                                 s->acc[i].status == GW_ACCOUNT_SUSPENDED ? "suspended" : "active",
                                                 "risk", g->has_score ? jnum(g->s_risk) : json_null(), "level",
                                                 level_of(g)));
        }
        json_array_append_new(arr, json_pack("{s:I, s:I, s:I, s:o, s:o, s:I, s:o}", "id", (json_int_t)gid, "size",
                                             (json_int_t)(hi - lo), "reported_size", (json_int_t)reported, "risk",
                                             jnum(max_risk), "code", jstr(code), "suspended", (json_int_t)suspended,
                                             "members", mem));
        lo = hi;
    }
    return arr;
}

static json_t *policy_json(const snapshot *s) {
    return json_pack("{s:f, s:f, s:f, s:b, s:s}", "flag_at", s->policy.flag_at, "throttle_at", s->policy.throttle_at,
                     "suspend_at", s->policy.suspend_at, "enforce", s->policy.enforce, "source",
                     s->policy_from_server ? "server" : "defaults");
}

static int dump_to(json_t *root, char **json_out) {
    *json_out = root ? rt_json_reals(json_dumps(root, JSON_COMPACT)) : NULL;
    json_decref(root);
    if (!*json_out) return RT_FAIL("out of memory writing the guard view");
    return 0;
}

int guard_view_accounts(gw_db *db, double now, char **json_out) {
    *json_out = NULL;
    snapshot s;
    if (snapshot_read(db, now, 0, &s)) return -1;
    json_t *arr = json_array();
    for (size_t i = 0; i < s.n; i++) json_array_append_new(arr, account_entry(&s, i));
    json_t *root = json_pack("{s:f, s:f, s:b, s:o, s:o, s:o}", "now", now, "window_s", 86400.0, "guard_tables",
                             s.has_tables, "policy", policy_json(&s), "accounts", arr, "groups", groups_json(&s));
    snapshot_free(&s);
    return dump_to(root, json_out);
}

/* ---------------------------------------------------------------- one account */

typedef struct {
    int64_t account_id;
    size_t max_points;
    json_t *timeline;
    int64_t timeline_rows;
    json_t *actions;
    json_t *signals;
} detail_ctx;

static json_t *parse_or_null(const char *text) {
    if (!text || !*text) return json_null();
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    return j ? j : json_null();
}

static json_t *score_point(gw_stmt *st) {
    return json_pack("{s:f, s:f, s:f, s:f, s:o, s:o, s:f, s:I, s:I}", "t", gw_column_double(st, 0), "risk",
                     gw_column_double(st, 1), "account_risk", gw_column_double(st, 2), "group_risk",
                     gw_column_double(st, 3), "level", jstr(col_text(st, 4)), "code", jstr(col_text(st, 5)), "n",
                     gw_column_double(st, 6), "group", (json_int_t)gw_column_int64(st, 7), "group_size",
                     (json_int_t)gw_column_int64(st, 8));
}

static int detail_fn(gw_conn *c, void *ud) {
    detail_ctx *x = ud;
    if (!gw_sql_has_table(c, "guard_scores") || !gw_sql_has_table(c, "guard_actions")) return 0;
    gw_stmt *st = NULL;
    if (gw_sql_prepare(c, "SELECT count(*) FROM guard_scores WHERE account_id = ?1", &st, "reading guard_scores"))
        return -1;
    gw_bind_int64(st, 1, x->account_id);
    if (gw_step(st) == GW_ROW) x->timeline_rows = gw_column_int64(st, 0);
    gw_finalize(st);
    /* the timeline: all rows, or per bucket of `stride` consecutive rows the one of highest
     * risk (spikes survive), the newest row always last */
    size_t stride = 1;
    if ((size_t)x->timeline_rows > x->max_points)
        stride = ((size_t)x->timeline_rows - 1 + x->max_points - 2) / (x->max_points - 1);
    if (gw_sql_prepare(c,
                          "SELECT t, risk, account_risk, group_risk, level, code, n, group_id, group_size, signals "
                          "FROM guard_scores WHERE account_id = ?1 ORDER BY t, id",
                          &st, "reading guard_scores"))
        return -1;
    gw_bind_int64(st, 1, x->account_id);
    json_t *best = NULL;
    double best_risk = -INFINITY;
    size_t in_bucket = 0;
    int64_t seen = 0;
    int r;
    while ((r = gw_step(st)) == GW_ROW) {
        seen++;
        double risk = gw_column_double(st, 1);
        int last = seen == x->timeline_rows;
        if (last) {
            if (best) json_array_append_new(x->timeline, best);
            best = NULL;
            json_array_append_new(x->timeline, score_point(st));
            json_decref(x->signals);
            x->signals = parse_or_null(gw_column_text(st, 9));
            continue;
        }
        if (!best || risk > best_risk) {
            json_decref(best);
            best = score_point(st);
            best_risk = risk;
        }
        if (++in_bucket == stride) {
            json_array_append_new(x->timeline, best);
            best = NULL;
            best_risk = -INFINITY;
            in_bucket = 0;
        }
    }
    if (best) json_array_append_new(x->timeline, best); /* rows added since the count */
    gw_finalize(st);
    if (r != GW_DONE) return gw_sql_fail(c, "reading guard_scores");
    if (gw_sql_prepare(c,
                          "SELECT id, t, action, mode, code, risk, group_id, usage_row_id, reason, evidence, prev_rpm "
                          "FROM guard_actions WHERE account_id = ?1 ORDER BY id",
                          &st, "reading guard_actions"))
        return -1;
    gw_bind_int64(st, 1, x->account_id);
    while ((r = gw_step(st)) == GW_ROW) {
        json_t *a = json_pack("{s:I, s:f, s:o, s:o, s:o, s:f, s:I, s:o, s:o, s:o}", "id",
                              (json_int_t)gw_column_int64(st, 0), "t", gw_column_double(st, 1), "action",
                              jstr(col_text(st, 2)), "mode", jstr(col_text(st, 3)), "code", jstr(col_text(st, 4)),
                              "risk", gw_column_double(st, 5), "group", (json_int_t)gw_column_int64(st, 6),
                              "usage_row",
                              gw_column_is_null(st, 7) ? json_null()
                                                                        : json_integer(gw_column_int64(st, 7)),
                              "reason", jstr(col_text(st, 8)), "evidence",
                              parse_or_null(gw_column_text(st, 9)));
        if (a && !gw_column_is_null(st, 10))
            json_object_set_new(a, "previous_rpm", json_integer(gw_column_int64(st, 10)));
        json_array_append_new(x->actions, a);
    }
    gw_finalize(st);
    if (r != GW_DONE) return gw_sql_fail(c, "reading guard_actions");
    return 0;
}

int guard_view_account(gw_db *db, const char *name_or_id, double now, size_t max_points, char **json_out) {
    *json_out = NULL;
    if (max_points == 0) max_points = VIEW_POINTS_DEFAULT;
    if (max_points < 2 || max_points > VIEW_POINTS_MAX)
        return RT_FAIL_KIND(RT_ERR_INVALID, "points: expected 2..%d timeline points, got %zu", VIEW_POINTS_MAX, max_points);
    gw_account a;
    if (gw_account_find(db, name_or_id, &a)) return -1;
    snapshot s;
    if (snapshot_read(db, now, a.id, &s)) return -1;
    size_t idx = acc_index(&s, a.id);
    detail_ctx x = {a.id, max_points, json_array(), 0, json_array(), json_null()};
    if (gw_db_with(db, detail_fn, &x)) {
        json_decref(x.timeline);
        json_decref(x.actions);
        json_decref(x.signals);
        snapshot_free(&s);
        return RT_FAIL("%s: %s", gw_db_path(db), rt_errmsg());
    }
    /* the members of its group, by name */
    json_t *members = json_array();
    if (s.st[idx].group) {
        size_t lo, hi;
        group_range(&s, s.st[idx].group, &lo, &hi);
        for (size_t k = lo; k < hi; k++) {
            size_t i = s.by_group[k];
            json_array_append_new(members, json_pack("{s:I, s:o, s:s, s:o, s:s}", "id", (json_int_t)s.acc[i].id, "name",
                                                     jstr(s.acc[i].name), "status",
                                                     s.acc[i].status == GW_ACCOUNT_SUSPENDED ? "suspended" : "active",
                                                     "risk", s.st[i].has_score ? jnum(s.st[i].s_risk) : json_null(),
                                                     "level", level_of(&s.st[i])));
        }
    }
    json_t *root = json_pack("{s:f, s:b, s:o, s:o, s:o, s:I, s:o, s:o, s:o}", "now", now, "guard_tables",
                             s.has_tables, "policy", policy_json(&s), "account", account_entry(&s, idx), "timeline",
                             x.timeline, "timeline_rows", (json_int_t)x.timeline_rows, "actions", x.actions, "signals",
                             x.signals, "group_members", members);
    snapshot_free(&s);
    return dump_to(root, json_out);
}

/* ---------------------------------------------------------------- admin API routes */

static char *error_json(int *status, int code, const char *param, const char *fmt, ...) RT_PRINTF(4, 5);
static char *error_json(int *status, int code, const char *param, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    *status = code;
    const char *type = code == 404 ? "not_found_error" : code >= 500 ? "server_error" : "invalid_request_error";
    json_t *o = json_pack("{s:{s:o, s:s, s:o, s:o}}", "error", "message", jstr(msg), "type", type, "param",
                          param ? json_string(param) : json_null(), "code", json_null());
    char *s = o ? rt_json_reals(json_dumps(o, JSON_COMPACT)) : NULL;
    json_decref(o);
    return s;
}

/* The last recorded error with the HTTP status of its kind (base.h: rt_err_http_status): an
 * unknown account is 404, a locked database 503, anything else 500. */
static char *view_error(int *status) {
    return error_json(status, rt_err_http_status(rt_errkind()), NULL, "%s", rt_errmsg());
}

/* POST /admin/api/guard/accounts/{name|#id}/tier {"tier": "eval", "note": "..."}: the tier is
 * one of the server's policy (guard_tier_set), answered with the account's view. */
static int tier_route(gw_db *db, const serve_admin_call *call, const char *account, int *status, char **out) {
    json_error_t je;
    json_t *b = call->body_len > 0 ? json_loadb(call->body, call->body_len, 0, &je) : NULL;
    json_t *t = json_object_get(b, "tier"), *n = json_object_get(b, "note");
    if (!json_is_object(b) || !json_is_string(t) || (n && !json_is_string(n) && !json_is_null(n))) {
        *out = !json_is_object(b) ? error_json(status, 400, NULL,
                                               "body: expected a JSON object such as {\"tier\": \"eval\", \"note\": \"...\"}")
               : !json_is_string(t) ? error_json(status, 400, "tier", "tier: expected a tier name (a string)")
                                     : error_json(status, 400, "note", "note: expected a string");
        json_decref(b);
        return *out ? 1 : -1;
    }
    const char *who = call->admin ? call->admin->account.name : "?";
    char by[GW_NAME_MAX + 8];
    snprintf(by, sizeof by, "admin %s", who);
    guard_policy pol;
    int from_server = 0;
    int rc = server_policy(db, &pol, &from_server);
    gw_account a;
    if (rc == 0) rc = gw_account_find(db, account, &a);
    if (rc == 0 && guard_policy_tier(&pol, json_string_value(t)) < 0) {
        *out = error_json(status, 400, "tier", "tier: '%s' is not a tier of the server's policy", json_string_value(t));
        json_decref(b);
        return *out ? 1 : -1;
    }
    char ref[32];
    if (rc == 0) {
        snprintf(ref, sizeof ref, "#%lld", (long long)a.id);
        rc = guard_tier_set(db, &pol, ref, json_string_value(t), json_is_string(n) ? json_string_value(n) : NULL, by,
                            call->now, NULL);
    }
    if (rc == 0) {
        rt_info("admin %s put account %s (#%lld) in tier %s from the admin API", who, a.name, (long long)a.id,
                json_string_value(t));
        if (guard_view_account(db, ref, call->now, VIEW_POINTS_DEFAULT, out)) *out = view_error(status);
    } else {
        *out = view_error(status);
    }
    json_decref(b);
    return *out ? 1 : -1;
}

/* The views read through a connection of their own (WAL lets it read while the server writes),
 * so a dashboard polling a large database never holds the connection that authenticates API
 * requests. A release writes through the server's. */
static int handle(void *ud, gw_db *db, const serve_admin_call *call, int *status, char **out) {
    (void)ud;
    const char *p = call->path;
    if (strncmp(p, "guard", 5) || (p[5] != '/' && p[5] != '\0')) return 0;
    int get = !strcmp(call->method, "GET"), post = !strcmp(call->method, "POST");
    char buf[300];
    snprintf(buf, sizeof buf, "%s", p);
    char *parts[5] = {0};
    size_t np = 0;
    for (char *save = NULL, *t = strtok_r(buf, "/", &save); t && np < 5; t = strtok_r(NULL, "/", &save)) parts[np++] = t;
    *status = 200;
    if (np < 2 || np > 4 || strcmp(parts[1], "accounts")) {
        *out = error_json(status, 404, NULL,
                          "unknown admin path /admin/api/%s (the guard has guard/accounts, guard/accounts/{name|#id} "
                          "and guard/accounts/{name|#id}/release or /tier)",
                          p);
        return *out ? 1 : -1;
    }
    if (np == 2) {
        if (!get) goto method;
        gw_db *rd = NULL;
        if (gw_db_open(&rd, gw_db_path(db)) || guard_view_accounts(rd, call->now, out))
            *out = view_error(status);
        gw_db_close(rd);
        return *out ? 1 : -1;
    }
    if (np == 3) {
        if (!get) goto method;
        size_t points = VIEW_POINTS_DEFAULT;
        const char *ps = call->arg ? call->arg(call, "points") : NULL;
        if (ps) {
            char *end = NULL;
            long long v = strtoll(ps, &end, 10);
            if (!*ps || *end || v < 2 || v > VIEW_POINTS_MAX) {
                *out = error_json(status, 400, "points", "points: expected an integer in [2, %d], got '%s'",
                                  VIEW_POINTS_MAX, ps);
                return *out ? 1 : -1;
            }
            points = (size_t)v;
        }
        gw_db *rd = NULL;
        if (gw_db_open(&rd, gw_db_path(db)) || guard_view_account(rd, parts[2], call->now, points, out))
            *out = view_error(status);
        gw_db_close(rd);
        return *out ? 1 : -1;
    }
    if (!strcmp(parts[3], "tier")) {
        if (!post) goto method;
        return tier_route(db, call, parts[2], status, out);
    }
    if (strcmp(parts[3], "release")) {
        *out = error_json(status, 404, NULL, "unknown admin path /admin/api/%s (did you mean .../release or .../tier?)", p);
        return *out ? 1 : -1;
    }
    if (!post) goto method;
    int group = 0;
    char note[GW_REASON_MAX];
    const char *who = call->admin ? call->admin->account.name : "?";
    snprintf(note, sizeof note, "released by admin %s", who);
    if (call->body_len > 0) {
        json_error_t je;
        json_t *b = json_loadb(call->body, call->body_len, 0, &je);
        json_t *g = json_object_get(b, "group"), *n = json_object_get(b, "note");
        if (!json_is_object(b) || (g && !json_is_boolean(g)) || (n && !json_is_string(n) && !json_is_null(n))) {
            *out = !json_is_object(b) ? error_json(status, 400, NULL,
                                                   "body: expected a JSON object such as {\"group\": false, \"note\": \"...\"}")
                   : g && !json_is_boolean(g) ? error_json(status, 400, "group", "group: expected true or false")
                                              : error_json(status, 400, "note", "note: expected a string");
            json_decref(b);
            return *out ? 1 : -1;
        }
        group = json_is_true(g);
        if (json_is_string(n) && json_string_length(n) > 0)
            snprintf(note, sizeof note, "admin %s: %s", who, json_string_value(n));
        json_decref(b);
    }
    gw_account a;
    if (gw_account_find(db, parts[2], &a)) {
        *out = view_error(status);
        return *out ? 1 : -1;
    }
    char ref[32];
    snprintf(ref, sizeof ref, "#%lld", (long long)a.id);
    if (guard_release(db, ref, group, note, call->now, NULL)) {
        *out = view_error(status);
        return *out ? 1 : -1;
    }
    rt_info("admin %s released account %s (#%lld)%s from the admin API", who, a.name, (long long)a.id,
            group ? " and its group" : "");
    if (guard_view_account(db, ref, call->now, VIEW_POINTS_DEFAULT, out)) *out = view_error(status);
    return *out ? 1 : -1;
method:
    *out = error_json(status, 405, NULL, "%s /admin/api/%s: method not allowed", call->method, p);
    return *out ? 1 : -1;
}

void guard_admin_routes(serve_admin_routes *out) {
    memset(out, 0, sizeof *out);
    out->handle = handle;
}
