/*
 * plot.c — the one SVG writer (contract in plot.h): style (palette, strategy colours, number
 * labels, escaping), line charts, horizontal bar charts and bar panels.
 * Not a plotting library: no log axes, no legends outside the plot.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "plot.h"

#include <stdlib.h>

int plot_escape(rt_buf *out, const char *s) {
    if (!s) return 0;
    for (const char *p = s; *p; p++) {
        const char *r = NULL;
        switch (*p) {
        case '&': r = "&amp;"; break;
        case '<': r = "&lt;"; break;
        case '>': r = "&gt;"; break;
        case '"': r = "&quot;"; break;
        case '\'': r = "&#39;"; break;
        default: break;
        }
        if (r ? rt_buf_append(out, r, strlen(r)) : rt_buf_append(out, p, 1)) return -1;
    }
    return 0;
}

/* Tick step: a 1-2-5 multiple of a power of ten giving about `want` intervals. */
static double nice_step(double span, int want) {
    if (!(span > 0) || !isfinite(span)) return 1;
    double raw = span / want, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double m = f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10;
    return m * mag;
}

static const char *const palette[] = {"#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                                      "#17becf", "#bcbd22", "#1f77b4", "#2ca02c", "#7f7f7f"};

const char *plot_colour(size_t i) { return palette[i % RT_ARRAY_LEN(palette)]; }

const char *plot_strategy_colour(const char *strategy) {
    static const struct {
        const char *s, *c;
    } tab[] = {{"bulk", "#d62728"},    {"logprob", "#9467bd"}, {"slow", "#8c564b"}, {"template", "#e377c2"},
               {"mimicry", "#ff7f0e"}, {"sybil", "#1f77b4"},   {"walk", "#2ca02c"}, {"power", "#7f7f7f"},
               {"app", "#7f7f7f"},     {"benign", "#9a9a9a"}};
    for (size_t i = 0; strategy && i < RT_ARRAY_LEN(tab); i++)
        if (!strcmp(strategy, tab[i].s)) return tab[i].c;
    return "#17becf";
}

void plot_number(char *buf, size_t cap, double v) {
    double a = fabs(v);
    if (a == 0 || !isfinite(v)) snprintf(buf, cap, "%g", a == 0 ? 0.0 : v);
    else if (a >= 1e9) snprintf(buf, cap, "%.3gG", v / 1e9);
    else if (a >= 1e6) snprintf(buf, cap, "%.3gM", v / 1e6);
    else if (a >= 1e4) snprintf(buf, cap, "%.3gk", v / 1e3);
    else if (a >= 1e-3) snprintf(buf, cap, "%.4g", v);
    else snprintf(buf, cap, "%.2g", v);
}

#define fmt_num plot_number

plot_chart plot_chart_defaults(void) {
    plot_chart c = {.hline = NAN, .xmin = NAN, .xmax = NAN, .ymin = NAN, .ymax = NAN};
    for (size_t i = 0; i < PLOT_MAX_HLINES; i++) c.more[i].y = NAN;
    return c;
}

int plot_write(const char *path, const rt_buf *svg) {
    if (!svg->data) return RT_FAIL("%s: nothing to write (out of memory?)", path);
    return rt_write_file_atomic(path, svg->data, svg->len);
}

typedef struct {
    double x0, x1, y0, y1;      /* data range */
    double L, R, T, B, W, H;    /* plot box in pixels */
} frame;

static double px(const frame *f, double x) { return f->L + (x - f->x0) / (f->x1 - f->x0) * (f->W - f->L - f->R); }
static double py(const frame *f, double y) { return f->H - f->B - (y - f->y0) / (f->y1 - f->y0) * (f->H - f->T - f->B); }

static int svg_open(rt_buf *o, const plot_chart *c, const frame *f) {
    if (rt_buf_printf(o,
                      "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" "
                      "height=\"%.0f\" role=\"img\" font-family=\"sans-serif\" font-size=\"11\"><title>",
                      f->W, f->H, f->W, f->H) ||
        plot_escape(o, c->title) || rt_buf_printf(o, "</title>"))
        return -1;
    if (c->title && (rt_buf_printf(o, "<text x=\"%.0f\" y=\"14\" font-size=\"13\" font-weight=\"bold\">", f->L) ||
                     plot_escape(o, c->title) || rt_buf_printf(o, "</text>")))
        return -1;
    return 0;
}

static int axes(rt_buf *o, const plot_chart *c, const frame *f, int with_x_ticks) {
    double ys = nice_step(f->y1 - f->y0, 5);
    char num[32];
    for (double v = ceil(f->y0 / ys) * ys; v <= f->y1 + ys * 1e-9; v += ys) {
        fmt_num(num, sizeof num, fabs(v) < ys * 1e-9 ? 0 : v);
        if (rt_buf_printf(o,
                          "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555\">%s</text>",
                          f->L, f->W - f->R, py(f, v), py(f, v), f->L - 4, py(f, v) + 4, num))
            return -1;
    }
    if (with_x_ticks) {
        double xs = nice_step(f->x1 - f->x0, 6);
        for (double v = ceil(f->x0 / xs) * xs; v <= f->x1 + xs * 1e-9; v += xs) {
            fmt_num(num, sizeof num, fabs(v) < xs * 1e-9 ? 0 : v);
            if (rt_buf_printf(o,
                              "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#999\"/>"
                              "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#555\">%s</text>",
                              px(f, v), px(f, v), f->H - f->B, f->H - f->B + 4, px(f, v), f->H - f->B + 16, num))
                return -1;
        }
    }
    if (rt_buf_printf(o,
                      "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>"
                      "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>",
                      f->L, f->W - f->R, f->H - f->B, f->H - f->B, f->L, f->L, f->T, f->H - f->B))
        return -1;
    if (c->xlabel && (rt_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", (f->L + f->W - f->R) / 2,
                                    f->H - 4) ||
                      plot_escape(o, c->xlabel) || rt_buf_printf(o, "</text>")))
        return -1;
    if (c->ylabel &&
        (rt_buf_printf(o, "<text transform=\"translate(12,%.1f) rotate(-90)\" text-anchor=\"middle\">",
                       (f->T + f->H - f->B) / 2) ||
         plot_escape(o, c->ylabel) || rt_buf_printf(o, "</text>")))
        return -1;
    if (isfinite(c->hline) && c->hline >= f->y0 && c->hline <= f->y1) {
        if (rt_buf_printf(o,
                          "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#b00\" "
                          "stroke-dasharray=\"5,3\"/>",
                          f->L, f->W - f->R, py(f, c->hline), py(f, c->hline)))
            return -1;
        if (c->hline_label &&
            (rt_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#b00\">", f->W - f->R - 2,
                           py(f, c->hline) - 3) ||
             plot_escape(o, c->hline_label) || rt_buf_printf(o, "</text>")))
            return -1;
    }
    for (size_t i = 0; i < c->n_more && i < PLOT_MAX_HLINES; i++) {
        const plot_hline *h = &c->more[i];
        const char *col = h->color ? h->color : "#b00";
        if (!isfinite(h->y) || h->y < f->y0 || h->y > f->y1) continue;
        if (rt_buf_printf(o,
                          "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                          "stroke-dasharray=\"6,4\"/>",
                          f->L, f->W - f->R, py(f, h->y), py(f, h->y), col))
            return -1;
        if (h->label && (rt_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"%s\">",
                                       f->W - f->R - 2, py(f, h->y) - 3, col) ||
                         plot_escape(o, h->label) || rt_buf_printf(o, "</text>")))
            return -1;
    }
    return 0;
}

