/*
 * cli_mark.c — the watermark flags every command that marks or detects shares (watermark
 * detect/generate, generate, serve, data, radioactivity): their table (cli_mark_opts) and
 * their resolution into a mark_ctx and key (cli_mark_setup), including --server-db, which
 * reads the parameters serve recorded in a gateway database. Contract in cli.h. The schemes
 * and the config format live in src/mark.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../gateway/gateway.h"
#include "../mark/mark.h"
#include "cli.h"

size_t cli_mark_opts(cli_opt *dst, mark_options *o, int prefixed) {
    cli_opt p[] = {
        {"--watermark-key-file", CLI_STR, &o->key_file,
         "K: watermark the output with this key (retort watermark keygen)", 0, 0},
        {"--watermark-config", CLI_STR, &o->config_file,
         "FILE: watermark parameters recorded earlier (JSON; flags must agree)", 0, 0},
        {"--watermark-scheme", CLI_STR, &o->scheme, "kgw | kgw-selfhash | gumbel (default kgw)", 0, 0},
        {"--watermark-gamma", CLI_DOUBLE, &o->gamma, "KGW green fraction (default 0.25)", 0, 0},
        {"--watermark-delta", CLI_DOUBLE, &o->delta, "KGW green logit bias (default 2.0)", 0, 0},
        {"--watermark-context", CLI_SIZE, &o->context, "tokens hashed for the green list, h (default 1; selfhash, gumbel 4)",
         0, 0},
    };
    cli_opt u[] = {
        {"--key-file", CLI_STR, &o->key_file, "K: the watermark key (retort watermark keygen)", 0, 0},
        {"--config", CLI_STR, &o->config_file, "FILE: watermark parameters recorded by generate/serve (JSON)", 0, 0},
        {"--scheme", CLI_STR, &o->scheme, "kgw | kgw-selfhash | gumbel (default kgw)", 0, 0},
        {"--gamma", CLI_DOUBLE, &o->gamma, "KGW green fraction (default 0.25)", 0, 0},
        {"--delta", CLI_DOUBLE, &o->delta, "KGW green logit bias (default 2.0)", 0, 0},
        {"--context", CLI_SIZE, &o->context, "tokens hashed for the green list, h (default 1; selfhash, gumbel 4)", 0, 0},
        {"--server-db", CLI_STR, &o->server_db,
         "FILE: use the parameters `retort serve --watermark-key-file` recorded in this gateway database", 0, 0},
    };
    if (prefixed) {
        memcpy(dst, p, sizeof p);
        return RT_ARRAY_LEN(p);
    }
    memcpy(dst, u, sizeof u);
    return RT_ARRAY_LEN(u);
}

/* The "watermark" row of a gateway database's server_config (written by serve): *json
 * malloc'ed. A server that ran without a key recorded "none": an error, since there is
 * nothing to detect with. */
static int server_db_config(const char *path, char **json) {
    *json = NULL;
    if (!rt_file_exists(path)) return RT_FAIL("--server-db %s: no such file", path);
    gw_db *db = NULL;
    if (gw_db_open(&db, path)) return -1;
    char *v = NULL;
    int rc = gw_config_get(db, "watermark", &v);
    gw_db_close(db);
    if (rc) return -1;
    if (!v)
        return RT_FAIL("--server-db %s: no watermark recorded (was it written by `retort serve`?)", path);
    if (!strcmp(v, "none")) {
        free(v);
        return RT_FAIL("--server-db %s: the server ran without --watermark-key-file; its text carries no watermark",
                       path);
    }
    *json = v;
    return 0;
}

/* any watermark flag other than the key given? */
static int mark_flags_seen(const cli_opt *opts, size_t n, int prefixed) {
    const char *names[2][6] = {{"--config", "--scheme", "--gamma", "--delta", "--context", "--server-db"},
                               {"--watermark-config", "--watermark-scheme", "--watermark-gamma", "--watermark-delta",
                                "--watermark-context", NULL}};
    for (int i = 0; i < 6; i++)
        if (names[prefixed][i] && cli_seen(opts, n, names[prefixed][i])) return 1;
    return 0;
}

int cli_mark_setup(const cli_opt *opts, size_t n_opts, const mark_options *o, int prefixed, mark_ctx *c,
                   mark_key *key, int *enabled) {
    *enabled = 0;
    if (!o->key_file) {
        if (mark_flags_seen(opts, n_opts, prefixed))
            return RT_FAIL("watermark flags given without %s", prefixed ? "--watermark-key-file" : "--key-file");
        return 0;
    }
    char *json = NULL, what[512];
    mark_options r = *o;
    if (o->server_db) {
        if (o->config_file) return RT_FAIL("give one of --config and --server-db");
        if (server_db_config(o->server_db, &json)) return -1;
        snprintf(what, sizeof what, "the server_config of %s", o->server_db);
        r.config_json = json;
        r.config_what = what;
    }
    int rc = mark_options_resolve(&r, c, key);
    free(json);
    if (rc) return -1;
    *enabled = 1;
    return 0;
}
