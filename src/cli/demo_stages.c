/*
 * demo_stages.c — the steps of `retort demo`'s stages (contract in demo.h): each builds the
 * argv of an ordinary retort command and runs it through demo_proc.c; what the demo writes
 * itself (pooled harvests, the corpus-derived files) is written by the record room. Not the
 * driver (cmd_demo.c) nor the report (demo_evidence.c).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../record/record.h"
#include "demo.h"
#include "demo_scenarios.h"

static int write_text(const char *path, const char *text) {
    return rt_write_file_atomic(path, text, strlen(text));
}

/* Does the stamp file beside a reused artefact hold exactly `content` (what it was made from)? */
static int stamp_matches(const char *stamp, const char *content) {
    char *old = NULL;
    size_t ol = 0;
    int same = rt_file_exists(stamp) && rt_read_file(stamp, &old, &ol) == 0 && !strcmp(old, content);
    free(old);
    rt_err_clear();
    return same;
}

int demo_stage_teacher(demo *d, int *trained) {
    const demo_preset *p = d->p;
    const char *teacher = d->P.teacher;
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "{\"corpus\": \"%s\", \"vocab\": %zu, \"dim\": %zu, \"layers\": %zu, \"heads\": %zu, \"kv\": %zu, "
             "\"ffn\": %zu, \"seq\": %zu, \"batch\": %zu, \"steps\": %zu}\n",
             d->corpus, p->vocab, p->dim, p->layers, p->heads, p->kv, p->ffn, p->seq, p->batch, p->steps);
    char *stamp = demo_path(d, "teacher.config.json");
    if (!stamp) return -1;
    *trained = 0;
    if (rt_file_exists(teacher) && stamp_matches(stamp, cfg)) {
        fprintf(stderr, "  reusing %s (same corpus and shape; delete it to train afresh)\n", teacher);
        free(stamp);
        return 0;
    }
    unlink(stamp);
    char v[24], dm[24], l[24], h[24], k[24], f[24], t[24], b[24], s[24], w[24], th[24];
    int rc = demo_run(d,
                 A("train", "--data", (char *)d->corpus, "--vocab-size", SZ(v, p->vocab), "--dim", SZ(dm, p->dim),
                   "--layers", SZ(l, p->layers), "--heads", SZ(h, p->heads), "--kv-heads", SZ(k, p->kv), "--ffn",
                   SZ(f, p->ffn), "--seq-len", SZ(t, p->seq), "--batch", SZ(b, p->batch), "--steps", SZ(s, p->steps),
                   "--lr", "2e-3", "--warmup", SZ(w, p->warmup), "--eval-every", "100", "--save-every", "1000000",
                   "--threads", SZ(th, d->threads), "--out", (char *)teacher),
                 NULL);
    if (!rc) rc = write_text(stamp, cfg);
    free(stamp);
    *trained = 1;
    return rc;
}

typedef enum {
    SERVE_SHADOW,   /* benign calibration: the guard records, nothing is enforced, no watermark */
    SERVE_GUARDED,  /* watermark and guard */
    SERVE_UNGUARDED /* watermark only */
} serve_mode;

/* The text of an embedded scenario (scenarios/demo/NAME). */
static const char *scenario_text(const char *name) {
    for (size_t i = 0; i < demo_scenarios_n; i++)
        if (!strcmp(demo_scenarios[i].name, name)) return (const char *)demo_scenarios[i].data;
    RT_FAIL("scenario %s is not in this build (scenarios/demo/)", name);
    return NULL;
}

/* One simulated day against a fresh server (database removed first): writes the scenario to
 * DIR/scenario-TAG.json, serves with the mode's flags (log DIR/logs/serve-TAG.log), runs the
 * simulator (harvests into harvest_dir unless NULL) and stops the server. */