int plot_lines(rt_buf *o, const plot_chart *c, const plot_series *s, size_t n) {
    frame f = {INFINITY, -INFINITY, INFINITY, -INFINITY, 52, 12, 24, 34, c->width > 0 ? c->width : 640,
               c->height > 0 ? c->height : 260};
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < s[i].n; k++) {
            if (!isfinite(s[i].x[k]) || !isfinite(s[i].y[k])) continue;
            f.x0 = fmin(f.x0, s[i].x[k]), f.x1 = fmax(f.x1, s[i].x[k]);
            f.y0 = fmin(f.y0, s[i].y[k]), f.y1 = fmax(f.y1, s[i].y[k]);
        }
    if (isfinite(c->hline)) f.y0 = fmin(f.y0, c->hline), f.y1 = fmax(f.y1, c->hline);
    for (size_t i = 0; i < c->n_more && i < PLOT_MAX_HLINES; i++)
        if (isfinite(c->more[i].y)) f.y0 = fmin(f.y0, c->more[i].y), f.y1 = fmax(f.y1, c->more[i].y);
    if (isfinite(c->xmin)) f.x0 = c->xmin;
    if (isfinite(c->xmax)) f.x1 = c->xmax;
    if (isfinite(c->ymin)) f.y0 = c->ymin;
    if (isfinite(c->ymax)) f.y1 = c->ymax;
    if (!isfinite(f.x0)) f.x0 = 0, f.x1 = 1;
    if (!isfinite(f.y0)) f.y0 = 0, f.y1 = 1;
    if (f.x1 <= f.x0) f.x1 = f.x0 + 1;
    if (f.y1 <= f.y0) f.y1 = f.y0 + 1;
    f.y1 += (f.y1 - f.y0) * 0.05;
    size_t n_sw = 0;
    for (size_t i = 0; i < n; i++) n_sw += !s[i].no_swatch;
    if (n_sw > 1 && n_sw <= 12) f.T += 14; /* room for the swatches */
    if (svg_open(o, c, &f) || axes(o, c, &f, 1)) return -1;
    for (size_t i = 0; i < n; i++) {
        const plot_series *q = &s[i];
        const char *col = q->color ? q->color : plot_colour(i);
        if (q->n) {
            char op[48] = "";
            if (q->opacity > 0 && q->opacity < 1) snprintf(op, sizeof op, " stroke-opacity=\"%.2f\"", q->opacity);
            if (rt_buf_printf(o, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\"%s%s points=\"", col,
                              q->stroke > 0 ? q->stroke : 1.5, q->dashed ? " stroke-dasharray=\"4,3\"" : "", op))
                return -1;
            for (size_t k = 0; k < q->n; k++) {
                if (!isfinite(q->x[k]) || !isfinite(q->y[k])) continue;
                double yy = fmin(fmax(q->y[k], f.y0), f.y1);
                if (rt_buf_printf(o, "%.1f,%.1f ", px(&f, q->x[k]), py(&f, yy))) return -1;
            }
            if (rt_buf_printf(o, "\"><title>")) return -1;
            if (plot_escape(o, q->name) || rt_buf_printf(o, "</title></polyline>")) return -1;
        }
        if (isfinite(q->mark_x) && q->mark_x >= f.x0 && q->mark_x <= f.x1) {
            if (rt_buf_printf(o,
                              "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                              "stroke-width=\"2\"><title>",
                              px(&f, q->mark_x), px(&f, q->mark_x), f.T, f.H - f.B, col) ||
                plot_escape(o, q->mark_title ? q->mark_title : c->mark_label ? c->mark_label : "suspended") ||
                rt_buf_printf(o, "</title></line>"))
                return -1;
            /* labelled only where it cannot collide with another series' marker */
            if (n <= 2 && (rt_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\" font-size=\"10\">&#x2715; ",
                                         px(&f, q->mark_x) + 3, f.T + 10, col) ||
                           plot_escape(o, c->mark_label ? c->mark_label : "suspended") || rt_buf_printf(o, "</text>")))
                return -1;
        }
    }
    if (n_sw > 1 && n_sw <= 12) {
        double x = f.L;
        for (size_t i = 0; i < n; i++) {
            if (s[i].no_swatch) continue;
            if (rt_buf_printf(o, "<rect x=\"%.1f\" y=\"22\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                                 "<text x=\"%.1f\" y=\"31\">",
                              x, s[i].color ? s[i].color : plot_colour(i), x + 13) ||
                plot_escape(o, s[i].name) || rt_buf_printf(o, "</text>"))
                return -1;
            x += 20 + 6.2 * (double)strlen(s[i].name ? s[i].name : "");
        }
    }
    return rt_buf_printf(o, "</svg>");
}

