/*
 * cli.c — the shared option parser and error printing for subcommands.
 * Not argument semantics: each cmd_*.c validates its own values.
 */
#include "cli.h"

#include <ctype.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../kernels/kernels.h"
#include "../train/dist.h"

static const char *kind_meta(cli_kind k) {
    switch (k) {
    case CLI_STR: return "TEXT";
    case CLI_SIZE: case CLI_U64: case CLI_I64: return "N";
    case CLI_FLOAT: case CLI_DOUBLE: return "X";
    case CLI_FLAG: return "";
    }
    return "";
}

/* A help text may start with the value's name ("FILE: the corpus", "M.gguf: the model"): that
 * name then replaces the generic TEXT/N/X, and is not repeated (issue 17 #23). Returns the
 * length of the name (0 if none) and sets *desc to what follows ": ". */
static size_t help_meta(const char *help, const char **desc) {
    *desc = help;
    const char *c = help ? strstr(help, ": ") : NULL;
    if (!c || c == help || (size_t)(c - help) > 20 || !(help[0] >= 'A' && help[0] <= 'Z')) return 0;
    for (const char *p = help; p < c; p++) /* "FILE", "M.gguf", "OUT.jsonl", "KEY_ID": no spaces */
        if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '_')) return 0;
    *desc = c + 2;
    return (size_t)(c - help);
}

static void print_help(const cli_opt *opts, size_t n, const cli_cmd_info *info) {
    printf("usage: %s\n\n", info->usage);
    if (info->summary) printf("%s\n\n", info->summary);
    printf("options:\n");
    for (size_t i = 0; i < n; i++) {
        char left[64];
        const char *desc;
        size_t ml = opts[i].kind == CLI_FLAG ? 0 : help_meta(opts[i].help, &desc);
        if (ml)
            snprintf(left, sizeof left, "%s %.*s", opts[i].name, (int)ml, opts[i].help);
        else
            desc = opts[i].help ? opts[i].help : "", snprintf(left, sizeof left, "%s %s", opts[i].name, kind_meta(opts[i].kind));
        int says_required = strstr(desc, "(required)") != NULL;
        if (strlen(left) > 24) printf("  %s\n", left), left[0] = 0; /* too wide: its text on the next line */
        printf("  %-24s %s%s\n", left, desc, opts[i].required && !says_required ? " (required)" : "");
    }
    printf("  %-24s %s\n", "--help", "show this help");
}

int cli_parse(int argc, char **argv, cli_opt *opts, size_t n_opts, const cli_cmd_info *info,
              const char **pos, size_t max_pos, size_t *n_pos) {
    size_t np = 0;
    for (size_t i = 0; i < n_opts; i++) opts[i].seen = 0;
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            print_help(opts, n_opts, info);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0 || !strcmp(arg, "-")) {
            if (np >= max_pos) {
                fprintf(stderr, "retort %s: error: unexpected argument '%s' (see --help)\n", info->name, arg);
                return 2;
            }
            pos[np++] = arg;
            continue;
        }
        /* --name=value or --name value */
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        cli_opt *o = NULL;
        for (size_t i = 0; i < n_opts; i++)
            if (strlen(opts[i].name) == nlen && !strncmp(opts[i].name, arg, nlen)) o = &opts[i];
        if (!o) {
            fprintf(stderr, "retort %s: error: unknown option '%.*s' (see retort %s --help)\n", info->name,
                    (int)nlen, arg, info->name);
            return 2;
        }
        o->seen = 1;
        if (o->kind == CLI_FLAG) {
            if (eq) {
                fprintf(stderr, "retort %s: error: %s takes no value\n", info->name, o->name);
                return 2;
            }
            *(int *)o->dst = 1;
            continue;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (a + 1 >= argc) {
                fprintf(stderr, "retort %s: error: %s needs a value (%s)\n", info->name, o->name, o->help);
                return 2;
            }
            val = argv[++a];
        }
        int rc = 0;
        switch (o->kind) {
        case CLI_STR: *(const char **)o->dst = val; break;
        case CLI_SIZE: rc = rt_parse_size(val, o->name, (size_t *)o->dst); break;
        case CLI_U64: rc = rt_parse_u64(val, o->name, (uint64_t *)o->dst); break;
        case CLI_I64: rc = rt_parse_i64(val, o->name, (int64_t *)o->dst); break;
        case CLI_FLOAT: rc = rt_parse_float(val, o->name, (float *)o->dst); break;
        case CLI_DOUBLE: rc = rt_parse_double(val, o->name, (double *)o->dst); break;
        case CLI_FLAG: break;
        }
        if (rc) {
            fprintf(stderr, "retort %s: error: %s\n", info->name, rt_errmsg());
            return 2;
        }
    }
    for (size_t i = 0; i < n_opts; i++) {
        if (opts[i].required && !opts[i].seen) {
            fprintf(stderr, "retort %s: error: missing required option %s (%s)\nusage: %s\n", info->name,
                    opts[i].name, opts[i].help, info->usage);
            return 2;
        }
    }
    if (n_pos) *n_pos = np;
    return 0;
}

