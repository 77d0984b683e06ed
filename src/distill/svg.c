/*
 * svg.c — two small, dependency-free SVG charts for experiment write-ups: bar panels (one
 * panel per metric, one bar per run, value printed on each bar) and a line chart (several
 * series of (x, y) points, e.g. held-out loss against step). Text is XML-escaped; NAN values
 * are left out. Files are written atomically.
 *
 * What this is not: a plotting library (no log axes, no legends outside the plot area) or
 * the HTML report (src/report).
 */
#include "distill.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

static int esc(rt_buf *b, const char *s) {
    for (; s && *s; s++) {
        int rc;
        switch (*s) {
        case '<': rc = rt_buf_append(b, "&lt;", 4); break;
        case '>': rc = rt_buf_append(b, "&gt;", 4); break;
        case '&': rc = rt_buf_append(b, "&amp;", 5); break;
        case '"': rc = rt_buf_append(b, "&quot;", 6); break;
        default: rc = rt_buf_append(b, s, 1);
        }
        if (rc) return -1;
    }
    return 0;
}

/* a "nice" axis maximum and tick step covering [lo, hi] */
static void nice_axis(double lo, double hi, double *a0, double *a1, double *step) {
    if (!(hi > lo)) {
        hi = lo + 1;
    }
    double span = hi - lo, raw = span / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double s = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    *step = s * mag;
    *a0 = floor(lo / *step) * *step;
    *a1 = ceil(hi / *step) * *step;
    if (*a1 <= *a0) *a1 = *a0 + *step;
}

static void fmt_num(char *out, size_t cap, double v) {
    double a = fabs(v);
    if (a != 0 && (a < 1e-3 || a >= 1e5)) snprintf(out, cap, "%.2e", v);
    else if (a >= 100) snprintf(out, cap, "%.0f", v);
    else if (a >= 10) snprintf(out, cap, "%.1f", v);
    else snprintf(out, cap, "%.3g", v);
}

int svg_bar_panels(const char *path, const char *title, size_t n_runs, const char *const *run_labels,
                   size_t n_metrics, const char *const *metric_names, const double *values) {
    if (n_runs == 0 || n_metrics == 0) return RT_FAIL("svg: nothing to plot");
    const double pw = 260, ph = 240, ml = 50, mt = 50, gap = 30, label_h = 110;
    double W = ml + n_metrics * (pw + gap), H = mt + ph + label_h + 20 + 16.0 * (double)RT_MIN(n_runs, 10);
    rt_buf b = {0};
    int rc = rt_buf_printf(&b,
                           "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                           "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" "
                           "fill=\"white\"/>\n<text x=\"%.0f\" y=\"24\" font-size=\"16\" font-weight=\"bold\">",
                           W, H, ml);
    rc = rc || esc(&b, title) || rt_buf_printf(&b, "</text>\n");
    for (size_t mi = 0; mi < n_metrics && !rc; mi++) {
        double x0 = ml + (double)mi * (pw + gap), y0 = mt;
        double lo = 0, hi = -INFINITY;
        for (size_t r = 0; r < n_runs; r++) {
            double v = values[mi * n_runs + r];
            if (isfinite(v)) {
                hi = fmax(hi, v);
                lo = fmin(lo, v);
            }
        }
        if (!isfinite(hi)) hi = 1;
        double a0, a1, st;
        nice_axis(lo, hi, &a0, &a1, &st);
        rc = rt_buf_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">", x0, y0 - 8) ||
             esc(&b, metric_names[mi]) || rt_buf_printf(&b, "</text>\n");
        for (double tv = a0; tv <= a1 + st * 1e-9 && !rc; tv += st) {
            double y = y0 + ph - (tv - a0) / (a1 - a0) * ph;
            char num[32];
            fmt_num(num, sizeof num, tv);
            rc = rt_buf_printf(&b,
                               "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                               "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555\">%s</text>\n",
                               x0, y, x0 + pw, y, x0 - 4, y + 4, num);
        }
        double bw = pw / (double)n_runs;
        for (size_t r = 0; r < n_runs && !rc; r++) {
            double v = values[mi * n_runs + r];
            double bx = x0 + (double)r * bw + bw * 0.1;
            if (isfinite(v)) {
                double yv = y0 + ph - (v - a0) / (a1 - a0) * ph, yz = y0 + ph - (0 - a0) / (a1 - a0) * ph;
                char num[32];
                fmt_num(num, sizeof num, v);
                rc = rt_buf_printf(&b,
                                   "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>"
                                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"10\">%s</text>\n",
                                   bx, fmin(yv, yz), bw * 0.8, fabs(yz - yv), palette[r % RT_ARRAY_LEN(palette)],
                                   bx + bw * 0.4, fmin(yv, yz) - 3, num);
            }
            if (!rc)
                rc = rt_buf_printf(&b,
                                   "<text transform=\"translate(%.1f,%.1f) rotate(-40)\" text-anchor=\"end\" "
                                   "font-size=\"10\">",
                                   bx + bw * 0.4, y0 + ph + 14) ||
                     esc(&b, run_labels[r]) || rt_buf_printf(&b, "</text>\n");
        }
        if (!rc)
            rc = rt_buf_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", x0,
                               y0 + ph, x0 + pw, y0 + ph);
    }
    rc = rc || rt_buf_printf(&b, "</svg>\n");
    if (!rc) rc = rt_write_file_atomic(path, b.data, b.len);
    rt_buf_free(&b);
    return rc;
}

