/*
 * demo_proc.c — `retort demo`'s process orchestration (contract in demo.h): each step is this
 * same binary run as a child process and recorded as the command line a user can rerun; the
 * server runs in the background; signals to the demo are passed on to both. Also the paths
 * under --dir and the default corpus. Not the stages (demo_stages.c) nor any library work.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "demo.h"

extern char **environ;

char *demo_path(const demo *d, const char *name) {
    rt_buf b = {0};
    if (rt_buf_printf(&b, "%s/%s", d->dir, name)) return NULL;
    return b.data;
}

int demo_quote(rt_buf *b, const char *a) {
    if (*a && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@") == strlen(a))
        return rt_buf_printf(b, "%s", a);
    if (rt_buf_printf(b, "'")) return -1;
    for (const char *p = a; *p; p++)
        if (*p == '\'' ? rt_buf_printf(b, "'\\''") : rt_buf_append(b, p, 1)) return -1;
    return rt_buf_printf(b, "'");
}

/* "retort ARG..." of argv[1..], shell-quoted. */
static int argv_line(rt_buf *b, char *const argv[]) {
    if (rt_buf_printf(b, "retort")) return -1;
    for (size_t i = 1; argv[i]; i++)
        if (rt_buf_printf(b, " ") || demo_quote(b, argv[i])) return -1;
    return 0;
}

/* Append the finished line in b to the steps (b is freed). */
static int push_step(demo *d, rt_buf *b, int rc) {
    if (!rc) rc = rt_buf_append(&d->steps, b->data ? b->data : "", b->len + 1);
    if (!rc) d->n_steps++;
    if (!rc && d->verbose) fprintf(stderr, "  $ %s\n", b->data);
    rt_buf_free(b);
    return rc;
}

int demo_record_step(demo *d, char *const argv[], const char *stdout_path, const char *log_path) {
    rt_buf b = {0};
    int rc = argv_line(&b, argv);
    if (!rc && stdout_path) rc = rt_buf_printf(&b, " > ") || demo_quote(&b, stdout_path);
    if (!rc && log_path) /* stderr to the log, and stdout too when it has no file of its own */
        rc = rt_buf_printf(&b, stdout_path ? " 2> " : " > ") || demo_quote(&b, log_path) ||
             (!stdout_path && rt_buf_printf(&b, " 2>&1"));
    return push_step(d, &b, rc);
}

int demo_record_write(demo *d, char *const argv[], const char *shell, const char *out, const char *what,
                      const char *inputs) {
    rt_buf b = {0};
    int rc = 0;
    if (argv) rc = argv_line(&b, argv) || rt_buf_printf(&b, "  ");
    else if (shell) rc = rt_buf_printf(&b, "%s  ", shell);
    if (!rc)
        rc = rt_buf_printf(&b, "# %s: wrote %s (%s) from %s", argv || shell ? "in the demo's process; the same" :
                                                                   "in the demo's process, no command does this",
                           out, what, inputs);
    return push_step(d, &b, rc);
}

/* Signals (issue 17 #18): SIGTERM, SIGINT or SIGHUP to the demo is passed on as SIGTERM to the
 * running step and to the server, which stop cleanly (a training step saves its checkpoint);
 * the demo waits for them, starts nothing new, and exits 128 + signal. Only the handler and
 * spawn/wait touch these. */
static volatile sig_atomic_t g_signal, g_step_pid, g_server_pid[DEMO_SERVERS];

static void on_demo_signal(int sig) {
    g_signal = sig;
    if (g_step_pid > 0) kill((pid_t)g_step_pid, SIGTERM);
    for (int k = 0; k < DEMO_SERVERS; k++)
        if (g_server_pid[k] > 0) kill((pid_t)g_server_pid[k], SIGTERM);
}

int demo_signal(void) { return (int)g_signal; }

void demo_catch_signals(void) {
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
    if (demo_record_step(d, argv, stdout_path, log_path)) return -1;
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

int demo_run(demo *d, char **argv, const char *stdout_path) {
    pid_t pid;
    if (spawn(d, argv, stdout_path, NULL, &pid)) return -1;
    char what[128];
    snprintf(what, sizeof what, "retort %s", argv[1]);
    return wait_child(pid, what, NULL);
}

/* Stop the background servers, the last started first (a gateway before its upstream: stopping
 * flushes the guard's and the ledger's writers while the upstream is still there). */
void demo_server_stop(demo *d) {
    for (size_t k = d->n_servers; k-- > 0;) {
        kill(d->server[k], SIGTERM);
        int st;
        while (waitpid(d->server[k], &st, 0) < 0 && errno == EINTR) {
        }
        d->server[k] = 0;
        g_server_pid[k] = 0;
    }
    d->n_servers = 0;
}

/* The port the server writes to port_file once it listens (up to 60 s), or 0. */
static int wait_port(demo *d, pid_t pid, const char *port_file) {
    int port = 0;
    for (int i = 0; i < 600 && !port; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            d->server[--d->n_servers] = 0, g_server_pid[d->n_servers] = 0;
            return -1;
        }
        FILE *f = fopen(port_file, "r");
        if (f) {
            if (fscanf(f, "%d", &port) != 1) port = 0;
            fclose(f);
        }
        if (!port) usleep(100000);
    }
    return port;
}

int demo_server_start(demo *d, char **argv, const char *log_path, const char *port_file, char *url, size_t url_cap) {
    if (d->n_servers == DEMO_SERVERS) return RT_FAIL("internal error: more than %d background servers", DEMO_SERVERS);
    unlink(port_file);
    pid_t pid;
    if (spawn(d, argv, NULL, log_path, &pid)) return -1;
    d->server[d->n_servers] = pid;
    g_server_pid[d->n_servers++] = (sig_atomic_t)pid, g_step_pid = 0;
    int port = wait_port(d, pid, port_file);
    if (port < 0) return RT_FAIL("the server exited before listening; its log: %s", log_path);
    if (!port) {
        demo_server_stop(d);
        return RT_FAIL("the server did not start listening within 60 s; its log: %s", log_path);
    }
    snprintf(url, url_cap, "http://127.0.0.1:%d", port);
    return 0;
}

int demo_find_corpus(demo *d) {
    char *buf = d->corpus_buf;
    size_t cap = sizeof d->corpus_buf;
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
    rt_buf line = {0};
    int rc = rt_buf_printf(&line, "bible Gen1:1-Rev22:21 > ") || demo_quote(&line, buf);
    return push_step(d, &line, rc);
}

int demo_paths_make(demo *d) {
    demo_paths *P = &d->P;
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
        if (!(*dst[i] = demo_path(d, names[i]))) return -1;
    return 0;
}

void demo_paths_free(demo_paths *P) {
    char **all = (char **)P; /* every member of demo_paths is a malloc'd char * (see paths_make) */
    for (size_t i = 0; i < sizeof *P / sizeof(char *); i++) free(all[i]);
}