int cli_seen(const cli_opt *opts, size_t n_opts, const char *name) {
    for (size_t i = 0; i < n_opts; i++)
        if (!strcmp(opts[i].name, name)) return opts[i].seen;
    return 0;
}

int cli_fail(const char *cmd) {
    if (dist_active()) /* under mpirun: say which rank failed */
        fprintf(stderr, "retort %s: error: rank %d of %d: %s\n", cmd, dist_rank(), dist_size(), rt_errmsg());
    else
        fprintf(stderr, "retort %s: error: %s\n", cmd, rt_errmsg());
    if (getenv("RETORT_DEBUG")) fprintf(stderr, "  (at %s)\n", rt_errloc());
    return 1;
}

void cli_set_threads(size_t threads) {
    /* under mpirun the default shares this machine's cores among its ranks, and never exceeds
     * the CPUs the launcher bound this rank to (OpenMPI binds to one core when np <= 2) */
    if (threads == 0 && dist_local_size() > 1) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        cpu_set_t set;
        long bound = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : cores;
        long share = cores > 0 ? cores / dist_local_size() : 1;
        if (bound > 0 && bound < share) share = bound;
        threads = (size_t)(share > 0 ? share : 1);
    }
    kernels_set_threads((int)threads);
}

/* ---------------------------------------------------------------- shared flag tables */

/* Help lines that show a default live for the whole process (one command runs). */
static const char *help_fmt(const char *fmt, ...) {
    static char pool[48][112];
    static size_t used;
    if (used == RT_ARRAY_LEN(pool)) return fmt;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pool[used], sizeof pool[used], fmt, ap);
    va_end(ap);
    return pool[used++];
}

size_t cli_count(const cli_opt *opts, size_t cap) {
    size_t n = 0;
    while (n < cap && opts[n].name) n++;
    return n;
}

size_t cli_shape_opts(cli_opt *dst, model_config *c, int *untied) {
    cli_opt t[CLI_SHAPE_OPTS] = {
        {"--dim", CLI_SIZE, &c->dim, help_fmt("model width (default %zu)", c->dim), 0, 0},
        {"--layers", CLI_SIZE, &c->n_layers, help_fmt("transformer blocks (default %zu)", c->n_layers), 0, 0},
        {"--heads", CLI_SIZE, &c->n_heads, help_fmt("attention heads (default %zu)", c->n_heads), 0, 0},
        {"--kv-heads", CLI_SIZE, &c->n_kv_heads, help_fmt("key/value heads, divides --heads (default %zu)", c->n_kv_heads), 0, 0},
        {"--ffn", CLI_SIZE, &c->ffn_dim, help_fmt("SwiGLU hidden width (default %zu)", c->ffn_dim), 0, 0},
        {"--rope-base", CLI_FLOAT, &c->rope_base, help_fmt("RoPE frequency base (default %g)", (double)c->rope_base), 0, 0},
        {"--head-dim", CLI_SIZE, &c->head_dim, "per-head size (default dim/heads)", 0, 0},
        {"--untied", CLI_FLAG, untied, "separate output projection (default: tied to the embedding)", 0, 0},
    };
    memcpy(dst, t, sizeof t);
    return CLI_SHAPE_OPTS;
}

