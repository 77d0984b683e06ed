/* test_plot.c — the SVG writer's layout: no two texts of a chart overlap and none leaves the
 * image, on charts built to collide (near-equal reference lines, close markers, many long
 * series names, long bar labels and notes, a reference-line label under a title, many runs in
 * a bar panel). The check reads the SVG text back with its own parser and its own text metric
 * (0.55 em a character, a line 0.75 em up and 0.2 em down from the baseline), independent of
 * the writer's placement code. */
#include "base/base.h"
#include "plot/plot.h"
#include "testlib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double x0, y0, x1, y1;
    char text[96];
} box;

static double attr(const char *tag, const char *end, const char *name, double dflt) {
    char key[32];
    snprintf(key, sizeof key, " %s=\"", name);
    const char *p = strstr(tag, key);
    return p && p < end ? strtod(p + strlen(key), NULL) : dflt;
}

static int has_attr(const char *tag, const char *end, const char *name, const char *value) {
    char key[64];
    snprintf(key, sizeof key, " %s=\"%s\"", name, value);
    const char *p = strstr(tag, key);
    return p && p < end;
}

/* The visible characters of a <text>'s content: tags and their <title> left out, an entity is one. */
static size_t visible_chars(const char *s, const char *end, char *copy, size_t cap) {
    size_t n = 0, k = 0;
    while (s < end) {
        if (!strncmp(s, "<title>", 7)) {
            const char *e = strstr(s, "</title>");
            s = e ? e + 8 : end;
        } else if (*s == '<') {
            while (s < end && *s != '>') s++;
            s++;
        } else if (*s == '&') {
            while (s < end && *s != ';') s++;
            s++, n++;
            if (k + 1 < cap) copy[k++] = '?';
        } else {
            if (((unsigned char)*s & 0xC0) != 0x80) n++;
            if (k + 1 < cap) copy[k++] = *s;
            s++;
        }
    }
    copy[k] = 0;
    return n;
}

/* Every unrotated <text> of svg as a box; returns the count (at most cap). */
static size_t text_boxes(const char *svg, box *b, size_t cap, double *W, double *H) {
    const char *root_end = strchr(svg, '>');
    *W = attr(svg, root_end, "width", 0), *H = attr(svg, root_end, "height", 0);
    double font0 = attr(svg, root_end, "font-size", 11);
    size_t n = 0;
    for (const char *p = svg; (p = strstr(p, "<text")) && n < cap; p++) {
        const char *gt = strchr(p, '>'), *close = strstr(p, "</text>");
        if (!gt || !close) break;
        if (strstr(p, "transform=") && strstr(p, "transform=") < gt) continue;
        double x = attr(p, gt, "x", 0), y = attr(p, gt, "y", 0), fs = attr(p, gt, "font-size", font0);
        box *q = &b[n];
        double w = 0.55 * fs * (double)visible_chars(gt + 1, close, q->text, sizeof q->text);
        double x0 = has_attr(p, gt, "text-anchor", "end") ? x - w : has_attr(p, gt, "text-anchor", "middle") ? x - w / 2 : x;
        q->x0 = x0, q->x1 = x0 + w, q->y0 = y - 0.75 * fs, q->y1 = y + 0.2 * fs;
        n++;
    }
    return n;
}

/* No overlap, nothing outside the image; returns the number of texts. */
static size_t check_layout(const char *what, const char *svg) {
    static box b[512];
    double W, H;
    size_t n = text_boxes(svg, b, 512, &W, &H);
    CHECK(W > 0 && H > 0 && n > 0);
    for (size_t i = 0; i < n; i++) {
        CHECK_MSG(b[i].x0 >= 0 && b[i].x1 <= W && b[i].y0 >= 0 && b[i].y1 <= H, "%s: '%s' [%.0f,%.0f]x[%.0f,%.0f] leaves %gx%g",
                  what, b[i].text, b[i].x0, b[i].x1, b[i].y0, b[i].y1, W, H);
        for (size_t j = 0; j < i; j++)
            CHECK_MSG(!(b[i].x0 < b[j].x1 && b[j].x0 < b[i].x1 && b[i].y0 < b[j].y1 && b[j].y0 < b[i].y1),
                      "%s: '%s' overlaps '%s'", what, b[i].text, b[j].text);
    }
    return n;
}

static size_t count(const char *s, const char *needle) {
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++) n++;
    return n;
}

static void test_lines_crowded(void) {
    /* the guard plot's three thresholds a few pixels apart, eight long series names */
    double x[] = {0, 1, 2, 3}, y[8][4];
    plot_series s[8];
    char names[8][48];
    for (int i = 0; i < 8; i++) {
        for (int k = 0; k < 4; k++) y[i][k] = 0.1 * i + 0.05 * k;
        snprintf(names[i], sizeof names[i], "operation-%d-with-a-long-name", i);
        s[i] = (plot_series){.name = names[i], .x = x, .y = y[i], .n = 4, .mark_x = NAN};
    }
    plot_chart c = plot_chart_defaults();
    c.title = "risk per account", c.xlabel = "hours", c.ylabel = "risk", c.width = 420, c.height = 240;
    c.more[0] = (plot_hline){0.90, "flag", "#bb0"};
    c.more[1] = (plot_hline){0.92, "throttle", "#f90"};
    c.more[2] = (plot_hline){0.94, "suspend", "#c00"};
    c.n_more = 3;
    c.hline = 0.93, c.hline_label = "suspend threshold";
    rt_buf o = {0};
    CHECK_OK(plot_lines(&o, &c, s, 8));
    check_layout("crowded lines", o.data);
    CHECK(count(o.data, "operation-7-with-a-long-name</text>") == 1); /* every swatch drawn, wrapped */
    CHECK(count(o.data, "stroke-dasharray=\"6,4\"") == 3);            /* every line drawn */
    rt_buf_free(&o);
    /* the same lines with room between them: every label shown */
    c.more[0].y = 0.2, c.more[1].y = 0.5, c.more[2].y = 0.8, c.hline = 1.0, c.height = 400;
    CHECK_OK(plot_lines(&o, &c, s, 8));
    check_layout("spread lines", o.data);
    CHECK(strstr(o.data, ">flag<") && strstr(o.data, ">throttle<") && strstr(o.data, ">suspend<") &&
          strstr(o.data, ">suspend threshold<"));
    rt_buf_free(&o);
}

