/*
 * demo_evidence.c — `retort demo`'s last stage (contract in demo.h): the evidence rows (each
 * harvest, model and radioactivity test, the steps and the settings) recorded in the protected
 * day's database through the report room, then the report and its five-line summary. Not the
 * report itself (src/report) nor the steps that made the files (demo_stages.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../report/report.h"
#include "demo.h"

/* Each harvest file as a report_harvests row (and a step: `retort report add-harvest`);
 * names[pass] gets the comma-separated names of the guard-on (0) and guard-off (1) harvests. */
static int put_harvests(demo *d, gw_conn *db, rt_buf names[2]) {
    const demo_paths *P = &d->P;
    char buf[256], what[320];
    for (int pass = 0; pass < 2; pass++) {
        const sim_harvest_file *h = pass ? d->hoff : d->hon;
        size_t n = pass ? d->noff : d->non;
        if (rt_buf_append(&names[pass], "", 0)) return -1;
        for (size_t i = 0; i < n; i++) {
            const char *base = strrchr(h[i].path, '/');
            base = base ? base + 1 : h[i].path;
            snprintf(buf, sizeof buf, "guard-%s/%.*s", pass ? "off" : "on", (int)(strcspn(base, ".")), base);
            report_harvest_spec hs = {.name = buf, .guard = pass ? "off" : "on", .strategy = h[i].kind,
                                      .path = h[i].path, .ledger_db = pass ? P->db_off : P->db_on};
            snprintf(what, sizeof what, "evidence row: report_harvests '%s'", buf);
            if (report_harvest_put(db, &hs, NULL) ||
                demo_record_write(d,
                                  A("report", "add-harvest", "--db", P->db_on, "--name", buf, "--file", h[i].path,
                                    "--guard", (char *)hs.guard, "--strategy", h[i].kind, "--ledger",
                                    (char *)hs.ledger_db),
                                  NULL, P->db_on, what, h[i].path) ||
                rt_buf_printf(&names[pass], "%s%s", names[pass].len ? "," : "", buf))
                return -1;
        }
    }
    return 0;
}

/* A model row (and its step: `retort report add-model`). */
static int put_model(demo *d, gw_conn *db, const report_model_spec *m) {
    char what[320];
    snprintf(what, sizeof what, "evidence row: report_models '%s'", m->name);
    char *argv[24] = {NULL, "report", "add-model", "--db", d->P.db_on, "--name", (char *)m->name, "--model",
                      (char *)m->path, "--role", (char *)m->role, "--trained-on", (char *)m->trained_on};
    size_t n = 13;
    if (*m->guard) argv[n++] = "--guard", argv[n++] = (char *)m->guard;
    if (m->train_log) argv[n++] = "--train-log", argv[n++] = (char *)m->train_log;
    if (m->eval_json) argv[n++] = "--eval", argv[n++] = (char *)m->eval_json;
    return report_model_put(db, m) || demo_record_write(d, argv, NULL, d->P.db_on, what, m->path) ? -1 : 0;
}

/* The six models: the teacher, the students of both days, the clean control and the
 * antidistillation pair; then each radioactivity result (closed, open) of the first three
 * students (and its step: `retort report add-test`). */
static int put_models_tests(demo *d, gw_conn *db, rt_buf names[2]) {
    const demo_paths *P = &d->P;
    static const char *const tags[DEMO_MODELS] = {"teacher", "guard-on", "guard-off", "clean", "antidistill",
                                                  "regenerated"};
    const char *paths[DEMO_MODELS] = {P->teacher, P->m_on, P->m_off, P->m_clean, P->m_adist, P->m_regen};
    char logs[DEMO_MODELS][4200], evs[DEMO_MODELS][4200], trained_ad[256];
    for (int i = 0; i < DEMO_MODELS; i++) {
        snprintf(logs[i], sizeof logs[i], "%s.log.jsonl", paths[i]);
        snprintf(evs[i], sizeof evs[i], "%s/eval-%s.json", P->stud, tags[i]);
    }
    snprintf(trained_ad, sizeof trained_ad,
             "the unguarded harvest's prompts answered again with antidistillation sampling (lambda %s)",
             d->p->adist_lambda);
    report_model_spec ms[DEMO_MODELS] = {
        {"teacher", "teacher", "", P->teacher, "the corpus", rt_file_exists(logs[0]) ? logs[0] : NULL, evs[0], NULL},
        {"student (guard on)", "student", "on", P->m_on, names[0].data, logs[1], evs[1], NULL},
        {"student (guard off)", "student", "off", P->m_off, names[1].data, logs[2], evs[2], NULL},
        {"clean control student", "control", "", P->m_clean, "unwatermarked corpus text", logs[3], evs[3], NULL},
        {"student (guard off, antidistilled)", "student", "off-antidistill", P->m_adist, trained_ad, logs[4], evs[4],
         NULL},
        {"student (guard off, regenerated plainly)", "student", "off-regenerated", P->m_regen,
         "the unguarded harvest's prompts answered again by plain sampling (the antidistilled student's control)",
         logs[5], evs[5], NULL},
    };
    for (int i = 0; i < DEMO_MODELS; i++)
        if (put_model(d, db, &ms[i])) return -1;
    char what[320];
    for (int i = 0; i < DEMO_TESTS; i++) {
        if (!d->radio[i]) continue;
        const char *model = ms[i % 3 + 1].name;
        snprintf(what, sizeof what, "evidence row: report_tests of '%s'", model);
        if (report_test_put(db, model, d->radio[i], NULL) ||
            demo_record_write(d, A("report", "add-test", "--db", P->db_on, "--model", (char *)model, "--result",
                                   d->radio_path[i]),
                              NULL, P->db_on, what, d->radio_path[i]))
            return -1;
    }
    return 0;
}