size_t cli_train_opts(cli_opt *dst, train_options *o) {
    cli_opt t[CLI_TRAIN_OPTS] = {
        {"--seq-len", CLI_SIZE, &o->seq_len, help_fmt("sequence length = context length (default %zu)", o->seq_len), 0, 0},
        {"--batch", CLI_SIZE, &o->batch, help_fmt("sequences per step (default %zu)", o->batch), 0, 0},
        {"--steps", CLI_SIZE, &o->steps, help_fmt("optimizer steps (default %zu)", o->steps), 0, 0},
        {"--lr", CLI_FLOAT, &o->lr, help_fmt("peak learning rate (default %g)", (double)o->lr), 0, 0},
        {"--min-lr-frac", CLI_FLOAT, &o->min_lr_frac, help_fmt("final lr as a fraction of --lr (default %g)", (double)o->min_lr_frac), 0, 0},
        {"--warmup", CLI_SIZE, &o->warmup, help_fmt("linear warmup steps (default %zu)", o->warmup), 0, 0},
        {"--weight-decay", CLI_FLOAT, &o->weight_decay, help_fmt("AdamW decoupled weight decay (default %g)", (double)o->weight_decay), 0, 0},
        {"--clip", CLI_FLOAT, &o->clip, help_fmt("gradient global-norm clip, 0 = off (default %g)", (double)o->clip), 0, 0},
        {"--eval-every", CLI_SIZE, &o->eval_every, help_fmt("held-out eval period in steps (default %zu)", o->eval_every), 0, 0},
        {"--save-every", CLI_SIZE, &o->save_every, help_fmt("checkpoint period in steps (default %zu)", o->save_every), 0, 0},
        {"--seed", CLI_U64, &o->seed, help_fmt("RNG seed for init and batches (default %llu)", (unsigned long long)o->seed), 0, 0},
        /* data parallelism under mpirun (src/train/dist.h) */
        {"--grad-accum", CLI_SIZE, &o->grad_accum, "micro-batches of --batch per step (default 1); global batch = ranks x --batch x --grad-accum", 0, 0},
        {"--zero", CLI_FLAG, &o->zero, "under mpirun, ZeRO-1: each rank keeps the AdamW moments of its slice of the parameters", 0, 0},
        {"--allreduce-bucket", CLI_SIZE, &o->bucket, "under mpirun, floats per gradient allreduce bucket (default 4194304); each starts during the backward pass once its layers are done", 0, 0},
        {"--stop-after", CLI_SIZE, &o->stop_after, "stop after N steps of this run as if killed: the last --save-every checkpoint remains for --resume", 0, 0},
    };
    memcpy(dst, t, sizeof t);
    return CLI_TRAIN_OPTS;
}

size_t cli_sampler_opts(cli_opt *dst, float *temperature, size_t *top_k, float *top_p, const char *what) {
    cli_opt t[CLI_SAMPLER_OPTS] = {
        {"--temperature", CLI_FLOAT, temperature, help_fmt("%s0 = greedy (default %g)", what, (double)*temperature), 0, 0},
        {"--top-k", CLI_SIZE, top_k, help_fmt("%skeep the k most likely tokens, 0 = off (default %zu)", what, *top_k), 0, 0},
        {"--top-p", CLI_FLOAT, top_p, help_fmt("%snucleus sampling mass, 1 = off (default %g)", what, (double)*top_p), 0, 0},
    };
    memcpy(dst, t, sizeof t);
    return CLI_SAMPLER_OPTS;
}
