/*
 * cmd_gateway.c — `retort gateway`: serve's accounts, limits, ledger, guard, admin API and
 * metrics in front of OpenAI-compatible servers retort did not start (vLLM, llama.cpp's
 * server, another `retort serve`...). Flags, the upstream key read from its file, then
 * cli_serve_run (cmd_serve.c) with serve_options.upstreams set; src/serve/proxy.c does the
 * forwarding. --upstream may be given several times (or as a comma-separated list).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli.h"

/* Take every "--upstream URL" (and "--upstream=URL") out of argv into ups (comma lists
 * split); the rest stays for cli_parse. Returns the count, or -1 (out of room/memory). */
static int take_upstreams(int *argc, char **argv, char **ups, size_t cap, size_t *n) {
    int k = 1;
    *n = 0;
    for (int i = 1; i < *argc; i++) {
        const char *v = NULL;
        if (!strcmp(argv[i], "--upstream") && i + 1 < *argc) v = argv[++i];
        else if (!strncmp(argv[i], "--upstream=", 11)) v = argv[i] + 11;
        if (!v) {
            argv[k++] = argv[i];
            continue;
        }
        char *copy = rt_strdup(v);
        if (!copy) return -1;
        for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (*n >= cap) {
                free(copy);
                return RT_FAIL("--upstream: at most %zu upstreams", cap);
            }
            ups[(*n)++] = rt_strdup(t);
            if (!ups[*n - 1]) {
                free(copy);
                return -1;
            }
        }
        free(copy);
    }
    *argc = k;
    argv[k] = NULL;
    return 0;
}

char *cli_read_upstream_key(const char *path) {
    char *data = NULL;
    size_t len = 0;
    if (rt_read_file(path, &data, &len)) return NULL;
    size_t a = 0;
    while (a < len && (data[a] == ' ' || data[a] == '\t' || data[a] == '\r' || data[a] == '\n')) a++;
    size_t b = a;
    while (b < len && data[b] != '\n' && data[b] != '\r') b++;
    while (b > a && (data[b - 1] == ' ' || data[b - 1] == '\t')) b--;
    if (b == a) {
        sodium_memzero(data, len);
        free(data);
        RT_FAIL_KIND(RT_ERR_INVALID, "--upstream-key-file %s: the file is empty (expected the key on its first line)", path);
        return NULL;
    }
    memmove(data, data + a, b - a);
    memset(data + (b - a), 0, len - (b - a));
    data[b - a] = '\0';
    return data;
}