/* The settings a reader needs, and the steps in order (the report's section 7). */
static int put_meta(demo *d, gw_conn *db) {
    const demo_paths *P = &d->P;
    char key[64], buf[4300];
    snprintf(buf, sizeof buf, "retort demo%s%s --dir %s", d->quick ? " --quick" : "", d->gateway ? " --gateway" : "",
             d->dir);
    if (report_meta_set(db, "title", "Evidence report: the retort demo — a served model, its harvesters, and "
                                     "the students they built") ||
        report_meta_set(db, "reproduce with", buf) || report_meta_set(db, "corpus", d->corpus) ||
        report_meta_set(db, "preset", d->p->name) || report_meta_set(db, "antidistillation", d->adist_note) ||
        report_meta_set(db, "unprotected run's ledger", P->db_off) ||
        report_meta_set(db, "served by", d->gateway ? "retort gateway (keys, ledger, guard) in front of a plain retort "
                                                      "serve of the teacher (the upstream)"
                                                    : "retort serve (keys, ledger, guard, the teacher)"))
        return -1;
    /* the last two steps: these rows, and the report (written in-process by the caller, listed
     * as the command that does the same) */
    snprintf(key, sizeof key, "step.%03zu to step.%03zu", (size_t)1, d->n_steps + 2);
    snprintf(buf, sizeof buf, "evidence rows: report_meta (title, reproduce with, corpus, preset, antidistillation, "
                              "unprotected run's ledger, served by, %s)", key);
    if (demo_record_write(d, NULL, NULL, P->db_on, buf, "the demo's settings and its steps") ||
        demo_record_step(d, A("report", "--db", P->db_on, "--out", P->report), NULL, NULL))
        return -1;
    const char *s = d->steps.data;
    for (size_t i = 0; i < d->n_steps; i++, s += strlen(s) + 1) {
        snprintf(key, sizeof key, "step.%03zu", i + 1);
        if (report_meta_set(db, key, s)) return -1;
    }
    return 0;
}

static int record_evidence(demo *d) {
    gw_conn *db = NULL;
    if (report_db_open(&db, d->P.db_on)) return -1;
    rt_buf names[2] = {{0}, {0}};
    int rc = put_harvests(d, db, names) || put_models_tests(d, db, names) || put_meta(d, db) ? -1 : 0;
    rt_buf_free(&names[0]), rt_buf_free(&names[1]);
    report_db_close(db);
    return rc;
}

int demo_stage_report(demo *d) {
    const demo_paths *P = &d->P;
    if (record_evidence(d)) return -1;
    report_options ro;
    report_options_defaults(&ro);
    ro.db_path = P->db_on, ro.out_path = P->report;
    if (report_write(&ro)) return -1;
    gw_conn *db = NULL;
    char *summary = NULL;
    if (report_db_open(&db, P->db_on)) return -1;
    int e = report_summary(db, &summary);
    report_db_close(db);
    if (e) return -1;
    char took[32];
    rt_fmt_duration(took, sizeof took, rt_now() - d->t_start);
    fflush(stderr);
    printf("report: %s\n%s", P->report, summary);
    fprintf(stderr, "demo finished in %s\n", took);
    fflush(stdout);
    free(summary);
    return 0;
}
