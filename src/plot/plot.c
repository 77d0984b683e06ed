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

/* ---------------------------------------------------------------- label boxes
 * Every text a chart writes takes a box (width PLOT_EM_W em a character, height from the
 * baseline up 0.8 em and down 0.25 em). Axis numbers, titles and swatches always go; optional
 * labels (reference-line names, marker names) try a few places and are left out (their
 * tooltip stays) when every place would overlap a box already placed or leave the image. */

#define PLOT_EM_W 0.6
#define PLOT_MAX_BOXES 160

typedef struct {
    double x0, y0, x1, y1;
} tbox;

typedef struct {
    tbox b[PLOT_MAX_BOXES];
    size_t n;
    double W, H;
} tboxes;

static size_t text_chars(const char *s) {
    size_t n = 0;
    for (; s && *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* The box of text s at (x, y) (baseline) with anchor 's'tart, 'm'iddle or 'e'nd; extra: chars
 * drawn beside s (a symbol). */
static tbox text_box(double x, double y, char anchor, double font, const char *s, size_t extra) {
    double w = PLOT_EM_W * font * (double)(text_chars(s) + extra);
    double x0 = anchor == 'e' ? x - w : anchor == 'm' ? x - w / 2 : x;
    return (tbox){x0, y - 0.8 * font, x0 + w, y + 0.25 * font};
}

static int box_free(const tboxes *t, tbox b) {
    if (b.x0 < 0 || b.y0 < 0 || b.x1 > t->W || b.y1 > t->H) return 0;
    for (size_t i = 0; i < t->n; i++)
        if (b.x0 < t->b[i].x1 && t->b[i].x0 < b.x1 && b.y0 < t->b[i].y1 && t->b[i].y0 < b.y1) return 0;
    return 1;
}

static void box_take(tboxes *t, tbox b) {
    if (t->n < PLOT_MAX_BOXES) t->b[t->n++] = b;
}

/* Place an optional label: the first candidate (x[i], y[i], anchor[i]) whose box is free.
 * Returns the index or -1 (left out; also when the box list is full). */
static int place_label(tboxes *t, size_t nc, const double *x, const double *y, const char *anchor, double font,
                       const char *s, size_t extra) {
    if (t->n >= PLOT_MAX_BOXES) return -1;
    for (size_t i = 0; i < nc; i++) {
        tbox b = text_box(x[i], y[i], anchor[i], font, s, extra);
        if (box_free(t, b)) {
            box_take(t, b);
            return (int)i;
        }
    }
    return -1;
}

static const char *anchor_name(char a) { return a == 'e' ? "end" : a == 'm' ? "middle" : "start"; }

/* A reference line's label: above or below the line, at the right end or the left. */
static int hline_label(rt_buf *o, tboxes *t, const frame *f, double y, const char *label, const char *col) {
    double xs[4] = {f->W - f->R - 2, f->W - f->R - 2, f->L + 4, f->L + 4}, ys[4] = {y - 3, y + 12, y - 3, y + 12};
    const char an[4] = {'e', 'e', 's', 's'};
    int k = place_label(t, 4, xs, ys, an, 11, label, 0);
    if (k < 0) return 0;
    return rt_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" fill=\"%s\">", xs[k], ys[k],
                         anchor_name(an[k]), col) ||
                   plot_escape(o, label) || rt_buf_printf(o, "</text>")
               ? -1
               : 0;
}

static double px(const frame *f, double x) { return f->L + (x - f->x0) / (f->x1 - f->x0) * (f->W - f->L - f->R); }
static double py(const frame *f, double y) { return f->H - f->B - (y - f->y0) / (f->y1 - f->y0) * (f->H - f->T - f->B); }

static int svg_open(rt_buf *o, const plot_chart *c, const frame *f, tboxes *t) {
    t->n = 0, t->W = f->W, t->H = f->H;
    if (c->title) box_take(t, text_box(f->L, 14, 's', 13, c->title, 0));
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

static int axes(rt_buf *o, const plot_chart *c, const frame *f, int with_x_ticks, tboxes *t) {
    double ys = nice_step(f->y1 - f->y0, 5);
    char num[32];
    for (double v = ceil(f->y0 / ys) * ys; v <= f->y1 + ys * 1e-9; v += ys) {
        fmt_num(num, sizeof num, fabs(v) < ys * 1e-9 ? 0 : v);
        box_take(t, text_box(f->L - 4, py(f, v) + 4, 'e', 11, num, 0));
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
            box_take(t, text_box(px(f, v), f->H - f->B + 16, 'm', 11, num, 0));
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
    if (c->xlabel) box_take(t, text_box((f->L + f->W - f->R) / 2, f->H - 4, 'm', 11, c->xlabel, 0));
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
        if (c->hline_label && hline_label(o, t, f, py(f, c->hline), c->hline_label, "#b00")) return -1;
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
        if (h->label && hline_label(o, t, f, py(f, h->y), h->label, col)) return -1;
    }
    return 0;
}

/* The swatch rows under the title, wrapped to the chart's width: their count; drawn (and their
 * boxes taken) when o is not NULL. */
static size_t swatches(rt_buf *o, tboxes *t, const frame *f, const plot_series *s, size_t n, int *err) {
    double x = f->L;
    size_t row = 0;
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i].no_swatch) continue;
        double w = 13 + PLOT_EM_W * 11 * (double)text_chars(s[i].name);
        if (any && x + w > f->W - 4) x = f->L, row++;
        any = 1;
        double y = 22 + 14 * (double)row;
        if (o) {
            box_take(t, (tbox){x, y, x + w, y + 11});
            if (rt_buf_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                                 "<text x=\"%.1f\" y=\"%.1f\">",
                              x, y, s[i].color ? s[i].color : plot_colour(i), x + 13, y + 9) ||
                plot_escape(o, s[i].name) || rt_buf_printf(o, "</text>"))
                *err = 1;
        }
        x += w + 7;
    }
    return any ? row + 1 : 0;
}

