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
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../report/report.h"
#include "../record/record.h"
#include "cli.h"
#include "demo_scenarios.h"

extern char **environ;

/* ---------------------------------------------------------------- presets */

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
    int radio_open; /* also test in open mode (reading human text) */
    const char *adist_lambda; /* antidistillation's λ for the unguarded harvest served again (docs/demo.md) */
    double est[9]; /* seconds per stage on 2 cores (the teacher's and calibration's only when trained) */
} preset;

static const preset preset_full = {
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

static const preset preset_quick = {
    .name = "quick",
    .vocab = 512, .dim = 64, .layers = 2, .heads = 4, .kv = 2, .ffn = 176, .seq = 128, .batch = 8,
    .steps = 150, .warmup = 20,
    .s_dim = 64, .s_layers = 2, .s_heads = 4, .s_kv = 2, .s_ffn = 176, .s_seq = 128, .s_batch = 8,
    .s_steps = 300,
    .max_tokens = 32,
    .calib = "quick-calib.json",
    .day = "quick-day.json",
    .control = "quick-control.json",
    .eval_windows = 16, .radio_prompts = 128, .radio_tokens = 64, .controls = 10, .radio_open = 1,
    .adist_lambda = "0.5",
    .est = {1, 5, 2, 3, 4, 3, 1, 2, 1},
};

static const char *const stage_names[9] = {"watermark key", "teacher", "benign calibration", "protected day",
                                           "unprotected day (control)", "students", "evaluation", "radioactivity",
                                           "report"};

/* ---------------------------------------------------------------- running steps */

typedef struct {
    const preset *p;
    const char *dir, *corpus;
    char self[4096];
    size_t threads;
    rt_buf steps; /* NUL-separated command lines, in order */
    size_t n_steps;
    pid_t server;
    int verbose;
    char adist_note[512]; /* the report's "antidistillation" entry (set by the students stage) */
    double t_start;
} demo;

static char *path_in(const demo *d, const char *name) {
    rt_buf b = {0};
    if (rt_buf_printf(&b, "%s/%s", d->dir, name)) return NULL;
    return b.data;
}

static int quote_arg(rt_buf *b, const char *a) {
    if (*a && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@") == strlen(a))
        return rt_buf_printf(b, "%s", a);
    if (rt_buf_printf(b, "'")) return -1;
    for (const char *p = a; *p; p++)
        if (*p == '\'' ? rt_buf_printf(b, "'\\''") : rt_buf_append(b, p, 1)) return -1;
    return rt_buf_printf(b, "'");
}

static int record_step(demo *d, char *const argv[], const char *stdout_path) {
    rt_buf b = {0};
    if (rt_buf_printf(&b, "retort")) return -1;
    for (size_t i = 1; argv[i]; i++)
        if (rt_buf_printf(&b, " ") || quote_arg(&b, argv[i])) {
            rt_buf_free(&b);
            return -1;
        }
    if (stdout_path && (rt_buf_printf(&b, " > ") || quote_arg(&b, stdout_path))) {
        rt_buf_free(&b);
        return -1;
    }
    int rc = rt_buf_append(&d->steps, b.data, b.len + 1);
    if (!rc) d->n_steps++;
    if (d->verbose) fprintf(stderr, "  $ %s\n", b.data);
    rt_buf_free(&b);
    return rc;
}

/* Signals (issue 17 #18): SIGTERM, SIGINT or SIGHUP to the demo is passed on as SIGTERM to the
 * running step and to the server, which stop cleanly (a training step saves its checkpoint);
 * the demo waits for them, starts nothing new, and exits 128 + signal. Only the handler and
 * spawn/wait touch these. */
static volatile sig_atomic_t g_signal, g_step_pid, g_server_pid;

static void on_demo_signal(int sig) {
    g_signal = sig;
    if (g_step_pid > 0) kill((pid_t)g_step_pid, SIGTERM);
    if (g_server_pid > 0) kill((pid_t)g_server_pid, SIGTERM);
}

static void catch_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_demo_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* Spawn this binary with argv (argv[0] ignored); stdout to stdout_path if given, stderr to
 * log_path if given (else inherited, so the child's progress bar shows). The child's pid is
 * known to the signal handler before any signal can be handled (they are blocked meanwhile;
 * the child starts with the demo's usual mask and default actions). */
static int spawn(demo *d, char **argv, const char *stdout_path, const char *log_path, pid_t *pid) {
    if (g_signal) return RT_FAIL("interrupted by signal %d; not starting %s", (int)g_signal, argv[1]);
    if (record_step(d, argv, stdout_path)) return -1;
    argv[0] = d->self;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (stdout_path) posix_spawn_file_actions_addopen(&fa, 1, stdout_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (log_path) {
        posix_spawn_file_actions_addopen(&fa, 2, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (!stdout_path) posix_spawn_file_actions_adddup2(&fa, 2, 1);
    }
    sigset_t block, old, dfl;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM), sigaddset(&block, SIGINT), sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &old);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGTERM), sigaddset(&dfl, SIGINT), sigaddset(&dfl, SIGHUP);
    posix_spawnattr_setsigmask(&at, &old);
    posix_spawnattr_setsigdefault(&at, &dfl);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int e = posix_spawn(pid, d->self, &fa, &at, argv, environ);
    if (!e) g_step_pid = (sig_atomic_t)*pid;
    sigprocmask(SIG_SETMASK, &old, NULL);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    if (e) return RT_FAIL("cannot start %s %s: %s", d->self, argv[1], strerror(e));
    return 0;
}

static int wait_child(pid_t pid, const char *what, const char *log_path) {
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return RT_FAIL("waiting for %s: %s", what, strerror(errno));
    g_step_pid = 0;
    if (g_signal) return RT_FAIL("interrupted by signal %d during %s", (int)g_signal, what);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    if (WIFSIGNALED(st))
        return RT_FAIL("step '%s' was killed by signal %d%s%s", what, WTERMSIG(st), log_path ? "; its log: " : "",
                       log_path ? log_path : "");
    return RT_FAIL("step '%s' failed (exit status %d)%s%s", what, WEXITSTATUS(st), log_path ? "; its log: " : "",
                   log_path ? log_path : " (its error is printed above)");
}

/* Run a step to completion. */
static int run(demo *d, char **argv, const char *stdout_path) {
    pid_t pid;
    if (spawn(d, argv, stdout_path, NULL, &pid)) return -1;
    char what[128];
    snprintf(what, sizeof what, "retort %s", argv[1]);
    return wait_child(pid, what, NULL);
}

static void server_stop(demo *d) {
    if (d->server <= 0) return;
    kill(d->server, SIGTERM);
    int st;
    while (waitpid(d->server, &st, 0) < 0 && errno == EINTR) {
    }
    d->server = 0;
    g_server_pid = 0;
}

/* Start `retort serve` in the background; returns its URL. */
static int server_start(demo *d, char **argv, const char *log_path, char *url, size_t url_cap) {
    char *port_file = path_in(d, "port");
    if (!port_file) return -1;
    unlink(port_file);
    pid_t pid;
    if (spawn(d, argv, NULL, log_path, &pid)) {
        free(port_file);
        return -1;
    }
    d->server = pid;
    g_server_pid = (sig_atomic_t)pid, g_step_pid = 0;
    int port = 0;
    for (int i = 0; i < 600 && !port; i++) { /* up to 60 s: loading the model is quick, but be patient */
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            d->server = 0;
            g_server_pid = 0;
            free(port_file);
            return RT_FAIL("the server exited before listening; its log: %s", log_path);
        }
        FILE *f = fopen(port_file, "r");
        if (f) {
            if (fscanf(f, "%d", &port) != 1) port = 0;
            fclose(f);
        }
        if (!port) usleep(100000);
    }
    free(port_file);
    if (!port) {
        server_stop(d);
        return RT_FAIL("the server did not start listening within 60 s; its log: %s", log_path);
    }
    snprintf(url, url_cap, "http://127.0.0.1:%d", port);
    return 0;
}

/* ---------------------------------------------------------------- data helpers */

static int write_text(const char *path, const char *text) {
    return rt_write_file_atomic(path, text, strlen(text));
}

/* The summary's harvest files, with each persona's kind. */
typedef struct {
    char *path, *kind;
} hfile;

static int read_harvests(const char *summary, hfile **out, size_t *n) {
    *out = NULL, *n = 0;
    json_error_t e;
    json_t *j = json_load_file(summary, 0, &e);
    if (!j) return RT_FAIL("%s:%d: %s", summary, e.line, e.text);
    json_t *ps = json_object_get(j, "personas");
    size_t i, cap = 0;
    json_t *p;
    int rc = 0;
    json_array_foreach(ps, i, p) {
        json_t *files = json_object_get(p, "harvest");
        const char *kind = json_string_value(json_object_get(p, "kind"));
        size_t k;
        json_t *f;
        json_array_foreach(files, k, f) {
            const char *path = json_string_value(json_object_get(f, "path"));
            if (!path || !rt_file_exists(path)) continue;
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                hfile *nh = rt_realloc(*out, cap * sizeof *nh, "harvest list");
                if (!nh) {
                    rc = -1;
                    goto done;
                }
                *out = nh;
            }
            (*out)[*n].path = rt_strdup(path);
            (*out)[*n].kind = rt_strdup(kind ? kind : "");
            (*n)++;
        }
    }
done:
    json_decref(j);
    return rc;
}

static void free_harvests(hfile *h, size_t n) {
    for (size_t i = 0; i < n; i++) free(h[i].path), free(h[i].kind);
    free(h);
}

/* Concatenate the harvest files into one JSONL; returns the number of lines. */
static int pool_harvests(const hfile *h, size_t n, const char *out, size_t *lines) {
    rt_atomic_file af;
    *lines = 0;
    if (rt_atomic_open(&af, out)) return -1;
    for (size_t i = 0; i < n; i++) {
        char *data = NULL;
        size_t len = 0;
        if (rt_read_file(h[i].path, &data, &len)) {
            rt_atomic_abort(&af);
            return -1;
        }
        for (size_t k = 0; k < len; k++) *lines += data[k] == '\n';
        int bad = rt_fwrite(data, 1, len, af.f, out);
        if (!bad && len && data[len - 1] != '\n') bad = rt_fwrite("\n", 1, 1, af.f, out), (*lines)++;
        free(data);
        if (bad) {
            rt_atomic_abort(&af);
            return -1;
        }
    }
    return rt_atomic_commit(&af);
}

/* Corpus lines (non-empty), for prompts and the clean control's data. */
typedef struct {
    char *data;
    char **line;
    size_t n;
} corpus_lines;

static int corpus_load(const char *path, corpus_lines *c) {
    memset(c, 0, sizeof *c);
    size_t len;
    if (rt_read_file(path, &c->data, &len)) return -1;
    size_t cap = 0;
    for (char *p = c->data, *e; p && *p; p = e ? e + 1 : NULL) {
        e = strchr(p, '\n');
        if (e) *e = 0;
        while (*p == ' ') p++;
        if (strlen(p) < 24) continue;
        if (c->n == cap) {
            cap = cap ? cap * 2 : 4096;
            char **nl = rt_realloc(c->line, cap * sizeof *nl, "corpus lines");
            if (!nl) return -1;
            c->line = nl;
        }
        c->line[c->n++] = p;
    }
    if (c->n < 100) return RT_FAIL("%s: expected a text corpus of at least 100 lines, found %zu", path, c->n);
    return 0;
}

static void corpus_free(corpus_lines *c) {
    free(c->data);
    free(c->line);
}

/* One JSONL record: {"prompt"} or, with a completion, {"prompt", "completion"}. */
static int json_line(rt_buf *b, const char *prompt, const char *completion) {
    record r = {.prompt = (char *)prompt,
                .prompt_len = strlen(prompt),
                .completion = (char *)completion,
                .completion_len = completion ? strlen(completion) : 0};
    json_t *j = record_to_json(&r);
    int rc = j ? record_append_line(b, j) : -1;
    json_decref(j);
    return rc;
}

/* The clean control's training data: `n` corpus passages in the harvest format, each a
 * prompt as the harvesters send it and the passage's real continuation — text no server
 * watermarked — taken from places spread over the corpus (seeded). */
static int write_clean_data(const corpus_lines *c, size_t n, const char *out) {
    rt_buf b = {0};
    rt_rng r;
    rt_rng_seed(&r, 4242);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        size_t k = (size_t)rt_rng_below(&r, c->n - 2);
        rt_buf p = {0};
        rc = rt_buf_printf(&p, "Continue this passage in the same style.\n\n%s", c->line[k]);
        if (!rc) rc = json_line(&b, p.data, c->line[k + 1]);
        rt_buf_free(&p);
    }
    if (!rc) rc = rt_write_file_atomic(out, b.data ? b.data : "", b.len);
    rt_buf_free(&b);
    return rc;
}