static int simulate_day(demo *d, const char *teacher, const char *key, const char *reference, serve_mode mode,
                        const char *db, const char *scenario_json, const char *tag, const char *summary,
                        const char *harvest_dir) {
    rt_buf scen = {0}, log = {0}, side = {0};
    char *port_file = demo_path(d, "port");
    int rc = -1;
    if (!port_file || rt_buf_printf(&scen, "%s/scenario-%s.json", d->dir, tag) ||
        rt_buf_printf(&log, "%s/logs/serve-%s.log", d->dir, tag))
        goto done;
    static const char *const sides[] = {"", "-wal", "-shm"}; /* the database and its WAL files */
    for (size_t i = 0; i < RT_ARRAY_LEN(sides); i++) {
        side.len = 0;
        if (rt_buf_printf(&side, "%s%s", db, sides[i])) goto done;
        unlink(side.data);
    }
    const char *scenario_text_ = scenario_text(scenario_json);
    if (!scenario_text_ || write_text(scen.data, scenario_text_) || (harvest_dir && rt_mkdir_p(harvest_dir))) goto done;
    char url[64], mt[24], th[24];
    char *serve[32] = {NULL, "serve", "--model", (char *)teacher, "--db", (char *)db, "--port", "0", "--port-file",
                       port_file, "--sim-clock", "--max-tokens", SZ(mt, d->p->max_tokens), "--max-queue", "256",
                       "--threads", SZ(th, d->threads)};
    size_t n = 1; /* serve[0] is the program, set when spawned */
    while (serve[n]) n++;
    if (mode == SERVE_SHADOW) {
        serve[n++] = "--guard-shadow";
    } else {
        serve[n++] = "--watermark-key-file", serve[n++] = (char *)key;
        if (mode == SERVE_GUARDED)
            serve[n++] = "--guard", serve[n++] = "--guard-reference", serve[n++] = (char *)reference;
    }
    if (demo_server_start(d, serve, log.data, url, sizeof url)) goto done;
    char *sim[20] = {NULL, "simulate", "--endpoint", url, "--db", (char *)db, "--scenario", scen.data, "--corpus",
                     (char *)d->corpus, "--speed", "0", "--summary", (char *)summary};
    if (harvest_dir) sim[14] = "--harvest-dir", sim[15] = (char *)harvest_dir;
    rc = demo_run(d, sim, NULL);
    demo_server_stop(d);
done:
    free(port_file);
    rt_buf_free(&scen), rt_buf_free(&log), rt_buf_free(&side);
    return rc;
}

int demo_stage_calibrate(demo *d, int force) {
    const char *teacher = d->P.teacher, *reference = d->P.reference;
    /* the reference depends on the teacher (its hidden states) and on the benign scenario */
    char *stamp = demo_path(d, "guard-reference.scenario.json"), *db = demo_path(d, "calib.db"),
         *sum = demo_path(d, "calib.summary.json");
    int rc = -1;
    const char *calib = scenario_text(d->p->calib);
    if (!stamp || !db || !sum || !calib) goto done;
    if (!force && rt_file_exists(reference) && stamp_matches(stamp, calib)) {
        fprintf(stderr, "  reusing %s (calibrated with this teacher and scenario)\n", reference);
        rc = 0;
        goto done;
    }
    unlink(stamp);
    rc = simulate_day(d, teacher, NULL, NULL, SERVE_SHADOW, db, d->p->calib, "calib", sum, NULL);
    if (!rc) rc = demo_run(d, A("guard", "calibrate", "--db", db, "--out", (char *)reference), NULL);
    if (!rc) rc = write_text(stamp, calib);
done:
    free(stamp), free(db), free(sum);
    return rc;
}

/* The unguarded harvest served again: the same prompts, the same teacher and watermark, the same
 * sampler and seed; with `task`, antidistillation sampling with the teacher itself as the proxy
 * and the held-out task (write_adist_task); without, plainly (the like-for-like control, since
 * the harvesters asked the server for a mix of temperatures). */
static int regenerate_harvest(demo *d, const char *prompts, const char *teacher, const char *key, const char *task,
                              const char *out) {
    char mt[24], th[24];
    char *log = demo_path(d, task ? "logs/antidistill.stdout" : "logs/regenerate.stdout");
    char **argv = task ? A("data", "generate", "--model", (char *)teacher, "--prompts", (char *)prompts,
                           "--max-tokens", SZ(mt, d->p->max_tokens), "--watermark-key-file", (char *)key,
                           "--antidistill-proxy", (char *)teacher, "--antidistill-task", (char *)task,
                           "--antidistill-lambda", (char *)d->p->adist_lambda, "--threads", SZ(th, d->threads),
                           "--quiet", "--out", (char *)out)
                       : A("data", "generate", "--model", (char *)teacher, "--prompts", (char *)prompts,
                           "--max-tokens", SZ(mt, d->p->max_tokens), "--watermark-key-file", (char *)key,
                           "--threads", SZ(th, d->threads), "--quiet", "--out", (char *)out);
    int rc = log ? demo_run(d, argv, log) : -1;
    free(log);
    return rc;
}

/* The teacher's mean loss (nats/token) on a data file's completions: what antidistillation costs
 * the text's quality, as the teacher itself judges it. */
static int teacher_loss_on(demo *d, const char *teacher, const char *data, const char *json_out, double *loss) {
    char th[24];
    char *sink = demo_path(d, "logs/eval.stdout");
    int rc = sink ? demo_run(d,
                        A("eval", "--model", (char *)teacher, "--data", (char *)data, "--threads", SZ(th, d->threads),
                          "--json-out", (char *)json_out),
                        sink)
                  : -1;
    free(sink);
    if (rc) return -1;
    json_error_t e;
    json_t *j = json_load_file(json_out, 0, &e);
    if (!j) return RT_FAIL("%s:%d: %s", json_out, e.line, e.text);
    json_t *l = json_object_get(j, "loss");
    *loss = json_is_number(l) ? json_number_value(l) : NAN;
    json_decref(j);
    if (!isfinite(*loss)) return RT_FAIL("%s: no finite \"loss\"", json_out);
    return 0;
}

