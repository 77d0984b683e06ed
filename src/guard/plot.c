/*
 * plot.c — the guard's timeline as a standalone SVG: risk per account over (simulated) time
 * from guard_scores, benign accounts in thin grey, attackers coloured by strategy, each
 * suspension marked where it happened, and the policy's flag / throttle / suspend lines.
 * Plain SVG text, no dependencies. Not a general plotting library (src/report will be).
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../defend/defend_internal.h"

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

static int plot_fn(sqlite3 *c, void *ud) {
    plot_data *d = ud;
    if (!gw_sql_has_table(c, "guard_scores")) return RT_FAIL("no guard tables: was the server run with --guard?");
    sqlite3_stmt *st = NULL;
    if (gw_sql_prepare(c, "SELECT account_id, t, risk FROM guard_scores ORDER BY account_id, id", &st, "guard_scores"))
        return -1;
    d->t0 = INFINITY;
    d->t1 = -INFINITY;
    while (sqlite3_step(st) == SQLITE_ROW) {
        series *s = series_get(d, sqlite3_column_int64(st, 0));
        if (!s) {
            sqlite3_finalize(st);
            return -1;
        }
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 64;
            pt *np = rt_realloc(s->p, s->cap * sizeof *np, "plot points");
            if (!np) {
                sqlite3_finalize(st);
                return -1;
            }
            s->p = np;
        }
        double t = sqlite3_column_double(st, 1);
        s->p[s->n++] = (pt){t, sqlite3_column_double(st, 2)};
        d->t0 = fmin(d->t0, t);
        d->t1 = fmax(d->t1, t);
    }
    sqlite3_finalize(st);
    if (gw_sql_prepare(c, "SELECT account_id, t, risk FROM guard_actions WHERE action = 'suspend' ORDER BY id", &st,
                          "guard_actions"))
        return -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        series *s = series_get(d, sqlite3_column_int64(st, 0));
        if (s && !isfinite(s->t_susp)) {
            s->t_susp = sqlite3_column_double(st, 1);
            s->r_susp = sqlite3_column_double(st, 2);
        }
    }
    sqlite3_finalize(st);
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
        if (sqlite3_step(st) == SQLITE_ROW) {
            const char *js = (const char *)sqlite3_column_text(st, 0);
            if (js) guard_policy_parse(&p, js, strlen(js), "stored policy");
        }
        sqlite3_finalize(st);
    }
    d->flag = p.flag_at;
    d->throttle = p.throttle_at;
    d->suspend = p.suspend_at;
    return 0;
}

static const char *colour(const char *strategy) {
    static const struct {
        const char *s, *c;
    } tab[] = {{"bulk", "#d62728"},     {"logprob", "#9467bd"}, {"slow", "#8c564b"},  {"template", "#e377c2"},
               {"mimicry", "#ff7f0e"},  {"sybil", "#1f77b4"},   {"walk", "#2ca02c"},  {"power", "#7f7f7f"},
               {"app", "#7f7f7f"},      {"benign", "#9a9a9a"}};
    for (size_t i = 0; i < RT_ARRAY_LEN(tab); i++)
        if (!strcmp(strategy, tab[i].s)) return tab[i].c;
    return "#17becf";
}

int guard_plot_timeline(gw_db *db, const char *svg_path, const char *title) {
    plot_data d = {0};
    int rc = -1;
    rt_buf b = {0};
    if (gw_db_with(db, plot_fn, &d)) {
        RT_FAIL("%s: %s", gw_db_path(db), rt_errmsg());
        goto out;
    }
    if (d.n == 0 || !(d.t1 > d.t0)) {
        RT_FAIL("%s: no risk timeline to plot (guard_scores is empty)", gw_db_path(db));
        goto out;
    }
    const double W = 1100, H = 560, L = 70, R = 180, T = 50, B = 60;
    const double pw = W - L - R, ph = H - T - B;
    double ymax = 1.6;
    for (size_t i = 0; i < d.n; i++)
        for (size_t k = 0; k < d.s[i].n; k++) ymax = fmax(ymax, fmin(d.s[i].p[k].risk, 3.0));
    ymax = ceil(ymax * 5) / 5;
    double hours = (d.t1 - d.t0) / 3600.0;
#define X(t) (L + ((t) - d.t0) / (d.t1 - d.t0) * pw)
#define Y(r) (T + ph - fmin((r), ymax) / ymax * ph)
    rt_buf_printf(&b,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                  "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                  W, H, W, H);
    rt_buf_printf(&b, "<text x=\"%.0f\" y=\"28\" font-size=\"16\">", L);
    for (const char *q = title ? title : "guard risk per account"; *q; q++) {
        if (*q == '<') rt_buf_printf(&b, "&lt;");
        else if (*q == '&') rt_buf_printf(&b, "&amp;");
        else rt_buf_append(&b, q, 1);
    }
    rt_buf_printf(&b, "</text>\n");
    /* axes and grid */
    rt_buf_printf(&b, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#444\"/>\n", L, T,
                  pw, ph);
    double step = hours > 48 ? 12 : hours > 12 ? 3 : hours > 3 ? 1 : 0.25;
    for (double h = 0; h <= hours + 1e-9; h += step) {
        double x = X(d.t0 + h * 3600);
        rt_buf_printf(&b, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#eee\"/>", x, T, x, T + ph);
        rt_buf_printf(&b, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%g h</text>\n", x, T + ph + 18, h);
    }
    for (double r = 0; r <= ymax + 1e-9; r += 0.2) {
        double y = Y(r);
        rt_buf_printf(&b, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n", L - 6, y + 4, r);
    }
    rt_buf_printf(&b, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">simulated time since the first request</text>\n",
                  L + pw / 2, H - 18);
    rt_buf_printf(&b, "<text transform=\"translate(18 %.0f) rotate(-90)\" text-anchor=\"middle\">risk</text>\n", T + ph / 2);
    const struct {
        double v;
        const char *name, *c;
    } th[] = {{d.flag, "flag", "#bbbb00"}, {d.throttle, "throttle", "#ff9900"}, {d.suspend, "suspend", "#cc0000"}};
    for (size_t i = 0; i < 3; i++) {
        if (th[i].v > ymax) continue;
        rt_buf_printf(&b,
                      "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"%s\" stroke-dasharray=\"6 4\"/>"
                      "<text x=\"%.0f\" y=\"%.1f\" fill=\"%s\">%s</text>\n",
                      L, Y(th[i].v), L + pw, Y(th[i].v), th[i].c, L + pw + 4, Y(th[i].v) + 4, th[i].c, th[i].name);
    }
    /* benign first (underneath), then attackers */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < d.n; i++) {
            series *s = &d.s[i];
            if (s->attack != pass || s->n == 0) continue;
            size_t stride = s->n > 300 ? s->n / 300 + 1 : 1;
            rt_buf_printf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\" stroke-opacity=\"%s\" points=\"",
                          pass ? colour(s->strategy) : "#9a9a9a", pass ? "1.6" : "0.7", pass ? "0.9" : "0.35");
            for (size_t k = 0; k < s->n; k += stride) rt_buf_printf(&b, "%.1f,%.1f ", X(s->p[k].t), Y(s->p[k].risk));
            rt_buf_printf(&b, "%.1f,%.1f\"/>\n", X(s->p[s->n - 1].t), Y(s->p[s->n - 1].risk));
        }
    }
    for (size_t i = 0; i < d.n; i++) {
        series *s = &d.s[i];
        if (!isfinite(s->t_susp)) continue;
        double x = X(s->t_susp), y = Y(s->r_susp);
        const char *c = s->attack ? colour(s->strategy) : "#000000";
        rt_buf_printf(&b,
                      "<path d=\"M%.1f %.1f l6 6 m-6 0 l6 -6\" transform=\"translate(-3 -3)\" stroke=\"%s\" "
                      "stroke-width=\"2\"><title>account #%lld (%s) suspended at %.2f h</title></path>\n",
                      x, y, c, (long long)s->id, s->strategy, (s->t_susp - d.t0) / 3600.0);
    }
    /* legend */
    const char *seen[32];
    size_t n_seen = 0;
    double ly = T + 10;
    for (size_t i = 0; i < d.n; i++) {
        size_t k = 0;
        while (k < n_seen && strcmp(seen[k], d.s[i].strategy)) k++;
        if (k < n_seen || n_seen == 32) continue;
        seen[n_seen++] = d.s[i].strategy;
        rt_buf_printf(&b,
                      "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" stroke-width=\"3\"/>"
                      "<text x=\"%.0f\" y=\"%.0f\">%s%s</text>\n",
                      L + pw + 60, ly, L + pw + 80, ly, d.s[i].attack ? colour(d.s[i].strategy) : "#9a9a9a", L + pw + 86,
                      ly + 4, d.s[i].strategy, d.s[i].attack ? "" : " (benign)");
        ly += 18;
    }
    rt_buf_printf(&b,
                  "<path d=\"M%.0f %.0f l6 6 m-6 0 l6 -6\" stroke=\"#000\" stroke-width=\"2\"/><text x=\"%.0f\" "
                  "y=\"%.0f\">suspension</text>\n</svg>\n",
                  L + pw + 67, ly - 3, L + pw + 86, ly + 4);
#undef X
#undef Y
    if (!b.data) {
        RT_FAIL("out of memory");
        goto out;
    }
    rc = rt_write_file_atomic(svg_path, b.data, b.len);
out:
    for (size_t i = 0; i < d.n; i++) free(d.s[i].p);
    free(d.s);
    rt_buf_free(&b);
    return rc;
}