/* A series' marker: the vertical line with its tooltip, and (charts of at most two series) its
 * name beside it where it fits. */
static int marker(rt_buf *o, tboxes *t, const plot_chart *c, const frame *f, const plot_series *q, const char *col,
                  size_t n) {
    double x = px(f, q->mark_x);
    const char *name = q->mark_label ? q->mark_label : c->mark_label ? c->mark_label : "suspended";
    if (rt_buf_printf(o,
                      "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                      "stroke-width=\"2\"><title>",
                      x, x, f->T, f->H - f->B, col) ||
        plot_escape(o, q->mark_title ? q->mark_title : name) || rt_buf_printf(o, "</title></line>"))
        return -1;
    if (n > 2) return 0;
    double xs[6] = {x + 3, x + 3, x + 3, x - 3, x - 3, x - 3};
    double ys[6] = {f->T + 10, f->T + 22, f->T + 34, f->T + 10, f->T + 22, f->T + 34};
    const char an[6] = {'s', 's', 's', 'e', 'e', 'e'};
    int k = place_label(t, 6, xs, ys, an, 10, name, 2);
    if (k < 0) return 0;
    return rt_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" fill=\"%s\" font-size=\"10\">&#x2715; ",
                         xs[k], ys[k], anchor_name(an[k]), col) ||
                   plot_escape(o, name) || rt_buf_printf(o, "</text>")
               ? -1
               : 0;
}