static int sft(demo *d, const char *data, const char *teacher, const char *out) {
    const demo_preset *p = d->p;
    char dm[24], l[24], h[24], k[24], f[24], t[24], b[24], s[24], th[24];
    return demo_run(d,
               A("sft", "--data", (char *)data, "--tokenizer", (char *)teacher, "--dim", SZ(dm, p->s_dim), "--layers",
                 SZ(l, p->s_layers), "--heads", SZ(h, p->s_heads), "--kv-heads", SZ(k, p->s_kv), "--ffn",
                 SZ(f, p->s_ffn), "--seq-len", SZ(t, p->s_seq), "--batch", SZ(b, p->s_batch), "--steps",
                 SZ(s, p->s_steps), "--lr", "3e-3", "--warmup", "20", "--eval-every", "1000000", "--save-every", "1000000",
                 "--threads", SZ(th, d->threads), "--out", (char *)out),
               NULL);
}

static int eval_model(demo *d, const char *model, const char *teacher, const char *json_out) {
    char w[24], th[24];
    char **argv = teacher ? A("eval", "--model", (char *)model, "--data", (char *)d->corpus, "--split", "val",
                              "--teacher", (char *)teacher, "--max-windows", SZ(w, d->p->eval_windows), "--threads",
                              SZ(th, d->threads), "--json-out", (char *)json_out)
                          : A("eval", "--model", (char *)model, "--data", (char *)d->corpus, "--split", "val",
                              "--max-windows", SZ(w, d->p->eval_windows), "--threads", SZ(th, d->threads),
                              "--json-out", (char *)json_out);
    char *sink = demo_path(d, "logs/eval.stdout");
    int rc = sink ? demo_run(d, argv, sink) : -1;
    free(sink);
    return rc;
}

/* Closed mode: the suspect writes continuations of corpus prompts (human text, so excluding
 * only the prompts' own tuples keeps the test exact). Open mode: the suspect reads human
 * text and its top-1 predictions are scored (exact with nothing excluded: the text is
 * independent of the key). */
static int radioactivity(demo *d, const char *model, const char *teacher, const char *key, const char *input,
                         int open, const char *out) {
    char mt[24], c[24], th[24];
    char **argv = open ? A("radioactivity", "--suspect", (char *)model, "--tokenizer", (char *)teacher, "--key-file",
                           (char *)key, "--mode", "open", "--text", (char *)input, "--exclude", "none", "--controls",
                           SZ(c, d->p->controls), "--control-seed", "777", "--threads", SZ(th, d->threads))
                       : A("radioactivity", "--suspect", (char *)model, "--tokenizer", (char *)teacher, "--key-file",
                           (char *)key, "--mode", "closed", "--prompts", (char *)input, "--exclude", "tuples",
                           "--max-tokens", SZ(mt, d->p->radio_tokens), "--samples", "2", "--controls",
                           SZ(c, d->p->controls), "--control-seed", "777", "--threads", SZ(th, d->threads));
    return demo_run(d, argv, out);
}

int demo_stage_key(demo *d) {
    if (rt_file_exists(d->P.key)) {
        fprintf(stderr, "  reusing %s\n", d->P.key);
        return 0;
    }
    char kj[4200];
    snprintf(kj, sizeof kj, "%s/keygen.json", d->P.logs);
    return demo_run(d, A("watermark", "keygen", "--out", d->P.key), kj);
}

int demo_stage_day(demo *d, int guarded) {
    const demo_paths *P = &d->P;
    return guarded ? simulate_day(d, P->teacher, P->key, P->reference, SERVE_GUARDED, P->db_on, d->p->day, "day",
                                  P->sum_on, P->hv_on)
                   : simulate_day(d, P->teacher, P->key, P->reference, SERVE_UNGUARDED, P->db_off, d->p->control,
                                  "control", P->sum_off, P->hv_off);
}

/* Pool each day's harvest files into one training file per day (record room). */
static int pool_day(const sim_harvest_file *h, size_t n, const char *out, size_t *lines) {
    const char **paths = n ? rt_malloc(n * sizeof *paths, "harvest paths") : NULL;
    if (n && !paths) return -1;
    for (size_t i = 0; i < n; i++) paths[i] = h[i].path;
    int rc = record_pool_files(paths, n, out, lines);
    free(paths);
    return rc;
}

/* The harvests pooled, the clean control's and radioactivity's files from the corpus, and the
 * three students of the two days and the clean text. */