int cmd_gateway(int argc, char **argv) {
    serve_options o;
    serve_options_defaults(&o);
    const char *port_file = NULL, *key_file = NULL, *dummy_upstream = NULL;
    size_t port = 8080, timeout = 600;
    cli_server_flags sf;
    cli_server_flags_defaults(&sf);
    int guard_on = 0;
    guard_options go;
    guard_options_defaults(&go);
    char *ups[64] = {0};
    size_t n_ups = 0;
    cli_opt opts[32] = {
        {"--upstream", CLI_STR, &dummy_upstream,
         "URL: an upstream's OpenAI base URL (http://host:port/v1); repeat for several (round robin)", 0, 0},
        {"--upstream-key-file", CLI_STR, &key_file,
         "FILE: the key presented upstream (first line; never shown to clients or logged); reread on SIGHUP "
         "and when the file changes (key rotation without a restart)", 0, 0},
        {"--upstream-timeout", CLI_SIZE, &timeout, "S: longest upstream request (default 600)", 0, 0},
        {"--db", CLI_STR, &o.db_path, "FILE: gateway database (accounts, keys, ledger) (or a postgres:// URL); created if absent", 1, 0},
        {"--embed-model", CLI_STR, &o.model_path,
         "M.gguf: a local model for the guard's prompt embeddings and token counts (any model retort loads)", 0, 0},
        {"--host", CLI_STR, &o.host, "ADDR: address to listen on (default 127.0.0.1)", 0, 0},
        {"--port", CLI_SIZE, &port, "N: TCP port, 0 = any free port (default 8080)", 0, 0},
        {"--port-file", CLI_STR, &port_file, "FILE: write the port listened on here (with --port 0)", 0, 0},
        {"--threads", CLI_SIZE, &o.threads, "N: kernel threads for the embedding model (default: all cores)", 0, 0},
        {"--max-body", CLI_SIZE, &o.max_body, "BYTES: largest request body before 413 (default 1048576)", 0, 0},
        {"--max-tokens", CLI_SIZE, &o.max_tokens_cap,
         "N: tokens a chat request without max_tokens reserves against its limits (default 1024)", 0, 0},
    };
    size_t n_opts = 0; /* the listed options (the rest of the array is zero), then the shared ones */
    while (n_opts < RT_ARRAY_LEN(opts) && opts[n_opts].name) n_opts++;
    if (n_opts + CLI_SERVER_OPTS > RT_ARRAY_LEN(opts)) {
        fprintf(stderr, "retort gateway: internal error: no room for the server options\n");
        return 1;
    }
    n_opts += cli_server_opts(opts + n_opts, &o, &go, &sf);
    cli_cmd_info info = {
        "gateway",
        "retort gateway --upstream URL [--upstream URL ...] [--upstream-key-file F] --db gateway.db "
        "[--port 8080 --embed-model M.gguf --guard]",
        "An OpenAI-compatible reverse proxy with everything `retort serve` has around its engine:\n"
        "keys and accounts, limits, the usage ledger, the guard (--guard), the admin API and dashboard\n"
        "(/admin), /metrics and the report's database. /v1/chat/completions, /v1/completions,\n"
        "/v1/embeddings and /v1/models are forwarded to the upstreams (round robin over those up;\n"
        "a connect failure is retried on the next one; streams are relayed as they arrive). Usage\n"
        "comes from the upstream, or is counted with --embed-model's tokenizer when it gives none.\n"
        "The guard's content signals need prompt embeddings: --embed-model computes them off the\n"
        "request path. The watermark stays on the upstream (docs/deploy.md). Stop with Ctrl-C."};
    int rc = 2;
    if (take_upstreams(&argc, argv, ups, RT_ARRAY_LEN(ups), &n_ups)) {
        rc = cli_fail("gateway");
        goto out;
    }
    int prc = cli_parse(argc, argv, opts, n_opts, &info, NULL, 0, NULL);
    if (prc) {
        rc = prc == 1 ? 0 : 2;
        goto out;
    }
    if (n_ups == 0) {
        fprintf(stderr, "retort gateway: error: --upstream: at least one upstream URL is required "
                        "(e.g. --upstream http://10.0.0.5:8000/v1)\n");
        goto out;
    }
    if (port > 65535) {
        fprintf(stderr, "retort gateway: error: --port: %zu is not a TCP port (0..65535)\n", port);
        goto out;
    }
    if (cli_server_apply("gateway", &sf, &go, &o, &guard_on)) goto out;
    o.port = (int)port;
    o.upstreams = (const char *const *)ups;
    o.n_upstreams = n_ups;
    o.upstream_timeout_s = (long)timeout;
    o.max_batch = 16; /* embedding jobs decoded together */
    char *key = NULL;
    if (key_file && !(key = cli_read_upstream_key(key_file))) {
        rc = cli_fail("gateway");
        goto out;
    }
    o.upstream_key = key;
    const char *config_rows[] = {"watermark", "none", NULL}; /* a watermark is the upstream's (its own database) */
    o.config = config_rows;
    rc = cli_gateway_run(&o, guard_on ? &go : NULL, port_file, key_file);
    if (key) {
        sodium_memzero(key, strlen(key));
        free(key);
    }
out:
    for (size_t i = 0; i < n_ups; i++) free(ups[i]);
    return rc;
}
