/*
 * cli_signal.c — a graceful stop on SIGINT / SIGTERM for the long-running training commands
 * (train, distill, sft): the handler only sets a flag that train_run checks between steps, so
 * the step in progress finishes, its log row is written whole and a checkpoint is saved; then
 * the command says what was saved and exits 128 + signal. A second signal of the same kind
 * acts as usual (the handler resets itself), so a stuck run can still be stopped at once.
 * Not for the server (src/serve has its own shutdown) or the demo (cmd_demo.c passes signals on
 * to its children).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static volatile sig_atomic_t g_interrupt;

static void on_interrupt(int sig) {
    g_interrupt = sig;
}

const volatile sig_atomic_t *cli_catch_interrupt(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return &g_interrupt;
}

int cli_report_interrupt(const char *cmd, size_t steps_done, size_t steps, const char *ckpt, const char *log) {
    int sig = g_interrupt ? (int)g_interrupt : SIGINT;
    fprintf(stderr,
            "retort %s: interrupted (%s) after step %zu of %zu: saved the checkpoint %s; %s ends with step %zu; "
            "no final model was written. Continue with the same command and --resume.\n",
            cmd, sig == SIGTERM ? "SIGTERM" : "SIGINT", steps_done, steps, ckpt, log, steps_done);
    return 128 + sig;
}