static int students_main(demo *d) {
    const demo_paths *P = &d->P;
    if (sim_summary_harvests(P->sum_on, &d->hon, &d->non) || sim_summary_harvests(P->sum_off, &d->hoff, &d->noff))
        return -1;
    size_t lines_on = 0, lines_off = 0;
    if (pool_day(d->hon, d->non, P->data_on, &lines_on) || pool_day(d->hoff, d->noff, P->data_off, &lines_off))
        return -1;
    if (lines_on == 0 || lines_off == 0)
        return RT_FAIL("a harvest is empty (%zu lines with the guard, %zu without): nothing to train a student on; "
                       "the servers' logs are in %s",
                       lines_on, lines_off, P->logs);
    fprintf(stderr, "  harvested: %zu answers with the guard, %zu without\n", lines_on, lines_off);
    record_corpus cl;
    int rc = record_corpus_load(d->corpus, &cl);
    if (!rc)
        rc = record_corpus_continuations(&cl, lines_off, 4242, P->data_clean) ||
             record_corpus_prompts(&cl, d->p->radio_prompts, P->prompts) || record_corpus_tail(&cl, 600, P->human);
    record_corpus_free(&cl);
    if (rc) return -1;
    return sft(d, P->data_on, P->teacher, P->m_on) || sft(d, P->data_off, P->teacher, P->m_off) ||
                   sft(d, P->data_clean, P->teacher, P->m_clean)
               ? -1
               : 0;
}

/* The unguarded harvest's prompts answered again with antidistillation and plainly, a student
 * on each, and the teacher's own loss on both texts (the report's "antidistillation" entry). */
static int students_antidistill(demo *d) {
    const demo_paths *P = &d->P;
    const demo_preset *p = d->p;
    fprintf(stderr, "  the unguarded harvest served again with antidistillation sampling (lambda %s)\n", p->adist_lambda);
    /* the task: held-out corpus text, the text the harvester's student is scored on and so the
     * text the defender protects: lines from well inside the 20th 32 KiB chunk, which `eval
     * --split val` (like train) holds out */
    if (record_heldout_lines(d->corpus, 32 * 1024, 20, 4096, P->adist_task) ||
        regenerate_harvest(d, P->data_off, P->teacher, P->key, P->adist_task, P->data_adist) ||
        regenerate_harvest(d, P->data_off, P->teacher, P->key, NULL, P->data_regen) ||
        sft(d, P->data_adist, P->teacher, P->m_adist) || sft(d, P->data_regen, P->teacher, P->m_regen))
        return -1;
    char ja[4200], jr[4200];
    double la, lr;
    snprintf(ja, sizeof ja, "%s/eval-teacher-on-antidistilled.json", P->stud);
    snprintf(jr, sizeof jr, "%s/eval-teacher-on-regenerated.json", P->stud);
    if (teacher_loss_on(d, P->teacher, P->data_adist, ja, &la) || teacher_loss_on(d, P->teacher, P->data_regen, jr, &lr))
        return -1;
    snprintf(d->adist_note, sizeof d->adist_note,
             "lambda %s, eps 0.01, proxy: the teacher, task: %s (held-out corpus text); the teacher's own loss on "
             "the text it served: %.3f nats/token antidistilled, %.3f plain (same prompts, sampler and seed)",
             p->adist_lambda, P->adist_task, la, lr);
    return 0;
}

int demo_stage_students(demo *d) {
    return students_main(d) || students_antidistill(d) ? -1 : 0;
}

int demo_stage_eval(demo *d) {
    const demo_paths *P = &d->P;
    static const char *const tags[DEMO_MODELS] = {"teacher", "guard-on", "guard-off", "clean", "antidistill",
                                                  "regenerated"};
    const char *models[DEMO_MODELS] = {P->teacher, P->m_on, P->m_off, P->m_clean, P->m_adist, P->m_regen};
    for (int i = 0; i < DEMO_MODELS; i++) {
        char e[4200];
        snprintf(e, sizeof e, "%s/eval-%s.json", P->stud, tags[i]);
        if (eval_model(d, models[i], i ? P->teacher : NULL, e)) return -1;
    }
    return 0;
}

int demo_stage_radioactivity(demo *d) {
    const demo_paths *P = &d->P;
    const char *models[3] = {P->m_on, P->m_off, P->m_clean};
    const char *tags[3] = {"guard-on", "guard-off", "clean"};
    for (int mode = 0; mode < (d->p->radio_open ? 2 : 1); mode++)
        for (int i = 0; i < 3; i++) {
            char out[4200];
            snprintf(out, sizeof out, "%s/radioactivity-%s-%s.json", P->stud, tags[i], mode ? "open" : "closed");
            size_t len;
            if (radioactivity(d, models[i], P->teacher, P->key, mode ? P->human : P->prompts, mode, out) ||
                rt_read_file(out, &d->radio[mode * 3 + i], &len))
                return -1;
        }
    return 0;
}