static void test_markers_close(void) {
    double x[] = {0, 10}, y0[] = {0, 1}, y1[] = {0.5, 0.7};
    plot_series s[2] = {{.name = "a", .x = x, .y = y0, .n = 2, .mark_x = 5.0},
                        {.name = "b", .x = x, .y = y1, .n = 2, .mark_x = 5.1}};
    plot_chart c = plot_chart_defaults();
    c.title = "two suspensions a moment apart";
    rt_buf o = {0};
    CHECK_OK(plot_lines(&o, &c, s, 2));
    check_layout("close markers", o.data);
    CHECK(count(o.data, "suspended</text>") >= 1); /* at least one named, both in tooltips */
    CHECK(count(o.data, "<title>suspended</title>") == 2);
    rt_buf_free(&o);
    /* a marker at the right edge: its label goes left of the line */
    s[0].mark_x = 10, s[1].mark_x = NAN;
    CHECK_OK(plot_lines(&o, &c, s, 2));
    check_layout("edge marker", o.data);
    CHECK(count(o.data, "suspended</text>") == 1);
    rt_buf_free(&o);
}

static void test_bars_long(void) {
    plot_bar b[3] = {{"a harvest file with a rather long name that goes on.jsonl", 22490, "#d62728", "(12 accounts, 3 suspended)"},
                     {"short", 5, NULL, NULL},
                     {"not measured", NAN, NULL, NULL}};
    plot_chart c = plot_chart_defaults();
    c.title = "Completions in each harvest file", c.xlabel = "completions", c.width = 640;
    c.hline = 20000, c.hline_label = "p = 1e-3 and some more words";
    rt_buf o = {0};
    CHECK_OK(plot_bars(&o, &c, b, 3));
    check_layout("long bars", o.data);
    CHECK(strstr(o.data, "<title>a harvest file with a rather long name that goes on.jsonl</title>")); /* cut, kept whole in its tooltip */
    CHECK(strstr(o.data, "22.5k (12 accounts, 3 suspended)"));
    rt_buf_free(&o);
}

static void test_panels_many(void) {
    const char *runs[10] = {"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"};
    const char *metrics[2] = {"held-out loss", "top-1 agreement"};
    double v[20];
    for (int i = 0; i < 20; i++) v[i] = 1.23456 + 0.001 * i;
    rt_buf o = {0};
    CHECK_OK(plot_bar_panels(&o, "ten runs", 10, runs, 2, metrics, v));
    check_layout("panels", o.data);
    CHECK(count(o.data, "<title>1.235</title>") >= 1); /* values that do not fit stay in tooltips */
    rt_buf_free(&o);
    double w[4] = {4.5, 4.1, 0.9, 0.8};
    CHECK_OK(plot_bar_panels(&o, "two runs", 2, runs, 2, metrics, w));
    check_layout("panels (2 runs)", o.data);
    CHECK(strstr(o.data, ">4.5</text>") && strstr(o.data, ">0.9</text>")); /* values that fit are written */
    rt_buf_free(&o);
}

static void test_error_bars(void) {
    /* one bar (y 0.5 +- 0.1) and one point without (NAN): the bar's top is the pixel of y 0.6,
     * which is the line's second point, and the bar is symmetric about the line's first point */
    double x[] = {0, 1}, y[] = {0.5, 0.6}, e[] = {0.1, NAN};
    plot_series s = {.name = "student", .x = x, .y = y, .err = e, .n = 2, .mark_x = NAN};
    plot_chart c = plot_chart_defaults();
    c.title = "error bars";
    rt_buf o = {0};
    CHECK_OK(plot_lines(&o, &c, &s, 1));
    check_layout("error bars", o.data);
    CHECK(count(o.data, "stroke-width=\"1.2\"") == 1);
    const char *pl = strstr(o.data, "points=\""), *pa = strstr(o.data, "<path d=\"M");
    double x0, y0, x1, y1, bx, lo, hi;
    CHECK(pl && sscanf(pl, "points=\"%lf,%lf %lf,%lf", &x0, &y0, &x1, &y1) == 4);
    CHECK(pa && sscanf(pa, "<path d=\"M%lf %lfV%lf", &bx, &lo, &hi) == 3);
    if (pl && pa) {
        CHECK(fabs(bx - x0) < 0.11 && fabs(hi - y1) < 0.11);      /* at point 0, up to y = 0.6 */
        CHECK(fabs((lo - y0) - (y0 - hi)) < 0.21 && lo > y0 + 5); /* down as far as up */
    }
    rt_buf_free(&o);
}

TEST_MAIN("plot", TEST_CASE(test_lines_crowded), TEST_CASE(test_markers_close), TEST_CASE(test_bars_long),
          TEST_CASE(test_panels_many), TEST_CASE(test_error_bars))
