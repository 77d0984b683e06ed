/*
 * svg.c — the report's two chart kinds as inline SVG text: line charts (series over time,
 * with an optional vertical marker per series and a horizontal reference line) and
 * horizontal bar charts. Axes get "nice" ticks (1, 2, 5 × 10^k). Everything is escaped.
 * Not a plotting library: no legends beyond a row of swatches, no log axes (callers plot
 * transformed values and say so in the axis label).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report.h"

int report_html_escape(rt_buf *out, const char *s) {
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

static void fmt_num(char *buf, size_t cap, double v) {
    double a = fabs(v);
    if (a != 0 && (a >= 1e6 || a < 1e-3))
        snprintf(buf, cap, "%.3g", v);
    else
        snprintf(buf, cap, "%.4g", v);
}

typedef struct {
    double x0, x1, y0, y1;      /* data range */
    double L, R, T, B, W, H;    /* plot box in pixels */
} frame;

static double px(const frame *f, double x) { return f->L + (x - f->x0) / (f->x1 - f->x0) * (f->W - f->L - f->R); }
static double py(const frame *f, double y) { return f->H - f->B - (y - f->y0) / (f->y1 - f->y0) * (f->H - f->T - f->B); }

static int svg_open(rt_buf *o, const report_chart *c, const frame *f) {
    if (rt_buf_printf(o,
                      "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" "
                      "height=\"%.0f\" role=\"img\" font-family=\"sans-serif\" font-size=\"11\"><title>",
                      f->W, f->H, f->W, f->H) ||
        report_html_escape(o, c->title) || rt_buf_printf(o, "</title>"))
        return -1;
    if (c->title && (rt_buf_printf(o, "<text x=\"%.0f\" y=\"14\" font-size=\"13\" font-weight=\"bold\">", f->L) ||
                     report_html_escape(o, c->title) || rt_buf_printf(o, "</text>")))
        return -1;
    return 0;
}

static int axes(rt_buf *o, const report_chart *c, const frame *f, int with_x_ticks) {
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
                      report_html_escape(o, c->xlabel) || rt_buf_printf(o, "</text>")))
        return -1;
    if (c->ylabel &&
        (rt_buf_printf(o, "<text transform=\"translate(12,%.1f) rotate(-90)\" text-anchor=\"middle\">",
                       (f->T + f->H - f->B) / 2) ||
         report_html_escape(o, c->ylabel) || rt_buf_printf(o, "</text>")))
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
             report_html_escape(o, c->hline_label) || rt_buf_printf(o, "</text>")))
            return -1;
    }
    return 0;
}

int report_svg_lines(rt_buf *o, const report_chart *c, const report_series *s, size_t n) {
    frame f = {INFINITY, -INFINITY, INFINITY, -INFINITY, 52, 12, 24, 34, c->width > 0 ? c->width : 640,
               c->height > 0 ? c->height : 260};
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < s[i].n; k++) {
            if (!isfinite(s[i].x[k]) || !isfinite(s[i].y[k])) continue;
            f.x0 = fmin(f.x0, s[i].x[k]), f.x1 = fmax(f.x1, s[i].x[k]);
            f.y0 = fmin(f.y0, s[i].y[k]), f.y1 = fmax(f.y1, s[i].y[k]);
        }
    if (isfinite(c->hline)) f.y0 = fmin(f.y0, c->hline), f.y1 = fmax(f.y1, c->hline);
    if (isfinite(c->xmin)) f.x0 = c->xmin;
    if (isfinite(c->xmax)) f.x1 = c->xmax;
    if (isfinite(c->ymin)) f.y0 = c->ymin;
    if (isfinite(c->ymax)) f.y1 = c->ymax;
    if (!isfinite(f.x0)) f.x0 = 0, f.x1 = 1;
    if (!isfinite(f.y0)) f.y0 = 0, f.y1 = 1;
    if (f.x1 <= f.x0) f.x1 = f.x0 + 1;
    if (f.y1 <= f.y0) f.y1 = f.y0 + 1;
    f.y1 += (f.y1 - f.y0) * 0.05;
    if (n > 1 && n <= 12) f.T += 14; /* room for the swatches */
    if (svg_open(o, c, &f) || axes(o, c, &f, 1)) return -1;
    for (size_t i = 0; i < n; i++) {
        const report_series *q = &s[i];
        const char *col = q->color ? q->color : "#1f77b4";
        if (q->n) {
            if (rt_buf_printf(o, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"%s points=\"", col,
                              q->dashed ? " stroke-dasharray=\"4,3\"" : ""))
                return -1;
            for (size_t k = 0; k < q->n; k++) {
                if (!isfinite(q->x[k]) || !isfinite(q->y[k])) continue;
                double yy = fmin(fmax(q->y[k], f.y0), f.y1);
                if (rt_buf_printf(o, "%.1f,%.1f ", px(&f, q->x[k]), py(&f, yy))) return -1;
            }
            if (rt_buf_printf(o, "\"><title>")) return -1;
            if (report_html_escape(o, q->name) || rt_buf_printf(o, "</title></polyline>")) return -1;
        }
        if (isfinite(q->mark_x) && q->mark_x >= f.x0 && q->mark_x <= f.x1) {
            if (rt_buf_printf(o,
                              "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                              "stroke-width=\"2\"><title>suspended</title></line>",
                              px(&f, q->mark_x), px(&f, q->mark_x), f.T, f.H - f.B, col))
                return -1;
            /* labelled only where it cannot collide with another series' marker */
            if (n <= 2 && rt_buf_printf(o,
                                        "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\" font-size=\"10\">"
                                        "&#x2715; suspended</text>",
                                        px(&f, q->mark_x) + 3, f.T + 10, col))
                return -1;
        }
    }
    if (n > 1 && n <= 12) {
        double x = f.L;
        for (size_t i = 0; i < n; i++) {
            if (rt_buf_printf(o, "<rect x=\"%.1f\" y=\"22\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                                 "<text x=\"%.1f\" y=\"31\">",
                              x, s[i].color ? s[i].color : "#1f77b4", x + 13) ||
                report_html_escape(o, s[i].name) || rt_buf_printf(o, "</text>"))
                return -1;
            x += 20 + 6.2 * (double)strlen(s[i].name ? s[i].name : "");
        }
    }
    return rt_buf_printf(o, "</svg>");
}

int report_svg_bars(rt_buf *o, const report_chart *c, const report_bar *b, size_t n) {
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
            report_html_escape(o, b[i].label) || rt_buf_printf(o, "</text>"))
            return -1;
        if (isfinite(b[i].value)) {
            fmt_num(num, sizeof num, b[i].value);
            if (rt_buf_printf(o,
                              "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>"
                              "<text x=\"%.1f\" y=\"%.1f\">%s",
                              a, y, fmax(e - a, 0.5), row - 6, b[i].color ? b[i].color : "#1f77b4", e + 4, y + 12,
                              num) ||
                (b[i].note && (rt_buf_printf(o, " ") || report_html_escape(o, b[i].note))) ||
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
                               report_html_escape(o, c->hline_label) || rt_buf_printf(o, "</text>")))
            return -1;
    }
    if (c->xlabel && (rt_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", (f.L + f.W - f.R) / 2,
                                    f.H - 2) ||
                      report_html_escape(o, c->xlabel) || rt_buf_printf(o, "</text>")))
        return -1;
    return rt_buf_printf(o, "</svg>");
}
