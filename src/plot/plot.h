/*
 * plot.h — the one SVG writer: every chart retort draws (the evidence report's inline
 * charts, `retort guard plot`'s risk timeline, `retort eval-plot`'s experiment charts) is
 * SVG text built here, with one palette, one colour per attacker strategy, one escaper and
 * one number format for axis labels ("22.5k", "1.2M", never "2.249e+04").
 *
 * Charts: line charts (series of (x, y), an optional vertical marker per series, horizontal
 * reference lines), horizontal bar charts (one bar per label, value printed), and bar panels
 * (one panel per metric, one vertical bar per run). Axes get "nice" 1-2-5 ticks. NAN values
 * are left out. Output is appended to an rt_buf (inline in HTML) or written to a file
 * atomically (plot_write).
 *
 * Not a plotting library: no log axes (callers plot transformed values and say so in the
 * axis label), no legend beyond a row of swatches.
 */
#ifndef RETORT_PLOT_H
#define RETORT_PLOT_H

#include <stddef.h>

#include "../base/base.h"

/* ---------------------------------------------------------------- style */

/* Colour i of the palette (cycles). */
const char *plot_colour(size_t i);
/* The colour of an attacker strategy ("bulk", "logprob", ...; unknown names get the
 * palette's last colour); "benign" is grey. Every chart uses these. */
const char *plot_strategy_colour(const char *strategy);
/* A readable axis / value label: 0, 0.25, 3.5, 120, 22.5k, 1.2M, 3G; tiny values 2e-05. */
void plot_number(char *buf, size_t cap, double v);
/* XML/HTML-escape s (NULL: nothing) into out. */
int plot_escape(rt_buf *out, const char *s);

/* ---------------------------------------------------------------- charts */

typedef struct {
    const char *name;
    const char *color;  /* CSS colour; NULL = palette colour of the series' index */
    const double *x, *y;
    size_t n;
    double mark_x;      /* vertical marker (e.g. a suspension) or NAN */
    const char *mark_title; /* its tooltip; NULL = its label */
    const char *mark_label; /* text beside it; NULL = the chart's mark_label */
    int dashed;
    double stroke;      /* line width; 0 = 1.5 */
    double opacity;     /* 0 = 1 */
    int no_swatch;      /* leave it out of the swatch row */
    const double *err;  /* (n) plot_lines: an error bar y +- err[k] at each point (e.g. one sd);
                         * NULL, or a non-finite / non-positive entry: none */
} plot_series;

typedef struct {
    double y;           /* NAN: none */
    const char *label;  /* may be NULL */
    const char *color;  /* NULL = "#b00" */
} plot_hline;

#define PLOT_MAX_HLINES 4
typedef struct {
    const char *title, *xlabel, *ylabel;
    double width, height;          /* 0: 640 x 260 */
    double hline;                  /* horizontal reference line or NAN */
    const char *hline_label;
    plot_hline more[PLOT_MAX_HLINES]; /* further reference lines: more[0..n_more) */
    size_t n_more;
    double xmin, xmax, ymin, ymax; /* NAN: from the data */
    const char *mark_label;        /* text beside markers when they cannot collide (default "suspended") */
} plot_chart;

/* A plot_chart with every range and line unset (NAN). */
plot_chart plot_chart_defaults(void);

int plot_lines(rt_buf *out, const plot_chart *c, const plot_series *s, size_t n);

typedef struct {
    const char *label;
    double value;       /* NAN: "not measured" */
    const char *color;
    const char *note;   /* printed after the value, may be NULL */
} plot_bar;
int plot_bars(rt_buf *out, const plot_chart *c, const plot_bar *b, size_t n);

/* One panel per metric, one bar per run: values (n_metrics, n_runs), NAN = no bar. */
int plot_bar_panels(rt_buf *out, const char *title, size_t n_runs, const char *const *run_labels, size_t n_metrics,
                    const char *const *metric_names, const double *values);

/* Write svg (a whole chart) to path atomically. */
int plot_write(const char *path, const rt_buf *svg);

#endif /* RETORT_PLOT_H */