/* Radioactivity prompts: the starts of corpus passages, as the harvesters phrase them. */
static int write_prompts(const corpus_lines *c, size_t n, const char *out) {
    rt_buf b = {0};
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const char *l = c->line[(i * 7919 + 13) % c->n];
        char head[96];
        snprintf(head, sizeof head, "%.60s", l);
        char *sp = strrchr(head, ' ');
        if (sp && sp > head + 20) *sp = 0;
        rt_buf p = {0};
        rc = rt_buf_printf(&p, "Continue this passage in the same style.\n\n%s", head);
        if (!rc) rc = json_line(&b, p.data, NULL);
        rt_buf_free(&p);
    }
    if (!rc) rc = rt_write_file_atomic(out, b.data ? b.data : "", b.len);
    rt_buf_free(&b);
    return rc;
}

/* Open-mode reading text: the corpus's last passages (human text, independent of the key). */
static int write_human(const corpus_lines *c, const char *out) {
    rt_buf b = {0};
    int rc = 0;
    size_t from = c->n > 600 ? c->n - 600 : 0;
    for (size_t i = from; i < c->n && !rc; i++) rc = rt_buf_printf(&b, "%s\n", c->line[i]);
    if (!rc) rc = rt_write_file_atomic(out, b.data ? b.data : "", b.len);
    rt_buf_free(&b);
    return rc;
}

