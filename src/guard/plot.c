/*
 * plot.c — the guard's timeline as a standalone SVG: risk per account over (simulated) time
 * from guard_scores, benign accounts in thin grey, attackers coloured by strategy, each
 * suspension marked where it happened, and the policy's flag / throttle / suspend lines.
 * This file reads the tables; the drawing is the one SVG writer's (src/plot), with the
 * report's colours.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../defend/defend_internal.h"
#include "../plot/plot.h"

typedef struct {
    double t, risk;
} pt;

typedef struct {
    int64_t id;
    char strategy[32];
    int attack;
    pt *p;
    size_t n, cap;
    double t_susp, r_susp;
} series;

typedef struct {
    series *s;
    size_t n;
    double t0, t1;
    double flag, throttle, suspend;
} plot_data;

static series *series_get(plot_data *d, int64_t id) {
    for (size_t i = 0; i < d->n; i++)
        if (d->s[i].id == id) return &d->s[i];
    series *ns = rt_realloc(d->s, (d->n + 1) * sizeof *ns, "plot series");
    if (!ns) return NULL;
    d->s = ns;
    series *s = &d->s[d->n++];
    memset(s, 0, sizeof *s);
    s->id = id;
    snprintf(s->strategy, sizeof s->strategy, "unlabelled");
    s->t_susp = NAN;
    return s;
}

static int plot_fn(gw_conn *c, void *ud) {
    plot_data *d = ud;
    if (!gw_sql_has_table(c, "guard_scores")) return RT_FAIL("no guard tables: was the server run with --guard?");
    gw_stmt *st = NULL;
    if (gw_sql_prepare(c, "SELECT account_id, t, risk FROM guard_scores ORDER BY account_id, id", &st, "guard_scores"))
        return -1;
    d->t0 = INFINITY;
    d->t1 = -INFINITY;
    while (gw_step(st) == GW_ROW) {
        series *s = series_get(d, gw_column_int64(st, 0));
        if (!s) {
            gw_finalize(st);
            return -1;
        }
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 64;
            pt *np = rt_realloc(s->p, s->cap * sizeof *np, "plot points");
            if (!np) {
                gw_finalize(st);
                return -1;
            }
            s->p = np;
        }
        double t = gw_column_double(st, 1);
        s->p[s->n++] = (pt){t, gw_column_double(st, 2)};
        d->t0 = fmin(d->t0, t);
        d->t1 = fmax(d->t1, t);
    }
    gw_finalize(st);
    if (gw_sql_prepare(c, "SELECT account_id, t, risk FROM guard_actions WHERE action = 'suspend' ORDER BY id", &st,
                          "guard_actions"))
        return -1;
    while (gw_step(st) == GW_ROW) {
        series *s = series_get(d, gw_column_int64(st, 0));
        if (s && !isfinite(s->t_susp)) {
            s->t_susp = gw_column_double(st, 1);
            s->r_susp = gw_column_double(st, 2);
        }
    }
    gw_finalize(st);
    guard_label *lab = NULL;
    size_t nl = 0;
    if (guard_labels_read(c, &lab, &nl)) return -1;
    for (size_t i = 0; i < nl; i++)
        for (size_t k = 0; k < d->n; k++)
            if (d->s[k].id == lab[i].account_id) {
                snprintf(d->s[k].strategy, sizeof d->s[k].strategy, "%s", lab[i].strategy);
                d->s[k].attack = lab[i].attack;
            }
    free(lab);
    /* thresholds from the policy the server stored */
    guard_policy p;
    guard_policy_defaults(&p);
    if (gw_sql_prepare(c, "SELECT value FROM server_config WHERE key = 'guard.policy'", &st, "server_config") == 0) {
        if (gw_step(st) == GW_ROW) {
            const char *js = gw_column_text(st, 0);
            if (js) guard_policy_parse(&p, js, strlen(js), "stored policy");
        }
        gw_finalize(st);
    }
    d->flag = p.flag_at;
    d->throttle = p.throttle_at;
    d->suspend = p.suspend_at;
    return 0;
}

