/*
 * report.h — the evidence report: one self-contained HTML file (inline SVG plots, no
 * scripts fetched, no network) built from a gateway database, plus the evidence tables that
 * tie the ledger to what happened next (harvest files, models trained on them, radioactivity
 * tests). `retort demo` fills those tables; a user can fill them by hand with `retort report
 * add-*`. What the ledger, the guard's actions and the simulator's labels already hold is read
 * from their own tables, never copied.
 *
 * Not here: the detectors (src/guard), the tests themselves (src/mark), training (src/train).
 */
#ifndef RETORT_REPORT_H
#define RETORT_REPORT_H

#include <stddef.h>
#include <stdint.h>


#include "../base/base.h"
#include "../gateway/gateway.h"

/* Open (creating if needed) a gateway database's evidence tables: report_meta(key, value),
 * report_harvests, report_models, report_tests, report_figures. The database need not be a gateway
 * database yet (the report then says what is missing). */
int report_db_open(gw_conn **out, const char *path);
void report_db_close(gw_conn *db);

/* report_meta: free-form facts about the run (title, corpus, command, gpu rate …). */
int report_meta_set(gw_conn *db, const char *key, const char *value);

/* A harvest file (retort harvest / simulate JSONL) and what links it to the ledger: every
 * completion is hashed the way the server hashes its outputs (gw_hash_hex) and looked up in
 * the usage table of ledger_db (which may be another database: the unprotected run's).
 * Records lines, completion tokens (usage.completion_tokens of each line), the file's
 * SHA-256, how many completions were found in the ledger and the accounts they were served
 * to. guard is "on" or "off" (which server the harvest came from). */
typedef struct {
    const char *name;      /* unique, e.g. "on/bulk-0" */
    const char *guard;     /* "on" | "off" */
    const char *strategy;  /* the simulator's label, or "" */
    const char *path;
    const char *ledger_db; /* database whose usage rows the completions are matched against */
} report_harvest_spec;
typedef struct {
    size_t lines, matched;
    int64_t completion_tokens;
    char sha256[65];
    char *accounts; /* comma-separated names the matched rows belong to (malloc'd, may be "") */
} report_harvest_stats;
int report_harvest_scan(const report_harvest_spec *h, report_harvest_stats *st);
void report_harvest_stats_free(report_harvest_stats *st);
int report_harvest_put(gw_conn *db, const report_harvest_spec *h, report_harvest_stats *st_out /* may be NULL */);

/* A model: the teacher, or a student trained on harvests (trained_on: comma-separated harvest
 * names, or a file). Training cost comes from the trainer's JSONL log (last line: tokens,
 * flops, elapsed); quality from `retort eval --json-out` output (loss, kl, top1_agreement).
 * Either file may be NULL; the model file's SHA-256 is computed. */
typedef struct {
    const char *name;
    const char *role;       /* "teacher" | "student" | "control" */
    const char *guard;      /* "on" | "off" | "" */
    const char *path;       /* the GGUF */
    const char *trained_on; /* harvest names or a description */
    const char *train_log;  /* trainer JSONL (may be NULL) */
    const char *eval_json;  /* retort eval output (may be NULL) */
    const char *command;    /* how it was made */
} report_model_spec;
int report_model_put(gw_conn *db, const report_model_spec *m);

/* A radioactivity test of a model: the JSON object `retort radioactivity` prints. The model
 * must have been recorded (report_model_put) under model_name: an unknown name is refused
 * (RT_ERR_NOT_FOUND) with the names that are there. */
int report_test_put(gw_conn *db, const char *model_name, const char *result_json, const char *command);

/* A figure: an SVG image (a chart from `retort eval-plot`, an experiment's plot) shown in the
 * report under its name and caption, with the file's SHA-256. The file's bytes are stored
 * (base64) so the report stays self-contained; it is drawn through <img src="data:...">, so a
 * script inside the SVG never runs and nothing is fetched. Refused, naming the file: an empty
 * file, one over REPORT_FIGURE_MAX bytes, one with a NUL byte, or one that does not open with
 * <svg (after an optional BOM, white space and XML declaration). The same name replaces. */
#define REPORT_FIGURE_MAX (4u << 20)
int report_figure_put(gw_conn *db, const char *name, const char *path, const char *caption, const char *command);

typedef struct {
    const char *db_path;
    const char *out_path;
    double gpu_rate_usd;   /* dollars per GPU-hour (default 2.0, DeepSeek-V3's H800 rate) */
    double gpu_flops;      /* sustained training FLOP/s of one GPU (default 3.3e14; see report.c) */
    const char *title;     /* NULL: from report_meta or a default */
} report_options;
void report_options_defaults(report_options *o);

/* Write the HTML report atomically. */
int report_write(const report_options *o);

/* The five summary lines (accounts suspended, tokens harvested with / without the guard,
 * student quality both ways, radioactivity p-values), each ending in '\n', in a malloc'd
 * string. Also in the report. */
int report_summary(gw_conn *db, char **out);

/* HTML-escape s into out. */
int report_html_escape(rt_buf *out, const char *s);

#endif