/* The antidistillation task: held-out corpus text, the text the harvester's student is scored on
 * and so the text the defender protects. `eval --split val` (like train) holds out every 20th
 * 32 KiB chunk, each ending at the last newline before its end (so chunk 19 starts within a line
 * or so of byte 19 * 32 KiB per chunk); this takes whole lines from well inside chunk 19. */
static int write_adist_task(const char *corpus, const char *out) {
    const size_t chunk = 32 * 1024, lo = 19 * chunk + 4096, hi = 20 * chunk - 4096;
    char *text = NULL;
    size_t len = 0;
    if (rt_read_file(corpus, &text, &len)) return -1;
    if (len < hi) {
        free(text);
        return RT_FAIL("%s: %zu bytes, too short for a held-out antidistillation task (needs %zu)", corpus, len, hi);
    }
    const char *s = memchr(text + lo, '\n', hi - lo), *e = text + hi;
    while (e > s && e[-1] != '\n') e--;
    int rc = s && e > s + 1 ? rt_write_file_atomic(out, s + 1, (size_t)(e - s - 1))
                            : RT_FAIL("%s: no whole lines in the held-out chunk", corpus);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- stages */

#define A(...) ((char *[]){NULL, __VA_ARGS__, NULL})
#define SZ(buf, v) (snprintf(buf, sizeof buf, "%zu", (size_t)(v)), buf)

static void stage_begin(const demo *d, int i) {
    fprintf(stderr, "\n[%d/9] %s — about %.0f s  (elapsed %.0f s)\n", i + 1, stage_names[i], d->p->est[i],
            rt_now() - d->t_start);
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

static int stage_teacher(demo *d, const char *teacher, int *trained) {
    const preset *p = d->p;
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "{\"corpus\": \"%s\", \"vocab\": %zu, \"dim\": %zu, \"layers\": %zu, \"heads\": %zu, \"kv\": %zu, "
             "\"ffn\": %zu, \"seq\": %zu, \"batch\": %zu, \"steps\": %zu}\n",
             d->corpus, p->vocab, p->dim, p->layers, p->heads, p->kv, p->ffn, p->seq, p->batch, p->steps);
    char *stamp = path_in(d, "teacher.config.json");
    if (!stamp) return -1;
    *trained = 0;
    if (rt_file_exists(teacher) && stamp_matches(stamp, cfg)) {
        fprintf(stderr, "  reusing %s (same corpus and shape; delete it to train afresh)\n", teacher);
        free(stamp);
        return 0;
    }
    unlink(stamp);
    char v[24], dm[24], l[24], h[24], k[24], f[24], t[24], b[24], s[24], w[24], th[24];
    int rc = run(d,
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
    char *port_file = path_in(d, "port");
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
    if (server_start(d, serve, log.data, url, sizeof url)) goto done;
    char *sim[20] = {NULL, "simulate", "--endpoint", url, "--db", (char *)db, "--scenario", scen.data, "--corpus",
                     (char *)d->corpus, "--speed", "0", "--summary", (char *)summary};
    if (harvest_dir) sim[14] = "--harvest-dir", sim[15] = (char *)harvest_dir;
    rc = run(d, sim, NULL);
    server_stop(d);
done:
    free(port_file);
    rt_buf_free(&scen), rt_buf_free(&log), rt_buf_free(&side);
    return rc;
}

static int stage_calibrate(demo *d, const char *teacher, const char *reference, int force) {
    /* the reference depends on the teacher (its hidden states) and on the benign scenario */
    char *stamp = path_in(d, "guard-reference.scenario.json"), *db = path_in(d, "calib.db"),
         *sum = path_in(d, "calib.summary.json");
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
    if (!rc) rc = run(d, A("guard", "calibrate", "--db", db, "--out", (char *)reference), NULL);
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
    char *log = path_in(d, task ? "logs/antidistill.stdout" : "logs/regenerate.stdout");
    char **argv = task ? A("data", "generate", "--model", (char *)teacher, "--prompts", (char *)prompts,
                           "--max-tokens", SZ(mt, d->p->max_tokens), "--watermark-key-file", (char *)key,
                           "--antidistill-proxy", (char *)teacher, "--antidistill-task", (char *)task,
                           "--antidistill-lambda", (char *)d->p->adist_lambda, "--threads", SZ(th, d->threads),
                           "--quiet", "--out", (char *)out)
                       : A("data", "generate", "--model", (char *)teacher, "--prompts", (char *)prompts,
                           "--max-tokens", SZ(mt, d->p->max_tokens), "--watermark-key-file", (char *)key,
                           "--threads", SZ(th, d->threads), "--quiet", "--out", (char *)out);
    int rc = log ? run(d, argv, log) : -1;
    free(log);
    return rc;
}

/* The teacher's mean loss (nats/token) on a data file's completions: what antidistillation costs
 * the text's quality, as the teacher itself judges it. */
static int teacher_loss_on(demo *d, const char *teacher, const char *data, const char *json_out, double *loss) {
    char th[24];
    char *sink = path_in(d, "logs/eval.stdout");
    int rc = sink ? run(d,
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
    const preset *p = d->p;
    char dm[24], l[24], h[24], k[24], f[24], t[24], b[24], s[24], th[24];
    return run(d,
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
    char *sink = path_in(d, "logs/eval.stdout");
    int rc = sink ? run(d, argv, sink) : -1;
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
    return run(d, argv, out);
}

/* ---------------------------------------------------------------- the command */

static int find_corpus(demo *d, char *buf, size_t cap) {
    if (d->corpus) {
        if (!rt_file_exists(d->corpus)) return RT_FAIL("%s: no such corpus file", d->corpus);
        return 0;
    }
    if (rt_file_exists("build/data/kjv.txt")) {
        d->corpus = "build/data/kjv.txt";
        return 0;
    }
    snprintf(buf, cap, "%s/kjv.txt", d->dir);
    d->corpus = buf;
    if (rt_file_exists(buf)) return 0;
    fprintf(stderr, "  writing the default corpus (King James Bible, Debian's bible-kjv) to %s\n", buf);
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp", buf);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    char *argv[] = {"bible", "Gen1:1-Rev22:21", NULL};
    int e = posix_spawnp(&pid, "bible", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e) return RT_FAIL("no corpus: give --corpus FILE, or install Debian's bible-kjv (apt-get install bible-kjv) "
                          "for the default: %s",
                          strerror(e));
    if (wait_child(pid, "bible Gen1:1-Rev22:21", NULL)) return -1;
    if (rename(tmp, buf)) return RT_FAIL("%s: cannot rename %s: %s", buf, tmp, strerror(errno));
    return 0;
}

typedef struct {
    char *key, *teacher, *reference, *db_on, *db_off, *sum_on, *sum_off, *hv_on, *hv_off, *stud, *data_on,
        *data_off, *data_clean, *m_on, *m_off, *m_clean, *prompts, *human, *report, *logs, *adist_task, *data_adist,
        *m_adist, *data_regen, *m_regen;
} paths;

static int paths_make(const demo *d, paths *P) {
    memset(P, 0, sizeof *P);
    const char *names[] = {"watermark.key", "teacher.gguf", "guard-reference.json", "gateway.db", "control.db",
                           "day.summary.json", "control.summary.json", "harvest-guard-on", "harvest-guard-off",
                           "students", "students/harvest-guard-on.jsonl", "students/harvest-guard-off.jsonl",
                           "students/clean-corpus.jsonl", "students/student-guard-on.gguf",
                           "students/student-guard-off.gguf", "students/student-clean.gguf",
                           "radioactivity-prompts.jsonl", "radioactivity-human.txt", "report.html", "logs",
                           "students/antidistill-task.txt", "students/harvest-guard-off-antidistill.jsonl",
                           "students/student-guard-off-antidistill.gguf", "students/harvest-guard-off-regenerated.jsonl",
                           "students/student-guard-off-regenerated.gguf"};
    char **dst[] = {&P->key, &P->teacher, &P->reference, &P->db_on, &P->db_off, &P->sum_on, &P->sum_off, &P->hv_on,
                    &P->hv_off, &P->stud, &P->data_on, &P->data_off, &P->data_clean, &P->m_on, &P->m_off,
                    &P->m_clean, &P->prompts, &P->human, &P->report, &P->logs, &P->adist_task, &P->data_adist,
                    &P->m_adist, &P->data_regen, &P->m_regen};
    for (size_t i = 0; i < RT_ARRAY_LEN(names); i++)
        if (!(*dst[i] = path_in(d, names[i]))) return -1;
    return 0;
}

static void paths_free(paths *P) {
    char **all = (char **)P; /* every member of paths is a malloc'd char * (see paths_make) */
    for (size_t i = 0; i < sizeof *P / sizeof(char *); i++) free(all[i]);
}

static int record_evidence(demo *d, const paths *P, const hfile *hon, size_t non, const hfile *hoff, size_t noff,
                           char *const *radio_json) {
    gw_conn *db = NULL;
    if (report_db_open(&db, P->db_on)) return -1;
    int rc = -1;
    char key[64], buf[256];
    rt_buf on_names = {0}, off_names = {0};
    if (rt_buf_append(&on_names, "", 0) || rt_buf_append(&off_names, "", 0)) goto done;
    for (int pass = 0; pass < 2; pass++) {
        const hfile *h = pass ? hoff : hon;
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
    snprintf(buf, sizeof buf, "retort demo%s --dir %s", d->p == &preset_quick ? " --quick" : "", d->dir);
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

static int demo_run(demo *d) {
    const preset *p = d->p;
    paths P;
    hfile *hon = NULL, *hoff = NULL;
    size_t non = 0, noff = 0;
    char *radio[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
    corpus_lines cl = {0};
    char corpus_buf[4200];
    int rc = -1;
    if (paths_make(d, &P)) return -1;
    if (rt_mkdir_p(d->dir) || rt_mkdir_p(P.logs) || rt_mkdir_p(P.stud)) goto done;
    if (find_corpus(d, corpus_buf, sizeof corpus_buf)) goto done;
    double total = 0;
    int cached = rt_file_exists(P.teacher) && rt_file_exists(P.reference);
    for (int i = 0; i < 9; i++) total += (cached && (i == 1 || i == 2)) ? 2 : p->est[i];
    fprintf(stderr,
            "retort demo (%s): a served teacher, harvesters, a guard, a watermark, and the students they build.\n"
            "Working in %s; corpus %s; %zu threads. Estimated time on 2 idle cores: about %.0f min%s.\n",
            p->name, d->dir, d->corpus, d->threads, ceil(total / 60),
            cached ? " (teacher and calibration reused)" : "");

    stage_begin(d, 0);
    if (!rt_file_exists(P.key)) {
        char kj[4200];
        snprintf(kj, sizeof kj, "%s/keygen.json", P.logs);
        if (run(d, A("watermark", "keygen", "--out", P.key), kj)) goto done;
    } else {
        fprintf(stderr, "  reusing %s\n", P.key);
    }

    stage_begin(d, 1);
    int trained = 0;
    if (stage_teacher(d, P.teacher, &trained)) goto done;

    stage_begin(d, 2);
    if (stage_calibrate(d, P.teacher, P.reference, trained)) goto done;

    stage_begin(d, 3);
    if (simulate_day(d, P.teacher, P.key, P.reference, SERVE_GUARDED, P.db_on, p->day, "day", P.sum_on, P.hv_on))
        goto done;
    stage_begin(d, 4);
    if (simulate_day(d, P.teacher, P.key, P.reference, SERVE_UNGUARDED, P.db_off, p->control, "control", P.sum_off,
                     P.hv_off))
        goto done;

    stage_begin(d, 5);
    if (read_harvests(P.sum_on, &hon, &non) || read_harvests(P.sum_off, &hoff, &noff)) goto done;
    size_t lines_on = 0, lines_off = 0;
    if (pool_harvests(hon, non, P.data_on, &lines_on) || pool_harvests(hoff, noff, P.data_off, &lines_off))
        goto done;
    if (lines_on == 0 || lines_off == 0) {
        RT_FAIL("a harvest is empty (%zu lines with the guard, %zu without): nothing to train a student on; the "
                "servers' logs are in %s",
                lines_on, lines_off, P.logs);
        goto done;
    }
    fprintf(stderr, "  harvested: %zu answers with the guard, %zu without\n", lines_on, lines_off);
    if (corpus_load(d->corpus, &cl) || write_clean_data(&cl, lines_off, P.data_clean) ||
        write_prompts(&cl, p->radio_prompts, P.prompts) || write_human(&cl, P.human))
        goto done;
    if (sft(d, P.data_on, P.teacher, P.m_on) || sft(d, P.data_off, P.teacher, P.m_off) ||
        sft(d, P.data_clean, P.teacher, P.m_clean))
        goto done;
    fprintf(stderr, "  the unguarded harvest served again with antidistillation sampling (lambda %s)\n", p->adist_lambda);
    if (write_adist_task(d->corpus, P.adist_task) ||
        regenerate_harvest(d, P.data_off, P.teacher, P.key, P.adist_task, P.data_adist) ||
        regenerate_harvest(d, P.data_off, P.teacher, P.key, NULL, P.data_regen) ||
        sft(d, P.data_adist, P.teacher, P.m_adist) || sft(d, P.data_regen, P.teacher, P.m_regen))
        goto done;
    {
        char ja[4200], jr[4200];
        double la, lr;
        snprintf(ja, sizeof ja, "%s/eval-teacher-on-antidistilled.json", P.stud);
        snprintf(jr, sizeof jr, "%s/eval-teacher-on-regenerated.json", P.stud);
        if (teacher_loss_on(d, P.teacher, P.data_adist, ja, &la) || teacher_loss_on(d, P.teacher, P.data_regen, jr, &lr))
            goto done;
        snprintf(d->adist_note, sizeof d->adist_note,
                 "lambda %s, eps 0.01, proxy: the teacher, task: %s (held-out corpus text); the teacher's own loss on "
                 "the text it served: %.3f nats/token antidistilled, %.3f plain (same prompts, sampler and seed)",
                 p->adist_lambda, P.adist_task, la, lr);
    }

    stage_begin(d, 6);
    {
        char e[6][4200];
        snprintf(e[0], sizeof e[0], "%s/eval-teacher.json", P.stud);
        snprintf(e[1], sizeof e[1], "%s/eval-guard-on.json", P.stud);
        snprintf(e[2], sizeof e[2], "%s/eval-guard-off.json", P.stud);
        snprintf(e[3], sizeof e[3], "%s/eval-clean.json", P.stud);
        snprintf(e[4], sizeof e[4], "%s/eval-antidistill.json", P.stud);
        snprintf(e[5], sizeof e[5], "%s/eval-regenerated.json", P.stud);
        if (eval_model(d, P.teacher, NULL, e[0]) || eval_model(d, P.m_on, P.teacher, e[1]) ||
            eval_model(d, P.m_off, P.teacher, e[2]) || eval_model(d, P.m_clean, P.teacher, e[3]) ||
            eval_model(d, P.m_adist, P.teacher, e[4]) || eval_model(d, P.m_regen, P.teacher, e[5]))
            goto done;
    }

    stage_begin(d, 7);
    {
        const char *models[3] = {P.m_on, P.m_off, P.m_clean};
        const char *tags[3] = {"guard-on", "guard-off", "clean"};
        for (int mode = 0; mode < (p->radio_open ? 2 : 1); mode++)
            for (int i = 0; i < 3; i++) {
                char out[4200];
                snprintf(out, sizeof out, "%s/radioactivity-%s-%s.json", P.stud, tags[i], mode ? "open" : "closed");
                size_t len;
                if (radioactivity(d, models[i], P.teacher, P.key, mode ? P.human : P.prompts, mode, out) ||
                    rt_read_file(out, &radio[mode * 3 + i], &len))
                    goto done;
            }
    }

    stage_begin(d, 8);
    /* the report is written in-process below; it is listed as the command that does the same */
    if (record_step(d, A("report", "--db", P.db_on, "--out", P.report), NULL) ||
        record_evidence(d, &P, hon, non, hoff, noff, radio))
        goto done;
    report_options ro;
    report_options_defaults(&ro);
    ro.db_path = P.db_on, ro.out_path = P.report;
    if (report_write(&ro)) goto done;
    gw_conn *db = NULL;
    char *summary = NULL;
    if (report_db_open(&db, P.db_on)) goto done;
    int e = report_summary(db, &summary);
    report_db_close(db);
    if (e) goto done;
    char took[32];
    rt_fmt_duration(took, sizeof took, rt_now() - d->t_start);
    fflush(stderr);
    printf("report: %s\n%s", P.report, summary);
    fprintf(stderr, "demo finished in %s\n", took);
    fflush(stdout);
    free(summary);
    rc = 0;
done:
    server_stop(d);
    free_harvests(hon, non), free_harvests(hoff, noff);
    for (int i = 0; i < 6; i++) free(radio[i]);
    corpus_free(&cl);
    paths_free(&P);
    return rc;
}

int cmd_demo(int argc, char **argv) {
    demo d = {0};
    int quick = 0, verbose = 0;
    const char *dir = "retort-demo", *corpus = NULL;
    size_t threads = 0;
    cli_opt opts[] = {
        {"--quick", CLI_FLAG, &quick, "smaller models and traffic: about 20 s on an idle 2-core machine (docs/demo.md; for CI)", 0, 0},
        {"--dir", CLI_STR, &dir, "DIR: where everything is written; the teacher is reused from here (default retort-demo)",
         0, 0},
        {"--corpus", CLI_STR, &corpus,
         "FILE: training text (default build/data/kjv.txt, else the King James Bible from `bible`)", 0, 0},
        {"--threads", CLI_SIZE, &threads, "N: threads per step (default: all cores)", 0, 0},
        {"--verbose", CLI_FLAG, &verbose, "print each step's command line", 0, 0},
    };
    cli_cmd_info info = {
        "demo", "retort demo [--quick] [--dir DIR] [--corpus FILE]",
        "The whole story on the built-in corpus: train (or reuse) a teacher; serve it with the\n"
        "watermark, accounts and the guard on; run a simulated day of benign users and harvesters\n"
        "(bulk, log-prob, slow-and-low, template, mimicry, a sybil group, corpus walk) on an\n"
        "accelerated clock; the guard suspends them and each keeps what it got; the same attackers\n"
        "harvest the same server with the guard off (the control); students are distilled (sft)\n"
        "from both harvests and from clean text, and from the unguarded harvest's prompts answered\n"
        "again with antidistillation sampling and plainly; each is evaluated and tested for the watermark\n"
        "(radioactivity, with control keys); then the evidence report. Ends with the report's path\n"
        "and a five-line summary. Every step is an ordinary retort command, listed in the report."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    d.p = quick ? &preset_quick : &preset_full;
    d.dir = dir, d.corpus = corpus, d.verbose = verbose, d.t_start = rt_now();
    ssize_t n = readlink("/proc/self/exe", d.self, sizeof d.self - 1);
    if (n <= 0) {
        fprintf(stderr, "retort demo: error: cannot find this program's path (/proc/self/exe): %s\n", strerror(errno));
        return 1;
    }
    d.self[n] = 0;
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    d.threads = threads ? threads : (size_t)(nc > 0 ? nc : 1);
    catch_signals();
    int rc = demo_run(&d);
    rt_buf_free(&d.steps);
    if (g_signal) {
        fprintf(stderr,
                "retort demo: interrupted by signal %d: stopped the running step and the server (no process of the "
                "demo is left); run it again to continue (a finished teacher in %s is reused)\n",
                (int)g_signal, d.dir);
        return 128 + (int)g_signal;
    }
    return rc ? cli_fail("demo") : 0;
}
