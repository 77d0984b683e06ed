/*
 * cmd_demo.c — `retort demo`: the whole story on the built-in corpus, one command.
 *
 *   1. a watermark key; 2. train (or reuse) a teacher; 3. calibrate the guard on a benign-only
 *   simulated half-day (reused with the teacher); 4. a protected day: serve the teacher with
 *   the watermark, accounts and the guard on, simulate benign users and harvesters (bulk,
 *   log-prob, slow-and-low, template, mimicry, a sybil group, corpus walk) on an accelerated
 *   clock; the guard suspends them and each keeps what it got; 5. an unprotected day: the
 *   same attackers against the same server with the guard off (the control); 6. students:
 *   `sft` on the pooled harvest with and without the guard, and a clean control student on
 *   unwatermarked corpus text of the same size; the unguarded harvest's prompts answered again
 *   with antidistillation sampling and, as its control, plainly, and a student on each; 7. eval (held-out loss, KL, top-1 agreement
 *   with the teacher); 8. radioactivity of each student with control keys; 9. the evidence
 *   report and a five-line summary.
 *
 * Each step runs this same binary as a child process (the server in the background), so
 * every step is a command a user can rerun by hand; the report lists them all. The demo
 * only orchestrates: it trains, serves and tests nothing itself. Presets: the default
 * (≤ 15 min on 2 cores) and --quick (≤ 3 min, smaller models and traffic, for CI).
 *
 * This file is the presets, the flag table and the driver; the stages are demo_stages.c and
 * demo_evidence.c, the child processes demo_proc.c (demo.h is their contract).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "demo.h"

/* ---------------------------------------------------------------- presets */

static const demo_preset preset_full = {
    .name = "full",
    .vocab = 2048, .dim = 128, .layers = 4, .heads = 4, .kv = 2, .ffn = 352, .seq = 128, .batch = 16,
    .steps = 1500, .warmup = 50,
    .s_dim = 96, .s_layers = 3, .s_heads = 4, .s_kv = 2, .s_ffn = 256, .s_seq = 128, .s_batch = 16,
    .s_steps = 400,
    .max_tokens = 32,
    .calib = "full-calib.json",
    .day = "full-day.json",
    .control = "full-control.json",
    .eval_windows = 64, .radio_prompts = 96, .radio_tokens = 64, .controls = 20, .radio_open = 1,
    .adist_lambda = "0.5",
    .est = {1, 120, 20, 30, 20, 50, 15, 40, 2},
};

static const demo_preset preset_quick = {
    .name = "quick",
    .vocab = 512, .dim = 64, .layers = 2, .heads = 4, .kv = 2, .ffn = 176, .seq = 128, .batch = 8,
    .steps = 150, .warmup = 20,
    .s_dim = 64, .s_layers = 2, .s_heads = 4, .s_kv = 2, .s_ffn = 176, .s_seq = 128, .s_batch = 8,
    .s_steps = 600, /* at 300 the watermark learnt varied with the seed: 2 of 4 seeds missed p < 1e-3 */
    .max_tokens = 32,
    .calib = "quick-calib.json",
    .day = "quick-day.json",
    .control = "quick-control.json",
    .eval_windows = 16, .radio_prompts = 256, .radio_tokens = 64, .controls = 10, .radio_open = 1,
    .adist_lambda = "0.5",
    .est = {1, 5, 2, 3, 4, 3, 1, 2, 1},
};

static const char *const stage_names[DEMO_STAGES] = {"watermark key", "teacher", "benign calibration", "protected day",
                                           "unprotected day (control)", "students", "evaluation", "radioactivity",
                                           "report"};

/* ---------------------------------------------------------------- the command */

static void stage_begin(const demo *d, int i) {
    fprintf(stderr, "\n[%d/%d] %s — about %.0f s  (elapsed %.0f s)\n", i + 1, DEMO_STAGES, stage_names[i],
            d->p->est[i], rt_now() - d->t_start);
}

