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

static int record_evidence(demo *d) {
    const demo_paths *P = &d->P;
    const sim_harvest_file *hon = d->hon, *hoff = d->hoff;
    size_t non = d->non, noff = d->noff;
    char *const *radio_json = d->radio;
    gw_conn *db = NULL;
    if (report_db_open(&db, P->db_on)) return -1;
    int rc = -1;
    char key[64], buf[256];
    rt_buf on_names = {0}, off_names = {0};
    if (rt_buf_append(&on_names, "", 0) || rt_buf_append(&off_names, "", 0)) goto done;
    for (int pass = 0; pass < 2; pass++) {
        const sim_harvest_file *h = pass ? hoff : hon;
        size_t n = pass ? noff : non;
        for (size_t i = 0; i < n; i++) {
            const char *base = strrchr(h[i].path, '/');
            base = base ? base + 1 : h[i].path;
            snprintf(buf, sizeof buf, "guard-%s/%.*s", pass ? "off" : "on", (int)(strcspn(base, ".")), base);
            report_harvest_spec hs = {.name = buf, .guard = pass ? "off" : "on", .strategy = h[i].kind,
                                      .path = h[i].path, .ledger_db = pass ? P->db_off : P->db_on};
            if (report_harvest_put(db, &hs, NULL)) goto done;
            rt_buf *nb = pass ? &off_names : &on_names;
            if (rt_buf_printf(nb, "%s%s", nb->len ? "," : "", buf)) goto done;
        }
    }
    char log_t[4200], log_on[4200], log_off[4200], log_cl[4200], ev_t[4200], ev_on[4200], ev_off[4200], ev_cl[4200],
        log_ad[4200], ev_ad[4200], trained_ad[256], log_rg[4200], ev_rg[4200];
    snprintf(log_t, sizeof log_t, "%s.log.jsonl", P->teacher);
    snprintf(log_on, sizeof log_on, "%s.log.jsonl", P->m_on);
    snprintf(log_off, sizeof log_off, "%s.log.jsonl", P->m_off);
    snprintf(log_cl, sizeof log_cl, "%s.log.jsonl", P->m_clean);
    snprintf(ev_t, sizeof ev_t, "%s/eval-teacher.json", P->stud);
    snprintf(ev_on, sizeof ev_on, "%s/eval-guard-on.json", P->stud);
    snprintf(ev_off, sizeof ev_off, "%s/eval-guard-off.json", P->stud);
    snprintf(ev_cl, sizeof ev_cl, "%s/eval-clean.json", P->stud);
    snprintf(log_ad, sizeof log_ad, "%s.log.jsonl", P->m_adist);
    snprintf(ev_ad, sizeof ev_ad, "%s/eval-antidistill.json", P->stud);
    snprintf(log_rg, sizeof log_rg, "%s.log.jsonl", P->m_regen);
    snprintf(ev_rg, sizeof ev_rg, "%s/eval-regenerated.json", P->stud);
    snprintf(trained_ad, sizeof trained_ad,
             "the unguarded harvest's prompts answered again with antidistillation sampling (lambda %s)",
             d->p->adist_lambda);
    report_model_spec ms[6] = {
        {"teacher", "teacher", "", P->teacher, "the corpus", rt_file_exists(log_t) ? log_t : NULL, ev_t, NULL},
        {"student (guard on)", "student", "on", P->m_on, on_names.data, log_on, ev_on, NULL},
        {"student (guard off)", "student", "off", P->m_off, off_names.data, log_off, ev_off, NULL},
        {"clean control student", "control", "", P->m_clean, "unwatermarked corpus text", log_cl, ev_cl, NULL},
        {"student (guard off, antidistilled)", "student", "off-antidistill", P->m_adist, trained_ad, log_ad, ev_ad,
         NULL},
        {"student (guard off, regenerated plainly)", "student", "off-regenerated", P->m_regen,
         "the unguarded harvest's prompts answered again by plain sampling (the antidistilled student's control)",
         log_rg, ev_rg, NULL},
    };
    for (int i = 0; i < 6; i++)
        if (report_model_put(db, &ms[i])) goto done;
    for (int i = 0; i < 6; i++)
        if (radio_json[i] && report_test_put(db, ms[i % 3 + 1].name, radio_json[i], NULL)) goto done;
    /* the steps, in order, and what a reader needs to know */
    const char *s = d->steps.data;
    for (size_t i = 0; i < d->n_steps; i++, s += strlen(s) + 1) {
        snprintf(key, sizeof key, "step.%03zu", i + 1);
        if (report_meta_set(db, key, s)) goto done;
    }
    snprintf(buf, sizeof buf, "retort demo%s --dir %s", d->quick ? " --quick" : "", d->dir);
    if (report_meta_set(db, "title", "Evidence report: the retort demo — a served model, its harvesters, and "
                                     "the students they built") ||
        report_meta_set(db, "reproduce with", buf) || report_meta_set(db, "corpus", d->corpus) ||
        report_meta_set(db, "preset", d->p->name) || report_meta_set(db, "antidistillation", d->adist_note) ||
        report_meta_set(db, "unprotected run's ledger", P->db_off))
        goto done;
    rc = 0;
done:
    rt_buf_free(&on_names), rt_buf_free(&off_names);
    report_db_close(db);
    return rc;
}

int demo_stage_report(demo *d) {
    const demo_paths *P = &d->P;
    /* the report is written in-process below; it is listed as the command that does the same */
    if (demo_record_step(d, A("report", "--db", P->db_on, "--out", P->report), NULL) || record_evidence(d)) return -1;
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