int plot_bars(rt_buf *o, const plot_chart *c, const plot_bar *b, size_t n) {
    double row = 22;
    int notes = 0;
    for (size_t i = 0; i < n; i++) notes |= b[i].note != NULL;
    frame f = {0, 1, 0, 1, 170, notes ? 200 : 90, 24, 30, c->width > 0 ? c->width : 640, 0};
    f.H = f.T + f.B + row * (double)(n ? n : 1);
    double lo = 0, hi = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(b[i].value)) lo = fmin(lo, b[i].value), hi = fmax(hi, b[i].value);
    if (isfinite(c->hline)) lo = fmin(lo, c->hline), hi = fmax(hi, c->hline);
    if (isfinite(c->xmin)) lo = c->xmin;
    if (isfinite(c->xmax)) hi = c->xmax;
    if (hi <= lo) hi = lo + 1;
    f.x0 = lo, f.x1 = hi + (hi - lo) * 0.02;
    if (svg_open(o, c, &f)) return -1;
    char num[32];
    double xs = nice_step(f.x1 - f.x0, 5);
    for (double v = ceil(f.x0 / xs) * xs; v <= f.x1 + xs * 1e-9; v += xs) {
        fmt_num(num, sizeof num, fabs(v) < xs * 1e-9 ? 0 : v);
        if (rt_buf_printf(o,
                          "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#555\">%s</text>",
                          px(&f, v), px(&f, v), f.T, f.H - f.B, px(&f, v), f.H - f.B + 14, num))
            return -1;
    }
    for (size_t i = 0; i < n; i++) {
        double y = f.T + row * (double)i + 3, v = isfinite(b[i].value) ? b[i].value : 0;
        double a = px(&f, fmin(0, v) < f.x0 ? f.x0 : fmin(0, v)), e = px(&f, fmax(0, v));
        if (rt_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", f.L - 6, y + 12) ||
            plot_escape(o, b[i].label) || rt_buf_printf(o, "</text>"))
            return -1;
        if (isfinite(b[i].value)) {
            fmt_num(num, sizeof num, b[i].value);
            if (rt_buf_printf(o,
                              "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>"
                              "<text x=\"%.1f\" y=\"%.1f\">%s",
                              a, y, fmax(e - a, 0.5), row - 6, b[i].color ? b[i].color : "#1f77b4", e + 4, y + 12,
                              num) ||
                (b[i].note && (rt_buf_printf(o, " ") || plot_escape(o, b[i].note))) ||
                rt_buf_printf(o, "</text>"))
                return -1;
        } else if (rt_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#777\">not measured</text>", f.L + 4,
                                 y + 12))
            return -1;
    }
    if (rt_buf_printf(o, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>", px(&f, 0),
                      px(&f, 0), f.T, f.H - f.B))
        return -1;
    if (isfinite(c->hline)) {
        if (rt_buf_printf(o,
                          "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#b00\" "
                          "stroke-dasharray=\"5,3\"/>",
                          px(&f, c->hline), px(&f, c->hline), f.T - 4, f.H - f.B))
            return -1;
        if (c->hline_label && (rt_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#b00\">", px(&f, c->hline) + 3,
                                             f.T - 6) ||
                               plot_escape(o, c->hline_label) || rt_buf_printf(o, "</text>")))
            return -1;
    }
    if (c->xlabel && (rt_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", (f.L + f.W - f.R) / 2,
                                    f.H - 2) ||
                      plot_escape(o, c->xlabel) || rt_buf_printf(o, "</text>")))
        return -1;
    return rt_buf_printf(o, "</svg>");
}

