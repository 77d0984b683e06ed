/*
 * cli.c — the shared option parser and error printing for subcommands.
 * Not argument semantics: each cmd_*.c validates its own values.
 */
#include "cli.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"

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
    fprintf(stderr, "retort %s: error: %s\n", cmd, rt_errmsg());
    if (getenv("RETORT_DEBUG")) fprintf(stderr, "  (at %s)\n", rt_errloc());
    return 1;
}

void cli_set_threads(size_t threads) { kernels_set_threads((int)threads); }