/* The stages in order (each a function of demo_stages.c / demo_evidence.c). */
static int demo_stages(demo *d) {
    const demo_preset *p = d->p;
    if (demo_paths_make(d) || rt_mkdir_p(d->dir) || rt_mkdir_p(d->P.logs) || rt_mkdir_p(d->P.stud) ||
        demo_find_corpus(d))
        return -1;
    double total = 0;
    int cached = rt_file_exists(d->P.teacher) && rt_file_exists(d->P.reference);
    for (int i = 0; i < DEMO_STAGES; i++) total += (cached && (i == 1 || i == 2)) ? 2 : p->est[i];
    fprintf(stderr,
            "retort demo (%s): a served teacher, harvesters, a guard, a watermark, and the students they build.\n"
            "Working in %s; corpus %s; %zu threads. Estimated time on 2 idle cores: about %.0f min%s.\n",
            p->name, d->dir, d->corpus, d->threads, ceil(total / 60), cached ? " (teacher and calibration reused)" : "");
    int trained = 0;
    stage_begin(d, 0);
    if (demo_stage_key(d)) return -1;
    stage_begin(d, 1);
    if (demo_stage_teacher(d, &trained)) return -1;
    stage_begin(d, 2);
    if (demo_stage_calibrate(d, trained)) return -1;
    stage_begin(d, 3);
    if (demo_stage_day(d, 1)) return -1;
    stage_begin(d, 4);
    if (demo_stage_day(d, 0)) return -1;
    stage_begin(d, 5);
    if (demo_stage_students(d)) return -1;
    stage_begin(d, 6);
    if (demo_stage_eval(d)) return -1;
    stage_begin(d, 7);
    if (demo_stage_radioactivity(d)) return -1;
    stage_begin(d, 8);
    return demo_stage_report(d);
}

static void demo_free(demo *d) {
    demo_server_stop(d);
    sim_harvest_files_free(d->hon, d->non), sim_harvest_files_free(d->hoff, d->noff);
    for (int i = 0; i < DEMO_TESTS; i++) free(d->radio[i]), free(d->radio_path[i]);
    demo_paths_free(&d->P);
    rt_buf_free(&d->steps);
}

int cmd_demo(int argc, char **argv) {
    demo d = {0};
    int quick = 0, verbose = 0, gateway = 0;
    const char *dir = "retort-demo", *corpus = NULL;
    size_t threads = 0;
    cli_opt opts[] = {
        {"--quick", CLI_FLAG, &quick, "smaller models and traffic: about 20 s on an idle 2-core machine (docs/demo.md; for CI)", 0, 0},
        {"--dir", CLI_STR, &dir, "DIR: where everything is written; the teacher is reused from here (default retort-demo)",
         0, 0},
        {"--corpus", CLI_STR, &corpus,
         "FILE: training text (default build/data/kjv.txt, else the King James Bible from `bible`)", 0, 0},
        {"--threads", CLI_SIZE, &threads, "N: threads per step (default: all cores)", 0, 0},
        {"--gateway", CLI_FLAG, &gateway,
         "serve each day through `retort gateway` (keys, ledger, guard; the teacher as --embed-model) in front of a "
         "plain `retort serve` upstream; the report reads the gateway's database (docs/demo.md)",
         0, 0},
        {"--verbose", CLI_FLAG, &verbose, "print each step's command line", 0, 0},
    };
    cli_cmd_info info = {
        "demo", "retort demo [--quick] [--gateway] [--dir DIR] [--corpus FILE]",
        "The whole story on the built-in corpus: train (or reuse) a teacher; serve it with the\n"
        "watermark, accounts and the guard on; run a simulated day of benign users and harvesters\n"
        "(bulk, log-prob, slow-and-low, template, mimicry, a sybil group, corpus walk) on an\n"
        "accelerated clock; the guard suspends them and each keeps what it got; the same attackers\n"
        "harvest the same server with the guard off (the control); students are distilled (sft)\n"
        "from both harvests and from clean text, and from the unguarded harvest's prompts answered\n"
        "again with antidistillation sampling and plainly; each is evaluated and tested for the watermark\n"
        "(radioactivity, with control keys); then the evidence report. Ends with the report's path\n"
        "and a five-line summary. Every step is an ordinary retort command, listed in the report.\n"
        "With --gateway the days are served by `retort gateway` in front of a plain `retort serve`."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    d.p = quick ? &preset_quick : &preset_full, d.quick = quick;
    d.dir = dir, d.corpus = corpus, d.verbose = verbose, d.gateway = gateway, d.t_start = rt_now();
    ssize_t n = readlink("/proc/self/exe", d.self, sizeof d.self - 1);
    if (n <= 0) {
        fprintf(stderr, "retort demo: error: cannot find this program's path (/proc/self/exe): %s\n", strerror(errno));
        return 1;
    }
    d.self[n] = 0;
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    d.threads = threads ? threads : (size_t)(nc > 0 ? nc : 1);
    demo_catch_signals();
    int rc = demo_stages(&d);
    demo_free(&d);
    int sig = demo_signal();
    if (sig) {
        fprintf(stderr,
                "retort demo: interrupted by signal %d: stopped the running step and the server (no process of the "
                "demo is left); run it again to continue (a finished teacher in %s is reused)\n",
                sig, d.dir);
        return 128 + sig;
    }
    return rc ? cli_fail("demo") : 0;
}