/* Series q's error bars: a vertical line y +- err at each point, with short caps. */
static int error_bars(rt_buf *o, const frame *f, const plot_series *q, const char *col) {
    for (size_t k = 0; k < q->n; k++) {
        double e = q->err[k];
        if (!isfinite(q->x[k]) || !isfinite(q->y[k]) || !isfinite(e) || e <= 0) continue;
        double x = px(f, q->x[k]), lo = py(f, fmax(q->y[k] - e, f->y0)), hi = py(f, fmin(q->y[k] + e, f->y1));
        if (rt_buf_printf(o,
                          "<path d=\"M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fH%.1f\" stroke=\"%s\" "
                          "stroke-width=\"1.2\" fill=\"none\"/>",
                          x, lo, hi, x - 4, lo, x + 4, x - 4, hi, x + 4, col))
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
            if (s[i].err && isfinite(s[i].err[k]) && s[i].err[k] > 0)
                f.y0 = fmin(f.y0, s[i].y[k] - s[i].err[k]), f.y1 = fmax(f.y1, s[i].y[k] + s[i].err[k]);
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
    int sw = n_sw > 1 && n_sw <= 12, err = 0;
    tboxes *t = rt_malloc(sizeof *t, "chart labels");
    if (!t) return -1;
    if (sw) f.T += 14 * (double)swatches(NULL, NULL, &f, s, n, &err); /* room for the swatch rows */
    if (svg_open(o, c, &f, t) || (sw && (swatches(o, t, &f, s, n, &err), err)) || axes(o, c, &f, 1, t)) goto fail;
    for (size_t i = 0; i < n; i++) {
        const plot_series *q = &s[i];
        const char *col = q->color ? q->color : plot_colour(i);
        if (q->n) {
            char op[48] = "";
            if (q->opacity > 0 && q->opacity < 1) snprintf(op, sizeof op, " stroke-opacity=\"%.2f\"", q->opacity);
            if (rt_buf_printf(o, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\"%s%s points=\"", col,
                              q->stroke > 0 ? q->stroke : 1.5, q->dashed ? " stroke-dasharray=\"4,3\"" : "", op))
                goto fail;
            for (size_t k = 0; k < q->n; k++) {
                if (!isfinite(q->x[k]) || !isfinite(q->y[k])) continue;
                double yy = fmin(fmax(q->y[k], f.y0), f.y1);
                if (rt_buf_printf(o, "%.1f,%.1f ", px(&f, q->x[k]), py(&f, yy))) goto fail;
            }
            if (rt_buf_printf(o, "\"><title>")) goto fail;
            if (plot_escape(o, q->name) || rt_buf_printf(o, "</title></polyline>")) goto fail;
            if (q->err && error_bars(o, &f, q, col)) goto fail;
        }
        if (isfinite(q->mark_x) && q->mark_x >= f.x0 && q->mark_x <= f.x1 && marker(o, t, c, &f, q, col, n)) goto fail;
    }
    free(t);
    return rt_buf_printf(o, "</svg>");
fail:
    free(t);
    return -1;
}

/* A bar's label, right-aligned at x; cut to max_chars characters (with "…") when longer, the
 * whole label then in a tooltip. */
static int bar_label(rt_buf *o, const char *label, double x, double y, size_t max_chars) {
    size_t nc = text_chars(label);
    if (rt_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", x, y)) return -1;
    if (nc <= max_chars || max_chars < 2) return plot_escape(o, label) || rt_buf_printf(o, "</text>") ? -1 : 0;
    size_t keep = 0, chars = 0; /* bytes of the first max_chars - 1 characters */
    while (label[keep] && chars < max_chars - 1) {
        keep++;
        while (((unsigned char)label[keep] & 0xC0) == 0x80) keep++;
        chars++;
    }
    char *cut = rt_malloc(keep + 1, "bar label");
    if (!cut) return -1;
    memcpy(cut, label, keep);
    cut[keep] = 0;
    int rc = rt_buf_printf(o, "<title>") || plot_escape(o, label) || rt_buf_printf(o, "</title>") ||
             plot_escape(o, cut) || rt_buf_printf(o, "\xe2\x80\xa6</text>");
    free(cut);
    return rc ? -1 : 0;
}

int plot_bars(rt_buf *o, const plot_chart *c, const plot_bar *b, size_t n) {
    double row = 22;
    /* margins from the texts: the longest label on the left (at most a third of the width;
     * longer ones are cut with their full text in a tooltip), the longest value and note on
     * the right, a line under the title for the reference line's label */
    double W = c->width > 0 ? c->width : 640, label_w = 0, value_w = 0;
    char num[32];
    for (size_t i = 0; i < n; i++) {
        label_w = fmax(label_w, PLOT_EM_W * 11 * (double)text_chars(b[i].label));
        plot_number(num, sizeof num, b[i].value);
        value_w = fmax(value_w, PLOT_EM_W * 11 * (double)(text_chars(num) + (b[i].note ? 1 + text_chars(b[i].note) : 0)));
    }
    frame f = {0, 1, 0, 1, fmin(fmax(label_w + 10, 60), W / 3), fmax(value_w + 10, 90), c->hline_label ? 38 : 24, 30,
               W, 0};
    f.H = f.T + f.B + row * (double)(n ? n : 1);
    double lo = 0, hi = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(b[i].value)) lo = fmin(lo, b[i].value), hi = fmax(hi, b[i].value);
    if (isfinite(c->hline)) lo = fmin(lo, c->hline), hi = fmax(hi, c->hline);
    if (isfinite(c->xmin)) lo = c->xmin;
    if (isfinite(c->xmax)) hi = c->xmax;
    if (hi <= lo) hi = lo + 1;
    f.x0 = lo, f.x1 = hi + (hi - lo) * 0.02;
    tboxes t;
    if (svg_open(o, c, &f, &t)) return -1;
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
        if (bar_label(o, b[i].label, f.L - 6, y + 12, (size_t)((f.L - 10) / (PLOT_EM_W * 11)))) return -1;
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
        /* on the line under the title: right of the line, or left of it near the right edge */
        double lw = PLOT_EM_W * 11 * (double)text_chars(c->hline_label), lx = px(&f, c->hline) + 3;
        int left = lx + lw > f.W - 2;
        if (c->hline_label && (rt_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" fill=\"#b00\">",
                                             left ? lx - 6 : lx, f.T - 6, left ? "end" : "start") ||
                               plot_escape(o, c->hline_label) || rt_buf_printf(o, "</text>")))
            return -1;
    }
    if (c->xlabel && (rt_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", (f.L + f.W - f.R) / 2,
                                    f.H - 4) ||
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
    const double pw = 260, ph = 240, ml = 50, mt = 62, gap = 30, label_h = 110;
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
        rc = rt_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">", x0, y0 - 20) || /* above the values */
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
                /* the value above its bar where it fits beside its neighbours' values, else in the tooltip */
                int fits = PLOT_EM_W * 10 * (double)text_chars(num) <= bw - 2;
                rc = rt_buf_printf(o,
                                   "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                                   "<title>%s</title></rect>",
                                   bx, fmin(yv, yz), bw * 0.8, fabs(yz - yv), plot_colour(r), num) ||
                     (fits && rt_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"10\">%s</text>",
                                            bx + bw * 0.4, fmin(yv, yz) - 3, num)) ||
                     rt_buf_printf(o, "\n");
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
