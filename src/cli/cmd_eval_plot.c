/*
 * cmd_eval_plot.c — `retort eval-plot`: SVG charts for experiment write-ups.
 *   retort eval-plot --out cmp.svg [--metrics loss,kl,top1_agreement] A.json B.json ...
 *       one panel per metric, one bar per `retort eval --json-out` result (label: its
 *       "label" field);
 *   retort eval-plot --curves --key val_loss --out curves.svg run1.log.jsonl run2.log.jsonl ...
 *       the key against "step" from trainer logs (rows without the key are skipped); --x K
 *       takes the x values from another key, --hlines "name=v,..." adds reference lines
 *       (the antidistillation trade-off: accuracy against lambda, controls as lines).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../distill/distill.h"
#include "../plot/plot.h"
#include "cli.h"

#define MAX_FILES 32
#define MAX_METRICS 8

static char *base_label(const char *path) {
    const char *s = strrchr(path, '/');
    s = s ? s + 1 : path;
    char *o = rt_strdup(s);
    if (!o) return NULL;
    char *dot = strstr(o, ".log.jsonl");
    if (!dot) dot = strstr(o, ".json");
    if (dot) *dot = 0;
    return o;
}

/* "name=v,name=v" (at most PLOT_MAX_HLINES + 1) into the chart's reference lines; spec is
 * modified (the names point into it). */
static int parse_hlines(char *spec, plot_chart *c) {
    size_t k = 0;
    for (char *tok = strtok(spec, ","); tok; tok = strtok(NULL, ","), k++) {
        char *eq = strrchr(tok, '='), *end = NULL;
        double v = eq ? strtod(eq + 1, &end) : NAN;
        if (!eq || end == eq + 1 || *end || !isfinite(v))
            return RT_FAIL("--hlines: '%s' is not name=number", tok);
        if (k > PLOT_MAX_HLINES) return RT_FAIL("--hlines: at most %d lines", PLOT_MAX_HLINES + 1);
        *eq = 0;
        if (k == 0) {
            c->hline = v;
            c->hline_label = tok;
        } else {
            c->more[k - 1] = (plot_hline){.y = v, .label = tok, .color = plot_colour(k + 3)};
            c->n_more = k;
        }
    }
    return 0;
}

/* Series f: ns[f] points (xs[f], ys[f]), one chart written to path. */
static int write_curves(const char *path, const char *title, const char *xkey, const char *key, char *hlines,
                        size_t n, const char *const *labels, double *const *xs, double *const *ys,
                        double *const *es, const size_t *ns) {
    plot_series s[MAX_FILES];
    int any = 0;
    for (size_t f = 0; f < n; f++)
        for (size_t i = 0; i < ns[f]; i++) any |= isfinite(xs[f][i]) && isfinite(ys[f][i]);
    if (!any) return RT_FAIL("no finite points to plot");
    for (size_t f = 0; f < n; f++)
        s[f] = (plot_series){.name = labels[f], .x = xs[f], .y = ys[f], .err = es[f], .n = ns[f], .mark_x = NAN,
                             .stroke = 2};
    plot_chart c = plot_chart_defaults();
    c.title = title, c.xlabel = xkey, c.ylabel = key, c.width = 760, c.height = 460;
    if (hlines && parse_hlines(hlines, &c)) return -1;
    rt_buf b = {0};
    int rc = plot_lines(&b, &c, s, n) || plot_write(path, &b) ? -1 : 0;
    rt_buf_free(&b);
    return rc;
}

