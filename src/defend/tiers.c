/*
 * tiers.c — account tiers in the gateway database: the one owner of guard_tiers, an
 * append-only log (the latest row of an account is its tier; "standard" puts it back), so who
 * trusted an account, when and why stays on record. `retort guard tier` and the admin API's
 * tier route write through guard_tier_set; the live guard reads new rows at start-up and
 * while it runs (runtime.c, through guard_tier_rows_each); the views show the latest row.
 *
 * What a tier means (its thresholds, budgets, exemption) is the policy's (src/guard/policy.c).
 * The SQL is a few statements, each in its own function, through the gw_sql_* helpers.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "defend_internal.h"

typedef struct {
    int64_t account_id;
    const char *tier, *note, *by;
    double t;
} tier_row;

static int tier_insert_fn(gw_conn *c, void *ud) {
    const tier_row *r = ud;
    gw_stmt *st = NULL;
    if (gw_sql_prepare(c, "INSERT INTO guard_tiers(t, account_id, tier, note, set_by) VALUES(?1, ?2, ?3, ?4, ?5)", &st,
                       "writing guard_tiers"))
        return -1;
    gw_bind_double(st, 1, r->t);
    gw_bind_int64(st, 2, r->account_id);
    gw_bind_text(st, 3, r->tier);
    gw_bind_text(st, 4, r->note ? r->note : "");
    gw_bind_text(st, 5, r->by ? r->by : "");
    int rc = gw_sql_step_done(c, st, "writing guard_tiers");
    gw_finalize(st);
    return rc;
}

int guard_tier_set(gw_db *db, const guard_policy *p, const char *account, const char *tier, const char *note,
                   const char *by, double now, FILE *out) {
    guard_policy def;
    if (!p) {
        guard_policy_defaults(&def);
        p = &def;
    }
    if (guard_policy_tier(p, tier) < 0) {
        rt_buf b = {0};
        for (size_t i = 0; i < p->n_tiers; i++) rt_buf_printf(&b, "%s%s", i ? ", " : "", p->tiers[i].name);
        int rc = RT_FAIL("unknown tier '%s' (the policy has: %s)", tier, b.data ? b.data : "");
        rt_buf_free(&b);
        return rc;
    }
    if (guard_db_init(db)) return -1;
    gw_account a;
    if (gw_account_find(db, account, &a)) return -1;
    tier_row r = {a.id, tier, note, by, now};
    if (gw_db_with(db, tier_insert_fn, &r)) return RT_FAIL("%s: %s", gw_db_path(db), rt_errmsg());
    const guard_tier *t = &p->tiers[guard_policy_tier(p, tier)];
    if (out)
        fprintf(out, "%s (#%lld) is now in tier %s: risk thresholds x%g, harvest budgets x%g%s\n", a.name,
                (long long)a.id, tier, t->risk_x, t->budget_x, t->exempt ? ", exempt (flagged at most)" : "");
    /* asked to verify by the guard: putting it in a tier confirms the verification */
    char why[GW_REASON_MAX];
    snprintf(why, sizeof why, "verified by an operator: tier %s", tier);
    return guard_verify_lift(db, account, why, now, out);
}

int guard_tier_rows_each(gw_conn *c, int64_t after_id, int (*fn)(void *ud, int64_t id, int64_t account_id, const char *tier),
                         void *ud) {
    if (!gw_sql_has_table(c, "guard_tiers")) return 0;
    gw_stmt *st = NULL;
    if (gw_sql_prepare(c, "SELECT id, account_id, tier FROM guard_tiers WHERE id > ?1 ORDER BY id", &st,
                       "reading guard_tiers"))
        return -1;
    gw_bind_int64(st, 1, after_id);
    int rc = 0, r;
    while (rc == 0 && (r = gw_step(st)) == GW_ROW) {
        const char *tier = gw_column_text(st, 2);
        rc = fn(ud, gw_column_int64(st, 0), gw_column_int64(st, 1), tier ? tier : "");
    }
    if (rc == 0 && r != GW_DONE) rc = gw_sql_fail(c, "reading guard_tiers");
    gw_finalize(st);
    return rc;
}

int guard_tier_get(gw_conn *c, int64_t account_id, guard_tier_info *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->tier, sizeof out->tier, "standard");
    out->t = NAN;
    if (!gw_sql_has_table(c, "guard_tiers")) return 0;
    gw_stmt *st = NULL;
    if (gw_sql_prepare(c, "SELECT tier, note, set_by, t FROM guard_tiers WHERE account_id = ?1 ORDER BY id DESC LIMIT 1",
                       &st, "reading guard_tiers"))
        return -1;
    gw_bind_int64(st, 1, account_id);
    int r = gw_step(st), rc = 0;
    if (r == GW_ROW) {
        const char *s;
        if ((s = gw_column_text(st, 0))) snprintf(out->tier, sizeof out->tier, "%s", s);
        if ((s = gw_column_text(st, 1))) snprintf(out->note, sizeof out->note, "%s", s);
        if ((s = gw_column_text(st, 2))) snprintf(out->by, sizeof out->by, "%s", s);
        out->t = gw_column_double(st, 3);
        out->has_row = 1;
    } else if (r != GW_DONE) {
        rc = gw_sql_fail(c, "reading guard_tiers");
    }
    gw_finalize(st);
    return rc;
}