int svg_line_chart(const char *path, const char *title, const char *x_label, const char *y_label, size_t n_series,
                   const char *const *labels, const double *const *xs, const double *const *ys, const size_t *ns) {
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (size_t s = 0; s < n_series; s++)
        for (size_t i = 0; i < ns[s]; i++)
            if (isfinite(xs[s][i]) && isfinite(ys[s][i])) {
                xmin = fmin(xmin, xs[s][i]);
                xmax = fmax(xmax, xs[s][i]);
                ymin = fmin(ymin, ys[s][i]);
                ymax = fmax(ymax, ys[s][i]);
            }
    if (!isfinite(xmin)) return RT_FAIL("svg: no finite points to plot");
    double x0a, x1a, xs_t, y0a, y1a, ys_t;
    nice_axis(xmin, xmax, &x0a, &x1a, &xs_t);
    nice_axis(ymin, ymax, &y0a, &y1a, &ys_t);
    const double W = 760, H = 460, ml = 70, mr = 200, mt = 50, mb = 50, pw = W - ml - mr, ph = H - mt - mb;
    rt_buf b = {0};
    int rc = rt_buf_printf(&b,
                           "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                           "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" "
                           "fill=\"white\"/>\n<text x=\"%.0f\" y=\"24\" font-size=\"16\" font-weight=\"bold\">",
                           W, H, ml);
    rc = rc || esc(&b, title) || rt_buf_printf(&b, "</text>\n");
#define PX(x) (ml + ((x) - x0a) / (x1a - x0a) * pw)
#define PY(y) (mt + ph - ((y) - y0a) / (y1a - y0a) * ph)
    for (double t = y0a; t <= y1a + ys_t * 1e-9 && !rc; t += ys_t) {
        char num[32];
        fmt_num(num, sizeof num, t);
        rc = rt_buf_printf(&b,
                           "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%.1f\" "
                           "y=\"%.1f\" text-anchor=\"end\" fill=\"#555\">%s</text>\n",
                           ml, PY(t), ml + pw, PY(t), ml - 4, PY(t) + 4, num);
    }
    for (double t = x0a; t <= x1a + xs_t * 1e-9 && !rc; t += xs_t) {
        char num[32];
        fmt_num(num, sizeof num, t);
        rc = rt_buf_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#555\">%s</text>\n", PX(t),
                           mt + ph + 16, num);
    }
    rc = rc || rt_buf_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", ml + pw / 2, H - 10) ||
         esc(&b, x_label) ||
         rt_buf_printf(&b, "</text>\n<text transform=\"translate(16,%.1f) rotate(-90)\" text-anchor=\"middle\">",
                       mt + ph / 2) ||
         esc(&b, y_label) || rt_buf_printf(&b, "</text>\n");
    for (size_t s = 0; s < n_series && !rc; s++) {
        const char *col = palette[s % RT_ARRAY_LEN(palette)];
        rc = rt_buf_printf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        for (size_t i = 0; i < ns[s] && !rc; i++)
            if (isfinite(xs[s][i]) && isfinite(ys[s][i]))
                rc = rt_buf_printf(&b, "%.1f,%.1f ", PX(xs[s][i]), PY(ys[s][i]));
        double ly = mt + 10 + 18.0 * (double)s;
        rc = rc || rt_buf_printf(&b,
                                 "\"/>\n<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                                 "stroke-width=\"3\"/><text x=\"%.1f\" y=\"%.1f\">",
                                 ml + pw + 12, ly, ml + pw + 32, ly, col, ml + pw + 38, ly + 4) ||
             esc(&b, labels[s]) || rt_buf_printf(&b, "</text>\n");
    }
#undef PX
#undef PY
    rc = rc || rt_buf_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                                 "stroke=\"#333\"/>\n</svg>\n",
                             ml, mt, pw, ph);
    if (!rc) rc = rt_write_file_atomic(path, b.data, b.len);
    rt_buf_free(&b);
    return rc;
}