int cmd_eval_plot(int argc, char **argv) {
    const char *out = NULL, *title = NULL, *metrics = "loss,kl,top1_agreement", *key = "val_loss", *labels = NULL;
    const char *xkey = "step", *hlines = NULL, *err_key = NULL;
    int curves = 0;
    const char *files[MAX_FILES];
    size_t nf = 0;
    cli_opt opts[] = {
        {"--out", CLI_STR, &out, "FILE.svg", 1, 0},
        {"--title", CLI_STR, &title, "TEXT: chart title", 0, 0},
        {"--metrics", CLI_STR, &metrics, "bars: comma-separated keys of the eval JSON (default loss,kl,top1_agreement)", 0, 0},
        {"--curves", CLI_FLAG, &curves, "plot training logs (JSONL) instead of eval results", 0, 0},
        {"--key", CLI_STR, &key, "curves: the log key to plot against step (default val_loss)", 0, 0},
        {"--labels", CLI_STR, &labels, "comma-separated names for the inputs (default: from the files)", 0, 0},
        {"--x", CLI_STR, &xkey, "curves: the key of the x values (default step)", 0, 0},
        {"--hlines", CLI_STR, &hlines, "curves: reference lines \"name=value,...\" (at most 5)", 0, 0},
        {"--err-key", CLI_STR, &err_key, "curves: the key of each point's error bar half-length (e.g. an sd)", 0, 0},
    };
    cli_cmd_info info = {"eval-plot",
                         "retort eval-plot --out F.svg [--metrics a,b] R1.json R2.json ... | --curves --key K LOG1.jsonl ...",
                         "Draws the results of retort eval --json-out (bar panels, one per metric) or trainer logs\n"
                         "(--curves: a key such as val_loss or kl against step) as an SVG file."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, files, MAX_FILES, &nf);
    if (prc) return prc == 1 ? 0 : 2;
    if (nf == 0) {
        fprintf(stderr, "retort eval-plot: error: give the result files to plot (see --help)\n");
        return 2;
    }
    char *lab[MAX_FILES] = {0};
    char *lab_copy = labels ? rt_strdup(labels) : NULL;
    size_t nl = 0;
    if (lab_copy)
        for (char *tok = strtok(lab_copy, ","); tok && nl < MAX_FILES; tok = strtok(NULL, ",")) lab[nl++] = tok;
    char *own_lab[MAX_FILES] = {0};
    double *xs[MAX_FILES] = {0}, *ys[MAX_FILES] = {0}, *es[MAX_FILES] = {0};
    size_t ns[MAX_FILES] = {0};
    double *vals = NULL;
    int status = 1;
    if (curves) {
        for (size_t f = 0; f < nf; f++) {
            char *data;
            size_t len;
            if (rt_read_file(files[f], &data, &len)) goto done;
            size_t cap = 0;
            for (char *line = data; line && *line;) {
                char *nlp = strchr(line, '\n');
                if (nlp) *nlp = 0;
                json_t *o = json_loads(line, 0, NULL);
                json_t *st = o ? json_object_get(o, xkey) : NULL, *v = o ? json_object_get(o, key) : NULL;
                if (json_is_number(st) && json_is_number(v)) {
                    if (ns[f] == cap) {
                        cap = cap ? 2 * cap : 64;
                        double *a = rt_realloc(xs[f], cap * sizeof(double), "curve"),
                               *b = a ? rt_realloc(ys[f], cap * sizeof(double), "curve") : NULL,
                               *e = b && err_key ? rt_realloc(es[f], cap * sizeof(double), "curve") : NULL;
                        if (a) xs[f] = a;
                        if (b) ys[f] = b;
                        if (e) es[f] = e;
                        if (!a || !b || (err_key && !e)) {
                            json_decref(o);
                            free(data);
                            goto done;
                        }
                    }
                    xs[f][ns[f]] = json_number_value(st);
                    ys[f][ns[f]] = json_number_value(v);
                    if (err_key) {
                        json_t *ev = json_object_get(o, err_key);
                        es[f][ns[f]] = json_is_number(ev) ? json_number_value(ev) : NAN;
                    }
                    ns[f]++;
                }
                json_decref(o);
                line = nlp ? nlp + 1 : NULL;
            }
            free(data);
            if (ns[f] == 0) rt_warn("%s: no rows with \"%s\"", files[f], key);
            if (f >= nl && !(own_lab[f] = base_label(files[f]))) goto done;
        }
        const char *ll[MAX_FILES];
        for (size_t f = 0; f < nf; f++) ll[f] = f < nl ? lab[f] : own_lab[f];
        char *hl = hlines ? rt_strdup(hlines) : NULL;
        int rc = (hlines && !hl) || write_curves(out, title ? title : key, xkey, key, hl, nf, ll, xs, ys, es, ns);
        free(hl);
        if (rc) goto done;
    } else {
        char *mcopy = rt_strdup(metrics);
        const char *mn[MAX_METRICS];
        size_t nm = 0;
        if (!mcopy) goto done;
        for (char *tok = strtok(mcopy, ","); tok && nm < MAX_METRICS; tok = strtok(NULL, ",")) mn[nm++] = tok;
        vals = rt_malloc_array(nm * nf, sizeof(double), "plot values");
        if (!vals || nm == 0) {
            if (nm == 0) RT_FAIL("--metrics is empty");
            free(mcopy);
            goto done;
        }
        for (size_t f = 0; f < nf; f++) {
            json_error_t je;
            json_t *o = json_load_file(files[f], 0, &je);
            if (!o || !json_is_object(o)) {
                RT_FAIL("%s:%d: not a JSON object from retort eval (%s)", files[f], je.line, o ? "not an object" : je.text);
                json_decref(o);
                free(mcopy);
                goto done;
            }
            for (size_t m = 0; m < nm; m++) {
                json_t *v = json_object_get(o, mn[m]);
                vals[m * nf + f] = json_is_number(v) ? json_number_value(v) : NAN;
            }
            json_t *l = json_object_get(o, "label");
            if (f >= nl) own_lab[f] = json_is_string(l) ? rt_strdup(json_string_value(l)) : base_label(files[f]);
            json_decref(o);
            if (f >= nl && !own_lab[f]) {
                free(mcopy);
                goto done;
            }
        }
        const char *ll[MAX_FILES];
        for (size_t f = 0; f < nf; f++) ll[f] = f < nl ? lab[f] : own_lab[f];
        rt_buf svg = {0};
        int rc = plot_bar_panels(&svg, title ? title : "evaluation", nf, ll, nm, mn, vals) || plot_write(out, &svg);
        rt_buf_free(&svg);
        free(mcopy);
        if (rc) goto done;
    }
    rt_info("wrote %s", out);
    status = 0;
done:
    if (status) cli_fail("eval-plot");
    for (size_t f = 0; f < MAX_FILES; f++) {
        free(own_lab[f]);
        free(xs[f]);
        free(ys[f]);
        free(es[f]);
    }
    free(lab_copy);
    free(vals);
    return status;
}