/* a "nice" axis covering [lo, hi]: a0, a1 multiples of the step */
static void nice_axis(double lo, double hi, double *a0, double *a1, double *step) {
    if (!(hi > lo)) hi = lo + 1;
    *step = nice_step(hi - lo, 5);
    *a0 = floor(lo / *step) * *step;
    *a1 = ceil(hi / *step) * *step;
    if (*a1 <= *a0) *a1 = *a0 + *step;
}

int plot_bar_panels(rt_buf *o, const char *title, size_t n_runs, const char *const *run_labels, size_t n_metrics,
                    const char *const *metric_names, const double *values) {
    if (n_runs == 0 || n_metrics == 0) return RT_FAIL("plot: nothing to plot");
    const double pw = 260, ph = 240, ml = 50, mt = 50, gap = 30, label_h = 110;
    double W = ml + (double)n_metrics * (pw + gap), H = mt + ph + label_h + 20 + 16.0 * (double)RT_MIN(n_runs, 10);
    int rc = rt_buf_printf(o,
                           "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                           "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" "
                           "fill=\"white\"/>\n<text x=\"%.0f\" y=\"24\" font-size=\"16\" font-weight=\"bold\">",
                           W, H, ml);
    rc = rc || plot_escape(o, title) || rt_buf_printf(o, "</text>\n");
    for (size_t mi = 0; mi < n_metrics && !rc; mi++) {
        double x0 = ml + (double)mi * (pw + gap), y0 = mt;
        double lo = 0, hi = -INFINITY;
        for (size_t r = 0; r < n_runs; r++) {
            double v = values[mi * n_runs + r];
            if (isfinite(v)) hi = fmax(hi, v), lo = fmin(lo, v);
        }
        if (!isfinite(hi)) hi = 1;
        double a0, a1, st;
        nice_axis(lo, hi, &a0, &a1, &st);
        rc = rt_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">", x0, y0 - 8) ||
             plot_escape(o, metric_names[mi]) || rt_buf_printf(o, "</text>\n");
        char num[32];
        for (double tv = a0; tv <= a1 + st * 1e-9 && !rc; tv += st) {
            double y = y0 + ph - (tv - a0) / (a1 - a0) * ph;
            plot_number(num, sizeof num, fabs(tv) < st * 1e-9 ? 0 : tv);
            rc = rt_buf_printf(o,
                               "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                               "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555\">%s</text>\n",
                               x0, y, x0 + pw, y, x0 - 4, y + 4, num);
        }
        double bw = pw / (double)n_runs;
        for (size_t r = 0; r < n_runs && !rc; r++) {
            double v = values[mi * n_runs + r], bx = x0 + (double)r * bw + bw * 0.1;
            if (isfinite(v)) {
                double yv = y0 + ph - (v - a0) / (a1 - a0) * ph, yz = y0 + ph - (0 - a0) / (a1 - a0) * ph;
                plot_number(num, sizeof num, v);
                rc = rt_buf_printf(o,
                                   "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>"
                                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"10\">%s</text>\n",
                                   bx, fmin(yv, yz), bw * 0.8, fabs(yz - yv), plot_colour(r), bx + bw * 0.4,
                                   fmin(yv, yz) - 3, num);
            }
            if (!rc)
                rc = rt_buf_printf(o,
                                   "<text transform=\"translate(%.1f,%.1f) rotate(-40)\" text-anchor=\"end\" "
                                   "font-size=\"10\">",
                                   bx + bw * 0.4, y0 + ph + 14) ||
                     plot_escape(o, run_labels[r]) || rt_buf_printf(o, "</text>\n");
        }
        if (!rc)
            rc = rt_buf_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", x0,
                               y0 + ph, x0 + pw, y0 + ph);
    }
    return rc || rt_buf_printf(o, "</svg>\n") ? -1 : 0;
}
