/*
 * demo_stages.c — the steps of `retort demo`'s stages (contract in demo.h): each builds the
 * argv of an ordinary retort command and runs it through demo_proc.c; what the demo writes
 * itself (pooled harvests, the corpus-derived files) is written by the record room. Not the
 * driver (cmd_demo.c) nor the report (demo_evidence.c).
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../record/record.h"
#include "demo.h"
#include "demo_scenarios.h"

/* Write text to path (atomically) and record it as a step the demo did in its own process. */
static int write_text(demo *d, const char *path, const char *text, const char *what, const char *inputs) {
    return rt_write_file_atomic(path, text, strlen(text)) || demo_record_write(d, NULL, NULL, path, what, inputs);
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
    if (!rc)
        rc = write_text(d, stamp, cfg, "the teacher's settings: a later run reuses the teacher while they match",
                        "the preset and --corpus");
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

/* Remove a database and its WAL files (each day starts on a fresh one). */
static int remove_db(const char *db) {
    static const char *const sides[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < RT_ARRAY_LEN(sides); i++) {
        char side[4400];
        snprintf(side, sizeof side, "%s%s", db, sides[i]);
        if (unlink(side) && errno != ENOENT) return RT_FAIL("%s: cannot remove: %s", side, strerror(errno));
    }
    return 0;
}

/* The guard's flags for the mode (appended to a serve or gateway argv at n). */
static size_t guard_flags(char **argv, size_t n, serve_mode mode, const char *reference) {
    if (mode == SERVE_SHADOW) argv[n++] = "--guard-shadow";
    if (mode == SERVE_GUARDED) argv[n++] = "--guard", argv[n++] = "--guard-reference", argv[n++] = (char *)reference;
    return n;
}

/* `retort serve` of the teacher on db (log DIR/logs/serve-TAG.log, port file DIR/port-TAG),
 * the watermark on unless calibrating; with_guard adds the mode's guard flags (serve alone),
 * without it the server is a gateway's plain upstream. */
static int start_serve(demo *d, serve_mode mode, int with_guard, const char *db, const char *tag, char *url) {
    char log[4200], port_file[4200], mt[24], th[24];
    snprintf(log, sizeof log, "%s/logs/serve-%s.log", d->dir, tag);
    snprintf(port_file, sizeof port_file, "%s/port-%s", d->dir, tag);
    char *serve[32] = {NULL, "serve", "--model", d->P.teacher, "--db", (char *)db, "--port", "0", "--port-file",
                       port_file, "--sim-clock", "--max-tokens", SZ(mt, d->p->max_tokens), "--max-queue", "256",
                       "--threads", SZ(th, d->threads)};
    size_t n = 1; /* serve[0] is the program, set when spawned */
    while (serve[n]) n++;
    if (mode != SERVE_SHADOW) serve[n++] = "--watermark-key-file", serve[n++] = d->P.key;
    if (with_guard) n = guard_flags(serve, n, mode, d->P.reference);
    return demo_server_start(d, serve, log, port_file, url, 64);
}

/* --gateway: a plain serve upstream (its own database and a key that allows everything), then
 * `retort gateway` on db in front of it with the keys, the ledger, the mode's guard and the
 * teacher as --embed-model (the guard's prompt embeddings, as serve computes them). */
static int start_gateway(demo *d, serve_mode mode, const char *db, const char *tag, char *url) {
    char up_db[4200], up_key[4200], up_tag[64], up_url[64], up_v1[96], log[4200], port_file[4200], mt[24], th[24];
    snprintf(up_db, sizeof up_db, "%s/upstream-%s.db", d->dir, tag);
    snprintf(up_key, sizeof up_key, "%s/upstream-%s.key", d->dir, tag);
    snprintf(up_tag, sizeof up_tag, "upstream-%s", tag);
    snprintf(log, sizeof log, "%s/logs/gateway-%s.log", d->dir, tag);
    snprintf(port_file, sizeof port_file, "%s/port-%s", d->dir, tag);
    if (remove_db(up_db) ||
        demo_run(d, A("keys", "create", "--db", up_db, "--name", "demo-gateway", "--rpm", "1000000", "--tpm",
                      "1000000000"),
                 up_key) ||
        start_serve(d, mode, 0, up_db, up_tag, up_url))
        return -1;
    snprintf(up_v1, sizeof up_v1, "%s/v1", up_url);
    char *gw[32] = {NULL, "gateway", "--upstream", up_v1, "--upstream-key-file", up_key, "--db", (char *)db,
                    "--embed-model", d->P.teacher, "--port", "0", "--port-file", port_file, "--sim-clock",
                    "--max-tokens", SZ(mt, d->p->max_tokens), "--threads", SZ(th, d->threads)};
    size_t n = 1;
    while (gw[n]) n++;
    guard_flags(gw, n, mode, d->P.reference);
    return demo_server_start(d, gw, log, port_file, url, 64);
}

/* One simulated day against a fresh server (database removed first): writes the scenario to
 * DIR/scenario-TAG.json, serves with the mode's flags (serve alone, or with --gateway a
 * gateway in front of a plain serve), runs the simulator (harvests into harvest_dir unless
 * NULL) and stops the servers. */
static int simulate_day(demo *d, serve_mode mode, const char *db, const char *scenario_json, const char *tag,
                        const char *summary, const char *harvest_dir) {
    char scen[4200], url[64];
    snprintf(scen, sizeof scen, "%s/scenario-%s.json", d->dir, tag);
    const char *text = scenario_text(scenario_json);
    if (!text || remove_db(db) || write_text(d, scen, text, "the simulated traffic's scenario", scenario_json) ||
        (harvest_dir && rt_mkdir_p(harvest_dir)))
        return -1;
    if (d->gateway ? start_gateway(d, mode, db, tag, url) : start_serve(d, mode, 1, db, tag, url)) {
        demo_server_stop(d);
        return -1;
    }
    char *sim[20] = {NULL, "simulate", "--endpoint", url, "--db", (char *)db, "--scenario", scen, "--corpus",
                     (char *)d->corpus, "--speed", "0", "--summary", (char *)summary};
    if (harvest_dir) sim[14] = "--harvest-dir", sim[15] = (char *)harvest_dir;
    int rc = demo_run(d, sim, NULL);
    demo_server_stop(d);
    return rc;
}

int demo_stage_calibrate(demo *d, int force) {
    const char *reference = d->P.reference;
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
    rc = simulate_day(d, SERVE_SHADOW, db, d->p->calib, "calib", sum, NULL);
    if (!rc) rc = demo_run(d, A("guard", "calibrate", "--db", db, "--out", (char *)reference), NULL);
    if (!rc)
        rc = write_text(d, stamp, calib, "the calibration's scenario: a later run reuses the reference while it matches",
                        d->p->calib);
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
static int teacher_loss_on(demo *d, const char *teacher, const char *data, const char *tag, double *loss) {
    char json_out[4200], log[64];
    snprintf(json_out, sizeof json_out, "%s/eval-%s.json", d->P.stud, tag);
    snprintf(log, sizeof log, "logs/eval-%s.stdout", tag);
    char th[24];
    char *sink = demo_path(d, log);
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

/* One model's held-out quality: students/eval-TAG.json, its stdout in logs/eval-TAG.stdout. */
static int eval_model(demo *d, const char *model, const char *teacher, const char *tag) {
    char json_out[4200], log[64];
    snprintf(json_out, sizeof json_out, "%s/eval-%s.json", d->P.stud, tag);
    snprintf(log, sizeof log, "logs/eval-%s.stdout", tag);
    char w[24], th[24];
    char **argv = teacher ? A("eval", "--model", (char *)model, "--data", (char *)d->corpus, "--split", "val",
                              "--teacher", (char *)teacher, "--max-windows", SZ(w, d->p->eval_windows), "--threads",
                              SZ(th, d->threads), "--json-out", (char *)json_out)
                          : A("eval", "--model", (char *)model, "--data", (char *)d->corpus, "--split", "val",
                              "--max-windows", SZ(w, d->p->eval_windows), "--threads", SZ(th, d->threads),
                              "--json-out", (char *)json_out);
    char *sink = demo_path(d, log);
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
    return guarded ? simulate_day(d, SERVE_GUARDED, P->db_on, d->p->day, "day", P->sum_on, P->hv_on)
                   : simulate_day(d, SERVE_UNGUARDED, P->db_off, d->p->control, "control", P->sum_off, P->hv_off);
}

/* Pool each day's harvest files into one training file per day (record room). */
static int pool_day(demo *d, const sim_harvest_file *h, size_t n, const char *summary, const char *out,
                    size_t *lines) {
    const char **paths = n ? rt_malloc(n * sizeof *paths, "harvest paths") : NULL;
    if (n && !paths) return -1;
    rt_buf cat = {0};
    int rc = rt_buf_printf(&cat, "cat");
    for (size_t i = 0; i < n; i++) {
        paths[i] = h[i].path;
        if (!rc) rc = rt_buf_printf(&cat, " ") || demo_quote(&cat, h[i].path);
    }
    if (!rc) rc = rt_buf_printf(&cat, " > ") || demo_quote(&cat, out);
    if (!rc) rc = record_pool_files(paths, n, out, lines);
    char from[4300];
    snprintf(from, sizeof from, "the harvest files %s lists", summary);
    if (!rc)
        rc = demo_record_write(d, NULL, cat.data, out, "the day's harvests pooled: a student's training data", from);
    rt_buf_free(&cat);
    free(paths);
    return rc;
}

/* The files the demo derives from the corpus itself (record room), each recorded as a step. */
static int corpus_files(demo *d, size_t clean_lines) {
    const demo_paths *P = &d->P;
    record_corpus cl;
    char what[160];
    int rc = record_corpus_load(d->corpus, &cl);
    snprintf(what, sizeof what, "the clean control's data: %zu corpus passages and their real continuations, "
                                "places drawn with seed 4242", clean_lines);
    if (!rc) rc = record_corpus_continuations(&cl, clean_lines, 4242, P->data_clean) ||
                  demo_record_write(d, NULL, NULL, P->data_clean, what, d->corpus);
    snprintf(what, sizeof what, "radioactivity's closed-mode prompts: the openings of %zu corpus passages",
             d->p->radio_prompts);
    if (!rc) rc = record_corpus_prompts(&cl, d->p->radio_prompts, P->prompts) ||
                  demo_record_write(d, NULL, NULL, P->prompts, what, d->corpus);
    if (!rc) rc = record_corpus_tail(&cl, 600, P->human) ||
                  demo_record_write(d, NULL, NULL, P->human, "open-mode reading text: the corpus's last 600 lines",
                                    d->corpus);
    record_corpus_free(&cl);
    return rc ? -1 : 0;
}

/* The harvests pooled, the clean control's and radioactivity's files from the corpus, and the
 * three students of the two days and the clean text. */
static int students_main(demo *d) {
    const demo_paths *P = &d->P;
    if (sim_summary_harvests(P->sum_on, &d->hon, &d->non) || sim_summary_harvests(P->sum_off, &d->hoff, &d->noff))
        return -1;
    size_t lines_on = 0, lines_off = 0;
    if (pool_day(d, d->hon, d->non, P->sum_on, P->data_on, &lines_on) ||
        pool_day(d, d->hoff, d->noff, P->sum_off, P->data_off, &lines_off))
        return -1;
    if (lines_on == 0 || lines_off == 0)
        return RT_FAIL("a harvest is empty (%zu lines with the guard, %zu without): nothing to train a student on; "
                       "the servers' logs are in %s",
                       lines_on, lines_off, P->logs);
    fprintf(stderr, "  harvested: %zu answers with the guard, %zu without\n", lines_on, lines_off);
    if (corpus_files(d, lines_off)) return -1;
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
        demo_record_write(d, NULL, NULL, P->adist_task,
                          "antidistillation's task: whole lines from inside the 20th 32 KiB chunk (held out)",
                          d->corpus) ||
        regenerate_harvest(d, P->data_off, P->teacher, P->key, P->adist_task, P->data_adist) ||
        regenerate_harvest(d, P->data_off, P->teacher, P->key, NULL, P->data_regen) ||
        sft(d, P->data_adist, P->teacher, P->m_adist) || sft(d, P->data_regen, P->teacher, P->m_regen))
        return -1;
    double la, lr;
    if (teacher_loss_on(d, P->teacher, P->data_adist, "teacher-on-antidistilled", &la) ||
        teacher_loss_on(d, P->teacher, P->data_regen, "teacher-on-regenerated", &lr))
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
    for (int i = 0; i < DEMO_MODELS; i++)
        if (eval_model(d, models[i], i ? P->teacher : NULL, tags[i])) return -1;
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
                rt_read_file(out, &d->radio[mode * 3 + i], &len) || !(d->radio_path[mode * 3 + i] = rt_strdup(out)))
                return -1;
        }
    return 0;
}