int guard_plot_timeline(gw_db *db, const char *svg_path, const char *title) {
    plot_data d = {0};
    int rc = -1;
    rt_buf b = {0};
    plot_series *ps = NULL;
    double *buf = NULL;
    char (*tips)[96] = NULL;
    if (gw_db_with(db, plot_fn, &d)) {
        RT_FAIL("%s: %s", gw_db_path(db), rt_errmsg());
        goto out;
    }
    if (d.n == 0 || !(d.t1 > d.t0)) {
        RT_FAIL("%s: no risk timeline to plot (guard_scores is empty)", gw_db_path(db));
        goto out;
    }
    double ymax = 1.6;
    size_t total = 0;
    for (size_t i = 0; i < d.n; i++) {
        for (size_t k = 0; k < d.s[i].n; k++) ymax = fmax(ymax, fmin(d.s[i].p[k].risk, 3.0));
        total += RT_MIN(d.s[i].n, (size_t)300) + 1;
    }
    ymax = ceil(ymax * 5) / 5;
    ps = rt_calloc(d.n, sizeof *ps, "plot series");
    buf = rt_malloc_array(2 * total + 1, sizeof(double), "plot points");
    tips = rt_calloc(d.n, sizeof *tips, "plot series");
    if (!ps || !buf || !tips) goto out;
    /* benign first (underneath), then attackers; one swatch per strategy */
    size_t np = 0;
    double *at = buf;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < d.n; i++) {
            series *s = &d.s[i];
            if (s->attack != pass || s->n == 0) continue;
            size_t stride = s->n > 300 ? s->n / 300 + 1 : 1, m = 0;
            double *x = at, *y = at + RT_MIN(s->n, (size_t)300) + 1;
            for (size_t k = 0; k < s->n; k += stride, m++) x[m] = (s->p[k].t - d.t0) / 3600, y[m] = s->p[k].risk;
            x[m] = (s->p[s->n - 1].t - d.t0) / 3600, y[m] = s->p[s->n - 1].risk, m++;
            at = y + RT_MIN(s->n, (size_t)300) + 1;
            int first = 1;
            for (size_t q = 0; q < np; q++) first &= strcmp(ps[q].name, s->strategy) != 0;
            if (isfinite(s->t_susp))
                snprintf(tips[i], sizeof tips[i], "account #%lld (%s) suspended at %.2f h", (long long)s->id,
                         s->strategy, (s->t_susp - d.t0) / 3600.0);
            ps[np++] = (plot_series){.name = s->strategy,
                                     .color = plot_strategy_colour(pass ? s->strategy : "benign"),
                                     .x = x,
                                     .y = y,
                                     .n = m,
                                     .mark_x = isfinite(s->t_susp) ? (s->t_susp - d.t0) / 3600 : NAN,
                                     .mark_title = isfinite(s->t_susp) ? tips[i] : NULL,
                                     .stroke = pass ? 1.6 : 0.7,
                                     .opacity = pass ? 0.9 : 0.35,
                                     .no_swatch = !first};
        }
    plot_chart c = plot_chart_defaults();
    c.title = title ? title : "guard risk per account";
    c.xlabel = "hours since the first request (simulated time)";
    c.ylabel = "risk";
    c.width = 1100, c.height = 560;
    c.xmin = 0, c.xmax = (d.t1 - d.t0) / 3600, c.ymin = 0, c.ymax = ymax;
    c.more[0] = (plot_hline){d.flag, "flag", "#bbbb00"};
    c.more[1] = (plot_hline){d.throttle, "throttle", "#ff9900"};
    c.more[2] = (plot_hline){d.suspend, "suspend", "#cc0000"};
    c.n_more = 3;
    if (plot_lines(&b, &c, ps, np)) goto out;
    rc = plot_write(svg_path, &b);
out:
    for (size_t i = 0; i < d.n; i++) free(d.s[i].p);
    free(d.s);
    free(ps);
    free(buf);
    free(tips);
    rt_buf_free(&b);
    return rc;
}
