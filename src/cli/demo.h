/*
 * demo.h — the private contract between the files of `retort demo` (src/cli/cmd_demo.c and
 * demo_*.c); nothing outside them includes it.
 *
 *   cmd_demo.c      the presets, the flag table and the driver: the stages in order
 *   demo_proc.c     process orchestration: a step is this binary run as a child (recorded as
 *                   the command a user can rerun), the background server, signals, the corpus
 *   demo_stages.c   the stages' steps: teacher, calibration, the simulated days, the students
 *                   (incl. the antidistillation pair), evaluation, radioactivity
 *   demo_evidence.c the evidence rows, the report and the five-line summary
 *
 * Library work is in its room: pooling harvests and the corpus-derived harvest files in
 * record (files.c), reading the simulator's summary in sim. All functions return 0, or -1
 * with the error set (RT_FAIL) and nothing half-written (files are written atomically).
 * Single-threaded; the only global state is the signal handler's (demo_proc.c).
 */
#ifndef RETORT_CLI_DEMO_H
#define RETORT_CLI_DEMO_H

#include <stddef.h>
#include <sys/types.h>

#include "../base/base.h"
#include "../sim/sim.h"

enum { DEMO_STAGES = 9, DEMO_SERVERS = 2 };

typedef struct {
    const char *name;
    /* teacher */
    size_t vocab, dim, layers, heads, kv, ffn, seq, batch, steps, warmup;
    /* students */
    size_t s_dim, s_layers, s_heads, s_kv, s_ffn, s_seq, s_batch, s_steps;
    size_t max_tokens;
    /* scenarios (embedded scenarios/demo/ files): benign-only calibration, the day, the
     * attackers alone (control) */
    const char *calib, *day, *control;
    size_t eval_windows, radio_prompts, radio_tokens, controls;
    int radio_open;           /* also test in open mode (reading human text) */
    const char *adist_lambda; /* antidistillation's λ for the unguarded harvest served again (docs/demo.md) */
    double est[DEMO_STAGES];  /* seconds per stage on 2 cores (the teacher's and calibration's only when trained) */
} demo_preset;

/* Every file the demo makes or reads by name, under --dir (demo_paths_make; all malloc'd). */
typedef struct {
    char *key, *teacher, *reference, *db_on, *db_off, *sum_on, *sum_off, *hv_on, *hv_off, *stud, *data_on,
        *data_off, *data_clean, *m_on, *m_off, *m_clean, *prompts, *human, *report, *logs, *adist_task, *data_adist,
        *m_adist, *data_regen, *m_regen;
} demo_paths;

enum { DEMO_MODELS = 6, DEMO_TESTS = 6 };

typedef struct {
    const demo_preset *p;
    int quick;
    const char *dir, *corpus;
    char self[4096];          /* this program (/proc/self/exe): every step runs it */
    size_t threads;
    int verbose;
    double t_start;
    demo_paths P;
    char corpus_buf[4200];    /* d->corpus when the demo writes the default corpus itself */
    /* the steps run, in order: NUL-separated command lines (the report's section 7) */
    rt_buf steps;
    size_t n_steps;
    int gateway;              /* --gateway: the days go through `retort gateway` in front of a plain serve */
    pid_t server[DEMO_SERVERS]; /* the background servers (serve; or the upstream serve, then the gateway) */
    size_t n_servers;
    /* what the stages found or made, for the later ones */
    sim_harvest_file *hon, *hoff; /* the harvest files with and without the guard */
    size_t non, noff;
    char *radio[DEMO_TESTS];  /* radioactivity JSON: closed on/off/clean, then open on/off/clean */
    char *radio_path[DEMO_TESTS]; /* the files they were read from */
    char adist_note[512];     /* the report's "antidistillation" entry (set by the students stage) */
} demo;

/* ---------------------------------------------------------------- demo_proc.c */

char *demo_path(const demo *d, const char *name);      /* DIR/name, malloc'd; NULL on no memory */
int demo_paths_make(demo *d);
void demo_paths_free(demo_paths *P);

/* The steps (the report's section 7, one `step.NNN` row each) are shell lines a user can run:
 *   a child process:   retort ARG... [> STDOUT] [2> LOG | > LOG 2>&1]
 *   a write the demo made in its own process (pooled harvests, files derived from the
 *   corpus, scenario and stamp files, evidence rows):
 *                      COMMAND  # in the demo's process; the same: wrote OUT (WHAT) from INPUTS
 *   or, where no command does the same:
 *                      # in the demo's process, no command does this: wrote OUT (WHAT) from INPUTS
 * COMMAND is a retort argv or another shell line (`cat A B > OUT`). Printed with --verbose. */
int demo_record_step(demo *d, char *const argv[], const char *stdout_path, const char *log_path);
int demo_record_write(demo *d, char *const argv[] /* or NULL */, const char *shell /* or NULL */, const char *out,
                      const char *what, const char *inputs);
int demo_quote(rt_buf *b, const char *arg); /* arg shell-quoted where it needs it */
/* Run a step to completion (recorded first); stdout to stdout_path when given. argv[0] is
 * overwritten with this program. Refused once a signal has arrived. */
int demo_run(demo *d, char **argv, const char *stdout_path);
/* Start `retort serve`/`gateway` argv in the background (stdout and stderr to log_path); url
 * gets its http://127.0.0.1:PORT once it listens (argv must include `--port-file port_file`).
 * At most DEMO_SERVERS at once; demo_server_stop stops them all, the last started first. */
int demo_server_start(demo *d, char **argv, const char *log_path, const char *port_file, char *url, size_t url_cap);
void demo_server_stop(demo *d);
/* SIGTERM/SIGINT/SIGHUP are passed on to the running step and server; demo_signal() is the
 * signal that arrived, 0 when none. */
void demo_catch_signals(void);
int demo_signal(void);
/* d->corpus exists, or the default one: build/data/kjv.txt, else DIR/kjv.txt written by
 * Debian's `bible`. */
int demo_find_corpus(demo *d);

/* argv literals: A("train", "--out", x) is {NULL, "train", "--out", x, NULL}; SZ formats a size. */
#define A(...) ((char *[]){NULL, __VA_ARGS__, NULL})
#define SZ(buf, v) (snprintf(buf, sizeof buf, "%zu", (size_t)(v)), buf)

/* ---------------------------------------------------------------- demo_stages.c */

int demo_stage_key(demo *d);
/* Trains the teacher unless one of the same corpus and shape is there; *trained says which. */
int demo_stage_teacher(demo *d, int *trained);
/* The benign-only half-day and `guard calibrate`; reused unless force or the scenario changed. */
int demo_stage_calibrate(demo *d, int force);
int demo_stage_day(demo *d, int guarded); /* the protected day (1) or the unprotected control (0) */
int demo_stage_students(demo *d);
int demo_stage_eval(demo *d);
int demo_stage_radioactivity(demo *d);

/* ---------------------------------------------------------------- demo_evidence.c */

/* Records the harvests, models, tests, steps and settings in the protected day's database,
 * writes the report and prints its path and the five-line summary. */
int demo_stage_report(demo *d);

#endif /* RETORT_CLI_DEMO_H */
