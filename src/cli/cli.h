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
#include "../defend/defend.h"
#include "../model/model.h"
#include "../serve/serve.h"
#include "../train/train.h"

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

/* serve and gateway (cmd_serve.c): the guard's hooks (go != NULL), the admin routes, start,
 * the banner, --port-file (rt_write_file_atomic), then wait for SIGINT/SIGTERM and stop.
 * watermark: the scheme's JSON for the banner, or NULL. Returns the exit status. */
int cli_serve_run(const char *cmd, serve_options *o, guard_options *go, const char *port_file, const char *watermark);
/* gateway: cli_serve_run that also rereads key_file (--upstream-key-file) on SIGHUP, and when
 * the file changes (checked every second; a change is read once it has held still for a
 * check, so a file written in place is not read half-written) and presents the new key from
 * the next request on. A key file that cannot be read keeps the current key (warning). */
int cli_gateway_run(serve_options *o, guard_options *go, const char *port_file, const char *key_file);
/* The upstream key: key_file's first line, whitespace trimmed (cmd_gateway.c). NULL on error. */
char *cli_read_upstream_key(const char *path);

/* The flags serve and gateway share around the HTTP layer: the test clock, trusted proxies,
 * keyless and per-address connection limits, idle timeout, --verbose and the guard's flags.
 * cli_server_opts writes CLI_SERVER_OPTS entries into dst (the values land in o, go and f);
 * after cli_parse, cli_server_apply checks them and moves them into o. It returns 2 (usage
 * error, message printed for cmd) or 0, with *guard_on set when any guard flag was given. */
typedef struct {
    size_t keyless_rpm;  /* default 60; 0 = no limit */
    size_t conn_timeout; /* seconds, default 20 */
    int verbose;
    int guard;           /* --guard */
} cli_server_flags;
#define CLI_SERVER_OPTS 12
void cli_server_flags_defaults(cli_server_flags *f);
size_t cli_server_opts(cli_opt *dst, serve_options *o, guard_options *go, cli_server_flags *f);
int cli_server_apply(const char *cmd, const cli_server_flags *f, const guard_options *go, serve_options *o,
                     int *guard_on);

/* A graceful stop for training commands (cli_signal.c): after cli_catch_interrupt(), SIGINT
 * and SIGTERM set the returned flag (give it to train_options.interrupt); a second signal acts
 * as usual. cli_report_interrupt prints what was saved and returns the exit status (128+sig). */
#include <signal.h>
const volatile sig_atomic_t *cli_catch_interrupt(void);
int cli_report_interrupt(const char *cmd, size_t steps_done, size_t steps, const char *ckpt, const char *log);

/* subcommands: each returns the process exit status */
int cmd_train(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
/* distillation (src/distill) */
int cmd_distill(int argc, char **argv);
int cmd_cache_teacher(int argc, char **argv);
int cmd_sft(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_eval_plot(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_gateway(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_harvest(int argc, char **argv);
int cmd_guard(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
int cmd_watermark(int argc, char **argv);
int cmd_radioactivity(int argc, char **argv);
/* the whole story (src/report) */
int cmd_report(int argc, char **argv);
int cmd_demo(int argc, char **argv);

/* Watermark flags (src/mark), for any command that samples or detects. cli_mark_opts writes
 * its entries into dst (room for 7 needed) pointing into o (mark_options_init it first) and
 * returns how many: prefixed = 1 gives --watermark-key-file, --watermark-config,
 * --watermark-scheme, --watermark-gamma, --watermark-delta, --watermark-context (generate,
 * serve); 0 gives --key-file, --config, --scheme, --gamma, --delta, --context and --server-db
 * (detectors: the parameters a server recorded in its gateway database). After cli_parse,
 * cli_mark_setup resolves them: *enabled = 0 when no key was given (other watermark flags
 * without a key are an error), else c (and key, if non-NULL) are ready for mark_attach. */
/* Shared flag tables: each writes its entries into dst and returns how many; the help shows
 * the defaults the destination holds when it is called (set defaults first). Commands keep
 * their own entries first, then append these: cli_opt opts[CLI_MAX_OPTS] = {...}; n =
 * cli_count(opts); n += cli_shape_opts(opts + n, ...); ... A new flag for every trainer goes
 * into cli_train_opts once. */
#define CLI_MAX_OPTS 64
/* Entries of opts before the first empty one. */
size_t cli_count(const cli_opt *opts, size_t cap);
/* Model shape: --dim --layers --heads --kv-heads --ffn --rope-base --head-dim --untied (8). */
#define CLI_SHAPE_OPTS 8
size_t cli_shape_opts(cli_opt *dst, model_config *c, int *untied);
/* Optimizer and schedule: --seq-len --batch --steps --lr --min-lr-frac --warmup --weight-decay
 * --clip --eval-every --save-every --seed, and data parallelism: --grad-accum --zero
 * --allreduce-bucket --stop-after (15), pointing into a train_options. */
#define CLI_TRAIN_OPTS 15
size_t cli_train_opts(cli_opt *dst, train_options *o);
/* Sampler: --temperature --top-k --top-p (3); what is a comment before each help line (e.g.
 * "closed: "), may be "". */
#define CLI_SAMPLER_OPTS 3
size_t cli_sampler_opts(cli_opt *dst, float *temperature, size_t *top_k, float *top_p, const char *what);

struct mark_options;
struct mark_ctx;
struct mark_key;
size_t cli_mark_opts(cli_opt *dst, struct mark_options *o, int prefixed);
int cli_mark_setup(const cli_opt *opts, size_t n_opts, const struct mark_options *o, int prefixed,
                   struct mark_ctx *c, struct mark_key *key, int *enabled);

/* Antidistillation flags (src/mark, mark_adist): --antidistill-proxy P.gguf, --antidistill-task
 * FILE, --antidistill-lambda X, --antidistill-eps E, --antidistill-gate M,
 * --antidistill-task-scope all|digits|answer, --antidistill-unbatched
 * (CLI_ADIST_OPTS entries into o; unbatched is for the caller: it does not wire the step hook). After
 * cli_parse, cli_adist_setup builds the state for max_seqs sequence slots (*out = NULL when no
 * proxy was given; other antidistillation flags without a proxy, or a proxy without a task or
 * lambda, are errors). teacher_tok: the proxy must have the same vocabulary. */
#define CLI_ADIST_OPTS 7
typedef struct {
    const char *proxy, *task;
    const char *task_scope; /* all (default), digits, answer: mark_adist_scope_parse */
    double lambda, eps, gate;
    int unbatched; /* the proxy one sequence at a time (cost comparisons) */
} cli_adist_options;
struct mark_adist;
size_t cli_adist_opts(cli_opt *dst, cli_adist_options *o);
int cli_adist_setup(const cli_opt *opts, size_t n_opts, const cli_adist_options *o, const tokenizer *teacher_tok,
                    size_t max_seqs, size_t max_ctx, struct mark_adist **out);
/* One line on stderr: what the shift cost (positions, ms per token, proxy tokens). */
void cli_adist_report(const char *cmd, const struct mark_adist *a, double total_seconds);

#endif
