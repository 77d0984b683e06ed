/*
 * cli.h — what every subcommand shares: a table-driven option parser that prints --help
 * from the table and names the offending flag on error, and the subcommand entry points.
 * Only src/cli may exit(); subcommands return their exit status to main.
 */
#ifndef RETORT_CLI_H
#define RETORT_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

typedef enum {
    CLI_STR,    /* const char * */
    CLI_SIZE,   /* size_t */
    CLI_U64,    /* uint64_t */
    CLI_I64,    /* int64_t */
    CLI_FLOAT,  /* float */
    CLI_DOUBLE, /* double */
    CLI_FLAG,   /* int, set to 1 */
} cli_kind;

typedef struct {
    const char *name; /* "--steps" */
    cli_kind kind;
    void *dst;
    const char *help; /* one line; "VALUE: description (default X)" style */
    int required;
    int seen;         /* set by cli_parse */
} cli_opt;

typedef struct {
    const char *name;    /* "train" */
    const char *usage;   /* "retort train --data FILE ... --out M.gguf" */
    const char *summary; /* a paragraph printed by --help */
} cli_cmd_info;

/* Parse argv[1..] (argv[0] is the subcommand). Positional arguments go to pos (up to
 * max_pos; more is an error). Returns 0 to run, 1 if --help was printed (exit 0), and 2
 * after printing an error naming the flag (exit 2). */
int cli_parse(int argc, char **argv, cli_opt *opts, size_t n_opts, const cli_cmd_info *info,
              const char **pos, size_t max_pos, size_t *n_pos);
/* Print "retort <cmd>: error: <rt_errmsg()>" and return 1 (the exit status for failures). */
int cli_fail(const char *cmd);
/* Was option `name` given on the command line? */
int cli_seen(const cli_opt *opts, size_t n_opts, const char *name);
/* Set kernel threads from --threads (0 = all cores). */
void cli_set_threads(size_t threads);

/* subcommands: each returns the process exit status */
int cmd_train(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_info(int argc, char **argv);
/* distillation (src/distill) */
int cmd_distill(int argc, char **argv);
int cmd_cache_teacher(int argc, char **argv);
int cmd_sft(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_eval_plot(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_harvest(int argc, char **argv);
int cmd_guard(int argc, char **argv);
int cmd_simulate(int argc, char **argv);

#endif
